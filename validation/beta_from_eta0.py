"""Beta from eta0: under lr = (1 - mu) B eta0, heavy ball's temperature is set by eta0 alone, as x -> 0.

The lecture: "For PyTorch vanilla SGD we can set eta by eta = (1 - mu) B eta0. For academic
batch sizes this setting of eta makes the temperature depend on eta0 independent of mu and B"
(beta = 1/kT). The rule is a small-step statement: heavy ball under it is, at small steps, the
Langevin dynamics with time step B eta0 and temperature eta0 sigma^2 / 2 whatever (B, mu). At
finite steps the temperature rises with the one small number

    x = B eta0 h (1 - mu) / (1 + mu),   h = 8.87, the curvature of the deep well,

(exact on a quadratic: T = (eta0 sigma^2/2) / (1 - x/2)); the deep well holds 78-90% of the mass
at these temperatures, so its curvature, not the shallow well's (7.06), sets x. "Academic batch
sizes" are read as x <= ``X_ACADEMIC``. Measured on a grid (eta0, B, mu) on a tilted double well
with Gaussian per-example noise; T is the maximum-likelihood temperature of gs.fit_temperature
(the lecture's "same asymptotic loss, same temperature"). The claim becomes three checks per
eta0, each a number against a tolerance fixed here:

* the limit: T's departure from eta0 sigma^2/2, on a weighted line through the points with
  x <= ``X_LINEAR``, extrapolates to 0 at x -> 0 (T is determined by eta0);
* B and mu enter only through x: the mu = 0.9 points sit on the mu = 0 points' line (the offset
  of one family from the other, fitted jointly with one slope in x);
* at the academic edge x = ``X_ACADEMIC`` the line's departure is within ``ACADEMIC_TOL``;

and one for the trend: the fitted slopes in x, pooled over eta0, equal the first-order finite-step
law's (SGD's stationary law to first order in its step, gs.theory.first_order_mle_slope, with the
step B eta0 (1 - mu)/(1 + mu) that is exact on a quadratic) within ``FIRST_ORDER_TOL``.

Each point's burn-in is stated in units of the slowest relaxation time of the Langevin dynamics
at eta0 sigma^2/2 (the basin-exchange time, in steps of size B eta0); points below
``BURN_IN_RELAXATIONS`` of them get no verdict (hollow in the figure; the checks that need them
are refused). Chains start from the small-lr Gibbs law, so the burn-in relaxes the O(x) departure.

    python validation/beta_from_eta0.py [--quick | --tiny] [--out FOLDER]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.theory import first_order_mle_slope, langevin_relaxation_time
from gibbs_sgd.validation import Check, Row, finish, fmt, options


LAND = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.3)
SIGMA = 16.0
ETA0 = [0.002, 0.0026, 0.0033]  # small-lr T = eta0 sigma^2 / 2 = 0.256, 0.333, 0.422 (barrier 1)
BATCHES = [1, 4, 16]
MOMENTA = [0.0, 0.9]
# Burn-in and window in slowest relaxation times (chains start from the small-lr Gibbs law: after 4
# relaxation times at most e^-4 = 2% of the finite-step departure is left). Fewer: no verdict.
BURN_IN_RELAXATIONS = 4.0
WINDOW_RELAXATIONS = 2.0
# Tolerances and ranges, fixed before the run:
X_LINEAR = 0.15      # the departure is fitted as linear in x up to here (the quadratic's curvature term
                     # x^2/4 is 0.6% there; the B = 16, mu = 0 points, x = 0.28-0.47, are shown, not fitted)
X_ACADEMIC = 0.01    # "academic batch sizes": B eta0 h (1 - mu)/(1 + mu) <= 0.01
LIMIT_TOL = 0.01     # T(x -> 0) within 1% of eta0 sigma^2 / 2
FAMILY_TOL = 0.01    # the mu = 0.9 family within 1% of the mu = 0 family's line (same x)
ACADEMIC_TOL = 0.01  # the departure at x = X_ACADEMIC within 1%
FIRST_ORDER_TOL = 0.35  # the fitted slopes in x, pooled over eta0, within 35% of the first-order law's
SIZES = {"full": dict(n_chains=200_000, length=1.0), "quick": dict(n_chains=60_000, length=1.0),
         "tiny": dict(n_chains=400, length=0.03)}


def deep_well_curvature() -> float:
    """L'' at the deeper minimum of the tilted double well (8.87 for barrier 1, tilt 0.3)."""
    a, d, tau = LAND.width, LAND.barrier, LAND.tilt
    u = np.roots([4 * d, 0.0, -4 * d, tau]).real
    x = u * a
    deep = x[np.argmin(LAND.loss(x))]
    return float(LAND.laplacian(deep))


def x_of(eta0, batch_size, momentum, h) -> float:
    """The finite-step parameter x = B eta0 h (1 - mu) / (1 + mu)."""
    return batch_size * eta0 * h * (1 - momentum) / (1 + momentum)


def eta0_checks(eta0: float, points: list) -> tuple[list, dict]:
    """The claim at one eta0 as Checks, from points with keys x, momentum, dep (T / (eta0 sigma^2/2)
    - 1), se, equilibrated. Fits dep = a + b x + d [mu = 0.9] by weighted least squares on the
    points with x <= X_LINEAR; returns the checks and the fit (a, b, d and their covariance)."""
    use = [p for p in points if p["x"] <= X_LINEAR]
    refused = [p for p in use if not p["equilibrated"]]
    why = (f"{len(refused)} point(s) with burn-in < {BURN_IN_RELAXATIONS:g} relaxation times"
           if refused else "")
    x = np.array([p["x"] for p in use])
    dep = np.array([p["dep"] for p in use])
    se = np.array([p["se"] for p in use])
    fam = np.array([1.0 if p["momentum"] > 0 else 0.0 for p in use])
    w = 1.0 / se**2
    design = np.stack([np.ones_like(x), x, fam], 1)
    cov = np.linalg.pinv(design.T @ (design * w[:, None]))
    a, b, d = cov @ (design.T @ (w * dep))
    at_edge = a + b * X_ACADEMIC
    edge_se = math.sqrt(cov[0, 0] + 2 * X_ACADEMIC * cov[0, 1] + X_ACADEMIC**2 * cov[1, 1])
    label = f"eta0 = {eta0:g}"
    span = f"{len(use)} points, x = {x.min():.2g}..{x.max():.2g}"
    checks = [
        Check(f"{label}: T / (eta0 sigma^2/2) - 1 extrapolated to x -> 0 ({span})",
              a, math.sqrt(cov[0, 0]), LIMIT_TOL, no_verdict=why),
        Check(f"{label}: offset of the mu = 0.9 points from the mu = 0 points' line in x",
              d, math.sqrt(cov[2, 2]), FAMILY_TOL, no_verdict=why),
        Check(f"{label}: T / (eta0 sigma^2/2) - 1 at the academic edge x = {X_ACADEMIC:g} (the line)",
              at_edge, edge_se, ACADEMIC_TOL, no_verdict=why),
    ]
    return checks, dict(intercept=a, slope=b, offset=d, cov=cov.tolist(), at_edge=at_edge, edge_se=edge_se,
                        refused=bool(refused))


def slope_check(fits: dict, predicted: dict) -> Check:
    """The fitted slopes in x over the first-order ones, inverse-variance pooled over eta0, against 1."""
    ratio = np.array([fits[e]["slope"] / predicted[e] for e in fits])
    se = np.array([math.sqrt(fits[e]["cov"][1][1]) / predicted[e] for e in fits])
    refused = any(not math.isfinite(v) for v in ratio) or any(f.get("refused") for f in fits.values())
    w = 1.0 / se**2
    pooled, pooled_se = float(np.sum(w * ratio) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))
    return Check("slope of T/(eta0 sigma^2/2) - 1 in x over the first-order law's, pooled over eta0",
                 pooled, pooled_se, FIRST_ORDER_TOL, target=1.0,
                 no_verdict="points with burn-in too short" if refused else "")


def _figure(points, fits, h):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, axes = plt.subplots(1, 2, figsize=(17, 7.4), gridspec_kw={"width_ratios": [1, 1.15]})
    markers = {0.0: "o", 0.9: "s"}
    # left: T against eta0, every point, the small-lr law eta0 sigma^2 / 2
    ax = axes[0]
    for j, b in enumerate(BATCHES):
        for mu in MOMENTA:
            for p in (p for p in points if p["batch_size"] == b and p["momentum"] == mu):
                shift = 1 + 0.012 * (j - 1) + 0.004 * (mu > 0)  # side by side at each eta0
                ax.errorbar(p["eta0"] * shift, p["temperature"], yerr=2 * p["t_se"], fmt=markers[mu], ms=8,
                            color=f"C{j + 3}", mfc=f"C{j + 3}" if p["equilibrated"] else "white", capsize=3)
            ax.plot([], [], markers[mu], color=f"C{j + 3}", ms=8, label=f"B = {b}, mu = {mu:g}")
    ee = np.linspace(min(ETA0) * 0.95, max(ETA0) * 1.05, 10)
    ax.plot(ee, ee * SIGMA**2 / 2, "k-", lw=1.2, label="eta0 sigma^2 / 2 (small-step limit)")
    ax.set_xlabel("eta0")
    ax.set_ylabel("T (maximum likelihood, 95% CI)")
    ax.set_title("T against eta0 for every (B, mu)")
    if not all(p["equilibrated"] for p in points):
        ax.plot([], [], "o", color="0.3", mfc="white", ms=8, label="hollow: burn-in too short, no verdict")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=10.5)
    # right: the departure against x, where the checks are made
    ax = axes[1]
    for k, eta0 in enumerate(ETA0):
        color = f"C{k}"
        for p in (p for p in points if p["eta0"] == eta0 and p["x"] <= X_LINEAR):
            ax.errorbar(p["x"], 100 * p["dep"], yerr=200 * p["se"], fmt=markers[p["momentum"]], ms=8,
                        color=color, mfc=color if p["equilibrated"] else "white", capsize=3)
        f = fits[eta0]
        xx = np.linspace(0, X_LINEAR, 20)
        ax.plot(xx, 100 * (f["intercept"] + f["slope"] * xx), "-", color=color, lw=1.3,
                label=f"eta0 = {eta0:g}: fitted line (mu = 0)")
        ax.plot(xx, 100 * f["first_order"] * xx, ":", color=color, lw=2.0,
                label=f"eta0 = {eta0:g}: first-order law")
    xx = np.linspace(0, X_LINEAR * 1.05, 50)
    ax.plot(xx, 100 * (1 / (1 - xx / 2) - 1), "k--", lw=1.2, label="quadratic (exact): 1/(1 - x/2) - 1")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.axvspan(0, X_ACADEMIC, color="0.88", zorder=-2, label=f"'academic': x <= {X_ACADEMIC:g}")
    ax.plot([], [], "o", color="0.3", ms=8, label="mu = 0")
    ax.plot([], [], "s", color="0.3", ms=8, label="mu = 0.9")
    ax.set_xlim(0, X_LINEAR * 1.05)
    ax.set_xlabel(f"x = B eta0 h (1 - mu)/(1 + mu), h = {h:.3g} (deep well)")
    ax.set_ylabel("T / (eta0 sigma^2 / 2) - 1  [%]  (95% CI)")
    far = [p for p in points if p["x"] > X_LINEAR]
    ax.set_title(f"Departure against x <= {X_LINEAR:g}" + (f" ({len(far)} points beyond: left panel)" if far else ""))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=10.5)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    n = size["n_chains"]
    h = deep_well_curvature()
    points = []
    for i, eta0 in enumerate(ETA0):
        t_small = eta0 * SIGMA**2 / 2
        tau = langevin_relaxation_time(LAND, t_small)  # time units; a step is B eta0 of them
        init = gs.Gibbs(LAND, t_small).rvs(n, random_state=args.seed + 7 * i)
        for j, b in enumerate(BATCHES):
            for k, mu in enumerate(MOMENTA):
                steps_tau = tau / (b * eta0)
                burn = max(20, int(math.ceil(BURN_IN_RELAXATIONS * steps_tau * size["length"])))
                window = max(50, int(math.ceil(WINDOW_RELAXATIONS * steps_tau * size["length"])))
                run = gs.simulate(LAND, gs.optimizers.HeavyBall(lr=(1 - mu) * b * eta0, momentum=mu),
                                  noise=gs.noise.Gaussian(SIGMA), batch_size=b, n_chains=n, n_steps=burn + window,
                                  burn_in=burn, thin=max(1, int(0.05 * steps_tau)), init=init,
                                  seed=args.seed + 100 * i + 10 * j + k, progress=False, dtype=np.float64)
                fit = gs.fit_temperature(run)
                mle, conf = fit.estimators["mle"], fit.estimators["configurational"]
                points.append(dict(eta0=eta0, batch_size=b, momentum=mu, x=x_of(eta0, b, mu, h),
                                   t_small=t_small, temperature=mle.value, t_se=mle.stderr,
                                   dep=mle.value / t_small - 1, se=mle.stderr / t_small,
                                   dep_conf=conf.value / t_small - 1, se_conf=conf.stderr / t_small,
                                   burn=burn / steps_tau, window=window / steps_tau, steps=burn + window, equilibrated=burn / steps_tau
                                   >= BURN_IN_RELAXATIONS, status=fit.status, spread=fit.departure,
                                   n_diverged=run.n_diverged))
    checks, fits = [], {}
    for eta0 in ETA0:
        c, fits[eta0] = eta0_checks(eta0, [p for p in points if p["eta0"] == eta0])
        fits[eta0]["first_order"] = first_order_mle_slope(LAND, eta0 * SIGMA**2 / 2) / h  # per unit x
        checks += c
    checks.append(slope_check(fits, {e: fits[e]["first_order"] for e in ETA0}))
    fig = _figure(points, fits, h)

    parts = []
    for eta0 in ETA0:
        f = fits[eta0]
        parts.append(f"eta0 = {eta0:g} (T_small = {eta0 * SIGMA**2 / 2:.4g}): line T/T_small - 1 = "
                     f"{fmt(f['intercept'], math.sqrt(f['cov'][0][0]))} + ({fmt(f['slope'], math.sqrt(f['cov'][1][1]))}) x "
                     f"(first-order law {f['first_order']:.3g} x), "
                     f"mu = 0.9 offset {fmt(f['offset'], math.sqrt(f['cov'][2][2]))}")
    for p in sorted(points, key=lambda p: (p["eta0"], p["x"])):
        parts.append(f"(eta0 {p['eta0']:g}, B {p['batch_size']}, mu {p['momentum']:g}: x = {p['x']:.3g}, burn-in "
                     f"{p['burn']:.2g} and window {p['window']:.2g} relaxation times) T = {fmt(p['temperature'], p['t_se'])}, T/T_small - 1 = "
                     f"{100 * p['dep']:+.2f}% ± {100 * p['se']:.2f}% (configurational {100 * p['dep_conf']:+.2f}% ± "
                     f"{100 * p['se_conf']:.2f}%), Gibbs test at its own T: {p['status']}"
                     + (f"; {p['n_diverged']} diverged" if p["n_diverged"] else ""))
    passed = [p["x"] for p in points if p["status"] == "gibbs"]
    rejected = [p["x"] for p in points if p["status"] == "not gibbs"]
    parts.append(f"histogram test of each point against Gibbs at its own T: gibbs at {len(passed)} points"
                 + (f" (x = {min(passed):.2g}..{max(passed):.2g})" if passed else "")
                 + f", not gibbs at {len(rejected)}" + (f" (x = {min(rejected):.2g}..{max(rejected):.2g})"
                                                         if rejected else ""))
    row = Row(
        name="beta_from_eta0",
        claim="\"For PyTorch vanilla SGD we can set eta by eta = (1 - mu) B eta0. For academic batch sizes this setting "
              "of eta makes the temperature depend on eta0 independent of mu and B\" (beta = 1/kT)",
        setup=f"heavy ball (torch.optim.SGD momentum) with lr = (1-mu) B eta0 on the tilted double well (barrier 1, tilt "
              f"0.3; deep-well curvature h = {h:.3g}), Gaussian per-example noise sigma = {SIGMA:g}; eta0 = {ETA0}, "
              f"B = {BATCHES}, mu = {MOMENTA}; {n:,} chains per point from the small-lr Gibbs law, burn-in "
              f"{BURN_IN_RELAXATIONS:g} and window {WINDOW_RELAXATIONS:g} basin-exchange times (x {size['length']:g}; "
              f"verdicts refused below {BURN_IN_RELAXATIONS:g}); T = maximum likelihood; departure T/(eta0 sigma^2/2) - 1 "
              f"fitted as a + b x + d [mu = 0.9] on x <= {X_LINEAR:g}, x = B eta0 h (1-mu)/(1+mu)",
        result="; ".join(parts),
        checks=checks,
        details={"points": points, "fits": {str(k): v for k, v in fits.items()}, "deep_well_curvature": h},
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
