"""Heavy ball (PyTorch's SGD): T ~ lr / (B (1 - mu)) at fixed lr; lr = (1 - mu) B eta0 flattens it as B eta0 h -> 0.

The lecture ("Heavy Ball Momentum"): with v <- mu v + eta g_hat, Phi <- Phi - v, "in PyTorch
vanilla SGD the temperature depends on all three hyper parameters -- mu, B, and eta (not good)";
"we can set eta = (1 - mu) B eta0. For academic batch sizes this setting of eta makes the
temperature depend on eta0 independent of mu and B". "Academic batch sizes" is a limit: the
small parameter is B eta0 h (h the curvature).

Measured with gs.sweep on the 1-D quadratic h Phi^2/2 with Gaussian per-example noise sigma:
(1) at fixed lr over mu, B and lr, against the small-lr law T = lr sigma^2 / (2 B (1 - mu));
(2) under lr = (1 - mu) B eta0 over mu = 0 .. 0.99 and B eta0 h = 0.005 .. 1.28. The exact
stationary law of the linear recursion (gs.theory.stationary_covariance, a discrete Lyapunov
equation) is, under the rule, with T_small = eta0 sigma^2 / 2,

    T / T_small = 1 / (1 - x / 2),  x = B eta0 h (1 - mu) / (1 + mu),

so the departure delta = 1 - T_small / T = x / 2 is exactly linear in B eta0 h, largest at mu = 0.

Checks, every tolerance fixed below before the run:
* fixed lr: T ~ lr^a B^b (1 - mu)^c fitted over the grid: a = 1, b = -1, c = -1, each within FIXED_TOL;
* the rule's claim at the smallest B eta0 h: T / T_small - 1 within CLAIM_TOL for every mu;
* the rate, over the rule points with x <= RATE_X_MAX: the exponent p of delta = c x^p is 1 within
  RATE_TOL, and the coefficient a of delta = a x is 1/2 within RATE_TOL (relative);
* every point on its exact Lyapunov value: T / T_exact - 1 within EXACT_TOL;
* burn-in: BURN_TAU relaxation times of the slowest mode before sampling; a point with less than
  MIN_BURN_TAU gets no verdict (its checks are unresolved, it is drawn hollow).

    python validation/heavy_ball.py [--quick | --tiny] [--out FOLDER]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import (Check, Row, burn_in_refusal, combine, finish, fmt, options, rate_fit, ratio,
                                  run_length, shown_range)

H, SIGMA = 1.0, 1.0
ETA0 = 0.005  # eta0 h: B eta0 h = 0.005 at B = 1
# Tolerances, fixed before the run.
CLAIM_TOL = 0.01   # "independent of mu": T within 1% of eta0 sigma^2 / 2 at the smallest B eta0 h
EXACT_TOL = 0.01   # every point within 1% of its exact Lyapunov temperature
RATE_TOL = 0.05    # departure exponent within +-0.05 of 1, coefficient within 5% of 1/2
RATE_X_MAX = 0.5   # the rate is fitted where x = B eta0 h (1-mu)/(1+mu) is small (delta = x/2 <= 0.25)
FIXED_TOL = 0.03   # fixed-lr exponents of lr, B and 1 - mu within +-0.03 of +1, -1, -1
MIN_BURN_TAU = 5.0  # from the minimum, the variance's bias after b relaxation times is e^(-2b): 5e-5 at b = 5
SIZES = {
    "full": dict(n_chains=1_000_000, momenta=[0.0, 0.5, 0.8, 0.9, 0.95, 0.99], batches=[1, 4, 16, 64, 256],
                 fixed_lrs=[0.01, 0.02], fixed_batches=[1, 4], fixed_momenta=[0.0, 0.5, 0.9, 0.99],
                 burn_tau=6.0, window_tau=10.0, cap=10**6),
    "quick": dict(n_chains=50_000, momenta=[0.0, 0.5, 0.8, 0.9, 0.95, 0.99], batches=[1, 4, 16, 64, 256],
                  fixed_lrs=[0.01, 0.02], fixed_batches=[1, 4], fixed_momenta=[0.0, 0.5, 0.9, 0.99],
                  burn_tau=6.0, window_tau=10.0, cap=10**6),
    # tiny: a smoke test; the cap leaves the slow points under-burnt, so it exercises the refusal
    "tiny": dict(n_chains=2_000, momenta=[0.0, 0.9], batches=[4, 256], fixed_lrs=[0.02], fixed_batches=[1, 4],
                 fixed_momenta=[0.0, 0.9], burn_tau=6.0, window_tau=10.0, cap=400),
}
MIN_WINDOW = 200  # steps sampled at least, for the fast points
LAND = gs.landscapes.Quadratic(H, box=[[-8.0, 8.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _opt(lr, mu):
    return gs.optimizers.HeavyBall(lr=lr, momentum=mu)


def t_exact(lr, mu, batch):
    return H * gs.theory.stationary_covariance(_opt(lr, mu), H, NOISE, batch)[0, 0]


def _point(lr, mu, batch, size):
    tau = gs.theory.relaxation_time(_opt(lr, mu), [[H]])
    steps, burn = run_length(tau, size["burn_tau"], size["window_tau"], size["cap"], MIN_WINDOW)
    return {"lr": lr, "momentum": mu, "batch_size": batch, "n_steps": steps, "burn_in": burn}


def plan(size):
    """(fixed-lr grid, rule grid): point dicts with each point's run length from its relaxation time."""
    fixed = [_point(lr, mu, b, size) for lr in size["fixed_lrs"] for b in size["fixed_batches"]
             for mu in size["fixed_momenta"]]
    rule = [_point((1 - mu) * b * ETA0, mu, b, size) for b in size["batches"] for mu in size["momenta"]]
    return fixed, rule


def measured(table_rows, rule):
    """Each sweep row with what the checks read (T against its small-lr and exact values, burn-in in tau)."""
    out = []
    for r in table_rows:
        lr, mu, b = r["lr"], r["momentum"], r["batch_size"]
        tau = gs.theory.relaxation_time(_opt(lr, mu), [[H]])
        t_small = gs.theory.small_lr_temperature(_opt(lr, mu), NOISE, b)
        t, se = r["temperature"], r["t_mle_se"]
        out.append({"lr": lr, "momentum": mu, "batch_size": b, "rule": rule,
                    "b_eta0_h": b * ETA0 * H if rule else math.nan,
                    "x": lr / (1 - mu) * H * (1 - mu) / (1 + mu),  # = B eta0 h (1-mu)/(1+mu) under the rule
                    "temperature": t, "se": se, "t_small": t_small, "ratio": t / t_small, "ratio_se": se / t_small,
                    "exact": t_exact(lr, mu, b) / t_small, "tau": tau, "burn_in": r["burn_in"],
                    "n_steps": r["n_steps"], "burn_tau": r["burn_in"] / tau, "is_gibbs": r.get("is_gibbs")})
    return out


def _equilibrated(p):
    return p["burn_tau"] >= MIN_BURN_TAU


def fixed_exponents(points):
    """log T = c + a log lr + b log B + c' log(1 - mu), weighted least squares over equilibrated
    fixed-lr points: {name: (exponent, stderr)} (errors scaled up by sqrt(chi2/dof) if above 1)."""
    ps = [p for p in points if not p["rule"] and _equilibrated(p)]
    names = ("lr", "B", "1 - mu")
    if len(ps) < 5:
        return {k: (math.nan, math.inf) for k in names}
    X = np.array([[1.0, math.log(p["lr"]), math.log(p["batch_size"]), math.log(1 - p["momentum"])] for p in ps])
    y = np.array([math.log(p["temperature"]) for p in ps])
    w = np.array([p["temperature"] / p["se"] for p in ps])  # 1 / (se of log T)
    coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    cov = np.linalg.inv((X * w[:, None]).T @ (X * w[:, None]))
    chi2 = float(np.sum(((X @ coef - y) * w) ** 2)) / max(len(ps) - X.shape[1], 1)
    cov = cov * max(1.0, chi2)
    return {k: (float(coef[i + 1]), float(math.sqrt(cov[i + 1, i + 1]))) for i, k in enumerate(names)}


def departure(p):
    """delta = 1 - T_small / T and its standard error."""
    return 1.0 - 1.0 / p["ratio"], p["ratio_se"] / p["ratio"] ** 2


def checks(points):
    """The row's checks from measured points (dicts from :func:`measured`)."""
    out = []
    exps = fixed_exponents(points)
    n_fixed = sum(1 for p in points if not p["rule"] and _equilibrated(p))
    for name, target in (("lr", 1.0), ("B", -1.0), ("1 - mu", -1.0)):
        e, se = exps[name]
        out.append(Check(f"fixed lr: exponent of {name} in T ~ lr^a B^b (1 - mu)^c over {n_fixed} points", e, se,
                         FIXED_TOL, target=target))
    rule = [p for p in points if p["rule"]]
    smallest = min(p["b_eta0_h"] for p in rule)
    for p in sorted((p for p in rule if p["b_eta0_h"] == smallest), key=lambda p: p["momentum"]):
        out.append(Check(f"lr = (1-mu) B eta0: T/(eta0 sigma^2/2) - 1 at B eta0 h = {smallest:g}, "
                         f"mu = {p['momentum']:g}", p["ratio"] - 1.0, p["ratio_se"], CLAIM_TOL,
                         no_verdict=burn_in_refusal(p["burn_tau"], MIN_BURN_TAU, "tau")))
    ok = [p for p in rule if _equilibrated(p) and p["x"] <= RATE_X_MAX]
    dep = [departure(p) for p in ok]
    a, sa, pw, sp = rate_fit([p["x"] for p in ok], [d[0] for d in dep], [d[1] for d in dep])
    out.append(Check(f"exponent p of delta = 1 - T_small/T ~ x^p, x = B eta0 h (1-mu)/(1+mu), over {len(ok)} rule "
                     f"points with x <= {RATE_X_MAX:g}", pw, sp, RATE_TOL, target=1.0))
    out.append(Check(f"coefficient a of delta = a x over {len(ok)} rule points with x <= {RATE_X_MAX:g}", a, sa,
                     RATE_TOL, target=0.5,
                     relative=True))
    for p in points:
        where = (f"B eta0 h = {p['b_eta0_h']:g}" if p["rule"] else f"fixed lr = {p['lr']:g}, B = {p['batch_size']}")
        out.append(Check(f"T/T_exact at {where}, mu = {p['momentum']:g}", p["ratio"] / p["exact"],
                         p["ratio_se"] / p["exact"], EXACT_TOL, target=1.0, relative=True,
                         no_verdict=burn_in_refusal(p["burn_tau"], MIN_BURN_TAU, "tau")))
    return out


def where_it_holds(tol=CLAIM_TOL):
    """The largest B eta0 h at which |T / T_small - 1| <= tol for every mu in [0, 1) under the rule
    (exact law: mu = 0 departs most, T / T_small = 1 / (1 - B eta0 h / 2))."""
    return 2.0 * tol / (1.0 + tol)


def measured_range(rule):
    """Where the data show T / T_small - 1 within CLAIM_TOL for every mu, and the first B eta0 h
    where they show it not, from the same 2-s.e. rule as the checks."""
    return shown_range([(bh, [(p["ratio"] - 1, p["ratio_se"], p["momentum"]) for p in rule
                               if p["b_eta0_h"] == bh and _equilibrated(p)])
                        for bh in sorted({p["b_eta0_h"] for p in rule})], CLAIM_TOL, "B eta0 h", "mu",
                       "T/T_small - 1")


def summary(points):
    lines = []
    exps = fixed_exponents(points)
    lines.append("fixed lr: T ~ " + " ".join(f"({k})^({fmt(*exps[k])})" for k in ("lr", "B", "1 - mu")))
    rule = [p for p in points if p["rule"]]
    for bh in sorted({p["b_eta0_h"] for p in rule}):
        ps = sorted((p for p in rule if p["b_eta0_h"] == bh), key=lambda p: p["momentum"])
        lines.append(f"lr = (1-mu) B eta0, B eta0 h = {bh:g}: T/T_small = "
                     + ", ".join(f"{fmt(p['ratio'], p['ratio_se'])} (exact {p['exact']:.4f}) at mu = {p['momentum']:g}"
                                 for p in ps))
    top = max(p["b_eta0_h"] for p in rule)
    ps = sorted((p for p in rule if p["b_eta0_h"] == top), key=lambda p: p["momentum"])
    lo, hi = ps[0], ps[-1]
    spread, spread_se = ratio(lo["ratio"], lo["ratio_se"], hi["ratio"], hi["ratio_se"])
    spread -= 1
    head = (f"under lr = (1-mu) B eta0, T is flat within {CLAIM_TOL:.0%} over mu in [0, 1) for B eta0 h <= "
            f"{where_it_holds():.3g} (exact law; mu = 0 departs most); measured: {measured_range(rule)}; "
            f"at B eta0 h = {top:g}, "
            f"T(mu = {lo['momentum']:g})"
            f"/T(mu = {hi['momentum']:g}) - 1 = {fmt(spread, spread_se)} (exact {lo['exact'] / hi['exact'] - 1:.4f})")
    return lines, head


def figure(points, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "legend.fontsize": 11,
                         "xtick.labelsize": 11, "ytick.labelsize": 11})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.4))
    # left: fixed lr, T against 1/(1 - mu) per (lr, B), exact curves
    inv = np.geomspace(1.0, 1.0 / (1.0 - max(size["fixed_momenta"])) * 1.2, 200)
    k = 0
    for lr in size["fixed_lrs"]:
        for b in size["fixed_batches"]:
            c = f"C{k}"
            ps = [p for p in points if not p["rule"] and p["lr"] == lr and p["batch_size"] == b]
            ax.plot(inv, [t_exact(lr, 1 - 1 / v, b) for v in inv], color=c, lw=1.2,
                    label=f"lr = {lr:g}, B = {b}")
            for p in ps:
                ax.errorbar(1 / (1 - p["momentum"]), p["temperature"], yerr=2 * p["se"], fmt="o", ms=6, capsize=3,
                            color=c, mfc=c if _equilibrated(p) else "white")
            k += 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1 / (1 - mu)  (momentum horizon, steps)")
    ax.set_ylabel("T (loss units)")
    ax.set_title("fixed lr: T grows as lr / (B (1 - mu))")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False)
    # right: the rule, departure against B eta0 h per mu, exact lines
    bh = np.geomspace(ETA0 * H / 1.5, max(size["batches"]) * ETA0 * H * 1.2, 200)
    for j, mu in enumerate(size["momenta"]):
        c = f"C{j}"
        ax2.plot(bh, bh * (1 - mu) / (1 + mu) / 2, color=c, lw=1.2, label=f"mu = {mu:g}")
        for p in (p for p in points if p["rule"] and p["momentum"] == mu):
            d, sd = departure(p)
            face = c if _equilibrated(p) else "white"
            if d - 2 * sd > 0:
                ax2.errorbar(p["b_eta0_h"], d, yerr=2 * sd, fmt="o", ms=6, capsize=3, color=c, mfc=face)
            else:  # not resolved from 0: its 2-sigma upper limit
                ax2.plot(p["b_eta0_h"], max(d + 2 * sd, 1e-6), "v", ms=7, color=c, mfc=face)
    ax2.axhline(CLAIM_TOL / (1 + CLAIM_TOL), color="0.4", lw=1.0, ls=":")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("B $\\eta_0$ h  (the lecture's 'academic batch size' parameter)")
    ax2.set_ylabel("departure $\\delta = 1 - (\\eta_0\\sigma^2/2)/T$")
    ax2.set_title("lr = (1 - mu) B $\\eta_0$: departure -> 0 linearly")
    for a in (ax, ax2):
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    handles = [Line2D([], [], color=f"C{j}", lw=1.2, marker="o", label=f"mu = {mu:g}")
               for j, mu in enumerate(size["momenta"])]
    handles += [Line2D([], [], color="0.4", ls=":", label=f"{CLAIM_TOL:.0%} tolerance")]
    ax2.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=3, frameon=False)
    key = [Line2D([], [], color="k", lw=1.2, label="exact (Lyapunov), gs.theory"),
           Line2D([], [], color="k", marker="o", ls="", label="measured, 2 s.e."),
           Line2D([], [], color="k", marker="o", mfc="white", ls="",
                  label=f"left out: burn-in < {MIN_BURN_TAU:g} relaxation times"),
           Line2D([], [], color="k", marker="v", ls="", label="not resolved: 2 s.e. upper limit")]
    fig.legend(handles=key, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    fixed_grid, rule_grid = plan(size)
    common = dict(noise=NOISE, n_chains=size["n_chains"], progress=False, dtype=np.float64)
    fixed = gs.sweep(LAND, _opt(0.01, 0.0), grid=fixed_grid, **common)
    rule = gs.sweep(LAND, _opt(0.01, 0.0), grid=rule_grid, **common)
    pts = measured(fixed.rows, rule=False) + measured(rule.rows, rule=True)
    cs = checks(pts)
    outcome, deciding = combine(cs)
    lines, head = summary(pts)
    burns = [p["burn_tau"] for p in pts]
    row = Row(
        name="heavy_ball",
        claim="Heavy-ball momentum: \"the temperature depends on all three hyper parameters -- mu, B, and eta\"; "
              "\"eta = (1 - mu) B eta0 ... for academic batch sizes ... makes the temperature depend on eta0 "
              "independent of mu and B\" (tested as the limit B eta0 h -> 0, with its finite-B eta0 h departure "
              "measured against the exact law)",
        setup=f"torch.optim.SGD heavy ball (no dampening) on the quadratic h = {H}, Gaussian per-example noise sigma = "
              f"{SIGMA}; fixed lr = {size['fixed_lrs']} x B = {size['fixed_batches']} x mu = {size['fixed_momenta']}; "
              f"lr = (1-mu) B eta0, eta0 h = {ETA0 * H:g}, B = {size['batches']}, mu = {size['momenta']}; gs.sweep, "
              f"{size['n_chains']:,} chains per point from the minimum; burn-in {min(burns):.1f} to {max(burns):.1f} "
              f"relaxation times of the slowest mode (no verdict below {MIN_BURN_TAU:g}), then at least "
              f"{size['window_tau']:g} sampled; tolerances: fixed-lr exponents ±{FIXED_TOL:g}, "
              f"claim ±{CLAIM_TOL:.0%}, "
              f"exact ±{EXACT_TOL:.0%}, rate ±{RATE_TOL:g}",
        result="; ".join(lines),
        verdict=f"{outcome}: {deciding}. {head}",
        checks=cs,
        details={"points": pts, "where_it_holds_b_eta0_h": where_it_holds(),
                 "exact_law": "T/(eta0 sigma^2/2) = 1/(1 - B eta0 h (1-mu)/(2(1+mu))) under lr = (1-mu) B eta0 "
                              "(gs.theory.stationary_covariance)"},
    )
    finish(args, row, figure(pts, size))


if __name__ == "__main__":
    main()
