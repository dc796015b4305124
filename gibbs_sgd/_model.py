"""What every model component (landscape, noise, optimizer) shares.

A component is a frozen dataclass of hyper-parameters. It hands the kernels

* ``kernel_params()`` -- its run-time numbers packed into a float64 vector (so changing a
  learning rate or a curvature never recompiles anything), and
* ``kernel_functions()`` -- the plain scalar Numba functions that implement it, by name.

Functions that live at module level in this package are referenced by ``module:name`` so the
generated kernel is an importable file that Numba caches on disk; functions a user supplies
(:class:`gibbs_sgd.landscapes.Custom`) are passed as objects and compiled per process.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or a ValueError naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not np.isfinite(value) or not ok:
        rng = "[0, inf)" if allow_zero else "(0, inf)"
        raise ValueError(f"{name} must be finite and in {rng}, got {value}")
    return value


def check_interval(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=True) -> float:
    """``value`` as a float in the interval, or a ValueError naming ``name`` and the interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bad_lo = value <= lo if lo_open else value < lo
    bad_hi = value >= hi if hi_open else value > hi
    if not np.isfinite(value) or bad_lo or bad_hi:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def freeze_array(name: str, value, *, ndim=None, dtype=np.float64) -> np.ndarray:
    """A read-only float64 copy (never a view of the user's array), checked for finiteness."""
    arr = np.array(value, dtype=dtype, copy=True)
    if ndim is not None and arr.ndim not in np.atleast_1d(ndim):
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.setflags(write=False)
    return arr


def set_frozen(obj, name: str, value) -> None:
    """Assign a derived field inside ``__post_init__`` of a frozen dataclass."""
    object.__setattr__(obj, name, value)


def describe(obj) -> dict:
    """A JSON-ready description ``{"type": ..., field: value}`` of a component."""
    out = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif callable(v):
            v = getattr(v, "__qualname__", repr(v))
        elif isinstance(v, (np.floating, np.integer)):
            v = v.item()
        out[f.name] = v
    return out


def array_eq_dataclass(cls):
    """Make ``==`` and ``hash`` of a frozen dataclass holding arrays compare by value."""

    def key(self):
        parts = []
        for f in dataclasses.fields(self):
            if not f.compare:
                continue
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                parts.append((v.shape, v.tobytes()))
            else:
                parts.append(v)
        return tuple(parts)

    cls.__eq__ = lambda self, other: type(self) is type(other) and key(self) == key(other)
    cls.__hash__ = lambda self: hash((type(self).__name__, key(self)))
    return cls
