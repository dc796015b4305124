"""Learning-rate schedules: a factor ``f(t)`` multiplying the optimizer's ``lr`` at step ``t``.

A schedule is the same for every chain, so it is evaluated once on the host into a vector of
per-step learning rates that the kernels read; no schedule is ever compiled. ``t`` counts
steps from 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._model import describe
from .landscapes import check_bool, check_int, check_interval, check_positive

__all__ = ["Schedule", "Constant", "StepHalving", "RobbinsMonro", "Cosine"]

# Step counts are compared with NumPy's int64 step indices.
_INT64_MAX = 2**63 - 1


class Schedule:
    """Base class: ``factors(n_steps)`` -> float64 array of shape (n_steps,)."""

    def factors(self, n_steps: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return describe(self)


@dataclass(frozen=True)
class Constant(Schedule):
    """``f(t) = 1``: the constant learning rate, whose chains reach a stationary law."""

    def factors(self, n_steps: int) -> np.ndarray:
        return np.ones(n_steps)


@dataclass(frozen=True)
class StepHalving(Schedule):
    r"""The lecture's step schedule, :math:`f(t) = \text{factor}^{\lfloor t/\text{every}\rfloor}`.

    Parameters
    ----------
    every : int >= 1, steps between reductions
    factor : float in (0, 1), default 0.5 (halving)

    Example
    -------
    >>> StepHalving(every=2).factors(5).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    every: int
    factor: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "every", check_int("every", self.every, 1, _INT64_MAX))
        object.__setattr__(self, "factor", check_interval("factor", self.factor, 0.0, 1.0, lo_open=True))

    def factors(self, n_steps: int) -> np.ndarray:
        return self.factor ** (np.arange(n_steps) // self.every).astype(np.float64)


@dataclass(frozen=True)
class RobbinsMonro(Schedule):
    r"""Decaying steps :math:`f(t) = (1 + t/t_0)^{-\gamma}`.

    For :math:`\gamma \in (1/2, 1]`, :math:`\sum_t \eta_t = \infty` and :math:`\sum_t \eta_t^2 < \infty`:
    the conditions of the classical convergence theorem (Robbins & Monro 1951), under which the
    chains converge to a stationary point instead of a stationary *law*. ``gamma`` outside that
    range is allowed only with ``strict=False``, for the theorem's boundary cases.

    Parameters
    ----------
    t0 : float > 0, the step scale
    gamma : float in (1/2, 1] (any float > 0 with ``strict=False``)
    strict : bool, default True
    """

    t0: float
    gamma: float = 1.0
    strict: bool = True

    def __post_init__(self):
        object.__setattr__(self, "t0", check_positive("t0", self.t0))
        object.__setattr__(self, "strict", check_bool("strict", self.strict))
        if self.strict:
            object.__setattr__(self, "gamma", check_interval("gamma", self.gamma, 0.5, 1.0, lo_open=True, hi_open=False))
        else:
            object.__setattr__(self, "gamma", check_positive("gamma", self.gamma))

    def factors(self, n_steps: int) -> np.ndarray:
        return (1.0 + np.arange(n_steps) / self.t0) ** (-self.gamma)


@dataclass(frozen=True)
class Cosine(Schedule):
    r"""Cosine annealing :math:`f(t) = m + (1 - m)\,\tfrac12(1 + \cos(\pi\,\min(t, T)/T))`.

    As ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max = total_steps`` and
    ``eta_min = min_factor * lr``, held at the minimum after ``total_steps``.

    Parameters
    ----------
    total_steps : int >= 1
    min_factor : float in [0, 1), default 0
    """

    total_steps: int
    min_factor: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "total_steps", check_int("total_steps", self.total_steps, 1, _INT64_MAX))
        object.__setattr__(self, "min_factor", check_interval("min_factor", self.min_factor, 0.0, 1.0))

    def factors(self, n_steps: int) -> np.ndarray:
        t = np.minimum(np.arange(n_steps), self.total_steps)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + np.cos(math.pi * t / self.total_steps))
