"""`simulate`: run many independent optimizer chains and accumulate their stationary statistics."""
from __future__ import annotations

import logging
import math
import numbers
import platform
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from . import __version__
from .kernels import cpu as cpu_kernels
from .kernels import cuda as cuda_kernels
from .landscapes import Landscape
from .noise import Gaussian, Noise
from .optimizers import Optimizer
from .result import SimulationResult
from . import _bins, _checkpoint
from .rng import seed_key
from .schedules import Constant, Schedule

__all__ = ["simulate", "available_backends"]

# Statistics blocks: chain-to-chain standard errors come from the scatter of per-block means.
# 256 blocks give a relative error of the standard error of 1/sqrt(2*255) = 4.4%, while the
# per-block moment rows stay small (256 x a few hundred floats).
_TARGET_BLOCKS = 256
# Chain-steps per kernel call: about 0.1 s of work at 2e8 chain-steps/s, so the progress bar
# moves and Ctrl-C is answered promptly while the per-call overhead (~0.1 ms) stays < 0.1%.
# At least 16 steps per call, so that with 10^8 chains the chain state (read and written once
# per call) is not streamed through memory every step. The segment length depends on n_chains
# and n_steps only -- never on the chunking -- so the order of every floating-point sum, and
# hence the result, is bitwise the same however the chains are chunked.
_STEPS_PER_CALL_BUDGET = 2**24
_MIN_STEPS_PER_CALL = 16
# State memory per chunk of chains (positions, optimizer state, alive flags).
_CHUNK_BYTES = 512 * 2**20
# Largest recorded-trajectory array we allocate without being asked twice.
_MAX_TRAJECTORY_BYTES = 2 * 2**30
_DTYPES = {"float64": np.float64, "float32": np.float32}
# The 2-D joint histogram is kept per block (its block scatter gives the goodness-of-fit test's
# design effect): at the default 100 bins and ~256 blocks that is 20 MiB.
_JOINT_HIST_BYTES = 512 * 2**20


def available_backends() -> list[str]:
    """Backends usable in this process: ``"cpu"`` always, ``"cuda"`` with numba-cuda and a GPU
    (or numba-cuda's simulator, ``NUMBA_ENABLE_CUDASIM=1``)."""
    return ["cpu"] + (["cuda"] if cuda_kernels.available() else [])


def _resolve_backend(backend, landscape, optimizer, bins) -> str:
    if backend == "auto":
        # the simulator is for testing: "auto" takes a real GPU only, and only for a run it can do
        if not cuda_kernels.gpu_available():
            return "cpu"
        why = cuda_kernels.problems(landscape, optimizer, bins)
        if why:
            logging.getLogger("gibbs_sgd").info("simulate: backend 'auto' uses the CPU: %s", "; ".join(why))
            return "cpu"
        return "cuda"
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        if not cuda_kernels.available():
            why = ("numba-cuda is not installed (pip install 'gibbs_sgd[gpu]')" if cuda_kernels._cuda_module() is None
                   else "no usable CUDA GPU was found")
            raise RuntimeError(f"backend='cuda' is not available here: {why}")
        why = cuda_kernels.problems(landscape, optimizer, bins)
        if why:
            raise ValueError("this run cannot use backend='cuda': " + "; ".join(why))
        return "cuda"
    raise ValueError(f"backend must be one of 'auto', 'cpu', 'cuda' (available here: {available_backends()}), "
                     f"got {backend!r}")


def _int_arg(name, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, inf)"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return value


def _resolve_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return dt


def _bin_count(bins):
    """The bin count when ``bins`` is an int, else None (explicit edges)."""
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        return _int_arg("bins", bins, 2, 100_000)
    if isinstance(bins, str):
        raise TypeError(f"bins must be an int (a bin count) or uniform bin edges, got {bins!r}")
    return None


def _hist_range(landscape: Landscape, hist_range):
    """``"auto"``, ``"box"`` or a validated (d, 2) array of per-coordinate ranges."""
    if isinstance(hist_range, str):
        if hist_range not in ("auto", "box"):
            raise ValueError(f"hist_range must be 'auto', 'box' or (lo, hi) per coordinate, got {hist_range!r}")
        return hist_range
    d = landscape.dim
    try:
        r = np.asarray(hist_range, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"hist_range must be 'auto', 'box' or (lo, hi) per coordinate, got {hist_range!r}") from None
    if r.shape == (2,):
        r = np.broadcast_to(r, (d, 2))
    if r.shape != (d, 2) or not np.all(np.isfinite(r)) or np.any(r[:, 1] <= r[:, 0]):
        raise ValueError(f"hist_range must be (lo, hi) with finite lo < hi, one pair or one per coordinate "
                         f"(shape ({d}, 2)), got {hist_range!r}")
    return r


def _histogram_edges(landscape: Landscape, bins, hist_range="box") -> list[np.ndarray]:
    """Edges for an explicit ``bins`` array, or ``bins`` uniform bins over ``hist_range`` (the
    landscape's box or given ranges; ``"auto"`` is resolved later, from the pilot chains, and
    gets the box here as a placeholder)."""
    d = landscape.dim
    box = landscape.box
    nb = _bin_count(bins)
    if nb is not None:
        rng = box if isinstance(hist_range, str) else hist_range
        return [np.linspace(rng[i, 0], rng[i, 1], nb + 1) for i in range(d)]
    try:
        arr = [np.asarray(e, dtype=np.float64) for e in bins]
    except (TypeError, ValueError):
        raise TypeError(f"bins must be an int or bin edges (one array, or one per coordinate), got {bins!r}") from None
    if all(np.ndim(e) == 0 for e in arr):
        arr = [np.asarray(arr, dtype=np.float64)] * d
    if len(arr) != d:
        raise ValueError(f"bins must give edges for all {d} coordinates, got {len(arr)} arrays")
    nbs = {e.shape[0] if e.ndim == 1 else -1 for e in arr}
    if len(nbs) != 1:
        raise ValueError("bins must have the same number of edges for every coordinate")
    for i, e in enumerate(arr):
        if e.ndim != 1 or e.shape[0] < 3 or e.shape[0] > 100_001 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ValueError(f"bins[{i}] must be 3 to 100001 increasing finite edges")
        w = np.diff(e)
        if not np.allclose(w, w[0], rtol=1e-9, atol=0):
            raise ValueError(f"bins[{i}] must be uniformly spaced (the kernel bins in O(1))")
        if landscape.period is not None and e[-1] - e[0] > landscape.period * (1 + 1e-12):
            raise ValueError(f"bins[{i}] spans {e[-1] - e[0]:g}, more than the period {landscape.period:g} "
                             "its coordinate is folded onto")
    return [e.copy() for e in arr]


def _loss_range(landscape: Landscape, edges, loss_range) -> tuple[float, float]:
    if loss_range is not None:
        try:
            lo, hi = (float(v) for v in loss_range)
        except (TypeError, ValueError):
            raise TypeError(f"loss_range must be a pair (lo, hi), got {loss_range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"loss_range must be (lo, hi) with finite lo < hi, got {loss_range!r}")
        return lo, hi
    d = landscape.dim
    if d <= 2:
        axes = [np.linspace(e[0], e[-1], 201) for e in edges]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    else:
        rng = np.random.default_rng(0)
        pts = rng.uniform([e[0] for e in edges], [e[-1] for e in edges], size=(20_000, d))
    vals = landscape.loss(pts)
    vals = vals[np.isfinite(vals)]
    lo, hi = float(vals.min()), float(vals.max())
    if landscape.minimum is not None:
        lo = min(lo, float(landscape.loss(np.asarray(landscape.minimum))))
    return lo, (hi if hi > lo else lo + 1.0)


def _segments(n_steps: int, steps_per_call: int, burn_in: int) -> list[tuple[int, int]]:
    """The kernel calls' step ranges: every ``steps_per_call`` steps and at ``burn_in`` (where the
    histogram range is fixed from the pilot). They depend on the run's settings only, never on
    the chunking, so every floating-point sum is added in the same order however it is chunked."""
    cuts = sorted(set(range(0, n_steps, steps_per_call)) | {burn_in} | {n_steps})
    return list(zip(cuts[:-1], cuts[1:]))


def _initial_state(landscape: Landscape, init, n_chains: int) -> np.ndarray:
    d = landscape.dim
    if init is None:
        start = landscape.minimum
        if start is None:
            start = landscape.box.mean(axis=1)
        return np.broadcast_to(np.asarray(start, dtype=np.float64), (n_chains, d))
    try:
        arr = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"init must be an array of numbers of shape ({d},) or (n_chains, {d}), got "
                        f"{type(init).__name__} {init!r:.60}") from None
    if arr.ndim == 0 and d == 1:
        arr = arr.reshape(1)
    if arr.shape == (d,):
        arr = np.broadcast_to(arr, (n_chains, d))
    elif arr.shape == (n_chains,) and d == 1:
        arr = arr.reshape(n_chains, 1)
    elif arr.shape != (n_chains, d):
        raise ValueError(f"init must have shape ({d},) or ({n_chains}, {d}) (n_chains, dim), got {np.shape(init)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("init must be finite")
    return arr


def _block_size(n_chains: int, block) -> int:
    if block is not None:
        return _int_arg("block", block, 1, n_chains)
    b = -(-n_chains // _TARGET_BLOCKS)
    if b > cpu_kernels.TILE:
        b = -(-b // cpu_kernels.TILE) * cpu_kernels.TILE
    return b


def simulate(
    landscape: Landscape,
    optimizer: Optimizer,
    *,
    noise: Noise | None = None,
    batch_size: int = 1,
    n_chains: int = 100_000,
    n_steps: int = 10_000,
    burn_in: int | None = None,
    seed: int = 0,
    backend: str = "auto",
    init=None,
    schedule: Schedule | None = None,
    dtype=np.float64,
    thin: int = 1,
    bins=100,
    hist_range="auto",
    loss_range=None,
    keep_final: bool = False,
    record_trajectories: int = 0,
    trajectory_every: int | None = None,
    trajectory_state: bool = False,
    trace_points: int = 1000,
    progress: bool = True,
    max_chunk: int | None = None,
    block: int | None = None,
    checkpoint=None,
    checkpoint_every: float = 60.0,
) -> SimulationResult:
    r"""Run ``n_chains`` independent chains of ``optimizer`` on ``landscape`` with minibatch ``noise``.

    Each chain takes ``n_steps`` steps :math:`\Phi \leftarrow \text{update}(\Phi, \hat g)` with
    :math:`\hat g` the minibatch gradient of ``noise`` at batch size ``B``. From step
    ``burn_in`` on, every ``thin``-th state is histogrammed and its moments accumulated inside
    the kernel; nothing per step leaves it.

    Parameters
    ----------
    landscape : gibbs_sgd.landscapes.Landscape
    optimizer : gibbs_sgd.optimizers.Optimizer
    noise : gibbs_sgd.noise.Noise, default ``Gaussian(sigma=1)``
    batch_size : int >= 1, ``B``
    n_chains : int >= 1 (up to 10**8 and more: chains are processed in chunks)
    n_steps : int >= 1, steps per chain (< 2**32)
    burn_in : int in [0, n_steps), default ``n_steps // 2``; steps discarded before sampling
    seed : int in [0, 2**64); chain ``i``'s random stream depends on ``(seed, i, step)`` only
    backend : ``"auto"`` (a CUDA GPU when one is usable, else the CPU; ``result.config["backend"]``
        and ``["device"]`` say which ran, as does the ``gibbs_sgd`` logger at INFO level),
        ``"cpu"`` or ``"cuda"``
    init : array (d,) or (n_chains, d), default the landscape's minimum (or the box centre)
    schedule : gibbs_sgd.schedules.Schedule, default constant
    dtype : float64 (default, on every backend: one physics on every machine) or float32 (opt-in:
        faster on GPUs, but a float32 state stalls once ``lr * gradient`` falls below its
        resolution), the precision the chain state is stored in
    thin : int >= 1, sample every ``thin``-th step of the window
    bins : int (a bin count, default 100) or uniform edges (one array, or one per coordinate)
    hist_range : where ``bins`` bins lie when ``bins`` is a count. ``"auto"`` (default): from the
        spread of the first 16384 chains at the end of burn-in (see :mod:`gibbs_sgd._bins`), so
        the histograms resolve the stationary law at any temperature; ``"box"``: the
        landscape's box; or ``(lo, hi)`` (one pair, or one per coordinate)
    loss_range : (lo, hi), optional, range of the loss histogram (default: from the pilot chains
        with ``hist_range="auto"``, else L over the histogram box)
    keep_final : bool, keep the final positions (``result.final``, (n_chains, d)) and optimizer
        states (``result.final_state``, (n_chains, n_state * d), state variable k of coordinate
        i in column ``k * d + i``, names in ``result.state_names[1:]``)
    record_trajectories : int >= 0, record the first k chains' trajectories
    trajectory_every : int, default ``thin``; steps between recorded trajectory points
    trajectory_state : bool, the trajectories also record the optimizer state (their last axis
        is then ``d + n_state * d``: phi, then the state as in ``final_state``)
    trace_points : int, about how many steps the mean-loss trace records
    progress : bool, show a progress bar
    max_chunk : int, optional, most chains held in memory at once (default: 512 MiB of state)
    block : int, optional, chains per statistics block (default: about 256 blocks)
    checkpoint : path, optional
        Resumable runs. The state is saved there every ``checkpoint_every`` seconds, when the run
        is interrupted (Ctrl-C stops it at the next kernel-call boundary) and when it completes.
        Calling ``simulate`` again with the same arguments resumes from it, to the bitwise-same
        result (on the GPU: the same chains and histograms; moment sums equal up to summation
        order), or, once the run is complete, returns its result at once. The file is kept
        until you delete it (so a process that dies after ``simulate`` returns loses nothing);
        a checkpoint written by different settings, or unreadable, is refused with a message
        naming the file. Its folder is checked before any work is done.
    checkpoint_every : float > 0, seconds between checkpoints (default 60)

    Returns
    -------
    SimulationResult

    Notes
    -----
    Divergence: a chain whose state becomes non-finite or leaves the landscape's divergence
    radius is frozen and counted in ``result.diverged``. Its samples from *before* it left are
    kept out of every statistic too: the blocks of chains holding a diverged chain are run
    again with it masked from step 0 (the streams are counter-based, so every other chain
    repeats its trajectory bit for bit). The statistics therefore describe the chains that
    never diverged; the rerun costs at most one more pass over those blocks.

    Example
    -------
    >>> import gibbs_sgd as gs
    >>> run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1),
    ...                   n_chains=1000, n_steps=200, progress=False)
    >>> run.n_diverged
    0
    """
    t_start = time.perf_counter()
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape must be a gibbs_sgd.landscapes.Landscape, got {type(landscape).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a gibbs_sgd.optimizers.Optimizer, got {type(optimizer).__name__}")
    noise = Gaussian(1.0) if noise is None else noise
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a gibbs_sgd.noise.Noise, got {type(noise).__name__}")
    schedule = Constant() if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a gibbs_sgd.schedules.Schedule, got {type(schedule).__name__}")
    for name, flag in (("keep_final", keep_final), ("progress", progress), ("trajectory_state", trajectory_state)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    every = f"checkpoint_every must be a number of seconds in (0, inf), got {checkpoint_every!r}"
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, numbers.Real):
        raise TypeError(every)
    if not (math.isfinite(checkpoint_every) and checkpoint_every > 0):
        raise ValueError(every)
    hist_range = _hist_range(landscape, hist_range)
    auto_range = isinstance(hist_range, str) and hist_range == "auto" and _bin_count(bins) is not None
    edges = _histogram_edges(landscape, bins, hist_range)
    backend = _resolve_backend(backend, landscape, optimizer, edges[0].shape[0] - 1)
    batch_size = _int_arg("batch_size", batch_size, 1, 2**53)  # a float64 holds it exactly
    n_chains = _int_arg("n_chains", n_chains, 1)
    n_steps = _int_arg("n_steps", n_steps, 1, 2**32 - 1)
    burn_in = n_steps // 2 if burn_in is None else _int_arg("burn_in", burn_in, 0)
    if burn_in >= n_steps:
        raise ValueError(f"burn_in must be in [0, n_steps - 1] = [0, {n_steps - 1}], got {burn_in}")
    thin = _int_arg("thin", thin, 1)
    key0, key1 = seed_key(seed)
    dt = _resolve_dtype(dtype)
    k_traj = _int_arg("record_trajectories", record_trajectories, 0, n_chains)
    traj_every = thin if trajectory_every is None else _int_arg("trajectory_every", trajectory_every, 1)
    trace_points = _int_arg("trace_points", trace_points, 1)
    noise.check(landscape, batch_size)
    d = landscape.dim
    auto_loss = auto_range and loss_range is None
    loss_lo, loss_hi = _loss_range(landscape, edges, loss_range)
    x_init = _initial_state(landscape, init, n_chains)
    lrs = optimizer.lr * schedule.factors(n_steps)
    coef = np.ascontiguousarray(optimizer.step_coefficients(n_steps), dtype=np.float64)
    block = _block_size(n_chains, block)
    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None:
        _checkpoint.check_location(ckpt_path)  # before any work: a bad folder is found now

    ns = optimizer.n_state
    layout = cpu_kernels.moment_layout(d, ns)
    n_blocks = -(-n_chains // block)
    # every per-chain array of a chunk: position, optimizer state (at least one column), alive flag
    bytes_per_chain = (d + max(ns * d, 1)) * dt.itemsize + 1
    if backend == "cuda":  # the GPU also holds each chain's noise scratch (a CPU thread keeps one)
        bytes_per_chain += 8 * max(1, int(noise.scratch_size(d, batch_size)))
    chunk = max_chunk if max_chunk is not None else max(1, _CHUNK_BYTES // bytes_per_chain)
    chunk = _int_arg("max_chunk", chunk, 1)
    chunk = max(block, (chunk // block) * block)
    if backend == "cuda":
        steps_per_call = min(n_steps, cuda_kernels.MAX_STEPS_PER_CALL,
                             max(_MIN_STEPS_PER_CALL, cuda_kernels.STEPS_PER_CALL_BUDGET // n_chains))
    else:
        steps_per_call = min(n_steps, max(_MIN_STEPS_PER_CALL, _STEPS_PER_CALL_BUDGET // n_chains))
    segments = _segments(n_steps, steps_per_call, burn_in)

    trace_every = max(1, -(-n_steps // trace_points))
    n_trace = -(-n_steps // trace_every)
    n_rec = -(-n_steps // traj_every) if k_traj else 0
    traj_cols = d + (optimizer.n_state * d if trajectory_state else 0)
    if k_traj * n_rec * traj_cols * 8 > _MAX_TRAJECTORY_BYTES:
        raise ValueError(
            f"record_trajectories={k_traj} x {n_rec} points x {traj_cols} columns needs "
            f"{k_traj * n_rec * traj_cols * 8 / 2**30:.1f} GiB; raise trajectory_every or record fewer chains"
        )

    if backend == "cuda":
        kern = cuda_kernels.build(landscape, noise, optimizer, dt)
        where = cuda_kernels.device_name()
    else:
        kern = cpu_kernels.build(landscape, noise, optimizer, batch_size)
        where = f"{numba.get_num_threads()} threads"
    Engine = cuda_kernels.Engine if backend == "cuda" else cpu_kernels.Engine
    logging.getLogger("gibbs_sgd").info("simulate runs on backend=%r (%s), state in %s", backend, where, dt.name)
    nt = numba.get_num_threads()
    nb = edges[0].shape[0] - 1
    if d == 2 and n_blocks * nb * nb * 8 > _JOINT_HIST_BYTES:
        raise ValueError(
            f"bins={nb} in 2-D keeps a joint histogram per block of chains ({n_blocks} blocks x {nb}^2 x 8 bytes = "
            f"{n_blocks * nb * nb * 8 / 2**20:.0f} MiB > {_JOINT_HIST_BYTES / 2**20:.0f} MiB): use fewer bins "
            f"or a larger block"
        )

    def statistics(n_blk: int, k: int) -> dict:
        return {
            "hist1": np.zeros((n_blk, d, nb), np.int64),
            "hist2": np.zeros((n_blk, nb, nb) if d == 2 else (n_blk, 1, 1), np.int64),
            "histL": np.zeros((n_blk, nb), np.int64),
            "hout": np.zeros((n_blk, d + 1, 2), np.int64),
            "moments": np.zeros((n_blk, layout["n_columns"])),
            "trace": np.zeros((n_blk, n_trace, 2)),
            "traj": np.full((k, n_rec, traj_cols), np.nan) if k else np.zeros((0, 1, d)),
        }

    stats = statistics(n_blocks, k_traj)
    diverged = np.zeros(n_blocks, np.int64)
    final = np.empty((n_chains, d), dt) if keep_final else None
    final_state = np.empty((n_chains, ns * d), dt) if keep_final else None
    alive_all = np.empty(n_chains, bool) if keep_final else None

    hper = np.zeros(d) if landscape.period is None else np.full(d, float(landscape.period))
    pl = np.ascontiguousarray(landscape.kernel_params(), dtype=np.float64)
    pn = np.ascontiguousarray(noise.kernel_params(d, batch_size), dtype=np.float64)
    po = np.ascontiguousarray(optimizer.kernel_params(), dtype=np.float64)
    data = np.ascontiguousarray(noise.kernel_data(), dtype=np.float64)
    center = landscape.box.mean(axis=1)
    bound = float(landscape.divergence_radius)
    scratch = int(noise.scratch_size(d, batch_size))
    n_pilot = min(n_chains, _bins.PILOT_CHAINS)
    range_rule = {"bins": nb, "hist_range": hist_range if isinstance(hist_range, str) else "given",
                  "loss_range": "pilot" if auto_loss else ("given" if loss_range is not None else "box")}

    def binning_consts(edges_, loss_lo_, loss_hi_) -> dict:
        return {"hlo": np.array([e[0] for e in edges_]),
                "hinv": np.array([(e.shape[0] - 1) / (e[-1] - e[0]) for e in edges_]),
                "lossr": np.array([loss_lo_, nb / (loss_hi_ - loss_lo_)])}

    acc = {**stats, "diverged": diverged, "final": final, "final_state": final_state, "alive_all": alive_all}
    tag = None
    position = {"chunk_start": 0, "step": 0}
    resume_chunk = None
    range_fixed = not auto_range
    if ckpt_path is not None:
        settings = {
            "landscape": landscape.describe(), "noise": noise.describe(), "optimizer": optimizer.describe(),
            "schedule": schedule.describe(), "batch_size": batch_size, "n_chains": n_chains, "n_steps": n_steps,
            "burn_in": burn_in, "thin": thin, "seed": int(seed), "dtype": dt.name, "block": block, "chunk": chunk,
            "steps_per_call": steps_per_call, "backend": backend, "edges": [e.tolist() for e in edges],
            "loss": [loss_lo, loss_hi], "range_rule": range_rule, "keep_final": keep_final, "k_traj": k_traj, "traj_cols": traj_cols,
            "traj_every": traj_every, "trace_every": trace_every, "version": __version__,
        }
        tag = _checkpoint.fingerprint(settings, np.asarray(x_init))
        if ckpt_path.exists():
            acc_spec = {k: (None if v is None else (v.shape, v.dtype)) for k, v in acc.items()}

            def state_spec(nc):
                return {"X": ((nc, d), dt), "S": ((nc, max(ns * d, 1)), dt), "alive": ((nc,), np.dtype(np.uint8))}

            position, resume_chunk, saved = _checkpoint.load(ckpt_path, tag, n_chains=n_chains, n_steps=n_steps,
                                                             chunk=chunk, acc_spec=acc_spec, state_spec=state_spec)
            for k, v in saved.items():
                acc[k][...] = v
            if not resume_chunk:
                resume_chunk = None
            if "edges" in position:  # the range the pilot fixed before the checkpoint
                edges = [np.asarray(e, dtype=np.float64) for e in position["edges"]]
                loss_lo, loss_hi = (float(v) for v in position["loss_range"])
                range_rule.update(position.get("range_rule", {}))
                range_fixed = True

    consts = {"k0": key0, "k1": key1, "lrs": lrs, "coef": coef, "pl": pl, "pn": pn, "data": data, "po": po,
              "batch": batch_size, "burn_in": burn_in, "thin": thin, "block": block, "hper": hper,
              "trace_every": trace_every, "traj_every": traj_every, "center": center, "bound": bound,
              "scratch_size": scratch, **binning_consts(edges, loss_lo, loss_hi)}
    engine = Engine(kern, stats, consts)

    def fix_range(X_pilot, alive_pilot):
        """The histogram and loss ranges from the pilot chains' states at the end of burn-in."""
        nonlocal edges, loss_lo, loss_hi, range_fixed
        live = np.asarray(X_pilot, dtype=np.float64)[np.asarray(alive_pilot) != 0]
        edges, how = _bins.coordinate_edges(landscape, live, nb)
        range_rule["coordinates"] = how
        range_rule["pilot_chains"] = int(live.shape[0])
        if auto_loss:
            rng = _bins.loss_range(landscape, landscape.loss(live) if live.shape[0] else np.zeros(0), nb)
            if rng is None:
                loss_lo, loss_hi = _loss_range(landscape, edges, None)
                range_rule["loss_range"] = "box (the pilot losses have no spread)"
            else:
                loss_lo, loss_hi = rng
        engine.set_consts(binning_consts(edges, loss_lo, loss_hi))
        range_fixed = True

    def pilot_states():
        """The pilot chains at step ``burn_in``, run on their own (when the first chunk is smaller)."""
        n_blk = -(-n_pilot // block)
        pilot_engine = Engine(kern, statistics(n_blk, 0), consts)
        Xp = np.array(x_init[:n_pilot], dtype=dt, order="C", copy=True)
        Sp = np.zeros((n_pilot, max(ns * d, 1)), dt)
        ap = np.ones(n_pilot, np.uint8)
        pilot_engine.load(Xp, Sp, ap)
        for t0, t1 in segments:
            if t0 >= burn_in:
                break
            pilot_engine.segment(t0, t1, 0, 0, n_blk)
        pilot_engine.store(Xp, Sp, ap)
        return Xp, ap

    def rerun_without(dead_idx, c_lo, X, S, alive):
        """Run the blocks holding diverged chains again from step 0 with those chains masked, so
        not one of their samples stays in any statistic (reuses the chunk's arrays)."""
        blocks = np.unique((dead_idx + c_lo) // block)
        groups = np.split(blocks, np.nonzero(np.diff(blocks) > 1)[0] + 1)
        for grp in groups:
            b_lo, b_hi = int(grp[0]), int(grp[-1]) + 1
            a, b = b_lo * block - c_lo, min(X.shape[0], b_hi * block - c_lo)
            engine.zero_blocks(b_lo, b_hi)
            X[a:b] = x_init[c_lo + a:c_lo + b]
            S[a:b] = 0
            alive[a:b] = 1
            alive[dead_idx[(dead_idx >= a) & (dead_idx < b)]] = 0
            if not alive[a:b].any():
                continue  # nothing survives in these blocks: their cleared statistics are the answer
            engine.load(X[a:b], S[a:b], alive[a:b])
            for t0, t1 in segments:
                engine.segment(t0, t1, c_lo + a, b_lo, b_hi)

    resumed = resume_chunk is not None or position["chunk_start"] > 0
    already_complete = position["chunk_start"] >= n_chains
    chain_steps_done = position["chunk_start"] * n_steps + (
        (min(n_chains, position["chunk_start"] + chunk) - position["chunk_start"]) * position["step"]
        if resume_chunk is not None else 0
    )
    if not range_fixed and chunk < n_pilot:
        fix_range(*pilot_states())

    def save_checkpoint(pos, chunk_state):
        engine.sync()
        extra = {"edges": [e.tolist() for e in edges], "loss_range": [loss_lo, loss_hi],
                 "range_rule": range_rule} if range_fixed else {}
        _checkpoint.save(ckpt_path, tag, {**pos, **extra}, chunk_state, acc)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_chains * n_steps, initial=chain_steps_done, unit="chain-step", unit_scale=True,
                   desc=f"simulate [{backend}, {where}]", leave=False)
    interrupted = False
    reran_blocks = 0
    chain_steps_run = 0
    t_kernel = time.perf_counter()
    t_saved = t_kernel
    try:
        with _checkpoint.deferred_interrupt() as stop:
            for c_lo in range(position["chunk_start"], n_chains, chunk):
                c_hi = min(n_chains, c_lo + chunk)
                nc = c_hi - c_lo
                if resume_chunk is not None and c_lo == position["chunk_start"]:
                    X, S, alive, t_first = resume_chunk["X"], resume_chunk["S"], resume_chunk["alive"], position["step"]
                else:
                    X = np.array(x_init[c_lo:c_hi], dtype=dt, order="C", copy=True)  # never the user's array
                    S = np.zeros((nc, max(ns * d, 1)), dt)
                    alive = np.ones(nc, np.uint8)
                    t_first = 0
                b_lo, b_hi = c_lo // block, -(-c_hi // block)
                engine.load(X, S, alive)
                t_done = t_first
                for t0, t1 in segments:
                    if t0 < t_first:
                        continue
                    if stop[0]:
                        break
                    if not range_fixed and t0 == burn_in:  # the pilot is this chunk's first chains
                        engine.store(X, S, alive)
                        fix_range(X[:n_pilot], alive[:n_pilot])
                    engine.segment(t0, t1, c_lo, b_lo, b_hi)
                    t_done = t1
                    chain_steps_done += nc * (t1 - t0)
                    chain_steps_run += nc * (t1 - t0)
                    if bar is not None:
                        bar.update(nc * (t1 - t0))
                    if ckpt_path is not None and t1 < n_steps and time.perf_counter() - t_saved > checkpoint_every:
                        engine.store(X, S, alive)
                        save_checkpoint({"chunk_start": c_lo, "step": t1}, {"X": X, "S": S, "alive": alive})
                        t_saved = time.perf_counter()
                engine.store(X, S, alive)
                if t_done < n_steps:  # stopped inside this chunk
                    interrupted = True
                    if ckpt_path is not None:
                        save_checkpoint({"chunk_start": c_lo, "step": t_done}, {"X": X, "S": S, "alive": alive})
                dead = alive == 0
                np.add.at(diverged, (np.nonzero(dead)[0] + c_lo) // block, 1)
                if keep_final:
                    final[c_lo:c_hi] = X
                    final_state[c_lo:c_hi] = S[:, :ns * d]
                    alive_all[c_lo:c_hi] = ~dead
                if interrupted:
                    break
                if dead.any():
                    dead_idx = np.nonzero(dead)[0]
                    reran_blocks += int(np.unique((dead_idx + c_lo) // block).size)
                    rerun_without(dead_idx, c_lo, X, S, alive)
                # free this chunk's state before the next one is allocated (peak: one chunk)
                engine.unload()
                X = S = alive = dead = resume_chunk = None
            engine.sync()
            if ckpt_path is not None and not interrupted and not already_complete:
                save_checkpoint({"chunk_start": n_chains, "step": 0}, {})  # complete: kept until deleted
    finally:
        if bar is not None:
            bar.close()
    if interrupted:
        how = f"; rerun the same call to resume from {ckpt_path}" if ckpt_path is not None else (
            "; pass checkpoint=PATH to be able to resume")
        warnings.warn(
            f"simulate interrupted after {chain_steps_done:,} of {n_chains * n_steps:,} chain-steps; the result "
            f"holds the statistics gathered so far (result.complete is False){how}",
            RuntimeWarning,
            stacklevel=2,
        )
    elapsed_kernel = time.perf_counter() - t_kernel
    hist1, hist2, histL, hout = stats["hist1"], stats["hist2"], stats["histL"], stats["hout"]
    moments, trace, traj = stats["moments"], stats["trace"], stats["traj"]

    result = SimulationResult(
        config={
            "landscape": landscape.describe(),
            "noise": noise.describe(),
            "optimizer": optimizer.describe(),
            "schedule": schedule.describe(),
            "state_names": list(optimizer.state_names),
            "dim": d,
            "batch_size": batch_size,
            "n_chains": n_chains,
            "n_steps": n_steps,
            "burn_in": burn_in,
            "thin": thin,
            "seed": int(seed),
            "backend": backend,
            "device": where if backend == "cuda" else platform.processor() or platform.machine(),
            "dtype": dt.name,
            "block": block,
            "max_chunk": chunk,
            "loss_range": [loss_lo, loss_hi],
            "hist_range_rule": range_rule,
            "divergence_radius": bound,
            "diverged_blocks_rerun": reran_blocks,
            "trace_every": trace_every,
            "trajectory_every": traj_every,
            "threads": nt,
            "interrupted": interrupted,
            "chain_steps_done": chain_steps_done,
            "chain_steps_run": chain_steps_run,
            "resumed_from_checkpoint": resumed,
            "checkpoint": None if ckpt_path is None else str(ckpt_path),
            "elapsed_seconds": time.perf_counter() - t_start,
            "kernel_seconds": elapsed_kernel,
            "chain_steps_per_second": chain_steps_run / elapsed_kernel if elapsed_kernel > 0 else math.nan,
            "versions": {
                "gibbs_sgd": __version__,
                "numpy": np.__version__,
                "numba": numba.__version__,
                "python": platform.python_version(),
            },
            "machine": platform.platform(),
        },
        hist_edges=edges,
        hist=hist1.sum(axis=0),
        hist2d=hist2.sum(axis=0) if d == 2 else None,
        loss_edges=np.linspace(loss_lo, loss_hi, nb + 1),
        loss_hist=histL.sum(axis=0),
        outside=hout.sum(axis=0),
        block_hist=hist1,
        block_hist2d=hist2 if d == 2 else None,
        block_loss_hist=histL,
        block_outside=hout,
        moments=moments,
        block_chains=np.minimum(block, n_chains - np.arange(n_blocks) * block).astype(np.int64),
        diverged=diverged,
        trace_steps=np.arange(n_trace) * trace_every,
        trace=trace,
        final=final,
        final_state=final_state,
        alive=alive_all,
        trajectories=traj if k_traj else None,
        trajectory_steps=np.arange(n_rec) * traj_every if k_traj else None,
        landscape=landscape,
    )
    if result.n_diverged:
        warnings.warn(
            f"{result.n_diverged:,} of {n_chains:,} chains diverged (non-finite or beyond |phi - centre| = "
            f"{bound:g}); they were frozen, and their blocks ({reran_blocks} of {n_blocks}) were run again without "
            f"them, so none of their samples is in the statistics",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
