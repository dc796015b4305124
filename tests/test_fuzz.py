"""Property-based fuzzing of the public constructors and of `simulate`'s arguments.

The rule (STYLE.md: errors that name the argument and its range): whatever a user passes --
ints, floats including nan, inf, negative and huge ones, strings, None, lists, arrays of the
wrong shape -- the only exceptions are ValueError or TypeError whose message names the
argument; nothing else escapes (no IndexError, OverflowError, ZeroDivisionError, no crash), and
an object that does get built holds finite numbers.

Budget: about 2,000 constructor examples and 300 simulations of at most 64 chains x 50 steps
(about a millisecond each once compiled), well under 30 s.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hypothesis import HealthCheck, given, settings  # a test dependency (the "test" extra)
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gibbs_sgd as gs
from gibbs_sgd import gibbs as G
from gibbs_sgd import landscapes as L
from gibbs_sgd import noise as N
from gibbs_sgd import optimizers as O
from gibbs_sgd import schedules as S

# Deterministic by default (the same examples on every run, so CI never flakes); set
# GIBBS_SGD_FUZZ=N to search N times deeper with fresh random examples.
_DEPTH = int(os.environ.get("GIBBS_SGD_FUZZ", "0"))
FUZZ = settings(max_examples=40 * max(1, _DEPTH), deadline=None, derandomize=not _DEPTH, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- arbitrary values ----------------------------------------------------------------------
_FLOATS = st.floats(allow_nan=True, allow_infinity=True)  # includes -0.0, 5e-324, 1.8e308
_PLAUSIBLE = st.one_of(st.floats(-3.0, 3.0), st.integers(-3, 12), st.floats(1e-6, 1.0))
_SPECIAL = st.sampled_from([
    0, -1, 1, 2, 0.5, -0.0, 1e-320, 5e-324, 1e-300, 1e300, 1e308, -1e308, 2**53 + 1, 2**64, 10**400, -(10**400),
    math.nan, math.inf, -math.inf, "1.0", "no", "", b"1", (), [], {}, None, True, False, np.float64(0.5),
    np.int64(3), np.array(0.5), np.array([0.5]), np.bool_(True), 1 + 2j, object(), [1.0, "a"], [[1.0], [2.0, 3.0]],
])
_ARRAYS = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
                     elements=st.one_of(_FLOATS, st.floats(-3.0, 3.0)))
_LISTS = st.one_of(st.lists(st.one_of(_FLOATS, st.integers(), st.floats(-3.0, 3.0)), max_size=4),
                   st.lists(st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2), max_size=3))
ANY = st.one_of(_SPECIAL, _PLAUSIBLE, st.integers(), _FLOATS, st.text(max_size=4), _LISTS, _ARRAYS,
                st.tuples(_FLOATS, _FLOATS), st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)))


def _custom_loss(x):
    return 0.5 * np.sum(x * x)


def _custom_grad(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i]


# (constructor, valid keyword arguments: the baseline each fuzzed argument replaces)
CONSTRUCTORS = [
    pytest.param(O.SGD, dict(lr=0.1), id="SGD"),
    pytest.param(O.SGD.scaled, dict(eta0=0.01, batch_size=8), id="SGD.scaled"),
    pytest.param(O.HeavyBall, dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False), id="HeavyBall"),
    pytest.param(O.HeavyBall.scaled, dict(eta0=0.01, batch_size=4, momentum=0.9), id="HeavyBall.scaled"),
    pytest.param(O.EMAMomentum, dict(lr=0.1, beta=0.9), id="EMAMomentum"),
    pytest.param(O.EMAMomentum.from_horizon, dict(lr=0.1, horizon=10.0), id="EMAMomentum.from_horizon"),
    pytest.param(O.RMSprop, dict(lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False), id="RMSprop"),
    pytest.param(O.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, bias_correction="torch"),
                 id="Adam"),
    pytest.param(O.Adam.decoupled, dict(eta0=1e-3, batch_size=4, horizon_g=10.0, horizon_s=1000.0, eps0=1e-8,
                                        bias_correction="running"), id="Adam.decoupled"),
    pytest.param(O.Adam(lr=0.01).sqrt_scaled, dict(reference_batch_size=1, batch_size=4), id="Adam.sqrt_scaled"),
    pytest.param(N.Gaussian, dict(sigma=1.0, covariance=None), id="Gaussian"),
    pytest.param(N.MeanEstimation, dict(data=[[0.0], [1.0], [3.0]], replace=True), id="MeanEstimation"),
    pytest.param(N.MeanEstimation.streamed, dict(mean=[0.0, 1.0], sigma=1.0), id="MeanEstimation.streamed"),
    pytest.param(N.LinearRegression, dict(inputs=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], targets=[1.0, 2.0, 3.0],
                                          replace=True), id="LinearRegression"),
    pytest.param(N.LinearRegression.streamed, dict(weights=[1.0, 2.0], input_std=1.0, noise_std=1.0),
                 id="LinearRegression.streamed"),
    pytest.param(L.Quadratic, dict(curvature=1.0, center=0.0, offset=0.0, box=None), id="Quadratic"),
    pytest.param(L.DoubleWell, dict(barrier=1.0, width=1.0, tilt=0.0, box=None), id="DoubleWell"),
    pytest.param(L.Periodic, dict(amplitude=1.0, period=2 * math.pi, dim=1), id="Periodic"),
    pytest.param(L.MuellerBrown, dict(scale=1.0, box=None), id="MuellerBrown"),
    pytest.param(L.GaussianMixture, dict(weights=[1.0, 2.0], means=[[0.0], [2.0]], covariances=0.5, box=None),
                 id="GaussianMixture"),
    pytest.param(L.Rosenbrock, dict(a=1.0, b=100.0, dim=2, box=None), id="Rosenbrock"),
    pytest.param(L.Custom, dict(loss=_custom_loss, grad=_custom_grad, dim=1, box=[[-2.0, 2.0]], laplacian=None,
                                minimum=None, name="quadratic", boundscheck=True), id="Custom"),
    pytest.param(S.Constant, dict(), id="Constant"),
    pytest.param(S.StepHalving, dict(every=2, factor=0.5), id="StepHalving"),
    pytest.param(S.RobbinsMonro, dict(t0=10.0, gamma=1.0, strict=True), id="RobbinsMonro"),
    pytest.param(S.Cosine, dict(total_steps=100, min_factor=0.0), id="Cosine"),
    pytest.param(G.Gibbs, dict(landscape=L.Quadratic(1.0), temperature=0.5), id="Gibbs-quadratic"),
    pytest.param(G.Gibbs, dict(landscape=L.DoubleWell(), temperature=0.5), id="Gibbs-double-well"),
    pytest.param(G.Gibbs, dict(landscape=L.Periodic(), temperature=0.5), id="Gibbs-periodic"),
]


def _names_one_of(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def _assert_finite_numbers(obj, where="object", seen=None):
    """Every number a built component holds (fields, derived arrays, nested components) is finite."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (bool, np.bool_, str, type(None))) or callable(obj) and not dataclasses.is_dataclass(obj):
        return
    if isinstance(obj, (int, float, np.number)):
        assert math.isfinite(obj), f"{where} = {obj!r} is not finite"
    elif isinstance(obj, np.ndarray):
        assert obj.dtype.kind in "biuf" and np.all(np.isfinite(obj)), f"{where} = {obj!r} is not finite"
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            _assert_finite_numbers(v, f"{where}[{i}]", seen)
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if not f.name.startswith("_"):
                _assert_finite_numbers(getattr(obj, f.name), f"{where}.{f.name}", seen)


def _assert_built_object_is_finite(obj):
    _assert_finite_numbers(obj, type(obj).__name__)
    if isinstance(obj, L.Landscape):
        assert 1 <= obj.dim <= 8
        assert np.all(np.isfinite(obj.kernel_params())) and np.all(np.isfinite(obj.box))
        assert obj.minimum is None or np.all(np.isfinite(obj.minimum))
        assert obj.divergence_radius > 0
    elif isinstance(obj, O.Optimizer):
        assert np.all(np.isfinite(obj.kernel_params())) and np.all(np.isfinite(obj.step_coefficients(3)))
    elif isinstance(obj, N.Noise):
        dim = obj.landscape.dim if hasattr(obj, "landscape") else (1 if obj.covariance is None else
                                                                     obj.covariance.shape[0])
        assert np.all(np.isfinite(obj.kernel_params(dim, 3)))
    elif isinstance(obj, S.Schedule):
        assert np.all(np.isfinite(obj.factors(7)))
    elif isinstance(obj, G.Gibbs):
        for v in (obj.temperature, obj.log_partition, obj.log_partition_error, obj.mean_loss(), obj.loss_variance()):
            assert math.isfinite(v)


def _build(ctor, kwargs, fuzzed):
    """Build; any exception must be a ValueError/TypeError naming one of the fuzzed arguments."""
    try:
        obj = ctor(**kwargs)
    except (ValueError, TypeError) as e:
        assert _names_one_of(str(e), fuzzed), f"{type(e).__name__} does not name any of {sorted(fuzzed)}: {e}"
        return None
    _assert_built_object_is_finite(obj)
    return obj


@pytest.mark.parametrize("ctor, base", CONSTRUCTORS)
@FUZZ
@given(data=st.data())
def test_one_bad_argument_is_named(ctor, base, data):
    if not base:
        assert _build(ctor, {}, ()) is not None
        return
    name = data.draw(st.sampled_from(sorted(base)), label="argument")
    value = data.draw(ANY, label="value")
    _build(ctor, {**base, name: value}, {name})


@pytest.mark.parametrize("ctor, base", CONSTRUCTORS)
@settings(FUZZ, max_examples=25 * max(1, _DEPTH))
@given(data=st.data())
def test_many_bad_arguments_name_one_of_them(ctor, base, data):
    if not base:
        return
    names = data.draw(st.lists(st.sampled_from(sorted(base)), min_size=1, max_size=len(base), unique=True),
                      label="arguments")
    values = {n: data.draw(ANY, label=n) for n in names}
    _build(ctor, {**base, **values}, set(names))


# The cases that gave wrong numbers, crashes or unnamed errors before the shared validators.
REGRESSIONS = [
    (lambda: O.HeavyBall(lr=0.1, nesterov="no"), TypeError, r"nesterov must be a bool"),
    (lambda: O.HeavyBall(lr=0.1, nesterov=1), TypeError, r"nesterov must be a bool"),
    (lambda: O.Adam(betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\) with each in \[0, 1\)"),
    (lambda: O.Adam(betas="ab"), TypeError, r"betas must be a pair"),
    (lambda: O.Adam(betas={0.9, 0.99}), TypeError, r"betas must be a pair"),
    (lambda: O.Adam(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0.0, 1.0\)"),
    (lambda: O.Adam(amsgrad="yes"), TypeError, r"amsgrad must be a bool"),
    (lambda: O.Adam(bias_correction=[1]), TypeError, r"bias_correction must be one of"),
    (lambda: O.RMSprop(centered=1), TypeError, r"centered must be a bool"),
    (lambda: O.SGD(lr=10**400), ValueError, r"lr must be finite"),
    (lambda: O.SGD.scaled(eta0=1e308, batch_size=8), ValueError, r"computed from eta0 and batch_size"),
    (lambda: O.SGD.scaled(eta0=0.1, batch_size=2.0), TypeError, r"batch_size must be an integer"),
    (lambda: O.EMAMomentum.from_horizon(lr=0.1, horizon=1e17), ValueError, r"computed from horizon"),
    (lambda: O.Adam.decoupled(1e-3, 4, 1e20, 1e3, 1e-8), ValueError, r"computed from batch_size and horizon_g"),
    (lambda: N.Gaussian(covariance=np.ones((2, 2, 2))), ValueError, r"covariance must have"),
    (lambda: N.Gaussian(covariance="abc"), TypeError, r"covariance must be a number or an array"),
    (lambda: N.Gaussian(covariance=[[np.nan]]), ValueError, r"covariance must be finite"),
    (lambda: N.MeanEstimation(data=[[1.0], [2.0]], replace="no"), TypeError, r"replace must be a bool"),
    (lambda: N.MeanEstimation(data="abc"), TypeError, r"data must be a number or an array"),
    (lambda: N.MeanEstimation(data=[[1.0], [2.0]], mean=[0.0]), ValueError, r"either data or mean"),
    (lambda: N.MeanEstimation.streamed(mean=[], sigma=1.0), ValueError, r"mean must have 1..8 entries"),
    (lambda: N.LinearRegression(inputs=[[1.0], [np.nan]], targets=[1.0, 2.0]), ValueError, r"inputs must be finite"),
    (lambda: N.LinearRegression.streamed([1.0], input_std=1e-200), ValueError, r"input_std"),
    (lambda: L.Quadratic("a"), TypeError, r"curvature must be a number or an array"),
    (lambda: L.Quadratic(1.0, center=[1.0, 2.0, 3.0]), ValueError, r"center must be a scalar or have shape \(1,\)"),
    (lambda: L.Quadratic(1.0, offset=np.nan), ValueError, r"offset must be finite"),
    (lambda: L.Quadratic(5e-324), ValueError, r"curvature must be positive definite"),
    (lambda: L.Quadratic(1.0, box=[[1.0, 2.0, 3.0]]), ValueError, r"box must be finite \(lo, hi\) pairs"),
    (lambda: L.Quadratic(1.0, box=[[-1e308, 1.7e308]]), ValueError, r"box must be finite"),
    (lambda: L.DoubleWell(tilt=None), TypeError, r"tilt must be a real number"),
    (lambda: L.DoubleWell(width=5e-324), ValueError, r"width must be in \(0, inf\) with a finite reciprocal"),
    (lambda: L.Periodic(dim=True), TypeError, r"dim must be an integer in \[1, 8\]"),
    (lambda: L.Periodic(period=5e-324), ValueError, r"period must be"),
    (lambda: L.Rosenbrock(a=None), TypeError, r"a must be a real number"),
    (lambda: L.Rosenbrock(dim=2.0), TypeError, r"dim must be an integer in \[2, 8\]"),
    (lambda: L.GaussianMixture(None, None), TypeError, r"weights must be a number or an array"),
    (lambda: L.GaussianMixture([1.0], np.zeros((1, 1, 1))), ValueError, r"means must have 1 or 2 dimension"),
    (lambda: L.GaussianMixture([], []), ValueError, r"means must hold at least one component"),
    (lambda: L.GaussianMixture([1.0], [[0.0]], [[[1e-320]]]), ValueError, r"covariances\[0\] must be"),
    (lambda: S.StepHalving(every=2.0), TypeError, r"every must be an integer"),
    (lambda: S.RobbinsMonro(t0=1.0, strict="no"), TypeError, r"strict must be a bool"),
    (lambda: S.Cosine(total_steps=True), TypeError, r"total_steps must be an integer"),
    (lambda: G.Gibbs(L.Periodic(), 5e-324), ValueError, r"temperature is outside the range"),
    (lambda: G.Gibbs(L.Quadratic(1.0), inverse_temperature=1e-320), ValueError, r"inverse_temperature must be"),
]


@pytest.mark.parametrize("build, kind, match", REGRESSIONS)
def test_regressions_are_named_errors(build, kind, match):
    with pytest.raises(kind, match=match):
        build()


def test_huge_weights_are_normalised_without_overflow():
    land = L.GaussianMixture([1e308, 1e308], [[0.0], [2.0]], 0.5)
    assert np.allclose(land.weights, 0.5) and np.all(np.isfinite(land.kernel_params()))


# -- simulate --------------------------------------------------------------------------------
# One fixed structure (so one compiled kernel per dtype); every other argument drawn from good
# values, bad values, and values whose validity depends on the others. Each pool entry is
# (value, verdict): True valid, False invalid (must raise naming the argument), None either
# (a named error or a clean run), or a function of the other arguments giving the verdict.
LAND, OPT, NOISE = L.Quadratic(1.0), O.SGD(lr=0.1), N.Gaussian(sigma=1.0)
_INT_BAD = [(0, False), (-1, False), (2.5, False), ("8", False), (None, False), (True, False), (math.nan, False),
            ([8], False)]
POOLS = {
    "n_chains": [(1, True), (7, True), (64, True), (np.int64(16), True)] + _INT_BAD,
    "n_steps": [(1, True), (2, True), (50, True), (0, False), (-5, False), (3.0, False), ("10", False),
                (None, False), (True, False), (2**32, False)],
    "burn_in": [(None, True), (0, lambda kw: kw["n_steps"] > 0), (1, lambda kw: kw["n_steps"] > 1),
                (49, lambda kw: kw["n_steps"] > 49), (lambda kw: kw["n_steps"], False), (-1, False), (1.5, False),
                ("1", False), (True, False)],
    "thin": [(1, True), (2, True), (100, True), (0, False), (-1, False), (1.5, False), ("2", False), (None, False),
             (True, False)],
    "bins": [(2, True), (10, True), (np.linspace(-1.0, 1.0, 11), True), ([np.linspace(-1.0, 1.0, 11)], True),
             (1, False), (0, False), (-3, False), (2.5, False), (None, False), (True, False), ([], False),
             ([0.0, 1.0], False), (np.array([[1.0]]), False), ([[np.nan, 0.0, 1.0]], False), (100_001, False),
             ([0.0, 0.5, 2.0], False), (np.linspace(10.0, 11.0, 5), None)],
    "seed": [(0, True), (1, True), (2**64 - 1, True), (np.uint64(5), True), (-1, False), (2**64, False),
             (1.5, False), ("0", False), (None, False), (True, False)],
    "batch_size": [(1, True), (4, True), (2**40, True), (2**63, None), (10**30, None), (0, False), (-2, False),
                   (1.5, False), ("2", False), (None, False), (True, False)],
    "dtype": [(None, True), ("float64", True), ("float32", True), (np.float32, True), (np.dtype("float64"), True),
              ("float16", False), (np.int32, False), ("abc", False), (5, False), (object, False)],
    "init": [(None, True), (0.5, True), ([0.5], True), (lambda kw: np.full((kw["n_chains"], 1), 0.25), True),
             (1e300, True), (np.zeros(3), False), ([np.nan], False), ([np.inf], False), ("a", False),
             ([[1.0, 2.0]], False), (object(), False)],
    "checkpoint_every": [(60.0, True), (1e-9, True), (0.0, None), (math.inf, None), (-1, False), (-1e-3, False),
                         (math.nan, False), (-math.inf, False), ("5", False), (None, False), (True, False)],
    "record_trajectories": [(0, True), (1, True), (lambda kw: kw["n_chains"], True),
                            (lambda kw: kw["n_chains"] + 1, False), (-1, False), (1.5, False), ("2", False),
                            (None, False), (True, False)],
    "trace_points": [(1, True), (10, True), (1000, True), (0, False), (-1, False), (2.5, False), ("5", False),
                     (None, False), (True, False)],
    "block": [(None, True), (1, True), (lambda kw: kw["n_chains"], True), (lambda kw: kw["n_chains"] + 1, False),
              (0, False), (-1, False), (2.5, False), ("4", False), (True, False)],
    "max_chunk": [(None, True), (1, True), (16, True), (10**6, True), (0, False), (-1, False), (2.5, False),
                  ("16", False), (True, False)],
    "keep_final": [(False, True), (True, True), (np.bool_(True), True), ("yes", False), (1, False), (None, False)],
    "loss_range": [(None, True), ((0.0, 10.0), True), ([-1, 3], True), ((1.0, 0.0), False), ((0.0, math.nan), False),
                   ((0.0, math.inf), False), ("ab", False), (5, False), ((0.0, 1.0, 2.0), False)],
    "trajectory_every": [(None, True), (1, True), (3, True), (0, False), (-1, False), (1.5, False), ("2", False),
                         (True, False)],
}
_ORDER = ["n_chains", "n_steps", "burn_in", "thin", "bins", "seed", "batch_size", "dtype", "init",
          "checkpoint_every", "record_trajectories", "trace_points", "block", "max_chunk", "keep_final", "loss_range",
          "trajectory_every"]
_DEFAULTS = {"n_chains": 16, "n_steps": 20}


@st.composite
def simulate_arguments(draw):
    """``(kwargs, invalid names, names whose validity may go either way, use a checkpoint file)``."""
    chosen = draw(st.lists(st.sampled_from(_ORDER), min_size=1, max_size=4, unique=True), label="arguments")
    kwargs, bad, either = {}, set(), set()
    for name in _ORDER:  # n_chains and n_steps first: the relative verdicts read them
        if name not in chosen:
            continue
        value, verdict = draw(st.sampled_from(POOLS[name]), label=name)
        ctx = {**_DEFAULTS, **{k: v for k, v in kwargs.items() if k in _DEFAULTS and k not in bad}}
        value = value(ctx) if callable(value) and not isinstance(value, type) else value
        verdict = verdict(ctx) if callable(verdict) else verdict
        kwargs[name] = value
        if verdict is False:
            bad.add(name)
        elif verdict is None:
            either.add(name)
    for name, value in _DEFAULTS.items():
        kwargs.setdefault(name, value)
    return kwargs, bad, either, draw(st.booleans(), label="checkpoint file")


def _simulate_case(kwargs, bad, either, use_checkpoint):
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "run.ckpt.npz" if use_checkpoint else None
        try:
            run = gs.simulate(LAND, OPT, noise=NOISE, backend="cpu", progress=False, checkpoint=ckpt, **kwargs)
        except (ValueError, TypeError) as e:
            named = bad | either
            assert named, f"valid arguments {kwargs} were refused: {type(e).__name__}: {e}"
            assert _names_one_of(str(e), named), f"{type(e).__name__} does not name any of {sorted(named)}: {e}"
            return None
        assert not bad, f"invalid {sorted(bad)} accepted: {({k: kwargs[k] for k in bad})}"
    assert not np.any(np.isnan(run.moments)), "NaN in the moment sums"
    assert run.n_chains == kwargs["n_chains"]
    return run


# Known problems, pinned so they are tested on every run whatever Hypothesis draws.
SIMULATE_EXAMPLES = [
    ({"checkpoint_every": -1, "n_chains": 16, "n_steps": 20}, {"checkpoint_every"}, set(), True),
    ({"checkpoint_every": -1, "n_chains": 16, "n_steps": 20}, {"checkpoint_every"}, set(), False),
    ({"checkpoint_every": math.nan, "n_chains": 16, "n_steps": 20}, {"checkpoint_every"}, set(), True),
    ({"checkpoint_every": "5", "n_chains": 16, "n_steps": 20}, {"checkpoint_every"}, set(), True),
    ({"batch_size": 10**30, "n_chains": 16, "n_steps": 20}, set(), {"batch_size"}, False),
    ({"batch_size": 2**63, "n_chains": 16, "n_steps": 20}, set(), {"batch_size"}, False),
    ({"init": "a", "n_chains": 16, "n_steps": 20}, {"init"}, set(), False),
    ({"init": object(), "n_chains": 16, "n_steps": 20}, {"init"}, set(), False),
    ({"init": 1e300, "n_chains": 16, "n_steps": 20}, set(), set(), False),
]


@pytest.mark.parametrize("kwargs, bad, either, use_checkpoint", SIMULATE_EXAMPLES,
                         ids=["checkpoint_every=-1", "checkpoint_every=-1-no-file", "checkpoint_every=nan",
                              "checkpoint_every='5'", "batch_size=1e30", "batch_size=2**63", "init='a'",
                              "init=object()", "init=1e300"])
def test_simulate_pinned_arguments(kwargs, bad, either, use_checkpoint):
    _simulate_case(kwargs, bad, either, use_checkpoint)


@settings(FUZZ, max_examples=300 * max(1, _DEPTH))
@given(case=simulate_arguments())
def test_simulate_arguments_are_checked(case):
    kwargs, bad, either, use_checkpoint = case
    run = _simulate_case(kwargs, bad, either, use_checkpoint)
    if run is not None and run.n_samples > 0:
        # fit_temperature on whatever a valid run produced: a temperature, or a named ValueError
        try:
            fit = gs.fit_temperature(run)
        except ValueError:
            return
        assert math.isfinite(fit.temperature) and fit.temperature > 0
