"""Histogram ranges that follow the stationary law: the default of `simulate` and `from_samples`.

A histogram compares the stationary law with ``exp(-L/T)/Z`` only where it has bins. A fixed
range (the landscape's box, sized for T of order 1) puts a law of spread 0.03 into two bins at
T = 1e-3 and spreads a law of spread 10 over a range it overflows at T = 100. So the default
range is read off the chains themselves, once, from the *pilot* chains (the first
:data:`PILOT_CHAINS` chains, whatever the chunking) at the end of burn-in:

* per coordinate, the quantiles ``q = Q(0.001)`` and ``Q(0.999)`` of the pilot, widened by a
  quarter of their distance on each side: for a Gaussian that is +-4.6 standard deviations,
  so about 4e-6 of the mass falls outside, and the 6 standard deviations where the density is
  above 1% of its peak span 65 of 100 bins (at least 30 after the rounding below, at any T);
* on a periodic coordinate the window sits around the pilot's circular mean, and becomes the
  whole period once it would cover half of it;
* for the loss, ``[max(L_min, Q(0.001) - w/4), Q(0.999)]`` with ``w`` the quantile distance
  and ``L_min`` the landscape's minimum value where it is known (no margin above: the loss law
  decays slowly there, and 0.1% of it beyond the range leaves the bins to the bulk; for a
  1-D quadratic, 38 bins then hold more than 1% of the fullest one).

The bin width is then rounded *up* to four significant bits (``m * 2**e``, m in 16..31) and the
lower edge to a multiple of it. The edges are therefore exact binary numbers, and two backends
whose pilot states agree to 1e-12 (float64 CPU and GPU) get bitwise the same edges except
with a probability of order 1e-11 (a quantile sitting on a rounding boundary). The rule and the
pilot size are recorded in ``result.config["hist_range_rule"]``.

Where the pilot has no spread (``burn_in = 0`` with every chain started at one point) there is
nothing to read, and the range falls back to the landscape's box (the rule says so).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .landscapes import check_int

# Pilot chains: the quantiles Q(0.001), Q(0.999) rest on ~16 chains beyond each, and the pilot
# costs PILOT_CHAINS x burn_in chain-steps only when the first chunk does not hold it already.
PILOT_CHAINS = 16_384
_Q_LO, _Q_HI = 0.001, 0.999
# Widening of the quantile range on each side, as a fraction of its width.
_MARGIN = 0.25
# A periodic window wider than this fraction of the period becomes the whole period.
_PERIODIC_FULL = 0.5


def _nice_width(raw: float) -> float:
    """``raw`` rounded up to 4 significant bits: an exact binary number, at most 1/16 larger."""
    m, e = math.frexp(raw)  # raw = m * 2**e, m in [0.5, 1)
    return math.ldexp(math.ceil(m * 32.0), e - 5)


def _nice_edges(lo: float, hi: float, nb: int) -> np.ndarray | None:
    """``nb + 1`` uniform edges covering about [lo, hi], width and origin exact binary numbers."""
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return None
    width = _nice_width((hi - lo) / nb)
    first = math.floor(lo / width) * width  # at most one bin below lo (so up to one less above hi)
    edges = first + width * np.arange(nb + 1, dtype=np.float64)
    if not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
        return None
    return edges


def _window(v: np.ndarray) -> tuple[float, float]:
    q_lo, q_hi = np.quantile(v, [_Q_LO, _Q_HI])
    w = float(q_hi - q_lo)
    return float(q_lo) - _MARGIN * w, float(q_hi) + _MARGIN * w


def coordinate_edges(landscape, x: np.ndarray, nb: int) -> tuple[list[np.ndarray], list[str]]:
    """Per-coordinate edges from pilot states ``x`` (n, d) (finite rows only); for each coordinate
    either the adaptive window or, when the pilot has no spread there, the landscape's box.
    Returns the edges and, per coordinate, how they were chosen."""
    d = landscape.dim
    box = np.asarray(landscape.box, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(-1, d)
    x = x[np.all(np.isfinite(x), axis=1)]
    period = landscape.period
    edges, how = [], []
    for i in range(d):
        e = None
        if x.shape[0] >= 2:
            v = x[:, i]
            if period is not None:
                # centre on the circular mean, then unwrap the pilot around it
                ang = 2 * math.pi * v / period
                c = math.atan2(float(np.sin(ang).mean()), float(np.cos(ang).mean())) * period / (2 * math.pi)
                v = c + ((v - c + 0.5 * period) % period) - 0.5 * period
            lo, hi = _window(v)
            if period is not None and hi - lo >= _PERIODIC_FULL * period:
                e = None  # the law fills the torus: the whole period
                how.append("period")
                edges.append(np.linspace(box[i, 0], box[i, 0] + period, nb + 1))
                continue
            e = _nice_edges(lo, hi, nb)
        if e is None:
            how.append("box")
            edges.append(np.linspace(box[i, 0], box[i, 1], nb + 1))
        else:
            how.append("pilot")
            edges.append(e)
    return edges, how


def loss_range(landscape, loss: np.ndarray, nb: int) -> tuple[float, float] | None:
    """The loss histogram's (lo, hi) from pilot losses (finite ones), or None without spread."""
    v = np.asarray(loss, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.shape[0] < 2:
        return None
    lo, _ = _window(v)
    hi = float(np.quantile(v, _Q_HI))  # no margin above: the loss law's long side holds little
    if landscape.minimum is not None:
        lmin = float(np.asarray(landscape.loss(np.asarray(landscape.minimum, dtype=np.float64))))
        if math.isfinite(lmin):
            lo = max(lo, lmin)
    e = _nice_edges(lo, hi, nb)
    return None if e is None else (float(e[0]), float(e[-1]))


def informative_bins(counts: np.ndarray, fraction: float = 0.01) -> int:
    """Bins holding more than ``fraction`` of the fullest bin's count (the bins that resolve the law)."""
    c = np.asarray(counts, dtype=np.float64)
    top = float(c.max()) if c.size else 0.0
    return int(np.sum(c > fraction * top)) if top > 0 else 0


# The arguments that fix the histograms (simulate's and SimulationResult.from_samples'), checked once here.
def bin_count(bins):
    """The bin count when ``bins`` is an int, else None (explicit edges)."""
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        return check_int("bins", bins, 2, 100_000)
    if isinstance(bins, str):
        raise TypeError(f"bins must be an int (a bin count) or uniform bin edges, got {bins!r}")
    return None


def hist_range_arg(landscape, hist_range):
    """``"auto"``, ``"box"`` or a validated (d, 2) array of per-coordinate ranges."""
    if isinstance(hist_range, str):
        if hist_range not in ("auto", "box"):
            raise ValueError(f"hist_range must be 'auto', 'box' or (lo, hi) per coordinate, got {hist_range!r}")
        return hist_range
    d = landscape.dim
    try:
        r = np.asarray(hist_range, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"hist_range must be 'auto', 'box' or (lo, hi) per coordinate, got {hist_range!r}") from None
    if r.shape == (2,):
        r = np.broadcast_to(r, (d, 2))
    if r.shape != (d, 2) or not np.all(np.isfinite(r)) or np.any(r[:, 1] <= r[:, 0]):
        raise ValueError(f"hist_range must be (lo, hi) with finite lo < hi, one pair or one per coordinate "
                         f"(shape ({d}, 2)), got {hist_range!r}")
    return r


def histogram_edges(landscape, bins, hist_range="box") -> list[np.ndarray]:
    """Edges for an explicit ``bins`` array, or ``bins`` uniform bins over ``hist_range`` (the
    landscape's box or given ranges; ``"auto"`` is resolved later, from the pilot chains, and
    gets the box here as a placeholder)."""
    d = landscape.dim
    box = landscape.box
    nb = bin_count(bins)
    if nb is not None:
        rng = box if isinstance(hist_range, str) else hist_range
        return [np.linspace(rng[i, 0], rng[i, 1], nb + 1) for i in range(d)]
    try:
        arr = [np.asarray(e, dtype=np.float64) for e in bins]
    except (TypeError, ValueError):
        raise TypeError(f"bins must be an int or bin edges (one array, or one per coordinate), got {bins!r}") from None
    if all(np.ndim(e) == 0 for e in arr):
        arr = [np.asarray(arr, dtype=np.float64)] * d
    if len(arr) != d:
        raise ValueError(f"bins must give edges for all {d} coordinates, got {len(arr)} arrays")
    nbs = {e.shape[0] if e.ndim == 1 else -1 for e in arr}
    if len(nbs) != 1:
        raise ValueError("bins must have the same number of edges for every coordinate")
    for i, e in enumerate(arr):
        if e.ndim != 1 or e.shape[0] < 3 or e.shape[0] > 100_001 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ValueError(f"bins[{i}] must be 3 to 100001 increasing finite edges")
        w = np.diff(e)
        if not np.allclose(w, w[0], rtol=1e-9, atol=0):
            raise ValueError(f"bins[{i}] must be uniformly spaced (the kernel bins in O(1))")
        if landscape.period is not None and e[-1] - e[0] > landscape.period * (1 + 1e-12):
            raise ValueError(f"bins[{i}] spans {e[-1] - e[0]:g}, more than the period {landscape.period:g} "
                             "its coordinate is folded onto")
    return [e.copy() for e in arr]


def loss_range_arg(landscape, edges, loss_range) -> tuple[float, float]:
    if loss_range is not None:
        try:
            lo, hi = (float(v) for v in loss_range)
        except (TypeError, ValueError):
            raise TypeError(f"loss_range must be a pair (lo, hi), got {loss_range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"loss_range must be (lo, hi) with finite lo < hi, got {loss_range!r}")
        return lo, hi
    d = landscape.dim
    if d <= 2:
        axes = [np.linspace(e[0], e[-1], 201) for e in edges]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    else:
        rng = np.random.default_rng(0)
        pts = rng.uniform([e[0] for e in edges], [e[-1] for e in edges], size=(20_000, d))
    vals = landscape.loss(pts)
    vals = vals[np.isfinite(vals)]
    lo, hi = float(vals.min()), float(vals.max())
    if landscape.minimum is not None:
        lo = min(lo, float(landscape.loss(np.asarray(landscape.minimum))))
    return lo, (hi if hi > lo else lo + 1.0)
