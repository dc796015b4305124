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
from . import _checkpoint
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


def _histogram_edges(landscape: Landscape, bins) -> list[np.ndarray]:
    d = landscape.dim
    box = landscape.box
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        nb = _int_arg("bins", bins, 2, 100_000)
        return [np.linspace(box[i, 0], box[i, 1], nb + 1) for i in range(d)]
    try:
        arr = [np.asarray(e, dtype=np.float64) for e in bins]
    except TypeError:
        raise TypeError(f"bins must be an int or bin edges (one array, or one per coordinate), got {bins!r}") from None
    if all(np.ndim(e) == 0 for e in arr):
        arr = [np.asarray(arr, dtype=np.float64)] * d
    if len(arr) != d:
        raise ValueError(f"bins must give edges for all {d} coordinates, got {len(arr)} arrays")
    nbs = {e.shape[0] for e in arr}
    if len(nbs) != 1:
        raise ValueError("bins must have the same number of edges for every coordinate")
    for i, e in enumerate(arr):
        if e.ndim != 1 or e.shape[0] < 3 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ValueError(f"bins[{i}] must be at least 3 increasing finite edges")
        w = np.diff(e)
        if not np.allclose(w, w[0], rtol=1e-9, atol=0):
            raise ValueError(f"bins[{i}] must be uniformly spaced (the kernel bins in O(1))")
        if e[-1] <= box[i, 0] or e[0] >= box[i, 1]:
            raise ValueError(
                f"bins[{i}] covers [{e[0]:g}, {e[-1]:g}], which misses the landscape's box "
                f"[{box[i, 0]:g}, {box[i, 1]:g}] on coordinate {i}"
            )
    return [e.copy() for e in arr]


def _loss_range(landscape: Landscape, edges, loss_range) -> tuple[float, float]:
    if loss_range is not None:
        lo, hi = (float(v) for v in loss_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"loss_range must be (lo, hi) with lo < hi, got {loss_range!r}")
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


def _initial_state(landscape: Landscape, init, n_chains: int) -> np.ndarray:
    d = landscape.dim
    if init is None:
        start = landscape.minimum
        if start is None:
            start = landscape.box.mean(axis=1)
        return np.broadcast_to(np.asarray(start, dtype=np.float64), (n_chains, d))
    arr = np.asarray(init, dtype=np.float64)
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
    dtype=None,
    thin: int = 1,
    bins=100,
    loss_range=None,
    keep_final: bool = False,
    record_trajectories: int = 0,
    trajectory_every: int | None = None,
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
    dtype : float64 or float32, the precision the chain state is stored in; default float64 on
        the CPU and float32 on the GPU
    thin : int >= 1, sample every ``thin``-th step of the window
    bins : int (bins over the landscape's box) or uniform edges (one array, or one per coordinate)
    loss_range : (lo, hi), optional, range of the loss histogram (default: L over the box)
    keep_final : bool, keep the final states (n_chains, d)
    record_trajectories : int >= 0, record the first k chains' trajectories
    trajectory_every : int, default ``thin``; steps between recorded trajectory points
    trace_points : int, about how many steps the mean-loss trace records
    progress : bool, show a progress bar
    max_chunk : int, optional, most chains held in memory at once (default: 512 MiB of state)
    block : int, optional, chains per statistics block (default: about 256 blocks)
    checkpoint : path, optional
        Resumable runs: the state is saved there every ``checkpoint_every`` seconds and when the
        run is interrupted (Ctrl-C stops it at the next kernel-call boundary); calling
        ``simulate`` again with the same arguments resumes from it, to the bitwise-same result
        (on the GPU: the same chains and histograms; moment sums equal up to summation order).
        The file is removed once the run completes.
    checkpoint_every : float, seconds between checkpoints (default 60)

    Returns
    -------
    SimulationResult

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
    edges = _histogram_edges(landscape, bins)
    backend = _resolve_backend(backend, landscape, optimizer, edges[0].shape[0] - 1)
    batch_size = _int_arg("batch_size", batch_size, 1)
    n_chains = _int_arg("n_chains", n_chains, 1)
    n_steps = _int_arg("n_steps", n_steps, 1, 2**32 - 1)
    burn_in = n_steps // 2 if burn_in is None else _int_arg("burn_in", burn_in, 0)
    if burn_in >= n_steps:
        raise ValueError(f"burn_in must be in [0, n_steps - 1] = [0, {n_steps - 1}], got {burn_in}")
    thin = _int_arg("thin", thin, 1)
    key0, key1 = seed_key(seed)
    dt = _resolve_dtype(dtype if dtype is not None else (np.float32 if backend == "cuda" else np.float64))
    k_traj = _int_arg("record_trajectories", record_trajectories, 0, n_chains)
    traj_every = thin if trajectory_every is None else _int_arg("trajectory_every", trajectory_every, 1)
    trace_points = _int_arg("trace_points", trace_points, 1)
    noise.check(landscape, batch_size)
    d = landscape.dim
    loss_lo, loss_hi = _loss_range(landscape, edges, loss_range)
    x_init = _initial_state(landscape, init, n_chains)
    lrs = optimizer.lr * schedule.factors(n_steps)
    coef = np.ascontiguousarray(optimizer.step_coefficients(n_steps), dtype=np.float64)
    block = _block_size(n_chains, block)

    ns = optimizer.n_state
    layout = cpu_kernels.moment_layout(d, ns)
    n_blocks = -(-n_chains // block)
    bytes_per_chain = (d * (1 + ns)) * dt.itemsize + 1
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

    trace_every = max(1, -(-n_steps // trace_points))
    n_trace = -(-n_steps // trace_every)
    n_rec = -(-n_steps // traj_every) if k_traj else 0
    if k_traj * n_rec * d * 8 > _MAX_TRAJECTORY_BYTES:
        raise ValueError(
            f"record_trajectories={k_traj} x {n_rec} points x d={d} needs "
            f"{k_traj * n_rec * d * 8 / 2**30:.1f} GiB; raise trajectory_every or record fewer chains"
        )

    if backend == "cuda":
        kern = cuda_kernels.build(landscape, noise, optimizer, dt)
        where = cuda_kernels.device_name()
    else:
        kern = cpu_kernels.build(landscape, noise, optimizer, batch_size)
        where = f"{numba.get_num_threads()} threads"
    logging.getLogger("gibbs_sgd").info("simulate runs on backend=%r (%s), state in %s", backend, where, dt.name)
    nt = numba.get_num_threads()
    nb = edges[0].shape[0] - 1
    hist1 = np.zeros((n_blocks, d, nb), np.int64)
    if d == 2 and n_blocks * nb * nb * 8 > _JOINT_HIST_BYTES:
        raise ValueError(
            f"bins={nb} in 2-D keeps a joint histogram per block of chains ({n_blocks} blocks x {nb}^2 x 8 bytes = "
            f"{n_blocks * nb * nb * 8 / 2**20:.0f} MiB > {_JOINT_HIST_BYTES / 2**20:.0f} MiB): use fewer bins "
            f"or a larger block"
        )
    hist2 = np.zeros((n_blocks, nb, nb) if d == 2 else (n_blocks, 1, 1), np.int64)
    histL = np.zeros((n_blocks, nb), np.int64)
    hout = np.zeros((n_blocks, d + 1, 2), np.int64)
    moments = np.zeros((n_blocks, layout["n_columns"]))
    trace = np.zeros((n_blocks, n_trace, 2))
    traj = np.full((k_traj, n_rec, d), np.nan) if k_traj else np.zeros((0, 1, d))
    diverged = np.zeros(n_blocks, np.int64)
    final = np.empty((n_chains, d), dt) if keep_final else None
    alive_all = np.empty(n_chains, bool) if keep_final else None

    hlo = np.array([e[0] for e in edges])
    hinv = np.array([(e.shape[0] - 1) / (e[-1] - e[0]) for e in edges])
    hper = np.zeros(d) if landscape.period is None else np.full(d, float(landscape.period))
    lossr = np.array([loss_lo, nb / (loss_hi - loss_lo)])
    pl = np.ascontiguousarray(landscape.kernel_params(), dtype=np.float64)
    pn = np.ascontiguousarray(noise.kernel_params(d, batch_size), dtype=np.float64)
    po = np.ascontiguousarray(optimizer.kernel_params(), dtype=np.float64)
    data = np.ascontiguousarray(noise.kernel_data(), dtype=np.float64)
    center = landscape.box.mean(axis=1)
    bound = float(landscape.divergence_radius)
    scratch = int(noise.scratch_size(d, batch_size))

    acc = {"hist1": hist1, "hist2": hist2, "histL": histL, "hout": hout, "moments": moments, "trace": trace,
           "traj": traj, "diverged": diverged, "final": final, "alive_all": alive_all}
    ckpt_path = None if checkpoint is None else Path(checkpoint)
    tag = None
    resume_pos, resume_chunk = {"chunk_start": 0, "step": 0}, None
    if ckpt_path is not None:
        settings = {
            "landscape": landscape.describe(), "noise": noise.describe(), "optimizer": optimizer.describe(),
            "schedule": schedule.describe(), "batch_size": batch_size, "n_chains": n_chains, "n_steps": n_steps,
            "burn_in": burn_in, "thin": thin, "seed": int(seed), "dtype": dt.name, "block": block, "chunk": chunk,
            "steps_per_call": steps_per_call, "backend": backend, "edges": [e.tolist() for e in edges], "loss": [loss_lo, loss_hi],
            "keep_final": keep_final, "k_traj": k_traj, "traj_every": traj_every, "trace_every": trace_every,
            "version": __version__,
        }
        tag = _checkpoint.fingerprint(settings, np.asarray(x_init))
        if ckpt_path.exists():
            resume_pos, resume_chunk, saved = _checkpoint.load(ckpt_path, tag)
            for k, v in saved.items():
                acc[k][...] = v

    chain_steps_done = resume_pos["chunk_start"] * n_steps + (
        (min(n_chains, resume_pos["chunk_start"] + chunk) - resume_pos["chunk_start"]) * resume_pos["step"]
        if resume_chunk is not None else 0
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_chains * n_steps, initial=chain_steps_done, unit="chain-step", unit_scale=True,
                   desc=f"simulate [{backend}, {where}]", leave=False)
    consts = {"k0": key0, "k1": key1, "lrs": lrs, "coef": coef, "pl": pl, "pn": pn, "data": data, "po": po,
              "batch": batch_size, "burn_in": burn_in, "thin": thin, "block": block, "hlo": hlo, "hinv": hinv,
              "hper": hper, "lossr": lossr, "trace_every": trace_every, "traj_every": traj_every,
              "center": center, "bound": bound, "scratch_size": scratch}
    stats = {"hist1": hist1, "hist2": hist2, "histL": histL, "hout": hout, "moments": moments, "trace": trace,
             "traj": traj}
    engine = (cuda_kernels.Engine if backend == "cuda" else cpu_kernels.Engine)(kern, stats, consts)
    interrupted = False
    chain_steps_run = 0
    t_kernel = time.perf_counter()
    t_saved = t_kernel
    try:
        with _checkpoint.deferred_interrupt() as stop:
            for c_lo in range(resume_pos["chunk_start"], n_chains, chunk):
                c_hi = min(n_chains, c_lo + chunk)
                nc = c_hi - c_lo
                if resume_chunk is not None and c_lo == resume_pos["chunk_start"]:
                    X, S, alive, t_first = resume_chunk["X"], resume_chunk["S"], resume_chunk["alive"], resume_pos["step"]
                else:
                    X = np.array(x_init[c_lo:c_hi], dtype=dt, order="C", copy=True)  # never the user's array
                    S = np.zeros((nc, max(ns * d, 1)), dt)
                    alive = np.ones(nc, np.uint8)
                    t_first = 0
                b_lo, b_hi = c_lo // block, -(-c_hi // block)
                engine.load(X, S, alive)
                t_done = t_first
                for t0 in range(t_first, n_steps, steps_per_call):
                    if stop[0]:
                        break
                    t1 = min(n_steps, t0 + steps_per_call)
                    engine.segment(t0, t1, c_lo, b_lo, b_hi)
                    t_done = t1
                    chain_steps_done += nc * (t1 - t0)
                    chain_steps_run += nc * (t1 - t0)
                    if bar is not None:
                        bar.update(nc * (t1 - t0))
                    if ckpt_path is not None and t1 < n_steps and time.perf_counter() - t_saved > checkpoint_every:
                        engine.store(X, S, alive)
                        engine.sync()
                        _checkpoint.save(ckpt_path, tag, {"chunk_start": c_lo, "step": t1},
                                         {"X": X, "S": S, "alive": alive}, acc)
                        t_saved = time.perf_counter()
                engine.store(X, S, alive)
                if t_done < n_steps:  # stopped inside this chunk
                    interrupted = True
                    engine.sync()
                    if ckpt_path is not None:
                        _checkpoint.save(ckpt_path, tag, {"chunk_start": c_lo, "step": t_done},
                                         {"X": X, "S": S, "alive": alive}, acc)
                dead = alive == 0
                np.add.at(diverged, (np.nonzero(dead)[0] + c_lo) // block, 1)
                if keep_final:
                    final[c_lo:c_hi] = X
                    alive_all[c_lo:c_hi] = ~dead
                if interrupted:
                    break
        engine.sync()
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
    elif ckpt_path is not None and ckpt_path.exists():
        ckpt_path.unlink()  # the run is complete: its result supersedes the checkpoint
    elapsed_kernel = time.perf_counter() - t_kernel

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
            "divergence_radius": bound,
            "trace_every": trace_every,
            "trajectory_every": traj_every,
            "threads": nt,
            "interrupted": interrupted,
            "chain_steps_done": chain_steps_done,
            "resumed_from_checkpoint": resume_chunk is not None or resume_pos["chunk_start"] > 0,
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
        alive=alive_all,
        trajectories=traj if k_traj else None,
        trajectory_steps=np.arange(n_rec) * traj_every if k_traj else None,
        landscape=landscape,
    )
    if result.n_diverged:
        warnings.warn(
            f"{result.n_diverged:,} of {n_chains:,} chains diverged (non-finite or beyond |phi - centre| = "
            f"{bound:g}); they were frozen and excluded from the statistics after diverging",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
