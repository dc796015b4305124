"""Exact finite-lr theory: Lyapunov solutions against hand-derived closed forms and simulation."""
import math

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


# -- general landscapes: the Langevin relaxation time and SGD's exact finite-lr law in 1-D -------------
# (the landscapes and temperatures of validation/gibbs_law.py)
DW, DW_T = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.3), 1.0 / 3.0
COS, COS_T = gs.landscapes.Periodic(amplitude=1.0), 0.5
MB = gs.landscapes.MuellerBrown(scale=0.01, box=[[-2.8, 1.3], [-0.9, 2.9]])
MB_T = 25 * 0.01


@pytest.mark.parametrize("lr", [0.05, 0.002, 0.0005])
def test_finite_lr_law_is_exact_on_a_quadratic(lr):
    """The transition-kernel law reproduces SGD's exact finite-lr T = T0 / (1 - lr h / 2) (and the
    mean loss T/2): the grid's error after Richardson extrapolation is below 1e-5."""
    h, t = 8.0, 1.0 / 3.0
    law = gs.theory.finite_lr_law(gs.landscapes.Quadratic(h, box=[[-2.0, 2.0]]), lr, t)
    exact = t / (1 - lr * h / 2)
    assert law["configurational"] == pytest.approx(exact, rel=1e-5)
    assert law["mean_loss"] == pytest.approx(exact / 2, rel=1e-5)


def test_finite_lr_law_matches_theory_module_and_tends_to_gibbs():
    """Against gs.theory's SGD variance at a batch size, and on a double well the departure per unit
    lr tends to a constant (linear in lr), the configurational T to the Gibbs T."""
    h, s2, b, lr = 3.0, 4.0, 8, 0.1
    t = lr * s2 / (2 * b)
    law = gs.theory.finite_lr_law(gs.landscapes.Quadratic(h, box=[[-3.0, 3.0]]), lr, t)
    assert law["configurational"] == pytest.approx(h * gs.theory.sgd_stationary_variance_1d(lr, h, s2, b), rel=1e-5)
    deps = [gs.theory.finite_lr_law(DW, lr, DW_T)["configurational"] / DW_T - 1 for lr in (0.002, 0.001, 0.0005)]
    rates = np.array(deps) / np.array([0.002, 0.001, 0.0005])
    assert np.all(np.array(deps) > 0) and abs(rates[0] / rates[2] - 1) < 0.02


def test_first_order_slope_on_a_quadratic_and_against_the_exact_law():
    """c = h/2 on a quadratic (T / (1 - lr h/2)); on the double well and the torus it is the exact
    law's slope at lr -> 0 (within 0.5%); on Mueller-Brown it is converged in the quadrature."""
    assert gs.theory.first_order_slope(gs.landscapes.Quadratic(8.0, box=[[-2.0, 2.0]]), 1 / 3) == pytest.approx(4.0, rel=1e-6)
    for land, t in ((DW, DW_T), (COS, COS_T)):
        exact = (gs.theory.finite_lr_law(land, 1e-4, t)["configurational"] / t - 1) / 1e-4
        assert gs.theory.first_order_slope(land, t) == pytest.approx(exact, rel=5e-3)
    assert gs.theory.first_order_slope(MB, MB_T, 300) == pytest.approx(gs.theory.first_order_slope(MB, MB_T, 500),
                                                                      rel=1e-5)


def test_first_order_mle_slope_on_a_quadratic_and_against_the_exact_law():
    """T_mle = T / (1 - lr h / 2) on a quadratic: slope h/2; on the double well the exact law's
    mean loss, inverted through E_T[L], has the same slope at small lr (within 1%)."""
    assert gs.theory.first_order_mle_slope(gs.landscapes.Quadratic(6.0, box=[[-2.0, 2.0]]), 0.25) == pytest.approx(3.0, rel=1e-6)
    from scipy.optimize import brentq

    t, lr = 0.256, 2e-4
    loss = gs.theory.finite_lr_law(DW, lr, t)["mean_loss"]
    t_mle = brentq(lambda v: gs.Gibbs(DW, v).mean_loss() - loss, 0.9 * t, 1.1 * t, xtol=1e-14)
    assert gs.theory.first_order_mle_slope(DW, t) == pytest.approx((t_mle / t - 1) / lr, rel=1e-2)


def test_finite_lr_law_on_a_torus():
    """The cosine landscape's kernel wraps around; at small lr its law tends to Gibbs too."""
    lrs = [0.02, 0.01]
    deps = [gs.theory.finite_lr_law(COS, lr, COS_T)["configurational"] / COS_T - 1 for lr in lrs]
    assert 0 < deps[1] < deps[0] and deps[0] / deps[1] == pytest.approx(2.0, rel=0.03)


def test_relaxation_time_of_the_ornstein_uhlenbeck_process():
    """On h x^2/2 the generator's gap is h whatever T: relaxation time 1/h."""
    tau = gs.theory.langevin_relaxation_time(gs.landscapes.Quadratic(2.0, box=[[-3.0, 3.0]]), 0.2)
    assert tau == pytest.approx(0.5, rel=1e-3)


def test_relaxation_time_grows_with_the_barrier_as_kramers():
    """Double well: the basin-exchange time grows like exp(barrier / T) (ratio of two T's within 30%
    of the Arrhenius factor of the deep well's barrier), far above the in-well time 1/h."""
    t1, t2 = 0.3, 0.25
    tau1, tau2 = gs.theory.langevin_relaxation_time(DW, t1), gs.theory.langevin_relaxation_time(DW, t2)
    x = np.linspace(-2, 2, 4001)
    loss = DW.loss(x)
    barrier = loss[np.abs(x) < 0.3].max() - loss[x > 0].min()  # the shallow well empties: the slow mode
    assert tau2 / tau1 == pytest.approx(math.exp(barrier / t2 - barrier / t1), rel=0.3)
    assert tau1 > 5 / 8.87


# -- least squares: SGD whose noise depends on the state -------------------------------------------
@pytest.mark.parametrize("lr", [0.2, 0.05, 0.00625, 1e-4])
@pytest.mark.parametrize("noise_std", [1.0, 0.3])
def test_online_least_squares_stationary_loss_closed_form(lr, noise_std):
    """Online Gaussian inputs at B = 1, h = 1: <L> - L* = lr s^2 / (2 (2 - 3 lr)) (E x^4 = 3)."""
    moments = theory.online_least_squares_moments(1, input_std=1.0, noise_std=noise_std)
    assert moments == (1.0, 2.0, noise_std**2)
    loss = theory.least_squares_stationary_loss(lr, *moments)
    assert loss == pytest.approx(lr * noise_std**2 / (2 * (2 - 3 * lr)), rel=1e-13)
    # the second-moment recursion's factor, written out: E(1 - lr x^2)^2 = 1 - 2 lr + 3 lr^2
    assert theory.least_squares_moment_factor(lr, 1.0, 2.0) == pytest.approx(1 - 2 * lr + 3 * lr * lr, rel=1e-14)


@pytest.mark.parametrize("lr, h, s2", [(0.3, 1.0, 1.0), (0.05, 8.0, 2.5), (1.7, 1.0, 0.5)])
def test_least_squares_law_with_constant_curvature_is_the_additive_sgd_law(lr, h, s2):
    """Var A_B = 0 (mean estimation, additive noise): h Var Phi / 2 with gs.theory's SGD variance."""
    loss = theory.least_squares_stationary_loss(lr, h, 0.0, s2)
    assert loss == pytest.approx(h * theory.sgd_stationary_variance_1d(lr, h, s2, 1) / 2, rel=1e-13)
    assert theory.least_squares_relaxation_time(lr, h) == pytest.approx(theory.relaxation_time(SGD(lr=lr), [[h]]),
                                                                        rel=1e-13)


@pytest.mark.parametrize("lr, h, va, vr", [(0.2, 1.0, 2.0, 1.0), (0.01, 3.0, 5.0, 0.7), (0.4, 1.0, 0.06, 0.3)])
def test_least_squares_law_is_the_fixed_point_of_the_moment_recursion(lr, h, va, vr):
    """q' = a q + lr^2 Var R iterated to convergence from q = 0 reaches h q / 2 = the stationary loss;
    the error's scale relaxes in the stated relaxation time."""
    a = theory.least_squares_moment_factor(lr, h, va)
    q = 0.0
    for _ in range(200_000):
        q = a * q + lr * lr * vr
    assert h * q / 2 == pytest.approx(theory.least_squares_stationary_loss(lr, h, va, vr), rel=1e-12)
    tau = theory.least_squares_relaxation_time(lr, h, va)
    assert tau == pytest.approx(max(-1 / math.log(abs(1 - lr * h)), -2 / math.log(a)), rel=1e-14)


def test_least_squares_law_has_no_stationary_value_beyond_stability():
    """lr (h^2 + Var A) >= 2 h: the second moment grows, the law is infinite (online: lr >= 2/3)."""
    assert theory.least_squares_stationary_loss(2 / 3, *theory.online_least_squares_moments(1)) == math.inf
    assert theory.least_squares_stationary_loss(0.66, *theory.online_least_squares_moments(1)) < math.inf


@pytest.mark.parametrize("replace", [True, False])
def test_least_squares_moments_of_a_data_set_by_enumeration(replace):
    """Var A_B and Var R_B against every batch of a 5-point data set: all 5^2 ordered pairs with
    replacement, all 10 pairs of distinct points without (the finite-population factor (n - B)/(n - 1))."""
    import itertools

    x = np.array([0.3, -1.2, 0.8, 2.0, -0.5])
    y = 1.5 * x + np.array([0.2, -0.4, 0.1, 0.3, -0.6])
    w = float(np.sum(x * y) / np.sum(x * x))  # the least-squares solution: sum x r = 0
    r = y - w * x
    batches = (list(itertools.product(range(5), repeat=2)) if replace else list(itertools.combinations(range(5), 2)))
    mean_a = np.array([np.mean(x[list(i)] ** 2) for i in batches])
    mean_r = np.array([np.mean((x * r)[list(i)]) for i in batches])
    h, va, vr = theory.least_squares_moments(x, r, 2, replace=replace)
    assert h == pytest.approx(np.mean(x * x), rel=1e-14)
    assert va == pytest.approx(np.var(mean_a), rel=1e-12)
    assert vr == pytest.approx(np.mean(mean_r**2), rel=1e-12) and np.mean(mean_r) == pytest.approx(0.0, abs=1e-15)
