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

import json
import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from .gibbs import Gibbs, _log_moments
from .landscapes import Landscape, Periodic, Quadratic
from ._bins import informative_bins
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
# A histogram test needs the law spread over at least this many bins holding more than 1% of
# the fullest bin: with fewer, a chi-square cannot see the shape (a Gaussian in 2 bins passes
# any test), so no Gibbs verdict rests on it. 20 bins resolve a Gaussian's width to ~5%.
_MIN_INFORMATIVE_BINS = 20
# "Close to Gibbs": every temperature estimator within 5% of the fitted T and the histogram
# within this total-variation distance of the Gibbs law.
_CLOSE_T, _CLOSE_TV = 0.05, 0.02


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
    chi2, dof, p_value : goodness of fit of the histogram against the Gibbs law: Pearson's
        statistic over bins expecting at least 5 samples (the sparse ones pooled), scaled by
        its second-order (Satterthwaite) correction for correlated samples, and the matching
        (non-integer) degrees of freedom; calibrated to uniform p-values under the null
        (``benchmarks/gof_calibration.py``)
    design_effect, n_effective : the mean design effect of the histogram bins (how much more
        their counts vary than multinomial counts, from the scatter over independent blocks of
        chains) and the histogram's effective sample size ``n_inside / design_effect``
    kl_divergence, total_variation : between the observed and the fitted bin probabilities
    gof_on : which histogram was tested ("coordinates", "joint", "loss" or None)
    stationarity_z : z-score of (second half - first half) of the chain-mean loss in the window
    outside_fraction : fraction of samples that may lie outside the box the Gibbs law is
        normalised on (an upper bound: samples outside the histogram range count as outside)
    informative_bins : bins of the tested histogram holding more than 1% of its fullest bin
        (the least over coordinates); fewer than 20 and no Gibbs verdict is given
    departure : largest relative difference |T' / T - 1| between the reported temperature (or
        the given one) and every other estimator and coordinate: the *size* of the departure
    significance : the largest |z| over the checks (chi-square converted by Fisher's
        sqrt(2 chi2) - sqrt(2 dof - 1)): how well the departure is *resolved*
    unchecked : the checks that could not be made, each with the reason
    status : "gibbs" (every check made and passed), "not gibbs" (a check rejects it) or
        "undetermined" (none rejects it, but a check could not be made: not called Gibbs)
    is_gibbs : bool (``status == "gibbs"``), and ``verdict`` : one line that leads with the size
        of the departure, then its significance
    """

    temperature: float
    ci: tuple[float, float]
    method: str
    confidence: float
    estimators: dict
    per_coordinate: np.ndarray | None
    per_coordinate_stderr: np.ndarray | None
    chi2: float | None
    dof: float | None
    p_value: float | None
    n_effective: float
    design_effect: float
    kl_divergence: float | None
    total_variation: float | None
    gof_on: str | None
    stationarity_z: float
    outside_fraction: float
    informative_bins: int | None
    departure: float
    significance: float
    unchecked: tuple
    status: str
    is_gibbs: bool
    verdict: str
    gibbs: Gibbs = field(repr=False)

    def __str__(self):
        return self.verdict


def _influence(sums: np.ndarray, counts: np.ndarray, grad: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per-block linearised contribution of each block to f(means) - f(true) (delta method):
    ``u_b = (S_b - n_b m) . grad / N`` for sums S (n_blocks, J) and grad = df/dmeans (J,); the
    u_b of independent blocks sum to the estimator's error, so their scatter is its variance."""
    resid = (sums - counts[:, None] * means[None, :]) @ grad
    return np.where(counts > 0, resid, 0.0) / counts.sum()


def _se(influence: np.ndarray, counts: np.ndarray) -> float:
    """Standard error from per-block influences (the blocks that hold samples)."""
    nb = int((counts > 0).sum())
    return float(math.sqrt(np.sum(influence**2) * nb / max(nb - 1, 1)))


def _delta_se(sums: np.ndarray, counts: np.ndarray, grad: np.ndarray, means: np.ndarray) -> float:
    """Standard error of f(means) over blocks: sums (n_blocks, J), grad = df/dmeans (J,)."""
    return _se(_influence(sums, counts, grad, means), counts)


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


def _normalised(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    total = p.sum()
    return p / total if total > 0 else p


def _pool_sparse(expected: np.ndarray) -> list[np.ndarray]:
    """Groups of bins for the chi-square: every bin expecting at least 5 samples on its own, the
    sparse ones (fewer than 5, including those the law gives no mass) pooled into one group,
    which joins the smallest kept bin if it still expects fewer than 5."""
    sparse = expected < _MIN_EXPECTED
    keep = np.nonzero(~sparse)[0]
    groups = [np.array([k]) for k in keep]
    if sparse.any():
        pool = np.nonzero(sparse)[0]
        if expected[pool].sum() < _MIN_EXPECTED and groups:
            smallest = int(np.argmin(expected[keep]))
            groups[smallest] = np.concatenate([groups[smallest], pool])
        else:
            groups.append(pool)
    return groups


def _trace_moments(gram: np.ndarray) -> tuple[float, float]:
    r"""Unbiased estimates of :math:`\mathrm{tr}\,\Sigma` and :math:`\mathrm{tr}\,\Sigma^2` from
    m independent vectors with a common mean and covariance :math:`\Sigma`, given their Gram
    matrix (m, m).

    :math:`\mathrm{tr}\,\Sigma^2` by the U-statistic of Chen, Zhang & Zhong (J. Amer. Statist.
    Assoc. 105, 810 (2010)): sums over distinct index pairs, triples and quadruples of Gram
    entries, unbiased whatever the vectors' law. (The plug-in :math:`\mathrm{tr}\,S^2` is biased
    upward by :math:`(\mathrm{tr}\,\Sigma)^2/m`, and the Gaussian correction of that bias
    leaves a fourth-moment bias: per-block bin counts of a few samples are far from Gaussian.)
    Invariant to a common shift of the vectors, so residuals about their mean give the same."""
    m = gram.shape[0]
    diag = np.diag(gram)
    g0 = gram - np.diag(diag)
    s = float(g0.sum())
    t1 = float(np.sum(g0 * g0))
    rows = g0.sum(axis=1)
    t2 = float(np.sum(rows**2) - t1)  # sum over distinct i, j, k of G_ij G_jk
    t3 = s * s - 4.0 * t2 - 2.0 * t1  # over distinct i, j, k, l of G_ij G_kl
    p2, p3, p4 = m * (m - 1.0), m * (m - 1.0) * (m - 2.0), m * (m - 1.0) * (m - 2.0) * (m - 3.0)
    tr1 = float(diag.sum()) / m - s / p2
    tr2 = t1 / p2 - 2.0 * t2 / p3 + t3 / p4
    return tr1, tr2


def _gof(run: SimulationResult, gibbs: Gibbs, influence: np.ndarray | None):
    r"""Goodness of fit of the histogram against the Gibbs law, with a second-order
    (Satterthwaite) correction for the correlation of the samples.

    Pearson's :math:`X^2 = \sum_k (O_k - E_k)^2 / E_k` over the bin groups of
    :func:`_pool_sparse`. Samples within a chain are correlated, so under the null hypothesis
    :math:`X^2` is not :math:`\chi^2_{K-2}` but a weighted sum :math:`\sum_i \lambda_i\chi^2_1`,
    the :math:`\lambda_i` the eigenvalues of :math:`M = W^{1/2}\Sigma W^{1/2}` with
    :math:`W = \mathrm{diag}(1/E)` and :math:`\Sigma` the covariance of :math:`O - E`. Blocks of
    chains are independent, so :math:`\Sigma` is estimated from the per-block residuals
    :math:`r_b = C_b - n_b O/N - N\,(\partial p/\partial T)\,u_b`, whose last term removes what
    the fitted temperature absorbs (:math:`u_b` the block's influence on the estimator; none
    when T is given). Then :math:`E X^2 = \mathrm{tr} M` and
    :math:`\mathrm{Var} X^2 = 2\,\mathrm{tr} M^2`, and :math:`X^2/c \sim \chi^2_\nu` with
    :math:`c = \mathrm{tr}M^2/\mathrm{tr}M`, :math:`\nu = (\mathrm{tr}M)^2/\mathrm{tr}M^2`
    (Satterthwaite 1946; Rao & Scott, Ann. Statist. 12, 46 (1984), second-order correction).
    Both traces come from the blocks' Gram matrix by unbiased U-statistics
    (:func:`_trace_moments`): the plain plug-in would be biased upward by
    :math:`(\mathrm{tr}M)^2/n_\mathrm{blocks}`, which makes the test conservative.
    The first-order correction (dividing by the mean design effect alone) left the variance
    of the statistic uncorrected and rejected true laws far too often (``benchmarks/gof_calibration.py``).

    Returns (chi2 = X^2/c, dof = nu, p, kl, tv, on, mean design effect, n_inside, informative_bins).
    """
    land = gibbs.landscape
    d = run.dim
    none = (None, None, None, None, None, None, 1.0, 0.0, None)
    if d == 1:
        blocks = run.block_hist[:, 0, :]
        edges = run.hist_edges[0]
        law = lambda g: g.bin_probabilities(edges)  # noqa: E731
        on = "coordinates"
        informative = informative_bins(run.hist[0])
    elif d == 2 and run.hist2d is not None:
        blocks = run.block_hist2d.reshape(run.block_hist2d.shape[0], -1)
        law = lambda g: g.bin_probabilities(run.hist_edges).ravel()  # noqa: E731
        on = "joint"
        informative = min(informative_bins(run.hist[k]) for k in range(2))  # per axis of the joint bins
    elif isinstance(land, Quadratic):
        blocks = run.block_loss_hist
        law = lambda g: g.loss_bin_probabilities(run.loss_edges)  # noqa: E731
        on = "loss"
        informative = informative_bins(run.loss_hist)
    else:
        return none
    counts = blocks.astype(np.float64)
    n_b = counts.sum(axis=1)
    n = float(n_b.sum())
    # Condition both on the histogram range: the law inside it, normalised there.
    probs = _normalised(law(gibbs))
    if n == 0 or probs.sum() <= 0:
        return none[:5] + (on, 1.0, 0.0, informative)
    observed = counts.sum(axis=0)
    o = observed / n
    nz = o > 0
    kl = float(np.sum(o[nz] * np.log(o[nz] / np.maximum(probs[nz], 1e-300))))
    tv = float(0.5 * np.sum(np.abs(o - probs)))

    groups = _pool_sparse(n * probs)
    order = np.concatenate(groups)
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    pool = lambda a: np.add.reduceat(a[..., order], starts, axis=-1)  # noqa: E731  (sum within each group)
    c_g, p_g = pool(counts), pool(probs)
    e_g = n * p_g
    o_g = c_g.sum(axis=0)
    k = len(groups)
    x2 = float(np.sum((o_g - e_g) ** 2 / e_g))
    live = n_b > 0
    m = int(live.sum())
    resid = c_g[live] - n_b[live, None] * (o_g / n)[None, :]
    fitted = influence is not None
    if fitted:
        t, h = gibbs.temperature, 1e-3  # central difference: O(h^2) = 1e-6 relative
        dp = (pool(_normalised(law(Gibbs(land, t * (1 + h))))) - pool(_normalised(law(Gibbs(land, t * (1 - h)))))) / (2 * h * t)
        resid -= n * dp[None, :] * influence[live, None]
    if m < 4 or k < 3:
        return x2, None, math.nan, kl, tv, on, 1.0, n, informative
    a = resid / np.sqrt(e_g)[None, :]
    tr_sigma, tr_sigma2 = _trace_moments(a @ a.T)
    tr_m = m * tr_sigma
    rank = k - 1 - (1 if fitted else 0)
    tr_m2 = max(m * m * tr_sigma2, tr_m**2 / max(rank, 1))  # tr M^2 >= (tr M)^2 / rank
    if not (tr_m > 0 and np.isfinite(tr_m2)):
        return x2, None, math.nan, kl, tv, on, 1.0, n, informative
    scale = tr_m2 / tr_m
    dof = tr_m**2 / tr_m2
    chi2 = x2 / scale
    # the scale and dof are themselves estimated from m blocks: refer chi2/dof to an F law with
    # (m - 1) dof per degree of freedom in the denominator (Thomas & Rao, J. Amer. Statist. Assoc.
    # 82, 630 (1987)), which tends to chi2_dof / dof as m grows
    p = float(stats.f.sf(chi2 / dof, dof, (m - 1) * dof))
    return chi2, dof, p, kl, tv, on, tr_m / max(rank, 1), n, informative


def fit_temperature(run: SimulationResult, method: str = "mle", *, landscape: Landscape | None = None,
                    confidence: float = 0.95, temperature: float | None = None,
                    allow_incomplete: bool = False) -> TemperatureFit:
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
    allow_incomplete : bool, default False
        An interrupted run (``run.complete`` is False) holds part of its sampling window, maybe
        none of it; fitting it is refused unless this is True (then it warns, and the verdict
        says so).

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
    if not isinstance(run, SimulationResult):
        raise TypeError(f"run must be a gibbs_sgd.SimulationResult (from simulate, load or from_samples), "
                        f"got {type(run).__name__}")
    if method not in ("mle", "virial", "configurational"):
        raise ValueError(f"method must be one of 'mle', 'virial', 'configurational', got {method!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(allow_incomplete, (bool, np.bool_)):
        raise TypeError(f"allow_incomplete must be True or False, got {allow_incomplete!r}")
    if not run.complete:
        done, total = run.config.get("chain_steps_done", 0), run.n_chains * run.config["n_steps"]
        msg = (f"the run is incomplete (interrupted after {done:,} of {total:,} chain-steps): its statistics "
               "cover part of the sampling window")
        if not allow_incomplete:
            raise ValueError(msg + "; resume it (same call with its checkpoint), or pass allow_incomplete=True")
        warnings.warn(msg + "; the fit describes that part only", RuntimeWarning, stacklevel=2)
    if landscape is not None:
        if not isinstance(landscape, Landscape):
            raise TypeError(f"landscape must be a gibbs_sgd.landscapes.Landscape, got {type(landscape).__name__}")
        if _canonical(landscape.describe()) != _canonical(run.config["landscape"]):
            raise ValueError(f"landscape does not match the run's: given {landscape.describe()}, the run was made "
                             f"on {run.config['landscape']}")
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
    influence = {"configurational": _influence(np.stack([s_g2, s_lap], 1), counts,
                                                np.array([1 / m_lap, -m_g2 / m_lap**2]), np.array([m_g2, m_lap]))}
    se_conf = _se(influence["configurational"], counts)
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
        influence["virial"] = _influence(sums, counts, grad, means)
        se_vir = _se(influence["virial"], counts)
        virial = EstimatorResult(t_vir, se_vir, (t_vir - q * se_vir, t_vir + q * se_vir))

    # maximum likelihood: E_T[L] = <L>, CI by inverting the monotone map at <L> -+ q se
    ml = run.mean_loss
    guess = t_conf if np.isfinite(t_conf) and t_conf > 0 else 1.0
    solve = _mle(land, ml.value, guess)
    t_mle = solve(ml.value)
    lo, hi = solve(ml.value - q * ml.stderr), solve(ml.value + q * ml.stderr)
    mle = EstimatorResult(t_mle, 0.5 * (hi - lo) / q if np.isfinite(hi - lo) else math.nan, (lo, hi))
    if np.isfinite(t_mle) and t_mle > 0:
        # T_mle solves E_T[L] = <L>: its influence is the mean loss's over dE_T[L]/dT = Var_T[L]/T^2
        slope = Gibbs(land, t_mle).loss_variance() / t_mle**2
        s_l = run.moments[:, lay["loss"]]
        influence["mle"] = _influence(s_l[:, None], counts, np.array([1.0 / slope]), np.array([ml.value]))

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

    chi2, dof, p, kl, tv, on, deff, n_in, informative = _gof(
        run, gibbs, None if hypothesis is not None else influence.get(method))
    z_stat = _stationarity(run)
    outside = _beyond_box(run, land, n)

    # every check: (what, z) when it could be made; what could not be made, and why
    problems, unchecked, zs = [], [], []
    reference = chosen.value if hypothesis is None else hypothesis
    departures = []

    def compare(label, value, stderr, against, against_se=0.0):
        if not (np.isfinite(value) and np.isfinite(stderr) and stderr > 0):
            unchecked.append(f"the {label} could not be computed ({value:.4g} ± {stderr:.2g})")
            return
        departures.append(abs(value / reference - 1))
        z = (value - against) / math.hypot(stderr, against_se)
        zs.append(abs(z))
        if abs(z) > _Z_AGREE:
            if hypothesis is None:
                problems.append(f"{label} = {value:.4g} differs by {z:+.1f} sigma (ratio {value / against:.4g})")
            else:
                problems.append(f"{label} = {value:.4g} is {z:+.1f} sigma from the given T = {against:.4g}")

    if hypothesis is not None:
        for name, est in estimators.items():
            if est is not None:
                compare(f"{name} T", est.value, est.stderr, hypothesis)
    else:
        for name in ("virial", "configurational", "mle"):
            other = estimators[name]
            if other is not None and name != method:
                compare(f"{name} T", other.value, other.stderr, chosen.value, chosen.stderr)
    if per is not None and d > 1:
        for k in range(d):
            compare(f"per-coordinate virial T[{k}]", per[k], per_se[k], float(per.mean()))
    if on is None:
        unchecked.append(f"no histogram test exists for a {type(land).__name__} landscape in d = {d} (only the "
                         "estimators' agreement was checked)")
    elif informative is not None and informative < _MIN_INFORMATIVE_BINS:
        unchecked.append(f"the {on} histogram resolves the law in only {informative} bins holding > 1% of the "
                         f"fullest (at least {_MIN_INFORMATIVE_BINS} are needed to test its shape): use more bins or "
                         "hist_range='auto', the default")
    elif p is None or not np.isfinite(p) or dof is None or dof < 1:
        unchecked.append(f"the {on} histogram test could not be computed (dof = {dof})")
    else:
        zs.append(max(0.0, math.sqrt(2 * chi2) - math.sqrt(2 * dof - 1)))
        if p < _P_GOF:
            problems.append(f"the {on} histogram rejects it (chi2/dof = {chi2 / dof:.3g}, p = {p:.2g})")
    independent = run.config.get("backend") == "samples" and run.config["n_steps"] == 1
    if independent:
        pass  # independent samples (from_samples with one per chain): no time axis to drift along
    elif np.isfinite(z_stat):
        zs.append(abs(z_stat))
        if abs(z_stat) > _Z_AGREE:
            problems.append(f"not stationary: the mean loss drifts by {z_stat:+.1f} sigma across the window")
    else:
        unchecked.append("the drift test needs 2 or more trace points in the sampling window and 3 or more blocks "
                         "with samples in both halves (raise n_steps - burn_in, trace_points or n_chains)")
    if outside > _OUTSIDE_MAX and not isinstance(land, (Quadratic, Periodic)):
        problems.append(f"up to {outside:.2%} of the samples fall outside the box the law is normalised on")
    if not run.complete:
        unchecked.append("the run is incomplete")

    departure = max(departures) if departures else math.nan
    significance = max(zs) if zs else math.nan
    ci = chosen.ci
    head = f"T = {chosen.value:.6g} ± {q * chosen.stderr:.2g} ({confidence:.0%} CI [{ci[0]:.6g}, {ci[1]:.6g}], {method})"
    if hypothesis is not None:
        head = f"the given T = {hypothesis:.6g} (fitted {head})"
    size = (f"the estimators agree within {100 * departure:.2g}%" if np.isfinite(departure)
            else "the estimators could not be compared")
    if tv is not None:
        size += f", histogram within TV {tv:.2g} of exp(-L/T)/Z"
    if problems:
        status = "not gibbs"
        close = np.isfinite(departure) and departure <= _CLOSE_T and (tv is None or tv <= _CLOSE_TV)
        lead = "close to Gibbs, not exact" if close else "not Gibbs"
        verdict = (f"{lead} at {head}: {size}; the departure is resolved at {significance:.1f} sigma: "
                   + "; ".join(problems))
        if unchecked:
            verdict += "; not checked: " + "; ".join(unchecked)
    elif unchecked:
        status = "undetermined"
        verdict = f"undetermined at {head}: {size}, no check rejects it, but not called Gibbs: " + "; ".join(unchecked)
    else:
        status = "gibbs"
        verdict = (f"consistent with Gibbs at {head}: {size}; no departure resolved (largest |z| = "
                   f"{significance:.1f})")
    return TemperatureFit(
        temperature=chosen.value, ci=ci, method=method, confidence=confidence, estimators=estimators,
        per_coordinate=per, per_coordinate_stderr=per_se, chi2=chi2, dof=dof, p_value=p,
        n_effective=float(n_in / deff), design_effect=deff, kl_divergence=kl, total_variation=tv, gof_on=on,
        stationarity_z=z_stat, outside_fraction=outside, informative_bins=informative, departure=departure,
        significance=significance, unchecked=tuple(unchecked), status=status, is_gibbs=status == "gibbs",
        verdict=verdict, gibbs=gibbs,
    )


def _canonical(desc: dict) -> str:
    """A description as JSON, so a run's saved config and a live object compare by value."""
    return json.dumps(json.loads(json.dumps(desc, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v))),
                      sort_keys=True)


def _beyond_box(run: SimulationResult, land: Landscape, n: float) -> float:
    """Upper bound on the fraction of samples outside the landscape's box (where the Gibbs law is
    normalised): the samples outside the histogram range plus those in bins reaching past the box,
    the largest over coordinates."""
    if n == 0:
        return 0.0
    box = np.asarray(land.box, dtype=np.float64)
    worst = 0
    for i in range(run.dim):
        e = np.asarray(run.hist_edges[i])
        past = (e[:-1] < box[i, 0]) | (e[1:] > box[i, 1])
        worst = max(worst, int(run.outside[i].sum()) + int(run.hist[i][past].sum()))
    return worst / n
