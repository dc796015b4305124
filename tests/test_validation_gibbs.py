"""validation/gibbs_law.py and validation/beta_from_eta0.py: their theory and the functions that turn
measured numbers into checks, fed fabricated numbers (a verdict must follow the numbers)."""
import numpy as np
import pytest

from gibbs_sgd.validation import Row
from validation_scripts import load_script

gl = load_script("gibbs_law")
beta = load_script("beta_from_eta0")


def test_exact_skewness_against_a_direct_simulation():
    """The moment recursion's skewness against 20000 chains of the recursion itself (numpy)."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=50)
    y = 0.5 * a + rng.normal(size=50)
    c = float(a @ y / (a @ a))
    lr = 0.3 / float(np.mean(a * a))
    predicted = gl.exact_skewness(a, y, c, lr)
    e = np.zeros(20000)
    samples = []
    for step in range(600):
        i = rng.integers(0, 50, e.size)
        e = e - lr * a[i] * (a[i] * (c + e) - y[i])
        if step >= 200:
            samples.append(e.copy())
    s = np.array(samples)
    skew = np.mean((s - s.mean()) ** 3) / np.var(s) ** 1.5
    assert abs(predicted) > 0.05 and skew == pytest.approx(predicted, abs=0.05)


# -- numbers -> checks (fabricated numbers) ----------------------------------------------------
LRS = [0.004, 0.002, 0.001]
SE = [0.0003, 0.0003, 0.0003]


def _outcomes(checks):
    return [c.outcome for c in checks]


def test_limit_checks_hold_for_a_departure_linear_in_lr():
    deps = [5.5 * lr for lr in LRS]
    checks = gl.limit_checks("demo", LRS, deps, SE, True, 6.0, exact=deps)
    assert _outcomes(checks) == ["holds", "holds", "holds"]
    assert Row("x", "c", "s", "r", checks=checks).outcome == "holds"


def test_limit_checks_fail_when_the_departure_does_not_vanish():
    """A constant 1% added at every lr: the extrapolated departure fails, so does the row."""
    deps = [5.5 * lr + 0.01 for lr in LRS]
    checks = gl.limit_checks("demo", LRS, deps, SE, True, 6.0)
    assert checks[0].outcome == "fails" and checks[0].value == pytest.approx(0.01)
    row = Row("x", "c", "s", "r", checks=checks)
    assert row.outcome == "fails" and "0.0100" in checks[0].sentence() and "fails" in row.verdict


def test_limit_checks_fail_when_the_departure_is_not_linear():
    """A departure growing as lr^2: departure/lr halves with lr; the rate check fails."""
    deps = [1500 * lr**2 for lr in LRS]
    checks = gl.limit_checks("demo", LRS, deps, [1e-5] * 3, True, 6.0)
    assert checks[1].outcome == "fails" and checks[1].value == pytest.approx(0.25)


def test_limit_checks_fail_against_the_exact_law():
    deps = [5.5 * lr for lr in LRS]
    checks = gl.limit_checks("demo", LRS, deps, SE, True, 6.0, exact=[d - 0.005 for d in deps])
    assert checks[2].outcome == "fails" and checks[2].value == pytest.approx(0.005)


def test_limit_checks_refuse_a_verdict_below_the_burn_in():
    deps = [5.5 * lr for lr in LRS]
    checks = gl.limit_checks("demo", LRS, deps, SE, False, 1.5, exact=deps)
    assert _outcomes(checks) == ["unresolved"] * 3
    assert all("burn-in 1.5 relaxation times < 4" in c.sentence() for c in checks)


def test_signature_check_follows_its_numbers():
    ok = gl.signature_check("T2/T1", 1.905, 0.005, 1.9, 0.02, True, 10.0)
    gibbs_like = gl.signature_check("T2/T1", 1.0, 0.005, 1.9, 0.02, True, 10.0)
    refused = gl.signature_check("T2/T1", 1.905, 0.005, 1.9, 0.02, False, 2.0)
    assert (ok.outcome, gibbs_like.outcome, refused.outcome) == ("holds", "fails", "unresolved")


def _grid(offset=0.0, intercept=0.0, slope=0.3, se=0.001, equilibrated=True):
    h = beta.deep_well_curvature()
    pts = []
    for b in beta.BATCHES:
        for mu in beta.MOMENTA:
            x = beta.x_of(0.002, b, mu, h)
            pts.append(dict(x=x, momentum=mu, dep=intercept + slope * x + (offset if mu > 0 else 0.0), se=se,
                            equilibrated=equilibrated))
    return pts


def test_deep_well_sets_x():
    assert beta.deep_well_curvature() == pytest.approx(8.87, abs=0.01)
    assert beta.x_of(0.002, 16, 0.0, 8.87) == pytest.approx(0.28384)
    assert beta.x_of(0.002, 16, 0.9, 8.87) == pytest.approx(0.28384 * 0.1 / 1.9)


def test_eta0_checks_hold_when_t_is_set_by_eta0():
    checks, fit = beta.eta0_checks(0.002, _grid())
    assert _outcomes(checks) == ["holds", "holds", "holds"]
    assert fit["slope"] == pytest.approx(0.3) and fit["intercept"] == pytest.approx(0.0, abs=1e-12)


def test_eta0_checks_fail_when_momentum_changes_t_beyond_x():
    """The mu = 0.9 points 3% above the mu = 0 line: B and mu do not enter through x alone."""
    checks, fit = beta.eta0_checks(0.002, _grid(offset=0.03))
    assert checks[1].outcome == "fails" and fit["offset"] == pytest.approx(0.03)
    assert Row("x", "c", "s", "r", checks=checks).outcome == "fails"


def test_eta0_checks_fail_when_the_limit_is_not_eta0_sigma2_over_2():
    checks, _ = beta.eta0_checks(0.002, _grid(intercept=0.04))
    assert checks[0].outcome == "fails" and checks[2].outcome == "fails"


def test_eta0_checks_fail_at_the_academic_edge_for_a_steep_trend():
    checks, _ = beta.eta0_checks(0.002, _grid(slope=2.5))  # 2.5% at x = 0.01
    assert _outcomes(checks) == ["holds", "holds", "fails"]


def test_eta0_checks_refused_below_the_burn_in():
    checks, _ = beta.eta0_checks(0.002, _grid(equilibrated=False))
    assert _outcomes(checks) == ["unresolved"] * 3 and all("burn-in" in c.no_verdict for c in checks)


def test_slope_check_pools_the_eta0_slopes():
    fits = {e: dict(slope=0.25, cov=[[1e-6, 0, 0], [0, 0.03**2, 0], [0, 0, 1e-6]], refused=False) for e in beta.ETA0}
    assert beta.slope_check(fits, {e: 0.25 for e in beta.ETA0}).outcome == "holds"
    assert beta.slope_check(fits, {e: 0.5 for e in beta.ETA0}).outcome == "fails"  # half the predicted trend
    fits[beta.ETA0[0]]["refused"] = True
    assert beta.slope_check(fits, {e: 0.25 for e in beta.ETA0}).outcome == "unresolved"
