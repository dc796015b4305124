"""CPU benchmark: :func:`gibbs_sgd.simulate` against the NumPy code a user would write instead.

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
    the whole fused step keeps. (It adds each tile's first normal into a per-thread sum so
    that nothing is optimised away; that serial add is a few % of its time.)

(a) and (b) use the same burn-in and thinning: ``burn_in = n_steps // 2`` (simulate's default)
and ``thin = 10`` (samples of a stationary chain ten steps apart are what a user histograms;
sampling every step would measure the statistics code rather than the optimizer). Each
report also checks that (a) and (b) did the same job: their mean losses over the sampling
window must agree within the Monte-Carlo error.

Targets: simulate >= 4x NumPy for the SGD and heavy-ball cases and >= 6x for Adam; simulate >=
85% of the RNG-only rate (80% for Adam).
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

from . import __version__
from .kernels import cpu as cpu_kernels
from .landscapes import DoubleWell, MuellerBrown, Quadratic
from .noise import Gaussian
from .optimizers import SGD, Adam, HeavyBall
from .rng import seed_key
from .simulate import simulate

__all__ = ["CASES", "run_benchmarks", "format_table", "machine_info"]

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
    numpy_run: Callable  # (landscape, optimizer, noise, B, n, steps, burn_in, thin, edges, seed) -> dict
    numpy_target: float | None  # simulate / NumPy target (None: no target for this case)
    rng_target: float  # simulate / RNG-only target


# =========================================================================================
# The NumPy code a user would write (array-at-a-time, one array per coordinate)
# =========================================================================================
class _Stats:
    """Histogram by ``np.bincount`` of computed bin indices, and running sums of L and L^2."""

    def __init__(self, edges):
        self.lo = [float(e[0]) for e in edges]
        self.nb = edges[0].shape[0] - 1
        self.inv = [self.nb / float(e[-1] - e[0]) for e in edges]
        self.hist = [np.zeros(self.nb + 2, np.int64) for _ in edges]  # slot 0: below, nb+1: above
        self.hist2 = np.zeros((self.nb + 2) ** 2, np.int64) if len(edges) == 2 else None
        self.sum_l = 0.0
        self.sum_l2 = 0.0
        self.count = 0

    def add(self, coords, loss):
        idx = []
        for i, x in enumerate(coords):
            k = np.floor((x - self.lo[i]) * self.inv[i])
            np.clip(k, -1, self.nb, out=k)
            k = k.astype(np.intp)
            k += 1
            self.hist[i] += np.bincount(k, minlength=self.nb + 2)
            idx.append(k)
        if self.hist2 is not None:
            flat = idx[0] * (self.nb + 2)
            flat += idx[1]
            self.hist2 += np.bincount(flat, minlength=(self.nb + 2) ** 2)
        self.sum_l += float(loss.sum())
        self.sum_l2 += float(np.dot(loss, loss))
        self.count += loss.shape[0]

    def result(self):
        return {
            "hist": np.stack([h[1:-1] for h in self.hist]),
            "outside": np.array([[h[0], h[-1]] for h in self.hist]),
            "mean_loss": self.sum_l / self.count,
            "mean_loss_sq": self.sum_l2 / self.count,
            "n_samples": self.count,
        }


def _sampled(t, burn_in, thin):
    return t >= burn_in and (t - burn_in) % thin == 0


def _numpy_sgd_quadratic(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    """1-D SGD on ``h/2 (x - c)^2 + L0``: ``x -= lr * (h (x - c) + sigma/sqrt(B) z)``."""
    rng = np.random.default_rng(seed)
    h = float(land.hessian[0, 0])
    c = float(land.center[0])
    l0 = float(land.offset)
    lr = opt.lr
    s = noise.sigma / math.sqrt(B)
    x = np.full(n, float(land.minimum[0]))
    z = np.empty(n)
    g = np.empty(n)
    stats = _Stats(edges)
    for t in range(steps):
        rng.standard_normal(out=z)
        np.subtract(x, c, out=g)
        g *= h
        z *= s
        g += z
        g *= lr
        x -= g
        if _sampled(t, burn_in, thin):
            r = x - c
            stats.add([x], 0.5 * h * r * r + l0)
    return stats.result()


def _noisy_double_well_grad(rng, x, D, a, tau, s, z, u, g):
    """``g = (4 D u (u^2 - 1) + tau) / a + s z`` with ``u = x / a``, in place (z, u: scratch)."""
    rng.standard_normal(out=z)
    np.multiply(x, 1.0 / a, out=u)
    np.multiply(u, u, out=g)
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


def _numpy_heavyball_double_well(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    """Heavy ball (torch.optim.SGD, momentum mu, no dampening) on the tilted double well.

    ``u = x / a``, ``g = (4 D u (u^2 - 1) + tau) / a + sigma/sqrt(B) z``, ``b = mu b + g``
    (``b = g`` at the first step), ``x -= lr * b``.
    """
    if opt.dampening != 0 or opt.nesterov:
        raise ValueError("the NumPy heavy-ball reference implements dampening = 0, nesterov = False")
    rng = np.random.default_rng(seed)
    D, a, tau = land.barrier, land.width, land.tilt
    lr, mu = opt.lr, opt.momentum
    s = noise.sigma / math.sqrt(B)
    x = np.full(n, float(land.minimum[0]))
    b = np.zeros(n)
    z = np.empty(n)
    u = np.empty(n)
    g = np.empty(n)
    stats = _Stats(edges)
    for t in range(steps):
        _noisy_double_well_grad(rng, x, D, a, tau, s, z, u, g)
        if t == 0:
            b[:] = g
        else:
            b *= mu
            b += g
        np.multiply(b, lr, out=g)
        x -= g
        if _sampled(t, burn_in, thin):
            stats.add([x], _double_well_loss(x, D, a, tau))
    return stats.result()


def _mb_constants(land):
    p = land.kernel_params()
    return float(p[0]), p[1:5], p[5:9], p[9:13], p[13:17], p[17:21], p[21:25]


def _numpy_mb_loss(x, y, consts):
    scale, A, a, b, c, x0, y0 = consts
    out = np.zeros_like(x)
    for i in range(4):
        dx = x - x0[i]
        dy = y - y0[i]
        out += A[i] * np.exp(a[i] * dx * dx + b[i] * dx * dy + c[i] * dy * dy)
    out *= scale
    return out


def _numpy_sgd_mueller_brown(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    """2-D SGD on the Mueller-Brown surface: the four Gaussian terms' gradients summed per step."""
    rng = np.random.default_rng(seed)
    consts = _mb_constants(land)
    scale, A, a, b, c, x0, y0 = consts
    lr = opt.lr
    s = noise.sigma / math.sqrt(B)
    x = np.full(n, float(land.minimum[0]))
    y = np.full(n, float(land.minimum[1]))
    z = np.empty((2, n))
    gx = np.empty(n)
    gy = np.empty(n)
    stats = _Stats(edges)
    for t in range(steps):
        rng.standard_normal(out=z)
        gx[:] = 0.0
        gy[:] = 0.0
        for i in range(4):
            dx = x - x0[i]
            dy = y - y0[i]
            e = np.exp(a[i] * dx * dx + b[i] * dx * dy + c[i] * dy * dy)
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
            stats.add([x, y], _numpy_mb_loss(x, y, consts))
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


def _numpy_adam_double_well(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    """torch.optim.Adam's update, array-at-a-time, on the tilted double well."""
    if opt.amsgrad or opt.bias_correction != "torch":
        raise ValueError("the NumPy Adam reference implements torch's bias correction without amsgrad")
    rng = np.random.default_rng(seed)
    D, a, tau = land.barrier, land.width, land.tilt
    b1, b2 = opt.betas
    s = noise.sigma / math.sqrt(B)
    x = np.full(n, float(land.minimum[0]))
    m = np.zeros(n)
    v = np.zeros(n)
    z = np.empty(n)
    u = np.empty(n)
    g = np.empty(n)
    stats = _Stats(edges)
    for t in range(steps):
        _noisy_double_well_grad(rng, x, D, a, tau, s, z, u, g)
        m *= b1
        m += (1.0 - b1) * g
        g *= g
        v *= b2
        v += (1.0 - b2) * g
        k = t + 1
        step = opt.lr / (1.0 - b1**k)
        np.sqrt(v, out=u)
        u *= 1.0 / math.sqrt(1.0 - b2**k)
        u += opt.eps
        np.divide(m, u, out=g)
        g *= step
        x -= g
        if _sampled(t, burn_in, thin):
            stats.add([x], _double_well_loss(x, D, a, tau))
    return stats.result()


CASES = {
    "sgd-quadratic": Case("sgd-quadratic", "1-D SGD, quadratic", _make_sgd_quadratic, _numpy_sgd_quadratic, 4.0, 0.85),
    "heavyball-doublewell": Case("heavyball-doublewell", "heavy ball (mu = 0.9), double well",
                                 _make_heavyball_double_well, _numpy_heavyball_double_well, 4.0, 0.85),
    "adam-doublewell": Case("adam-doublewell", "Adam, double well", _make_adam_double_well, _numpy_adam_double_well,
                            6.0, 0.80),
    "sgd-muellerbrown": Case("sgd-muellerbrown", "2-D SGD, Mueller-Brown", _make_sgd_mueller_brown,
                             _numpy_sgd_mueller_brown, None, 0.85),
}


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
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
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
    args = (np.int64(n), np.int64(0), np.int64(steps), np.int64(0), k0, k1, out)
    t = time.perf_counter()
    cpu_kernels.parallel_call(kern.rng_only, nt, *args)
    return time.perf_counter() - t


def _mean_loss_z(sim, ref) -> float:
    """(simulate - NumPy) mean loss over the sampling window, in units of simulate's stderr x sqrt(2)."""
    est = sim.mean_loss
    se = float(est.stderr) * math.sqrt(2.0)
    return (float(est.value) - ref["mean_loss"]) / se if se > 0 else math.nan


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
    names = list(CASES) if cases is None else list(cases)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    if n_chains < 1 or n_steps < 2 or repeat < 1 or thin < 1:
        raise ValueError("need n_chains >= 1, n_steps >= 2, repeat >= 1, thin >= 1")
    burn_in = n_steps // 2 if burn_in is None else int(burn_in)
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"burn_in must be in [0, {n_steps - 1}], got {burn_in}")
    log = log or (lambda s: None)
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
        t_sim, t_np, t_rng = [], [], []
        sim_res = np_res = None
        for r in range(repeat):
            dt, sim_res = _run_simulate(model, n_chains, n_steps, burn_in, thin, bins, seed)
            t_sim.append(dt)
            log(f"[{name}] repeat {r + 1}/{repeat}: simulate {work / dt / 1e6:8.1f} M chain-steps/s")
            t = time.perf_counter()
            np_res = case.numpy_run(land, opt, noise, B, n_chains, n_steps, burn_in, thin, edges, seed)
            t_np.append(time.perf_counter() - t)
            log(f"[{name}] repeat {r + 1}/{repeat}: numpy    {work / t_np[-1] / 1e6:8.1f} M chain-steps/s")
            t_rng.append(_run_rng_only(kern, n_chains, n_steps, seed))
            log(f"[{name}] repeat {r + 1}/{repeat}: rng-only {work / t_rng[-1] / 1e6:8.1f} M chain-steps/s")
        rate_sim = work / min(t_sim)
        rate_np = work / min(t_np)
        rate_rng = work / min(t_rng)
        vs_np = rate_sim / rate_np
        vs_rng = rate_sim / rate_rng
        out["cases"][name] = {
            "title": case.title,
            "landscape": land.describe(),
            "optimizer": opt.describe(),
            "noise": noise.describe(),
            "batch_size": B,
            "dim": land.dim,
            "seconds": {"simulate": t_sim, "numpy": t_np, "rng_only": t_rng},
            "rate": {"simulate": rate_sim, "numpy": rate_np, "rng_only": rate_rng},
            "simulate_kernel_rate": sim_res.chain_steps_per_second,
            "simulate_over_numpy": vs_np,
            "simulate_over_rng_only": vs_rng,
            "targets": {"simulate_over_numpy": case.numpy_target, "simulate_over_rng_only": case.rng_target},
            "meets_numpy_target": (vs_np >= case.numpy_target) if case.numpy_target else None,
            "meets_rng_target": vs_rng >= case.rng_target,
            "check": {
                "simulate_mean_loss": float(sim_res.mean_loss.value),
                "simulate_mean_loss_stderr": float(sim_res.mean_loss.stderr),
                "numpy_mean_loss": float(np_res["mean_loss"]),
                "z": _mean_loss_z(sim_res, np_res),
                "simulate_samples": sim_res.n_samples,
                "numpy_samples": int(np_res["n_samples"]),
                "simulate_diverged": sim_res.n_diverged,
            },
        }
    return out


def _fmt_rate(r: float) -> str:
    return f"{r / 1e6:.0f} M" if r >= 1e7 else f"{r / 1e6:.1f} M"


def format_table(data: dict) -> str:
    """The benchmark as a markdown table, with the machine and settings underneath."""
    s = data["settings"]
    lines = [
        f"Chain-steps/s, {s['n_chains']:,} chains x {s['n_steps']} steps ({s['dtype']}, burn-in "
        f"{s['burn_in']}, thin {s['thin']}, {s['bins']} bins), best of {s['repeat']}:",
        "",
        "| case | simulate | NumPy | RNG-only | simulate / NumPy (target) | simulate / RNG-only (target) "
        "| same job? mean L, z |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in data["cases"].values():
        r = c["rate"]
        tg = c["targets"]
        if tg["simulate_over_numpy"]:
            np_mark = f">= {tg['simulate_over_numpy']:g}x " + ("met" if c["meets_numpy_target"] else "**missed**")
        else:
            np_mark = "no target"
        rng_mark = f">= {tg['simulate_over_rng_only']:.0%} " + ("met" if c["meets_rng_target"] else "**missed**")
        chk = c["check"]
        lines.append(
            f"| {c['title']} | {_fmt_rate(r['simulate'])} | {_fmt_rate(r['numpy'])} | {_fmt_rate(r['rng_only'])} "
            f"| {c['simulate_over_numpy']:.1f}x ({np_mark}) | {c['simulate_over_rng_only']:.0%} ({rng_mark}) "
            f"| {chk['simulate_mean_loss']:.4g} vs {chk['numpy_mean_loss']:.4g}, z = {chk['z']:+.1f} |"
        )
    m = data["machine"]
    v = m["versions"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['numba_threads']} Numba threads "
        f"(NumPy single-threaded); {m['platform']}.",
        f"Versions: Python {v['python']}, NumPy {v['numpy']}, Numba {v['numba']}, gibbs_sgd {v['gibbs_sgd']}"
        + (f" (git {v['gibbs_sgd_git']})" if v.get("gibbs_sgd_git") else "") + "; "
        f"{m['date']}.",
    ]
    return "\n".join(lines)
