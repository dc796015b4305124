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
