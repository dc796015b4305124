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
import math
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np

from . import __version__

__all__ = ["Check", "Row", "options", "finish", "build_report", "machine_description", "fmt", "combine"]

FIGURES = Path(os.environ.get("GIBBS_SGD_FIGURES", Path(__file__).resolve().parent.parent / "figures"))


# Half-width of a check's interval in standard errors: 2 (95.4% two-sided). A check decides
# only when the whole interval is on one side of its tolerance.
_Z_CHECK = 2.0


@dataclass(frozen=True)
class Check:
    r"""One number of a claim against a tolerance fixed in the script *before* the run.

    The measured departure :math:`\delta = \text{value} - \text{target}` has the interval
    :math:`\delta \pm z\,\sigma` (``z = 2``). The check

    * **holds** when the whole interval lies within ``[-tolerance, tolerance]`` (the claim is
      true to within the stated tolerance, and the data show it);
    * **fails** when the whole interval lies outside it (the departure is larger than the
      tolerance, and the data show it);
    * is **unresolved** otherwise (the errors are too large to tell: run longer or more chains).

    A verdict is therefore a number against a fixed tolerance, never an exponent threshold or a
    sentence written in advance: "T(B) / T(1) - 1 over B = 1..64 = +0.3% ± 0.1% within ±1%: holds".

    Parameters
    ----------
    quantity : str, what is measured (names and units), e.g. ``"max |T(B)/T(1) - 1| over B = 1..64"``
    value, stderr : the measurement and its standard error (0 for an exact number)
    tolerance : float > 0, the largest ``|value - target|`` for which the claim counts as true
    target : float, what the claim predicts (default 0: a departure)
    relative : bool, ``tolerance`` is a fraction of ``|target|`` (printed as a percentage)
    expect : ``"within"`` (default: the departure must be at most the tolerance) or
        ``"beyond"`` (it must exceed it: a negative control, or a claim that an effect exists);
        for "beyond" the check holds when the whole interval lies outside the tolerance and
        fails when the whole interval lies inside
    no_verdict : str, a reason why this number cannot decide (too short a burn-in, ...): the
        check is then "unresolved" whatever its numbers, and the reason is printed
    """

    quantity: str
    value: float
    stderr: float
    tolerance: float
    target: float = 0.0
    relative: bool = False
    expect: str = "within"
    no_verdict: str = ""

    def __post_init__(self):
        if not (np.isfinite(self.tolerance) and self.tolerance > 0):
            raise ValueError(f"tolerance must be finite and > 0, got {self.tolerance}")
        if not (self.stderr >= 0):
            raise ValueError(f"stderr must be >= 0, got {self.stderr}")
        if self.expect not in ("within", "beyond"):
            raise ValueError(f"expect must be 'within' or 'beyond', got {self.expect!r}")

    @property
    def allowed(self) -> float:
        """The tolerance in the units of ``value``."""
        return self.tolerance * abs(self.target) if self.relative else self.tolerance

    @property
    def outcome(self) -> str:
        """``"holds"``, ``"fails"`` or ``"unresolved"`` (also for a NaN measurement, or with a
        ``no_verdict`` reason)."""
        dep = abs(self.value - self.target)
        half = _Z_CHECK * self.stderr
        if self.no_verdict or not (np.isfinite(dep) and np.isfinite(half)):
            return "unresolved"
        inside, outside = dep + half <= self.allowed, dep - half > self.allowed
        if inside:
            return "holds" if self.expect == "within" else "fails"
        if outside:
            return "fails" if self.expect == "within" else "holds"
        return "unresolved"

    @property
    def closeness(self) -> float:
        """How near the check is to the other outcome, in tolerances (larger: nearer to failing)."""
        dep = abs(self.value - self.target)
        ratio = dep / self.allowed if self.allowed > 0 else math.inf
        if not np.isfinite(ratio):
            return math.inf
        return ratio if self.expect == "within" else (1.0 / ratio if ratio > 0 else math.inf)

    def sentence(self) -> str:
        """The check in words, every number from the measurement: ``quantity = v ± e against
        target within (or beyond) tolerance: outcome``."""
        tol = f"{self.tolerance:.3g} (relative, ±{self.allowed:.3g})" if self.relative else f"{self.tolerance:.3g}"
        measured = fmt(self.value, self.stderr) if 0 < self.stderr < math.inf else f"{self.value:.6g}"
        where = "beyond" if self.expect == "beyond" else "against"
        text = f"{self.quantity} = {measured} {where} {self.target:.6g} ± {tol}: {self.outcome}"
        return text + (f" ({self.no_verdict})" if self.no_verdict else "")


def combine(checks: list[Check]) -> tuple[str, str]:
    """A row's outcome from its checks and the sentence that decides it.

    The row **holds** when every check holds, **fails** when one fails (the deciding sentence
    is the failing check with the largest departure in tolerances), and is **unresolved**
    otherwise (the deciding sentence is an unresolved check). When every check holds, the
    deciding one is the nearest to failing (a control "beyond" its tolerance counts by how far
    beyond it is)."""
    if not checks:
        return "unresolved", "no check was made"
    fails = [c for c in checks if c.outcome == "fails"]
    open_ = [c for c in checks if c.outcome == "unresolved"]
    scale = lambda c: c.closeness  # noqa: E731
    if fails:
        return "fails", max(fails, key=scale).sentence()
    if open_:
        return "unresolved", max(open_, key=scale).sentence()
    return "holds", max(checks, key=scale).sentence()


@dataclass
class Row:
    """One line of the report: the claim, what was run, the numbers, the verdict.

    With ``checks`` (the preferred form) the verdict is computed: ``outcome`` (holds / fails /
    unresolved) and ``deciding`` (the sentence of the check that decides it) are filled in, and
    ``verdict`` defaults to them; a script may still prefix its own summary."""

    name: str
    claim: str
    setup: str
    result: str
    verdict: str = ""
    details: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    outcome: str = ""
    deciding: str = ""

    def __post_init__(self):
        if self.checks:
            self.outcome, self.deciding = combine(self.checks)
            if not self.verdict:
                self.verdict = f"{self.outcome}: {self.deciding}"


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
        figure.savefig(out / f"{row.name}.png", dpi=150, bbox_inches="tight")
    record = asdict(row)
    record["checks"] = [{**asdict(c), "outcome": c.outcome, "sentence": c.sentence()} for c in row.checks]
    record["mode"] = args.mode
    record["command"] = " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    record["machine"] = machine_description()
    record["date"] = datetime.date.today().isoformat()
    (out / f"{row.name}.json").write_text(json.dumps(record, indent=1, default=float))
    print(f"[{row.name}] {row.verdict}\n  {row.result}")
    return out / f"{row.name}.json"


def _git_commit() -> str | None:
    """The checkout's short commit (with "+changes" when its code differs from it), if any."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "gibbs_sgd",
                                "validation"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) if head else None


def build_report(out: Path = FIGURES, command: str | None = None) -> Path:
    """Assemble ``REPORT.md`` from every ``<name>.json`` row in ``out``."""
    out = Path(out)
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if "claim" in p.read_text()[:4000]]
    lines = ["# Validation report: the lecture's claims, measured", ""]
    if rows:
        modes = sorted({r["mode"] for r in rows})
        commit = _git_commit()
        lines += [f"Run: `{command or 'python validation/run_all.py'}` ({', '.join(modes)} mode); "
                  f"machine: {rows[0]['machine']}; date: {max(r['date'] for r in rows)}"
                  + (f"; code at commit {commit}" if commit else "") + ".", ""]
    def cells(values):
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in values) + " |"

    # the summary first: one line per claim, the number that decides it against its tolerance
    lines += ["| claim | verdict | the number that decides it (tolerance fixed before the run) | figure |",
              "|---|---|---|---|"]
    for r in rows:
        outcome = r.get("outcome") or "see details"
        deciding = r.get("deciding") or r["verdict"]
        claim = r["claim"] if len(r["claim"]) <= 160 else r["claim"][:157].rstrip() + "..."
        lines.append(cells([f"**{r['name']}**: {claim}", f"**{outcome}**", deciding,
                            f"[{r['name']}.png]({r['name']}.png)"]))
    lines += ["", "## Details", ""]
    lines += ["| claim | what was run | measured | verdict |", "|---|---|---|---|"]
    for r in rows:
        checks = "".join(f"<br>- {c['sentence']}" for c in r.get("checks", []))
        lines.append(cells([r["claim"], r["setup"], r["result"],
                            f"**{r['verdict']}**{checks} ([figure]({r['name']}.png))"]))
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path
