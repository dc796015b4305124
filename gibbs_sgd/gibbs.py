r"""The Gibbs law of a landscape, :math:`p_T(\Phi) = e^{-L(\Phi)/T}/Z(T)`, in the manner of scipy.stats.

The domain is where the chains live: :math:`\mathbb R^d` for a :class:`Quadratic` (closed
forms: the Gaussian :math:`\mathcal N(c, TH^{-1})`), the torus for :class:`Periodic` (closed
forms through Bessel functions: :math:`Z = (P e^{-A/T} I_0(A/T))^d`), and the landscape's
``box`` for every other landscape, where the box is assumed to hold all but a negligible part
of the mass (the simulation reports the samples that fall outside it; a fit warns when they
are not negligible).

Integrals over the box are computed by composite Gauss-Legendre quadrature (8 nodes per panel
and axis) for d = 1 and 2, doubling the panels until two successive levels agree to 1e-9
relative (the difference is returned as the error estimate), and by randomised quasi-Monte
Carlo (scrambled Sobol points, 16 independent scramblings whose scatter is the error
estimate) for d > 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .landscapes import Landscape, Periodic, Quadratic, as_float_array, check_int, check_positive, show

__all__ = ["Gibbs"]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
# Quadrature refinement: start with 64 panels per axis, double until two levels agree to
# _REL_TOL (or the cap: 2**14 panels in 1-D, 2**9 per axis in 2-D = 4e6 evaluations).
_START_PANELS = 64
_REL_TOL = 1e-9
_MAX_PANELS = {1: 2**14, 2: 2**9}
_QMC_POINTS = 2**16
_QMC_REPLICAS = 16


def _panel_nodes(lo: float, hi: float, panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [lo, hi]."""
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    x = (mid[:, None] + half[:, None] * _GL_NODES[None, :]).ravel()
    w = (half[:, None] * _GL_WEIGHTS[None, :]).ravel()
    return x, w


@dataclass(frozen=True)
class _Quadrature:
    """Nodes, weights and losses of a converged quadrature rule on the box."""

    points: np.ndarray  # (n, d)
    weights: np.ndarray  # (n,)
    loss: np.ndarray  # (n,)
    error: float  # relative error estimate of Z


def _log_moments(loss, weights, temperature):
    """log Z, E[L], Var[L] from a weighted rule (log-sum-exp shifted by the minimum loss)."""
    lmin = float(np.min(loss))
    e = np.exp(-(loss - lmin) / temperature) * weights
    z = float(e.sum())
    mean = float(np.sum(e * loss) / z)
    var = float(np.sum(e * (loss - mean) ** 2) / z)
    return math.log(z) - lmin / temperature, mean, var


def _check_edges(name: str, edges) -> np.ndarray:
    """Bin edges: a finite, strictly increasing float64 array (n + 1,), n >= 1."""
    e = as_float_array(name, edges, ndim=1)
    if e.shape[0] < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"{name} must be at least 2 finite, strictly increasing bin edges, got {show(e.tolist())}")
    return e


class Gibbs:
    r"""The Gibbs law :math:`e^{-L/T}/Z` of ``landscape`` at ``temperature``.

    Parameters
    ----------
    landscape : gibbs_sgd.landscapes.Landscape
    temperature : float > 0
        ``T``; or give ``inverse_temperature`` (``1/T``) instead.

    Attributes
    ----------
    log_partition : float, ``log Z``
    log_partition_error : float, estimated absolute error of ``log Z`` (0 for closed forms)

    Example
    -------
    >>> from gibbs_sgd.landscapes import Quadratic
    >>> g = Gibbs(Quadratic(2.0), temperature=0.5)
    >>> round(g.mean_loss(), 12)  # d T / 2
    0.25
    """

    def __init__(self, landscape: Landscape, temperature: float | None = None, *, inverse_temperature=None):
        if not isinstance(landscape, Landscape):
            raise TypeError(f"landscape must be a gibbs_sgd.landscapes.Landscape, got {type(landscape).__name__}")
        if (temperature is None) == (inverse_temperature is None):
            raise ValueError("give exactly one of temperature and inverse_temperature")
        if temperature is None:
            temperature = 1.0 / check_positive("inverse_temperature", inverse_temperature)
            if not 0.0 < temperature < math.inf:
                raise ValueError(f"inverse_temperature must be finite and in (0, inf) with a finite, nonzero "
                                 f"reciprocal, got {inverse_temperature}")
        self.landscape = landscape
        self.temperature = check_positive("temperature", temperature)
        self.dim = landscape.dim
        self._quad = None
        try:
            with np.errstate(all="ignore"):
                moments = self._moments()
        except (ArithmeticError, ValueError):  # log(0), overflow: T beyond float64 for this landscape
            moments = (math.nan,) * 4
        if not all(math.isfinite(v) for v in moments):
            name = "temperature" if inverse_temperature is None else "inverse_temperature"
            raise ValueError(f"{name} is outside the range where this landscape's Gibbs law is computable in float64 "
                             f"(log Z, E[L], Var[L], error = {[float(v) for v in moments]}), got "
                             f"{temperature if inverse_temperature is None else inverse_temperature}")
        self.log_partition, self._mean, self._var, self.log_partition_error = moments

    @property
    def inverse_temperature(self) -> float:
        return 1.0 / self.temperature

    def __repr__(self):
        return f"Gibbs({type(self.landscape).__name__}, temperature={self.temperature:.6g})"

    # -- normalisation and moments --------------------------------------------------------
    def _moments(self):
        land, t = self.landscape, self.temperature
        d = self.dim
        if isinstance(land, Quadratic):
            _, logdet = np.linalg.slogdet(land.hessian)
            logz = 0.5 * d * math.log(2 * math.pi * t) - 0.5 * logdet - land.offset / t
            return logz, land.offset + 0.5 * d * t, 0.5 * d * t * t, 0.0
        if isinstance(land, Periodic):
            k = land.amplitude / t
            # log I0(k) = log i0e(k) + k; E[1 - cos] = 1 - I1/I0; Var[cos] = (1 + I2/I0)/2 - (I1/I0)^2
            r1 = special.i1e(k) / special.i0e(k)
            r2 = special.ive(2, k) / special.i0e(k)
            logz = d * (math.log(land.period) + math.log(special.i0e(k)))
            mean = d * land.amplitude * (1.0 - r1)
            var = d * land.amplitude**2 * (0.5 * (1.0 + r2) - r1 * r1)
            return float(logz), float(mean), float(var), 0.0
        q = self._quadrature()
        logz, mean, var = _log_moments(q.loss, q.weights, t)
        return logz, mean, var, q.error

    def _quadrature(self) -> _Quadrature:
        if self._quad is not None:
            return self._quad
        land, t, d = self.landscape, self.temperature, self.dim
        box = land.box
        if d <= 2:
            panels = _START_PANELS
            prev = None
            while True:
                axes = [_panel_nodes(box[i, 0], box[i, 1], panels) for i in range(d)]
                if d == 1:
                    pts, w = axes[0][0][:, None], axes[0][1]
                else:
                    gx, gy = np.meshgrid(axes[0][0], axes[1][0], indexing="ij")
                    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
                    w = np.outer(axes[0][1], axes[1][1]).ravel()
                loss = land.loss(pts)
                logz = _log_moments(loss, w, t)[0]
                if prev is not None and (abs(logz - prev) < _REL_TOL or panels >= _MAX_PANELS[d]):
                    self._quad = _Quadrature(pts, w, loss, abs(logz - prev))
                    return self._quad
                prev = logz
                panels *= 2
        # d > 2: randomised QMC over the box
        vol = float(np.prod(box[:, 1] - box[:, 0]))
        pts_all, loss_all, logzs = [], [], []
        for r in range(_QMC_REPLICAS):
            u = stats.qmc.Sobol(d, scramble=True, seed=r).random(_QMC_POINTS // _QMC_REPLICAS * 1)
            pts = box[:, 0] + u * (box[:, 1] - box[:, 0])
            loss = land.loss(pts)
            w = np.full(len(pts), vol / len(pts))
            logzs.append(_log_moments(loss, w, t)[0])
            pts_all.append(pts)
            loss_all.append(loss)
        pts = np.concatenate(pts_all)
        loss = np.concatenate(loss_all)
        w = np.full(len(pts), vol / len(pts))
        err = float(np.std(logzs, ddof=1) / math.sqrt(_QMC_REPLICAS))
        self._quad = _Quadrature(pts, w, loss, err)
        return self._quad

    def mean_loss(self) -> float:
        """``E_T[L]``."""
        return self._mean

    def loss_variance(self) -> float:
        """``Var_T[L]`` (so that ``d E_T[L] / dT = Var_T[L] / T**2``)."""
        return self._var

    # -- densities -------------------------------------------------------------------------
    def logpdf(self, x) -> np.ndarray:
        """``-L(x)/T - log Z``; ``x`` of shape (..., d) (or (...) when d = 1)."""
        return -np.asarray(self.landscape.loss(x)) / self.temperature - self.log_partition

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.logpdf(x))

    # -- histogram bins ------------------------------------------------------------------
    def bin_probabilities(self, edges) -> np.ndarray:
        """Probability of each histogram bin, integrated over the bin (not the density at its centre).

        Parameters
        ----------
        edges : array (n + 1,) for d = 1, or a pair of such arrays for the joint bins of d = 2;
            each finite and strictly increasing, n >= 1.
        """
        if self.dim == 1:
            one = isinstance(edges, (list, tuple)) and len(edges) == 1 and np.ndim(edges[0]) == 1
            return self._bins_1d(_check_edges("edges", edges[0] if one else edges))
        if self.dim == 2:
            if isinstance(edges, (str, bytes)) or not hasattr(edges, "__len__") or len(edges) != 2:
                raise TypeError(f"edges must be a pair of edge arrays (x edges, y edges) for d = 2, got {show(edges)}")
            return self._bins_2d(_check_edges("edges[0]", edges[0]), _check_edges("edges[1]", edges[1]))
        raise ValueError("bin probabilities are available for d = 1 and 2; use the loss histogram for d > 2")

    def _bins_1d(self, e: np.ndarray) -> np.ndarray:
        if isinstance(self.landscape, Quadratic):
            sd = math.sqrt(self.temperature / self.landscape.hessian[0, 0])
            return np.diff(stats.norm.cdf(e, loc=self.landscape.center[0], scale=sd))
        # Each bin split into enough Gauss-Legendre panels to resolve the narrowest feature: the
        # converged quadrature's panel width bounds it.
        nsub = max(4, int(math.ceil((e[1] - e[0]) / self._panel_width(0))))
        x, w = _panel_nodes(0.0, 1.0, nsub)
        widths = np.diff(e)
        pts = e[:-1, None] + widths[:, None] * x[None, :]
        dens = np.exp(-self.landscape.loss(pts.ravel()).reshape(pts.shape) / self.temperature - self.log_partition)
        return np.sum(dens * w[None, :], axis=1) * widths

    def _panel_width(self, axis: int) -> float:
        """A Gauss-Legendre panel width that resolves the law's narrowest feature on ``axis``."""
        land, t = self.landscape, self.temperature
        box = land.box[axis]
        coarse = (box[1] - box[0]) / _START_PANELS
        if isinstance(land, Quadratic):
            return min(coarse, 0.5 * math.sqrt(t / float(np.max(np.linalg.eigvalsh(land.hessian)))))
        if isinstance(land, Periodic):
            curvature = land.amplitude * (2 * math.pi / land.period) ** 2
            return min(coarse, 0.5 * math.sqrt(t / curvature))
        if self.dim > 2:
            return coarse
        q = self._quadrature()
        n_axis = int(round(len(q.weights) ** (1 / self.dim))) // len(_GL_NODES)
        return (box[1] - box[0]) / n_axis

    def _bins_2d(self, ex: np.ndarray, ey: np.ndarray) -> np.ndarray:
        nsx = max(2, int(math.ceil((ex[1] - ex[0]) / self._panel_width(0))))
        nsy = max(2, int(math.ceil((ey[1] - ey[0]) / self._panel_width(1))))
        ux, wx = _panel_nodes(0.0, 1.0, nsx)
        uy, wy = _panel_nodes(0.0, 1.0, nsy)
        out = np.empty((len(ex) - 1, len(ey) - 1))
        dx, dy = np.diff(ex), np.diff(ey)
        py = ey[:-1, None] + dy[:, None] * uy[None, :]  # (ny, qy)
        for i in range(len(ex) - 1):
            px = ex[i] + dx[i] * ux  # (qx,)
            gx = np.broadcast_to(px[None, :, None], (len(ey) - 1, len(px), py.shape[1]))
            gy = np.broadcast_to(py[:, None, :], gx.shape)
            pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
            dens = np.exp(-self.landscape.loss(pts).reshape(gx.shape) / self.temperature - self.log_partition)
            out[i] = np.einsum("jab,a,b->j", dens, wx, wy) * dx[i] * dy
        return out

    def loss_bin_probabilities(self, edges) -> np.ndarray:
        r"""Probability of each bin of the loss histogram.

        Exact for a quadratic (:math:`(L - L_0)/T \sim \Gamma(d/2)`); from the quadrature rule
        otherwise (binning the weighted nodes, accurate to the rule's resolution). ``edges``:
        array (n + 1,), finite and strictly increasing.
        """
        e = _check_edges("edges", edges)
        land = self.landscape
        if isinstance(land, Quadratic):
            return np.diff(stats.gamma.cdf((e - land.offset) / self.temperature, a=0.5 * self.dim))
        q = self._quadrature()
        lmin = float(np.min(q.loss))
        mass = np.exp(-(q.loss - lmin) / self.temperature) * q.weights
        mass /= mass.sum()
        return np.histogram(q.loss, bins=e, weights=mass)[0]

    # -- one-dimensional laws ------------------------------------------------------------
    def _cdf_table(self):
        if self.dim != 1:
            raise ValueError("cdf, ppf and 1-D sampling need a 1-D landscape")
        if not hasattr(self, "_cdf_tab"):
            box = self.landscape.box[0]
            x = np.linspace(box[0], box[1], 2**16 + 1)
            probs = self._bins_1d(x)
            c = np.concatenate([[0.0], np.cumsum(probs)])
            self._cdf_tab = (x, c / c[-1])
        return self._cdf_tab

    def cdf(self, x) -> np.ndarray:
        """Cumulative distribution on the domain (1-D; quadrature-tabulated, error ~1e-9)."""
        if self.dim == 1 and isinstance(self.landscape, Quadratic):
            sd = math.sqrt(self.temperature / self.landscape.hessian[0, 0])
            return stats.norm.cdf(x, loc=self.landscape.center[0], scale=sd)
        xs, c = self._cdf_table()
        return np.interp(x, xs, c)

    def ppf(self, q) -> np.ndarray:
        """Inverse of :meth:`cdf` (1-D)."""
        q = np.asarray(q, dtype=np.float64)
        if not np.all((q >= 0) & (q <= 1)):
            raise ValueError("q must lie in [0, 1] (no nan)")
        if self.dim == 1 and isinstance(self.landscape, Quadratic):
            sd = math.sqrt(self.temperature / self.landscape.hessian[0, 0])
            return stats.norm.ppf(q, loc=self.landscape.center[0], scale=sd)
        xs, c = self._cdf_table()
        return np.interp(q, c, xs)

    def rvs(self, size, random_state=None) -> np.ndarray:
        """Independent samples, shape (size, d) (d = 1: shape (size,)).

        1-D: inverse transform on the tabulated cdf. 2-D: a cell of a fine grid drawn by its
        mass, then a point inside it by rejection against the exact density.
        Quadratic and periodic landscapes are sampled exactly in any dimension.
        """
        size = check_int("size", size, 0)
        rng = np.random.default_rng(random_state)
        land = self.landscape
        if isinstance(land, Quadratic):
            z = rng.standard_normal((size, self.dim))
            chol = np.linalg.cholesky(np.linalg.inv(land.hessian) * self.temperature)
            out = land.center + z @ chol.T
            return out[:, 0] if self.dim == 1 else out
        if isinstance(land, Periodic):
            k = land.amplitude / self.temperature
            out = stats.vonmises.rvs(k, size=(size, self.dim), random_state=rng) * land.period / (2 * math.pi)
            return out[:, 0] if self.dim == 1 else out
        if self.dim == 1:
            return self.ppf(rng.uniform(size=size))
        if self.dim == 2:
            return self._rvs_2d(size, rng)
        raise ValueError("rvs is available for d <= 2, and for quadratic and periodic landscapes in any dimension")

    def _rvs_2d(self, size, rng):
        box = self.landscape.box
        n = 512
        ex = np.linspace(box[0, 0], box[0, 1], n + 1)
        ey = np.linspace(box[1, 0], box[1, 1], n + 1)
        cells = self._bins_2d(ex, ey).ravel()
        cells = np.maximum(cells, 0.0) / cells.sum()
        out = np.empty((size, 2))
        # Each draw picks a cell by its exact mass, then a point inside *that* cell by rejection
        # against the density (redrawing rejected points in the same cell, so that cells whose
        # density varies more are not under-represented).
        idx = rng.choice(cells.size, size=size, p=cells)
        i, j = np.divmod(idx, n)
        corners = [np.stack([ex[i + a], ey[j + b]], axis=1) for a in (0, 1) for b in (0, 1)]
        centre = np.stack([0.5 * (ex[i] + ex[i + 1]), 0.5 * (ey[j] + ey[j + 1])], axis=1)
        # envelope: the largest density among the cell's corners and centre, with 50% headroom
        env = 1.5 * np.max([self.pdf(c) for c in corners + [centre]], axis=0)
        pending = np.arange(size)
        while pending.size:
            u = rng.uniform(size=(pending.size, 2))
            pts = np.stack([ex[i[pending]] + u[:, 0] * (ex[1] - ex[0]),
                            ey[j[pending]] + u[:, 1] * (ey[1] - ey[0])], axis=1)
            keep = rng.uniform(size=pending.size) * env[pending] <= self.pdf(pts)
            out[pending[keep]] = pts[keep]
            pending = pending[~keep]
        return out
