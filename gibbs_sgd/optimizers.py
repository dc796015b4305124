"""Optimizers: frozen dataclasses of hyper-parameters plus one scalar update rule each.

Kernel calling convention (one source of truth, compiled into every backend)::

    update(x, g, s, lr, p, c) -> None

``x`` (d,) the parameters, updated in place; ``g`` (d,) the minibatch gradient ``g_hat``;
``s`` (n_state * d,) the optimizer state, state variable ``k`` of coordinate ``i`` at
``s[k * d + i]``; ``lr`` this step's learning rate (the schedule already applied); ``p`` the
packed hyper-parameters; ``c`` this step's row of :meth:`Optimizer.step_coefficients` --
the numbers that depend on the step only (Adam's bias corrections, heavy ball's first-step
flag), computed once per run on the host instead of once per chain and step (the powers
``beta**t`` per chain made Adam 5x slower). Names and semantics follow ``torch.optim``
exactly where PyTorch has the optimizer.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ._model import describe
from .landscapes import (
    MAX_EXACT_INT,
    check_bool,
    check_choice,
    check_derived,
    check_int,
    check_interval,
    check_pair,
    check_positive,
)

__all__ = ["Optimizer", "SGD", "HeavyBall", "EMAMomentum", "RMSprop", "Adam"]


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

    def step_coefficients(self, n_steps: int) -> np.ndarray:
        """Per-step numbers of the update, shape (n_steps, k); row ``t`` is passed as ``c``."""
        return np.zeros((n_steps, 1))

    def kernel_functions(self) -> dict:
        return {"update": f"{__name__}:{self._kernel_name}"}

    def structure_key(self) -> tuple:
        return (type(self).__name__, self.n_state)

    def describe(self) -> dict:
        return describe(self)


def _check_beta(name: str, value) -> float:
    """An EMA coefficient in [0, 1)."""
    return check_interval(name, value, 0.0, 1.0)


# =========================================================================================
@njit(cache=True, inline="always")
def _sgd_update(x, g, s, lr, p, c):
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
        b = check_int("batch_size", batch_size, 1, MAX_EXACT_INT)
        return cls(lr=check_derived("eta0 and batch_size", check_positive, "lr", b * check_positive("eta0", eta0)))

    def kernel_params(self):
        return np.zeros(1)


# =========================================================================================
@njit(cache=True, inline="always")
def _heavy_ball_update(x, g, s, lr, p, c):
    # p = [momentum, dampening, nesterov]; s = momentum buffer (d,)
    # c = [1 at the first step, else 0]. Branch-free over the coordinates: at the first step
    # the buffer becomes g exactly (0 * 0 + 1 * g), as torch's clone of the first gradient.
    first = c[0] != 0.0
    mu = p[0]
    keep = 0.0 if first else mu
    take = 1.0 if first else 1.0 - p[1]
    nesterov = p[2] != 0.0
    for i in range(x.shape[0]):
        s[i] = keep * s[i] + take * g[i]
        if nesterov:
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
        object.__setattr__(self, "nesterov", check_bool("nesterov", self.nesterov))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0 (as torch.optim.SGD)")

    @classmethod
    def scaled(cls, eta0: float, batch_size: int, momentum: float, **kw) -> "HeavyBall":
        r"""The lecture's rule :math:`\eta = (1-\mu)\,B\,\eta_0`."""
        mu = check_interval("momentum", momentum, 0.0, 1.0)
        b = check_int("batch_size", batch_size, 1, MAX_EXACT_INT)
        lr = check_derived("eta0, batch_size and momentum", check_positive, "lr",
                           (1.0 - mu) * b * check_positive("eta0", eta0))
        return cls(lr=lr, momentum=mu, **kw)

    def kernel_params(self):
        return np.array([self.momentum, self.dampening, 1.0 if self.nesterov else 0.0])

    def step_coefficients(self, n_steps: int) -> np.ndarray:
        c = np.zeros((n_steps, 1))
        c[0, 0] = 1.0
        return c


# =========================================================================================
@njit(cache=True, inline="always")
def _ema_momentum_update(x, g, s, lr, p, c):
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
        return cls(lr=lr, beta=check_derived("horizon", _check_beta, "beta", 1.0 - 1.0 / n))

    def kernel_params(self):
        return np.array([self.beta])


# =========================================================================================
# Adaptive methods
# =========================================================================================
@njit(cache=True, inline="always")
def _lerp(a, b, w):
    # torch.lerp's formula (ATen): a + w (b - a) for |w| < 1/2, else b - (b - a)(1 - w), so that
    # our EMAs round exactly as torch.optim's exp_avg.lerp_(grad, 1 - beta).
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


@njit(cache=True, inline="always")
def _rmsprop_update(x, g, s, lr, p, c):
    # p = [alpha, eps, momentum, centered]; s = [square_avg (d), momentum_buffer (d), grad_avg (d)]
    # the options are selects, not branches around stores: a loop over chains then vectorises
    # without masked stores (which AVX2 and NEON lack as fast instructions); the values are
    # the branches' bit for bit
    d = x.shape[0]
    alpha = p[0]
    centered = p[3] != 0.0
    heavy = p[2] > 0.0
    for i in range(d):
        gi = g[i]
        s[i] = s[i] * alpha + (1.0 - alpha) * gi * gi
        ga = _lerp(s[2 * d + i], gi, 1.0 - alpha)
        s[2 * d + i] = ga if centered else s[2 * d + i]
        avg = math.sqrt(s[i] - ga * ga if centered else s[i]) + p[1]
        buf = s[d + i] * p[2] + gi / avg
        s[d + i] = buf if heavy else s[d + i]
        x[i] -= lr * buf if heavy else lr * (gi / avg)


@dataclass(frozen=True)
class RMSprop(Optimizer):
    r"""RMSprop exactly as ``torch.optim.RMSprop(lr, alpha, eps, momentum, centered)``.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha)\hat g_t^2, \qquad
        \bar g_t = \bar g_{t-1} + (1-\alpha)(\hat g_t - \bar g_{t-1}) \ \text{(centered)}

        a_t = \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{(centered)}, \quad a_t = \sqrt{v_t} + \epsilon

        b_t = \mu b_{t-1} + \hat g_t / a_t, \ \Phi_{t+1} = \Phi_t - \eta b_t \ (\mu > 0); \quad
        \Phi_{t+1} = \Phi_t - \eta \hat g_t / a_t \ (\mu = 0)

    all per coordinate, starting from zeros. Its momentum is heavy-ball (PyTorch's), which the
    lecture calls the wrong parametrisation for temperature.

    Parameters
    ----------
    lr : float > 0 (PyTorch default 0.01)
    alpha : float in [0, 1), default 0.99
    eps : float > 0, default 1e-8
    momentum : float in [0, 1), default 0
    centered : bool, default False
    """

    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False

    state_names = ("square_avg", "momentum_buffer", "grad_avg")
    _kernel_name = "_rmsprop_update"

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))
        object.__setattr__(self, "alpha", check_interval("alpha", self.alpha, 0.0, 1.0))
        object.__setattr__(self, "eps", check_positive("eps", self.eps))
        object.__setattr__(self, "momentum", check_interval("momentum", self.momentum, 0.0, 1.0))
        object.__setattr__(self, "centered", check_bool("centered", self.centered))

    def kernel_params(self):
        return np.array([self.alpha, self.eps, self.momentum, 1.0 if self.centered else 0.0])


_BIAS_CORRECTIONS = {"torch": 0.0, "none": 1.0, "running": 2.0}


@njit(cache=True, inline="always")
def _adam_update(x, g, s, lr, p, c):
    # p = [beta_g, beta_s, eps, mode, amsgrad]; s = [m (d), v (d), v_max (d)]
    # c = [w1, w2, bc1, bc2_sqrt]: the EMA weights of this step (1 - beta, or 1/min(t, N) for the
    # lecture's running averages) and torch's bias corrections 1 - beta_g^t, sqrt(1 - beta_s^t)
    # (1 and 1 when there is no correction).
    d = x.shape[0]
    w1 = c[0]
    w2 = c[1]
    step_size = lr / c[2]
    bc2_sqrt = c[3]
    eps = p[2]
    keep2 = 1.0 - w2 if p[3] == 2.0 else p[1]  # torch: v * beta_s + (1 - beta_s) g^2
    for i in range(d):
        gi = g[i]
        s[i] = _lerp(s[i], gi, w1)
        s[d + i] = s[d + i] * keep2 + w2 * gi * gi
        v = s[d + i]
        if s.shape[0] >= 3 * d:  # the state holds v_max (amsgrad's kernels): known when compiled
            # a select, not a conditional store: a loop over chains then vectorises without masked
            # stores (which AVX2 and NEON lack as fast instructions)
            ams = p[4] != 0.0
            vm = max(s[2 * d + i], v)
            s[2 * d + i] = vm if ams else s[2 * d + i]
            v = vm if ams else v
        denom = math.sqrt(v) / bc2_sqrt + eps
        x[i] -= step_size * (s[i] / denom)


def _check_betas(betas) -> tuple:
    """``(beta1, beta2)``, each in [0, 1), or an error naming betas."""
    return check_pair("betas", betas, _check_beta, what="(beta1, beta2) with each in [0, 1)")


@dataclass(frozen=True)
class Adam(Optimizer):
    r"""Adam, with ``torch.optim.Adam``'s exact semantics and the lecture's variants.

    .. math::
        m_t = \beta_g m_{t-1} + (1-\beta_g)\hat g_t, \qquad
        v_t = \beta_s v_{t-1} + (1-\beta_s)\hat g_t^2

        \Phi_{t+1} = \Phi_t - \frac{\eta}{1-\beta_g^t}\,
            \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_s^t} + \epsilon}
        \quad(\texttt{bias\_correction="torch"})

    per coordinate, from zeros (``amsgrad`` replaces :math:`v_t` by its running maximum).
    ``bias_correction="none"`` is the lecture's "Adam without bias correction"
    (:math:`\Phi \leftarrow \Phi - \eta\, m_t/(\sqrt{v_t}+\epsilon)`); ``"running"`` is the lecture's
    :math:`m_t = (1 - 1/\min(t, N_g)) m_{t-1} + \hat g_t/\min(t, N_g)` (same for :math:`v` with
    :math:`N_s`), :math:`N = 1/(1-\beta)`, which averages exactly the first t gradients while
    :math:`t < N` and is an EMA afterwards. ``betas[0] = 0`` is gradient normalisation.

    Parameters
    ----------
    lr : float > 0, default 1e-3
    betas : (beta_g, beta_s) in [0, 1), default (0.9, 0.999)
    eps : float > 0, default 1e-8
    amsgrad : bool, default False
    bias_correction : "torch" (default), "none" or "running"

    See :meth:`decoupled` (the lecture's batch-size-decoupled parametrisation) and
    :meth:`sqrt_scaled` (the square-root scaling rule).

    References: Kingma & Ba (2015); Reddi et al. (2018) for AMSGrad; the lecture, "Adam",
    "Bias Correction", "Decoupling Hyper-Parameters"; Malladi et al. (2022) for the
    square-root rule.
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    amsgrad: bool = False
    bias_correction: str = "torch"

    _kernel_name = "_adam_update"

    def __post_init__(self):
        object.__setattr__(self, "lr", check_positive("lr", self.lr))
        object.__setattr__(self, "betas", _check_betas(self.betas))
        object.__setattr__(self, "eps", check_positive("eps", self.eps))
        object.__setattr__(self, "amsgrad", check_bool("amsgrad", self.amsgrad))
        check_choice("bias_correction", self.bias_correction, _BIAS_CORRECTIONS)

    @property
    def state_names(self) -> tuple:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if self.amsgrad else ("exp_avg", "exp_avg_sq")

    @property
    def n_state(self) -> int:
        return len(self.state_names)

    @classmethod
    def decoupled(cls, eta0: float, batch_size: int, horizon_g: float, horizon_s: float, eps0: float,
                  bias_correction: str = "running") -> "Adam":
        r"""The lecture's decoupled Adam (its garbled slide read as the design brief states).

        Independent hyper-parameters :math:`\eta_0, B, N_g^0, N_s^0, \epsilon_0`; then

        .. math::
            1-\beta_g = \min(1, B/N_g^0), \quad 1-\beta_s = \min(1, B/N_s^0), \quad
            \epsilon = \epsilon_0\sqrt B, \quad \eta = \epsilon\, B\, \eta_0 .

        Derivation (the lecture's argument): an average over :math:`N^0` examples spans
        :math:`N^0/B` batches of B, hence :math:`N = \max(1, N^0/B)` steps. With per-example
        noise of variance :math:`\sigma^2`, :math:`\sqrt{v} \approx \sigma/\sqrt B`. When
        :math:`\epsilon` dominates, Adam is SGD with step :math:`\eta/\epsilon = B\eta_0`: the
        batch-size rule :math:`\eta = B\eta_0` of SGD, so the temperature is set by
        :math:`\eta_0` -- "vanilla SGD in the limit :math:`\epsilon_0 \to \infty`". Note that
        :math:`\epsilon = \epsilon_0\sqrt B` does *not* keep :math:`\epsilon/\sqrt v` fixed: that
        ratio is :math:`\epsilon_0 B/\sigma`, which grows with B, so where :math:`\epsilon` does not
        dominate T depends on B and on :math:`\epsilon_0` (measured by
        ``validation/adam_batch_size.py``: d log T / d log eps0 = 0.34 at B = 1, eps0 = 1).
        """
        b = float(check_int("batch_size", batch_size, 1, MAX_EXACT_INT))
        one_g = min(1.0, b / check_positive("horizon_g", horizon_g))
        one_s = min(1.0, b / check_positive("horizon_s", horizon_s))
        beta_g = check_derived("batch_size and horizon_g", _check_beta, "betas[0]", 1.0 - one_g)
        beta_s = check_derived("batch_size and horizon_s", _check_beta, "betas[1]", 1.0 - one_s)
        eps = check_derived("eps0 and batch_size", check_positive, "eps", check_positive("eps0", eps0) * math.sqrt(b))
        lr = check_derived("eps0, batch_size and eta0", check_positive, "lr", eps * b * check_positive("eta0", eta0))
        return cls(lr=lr, betas=(beta_g, beta_s), eps=eps, bias_correction=bias_correction)

    def sqrt_scaled(self, reference_batch_size: int, batch_size: int) -> "Adam":
        r"""The square-root scaling rule for adaptive methods (Malladi et al. 2022).

        From this setting at ``reference_batch_size`` to ``batch_size`` = kappa times it:
        :math:`\eta \to \sqrt\kappa\,\eta`, :math:`1-\beta \to \kappa(1-\beta)` (capped at 1),
        :math:`\epsilon \to \epsilon/\sqrt\kappa`.
        """
        kappa = (check_int("batch_size", batch_size, 1, MAX_EXACT_INT)
                 / check_int("reference_batch_size", reference_batch_size, 1, MAX_EXACT_INT))
        root = math.sqrt(kappa)
        b1, b2 = self.betas
        inputs = "batch_size and reference_batch_size"
        return dataclasses.replace(
            self,
            lr=check_derived(inputs, check_positive, "lr", self.lr * root),
            betas=(check_derived(inputs, _check_beta, "betas[0]", 1.0 - min(1.0, kappa * (1 - b1))),
                   check_derived(inputs, _check_beta, "betas[1]", 1.0 - min(1.0, kappa * (1 - b2)))),
            eps=check_derived(inputs, check_positive, "eps", self.eps / root),
        )

    def kernel_params(self):
        return np.array([self.betas[0], self.betas[1], self.eps, _BIAS_CORRECTIONS[self.bias_correction],
                         1.0 if self.amsgrad else 0.0])

    def step_coefficients(self, n_steps: int) -> np.ndarray:
        """Rows ``[w_g, w_s, 1 - beta_g^k, sqrt(1 - beta_s^k)]`` for steps ``k = 1 .. n_steps``."""
        k = np.arange(1, n_steps + 1, dtype=np.float64)
        b1, b2 = self.betas
        c = np.empty((n_steps, 4))
        if self.bias_correction == "running":
            # N = 1/(1 - beta); beta = 0 gives N = 1 (every step a fresh value)
            c[:, 0] = 1.0 / np.minimum(k, 1.0 / (1.0 - b1))
            c[:, 1] = 1.0 / np.minimum(k, 1.0 / (1.0 - b2))
        else:
            c[:, 0] = 1.0 - b1
            c[:, 1] = 1.0 - b2
        if self.bias_correction == "torch":
            c[:, 2] = [1.0 - b1**j for j in k]  # Python float powers, as torch.optim computes them
            c[:, 3] = [math.sqrt(1.0 - b2**j) for j in k]
        else:
            c[:, 2] = 1.0
            c[:, 3] = 1.0
        return c
