"""The Gibbs object against closed forms and independent quadrature."""
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

import gibbs_sgd as gs
from gibbs_sgd import landscapes as ls


def test_quadratic_is_the_gaussian():
    h = np.array([[2.0, 0.5], [0.5, 1.0]])
    land = ls.Quadratic(h, center=[1.0, -1.0], offset=0.2)
    g = gs.Gibbs(land, temperature=0.3)
    cov = 0.3 * np.linalg.inv(h)
    x = np.array([[0.5, -0.7], [1.2, -1.4]])
    ref = stats.multivariate_normal(land.center, cov).logpdf(x)
    assert np.allclose(g.logpdf(x), ref, rtol=1e-12)
    assert g.mean_loss() == pytest.approx(0.2 + 0.3, rel=1e-14)
    assert g.loss_variance() == pytest.approx(0.3**2, rel=1e-14)


@pytest.mark.parametrize("temperature", [0.05, 0.7, 5.0])
def test_periodic_partition_function_through_bessel(temperature):
    land = ls.Periodic(amplitude=1.3, period=2.5, dim=2)
    g = gs.Gibbs(land, temperature=temperature)
    k = 1.3 / temperature
    z1 = 2.5 * math.exp(-k) * special.i0(k)
    assert g.log_partition == pytest.approx(2 * math.log(z1), rel=1e-12)
    # E[L] against direct quadrature of one coordinate
    f = lambda v: 1.3 * (1 - math.cos(2 * math.pi * v / 2.5)) * math.exp(-land.loss([v, 0.0]) / temperature)  # noqa: E731
    e1 = integrate.quad(f, -1.25, 1.25, epsabs=0, epsrel=1e-12)[0] / z1
    assert g.mean_loss() == pytest.approx(2 * e1, rel=1e-9)


@pytest.mark.parametrize(
    "land, temperature",
    [(ls.DoubleWell(barrier=1.0, tilt=0.3), 0.2), (ls.DoubleWell(barrier=2.0, tilt=-0.1), 0.05),
     (ls.GaussianMixture([1.0, 3.0], [[-1.0], [2.0]], [0.3, 0.8]), 0.7)],
    ids=["double-well", "cold-double-well", "mixture"],
)
def test_one_dimensional_against_adaptive_quadrature(land, temperature):
    g = gs.Gibbs(land, temperature)
    lo, hi = land.box[0]
    z = integrate.quad(lambda v: math.exp(-land.loss(v) / temperature), lo, hi, points=[-1, 0, 1], limit=200,
                       epsabs=0, epsrel=1e-12)[0]
    assert g.log_partition == pytest.approx(math.log(z), abs=1e-9)
    e = integrate.quad(lambda v: land.loss(v) * math.exp(-land.loss(v) / temperature), lo, hi, points=[-1, 0, 1],
                       limit=200, epsabs=0, epsrel=1e-12)[0] / z
    assert g.mean_loss() == pytest.approx(e, rel=1e-8, abs=1e-12)
    edges = np.linspace(lo, hi, 41)
    probs = g.bin_probabilities(edges)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    direct = [integrate.quad(g.pdf, a, b, epsabs=0, epsrel=1e-11)[0] for a, b in zip(edges[:-1], edges[1:])]
    assert np.allclose(probs, direct, rtol=1e-7, atol=1e-13)
    q = np.array([0.01, 0.3, 0.5, 0.9, 0.999])
    assert np.allclose(g.cdf(g.ppf(q)), q, atol=1e-7)


def test_two_dimensional_bins_sum_to_one_and_match_the_density():
    land = ls.MuellerBrown(scale=0.05)
    g = gs.Gibbs(land, temperature=0.5)
    edges = [np.linspace(*land.box[i], 31) for i in range(2)]
    p = g.bin_probabilities(edges)
    assert p.shape == (30, 30)
    assert p.sum() == pytest.approx(1.0, abs=1e-8)
    # a bin against scipy's 2-D adaptive quadrature
    i, j = np.unravel_index(np.argmax(p), p.shape)
    ref = integrate.dblquad(lambda y, x: g.pdf([x, y]), edges[0][i], edges[0][i + 1],
                            edges[1][j], edges[1][j + 1], epsabs=0, epsrel=1e-10)[0]
    assert p[i, j] == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize(
    "land, temperature",
    [(ls.DoubleWell(tilt=0.2), 0.3), (ls.Quadratic(2.0), 0.5), (ls.Periodic(1.0), 0.4)],
    ids=["double-well", "quadratic", "periodic"],
)
def test_rvs_follow_the_cdf(land, temperature):
    g = gs.Gibbs(land, temperature)
    x = g.rvs(50_000, random_state=4)
    assert stats.kstest(x, g.cdf).pvalue > 1e-4
    # negative control: samples at another temperature are rejected
    y = gs.Gibbs(land, temperature * 1.15).rvs(50_000, random_state=4)
    assert stats.kstest(y, g.cdf).pvalue < 1e-4


def test_two_dimensional_rvs_mean_loss():
    land = ls.MuellerBrown(scale=0.05)
    g = gs.Gibbs(land, temperature=0.5)
    x = g.rvs(40_000, random_state=2)
    loss = land.loss(x)
    z = (loss.mean() - g.mean_loss()) / (loss.std() / math.sqrt(len(loss)))
    assert abs(z) < 4


def test_higher_dimensions_use_qmc_with_an_error_estimate():
    land = ls.Quadratic([1.0, 2.0, 3.0])
    exact = gs.Gibbs(land, 0.5).log_partition
    custom = ls.Custom(loss=lambda x: 0.5 * (x[0] ** 2 + 2 * x[1] ** 2 + 3 * x[2] ** 2),
                       grad=lambda x: np.array([x[0], 2 * x[1], 3 * x[2]]), dim=3, box=[[-4, 4]] * 3)
    g = gs.Gibbs(custom, 0.5)
    assert g.log_partition_error > 0
    # log_partition_error is the standard error of the mean over 16 scrambled-Sobol replicas, so
    # (estimate - exact) / error follows Student's t with 15 dof: |t| < 5.6 has a false-alarm
    # rate of 1e-4. The box [-4, 4]^3 truncates the law: the mass outside, at most
    # sum_k 2 Phi(-4 sqrt(h_k / T)) = 1.3e-8 (h = 1), biases log Z by no more than that.
    from scipy import stats

    bound = stats.t.isf(5e-5, 15)
    truncation = sum(2 * stats.norm.sf(4 * np.sqrt(h / 0.5)) for h in (1.0, 2.0, 3.0))
    assert abs(g.log_partition - exact) < bound * g.log_partition_error + truncation
    # negative control: the exact log Z at a 5% different temperature (d log Z / d log T = 3/2,
    # so 0.075 away: 20 errors) must fail
    wrong = gs.Gibbs(land, 0.525).log_partition
    assert abs(g.log_partition - wrong) > bound * g.log_partition_error + truncation


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be finite"):
        gs.Gibbs(ls.Quadratic(1.0), temperature=-1.0)
    with pytest.raises(ValueError, match="exactly one"):
        gs.Gibbs(ls.Quadratic(1.0))


def test_two_dimensional_rvs_follow_the_bin_probabilities():
    """Chi-square of 2-D samples against the bin-integrated law (a cell-resampling bias showed
    up here as chi2/dof = 2.9 at 4e5 samples); negative control: the law at 1.03 T."""
    land = ls.MuellerBrown(scale=0.05)
    g = gs.Gibbs(land, temperature=0.5)
    edges = [np.linspace(*land.box[i], 31) for i in range(2)]
    x = g.rvs(200_000, random_state=11)
    counts = np.histogram2d(x[:, 0], x[:, 1], bins=edges)[0].ravel()

    def pvalue(law):
        p = law.bin_probabilities(edges).ravel()
        e = p / p.sum() * counts.sum()
        m = e > 10
        chi2 = np.sum((counts[m] - e[m]) ** 2 / e[m]) + (counts[~m].sum() - e[~m].sum()) ** 2 / e[~m].sum()
        return stats.chi2.sf(chi2, m.sum())

    assert pvalue(g) > 1e-4
    assert pvalue(gs.Gibbs(land, temperature=0.515)) < 1e-4


@pytest.mark.parametrize(
    "edges, kind, match",
    [
        ([0.0, -1.0, 1.0], ValueError, r"edges must be at least 2 finite, strictly increasing"),
        ([0.0, 0.0, 1.0], ValueError, r"strictly increasing"),
        ([0.0, np.nan, 1.0], ValueError, r"edges must be finite"),
        ([-np.inf, 0.0, 1.0], ValueError, r"edges must be finite"),
        ([0.5], ValueError, r"at least 2"),
        ("0 1", TypeError, r"edges must be a number or an array"),
        (np.zeros((2, 3)), ValueError, r"edges must have 1 dimension"),
    ],
)
def test_bin_edges_must_be_finite_and_increasing(edges, kind, match):
    for land in (ls.DoubleWell(), ls.Quadratic(1.0)):  # quadrature and closed form
        with pytest.raises(kind, match=match):
            gs.Gibbs(land, temperature=0.5).bin_probabilities(edges)
    with pytest.raises(kind, match=match):
        gs.Gibbs(ls.Quadratic(1.0), temperature=0.5).loss_bin_probabilities(edges)


def test_two_dimensional_edges_are_checked():
    g = gs.Gibbs(ls.MuellerBrown(scale=0.05), temperature=0.5)
    good = np.linspace(-1.5, 1.2, 5)
    with pytest.raises(ValueError, match=r"edges\[1\] must be at least 2 finite, strictly increasing"):
        g.bin_probabilities([good, good[::-1]])
    with pytest.raises(TypeError, match=r"edges must be a pair of edge arrays"):
        g.bin_probabilities(good)


@pytest.mark.parametrize(
    "land, kwargs, match",
    [
        (ls.Periodic(), dict(temperature=5e-324), r"temperature is outside the range"),
        (ls.Quadratic(1.0), dict(temperature=1e300), r"temperature is outside the range"),
        (ls.Quadratic(1.0), dict(inverse_temperature=1e-320), r"inverse_temperature must be"),
        (ls.Quadratic(1.0), dict(temperature=np.nan), r"temperature must be finite"),
        (ls.Quadratic(1.0), dict(temperature="hot"), r"temperature must be a real number"),
    ],
)
def test_temperatures_beyond_float64_are_named_errors(land, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gs.Gibbs(land, **kwargs)


def test_sampling_arguments_are_checked():
    g = gs.Gibbs(ls.Quadratic(1.0), temperature=0.5)
    with pytest.raises(ValueError, match=r"size must be an integer in \[0, inf\)"):
        g.rvs(-1)
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\]"):
        g.ppf([0.5, np.nan])
