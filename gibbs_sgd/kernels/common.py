"""Device-independent pieces of the kernels, compiled into every backend like the model.

:func:`add_sample` is the one definition of what a sampled state adds to its block's moment
row (the layout is :func:`gibbs_sgd.kernels.common.moment_layout`); :func:`bin_index` the one
definition of a histogram bin.
"""
import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def add_sample(acc, z, g, loss, lap, count):
    """Add one sampled state to the moment sums ``acc`` (count, L, L^2, Laplacian, |grad L|^2,
    x_k dL/dk, dL/dk, (dL/dk)^2, then z and z z^T for the state vector z = (x, s)).

    ``z`` the state vector: the position ``x`` (its first d numbers), then the optimizer state
    (d * (1 + n_state) numbers in all), ``g`` (d,) the gradient of L at ``x``. ``count`` is what
    the sample adds to the count: 1.0; the CPU kernel, which sums a whole tile of chains without
    a branch, passes 0.0 for a chain that is not alive, with every other input 0.0, so that it
    adds exactly nothing. Only ``acc`` is written (so a loop over chains is a set of reductions).
    """
    d = g.shape[0]
    mz = z.shape[0]
    acc[0] += count
    acc[1] += loss
    acc[2] += loss * loss
    acc[3] += lap
    o = 5
    for i in range(d):
        gi = g[i]
        acc[4] += gi * gi
        acc[o + i] += z[i] * gi
        acc[o + d + i] += gi
        acc[o + 2 * d + i] += gi * gi
    o += 3 * d
    for m in range(mz):
        acc[o + m] += z[m]
        for q in range(mz):
            acc[o + mz + m * mz + q] += z[m] * z[q]


@njit(cache=True, inline="always")
def bin_index(v, lo, inv, period, nb):
    """Histogram bin of ``v`` among ``nb`` uniform bins from ``lo`` (width ``1/inv``): ``-1``
    below the range, ``nb`` above it. A periodic coordinate (``period > 0``) is folded onto
    ``[lo, lo + period)`` first. The range test is done in floating point before any conversion
    to an integer, so a huge (finite) value lands above the range, never wraps around."""
    if period > 0.0:
        r = (v - lo) % period
        if r >= period:
            # v a hair below lo (mod period): the remainder rounded up to the period itself. It
            # lies at the top of the period: the last bin when the range covers the period.
            return nb - 1 if period * inv > nb - 0.5 else nb
        return bin_of_offset(r * inv, nb)
    return bin_of_offset((v - lo) * inv, nb)


@njit(cache=True, inline="always")
def bin_of_offset(y, nb):
    """The bin of ``y = (v - lo) * inv``: ``-1`` below 0 (or NaN), ``nb`` at or above ``nb``,
    else ``floor(y)``. Written without branches (selects), and converting through int32 (``nb <
    2**31``): a float to int64 conversion has a vector instruction on AVX-512 only, so the CPU
    kernel's loop over a tile of chains vectorises on AVX2 and NEON too."""
    yc = y if y < nb else np.float64(nb)  # also NaN -> nb, never converted out of range
    k = np.int32(yc)  # yc >= 0 where it is used: truncation is the floor
    return np.int64(k) if y >= 0.0 else np.int64(-1)


def moment_layout(dim: int, n_state: int) -> dict:
    """Column index of each running sum in the kernel's per-block moment rows."""
    m = dim * (1 + n_state)
    z0 = 5 + 3 * dim
    return {
        "count": 0,
        "loss": 1,
        "loss_sq": 2,
        "laplacian": 3,
        "grad_sq": 4,
        "phi_grad": slice(5, 5 + dim),
        "grad": slice(5 + dim, 5 + 2 * dim),
        "grad_sq_coord": slice(5 + 2 * dim, 5 + 3 * dim),
        "state": slice(z0, z0 + m),
        "state_outer": slice(z0 + m, z0 + m + m * m),
        "n_columns": z0 + m + m * m,
        "state_size": m,
    }
