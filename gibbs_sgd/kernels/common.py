"""Device-independent pieces of the kernels, compiled into every backend like the model.

:func:`add_sample` is the one definition of what a sampled state adds to its block's moment
row (the layout is :func:`gibbs_sgd.kernels.cpu.moment_layout`); :func:`bin_index` the one
definition of a histogram bin.
"""
from numba import njit


@njit(cache=True, inline="always")
def add_sample(acc, x, s, g, loss, lap, zv):
    """Add one sampled state to the moment sums ``acc`` (count, L, L^2, Laplacian, |grad L|^2,
    x_k dL/dk, dL/dk, (dL/dk)^2, then z and z z^T for the state vector z = (x, s)).

    ``x`` (d,) the position, ``s`` the optimizer state (n_state * d; longer is fine), ``g`` (d,)
    the gradient of L at ``x``, ``zv`` scratch of length d * (1 + n_state).
    """
    d = x.shape[0]
    mz = zv.shape[0]
    acc[0] += 1.0
    acc[1] += loss
    acc[2] += loss * loss
    acc[3] += lap
    o = 5
    for i in range(d):
        gi = g[i]
        acc[4] += gi * gi
        acc[o + i] += x[i] * gi
        acc[o + d + i] += gi
        acc[o + 2 * d + i] += gi * gi
    for i in range(d):
        zv[i] = x[i]
    for i in range(mz - d):
        zv[d + i] = s[i]
    o += 3 * d
    for m in range(mz):
        acc[o + m] += zv[m]
        for q in range(mz):
            acc[o + mz + m * mz + q] += zv[m] * zv[q]


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
        y = r * inv
    else:
        y = (v - lo) * inv
    if not y >= 0.0:
        return -1
    if y >= nb:
        return nb
    return int(y)  # y >= 0: truncation is the floor
