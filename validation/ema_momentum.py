"""EMA momentum: "the temperature is determined by eta independent of N" -- at small lr h; how far not, at finite lr h.

The lecture ("EMA Momentum: Temperature is Independent of N"): with
g~ <- (1 - 1/N) g~ + g_hat / N, Phi <- Phi - eta g~, "the total contribution of a single g_hat_t
is ... = 1. Hence the temperature is determined by eta independent of N", and, before it,
"unless the batch size is extremely large ... the temperature is determined by the total effect
of a single training gradient". The argument is a small-step argument, so the claim is a limit:
T(eta, N) -> eta sigma^2 / 2B as lr h -> 0, for every N.

Measured with gs.sweep over the learning rate (lr h = 0.005 .. 1.5) and the horizon
N = 1/(1 - beta) = 1 .. 100 on the 1-D quadratic h Phi^2/2 with Gaussian noise. The exact
stationary law of the linear recursion (gs.theory.stationary_covariance, a discrete Lyapunov
equation) is, with T_small = eta sigma^2 / 2B,

    T / T_small = 1 / (1 - lr h / (2 (2N - 1))),   i.e. the departure  delta = 1 - T_small / T = lr h / (2 (2N - 1)),

exactly linear in lr h: N enters only through this finite-lr correction, which momentum shrinks.

Checks, every tolerance fixed below before the run:
* the claim at the smallest lr h: T(N) / T_small - 1 within CLAIM_TOL for every N;
* the rate, over the points with x = lr h / (2N - 1) <= RATE_X_MAX: the exponent p of delta = c x^p
  is 1 within RATE_TOL (linear in lr h), and the coefficient a of delta = a x is 1/2 within
  RATE_TOL (relative) -- the predicted first-order rate;
* every point on its exact Lyapunov value: T / T_exact - 1 within EXACT_TOL;
* burn-in: each point runs BURN_TAU relaxation times of the slowest mode (spectral radius of the
  recursion) before sampling; a point with less than MIN_BURN_TAU gets no verdict (its checks are
  unresolved, it is drawn hollow).

    python validation/ema_momentum.py [--quick | --tiny] [--out FOLDER]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import (Check, Row, burn_in_refusal, combine, finish, fmt, options, rate_fit, ratio,
                                  run_length, shown_range)

H, SIGMA, B = 1.0, 1.0, 1
# Tolerances, fixed before the run.
CLAIM_TOL = 0.01   # "independent of N": T(N) within 1% of eta sigma^2 / 2B at the smallest lr h
EXACT_TOL = 0.01   # every point within 1% of its exact Lyapunov temperature
RATE_TOL = 0.05    # exponent within +-0.05 of 1, coefficient within 5% of 1/2
RATE_X_MAX = 0.5   # the rate is fitted where the parameter x = lr h / (2N - 1) is small (delta = x/2 <= 0.25)
MIN_BURN_TAU = 5.0  # from the minimum, the variance's bias after b relaxation times is e^(-2b): 5e-5 at b = 5
SIZES = {
    # BURN_TAU / WINDOW_TAU: burn-in and sampling window in relaxation times; cap: most steps per point
    "full": dict(n_chains=1_000_000, lrs=[0.005, 0.015, 0.05, 0.15, 0.5, 1.5], horizons=[1, 2, 5, 10, 100],
                 burn_tau=6.0, window_tau=10.0, cap=10**6),
    "quick": dict(n_chains=60_000, lrs=[0.005, 0.015, 0.05, 0.15, 0.5, 1.5], horizons=[1, 2, 5, 10, 100],
                  burn_tau=6.0, window_tau=10.0, cap=10**6),
    # tiny: a smoke test; the cap leaves the smallest lr h under-burnt, so it exercises the refusal
    "tiny": dict(n_chains=2_000, lrs=[0.02, 0.5], horizons=[1, 10], burn_tau=6.0, window_tau=10.0, cap=300),
}
MIN_WINDOW = 200  # steps sampled at least, for the fast points (a relaxation time of a few steps)
LAND = gs.landscapes.Quadratic(H, box=[[-8.0, 8.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _opt(lr, n):
    return gs.optimizers.EMAMomentum(lr=lr, beta=1.0 - 1.0 / n)


def exact_ratio(lr_h, n):
    """T / T_small of the exact Lyapunov law (from gs.theory, not from the closed form)."""
    o = _opt(lr_h / H, n)
    return H * gs.theory.stationary_covariance(o, H, NOISE, B)[0, 0] / gs.theory.small_lr_temperature(o, NOISE, B)


def plan(size):
    """The grid: one point dict per (lr, N) with its run length from the relaxation time."""
    points = []
    for lr_h in size["lrs"]:
        for n in size["horizons"]:
            tau = gs.theory.relaxation_time(_opt(lr_h / H, n), [[H]])
            steps, burn = run_length(tau, size["burn_tau"], size["window_tau"], size["cap"], MIN_WINDOW)
            points.append({"lr": lr_h / H, "beta": 1.0 - 1.0 / n, "n_steps": steps, "burn_in": burn})
    return points


def measured(table_rows):
    """Each sweep row with what the checks read: lr h, N, T/T_small (and its error), T/T_exact, delta, x."""
    out = []
    for r in table_rows:
        n = int(round(1.0 / (1.0 - r["beta"])))
        lr_h = r["lr"] * H
        tau = gs.theory.relaxation_time(_opt(r["lr"], n), [[H]])
        t_small = gs.theory.small_lr_temperature(_opt(r["lr"], n), NOISE, B)
        t, se = r["temperature"], r["t_mle_se"]
        out.append({"lr_h": lr_h, "N": n, "ratio": t / t_small, "ratio_se": se / t_small,
                    "exact": exact_ratio(lr_h, n), "burn_tau": r["burn_in"] / tau,
                    "n_steps": r["n_steps"], "burn_in": r["burn_in"], "tau": tau, "temperature": t, "se": se,
                    "t_small": t_small, "is_gibbs": r.get("is_gibbs")})
    return out


def _equilibrated(p):
    return p["burn_tau"] >= MIN_BURN_TAU


def departure(p):
    """delta = 1 - T_small / T and its standard error, and x = lr h / (2N - 1)."""
    d = 1.0 - 1.0 / p["ratio"]
    return d, p["ratio_se"] / p["ratio"] ** 2, p["lr_h"] / (2 * p["N"] - 1)


def checks(points):
    """The row's checks from measured points (dicts from :func:`measured`): the claim at the
    smallest lr h, the rate of the departure, and every point against its exact value."""
    out = []
    smallest = min(p["lr_h"] for p in points)
    for p in sorted((p for p in points if p["lr_h"] == smallest), key=lambda p: p["N"]):
        out.append(Check(f"T/(eta sigma^2/2B) - 1 at lr h = {smallest:g}, N = {p['N']}", p["ratio"] - 1.0,
                         p["ratio_se"], CLAIM_TOL,
                         no_verdict=burn_in_refusal(p["burn_tau"], MIN_BURN_TAU, "tau")))
    ok = [p for p in points if _equilibrated(p) and departure(p)[2] <= RATE_X_MAX]
    dep = [departure(p) for p in ok]
    a, sa, pw, sp = rate_fit([d[2] for d in dep], [d[0] for d in dep], [d[1] for d in dep])
    where = f"over {len(ok)} points with x = lr h/(2N-1) <= {RATE_X_MAX:g}"
    out.append(Check(f"exponent p of delta = 1 - T_small/T ~ x^p {where}", pw, sp,
                     RATE_TOL, target=1.0))
    out.append(Check(f"coefficient a of delta = a x {where}", a, sa, RATE_TOL,
                     target=0.5, relative=True))
    for p in points:
        out.append(Check(f"T/T_exact at lr h = {p['lr_h']:g}, N = {p['N']}", p["ratio"] / p["exact"],
                         p["ratio_se"] / p["exact"], EXACT_TOL, target=1.0, relative=True,
                         no_verdict=burn_in_refusal(p["burn_tau"], MIN_BURN_TAU, "tau")))
    return out


def where_it_holds(tol=CLAIM_TOL):
    """The largest lr h at which T(N) / T_small - 1 <= tol for every N >= 1 (exact law: N = 1 is
    the worst, T/T_small = 1 / (1 - lr h / 2))."""
    return 2.0 * tol / (1.0 + tol)


def measured_range(points):
    """Where the data show the claim within CLAIM_TOL for every N, and the first lr h where they
    show it not, from the same 2-s.e. rule as the checks."""
    return shown_range([(lr_h, [(p["ratio"] - 1, p["ratio_se"], p["N"]) for p in points
                                 if p["lr_h"] == lr_h and _equilibrated(p)])
                        for lr_h in sorted({p["lr_h"] for p in points})], CLAIM_TOL, "lr h", "N", "T/T_small - 1")


def summary(points):
    """How far T departs from eta sigma^2/2B at each lr h, and the N-spread at the largest one, from the numbers."""
    lines = []
    for lr_h in sorted({p["lr_h"] for p in points}):
        ps = sorted((p for p in points if p["lr_h"] == lr_h), key=lambda p: p["N"])
        worst = max(ps, key=lambda p: abs(p["ratio"] - 1))
        lines.append(f"lr h = {lr_h:g}: largest departure T/T_small - 1 = "
                     f"{fmt(worst['ratio'] - 1, worst['ratio_se'])} at N = {worst['N']} "
                     f"(exact {worst['exact'] - 1:+.4f})")
    top = max(p["lr_h"] for p in points)
    ps = sorted((p for p in points if p["lr_h"] == top), key=lambda p: p["N"])
    lo, hi = ps[0], ps[-1]
    spread, spread_se = ratio(lo["ratio"], lo["ratio_se"], hi["ratio"], hi["ratio_se"])
    spread -= 1
    return lines, (f"T is N-independent within {CLAIM_TOL:.0%} for lr h <= {where_it_holds():.3g} (exact law; N = 1 "
                   f"departs most); measured: {measured_range(points)}; at lr h = {top:g}, "
                   f"T(N = {lo['N']})/T(N = {hi['N']}) - 1 = "
                   f"{fmt(spread, spread_se)} (exact {lo['exact'] / hi['exact'] - 1:.4f})")


def figure(points, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "legend.fontsize": 11,
                         "xtick.labelsize": 11, "ytick.labelsize": 11})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.4))
    lrs = np.geomspace(min(size["lrs"]) / 1.5, max(size["lrs"]) * 1.1, 200)
    for k, n in enumerate(size["horizons"]):
        c = f"C{k}"
        ps = sorted((p for p in points if p["N"] == n), key=lambda p: p["lr_h"])
        ax.plot(lrs, [exact_ratio(v, n) for v in lrs], color=c, lw=1.2)
        ax2.plot(lrs, lrs / (2 * (2 * n - 1)), color=c, lw=1.2)
        for p in ps:
            face = c if _equilibrated(p) else "white"
            ax.errorbar(p["lr_h"], p["ratio"], yerr=2 * p["ratio_se"], fmt="o", ms=6, capsize=3, color=c, mfc=face)
            d, sd, _ = departure(p)
            if d - 2 * sd > 0:
                ax2.errorbar(p["lr_h"], d, yerr=2 * sd, fmt="o", ms=6, capsize=3, color=c, mfc=face)
            else:  # not resolved from 0: its 2-sigma upper limit
                ax2.plot(p["lr_h"], max(d + 2 * sd, 1e-6), "v", ms=7, color=c, mfc=face)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax2.axhline(CLAIM_TOL / (1 + CLAIM_TOL), color="0.4", lw=1.0, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([1.0, 1.1, 1.25, 1.5, 2, 3, 4, 6]))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("T / ($\\eta\\sigma^2/2B$)")
    ax.set_title("T against lr h for each EMA horizon N")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax.set_xlabel("lr h (dimensionless step)")
    ax2.set_xlabel("lr h (dimensionless step)")
    ax2.set_ylabel("departure $\\delta = 1 - T_{small}/T$")
    ax2.set_title("departure -> 0 linearly in lr h")
    for a in (ax, ax2):
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    handles = [Line2D([], [], color=f"C{k}", marker="o", lw=1.2, label=f"N = {n}") for k, n in
               enumerate(size["horizons"])]
    handles += [Line2D([], [], color="k", lw=1.2, label="exact (Lyapunov), gs.theory"),
                Line2D([], [], color="k", marker="o", ls="", label="measured, 2 s.e."),
                Line2D([], [], color="k", marker="o", mfc="white", ls="",
                       label=f"left out: burn-in < {MIN_BURN_TAU:g} relaxation times"),
                Line2D([], [], color="k", marker="v", ls="", label="departure not resolved: 2 s.e. upper limit"),
                Line2D([], [], color="0.4", ls=":", label=f"claim tolerance: T/T_small - 1 = {CLAIM_TOL:.0%}")]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    points = plan(size)
    table = gs.sweep(LAND, _opt(1.0, 2), noise=NOISE, batch_size=B, grid=points, n_chains=size["n_chains"],
                     progress=False, dtype=np.float64)
    pts = measured(table.rows)
    cs = checks(pts)
    outcome, deciding = combine(cs)
    lines, headline = summary(pts)
    burns = [p["burn_tau"] for p in pts]
    row = Row(
        name="ema_momentum",
        claim="EMA momentum: \"the total contribution of a single g_hat_t is 1 ... Hence the temperature is determined "
              "by eta independent of N\" (a small-step argument: tested as the limit lr h -> 0, and its departure at "
              "finite lr h measured against the exact law)",
        setup=f"EMA momentum beta = 1 - 1/N, N = {size['horizons']}, lr h = {size['lrs']}, on the quadratic h = {H}, "
              f"Gaussian noise sigma = {SIGMA}, B = {B}; gs.sweep, {size['n_chains']:,} chains per point from the "
              f"minimum; "
              f"burn-in {min(burns):.1f} to {max(burns):.1f} relaxation times of the slowest mode (no verdict below "
              f"{MIN_BURN_TAU:g}), then at least {size['window_tau']:g} sampled; tolerances: claim ±{CLAIM_TOL:.0%}, "
              f"exact ±{EXACT_TOL:.0%}, rate ±{RATE_TOL:g}",
        result="; ".join(lines),
        verdict=f"{outcome}: {deciding}. {headline}",
        checks=cs,
        details={"points": pts, "where_it_holds_lr_h": where_it_holds(),
                 "exact_law": "T/T_small = 1/(1 - lr h/(2(2N-1))) (gs.theory.stationary_covariance)"},
    )
    finish(args, row, figure(pts, size))


if __name__ == "__main__":
    main()
