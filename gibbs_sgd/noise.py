"""Minibatch gradient noise: how the optimizer's gradient estimate ``g_hat`` is drawn.

Two families, one kernel calling convention::

    noise(x, g, p, data, batch, z, c, k0, k1, chain, step, scratch) -> None

* **Additive Gaussian** (:class:`Gaussian`): each example's gradient deviates from
  ``grad L`` by an independent ``N(0, C)``, so the batch mean is *exactly*
  ``g_hat = grad L(x) + N(0, C / B)``. It costs ``d`` normals per step whatever ``B`` is;
  the kernel has already written ``grad L(x)`` into ``g`` and the normals into ``z[:, c]``.
* **Data-set noise** (:class:`MeanEstimation`, :class:`LinearRegression`): the gradient is the
  mean of ``B`` per-example gradients of a per-example loss over a finite data set (sampled
  with replacement, or without replacement within a batch) or over fresh Gaussian examples
  (``.streamed``: the online regime). The noise then depends on the state and is in general
  *not* Gibbs-compatible -- the realistic case. It costs ``B`` draws per step (``B`` indices, or
  ``B`` examples of ``d`` or ``d + 1`` normals), drawn by the noise function from Philox calls
  ``0, 1, ...`` of the chain's stream at that step. ``g`` is overwritten.

Data-set models imply their population loss, available as ``.landscape`` (a
:class:`~gibbs_sgd.landscapes.Quadratic`); :func:`gibbs_sgd.simulate` checks that the
landscape it is given is that one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ._model import array_eq_dataclass, describe, set_frozen
from .landscapes import Quadratic, as_float_array, check_bool, check_positive, freeze_array
from .rng import normal_pair, uniform_pair

__all__ = ["Noise", "Gaussian", "MeanEstimation", "LinearRegression"]

_REPLACE, _NO_REPLACE, _STREAMED = 0.0, 1.0, 2.0


class Noise:
    """Base class of noise models."""

    #: True when the kernel must write grad L(x) into g before calling the noise function
    adds_to_gradient = False
    _kernel_name = ""

    def n_normals(self, dim: int) -> int:
        """Normals per chain per step that the kernel pre-draws into ``z`` (Philox calls 0..)."""
        return 0

    def scratch_size(self, dim: int, batch_size: int) -> int:
        """Floats of per-thread scratch the noise function needs."""
        return 1

    def kernel_params(self, dim: int, batch_size: int) -> np.ndarray:
        raise NotImplementedError

    def kernel_data(self) -> np.ndarray:
        return np.zeros((1, 1))

    def kernel_functions(self) -> dict:
        return {"noise": f"{__name__}:{self._kernel_name}"}

    def structure_key(self) -> tuple:
        return (type(self).__name__,)

    def check(self, landscape, batch_size: int) -> None:
        """Raise if this noise cannot drive ``landscape`` at ``batch_size``."""

    def describe(self) -> dict:
        return describe(self)


def _check_squarable(name: str, value, *, allow_zero: bool = False) -> float:
    """A standard deviation: finite, > 0 (or >= 0), whose square (the variance) is finite and,
    unless zero is allowed, nonzero."""
    value = check_positive(name, value, allow_zero=allow_zero)
    square = value * value
    if not math.isfinite(square):
        raise ValueError(f"{name} must be below 1.3e154 (its square, a variance, must be finite), got {value}")
    if square == 0.0 and value != 0.0:
        zero = "0 or " if allow_zero else ""
        raise ValueError(f"{name} must be {zero}above 1.5e-154 (its square, a variance, must not underflow to 0), "
                         f"got {value}")
    return value


# =========================================================================================
# Additive Gaussian
# =========================================================================================
@njit(cache=True, inline="always")
def _gaussian_noise(x, g, p, data, batch, z, c, k0, k1, chain, step, scratch):
    # p = [d, (L / sqrt(B)) row-major], L the lower Cholesky factor of the per-example C.
    d = g.shape[0]
    for i in range(d):
        s = 0.0
        for j in range(i + 1):
            s += p[1 + i * d + j] * z[j, c]
        g[i] += s


@array_eq_dataclass
@dataclass(frozen=True, eq=False)
class Gaussian(Noise):
    r"""Per-example Gaussian gradient noise: :math:`\hat g = \nabla L(\Phi) + \xi`, :math:`\xi \sim \mathcal N(0, C/B)`.

    Parameters
    ----------
    sigma : float > 0, default 1
        Isotropic per-example standard deviation, :math:`C = \sigma^2 I` (ignored when
        ``covariance`` is given).
    covariance : array (d, d), optional
        Symmetric positive-definite per-example covariance :math:`C`.

    Exactly one draw per dimension per step for any batch size ``B``: the mean of ``B``
    independent :math:`\mathcal N(0, C)` deviations *is* :math:`\mathcal N(0, C/B)`.

    Example
    -------
    >>> Gaussian(sigma=2.0).per_example_covariance(1)
    array([[4.]])
    """

    sigma: float = 1.0
    covariance: object = None

    adds_to_gradient = True
    _kernel_name = "_gaussian_noise"

    def __post_init__(self):
        set_frozen(self, "sigma", _check_squarable("sigma", self.sigma))
        if self.covariance is not None:
            c = np.atleast_2d(as_float_array("covariance", self.covariance, ndim=(0, 2)))
            if c.shape[0] != c.shape[1] or not 1 <= c.shape[0] <= 8 or not np.allclose(c, c.T, rtol=1e-12, atol=0):
                raise ValueError(f"covariance must be a symmetric square matrix of size 1..8, got shape {c.shape}")
            try:
                chol = np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                chol = None
            if chol is None or not np.all(np.isfinite(chol)) or not np.all(np.diag(chol) > 0):
                raise ValueError("covariance must be positive definite") from None
            set_frozen(self, "covariance", freeze_array("covariance", c))

    def per_example_covariance(self, dim: int) -> np.ndarray:
        """The per-example covariance ``C`` (d, d)."""
        if self.covariance is not None:
            return np.array(self.covariance)
        return self.sigma**2 * np.eye(dim)

    def n_normals(self, dim: int) -> int:
        return dim

    def check(self, landscape, batch_size: int) -> None:
        if self.covariance is not None and self.covariance.shape[0] != landscape.dim:
            raise ValueError(
                f"noise covariance has shape {self.covariance.shape}, the landscape has dimension {landscape.dim}"
            )

    def kernel_params(self, dim: int, batch_size: int) -> np.ndarray:
        chol = np.linalg.cholesky(self.per_example_covariance(dim)) / math.sqrt(batch_size)
        return np.concatenate([[dim], chol.ravel()])


# =========================================================================================
# Data-set noise
# =========================================================================================
@njit(cache=True, inline="always")
def _draw_indices(p_mode, n, batch, k0, k1, chain, step, idx):
    """B example indices: with replacement, or a uniform B-subset (Floyd's algorithm).

    ``idx`` is the float64 scratch: an index below 2**53 is exact as a float, and a plain
    float array compiles on every backend (a reinterpreting ``view`` does not on the GPU).
    """
    if p_mode == _REPLACE:
        for j in range((batch + 1) // 2):
            u0, u1 = uniform_pair(k0, k1, chain, step, j)
            idx[2 * j] = min(int(u0 * n), n - 1)
            if 2 * j + 1 < batch:
                idx[2 * j + 1] = min(int(u1 * n), n - 1)
    else:
        # Floyd (1987): for m = n-B .. n-1 draw t uniform in [0, m]; take t unless already
        # taken, else take m. Every B-subset is equally likely; O(B^2) with B small.
        u1 = 0.0
        for b in range(batch):
            if b % 2 == 0:
                u0, u1 = uniform_pair(k0, k1, chain, step, b // 2)
                u = u0
            else:
                u = u1
            m = n - batch + b
            t = min(int(u * (m + 1)), m)
            for q in range(b):
                if idx[q] == t:
                    t = m
                    break
            idx[b] = t


@njit(cache=True, inline="always")
def _draw_normals(count, k0, k1, chain, step, out):
    for j in range((count + 1) // 2):
        z0, z1 = normal_pair(k0, k1, chain, step, j)
        out[2 * j] = z0
        out[2 * j + 1] = z1


@njit(cache=True, inline="always")
def _mean_estimation_noise(x, g, p, data, batch, z, c, k0, k1, chain, step, scratch):
    # p = [mode, n, sigma (streamed), mean (d, streamed)]; data = examples (n, d).
    # Per-example gradient of 1/2 |x - a|^2 is x - a.
    d = g.shape[0]
    for i in range(d):
        g[i] = 0.0
    if p[0] == _STREAMED:
        _draw_normals(batch * d, k0, k1, chain, step, scratch)
        for b in range(batch):
            for i in range(d):
                g[i] += x[i] - (p[3 + i] + p[2] * scratch[b * d + i])
    else:
        n = int(p[1])
        _draw_indices(p[0], n, batch, k0, k1, chain, step, scratch)
        for b in range(batch):
            k = int(scratch[b])
            for i in range(d):
                g[i] += x[i] - data[k, i]
    for i in range(d):
        g[i] /= batch


@njit(cache=True, inline="always")
def _linear_regression_noise(x, g, p, data, batch, z, c, k0, k1, chain, step, scratch):
    # p = [mode, n, input_std, noise_std, w* (d, streamed)]; data = [inputs | target] (n, d+1).
    # Per-example gradient of 1/2 (w.a - y)^2 is (w.a - y) a.
    d = g.shape[0]
    for i in range(d):
        g[i] = 0.0
    if p[0] == _STREAMED:
        _draw_normals(batch * (d + 1), k0, k1, chain, step, scratch)
        for b in range(batch):
            o = b * (d + 1)
            r = 0.0
            for i in range(d):
                r += (x[i] - p[4 + i]) * (p[2] * scratch[o + i])
            r -= p[3] * scratch[o + d]
            for i in range(d):
                g[i] += r * p[2] * scratch[o + i]
    else:
        n = int(p[1])
        _draw_indices(p[0], n, batch, k0, k1, chain, step, scratch)
        for b in range(batch):
            k = int(scratch[b])
            r = -data[k, d]
            for i in range(d):
                r += x[i] * data[k, i]
            for i in range(d):
                g[i] += r * data[k, i]
    for i in range(d):
        g[i] /= batch


class _DataSetNoise(Noise):
    """Shared checks and bookkeeping of the data-set models."""

    adds_to_gradient = False

    @property
    def is_streamed(self) -> bool:
        """True for fresh examples every step (the online regime), False for a finite data set."""
        return self.data is None

    @property
    def n_examples(self) -> float:
        return math.inf if self.is_streamed else self.data.shape[0]

    def _mode(self) -> float:
        if self.is_streamed:
            return _STREAMED
        return _REPLACE if self.replace else _NO_REPLACE

    def check(self, landscape, batch_size: int) -> None:
        mine = self.landscape
        ok = (
            isinstance(landscape, Quadratic)
            and landscape.dim == mine.dim
            and np.allclose(landscape.hessian, mine.hessian, rtol=1e-9, atol=1e-12)
            and np.allclose(landscape.center, mine.center, rtol=1e-9, atol=1e-12)
        )
        if not ok:
            raise ValueError(
                f"{type(self).__name__} noise defines its own population loss; pass landscape=noise.landscape "
                f"(a Quadratic with hessian {mine.hessian.tolist()} and center {mine.center.tolist()})"
            )
        if not self.is_streamed and not self.replace and batch_size > self.data.shape[0]:
            raise ValueError(
                f"batch_size must be in [1, {self.data.shape[0]}] (the data-set size) when sampling "
                f"without replacement, got {batch_size}"
            )

    def kernel_data(self) -> np.ndarray:
        return np.zeros((1, 1)) if self.is_streamed else np.ascontiguousarray(self._table())

    def scratch_size(self, dim: int, batch_size: int) -> int:
        per_example = dim + 1 if isinstance(self, LinearRegression) else dim
        return batch_size * per_example + 2 if self.is_streamed else batch_size + 2


def _check_vector(name: str, value) -> np.ndarray:
    """A finite vector of 1..8 numbers (a scalar is one)."""
    v = np.atleast_1d(as_float_array(name, value, ndim=(0, 1)))
    if not 1 <= v.shape[0] <= 8:
        raise ValueError(f"{name} must have 1..8 entries (the dimension), got shape {v.shape}")
    return v


def _population(name: str, curvature, center, offset) -> Quadratic:
    """The population loss a data-set model implies, or a ValueError naming the arguments it comes from."""
    try:
        return Quadratic(curvature, center=center, offset=offset)
    except (TypeError, ValueError) as e:
        raise ValueError(f"no valid population loss (a quadratic with finite numbers) from {name}: {e}") from None


@array_eq_dataclass
@dataclass(frozen=True, eq=False)
class MeanEstimation(_DataSetNoise):
    r"""Mean estimation: per-example loss :math:`\ell_i(\Phi) = \tfrac12|\Phi - a_i|^2`.

    Population loss :math:`L(\Phi) = \tfrac12|\Phi - \bar a|^2 + \tfrac12 \overline{|a - \bar a|^2}`
    (``.landscape``). The minibatch gradient is :math:`\Phi - \tfrac1B\sum_{b} a_{i_b}`: its noise
    does not depend on :math:`\Phi`, has per-example covariance
    :math:`S = \tfrac1n \sum_i (a_i - \bar a)(a_i - \bar a)^\top`, and sampling without
    replacement multiplies the batch covariance :math:`S/B` by the finite-population factor
    :math:`(n - B)/(n - 1)`.

    **Cost**: ``B`` random indices (``B`` uniforms) per chain per step, or ``B d`` normals when
    streamed.

    Parameters
    ----------
    data : array (n, d) or (n,)
        The examples :math:`a_i` (copied).
    replace : bool, default True
        Sample each batch with replacement (i.i.d. indices) or without (a uniform B-subset).

    Use :meth:`streamed` for fresh examples :math:`a \sim \mathcal N(\mu, \sigma^2 I)` each step.
    """

    data: object = None
    replace: bool = True
    mean: object = None
    sigma: float = 1.0
    landscape: Quadratic = field(init=False, repr=False, compare=False)

    _kernel_name = "_mean_estimation_noise"

    def __post_init__(self):
        set_frozen(self, "sigma", _check_squarable("sigma", self.sigma))
        set_frozen(self, "replace", check_bool("replace", self.replace))
        if self.data is None:
            if self.mean is None:
                raise ValueError("MeanEstimation needs data (n, d), or use MeanEstimation.streamed(mean, sigma)")
            mu = _check_vector("mean", self.mean)
            set_frozen(self, "mean", freeze_array("mean", mu))
            land = _population("mean and sigma", np.ones(mu.shape[0]), center=mu,
                               offset=0.5 * mu.shape[0] * self.sigma**2)
        else:
            if self.mean is not None:
                raise ValueError("mean is for streamed examples (data=None); give either data or mean, not both")
            a = as_float_array("data", self.data, ndim=(1, 2))
            a = a.reshape(-1, 1) if a.ndim == 1 else a
            if a.shape[0] < 2 or not 1 <= a.shape[1] <= 8:
                raise ValueError(f"data must have shape (n, d) with n >= 2 and 1 <= d <= 8, got {np.shape(self.data)}")
            set_frozen(self, "data", freeze_array("data", a))
            with np.errstate(all="ignore"):
                center = a.mean(axis=0)
                offset = 0.5 * np.mean(np.sum((a - center) ** 2, axis=1))
            land = _population("data", np.ones(a.shape[1]), center=center, offset=offset)
        set_frozen(self, "landscape", land)

    @classmethod
    def streamed(cls, mean, sigma: float = 1.0) -> "MeanEstimation":
        """Fresh examples :math:`a \\sim \\mathcal N(\\text{mean}, \\sigma^2 I)` every step (online)."""
        return cls(data=None, mean=mean, sigma=sigma)

    def per_example_covariance(self) -> np.ndarray:
        """``S``, the covariance of one example's gradient (state independent here)."""
        if self.is_streamed:
            return self.sigma**2 * np.eye(self.mean.shape[0])
        r = self.data - self.data.mean(axis=0)
        return r.T @ r / self.data.shape[0]

    def batch_covariance(self, batch_size: int) -> np.ndarray:
        """Covariance of the minibatch gradient noise, with the finite-population factor."""
        s = self.per_example_covariance() / batch_size
        if not self.is_streamed and not self.replace:
            n = self.data.shape[0]
            s = s * (n - batch_size) / (n - 1)
        return s

    def _table(self):
        return self.data

    def kernel_params(self, dim: int, batch_size: int) -> np.ndarray:
        mean = self.mean if self.is_streamed else np.zeros(dim)
        n = 0.0 if self.is_streamed else self.data.shape[0]
        return np.concatenate([[self._mode(), n, self.sigma], mean])


@array_eq_dataclass
@dataclass(frozen=True, eq=False)
class LinearRegression(_DataSetNoise):
    r"""Least squares: per-example loss :math:`\ell_i(w) = \tfrac12 (w\cdot a_i - y_i)^2`.

    Population loss :math:`L(w) = \tfrac12 (w - w^*)^\top H (w - w^*) + L^*` with
    :math:`H = \tfrac1n\sum a_i a_i^\top` (``.landscape``). The per-example gradient
    :math:`(w\cdot a_i - y_i)\, a_i` has a covariance that grows with :math:`|w - w^*|`: state
    dependent, multiplicative noise, so the stationary law is not Gibbs in general.

    **Cost**: ``B`` random indices per chain per step, or ``B (d + 1)`` normals when streamed.

    Parameters
    ----------
    inputs : array (n, d)
    targets : array (n,)
    replace : bool, default True

    Use :meth:`streamed` for fresh examples :math:`a \sim \mathcal N(0, s^2 I)`,
    :math:`y = w^*\cdot a + \sigma_y \epsilon` each step.
    """

    inputs: object = None
    targets: object = None
    replace: bool = True
    weights: object = None
    input_std: float = 1.0
    noise_std: float = 1.0
    landscape: Quadratic = field(init=False, repr=False, compare=False)

    _kernel_name = "_linear_regression_noise"

    @property
    def data(self):
        return self.inputs

    def __post_init__(self):
        s = _check_squarable("input_std", self.input_std)
        sy = _check_squarable("noise_std", self.noise_std, allow_zero=True)
        set_frozen(self, "input_std", s)
        set_frozen(self, "noise_std", sy)
        set_frozen(self, "replace", check_bool("replace", self.replace))
        if self.inputs is None:
            if self.weights is None:
                raise ValueError("LinearRegression needs inputs and targets, or use LinearRegression.streamed(weights)")
            if self.targets is not None:
                raise ValueError("targets need inputs; give inputs and targets, or weights (streamed), not both")
            w = _check_vector("weights", self.weights)
            set_frozen(self, "weights", freeze_array("weights", w))
            land = _population("weights, input_std and noise_std", np.full(w.shape[0], s * s), center=w,
                               offset=0.5 * sy * sy)
        else:
            if self.weights is not None:
                raise ValueError("weights are for streamed examples (inputs=None); give either inputs or weights, "
                                 "not both")
            a = as_float_array("inputs", self.inputs, ndim=(1, 2))
            a = a.reshape(-1, 1) if a.ndim == 1 else a
            y = as_float_array("targets", self.targets, ndim=(1, 2)).ravel()
            if not 1 <= a.shape[1] <= 8 or y.shape[0] != a.shape[0] or a.shape[0] < 2:
                raise ValueError(
                    f"inputs must have shape (n, d), n >= 2, 1 <= d <= 8, and targets shape (n,); "
                    f"got {np.shape(self.inputs)} and {np.shape(self.targets)}"
                )
            with np.errstate(all="ignore"):
                h = a.T @ a / a.shape[0]
                ok = np.all(np.isfinite(h)) and np.linalg.matrix_rank(h) == a.shape[1]
            if not ok:
                raise ValueError("inputs must have full column rank (the population loss must have a unique minimum)")
            with np.errstate(all="ignore"):
                wstar = np.linalg.solve(h, a.T @ y / a.shape[0])
                offset = 0.5 * np.mean((a @ wstar - y) ** 2)
            set_frozen(self, "inputs", freeze_array("inputs", a))
            set_frozen(self, "targets", freeze_array("targets", y))
            land = _population("inputs and targets", h, center=wstar, offset=offset)
        set_frozen(self, "landscape", land)

    @classmethod
    def streamed(cls, weights, input_std: float = 1.0, noise_std: float = 1.0) -> "LinearRegression":
        """Fresh examples :math:`a \\sim \\mathcal N(0, s^2 I)`, :math:`y = w^*\\cdot a + \\sigma_y\\epsilon` (online)."""
        return cls(inputs=None, weights=weights, input_std=input_std, noise_std=noise_std)

    def _table(self):
        return np.column_stack([self.inputs, self.targets])

    def kernel_params(self, dim: int, batch_size: int) -> np.ndarray:
        w = self.weights if self.is_streamed else np.zeros(dim)
        n = 0.0 if self.is_streamed else self.inputs.shape[0]
        return np.concatenate([[self._mode(), n, self.input_std, self.noise_std], w])
