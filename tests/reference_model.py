"""Independent pure-NumPy reference of the whole chain dynamics (slow, for tests only).

Written from the mathematical specification, not from the package's Numba code: nothing from
``gibbs_sgd`` is imported here. The reference reads only the *numbers* of the model objects
(their dataclass fields: curvature, barrier, learning rate, data, ...) and dispatches on their
class names, so it works with the objects a test hands to :func:`gibbs_sgd.simulate`.
Random numbers come from ``tests/reference_rng.py`` (an independent Philox4x32-10).

One step ``t`` (0-based) of chain ``c``, all chains vectorised::

    g   = minibatch gradient at x        (noise model; Gaussian adds to grad L(x))
    lr  = optimizer.lr * f(t)            (f the schedule factor, 1 without a schedule)
    x, state <- optimizer update(x, state, g, lr, t)

and the state after the update of step ``t`` is recorded as point ``t`` of the trajectory.
Random numbers of chain ``c`` at step ``t``: Philox key ``(seed mod 2**32, seed div 2**32)``,
counter ``(t, call, c mod 2**32, c div 2**32)``; call ``j`` gives normals (or uniforms)
``2j`` and ``2j + 1``.

Noise models (``B`` the batch size):

* ``Gaussian``: ``g = grad L(x) + chol(C) z / sqrt(B)``, ``z`` the chain's ``d`` normals in the pair layout,
  ``C = sigma**2 I`` or the given covariance.
* ``MeanEstimation`` (per-example loss ``|x - a|^2 / 2``, gradient ``x - a``) and
  ``LinearRegression`` (per-example loss ``(w.a - y)^2 / 2``, gradient ``(w.a - y) a``): the
  mean of ``B`` per-example gradients over

  - a data set, *with replacement*: index ``b`` is ``min(floor(u_b n), n - 1)``, ``u_b`` the
    ``b``-th uniform of the stream;
  - a data set, *without replacement*: Floyd's algorithm, for ``b = 0..B-1`` with
    ``m = n - B + b``: ``t = min(floor(u_b (m + 1)), m)``, replaced by ``m`` if already taken;
  - fresh Gaussian examples (*streamed*): example ``b`` uses normals ``b*k .. b*k + k - 1`` of
    the stream (``k = d`` for the mean, ``d + 1`` for regression: inputs ``s z_0..z_{d-1}``,
    target ``w*.a + sigma_y z_d``); a mean example is ``mean + sigma z``.

Optimizers (``torch.optim`` semantics):

* ``SGD``: ``x -= lr g``.
* ``HeavyBall`` (``torch.optim.SGD`` with momentum ``mu``, dampening ``tau``, nesterov):
  ``buf = g`` at ``t = 0``, else ``buf = mu buf + (1 - tau) g``;
  ``x -= lr (g + mu buf)`` (nesterov) or ``x -= lr buf``.
* ``EMAMomentum``: ``m = beta m + (1 - beta) g`` (``m = 0`` before step 0); ``x -= lr m``.
* ``RMSprop``: ``v = alpha v + (1 - alpha) g^2``; centered: ``gbar = alpha gbar + (1 - alpha) g``,
  ``a = sqrt(v - gbar^2) + eps``, else ``a = sqrt(v) + eps``; with momentum ``buf = mu buf + g / a``,
  ``x -= lr buf``, else ``x -= lr g / a``.
* ``Adam``: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2`` (amsgrad: ``vmax = max(vmax, v)``
  used for ``v``); torch: ``x -= lr / (1 - b1^k) m / (sqrt(v / (1 - b2^k)) + eps)`` with ``k = t + 1``;
  "none": ``x -= lr m / (sqrt(v) + eps)``; "running": the EMA weights ``1 - b`` replaced by
  ``1 / min(k, 1 / (1 - b))``, no other correction.

``dtype=np.float32`` emulates a run whose state (``x`` and the optimizer's state) is *stored*
in float32: all arithmetic is float64 from the stored values, and the results are rounded to
float32 when stored, once per step (as a float32 array assignment does).
"""
from __future__ import annotations

import inspect
import math

import numpy as np

try:
    from reference_rng import ref_normals, ref_uniforms
except ImportError:  # tests/ imported as a package
    from tests.reference_rng import ref_normals, ref_uniforms

__all__ = [
    "reference_trajectory",
    "ref_loss",
    "ref_grad",
    "ref_gradient_estimate",
    "ref_lr_factors",
    "MUELLER_BROWN",
]

# Mueller & Brown, Theor. Chim. Acta 53, 75 (1979), table I:
# V(x, y) = sum_i A_i exp(a_i (x - x0_i)^2 + b_i (x - x0_i)(y - y0_i) + c_i (y - y0_i)^2)
MUELLER_BROWN = {
    "A": np.array([-200.0, -100.0, -170.0, 15.0]),
    "a": np.array([-1.0, -1.0, -6.5, 0.7]),
    "b": np.array([0.0, 0.0, 11.0, 0.6]),
    "c": np.array([-10.0, -10.0, -6.5, 0.7]),
    "x0": np.array([1.0, 0.0, -0.5, -1.0]),
    "y0": np.array([0.0, 0.5, 1.5, 1.0]),
}


# =========================================================================================
# Landscapes: loss (k,) and gradient (k, d) at k points x (k, d)
# =========================================================================================
def _kind(obj) -> str:
    return type(obj).__name__


def _quadratic(land, x):
    h = np.asarray(land.hessian, dtype=np.float64)
    r = x - np.asarray(land.center, dtype=np.float64)
    hr = r @ h.T  # H symmetric: grad = H (x - c)
    return 0.5 * np.einsum("ki,ki->k", r, hr) + float(land.offset), hr


def _double_well(land, x):
    delta, a, tau = float(land.barrier), float(land.width), float(land.tilt)
    u = x[:, 0] / a
    loss = delta * (u**2 - 1.0) ** 2 + tau * u
    grad = (4.0 * delta * u * (u**2 - 1.0) + tau) / a
    return loss, grad[:, None]


def _periodic(land, x):
    amp, k = float(land.amplitude), 2.0 * math.pi / float(land.period)
    return amp * np.sum(1.0 - np.cos(k * x), axis=1), amp * k * np.sin(k * x)


def _mueller_brown(land, x):
    mb = MUELLER_BROWN
    s = float(land.scale)
    dx = x[:, 0:1] - mb["x0"]  # (k, 4)
    dy = x[:, 1:2] - mb["y0"]
    e = mb["A"] * np.exp(mb["a"] * dx**2 + mb["b"] * dx * dy + mb["c"] * dy**2)
    gx = np.sum(e * (2.0 * mb["a"] * dx + mb["b"] * dy), axis=1)
    gy = np.sum(e * (mb["b"] * dx + 2.0 * mb["c"] * dy), axis=1)
    return s * e.sum(axis=1), s * np.stack([gx, gy], axis=1)


def _gaussian_mixture(land, x):
    # L = -log sum_i w_i N(x; mu_i, Sigma_i);  grad L = sum_i r_i Sigma_i^-1 (x - mu_i)
    w = np.asarray(land.weights, dtype=np.float64)
    w = w / w.sum()
    mu = np.asarray(land.means, dtype=np.float64)  # (K, d)
    cov = np.asarray(land.covariances, dtype=np.float64)  # (K, d, d)
    d = mu.shape[1]
    prec = np.linalg.inv(cov)
    logdet = np.linalg.slogdet(cov)[1]
    r = x[:, None, :] - mu[None, :, :]  # (k, K, d)
    pr = np.einsum("Kab,kKb->kKa", prec, r)
    logp = np.log(w) - 0.5 * (d * math.log(2.0 * math.pi) + logdet) - 0.5 * np.einsum("kKa,kKa->kK", r, pr)
    top = logp.max(axis=1, keepdims=True)
    wts = np.exp(logp - top)
    tot = wts.sum(axis=1, keepdims=True)
    loss = -(top[:, 0] + np.log(tot[:, 0]))
    grad = np.einsum("kK,kKa->ka", wts / tot, pr)
    return loss, grad


def _rosenbrock(land, x):
    a, b = float(land.a), float(land.b)
    xi, xn = x[:, :-1], x[:, 1:]
    r = xn - xi**2
    loss = np.sum(b * r**2 + (a - xi) ** 2, axis=1)
    grad = np.zeros_like(x)
    grad[:, :-1] += -4.0 * b * xi * r - 2.0 * (a - xi)
    grad[:, 1:] += 2.0 * b * r
    return loss, grad


def _custom(land, x):
    """A user landscape: the user's own Python functions, called point by point."""
    loss_fn = getattr(land.loss_fn, "py_func", land.loss_fn)
    grad_fn = getattr(land.grad_fn, "py_func", land.grad_fn)
    writes_out = len(inspect.signature(grad_fn).parameters) >= 2  # grad(x, out) vs grad(x)
    loss = np.empty(x.shape[0])
    grad = np.empty_like(x)
    for i in range(x.shape[0]):
        xi = x[i].copy()
        loss[i] = loss_fn(xi)
        if writes_out:
            grad_fn(xi, grad[i])
        else:
            grad[i] = grad_fn(xi)
    return loss, grad


_LANDSCAPES = {
    "Quadratic": _quadratic,
    "DoubleWell": _double_well,
    "Periodic": _periodic,
    "MuellerBrown": _mueller_brown,
    "GaussianMixture": _gaussian_mixture,
    "Rosenbrock": _rosenbrock,
    "Custom": _custom,
}


def _landscape_eval(land, x):
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    try:
        f = _LANDSCAPES[_kind(land)]
    except KeyError:
        raise NotImplementedError(f"no reference for landscape {_kind(land)}") from None
    return f(land, x)


def ref_loss(land, x) -> np.ndarray:
    """``L(x)`` at points ``x`` (k, d); returns (k,)."""
    return _landscape_eval(land, x)[0]


def ref_grad(land, x) -> np.ndarray:
    """``grad L(x)`` at points ``x`` (k, d); returns (k, d)."""
    return _landscape_eval(land, x)[1]


# =========================================================================================
# Noise: the minibatch gradient estimate of each chain at one step
# =========================================================================================
def _indices_with_replacement(u, n):
    return np.minimum(np.floor(u * n).astype(np.int64), n - 1)


def _indices_floyd(u, n):
    """Floyd's uniform B-subset of range(n) from the B uniforms ``u`` (k, B) of each chain."""
    k, batch = u.shape
    idx = np.empty((k, batch), dtype=np.int64)
    for b in range(batch):
        m = n - batch + b
        t = np.minimum(np.floor(u[:, b] * (m + 1)).astype(np.int64), m)
        taken = (idx[:, :b] == t[:, None]).any(axis=1)
        idx[:, b] = np.where(taken, m, t)
    return idx


def _draw_indices(noise, seed, chains, step, batch, n):
    u = ref_uniforms(seed, chains, step, batch)
    return _indices_with_replacement(u, n) if noise.replace else _indices_floyd(u, n)


def ref_gradient_estimate(land, noise, batch, seed, chains, step, x) -> np.ndarray:
    """The minibatch gradient ``g_hat`` (k, d) of chains ``chains`` at ``step`` and states ``x``."""
    k, d = x.shape
    kind = _kind(noise)
    if kind == "Gaussian":
        if noise.covariance is not None:
            chol = np.linalg.cholesky(np.asarray(noise.covariance, dtype=np.float64))
        else:
            chol = float(noise.sigma) * np.eye(d)
        # the pair layout: normal k of chain i is half (i mod 2) of call k of pair i div 2
        chains = np.asarray(chains, dtype=np.uint64)
        pair = ref_normals(seed, chains // np.uint64(2), step, 2 * d)
        half = (chains % np.uint64(2)).astype(np.int64)
        z = pair[np.arange(len(chains))[:, None], 2 * np.arange(d)[None, :] + half[:, None]]
        return ref_grad(land, x) + (z @ chol.T) / math.sqrt(batch)
    if kind == "MeanEstimation":
        if noise.data is None:  # streamed: example b = mean + sigma * normals[b*d : b*d + d]
            z = ref_normals(seed, chains, step, batch * d).reshape(k, batch, d)
            examples = np.asarray(noise.mean, dtype=np.float64) + float(noise.sigma) * z
        else:
            data = np.asarray(noise.data, dtype=np.float64).reshape(-1, d)
            examples = data[_draw_indices(noise, seed, chains, step, batch, data.shape[0])]  # (k, B, d)
        return np.mean(x[:, None, :] - examples, axis=1)
    if kind == "LinearRegression":
        if noise.inputs is None:  # streamed: a = s z[:d], y = w*.a + sigma_y z[d]
            z = ref_normals(seed, chains, step, batch * (d + 1)).reshape(k, batch, d + 1)
            a = float(noise.input_std) * z[:, :, :d]
            y = a @ np.asarray(noise.weights, dtype=np.float64) + float(noise.noise_std) * z[:, :, d]
        else:
            inputs = np.asarray(noise.inputs, dtype=np.float64).reshape(-1, d)
            targets = np.asarray(noise.targets, dtype=np.float64).ravel()
            idx = _draw_indices(noise, seed, chains, step, batch, inputs.shape[0])
            a, y = inputs[idx], targets[idx]  # (k, B, d), (k, B)
        resid = np.einsum("kbi,ki->kb", a, x) - y
        return np.mean(resid[:, :, None] * a, axis=1)
    raise NotImplementedError(f"no reference for noise {kind}")


# =========================================================================================
# Schedules and optimizers
# =========================================================================================
def ref_lr_factors(schedule, n_steps) -> np.ndarray:
    """The learning-rate factor of each step ``t = 0 .. n_steps - 1``."""
    t = np.arange(n_steps, dtype=np.float64)
    kind = "Constant" if schedule is None else _kind(schedule)
    if kind == "Constant":
        return np.ones(n_steps)
    if kind == "StepHalving":
        return float(schedule.factor) ** np.floor(t / schedule.every)
    if kind == "RobbinsMonro":
        return (1.0 + t / float(schedule.t0)) ** (-float(schedule.gamma))
    if kind == "Cosine":
        tt = np.minimum(t, schedule.total_steps)
        m = float(schedule.min_factor)
        return m + (1.0 - m) * 0.5 * (1.0 + np.cos(math.pi * tt / schedule.total_steps))
    raise NotImplementedError(f"no reference for schedule {kind}")


def _optimizer_step(opt, x, state, g, lr, t, store):
    """One update; returns the new ``(x, state)``. ``store`` rounds a value to the storage dtype."""
    kind = _kind(opt)
    if kind == "SGD":
        return store(x - lr * g), state
    if kind == "HeavyBall":
        mu, damp = float(opt.momentum), float(opt.dampening)
        buf = store(g) if t == 0 else store(mu * state + (1.0 - damp) * g)
        direction = g + mu * buf if opt.nesterov else buf
        return store(x - lr * direction), buf
    if kind == "EMAMomentum":
        beta = float(opt.beta)
        m = store(beta * state + (1.0 - beta) * g)
        return store(x - lr * m), m
    if kind == "RMSprop":
        v, buf, gbar = state
        alpha, eps, mu = float(opt.alpha), float(opt.eps), float(opt.momentum)
        v = store(alpha * v + (1.0 - alpha) * g * g)
        if opt.centered:
            gbar = store(alpha * gbar + (1.0 - alpha) * g)
            a = np.sqrt(v - gbar * gbar) + eps
        else:
            a = np.sqrt(v) + eps
        if mu > 0:
            buf = store(mu * buf + g / a)
            return store(x - lr * buf), [v, buf, gbar]
        return store(x - lr * g / a), [v, buf, gbar]
    if kind == "Adam":
        m, v, vmax = state
        b1, b2 = (float(b) for b in opt.betas)
        k = t + 1.0
        if opt.bias_correction == "running":
            w1, w2 = 1.0 / min(k, 1.0 / (1.0 - b1)), 1.0 / min(k, 1.0 / (1.0 - b2))
        else:
            w1, w2 = 1.0 - b1, 1.0 - b2
        m = store((1.0 - w1) * m + w1 * g)
        v = store((1.0 - w2) * v + w2 * g * g)
        if opt.amsgrad:
            vmax = store(np.maximum(vmax, v))
        vv = vmax if opt.amsgrad else v
        if opt.bias_correction == "torch":
            step = lr / (1.0 - b1**k) * m / (np.sqrt(vv / (1.0 - b2**k)) + float(opt.eps))
        else:
            step = lr * m / (np.sqrt(vv) + float(opt.eps))
        return store(x - step), [m, v, vmax]
    raise NotImplementedError(f"no reference for optimizer {kind}")


# =========================================================================================
# The whole chain
# =========================================================================================
def reference_trajectory(landscape, optimizer, noise, batch_size, seed, n_steps, init, chains,
                         schedule=None, dtype=np.float64) -> np.ndarray:
    """States of chains ``chains`` after each of ``n_steps`` steps.

    Parameters
    ----------
    landscape, optimizer, noise : the model objects (only their numbers are read)
    batch_size : int, ``B``
    seed : int in [0, 2**64)
    n_steps : int
    init : array (d,) (every chain) or (len(chains), d) (one start per listed chain)
    chains : 1-D sequence of chain indices (their random streams)
    schedule : learning-rate schedule or None (constant)
    dtype : np.float64, or np.float32 to emulate float32 storage of the chain state

    Returns
    -------
    numpy.ndarray (len(chains), n_steps, d), float64: point ``t`` is the state after step ``t``.
    """
    chains = np.atleast_1d(np.asarray(chains, dtype=np.uint64))
    d = int(landscape.dim)
    k = chains.shape[0]
    dt = np.dtype(dtype)

    def store(v):
        return np.asarray(v, dtype=np.float64).astype(dt).astype(np.float64)

    x = store(np.broadcast_to(np.asarray(init, dtype=np.float64).reshape(-1, d), (k, d)).copy())
    state = [np.zeros((k, d)) for _ in range(3)] if _kind(optimizer) in ("RMSprop", "Adam") else np.zeros((k, d))
    lrs = float(optimizer.lr) * ref_lr_factors(schedule, n_steps)
    out = np.empty((k, n_steps, d))
    for t in range(n_steps):
        g = ref_gradient_estimate(landscape, noise, batch_size, seed, chains, t, x)
        x, state = _optimizer_step(optimizer, x, state, g, lrs[t], t, store)
        out[:, t] = x
    return out
