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

import hashlib
import inspect
import math
import numbers
import types
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from . import _model
from ._model import array_eq_dataclass, describe, set_frozen

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


# =========================================================================================
# Argument checks shared by every model component (landscapes, noise, optimizers, schedules,
# the Gibbs law and the theory). Each turns a bad value into a ValueError or TypeError whose
# message names the argument and its allowed range, at the one place every constructor goes
# through. The range logic is ``_model``'s; these add what a user can throw at a constructor
# (integers too large for a float, 0-d arrays, strings, None, ragged lists, bools where
# numbers belong and numbers where bools belong).
# =========================================================================================
def show(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about arbitrary input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...>"


def _as_real(name: str, value) -> float:
    """``value`` as a float (+-inf when too large for one), or a TypeError naming ``name``."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {show(value)}")
    try:
        return float(value)
    except OverflowError:  # an int beyond 1.8e308: out of every range we accept
        return math.inf if value > 0 else -math.inf


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite float in (0, inf) (or [0, inf)), or an error naming ``name`` and the range."""
    return _model.check_positive(name, _as_real(name, value), allow_zero=allow_zero)


def check_interval(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=True) -> float:
    """A float in the interval, or an error naming ``name`` and the interval."""
    return _model.check_interval(name, _as_real(name, value), lo, hi, lo_open=lo_open, hi_open=hi_open)


def check_real(name: str, value) -> float:
    """Any finite float, or an error naming ``name``."""
    x = _as_real(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, in (-inf, inf), got {x}")
    return x


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """An int in ``[lo, hi]`` (bools and integral floats are refused), or an error naming ``name``."""
    rng = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, inf)"
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in {rng}, got {show(value)}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an integer in {rng}, got {show(value)}")
    return value


# The largest integer every float64 holds exactly: counts (batch sizes) above it would be
# rounded as soon as they enter a formula.
MAX_EXACT_INT = 2**53


def check_derived(inputs: str, check, name: str, value):
    """``check(name, value)`` for a value computed from other arguments; a failure is re-raised
    naming ``inputs``, the arguments it came from (the user never passed ``name``)."""
    try:
        return check(name, value)
    except ValueError as e:
        raise ValueError(f"{name} = {value}, computed from {inputs}, is not allowed: {e}") from None


def check_bool(name: str, value) -> bool:
    """``True`` or ``False`` (also NumPy's), never a string or a number, or a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {show(value)}")
    return bool(value)


def check_choice(name: str, value, choices) -> str:
    """One of the strings ``choices``, or an error naming ``name`` and the choices."""
    if not isinstance(value, str) or value not in choices:
        kind = ValueError if isinstance(value, str) else TypeError
        raise kind(f"{name} must be one of {sorted(choices)}, got {show(value)}")
    return value


def check_pair(name: str, value, check, *, what: str = "") -> tuple:
    """A pair ``(a, b)`` (tuple, list or array of two), each checked by ``check(f"{name}[i]", item)``;
    ``what`` describes the pair in the error message."""
    try:
        ok = not isinstance(value, (str, bytes, dict, set, frozenset)) and np.ndim(value) == 1 and len(value) == 2
    except (TypeError, ValueError):  # ragged nestings NumPy cannot shape
        ok = False
    if not ok:
        raise TypeError(f"{name} must be a pair {what or f'({name}[0], {name}[1])'}, got {show(value)}")
    return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))


def as_float_array(name: str, value, *, ndim=None) -> np.ndarray:
    """A finite float64 copy of ``value`` (never a view of the user's array), or an error naming ``name``.

    Refused with a TypeError: None, strings, bools and anything NumPy cannot read as numbers
    (ragged lists, objects); with a ValueError: non-finite entries, and ``ndim`` (an int or a
    tuple of allowed ones) not matching.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers, got {show(value)}")
    try:
        raw = np.asarray(value)
        if raw.dtype.kind not in "iuf":
            raise TypeError
        arr = np.array(raw, dtype=np.float64, copy=True)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {show(value)}") from None
    if ndim is not None and arr.ndim not in np.atleast_1d(ndim):
        allowed = " or ".join(str(n) for n in np.atleast_1d(ndim))
        raise ValueError(f"{name} must have {allowed} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no nan or inf), got {show(value)}")
    return arr


def freeze_array(name: str, value, *, ndim=None) -> np.ndarray:
    """:func:`as_float_array`, read-only."""
    return _model.freeze_array(name, as_float_array(name, value, ndim=ndim), ndim=ndim)


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


def _with_finite_reciprocal(name: str, value: float) -> float:
    """``value`` (> 0) when ``1 / value`` is finite too (the kernels multiply by it), else a ValueError."""
    if not math.isfinite(1.0 / value):
        raise ValueError(f"{name} must be in (0, inf) with a finite reciprocal (>= {np.finfo(float).tiny:g}), "
                         f"got {value}")
    return value


def _spd_inverse(name: str, h: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive-definite ``h`` (with a finite, positive-definite
    inverse), or a ValueError naming ``name``."""
    try:
        np.linalg.cholesky(h)
        with np.errstate(all="ignore"):
            inv = np.linalg.inv(h)
        ok = np.all(np.isfinite(inv)) and np.all(np.diag(inv) > 0)
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be positive definite (all eigenvalues > 0, with a finite inverse)")
    return inv


@njit
def _map_scalar(f, pts, p, out):
    for i in range(pts.shape[0]):
        out[i] = f(pts[i], p)


@njit
def _map_vector(f, pts, p, out):
    for i in range(pts.shape[0]):
        f(pts[i], p, out[i])


# The narrowest box: the kernels divide bin counts (up to 1e5) by the width and the divergence
# radius is 1e4 half-widths, so a width of 1e-300 keeps both finite and nonzero.
_MIN_BOX_WIDTH = 1e-300


def _box(value, default, default_from: str = "the landscape's parameters") -> np.ndarray:
    """The histogram box, shape (d, 2): ``value``, one (lo, hi) pair for every coordinate, or
    ``default`` when None; lo < hi, and the width and centre finite (the kernels use both).
    ``default`` (d, 2) may be a function computing it, called only when ``value`` is None; a
    default that breaks these rules is reported as coming from ``default_from``."""
    if value is None:
        with np.errstate(all="ignore"):
            box = np.array(default() if callable(default) else default, dtype=np.float64)
        if not _box_ok(box):
            raise ValueError(f"{default_from} give no finite default box ({box.tolist()}); pass box explicitly")
        box.setflags(write=False)
        return box
    d = np.shape(default() if callable(default) else default)[0]
    problem = (f"box must be finite (lo, hi) pairs with a finite width hi - lo >= {_MIN_BOX_WIDTH:g}, "
               f"shape ({d}, 2) or (2,)")
    try:
        box = as_float_array("box", value, ndim=(1, 2))
    except (TypeError, ValueError) as e:
        raise type(e)(f"{problem}; got {show(value)}") from None
    if box.shape in ((2,), (1, 2)):
        box = np.broadcast_to(box.reshape(1, 2), (d, 2)).copy()
    if box.shape != (d, 2) or not _box_ok(box):
        raise ValueError(f"{problem}; got {show(value)}")
    box.setflags(write=False)
    return box


def _box_ok(box: np.ndarray) -> bool:
    with np.errstate(all="ignore"):
        width, centre = box[:, 1] - box[:, 0], 0.5 * box[:, 0] + 0.5 * box[:, 1]
        return bool(np.all(width >= _MIN_BOX_WIDTH) and np.all(np.isfinite(width)) and np.all(np.isfinite(centre)))


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
        curvature = as_float_array("curvature", self.curvature, ndim=(0, 1, 2))
        h = curvature
        if h.ndim == 0:
            h = h.reshape(1, 1)
        elif h.ndim == 1:
            h = np.diag(h)
        if h.shape[0] != h.shape[1] or not 1 <= h.shape[0] <= 8:
            raise ValueError(f"curvature must be a scalar, a vector or a square matrix of size 1..8, got shape {h.shape}")
        if not np.allclose(h, h.T, rtol=1e-12, atol=0):
            raise ValueError("curvature must be symmetric")
        h_inv = _spd_inverse("curvature", h)
        d = h.shape[0]
        c = as_float_array("center", self.center, ndim=(0, 1))
        if c.shape not in ((), (1,), (d,)):
            raise ValueError(f"center must be a scalar or have shape ({d},), got shape {c.shape}")
        c = np.broadcast_to(c, (d,)).copy()
        set_frozen(self, "center", freeze_array("center", c))
        set_frozen(self, "curvature", freeze_array("curvature", curvature))
        set_frozen(self, "hessian", freeze_array("hessian", h))
        set_frozen(self, "offset", check_real("offset", self.offset))
        # default: 5 standard deviations of the Gibbs law at T = 1 on each side
        sd = np.sqrt(np.diag(h_inv))
        set_frozen(self, "box", _box(self.box, lambda: np.stack([c - 5 * sd, c + 5 * sd], axis=1),
                                     "curvature and center"))

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
        set_frozen(self, "width", _with_finite_reciprocal("width", check_positive("width", self.width)))
        set_frozen(self, "tilt", check_real("tilt", self.tilt))
        a = self.width
        set_frozen(self, "box", _box(self.box, np.array([[-2.0 * a, 2.0 * a]]), "width"))
        if not np.all(np.isfinite(self._stationary_points())):
            raise ValueError(f"tilt, barrier and width must give finite minima (tilt / barrier and the minima's "
                             f"positions finite), got tilt = {self.tilt}, barrier = {self.barrier}, width = {self.width}")

    dim = 1

    def _stationary_points(self) -> np.ndarray:
        # The stationary points solve 4 u (u^2 - 1) + tau / D = 0, u = Phi / a.
        with np.errstate(all="ignore"):
            t = self.tilt / self.barrier
            if not math.isfinite(t):
                return np.array([np.nan])
            roots = np.roots([4.0, 0.0, -4.0, t])
            return roots[np.abs(roots.imag) < 1e-12].real * self.width

    @property
    def minimum(self):
        # the global minimiser: the deeper (left for tau > 0) of the stationary points
        roots = self._stationary_points()
        with np.errstate(over="ignore", invalid="ignore"):
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
        period = check_positive("period", self.period)
        if not math.isfinite(2.0 * math.pi / period):
            raise ValueError(f"period must be in (0, inf) with 2 pi / period finite, got {period}")
        set_frozen(self, "period", period)
        set_frozen(self, "dim", check_int("dim", self.dim, 1, 8))
        half = 0.5 * self.period
        set_frozen(self, "box", _box(None, np.tile([-half, half], (self.dim, 1)), "period"))

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
        set_frozen(self, "box", _box(self.box, np.array([[-1.5, 1.2], [-0.5, 2.0]])))

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
        w = np.atleast_1d(as_float_array("weights", self.weights, ndim=(0, 1)))
        mu = as_float_array("means", self.means, ndim=(1, 2))
        if mu.ndim == 1:
            mu = mu.reshape(-1, 1)
        k, d = mu.shape
        if k < 1:
            raise ValueError(f"means must hold at least one component (shape (K, d), K >= 1), got shape {mu.shape}")
        if w.shape != (k,) or np.any(w <= 0):
            raise ValueError(f"weights must be {k} positive numbers, one per row of means (shape (K, d), K = {k}), "
                             f"got {show(self.weights)}")
        if not 1 <= d <= 8:
            raise ValueError(f"means must have 1..8 columns (the dimension), got {d}")
        w = w / np.max(w)  # normalised in two steps, so that huge weights cannot overflow the sum
        cov = as_float_array("covariances", self.covariances, ndim=(0, 1, 3))
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
            if not np.allclose(cov[i], cov[i].T, rtol=1e-12, atol=0):
                raise ValueError(f"covariances[{i}] must be symmetric positive definite")
            precision = _spd_inverse(f"covariances[{i}]", cov[i])
            logdet = 2.0 * np.sum(np.log(np.diag(np.linalg.cholesky(cov[i]))))
            with np.errstate(divide="ignore"):
                logc = float(np.log(w[i] / w.sum())) - 0.5 * (d * math.log(2 * math.pi) + logdet)
            packed += [logc, *mu[i], *precision.ravel()]
        if not np.all(np.isfinite(packed)):
            raise ValueError("weights and covariances must give a finite normalising constant (log c_i) for every "
                             "component")
        set_frozen(self, "weights", freeze_array("weights", w / w.sum()))
        set_frozen(self, "means", freeze_array("means", mu))
        set_frozen(self, "covariances", freeze_array("covariances", cov))
        set_frozen(self, "_packed", freeze_array("packed", packed))
        # default: the means' range +- 4 standard deviations
        sd = np.sqrt(np.max(np.diagonal(cov, axis1=1, axis2=2), axis=0))
        set_frozen(self, "box", _box(self.box, lambda: np.stack([mu.min(axis=0) - 4 * sd, mu.max(axis=0) + 4 * sd],
                                                                 axis=1), "means and covariances"))

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
        a = check_real("a", self.a)
        if not math.isfinite(a * a):  # the minimum (a, a**2) and the kernel's (a - x)**2
            raise ValueError(f"a must be finite with a**2 finite (|a| < 1.3e154), got {a}")
        set_frozen(self, "a", a)
        set_frozen(self, "dim", check_int("dim", self.dim, 2, 8))
        set_frozen(self, "box", _box(self.box, np.tile([-2.0, 3.0], (self.dim, 1))))

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
    boundscheck : bool, default True
        Compile the functions with bounds checking: an index outside ``x`` or ``out`` (say
        ``x[1]`` with d = 1) raises IndexError instead of reading or writing stray memory.
        ``False`` is faster (no check per index) once the functions are known to be right.
        The kernel builder reads it as ``landscape.boundscheck``.

    The functions must be Numba-compilable (plain arithmetic and NumPy on scalars and small
    arrays), written as plain Python functions or ``numba.njit`` functions (whose ``.py_func``
    is used). Before anything is compiled, each is called once in plain Python at a test point
    (``minimum`` if given, else the box centre); a function that raises there, returns a
    non-scalar loss or Laplacian, a gradient of another shape than (d,), or a non-finite
    value is refused with a ValueError naming it. They are compiled in each process (user code
    cannot be cached on disk by module name), so the first call of a new process pays the
    compile time again.

    **Identity.** :meth:`describe` (what checkpoints and sweep caches key on) and
    :meth:`structure_key` (what compiled kernels are cached under) identify each function by a
    hash of its code (``"loss_fn_hash"`` etc., see :func:`function_hash`): bytecode, constants,
    names, closure values, defaults and the global functions and values it uses. Editing a
    function or a constant it closes over changes them; defining the same function again does
    not. The hash is taken when the landscape is constructed.

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
    boundscheck: bool = True
    _functions: dict = field(init=False, repr=False, compare=False)
    _code_hashes: dict = field(init=False, repr=False, compare=False)

    def __init__(self, loss, grad, dim, box, laplacian=None, minimum=None, name="custom", boundscheck=True):
        set_frozen(self, "loss_fn", loss)
        set_frozen(self, "grad_fn", grad)
        set_frozen(self, "dim", dim)
        set_frozen(self, "box", box)
        set_frozen(self, "laplacian_fn", laplacian)
        set_frozen(self, "minimum", minimum)
        set_frozen(self, "name", name)
        set_frozen(self, "boundscheck", boundscheck)
        self.__post_init__()

    def __post_init__(self):
        _check_user_function("loss", self.loss_fn, (1,))
        _check_user_function("grad", self.grad_fn, (1, 2))
        if self.laplacian_fn is not None:
            _check_user_function("laplacian", self.laplacian_fn, (1,))
        set_frozen(self, "dim", check_int("dim", self.dim, 1, 8))
        if self.box is None:
            raise ValueError("box is required for a Custom landscape: shape (dim, 2) histogram range")
        set_frozen(self, "box", _box(self.box, np.zeros((self.dim, 2))))
        if self.minimum is not None:
            m = as_float_array("minimum", self.minimum, ndim=(0, 1))
            if m.size != self.dim:
                raise ValueError(f"minimum must have shape ({self.dim},) (dim,), got shape {m.shape}")
            set_frozen(self, "minimum", freeze_array("minimum", m.reshape(self.dim)))
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {show(self.name)}")
        set_frozen(self, "boundscheck", check_bool("boundscheck", self.boundscheck))
        where = "minimum" if self.minimum is not None else "box centre"
        x0 = np.array(self.minimum if self.minimum is not None else self.box.mean(axis=1), dtype=np.float64)
        _try_at_test_point(self.loss_fn, self.grad_fn, self.laplacian_fn, x0, where)
        set_frozen(self, "_code_hashes", {
            role: None if f is None else function_hash(f)
            for role, f in (("loss_fn", self.loss_fn), ("grad_fn", self.grad_fn), ("laplacian_fn", self.laplacian_fn))
        })
        set_frozen(self, "_functions",
                   _compile_custom(self.loss_fn, self.grad_fn, self.laplacian_fn, self.boundscheck))

    def device_problems(self) -> list[str]:
        """Why this landscape cannot run in device code (the GPU cannot allocate arrays), if so."""
        out = []
        if not _grad_writes_out(self.grad_fn):
            out.append("grad must write into its second argument, grad(x, out), instead of returning an array")
        if self.laplacian_fn is None:
            out.append("a laplacian(x) must be given (the finite-difference default needs scratch arrays)")
        return out

    def kernel_params(self):
        return np.zeros(1)

    def kernel_functions(self) -> dict:
        return dict(self._functions)

    def code_hash(self) -> str:
        """One hash of all three functions' code (see :func:`function_hash`)."""
        h = hashlib.sha256()
        for role in ("loss_fn", "grad_fn", "laplacian_fn"):
            h.update(f"{role}={self._code_hashes[role]};".encode())
        return h.hexdigest()

    def structure_key(self) -> tuple:
        """The compiled kernel depends on the functions' code, the dimension and the bounds checks."""
        return ("Custom", self.dim, self.boundscheck, self.code_hash())

    def describe(self) -> dict:
        out = super().describe()
        for k in ("loss_fn", "grad_fn", "laplacian_fn"):
            f = getattr(self, k)
            out[k] = None if f is None else getattr(f, "__qualname__", repr(f))
            out[f"{k}_hash"] = self._code_hashes[k]
        return out


def _required_positional(f) -> int:
    """How many positional parameters without a default the function has."""
    params = inspect.signature(getattr(f, "py_func", f)).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _grad_writes_out(grad) -> bool:
    """True for the ``grad(x, out)`` convention, False for ``grad(x) -> array``."""
    return _required_positional(grad) >= 2


def _check_user_function(role: str, f, arities: tuple) -> None:
    """A plain Python function or a numba.njit one taking ``arities`` positional arguments."""
    calls = " or ".join(f"{role}({', '.join(['x', 'out'][:n])})" for n in arities)
    if not isinstance(getattr(f, "py_func", f), types.FunctionType):
        raise TypeError(f"{role} must be a Python function or a numba.njit function callable as {calls}, "
                        f"got {show(f)}")
    if _required_positional(f) not in arities:
        raise TypeError(f"{role} must be callable as {calls} (positional arguments without defaults), "
                        f"got signature {inspect.signature(getattr(f, 'py_func', f))}")


def _at(x0: np.ndarray, where: str) -> str:
    return f"at the test point x = {x0.tolist()} (the {where})"


def _call_at(role: str, f, x0: np.ndarray, where: str, *args):
    """``f(*args)`` in plain Python (``.py_func`` of an njit function), or a ValueError naming ``role``."""
    try:
        with np.errstate(all="ignore"):
            return getattr(f, "py_func", f)(*args)
    except Exception as e:  # noqa: BLE001 -- whatever the user's code raises is reported, named
        raise ValueError(
            f"{role} raised {type(e).__name__} {_at(x0, where)}; x is a float64 array of shape ({x0.shape[0]},) "
            f"(dim,): {e}"
        ) from e


def _scalar_result(role: str, value, x0: np.ndarray, where: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        kind = f"an array of shape {value.shape}" if isinstance(value, np.ndarray) else show(value)
        raise ValueError(f"{role}(x) must return a real scalar, got {kind} {_at(x0, where)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{role}(x) must be finite, got {value} {_at(x0, where)}")
    return value


def _try_at_test_point(loss, grad, laplacian, x0: np.ndarray, where: str) -> None:
    """Call each user function once in plain Python at ``x0``, where a wrong index raises
    IndexError instead of reading stray memory as compiled code without bounds checks would."""
    d = x0.shape[0]
    _scalar_result("loss", _call_at("loss", loss, x0, where, x0.copy()), x0, where)
    if _grad_writes_out(grad):
        out = np.full(d, np.nan)
        _call_at("grad", grad, x0, where, x0.copy(), out)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"grad(x, out) must write a finite value into every entry of out (shape ({d},)); "
                             f"{_at(x0, where)} out became {out.tolist()}")
    else:
        g = _call_at("grad", grad, x0, where, x0.copy())
        try:
            arr = np.asarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != (d,) or isinstance(g, (bool, np.bool_)):
            what = f"shape {np.shape(g)}" if arr is not None else show(g)
            raise ValueError(f"grad(x) must return an array of shape ({d},) (dim,), got {what} {_at(x0, where)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"grad(x) must be finite, got {arr.tolist()} {_at(x0, where)}")
    if laplacian is not None:
        _scalar_result("laplacian", _call_at("laplacian", laplacian, x0, where, x0.copy()), x0, where)


class _CodeHasher:
    """Feeds a function's code and everything it depends on into SHA-256 (see :func:`function_hash`)."""

    def __init__(self):
        self.sha = hashlib.sha256()
        self.path: set = set()  # ids of the functions, code objects and containers being hashed (cycles)

    def put(self, *parts) -> None:
        for p in parts:
            b = p if isinstance(p, bytes) else str(p).encode()
            self.sha.update(len(b).to_bytes(8, "little") + b)  # length-prefixed: no two streams collide

    def _enter(self, obj, label: str) -> bool:
        if id(obj) in self.path:
            self.put("cycle", label)
            return False
        self.path.add(id(obj))
        return True

    def function(self, f) -> None:
        py = getattr(f, "py_func", f)
        if not self._enter(py, py.__qualname__):
            return
        if py is not f:  # a Numba dispatcher: its options (fastmath, ...) change the numbers too
            opts = getattr(f, "targetoptions", {})
            self.put("njit", *sorted(f"{k}={v!r}" for k, v in opts.items()))
        self.code(py.__code__, py.__globals__)
        self.put("defaults")
        self.value(py.__defaults__)
        self.value(py.__kwdefaults__)
        self.put("closure", len(py.__code__.co_freevars))
        for name, cell in zip(py.__code__.co_freevars, py.__closure__ or ()):
            self.put(name)
            try:
                self.value(cell.cell_contents)
            except ValueError:  # an empty cell
                self.put("empty cell")
        self.path.discard(id(py))

    def code(self, co: types.CodeType, globs: dict) -> None:
        if not self._enter(co, co.co_name):
            return
        self.put("code", co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_flags, co.co_code,
                 *co.co_names, "|", *co.co_varnames, "|", *co.co_freevars, "|", *co.co_cellvars)
        self.put("consts", len(co.co_consts))
        for c in co.co_consts:
            if isinstance(c, types.CodeType):
                self.code(c, globs)
            else:
                self.value(c)
        # co_names holds global names and attribute names alike; a name found in the globals
        # is what the code would read (and what Numba freezes into the compiled function)
        for name in co.co_names:
            if name in globs:
                self.put("global", name)
                self.value(globs[name])
        self.path.discard(id(co))

    def value(self, v) -> None:
        if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
            self.put(type(v).__name__, repr(v))
        elif isinstance(v, types.FunctionType) or isinstance(getattr(v, "py_func", None), types.FunctionType):
            self.function(v)
        elif isinstance(v, types.CodeType):
            self.code(v, {})
        elif isinstance(v, np.ndarray) and v.dtype.kind in "biufcMmSU":
            self.put("ndarray", v.dtype.str, v.shape, np.ascontiguousarray(v).tobytes())
        elif isinstance(v, np.generic):
            self.put("numpy", v.dtype.str, v.tobytes())
        elif isinstance(v, types.ModuleType):
            self.put("module", v.__name__)
        elif isinstance(v, (type, types.BuiltinFunctionType, np.ufunc)):
            self.put("named", getattr(v, "__module__", None), getattr(v, "__qualname__", getattr(v, "__name__", "")))
        elif isinstance(v, (tuple, list, set, frozenset, dict)):
            if not self._enter(v, type(v).__name__):
                return
            items = sorted(v.items(), key=repr) if isinstance(v, dict) else (
                sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v)
            self.put(type(v).__name__, len(v))
            for item in items:
                self.value(item)
            self.path.discard(id(v))
        elif isinstance(v, numbers.Number):  # Fraction, Decimal, ...: their repr is their value
            self.put(type(v).__qualname__, repr(v))
        else:
            # Anything else is identified by the object itself: two landscapes share a hash
            # only if they hold this very object, so a kernel is never reused for another one.
            self.put("object", type(v).__module__, type(v).__qualname__, id(v))


def function_hash(f) -> str:
    """A SHA-256 hex digest of what a user function computes, for caches and fingerprints.

    Hashed: the bytecode (``__code__.co_code``), the constants (nested code objects
    recursively), the names, argument counts and flags; the values of its closure cells
    (arrays by dtype, shape and bytes, scalars by value); its default arguments; and, the same
    way and recursively, every global it names (``co_names`` looked up in ``__globals__``):
    functions and ``numba.njit`` dispatchers (with their compile options), arrays, scalars,
    modules by name. Cycles (recursion) are cut. Not hashed: the function's own name, file and
    line numbers. An object of any other kind enters by identity (``id``), which can only make
    two hashes differ, never agree wrongly.

    Example
    -------
    >>> function_hash(lambda x: x[0] ** 2) == function_hash(lambda x: x[0] ** 2)
    True
    >>> function_hash(lambda x: x[0] ** 2) == function_hash(lambda x: x[0] ** 3)
    False
    """
    hasher = _CodeHasher()
    hasher.function(f)
    return hasher.sha.hexdigest()


def _jit(f, boundscheck: bool):
    # inline="always": the user's function is spliced into the kernel like the built-in ones;
    # it keeps its own boundscheck setting when inlined.
    return njit(inline="always", boundscheck=boundscheck)(getattr(f, "py_func", f))


def _compile_custom(loss, grad, laplacian, boundscheck: bool = True) -> dict:
    uloss = _jit(loss, boundscheck)
    ugrad = _jit(grad, boundscheck)
    jit = njit(inline="always", boundscheck=boundscheck)

    @jit
    def k_loss(x, p):
        return uloss(x)

    if _grad_writes_out(grad):

        @jit
        def k_grad(x, p, out):
            ugrad(x, out)

    else:

        @jit
        def k_grad(x, p, out):
            g = ugrad(x)
            for i in range(out.shape[0]):
                out[i] = g[i]

    if laplacian is not None:
        ulap = _jit(laplacian, boundscheck)

        @jit
        def k_lap(x, p):
            return ulap(x)

    else:

        @njit(boundscheck=boundscheck)
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
