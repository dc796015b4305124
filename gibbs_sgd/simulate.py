"""`simulate`: run many independent optimizer chains and accumulate their stationary statistics."""
from __future__ import annotations

import dataclasses
import functools
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
from .kernels.common import moment_layout
from .landscapes import Landscape, check_int
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


def _resolve_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return dt


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
        return check_int("block", block, 1, n_chains)
    b = -(-n_chains // _TARGET_BLOCKS)
    if b > cpu_kernels.TILE:
        b = -(-b // cpu_kernels.TILE) * cpu_kernels.TILE
    return b



# --- the run in phases: plan -> compile and allocate -> resume -> run the segments -> assemble ---
#
# ``RunPlan`` is the one description of a run: every field that decides its result. The
# checkpoint fingerprint, the checkpoint's saved settings and ``result.config`` are all built
# from ``RunPlan.describe()``, so a setting added to the plan enters every one of them.


@dataclasses.dataclass(frozen=True, eq=False)
class RunPlan:
    """A validated run: what was asked for and what follows from it (sizes, ranges, segments).

    Every field decides the result, and :meth:`describe` hands every one of them on, except
    the few marked ``runtime`` (where the result is kept, how it is reported: none changes a
    number) and ``init`` (hashed by value into the fingerprint, too large for a description).
    """

    landscape: Landscape
    noise: Noise
    optimizer: Optimizer
    schedule: Schedule
    batch_size: int
    n_chains: int
    n_steps: int
    burn_in: int
    thin: int
    seed: int
    dtype: str
    backend: str
    block: int
    max_chunk: int
    steps_per_call: int
    bins: int
    initial_edges: tuple
    initial_loss_range: tuple
    range_request: dict
    keep_final: bool
    record_trajectories: int
    trajectory_every: int
    trajectory_columns: int
    trace_every: int
    divergence_radius: float
    version: str
    init: np.ndarray = dataclasses.field(metadata={"runtime": True})
    checkpoint: Path | None = dataclasses.field(metadata={"runtime": True})
    checkpoint_every: float = dataclasses.field(metadata={"runtime": True})
    progress: bool = dataclasses.field(metadata={"runtime": True})

    @classmethod
    def identity_fields(cls) -> list[str]:
        """The fields that decide the result (all but the ``runtime`` ones)."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("runtime")]

    def describe(self) -> dict:
        """The run as JSON-ready values: models by their ``describe()``, arrays as lists."""
        out = {}
        for name in self.identity_fields():
            v = getattr(self, name)
            if hasattr(v, "describe"):
                v = v.describe()
            elif name == "initial_edges":
                v = [e.tolist() for e in v]
            elif isinstance(v, tuple):
                v = list(v)
            out[name] = v
        return out

    @functools.cached_property
    def fingerprint(self) -> str:
        """The checkpoint tag: the description and every value of ``init`` (hashed once)."""
        return _checkpoint.fingerprint(self.describe(), np.asarray(self.init))

    # derived sizes
    @property
    def dim(self) -> int:
        return self.landscape.dim

    @property
    def n_state(self) -> int:
        return self.optimizer.n_state

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def n_blocks(self) -> int:
        return -(-self.n_chains // self.block)

    @property
    def n_trace(self) -> int:
        return -(-self.n_steps // self.trace_every)

    @property
    def n_records(self) -> int:
        return -(-self.n_steps // self.trajectory_every) if self.record_trajectories else 0

    @property
    def segments(self) -> list[tuple[int, int]]:
        return _segments(self.n_steps, self.steps_per_call, self.burn_in)

    @property
    def n_pilot(self) -> int:
        return min(self.n_chains, _bins.PILOT_CHAINS)

    @property
    def state_columns(self) -> int:
        return max(self.n_state * self.dim, 1)


def plan_run(landscape, optimizer, *, noise, batch_size, n_chains, n_steps, burn_in, seed, backend, init,
             schedule, dtype, thin, bins, hist_range, loss_range, keep_final, record_trajectories,
             trajectory_every, trajectory_state, trace_points, progress, max_chunk, block, checkpoint,
             checkpoint_every) -> RunPlan:
    """Phase 1: validate every argument (an error names it and its allowed range) and derive the
    run's sizes, segments and initial histogram ranges. Nothing is compiled or allocated."""
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
    hist_range = _bins.hist_range_arg(landscape, hist_range)
    auto_range = isinstance(hist_range, str) and hist_range == "auto" and _bins.bin_count(bins) is not None
    edges = _bins.histogram_edges(landscape, bins, hist_range)
    nb = edges[0].shape[0] - 1
    backend = _resolve_backend(backend, landscape, optimizer, nb)
    batch_size = check_int("batch_size", batch_size, 1, 2**53)  # a float64 holds it exactly
    n_chains = check_int("n_chains", n_chains, 1)
    n_steps = check_int("n_steps", n_steps, 1, 2**32 - 1)
    burn_in = n_steps // 2 if burn_in is None else check_int("burn_in", burn_in, 0)
    if burn_in >= n_steps:
        raise ValueError(f"burn_in must be in [0, n_steps - 1] = [0, {n_steps - 1}], got {burn_in}")
    thin = check_int("thin", thin, 1)
    seed_key(seed)  # validates the seed
    dt = _resolve_dtype(dtype)
    k_traj = check_int("record_trajectories", record_trajectories, 0, n_chains)
    traj_every = thin if trajectory_every is None else check_int("trajectory_every", trajectory_every, 1)
    trace_points = check_int("trace_points", trace_points, 1)
    noise.check(landscape, batch_size)
    d = landscape.dim
    auto_loss = auto_range and loss_range is None
    loss_lo, loss_hi = _bins.loss_range_arg(landscape, edges, loss_range)
    x_init = _initial_state(landscape, init, n_chains)
    block = _block_size(n_chains, block)
    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None:
        _checkpoint.check_location(ckpt_path)  # before any work: a bad folder is found now

    ns = optimizer.n_state
    # every per-chain array of a chunk: position, optimizer state (at least one column), alive flag
    bytes_per_chain = (d + max(ns * d, 1)) * dt.itemsize + 1
    if backend == "cuda":  # the GPU also holds each chain's noise scratch (a CPU thread keeps one)
        bytes_per_chain += 8 * max(1, int(noise.scratch_size(d, batch_size)))
    chunk = max_chunk if max_chunk is not None else max(1, _CHUNK_BYTES // bytes_per_chain)
    chunk = check_int("max_chunk", chunk, 1)
    chunk = max(block, (chunk // block) * block)
    if backend == "cuda":
        steps_per_call = min(n_steps, cuda_kernels.MAX_STEPS_PER_CALL,
                             max(_MIN_STEPS_PER_CALL, cuda_kernels.STEPS_PER_CALL_BUDGET // n_chains))
    else:
        steps_per_call = min(n_steps, max(_MIN_STEPS_PER_CALL, _STEPS_PER_CALL_BUDGET // n_chains))

    trace_every = max(1, -(-n_steps // trace_points))
    n_rec = -(-n_steps // traj_every) if k_traj else 0
    traj_cols = d + (ns * d if trajectory_state else 0)
    if k_traj * n_rec * traj_cols * 8 > _MAX_TRAJECTORY_BYTES:
        raise ValueError(
            f"record_trajectories={k_traj} x {n_rec} points x {traj_cols} columns needs "
            f"{k_traj * n_rec * traj_cols * 8 / 2**30:.1f} GiB; raise trajectory_every or record fewer chains"
        )
    n_blocks = -(-n_chains // block)
    if d == 2 and n_blocks * nb * nb * 8 > _JOINT_HIST_BYTES:
        raise ValueError(
            f"bins={nb} in 2-D keeps a joint histogram per block of chains ({n_blocks} blocks x {nb}^2 x 8 bytes = "
            f"{n_blocks * nb * nb * 8 / 2**20:.0f} MiB > {_JOINT_HIST_BYTES / 2**20:.0f} MiB): use fewer bins "
            f"or a larger block"
        )
    hist_how = ("edges given" if _bins.bin_count(bins) is None else hist_range if isinstance(hist_range, str)
                else "given")
    range_request = {"bins": nb, "hist_range": hist_how,
                     "loss_range": "pilot" if auto_loss else ("given" if loss_range is not None else "box")}
    return RunPlan(
        landscape=landscape, noise=noise, optimizer=optimizer, schedule=schedule, batch_size=batch_size,
        n_chains=n_chains, n_steps=n_steps, burn_in=burn_in, thin=thin, seed=int(seed), dtype=dt.name,
        backend=backend, block=block, max_chunk=chunk, steps_per_call=steps_per_call, bins=nb,
        initial_edges=tuple(edges), initial_loss_range=(loss_lo, loss_hi), range_request=range_request,
        keep_final=bool(keep_final), record_trajectories=k_traj, trajectory_every=traj_every,
        trajectory_columns=traj_cols, trace_every=trace_every,
        divergence_radius=float(landscape.divergence_radius), version=__version__,
        init=x_init, checkpoint=ckpt_path, checkpoint_every=float(checkpoint_every), progress=bool(progress),
    )


@dataclasses.dataclass
class Binning:
    """The histogram ranges in force: the plan's until the pilot chains fix them (``fixed``)."""

    edges: list
    loss_lo: float
    loss_hi: float
    rule: dict
    fixed: bool

    @classmethod
    def initial(cls, plan: RunPlan) -> Binning:
        auto = plan.range_request["hist_range"] == "auto"  # (a bin count over the pilot's range)
        return cls(edges=list(plan.initial_edges), loss_lo=plan.initial_loss_range[0],
                   loss_hi=plan.initial_loss_range[1], rule=dict(plan.range_request), fixed=not auto)

    def kernel_constants(self) -> dict:
        nb = self.edges[0].shape[0] - 1
        return {"hlo": np.array([e[0] for e in self.edges]),
                "hinv": np.array([(e.shape[0] - 1) / (e[-1] - e[0]) for e in self.edges]),
                "lossr": np.array([self.loss_lo, nb / (self.loss_hi - self.loss_lo)])}

    def saved(self) -> dict:
        """What a checkpoint keeps of it (once fixed: a resumed run must not fix it again)."""
        if not self.fixed:
            return {}
        return {"edges": [e.tolist() for e in self.edges], "loss_range": [self.loss_lo, self.loss_hi],
                "range_rule": self.rule}

    def restore(self, position: dict) -> None:
        if "edges" in position:
            self.edges = [np.asarray(e, dtype=np.float64) for e in position["edges"]]
            self.loss_lo, self.loss_hi = (float(v) for v in position["loss_range"])
            self.rule.update(position.get("range_rule", {}))
            self.fixed = True

    def fix_from_pilot(self, plan: RunPlan, X_pilot, alive_pilot) -> None:
        """The histogram and loss ranges from the pilot chains' states at the end of burn-in."""
        landscape, nb = plan.landscape, plan.bins
        live = np.asarray(X_pilot, dtype=np.float64)[np.asarray(alive_pilot) != 0]
        self.edges, how = _bins.coordinate_edges(landscape, live, nb)
        self.rule["coordinates"] = how
        self.rule["pilot_chains"] = int(live.shape[0])
        if plan.range_request["loss_range"] == "pilot":
            rng = _bins.loss_range(landscape, landscape.loss(live) if live.shape[0] else np.zeros(0), nb)
            if rng is None:
                self.loss_lo, self.loss_hi = _bins.loss_range_arg(landscape, self.edges, None)
                self.rule["loss_range"] = "box (the pilot losses have no spread)"
            else:
                self.loss_lo, self.loss_hi = rng
        self.fixed = True


def _statistics(plan: RunPlan, n_blocks: int, k_traj: int) -> dict:
    """The kernel's statistics arrays, per block of chains (and the recorded trajectories)."""
    d, nb = plan.dim, plan.bins
    return {
        "hist1": np.zeros((n_blocks, d, nb), np.int64),
        "hist2": np.zeros((n_blocks, nb, nb) if d == 2 else (n_blocks, 1, 1), np.int64),
        "histL": np.zeros((n_blocks, nb), np.int64),
        "hout": np.zeros((n_blocks, d + 1, 2), np.int64),
        "moments": np.zeros((n_blocks, moment_layout(d, plan.n_state)["n_columns"])),
        "trace": np.zeros((n_blocks, plan.n_trace, 2)),
        "traj": (np.full((k_traj, plan.n_records, plan.trajectory_columns), np.nan) if k_traj
                 else np.zeros((0, 1, d))),
    }


@dataclasses.dataclass
class Accumulators:
    """Everything the run adds to: the kernel's statistics, divergence counts, final states."""

    stats: dict
    diverged: np.ndarray
    final: np.ndarray | None
    final_state: np.ndarray | None
    alive: np.ndarray | None

    @classmethod
    def allocate(cls, plan: RunPlan) -> Accumulators:
        n, d, dt = plan.n_chains, plan.dim, plan.np_dtype
        keep = plan.keep_final
        return cls(stats=_statistics(plan, plan.n_blocks, plan.record_trajectories),
                   diverged=np.zeros(plan.n_blocks, np.int64),
                   final=np.empty((n, d), dt) if keep else None,
                   final_state=np.empty((n, plan.n_state * d), dt) if keep else None,
                   alive=np.empty(n, bool) if keep else None)

    def arrays(self) -> dict:
        """By name, as a checkpoint saves them (``None`` for what is not kept)."""
        return {**self.stats, "diverged": self.diverged, "final": self.final, "final_state": self.final_state,
                "alive_all": self.alive}


@dataclasses.dataclass
class Position:
    """Where the run is: the first chain of the chunk in progress and the step it reached."""

    chunk_start: int = 0
    step: int = 0
    chunk_state: dict | None = None  # the chunk's X, S, alive when resuming inside it
    resumed: bool = False


def _state_arrays(plan: RunPlan, c_lo: int, c_hi: int):
    """A chunk's fresh state: positions from ``init`` (a copy, never the user's array), zero
    optimizer state, every chain alive."""
    nc = c_hi - c_lo
    X = np.array(plan.init[c_lo:c_hi], dtype=plan.np_dtype, order="C", copy=True)
    S = np.zeros((nc, plan.state_columns), plan.np_dtype)
    return X, S, np.ones(nc, np.uint8)


def resume(plan: RunPlan, acc: Accumulators, binning: Binning) -> Position:
    """Phase 3: from the checkpoint, if one exists for this very run (else from the start)."""
    if plan.checkpoint is None or not plan.checkpoint.exists():
        return Position()
    d, dt = plan.dim, plan.np_dtype
    arrays = acc.arrays()
    acc_spec = {k: (None if v is None else (v.shape, v.dtype)) for k, v in arrays.items()}

    def state_spec(nc):
        return {"X": ((nc, d), dt), "S": ((nc, plan.state_columns), dt), "alive": ((nc,), np.dtype(np.uint8))}

    position, chunk_state, saved = _checkpoint.load(plan.checkpoint, plan.fingerprint, n_chains=plan.n_chains,
                                                    n_steps=plan.n_steps, chunk=plan.max_chunk, acc_spec=acc_spec,
                                                    state_spec=state_spec)
    for k, v in saved.items():
        arrays[k][...] = v
    binning.restore(position)  # the range the pilot fixed before the checkpoint
    return Position(chunk_start=int(position["chunk_start"]), step=int(position["step"]),
                    chunk_state=chunk_state or None,
                    resumed=bool(chunk_state) or int(position["chunk_start"]) > 0)


@dataclasses.dataclass
class Outcome:
    """How the run went: what it did, what it met, how long it took."""

    interrupted: bool = False
    chain_steps_done: int = 0
    chain_steps_run: int = 0
    reran_blocks: int = 0
    kernel_seconds: float = 0.0


class _Runner:
    """Phase 4: the chunks of chains through the kernel's segments, with checkpoints, the pilot
    that fixes the histogram range, and the rerun of blocks that held a diverged chain."""

    def __init__(self, plan: RunPlan, acc: Accumulators, binning: Binning):
        self.plan, self.acc, self.binning = plan, acc, binning
        p = plan
        d, ns = p.dim, p.n_state
        if p.backend == "cuda":
            self.kern = cuda_kernels.build(p.landscape, p.noise, p.optimizer, p.np_dtype)
            self.where = cuda_kernels.device_name()
        else:
            self.kern = cpu_kernels.build(p.landscape, p.noise, p.optimizer, p.batch_size)
            self.where = f"{numba.get_num_threads()} threads"
        self.Engine = cuda_kernels.Engine if p.backend == "cuda" else cpu_kernels.Engine
        logging.getLogger("gibbs_sgd").info("simulate runs on backend=%r (%s), state in %s", p.backend,
                                            self.where, p.dtype)
        key0, key1 = seed_key(p.seed)
        self.consts = {
            "k0": key0, "k1": key1, "lrs": p.optimizer.lr * p.schedule.factors(p.n_steps),
            "coef": np.ascontiguousarray(p.optimizer.step_coefficients(p.n_steps), dtype=np.float64),
            "pl": np.ascontiguousarray(p.landscape.kernel_params(), dtype=np.float64),
            "pn": np.ascontiguousarray(p.noise.kernel_params(d, p.batch_size), dtype=np.float64),
            "data": np.ascontiguousarray(p.noise.kernel_data(), dtype=np.float64),
            "po": np.ascontiguousarray(p.optimizer.kernel_params(), dtype=np.float64),
            "batch": p.batch_size, "burn_in": p.burn_in, "thin": p.thin, "block": p.block,
            "hper": np.zeros(d) if p.landscape.period is None else np.full(d, float(p.landscape.period)),
            "trace_every": p.trace_every, "traj_every": p.trajectory_every,
            "center": p.landscape.box.mean(axis=1), "bound": p.divergence_radius,
            "scratch_size": int(p.noise.scratch_size(d, p.batch_size)),
        }
        self.engine = None
        self.ns_d = ns * d

    def start(self) -> None:
        self.engine = self.Engine(self.kern, self.acc.stats, {**self.consts, **self.binning.kernel_constants()})

    def fix_range(self, X_pilot, alive_pilot) -> None:
        self.binning.fix_from_pilot(self.plan, X_pilot, alive_pilot)
        self.engine.set_consts(self.binning.kernel_constants())

    def pilot_states(self):
        """The pilot chains at step ``burn_in``, run on their own (when the first chunk is smaller)."""
        p = self.plan
        n_blk = -(-p.n_pilot // p.block)
        pilot_engine = self.Engine(self.kern, _statistics(p, n_blk, 0),
                                   {**self.consts, **self.binning.kernel_constants()})
        Xp, Sp, ap = _state_arrays(p, 0, p.n_pilot)
        pilot_engine.load(Xp, Sp, ap)
        for t0, t1 in p.segments:
            if t0 >= p.burn_in:
                break
            pilot_engine.segment(t0, t1, 0, 0, n_blk)
        pilot_engine.store(Xp, Sp, ap)
        return Xp, ap

    def rerun_without(self, dead_idx, c_lo, X, S, alive) -> None:
        """Run the blocks holding diverged chains again from step 0 with those chains masked, so
        not one of their samples stays in any statistic (reuses the chunk's arrays)."""
        p, engine = self.plan, self.engine
        block = p.block
        blocks = np.unique((dead_idx + c_lo) // block)
        groups = np.split(blocks, np.nonzero(np.diff(blocks) > 1)[0] + 1)
        for grp in groups:
            b_lo, b_hi = int(grp[0]), int(grp[-1]) + 1
            a, b = b_lo * block - c_lo, min(X.shape[0], b_hi * block - c_lo)
            engine.zero_blocks(b_lo, b_hi)
            X[a:b] = p.init[c_lo + a:c_lo + b]
            S[a:b] = 0
            alive[a:b] = 1
            alive[dead_idx[(dead_idx >= a) & (dead_idx < b)]] = 0
            if not alive[a:b].any():
                continue  # nothing survives in these blocks: their cleared statistics are the answer
            engine.load(X[a:b], S[a:b], alive[a:b])
            for t0, t1 in p.segments:
                engine.segment(t0, t1, c_lo + a, b_lo, b_hi)

    def save_checkpoint(self, chunk_start: int, step: int, chunk_state: dict) -> None:
        self.engine.sync()
        _checkpoint.save(self.plan.checkpoint, self.plan.fingerprint,
                         {"chunk_start": chunk_start, "step": step, **self.binning.saved()}, chunk_state,
                         self.acc.arrays())

    def run(self, position: Position) -> Outcome:
        p, acc, engine = self.plan, self.acc, self.engine
        n_chains, n_steps, chunk, block = p.n_chains, p.n_steps, p.max_chunk, p.block
        ns_d = self.ns_d
        out = Outcome()
        already_complete = position.chunk_start >= n_chains
        resume_chunk = position.chunk_state
        out.chain_steps_done = position.chunk_start * n_steps + (
            (min(n_chains, position.chunk_start + chunk) - position.chunk_start) * position.step
            if resume_chunk is not None else 0
        )
        if not self.binning.fixed and chunk < p.n_pilot:
            self.fix_range(*self.pilot_states())
        bar = None
        if p.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_chains * n_steps, initial=out.chain_steps_done, unit="chain-step", unit_scale=True,
                       desc=f"simulate [{p.backend}, {self.where}]", leave=False)
        t_kernel = time.perf_counter()
        t_saved = t_kernel
        save = p.checkpoint is not None
        try:
            with _checkpoint.deferred_interrupt() as stop:
                for c_lo in range(position.chunk_start, n_chains, chunk):
                    c_hi = min(n_chains, c_lo + chunk)
                    nc = c_hi - c_lo
                    if resume_chunk is not None and c_lo == position.chunk_start:
                        X, S, alive = resume_chunk["X"], resume_chunk["S"], resume_chunk["alive"]
                        t_first = position.step
                    else:
                        X, S, alive = _state_arrays(p, c_lo, c_hi)
                        t_first = 0
                    b_lo, b_hi = c_lo // block, -(-c_hi // block)
                    engine.load(X, S, alive)
                    t_done = t_first
                    for t0, t1 in p.segments:
                        if t0 < t_first:
                            continue
                        if stop[0]:
                            break
                        if not self.binning.fixed and t0 == p.burn_in:  # the pilot is this chunk's first chains
                            engine.store(X, S, alive)
                            self.fix_range(X[:p.n_pilot], alive[:p.n_pilot])
                        engine.segment(t0, t1, c_lo, b_lo, b_hi)
                        t_done = t1
                        out.chain_steps_done += nc * (t1 - t0)
                        out.chain_steps_run += nc * (t1 - t0)
                        if bar is not None:
                            bar.update(nc * (t1 - t0))
                        if save and t1 < n_steps and time.perf_counter() - t_saved > p.checkpoint_every:
                            engine.store(X, S, alive)
                            self.save_checkpoint(c_lo, t1, {"X": X, "S": S, "alive": alive})
                            t_saved = time.perf_counter()
                    engine.store(X, S, alive)
                    if t_done < n_steps:  # stopped inside this chunk
                        out.interrupted = True
                        if save:
                            self.save_checkpoint(c_lo, t_done, {"X": X, "S": S, "alive": alive})
                    dead = alive == 0
                    np.add.at(acc.diverged, (np.nonzero(dead)[0] + c_lo) // block, 1)
                    if p.keep_final:
                        acc.final[c_lo:c_hi] = X
                        acc.final_state[c_lo:c_hi] = S[:, :ns_d]
                        acc.alive[c_lo:c_hi] = ~dead
                    if out.interrupted:
                        break
                    if dead.any():
                        dead_idx = np.nonzero(dead)[0]
                        out.reran_blocks += int(np.unique((dead_idx + c_lo) // block).size)
                        self.rerun_without(dead_idx, c_lo, X, S, alive)
                    # free this chunk's state before the next one is allocated (peak: one chunk)
                    engine.unload()
                    X = S = alive = dead = resume_chunk = None
                engine.sync()
                if save and not out.interrupted and not already_complete:
                    self.save_checkpoint(n_chains, 0, {})  # complete: kept until deleted
        finally:
            if bar is not None:
                bar.close()
        out.kernel_seconds = time.perf_counter() - t_kernel
        return out


def assemble(plan: RunPlan, acc: Accumulators, binning: Binning, position: Position, outcome: Outcome,
             where: str, elapsed: float) -> SimulationResult:
    """Phase 5: the result, its configuration being the plan's description and how it went."""
    p, st = plan, acc.stats
    d, nb, n_blocks = p.dim, p.bins, p.n_blocks
    description = p.describe()
    report = {
        "state_names": list(p.optimizer.state_names),
        "dim": d,
        "device": where if p.backend == "cuda" else platform.processor() or platform.machine(),
        "loss_range": [binning.loss_lo, binning.loss_hi],
        "hist_range_rule": binning.rule,
        "diverged_blocks_rerun": outcome.reran_blocks,
        "threads": numba.get_num_threads(),
        "interrupted": outcome.interrupted,
        "chain_steps_done": outcome.chain_steps_done,
        "chain_steps_run": outcome.chain_steps_run,
        "resumed_from_checkpoint": position.resumed,
        "checkpoint": None if p.checkpoint is None else str(p.checkpoint),
        "elapsed_seconds": elapsed,
        "kernel_seconds": outcome.kernel_seconds,
        "chain_steps_per_second": (outcome.chain_steps_run / outcome.kernel_seconds if outcome.kernel_seconds > 0
                                   else math.nan),
        "versions": {
            "gibbs_sgd": __version__,
            "numpy": np.__version__,
            "numba": numba.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.platform(),
    }
    clash = description.keys() & report.keys()
    if clash:  # the plan's description is the run; a report must not overwrite it
        raise AssertionError(f"result.config keys described twice: {sorted(clash)}")
    k_traj = p.record_trajectories
    return SimulationResult(
        config={**description, **report},
        hist_edges=binning.edges,
        hist=st["hist1"].sum(axis=0),
        hist2d=st["hist2"].sum(axis=0) if d == 2 else None,
        loss_edges=np.linspace(binning.loss_lo, binning.loss_hi, nb + 1),
        loss_hist=st["histL"].sum(axis=0),
        outside=st["hout"].sum(axis=0),
        block_hist=st["hist1"],
        block_hist2d=st["hist2"] if d == 2 else None,
        block_loss_hist=st["histL"],
        block_outside=st["hout"],
        moments=st["moments"],
        block_chains=np.minimum(p.block, p.n_chains - np.arange(n_blocks) * p.block).astype(np.int64),
        diverged=acc.diverged,
        trace_steps=np.arange(p.n_trace) * p.trace_every,
        trace=st["trace"],
        final=acc.final,
        final_state=acc.final_state,
        alive=acc.alive,
        trajectories=st["traj"] if k_traj else None,
        trajectory_steps=np.arange(p.n_records) * p.trajectory_every if k_traj else None,
        landscape=p.landscape,
    )


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
    plan = plan_run(
        landscape, optimizer, noise=noise, batch_size=batch_size, n_chains=n_chains, n_steps=n_steps,
        burn_in=burn_in, seed=seed, backend=backend, init=init, schedule=schedule, dtype=dtype, thin=thin,
        bins=bins, hist_range=hist_range, loss_range=loss_range, keep_final=keep_final,
        record_trajectories=record_trajectories, trajectory_every=trajectory_every,
        trajectory_state=trajectory_state, trace_points=trace_points, progress=progress, max_chunk=max_chunk,
        block=block, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
    )
    runner = _Runner(plan, Accumulators.allocate(plan), Binning.initial(plan))
    position = resume(plan, runner.acc, runner.binning)
    runner.start()
    outcome = runner.run(position)
    if outcome.interrupted:
        how = f"; rerun the same call to resume from {plan.checkpoint}" if plan.checkpoint is not None else (
            "; pass checkpoint=PATH to be able to resume")
        warnings.warn(
            f"simulate interrupted after {outcome.chain_steps_done:,} of {plan.n_chains * plan.n_steps:,} "
            f"chain-steps; the result holds the statistics gathered so far (result.complete is False){how}",
            RuntimeWarning,
            stacklevel=2,
        )
    result = assemble(plan, runner.acc, runner.binning, position, outcome, runner.where,
                      time.perf_counter() - t_start)
    if result.n_diverged:
        warnings.warn(
            f"{result.n_diverged:,} of {plan.n_chains:,} chains diverged (non-finite or beyond |phi - centre| = "
            f"{plan.divergence_radius:g}); they were frozen, and their blocks ({outcome.reran_blocks} of "
            f"{plan.n_blocks}) were run again without them, so none of their samples is in the statistics",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
