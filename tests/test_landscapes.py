"""Landscapes: gradients and Laplacians against finite differences, losses against closed forms."""
import math

import numpy as np
import pytest
from numba import njit
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


# -- user landscapes: checked at a test point, identified by their code -------------------
def _quad_loss(x):
    return 0.5 * x[0] ** 2


def _quad_grad(x, out):
    out[0] = x[0]


def _grad_index_5(x, out):
    out[5] = x[0]


def _grad_leaves_out_unset(x, out):
    out[0] = x[0]


@njit
def _njit_loss_index_1000(x):
    return x[1000]


CUSTOM_REFUSED = [
    pytest.param(dict(loss=lambda x: x[1000]),
                 r"loss raised IndexError at the test point x = \[0.0\] \(the box centre\)", id="loss-index-1000"),
    pytest.param(dict(loss=_njit_loss_index_1000), r"loss raised IndexError", id="njit-loss-index-1000"),
    pytest.param(dict(grad=_grad_index_5), r"grad raised IndexError", id="grad-out-index-5"),
    pytest.param(dict(grad=lambda x: np.array([x[5]])), r"grad raised IndexError", id="grad-return-index-5"),
    pytest.param(dict(laplacian=lambda x: x[5]), r"laplacian raised IndexError", id="laplacian-index-5"),
    pytest.param(dict(loss=lambda x: x * x), r"loss\(x\) must return a real scalar, got an array of shape \(1,\)",
                 id="loss-array"),
    pytest.param(dict(loss=lambda x: "0"), r"loss\(x\) must return a real scalar", id="loss-string"),
    pytest.param(dict(laplacian=lambda x: np.ones(2)), r"laplacian\(x\) must return a real scalar",
                 id="laplacian-array"),
    pytest.param(dict(grad=lambda x: x[0]), r"grad\(x\) must return an array of shape \(1,\) \(dim,\), got shape \(\)",
                 id="grad-scalar"),
    pytest.param(dict(grad=lambda x: np.ones(3)), r"grad\(x\) must return an array of shape \(1,\)",
                 id="grad-wrong-shape"),
    pytest.param(dict(loss=lambda x: np.log(x[0] * 0.0)), r"loss\(x\) must be finite, got -inf", id="loss-inf"),
    pytest.param(dict(grad=lambda x: x / 0.0 * 0.0), r"grad\(x\) must be finite", id="grad-nan"),
    pytest.param(dict(laplacian=lambda x: math.inf), r"laplacian\(x\) must be finite", id="laplacian-inf"),
    pytest.param(dict(minimum=[2.0], loss=lambda x: 1.0 / (x[0] - 2.0)),
                 r"loss\(x\) must be finite, got inf at the test point x = \[2.0\] \(the minimum\)", id="at-minimum"),
]


@pytest.mark.parametrize("change, match", CUSTOM_REFUSED)
def test_custom_functions_are_tried_at_a_test_point(change, match):
    """Before compiling, each user function runs once in plain Python (where a wrong index raises
    instead of reading stray memory); what raises or returns the wrong thing is named."""
    kw = {**dict(loss=_quad_loss, grad=_quad_grad, dim=1, box=[[-3.0, 3.0]], laplacian=lambda x: 1.0), **change}
    with pytest.raises(ValueError, match=match):
        ls.Custom(**kw)


def test_custom_grad_out_must_be_written_everywhere():
    with pytest.raises(ValueError, match=r"grad\(x, out\) must write a finite value into every entry of out"):
        ls.Custom(loss=lambda x: 0.5 * (x[0] ** 2 + x[1] ** 2), grad=_grad_leaves_out_unset, dim=2, box=[[-1, 1]])


@pytest.mark.parametrize(
    "change, kind, match",
    [
        (dict(loss=np.sin), TypeError, r"loss must be a Python function or a numba.njit function"),
        (dict(loss=None), TypeError, r"loss must be a Python function"),
        (dict(grad=lambda x, out, extra: None), TypeError, r"grad must be callable as grad\(x\) or grad\(x, out\)"),
        (dict(dim=0), ValueError, r"dim must be an integer in \[1, 8\]"),
        (dict(dim=True), TypeError, r"dim must be an integer in \[1, 8\]"),
        (dict(box=None), ValueError, r"box is required"),
        (dict(box="wide"), TypeError, r"box must be finite \(lo, hi\) pairs"),
        (dict(minimum=[0.0, 1.0]), ValueError, r"minimum must have shape \(1,\)"),
        (dict(name=3), TypeError, r"name must be a str"),
        (dict(boundscheck="yes"), TypeError, r"boundscheck must be a bool"),
    ],
)
def test_custom_bad_arguments_are_named(change, kind, match):
    with pytest.raises(kind, match=match):
        ls.Custom(**{**dict(loss=_quad_loss, grad=_quad_grad, dim=1, box=[[-3.0, 3.0]]), **change})


def _index_beyond_three(x):
    # fine at the test point (the box centre, 0); reads x[5] only beyond 3
    return 0.5 * x[0] ** 2 if x[0] < 3.0 else x[5]


def test_custom_boundscheck_reaches_the_compiled_functions():
    land = ls.Custom(loss=_index_beyond_three, grad=_quad_grad, dim=1, box=[[-5.0, 5.0]], laplacian=lambda x: 1.0)
    assert land.boundscheck is True and land.describe()["boundscheck"] is True
    assert land.loss(1.0) == 0.5
    with pytest.raises(IndexError):
        land.loss(4.0)  # compiled with bounds checks: an error, not a stray read
    fast = ls.Custom(loss=_quad_loss, grad=_quad_grad, dim=1, box=[[-5.0, 5.0]], boundscheck=False)
    assert fast.boundscheck is False and fast.loss(2.0) == 2.0
    checked = ls.Custom(loss=_quad_loss, grad=_quad_grad, dim=1, box=[[-5.0, 5.0]])
    assert fast.structure_key() != checked.structure_key()


def _closure_landscape(k, power=2):
    scale = np.array([k])

    def loss(x):
        return scale[0] * x[0] ** power

    return ls.Custom(loss=loss, grad=lambda x: power * scale[0] * x ** (power - 1), dim=1, box=[[-2.0, 2.0]])


def _from_source(src, **globs):
    ns = {"np": np, **globs}
    exec(src, ns)
    return ns["loss"]


def test_custom_identity_is_its_code_not_its_name_or_id():
    same = _closure_landscape(2.0), _closure_landscape(2.0)
    assert same[0].describe() == same[1].describe()
    assert same[0].structure_key() == same[1].structure_key()
    assert same[0].describe()["loss_fn_hash"] != same[0].describe()["grad_fn_hash"]
    # a closure constant, a closed-over array, the body: each changes the identity
    assert _closure_landscape(3.0).describe() != same[0].describe()
    assert _closure_landscape(2.0, power=4).describe() != same[0].describe()
    assert _closure_landscape(3.0).structure_key() != same[0].structure_key()
    a = ls.Custom(loss=lambda x: x[0] ** 2, grad=lambda x: 2 * x, dim=1, box=[[-1, 1]])
    b = ls.Custom(loss=lambda x: x[0] ** 4, grad=lambda x: 2 * x, dim=1, box=[[-1, 1]])
    assert a.describe()["loss_fn"] == b.describe()["loss_fn"]  # the same name, "...<lambda>"
    assert a.describe()["loss_fn_hash"] != b.describe()["loss_fn_hash"]
    assert a.describe()["grad_fn_hash"] == b.describe()["grad_fn_hash"]


def test_function_hash_follows_globals_defaults_and_helpers():
    src = "def loss(x, k=K):\n    return k * helper(x[0])\n"
    sq = njit(lambda v: v * v)
    base = ls.function_hash(_from_source(src, K=1.0, helper=sq))
    assert ls.function_hash(_from_source(src, K=1.0, helper=njit(lambda v: v * v))) == base  # re-created
    assert ls.function_hash(_from_source(src, K=2.0, helper=sq)) != base  # a default from a global
    assert ls.function_hash(_from_source(src, K=1.0, helper=njit(lambda v: v * v * v))) != base  # a helper's body
    assert ls.function_hash(_from_source(src, K=1.0, helper=njit(fastmath=True)(lambda v: v * v))) != base
    # a global array by value; a renamed function with the same code hashes the same
    arr = "def loss(x):\n    return W[0] * x[0]\n"
    one = ls.function_hash(_from_source(arr, W=np.array([1.0])))
    assert ls.function_hash(_from_source(arr, W=np.array([1.0]))) == one
    assert ls.function_hash(_from_source(arr, W=np.array([2.0]))) != one
    assert ls.function_hash(_from_source(arr.replace("def loss", "def f") + "loss = f\n", W=np.array([1.0]))) == one


def test_function_hash_cuts_cycles():
    src = "def loss(x, n=3):\n    return 0.0 if n == 0 else loss(x, n - 1) + other(x)\n" \
          "def other(x):\n    return loss(x, 0)\n"
    f = _from_source(src)
    assert ls.function_hash(f) == ls.function_hash(_from_source(src))


def test_custom_kernels_follow_the_code():
    """Two user landscapes that differ only in a closure constant run different kernels (the
    kernel cache is keyed by the code hash, no longer by id()); the same code reuses one."""
    runs = {}
    for k in (0.5, 2.0):
        land = _closure_landscape(k)  # L = k x^2: curvature 2 k
        runs[k] = gs.simulate(land, gs.optimizers.SGD(0.1), n_chains=4000, n_steps=300, progress=False, backend="cpu")
        truth = gs.theory.sgd_stationary_variance_1d(0.1, 2 * k, 1.0, 1)
        assert abs(runs[k].phi_var().z(truth)[0]) < 4
    again = gs.simulate(_closure_landscape(2.0), gs.optimizers.SGD(0.1), n_chains=4000, n_steps=300, progress=False,
                        backend="cpu")
    assert np.array_equal(again.hist[0], runs[2.0].hist[0])
