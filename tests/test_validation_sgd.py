"""The SGD validation scripts (batch_size, step_halving, convergence, early_speed): their exact laws,
and verdicts that follow the measured numbers.

Each script turns its measurements into :class:`~gibbs_sgd.validation.Check` s with one function
(``make_checks``); these tests feed it fabricated numbers -- the exact values with small errors
(the claim holds), then the same with one number moved (it fails), then with too short a burn-in
(no verdict) -- so a verdict cannot be a sentence fixed in advance. No simulation runs here; the
scripts themselves run in ``tests/test_validation.py``.
"""
import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd.validation import combine
from validation_scripts import load_script


@pytest.fixture(scope="module")
def batch_size():
    return load_script("batch_size")


@pytest.fixture(scope="module")
def step_halving():
    return load_script("step_halving")


@pytest.fixture(scope="module")
def convergence():
    return load_script("convergence")


@pytest.fixture(scope="module")
def early_speed():
    return load_script("early_speed")


def _outcomes(checks):
    return [c.outcome for c in checks]


# -- batch_size --------------------------------------------------------------------------------
def test_batch_size_data_set_and_exact_law(batch_size):
    a = batch_size.data_set()
    assert a.shape == (batch_size.N_DATA,) and abs(a.mean()) < 1e-12 and np.mean(a * a) == pytest.approx(1.0, abs=1e-12)
    with_r = gs.noise.MeanEstimation(a, replace=True)
    without = gs.noise.MeanEstimation(a, replace=False)
    n = batch_size.N_DATA
    for lr, b in ((0.02, 1), (0.02, 64), (0.5, 8), (1e-3 * 512, 512)):
        # lr S / (B (2 - lr h)), S = h = 1; without replacement times (n - B)/(n - 1)
        assert batch_size.t_exact(with_r, lr, b) == pytest.approx(lr / (b * (2 - lr)), rel=1e-10)
        assert batch_size.t_exact(without, lr, b) == pytest.approx(lr / (b * (2 - lr)) * (n - b) / (n - 1), rel=1e-10)


def _bs_rows(module, noise, lrs, sizes, shift=None, burn=6.0, rel_err=0.002):
    rows = []
    for lr, b in zip(lrs, sizes):
        t = module.t_exact(noise, lr, b)
        factor = shift.get(b, 1.0) if shift else 1.0
        rows.append(dict(batch_size=b, lr=lr, x=lr, temperature=t * factor, stderr=rel_err * t, exact=t,
                         burn_tau=burn))
    return rows


def _bs_series(module, shift_scaled=None, shift_without=None, burn=6.0):
    a = module.data_set()
    with_r = gs.noise.MeanEstimation(a, replace=True)
    without = gs.noise.MeanEstimation(a, replace=False)
    fixed_b = [1, 4, 16, 64]
    scaled_b = [1, 4, 16, 32, 64, 128, 512]
    without_b = [1, 16, 32, 64]
    fixed = _bs_rows(module, with_r, [module.LR_FIXED] * 4, fixed_b, burn=burn)
    scaled = _bs_rows(module, with_r, [module.ETA0 * b for b in scaled_b], scaled_b, shift_scaled, burn)
    wo = _bs_rows(module, without, [module.ETA0 * b for b in without_b], without_b, shift_without, burn)
    return fixed, scaled, wo


def test_batch_size_verdict_follows_the_numbers(batch_size):
    checks = batch_size.make_checks(*_bs_series(batch_size))
    assert checks and set(_outcomes(checks)) == {"holds"}, [c.sentence() for c in checks]
    assert combine(checks)[0] == "holds"

    # T at B = 16 (an academic batch size) 8% high: off the exact law and not flat within 3%
    checks = batch_size.make_checks(*_bs_series(batch_size, shift_scaled={16: 1.08}))
    failing = [c.quantity for c in checks if c.outcome == "fails"]
    assert any("flat" in q for q in failing) and any("T_exact" in q for q in failing)
    outcome, sentence = combine(checks)
    assert outcome == "fails" and ("1.08" in sentence or "0.08" in sentence)

    # sampling without replacement that missed the finite-population factor (T as with replacement)
    a = batch_size.data_set()
    n = batch_size.N_DATA
    missed = {b: (n - 1) / (n - b) for b in (16, 32, 64)}
    checks = batch_size.make_checks(*_bs_series(batch_size, shift_without=missed))
    fpc = next(c for c in checks if "(n - B)/(n - 1)" in c.quantity)
    assert fpc.outcome == "fails" and fpc.target == pytest.approx((n - 64) / (n - 1))

    # the departure growing at twice the exact rate: the rate check fails
    fixed, scaled, wo = _bs_series(batch_size)
    t1 = scaled[0]["exact"]
    for r in scaled[1:]:
        r["temperature"] = t1 + 2 * (r["exact"] - t1)
    rate = next(c for c in batch_size.make_checks(fixed, scaled, wo) if "scale" in c.quantity)
    assert rate.outcome == "fails" and rate.value == pytest.approx(2.0, rel=1e-6)


def test_batch_size_refuses_a_verdict_on_a_short_burn_in(batch_size):
    checks = batch_size.make_checks(*_bs_series(batch_size, burn=batch_size.NEED - 1))
    assert combine(checks)[0] == "unresolved"
    assert any("burn-in" in c.no_verdict and c.outcome == "unresolved" for c in checks)
    assert not any(c.outcome == "holds" for c in checks)  # every point was left out


# -- step_halving ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, law", [
    ("quadratic, Gaussian noise", lambda lr: lr / (2 * (2 - lr))),
    ("online least squares", lambda lr: lr / (2 * (2 - 3 * lr))),
])
def test_step_halving_exact_laws(step_halving, name, law):
    _, lr0, moments, _ = step_halving.PROBLEMS[name]
    for lr in (lr0, lr0 / 8, 1e-3):
        assert step_halving.plateau_exact(moments, lr) == pytest.approx(law(lr), rel=1e-12)
    # the recursion from Phi_0 relaxes onto the plateau
    trace = step_halving.exact_trace(moments, np.full(4000, lr0 / 4), 4.0)
    assert trace[-1] == pytest.approx(law(lr0 / 4), rel=1e-9)


def _sh_series(module, scale=None, burn=8.0):
    series = {}
    for name, (_, lr0, moments, law) in module.PROBLEMS.items():
        lrs = [lr0 * 0.5**k for k in range(module.N_PHASES)]
        exact = [module.plateau_exact(moments, lr) for lr in lrs]
        f = (scale or {}).get(name, {})
        series[name] = dict(lrs=lrs, exact=exact, burn_tau=[burn] * len(lrs),
                            plateaus=[(e * f.get(k, 1.0), 0.002 * e) for k, e in enumerate(exact)])
    return series


def test_step_halving_verdict_follows_the_numbers(step_halving):
    checks = step_halving.make_checks(_sh_series(step_halving))
    assert set(_outcomes(checks)) == {"holds"}, [c.sentence() for c in checks]

    # the last least-squares plateau above the one before: the loss rises at that halving
    name = "online least squares"
    checks = step_halving.make_checks(_sh_series(step_halving, {name: {5: 2.4}}))
    failing = [c for c in checks if c.outcome == "fails"]
    assert any("decreases" in c.quantity for c in failing)
    assert any(name in c.quantity and "plateau / exact" in c.quantity for c in failing)
    decrease = next(c for c in failing if "decreases" in c.quantity)
    assert decrease.value == pytest.approx(2.4 * step_halving.plateau_exact(step_halving.PROBLEMS[name][2], 0.00625)
                                           / step_halving.plateau_exact(step_halving.PROBLEMS[name][2], 0.0125))

    # plateaus exactly halving (T ~ lr with no finite-lr correction): the ratio checks against the
    # exact finite-lr ratios fail for least squares, whose ratio at lr = 0.2 is 0.41, not 1/2
    series = _sh_series(step_halving)
    for s in series.values():
        s["plateaus"] = [(s["exact"][0] * 0.5**k, 0.001 * s["exact"][0] * 0.5**k) for k in range(len(s["lrs"]))]
    checks = step_halving.make_checks(series)
    assert any(c.outcome == "fails" and "exact finite-lr" in c.quantity and name in c.quantity for c in checks)


def test_step_halving_refuses_unequilibrated_plateaus(step_halving):
    series = _sh_series(step_halving)
    for s in series.values():
        s["burn_tau"][-1] = step_halving.NEED / 2
    checks = step_halving.make_checks(series)
    outcome, sentence = combine(checks)
    assert outcome == "unresolved" and "relaxation times" in sentence
    assert sum("burn-in" in c.no_verdict for c in checks) == len(series)


# -- convergence -------------------------------------------------------------------------------
def test_convergence_bonferroni_cut(convergence):
    # many blocks: the normal quantile of 0.05 / (2 * 20000)
    assert convergence.bonferroni_cut(20_000, 10**7) == pytest.approx(4.71, abs=0.01)
    # few blocks: Student t, a wider cut
    assert convergence.bonferroni_cut(20_000, 32) > convergence.bonferroni_cut(20_000, 256) > 4.71


def _conv_results(max_z, n_points=20_000, a_shift=0.0, phi=1.0):
    rng = np.random.default_rng(0)
    out = []
    for label, status, a in (("constant lr", "violates lim eta = 0", 0.0), ("gamma = 1", "theorem holds", 1.0),
                             ("gamma = 3/2 (sum eta < inf)", "boundary: sum eta < inf", 0.01)):
        z = np.clip(rng.standard_normal(n_points), -3, 3)
        out.append(dict(label=label, status=status, z=z, a=a + a_shift, a_se=0.001, a_exact=a))
    out[0]["z"][17] = max_z
    out[-1].update(phi=1.25 * phi, phi_se=0.0003, phi_exact=1.25)
    return out


def test_convergence_verdict_follows_the_numbers(convergence):
    # max |z| = 4.5 over 60 000 points is below the 5% Bonferroni cut (~4.9): holds
    checks = convergence.make_checks(_conv_results(4.5), n_blocks=256)
    assert set(_outcomes(checks)) == {"holds"}, [c.sentence() for c in checks]
    trace = checks[0]
    assert trace.value == pytest.approx(4.5) and 4.8 < trace.tolerance < 5.1 and "60000 trace points" in trace.quantity
    # one point at |z| = 6.5: fails, and the sentence carries the number
    checks = convergence.make_checks(_conv_results(-6.5), n_blocks=256)
    assert checks[0].outcome == "fails" and "6.5" in combine(checks)[1]
    # exponents 0.1 off the exact ones: fail
    checks = convergence.make_checks(_conv_results(3.0, a_shift=0.1), n_blocks=256)
    assert [c.outcome for c in checks if "exponent" in c.quantity] == ["fails"] * 3
    # the gamma = 3/2 chains at <Phi> = 0 (a stationary point, not what the exact recursion says): fails
    checks = convergence.make_checks(_conv_results(3.0, phi=0.0), n_blocks=256)
    assert next(c for c in checks if "<Phi>" in c.quantity).outcome == "fails"


# -- early_speed -------------------------------------------------------------------------------
# the second-moment recursion's factor a(lr), written out by hand: E(1 - lr x^2)^2 with E x^4 = 3
@pytest.mark.parametrize("name, a_of", [("quadratic, Gaussian noise", lambda lr: (1.0 - lr) ** 2),
                                        ("online least squares", lambda lr: 1 - 2 * lr + 3 * lr * lr)])
def test_early_speed_exact_loss_is_the_recursion(early_speed, name, a_of):
    _, lrs, moments = early_speed.PROBLEMS[name]
    for lr in lrs:
        q = early_speed.PHI0**2
        for _ in range(25):
            q = a_of(lr) * q + lr * lr * early_speed.SIGMA**2
        assert early_speed.exact_loss(moments, lr, 25) == pytest.approx(q / 2, rel=1e-12)


def _es_series(module, burn=20.0, swap_early=False, swap_late=False):
    series = {}
    for name, (_, lrs, moments) in module.PROBLEMS.items():
        early = [float(module.exact_loss(moments, lr, module.T_EARLY)) for lr in lrs]
        late = [gs.theory.least_squares_stationary_loss(lr, *moments) for lr in lrs]
        s = dict(lrs=lrs, early_exact=list(early), late_exact=list(late), burn_tau=[burn] * len(lrs))
        if swap_early:
            early = early[::-1]
        if swap_late:
            late = late[::-1]
        s["early"] = [(v, 0.002 * v) for v in early]
        s["late"] = [(v, 0.002 * v) for v in late]
        series[name] = s
    return series


def test_early_speed_verdict_follows_the_numbers(early_speed):
    checks = early_speed.make_checks(_es_series(early_speed))
    assert set(_outcomes(checks)) == {"holds"}, [c.sentence() for c in checks]
    # the small lr ahead at the beginning: the early claim fails, the late one still holds
    checks = early_speed.make_checks(_es_series(early_speed, swap_early=True))
    assert all(c.outcome == "fails" for c in checks if "beginning" in c.quantity)
    assert all(c.outcome == "holds" for c in checks if "near the end" in c.quantity)
    # the large lr lower at the end: the late claim fails
    checks = early_speed.make_checks(_es_series(early_speed, swap_late=True))
    assert all(c.outcome == "fails" for c in checks if "near the end" in c.quantity)
    # too short a burn-in before the late window: no verdict on the final loss
    checks = early_speed.make_checks(_es_series(early_speed, burn=early_speed.NEED / 2))
    assert combine(checks)[0] == "unresolved"
    assert all(c.outcome == "unresolved" and "burn-in" in c.no_verdict for c in checks if "near the end" in c.quantity)


@pytest.mark.parametrize("replace", [True, False])
def test_batch_size_least_squares_law_matches_the_engine(batch_size, replace):
    """The script's exact law for least squares on a data set (state-dependent noise, derived in
    its docstring) against a small simulation: within 4 standard errors (a 1-in-16000 miss)."""
    x, y = batch_size.least_squares_data()
    noise = gs.noise.LinearRegression(x.reshape(-1, 1), y, replace=replace)
    h, va, vr = batch_size._moments(noise, 8)
    f = 1.0 if replace else (x.size - 8) / (x.size - 1)
    r = y - x * noise.landscape.center[0]
    assert (h, va, vr) == pytest.approx((np.mean(x * x), np.var(x * x) * f / 8, np.mean((x * r) ** 2) * f / 8))
    row = batch_size.run_point(noise, 0.4, 8, n_chains=4000, window=30.0, seed=3)
    assert row["burn_tau"] >= batch_size.NEED and row["exact"] == pytest.approx(h * 0.4 * vr / (2 * h - 0.4 * (h * h + va)))
    assert abs(row["temperature"] - row["exact"]) < 4 * row["stderr"], row
    # a negative control: the law without its curvature-noise term is off by more than the error
    naive = h * 0.4 * vr / (2 * h - 0.4 * h * h)
    assert abs(row["temperature"] - naive) > 4 * row["stderr"]


def test_convergence_refuses_a_plateau_verdict_before_equilibrium(convergence):
    results = _conv_results(3.0)
    results[0]["window_tau"] = convergence.NEED / 2
    checks = convergence.make_checks(results, n_blocks=256)
    assert combine(checks)[0] == "unresolved"
    plateau = next(c for c in checks if c.quantity.startswith("constant lr: late decay"))
    assert plateau.outcome == "unresolved" and "relaxation times" in plateau.sentence()
