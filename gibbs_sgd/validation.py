"""Shared machinery of the validation scripts (``validation/*.py``): options, rows, the report.

Each script measures one claim of the lecture and calls :func:`finish` with a figure and a
:class:`Row`; the row is written to ``figures/<name>.json`` and :func:`build_report`
assembles every row into ``figures/REPORT.md`` with the command, machine and date of the run.

The scripts run with ``backend="auto"`` (the GPU where there is one) but always with float64
state (``dtype=np.float64`` in every call): their verdicts rest on differences of 0.1% and
less, and with tiny learning rates a float32 state stalls once ``lr * g`` falls below its
rounding step.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np

from . import __version__

__all__ = ["Row", "options", "finish", "build_report", "machine_description", "fmt"]

FIGURES = Path(os.environ.get("GIBBS_SGD_FIGURES", Path(__file__).resolve().parent.parent / "figures"))


@dataclass
class Row:
    """One line of the report: the claim, what was run, the numbers, the verdict."""

    name: str
    claim: str
    setup: str
    result: str
    verdict: str
    details: dict = field(default_factory=dict)


def options(description: str, argv=None) -> argparse.Namespace:
    """``--quick`` (at most ~2 minutes on 2 CPU cores) or the full run; ``--out`` figures folder."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="small sizes: at most a couple of minutes on 2 CPU cores")
    ap.add_argument("--tiny", action="store_true", help="smoke-test sizes (used by the test suite)")
    ap.add_argument("--out", type=Path, default=FIGURES, help="folder for the figure and the report row")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    return args


def fmt(value: float, err: float) -> str:
    """``value ± err`` with the error to two significant digits and the value to match."""
    if not np.isfinite(err) or err <= 0:
        return f"{value:.6g}"
    digits = max(0, 1 - int(np.floor(np.log10(err))))
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores ({numba.get_num_threads()} Numba threads), Python "
            f"{platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}, gibbs_sgd {__version__}")


def finish(args, row: Row, figure=None) -> Path:
    """Save the figure as ``<out>/<name>.png`` and the row as ``<out>/<name>.json``; print the row."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if figure is not None:
        figure.savefig(out / f"{row.name}.png", dpi=130, bbox_inches="tight")
    record = asdict(row)
    record["mode"] = args.mode
    record["command"] = " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    record["machine"] = machine_description()
    record["date"] = datetime.date.today().isoformat()
    (out / f"{row.name}.json").write_text(json.dumps(record, indent=1, default=float))
    print(f"[{row.name}] {row.verdict}\n  {row.result}")
    return out / f"{row.name}.json"


def build_report(out: Path = FIGURES, command: str | None = None) -> Path:
    """Assemble ``REPORT.md`` from every ``<name>.json`` row in ``out``."""
    out = Path(out)
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if "claim" in p.read_text()[:4000]]
    lines = ["# Validation report: the lecture's claims, measured", ""]
    if rows:
        modes = sorted({r["mode"] for r in rows})
        lines += [f"Run: `{command or 'python validation/run_all.py'}` ({', '.join(modes)} mode); "
                  f"machine: {rows[0]['machine']}; date: {max(r['date'] for r in rows)}.", ""]
    lines += ["| claim | what was run | measured | verdict |", "|---|---|---|---|"]
    for r in rows:
        cells = [r["claim"], r["setup"], r["result"], f"**{r['verdict']}** ([figure]({r['name']}.png))"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path
