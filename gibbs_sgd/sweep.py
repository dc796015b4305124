r"""Sweeps: the temperature over a grid of settings, scaling laws, and "beta from eta0".

A sweep runs :func:`gibbs_sgd.simulate` and :func:`gibbs_sgd.fit_temperature` at every point
of a grid and returns a :class:`SweepTable`, one row per point. Grid names are resolved in
this order: a field of the optimizer (``lr``, ``momentum``, ``beta``, ``dampening``, ...), a
field of the noise (``sigma``), an argument of :func:`~gibbs_sgd.simulate` (``batch_size``,
``n_steps``, ``seed``, ...), or a free symbol (``eta0``) that only ``tie`` uses. ``tie`` maps a
name to a function of the point, so the lecture's rules are one line each::

    gs.sweep(land, gs.optimizers.SGD(lr=1.0),
             grid={"eta0": [1e-3, 2e-3], "batch_size": [1, 4, 16]},
             tie={"lr": lambda p: p["batch_size"] * p["eta0"]})

Execution is serial (default), on local processes (``executor="processes"``), or on any
:class:`concurrent.futures.Executor`; a ``dask.distributed.Client`` is accepted directly (its
``get_executor()`` is used), which is the way onto many machines. With ``results_dir``, each
finished point is written there (its row as JSON and its run as ``.npz``) and skipped on a
rerun, so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .fit import fit_temperature
from .result import SimulationResult, load
from .simulate import simulate

__all__ = ["sweep", "SweepTable", "ScalingLaw", "CommonLaw"]

_SIM_ARGS = {"batch_size", "n_chains", "n_steps", "burn_in", "seed", "thin", "dtype", "init", "schedule", "bins",
             "loss_range", "block", "max_chunk"}


def _points(grid) -> list[dict]:
    if isinstance(grid, dict):
        names = list(grid)
        for k in names:
            if np.ndim(grid[k]) != 1 or len(grid[k]) == 0:
                raise ValueError(f"grid[{k!r}] must be a non-empty list of values")
        return [dict(zip(names, values)) for values in itertools.product(*(list(grid[k]) for k in names))]
    points = [dict(p) for p in grid]
    if not points:
        raise ValueError("grid must hold at least one point")
    return points


def _resolve(point: dict, optimizer, noise, tie, base_kwargs):
    values = dict(point)
    for name, fn in (tie or {}).items():
        values[name] = fn(values)
    opt_fields = {f.name for f in dataclasses.fields(optimizer)}
    noise_fields = {f.name for f in dataclasses.fields(noise)} if noise is not None else set()
    opt_kw, noise_kw, sim_kw = {}, {}, dict(base_kwargs)
    for k, v in values.items():
        if k in opt_fields:
            opt_kw[k] = v
        elif k in noise_fields:
            noise_kw[k] = v
        elif k in _SIM_ARGS:
            sim_kw[k] = v
    opt = dataclasses.replace(optimizer, **opt_kw) if opt_kw else optimizer
    nz = dataclasses.replace(noise, **noise_kw) if noise_kw else noise
    return values, opt, nz, sim_kw


def _by_content(v):
    """JSON stand-in for values json cannot encode: arrays by a hash of their bytes (never str(),
    whose abbreviated printout can make two different arrays look alike)."""
    if isinstance(v, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest(), "shape": v.shape,
                "dtype": str(v.dtype)}
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return repr(v)


def _key(values: dict, opt, noise, sim_kw, landscape) -> str:
    desc = {"values": values, "optimizer": opt.describe(), "noise": None if noise is None else noise.describe(),
            "landscape": landscape.describe(), "sim": sim_kw}
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=_by_content).encode()).hexdigest()[:16]


def _scalar(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _run_point(landscape, opt, noise, sim_kw, values, key, fit_method, results_dir):
    """Simulate and fit one grid point (runs in a worker)."""
    run = simulate(landscape, opt, noise=noise, progress=False, **sim_kw)
    row = {k: _scalar(v) for k, v in values.items() if np.ndim(v) == 0}  # arrays (init, bins) stay out
    row.update({"lr": opt.lr, "optimizer": type(opt).__name__, "batch_size": run.config["batch_size"], "key": key,
                "n_diverged": run.n_diverged, "chain_steps_per_second": run.chain_steps_per_second})
    try:
        fit = fit_temperature(run, method=fit_method)
        est = fit.estimators
        row.update({
            "temperature": fit.temperature, "ci_lo": fit.ci[0], "ci_hi": fit.ci[1],
            "t_mle": est["mle"].value, "t_mle_se": est["mle"].stderr,
            "t_virial": est["virial"].value if est["virial"] else math.nan,
            "t_virial_se": est["virial"].stderr if est["virial"] else math.nan,
            "t_configurational": est["configurational"].value, "t_configurational_se": est["configurational"].stderr,
            "chi2": fit.chi2, "dof": fit.dof, "p_value": fit.p_value, "kl": fit.kl_divergence,
            "total_variation": fit.total_variation, "is_gibbs": fit.is_gibbs, "verdict": fit.verdict,
        })
    except ValueError as err:  # no samples, or no positive temperature: reported, not dropped
        row.update({"temperature": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "is_gibbs": False,
                    "verdict": f"no fit: {err}"})
    if results_dir is not None:
        d = Path(results_dir)
        run.save(d / f"{key}.npz")
        row["run_path"] = str(d / f"{key}.npz")
        tmp = d / f"{key}.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(row, default=_scalar))
        os.replace(tmp, d / f"{key}.json")
        return row, None
    return row, run


def sweep(landscape, optimizer, grid, *, noise=None, tie=None, executor=None, max_workers=None, results_dir=None,
          fit_method: str = "mle", progress: bool = True, **simulate_kwargs) -> "SweepTable":
    r"""Simulate and fit the temperature at every point of a grid.

    Parameters
    ----------
    landscape, optimizer, noise : as in :func:`gibbs_sgd.simulate`; grid values replace fields
    grid : dict name -> list of values (the Cartesian product is run), or a list of point dicts
    tie : dict name -> callable(point) -> value, evaluated after the grid values (e.g.
        ``{"lr": lambda p: p["batch_size"] * p["eta0"]}``)
    executor : None (serial), "processes", a concurrent.futures.Executor, or a dask Client.
        Worker processes are spawned (Numba's threads do not survive a fork), so a script
        using "processes" must run the sweep under ``if __name__ == "__main__":``.
    max_workers : int, for ``executor="processes"``
    results_dir : path; finished points are written there and skipped on a rerun
    fit_method : "mle", "virial" or "configurational"
    progress : bool, a progress bar over points
    **simulate_kwargs : passed to every :func:`simulate` (n_chains, n_steps, burn_in, ...). Unless
        a ``seed`` is given, each point gets its own seed derived from its settings, so the points'
        errors are independent (what the scaling-law regression assumes) and reproducible.

    Returns
    -------
    SweepTable

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
    jobs = []
    for point in _points(grid):
        values, opt, nz, sim_kw = _resolve(point, optimizer, noise, tie, simulate_kwargs)
        key = _key(values, opt, nz, sim_kw, landscape)
        if "seed" not in sim_kw:
            # Independent streams per point, derived from the point: the regression of a scaling
            # law assumes independent errors, which common random numbers would violate.
            sim_kw["seed"] = int(key, 16) & (2**63 - 1)
        jobs.append((values, opt, nz, sim_kw, key))
    rows: dict[str, dict] = {}
    runs: dict[str, SimulationResult] = {}
    if results_dir is not None:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        for values, opt, nz, sim_kw, key in jobs:
            f = Path(results_dir) / f"{key}.json"
            if f.exists():
                rows[key] = json.loads(f.read_text())
    todo = [j for j in jobs if j[4] not in rows]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="point", desc="sweep")
    own = None
    if executor == "processes":
        # spawn, not fork: Numba's OpenMP threading layer cannot survive a fork
        own = executor = ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))
    elif executor is not None and not isinstance(executor, Executor) and hasattr(executor, "get_executor"):
        executor = executor.get_executor()  # a dask.distributed.Client
    elif executor is not None and not isinstance(executor, Executor):
        raise TypeError("executor must be None, 'processes', a concurrent.futures.Executor or a dask Client")
    try:
        args = [(landscape, opt, nz, sim_kw, values, key, fit_method, results_dir) for values, opt, nz, sim_kw, key in todo]
        if executor is None:
            outcomes = (_run_point(*a) for a in args)
        else:
            futures = [executor.submit(_run_point, *a) for a in args]
            outcomes = (f.result() for f in as_completed(futures))
        for row, run in outcomes:
            rows[row["key"]] = row
            if run is not None:
                runs[row["key"]] = run
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if own is not None:
            own.shutdown()
    ordered = [rows[j[4]] for j in jobs]
    return SweepTable(ordered, runs)


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
