"""fit_temperature: coverage of its confidence intervals, negative controls, verdicts.

Error budget: coverage counts over R = 200 repetitions are binomial, sd = sqrt(R 0.95 0.05)
= 3.1 intervals; we accept 178..199 covered (|z| < 4 below, and a 100% coverage, which has
probability 3.5e-5 for honest 95% intervals, is rejected as too wide). Consistency checks
inside the fit use |z| < 4 and a chi-square p > 1e-3.
"""
import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd import landscapes as ls
from gibbs_sgd.result import SimulationResult

REPS = 200


def _covered(fits, truth):
    return sum(f.ci[0] <= truth <= f.ci[1] for f in fits)


def test_coverage_for_exact_gibbs_samples():
    land = ls.DoubleWell(tilt=0.2)
    g = gs.Gibbs(land, temperature=0.3)
    fits = []
    for r in range(REPS):
        x = g.rvs(4000, random_state=1000 + r)
        fits.append(gs.fit_temperature(SimulationResult.from_samples(land, x, n_blocks=100)))
    assert 178 <= _covered(fits, 0.3) <= 199


def test_coverage_for_sgd_at_finite_learning_rate():
    """SGD on h x^2/2 at lr h = 0.5: its stationary law is Gaussian, i.e. Gibbs at the exact
    T = h Var = lr sigma^2 / (B (2 - lr h)), not the small-lr lr sigma^2 / (2B)."""
    lr, h, batch = 0.5, 1.0, 2
    truth = lr / (batch * (2 - lr * h))
    land = ls.Quadratic(h, box=[[-2.5, 2.5]])
    fits = [gs.fit_temperature(gs.simulate(land, gs.optimizers.SGD(lr), batch_size=batch, n_chains=2000, n_steps=150,
                                           burn_in=50, seed=r, progress=False)) for r in range(REPS)]
    assert 178 <= _covered(fits, truth) <= 199
    # negative control: the small-lr temperature is far outside almost every interval
    assert _covered(fits, lr / (2 * batch)) < 10


def test_wrong_temperature_is_rejected():
    land = ls.DoubleWell(tilt=0.2)
    x = gs.Gibbs(land, temperature=0.3).rvs(100_000, random_state=3)
    run = SimulationResult.from_samples(land, x)
    right = gs.fit_temperature(run, temperature=0.3)
    assert right.is_gibbs, right.verdict
    wrong = gs.fit_temperature(run, temperature=0.32)
    assert not wrong.is_gibbs and wrong.p_value < 1e-3, wrong.verdict
    assert "sigma from the given T" in wrong.verdict


def test_anisotropic_noise_is_not_gibbs():
    """On a 2-D quadratic with noise variance 1 along x and 4 along y, the stationary law is
    N(0, diag(T, 4T)) / h: each coordinate has its own temperature, so no Gibbs law fits."""
    land = ls.Quadratic([1.0, 1.0], box=[[-1, 1], [-1, 1]])
    noise = gs.noise.Gaussian(covariance=np.diag([1.0, 4.0]))
    run = gs.simulate(land, gs.optimizers.SGD(0.02), noise=noise, n_chains=20_000, n_steps=600, burn_in=300,
                      thin=5, seed=1, bins=40, progress=False)
    fit = gs.fit_temperature(run)
    assert not fit.is_gibbs
    assert fit.p_value < 1e-3
    assert fit.per_coordinate[1] / fit.per_coordinate[0] == pytest.approx(4.0, rel=0.05)
    assert "per-coordinate" in fit.verdict
    # positive control: the same run with isotropic noise is Gibbs
    iso = gs.simulate(land, gs.optimizers.SGD(0.02), noise=gs.noise.Gaussian(1.5), n_chains=20_000, n_steps=600,
                      burn_in=300, thin=5, seed=1, bins=40, progress=False)
    assert gs.fit_temperature(iso).is_gibbs


def test_estimators_split_on_a_curved_well_at_finite_lr():
    """A double well (curvature h = 8 at the minima): at finite lr the stationary law is not
    Gibbs, and the estimators disagree by O(lr h). Ten times smaller lr (with sigma^2 ten
    times larger, the same small-lr T) shrinks the disagreement about tenfold."""
    land = ls.DoubleWell(barrier=1.0)
    init = np.random.default_rng(0).choice([-1.0, 1.0], size=(20_000, 1))

    def split(lr, sigma, steps):
        run = gs.simulate(land, gs.optimizers.SGD(lr), noise=gs.noise.Gaussian(sigma), n_chains=20_000,
                          n_steps=steps, burn_in=steps // 2, thin=steps // 600, init=init, seed=2, progress=False)
        fit = gs.fit_temperature(run)
        est = fit.estimators
        return fit, est["configurational"].value / est["mle"].value - 1.0

    big, dev_big = split(0.05, 3.0, 3000)
    assert set(big.estimators) == {"mle", "virial", "configurational"}
    assert not big.is_gibbs, big.verdict
    small, dev_small = split(0.005, 3.0 * 10**0.5, 6000)
    assert abs(dev_big) > 4 * abs(dev_small), (dev_big, dev_small)
    t = gs.theory.small_lr_temperature(gs.optimizers.SGD(0.005), gs.noise.Gaussian(3.0 * 10**0.5), 1)
    assert abs(small.temperature - t) / t < 0.05  # finite-lr correction O(lr h) = 4%


def test_periodic_landscape_uses_mle_and_configurational():
    land = ls.Periodic(amplitude=1.0)
    x = gs.Gibbs(land, temperature=0.5).rvs(50_000, random_state=5)
    fit = gs.fit_temperature(SimulationResult.from_samples(land, x))
    assert fit.estimators["virial"] is None and fit.per_coordinate is None
    assert fit.is_gibbs, fit.verdict
    with pytest.raises(ValueError, match="virial estimator is undefined"):
        gs.fit_temperature(SimulationResult.from_samples(land, x), method="virial")


def test_bad_arguments():
    land = ls.Quadratic(1.0)
    run = SimulationResult.from_samples(land, gs.Gibbs(land, 1.0).rvs(1000, random_state=0))
    with pytest.raises(ValueError, match="method must be one of"):
        gs.fit_temperature(run, method="bayes")
    with pytest.raises(ValueError, match="confidence must be in"):
        gs.fit_temperature(run, confidence=1.5)
