"""Exact finite-lr theory: Lyapunov solutions against hand-derived closed forms and simulation."""
import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd import theory
from gibbs_sgd.optimizers import SGD, EMAMomentum, HeavyBall


def _hb_variance_1d(lr, mu, h, s2):
    r"""Heavy ball in 1-D is the AR(2) x' = (1 + mu - lr h) x - mu x_ - lr xi; for an AR(2)
    x_t = a1 x_{t-1} + a2 x_{t-2} + e_t, Var x = (1 - a2) Var e / ((1 + a2)((1 - a2)^2 - a1^2))."""
    a1, a2, ve = 1 + mu - lr * h, -mu, lr**2 * s2
    return (1 - a2) * ve / ((1 + a2) * ((1 - a2) ** 2 - a1**2))


# (optimizer, hand-derived closed form of Var Phi for h, per-example variance s2, batch B)
CLOSED_FORMS = [
    pytest.param(SGD(lr=0.3), lambda h, s2: 0.3 * s2 / (h * (2 - 0.3 * h)), id="sgd"),
    pytest.param(SGD(lr=1.7), lambda h, s2: 1.7 * s2 / (h * (2 - 1.7 * h)), id="sgd-lrh>1"),
    pytest.param(HeavyBall(lr=0.05, momentum=0.9), lambda h, s2: _hb_variance_1d(0.05, 0.9, h, s2), id="heavy-ball"),
    # dampening tau: b = (1 - tau) b~ turns it into heavy ball with lr (1 - tau)
    pytest.param(HeavyBall(lr=0.2, momentum=0.5, dampening=0.3), lambda h, s2: _hb_variance_1d(0.14, 0.5, h, s2),
                 id="heavy-ball-dampening"),
    # EMA: b = s / (1 - beta) turns it into heavy ball with lr (1 - beta), momentum beta
    pytest.param(EMAMomentum(lr=0.4, beta=0.8), lambda h, s2: _hb_variance_1d(0.4 * 0.2, 0.8, h, s2), id="ema"),
]


@pytest.mark.parametrize("opt, closed", CLOSED_FORMS)
@pytest.mark.parametrize("h, s2", [(1.0, 1.0), (0.5, 2.0)])
def test_lyapunov_matches_hand_derived_closed_form(opt, closed, h, s2):
    assert theory.stationary_variance(opt, h, s2) == pytest.approx(closed(h, s2), rel=1e-12)


def test_nesterov_matches_its_impulse_response():
    """Nesterov in 1-D is an ARMA(2,1); Var = s^2 sum_k psi_k^2 with psi the impulse response."""
    lr, mu, h = 0.1, 0.7, 1.5
    opt = HeavyBall(lr=lr, momentum=mu, nesterov=True)
    a1, a2 = (1 + mu) * (1 - lr * h), -mu * (1 - lr * h)
    b0, b1 = -lr * (1 + mu), lr * mu
    psi = np.zeros(20000)
    psi[0] = b0
    psi[1] = a1 * psi[0] + b1
    for k in range(2, psi.size):
        psi[k] = a1 * psi[k - 1] + a2 * psi[k - 2]
    assert theory.stationary_variance(opt, h, 1.0) == pytest.approx(np.sum(psi**2), rel=1e-12)


def test_small_lr_limits():
    h = np.array([[2.0, 0.5], [0.5, 1.0]])
    for opt, t in [(SGD(lr=1e-4), 1e-4 / 2), (HeavyBall(lr=1e-5, momentum=0.9), 1e-4 / 2),
                   (EMAMomentum(lr=1e-4, beta=0.9), 1e-4 / 2), (HeavyBall(lr=1e-5, momentum=0.9, nesterov=True), 1e-4 / 2)]:
        exact = theory.stationary_covariance(opt, h, gs.noise.Gaussian(1.0))
        small = theory.small_lr_covariance(opt, h, gs.noise.Gaussian(1.0))
        assert np.allclose(small, t * np.linalg.inv(h), rtol=1e-12)
        assert np.allclose(exact, small, rtol=2e-3)  # O(lr h) corrections, lr h <= 3e-4 / (1 - mu)


@pytest.mark.parametrize(
    "opt, bad_lr",
    [(SGD(lr=0.1), 2.01), (HeavyBall(lr=0.1, momentum=0.5), 3.01), (EMAMomentum(lr=0.1, beta=0.5), 2 * 1.5 / 0.5 + 0.01),
     (HeavyBall(lr=0.1, momentum=0.5, nesterov=True), 1.5 + 0.01)],
    ids=["sgd", "heavy-ball", "ema", "nesterov"],
)
def test_instability_is_reported_with_its_bound(opt, bad_lr):
    import dataclasses

    stable = dataclasses.replace(opt, lr=bad_lr - 0.02)
    theory.stationary_covariance(stable, 1.0, [[1.0]])
    with pytest.raises(theory.UnstableError, match="stability needs"):
        theory.stationary_covariance(dataclasses.replace(opt, lr=bad_lr), 1.0, [[1.0]])


# Simulation at finite lr on an anisotropic 2-D quadratic with correlated noise.
H2 = np.array([[2.0, 0.6], [0.6, 1.0]])
C2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
SIM_CASES = [
    pytest.param(HeavyBall(lr=0.1, momentum=0.8), id="heavy-ball"),
    pytest.param(HeavyBall(lr=0.1, momentum=0.6, dampening=0.2), id="heavy-ball-dampening"),
    pytest.param(HeavyBall(lr=0.15, momentum=0.5, nesterov=True), id="nesterov"),
    pytest.param(EMAMomentum(lr=0.5, beta=0.9), id="ema"),
    pytest.param(SGD(lr=0.6), id="sgd"),
]


@pytest.mark.parametrize("opt", SIM_CASES)
def test_lyapunov_matches_simulation(opt):
    """Every entry of the stationary covariance of (Phi, state): |z| < 4 (see test_stationary's budget)."""
    batch = 2
    land = gs.landscapes.Quadratic(H2, box=[[-3, 3], [-3, 3]])
    noise = gs.noise.Gaussian(covariance=C2)
    run = gs.simulate(land, opt, noise=noise, batch_size=batch, n_chains=20_000, n_steps=600, burn_in=200,
                      seed=21, progress=False)
    p = theory.stationary_covariance(opt, H2, noise, batch, include_state=True)
    m = p.shape[0]
    second = run.estimate("state_outer")
    mean = run.estimate("state").value
    # E[z z^T] = P + E[z] E[z]^T; the mean is 0 within error, so compare second moments with P.
    z = (second.value.reshape(m, m) - p) / second.stderr.reshape(m, m)
    assert np.max(np.abs(z)) < 4, z
    assert np.max(np.abs(mean / run.estimate("state").stderr)) < 4
    # negative control: the small-lr (Gibbs) covariance of Phi is rejected at these learning rates
    small = theory.small_lr_covariance(opt, H2, noise, batch)
    z_small = (second.value.reshape(m, m)[:2, :2] - small) / second.stderr.reshape(m, m)[:2, :2]
    assert np.max(np.abs(z_small)) > 4


def test_batch_size_is_a_smooth_parameter_of_the_formulas():
    """A curve through measured points needs B between them: the exact variance is smooth in B."""
    v = [theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size=b) for b in (2, 2.5, 3)]
    assert v[0] > v[1] > v[2] and v[1] == pytest.approx(v[0] * 2 / 2.5, rel=1e-14)


@pytest.mark.parametrize(
    "call, kind, match",
    [
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size=0), ValueError,
         r"batch_size must be in \[1"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size=-4), ValueError, r"batch_size"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size=0.5), ValueError, r"batch_size"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size="4"), TypeError, r"batch_size"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, 1.0, batch_size=True), TypeError, r"batch_size"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), 1.0, -1.0), ValueError,
         r"noise_variance must be finite and in \[0, inf\)"),
        (lambda: theory.stationary_variance(SGD(lr=0.1), np.nan, 1.0), ValueError, r"curvature must be finite"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), 1.0, [[-1.0]]), ValueError,
         r"noise covariance must be symmetric positive semi-definite"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), np.eye(2), [[1.0, 2.0], [2.0, 1.0]]), ValueError,
         r"noise covariance must be symmetric positive semi-definite"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), np.eye(2), [[1.0]]), ValueError,
         r"noise covariance must have shape \(2, 2\)"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), [[1.0, np.inf], [0.0, 1.0]], np.eye(2)), ValueError,
         r"hessian must be finite"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), [[1.0, 0.5], [0.0, 1.0]], np.eye(2)), ValueError,
         r"hessian must be symmetric"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), 1.0, [[1.0]], include_state="yes"), TypeError,
         r"include_state must be a bool"),
        (lambda: theory.stationary_covariance(gs.optimizers.Adam(), 1.0, [[1.0]]), TypeError,
         r"optimizer must be a linear optimizer"),
        (lambda: theory.small_lr_temperature(SGD(lr=0.1), gs.noise.Gaussian(1.0), batch_size=0), ValueError,
         r"batch_size"),
        (lambda: theory.small_lr_temperature(SGD(lr=0.1), gs.noise.Gaussian(covariance=[[2.0]]), 1), ValueError,
         r"noise must be isotropic Gaussian"),
        (lambda: theory.small_lr_covariance(SGD(lr=0.1), 1.0, [[1.0]], batch_size=0), ValueError, r"batch_size"),
        (lambda: theory.small_lr_covariance(SGD(lr=0.1), -1.0, [[1.0]]), theory.UnstableError,
         r"hessian must be positive definite"),
        (lambda: theory.small_lr_covariance(SGD(lr=0.1), 1.0, -2.0), ValueError, r"positive semi-definite"),
        (lambda: theory.sgd_stationary_variance_1d(0.1, 1.0, 1.0, 0), ValueError, r"batch_size"),
        (lambda: theory.sgd_stationary_variance_1d(0.1, 1.0, -1.0, 1), ValueError, r"noise_variance"),
        (lambda: theory.sgd_stationary_variance_1d(-0.1, -1.0, 1.0, 1), ValueError, r"lr must be finite"),
        (lambda: theory.sgd_stationary_variance_1d(1e300, 1e-300, 1e300, 1), ValueError, r"beyond float64"),
        (lambda: theory.relaxation_time(SGD(lr=1e300), [[1e300]]), ValueError, r"lr \* H overflows"),
        (lambda: theory.effective_lr("sgd"), TypeError, r"optimizer must be"),
        (lambda: theory.stationary_covariance(SGD(lr=0.1), 1.0, gs.noise.LinearRegression.streamed([1.0])),
         ValueError, r"noise: LinearRegression noise depends on the state"),
    ],
)
def test_bad_input_is_a_named_error(call, kind, match):
    """Each of these returned a number (negative variances, negative batch sizes) or raised an
    unnamed error before."""
    with pytest.raises(kind, match=match):
        call()


def test_zero_noise_has_zero_variance():
    assert theory.stationary_variance(SGD(lr=0.1), 1.0, 0.0) == 0.0
    assert theory.sgd_stationary_variance_1d(0.1, 1.0, 0.0, 3) == 0.0
