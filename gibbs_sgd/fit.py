r"""`fit_temperature`: the temperature of a stationary run, with honest errors and a Gibbs verdict.

A Gibbs law :math:`e^{-L/T}/Z` has one free number, and three classical estimators of it agree
exactly when the law *is* Gibbs (their disagreement measures how far it is not):

* **maximum likelihood** -- :math:`e^{-L/T}` is an exponential family in :math:`1/T` with
  sufficient statistic :math:`L`, so the likelihood of the samples is maximal where
  :math:`E_T[L] = \langle L\rangle` (the lecture's "same asymptotic loss, same temperature");
* **virial** -- integrating by parts, :math:`E_T[(\Phi_k - a)\,\partial_k L] = T` for any constant
  :math:`a` on :math:`\mathbb R^d`; we use :math:`a = \langle\Phi_k\rangle`, which removes the
  variance of :math:`\langle\partial_k L\rangle` (zero in expectation), and average over k;
* **configurational** -- :math:`E_T[|\nabla L|^2] = T\,E_T[\Delta L]` (also on a torus).

All standard errors come from the scatter of per-block means over blocks of independent
chains (delta method for ratios), never from treating correlated time samples as independent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from .gibbs import Gibbs, _log_moments
from .landscapes import Landscape, Periodic, Quadratic
from .result import SimulationResult

__all__ = ["fit_temperature", "TemperatureFit", "EstimatorResult"]

# Verdict thresholds. |z| < 4 for each consistency check (false-alarm 6e-5 each, as the test
# suite's budget); a goodness-of-fit p-value above 1e-3; at most 0.1% of the samples outside
# the histogram box for landscapes whose Gibbs law is normalised on that box.
_Z_AGREE = 4.0
_P_GOF = 1e-3
_OUTSIDE_MAX = 1e-3
# Bins whose expected count is below this are pooled into one, so the chi-square law applies.
_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class EstimatorResult:
    """One temperature estimator: value, standard error and confidence interval."""

    value: float
    stderr: float
    ci: tuple[float, float]

    def __repr__(self):
        return f"{self.value:.6g} ± {self.stderr:.2g} (CI [{self.ci[0]:.6g}, {self.ci[1]:.6g}])"


@dataclass(frozen=True)
class TemperatureFit:
    """What :func:`fit_temperature` found.

    Attributes
    ----------
    temperature : float, the chosen estimator's T
    ci : (lo, hi), its confidence interval at ``confidence``
    method : str
    estimators : dict name -> EstimatorResult ("mle", "virial", "configurational"; virial is
        None on a torus)
    per_coordinate : array (d,) of virial temperatures per coordinate (None on a torus), and
        ``per_coordinate_stderr``
    chi2, dof, p_value : goodness of fit of the histogram against the fitted Gibbs law, the
        chi-square statistic divided by the histogram's Rao-Scott design effect
    design_effect, n_effective : the mean design effect of the histogram bins (how much more
        their counts vary than multinomial counts, from the scatter over independent blocks of
        chains) and the histogram's effective sample size ``n_inside / design_effect``
    kl_divergence, total_variation : between the observed and the fitted bin probabilities
    gof_on : which histogram was tested ("coordinates", "joint", "loss" or None)
    stationarity_z : z-score of (second half - first half) of the chain-mean loss in the window
    outside_fraction : fraction of samples outside the histogram box
    is_gibbs : bool, and ``verdict`` : one line
    """

    temperature: float
    ci: tuple[float, float]
    method: str
    confidence: float
    estimators: dict
    per_coordinate: np.ndarray | None
    per_coordinate_stderr: np.ndarray | None
    chi2: float | None
    dof: int | None
    p_value: float | None
    n_effective: float
    design_effect: float
    kl_divergence: float | None
    total_variation: float | None
    gof_on: str | None
    stationarity_z: float
    outside_fraction: float
    is_gibbs: bool
    verdict: str
    gibbs: Gibbs = field(repr=False)

    def __str__(self):
        return self.verdict


def _delta_se(sums: np.ndarray, counts: np.ndarray, grad: np.ndarray, means: np.ndarray) -> float:
    """Standard error of f(means) over blocks: sums (n_blocks, J), grad = df/dmeans (J,)."""
    ok = counts > 0
    nb = int(ok.sum())
    resid = (sums[ok] - counts[ok, None] * means[None, :]) @ grad
    return float(math.sqrt(np.sum(resid**2) * nb / max(nb - 1, 1)) / counts.sum())


def _mle(land: Landscape, mean_loss: float, guess: float):
    """T with E_T[L] = mean_loss, as a function usable for the CI bounds too."""
    if isinstance(land, (Quadratic, Periodic)):
        def curve(t):
            return Gibbs(land, t).mean_loss()
    else:
        rule = Gibbs(land, guess)._quadrature()

        def curve(t):
            return _log_moments(rule.loss, rule.weights, t)[1]

    def solve(target):
        f = lambda logt: curve(math.exp(logt)) - target  # noqa: E731  (increasing in T)
        lo, hi = math.log(guess) - 2.0, math.log(guess) + 2.0
        for _ in range(40):
            if f(lo) < 0:
                break
            lo -= 3.0
        for _ in range(40):
            if f(hi) > 0:
                break
            hi += 3.0
        if not (f(lo) < 0 < f(hi)):
            return math.nan
        return math.exp(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-12))

    return solve


def _stationarity(run: SimulationResult) -> float:
    """z of (late - early) chain-mean loss over the sampling window, per-block paired."""
    steps = run.trace_steps
    win = steps >= run.config["burn_in"]
    idx = np.nonzero(win)[0]
    if idx.size < 2:
        return math.nan
    half = idx.size // 2
    early, late = idx[:half], idx[half:]
    s_e = run.trace[:, early, 0].sum(axis=1)
    n_e = run.trace[:, early, 1].sum(axis=1)
    s_l = run.trace[:, late, 0].sum(axis=1)
    n_l = run.trace[:, late, 1].sum(axis=1)
    ok = (n_e > 0) & (n_l > 0)
    if ok.sum() < 3:
        return math.nan
    diff = s_l[ok] / n_l[ok] - s_e[ok] / n_e[ok]
    w = n_l[ok] + n_e[ok]
    mean = np.sum(w * diff) / w.sum()
    se = math.sqrt(np.sum((w * (diff - mean)) ** 2) / w.sum() ** 2 * ok.sum() / (ok.sum() - 1))
    return float(mean / se) if se > 0 else (0.0 if mean == 0 else math.inf)


def _design_effect(block_counts: np.ndarray) -> float:
    """Rao-Scott mean design effect of a histogram from its per-block counts (n_blocks, K).

    Samples inside one chain are correlated in time, so a bin's count varies more than a
    multinomial count would. Blocks of chains are independent, so the scatter of the per-block
    counts gives each bin's true variance; its ratio to the multinomial variance
    n p (1 - p) is the bin's design effect d_k, and the chi-square statistic divided by their
    (1 - p)-weighted mean follows chi2 with the usual degrees of freedom to first order (Rao &
    Scott, J. Amer. Statist. Assoc. 76, 221 (1981)).
    """
    counts = block_counts.astype(np.float64)
    n_b = counts.sum(axis=1)
    ok = n_b > 0
    counts, n_b = counts[ok], n_b[ok]
    nb = counts.shape[0]
    n = n_b.sum()
    if nb < 3 or n == 0:
        return 1.0
    p = counts.sum(axis=0) / n
    resid = counts - n_b[:, None] * p[None, :]
    var = np.sum(resid**2, axis=0) * nb / (nb - 1)
    binom = n * p * (1 - p)
    used = binom > 0
    deff = var[used] / binom[used]
    weights = 1 - p[used]
    return float(max(np.sum(weights * deff) / np.sum(weights), 1e-12))


def _gof(run: SimulationResult, gibbs: Gibbs):
    """Goodness of fit of the histogram against the Gibbs law, Rao-Scott corrected.

    Returns (chi2, dof, p, kl, tv, on, design_effect, n_inside).
    """
    land = gibbs.landscape
    d = run.dim
    none = (None, None, None, None, None, None, 1.0, 0.0)
    if d == 1:
        observed = run.hist[0].astype(np.float64)
        probs = gibbs.bin_probabilities(run.hist_edges[0])
        deff = _design_effect(run.block_hist[:, 0, :])
        on = "coordinates"
    elif d == 2 and run.hist2d is not None:
        observed = run.hist2d.astype(np.float64).ravel()
        probs = gibbs.bin_probabilities(run.hist_edges).ravel()
        deff = _design_effect(run.block_hist2d.reshape(run.block_hist2d.shape[0], -1))
        on = "joint"
    elif isinstance(land, Quadratic):
        observed = run.loss_hist.astype(np.float64)
        probs = gibbs.loss_bin_probabilities(run.loss_edges)
        deff = _design_effect(run.block_loss_hist)
        on = "loss"
    else:
        return none
    n = observed.sum()
    if n == 0 or probs.sum() <= 0:
        return none
    # Condition both on the histogram range: the law inside the box, normalised there.
    probs = np.clip(probs, 0.0, None) / probs.sum()
    expected = n * probs
    order = np.argsort(expected)
    cum = np.cumsum(expected[order])
    n_pool = int(np.searchsorted(cum, _MIN_EXPECTED * 2))  # the sparse tail bins, pooled
    keep = order[n_pool:]
    pool = order[:n_pool]
    obs = np.concatenate([observed[keep], [observed[pool].sum()]]) if n_pool else observed[keep]
    exp_ = np.concatenate([expected[keep], [expected[pool].sum()]]) if n_pool else expected[keep]
    good = exp_ > 0
    chi2 = float(np.sum((obs[good] - exp_[good]) ** 2 / exp_[good]) / deff)
    dof = int(good.sum()) - 2  # normalisation and the fitted temperature
    p = float(stats.chi2.sf(chi2, dof)) if dof > 0 else math.nan
    o = observed / n
    nz = o > 0
    kl = float(np.sum(o[nz] * np.log(o[nz] / np.maximum(probs[nz], 1e-300))))
    tv = float(0.5 * np.sum(np.abs(o - probs)))
    return chi2, dof, p, kl, tv, on, deff, float(n)


def fit_temperature(run: SimulationResult, method: str = "mle", *, landscape: Landscape | None = None,
                    confidence: float = 0.95, temperature: float | None = None) -> TemperatureFit:
    r"""Fit the Gibbs temperature of a stationary run, with a confidence interval and a verdict.

    Parameters
    ----------
    run : SimulationResult
    method : "mle" (default), "virial" or "configurational" -- which estimator is reported as
        ``temperature``; all three are always computed.
    landscape : the run's landscape (needed only when it cannot be rebuilt from the run, e.g.
        a :class:`~gibbs_sgd.landscapes.Custom` landscape after ``gs.load``)
    confidence : float in (0, 1), default 0.95
    temperature : float, optional
        Test the run against the Gibbs law at this *given* temperature instead of the fitted one
        (the histogram test then has one more degree of freedom, and the verdict also asks
        whether the given T lies inside every estimator's confidence interval).

    Returns
    -------
    TemperatureFit

    Example
    -------
    >>> import gibbs_sgd as gs
    >>> run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.01),
    ...                   n_chains=2000, n_steps=2000, progress=False)
    >>> fit = gs.fit_temperature(run)
    >>> 0.0045 < fit.temperature < 0.0055   # small-lr theory: lr sigma^2 / 2 = 0.005
    True
    """
    if method not in ("mle", "virial", "configurational"):
        raise ValueError(f"method must be one of 'mle', 'virial', 'configurational', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    land = landscape if landscape is not None else run.landscape
    if land is None:
        raise ValueError("this run's landscape cannot be rebuilt from its description: pass landscape=")
    counts = run.moments[:, 0]
    n = counts.sum()
    if n == 0:
        raise ValueError("the run has no samples (every chain diverged, or the sampling window is empty)")
    lay = run._layout
    d = run.dim
    nb = int((counts > 0).sum())
    q = stats.t.ppf(0.5 * (1 + confidence), max(nb - 1, 1))

    # configurational: <|grad L|^2> / <Laplacian>
    s_g2 = run.moments[:, lay["grad_sq"]]
    s_lap = run.moments[:, lay["laplacian"]]
    m_g2, m_lap = s_g2.sum() / n, s_lap.sum() / n
    t_conf = m_g2 / m_lap
    se_conf = _delta_se(np.stack([s_g2, s_lap], 1), counts, np.array([1 / m_lap, -m_g2 / m_lap**2]),
                        np.array([m_g2, m_lap]))
    conf = EstimatorResult(t_conf, se_conf, (t_conf - q * se_conf, t_conf + q * se_conf))

    # virial, per coordinate: <x_k g_k> - <x_k><g_k>
    virial, per, per_se = None, None, None
    if not isinstance(land, Periodic):
        s_xg = run.moments[:, lay["phi_grad"]]
        s_g = run.moments[:, lay["grad"]]
        s_x = run.moments[:, lay["state"]][:, :d]
        m_xg, m_g, m_x = s_xg.sum(0) / n, s_g.sum(0) / n, s_x.sum(0) / n
        per = m_xg - m_x * m_g
        per_se = np.array([
            _delta_se(np.stack([s_xg[:, k], s_x[:, k], s_g[:, k]], 1), counts,
                      np.array([1.0, -m_g[k], -m_x[k]]), np.array([m_xg[k], m_x[k], m_g[k]]))
            for k in range(d)
        ])
        sums = np.concatenate([s_xg, s_x, s_g], axis=1)
        means = np.concatenate([m_xg, m_x, m_g])
        grad = np.concatenate([np.ones(d), -m_g, -m_x]) / d
        t_vir = float(per.mean())
        se_vir = _delta_se(sums, counts, grad, means)
        virial = EstimatorResult(t_vir, se_vir, (t_vir - q * se_vir, t_vir + q * se_vir))

    # maximum likelihood: E_T[L] = <L>, CI by inverting the monotone map at <L> -+ q se
    ml = run.mean_loss
    guess = t_conf if np.isfinite(t_conf) and t_conf > 0 else 1.0
    solve = _mle(land, ml.value, guess)
    t_mle = solve(ml.value)
    lo, hi = solve(ml.value - q * ml.stderr), solve(ml.value + q * ml.stderr)
    mle = EstimatorResult(t_mle, 0.5 * (hi - lo) / q if np.isfinite(hi - lo) else math.nan, (lo, hi))

    estimators = {"mle": mle, "virial": virial, "configurational": conf}
    chosen = estimators[method]
    if chosen is None:
        raise ValueError("the virial estimator is undefined on a periodic landscape; use method='mle' or 'configurational'")
    if not np.isfinite(chosen.value) or chosen.value <= 0:
        raise ValueError(f"the {method} temperature is not positive and finite ({chosen.value}); the run is "
                         "not near a stationary law of this landscape")
    hypothesis = None if temperature is None else float(temperature)
    if hypothesis is not None and not (np.isfinite(hypothesis) and hypothesis > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    gibbs = Gibbs(land, chosen.value if hypothesis is None else hypothesis)

    chi2, dof, p, kl, tv, on, deff, n_in = _gof(run, gibbs)
    if hypothesis is not None and dof is not None:
        dof += 1  # nothing was fitted to this histogram
        chi2_p = float(stats.chi2.sf(chi2, dof))
        p = chi2_p
    z_stat = _stationarity(run)
    outside = float(run.outside[:d].sum(axis=1).max() / n) if d else 0.0

    problems = []
    if hypothesis is not None:
        for name, est in estimators.items():
            if est is None:
                continue
            z = (est.value - hypothesis) / est.stderr
            if abs(z) > _Z_AGREE:
                problems.append(f"{name} T = {est.value:.4g} is {z:+.1f} sigma from the given T = {hypothesis:.4g}")
    if p is not None and np.isfinite(p) and p < _P_GOF:
        problems.append(f"the {on} histogram rejects it (chi2/dof = {chi2 / dof:.3g}, p = {p:.2g})")
    for name in ("virial", "configurational", "mle"):
        other = estimators[name]
        if other is None or name == method or hypothesis is not None:
            continue
        z = (other.value - chosen.value) / math.hypot(other.stderr, chosen.stderr)
        if abs(z) > _Z_AGREE:
            problems.append(f"{name} T = {other.value:.4g} differs by {z:+.1f} sigma (ratio {other.value / chosen.value:.4g})")
    if per is not None and d > 1:
        zc = (per - per.mean()) / per_se
        if np.max(np.abs(zc)) > _Z_AGREE:
            problems.append(f"per-coordinate temperatures differ ({np.array2string(per, precision=4)})")
    if np.isfinite(z_stat) and abs(z_stat) > _Z_AGREE:
        problems.append(f"not stationary: the mean loss drifts by {z_stat:+.1f} sigma across the window")
    if outside > _OUTSIDE_MAX and not isinstance(land, (Quadratic, Periodic)):
        problems.append(f"{outside:.2%} of the samples fall outside the box the law is normalised on")
    ci = chosen.ci
    head = f"T = {chosen.value:.6g} ± {q * chosen.stderr:.2g} ({confidence:.0%} CI [{ci[0]:.6g}, {ci[1]:.6g}], {method})"
    if hypothesis is not None:
        head = f"the given T = {hypothesis:.6g} (fitted {head})"
    verdict = f"consistent with Gibbs at {head}" if not problems else f"not Gibbs at {head}: " + "; ".join(problems)
    return TemperatureFit(
        temperature=chosen.value, ci=ci, method=method, confidence=confidence, estimators=estimators,
        per_coordinate=per, per_coordinate_stderr=per_se, chi2=chi2, dof=dof, p_value=p,
        n_effective=float(n_in / deff), design_effect=deff, kl_divergence=kl, total_variation=tv, gof_on=on,
        stationarity_z=z_stat, outside_fraction=outside, is_gibbs=not problems, verdict=verdict, gibbs=gibbs,
    )
