"""The benchmark's jobs written in JAX (jit + ``lax.scan``): what a performance-minded user would
write instead of :func:`gibbs_sgd.simulate`, and so the bar the engine is measured against.

The same job as the NumPy code of :mod:`gibbs_sgd.bench` (float64, the same chains, steps,
burn-in, thinning, bins): per step the normals of all chains (``jax.random.normal`` under a
key folded with the step, JAX's default counter-based generator), the minibatch gradient and
the update; on the sampled steps the histogram of the coordinate (``jnp.bincount`` of clipped
bin indices, two extra slots for below / above) and the sums of L and L^2. The whole run is
one jitted function: a scan over the burn-in steps, then a scan over blocks of ``thin`` steps
whose first step is sampled. It is compiled ahead of the timed calls (``lower().compile()``),
so the timings hold no compilation. JAX is optional (the ``bench`` extra installs it).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["available", "JAX_CASES", "prepare"]


def available() -> bool:
    """Whether JAX can be imported in this process."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _build(step, init, coordinate, loss, n, steps, burn_in, thin, edges, seed):
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_enable_x64", True)
    if (steps - burn_in) % thin:
        raise ValueError(f"the JAX code samples whole blocks of thin steps: (steps - burn_in) = {steps - burn_in} "
                         f"must be a multiple of thin = {thin}")
    n_blocks = (steps - burn_in) // thin
    lo = float(edges[0][0])
    nb = int(edges[0].shape[0] - 1)
    inv = nb / float(edges[0][-1] - edges[0][0])

    def advance(carry, t):
        state, key = carry
        return (step(state, jax.random.fold_in(key, t), t), key), None

    def stats(x, acc):
        hist, s1, s2 = acc
        k = jnp.clip(jnp.floor((x - lo) * inv), -1, nb).astype(jnp.int32) + 1
        L = loss(x)
        return hist + jnp.bincount(k, length=nb + 2), s1 + L.sum(), s2 + jnp.dot(L, L)

    def job(key):
        state = init(n)
        (state, key), _ = lax.scan(advance, (state, key), jnp.arange(burn_in))

        def block(carry, j):
            state, key, acc = carry
            t0 = burn_in + j * thin
            state = step(state, jax.random.fold_in(key, t0), t0)
            acc = stats(coordinate(state), acc)
            (state, key), _ = lax.scan(advance, (state, key), t0 + 1 + jnp.arange(thin - 1))
            return (state, key, acc), None

        acc = (jnp.zeros(nb + 2, jnp.int64), jnp.float64(0.0), jnp.float64(0.0))
        (state, key, acc), _ = lax.scan(block, (state, key, acc), jnp.arange(n_blocks))
        return acc

    key = jax.random.key(seed)
    compiled = jax.jit(job).lower(key).compile()

    def run():
        hist, s1, s2 = jax.block_until_ready(compiled(key))
        count = n_blocks * n
        hist = np.asarray(hist)
        return {"hist": hist[None, 1:-1], "outside": np.array([[hist[0], hist[-1]]]),
                "mean_loss": float(s1) / count, "mean_loss_sq": float(s2) / count, "n_samples": count}

    return run


def _sgd_quadratic(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    import jax
    import jax.numpy as jnp

    h, c, l0 = float(land.hessian[0, 0]), float(land.center[0]), float(land.offset)
    lr, s = opt.lr, noise.sigma / math.sqrt(B)
    start = float(land.minimum[0])

    def step(x, key, t):
        z = jax.random.normal(key, x.shape, jnp.float64)
        return x - lr * (h * (x - c) + s * z)

    return _build(step, lambda m: jnp.full(m, start), lambda x: x,
                  lambda x: 0.5 * h * (x - c) ** 2 + l0, n, steps, burn_in, thin, edges, seed)


def _adam_double_well(land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    import jax
    import jax.numpy as jnp

    if opt.amsgrad or opt.bias_correction != "torch":
        raise ValueError("the JAX Adam code implements torch's bias correction without amsgrad")
    D, a, tau = land.barrier, land.width, land.tilt
    b1, b2 = opt.betas
    lr, eps, s = opt.lr, opt.eps, noise.sigma / math.sqrt(B)
    start = float(land.minimum[0])

    def step(state, key, t):
        x, m, v = state
        u = x / a
        g = (4.0 * D * u * (u * u - 1.0) + tau) / a + s * jax.random.normal(key, x.shape, jnp.float64)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        k = t + 1.0
        denom = jnp.sqrt(v) / jnp.sqrt(1.0 - b2**k) + eps
        return x - (lr / (1.0 - b1**k)) * (m / denom), m, v

    def loss(x):
        u = x / a
        w = u * u - 1.0
        return D * w * w + tau * u

    return _build(step, lambda m: (jnp.full(m, start), jnp.zeros(m), jnp.zeros(m)), lambda st: st[0], loss,
                  n, steps, burn_in, thin, edges, seed)


# benchmark case name -> the JAX code of its job
JAX_CASES = {"sgd-quadratic": _sgd_quadratic, "adam-doublewell": _adam_double_well}


def prepare(name, land, opt, noise, B, n, steps, burn_in, thin, edges, seed):
    """A compiled, ready-to-time ``run()`` for case ``name`` (None when there is no JAX code for it)."""
    fn = JAX_CASES.get(name)
    return None if fn is None else fn(land, opt, noise, B, n, steps, burn_in, thin, edges, seed)
