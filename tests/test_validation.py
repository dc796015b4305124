"""Every validation script runs end to end at smoke-test size and writes its figure and row."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "validation").glob("*.py") if p.stem != "run_all")


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_tiny(name, tmp_path):
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, str(ROOT / "validation" / f"{name}.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads((tmp_path / f"{name}.json").read_text())
    assert row["name"] == name and row["verdict"] and row["result"] and row["claim"]
    assert (tmp_path / f"{name}.png").stat().st_size > 5000


def test_run_all_builds_the_report(tmp_path):
    pytest.importorskip("matplotlib")
    first = SCRIPTS[0]
    proc = subprocess.run([sys.executable, str(ROOT / "validation" / "run_all.py"), "--tiny", "--out", str(tmp_path),
                           "--only", first], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    assert "| claim |" in report and first in report


def test_verdicts_are_computed_from_the_numbers():
    """A check's outcome follows its numbers against the fixed tolerance: changing the measured
    value (or its error) changes the verdict and every number in its sentence."""
    from gibbs_sgd.validation import Check, Row

    base = dict(quantity="T(64)/T(1) - 1", tolerance=0.01)
    assert Check(value=0.003, stderr=0.001, **base).outcome == "holds"
    assert Check(value=0.03, stderr=0.001, **base).outcome == "fails"
    assert Check(value=0.009, stderr=0.002, **base).outcome == "unresolved"
    assert Check(value=float("nan"), stderr=0.001, **base).outcome == "unresolved"
    a = Row("x", "c", "s", "r", checks=[Check(value=0.003, stderr=0.001, **base)])
    b = Row("x", "c", "s", "r", checks=[Check(value=0.004, stderr=0.001, **base),
                                        Check(quantity="slope", value=2.0, stderr=0.1, tolerance=0.5, target=1.0)])
    assert a.outcome == "holds" and b.outcome == "fails"
    assert "0.0030" in a.verdict and "0.0030" not in b.verdict and "slope = 2.00" in b.verdict
    rel = Check(quantity="T", value=1.02, stderr=0.001, tolerance=0.05, target=1.0, relative=True)
    assert rel.outcome == "holds" and "relative" in rel.sentence()
    with pytest.raises(ValueError, match="tolerance"):
        Check(quantity="q", value=1.0, stderr=0.1, tolerance=0.0)


def test_report_leads_with_the_deciding_numbers(tmp_path):
    from types import SimpleNamespace

    from gibbs_sgd.validation import Check, Row, build_report, finish

    args = SimpleNamespace(out=tmp_path, mode="tiny")
    finish(args, Row("demo_claim", "a claim", "setup", "result",
                     checks=[Check(quantity="spread", value=0.002, stderr=0.001, tolerance=0.01)]))
    report = build_report(tmp_path).read_text()
    head = report.split("## Details")[0]
    assert "| **demo_claim**: a claim | **holds** | spread = 0.0020 ± 0.0010 against 0 ± 0.01: holds |" in head


def test_controls_and_refused_verdicts():
    """A control must lie beyond its tolerance; a check with a stated reason gives no verdict."""
    from gibbs_sgd.validation import Check, Row

    control = dict(quantity="colder setting's departure", tolerance=0.05, expect="beyond")
    assert Check(value=0.6, stderr=0.01, **control).outcome == "holds"
    assert Check(value=0.01, stderr=0.01, **control).outcome == "fails"
    assert Check(value=0.05, stderr=0.01, **control).outcome == "unresolved"
    short = Check(quantity="T - 1", value=0.0, stderr=0.001, tolerance=0.01, no_verdict="burn-in 2 < 5 relaxation times")
    assert short.outcome == "unresolved" and "burn-in 2 < 5" in short.sentence()
    near = Check(quantity="spread", value=0.008, stderr=0.0005, tolerance=0.01)
    row = Row("x", "c", "s", "r", checks=[Check(value=0.6, stderr=0.01, **control), near])
    assert row.outcome == "holds" and row.deciding == near.sentence()  # the nearest to failing decides


# -- the helpers the scripts share (gibbs_sgd.validation) ---------------------------------------
def test_worst_item_decides_as_the_items_would_together():
    """The max check built from worst_item holds, fails or is unresolved exactly as the items'
    own checks would together: one failing item fails it, one open item leaves it open."""
    from gibbs_sgd.validation import Check, worst_item

    tol = 0.01
    cases = {"holds": [(0.001, 0.001), (-0.004, 0.002)],
             "fails": [(0.001, 0.001), (-0.03, 0.002), (0.009, 0.004)],
             "unresolved": [(0.001, 0.001), (0.009, 0.002)]}
    for expected, items in cases.items():
        assert {Check("q", v, s, tol).outcome for v, s in items} >= {expected}
        assert Check("max", *worst_item(items, tol), tol).outcome == expected
    assert worst_item([(float("nan"), 0.1)], tol) == (pytest.approx(float("nan"), nan_ok=True), float("inf"))


def test_ratio_error_is_first_order_propagation():
    """sigma_r / r = sqrt of the sum of the squared relative errors, checked on a simulated ratio."""
    import numpy as np

    from gibbs_sgd.validation import ratio

    r, se = ratio(3.0, 0.003, 2.0, 0.004)
    assert r == 1.5 and se == pytest.approx(1.5 * np.hypot(0.001, 0.002), rel=1e-14)
    rng = np.random.default_rng(0)
    sim = (3.0 + 0.003 * rng.standard_normal(200_000)) / (2.0 + 0.004 * rng.standard_normal(200_000))
    assert np.std(sim) == pytest.approx(se, rel=0.02)  # 200 000 draws: the std's error is 0.2%


def test_rate_fit_recovers_a_known_rate_and_refuses_too_few_points():
    import numpy as np

    from gibbs_sgd.validation import rate_fit

    x = np.array([0.01, 0.03, 0.1, 0.3])
    a, se_a, p, se_p = rate_fit(x, 0.5 * x**1.2, np.full(4, 1e-4))
    assert p == pytest.approx(1.2, abs=1e-4) and se_p > 0
    a, se_a, p, se_p = rate_fit(x, 0.5 * x, np.full(4, 1e-4))
    assert a == pytest.approx(0.5, rel=1e-9) and p == pytest.approx(1.0, abs=1e-6)
    assert rate_fit(x[:2], x[:2], np.ones(2)) == (pytest.approx(float("nan"), nan_ok=True), float("inf"),
                                                  pytest.approx(float("nan"), nan_ok=True), float("inf"))


def test_run_length_and_burn_in_refusal():
    from gibbs_sgd.validation import Check, burn_in_refusal, run_length

    assert run_length(100.0, 6.0, 10.0, 10**6, 200) == (1600, 600)
    assert run_length(2.0, 6.0, 10.0, 10**6, 200) == (212, 12)  # a fast point samples at least 200 steps
    steps, burn = run_length(1e4, 6.0, 10.0, 4000, 200)  # capped: the burn-in keeps its share, in steps
    assert (steps, burn) == (4000, 1500) and burn_in_refusal(burn / 1e4, 5.0) != ""
    assert burn_in_refusal(5.0, 5.0) == "" and "burn-in" in burn_in_refusal(float("nan"), 5.0)
    assert Check("q", 0.0, 0.001, 0.01, no_verdict=burn_in_refusal(2.0, 5.0)).outcome == "unresolved"


def test_shown_range_reads_the_data_not_the_law():
    from gibbs_sgd.validation import shown_range

    held = [(0.1, [(0.001, 0.001, 1)]), (0.2, [(0.002, 0.001, 1)])]
    assert shown_range(held, 0.01, "x", "N", "d") == "every N within 1% up to x = 0.2"
    broken = held + [(0.4, [(0.05, 0.001, 1), (0.2, 0.01, 2)]), (0.8, [(0.5, 0.001, 1)])]
    assert shown_range(broken, 0.01, "x", "N", "d").endswith("beyond it from x = 0.4 (N = 2: d = 0.200 ± 0.010)")
    assert shown_range([(0.1, [(0.009, 0.004, 1)])], 0.01, "x", "N", "d") == "no x with every N shown within 1%"
