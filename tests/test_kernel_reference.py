"""The fused Numba kernel against an independent NumPy reference of the chain dynamics.

Each row of :data:`CASES` runs :func:`gibbs_sgd.simulate` with recorded trajectories
(``trajectory_every=1``) and ``keep_final=True`` and replays the same chains with
``tests/reference_model.py`` (pure NumPy, its own Philox in ``tests/reference_rng.py``):

* the recorded trajectories must equal the reference at every step,
* the final states of *all* chains (so chains in later statistics blocks, tiles and chunks,
  which are not recorded, are checked too) must equal the reference's last point,
* the final state of a recorded chain must be exactly its last trajectory point.

The table covers every landscape (Gaussian noise, SGD), every optimizer variant, every noise
model, two schedules, float32 storage, and several layouts of the work (``block``, ``max_chunk``,
and runs split into several kernel calls, so that the step counter, the optimizer state and the
schedule cross call boundaries).
Each distinct (landscape, noise, optimizer) type combination compiles one Numba kernel, so
the table reuses a small number of them: 15 kernels (2 for ``Custom`` landscapes, which are
compiled again in every process), 2 of them also specialised for float32 arrays.

Tolerances
----------
float64: ``1e-12`` relative. The kernel and the reference evaluate the same formulas in a
different order, and the kernel's normals come from polynomial log/sin/cos while the reference
uses libm (they differ by a few 1e-15 absolute). All dynamics in the table are stable (step
size well inside the stability region, low temperature, starts near minima), so these
rounding-level differences are not amplified beyond a few hundred ulps (observed: <= 1.3e-15);
a wrong formula, a wrong random number, an off-by-one step or a wrong chain index gives errors
of order 1 (about 0.1 to 1 after a few steps).

float32: the state (position and optimizer state) is stored in float32 after every step, and
the reference emulates exactly that (float64 arithmetic on the stored values, rounded to
float32 on store). Both then round float64 values that agree to ~1e-15 relative; they round
differently only when such a value lies within ~1e-15 of a float32 rounding boundary
(probability ~1e-15 / 2**-24 ~ 1e-8 per stored number, ~1e-3 per run of the table), and then
the two states differ by one float32 ulp (<= 2**-23 = 1.2e-7 relative), which the stable
dynamics carries on without amplifying it by more than a small factor (momentum mu = 0.9:
transient growth of a few). So two checks, both uniform over the table:

* ``RTOL32 = 1e-6`` (about 16 float32 ulps) on the relative error, the bound for a few such
  one-ulp splits;
* at least ``EXACT32 = 99%`` of the final coordinates of all chains equal the emulation *bit for
  bit* (a split spoils at most one chain's d numbers out of n_chains x d). This is what makes
  the float32 check sharp: without the float32 rounding on store (the float64 reference, rounded
  once at the end) only about half of them agree (``test_float32_check_detects_missing_rounding``),
  although the relative error is then still only ~2e-7, because the dynamics contracts rounding
  errors.

Relative error: ``|x_sim - x_ref| / max(|x_ref|, floor)`` per chain and step (Euclidean norm
over the coordinates). The floor is 0.1 x the half-width of the landscape's box: rounding
errors are of order eps x the scale of the terms added (the state, lr x gradient, the noise),
i.e. of the length scale of the landscape, not of ``|x|`` itself, so for a chain that passes
close to 0 a pure relative error would blow up without any real discrepancy.
"""
from __future__ import annotations

import dataclasses
import importlib
import math

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd import landscapes as L
from gibbs_sgd import noise as N
from gibbs_sgd import optimizers as O
from gibbs_sgd import schedules as S

try:
    from reference_model import MUELLER_BROWN, ref_grad, ref_loss, reference_trajectory
except ImportError:  # tests/ imported as a package
    from tests.reference_model import MUELLER_BROWN, ref_grad, ref_loss, reference_trajectory

# the module itself (the package attribute ``gibbs_sgd.simulate`` is the function)
SIM_MODULE = importlib.import_module("gibbs_sgd.simulate")

RTOL64 = 1e-12
RTOL32 = 1e-6
EXACT32 = 0.99  # fraction of final coordinates that must equal the float32 emulation bit for bit


# ----------------------------------------------------------------------------------------
# Models used by the table (module level, so each one is built -- and its kernel compiled --
# once per process)
# ----------------------------------------------------------------------------------------
def _data_rng():
    return np.random.default_rng(20240607)


QUAD = L.Quadratic([[2.0, 0.6], [0.6, 1.0]], center=[0.5, -0.3], offset=0.25)
DWELL = L.DoubleWell(barrier=1.0, width=1.5, tilt=0.3)
PERIODIC = L.Periodic(amplitude=1.0, period=2.0 * math.pi, dim=2)
MBROWN = L.MuellerBrown(scale=0.05)
GMIX = L.GaussianMixture(
    weights=[0.3, 0.7],
    means=[[-1.0, 0.0], [1.5, 0.5]],
    covariances=[[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.1], [-0.1, 0.6]]],
)
ROSEN = L.Rosenbrock(a=1.0, b=5.0, dim=3)


def _custom_loss_2d(x):
    r2 = x[0] * x[0] + x[1] * x[1]
    return 0.25 * r2 * r2 + 0.5 * x[0] * x[1] + 0.5 * (x[0] - 0.5) ** 2


def _custom_grad_out(x, out):  # the "writes into out" convention
    r2 = x[0] * x[0] + x[1] * x[1]
    out[0] = r2 * x[0] + 0.5 * x[1] + (x[0] - 0.5)
    out[1] = r2 * x[1] + 0.5 * x[0]


def _custom_loss_3d(x):
    return np.sum(0.25 * x**4 + 0.5 * (x - 0.2) ** 2)


def _custom_grad_return(x):  # the "returns an array" convention
    return x**3 + (x - 0.2)


CUSTOM_OUT = L.Custom(loss=_custom_loss_2d, grad=_custom_grad_out, dim=2, box=[[-2.0, 2.0], [-2.0, 2.0]],
                      name="quartic-out")
CUSTOM_RET = L.Custom(loss=_custom_loss_3d, grad=_custom_grad_return, dim=3, box=[[-2.0, 2.0]] * 3,
                      name="quartic-return")

_rng = _data_rng()
_MEAN_DATA = _rng.normal(size=(20, 2)) * [1.0, 0.5] + [1.0, -1.0]
_MEAN_DATA_SMALL = _rng.normal(size=(12, 2)) * [0.8, 1.2] + [-0.5, 0.3]
_X_REG = _rng.normal(size=(30, 2)) * [1.0, 0.7]
_Y_REG = _X_REG @ [0.8, -0.4] + 0.3 * _rng.normal(size=30)
_X_REG_SMALL = _rng.normal(size=(10, 2))
_Y_REG_SMALL = _X_REG_SMALL @ [-0.6, 1.1] + 0.5 * _rng.normal(size=10)

MEAN_REPLACE = N.MeanEstimation(data=_MEAN_DATA, replace=True)
MEAN_NO_REPLACE = N.MeanEstimation(data=_MEAN_DATA_SMALL, replace=False)
MEAN_STREAMED = N.MeanEstimation.streamed(mean=[1.0, -1.0], sigma=0.7)
REG_REPLACE = N.LinearRegression(inputs=_X_REG, targets=_Y_REG, replace=True)
REG_NO_REPLACE = N.LinearRegression(inputs=_X_REG_SMALL, targets=_Y_REG_SMALL, replace=False)
REG_STREAMED = N.LinearRegression.streamed(weights=[0.5, -1.0], input_std=0.8, noise_std=0.3)


# ----------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    landscape: object
    optimizer: object
    noise: object
    batch_size: int = 1
    n_steps: int = 120
    n_chains: int = 300
    seed: int = 12345
    init_centers: tuple = None  # chains start near these points (chain i near centre i mod K)
    init_spread: float = 0.1
    schedule: object = None
    dtype: object = np.float64
    record: int = 8
    block: int = None
    max_chunk: int = None
    steps_per_call: int = None  # split the run into kernel calls of this many steps

    @property
    def rtol(self):
        return RTOL32 if np.dtype(self.dtype) == np.float32 else RTOL64

    @property
    def min_kernel_calls(self):
        """Kernel calls the run must take: a split run (``steps_per_call``) takes several."""
        n_chunks = -(-self.n_chains // self.max_chunk) if self.max_chunk else 1
        return n_chunks * (2 if self.steps_per_call else 1)

    @property
    def exact_fraction(self):
        """Fraction of final coordinates that must match the reference bit for bit."""
        return EXACT32 if np.dtype(self.dtype) == np.float32 else 0.0

    def initial_states(self) -> np.ndarray:
        d = self.landscape.dim
        rng = np.random.default_rng(self.seed % 2**32)
        centres = np.asarray(self.init_centers if self.init_centers is not None
                             else [self.landscape.box.mean(axis=1)], dtype=np.float64).reshape(-1, d)
        k = np.arange(self.n_chains) % centres.shape[0]
        return centres[k] + self.init_spread * rng.standard_normal((self.n_chains, d))


GAUSS = N.Gaussian(sigma=1.0)
Q_START = ((0.5, -0.3), (1.5, 0.5), (-0.5, -1.0))

CASES = {
    # --- every landscape, Gaussian noise, SGD -------------------------------------------------
    "quadratic-full-matrix": Case(QUAD, O.SGD(lr=0.1), GAUSS, batch_size=4, init_centers=Q_START, init_spread=0.5,
                                  seed=2**40 + 7, record=80, block=7, max_chunk=70),
    "double-well": Case(DWELL, O.SGD(lr=0.02), N.Gaussian(sigma=0.5), batch_size=2, n_steps=150,
                        init_centers=((-1.5,), (1.5,)), init_spread=0.2, seed=1),
    "periodic-2d": Case(PERIODIC, O.SGD(lr=0.05), GAUSS, init_centers=((0.0, 0.0), (2 * math.pi, -2 * math.pi)),
                        init_spread=0.8, seed=99),
    "mueller-brown": Case(MBROWN, O.SGD(lr=0.002), GAUSS, n_steps=150,
                          init_centers=((-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467)), init_spread=0.03,
                          seed=3),
    "gaussian-mixture": Case(GMIX, O.SGD(lr=0.05), N.Gaussian(sigma=0.8), init_centers=((-1.0, 0.0), (1.5, 0.5)),
                             init_spread=0.5, seed=4),
    "rosenbrock-3d": Case(ROSEN, O.SGD(lr=0.004), N.Gaussian(sigma=0.5), n_steps=150,
                          init_centers=((1.0, 1.0, 1.0),), init_spread=0.15, seed=5),
    "custom-grad-out": Case(CUSTOM_OUT, O.SGD(lr=0.05), GAUSS, init_spread=0.8, seed=6),
    "custom-grad-return": Case(CUSTOM_RET, O.SGD(lr=0.05), N.Gaussian(sigma=0.7), batch_size=2, init_spread=0.8,
                               seed=7),
    # --- every optimizer variant ----------------------------------------------------------
    "heavyball": Case(QUAD, O.HeavyBall(lr=0.05, momentum=0.9), GAUSS, n_steps=200, init_centers=Q_START,
                      init_spread=0.5, seed=8, steps_per_call=37),
    "heavyball-dampening": Case(QUAD, O.HeavyBall(lr=0.05, momentum=0.8, dampening=0.5), GAUSS, n_steps=150,
                                init_centers=Q_START, init_spread=0.5, seed=9, block=1),
    "heavyball-nesterov": Case(QUAD, O.HeavyBall(lr=0.05, momentum=0.9, nesterov=True), GAUSS, n_steps=150,
                               init_centers=Q_START, init_spread=0.5, seed=10),
    "ema-momentum": Case(QUAD, O.EMAMomentum(lr=0.1, beta=0.8), GAUSS, n_steps=150, init_centers=Q_START,
                         init_spread=0.5, seed=11),
    "double-well-nesterov": Case(DWELL, O.HeavyBall(lr=0.01, momentum=0.7, nesterov=True), N.Gaussian(sigma=0.5),
                                 n_steps=150, init_centers=((-1.5,), (1.5,)), init_spread=0.2, seed=12),
    "double-well-ema": Case(DWELL, O.EMAMomentum(lr=0.02, beta=0.5), N.Gaussian(sigma=0.5), n_steps=150,
                            init_centers=((-1.5,), (1.5,)), init_spread=0.2, seed=13, steps_per_call=50),
    "rmsprop": Case(QUAD, O.RMSprop(lr=0.01, alpha=0.9), GAUSS, n_steps=150, init_centers=Q_START,
                    init_spread=0.5, seed=30),
    "rmsprop-centered-momentum": Case(QUAD, O.RMSprop(lr=0.005, alpha=0.95, eps=1e-4, momentum=0.8, centered=True),
                                      GAUSS, n_steps=150, init_centers=Q_START, init_spread=0.5, seed=31),
    "adam": Case(DWELL, O.Adam(lr=0.01), N.Gaussian(sigma=0.5), n_steps=150, init_centers=((-1.5,), (1.5,)),
                 init_spread=0.2, seed=32),
    "adam-amsgrad": Case(QUAD, O.Adam(lr=0.01, betas=(0.8, 0.99), amsgrad=True), GAUSS, n_steps=150,
                         init_centers=Q_START, init_spread=0.5, seed=33),
    "adam-no-bias-correction": Case(QUAD, O.Adam(lr=0.01, betas=(0.9, 0.99), bias_correction="none"), GAUSS,
                                    n_steps=150, init_centers=Q_START, init_spread=0.5, seed=34),
    "adam-running-average": Case(QUAD, O.Adam(lr=0.01, betas=(0.0, 0.98), bias_correction="running"), GAUSS,
                                 n_steps=150, init_centers=Q_START, init_spread=0.5, seed=35, steps_per_call=40),
    "adam-decoupled": Case(QUAD, O.Adam.decoupled(eta0=0.002, batch_size=8, horizon_g=40, horizon_s=400, eps0=0.3),
                           GAUSS, batch_size=8, n_steps=150, init_centers=Q_START, init_spread=0.5, seed=36),
    # --- every noise model ----------------------------------------------------------------
    "gaussian-full-covariance": Case(QUAD, O.SGD(lr=0.1), N.Gaussian(covariance=[[1.0, 0.5], [0.5, 2.0]]),
                                     batch_size=3, init_centers=Q_START, init_spread=0.5, seed=14,
                                     record=140, block=300),
    "mean-replace": Case(MEAN_REPLACE.landscape, O.SGD(lr=0.3), MEAN_REPLACE, batch_size=5, init_spread=1.0,
                         seed=15),
    "mean-no-replace": Case(MEAN_NO_REPLACE.landscape, O.SGD(lr=0.3), MEAN_NO_REPLACE, batch_size=7,
                            init_spread=1.0, seed=16, steps_per_call=17),
    "mean-streamed": Case(MEAN_STREAMED.landscape, O.SGD(lr=0.3), MEAN_STREAMED, batch_size=3, init_spread=1.0,
                          seed=17),
    "regression-replace": Case(REG_REPLACE.landscape, O.SGD(lr=0.1), REG_REPLACE, batch_size=4, init_spread=1.0,
                               seed=18),
    "regression-no-replace-heavyball": Case(REG_NO_REPLACE.landscape, O.HeavyBall(lr=0.05, momentum=0.5, dampening=0.1),
                                            REG_NO_REPLACE, batch_size=5, init_spread=1.0, seed=19),
    "regression-streamed": Case(REG_STREAMED.landscape, O.SGD(lr=0.1), REG_STREAMED, batch_size=3, init_spread=1.0,
                                seed=20),
    # --- schedules ------------------------------------------------------------------------
    "schedule-step-halving": Case(QUAD, O.SGD(lr=0.2), GAUSS, n_steps=100, schedule=S.StepHalving(every=20),
                                  init_centers=Q_START, init_spread=0.5, seed=21),
    "schedule-robbins-monro": Case(QUAD, O.HeavyBall(lr=0.05, momentum=0.9), GAUSS, n_steps=150,
                                   schedule=S.RobbinsMonro(t0=10.0, gamma=0.7), init_centers=Q_START,
                                   init_spread=0.5, seed=22, steps_per_call=20),
    # --- float32 storage ------------------------------------------------------------------
    "float32-sgd": Case(QUAD, O.SGD(lr=0.1), GAUSS, batch_size=2, dtype=np.float32, init_centers=Q_START,
                        init_spread=0.5, seed=23),
    "float32-nesterov": Case(QUAD, O.HeavyBall(lr=0.05, momentum=0.9, nesterov=True), GAUSS, n_steps=150,
                             dtype=np.float32, init_centers=Q_START, init_spread=0.5, seed=24),
}


class _CountingKernel:
    """A compiled kernel module whose ``run_segment`` calls are counted."""

    def __init__(self, module):
        self._module = module
        self.calls = 0

    def run_segment(self, *args):
        self.calls += 1
        return self._module.run_segment(*args)

    def __getattr__(self, name):
        return getattr(self._module, name)


def _run(case: Case, monkeypatch):
    """``(run, reference (n_chains, n_steps, d), number of kernel calls)`` of one case."""
    init = case.initial_states()
    if case.steps_per_call is not None:
        # simulate() runs min(n_steps, max(16, budget // n_chains)) steps per kernel call; a small
        # budget makes the step counter, the optimizer state and the schedule cross call boundaries.
        monkeypatch.setattr(SIM_MODULE, "_STEPS_PER_CALL_BUDGET", case.steps_per_call * case.n_chains)
    counted = []
    build = SIM_MODULE.cpu_kernels.build

    def counting_build(*args, **kwargs):
        counted.append(_CountingKernel(build(*args, **kwargs)))
        return counted[-1]

    monkeypatch.setattr(SIM_MODULE.cpu_kernels, "build", counting_build)
    run = gs.simulate(
        case.landscape, case.optimizer, noise=case.noise, batch_size=case.batch_size,
        n_chains=case.n_chains, n_steps=case.n_steps, seed=case.seed, init=init,
        schedule=case.schedule, dtype=case.dtype, record_trajectories=case.record,
        trajectory_every=1, keep_final=True, progress=False, block=case.block, max_chunk=case.max_chunk,
    )
    monkeypatch.undo()
    ref = reference_trajectory(case.landscape, case.optimizer, case.noise, case.batch_size, case.seed,
                               case.n_steps, init, np.arange(case.n_chains), schedule=case.schedule,
                               dtype=case.dtype)
    return run, ref, sum(k.calls for k in counted)


def relative_error(sim, ref, floor):
    """``|sim - ref| / max(|ref|, floor)`` over the last axis (the coordinates)."""
    num = np.linalg.norm(np.asarray(sim, dtype=np.float64) - ref, axis=-1)
    return num / np.maximum(np.linalg.norm(ref, axis=-1), floor)


def _floor(landscape) -> float:
    box = np.asarray(landscape.box)
    return 0.1 * 0.5 * float(np.max(box[:, 1] - box[:, 0]))


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_reference(name, monkeypatch):
    case = CASES[name]
    run, ref, n_calls = _run(case, monkeypatch)
    k, d = case.record, case.landscape.dim
    assert n_calls >= case.min_kernel_calls  # the layout under test really happened

    # the run is a meaningful comparison: nothing diverged, every step was recorded
    assert run.n_diverged == 0 and run.alive.all()
    assert run.trajectories.shape == (k, case.n_steps, d)
    np.testing.assert_array_equal(run.trajectory_steps, np.arange(case.n_steps))
    assert run.final.shape == (case.n_chains, d) and run.final.dtype == np.dtype(case.dtype)
    assert np.all(np.isfinite(ref))

    floor = _floor(case.landscape)
    err_traj = relative_error(run.trajectories, ref[:k], floor)  # (k, n_steps)
    err_final = relative_error(run.final, ref[:, -1], floor)  # (n_chains,)
    worst = np.unravel_index(np.argmax(err_traj), err_traj.shape)
    assert err_traj.max() <= case.rtol, (
        f"trajectory error {err_traj.max():.3e} > {case.rtol:g} at chain {worst[0]}, step {worst[1]}: "
        f"kernel {run.trajectories[worst]} vs reference {ref[worst]}"
    )
    assert err_final.max() <= case.rtol, (
        f"final-state error {err_final.max():.3e} > {case.rtol:g} at chain {np.argmax(err_final)}: "
        f"kernel {run.final[np.argmax(err_final)]} vs reference {ref[np.argmax(err_final), -1]}"
    )
    assert np.mean(run.final == ref[:, -1]) >= case.exact_fraction
    # the final state of a recorded chain is its last trajectory point, bit for bit
    np.testing.assert_array_equal(run.final[:k].astype(np.float64), run.trajectories[:, -1])


def test_float32_check_detects_missing_rounding(monkeypatch):
    """Negative control of the float32 check: it tells float32 storage from none.

    The float64 reference (no rounding on store), rounded to float32 only at the end, must fail
    the bit-for-bit criterion that the emulating reference passes.
    """
    case = CASES["float32-sgd"]
    run, ref32, _ = _run(case, monkeypatch)
    ref64 = reference_trajectory(case.landscape, case.optimizer, case.noise, case.batch_size, case.seed,
                                 case.n_steps, case.initial_states(), np.arange(case.n_chains),
                                 schedule=case.schedule)
    final64 = ref64[:, -1].astype(np.float32).astype(np.float64)
    assert np.mean(run.final == ref32[:, -1]) >= EXACT32
    assert np.mean(run.final == final64) < 0.9


# ----------------------------------------------------------------------------------------
# The reference itself: its gradients are the derivatives of its losses (central
# differences), and its Mueller-Brown constants put the minima where the literature has them.
# ----------------------------------------------------------------------------------------
REF_LANDSCAPES = {
    "quadratic": (QUAD, 1.0),
    "double-well": (DWELL, 1.5),
    "periodic": (PERIODIC, 2.0),
    "mueller-brown": (MBROWN, 0.5),
    "gaussian-mixture": (GMIX, 1.5),
    "rosenbrock": (ROSEN, 1.0),
    "custom-out": (CUSTOM_OUT, 1.0),
    "custom-return": (CUSTOM_RET, 1.0),
}


@pytest.mark.parametrize("name", list(REF_LANDSCAPES))
def test_reference_gradient_is_derivative_of_loss(name):
    land, spread = REF_LANDSCAPES[name]
    d = land.dim
    rng = np.random.default_rng(0)
    x = land.box.mean(axis=1) + spread * rng.uniform(-1, 1, size=(20, d))
    h = 1e-6
    fd = np.stack([(ref_loss(land, x + h * e) - ref_loss(land, x - h * e)) / (2 * h) for e in np.eye(d)], axis=1)
    g = ref_grad(land, x)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * (1 + np.abs(g).max()))


def test_reference_mueller_brown_minima():
    # Minima of the Mueller-Brown surface (e.g. Mueller & Brown 1979; widely tabulated):
    # (-0.558, 1.442) with V = -146.70, (0.623, 0.028) with V = -108.17, (-0.050, 0.467) with V = -80.77.
    mb = L.MuellerBrown(scale=1.0)
    for xy, v in [((-0.558, 1.442), -146.70), ((0.623, 0.028), -108.17), ((-0.050, 0.467), -80.77)]:
        assert abs(ref_loss(mb, np.array([xy]))[0] - v) < 0.01
        # curvatures there are up to ~4e3, so 1e-3 off a minimum |grad| would be of order 1 to 4
        assert np.abs(ref_grad(mb, np.array([xy]))).max() < 1.0
    assert MUELLER_BROWN["A"].shape == (4,)
