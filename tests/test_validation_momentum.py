"""The momentum validation scripts' verdicts follow their numbers.

Each script (validation/ema_momentum.py, heavy_ball.py, collapse.py, same_schedule.py) turns
measured numbers into Checks with one function; these tests feed it fabricated numbers -- the
exact law, then the same numbers with one thing changed -- and check that the verdict changes the
way the claim says it must. No simulation runs here (test_validation.py runs every script at
smoke-test size).
"""
import math

import numpy as np
import pytest

from gibbs_sgd.validation import combine
from validation_scripts import load_script


@pytest.fixture(scope="module")
def ema():
    return load_script("ema_momentum")


@pytest.fixture(scope="module")
def heavy():
    return load_script("heavy_ball")


@pytest.fixture(scope="module")
def collapse():
    return load_script("collapse")


@pytest.fixture(scope="module")
def same():
    return load_script("same_schedule")


# Fabricated standard error of T/T_small: 0.1%, what a quick run gives.
SE = 0.001


# -- EMA momentum ------------------------------------------------------------------------------------
def _ema_points(ema, ratio=None, burn_tau=6.0):
    """Points on the exact law (or ``ratio(lr_h, n)``) over the quick grid."""
    size = ema.SIZES["quick"]
    out = []
    for lr_h in size["lrs"]:
        for n in size["horizons"]:
            exact = ema.exact_ratio(lr_h, n)
            out.append({"lr_h": lr_h, "N": n, "ratio": exact if ratio is None else ratio(lr_h, n), "ratio_se": SE,
                        "exact": exact, "burn_tau": burn_tau})
    return out


def test_ema_exact_law_holds(ema):
    outcome, sentence = combine(ema.checks(_ema_points(ema)))
    assert outcome == "holds", sentence


def test_ema_exact_law_is_the_closed_form(ema):
    for lr_h, n in [(0.005, 1), (0.5, 5), (1.5, 100)]:
        assert ema.exact_ratio(lr_h, n) == pytest.approx(1 / (1 - lr_h / (2 * (2 * n - 1))), rel=1e-12)


def test_ema_a_point_off_its_exact_value_fails(ema):
    pts = _ema_points(ema)
    pts[7]["ratio"] *= 1.05
    outcome, sentence = combine(ema.checks(pts))
    assert outcome == "fails"
    assert f"lr h = {pts[7]['lr_h']:g}, N = {pts[7]['N']}" in sentence


def test_ema_temperature_that_depends_on_n_at_small_lr_fails_the_claim(ema):
    """T(N) = T_small (1 + 0.03 (N - 1)/99) at every lr: the claim's check at the smallest lr fails."""
    pts = _ema_points(ema, ratio=lambda lr_h, n: ema.exact_ratio(lr_h, n) * (1 + 0.03 * (n - 1) / 99))
    cs = ema.checks(pts)
    claim = [c for c in cs if c.quantity.startswith("T/(eta sigma^2/2B) - 1") and "N = 100" in c.quantity]
    assert claim[0].outcome == "fails"


def test_ema_departure_quadratic_in_lr_fails_the_rate(ema):
    """A departure delta = (lr h / (2N - 1))^2 instead of lr h / (2(2N - 1)): the exponent check fails."""
    def ratio(lr_h, n):
        x = lr_h / (2 * n - 1)
        return 1 / (1 - x * x)
    cs = ema.checks(_ema_points(ema, ratio=ratio))
    exponent = next(c for c in cs if c.quantity.startswith("exponent p"))
    assert exponent.outcome == "fails" and exponent.value == pytest.approx(2.0, abs=0.05)


def test_ema_under_burnt_points_get_no_verdict(ema):
    pts = _ema_points(ema, burn_tau=ema.MIN_BURN_TAU - 1)
    pts[0]["ratio"] *= 1.5  # even a wild value: no verdict without burn-in
    cs = ema.checks(pts)
    per_point = [c for c in cs if "burn-in" in c.no_verdict]
    assert per_point and all(c.outcome == "unresolved" for c in per_point)
    assert combine(cs)[0] == "unresolved"


# -- heavy ball --------------------------------------------------------------------------------------
def _heavy_points(heavy, scale=None, burn_tau=6.0):
    """Fixed-lr and rule points on the exact law, T multiplied by ``scale(point)`` if given."""
    size = heavy.SIZES["quick"]
    fixed, rule = heavy.plan(size)
    out = []
    for grid, is_rule in ((fixed, False), (rule, True)):
        for g in grid:
            lr, mu, b = g["lr"], g["momentum"], g["batch_size"]
            t_small = lr / (1 - mu) * heavy.SIGMA**2 / (2 * b)
            exact = heavy.t_exact(lr, mu, b) / t_small
            p = {"lr": lr, "momentum": mu, "batch_size": b, "rule": is_rule,
                 "b_eta0_h": b * heavy.ETA0 * heavy.H if is_rule else math.nan,
                 "x": lr * heavy.H / (1 + mu), "exact": exact, "burn_tau": burn_tau, "t_small": t_small}
            f = 1.0 if scale is None else scale(p)
            p.update(ratio=exact * f, ratio_se=SE, temperature=exact * f * t_small, se=SE * t_small)
            out.append(p)
    return out


def test_heavy_exact_law_holds(heavy):
    outcome, sentence = combine(heavy.checks(_heavy_points(heavy)))
    assert outcome == "holds", sentence


def test_heavy_temperature_flat_in_mu_at_fixed_lr_fails(heavy):
    """If momentum did not heat (T independent of mu at fixed lr), the (1 - mu) exponent check fails."""
    pts = _heavy_points(heavy, scale=lambda p: 1.0 if p["rule"] else (1 - p["momentum"]))
    cs = heavy.checks(pts)
    mu_exp = next(c for c in cs if "exponent of 1 - mu" in c.quantity)
    assert mu_exp.outcome == "fails" and mu_exp.value == pytest.approx(0.0, abs=0.02)


def test_heavy_rule_off_at_small_b_eta0_h_fails_the_claim(heavy):
    """A 3% excess at mu = 0.99 and the smallest B eta0 h: the lecture's claim fails there."""
    small = heavy.SIZES["quick"]["batches"][0] * heavy.ETA0 * heavy.H
    pts = _heavy_points(heavy, scale=lambda p: 1.03 if p["rule"] and p["b_eta0_h"] == small and p["momentum"] == 0.99
                        else 1.0)
    outcome, sentence = combine(heavy.checks(pts))
    assert outcome == "fails" and "mu = 0.99" in sentence


def test_heavy_where_it_holds_is_the_exact_bound(heavy):
    x = heavy.where_it_holds()
    lr = (1 - 0.0) * 1 * x / heavy.H  # mu = 0 departs most
    t = heavy.t_exact(lr, 0.0, 1) / (lr * heavy.SIGMA**2 / 2)
    assert t - 1 == pytest.approx(heavy.CLAIM_TOL, rel=1e-9)


# -- collapse ----------------------------------------------------------------------------------------
def _collapse_points(collapse, size="tiny"):
    out = []
    for p in collapse.plan(collapse.SIZES[size]):
        exact = collapse.exact_ratio(p["opt"], p["batch_size"])
        out.append({"series": p["series"], "x": collapse.x_of(p["opt"]), "ratio": exact, "ratio_se": SE,
                    "exact": exact, "burn_tau": 6.0})
    return out


def test_collapse_exact_points_hold_and_x_is_the_collapse_variable(collapse):
    pts = _collapse_points(collapse)
    curves = collapse.theory_curves(collapse.SIZES["tiny"]["xs"])
    outcome, sentence = combine(collapse.checks(pts, curves))
    assert outcome == "holds", sentence
    for p in pts:  # every rule's exact law is 2/(2 - x) in its own x
        assert p["exact"] == pytest.approx(2 / (2 - p["x"]), rel=1e-9)


def test_collapse_a_point_off_its_curve_fails(collapse):
    pts = _collapse_points(collapse)
    pts[3]["ratio"] *= 0.97
    outcome, sentence = combine(collapse.checks(pts, collapse.theory_curves(collapse.SIZES["tiny"]["xs"])))
    assert outcome == "fails" and pts[3]["series"] in sentence


def test_collapse_curves_that_do_not_coincide_fail(collapse):
    curves = collapse.theory_curves(collapse.SIZES["tiny"]["xs"])
    name = next(iter(curves))
    x, y = curves[name]
    curves[name] = (x, y * 1.001)
    cs = collapse.checks(_collapse_points(collapse), curves)
    assert cs[0].outcome == "fails"


def test_collapse_reference_laws_match_the_theory(collapse):
    laws = collapse.reference_laws()
    checked = [r for r in laws if not math.isnan(r[collapse._AGREE])]
    assert len(checked) >= 7
    assert all(r[collapse._AGREE] < 1e-9 for r in checked)
    by_law = {r["law"]: r for r in laws}
    assert "heavy_ball" in by_law["heavy ball under lr = (1 - mu) B eta0"]["used by"]
    assert "ema_momentum" in by_law["EMA momentum, beta = 1 - 1/N"]["used by"]


# -- same schedule -----------------------------------------------------------------------------------
def _same_results(same, b_factor=1.0, c_factor=0.5, occ_b=0.55):
    edges = np.linspace(0.0, same.T_END, same.N_WINDOWS + 1)
    base = [(0.6 - 0.02 * i, 0.002) for i in range(same.N_WINDOWS)]
    res = {"A": {"windows": base, "occupation": (0.55, 0.003)},
           "B": {"windows": [(v * b_factor, s) for v, s in base], "occupation": (occ_b, 0.003)},
           "C": {"windows": [(v * c_factor, s) for v, s in base], "occupation": (1.0, 0.001)}}
    return res, edges


def test_same_schedule_equal_traces_hold(same):
    outcome, sentence = combine(same.checks(*_same_results(same)))
    assert outcome == "holds", sentence


@pytest.mark.parametrize("change, expected_in_sentence", [
    (dict(b_factor=1.10), "<L - L_min>_B / <L - L_min>_A - 1"),
    (dict(occ_b=0.65), "upper-well occupation"),
    (dict(c_factor=1.0), "negative control"),  # a control that cannot be told apart from A: the test is blind
])
def test_same_schedule_verdict_follows_the_numbers(same, change, expected_in_sentence):
    outcome, sentence = combine(same.checks(*_same_results(same, **change)))
    assert outcome == "fails" and expected_in_sentence in sentence


def test_same_schedule_temperature_is_one_function_of_langevin_time(same):
    """Two settings' schedules give the same T at the same t, at different step counts."""
    slow, fast = same.OnLangevinTime(1e-3), same.OnLangevinTime(4e-3)
    for sched in (slow, fast):
        t = sched.times()
        np.testing.assert_allclose(sched.factors(sched.n_steps) * same.T0, same.temperature(t), rtol=1e-12)
        assert t[-1] < same.T_END <= t[-1] + sched.dt0 * sched.factors(sched.n_steps)[-1] * (1 + 1e-12)
    assert slow.n_steps == pytest.approx(4 * fast.n_steps, rel=0.01)


def test_ema_measured_range_follows_the_numbers(ema):
    """The verdict's 'measured: ... up to lr h = ...' moves when a number moves."""
    pts = _ema_points(ema)
    text = ema.measured_range(pts)
    assert "up to lr h = 0.015" in text and "from lr h = 0.05" in text
    for p in pts:
        if p["lr_h"] == 0.015 and p["N"] == 1:
            p["ratio"] = 1.02
    assert "up to lr h = 0.005" in ema.measured_range(pts) and "from lr h = 0.015" in ema.measured_range(pts)


def test_heavy_measured_range_follows_the_numbers(heavy):
    rule = [p for p in _heavy_points(heavy) if p["rule"]]
    assert "up to B eta0 h = 0.005" in heavy.measured_range(rule)
    for p in rule:
        p["ratio"] = 1.0  # a temperature flat in mu at every B eta0 h: the rule would hold everywhere
    assert "up to B eta0 h = 1.28" in heavy.measured_range(rule) and "beyond" not in heavy.measured_range(rule)
