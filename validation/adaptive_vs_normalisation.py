"""Adam's EMA momentum against PyTorch RMSprop's heavy-ball momentum: which one leaves T alone.

The lecture: Adam's momentum is an EMA, so "we can set beta_g = 0 without influencing
temperature. Hence Adam should be approximately equivalent to" gradient normalisation
Phi <- Phi - eta g / (sqrt(s) + eps); whereas "PyTorch RMSProp uses heavy ball parameterization
(not good)": its temperature grows as 1/(1 - mu) with the momentum mu, like heavy ball's
(lecture: heavy ball needs eta = (1 - mu) B eta0). Measured with gs.sweep on the 1-D quadratic
h Phi^2/2 with Gaussian noise (sigma, B = 1) at one fixed lr: T against beta_g for Adam
(beta_s = 0.999) and against mu for torch RMSprop (alpha = 0.999), whose mu = 0 is the same
gradient normalisation. The curves: the small-lr values with sqrt(s) ~ sigma (Adam: lr sigma / 2;
RMSprop: lr sigma / (2 (1 - mu))), and a frozen-denominator mean field, the linear optimizer with
step lr / a (EMA momentum for Adam, heavy ball for RMSprop) whose exact Lyapunov variance V
closes a^2 = sigma^2 + h^2 V.

Checks (tolerances fixed below, before the run):
* Adam: max over beta_g of |T(beta_g)/T(0) - 1| within 1% (the lecture's claim);
* RMSprop: max over mu <= 0.9 of |T(mu) (1 - mu)/T(0) - 1| within 5% (heavy ball's 1/(1 - mu),
  where lr/(1 - mu) is still small);
* both: max |T / T_mean_field - 1| within 1% at every point (the curve, finite lr included).
Every point has a burn-in of BURN_MULT times its slowest time scale (relaxation time, momentum
horizon, the horizon 1/(1 - beta_s) = 1000 of the squared-gradient average); below it the checks
are refused (unresolved).

    python validation/adaptive_vs_normalisation.py [--quick | --tiny] [--out FOLDER]
"""
import math
from dataclasses import replace

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, burn_in_refusal, finish, fmt, options, ratio, worst_item

H, SIGMA, LR = 1.0, 1.0, 0.005
BETA_S = 0.999
MOMENTA = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99]
MU_SMALL_LR = 0.9  # RMSprop's 1/(1 - mu) is tested where lr/(1 - mu) h <= 0.05
BURN_MULT = 5.0  # burn-in in slowest time scales below which no verdict is given
TOL_ADAM = 0.01  # "without influencing temperature": 1%
TOL_HEAVY_BALL = 0.05  # RMSprop's T (1 - mu) / T(0) = 1 within 5% (small-lr heavy-ball law)
TOL_MEAN_FIELD = 0.01  # every point against the frozen-denominator mean field
SIZES = {"full": dict(n_chains=200_000, n_steps=25_000, burn_in=5_000),
         "quick": dict(n_chains=20_000, n_steps=15_000, burn_in=5_000),
         "tiny": dict(n_chains=400, n_steps=1_500, burn_in=750)}
LAND = gs.landscapes.Quadratic(H, box=[[-5.0, 5.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def mean_field(kind, m):
    """T of the linear optimizer with step lr/a, a = sqrt(sigma^2 + h^2 V) solved self-consistently."""
    a = SIGMA
    for _ in range(100):
        opt = (gs.optimizers.EMAMomentum(lr=LR / a, beta=m) if kind == "adam"
               else gs.optimizers.HeavyBall(lr=LR / a, momentum=m))
        var = gs.theory.stationary_covariance(opt, H, NOISE, 1)[0, 0]
        a = math.sqrt(SIGMA**2 + H**2 * var)
    return H * var


def slowest_time(kind, m):
    """The slowest time scale in steps: relaxation 1/(lr_eff h), the momentum and s horizons."""
    lr_eff = LR / SIGMA / (1.0 if kind == "adam" else 1 - m)
    return max(1 / (lr_eff * H), 1 / (1 - m), 1 / (1 - BETA_S))


def make_checks(adam, rms, burn_in_multiple):
    """``adam``, ``rms``: lists of {"m", "temperature", "se", "t_mean_field"} (m = beta_g or mu);
    ``burn_in_multiple``: the smallest burn-in over the points in slowest time scales."""
    a0 = next(r for r in adam if r["m"] == 0.0)
    r0 = next(r for r in rms if r["m"] == 0.0)

    def ratio_to(r, ref):
        return ratio(r["temperature"], r["se"], ref["temperature"], ref["se"])

    v, se = worst_item([(q - 1, s) for q, s in (ratio_to(r, a0) for r in adam if r is not a0)], TOL_ADAM)
    checks = [Check(f"Adam: max over beta_g = {[r['m'] for r in adam]} of |T(beta_g)/T(0) - 1|", v, se, TOL_ADAM)]
    hb = [(q * (1 - r["m"]) - 1, s * (1 - r["m"])) for r in rms if 0 < r["m"] <= MU_SMALL_LR
          for q, s in [ratio_to(r, r0)]]
    v, se = worst_item(hb, TOL_HEAVY_BALL)
    checks.append(Check(f"RMSprop: max over mu <= {MU_SMALL_LR} of |T(mu) (1 - mu)/T(0) - 1| (heavy ball: 0)",
                        v, se, TOL_HEAVY_BALL))
    mf = [(r["temperature"] / r["t_mean_field"] - 1, r["se"] / r["t_mean_field"]) for r in adam + rms]
    v, se = worst_item(mf, TOL_MEAN_FIELD)
    checks.append(Check("Adam and RMSprop: max |T/T_mean_field - 1| over every point", v, se, TOL_MEAN_FIELD))
    refusal = burn_in_refusal(burn_in_multiple, BURN_MULT, "slowest time scales")  # too short: no verdict
    return [replace(c, no_verdict=refusal) for c in checks]


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    momenta = MOMENTA if args.mode != "tiny" else [0.0, 0.9, 0.99]
    burn = size["burn_in"]
    # histogram ranges from the library's default (hist_range="auto": from the stationary spread at
    # the end of burn-in), so every point's histogram resolves its own law (T spans a factor 100)
    common = dict(noise=NOISE, n_chains=size["n_chains"], n_steps=size["n_steps"], burn_in=burn,
                  progress=False, dtype=np.float64)
    adam = gs.sweep(LAND, gs.optimizers.Adam(lr=LR, betas=(0.0, BETA_S)), grid={"beta_g": momenta},
                    tie={"betas": lambda p: (p["beta_g"], BETA_S)}, **common)
    rms = gs.sweep(LAND, gs.optimizers.RMSprop(lr=LR, alpha=BETA_S), grid={"momentum": momenta}, **common)
    multiples = []
    for kind, table, key in (("adam", adam, "beta_g"), ("rmsprop", rms, "momentum")):
        for r in table.rows:
            r["m"] = r[key]
            r["se"] = 0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96
            r["t_small"] = LR * SIGMA / 2 / (1.0 if kind == "adam" else 1 - r["m"])
            r["t_mean_field"] = mean_field(kind, r["m"])
            r["burn_in_multiple"] = burn / slowest_time(kind, r["m"])
            multiples.append(r["burn_in_multiple"])
            r.pop("betas", None)
    # Adam with momentum against the normalisation's Gibbs law (beta_g = 0): the library's test
    i0 = next(i for i, r in enumerate(adam.rows) if r["m"] == 0.0)
    i9 = next(i for i, r in enumerate(adam.rows) if r["m"] == 0.9)
    t_norm = adam.rows[i0]["temperature"]
    cross = gs.fit_temperature(adam.run(i9), temperature=t_norm)
    checks = make_checks(adam.rows, rms.rows, min(multiples))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6.5))

    def points(axis, x, y, err, color, label, rows):
        """Filled markers where the burn-in suffices for a verdict, hollow where it does not."""
        ok = np.array([r["burn_in_multiple"] >= BURN_MULT for r in rows])
        err = np.asarray(err)
        for sel, face, suffix in ((ok, color, ""), (~ok, "none", " (burn-in too short: hollow)")):
            if sel.any():
                axis.errorbar(x[sel], y[sel], yerr=err[..., sel], fmt="o", ms=7, capsize=3, color=color, mfc=face,
                              label=label + suffix)

    inv = np.geomspace(1, 1 / (1 - max(momenta)), 100)
    series = (("Adam: T against $\\beta_g$ (EMA momentum)", adam, "adam"),
              ("torch RMSprop: T against momentum $\\mu$ (heavy ball)", rms, "rmsprop"))
    for k, (label, table, kind) in enumerate(series):
        x = np.array([1 / (1 - r["m"]) for r in table.rows])
        t = table["temperature"]
        points(ax, x, t, [t - table["ci_lo"], table["ci_hi"] - t], f"C{k}", label, table.rows)
        ax.plot(inv, [mean_field(kind, 1 - 1 / v) for v in inv], color=f"C{k}", lw=1)
        small = LR * SIGMA / 2 * (np.ones_like(inv) if kind == "adam" else inv)
        ax.plot(inv, small, color=f"C{k}", lw=1, ls="--")
        # the departure from the small-lr law, in %: Adam T(m)/T(0) - 1, RMSprop T(m)(1-m)/T(0) - 1
        t0 = next(r for r in table.rows if r["m"] == 0.0)
        scale = np.ones_like(x) if kind == "adam" else 1 / x
        dep = 100 * (t * scale / t0["temperature"] - 1)
        err = 200 * t * scale / t0["temperature"] * np.hypot(table["se"] / t, t0["se"] / t0["temperature"])
        points(bx, x, dep, err, f"C{k}",
               "Adam: $T(\\beta_g)/T(0) - 1$" if kind == "adam" else "RMSprop: $T(\\mu)(1-\\mu)/T(0) - 1$", table.rows)
        mf0 = mean_field(kind, 0.0)
        mf = np.array([mean_field(kind, 1 - 1 / v) for v in inv]) * (1 if kind == "adam" else 1 / inv)
        bx.plot(inv, 100 * (mf / mf0 - 1), color=f"C{k}", lw=1)
    ax.plot([], [], "k-", lw=1, label="frozen-denominator mean field (exact Lyapunov at step lr/a)")
    ax.plot([], [], "k--", lw=1, label="small lr, $\\sqrt{s}\\approx\\sigma$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("momentum horizon $1/(1-\\beta_g)$, $1/(1-\\mu)$ (steps)")
    ax.set_ylabel("fitted temperature T (95% CI)")
    ax.set_title(f"lr = {LR}, $h$ = {H:g}, $\\sigma$ = {SIGMA:g}, B = 1, $\\beta_s$ = $\\alpha$ = {BETA_S}")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize=12, frameon=False)
    bx.axhspan(-100 * TOL_ADAM, 100 * TOL_ADAM, color="0.8", zorder=0, label=f"Adam tolerance ±{TOL_ADAM:.0%}")
    bx.axhspan(-100 * TOL_HEAVY_BALL, 100 * TOL_HEAVY_BALL, color="0.93", zorder=-1,
               label=f"RMSprop tolerance ±{TOL_HEAVY_BALL:.0%} ($\\mu \\leq$ {MU_SMALL_LR})")
    bx.axhline(0, color="k", lw=0.6)
    bx.set_xscale("log")
    bx.set_xlabel("momentum horizon $1/(1-\\beta_g)$, $1/(1-\\mu)$ (steps)")
    bx.set_ylabel("departure from the small-lr law (%, ±2 s.e.)")
    bx.set_title("Departures, with the mean field (lines)")
    bx.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize=12, frameon=False)
    fig.tight_layout()

    def cell(r):
        return f"{r['m']:g}: {fmt(r['temperature'], r['se'])} (mean field {r['t_mean_field']:.5g})"

    parts = ["Adam, T by beta_g: " + "; ".join(cell(r) for r in adam.rows),
             "RMSprop, T by momentum: " + "; ".join(cell(r) for r in rms.rows),
             f"burn-in {burn} steps = {min(multiples):.1f} x the slowest time scale or more at every point",
             f"Adam beta_g = 0.9 against the Gibbs law at beta_g = 0's T = {t_norm:.5g} (library test, "
             f"not a check here): {cross.status}, {cross.verdict}"]
    row = Row(
        name="adaptive_vs_normalisation",
        claim="\"We can set beta_g = 0 without influencing temperature. Hence Adam should be approximately equivalent "
              "to\" gradient normalisation; \"PyTorch RMSProp uses heavy ball parameterization (not good)\"",
        setup=f"quadratic h = {H}, Gaussian noise sigma = {SIGMA}, B = 1, lr = {LR}; Adam (torch bias correction, "
              f"eps 1e-8, beta_s = {BETA_S}) over beta_g = {momenta}; torch RMSprop (alpha = {BETA_S}, eps 1e-8) over "
              f"momentum = {momenta}; gs.sweep, {size['n_chains']:,} chains x {size['n_steps']:,} steps per point from "
              f"the minimum, burn-in {burn} steps (a verdict needs >= {BURN_MULT:g} x the slowest of the relaxation "
              f"time, the momentum horizon and 1/(1 - beta_s) = {1 / (1 - BETA_S):.0f})",
        result="; ".join(parts),
        checks=checks,
        details={"adam": adam.rows, "rmsprop": rms.rows, "cross_test": cross.verdict},
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
