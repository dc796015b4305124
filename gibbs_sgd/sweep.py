r"""Sweeps: the temperature over a grid of settings, scaling laws, and "beta from eta0".

A sweep runs :func:`gibbs_sgd.simulate` and :func:`gibbs_sgd.fit_temperature` at every point
of a grid and returns a :class:`SweepTable`, one row per point. A grid name is, in this order
of precedence, a field of the optimizer (``lr``, ``momentum``, ``beta``, ``dampening``, ...), a
field of the noise (``sigma``), an argument of :func:`~gibbs_sgd.simulate` (``batch_size``,
``n_steps``, ``seed``, ...), or a free symbol (``eta0``) that some ``tie`` function reads; any
other name is refused before anything runs. ``tie`` maps a setting to a function of the point,
so the lecture's rules are one line each::

    gs.sweep(land, gs.optimizers.SGD(lr=1.0),
             grid={"eta0": [1e-3, 2e-3], "batch_size": [1, 4, 16]},
             tie={"lr": lambda p: p["batch_size"] * p["eta0"]})

Execution is serial (default), on local processes (``executor="processes"``), or on any
:class:`concurrent.futures.Executor`; a ``dask.distributed.Client`` is accepted directly (its
``get_executor()`` is used), which is the way onto many machines.

Results and resume. With ``results_dir``, each finished point is written there: its run as
``<run key>.npz``, then its row as ``<key>.json`` (each by an atomic rename; the row is written
last, so a row on disk always has its run). The key is a hash of everything that decides the
row: the landscape, optimizer and noise (every field, user functions by their code), every
simulate argument, the grid and tie-resolved values, and ``fit_method``; the run key is the same
without ``fit_method``, so a rerun with another ``fit_method`` refits the stored runs instead of
simulating again. A rerun skips the points whose row is on disk and computes exactly the others.

Interruption. Only *complete* runs become rows. Ctrl-C makes a running :func:`simulate` return
an incomplete result (``run.complete is False``); the sweep never writes nor returns such a point.
It stops: pending points are cancelled, the points already finished stay in ``results_dir``, and
``KeyboardInterrupt`` is raised to the caller, carrying the finished rows as ``.table`` (a
:class:`SweepTable`). Rerunning the same call then computes exactly the missing points. With
``executor="processes"`` the terminal's Ctrl-C reaches the worker processes too: a worker inside
``simulate`` stops it and reports the point as interrupted, a worker anywhere else ignores the
signal (a point past its simulation is finished and written), and points queued in the pool are
not started; the sweep waits for the workers to stop before raising (a SIGINT sent to the
main process alone lets the points in flight finish, and keeps them). On an executor of yours,
pending futures are cancelled and the sweep raises at once; a point already running there
finishes in the background and, complete, is written.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import multiprocessing
import numbers
import os
import signal
import types
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .fit import fit_temperature
from .landscapes import Landscape
from .noise import Gaussian, Noise
from .optimizers import Optimizer
from .result import SimulationResult, load
from .simulate import simulate

__all__ = ["sweep", "SweepTable", "ScalingLaw", "CommonLaw"]

_FIT_METHODS = ("mle", "virial", "configurational")
# simulate's arguments that the sweep itself owns: the model objects, the per-point progress bar
# (off: the sweep shows one over points), and checkpoint files (one path shared by every point
# would be resumed into the wrong point; results_dir is the sweep's way to resume).
_OWN_ARGS = frozenset({"landscape", "optimizer", "noise", "progress", "checkpoint", "checkpoint_every"})
# Every other argument of simulate may be a grid name, a tie target or a keyword of sweep().
_SIM_ARGS = frozenset(inspect.signature(simulate).parameters) - _OWN_ARGS
# Bump when the content of a key changes, so that a results_dir never serves rows of an old layout.
_KEY_VERSION = 2

# Set in the worker processes of executor="processes" (see _worker_init): once the sweep is
# interrupted, points still queued in the pool return at once instead of running.
_STOP = None


def _worker_init(stop) -> None:
    """Worker process of executor="processes": share the stop event, and ignore Ctrl-C except
    inside simulate (whose own handler turns it into an incomplete result)."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- the grid ------------------------------------------------------------------------------------
def _check_name(where: str, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{where} names must be strings, got {name!r}")


def _column(name: str, values) -> list:
    """The values of one grid name: a non-empty 1-D list (tuple, range or 1-D array)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values (1-D), got an array of shape "
                             f"{values.shape}")
        return list(values)
    if isinstance(values, (list, tuple, range)):
        if len(values) == 0:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values (1-D), got {values!r}")
        return list(values)
    raise TypeError(f"grid[{name!r}] must be a non-empty list of values (1-D), got {type(values).__name__} "
                    f"{values!r}; a single value is written [{values!r}]")


def _points(grid) -> list[dict]:
    if isinstance(grid, Mapping):
        if not grid:
            raise ValueError("grid must name at least one setting, e.g. grid={'lr': [0.01, 0.02]}")
        for k in grid:
            _check_name("grid", k)
        names = list(grid)
        columns = [_column(k, grid[k]) for k in names]
        return [dict(zip(names, values)) for values in itertools.product(*columns)]
    if isinstance(grid, (str, bytes)) or not isinstance(grid, (list, tuple)):
        raise TypeError(f"grid must be a dict name -> list of values, or a list of point dicts, got "
                        f"{type(grid).__name__}")
    if not grid:
        raise ValueError("grid must hold at least one point")
    for i, p in enumerate(grid):
        if not isinstance(p, Mapping) or not p:
            raise TypeError(f"grid[{i}] must be a non-empty dict name -> value, got {p!r}")
        for k in p:
            _check_name("grid", k)
    return [dict(p) for p in grid]


def _init_fields(obj) -> list[str]:
    """The settable fields of a model object (what dataclasses.replace accepts)."""
    if not dataclasses.is_dataclass(obj):
        return []
    return sorted(f.name for f in dataclasses.fields(obj) if f.init and not f.name.startswith("_"))


@dataclass(frozen=True)
class _Names:
    """What a grid name or a tie target may be, for the error messages that list them."""

    optimizer: tuple
    noise: tuple
    simulate: tuple
    optimizer_type: str
    noise_type: str

    @property
    def settings(self) -> frozenset:
        return frozenset(self.optimizer) | frozenset(self.noise) | frozenset(self.simulate)

    def listing(self) -> str:
        return (f"a field of the optimizer ({self.optimizer_type}: {', '.join(self.optimizer)}), of the noise "
                f"({self.noise_type}: {', '.join(self.noise) or 'none'}), or an argument of simulate "
                f"({', '.join(self.simulate)})")


class _Reads(dict):
    """The point handed to a tie function; records which names the function reads (and which it
    asks for in vain), so that free grid symbols can be checked against what the ties use."""

    def __init__(self, values: dict, reads: set, missing: set):
        super().__init__(values)
        self._reads, self._missing = reads, missing

    def __getitem__(self, name):
        self._reads.add(name)
        if not super().__contains__(name):
            self._missing.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self._reads.add(name)
        return super().get(name, default)

    def __contains__(self, name):
        self._reads.add(name)
        return super().__contains__(name)


def _check_tie(tie, names: _Names) -> dict:
    if tie is None:
        return {}
    if not isinstance(tie, Mapping):
        raise TypeError(f"tie must be a dict name -> callable(point), got {type(tie).__name__}")
    for name, fn in tie.items():
        _check_name("tie", name)
        if name not in names.settings:
            raise ValueError(f"tie[{name!r}]: {name!r} is not a setting; a tie target must be {names.listing()}")
        if not callable(fn):
            raise TypeError(f"tie[{name!r}] must be a callable(point) -> value, got {fn!r}")
    return dict(tie)


def _tied(point: dict, tie: dict, reads: set) -> dict:
    """The point with every tie evaluated in order (a tie sees the grid values and earlier ties)."""
    values = dict(point)
    for name, fn in tie.items():
        missing = set()
        try:
            values[name] = fn(_Reads(values, reads, missing))
        except KeyError as err:
            if not missing:
                raise
            raise ValueError(f"tie[{name!r}] reads {sorted(missing)[0]!r}, which is neither a grid name nor an "
                             f"earlier tie target (the point has {sorted(values)})") from err
    return values


def _short(values: dict) -> dict:
    """The scalar values of a point, for error messages (arrays such as init would flood them)."""
    return {k: v for k, v in values.items() if np.ndim(v) == 0}


def _settings(values: dict, optimizer, noise, names: _Names, base_kwargs: dict):
    opt_kw = {k: v for k, v in values.items() if k in names.optimizer}
    noise_kw = {k: v for k, v in values.items() if k in names.noise and k not in opt_kw}
    sim_kw = dict(base_kwargs)
    sim_kw.update({k: v for k, v in values.items() if k in names.simulate and k not in opt_kw and k not in noise_kw})
    try:
        opt = dataclasses.replace(optimizer, **opt_kw) if opt_kw else optimizer
        nz = dataclasses.replace(noise, **noise_kw) if noise_kw else noise
    except (TypeError, ValueError) as err:
        raise type(err)(f"at grid point {_short(values)}: {err}") from err
    return opt, nz, sim_kw


# -- keys ----------------------------------------------------------------------------------------
def _callable_id(fn) -> dict:
    """A callable by its code: bytecode, constants, names, defaults and closure values (names it
    reads from module globals are not seen: change the function's code or name when they change)."""
    f = getattr(fn, "py_func", fn)  # a Numba dispatcher: its Python function
    code = getattr(f, "__code__", None)
    name = getattr(f, "__qualname__", type(f).__name__)
    if code is None:
        return {"callable": name, "repr": repr(f)}
    h = hashlib.sha256()

    def feed(c):
        h.update(c.co_code)
        h.update(repr(c.co_names).encode())
        for k in c.co_consts:
            feed(k) if isinstance(k, types.CodeType) else h.update(repr(k).encode())

    feed(code)
    cells = []
    for cell in f.__closure__ or ():
        try:
            v = cell.cell_contents
        except ValueError:  # an empty cell
            v = None
        # closures are followed one level: a function inside by its name (no infinite recursion)
        cells.append(getattr(v, "__qualname__", repr(v)) if callable(v) else v)
    extra = {"defaults": f.__defaults__, "kwdefaults": f.__kwdefaults__, "closure": cells}
    h.update(json.dumps(extra, sort_keys=True, default=_by_content).encode())
    return {"callable": name, "code": h.hexdigest()}


def _component(obj) -> dict:
    """A model object by type and every field it was built from (not describe(), which leaves
    out fields with repr=False and names user functions by their name only)."""
    cls = type(obj)
    out = {"type": f"{cls.__module__}.{cls.__qualname__}"}
    if dataclasses.is_dataclass(obj):
        out.update({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init})
    else:
        out["describe"] = obj.describe() if hasattr(obj, "describe") else repr(obj)
    return out


def _by_content(v):
    """JSON stand-in for values json cannot encode: arrays by a hash of their bytes (never str(),
    whose abbreviated printout can make two different arrays look alike), model objects and
    schedules by their fields, functions by their code."""
    if isinstance(v, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest(), "shape": v.shape,
                "dtype": str(v.dtype)}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type):
        return f"{v.__module__}.{v.__qualname__}"
    if dataclasses.is_dataclass(v) or isinstance(v, (Landscape, Noise, Optimizer)):
        return _component(v)
    if callable(v):
        return _callable_id(v)
    if isinstance(v, (set, frozenset)):
        return sorted(repr(x) for x in v)
    return repr(v)


def _digest(desc) -> str:
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=_by_content).encode()).hexdigest()[:16]


def _run_key(values: dict, opt, noise, sim_kw: dict, landscape) -> str:
    """Everything that decides a run: its file name in results_dir, and its default seed."""
    return _digest({"version": _KEY_VERSION, "values": values, "landscape": _component(landscape),
                    "optimizer": _component(opt), "noise": _component(noise), "simulate": sim_kw})


def _row_key(run_key: str, fit_method: str) -> str:
    """Everything that decides a row: the run and the fit."""
    return _digest({"version": _KEY_VERSION, "run": run_key, "fit_method": fit_method})


# -- one point -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    values: dict
    optimizer: object
    noise: object
    sim_kw: dict
    run_key: str
    key: str


def _scalar(v):
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _stored_run(path: Path, sim_kw: dict):
    """The complete run stored at ``path`` for these settings, or None (absent, unreadable, incomplete)."""
    if not path.exists():
        return None
    try:
        run = load(path)
    except Exception:  # a file cut short or of another format: simulate again, and overwrite it
        return None
    cfg = run.config
    same = all(cfg.get(k) == sim_kw[k] for k in ("seed", "n_chains", "n_steps", "batch_size") if k in sim_kw)
    return run if run.complete and same else None


def _run_point(landscape, job: _Job, fit_method: str, results_dir):
    """Simulate (or reload) and fit one grid point; runs in a worker.

    Returns ``(row, run)``; ``run`` is None when it was written to ``results_dir``. Returns
    ``(None, None)`` when the point was interrupted (its run incomplete) or the sweep is stopping:
    nothing of it is written.
    """
    if _STOP is not None and _STOP.is_set():
        return None, None
    d = None if results_dir is None else Path(results_dir)
    run_path = None if d is None else d / f"{job.run_key}.npz"
    run = None if run_path is None else _stored_run(run_path, job.sim_kw)
    stored = run is not None
    if run is None:
        run = simulate(landscape, job.optimizer, noise=job.noise, progress=False, **job.sim_kw)
        if not run.complete:  # Ctrl-C inside simulate: never a row, never on disk
            return None, None
    opt = job.optimizer
    row = {k: _scalar(v) for k, v in job.values.items() if np.ndim(v) == 0}  # arrays (init, bins) stay out
    row.update({"lr": opt.lr, "optimizer": type(opt).__name__, "batch_size": run.config["batch_size"],
                "key": job.key, "fit_method": fit_method, "n_diverged": run.n_diverged,
                "chain_steps_per_second": run.chain_steps_per_second})
    try:
        fit = fit_temperature(run, method=fit_method, landscape=landscape)
        est = fit.estimators
        row.update({
            "temperature": fit.temperature, "ci_lo": fit.ci[0], "ci_hi": fit.ci[1],
            "t_mle": est["mle"].value, "t_mle_se": est["mle"].stderr,
            "t_virial": est["virial"].value if est["virial"] else math.nan,
            "t_virial_se": est["virial"].stderr if est["virial"] else math.nan,
            "t_configurational": est["configurational"].value, "t_configurational_se": est["configurational"].stderr,
            "chi2": fit.chi2, "dof": fit.dof, "p_value": fit.p_value, "kl": fit.kl_divergence,
            "total_variation": fit.total_variation, "departure": fit.departure, "status": fit.status,
            "is_gibbs": fit.is_gibbs, "verdict": fit.verdict,
        })
    except ValueError as err:  # no samples, or no positive temperature: reported, not dropped
        row.update({"temperature": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "is_gibbs": False,
                    "status": "undetermined", "verdict": f"no fit: {err}"})
    if d is None:
        return row, run
    if not stored:
        tmp = d / f"{job.run_key}.{os.getpid()}.tmp.npz"
        try:
            run.save(tmp)
            os.replace(tmp, run_path)
        finally:
            tmp.unlink(missing_ok=True)
    row["run_path"] = str(run_path)
    _atomic_write_text(d / f"{job.key}.json", json.dumps(row, default=_scalar))  # last: the point is done
    return row, None


def _stored_row(results_dir, job: _Job, fit_method: str):
    """The finished row of ``job`` in ``results_dir`` (with its run beside it), or None."""
    d = Path(results_dir)
    f, run_path = d / f"{job.key}.json", d / f"{job.run_key}.npz"
    if not (f.exists() and run_path.exists()):
        return None
    try:
        row = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if row.get("key") != job.key or row.get("fit_method") != fit_method:
        return None
    row["run_path"] = str(run_path)  # where the folder is now, should it have moved
    return row


# -- the sweep -----------------------------------------------------------------------------------
def _plan(landscape, optimizer, noise, grid, tie, simulate_kwargs, fit_method) -> list[_Job]:
    """Every point resolved and checked, before anything runs."""
    names = _Names(optimizer=tuple(_init_fields(optimizer)), noise=tuple(_init_fields(noise)),
                   simulate=tuple(sorted(_SIM_ARGS)), optimizer_type=type(optimizer).__name__,
                   noise_type=type(noise).__name__)
    for k in ("checkpoint", "checkpoint_every"):
        if k in simulate_kwargs:
            raise ValueError(f"{k} cannot be passed to sweep (every point would share one checkpoint file); "
                             "pass results_dir: finished points are kept there and a rerun computes the others")
    unknown = sorted(set(simulate_kwargs) - _SIM_ARGS)
    if unknown:
        raise TypeError(f"sweep() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the keywords "
                        f"passed on to simulate are: {', '.join(sorted(_SIM_ARGS))}")
    points = _points(grid)
    tie = _check_tie(tie, names)
    reads: set = set()
    resolved = [(p, _tied(p, tie, reads)) for p in points]
    grid_names = list(dict.fromkeys(k for p in points for k in p))
    free = [k for k in grid_names if k not in names.settings]
    unread = [k for k in free if k not in reads]
    if unread:
        read_free = ", ".join(repr(k) for k in free if k in reads) or "no tie reads one"
        raise ValueError(
            f"grid name(s) {', '.join(map(repr, unread))} set nothing: a grid name must be {names.listing()}, or a "
            f"free symbol that a tie function reads ({read_free})")
    for targets, what in ((grid_names, "grid"), (list(tie), "tie")):
        twice = sorted(k for k in targets if k in simulate_kwargs)
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} given both in {what} and as a keyword of sweep(); "
                             "give each setting once")
    jobs = []
    for point, values in resolved:
        opt, nz, sim_kw = _settings(values, optimizer, noise, names, simulate_kwargs)
        run_key = _run_key(values, opt, nz, sim_kw, landscape)
        if "seed" not in sim_kw:
            # Independent streams per point, derived from the run's settings (not the fit method, so
            # every fit of a run sees the same chains): the regression of a scaling law assumes
            # independent errors, which common random numbers would violate.
            sim_kw["seed"] = int(run_key, 16) & (2**63 - 1)
        jobs.append(_Job(values, opt, nz, sim_kw, run_key, _row_key(run_key, fit_method)))
    return jobs


def _executor(executor, max_workers):
    """``(executor, own pool or None, stop event or None)``."""
    if max_workers is not None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, numbers.Integral) or max_workers < 1:
            raise ValueError(f"max_workers must be None or an integer >= 1, got {max_workers!r}")
        if not (isinstance(executor, str) and executor == "processes"):
            raise ValueError("max_workers applies to executor='processes' only (an executor of yours has its own; "
                             "the serial sweep has one)")
    if executor is None:
        return None, None, None
    if isinstance(executor, str):
        if executor != "processes":
            raise ValueError(f"executor must be None, 'processes', a concurrent.futures.Executor or a dask Client, "
                             f"got {executor!r}")
        # spawn, not fork: Numba's OpenMP threading layer cannot survive a fork
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        own = ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx, initializer=_worker_init,
                                  initargs=(stop,))
        return own, own, stop
    if isinstance(executor, Executor):
        return executor, None, None
    if hasattr(executor, "get_executor"):
        return executor.get_executor(), None, None  # a dask.distributed.Client
    raise TypeError(f"executor must be None, 'processes', a concurrent.futures.Executor or a dask Client, got "
                    f"{type(executor).__name__}")


def sweep(landscape, optimizer, grid, *, noise=None, tie=None, executor=None, max_workers=None, results_dir=None,
          fit_method: str = "mle", progress: bool = True, **simulate_kwargs) -> "SweepTable":
    r"""Simulate and fit the temperature at every point of a grid.

    Parameters
    ----------
    landscape, optimizer, noise : as in :func:`gibbs_sgd.simulate`; grid values replace fields
        (``noise`` defaults to ``Gaussian(sigma=1)``, so ``sigma`` is a grid name then too)
    grid : dict name -> non-empty list of values (the Cartesian product is run), or a list of
        point dicts. A name is a field of the optimizer, a field of the noise, an argument of
        :func:`simulate`, or a free symbol that a ``tie`` function reads; anything else is a
        ValueError raised before any simulation.
    tie : dict setting -> callable(point) -> value, evaluated in order after the grid values
        (e.g. ``{"lr": lambda p: p["batch_size"] * p["eta0"]}``); a setting is an optimizer or
        noise field or a simulate argument
    executor : None (serial), "processes", a concurrent.futures.Executor, or a dask Client.
        Worker processes are spawned (Numba's threads do not survive a fork), so a script
        using "processes" must run the sweep under ``if __name__ == "__main__":``.
    max_workers : int >= 1, for ``executor="processes"`` only (default: the CPU count)
    results_dir : path; finished points are written there and skipped on a rerun
    fit_method : "mle", "virial" or "configurational"; part of each row's key
    progress : bool, a progress bar over points
    **simulate_kwargs : passed to every :func:`simulate` (n_chains, n_steps, burn_in, ...). Unless
        a ``seed`` is given, each point gets its own seed derived from its settings, so the points'
        errors are independent (what the scaling-law regression assumes) and reproducible.

    Returns
    -------
    SweepTable

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (or a point whose simulation was interrupted): the sweep stops, no interrupted
        point is written or returned, and the exception's ``.table`` holds the finished rows; a
        rerun with the same ``results_dir`` computes exactly the missing points.

    Example
    -------
    >>> import gibbs_sgd as gs
    >>> table = gs.sweep(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1),
    ...                  grid={"eta0": [0.01, 0.02], "batch_size": [1, 4]},
    ...                  tie={"lr": lambda p: p["batch_size"] * p["eta0"]},
    ...                  n_chains=2000, n_steps=400, progress=False)
    >>> len(table)
    4
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape must be a gibbs_sgd.landscapes.Landscape, got {type(landscape).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a gibbs_sgd.optimizers.Optimizer, got {type(optimizer).__name__}")
    noise = Gaussian(1.0) if noise is None else noise  # simulate's default, made explicit so sigma is a setting
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a gibbs_sgd.noise.Noise, got {type(noise).__name__}")
    if not isinstance(fit_method, str) or fit_method not in _FIT_METHODS:
        raise ValueError(f"fit_method must be one of {', '.join(map(repr, _FIT_METHODS))}, got {fit_method!r}")
    jobs = _plan(landscape, optimizer, noise, grid, tie, simulate_kwargs, fit_method)
    executor, own, stop = _executor(executor, max_workers)
    try:
        return _execute(landscape, jobs, fit_method, results_dir, executor, own, stop, progress)
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)


def _execute(landscape, jobs, fit_method, results_dir, executor, own, stop, progress) -> "SweepTable":
    rows: dict[str, dict] = {}
    runs: dict[str, SimulationResult] = {}
    if results_dir is not None:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        for job in jobs:
            row = _stored_row(results_dir, job, fit_method)
            if row is not None:
                rows[job.key] = row
    todo = list({j.key: j for j in jobs if j.key not in rows}.values())  # equal points run once
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="point", desc="sweep")
    interrupted = False
    futures = []
    try:
        if executor is None:
            outcomes = (_run_point(landscape, j, fit_method, results_dir) for j in todo)
        else:
            for j in todo:  # one by one: a Ctrl-C while submitting still cancels those submitted
                futures.append(executor.submit(_run_point, landscape, j, fit_method, results_dir))
            outcomes = (f.result() for f in as_completed(futures))
        for row, run in outcomes:
            if row is None:
                interrupted = True
                break
            rows[row["key"]] = row
            if run is not None:
                runs[row["key"]] = run
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if stop is not None:
            stop.set()  # the pool's queued points return without running (all done by now otherwise)
        for f in futures:
            f.cancel()
        if bar is not None:
            bar.close()
    table = SweepTable([dict(rows[j.key]) for j in jobs if j.key in rows], runs)  # own dicts, even for equal points
    if interrupted:
        done = sum(j.key in rows for j in jobs)
        how = ("rerun the same call to compute the missing points" if results_dir is not None else
               "pass results_dir= to keep finished points across interruptions")
        err = KeyboardInterrupt(f"sweep interrupted: {done} of {len(jobs)} points finished (in the exception's "
                                f".table); interrupted points were not kept; {how}")
        err.table = table
        raise err
    return table


@dataclass(frozen=True)
class ScalingLaw:
    r"""A fitted power law :math:`\log T = c + \sum_j a_j \log x_j` with confidence intervals."""

    exponents: dict
    stderr: dict
    ci: dict
    intercept: float
    chi2_per_dof: float
    dof: int

    def __str__(self):
        terms = ", ".join(f"{k}: {v:+.4f} ± {self.stderr[k]:.2g}" for k, v in self.exponents.items())
        return f"log T = {self.intercept:.4f} + sum a_j log x_j with a = {{{terms}}} (chi2/dof = {self.chi2_per_dof:.3g})"


@dataclass(frozen=True)
class CommonLaw:
    """One temperature law T = f(variable) across a sweep, and which points it explains."""

    variable: str
    law: ScalingLaw
    rows: list

    @property
    def explained(self) -> list:
        return [r for r in self.rows if r["common_law_is_gibbs"]]

    @property
    def unexplained(self) -> list:
        return [r for r in self.rows if not r["common_law_is_gibbs"]]

    def __str__(self):
        return (f"T = exp({self.law.intercept:.4f}) * {self.variable}^{self.law.exponents[self.variable]:.4f}: "
                f"explains {len(self.explained)} of {len(self.rows)} points")


class SweepTable:
    """The rows of a sweep: settings, temperatures with CIs, estimators, goodness of fit."""

    def __init__(self, rows: list[dict], runs: dict | None = None):
        self.rows = rows
        self._runs = runs or {}

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        return np.array([r.get(column, math.nan) for r in self.rows])

    @property
    def columns(self) -> list[str]:
        cols = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def run(self, i: int) -> SimulationResult:
        """The run of row ``i`` (from memory, or loaded from the results folder)."""
        row = self.rows[i]
        if row["key"] in self._runs:
            return self._runs[row["key"]]
        if "run_path" in row:
            return load(row["run_path"])
        raise KeyError("this row's run was not kept: pass results_dir to sweep()")

    def to_csv(self, path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            for r in self.rows:
                w.writerow(r)
        return path

    def to_pandas(self):
        """A pandas DataFrame (pandas is optional: imported here only)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def scaling_law(self, predictors, response: str = "temperature") -> ScalingLaw:
        r"""Fit :math:`\log T = c + \sum_j a_j \log x_j` by weighted least squares.

        Parameters
        ----------
        predictors : dict name -> column name or callable(row) -> positive value, e.g.
            ``{"lr": "lr", "B": "batch_size", "1-mu": lambda r: 1 - r["momentum"]}``
        response : column holding T (its standard error is taken from ``ci_lo``/``ci_hi``)

        The weights are 1/SE(log T)^2 with SE(log T) = CI half-width / (1.96 T); when the fit's
        chi2/dof exceeds 1 (the law does not describe the points within their errors) the
        exponent errors are inflated by sqrt(chi2/dof), and chi2/dof is reported.
        """
        rows = [r for r in self.rows if np.isfinite(r.get(response, math.nan)) and r.get(response, 0) > 0]
        names = list(predictors)
        if len(rows) <= len(names) + 1:
            raise ValueError(f"need more than {len(names) + 1} fitted points, have {len(rows)}")
        x = np.column_stack([np.ones(len(rows))] + [
            np.log([predictors[k](r) if callable(predictors[k]) else r[predictors[k]] for r in rows]) for k in names])
        y = np.log([r[response] for r in rows])
        se = np.array([(r["ci_hi"] - r["ci_lo"]) / (2 * 1.96 * r[response]) for r in rows])
        se = np.where(np.isfinite(se) & (se > 0), se, np.nanmedian(se[se > 0]) if np.any(se > 0) else 1.0)
        w = 1.0 / se**2
        xtw = x.T * w
        cov = np.linalg.inv(xtw @ x)
        beta = cov @ xtw @ y
        resid = y - x @ beta
        dof = len(rows) - x.shape[1]
        chi2 = float(np.sum(w * resid**2) / dof)
        cov = cov * max(1.0, chi2)
        err = np.sqrt(np.diag(cov))
        q = stats.t.ppf(0.975, dof)
        return ScalingLaw(
            exponents={k: float(beta[i + 1]) for i, k in enumerate(names)},
            stderr={k: float(err[i + 1]) for i, k in enumerate(names)},
            ci={k: (float(beta[i + 1] - q * err[i + 1]), float(beta[i + 1] + q * err[i + 1])) for i, k in enumerate(names)},
            intercept=float(beta[0]), chi2_per_dof=chi2, dof=dof,
        )

    def common_law(self, variable: str = "eta0", fit_on=None) -> CommonLaw:
        r""""Beta from eta0": one law T = c * variable^a across the sweep, then every point's
        histogram tested against :math:`e^{-L/f(\text{variable})}/Z` with that common temperature.

        ``fit_on`` : optional callable(row) -> bool choosing the points the law is fitted on
        (e.g. the small-``B eta0 h`` ones); every point is tested against it. Each row gains
        ``common_temperature``, ``common_law_is_gibbs`` and ``common_law_verdict`` (from
        :func:`fit_temperature` with ``temperature=f(variable)``).
        """
        basis = self if fit_on is None else SweepTable([r for r in self.rows if fit_on(r)])
        law = basis.scaling_law({variable: variable})
        out = []
        for i, r in enumerate(self.rows):
            r = dict(r)
            t = math.exp(law.intercept) * r[variable] ** law.exponents[variable]
            r["common_temperature"] = t
            try:
                fit = fit_temperature(self.run(i), temperature=t)
                r["common_law_is_gibbs"], r["common_law_verdict"] = fit.is_gibbs, fit.verdict
            except ValueError as err:
                r["common_law_is_gibbs"], r["common_law_verdict"] = False, f"no fit: {err}"
            out.append(r)
        return CommonLaw(variable, law, out)
