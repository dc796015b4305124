"""The Gibbs law ``p(phi) = exp(-L(phi)/T) / Z`` of a landscape at temperature ``T``.

This module grows into the full Gibbs object (``gibbs_sgd.Gibbs``) and the temperature fit;
for now it holds the one-dimensional density normalised by quadrature, which the demo and the
tests compare histograms with.
"""
from __future__ import annotations

import numpy as np
from scipy import integrate

from ._model import check_positive

__all__ = ["log_partition_1d", "density_1d", "bin_probabilities_1d"]


def _check_1d(landscape):
    if landscape.dim != 1:
        raise ValueError(f"this function needs a 1-D landscape, got dimension {landscape.dim}")


def _support(landscape, lo, hi):
    if lo is None or hi is None:
        box = landscape.box[0]
        lo = box[0] if lo is None else lo
        hi = box[1] if hi is None else hi
    return float(lo), float(hi)


def log_partition_1d(landscape, temperature: float, lo=None, hi=None) -> float:
    r"""``log Z``, :math:`Z = \int_{lo}^{hi} e^{-(L(x) - L_{min})/T} dx + L_{min}/T` correction.

    Integrated by adaptive Gauss-Kronrod quadrature (``scipy.integrate.quad``) on the
    landscape's box (or ``[lo, hi]``), with the loss shifted by its minimum on a fine grid so
    that small temperatures neither underflow nor overflow. For a periodic landscape the box
    is one period: the torus.

    Returns ``log Z`` with ``Z = int exp(-L/T)``.
    """
    _check_1d(landscape)
    T = check_positive("temperature", temperature)
    lo, hi = _support(landscape, lo, hi)
    grid = np.linspace(lo, hi, 4001)
    lmin = float(np.min(landscape.loss(grid)))
    loss = landscape._resolve("loss")
    p = landscape.kernel_params()
    x = np.zeros(1)

    def f(v):
        x[0] = v
        return np.exp(-(loss(x, p) - lmin) / T)

    # Points where the integrand peaks help quad on sharply peaked (cold) laws.
    peaks = grid[np.argsort(landscape.loss(grid))[:1]].tolist()
    val, _ = integrate.quad(f, lo, hi, points=peaks, limit=500, epsabs=0.0, epsrel=1e-11)
    return float(np.log(val) - lmin / T)


def density_1d(landscape, temperature: float, x, lo=None, hi=None) -> np.ndarray:
    """``exp(-L(x)/T) / Z`` with ``Z`` from :func:`log_partition_1d` on ``[lo, hi]``."""
    logz = log_partition_1d(landscape, temperature, lo, hi)
    return np.exp(-np.asarray(landscape.loss(x)) / temperature - logz)


def bin_probabilities_1d(landscape, temperature: float, edges, lo=None, hi=None) -> np.ndarray:
    """Probability of each histogram bin under the Gibbs law, integrated over the bin."""
    _check_1d(landscape)
    T = check_positive("temperature", temperature)
    lo, hi = _support(landscape, lo, hi)
    logz = log_partition_1d(landscape, T, lo, hi)
    loss = landscape._resolve("loss")
    p = landscape.kernel_params()
    x = np.zeros(1)

    def f(v):
        x[0] = v
        return np.exp(-loss(x, p) / T - logz)

    return np.array([integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-10)[0] for a, b in zip(edges[:-1], edges[1:])])
