"""`SimulationResult`: everything a run measured, its configuration, and save/load."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .kernels.common import moment_layout

__all__ = ["SimulationResult", "load", "Estimate"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo mean with its standard error from chain-to-chain (block) variation."""

    value: np.ndarray | float
    stderr: np.ndarray | float
    n_blocks: int

    def z(self, truth) -> np.ndarray | float:
        """``(value - truth) / stderr``."""
        return (np.asarray(self.value) - truth) / np.asarray(self.stderr)

    def __repr__(self):
        return f"Estimate(value={self.value!r}, stderr={self.stderr!r}, n_blocks={self.n_blocks})"


@dataclass(frozen=True)
class StateMoments:
    """Mean and covariance of the state vector z = (Phi, optimizer state), with standard errors."""

    names: tuple
    mean: Estimate
    covariance: Estimate


@dataclass
class SimulationResult:
    """What :func:`gibbs_sgd.simulate` measured.

    Statistics cover the sampling window: steps ``t >= burn_in`` with ``(t - burn_in) % thin == 0``
    (the state *after* the update of step ``t``), over chains that had not diverged by then.

    Attributes
    ----------
    config : dict
        Every setting of the run (landscape, noise, optimizer, schedule as dicts), the seed,
        versions, backend, timing.
    hist_edges : list of arrays (d,) each (bins + 1,)
        Histogram edges per coordinate (uniform).
    hist : int64 array (d, bins)
        Per-coordinate histograms of the sampled states (periodic coordinates folded).
    hist2d : int64 array (bins, bins) or None
        Joint histogram for d = 2 (samples inside the box in both coordinates).
    loss_edges, loss_hist : the histogram of the loss L over the sampled states.
    outside : int64 array (d + 1, 2)
        Samples below / above the histogram range, per coordinate and (last row) for the loss.
    moments : float64 array (n_blocks, n_columns)
        Per block of chains, the running sums laid out by
        :func:`gibbs_sgd.kernels.common.moment_layout` (count, L, L^2, Laplacian, |grad L|^2,
        Phi_k dL/dk, dL/dk, (dL/dk)^2, and the full state vector z = (Phi, optimizer state) with
        its outer products).
    block_chains : int64 array (n_blocks,), chains per block.
    diverged : int64 array (n_blocks,), diverged chains per block.
    trace_steps : int array (n_trace,), trace : float array (n_blocks, n_trace, 2)
        Per block, the sum of L over live chains and their count, at ``trace_steps``.
    block_hist, block_hist2d, block_loss_hist, block_outside : the histograms and outside counts
        per block (n_blocks, ...), whose scatter gives standard errors of histogram densities
        (``block_hist2d`` for d = 2 only).
    final : array (n_chains, d) or None (``keep_final=True``), in the run's dtype.
    final_state : array (n_chains, n_state * d) or None (with ``final``): the optimizer state
        (momentum buffer, Adam's m and v, ...; variable k of coordinate i in column k * d + i,
        names in ``state_names[1:]``) after the last step (``config["n_steps"]`` steps; a
        diverged chain's where it was frozen).
    alive : bool array (n_chains,) or None (with ``final``).
    trajectories : array (k, n_recorded, d) or None (``(k, n_recorded, d + n_state * d)`` with
        ``trajectory_state=True``), trajectory_steps : int array.
    """

    config: dict
    hist_edges: list
    hist: np.ndarray
    hist2d: np.ndarray | None
    loss_edges: np.ndarray
    loss_hist: np.ndarray
    outside: np.ndarray
    moments: np.ndarray
    block_chains: np.ndarray
    diverged: np.ndarray
    trace_steps: np.ndarray
    trace: np.ndarray
    block_hist: np.ndarray
    block_loss_hist: np.ndarray
    block_outside: np.ndarray
    final: np.ndarray | None = None
    alive: np.ndarray | None = None
    final_state: np.ndarray | None = None
    block_hist2d: np.ndarray | None = None
    trajectories: np.ndarray | None = None
    trajectory_steps: np.ndarray | None = None
    landscape: object = field(default=None, repr=False, compare=False)
    _layout: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self._layout = moment_layout(self.dim, len(self.config["state_names"]))
        if self.landscape is None:
            from .landscapes import from_description

            self.landscape = from_description(self.config["landscape"])

    @classmethod
    def from_samples(cls, landscape, samples, *, bins=100, hist_range="auto", loss_range=None,
                     n_blocks: int = 256) -> "SimulationResult":
        """The statistics of given samples, laid out as a run's (to fit or compare them the same way).

        Parameters
        ----------
        landscape : gibbs_sgd.landscapes.Landscape
        samples : array (n_chains, n_per_chain, d), or (n, d) / (n,) for independent samples
            Samples of one chain are treated as correlated; chains as independent.
        bins, hist_range, loss_range : as in :func:`gibbs_sgd.simulate`; with a bin count and
            ``hist_range="auto"`` the ranges follow the samples (the rule of :mod:`gibbs_sgd._bins`,
            applied to all of them)
        n_blocks : int, blocks of chains for the standard errors (at most n_chains)

        Example
        -------
        >>> import numpy as np, gibbs_sgd as gs
        >>> land = gs.landscapes.Quadratic(1.0)
        >>> x = gs.Gibbs(land, temperature=0.5).rvs(10_000, random_state=0)
        >>> round(gs.fit_temperature(SimulationResult.from_samples(land, x)).temperature, 1)
        0.5
        """
        from . import _bins

        d = landscape.dim
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1 and d == 1:
            x = x[:, None, None]
        elif x.ndim == 2:
            x = x.reshape(-1, 1, d) if x.shape[-1] == d else None
        if x is None or x.ndim != 3 or x.shape[-1] != d:
            raise ValueError(f"samples must have shape (n_chains, n_per_chain, {d}) or (n, {d}), got {np.shape(samples)}")
        n_chains, per, _ = x.shape
        hist_range = _bins.hist_range_arg(landscape, hist_range)
        edges = _bins.histogram_edges(landscape, bins, hist_range)
        nbins = edges[0].shape[0] - 1
        auto = isinstance(hist_range, str) and hist_range == "auto" and _bins.bin_count(bins) is not None
        if auto:
            edges, _ = _bins.coordinate_edges(landscape, x.reshape(-1, d), nbins)
        rng = _bins.loss_range(landscape, landscape.loss(x.reshape(-1, d)), nbins) if auto and loss_range is None else None
        lo, hi = rng if rng is not None else _bins.loss_range_arg(landscape, edges, loss_range)
        nbk = max(1, min(int(n_blocks), n_chains))
        block = -(-n_chains // nbk)
        nbk = -(-n_chains // block)
        lay = moment_layout(d, 0)
        flat = x.reshape(-1, d)
        loss = landscape.loss(flat)
        grad = landscape.grad(flat).reshape(-1, d)
        lap = landscape.laplacian(flat)
        chain_of = np.repeat(np.arange(n_chains), per)
        blk = chain_of // block
        moments = np.zeros((nbk, lay["n_columns"]))
        cols = [np.ones_like(loss), loss, loss**2, lap, np.sum(grad**2, axis=1)]
        cols += list((flat * grad).T) + list(grad.T) + list((grad**2).T) + list(flat.T)
        cols += [flat[:, a] * flat[:, b] for a in range(d) for b in range(d)]
        for j, c in enumerate(cols):
            moments[:, j] = np.bincount(blk, weights=c, minlength=nbk)
        bidx = [_bin_indices(flat[:, i], edges[i], landscape.period) for i in range(d)]
        block_hist = np.zeros((nbk, d, nbins), np.int64)
        block_out = np.zeros((nbk, d + 1, 2), np.int64)
        for i in range(d):
            inside = (bidx[i] >= 0) & (bidx[i] < nbins)
            np.add.at(block_hist, (blk[inside], i, bidx[i][inside]), 1)
            np.add.at(block_out, (blk[bidx[i] < 0], i, 0), 1)
            np.add.at(block_out, (blk[bidx[i] >= nbins], i, 1), 1)
        lidx = _bin_indices(loss, np.linspace(lo, hi, nbins + 1), None)
        block_loss = np.zeros((nbk, nbins), np.int64)
        inside = (lidx >= 0) & (lidx < nbins)
        np.add.at(block_loss, (blk[inside], lidx[inside]), 1)
        np.add.at(block_out, (blk[lidx < 0], d, 0), 1)
        np.add.at(block_out, (blk[lidx >= nbins], d, 1), 1)
        hist2d = block_hist2d = None
        if d == 2:
            both = np.all([(b >= 0) & (b < nbins) for b in bidx], axis=0)
            block_hist2d = np.zeros((nbk, nbins, nbins), np.int64)
            np.add.at(block_hist2d, (blk[both], bidx[0][both], bidx[1][both]), 1)
            hist2d = block_hist2d.sum(axis=0)
        # a trace with one point per sample index, all in the "sampling window"
        trace = np.zeros((nbk, per, 2))
        for j in range(per):
            trace[:, j, 0] = np.bincount(blk[j::per], weights=loss[j::per], minlength=nbk)
            trace[:, j, 1] = np.bincount(blk[j::per], minlength=nbk)
        config = {
            "landscape": landscape.describe(), "noise": {"type": "samples"}, "optimizer": {"type": "samples"},
            "schedule": {"type": "none"}, "state_names": [], "dim": d, "batch_size": 1, "n_chains": n_chains,
            "n_steps": per, "burn_in": 0, "thin": 1, "seed": None, "backend": "samples", "dtype": "float64",
            "block": block, "loss_range": [lo, hi], "chain_steps_per_second": float("nan"),
            "elapsed_seconds": 0.0, "interrupted": False, "chain_steps_done": n_chains * per,
        }
        return cls(
            config=config, hist_edges=edges, hist=block_hist.sum(axis=0), hist2d=hist2d,
            loss_edges=np.linspace(lo, hi, nbins + 1), loss_hist=block_loss.sum(axis=0), outside=block_out.sum(axis=0),
            moments=moments, block_chains=np.minimum(block, n_chains - np.arange(nbk) * block).astype(np.int64),
            diverged=np.zeros(nbk, np.int64), trace_steps=np.arange(per), trace=trace, block_hist=block_hist,
            block_loss_hist=block_loss, block_outside=block_out, landscape=landscape, block_hist2d=block_hist2d,
        )

    # -- basic facts ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    @property
    def n_chains(self) -> int:
        return int(self.config["n_chains"])

    @property
    def n_diverged(self) -> int:
        """Chains that diverged (non-finite, or beyond the divergence radius) and were frozen."""
        return int(self.diverged.sum())

    @property
    def n_samples(self) -> int:
        """Samples in the statistics (chains x sampled steps, live chains only)."""
        return int(self.moments[:, 0].sum())

    @property
    def chain_steps_per_second(self) -> float:
        return float(self.config["chain_steps_per_second"])

    @property
    def elapsed(self) -> float:
        return float(self.config["elapsed_seconds"])

    @property
    def complete(self) -> bool:
        return not self.config.get("interrupted", False)

    @property
    def state_names(self) -> tuple:
        return ("phi",) + tuple(self.config["state_names"])

    # -- estimates with chain-to-chain errors --------------------------------------------
    def _sums(self, key):
        col = self._layout[key]
        return self.moments[:, col]

    def estimate(self, key: str) -> Estimate:
        """Mean of a recorded quantity over the sampling window, with its standard error.

        ``key`` is a column group of :func:`~gibbs_sgd.kernels.common.moment_layout` (e.g.
        ``"loss"``, ``"grad_sq"``, ``"phi_grad"``, ``"state_outer"``). The error comes from the
        scatter of per-block means of independent chains (ratio estimator with the delta
        method), never from treating correlated time samples as independent.
        """
        if key == "count" or key not in self._layout or key in ("n_columns", "state_size"):
            raise KeyError(f"unknown quantity {key!r}; one of {[k for k in self._layout if k not in ('count', 'n_columns', 'state_size')]}")
        sums = self._sums(key)
        counts = self.moments[:, 0]
        return _ratio_estimate(sums, counts)

    @property
    def mean_loss(self) -> Estimate:
        """``<L>`` over the sampling window."""
        return self.estimate("loss")

    @property
    def phi_mean(self) -> Estimate:
        """``<Phi>``, shape (d,)."""
        m = self._layout["state_size"]
        e = self.estimate("state")
        return Estimate(e.value[: self.dim], e.stderr[: self.dim], e.n_blocks) if m else e

    def state_moments(self) -> "StateMoments":
        r"""Mean and covariance of the whole state vector :math:`z = (\Phi, \text{optimizer state})`
        over the sampling window, each entry with its standard error.

        The errors come from the scatter over blocks of independent chains: the covariance
        :math:`C_{ab} = \langle z_a z_b\rangle - \langle z_a\rangle\langle z_b\rangle` is
        linearised per block as :math:`(S_{ab} - m_a S_b - m_b S_a)/n` (delta method).

        Returns
        -------
        StateMoments, with ``names`` (m,) (``"phi[i]"``, then ``"<state name>[i]"``), ``mean``
        and ``covariance`` :class:`Estimate` s of shapes (m,) and (m, m).

        Example
        -------
        >>> import gibbs_sgd as gs
        >>> run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.HeavyBall(lr=0.05, momentum=0.5),
        ...                   n_chains=2000, n_steps=400, progress=False)
        >>> sm = run.state_moments()
        >>> sm.names
        ('phi[0]', 'momentum_buffer[0]')
        >>> sm.covariance.value.shape, sm.covariance.stderr.shape
        ((2, 2), (2, 2))
        """
        m = self._layout["state_size"]
        d = self.dim
        counts = self.moments[:, 0]
        s1 = self._sums("state")
        s2 = self._sums("state_outer").reshape(-1, m, m)
        mean = _ratio_estimate(s1, counts)
        second = _ratio_estimate(s2, counts)
        mu = mean.value
        value = second.value - np.outer(mu, mu)
        ok = counts > 0
        nb = int(ok.sum())
        w = counts / counts.sum() if counts.sum() > 0 else counts
        lin = (s2 - mu[None, :, None] * s1[:, None, :] - mu[None, None, :] * s1[:, :, None])
        lin = np.where(ok[:, None, None], lin / np.where(ok, counts, 1)[:, None, None], 0.0)
        lin_mean = (w[:, None, None] * lin).sum(axis=0)
        se = np.sqrt(np.sum((w[:, None, None] * (lin - lin_mean)) ** 2, axis=0) * nb / max(nb - 1, 1))
        names = tuple(f"{name}[{i}]" for name in ("phi",) + tuple(self.config["state_names"]) for i in range(d))
        return StateMoments(names, mean, Estimate(value, se, nb))

    def state_covariance(self) -> np.ndarray:
        """Covariance of the whole state vector z = (Phi, optimizer state), shape (m, m)
        (:meth:`state_moments` gives it with standard errors)."""
        return self.state_moments().covariance.value

    @property
    def phi_cov(self) -> np.ndarray:
        """Covariance of Phi, shape (d, d)."""
        d = self.dim
        return self.state_covariance()[:d, :d]

    def phi_var(self) -> Estimate:
        """``Var Phi_k`` per coordinate with a standard error (the diagonal of :meth:`state_moments`)."""
        cov = self.state_moments().covariance
        k = np.arange(self.dim)
        return Estimate(cov.value[k, k], cov.stderr[k, k], cov.n_blocks)

    # -- trace ------------------------------------------------------------------------------
    def mean_loss_trace(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, <L>_chains, stderr)``: the chain-mean loss against the step (all steps)."""
        sums = self.trace[:, :, 0]
        counts = self.trace[:, :, 1]
        tot = counts.sum(axis=0)
        mean = sums.sum(axis=0) / np.where(tot > 0, tot, np.nan)
        w = counts / np.where(tot > 0, tot, 1)
        per = sums / np.where(counts > 0, counts, 1)
        nb = (counts > 0).sum(axis=0)
        var = np.sum((w * (per - mean)) ** 2, axis=0) * nb / np.maximum(nb - 1, 1)
        return self.trace_steps, mean, np.sqrt(var)

    def trace_window(self, start: int, stop: int) -> Estimate:
        """Chain-mean loss over the trace points with ``start <= step < stop``, with its block error."""
        sel = (self.trace_steps >= start) & (self.trace_steps < stop)
        if not sel.any():
            raise ValueError(f"no trace point in [{start}, {stop}); the trace has a point every "
                             f"{self.config.get('trace_every', 1)} steps")
        return _ratio_estimate(self.trace[:, sel, 0].sum(axis=1), self.trace[:, sel, 1].sum(axis=1))

    # -- histograms as densities ------------------------------------------------------------
    def density(self, coordinate: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(centres, density)`` of a coordinate's histogram, normalised over all samples."""
        edges = self.hist_edges[coordinate]
        counts = self.hist[coordinate]
        total = counts.sum() + self.outside[coordinate].sum()
        return 0.5 * (edges[1:] + edges[:-1]), counts / (total * np.diff(edges))

    def summary(self) -> str:
        """A few lines: sizes, speed, mean loss, divergence."""
        ml = self.mean_loss
        lines = [
            f"{self.config['landscape']['type']} / {self.config['optimizer']['type']} / {self.config['noise']['type']}, "
            f"B = {self.config['batch_size']}, {self.n_chains:,} chains x {self.config['n_steps']:,} steps "
            f"({self.config['backend']}, {self.config['dtype']})",
            f"  {self.chain_steps_per_second:.3g} chain-steps/s, {self.elapsed:.2f} s",
            f"  <L> = {ml.value:.6g} +- {ml.stderr:.2g} over {self.n_samples:,} samples",
        ]
        if self.n_diverged:
            lines.append(f"  DIVERGED: {self.n_diverged:,} of {self.n_chains:,} chains (frozen, excluded)")
        if not self.complete:
            total = self.n_chains * self.config["n_steps"]
            lines.append(f"  INTERRUPTED after {self.config['chain_steps_done']:,} of {total:,} chain-steps")
        return "\n".join(lines)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write everything to one ``.npz`` file (configuration as JSON inside)."""
        path = Path(path)
        arrays = {}
        for f in fields(self):
            if f.name.startswith("_") or f.name in ("config", "landscape"):
                continue
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name == "hist_edges":
                for i, e in enumerate(v):
                    arrays[f"hist_edges_{i}"] = e
                continue
            arrays[f.name] = v
        meta = {"format_version": _FORMAT_VERSION, "config": self.config}
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        np.savez_compressed(path, **arrays)
        return path


def load(path) -> SimulationResult:
    """Read a :class:`SimulationResult` written by :meth:`SimulationResult.save`."""
    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported result format {meta.get('format_version')!r}")
        cfg = meta["config"]
        kw = {}
        for f in fields(SimulationResult):
            if f.name.startswith("_") or f.name in ("config", "landscape"):
                continue
            if f.name == "hist_edges":
                kw[f.name] = [z[f"hist_edges_{i}"] for i in range(int(cfg["dim"]))]
            elif f.name in z.files:
                kw[f.name] = z[f.name]
            else:
                kw[f.name] = None
    return SimulationResult(config=cfg, **kw)


def _bin_indices(v: np.ndarray, edges: np.ndarray, period) -> np.ndarray:
    """The kernels' bin of each value (:func:`gibbs_sgd.kernels.common.bin_index`, vectorised):
    -1 below the range, ``nb`` above it (NaN too), periodic values folded onto ``[lo, lo + period)``."""
    nb = edges.shape[0] - 1
    lo = float(edges[0])
    inv = nb / (float(edges[-1]) - lo)
    if period is not None:
        r = np.mod(v - lo, period)
        y = np.where(r >= period, (nb - 0.5) if period * inv > nb - 0.5 else nb, r * inv)
    else:
        y = (v - lo) * inv
    out = np.full(v.shape, nb, np.int64)
    out[~(y >= 0.0)] = -1
    ok = (y >= 0.0) & (y < nb)
    out[ok] = y[ok].astype(np.int64)
    return out


def _ratio_estimate(sums: np.ndarray, counts: np.ndarray) -> Estimate:
    """Ratio estimator sum(S_b)/sum(n_b) with its delta-method standard error over blocks."""
    ok = counts > 0
    nb = int(ok.sum())
    tot = counts.sum()
    if tot == 0:
        nan = np.full(sums.shape[1:], math.nan) if sums.ndim > 1 else math.nan
        return Estimate(nan, nan, 0)
    value = sums.sum(axis=0) / tot
    shape = (-1,) + (1,) * (sums.ndim - 1)
    resid = sums - counts.reshape(shape) * value
    se = np.sqrt(np.sum(resid**2, axis=0) * nb / max(nb - 1, 1)) / tot
    if np.ndim(value) == 0:
        value, se = float(value), float(se)
    return Estimate(value, se, nb)
