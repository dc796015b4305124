r"""Exact and small-learning-rate predictions for linear optimizers on quadratics.

On :math:`L(\Phi) = \tfrac12(\Phi-c)^\top H(\Phi-c)` with additive minibatch noise
:math:`\hat g = \nabla L + \xi`, :math:`\xi \sim \mathcal N(0, \Sigma)`, :math:`\Sigma = C/B`,
every linear optimizer is a linear state-space recursion on :math:`z = (\Phi - c, \text{state})`,

.. math:: z_{t+1} = A z_t + G \xi_t,

(exactly, for every step after the first), so its stationary covariance :math:`P` solves the
discrete Lyapunov equation :math:`P = A P A^\top + G \Sigma G^\top` whenever the spectral radius of
:math:`A` is below 1. With :math:`\tau` the dampening:

=================  ===========================================================  ======================
optimizer          :math:`A`                                                     :math:`G`
=================  ===========================================================  ======================
SGD                :math:`I - \eta H`                                            :math:`-\eta I`
heavy ball         :math:`[[I - \eta(1-\tau)H, -\eta\mu I], [(1-\tau)H, \mu I]]`  :math:`[-\eta(1-\tau); 1-\tau]`
Nesterov           :math:`[[I - \eta(1+\mu)H, -\eta\mu^2 I], [H, \mu I]]`          :math:`[-\eta(1+\mu); 1]`
EMA momentum       :math:`[[I - \eta(1-\beta)H, -\eta\beta I], [(1-\beta)H, \beta I]]`  :math:`[-\eta(1-\beta); 1-\beta]`
=================  ===========================================================  ======================

(the second block row is the optimizer's state: the momentum buffer or the gradient EMA).
Stability, per eigenvalue :math:`\lambda` of :math:`H`: SGD :math:`\eta\lambda < 2`; heavy ball
:math:`\eta(1-\tau)\lambda < 2(1+\mu)`; Nesterov :math:`\eta\lambda < 2(1+\mu)/(1+2\mu)`; EMA
:math:`\eta(1-\beta)\lambda < 2(1+\beta)`.

The small-learning-rate limit is the Ornstein-Uhlenbeck process
:math:`d\Phi = -\eta_e H\Phi\,dt + \eta_e \Sigma^{1/2} dW` with the effective step
:math:`\eta_e` (SGD and EMA :math:`\eta`; heavy ball :math:`\eta(1-\tau)/(1-\mu)`; Nesterov
:math:`\eta/(1-\mu)`), whose covariance solves :math:`HP + PH = \eta_e\Sigma`; for isotropic
:math:`C = \sigma^2 I` it is the Gibbs law :math:`P = T H^{-1}` with :math:`T = \eta_e\sigma^2/(2B)`.

References: the lecture ("Temperature", "Heavy Ball Momentum", "EMA Momentum"); Mandt,
Hoffman & Blei, "Stochastic gradient descent as approximate Bayesian inference" (JMLR 2017).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import linalg

from .landscapes import (
    MAX_EXACT_INT,
    Quadratic,
    as_float_array,
    check_bool,
    check_int,
    check_interval,
    check_positive,
    check_real,
    show,
)
from .noise import Gaussian, MeanEstimation, Noise
from .optimizers import SGD, EMAMomentum, HeavyBall

__all__ = [
    "state_space",
    "stationary_covariance",
    "stationary_variance",
    "small_lr_covariance",
    "small_lr_temperature",
    "effective_lr",
    "relaxation_time",
    "sgd_stationary_variance_1d",
    "langevin_relaxation_time",
    "finite_lr_law",
    "first_order_slope",
    "first_order_mle_slope",
    "online_least_squares_moments",
    "least_squares_moments",
    "least_squares_moment_factor",
    "least_squares_relaxation_time",
    "least_squares_stationary_loss",
    "UnstableError",
]


class UnstableError(ValueError):
    """The linear iteration has no stationary law (spectral radius >= 1)."""


_LINEAR = (SGD, HeavyBall, EMAMomentum)



def _batch(batch_size) -> float:
    """The batch size in the formulas: a number in [1, 2**53]. Not only integers: the formulas
    are smooth in B, and a curve drawn through the measured points needs B between them."""
    return check_interval("batch_size", batch_size, 1.0, float(MAX_EXACT_INT), hi_open=False)

def _linear(optimizer):
    """``optimizer`` if the theory covers it, else a TypeError naming the argument."""
    if not isinstance(optimizer, _LINEAR):
        raise TypeError(f"optimizer must be a linear optimizer (SGD, HeavyBall, EMAMomentum), "
                        f"got {type(optimizer).__name__}")
    return optimizer


def _hessian(landscape_or_hessian) -> np.ndarray:
    """A finite symmetric square matrix (d, d) from a Quadratic, a scalar or an array."""
    if isinstance(landscape_or_hessian, Quadratic):
        return np.array(landscape_or_hessian.hessian)
    h = np.atleast_2d(as_float_array("hessian", landscape_or_hessian, ndim=(0, 2)))
    if h.shape[0] != h.shape[1] or h.shape[0] < 1:
        raise ValueError(f"hessian must be a scalar or a square matrix (d, d), got shape {h.shape}")
    if not np.allclose(h, h.T, rtol=1e-12, atol=0):
        raise ValueError("hessian must be symmetric")
    return h


def _noise_cov(noise, dim: int) -> np.ndarray:
    """The per-example noise covariance ``C`` (d, d): symmetric positive semi-definite."""
    if isinstance(noise, MeanEstimation) and not noise.is_streamed and not noise.replace:
        raise ValueError("noise: pass noise.batch_covariance(B) * B for sampling without replacement")
    if isinstance(noise, Gaussian):
        c = noise.per_example_covariance(dim)
    elif isinstance(noise, MeanEstimation):  # state-independent data-set noise (with replacement)
        c = noise.per_example_covariance()
    elif isinstance(noise, Noise):
        raise ValueError(f"noise: {type(noise).__name__} noise depends on the state: no linear theory")
    else:
        c = np.atleast_2d(as_float_array("noise", noise, ndim=(0, 2)))
    if c.shape != (dim, dim):
        raise ValueError(f"noise covariance must have shape ({dim}, {dim}) (the hessian's), got {c.shape}")
    # symmetric positive semi-definite, up to rounding: a negative variance has no meaning
    scale = float(np.max(np.abs(c))) if c.size else 0.0
    if not np.allclose(c, c.T, rtol=1e-12, atol=0) or np.min(np.linalg.eigvalsh(0.5 * (c + c.T))) < -1e-12 * scale:
        raise ValueError(f"noise covariance must be symmetric positive semi-definite (variances >= 0), "
                         f"got {show(c.tolist())}")
    return c


def effective_lr(optimizer) -> float:
    """The step of the SGD that a linear optimizer reduces to at small learning rate."""
    if isinstance(_linear(optimizer), HeavyBall):
        if optimizer.nesterov:
            return optimizer.lr / (1.0 - optimizer.momentum)
        return optimizer.lr * (1.0 - optimizer.dampening) / (1.0 - optimizer.momentum)
    return optimizer.lr  # SGD and EMA momentum


def _stability_rule(optimizer) -> str:
    if isinstance(optimizer, SGD):
        return "lr * lambda_max(H) < 2"
    if isinstance(optimizer, EMAMomentum):
        return "lr * (1 - beta) * lambda_max(H) < 2 (1 + beta)"
    if optimizer.nesterov:
        return "lr * lambda_max(H) < 2 (1 + momentum) / (1 + 2 momentum)"
    return "lr * (1 - dampening) * lambda_max(H) < 2 (1 + momentum)"


def state_space(optimizer, hessian) -> tuple[np.ndarray, np.ndarray]:
    """``(A, G)`` of the recursion ``z' = A z + G xi`` for ``z = (Phi - c, state)``.

    Parameters
    ----------
    optimizer : SGD, HeavyBall or EMAMomentum
    hessian : array (d, d) or a :class:`~gibbs_sgd.landscapes.Quadratic`

    Returns
    -------
    A : array (m, m), G : array (m, d), with m = d (SGD) or 2 d.
    """
    _linear(optimizer)
    h = _hessian(hessian)
    d = h.shape[0]
    eye = np.eye(d)
    lr = optimizer.lr
    with np.errstate(over="ignore", invalid="ignore"):
        if isinstance(optimizer, SGD):
            a, g = eye - lr * h, -lr * eye
        elif isinstance(optimizer, EMAMomentum):
            beta = optimizer.beta
            a = np.block([[eye - lr * (1 - beta) * h, -lr * beta * eye], [(1 - beta) * h, beta * eye]])
            g = np.vstack([-lr * (1 - beta) * eye, (1 - beta) * eye])
        else:  # heavy ball, PyTorch's parametrisation
            mu, tau = optimizer.momentum, optimizer.dampening
            if optimizer.nesterov:
                a = np.block([[eye - lr * (1 + mu) * h, -lr * mu * mu * eye], [h, mu * eye]])
                g = np.vstack([-lr * (1 + mu) * eye, eye])
            else:
                a = np.block([[eye - lr * (1 - tau) * h, -lr * mu * eye], [(1 - tau) * h, mu * eye]])
                g = np.vstack([-lr * (1 - tau) * eye, (1 - tau) * eye])
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(g))):
        raise ValueError("optimizer.lr and hessian give a non-finite iteration matrix (lr * H overflows float64)")
    return a, g


def relaxation_time(optimizer, hessian) -> float:
    r"""Steps for the slowest mode of the linear recursion to decay by e: :math:`-1/\log\rho(A)`.

    ``rho(A)`` is the spectral radius of the state-space matrix (:func:`state_space`); the
    covariance relaxes twice as fast. Raises :class:`UnstableError` when ``rho >= 1``.

    Example
    -------
    >>> from gibbs_sgd.optimizers import SGD
    >>> round(relaxation_time(SGD(lr=0.1), [[1.0]]), 3)  # -1 / log(0.9)
    9.491
    """
    a, _ = state_space(optimizer, hessian)
    rho = float(np.max(np.abs(np.linalg.eigvals(a))))
    if not rho < 1.0:
        raise UnstableError(f"no relaxation: spectral radius {rho:.6g} >= 1; stability needs {_stability_rule(optimizer)}")
    return float(-1.0 / np.log(rho))


def stationary_covariance(optimizer, hessian, noise, batch_size: int = 1, *, include_state: bool = False) -> np.ndarray:
    r"""Exact stationary covariance at finite learning rate (discrete Lyapunov equation).

    Parameters
    ----------
    optimizer : SGD, HeavyBall or EMAMomentum
    hessian : array (d, d), scalar, or a :class:`~gibbs_sgd.landscapes.Quadratic`
    noise : :class:`~gibbs_sgd.noise.Gaussian`, or the per-example covariance ``C`` (d, d)
    batch_size : number in [1, 2**53] (real values draw smooth curves), ``Sigma = C / B``
    include_state : bool
        Return the covariance of the whole state ``(Phi, optimizer state)`` (2d x 2d for the
        momentum methods; the state is PyTorch's momentum buffer or the gradient EMA).

    Returns
    -------
    array (d, d), or (m, m) with ``include_state``

    Raises
    ------
    UnstableError
        When the iteration has no stationary law; the message states the stability bound.

    Example
    -------
    >>> from gibbs_sgd.optimizers import SGD
    >>> float(stationary_covariance(SGD(lr=0.5), 1.0, [[1.0]])[0, 0])  # 0.5 / (2 - 0.5)
    0.3333333333333333
    """
    _linear(optimizer)
    include_state = check_bool("include_state", include_state)
    h = _hessian(hessian)
    d = h.shape[0]
    sigma = _noise_cov(noise, d) / _batch(batch_size)
    a, g = state_space(optimizer, h)
    rho = float(np.max(np.abs(np.linalg.eigvals(a))))
    if not rho < 1.0:
        lam = np.linalg.eigvalsh(0.5 * (h + h.T))
        raise UnstableError(
            f"{type(optimizer).__name__} on this quadratic has no stationary law: spectral radius {rho:.6g} >= 1 "
            f"(eigenvalues of H in [{lam.min():.6g}, {lam.max():.6g}]); stability needs {_stability_rule(optimizer)}"
        )
    p = linalg.solve_discrete_lyapunov(a, g @ sigma @ g.T)
    p = 0.5 * (p + p.T)
    return p if include_state else p[:d, :d]


def stationary_variance(optimizer, curvature: float, noise_variance: float, batch_size: int = 1) -> float:
    """1-D convenience: the exact stationary ``Var Phi`` on ``h Phi^2 / 2``.

    ``curvature`` finite (stationary only where the optimizer is stable), ``noise_variance``
    the per-example variance ``>= 0``, ``batch_size`` a number in ``[1, 2**53]``.
    """
    h = check_real("curvature", curvature)
    s2 = check_positive("noise_variance", noise_variance, allow_zero=True)
    return float(stationary_covariance(optimizer, [[h]], [[s2]], batch_size)[0, 0])


def small_lr_covariance(optimizer, hessian, noise, batch_size: int = 1) -> np.ndarray:
    r"""The small-learning-rate covariance: :math:`HP + PH = \eta_e C/B` (continuous Lyapunov)."""
    lr = effective_lr(optimizer)
    h = _hessian(hessian)
    lam = np.linalg.eigvalsh(h)
    if not np.min(lam) > 0:
        raise UnstableError(f"hessian must be positive definite for the small-learning-rate (Langevin) limit to "
                            f"have a stationary law, got eigenvalues in [{lam.min():.6g}, {lam.max():.6g}]")
    sigma = _noise_cov(noise, h.shape[0]) / _batch(batch_size)
    p = linalg.solve_continuous_lyapunov(h, lr * sigma)
    return 0.5 * (p + p.T)


def _isotropic_sigma2(noise) -> float:
    if not isinstance(noise, Gaussian) or noise.covariance is not None:
        raise ValueError("noise must be isotropic Gaussian noise (Gaussian(sigma)): the small-learning-rate "
                         "temperature is defined here for it only")
    return noise.sigma**2


def small_lr_temperature(optimizer, noise, batch_size: int) -> float:
    r"""The temperature of the small-learning-rate (Langevin) limit, :math:`T = \eta_e\sigma^2/(2B)`.

    SGD and EMA momentum: :math:`\eta_e = \eta`; heavy ball (PyTorch parametrisation, dampening
    :math:`\tau`): :math:`\eta_e = \eta(1-\tau)/(1-\mu)`; Nesterov :math:`\eta/(1-\mu)`. Valid when
    :math:`\eta h \ll 1` for every curvature :math:`h` the chains see.

    Parameters
    ----------
    optimizer : SGD, HeavyBall or EMAMomentum
    noise : gibbs_sgd.noise.Gaussian, isotropic (per-example standard deviation sigma)
    batch_size : number in [1, 2**53]

    Example
    -------
    >>> from gibbs_sgd.optimizers import SGD
    >>> from gibbs_sgd.noise import Gaussian
    >>> small_lr_temperature(SGD(lr=0.1), Gaussian(sigma=1.0), batch_size=5)
    0.01
    """
    lr = effective_lr(optimizer)
    return lr * _isotropic_sigma2(noise) / (2.0 * _batch(batch_size))


def sgd_stationary_variance_1d(lr: float, curvature: float, noise_variance: float, batch_size: int) -> float:
    r"""Exact stationary variance of 1-D SGD on :math:`\tfrac12 h\Phi^2` with additive noise.

    :math:`\Phi_{t+1} = (1-\eta h)\Phi_t - \eta\xi_t`, :math:`\operatorname{Var}\xi = s^2/B`, so
    :math:`V = (1-\eta h)^2 V + \eta^2 s^2/B`, i.e.
    :math:`V = \eta s^2 / (B h (2 - \eta h))`, finite for :math:`0 < \eta h < 2`.

    ``lr > 0``, ``curvature`` finite, ``noise_variance`` (the per-example :math:`s^2`) ``>= 0``,
    ``batch_size`` a number in ``[1, 2**53]``.
    """
    lr = check_positive("lr", lr)
    curvature = check_real("curvature", curvature)
    noise_variance = check_positive("noise_variance", noise_variance, allow_zero=True)
    batch_size = _batch(batch_size)
    a = lr * curvature
    if not 0 < a < 2:
        raise UnstableError(f"SGD on a quadratic is stable only for 0 < lr * curvature < 2, got {a}")
    v = lr * noise_variance / (batch_size * curvature * (2.0 - a))
    if not math.isfinite(v):
        raise ValueError(f"lr, curvature and noise_variance give a stationary variance beyond float64, got {v}")
    return v


# -- general landscapes: the Langevin relaxation time and SGD's finite-lr law ------------------------
# (used by validation/gibbs_law.py and validation/beta_from_eta0.py)

def langevin_relaxation_time(land, temperature: float, points: int | None = None) -> float:
    r"""Slowest relaxation time of :math:`d\Phi = -\nabla L\,dt + \sqrt{2T}\,dW` on the landscape's box.

    The Fokker-Planck generator is discretised on a regular grid with the square-root rates
    :math:`k_{i\to j} = (T/\Delta^2)\,e^{-(L_j - L_i)/2T}` between neighbours (detailed balance
    with :math:`e^{-L/T}`; reflecting walls, or periodic ones on a torus); symmetrised, its
    off-diagonal entries are all :math:`T/\Delta^2`. The relaxation time is :math:`-1/\lambda_2`,
    :math:`\lambda_2` the eigenvalue next to 0: the slowest decay of any observable, the basin-
    exchange time where there are basins. In time units: SGD steps are t / lr.

    Parameters
    ----------
    land : a landscape with a finite ``box`` (1-D or 2-D: the grid has ``points ** dim`` cells)
    temperature : float > 0, the Langevin temperature T
    points : int, grid points per axis (default 2000 in 1-D, 150 in 2-D)

    Returns
    -------
    float, the slowest relaxation time in Langevin time units (SGD steps: divide by ``lr``).

    Example
    -------
    >>> from gibbs_sgd.landscapes import Quadratic
    >>> round(langevin_relaxation_time(Quadratic(2.0, box=[[-3.0, 3.0]]), 0.2), 3)  # 1 / h
    0.5

    Reference: Risken, *The Fokker-Planck Equation* (1989), ch. 5; the lecture ("Temperature").
    """
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    d = land.dim
    points = points or (2000 if d == 1 else 150)  # converged to 1e-5 (1-D) and 1e-3 (Mueller-Brown)
    box = np.asarray(land.box, dtype=np.float64)
    periodic = land.period is not None
    axes = [np.linspace(lo, hi, points, endpoint=not periodic) for lo, hi in box]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    u = land.loss(grid if d > 1 else grid[:, 0]).reshape((points,) * d) / temperature
    idx = np.arange(points**d).reshape((points,) * d)
    rows, cols, vals, diag = [], [], [], np.zeros(points**d)
    for ax in range(d):
        k = temperature / (axes[ax][1] - axes[ax][0]) ** 2
        nxt = np.roll(idx, -1, axis=ax)
        u_next = np.roll(u, -1, axis=ax)
        keep = np.ones_like(idx, dtype=bool)
        if not periodic:
            keep[(slice(None),) * ax + (-1,)] = False
        a, b = idx[keep], nxt[keep]
        du = (u_next - u)[keep]
        np.add.at(diag, a, -k * np.exp(-du / 2))
        np.add.at(diag, b, -k * np.exp(du / 2))
        rows += [a, b]
        cols += [b, a]
        vals += [np.full(a.size, k)] * 2
    s = sparse.coo_matrix((np.concatenate(vals + [diag]), (np.concatenate(rows + [idx.ravel()]),
                                                          np.concatenate(cols + [idx.ravel()])))).tocsc()
    w = np.sort(eigsh(s, k=2, sigma=1e-9, which="LM", return_eigenvectors=False))
    return float(-1.0 / w[0])


def _finite_lr_grid(land, lr, temperature, per_width, periodic):
    """Stationary vector of 1-D SGD's transition kernel N(x - lr L'(x), 2 T lr) on cells of width
    s / per_width (s the kernel's standard deviation), mass leaving the box reflected into it."""
    from scipy import sparse, special

    lo, hi = (float(v) for v in land.box[0])
    s = math.sqrt(2.0 * temperature * lr)
    n = int(math.ceil((hi - lo) / (s / per_width)))
    dx = (hi - lo) / n
    x = lo + dx * (np.arange(n) + 0.5)
    mean = x - lr * land.grad(x)
    reach = int(math.ceil(8 * s / dx)) + 1  # the kernel beyond 8 s holds < 1e-15
    start = np.floor((mean - lo) / dx).astype(np.int64) - reach
    j = start[:, None] + np.arange(2 * reach + 1)[None, :]
    p = np.diff(special.ndtr((lo + dx * np.concatenate([j, j[:, -1:] + 1], 1) - mean[:, None]) / s), axis=1)
    i = np.repeat(np.arange(n), j.shape[1])
    j, p = j.ravel(), p.ravel()
    if periodic:
        j = j % n
    else:
        keep = (j >= 0) & (j < n)
        i, j, p = i[keep], j[keep], p[keep]
    kernel = sparse.coo_matrix((p, (i, j)), shape=(n, n)).tocsr()
    kernel = sparse.diags(1.0 / np.asarray(kernel.sum(1)).ravel()) @ kernel
    # balance pi = pi K with pi = 1 at the most probable cell (its own equation dropped): the rest
    # is a banded system (a dense one on a torus, whose kernel wraps around)
    k0 = int(np.argmin(land.loss(x)))
    a = (kernel.T - sparse.identity(n)).tocsr()
    keep = np.arange(n) != k0
    rhs = -a[keep][:, [k0]].toarray().ravel()
    sub = a[keep][:, keep]
    if periodic:
        rest = np.linalg.solve(sub.toarray(), rhs)
    else:
        coo = sub.tocoo()
        lower, upper = int(max(0, (coo.row - coo.col).max())), int(max(0, (coo.col - coo.row).max()))
        band = np.zeros((lower + upper + 1, n - 1))
        band[upper + coo.row - coo.col, coo.col] = coo.data
        rest = linalg.solve_banded((lower, upper), band, rhs)
    pi = np.insert(rest, k0, 1.0)
    return x, pi / pi.sum()


def finite_lr_law(land, lr: float, temperature: float) -> dict:
    r"""Exact stationary averages of 1-D SGD with Gaussian noise at finite lr.

    SGD with noise of variance :math:`2T/\eta` per step is the Markov chain
    :math:`x' \sim \mathcal N(x - \eta L'(x), 2T\eta)`; its stationary density is the eigenvector of
    this kernel for eigenvalue 1, computed on cells of width s/6 and s/12 (s the kernel's
    width) and Richardson-extrapolated (the cell error is O(width^2)): exact to ~1e-6 relative on
    a quadratic, where :math:`T_\text{conf} = T/(1 - \eta h/2)`. Returns the configurational
    temperature and the mean loss.

    Parameters
    ----------
    land : a 1-D landscape with a finite ``box`` (reflecting walls; periodic if it has a ``period``)
    lr : float > 0, the learning rate
    temperature : float > 0, the small-lr temperature T (noise variance 2T/lr per step)

    Returns
    -------
    dict with ``"configurational"`` (:math:`E|L'|^2 / E L''`) and ``"mean_loss"`` (:math:`E L`).

    Example
    -------
    >>> from gibbs_sgd.landscapes import Quadratic
    >>> law = finite_lr_law(Quadratic(8.0, box=[[-2.0, 2.0]]), 0.05, 1 / 3)
    >>> round(law["configurational"] / (1 / 3 / (1 - 0.05 * 8 / 2)), 4)
    1.0
    """
    periodic = land.period is not None
    out = []
    for per_width in (6, 12):
        x, pi = _finite_lr_grid(land, lr, temperature, per_width, periodic)
        out.append(np.array([pi @ land.grad(x) ** 2 / (pi @ land.laplacian(x)), pi @ land.loss(x)]))
    best = (4 * out[1] - out[0]) / 3
    return {"configurational": float(best[0]), "mean_loss": float(best[1])}


def _first_order_terms(land, temperature: float, points: int):
    r"""On a regular grid of ``points`` per axis over the box: the Gibbs weights :math:`w \propto e^{-L/T}`
    (summing to 1), the loss, :math:`|\nabla L|^2`, the Laplacian and the first-order correction
    :math:`f_1 = |\nabla L|^2/4T - \Delta L/2` of SGD's stationary law (see :func:`first_order_slope`)."""
    d = land.dim
    axes = [np.linspace(lo, hi, points) for lo, hi in np.asarray(land.box, dtype=np.float64)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    pts = grid if d > 1 else grid[:, 0]
    loss, grad, lap = land.loss(pts), land.grad(pts), land.laplacian(pts)
    g2 = (grad**2).reshape(len(loss), -1).sum(1)
    w = np.exp(-(loss - loss.min()) / temperature)
    w /= w.sum()
    return w, loss, g2, lap, g2 / (4 * temperature) - lap / 2


def first_order_slope(land, temperature: float, points: int | None = None) -> float:
    r"""The configurational departure per unit lr at lr -> 0, in any dimension: T_conf / T - 1 ~ c lr.

    To first order in lr the stationary law of SGD with Gaussian noise of variance 2T/lr (the
    Euler-Maruyama chain of the Langevin dynamics) is
    :math:`\rho \propto e^{-L/T}\,(1 + \eta f_1)`, :math:`f_1 = |\nabla L|^2/4T - \Delta L/2`
    (on a quadratic this is the expansion of the exact Lyapunov law; in 1-D it agrees with
    :func:`finite_lr_law`, see the tests), so
    :math:`c = \mathrm{Cov}(|\nabla L|^2, f_1)/E|\nabla L|^2 - \mathrm{Cov}(\Delta L, f_1)/E\,\Delta L`,
    the averages over the Gibbs law by quadrature on the landscape's box.

    Parameters
    ----------
    land : a landscape with a finite ``box`` (1-D or 2-D)
    temperature : float > 0
    points : int, quadrature points per axis (default 20001 in 1-D, 400 in 2-D)

    Returns
    -------
    float, the slope c of :math:`T_\text{conf}/T - 1 \approx c\,\eta` (per unit lr).

    Example
    -------
    >>> from gibbs_sgd.landscapes import Quadratic
    >>> round(first_order_slope(Quadratic(8.0, box=[[-2.0, 2.0]]), 1 / 3), 4)  # h / 2
    4.0
    """
    points = points or (20001 if land.dim == 1 else 400)  # quadrature converged to 1e-6 (Mueller-Brown: 300..800)
    w, _, g2, lap, f1 = _first_order_terms(land, temperature, points)

    def cov(a):
        return w @ (a * f1) - (w @ a) * (w @ f1)

    return float(cov(g2) / (w @ g2) - cov(lap) / (w @ lap))


def first_order_mle_slope(land, temperature: float, points: int = 20001) -> float:
    r"""The maximum-likelihood T's departure per unit lr at lr -> 0 (1-D): T_mle / T - 1 ~ c lr.

    With the first-order law of :func:`first_order_slope`, the mean loss moves by
    :math:`\eta\,\mathrm{Cov}(L, f_1)` and :math:`dE_T[L]/dT = \mathrm{Var}\,L / T^2`, so
    :math:`c = T\,\mathrm{Cov}(L, f_1)/\mathrm{Var}\,L` (Gibbs averages by quadrature on the box).

    Parameters
    ----------
    land : a 1-D landscape with a finite ``box``
    temperature : float > 0
    points : int, quadrature points (20001: converged to 1e-6)

    Returns
    -------
    float, the slope c of :math:`T_\text{mle}/T - 1 \approx c\,\eta` (per unit lr).

    Example
    -------
    >>> from gibbs_sgd.landscapes import Quadratic
    >>> round(first_order_mle_slope(Quadratic(6.0, box=[[-2.0, 2.0]]), 0.25), 4)  # h / 2
    3.0
    """
    w, loss, _, _, f1 = _first_order_terms(land, temperature, points)
    var = w @ loss**2 - (w @ loss) ** 2
    return float(temperature * (w @ (loss * f1) - (w @ loss) * (w @ f1)) / var)


# -- least squares: SGD whose noise depends on the state ----------------------------------------------
# (used by validation/batch_size.py, validation/step_halving.py and validation/early_speed.py)
def online_least_squares_moments(batch_size: float = 1, input_std: float = 1.0,
                                 noise_std: float = 1.0) -> tuple[float, float, float]:
    r"""The moments of SGD's linear recursion for online least squares with Gaussian inputs.

    Fresh examples :math:`x \sim \mathcal N(0, s_x^2)`, :math:`y = w^* x + s\,\epsilon`; the per-example
    gradient at :math:`e = w - w^*` is :math:`x^2 e - s\,x\epsilon`, so the batch mean is
    :math:`A_B e - R_B` with

    .. math:: h = E\,x^2 = s_x^2, \qquad \operatorname{Var} A_B = 2 h^2 / B \;(E\,x^4 = 3 s_x^4),
              \qquad \operatorname{Var} R_B = s^2 h / B.

    Parameters
    ----------
    batch_size : number in [1, 2**53]
    input_std : float > 0, :math:`s_x`
    noise_std : float >= 0, the label noise :math:`s`

    Returns
    -------
    (curvature h, curvature_variance Var A_B, force_variance Var R_B) : floats, the arguments of
    :func:`least_squares_stationary_loss`

    Example
    -------
    >>> online_least_squares_moments(4, input_std=1.0, noise_std=2.0)
    (1.0, 0.5, 1.0)
    """
    b = _batch(batch_size)
    h = check_positive("input_std", input_std) ** 2
    s2 = check_positive("noise_std", noise_std, allow_zero=True) ** 2
    return h, 2.0 * h * h / b, s2 * h / b


def least_squares_moments(inputs, residuals, batch_size: float, replace: bool = True) -> tuple[float, float, float]:
    r"""The moments of SGD's linear recursion for least squares on a finite data set of n examples.

    The per-example gradient at :math:`e = w - w^*` is :math:`x_i^2 e - x_i r_i` (:math:`r_i` the
    residual at the minimum, so :math:`\sum_i x_i r_i = 0`); a batch of B indices gives
    :math:`A_B e - R_B` with :math:`A_B`, :math:`R_B` the batch means of :math:`x^2` and :math:`x r`:

    .. math:: h = \overline{x^2}, \qquad \operatorname{Var} A_B = f\,\operatorname{var}(x^2)/B,
              \qquad \operatorname{Var} R_B = f\,\overline{(x r)^2}/B,

    the data-set variances (over 1/n) divided by B, times the finite-population factor
    :math:`f = (n - B)/(n - 1)` when the batch is drawn without replacement (two distinct draws
    have covariance :math:`-\operatorname{var}/(n - 1)`), :math:`f = 1` with replacement. With
    constant inputs this is mean estimation (``Var A_B = 0``).

    Parameters
    ----------
    inputs : (n,) float array, the examples' inputs :math:`x_i` (1-D weight)
    residuals : (n,) float array, :math:`r_i = y_i - w^* x_i` at the least-squares solution
    batch_size : number in [1, n] (B)
    replace : bool, batches drawn with replacement (True) or as B-subsets (False)

    Returns
    -------
    (curvature h, curvature_variance Var A_B, force_variance Var R_B) : floats, the arguments of
    :func:`least_squares_stationary_loss`

    Example
    -------
    >>> least_squares_moments([1.0, -1.0], [0.5, 0.5], 1)
    (1.0, 0.0, 0.25)
    """
    x = np.asarray(inputs, dtype=np.float64).ravel()
    r = np.asarray(residuals, dtype=np.float64).ravel()
    n = x.shape[0]
    f = 1.0 if replace else (n - batch_size) / (n - 1)
    h = float(np.mean(x * x))
    return h, float(np.var(x * x)) * f / batch_size, float(np.mean((x * r) ** 2)) * f / batch_size


def least_squares_moment_factor(lr: float, curvature: float, curvature_variance: float = 0.0) -> float:
    r"""The factor of SGD's second-moment recursion on least squares: :math:`q' = a\,q + \eta^2 \operatorname{Var} R_B`.

    With :math:`e' = (1 - \eta A_B) e + \eta R_B`, :math:`A_B`, :math:`R_B` independent of
    :math:`e` and :math:`E R_B = 0`, the second moment :math:`q = E e^2` obeys the recursion above with

    .. math:: a = E(1 - \eta A_B)^2 = (1 - \eta h)^2 + \eta^2 \operatorname{Var} A_B

    (online Gaussian inputs, B = 1, h = 1: :math:`a = 1 - 2\eta + 3\eta^2`; additive noise:
    :math:`(1 - \eta h)^2`). Stationary for :math:`a < 1`.

    Parameters
    ----------
    lr : float, the learning rate :math:`\eta`
    curvature : float, :math:`h = E A_B`
    curvature_variance : float >= 0, :math:`\operatorname{Var} A_B`

    Returns
    -------
    float, a

    Example
    -------
    >>> round(least_squares_moment_factor(0.1, 1.0, 2.0), 12)  # 1 - 2 lr + 3 lr^2
    0.83
    """
    return (1.0 - lr * curvature) ** 2 + lr * lr * curvature_variance


def least_squares_relaxation_time(lr: float, curvature: float, curvature_variance: float = 0.0) -> float:
    r"""The slowest relaxation of SGD on least squares, in steps.

    The mean error decays as :math:`(1 - \eta h)^t` and the error's scale :math:`\sqrt q` as
    :math:`a^{t/2}` (:func:`least_squares_moment_factor`), so

    .. math:: \tau = \max\big(-1/\log|1 - \eta h|,\; -2/\log a\big)

    (the two are equal with additive noise; the second is longer when the curvature is random).

    Parameters
    ----------
    lr : float, the learning rate (stable: :math:`a < 1`)
    curvature, curvature_variance : float, :math:`h` and :math:`\operatorname{Var} A_B`

    Returns
    -------
    float, :math:`\tau` in steps

    Example
    -------
    >>> round(least_squares_relaxation_time(0.1, 1.0, 0.0), 3)  # -1 / log(0.9)
    9.491
    """
    a = least_squares_moment_factor(lr, curvature, curvature_variance)
    return max(-1.0 / math.log(abs(1.0 - lr * curvature)), -2.0 / math.log(a))


def least_squares_stationary_loss(lr: float, curvature: float, curvature_variance: float = 0.0,
                                  force_variance: float = 1.0) -> float:
    r"""Exact stationary mean loss above the minimum of SGD on least squares, at finite lr.

    SGD on least squares is the random linear recursion :math:`e' = (1 - \eta A_B) e + \eta R_B`
    (:math:`A_B`, :math:`R_B` drawn afresh each step, independent of :math:`e`, :math:`E R_B = 0`:
    :func:`least_squares_moments`, :func:`online_least_squares_moments`), so the second moment
    closes whatever the law of the noise: :math:`q = a q + \eta^2 \operatorname{Var} R_B` with
    :math:`a = (1 - \eta h)^2 + \eta^2 \operatorname{Var} A_B`. Its fixed point gives

    .. math:: \langle L\rangle - L^* = \frac{h q}{2}
              = \frac{h\,\eta \operatorname{Var} R_B}{2\,(2h - \eta(h^2 + \operatorname{Var} A_B))},

    and the temperature :math:`T = 2(\langle L\rangle - L^*)`. Special cases: online Gaussian
    inputs at B = 1, h = 1: :math:`\eta s^2 / (2(2 - 3\eta))`; additive noise
    (:math:`\operatorname{Var} A_B = 0`): :math:`\eta s^2/(2(2 - \eta h))`, as
    :func:`sgd_stationary_variance_1d`. Derived in the lecture's setting by
    ``validation/batch_size.py`` (finite data set) and ``validation/step_halving.py`` (online).

    Parameters
    ----------
    lr : float > 0, the learning rate :math:`\eta`
    curvature : float > 0, :math:`h = E A_B`
    curvature_variance : float >= 0, :math:`\operatorname{Var} A_B`
    force_variance : float >= 0, :math:`\operatorname{Var} R_B`

    Returns
    -------
    float, the stationary mean loss above the minimum; ``inf`` where there is no stationary law
    (:math:`\eta(h^2 + \operatorname{Var} A_B) \ge 2h`)

    Example
    -------
    >>> h, va, vr = online_least_squares_moments(1)
    >>> round(least_squares_stationary_loss(0.2, h, va, vr), 12)  # lr / (2 (2 - 3 lr))
    0.071428571429
    """
    den = 2.0 * curvature - lr * (curvature * curvature + curvature_variance)
    return 0.5 * (curvature * lr * force_variance / den) if den > 0 else math.inf
