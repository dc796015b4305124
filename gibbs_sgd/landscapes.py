"""Loss landscapes ``L(phi)``, ``phi`` in R^d: loss, gradient and Laplacian written once.

Each landscape is a frozen dataclass of its numbers plus three plain scalar Numba functions
with one calling convention, compiled into every backend's kernels:

* ``loss(x, p) -> float``        -- ``x``: float array (d,), ``p``: the packed parameters,
* ``grad(x, p, out) -> None``    -- writes ``dL/dx`` into ``out`` (d,),
* ``laplacian(x, p) -> float``   -- ``sum_k d2L/dx_k2``.

The same functions evaluate the landscape from Python (:meth:`Landscape.loss` and friends),
so the histogram analysis, the theory and the kernels can never disagree about what ``L`` is.

Every landscape has a ``box`` (shape (d, 2), the default histogram range), a ``minimum``
(the global minimiser where known, else None), a ``period`` (histogram coordinates are taken
modulo it; None where not periodic), and a ``divergence_radius``: a chain with a non-finite
coordinate or ``max_k |phi_k - centre_k| > divergence_radius`` (centre: the box's middle) is
declared diverged, frozen and reported.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ._model import (
    array_eq_dataclass,
    check_positive,
    describe,
    freeze_array,
    set_frozen,
)

__all__ = [
    "Landscape",
    "Quadratic",
    "DoubleWell",
    "Periodic",
    "MuellerBrown",
    "GaussianMixture",
    "Rosenbrock",
    "Custom",
    "from_description",
]

# A chain further than this many box half-widths from the box centre has run away: at
# 10^4 half-widths every landscape here is so steep (or so flat) that no stationary mass is
# there, while the state is still far from float64 overflow, so the bound flags divergence
# early without ever cutting into a real stationary law.
_RUNAWAY_HALF_WIDTHS = 1.0e4


class Landscape:
    """Base class: numpy-level evaluation through the same scalar kernel functions."""

    #: names of the kernel functions in this module, set by each subclass
    _kernel_names: tuple[str, str, str] = ("", "", "")

    # -- the kernel contract -------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def kernel_params(self) -> np.ndarray:
        raise NotImplementedError

    def kernel_functions(self) -> dict:
        """``{"loss": ..., "grad": ..., "laplacian": ...}`` as ``"module:name"`` strings."""
        loss, grad, lap = self._kernel_names
        mod = __name__
        return {"loss": f"{mod}:{loss}", "grad": f"{mod}:{grad}", "laplacian": f"{mod}:{lap}"}

    def structure_key(self) -> tuple:
        """What the compiled kernel depends on (never the numbers in ``kernel_params``)."""
        return (type(self).__name__, self.dim)

    # -- geometry ------------------------------------------------------------------------
    box: np.ndarray
    period = None
    minimum = None

    @property
    def divergence_radius(self) -> float:
        half = 0.5 * float(np.max(self.box[:, 1] - self.box[:, 0]))
        return _RUNAWAY_HALF_WIDTHS * half

    def describe(self) -> dict:
        return describe(self)

    # -- numpy-level evaluation ----------------------------------------------------------
    def _points(self, x) -> tuple[np.ndarray, tuple]:
        x = np.asarray(x, dtype=np.float64)
        d = self.dim
        if d == 1 and (x.ndim == 0 or x.shape[-1] != 1):
            shape = x.shape
            return np.ascontiguousarray(x.reshape(-1, 1)), shape
        if x.shape[-1] != d:
            raise ValueError(f"x must have last dimension {d}, got shape {x.shape}")
        return np.ascontiguousarray(x.reshape(-1, d)), x.shape[:-1]

    def _resolve(self, role):
        f = self.kernel_functions()[role]
        if isinstance(f, str):
            mod, name = f.split(":")
            f = globals()[name] if mod == __name__ else getattr(__import__(mod, fromlist=[name]), name)
        return f

    def loss(self, x) -> np.ndarray:
        """``L(x)``; ``x`` of shape (..., d) (or (...) when d == 1); returns shape (...)."""
        pts, shape = self._points(x)
        out = np.empty(pts.shape[0])
        _map_scalar(self._resolve("loss"), pts, self.kernel_params(), out)
        return out.reshape(shape) if shape else float(out[0])

    def laplacian(self, x) -> np.ndarray:
        """``sum_k d2L/dx_k2`` at ``x`` (shape as :meth:`loss`)."""
        pts, shape = self._points(x)
        out = np.empty(pts.shape[0])
        _map_scalar(self._resolve("laplacian"), pts, self.kernel_params(), out)
        return out.reshape(shape) if shape else float(out[0])

    def grad(self, x) -> np.ndarray:
        """``dL/dx`` at ``x``; shape (..., d) (or (...) when d == 1, as ``x``)."""
        pts, shape = self._points(x)
        out = np.empty_like(pts)
        _map_vector(self._resolve("grad"), pts, self.kernel_params(), out)
        if self.dim == 1 and (np.ndim(x) == 0 or np.shape(x)[-1] != 1):
            return out[:, 0].reshape(shape) if shape else float(out[0, 0])
        return out.reshape(shape + (self.dim,)) if shape else out[0]


@njit
def _map_scalar(f, pts, p, out):
    for i in range(pts.shape[0]):
        out[i] = f(pts[i], p)


@njit
def _map_vector(f, pts, p, out):
    for i in range(pts.shape[0]):
        f(pts[i], p, out[i])


def _box(name, value, default) -> np.ndarray:
    box = np.asarray(default if value is None else value, dtype=np.float64)
    if box.ndim == 1:
        box = box.reshape(1, 2) if box.shape == (2,) else box
    d = default.shape[0]
    box = np.broadcast_to(box, (d, 2)).copy() if box.shape == (1, 2) else box
    if box.shape != (d, 2) or not np.all(np.isfinite(box)) or np.any(box[:, 1] <= box[:, 0]):
        raise ValueError(f"{name} must be finite (lo, hi) pairs with lo < hi, shape ({d}, 2); got {value!r}")
    box.setflags(write=False)
    return box


# =========================================================================================
# Quadratic
# =========================================================================================
@njit(cache=True, inline="always")
def _quadratic_loss(x, p):
    # p = [d, H (d*d, row-major), c (d), offset]
    d = x.shape[0]
    acc = 0.0
    for i in range(d):
        ri = x[i] - p[1 + d * d + i]
        s = 0.0
        for j in range(d):
            s += p[1 + i * d + j] * (x[j] - p[1 + d * d + j])
        acc += ri * s
    return 0.5 * acc + p[1 + d * d + d]


@njit(cache=True, inline="always")
def _quadratic_grad(x, p, out):
    d = x.shape[0]
    for i in range(d):
        s = 0.0
        for j in range(d):
            s += p[1 + i * d + j] * (x[j] - p[1 + d * d + j])
        out[i] = s


@njit(cache=True, inline="always")
def _quadratic_laplacian(x, p):
    d = x.shape[0]
    t = 0.0
    for i in range(d):
        t += p[1 + i * d + i]
    return t


@array_eq_dataclass
@dataclass(frozen=True, eq=False)
class Quadratic(Landscape):
    r"""Quadratic bowl :math:`L(\Phi) = \tfrac12 (\Phi - c)^\top H (\Phi - c) + L_0`.

    Gradient :math:`H(\Phi - c)`, Laplacian :math:`\operatorname{tr} H`. The exact Gibbs law at
    temperature T is :math:`\mathcal N(c, T H^{-1})`, and for linear optimizers the exact
    finite-learning-rate stationary law is known (``gibbs_sgd.theory``).

    Parameters
    ----------
    curvature : float, array (d,) or array (d, d)
        ``h`` (d = 1), the diagonal of ``H``, or a symmetric positive-definite ``H``.
    center : float or array (d,), default 0
        The minimiser ``c``.
    offset : float, default 0
        ``L_0``, the loss at the minimum (data-set models use it for the irreducible loss).
    box : array (d, 2), optional
        Histogram range; default ``c +- 5 sqrt(diag H^-1)`` (5 standard deviations at T = 1).

    Example
    -------
    >>> Quadratic(2.0).loss(1.0)
    1.0
    """

    curvature: object
    center: object = 0.0
    offset: float = 0.0
    box: object = None
    hessian: np.ndarray = field(init=False, repr=False, compare=False)

    _kernel_names = ("_quadratic_loss", "_quadratic_grad", "_quadratic_laplacian")

    def __post_init__(self):
        h = np.array(self.curvature, dtype=np.float64)
        if h.ndim == 0:
            h = h.reshape(1, 1)
        elif h.ndim == 1:
            h = np.diag(h)
        if h.ndim != 2 or h.shape[0] != h.shape[1] or not 1 <= h.shape[0] <= 8:
            raise ValueError(f"curvature must be a scalar, a vector or a square matrix of size 1..8, got shape {h.shape}")
        if not np.all(np.isfinite(h)) or not np.allclose(h, h.T, rtol=1e-12, atol=0):
            raise ValueError("curvature must be finite and symmetric")
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            raise ValueError("curvature must be positive definite (all eigenvalues > 0)") from None
        d = h.shape[0]
        c = np.broadcast_to(np.asarray(self.center, dtype=np.float64), (d,)).copy()
        set_frozen(self, "center", freeze_array("center", c))
        set_frozen(self, "curvature", freeze_array("curvature", self.curvature))
        set_frozen(self, "hessian", freeze_array("hessian", h))
        set_frozen(self, "offset", float(self.offset))
        sd = np.sqrt(np.diag(np.linalg.inv(h)))
        set_frozen(self, "box", _box("box", self.box, np.stack([c - 5 * sd, c + 5 * sd], axis=1)))

    @property
    def dim(self) -> int:
        return self.hessian.shape[0]

    @property
    def minimum(self):
        return self.center

    def kernel_params(self):
        return np.concatenate([[self.dim], self.hessian.ravel(), self.center, [self.offset]])


# =========================================================================================
# Double well
# =========================================================================================
@njit(cache=True, inline="always")
def _double_well_loss(x, p):
    # p = [barrier, width, tilt, 1/width] (the reciprocal saves a division per call)
    u = x[0] * p[3]
    return p[0] * (u * u - 1.0) ** 2 + p[2] * u


@njit(cache=True, inline="always")
def _double_well_grad(x, p, out):
    u = x[0] * p[3]
    out[0] = (4.0 * p[0] * u * (u * u - 1.0) + p[2]) * p[3]


@njit(cache=True, inline="always")
def _double_well_laplacian(x, p):
    u = x[0] * p[3]
    return p[0] * (12.0 * u * u - 4.0) * (p[3] * p[3])


@dataclass(frozen=True)
class DoubleWell(Landscape):
    r"""Tilted double well :math:`L(\Phi) = \Delta\,((\Phi/a)^2 - 1)^2 + \tau\,\Phi/a` (d = 1).

    Minima near :math:`\Phi = \pm a`, separated by a barrier of height :math:`\Delta` at 0
    (exactly, when the tilt :math:`\tau` is 0); the tilt raises the right well by about
    :math:`2\tau`. Gradient :math:`(4\Delta u(u^2-1) + \tau)/a` and Laplacian
    :math:`\Delta(12u^2 - 4)/a^2` with :math:`u = \Phi/a`.

    Parameters
    ----------
    barrier : float > 0, default 1
    width : float > 0, default 1 (the minima's distance ``a`` from 0)
    tilt : float, default 0
    box : array (1, 2), optional; default ``[-2a, 2a]``, where L is already 9 barrier heights up.

    Example
    -------
    >>> DoubleWell(barrier=1.0).loss(0.0)
    1.0
    """

    barrier: float = 1.0
    width: float = 1.0
    tilt: float = 0.0
    box: object = None

    _kernel_names = ("_double_well_loss", "_double_well_grad", "_double_well_laplacian")

    def __post_init__(self):
        set_frozen(self, "barrier", check_positive("barrier", self.barrier))
        set_frozen(self, "width", check_positive("width", self.width))
        if not np.isfinite(self.tilt):
            raise ValueError(f"tilt must be finite, got {self.tilt}")
        set_frozen(self, "tilt", float(self.tilt))
        a = self.width
        set_frozen(self, "box", _box("box", self.box, np.array([[-2.0 * a, 2.0 * a]])))

    dim = 1

    @property
    def minimum(self):
        # The global minimiser solves 4 D u (u^2 - 1) + tau = 0 on the deeper (left for tau > 0) side.
        roots = np.roots([4 * self.barrier, 0.0, -4 * self.barrier, self.tilt])
        roots = roots[np.abs(roots.imag) < 1e-12].real * self.width
        return np.array([roots[np.argmin(self.loss(roots))]])

    def kernel_params(self):
        return np.array([self.barrier, self.width, self.tilt, 1.0 / self.width])


# =========================================================================================
# Periodic
# =========================================================================================
@njit(cache=True, inline="always")
def _periodic_loss(x, p):
    # p = [amplitude, period]
    k = 2.0 * np.pi / p[1]
    s = 0.0
    for i in range(x.shape[0]):
        s += 1.0 - math.cos(k * x[i])
    return p[0] * s


@njit(cache=True, inline="always")
def _periodic_grad(x, p, out):
    k = 2.0 * np.pi / p[1]
    for i in range(x.shape[0]):
        out[i] = p[0] * k * math.sin(k * x[i])


@njit(cache=True, inline="always")
def _periodic_laplacian(x, p):
    k = 2.0 * np.pi / p[1]
    s = 0.0
    for i in range(x.shape[0]):
        s += math.cos(k * x[i])
    return p[0] * k * k * s


@dataclass(frozen=True)
class Periodic(Landscape):
    r"""Cosine landscape on a torus, :math:`L(\Phi) = A \sum_k (1 - \cos(2\pi\Phi_k/P))`.

    Minima at the lattice :math:`P\mathbb Z^d`; histograms are taken modulo the period on
    ``[-P/2, P/2)``, so the stationary law lives on the torus and its partition function is
    :math:`Z = (P\, e^{-A/T} I_0(A/T))^d` (modified Bessel function :math:`I_0`). Chains never
    diverge by distance here (diffusing along the lattice is legitimate); only non-finite
    states count as divergent.

    Parameters
    ----------
    amplitude : float > 0, default 1
    period : float > 0, default 2 pi
    dim : int in [1, 8], default 1

    Example
    -------
    >>> round(Periodic(amplitude=1.0).loss(np.pi), 12)
    2.0
    """

    amplitude: float = 1.0
    period: float = 2.0 * math.pi
    dim: int = 1
    box: np.ndarray = field(init=False, repr=False, compare=False)

    _kernel_names = ("_periodic_loss", "_periodic_grad", "_periodic_laplacian")

    def __post_init__(self):
        set_frozen(self, "amplitude", check_positive("amplitude", self.amplitude))
        set_frozen(self, "period", check_positive("period", self.period))
        if not isinstance(self.dim, (int, np.integer)) or not 1 <= self.dim <= 8:
            raise ValueError(f"dim must be an integer in [1, 8], got {self.dim!r}")
        half = 0.5 * self.period
        set_frozen(self, "box", _box("box", None, np.tile([-half, half], (self.dim, 1))))

    @property
    def minimum(self):
        return np.zeros(self.dim)

    @property
    def divergence_radius(self) -> float:
        return math.inf

    def kernel_params(self):
        return np.array([self.amplitude, self.period])


# =========================================================================================
# Mueller-Brown
# =========================================================================================
# The four Gaussian terms of Mueller & Brown, Theor. Chim. Acta 53, 75 (1979), table I.
_MB_A = np.array([-200.0, -100.0, -170.0, 15.0])
_MB_a = np.array([-1.0, -1.0, -6.5, 0.7])
_MB_b = np.array([0.0, 0.0, 11.0, 0.6])
_MB_c = np.array([-10.0, -10.0, -6.5, 0.7])
_MB_X0 = np.array([1.0, 0.0, -0.5, -1.0])
_MB_Y0 = np.array([0.0, 0.5, 1.5, 1.0])
_MB_PARAMS = np.concatenate([_MB_A, _MB_a, _MB_b, _MB_c, _MB_X0, _MB_Y0])


@njit(cache=True, inline="always")
def _mueller_brown_loss(x, p):
    # p = [scale, A(4), a(4), b(4), c(4), x0(4), y0(4)]
    s = 0.0
    for i in range(4):
        dx = x[0] - p[17 + i]
        dy = x[1] - p[21 + i]
        s += p[1 + i] * math.exp(p[5 + i] * dx * dx + p[9 + i] * dx * dy + p[13 + i] * dy * dy)
    return p[0] * s


@njit(cache=True, inline="always")
def _mueller_brown_grad(x, p, out):
    gx = 0.0
    gy = 0.0
    for i in range(4):
        dx = x[0] - p[17 + i]
        dy = x[1] - p[21 + i]
        e = p[1 + i] * math.exp(p[5 + i] * dx * dx + p[9 + i] * dx * dy + p[13 + i] * dy * dy)
        gx += e * (2.0 * p[5 + i] * dx + p[9 + i] * dy)
        gy += e * (p[9 + i] * dx + 2.0 * p[13 + i] * dy)
    out[0] = p[0] * gx
    out[1] = p[0] * gy


@njit(cache=True, inline="always")
def _mueller_brown_laplacian(x, p):
    s = 0.0
    for i in range(4):
        dx = x[0] - p[17 + i]
        dy = x[1] - p[21 + i]
        e = p[1 + i] * math.exp(p[5 + i] * dx * dx + p[9 + i] * dx * dy + p[13 + i] * dy * dy)
        qx = 2.0 * p[5 + i] * dx + p[9 + i] * dy
        qy = p[9 + i] * dx + 2.0 * p[13 + i] * dy
        s += e * (qx * qx + qy * qy + 2.0 * p[5 + i] + 2.0 * p[13 + i])
    return p[0] * s


@dataclass(frozen=True)
class MuellerBrown(Landscape):
    r"""The Mueller-Brown surface (d = 2), :math:`L = s \sum_{i=1}^4 A_i \exp(a_i \delta x_i^2 + b_i \delta x_i \delta y_i + c_i \delta y_i^2)`.

    :math:`\delta x_i = x - x_i^0`, :math:`\delta y_i = y - y_i^0`, with the constants of
    Mueller & Brown (1979): three minima, the deepest :math:`L \approx -146.7 s` at
    (-0.558, 1.442), and two saddles. Gradient and Laplacian are analytic. ``scale`` ``s``
    rescales energies (so temperatures of order 1 correspond to ``s`` about 0.01 .. 0.1).

    Parameters
    ----------
    scale : float > 0, default 1
    box : array (2, 2), optional; default x in [-1.5, 1.2], y in [-0.5, 2.0] (all three minima).
    """

    scale: float = 1.0
    box: object = None

    _kernel_names = ("_mueller_brown_loss", "_mueller_brown_grad", "_mueller_brown_laplacian")

    def __post_init__(self):
        set_frozen(self, "scale", check_positive("scale", self.scale))
        set_frozen(self, "box", _box("box", self.box, np.array([[-1.5, 1.2], [-0.5, 2.0]])))

    dim = 2

    @property
    def minimum(self):
        return np.array([-0.55822363, 1.44172584])

    def kernel_params(self):
        return np.concatenate([[self.scale], _MB_PARAMS])


# =========================================================================================
# Gaussian mixture
# =========================================================================================
@njit(cache=True, inline="always")
def _gm_quad(x, p, i, d):
    # p = [K, d, then per component: log c, mu (d), P (d*d)]
    base = 2 + i * (1 + d + d * d)
    q = 0.0
    for a in range(d):
        ra = x[a] - p[base + 1 + a]
        s = 0.0
        for b in range(d):
            s += p[base + 1 + d + a * d + b] * (x[b] - p[base + 1 + b])
        q += ra * s
    return p[base] - 0.5 * q


@njit(cache=True, inline="always")
def _gm_max(x, p):
    k = int(p[0])
    d = int(p[1])
    m = -np.inf
    for i in range(k):
        m = max(m, _gm_quad(x, p, i, d))
    return m


@njit(cache=True, inline="always")
def _gaussian_mixture_loss(x, p):
    k = int(p[0])
    d = int(p[1])
    m = _gm_max(x, p)
    s = 0.0
    for i in range(k):
        s += math.exp(_gm_quad(x, p, i, d) - m)
    return -(m + math.log(s))


@njit(cache=True, inline="always")
def _gaussian_mixture_grad(x, p, out):
    # dL/dx = sum_i r_i P_i (x - mu_i), r_i the responsibilities.
    k = int(p[0])
    d = int(p[1])
    m = _gm_max(x, p)
    for a in range(d):
        out[a] = 0.0
    tot = 0.0
    for i in range(k):
        w = math.exp(_gm_quad(x, p, i, d) - m)
        tot += w
        base = 2 + i * (1 + d + d * d)
        for a in range(d):
            s = 0.0
            for b in range(d):
                s += p[base + 1 + d + a * d + b] * (x[b] - p[base + 1 + b])
            out[a] += w * s
    for a in range(d):
        out[a] /= tot


@njit(cache=True, inline="always")
def _gaussian_mixture_laplacian(x, p):
    # Delta L = sum_i r_i (tr P_i - |P_i (x - mu_i)|^2) + |grad L|^2. No scratch array (device
    # code cannot allocate): |grad L|^2 is summed coordinate by coordinate, recomputing the
    # responsibilities, which costs d x K extra exponentials on the sampled steps only.
    k = int(p[0])
    d = int(p[1])
    m = _gm_max(x, p)
    tot = 0.0
    acc = 0.0
    for i in range(k):
        w = math.exp(_gm_quad(x, p, i, d) - m)
        tot += w
        base = 2 + i * (1 + d + d * d)
        tr = 0.0
        nrm = 0.0
        for a in range(d):
            tr += p[base + 1 + d + a * d + a]
            s = 0.0
            for b in range(d):
                s += p[base + 1 + d + a * d + b] * (x[b] - p[base + 1 + b])
            nrm += s * s
        acc += w * (tr - nrm)
    g2 = 0.0
    for a in range(d):
        ga = 0.0
        for i in range(k):
            w = math.exp(_gm_quad(x, p, i, d) - m)
            base = 2 + i * (1 + d + d * d)
            s = 0.0
            for b in range(d):
                s += p[base + 1 + d + a * d + b] * (x[b] - p[base + 1 + b])
            ga += w * s
        g2 += (ga / tot) ** 2
    return acc / tot + g2


@array_eq_dataclass
@dataclass(frozen=True, eq=False)
class GaussianMixture(Landscape):
    r"""Negative log of a Gaussian mixture, :math:`L(\Phi) = -\log \sum_i w_i \mathcal N(\Phi; \mu_i, \Sigma_i)`.

    With responsibilities :math:`r_i(\Phi)` and precisions :math:`P_i = \Sigma_i^{-1}`:
    :math:`\nabla L = \sum_i r_i P_i(\Phi-\mu_i)` and
    :math:`\Delta L = \sum_i r_i(\operatorname{tr} P_i - |P_i(\Phi-\mu_i)|^2) + |\nabla L|^2`.
    Evaluated with a log-sum-exp, so far tails stay finite. At T = 1 the Gibbs law *is* the
    mixture.

    Parameters
    ----------
    weights : array (K,), positive (normalised internally)
    means : array (K, d)
    covariances : float, array (K,) of variances, or array (K, d, d) SPD matrices
    box : array (d, 2), optional; default: the means' range +- 4 standard deviations.
    """

    weights: object
    means: object
    covariances: object = 1.0
    box: object = None
    _packed: np.ndarray = field(init=False, repr=False, compare=False)

    _kernel_names = ("_gaussian_mixture_loss", "_gaussian_mixture_grad", "_gaussian_mixture_laplacian")

    def __post_init__(self):
        w = np.atleast_1d(np.asarray(self.weights, dtype=np.float64))
        mu = np.asarray(self.means, dtype=np.float64)
        if mu.ndim == 1:
            mu = mu.reshape(-1, 1)
        k, d = mu.shape
        if w.shape != (k,) or np.any(w <= 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be {k} positive numbers (one per mean), got {self.weights!r}")
        if not 1 <= d <= 8:
            raise ValueError(f"means must have 1..8 columns (the dimension), got {d}")
        cov = np.asarray(self.covariances, dtype=np.float64)
        if cov.ndim == 0:
            cov = np.broadcast_to(cov, (k,))
        if cov.ndim == 1:
            if cov.shape != (k,):
                raise ValueError(f"covariances as variances must have shape ({k},), got {cov.shape}")
            cov = cov[:, None, None] * np.eye(d)
        if cov.shape != (k, d, d):
            raise ValueError(f"covariances must be a scalar, shape ({k},) or ({k}, {d}, {d}); got {cov.shape}")
        packed = [float(k), float(d)]
        for i in range(k):
            try:
                chol = np.linalg.cholesky(cov[i])
            except np.linalg.LinAlgError:
                raise ValueError(f"covariances[{i}] must be symmetric positive definite") from None
            logdet = 2.0 * np.sum(np.log(np.diag(chol)))
            logc = math.log(w[i] / w.sum()) - 0.5 * (d * math.log(2 * math.pi) + logdet)
            packed += [logc, *mu[i], *np.linalg.inv(cov[i]).ravel()]
        set_frozen(self, "weights", freeze_array("weights", w / w.sum()))
        set_frozen(self, "means", freeze_array("means", mu))
        set_frozen(self, "covariances", freeze_array("covariances", cov))
        set_frozen(self, "_packed", freeze_array("packed", packed))
        sd = np.sqrt(np.max(np.diagonal(cov, axis1=1, axis2=2), axis=0))
        default = np.stack([mu.min(axis=0) - 4 * sd, mu.max(axis=0) + 4 * sd], axis=1)
        set_frozen(self, "box", _box("box", self.box, default))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def kernel_params(self):
        return self._packed.copy()


# =========================================================================================
# Rosenbrock
# =========================================================================================
@njit(cache=True, inline="always")
def _rosenbrock_loss(x, p):
    # p = [a, b]
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += p[1] * (x[i + 1] - x[i] * x[i]) ** 2 + (p[0] - x[i]) ** 2
    return s


@njit(cache=True, inline="always")
def _rosenbrock_grad(x, p, out):
    d = x.shape[0]
    for i in range(d):
        out[i] = 0.0
    for i in range(d - 1):
        r = x[i + 1] - x[i] * x[i]
        out[i] += -4.0 * p[1] * x[i] * r - 2.0 * (p[0] - x[i])
        out[i + 1] += 2.0 * p[1] * r


@njit(cache=True, inline="always")
def _rosenbrock_laplacian(x, p):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += p[1] * (12.0 * x[i] * x[i] - 4.0 * x[i + 1]) + 2.0 + 2.0 * p[1]
    return s


@dataclass(frozen=True)
class Rosenbrock(Landscape):
    r"""Rosenbrock's valley, :math:`L(\Phi) = \sum_{k=1}^{d-1} b(\Phi_{k+1} - \Phi_k^2)^2 + (a - \Phi_k)^2`.

    A curved, badly conditioned valley (curvatures about 2 and 200 b/100 at the minimum):
    the classical test of whether a stationary law follows the landscape's geometry.
    Minimum ``(1, ..., 1)`` when ``a = 1`` (and ``(a, a**2)`` when d = 2).

    Parameters
    ----------
    a : float, default 1
    b : float > 0, default 100
    dim : int in [2, 8], default 2
    box : array (d, 2), optional; default ``[-2, 3]`` per coordinate.
    """

    a: float = 1.0
    b: float = 100.0
    dim: int = 2
    box: object = None

    _kernel_names = ("_rosenbrock_loss", "_rosenbrock_grad", "_rosenbrock_laplacian")

    def __post_init__(self):
        set_frozen(self, "b", check_positive("b", self.b))
        if not np.isfinite(self.a):
            raise ValueError(f"a must be finite, got {self.a}")
        set_frozen(self, "a", float(self.a))
        if not isinstance(self.dim, (int, np.integer)) or not 2 <= self.dim <= 8:
            raise ValueError(f"dim must be an integer in [2, 8], got {self.dim!r}")
        set_frozen(self, "box", _box("box", self.box, np.tile([-2.0, 3.0], (self.dim, 1))))

    @property
    def minimum(self):
        if self.dim == 2:
            return np.array([self.a, self.a**2])
        return np.ones(self.dim) if self.a == 1.0 else None

    def kernel_params(self):
        return np.array([self.a, self.b])


# =========================================================================================
# User landscapes
# =========================================================================================
# Central-difference step for the Laplacian of a user landscape without one: h = 1e-4 * (1 + |x|)
# balances the O(h^2) truncation (relative ~1e-8 for smooth losses) against the O(eps/h)
# rounding of the gradient differences (~1e-12).
_FD_STEP = 1.0e-4


@dataclass(frozen=True, eq=False)
class Custom(Landscape):
    r"""A landscape from plain Python functions, compiled into the same kernels.

    Parameters
    ----------
    loss : callable ``loss(x) -> float``, ``x`` a float array (d,)
    grad : callable, either ``grad(x, out) -> None`` writing into ``out`` (fastest) or
        ``grad(x) -> array (d,)``
    dim : int in [1, 8]
    box : array (d, 2)
        Histogram range (required: only you know where the stationary mass lives).
    laplacian : callable ``laplacian(x) -> float``, optional
        Default: central differences of ``grad`` (relative error about 1e-8).
    minimum : array (d,), optional
    name : str, optional

    The functions must be Numba-compilable (plain arithmetic and NumPy on scalars and small
    arrays). They are compiled in each process (user code cannot be cached on disk by module
    name), so the first call of a new process pays the compile time again.

    Example
    -------
    >>> quartic = Custom(loss=lambda x: x[0] ** 4, grad=lambda x: 4.0 * x**3, dim=1, box=[[-2, 2]])
    >>> float(quartic.grad(1.0))
    4.0
    """

    loss_fn: object = None
    grad_fn: object = None
    dim: int = 1
    box: object = None
    laplacian_fn: object = None
    minimum: object = None
    name: str = "custom"
    _functions: dict = field(init=False, repr=False, compare=False)

    def __init__(self, loss, grad, dim, box, laplacian=None, minimum=None, name="custom"):
        set_frozen(self, "loss_fn", loss)
        set_frozen(self, "grad_fn", grad)
        set_frozen(self, "dim", dim)
        set_frozen(self, "box", box)
        set_frozen(self, "laplacian_fn", laplacian)
        set_frozen(self, "minimum", minimum)
        set_frozen(self, "name", str(name))
        self.__post_init__()

    def __post_init__(self):
        if not callable(self.loss_fn) or not callable(self.grad_fn):
            raise TypeError("loss and grad must be callables")
        if not isinstance(self.dim, (int, np.integer)) or not 1 <= self.dim <= 8:
            raise ValueError(f"dim must be an integer in [1, 8], got {self.dim!r}")
        if self.box is None:
            raise ValueError("box is required for a Custom landscape: shape (dim, 2) histogram range")
        set_frozen(self, "box", _box("box", self.box, np.zeros((self.dim, 2))))
        if self.minimum is not None:
            set_frozen(self, "minimum", freeze_array("minimum", np.reshape(self.minimum, (self.dim,))))
        set_frozen(self, "_functions", _compile_custom(self.loss_fn, self.grad_fn, self.laplacian_fn))

    def device_problems(self) -> list[str]:
        """Why this landscape cannot run in device code (the GPU cannot allocate arrays), if so."""
        out = []
        if _n_positional(self.grad_fn) < 2:
            out.append("grad must write into its second argument, grad(x, out), instead of returning an array")
        if self.laplacian_fn is None:
            out.append("a laplacian(x) must be given (the finite-difference default needs scratch arrays)")
        return out

    def kernel_params(self):
        return np.zeros(1)

    def kernel_functions(self) -> dict:
        return dict(self._functions)

    def structure_key(self) -> tuple:
        return ("Custom", self.dim, id(self._functions["loss"]))

    def describe(self) -> dict:
        out = super().describe()
        for k in ("loss_fn", "grad_fn", "laplacian_fn"):
            f = getattr(self, k)
            out[k] = None if f is None else getattr(f, "__qualname__", repr(f))
        return out


def _jit(f):
    # inline="always": the user's function is spliced into the kernel like the built-in ones.
    return njit(inline="always")(getattr(f, "py_func", f))


def _n_positional(f) -> int:
    f = getattr(f, "py_func", f)
    return len(inspect.signature(f).parameters)


def _compile_custom(loss, grad, laplacian) -> dict:
    uloss = _jit(loss)
    ugrad = _jit(grad)

    @njit(inline="always")
    def k_loss(x, p):
        return uloss(x)

    if _n_positional(grad) >= 2:

        @njit(inline="always")
        def k_grad(x, p, out):
            ugrad(x, out)

    else:

        @njit(inline="always")
        def k_grad(x, p, out):
            g = ugrad(x)
            for i in range(out.shape[0]):
                out[i] = g[i]

    if laplacian is not None:
        ulap = _jit(laplacian)

        @njit(inline="always")
        def k_lap(x, p):
            return ulap(x)

    else:

        @njit
        def k_lap(x, p):
            d = x.shape[0]
            xp = x.copy()
            gp = np.empty(d)
            gm = np.empty(d)
            s = 0.0
            for i in range(d):
                h = _FD_STEP * (1.0 + abs(x[i]))
                xp[i] = x[i] + h
                k_grad(xp, p, gp)
                xp[i] = x[i] - h
                k_grad(xp, p, gm)
                xp[i] = x[i]
                s += (gp[i] - gm[i]) / (2.0 * h)
            return s

    return {"loss": k_loss, "grad": k_grad, "laplacian": k_lap}


def from_description(desc: dict) -> Landscape | None:
    """Rebuild a landscape from :meth:`Landscape.describe` (None for user landscapes)."""
    cls = {c.__name__: c for c in (Quadratic, DoubleWell, Periodic, MuellerBrown, GaussianMixture, Rosenbrock)}
    kind = desc.get("type")
    if kind not in cls:
        return None
    return cls[kind](**{k: v for k, v in desc.items() if k != "type"})
