"""Optimizers: frozen dataclasses of hyper-parameters plus one scalar update rule each.

Kernel calling convention (one source of truth, compiled into every backend)::

    update(x, g, s, lr, p, t) -> None

``x`` (d,) the parameters, updated in place; ``g`` (d,) the minibatch gradient ``g_hat``;
``s`` (n_state * d,) the optimizer state, state variable ``k`` of coordinate ``i`` at
``s[k * d + i]``; ``lr`` this step's learning rate (the schedule already applied); ``p`` the
packed hyper-parameters; ``t`` the 0-based step index. Names and semantics follow
``torch.optim`` exactly where PyTorch has the optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ._model import check_interval, check_positive, describe

__all__ = ["Optimizer", "SGD", "HeavyBall", "EMAMomentum"]


class Optimizer:
    """Base class."""

    #: names of the per-coordinate state variables, in the order they sit in ``s``
    state_names: tuple = ()
    _kernel_name = ""

    @property
    def n_state(self) -> int:
        return len(self.state_names)

    def kernel_params(self) -> np.ndarray:
        raise NotImplementedError

    def kernel_functions(self) -> dict:
        return {"update": f"{__name__}:{self._kernel_name}"}

    def structure_key(self) -> tuple:
        return (type(self).__name__,)

    def describe(self) -> dict:
        return describe(self)


# =========================================================================================
@njit(cache=True, inline="always")
def _sgd_update(x, g, s, lr, p, t):
    for i in range(x.shape[0]):
        x[i] -= lr * g[i]


@dataclass(frozen=True)
class SGD(Optimizer):
    r"""Plain stochastic gradient descent, :math:`\Phi_{t+1} = \Phi_t - \eta\,\hat g_t`.

    ``torch.optim.SGD(params, lr)`` with ``momentum = 0``.

    Parameters
    ----------
    lr : float > 0, the learning rate :math:`\eta`

    Example
    -------
    >>> SGD.scaled(eta0=0.01, batch_size=8).lr
    0.08

    References: the lecture, "Vanilla SGD"; Robbins & Monro (1951).
    """

    lr: float

    _kernel_name = "_sgd_update"

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))

    @classmethod
    def scaled(cls, eta0: float, batch_size: int) -> "SGD":
        r"""The lecture's batch-size rule :math:`\eta = B\,\eta_0` (Goyal et al. 2017)."""
        return cls(lr=batch_size * check_positive("eta0", eta0))

    def kernel_params(self):
        return np.zeros(1)


# =========================================================================================
@njit(cache=True, inline="always")
def _heavy_ball_update(x, g, s, lr, p, t):
    # p = [momentum, dampening, nesterov]; s = momentum buffer (d,)
    mu = p[0]
    for i in range(x.shape[0]):
        if t == 0:
            s[i] = g[i]
        else:
            s[i] = mu * s[i] + (1.0 - p[1]) * g[i]
        if p[2] != 0.0:
            x[i] -= lr * (g[i] + mu * s[i])
        else:
            x[i] -= lr * s[i]


@dataclass(frozen=True)
class HeavyBall(Optimizer):
    r"""Heavy-ball momentum exactly as ``torch.optim.SGD(lr, momentum, dampening, nesterov)``.

    .. math::
        b_1 = \hat g_1, \qquad b_t = \mu b_{t-1} + (1 - \text{dampening})\,\hat g_t \quad (t > 1)

        \Phi_{t+1} = \Phi_t - \eta\,(\hat g_t + \mu b_t) \ \text{(Nesterov)}, \quad
        \Phi_{t+1} = \Phi_t - \eta\, b_t \ \text{(otherwise)}

    With no dampening this is the lecture's :math:`v_t = \mu v_{t-1} + \eta\hat g_t` with
    :math:`v = \eta b`: the effective step is :math:`\eta/(1-\mu)`, so the temperature depends on
    :math:`\eta`, :math:`B` and :math:`\mu` and the lecture sets :math:`\eta = (1-\mu)B\eta_0`
    (:meth:`scaled`).

    Parameters
    ----------
    lr : float > 0
    momentum : float in [0, 1)
    dampening : float in [0, 1], default 0
    nesterov : bool, default False (needs momentum > 0 and dampening = 0, as in PyTorch)

    Example
    -------
    >>> round(HeavyBall.scaled(eta0=0.01, batch_size=4, momentum=0.9).lr, 12)
    0.004
    """

    lr: float
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False

    state_names = ("momentum_buffer",)
    _kernel_name = "_heavy_ball_update"

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))
        object.__setattr__(self, "momentum", check_interval("momentum", self.momentum, 0.0, 1.0))
        object.__setattr__(self, "dampening", check_interval("dampening", self.dampening, 0.0, 1.0, hi_open=False))
        object.__setattr__(self, "nesterov", bool(self.nesterov))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0 (as torch.optim.SGD)")

    @classmethod
    def scaled(cls, eta0: float, batch_size: int, momentum: float, **kw) -> "HeavyBall":
        r"""The lecture's rule :math:`\eta = (1-\mu)\,B\,\eta_0`."""
        mu = check_interval("momentum", momentum, 0.0, 1.0)
        return cls(lr=(1.0 - mu) * batch_size * check_positive("eta0", eta0), momentum=mu, **kw)

    def kernel_params(self):
        return np.array([self.momentum, self.dampening, 1.0 if self.nesterov else 0.0])


# =========================================================================================
@njit(cache=True, inline="always")
def _ema_momentum_update(x, g, s, lr, p, t):
    # p = [beta]; s = EMA of the gradient (d,), starting at 0
    beta = p[0]
    for i in range(x.shape[0]):
        s[i] = beta * s[i] + (1.0 - beta) * g[i]
        x[i] -= lr * s[i]


@dataclass(frozen=True)
class EMAMomentum(Optimizer):
    r"""The lecture's EMA momentum: :math:`\tilde g_t = \beta\tilde g_{t-1} + (1-\beta)\hat g_t`, :math:`\Phi_{t+1} = \Phi_t - \eta\tilde g_t`.

    :math:`\tilde g_0 = 0`. Each gradient's total weight is :math:`(1-\beta)\sum_i\beta^i = 1`,
    which is the lecture's argument that the temperature depends on :math:`\eta` but not on
    :math:`\beta = 1 - 1/N`.

    Parameters
    ----------
    lr : float > 0
    beta : float in [0, 1)

    Example
    -------
    >>> EMAMomentum.from_horizon(lr=0.1, horizon=10).beta
    0.9
    """

    lr: float
    beta: float = 0.9

    state_names = ("ema_gradient",)
    _kernel_name = "_ema_momentum_update"

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))
        object.__setattr__(self, "beta", check_interval("beta", self.beta, 0.0, 1.0))

    @classmethod
    def from_horizon(cls, lr: float, horizon: float) -> "EMAMomentum":
        r"""EMA over about ``horizon`` = N steps: :math:`\beta = 1 - 1/N`, N >= 1."""
        n = check_interval("horizon", horizon, 1.0, np.inf)
        return cls(lr=lr, beta=1.0 - 1.0 / n)

    def kernel_params(self):
        return np.array([self.beta])
