"""Exact finite-learning-rate stationary variances, measured by the engine.

Error budget (every test here): the estimate's standard error comes from the scatter of
per-block means over about 256 blocks of independent chains (so time correlation inside a
chain is accounted for), and we require |z| < 4: a false-alarm rate of 6e-5 per assertion.
The bias from the finite burn-in is (1 - lr h)^(2 burn_in) relative, below 1e-9 for every
case. Each test has a negative control: the same measurement against a wrong prediction (a 5%
wrong learning rate, the small-lr temperature, the wrong finite-population factor) must give
|z| > 4, so the test has the power to see an error of that size.
"""
import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd.theory import sgd_stationary_variance_1d

Z_BOUND = 4.0

# (lr, batch_size, curvature h, sigma): lr*h from 0.1 to 1.5, including lr*h > 1 where the
# chain oscillates around the minimum and the small-lr picture fails outright.
SGD_CASES = [
    pytest.param(0.1, 1, 1.0, 1.0, id="lrh=0.1,B=1"),
    pytest.param(0.25, 8, 2.0, 2.0, id="lrh=0.5,B=8"),
    pytest.param(1.0, 4, 1.0, 1.0, id="lrh=1.0,B=4"),
    pytest.param(0.75, 2, 2.0, 1.0, id="lrh=1.5,B=2"),
]


def _sgd_run(lr, batch, h, sigma, seed):
    sd = np.sqrt(sgd_stationary_variance_1d(lr, h, sigma**2, batch))
    land = gs.landscapes.Quadratic(h, box=[[-6 * sd, 6 * sd]])
    return gs.simulate(land, gs.optimizers.SGD(lr), noise=gs.noise.Gaussian(sigma), batch_size=batch,
                       n_chains=20_000, n_steps=400, burn_in=100, seed=seed, progress=False)


@pytest.mark.parametrize("lr,batch,h,sigma", SGD_CASES)
def test_sgd_variance_is_exact_at_finite_lr(lr, batch, h, sigma):
    run = _sgd_run(lr, batch, h, sigma, seed=11)
    var = run.phi_var()
    truth = sgd_stationary_variance_1d(lr, h, sigma**2, batch)
    assert abs(var.z(truth)[0]) < Z_BOUND, (var, truth)
    # the mean is the minimum, and <L> = h Var / 2 exactly
    assert abs(run.phi_mean.z(0.0)[0]) < Z_BOUND
    assert abs(run.mean_loss.z(0.5 * h * truth)) < Z_BOUND
    # negative control: a 5% different learning rate is resolved
    wrong = sgd_stationary_variance_1d(lr * 1.05, h, sigma**2, batch)
    assert abs(var.z(wrong)[0]) > Z_BOUND


@pytest.mark.parametrize("lr,batch,h,sigma", SGD_CASES[2:])
def test_small_lr_temperature_is_rejected_at_large_lr(lr, batch, h, sigma):
    """Negative control: the Langevin prediction Var = T/h with T = lr sigma^2/(2B) is wrong at lr h >= 1."""
    run = _sgd_run(lr, batch, h, sigma, seed=12)
    t_small = gs.theory.small_lr_temperature(gs.optimizers.SGD(lr), gs.noise.Gaussian(sigma), batch)
    assert abs(run.phi_var().z(t_small / h)[0]) > Z_BOUND


def _population_variance(data):
    return float(np.mean((data - data.mean()) ** 2))


@pytest.mark.parametrize("replace", [True, False], ids=["with-replacement", "without-replacement"])
def test_mean_estimation_variance_with_finite_population_factor(replace):
    r"""SGD on mean estimation, L = mean_i |phi - a_i|^2 / 2, so h = 1 and the noise is state independent.

    The minibatch gradient is phi - mean_b a_{i_b}; its noise xi_t is i.i.d. over steps with
    Var xi = s^2 / B (with replacement) or (s^2 / B) (n - B)/(n - 1) (without: the variance of
    a sample mean drawn without replacement from a finite population of n with population
    variance s^2). The recursion phi' - abar = (1 - lr)(phi - abar) - lr xi gives, for any
    distribution of xi, Var phi = lr Var(xi) / (2 - lr).
    """
    n, batch, lr = 40, 8, 0.3
    data = np.random.default_rng(3).normal(2.0, 1.5, size=n)
    noise = gs.noise.MeanEstimation(data, replace=replace)
    s2 = _population_variance(data)
    fpc = (n - batch) / (n - 1)
    truth = lr * (s2 / batch) * (1.0 if replace else fpc) / (2.0 - lr)
    wrong = lr * (s2 / batch) * (fpc if replace else 1.0) / (2.0 - lr)
    run = gs.simulate(noise.landscape, gs.optimizers.SGD(lr), noise=noise, batch_size=batch,
                      n_chains=20_000, n_steps=300, burn_in=60, seed=5, progress=False)
    var = run.phi_var()
    assert abs(var.z(truth)[0]) < Z_BOUND, (var, truth)
    assert abs(run.phi_mean.z(data.mean())[0]) < Z_BOUND
    # negative control: the other sampling scheme's prediction (20% away here) is rejected
    assert abs(var.z(wrong)[0]) > Z_BOUND
    assert noise.batch_covariance(batch)[0, 0] == pytest.approx(truth * (2 - lr) / lr, rel=1e-12)


def test_streamed_mean_estimation_matches_gaussian_noise():
    """Online regime: fresh N(mu, sigma^2) examples each step give Var = lr sigma^2 / (B (2 - lr))."""
    lr, batch, sigma = 0.5, 4, 1.2
    noise = gs.noise.MeanEstimation.streamed(mean=[1.0], sigma=sigma)
    run = gs.simulate(noise.landscape, gs.optimizers.SGD(lr), noise=noise, batch_size=batch,
                      n_chains=20_000, n_steps=200, burn_in=50, seed=9, progress=False)
    truth = sgd_stationary_variance_1d(lr, 1.0, sigma**2, batch)
    var = run.phi_var()
    assert abs(var.z(truth)[0]) < Z_BOUND
    assert abs(var.z(sgd_stationary_variance_1d(lr, 1.0, sigma**2, batch + 1))[0]) > Z_BOUND
