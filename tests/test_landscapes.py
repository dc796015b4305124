"""Landscapes: gradients and Laplacians against finite differences, losses against closed forms."""
import math

import numpy as np
import pytest
from scipy import integrate

import gibbs_sgd as gs
from gibbs_sgd import landscapes as ls

LANDSCAPES = [
    pytest.param(ls.Quadratic(2.0, center=0.5), id="quadratic-1d"),
    pytest.param(ls.Quadratic([1.0, 3.0, 0.5]), id="quadratic-diag"),
    pytest.param(ls.Quadratic([[2.0, 0.6], [0.6, 1.0]], center=[1.0, -1.0], offset=0.3), id="quadratic-spd"),
    pytest.param(ls.DoubleWell(barrier=1.5, width=0.8, tilt=0.3), id="double-well"),
    pytest.param(ls.Periodic(amplitude=0.7, period=2.0, dim=2), id="periodic"),
    pytest.param(ls.MuellerBrown(scale=0.1), id="mueller-brown"),
    pytest.param(ls.GaussianMixture([1.0, 2.0], [[0.0, 0.0], [2.0, 1.0]],
                                    [[[0.5, 0.1], [0.1, 0.4]], [[1.0, 0.3], [0.3, 0.8]]]), id="mixture"),
    pytest.param(ls.Rosenbrock(dim=3), id="rosenbrock"),
    pytest.param(ls.Custom(loss=lambda x: np.sum(x**4) / 4 + x[0] * x[1], grad=lambda x: x**3 + x[::-1],
                           dim=2, box=[[-2, 2], [-2, 2]]), id="custom-fd-laplacian"),
]


def _points(land, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(land.box[:, 0], land.box[:, 1], size=(n, land.dim))


@pytest.mark.parametrize("land", LANDSCAPES)
def test_gradient_matches_central_differences(land):
    x = _points(land)
    d = land.dim
    h = 1e-6
    fd = np.stack([(land.loss(x + h * e) - land.loss(x - h * e)) / (2 * h) for e in np.eye(d)], axis=-1)
    g = land.grad(x).reshape(x.shape)
    scale = 1.0 + np.abs(g)
    # central differences: truncation O(h^2 L''') and rounding O(eps |L| / h) ~ 1e-9 relative here
    assert np.max(np.abs(g - fd) / scale) < 1e-6


@pytest.mark.parametrize("land", LANDSCAPES)
def test_laplacian_matches_finite_differences_of_the_gradient(land):
    x = _points(land, seed=1)
    h = 1e-5
    lap = sum((land.grad(x + h * e).reshape(x.shape)[:, k] - land.grad(x - h * e).reshape(x.shape)[:, k]) / (2 * h)
              for k, e in enumerate(np.eye(land.dim)))
    assert np.max(np.abs(land.laplacian(x) - lap) / (1.0 + np.abs(lap))) < 1e-5


def test_quadratic_closed_form():
    h = np.array([[2.0, 0.6], [0.6, 1.0]])
    c = np.array([1.0, -1.0])
    land = ls.Quadratic(h, center=c, offset=0.3)
    x = _points(land)
    r = x - c
    assert np.allclose(land.loss(x), 0.5 * np.einsum("ni,ij,nj->n", r, h, r) + 0.3, rtol=1e-14)
    assert np.allclose(land.grad(x), r @ h.T, rtol=1e-14)
    assert np.allclose(land.laplacian(x), np.trace(h))
    assert np.array_equal(land.minimum, c)


def test_double_well_minimum_and_barrier():
    land = ls.DoubleWell(barrier=2.0, width=1.5, tilt=0.0)
    assert land.loss(0.0) == 2.0 and land.loss(1.5) == 0.0 and land.loss(-1.5) == 0.0
    tilted = ls.DoubleWell(barrier=1.0, tilt=0.2)
    xm = tilted.minimum[0]
    assert xm < 0 and abs(tilted.grad(xm)) < 1e-12
    grid = np.linspace(-2, 2, 40001)
    assert tilted.loss(xm) <= tilted.loss(grid).min() + 1e-12


def test_periodic_partition_function_is_a_bessel_function():
    from scipy.special import i0

    land = ls.Periodic(amplitude=1.3, period=3.0)
    temperature = 0.7
    z, _ = integrate.quad(lambda v: math.exp(-land.loss(v) / temperature), -1.5, 1.5, epsrel=1e-12)
    assert z == pytest.approx(3.0 * math.exp(-1.3 / temperature) * i0(1.3 / temperature), rel=1e-10)
    assert land.loss(3.0) == pytest.approx(0.0, abs=1e-14)


def test_mueller_brown_deepest_minimum():
    land = ls.MuellerBrown()
    m = land.minimum
    assert land.loss(m) == pytest.approx(-146.69948, abs=1e-4)
    assert np.max(np.abs(land.grad(m))) < 1e-4


def test_gaussian_mixture_is_normalised_at_unit_temperature():
    land = ls.GaussianMixture([1.0, 3.0], [[-1.0], [2.0]], [0.3, 0.8])
    z, _ = integrate.quad(lambda v: math.exp(-land.loss(v)), -20, 20, points=[-1, 2], epsrel=1e-12)
    assert z == pytest.approx(1.0, rel=1e-10)
    far = land.loss(np.array([1e3]))
    assert np.isfinite(far)  # log-sum-exp keeps the far tails finite


def test_rosenbrock_minimum():
    land = ls.Rosenbrock(dim=4)
    assert land.loss(np.ones(4)) == 0.0
    assert np.array_equal(land.grad(np.ones(4)), np.zeros(4))


@pytest.mark.parametrize("land", LANDSCAPES)
def test_every_landscape_has_its_geometry(land):
    assert land.box.shape == (land.dim, 2)
    assert np.all(land.box[:, 1] > land.box[:, 0])
    assert land.divergence_radius > 0
    assert not land.box.flags.writeable
    desc = land.describe()
    assert desc["type"] == type(land).__name__


def test_custom_landscape_runs_in_the_kernel():
    def grad(x, out):
        out[0] = x[0]

    land = ls.Custom(loss=lambda x: 0.5 * x[0] ** 2, grad=grad, dim=1, box=[[-3, 3]], laplacian=lambda x: 1.0)
    run = gs.simulate(land, gs.optimizers.SGD(0.1), n_chains=2000, n_steps=200, progress=False)
    truth = gs.theory.sgd_stationary_variance_1d(0.1, 1.0, 1.0, 1)
    assert abs(run.phi_var().z(truth)[0]) < 4
    assert run.estimate("laplacian").value == pytest.approx(1.0)


def test_landscape_equality_and_hash_by_value():
    a = ls.Quadratic([1.0, 2.0])
    b = ls.Quadratic(np.array([1.0, 2.0]))
    assert a == b and hash(a) == hash(b)
    assert a != ls.Quadratic([1.0, 2.5])
