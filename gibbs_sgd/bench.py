"""Benchmarks: :func:`gibbs_sgd.simulate` against the array code a user would write instead.

On the CPU (:func:`run_benchmarks`, ``gibbs-sgd bench``) the array code runs on NumPy; on the
GPU (:func:`run_cuda_benchmarks`, ``gibbs-sgd bench --backend cuda``) the same array code runs
on CuPy and on PyTorch eager (one source, :class:`ArrayOps`), beside the CUDA kernel's
RNG-only loop. The CPU protocol:

For each case, on the same ``n_chains x n_steps``, three things are timed side by side in one
process (interleaved: simulate, NumPy, RNG-only, then again, ``repeat`` times; the best of the
repeats is reported, which is the least disturbed by other work on the machine):

(a) **simulate** -- ``gibbs_sgd.simulate(..., progress=False)`` with its defaults otherwise
    (float64 state, 100 bins over the landscape's box). The
    kernel is compiled (and the on-disk cache loaded) by an untimed small run first; the
    timed interval is the whole call, from arguments to the returned ``SimulationResult``.
    What it does per chain and step: draw the step's normals (Philox4x32-10 + Box-Muller,
    one Philox call per two normals), the minibatch gradient ``grad L + N(0, sigma^2/B)``, the
    optimizer update, the divergence check. On the sampled steps (``t >= burn_in``,
    ``(t - burn_in) % thin == 0``): per-coordinate histograms (and the joint histogram for
    d = 2), the histogram of the loss, the running sums of ``L``, ``L^2``, the Laplacian,
    ``|grad L|^2``, ``Phi_k dL/dk``, ``dL/dk``, ``(dL/dk)^2``, of the state vector ``z`` and of
    ``z z^T``. The mean-loss trace is recorded on every ``thin``-th step (``trace_points =
    n_steps // thin``), the cadence at which the NumPy code evaluates L.

(b) **NumPy** -- the array-at-a-time code a competent user writes for the same job, in
    float64, single-threaded as NumPy ufuncs are: states as one array per coordinate over all
    chains (and one per optimizer-state coordinate); per step the normals of all chains from
    ``np.random.default_rng(seed).standard_normal(out=buf)`` (PCG64, filling a preallocated
    buffer), then the gradient, the noise and the update as whole-array operations, in place
    where that is natural (no per-step allocation of the state arrays). On the same sampled
    steps as (a): the histogram of each coordinate over the same bins, as ``np.bincount`` of
    bin indices computed with ``floor((x - lo) / width)`` and clipped into two extra
    under/overflow slots; for d = 2 also the joint histogram (``bincount`` of the flattened
    index); and the running sums of ``L`` and ``L^2``. It does *less* than (a): no loss
    histogram, no Laplacian / gradient / state moments, no trace, no divergence check -- so
    the comparison favours NumPy.

(c) **RNG-only** -- ``rng_only`` of the case's compiled kernel module: the kernel's own
    random-number work alone (same tiles of chains, same Philox calls, same Box-Muller over
    the tile) for the same chains and steps, with everything else removed, on the same threads
    (the kernel module's ``parallel_call`` when the kernel takes ``(tid, nt)``). Its rate is
    the ceiling on (a)'s: ``simulate / RNG-only`` says which fraction of the generator's speed
    the whole fused step keeps. (It adds every normal into a per-chain sum, a vectorised add
    that costs next to nothing, so that nothing is optimised away.)

(d) **JAX** (when ``jax`` is installed: the ``bench`` extra) -- the same job as (b) written as a
    performance-minded user would in JAX, float64: one jitted function, a ``lax.scan`` over the
    burn-in steps and one over blocks of ``thin`` steps whose first is sampled (histogram by
    ``jnp.bincount``, sums of L and L^2), compiled before the clock starts
    (:mod:`gibbs_sgd._bench_jax`; for 1-D SGD and Adam). XLA may use every core.

(e) **simulate, thin 1** -- (a) with every step sampled and traced: the cost of the statistics.

(a), (b) and (d) use the same burn-in and thinning: ``burn_in = n_steps // 2`` (simulate's
default) and ``thin = 10`` by default (``--thin 100`` for the README's table). Each report also
checks that (a), (b) and (d) did the same job: their mean losses over the sampling window must
agree within the Monte-Carlo error. The kernels are compiled for the instruction set Numba
targets in the process (named in the table); ``gibbs-sgd bench --isa native avx2`` runs one
process per target (:data:`ISA_TARGETS`), interleaved, to compare them on one machine.

Targets, on AVX2 and on AVX-512 alike: 1-D SGD >= 6x NumPy, >= 4x JAX and >= 70% of RNG-only;
Adam >= 6x NumPy, >= 3x JAX and >= 55% of RNG-only; thin 1 >= 75% of the thin-100 rate.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from . import __version__, _bench_jax
from .kernels import cpu as cpu_kernels
from .landscapes import DoubleWell, MuellerBrown, Quadratic
from .noise import Gaussian
from .optimizers import SGD, Adam, HeavyBall
from .rng import seed_key
from .simulate import simulate

__all__ = ["CASES", "CUDA_CASES", "run_benchmarks", "run_cuda_benchmarks", "format_table", "format_cuda_table",
           "missed_targets", "plot_benchmark", "machine_info", "ArrayOps"]

DEFAULT_CHAINS = 1_000_000
DEFAULT_STEPS = 200
DEFAULT_THIN = 10
DEFAULT_BINS = 100


@dataclass(frozen=True)
class Case:
    """One benchmark problem: the model, and the NumPy code for the same job."""

    name: str
    title: str
    make: Callable  # () -> (landscape, optimizer, noise, batch_size)
    array_run: Callable  # (ops, landscape, optimizer, noise, B, n, steps, burn_in, thin, edges) -> dict
    numpy_target: float | None  # simulate / NumPy target (None: no target for this case)
    rng_target: float  # simulate / RNG-only target
    jax_target: float | None = None  # simulate / JAX target (cases with JAX code, gibbs_sgd._bench_jax)


# =========================================================================================
# The array code a user would write (array-at-a-time, one array per coordinate), written
# once and run on NumPy (CPU), CuPy (GPU) or PyTorch eager (GPU or CPU) through ``ops``
# =========================================================================================
class ArrayOps:
    """The few things the array codes need beyond NumPy-style ufuncs, for one array library.

    ``xp`` is the NumPy-like namespace (``numpy``, ``cupy``, or a thin torch adapter);
    ``normal(out)`` fills ``out`` with standard normals from the library's own generator
    (NumPy/CuPy ``default_rng``, torch's Philox/MT generator), seeded once.
    """

    def __init__(self, library: str = "numpy", seed: int = 0, dtype=np.float64, device: str | None = None):
        self.library = library
        self.dtype = np.dtype(dtype)
        if library == "numpy":
            self.xp = np
            self._gen = np.random.default_rng(seed)
        elif library == "cupy":
            import cupy

            self.xp = cupy
            self._gen = cupy.random.default_rng(seed)
        elif library == "torch":
            import torch

            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.xp = _TorchNamespace(torch, dev)
            self._gen = torch.Generator(device=dev)
            self._gen.manual_seed(seed)
        else:
            raise ValueError(f"library must be 'numpy', 'cupy' or 'torch', got {library!r}")

    @property
    def device(self) -> str:
        return self.xp.device if self.library == "torch" else ("cpu" if self.library == "numpy" else "cuda")

    def full(self, n, value):
        return self.xp.full(n, float(value), dtype=self.dtype)

    def empty(self, shape):
        return self.xp.empty(shape, dtype=self.dtype)

    def zeros(self, shape):
        return self.xp.zeros(shape, dtype=self.dtype)

    def counts(self, n):
        return self.xp.zeros(n, dtype=np.int64)

    def normal(self, out):
        if self.library == "torch":
            out.normal_(generator=self._gen)
        else:
            self._gen.standard_normal(dtype=self.dtype, out=out)

    def index(self, k):
        return k.long() if self.library == "torch" else k.astype(np.intp)

    def host(self, a) -> np.ndarray:
        if self.library == "numpy":
            return a
        if self.library == "cupy":
            return self.xp.asnumpy(a)
        return a.cpu().numpy()

    def sync(self):
        if self.library == "cupy":
            self.xp.cuda.Device().synchronize()
        elif self.library == "torch" and self.xp.device.startswith("cuda"):
            self.xp.torch.cuda.synchronize()


class _TorchNamespace:
    """NumPy-style names over torch for the array codes (``out=`` arguments work the same;
    allocations take a NumPy ``dtype`` and land on the namespace's device)."""

    def __init__(self, torch, device):
        self.torch = torch
        self.device = device
        self._dtypes = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                        np.dtype(np.int64): torch.int64}
        for name in ("subtract", "multiply", "divide", "sqrt", "exp", "floor", "clip", "bincount", "dot",
                     "zeros_like"):
            setattr(self, name, getattr(torch, name))

    def full(self, n, value, dtype):
        return self.torch.full((n,), value, dtype=self._dtypes[np.dtype(dtype)], device=self.device)

    def empty(self, shape, dtype):
        return self.torch.empty(shape, dtype=self._dtypes[np.dtype(dtype)], device=self.device)

    def zeros(self, shape, dtype):
        return self.torch.zeros(shape, dtype=self._dtypes[np.dtype(dtype)], device=self.device)


class _Stats:
    """Histogram by ``bincount`` of computed bin indices, and running sums of L and L^2."""

    def __init__(self, ops, edges):
        self.ops = ops
        self.lo = [float(e[0]) for e in edges]
        self.nb = edges[0].shape[0] - 1
        self.inv = [self.nb / float(e[-1] - e[0]) for e in edges]
        self.hist = [ops.counts(self.nb + 2) for _ in edges]  # slot 0: below, nb+1: above
        self.hist2 = ops.counts((self.nb + 2) ** 2) if len(edges) == 2 else None
        self.sum_l = 0.0
        self.sum_l2 = 0.0
        self.count = 0

    def add(self, coords, loss):
        xp = self.ops.xp
        idx = []
        for i, x in enumerate(coords):
            k = xp.floor((x - self.lo[i]) * self.inv[i])
            xp.clip(k, -1, self.nb, out=k)
            k = self.ops.index(k)
            k += 1
            self.hist[i] += xp.bincount(k, minlength=self.nb + 2)
            idx.append(k)
        if self.hist2 is not None:
            flat = idx[0] * (self.nb + 2)
            flat += idx[1]
            self.hist2 += xp.bincount(flat, minlength=(self.nb + 2) ** 2)
        self.sum_l += float(loss.sum())
        self.sum_l2 += float(xp.dot(loss, loss))
        self.count += loss.shape[0]

    def result(self):
        hist = [self.ops.host(h) for h in self.hist]
        return {
            "hist": np.stack([h[1:-1] for h in hist]),
            "outside": np.array([[h[0], h[-1]] for h in hist]),
            "mean_loss": self.sum_l / self.count,
            "mean_loss_sq": self.sum_l2 / self.count,
            "n_samples": self.count,
        }


def _sampled(t, burn_in, thin):
    return t >= burn_in and (t - burn_in) % thin == 0


def _array_sgd_quadratic(ops, land, opt, noise, B, n, steps, burn_in, thin, edges):
    """1-D SGD on ``h/2 (x - c)^2 + L0``: ``x -= lr * (h (x - c) + sigma/sqrt(B) z)``."""
    xp = ops.xp
    h = float(land.hessian[0, 0])
    c = float(land.center[0])
    l0 = float(land.offset)
    lr = opt.lr
    s = noise.sigma / math.sqrt(B)
    x = ops.full(n, land.minimum[0])
    z = ops.empty(n)
    g = ops.empty(n)
    stats = _Stats(ops, edges)
    for t in range(steps):
        ops.normal(z)
        xp.subtract(x, c, out=g)
        g *= h
        z *= s
        g += z
        g *= lr
        x -= g
        if _sampled(t, burn_in, thin):
            r = x - c
            stats.add([x], 0.5 * h * r * r + l0)
    return stats.result()


def _noisy_double_well_grad(ops, x, D, a, tau, s, z, u, g):
    """``g = (4 D u (u^2 - 1) + tau) / a + s z`` with ``u = x / a``, in place (z, u: scratch)."""
    xp = ops.xp
    ops.normal(z)
    xp.multiply(x, 1.0 / a, out=u)
    xp.multiply(u, u, out=g)
    g -= 1.0
    g *= u
    g *= 4.0 * D / a
    g += tau / a
    z *= s
    g += z


def _double_well_loss(x, D, a, tau):
    v = x / a
    w = v * v - 1.0
    return D * w * w + tau * v


def _array_heavyball_double_well(ops, land, opt, noise, B, n, steps, burn_in, thin, edges):
    """Heavy ball (torch.optim.SGD, momentum mu, no dampening) on the tilted double well.

    ``u = x / a``, ``g = (4 D u (u^2 - 1) + tau) / a + sigma/sqrt(B) z``, ``b = mu b + g``
    (``b = g`` at the first step), ``x -= lr * b``.
    """
    if opt.dampening != 0 or opt.nesterov:
        raise ValueError("the array heavy-ball reference implements dampening = 0, nesterov = False")
    xp = ops.xp
    D, a, tau = land.barrier, land.width, land.tilt
    lr, mu = opt.lr, opt.momentum
    s = noise.sigma / math.sqrt(B)
    x = ops.full(n, land.minimum[0])
    b = ops.zeros(n)
    z = ops.empty(n)
    u = ops.empty(n)
    g = ops.empty(n)
    stats = _Stats(ops, edges)
    for t in range(steps):
        _noisy_double_well_grad(ops, x, D, a, tau, s, z, u, g)
        if t == 0:
            b[:] = g
        else:
            b *= mu
            b += g
        xp.multiply(b, lr, out=g)
        x -= g
        if _sampled(t, burn_in, thin):
            stats.add([x], _double_well_loss(x, D, a, tau))
    return stats.result()


def _mb_constants(land):
    p = land.kernel_params()
    return float(p[0]), *([float(v) for v in p[1 + 4 * j:5 + 4 * j]] for j in range(6))


def _array_mb_loss(xp, x, y, consts):
    scale, A, a, b, c, x0, y0 = consts
    out = xp.zeros_like(x)
    for i in range(4):
        dx = x - x0[i]
        dy = y - y0[i]
        out += A[i] * xp.exp(a[i] * dx * dx + b[i] * dx * dy + c[i] * dy * dy)
    out *= scale
    return out


def _array_sgd_mueller_brown(ops, land, opt, noise, B, n, steps, burn_in, thin, edges):
    """2-D SGD on the Mueller-Brown surface: the four Gaussian terms' gradients summed per step."""
    xp = ops.xp
    consts = _mb_constants(land)
    scale, A, a, b, c, x0, y0 = consts
    lr = opt.lr
    s = noise.sigma / math.sqrt(B)
    x = ops.full(n, land.minimum[0])
    y = ops.full(n, land.minimum[1])
    z = ops.empty((2, n))
    gx = ops.empty(n)
    gy = ops.empty(n)
    stats = _Stats(ops, edges)
    for t in range(steps):
        ops.normal(z)
        gx[:] = 0.0
        gy[:] = 0.0
        for i in range(4):
            dx = x - x0[i]
            dy = y - y0[i]
            e = xp.exp(a[i] * dx * dx + b[i] * dx * dy + c[i] * dy * dy)
            e *= A[i]
            gx += e * (2.0 * a[i] * dx + b[i] * dy)
            gy += e * (b[i] * dx + 2.0 * c[i] * dy)
        gx *= scale
        gy *= scale
        z *= s
        gx += z[0]
        gy += z[1]
        gx *= lr
        gy *= lr
        x -= gx
        y -= gy
        if _sampled(t, burn_in, thin):
            stats.add([x, y], _array_mb_loss(xp, x, y, consts))
    return stats.result()


def _array_adam_double_well(ops, land, opt, noise, B, n, steps, burn_in, thin, edges):
    """torch.optim.Adam's update, array-at-a-time, on the tilted double well."""
    if opt.amsgrad or opt.bias_correction != "torch":
        raise ValueError("the array Adam reference implements torch's bias correction without amsgrad")
    xp = ops.xp
    D, a, tau = land.barrier, land.width, land.tilt
    b1, b2 = opt.betas
    s = noise.sigma / math.sqrt(B)
    x = ops.full(n, land.minimum[0])
    m = ops.zeros(n)
    v = ops.zeros(n)
    z = ops.empty(n)
    u = ops.empty(n)
    g = ops.empty(n)
    stats = _Stats(ops, edges)
    for t in range(steps):
        _noisy_double_well_grad(ops, x, D, a, tau, s, z, u, g)
        m *= b1
        m += (1.0 - b1) * g
        g *= g
        v *= b2
        v += (1.0 - b2) * g
        k = t + 1
        step = opt.lr / (1.0 - b1**k)
        xp.sqrt(v, out=u)
        u *= 1.0 / math.sqrt(1.0 - b2**k)
        u += opt.eps
        xp.divide(m, u, out=g)
        g *= step
        x -= g
        if _sampled(t, burn_in, thin):
            stats.add([x], _double_well_loss(x, D, a, tau))
    return stats.result()


# =========================================================================================
# The cases
# =========================================================================================
def _make_sgd_quadratic():
    # T = lr sigma^2 / (2B) = 0.05, lr h = 0.1
    return Quadratic(1.0), SGD(lr=0.1), Gaussian(1.0), 1


def _make_heavyball_double_well():
    # effective step lr / (1 - mu) = 0.1, so (lr/(1-mu)) h = 0.8 at the minima (h = 8);
    # T = 0.1 * 2^2 / 2 = 0.2
    return DoubleWell(barrier=1.0, tilt=0.2), HeavyBall(lr=0.01, momentum=0.9), Gaussian(2.0), 1


def _make_sgd_mueller_brown():
    # scale 0.05: the stiffest curvature in the deepest well is ~4068 * 0.05 = 203, so
    # lr h <= 0.1; T = 5e-4 * 40^2 / 2 = 0.4 against barriers of ~3 (in units of the scale).
    return MuellerBrown(scale=0.05), SGD(lr=5e-4), Gaussian(40.0), 1


def _make_adam_double_well():
    # Adam's small-lr effective step lr / sqrt(v) ~ lr / sigma = 5e-3, so lr_eff h = 0.04;
    # T ~ lr sigma / 2 = 0.01 ... the wells stay separate, as for the NumPy code.
    return DoubleWell(barrier=1.0, tilt=0.2), Adam(lr=0.01, betas=(0.9, 0.999)), Gaussian(2.0), 1


# Targets (side by side in one run, on AVX2 and on AVX-512): 1-D SGD >= 6x NumPy, >= 4x JAX, >= 70%
# of RNG-only; Adam >= 6x NumPy, >= 3x JAX, >= 55% of RNG-only (its divider work bounds it near
# 68%: benchmarks/adam_step_bound.py); heavy ball as SGD's RNG share, 4x NumPy; Mueller-Brown
# (exp in the model, scalar libm calls without SVML) 85% of RNG-only, never met so far.
CASES = {
    "sgd-quadratic": Case("sgd-quadratic", "1-D SGD, quadratic", _make_sgd_quadratic, _array_sgd_quadratic, 6.0, 0.70,
                          4.0),
    "heavyball-doublewell": Case("heavyball-doublewell", "heavy ball (mu = 0.9), double well",
                                 _make_heavyball_double_well, _array_heavyball_double_well, 4.0, 0.70),
    "adam-doublewell": Case("adam-doublewell", "Adam, double well", _make_adam_double_well, _array_adam_double_well,
                            6.0, 0.55, 3.0),
    "sgd-muellerbrown": Case("sgd-muellerbrown", "2-D SGD, Mueller-Brown", _make_sgd_mueller_brown,
                             _array_sgd_mueller_brown, None, 0.85),
}
# Statistics on every step: simulate at thin = 1 keeps at least this share of its rate at the
# run's thin (the target applies to a run at thin >= 100, as the README's table is measured).
STATS_TARGET = 0.75


# =========================================================================================
# Machine description
# =========================================================================================
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _git_revision() -> str | None:
    """The commit of the package's checkout (``+dirty``: tracked package files modified), if any."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "gibbs_sgd"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


def _jax_version() -> str | None:
    try:
        import jax
    except ImportError:
        return None
    return jax.__version__


def machine_info() -> dict:
    """Platform, CPU model, cores, Numba threads, library versions and the date."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_simd_flags": _cpu_flags(),
        "cores": cores,
        "numba_threads": numba.get_num_threads(),
        "compiled_for": cpu_kernels.target_isa(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "jax": _jax_version(),
            "gibbs_sgd": __version__,
            "gibbs_sgd_git": _git_revision(),
        },
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# =========================================================================================
# Running
# =========================================================================================
def _run_simulate(model, n, steps, burn_in, thin, bins, seed):
    land, opt, noise, B = model
    t = time.perf_counter()
    # the mean-loss trace on the sampled cadence: the NumPy code computes L only on those steps
    res = simulate(land, opt, noise=noise, batch_size=B, n_chains=n, n_steps=steps, burn_in=burn_in,
                   thin=thin, bins=bins, seed=seed, trace_points=max(1, steps // thin), progress=False)
    dt = time.perf_counter() - t
    return dt, res


def _run_rng_only(kern, n, steps, seed):
    """Seconds for ``rng_only`` over ``n`` chains x ``steps``, on the threads simulate uses."""
    k0, k1 = seed_key(seed)
    nt = numba.get_num_threads()
    out = np.zeros(nt)
    w = cpu_kernels.workspaces(kern, nt, np.float64)
    args = (np.int64(n), np.int64(0), np.int64(steps), np.int64(0), k0, k1, out, w["wf"], w["wi"])
    t = time.perf_counter()
    cpu_kernels.parallel_call(kern.rng_only, nt, *args)
    return time.perf_counter() - t


def _mean_loss_z(sim, ref) -> float:
    """(simulate - NumPy) mean loss over the sampling window, in units of simulate's stderr x sqrt(2)."""
    est = sim.mean_loss
    se = float(est.stderr) * math.sqrt(2.0)
    return (float(est.value) - ref["mean_loss"]) / se if se > 0 else math.nan


def _check_job(cases, catalogue, n_chains, n_steps, repeat, thin, burn_in):
    """The case names to run and the burn-in, or a ValueError naming the bad argument."""
    names = list(catalogue) if cases is None else list(cases)
    unknown = [c for c in names if c not in catalogue]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {list(catalogue)}")
    if n_chains < 1 or n_steps < 2 or repeat < 1 or thin < 1:
        raise ValueError("need n_chains >= 1, n_steps >= 2, repeat >= 1, thin >= 1")
    burn_in = n_steps // 2 if burn_in is None else int(burn_in)
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"burn_in must be in [0, {n_steps - 1}], got {burn_in}")
    return names, burn_in


def run_benchmarks(
    cases=None,
    n_chains: int = DEFAULT_CHAINS,
    n_steps: int = DEFAULT_STEPS,
    repeat: int = 3,
    burn_in: int | None = None,
    thin: int = DEFAULT_THIN,
    bins: int = DEFAULT_BINS,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time simulate, the NumPy reference and the RNG-only loop on each case; return everything.

    Parameters
    ----------
    cases : list of names from :data:`CASES` (default: all)
    n_chains, n_steps : the job, the same for the three codes
    repeat : timed runs of each code per case (best reported), after one untimed warm-up of
        simulate and RNG-only on a small size (compilation / cache load)
    burn_in : default ``n_steps // 2``; thin : default 10; bins : default 100
    log : optional callable receiving progress lines

    Returns
    -------
    dict with ``machine`` (see :func:`machine_info`), ``settings``, ``targets`` and ``cases``:
    per case its model description, the per-repeat seconds of each code, the best rates in
    chain-steps/s, the ratios ``simulate / numpy`` and ``simulate / rng_only``, whether each
    target is met, and the mean losses of simulate and NumPy with their z-score.
    """
    names, burn_in = _check_job(cases, CASES, n_chains, n_steps, repeat, thin, burn_in)
    log = log or (lambda s: None)
    # the JAX column: when jax is installed and the sampled window is whole blocks of thin steps
    use_jax = _bench_jax.available() and (n_steps - burn_in) % thin == 0
    work = n_chains * n_steps
    out = {
        "machine": machine_info(),
        "settings": {
            "n_chains": n_chains,
            "n_steps": n_steps,
            "burn_in": burn_in,
            "thin": thin,
            "bins": bins,
            "repeat": repeat,
            "seed": seed,
            "dtype": "float64",
            "timing": "best of `repeat` warm runs, codes interleaved; rate = n_chains * n_steps / seconds",
            "numpy_threads": "1 (NumPy ufuncs are single-threaded)",
        },
        "cases": {},
    }
    for name in names:
        case = CASES[name]
        model = case.make()
        land, opt, noise, B = model
        edges = [np.linspace(land.box[i, 0], land.box[i, 1], bins + 1) for i in range(land.dim)]
        log(f"[{name}] compiling / loading the kernel ...")
        kern = cpu_kernels.build(land, noise, opt)
        _run_simulate(model, min(n_chains, 4096), min(n_steps, 20), min(burn_in, 10), thin, bins, seed)
        _run_rng_only(kern, min(n_chains, 4096), min(n_steps, 20), seed)
        jax_run = None
        if use_jax and name in _bench_jax.JAX_CASES:
            log(f"[{name}] compiling the JAX code ...")
            jax_run = _bench_jax.prepare(name, land, opt, noise, B, n_chains, n_steps, burn_in, thin, edges, seed)
        t_sim, t_sim1, t_np, t_jax, t_rng = [], [], [], [], []
        sim_res = np_res = jax_res = None
        for r in range(repeat):
            dt, sim_res = _run_simulate(model, n_chains, n_steps, burn_in, thin, bins, seed)
            t_sim.append(dt)
            log(f"[{name}] repeat {r + 1}/{repeat}: simulate {work / dt / 1e6:8.1f} M chain-steps/s")
            if thin != 1:  # the statistics on every step (and the trace on every step)
                t_sim1.append(_run_simulate(model, n_chains, n_steps, burn_in, 1, bins, seed)[0])
                log(f"[{name}] repeat {r + 1}/{repeat}: thin 1   {work / t_sim1[-1] / 1e6:8.1f} M chain-steps/s")
            t = time.perf_counter()
            np_res = case.array_run(ArrayOps("numpy", seed), land, opt, noise, B, n_chains, n_steps, burn_in, thin,
                                    edges)
            t_np.append(time.perf_counter() - t)
            log(f"[{name}] repeat {r + 1}/{repeat}: numpy    {work / t_np[-1] / 1e6:8.1f} M chain-steps/s")
            if jax_run is not None:
                t = time.perf_counter()
                jax_res = jax_run()
                t_jax.append(time.perf_counter() - t)
                log(f"[{name}] repeat {r + 1}/{repeat}: jax      {work / t_jax[-1] / 1e6:8.1f} M chain-steps/s")
            t_rng.append(_run_rng_only(kern, n_chains, n_steps, seed))
            log(f"[{name}] repeat {r + 1}/{repeat}: rng-only {work / t_rng[-1] / 1e6:8.1f} M chain-steps/s")
        rate_sim = work / min(t_sim)
        rate_np = work / min(t_np)
        rate_jax = work / min(t_jax) if t_jax else None
        out["cases"][name] = entry = {
            "title": case.title,
            "landscape": land.describe(),
            "optimizer": opt.describe(),
            "noise": noise.describe(),
            "batch_size": B,
            "dim": land.dim,
            "seconds": {"simulate": t_sim, "simulate_thin1": t_sim1, "numpy": t_np, "jax": t_jax, "rng_only": t_rng},
            "simulate_kernel_rate": sim_res.chain_steps_per_second,
            "targets": {"simulate_over_numpy": case.numpy_target, "simulate_over_rng_only": case.rng_target,
                        "simulate_over_jax": case.jax_target if rate_jax else None,
                        "thin1_over_thin": STATS_TARGET if thin >= 100 else None},
            "check": {
                "simulate_mean_loss": float(sim_res.mean_loss.value),
                "simulate_mean_loss_stderr": float(sim_res.mean_loss.stderr),
                "numpy_mean_loss": float(np_res["mean_loss"]),
                "z": _mean_loss_z(sim_res, np_res),
                "jax_mean_loss": float(jax_res["mean_loss"]) if jax_res else None,
                "z_jax": _mean_loss_z(sim_res, jax_res) if jax_res else None,
                "simulate_samples": sim_res.n_samples,
                "numpy_samples": int(np_res["n_samples"]),
                "simulate_diverged": sim_res.n_diverged,
            },
        }
        _derive(entry, work)
    return out


def _derive(entry: dict, work: int) -> None:
    """The rates (best of the repeats), their ratios and which targets they meet, from the
    seconds of every timed run of a case (so runs merged from several processes are summarised
    the same way)."""
    t = entry["seconds"]
    best = lambda key: work / min(t[key]) if t.get(key) else None
    rate = {"simulate": best("simulate"), "numpy": best("numpy"), "jax": best("jax"), "rng_only": best("rng_only")}
    rate["simulate_thin1"] = best("simulate_thin1") or rate["simulate"]
    tg = entry["targets"]
    entry["rate"] = rate
    entry["simulate_over_numpy"] = rate["simulate"] / rate["numpy"]
    entry["simulate_over_jax"] = rate["simulate"] / rate["jax"] if rate["jax"] else None
    entry["simulate_over_rng_only"] = rate["simulate"] / rate["rng_only"]
    entry["thin1_over_thin"] = rate["simulate_thin1"] / rate["simulate"]
    entry["meets_numpy_target"] = (entry["simulate_over_numpy"] >= tg["simulate_over_numpy"]
                                   if tg["simulate_over_numpy"] else None)
    entry["meets_rng_target"] = entry["simulate_over_rng_only"] >= tg["simulate_over_rng_only"]
    entry["meets_jax_target"] = (entry["simulate_over_jax"] >= tg["simulate_over_jax"]
                                 if (entry["simulate_over_jax"] and tg.get("simulate_over_jax")) else None)
    entry["meets_stats_target"] = (entry["thin1_over_thin"] >= tg["thin1_over_thin"]
                                   if tg.get("thin1_over_thin") else None)


# Instruction sets a benchmark can compile for, as the environment the libraries read when they
# start: "native" is the host's own; "avx2" any x86-64 CPU's AVX2 + FMA code (Haswell's
# features) for Numba, and the same ceiling for the codes it is compared with: NumPy's
# AVX-512 dispatch targets switched off, XLA (JAX) capped at AVX2.
ISA_TARGETS = {
    "native": {},
    "avx2": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
             "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
}


def run_isas(isas, args: list[str], repeat: int, log: Callable[[str], None] | None = None) -> dict:
    """The CPU benchmark for each instruction set in ``isas`` (names of :data:`ISA_TARGETS`),
    each in a process of its own (Numba fixes its target when it starts), interleaved: round
    ``r`` runs every target once with ``--repeat 1``, so a slow spell of the machine hits all of
    them alike; the best of the rounds is reported per code. ``args`` are the other ``gibbs-sgd
    bench`` options. Returns ``{"isas": {name: data}}`` with each ``data`` as
    :func:`run_benchmarks` returns it."""
    import json
    import subprocess
    import sys
    import tempfile

    log = log or (lambda s: None)
    unknown = [i for i in isas if i not in ISA_TARGETS]
    if unknown:
        raise ValueError(f"isa: {unknown} unknown; choose from {list(ISA_TARGETS)}")
    runs = {i: [] for i in isas}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for isa in isas:
                env = {k: v for k, v in os.environ.items() if k not in ISA_TARGETS["avx2"]}
                env.update(ISA_TARGETS[isa])
                path = os.path.join(tmp, f"{isa}-{r}.json")
                log(f"[{isa}] round {r + 1}/{repeat}")
                proc = subprocess.run([sys.executable, "-m", "gibbs_sgd.cli", "bench", *args, "--repeat", "1",
                                       "--quiet", "--json", path], env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"the {isa} benchmark failed:\n{proc.stderr[-3000:]}")
                runs[isa].append(json.loads(open(path).read()))
    out = {"isas": {}}
    for isa, datas in runs.items():
        data = datas[0]
        s = data["settings"]
        work = s["n_chains"] * s["n_steps"]
        s["repeat"] = repeat
        s["timing"] = f"best of {repeat} rounds, one process per instruction set and round, interleaved"
        for name, entry in data["cases"].items():
            for key in entry["seconds"]:
                entry["seconds"][key] = [x for d in datas for x in d["cases"][name]["seconds"][key]]
            _derive(entry, work)
        data.pop("table_markdown", None)
        out["isas"][isa] = data
    return out


def _fmt_rate(r: float) -> str:
    return f"{r / 1e6:.0f} M" if r >= 1e7 else f"{r / 1e6:.1f} M"


def format_table(data: dict) -> str:
    """The benchmark as a markdown table, with the machine, the instruction set and the settings."""
    s = data["settings"]
    m = data["machine"]
    isa = m.get("compiled_for") or {}

    def mark(value, target, ok, fmt):
        if value is None:
            return "-"
        text = fmt(value)
        if target is None:
            return text
        return f"{text} (>= {fmt(target)} " + ("met)" if ok else "**missed**)")

    x = lambda v: f"{v:.1f}x"
    pct = lambda v: f"{v:.0%}"
    lines = [
        f"Chain-steps/s, {s['n_chains']:,} chains x {s['n_steps']} steps ({s['dtype']}, burn-in "
        f"{s['burn_in']}, thin {s['thin']}, {s['bins']} bins), best of {s['repeat']}; kernels compiled for "
        f"**{isa.get('isa', '?')}** ({isa.get('cpu', '?')}"
        + (", target overridden by NUMBA_CPU_NAME / NUMBA_CPU_FEATURES" if isa.get("overridden") else "") + "):",
        "",
        f"| case | simulate | thin 1 | NumPy | JAX | RNG-only | simulate / NumPy | simulate / JAX | simulate / RNG-only "
        f"| thin 1 / thin {s['thin']} | same job? mean L, z |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in data["cases"].values():
        r = c["rate"]
        tg = c["targets"]
        chk = c["check"]
        same = f"{chk['simulate_mean_loss']:.4g} vs {chk['numpy_mean_loss']:.4g}, z = {chk['z']:+.1f}"
        if chk.get("z_jax") is not None:
            same += f"; JAX z = {chk['z_jax']:+.1f}"
        lines.append(
            f"| {c['title']} | {_fmt_rate(r['simulate'])} | {_fmt_rate(r['simulate_thin1'])} | {_fmt_rate(r['numpy'])} "
            f"| {_fmt_rate(r['jax']) if r.get('jax') else '-'} | {_fmt_rate(r['rng_only'])} "
            f"| {mark(c['simulate_over_numpy'], tg['simulate_over_numpy'], c['meets_numpy_target'], x)} "
            f"| {mark(c.get('simulate_over_jax'), tg.get('simulate_over_jax'), c.get('meets_jax_target'), x)} "
            f"| {mark(c['simulate_over_rng_only'], tg['simulate_over_rng_only'], c['meets_rng_target'], pct)} "
            f"| {mark(c.get('thin1_over_thin'), tg.get('thin1_over_thin'), c.get('meets_stats_target'), pct)} "
            f"| {same} |"
        )
    v = m["versions"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['numba_threads']} Numba threads "
        f"(NumPy single-threaded); {m['platform']}.",
        f"Versions: Python {v['python']}, NumPy {v['numpy']}, Numba {v['numba']}"
        + (f", JAX {v['jax']}" if v.get("jax") else ", JAX not installed (no JAX column)")
        + f", gibbs_sgd {v['gibbs_sgd']}"
        + (f" (git {v['gibbs_sgd_git']})" if v.get("gibbs_sgd_git") else "") + "; "
        f"{m['date']}.",
    ]
    return "\n".join(lines)


def format_isa_comparison(data: dict) -> str:
    """Each rate on every instruction set over its rate on the first one (from :func:`run_isas`)."""
    isas = list(data["isas"])
    first = data["isas"][isas[0]]
    name_of = lambda d: (d["machine"].get("compiled_for") or {}).get("isa", "?")
    lines = [f"Rates relative to {isas[0]} ({name_of(first)}), same machine, interleaved rounds:", "",
             "| case | instruction set | simulate | thin 1 | RNG-only |", "|---|---|---:|---:|---:|"]
    for name, c0 in first["cases"].items():
        for isa in isas[1:]:
            c = data["isas"][isa]["cases"][name]
            ratio = lambda k: c["rate"][k] / c0["rate"][k]
            lines.append(f"| {c0['title']} | {isa} ({name_of(data['isas'][isa])}) | {ratio('simulate'):.2f} "
                         f"| {ratio('simulate_thin1'):.2f} | {ratio('rng_only'):.2f} |")
    return "\n".join(lines)


# =========================================================================================
# GPU benchmark
# =========================================================================================
# Cases on the GPU: the CPU cases in float32 (the GPU default), plus 1-D SGD in float64.
CUDA_CASES = {
    "sgd-quadratic": ("sgd-quadratic", np.float32),
    "sgd-quadratic-fp64": ("sgd-quadratic", np.float64),
    "heavyball-doublewell": ("heavyball-doublewell", np.float32),
    "adam-doublewell": ("adam-doublewell", np.float32),
    "sgd-muellerbrown": ("sgd-muellerbrown", np.float32),
}
# Targets on the GPU: simulate >= 70% of the RNG-only kernel in every case; 1-D SGD in
# float32 >= 1e11 chain-steps/s; Adam >= 10x the CuPy array code.
CUDA_RNG_TARGET = 0.70
CUDA_ABSOLUTE_TARGETS = {"sgd-quadratic": 1e11}
CUDA_CUPY_TARGETS = {"adam-doublewell": 10.0}
DEFAULT_CUDA_CHAINS = 2**25
DEFAULT_CUDA_STEPS = 400


def gpu_info() -> dict:
    """The GPU (or the simulator) and the versions of the GPU libraries that are importable."""
    from .kernels import cuda as cuda_kernels

    info = {"device": cuda_kernels.device_name(), "simulator": cuda_kernels.simulator_enabled(), "versions": {}}
    for mod in ("numba_cuda", "cupy", "torch"):
        try:
            info["versions"][mod] = __import__(mod).__version__
        except Exception:
            info["versions"][mod] = None
    return info


def _run_rng_only_cuda(kern, n, steps, seed):
    """Seconds for the CUDA ``rng_only`` kernel over ``n`` chains x ``steps`` (synchronised)."""
    from numba import cuda

    from .kernels.cuda import TPB

    k0, k1 = seed_key(seed)
    out = cuda.device_array(n, np.float64)
    cuda.synchronize()
    t = time.perf_counter()
    kern.rng_only[-(-n // TPB), TPB](np.int64(n), np.int64(0), np.int64(steps), np.int64(0), k0, k1, out)
    cuda.synchronize()
    return time.perf_counter() - t


def array_libraries() -> list[str]:
    """The GPU-capable array libraries (CuPy, PyTorch) importable here."""
    libs = []
    for lib in ("cupy", "torch"):
        try:
            __import__(lib)
            libs.append(lib)
        except Exception:
            pass
    return libs


def run_cuda_benchmarks(
    cases=None,
    n_chains: int = DEFAULT_CUDA_CHAINS,
    n_steps: int = DEFAULT_CUDA_STEPS,
    repeat: int = 3,
    burn_in: int | None = None,
    thin: int = DEFAULT_THIN,
    bins: int = DEFAULT_BINS,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time simulate on the GPU beside CuPy and PyTorch-eager array code and the RNG-only kernel.

    The same job as :func:`run_benchmarks` (same model, burn-in, thinning and statistics),
    with the array code of this module run by CuPy and by PyTorch eager on the GPU (a library
    that is not installed is reported as missing), each code synchronised before its clock
    stops. Rates in chain-steps/s; best of ``repeat`` after an untimed warm-up of each code.
    """
    from .kernels import cuda as cuda_kernels

    if not cuda_kernels.available():
        raise RuntimeError("the CUDA benchmark needs numba-cuda and a GPU (or NUMBA_ENABLE_CUDASIM=1 for a smoke test)")
    names, burn_in = _check_job(cases, CUDA_CASES, n_chains, n_steps, repeat, thin, burn_in)
    log = log or (lambda s: None)
    libs = array_libraries()
    work = n_chains * n_steps
    out = {
        "backend": "cuda",
        "machine": machine_info(),
        "gpu": gpu_info(),
        "settings": {"n_chains": n_chains, "n_steps": n_steps, "burn_in": burn_in, "thin": thin, "bins": bins,
                     "repeat": repeat, "seed": seed,
                     "timing": "best of `repeat` warm runs, codes interleaved, each synchronised; "
                               "rate = n_chains * n_steps / seconds"},
        "codes": ["simulate", "cupy", "torch", "rng_only"],
        "cases": {},
    }
    for name in names:
        base, dtype = CUDA_CASES[name]
        case = CASES[base]
        model = case.make()
        land, opt, noise, B = model
        edges = [np.linspace(land.box[i, 0], land.box[i, 1], bins + 1) for i in range(land.dim)]
        kern = cuda_kernels.build(land, noise, opt, dtype)

        def run_sim(n, steps, b_in):
            t = time.perf_counter()
            res = simulate(land, opt, noise=noise, batch_size=B, n_chains=n, n_steps=steps, burn_in=b_in, thin=thin,
                           bins=bins, seed=seed, backend="cuda", dtype=dtype, trace_points=max(1, steps // thin),
                           progress=False)
            return time.perf_counter() - t, res

        def run_array(lib, n, steps, b_in):
            ops = ArrayOps(lib, seed, dtype)
            ops.sync()
            t = time.perf_counter()
            res = case.array_run(ops, land, opt, noise, B, n, steps, b_in, thin, edges)
            ops.sync()
            return time.perf_counter() - t, res, ops.device

        log(f"[{name}] compiling and warming up ...")
        small = (min(n_chains, 4096), min(n_steps, 20), min(burn_in, 10))
        run_sim(*small)
        _run_rng_only_cuda(kern, small[0], small[1], seed)
        for lib in libs:
            run_array(lib, *small)
        secs = {code: [] for code in out["codes"]}
        results = {}
        devices = {}
        for r in range(repeat):
            dt, results["simulate"] = run_sim(n_chains, n_steps, burn_in)
            secs["simulate"].append(dt)
            for lib in libs:
                dt, results[lib], devices[lib] = run_array(lib, n_chains, n_steps, burn_in)
                secs[lib].append(dt)
            secs["rng_only"].append(_run_rng_only_cuda(kern, n_chains, n_steps, seed))
            log(f"[{name}] repeat {r + 1}/{repeat}: " + ", ".join(
                f"{c} {work / v[-1] / 1e9:.2f} G/s" for c, v in secs.items() if v))
        rate = {c: (work / min(v) if v else None) for c, v in secs.items()}
        sim = results["simulate"]
        ratios = {f"simulate_over_{c}": rate["simulate"] / rate[c] for c in ("cupy", "torch", "rng_only") if rate[c]}
        targets = {"simulate_over_rng_only": CUDA_RNG_TARGET}
        met = {"simulate_over_rng_only": ratios["simulate_over_rng_only"] >= CUDA_RNG_TARGET}
        if name in CUDA_ABSOLUTE_TARGETS:
            targets["simulate_rate"] = CUDA_ABSOLUTE_TARGETS[name]
            met["simulate_rate"] = rate["simulate"] >= CUDA_ABSOLUTE_TARGETS[name]
        if name in CUDA_CUPY_TARGETS:
            targets["simulate_over_cupy"] = CUDA_CUPY_TARGETS[name]
            met["simulate_over_cupy"] = (ratios["simulate_over_cupy"] >= CUDA_CUPY_TARGETS[name]
                                         if "simulate_over_cupy" in ratios else None)
        out["cases"][name] = {
            "title": f"{case.title} ({np.dtype(dtype).name})",
            "dtype": np.dtype(dtype).name,
            "landscape": land.describe(),
            "optimizer": opt.describe(),
            "noise": noise.describe(),
            "batch_size": B,
            "seconds": secs,
            "rate": rate,
            "array_devices": devices,
            "ratios": ratios,
            "targets": targets,
            "met": met,
            "check": {
                "simulate_mean_loss": float(sim.mean_loss.value),
                "simulate_mean_loss_stderr": float(sim.mean_loss.stderr),
                **{f"{lib}_mean_loss": float(results[lib]["mean_loss"]) for lib in libs},
                **{f"{lib}_z": _mean_loss_z(sim, results[lib]) for lib in libs},
                "simulate_diverged": sim.n_diverged,
            },
        }
    return out


def missed_targets(data: dict) -> list[str]:
    """One line per target a benchmark run missed (CPU or GPU)."""
    missed = []
    for name, c in data["cases"].items():
        tg = c["targets"]
        if data.get("backend") == "cuda":
            for key, ok in c["met"].items():
                if ok is False:
                    value = c["rate"]["simulate"] if key == "simulate_rate" else c["ratios"][key]
                    missed.append(f"{name}: {key} = {value:.3g} < {tg[key]:g}")
            continue
        if c["meets_numpy_target"] is False:
            missed.append(f"{name}: simulate/NumPy {c['simulate_over_numpy']:.2f}x < {tg['simulate_over_numpy']:g}x")
        if not c["meets_rng_target"]:
            missed.append(f"{name}: simulate/RNG-only {c['simulate_over_rng_only']:.0%} < "
                          f"{tg['simulate_over_rng_only']:.0%}")
        if c.get("meets_jax_target") is False:
            missed.append(f"{name}: simulate/JAX {c['simulate_over_jax']:.2f}x < {tg['simulate_over_jax']:g}x")
        if c.get("meets_stats_target") is False:
            missed.append(f"{name}: thin 1 / thin {data['settings']['thin']} {c['thin1_over_thin']:.0%} < "
                          f"{tg['thin1_over_thin']:.0%}")
    return missed


def format_cuda_table(data: dict) -> str:
    """The GPU benchmark as a markdown table naming the device."""
    s = data["settings"]

    def rate(r):
        return "missing" if r is None else f"{r / 1e9:.2f} G"

    lines = [
        f"Chain-steps/s on {data['gpu']['device']}, {s['n_chains']:,} chains x {s['n_steps']} steps (burn-in "
        f"{s['burn_in']}, thin {s['thin']}, {s['bins']} bins), best of {s['repeat']}:",
        "",
        "| case | simulate | CuPy | PyTorch eager | RNG-only | simulate / CuPy | simulate / PyTorch "
        "| simulate / RNG-only (>= 70%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in data["cases"].items():
        r, q = c["rate"], c["ratios"]

        def ratio(key, fmt, suffix=""):
            return "-" if key not in q else format(q[key], fmt) + suffix

        rng = ratio("simulate_over_rng_only", ".0%") + (" met" if c["met"]["simulate_over_rng_only"] else " **missed**")
        lines.append(f"| {c['title']} | {rate(r['simulate'])} | {rate(r['cupy'])} | {rate(r['torch'])} "
                     f"| {rate(r['rng_only'])} | {ratio('simulate_over_cupy', '.1f', 'x')} | "
                     f"{ratio('simulate_over_torch', '.1f', 'x')} | {rng} |")
    g = data["gpu"]["versions"]
    m = data["machine"]
    lines += ["", f"Device: {data['gpu']['device']}; numba-cuda {g.get('numba_cuda')}, CuPy {g.get('cupy')}, "
                  f"PyTorch {g.get('torch')}, gibbs_sgd {m['versions']['gibbs_sgd']}"
                  + (f" (git {m['versions']['gibbs_sgd_git']})" if m["versions"].get("gibbs_sgd_git") else "")
                  + f"; {m['date']}."]
    return "\n".join(lines)


def plot_benchmark(data: dict, path) -> None:
    """Bar chart of the rates per case and code (log scale), titled with the machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(data["cases"].values())
    codes = [c for c in (data.get("codes") or ["simulate", "numpy", "rng_only"])
             if any(case["rate"].get(c) for case in cases)]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(cases), 4.2))
    width = 0.8 / len(codes)
    for j, code in enumerate(codes):
        vals = [case["rate"].get(code) or 0.0 for case in cases]
        ax.bar(np.arange(len(cases)) + (j - (len(codes) - 1) / 2) * width, vals, width, label=code)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(cases)))
    ax.set_xticklabels([c["title"] for c in cases], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("chain-steps / s")
    where = data["gpu"]["device"] if data.get("backend") == "cuda" else data["machine"]["cpu"]
    ax.set_title(f"gibbs_sgd benchmark on {where}", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
