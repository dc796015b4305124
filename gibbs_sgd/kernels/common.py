"""Device-independent pieces of the kernels, compiled into every backend like the model.

:func:`add_sample` is the one definition of what a sampled state adds to its block's moment
row (the layout is :func:`gibbs_sgd.kernels.cpu.moment_layout`).
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
