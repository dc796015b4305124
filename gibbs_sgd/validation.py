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

__all__ = ["Check", "Row", "options", "finish", "build_report", "machine_description", "fmt", "combine",
           "ratio", "worst_item", "rate_fit", "run_length", "burn_in_refusal", "shown_range"]

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


# -- helpers the scripts share: turning measured numbers into the numbers a Check reads ----------
def ratio(value: float, stderr: float, reference: float, reference_stderr: float) -> tuple[float, float]:
    r"""A ratio of two independent measurements and its standard error (first order).

    .. math:: r = v / v_0, \qquad \sigma_r = |r|\,\sqrt{(\sigma/v)^2 + (\sigma_0/v_0)^2}.

    Parameters
    ----------
    value, stderr : float, the numerator and its standard error
    reference, reference_stderr : float, the denominator and its standard error (an independent run)

    Returns
    -------
    (r, stderr of r) : tuple of floats

    Example
    -------
    >>> r, se = ratio(2.0, 0.02, 1.0, 0.01)
    >>> round(r, 6), round(se, 6)
    (2.0, 0.028284)
    """
    r = value / reference
    return r, abs(r) * math.hypot(stderr / value, reference_stderr / reference)


def worst_item(items, tolerance: float) -> tuple[float, float]:
    r"""The (|value|, stderr) that decides "max over items of |value| within tolerance".

    With the checks' interval :math:`|v| \pm z\sigma` (``z = 2``): an item that fails (its whole
    interval beyond the tolerance, :math:`|v| - z\sigma > t`) if there is one, the one farthest
    beyond; otherwise the item whose interval reaches farthest, :math:`\max(|v| + z\sigma)`. A
    :class:`Check` of the returned pair therefore holds, fails or is unresolved exactly as the
    items would together. Items whose value is not finite are left out.

    Parameters
    ----------
    items : iterable of (value, stderr) pairs (departures from their targets)
    tolerance : float > 0, the tolerance the Check will use

    Returns
    -------
    (|value|, stderr) : tuple of floats; ``(nan, inf)`` when no item has a finite value

    Example
    -------
    >>> worst_item([(0.001, 0.001), (-0.004, 0.002), (0.02, 0.001)], 0.01)
    (0.02, 0.001)
    """
    items = [it for it in items if np.isfinite(it[0])]
    if not items:
        return math.nan, math.inf
    failing = [it for it in items if abs(it[0]) - _Z_CHECK * it[1] > tolerance]
    if failing:
        value, se = max(failing, key=lambda it: abs(it[0]) - _Z_CHECK * it[1])
    else:
        value, se = max(items, key=lambda it: abs(it[0]) + _Z_CHECK * it[1])
    return abs(value), se


def rate_fit(x, y, stderr) -> tuple[float, float, float, float]:
    r"""The rate at which a departure vanishes: its exponent and its first-order coefficient.

    From points :math:`(x_i, y_i \pm \sigma_i)`, by weighted least squares (weights
    :math:`1/\sigma_i^2`):

    * the coefficient :math:`a` of :math:`y = a x` (the exponent fixed at its predicted 1),
      :math:`a = \sum w x y / \sum w x^2`, :math:`\sigma_a^2 = \max(1, \chi^2_a/(n-1)) / \sum w x^2`;
    * the exponent :math:`p` of :math:`y = c x^p` (``c`` free), by
      ``scipy.optimize.curve_fit``, its error scaled up by :math:`\sqrt{\chi^2_p/(n-2)}` when the
      scatter exceeds the error bars.

    Parameters
    ----------
    x : (n,) float array, the small parameter (> 0)
    y : (n,) float array, the measured departures
    stderr : (n,) float array, their standard errors (> 0)

    Returns
    -------
    (a, stderr of a, p, stderr of p) : floats; ``(nan, inf, nan, inf)`` with fewer than 3 points

    Example
    -------
    >>> a, se_a, p, se_p = rate_fit([0.1, 0.2, 0.4], [0.05, 0.1, 0.2], [0.001, 0.001, 0.001])
    >>> round(a, 6), round(p, 6)
    (0.5, 1.0)
    """
    from scipy import optimize

    x, y, se = (np.asarray(v, float) for v in (x, y, stderr))
    if x.size < 3:
        return math.nan, math.inf, math.nan, math.inf
    w = 1.0 / se**2
    a = float(np.sum(w * x * y) / np.sum(w * x * x))
    chi2_a = float(np.sum(w * (y - a * x) ** 2)) / (x.size - 1)
    se_a = math.sqrt(max(1.0, chi2_a) / np.sum(w * x * x))
    (c, p), cov = optimize.curve_fit(lambda x, c, p: c * x**p, x, y, p0=(a, 1.0), sigma=se, absolute_sigma=True)
    chi2_p = float(np.sum(((y - c * x**p) / se) ** 2)) / max(x.size - 2, 1)
    return a, se_a, float(p), float(math.sqrt(cov[1, 1] * max(1.0, chi2_p)))


def run_length(tau: float, burn_tau: float, window_tau: float, cap: int, min_window: int) -> tuple[int, int]:
    r"""A run's length and burn-in from its relaxation time.

    .. math:: b = \lceil b_\tau \tau \rceil, \qquad n = b + \max(w_{min}, \lceil w_\tau \tau \rceil),

    and, when :math:`n` exceeds the cap, :math:`n = \text{cap}` with the burn-in the same fraction of
    it, :math:`b = \lfloor n\, b_\tau / (b_\tau + w_\tau) \rfloor` (the point is then under-burnt:
    see :func:`burn_in_refusal`).

    Parameters
    ----------
    tau : float > 0, the slowest relaxation time in steps
    burn_tau, window_tau : float, burn-in and sampling window in relaxation times
    cap : int, the most steps a run may take
    min_window : int, the fewest steps sampled (for fast points, a relaxation time of a few steps)

    Returns
    -------
    (n_steps, burn_in) : tuple of ints

    Example
    -------
    >>> run_length(100.0, 6.0, 10.0, 10**6, 200)
    (1600, 600)
    >>> run_length(100.0, 6.0, 10.0, 400, 200)
    (400, 150)
    """
    burn = math.ceil(burn_tau * tau)
    steps = burn + max(min_window, math.ceil(window_tau * tau))
    if steps > cap:
        steps = cap
        burn = int(steps * burn_tau / (burn_tau + window_tau))
    return steps, burn


def burn_in_refusal(burn_in: float, needed: float, unit: str = "relaxation times") -> str:
    """The reason a point gets no verdict for too short a burn-in, or ``""`` when it is long enough.

    Pass it as ``Check(..., no_verdict=burn_in_refusal(...))``: the check is then unresolved
    whatever its numbers (a NaN burn-in counts as too short).

    Parameters
    ----------
    burn_in : float, the burn-in run, in ``unit``
    needed : float, the least burn-in a verdict accepts, in ``unit``
    unit : str, the unit in words (relaxation times, slowest time scales, ...)

    Returns
    -------
    str, ``""`` or e.g. ``"burn-in 3.2 < 5 relaxation times"``

    Example
    -------
    >>> burn_in_refusal(6.0, 5.0)
    ''
    >>> burn_in_refusal(3.21, 5.0, "tau")
    'burn-in 3.21 < 5 tau'
    """
    return "" if burn_in >= needed else f"burn-in {burn_in:.3g} < {needed:g} {unit}"


def shown_range(groups, tolerance: float, x_name: str, label_name: str, quantity: str) -> str:
    r"""How far along a small parameter the data show a claim, by the checks' own 2-s.e. rule, in words.

    The groups are scanned in the order given (increasing small parameter x). Up to the first
    group in which some item is shown beyond the tolerance (its :class:`Check` fails), the last
    x at which every item of the group is shown within it (every Check holds) is where the claim
    *holds*; that first group is where it is shown *broken*, named with its item of largest departure.

    Parameters
    ----------
    groups : iterable of (x, items), items a list of (departure, stderr, label) with departure
        the measured value minus the claim's (target 0); an empty list leaves x undecided
    tolerance : float > 0
    x_name, label_name, quantity : str, the names of x, of the items' labels and of the departure

    Returns
    -------
    str, "every <label_name> within <tol> up to <x_name> = x[, beyond it from <x_name> = x
    (<label_name> = label: <quantity> = departure ± stderr)]"

    Example
    -------
    >>> shown_range([(0.1, [(0.001, 0.001, 1)]), (1.0, [(0.05, 0.001, 1), (0.2, 0.01, 2)])], 0.01, "lr h", "N", "d")
    'every N within 1% up to lr h = 0.1, beyond it from lr h = 1 (N = 2: d = 0.200 ± 0.010)'
    """
    held, broke = None, None
    for x, items in groups:
        outs = [Check("", d, se, tolerance).outcome for d, se, _ in items]
        if items and all(o == "holds" for o in outs) and broke is None:
            held = x
        if "fails" in outs and broke is None:
            d, se, label = max(items, key=lambda it: it[0])
            broke = (x, label, d, se)
    text = (f"every {label_name} within {tolerance:.0%} up to {x_name} = {held:g}" if held is not None
            else f"no {x_name} with every {label_name} shown within {tolerance:.0%}")
    if broke is not None:
        x, label, d, se = broke
        text += f", beyond it from {x_name} = {x:g} ({label_name} = {label:g}: {quantity} = {fmt(d, se)})"
    return text

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
    record["commit"] = _git_commit()
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
        # each row names the code it ran (recorded when it ran, not when the report is assembled)
        commits = {}
        for r in rows:
            commits.setdefault(r.get("commit") or "unknown", []).append(r["name"])
        if len(commits) == 1:
            code = f"code at commit {next(iter(commits))}"
        else:
            code = "code at commits " + "; ".join(f"{c} ({', '.join(names)})" for c, names in commits.items())
        lines += [f"Run: `{command or 'python validation/run_all.py'}` ({', '.join(modes)} mode); "
                  f"machine: {rows[0]['machine']}; date: {max(r['date'] for r in rows)}; {code}.", ""]
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
    # the exact laws the verdicts are measured against, each checked against gs.theory by the
    # script that states it (details["reference_laws"] of its row)
    laws = [law for r in rows for law in (r.get("details") or {}).get("reference_laws", [])]
    if laws:
        lines += ["", "## Exact reference laws", "",
                  "| law | formula | derivation; code | closed form vs gs.theory | used by |", "|---|---|---|---|---|"]
        for law in laws:
            diff = law.get("closed form vs gs.theory (largest relative difference)")
            lines.append(cells([law["law"], f"`{law['formula']}`", law["source"],
                                f"{diff:.1e}" if diff is not None and np.isfinite(diff) else "not checked", law.get("used by", "")]))
    lines += ["", "## Details", ""]
    lines += ["| claim | what was run | measured | verdict |", "|---|---|---|---|"]
    for r in rows:
        checks = "".join(f"<br>- {c['sentence']}" for c in r.get("checks", []))
        lines.append(cells([r["claim"], r["setup"], r["result"],
                            f"**{r['verdict']}**{checks} ([figure]({r['name']}.png))"]))
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path
