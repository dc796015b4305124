"""The Adam validation scripts compute their verdicts from numbers: fabricated measurements in,
checks out, and changing the numbers changes the outcome (no sentence of a verdict is fixed).

Each script exposes the function that turns its measured numbers into :class:`Check` objects
(``make_checks`` and its parts); these tests call them with made-up numbers, so they run in
milliseconds and need no simulation.
"""
import math

import numpy as np
import pytest

from gibbs_sgd.validation import Row
from validation_scripts import load_script


@pytest.fixture(scope="module")
def abs_():
    return load_script("adam_batch_size")


@pytest.fixture(scope="module")
def aniso():
    return load_script("adam_anisotropic")


@pytest.fixture(scope="module")
def avn():
    return load_script("adaptive_vs_normalisation")


@pytest.fixture(scope="module")
def bias():
    return load_script("bias_correction")


# -- adam_batch_size ---------------------------------------------------------------------------

def _points(batches, temps, rel_se=0.002):
    return [{"batch_size": b, "temperature": t, "stderr": rel_se * t if np.isfinite(t) else math.nan}
            for b, t in zip(batches, temps)]


def test_batch_size_flatness_follows_the_numbers(abs_):
    b = [1, 4, 16, 64, 256]
    flat = abs_.flatness_check("rule", _points(b, [1.0, 1.01, 0.99, 1.0, 1.02]))
    rising = abs_.flatness_check("rule", _points(b, [1.0, 1.0, 1.01, 1.03, 1.11]))
    dip_rise = abs_.flatness_check("rule", _points(b, [1.0, 0.95, 0.96, 1.0, 1.10]))
    assert flat.outcome == "holds" and "0.02" in flat.sentence()
    assert rising.outcome == "fails" and "0.11" in rising.sentence()
    assert dip_rise.outcome == "fails"  # a dip then a rise is not "flat", whatever a power law says
    # a missing point: a flat remainder cannot hold (unresolved), a rise already seen still fails
    gap = abs_.flatness_check("rule", _points(b, [math.nan, 1.0, 1.0, 1.01, 1.0]))
    assert gap.outcome == "unresolved" and "not equilibrated" in gap.quantity
    assert abs_.flatness_check("rule", _points(b, [math.nan, 1.0, 2.0, 3.0, 4.0])).outcome == "fails"
    # a ratio resolved only at 1 s.e. cannot hold
    assert abs_.flatness_check("rule", _points(b, [1.0, 1.0, 1.0, 1.0, 1.04], rel_se=0.02)).outcome == "unresolved"


def test_batch_size_sgd_against_its_exact_curve(abs_):
    b = [1, 16, 256]
    exact = [abs_.sgd_exact(x) for x in b]
    assert abs_.sgd_exact_check(_points(b, exact)).outcome == "holds"
    assert abs_.sgd_exact_check(_points(b, [abs_.ETA0 / 2] * 3)).outcome == "fails"  # flat is not the exact curve


def test_batch_size_sensitivities_decide_the_eta0_claim(abs_):
    base = {"temperature": 1.0, "stderr": 0.002}

    def pts(**elasticity):
        out = {"base": base}
        for p, factor in abs_.PARAMS.items():
            e = elasticity.get(p, 1.0 if p == "eta0" else 0.0)
            out[p] = {"temperature": factor**e, "stderr": 0.002 * factor**e}
        return out

    good = abs_.sensitivity_checks({1: pts()})
    assert [c.outcome for c in good] == ["holds"] * 4
    eps_matters = abs_.sensitivity_checks({1: pts(eps0=0.34)})
    assert [c.outcome for c in eps_matters] == ["holds", "holds", "holds", "fails"]
    assert "0.34" in eps_matters[3].sentence() and "eps0" in eps_matters[3].quantity
    assert abs_.sensitivity_checks({1: pts(N_s0=-0.3)})[2].outcome == "fails"
    assert abs_.sensitivity_checks({1: pts(eta0=0.5)})[0].outcome == "fails"


def test_batch_size_limit_eps0_to_infinity(abs_):
    sgd = _points([1, 4], [1.0, 1.0])
    dec = {e0: _points([1, 4], [abs_.limit_prediction(e0, 1), 1.0]) for e0 in (1.0, 10.0)}
    assert [c.outcome for c in abs_.limit_checks(dec, sgd, [1.0, 10.0])] == ["holds", "holds"]
    dec[10.0] = _points([1, 4], [1.0, 1.0])  # at the SGD value already: not the predicted departure 1/11
    assert [c.outcome for c in abs_.limit_checks(dec, sgd, [1.0, 10.0])] == ["holds", "fails"]
    # B = 1 not equilibrated: the check moves to the smallest B where both are, with that B's prediction
    dec[1.0] = _points([1, 4], [math.nan, abs_.limit_prediction(1.0, 4)])
    check = abs_.limit_checks(dec, sgd, [1.0])[0]
    assert check.outcome == "holds" and "B = 4" in check.quantity and check.target == pytest.approx(0.8)


def test_batch_size_row_verdict_changes_with_the_numbers(abs_):
    b = [1, 4, 16]
    sgd = _points(b, [abs_.sgd_exact(x) for x in b])
    dec = {1.0: _points(b, [abs_.sgd_exact(x) * abs_.limit_prediction(1.0, 1) for x in (1, 1, 1)])}
    sqrt_series = _points(b, [1.0, 1.0, 1.0])
    base = {"temperature": 1.0, "stderr": 0.001}
    sens = {1: {"base": base, **{p: {"temperature": f if p == "eta0" else 1.0, "stderr": 0.001}
                                 for p, f in abs_.PARAMS.items()}}}
    row = Row("adam_batch_size", "c", "s", "r", checks=abs_.make_checks(sgd, dec, sqrt_series, sens, [1.0]))
    assert row.outcome == "holds"
    dec[1.0][2]["temperature"] *= 1.3
    row = Row("adam_batch_size", "c", "s", "r", checks=abs_.make_checks(sgd, dec, sqrt_series, sens, [1.0]))
    assert row.outcome == "fails" and "eps0 = 1" in row.verdict and "0.30" in row.verdict


def test_batch_size_reads_the_slide_as_the_design_brief(abs_):
    """N_g = max(1, N_g0/B), 1 - beta = min(1, B/N0), eps = eps0 sqrt(B), lr = eps B eta0."""
    opt = abs_.decoupled(4, eps0=1.0)
    assert opt.betas == pytest.approx((1 - 4 / abs_.N_G0, 1 - 4 / abs_.N_S0))
    assert opt.eps == pytest.approx(2.0) and opt.lr == pytest.approx(2.0 * 4 * abs_.ETA0)
    assert abs_.decoupled(64).betas[0] == 0.0  # B > N_g0: no averaging


def test_batch_size_burn_in_covers_the_slowest_time_scale(abs_):
    """At B = 1 the s-average's horizon (1000 steps) exceeds nothing else only when lr_eff is large:
    the burn-in is BURN_MULT times the largest of tau and the horizons, never fewer."""
    tiny = dict(n_chains=10, max_steps=10)
    point = abs_.measure("x", abs_.decoupled(1, eps0=10.0), 1, tiny, 0)
    assert "refused" in point and not np.isfinite(point["temperature"])
    tau, slowest, _ = abs_.time_scales(abs_.decoupled(1, eps0=10.0), 1)
    assert slowest >= 1 / (1 - abs_.decoupled(1, eps0=10.0).betas[1]) and slowest >= tau


# -- adam_anisotropic --------------------------------------------------------------------------

def _aniso_results(aniso, lrs, rel_se=0.001):
    return {(name, lr): {"T": aniso.predicted(name, lr), "se": rel_se * aniso.predicted(name, lr)}
            for lr in lrs for name in aniso.OPTIMIZERS}


def test_anisotropic_checks_follow_the_numbers(aniso):
    lrs = [0.002, 0.01, 0.05]
    res = _aniso_results(aniso, lrs)
    assert [c.outcome for c in aniso.make_checks(res, lrs)] == ["holds"] * 4
    # Adam's coordinate 2 hotter by 5% at the smallest lr: the claim fails, and so do the curves
    res[("Adam", 0.002)]["T"] = res[("Adam", 0.002)]["T"] * np.array([1.0, 1.05])
    out = [c.outcome for c in aniso.make_checks(res, lrs)]
    assert out == ["fails", "fails", "fails", "fails"]
    # imprecise numbers: unresolved, not holds
    res = _aniso_results(aniso, lrs, rel_se=0.02)
    assert all(c.outcome == "unresolved" for c in aniso.make_checks(res, lrs))
    # a run whose burn-in is below 5 slowest time scales: every check refused
    res = _aniso_results(aniso, lrs)
    res[("Adam", 0.05)]["burn_in_multiple"] = 0.5
    assert all(c.outcome == "unresolved" and "burn-in" in c.no_verdict for c in aniso.make_checks(res, lrs))


def test_anisotropic_burn_in_covers_the_squared_gradient_horizon(aniso):
    for lr in aniso.LRS:
        burn, steps, tau, slowest = aniso.schedule(lr)
        assert burn >= aniso.BURN_MULT * 1 / (1 - aniso.BETA_S) and burn >= aniso.BURN_MULT * tau
        assert steps - burn >= aniso.WINDOW_MULT * tau


def test_anisotropic_mean_field_departure_vanishes_linearly(aniso):
    """The prediction the checks use: D(lr) = T(Adam)/T(beta_g = 0) - 1 is O(lr)."""
    d = [aniso.predicted("Adam", lr)[1] / aniso.predicted("Adam, beta_g = 0", lr)[1] - 1 for lr in (1e-3, 2e-3)]
    assert d[0] < 0 and d[1] / d[0] == pytest.approx(2.0, rel=0.02)


# -- adaptive_vs_normalisation -----------------------------------------------------------------

def _avn_rows(avn, momenta, rms_law=None):
    adam = [{"m": m, "temperature": avn.mean_field("adam", m), "se": 1e-6} for m in momenta]
    rms = [{"m": m, "temperature": (rms_law or (lambda m: avn.mean_field("rmsprop", m)))(m), "se": 1e-5 / (1 - m)}
           for m in momenta]
    for r in adam:
        r["t_mean_field"] = avn.mean_field("adam", r["m"])
    for r in rms:
        r["t_mean_field"] = avn.mean_field("rmsprop", r["m"])
    return adam, rms


def test_adaptive_vs_normalisation_checks_follow_the_numbers(avn):
    momenta = [0.0, 0.5, 0.9, 0.99]
    adam, rms = _avn_rows(avn, momenta)
    assert [c.outcome for c in avn.make_checks(adam, rms, 5.0)] == ["holds"] * 3
    # RMSprop whose T ignored mu (as Adam's does) would not be heavy ball: that check fails
    adam, rms = _avn_rows(avn, momenta, rms_law=lambda m: avn.mean_field("rmsprop", 0.0))
    out = avn.make_checks(adam, rms, 5.0)
    assert out[1].outcome == "fails" and out[2].outcome == "fails"
    # Adam 3% hotter at beta_g = 0.9: the lecture's claim fails
    adam, rms = _avn_rows(avn, momenta)
    adam[2]["temperature"] *= 1.03
    assert avn.make_checks(adam, rms, 5.0)[0].outcome == "fails"
    # a burn-in shorter than 5 slowest time scales: no verdict
    assert all(c.outcome == "unresolved" and "burn-in" in c.no_verdict for c in avn.make_checks(adam, rms, 0.75))


# -- bias_correction ---------------------------------------------------------------------------

def _traces(curves):
    s = np.arange(100)
    return {m: (s, c, 0.001 * c) for m, c in curves.items()}


def test_bias_correction_checks_follow_the_numbers(bias):
    torch = 1.0 + np.exp(-np.arange(100) / 10.0)
    traces = _traces({"torch": torch, "running": torch * 1.02, "none": torch * 0.5})
    plateaus = {"torch": (1.0, 0.001), "running": (1.002, 0.001), "none": (1.003, 0.001)}
    assert [c.outcome for c in bias.make_checks(traces, plateaus, 5.0)] == ["holds"] * 3
    traces = _traces({"torch": torch, "running": torch * np.where(np.arange(100) < 5, 1.5, 1.0), "none": torch})
    plateaus["none"] = (1.05, 0.001)
    out = bias.make_checks(traces, plateaus, 5.0)
    assert [c.outcome for c in out] == ["fails", "holds", "fails"] and "0.50" in out[0].sentence()
    # the plateau measured too early is refused, whatever its value
    out = bias.make_checks(traces, plateaus, 0.3)
    assert out[1].outcome == out[2].outcome == "unresolved" and "burn-in" in out[2].no_verdict
