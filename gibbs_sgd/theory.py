"""Closed-form predictions: what temperature the lecture's small-learning-rate picture gives.

This module grows into the exact finite-learning-rate theory (discrete Lyapunov equations for
every linear optimizer on quadratics); here are the closed forms the engine is checked against.
"""
from __future__ import annotations

from .noise import Gaussian
from .optimizers import SGD, EMAMomentum, HeavyBall

__all__ = ["small_lr_temperature", "sgd_stationary_variance_1d"]


def _isotropic_sigma2(noise) -> float:
    if not isinstance(noise, Gaussian) or noise.covariance is not None:
        raise ValueError("the small-learning-rate temperature is defined here for isotropic Gaussian noise")
    return noise.sigma**2


def small_lr_temperature(optimizer, noise, batch_size: int) -> float:
    r"""The temperature of the small-learning-rate (Langevin) limit.

    SGD and EMA momentum: :math:`T = \eta\sigma^2/(2B)`; heavy ball (PyTorch parametrisation,
    dampening :math:`\tau`): :math:`T = \eta(1-\tau)\sigma^2 / (2B(1-\mu))`, the step of the
    equivalent SGD being :math:`\eta(1-\tau)/(1-\mu)`. Valid when :math:`\eta h \ll 1` for every
    curvature :math:`h` the chains see.

    Parameters
    ----------
    optimizer : SGD, HeavyBall or EMAMomentum
    noise : gibbs_sgd.noise.Gaussian, isotropic (per-example standard deviation sigma)
    batch_size : int >= 1

    Example
    -------
    >>> from gibbs_sgd.optimizers import SGD
    >>> from gibbs_sgd.noise import Gaussian
    >>> small_lr_temperature(SGD(lr=0.1), Gaussian(sigma=1.0), batch_size=5)
    0.01
    """
    s2 = _isotropic_sigma2(noise)
    if isinstance(optimizer, (SGD, EMAMomentum)):
        step = optimizer.lr
    elif isinstance(optimizer, HeavyBall):
        step = optimizer.lr * (1.0 - optimizer.dampening) / (1.0 - optimizer.momentum)
    else:
        raise TypeError(f"no small-learning-rate temperature for {type(optimizer).__name__}")
    return step * s2 / (2.0 * batch_size)


def sgd_stationary_variance_1d(lr: float, curvature: float, noise_variance: float, batch_size: int) -> float:
    r"""Exact stationary variance of 1-D SGD on :math:`\tfrac12 h\Phi^2` with additive noise.

    :math:`\Phi_{t+1} = (1-\eta h)\Phi_t - \eta\xi_t`, :math:`\operatorname{Var}\xi = s^2/B`, so
    :math:`V = (1-\eta h)^2 V + \eta^2 s^2/B`, i.e.
    :math:`V = \eta s^2 / (B h (2 - \eta h))`, finite for :math:`0 < \eta h < 2`.
    """
    a = lr * curvature
    if not 0 < a < 2:
        raise ValueError(f"SGD on a quadratic is stable only for 0 < lr * curvature < 2, got {a}")
    return lr * noise_variance / (batch_size * curvature * (2.0 - a))
