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
