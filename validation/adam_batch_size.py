"""Which batch-size rule keeps the temperature independent of B, and what decoupled Adam's T depends on.

The lecture: with lr = B eta0, SGD's temperature "is essentially determined by eta0 independent
of B"; its decoupled Adam "should depend primarily on eta0 independent of the other parameters
[N_g0, N_s0, B, eps0]" and "gracefully converges to vanilla SGD in the limit eps0 -> infinity".
The slide is garbled; read as the design brief (DESIGN.md, section 2) states it:

    N_g = max(1, N_g0 / B),  1 - beta_g = min(1, B / N_g0)   (same for s with N_s0),
    eps = eps0 sqrt(B),      lr = eps B eta0                 (gs.optimizers.Adam.decoupled).

Beside it, the published square-root rule (Malladi et al. 2022: lr x sqrt(kappa),
1 - beta x kappa, eps / sqrt(kappa)). All on the 1-D quadratic h Phi^2 / 2 with per-example
Gaussian noise sigma (batch mean: variance sigma^2 / B), T fitted (maximum likelihood) with its
standard error at every point. What is tested, each against a tolerance fixed below:

* B-independence of every rule: max |T(B)/T(B_ref) - 1| over the batch sizes;
* SGD's departure from B-independence against its exact curve T = eta0 sigma^2 / (2 - B eta0 h);
* decoupled Adam's dependence on eta0 and on each of N_g0, N_s0, eps0 separately: the
  sensitivity d log T / d log p over a factor 4 in p, at several B;
* the eps0 -> infinity limit: T / T_SGD against the small-lr value eps0 / (eps0 + sigma / B)
  (sqrt(v) ~ sigma / sqrt(B) when the noise dominates v), whose departure from 1 falls as 1/eps0.

Every point runs a burn-in of at least BURN_MULT times its slowest time scale, the largest of the
relaxation time tau = 1/(lr_eff h) and the horizons 1/(1 - beta_g), 1/(1 - beta_s) of Adam's
averages; a point that would need more than the step budget is not run (hollow marker) and a
check that needs it is unresolved.

    python validation/adam_batch_size.py [--quick | --tiny] [--out FOLDER]
"""
import math
from dataclasses import replace

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, finish, fmt, options, ratio, worst_item

H, SIGMA = 1.0, 1.0
# B eta0 h = 0.2 at B = 256: SGD's exact finite-lr rise of T is then 11%, visible against its curve
ETA0 = 8e-4
N_G0, N_S0 = 10.0, 1000.0  # the lecture's typical beta_g = 0.9, beta_s = 0.999 at B = 1
EPS0_REF = 1.0  # the reference eps0 of the sensitivity study (eps = sqrt(v) at B = 1)
SQRT_REF = gs.optimizers.Adam(lr=ETA0, betas=(0.9, 0.999), eps=0.1, bias_correction="running")
# Burn-in: BURN_MULT x the slowest time scale (relaxation time or an average's horizon); the
# sampling window: WINDOW_MULT relaxation times (at least MIN_WINDOW steps). Below BURN_MULT the
# start (drawn from the small-lr law, Adam's averages from zero) is not forgotten to e^-5 = 0.7%.
BURN_MULT, WINDOW_MULT, MIN_WINDOW = 5.0, 5.0, 1000
FACTOR = 4.0  # each parameter's sensitivity is measured over a factor 4 (N_s0: 1/4, a shorter horizon)

# Tolerances, fixed before the run:
TOL_FLAT = 0.05   # "independent of B": T(B) within 5% of T(B_ref) at every B
TOL_EXACT = 0.01  # SGD against its exact curve (the engine's own accuracy): 1%
# "primarily on eta0": d log T / d log eta0 = 1 within 0.1 (T proportional to eta0), and each
# other parameter's d log T / d log p within 0.1 of 0 -- a factor 4 in it moves T by < 15%
TOL_ETA0, TOL_OTHER = 0.1, 0.1
TOL_LIMIT = 0.03  # eps0 -> inf: T / T_SGD against eps0 / (eps0 + sigma / B), relative 3%

SIZES = {"full": dict(n_chains=50_000, batches=[2**k for k in range(9)], eps0=[0.01, 0.1, 1.0, 10.0],
                      sens_batches=[1, 16, 256], max_steps=400_000),
         "quick": dict(n_chains=30_000, batches=[1, 4, 16, 64, 256], eps0=[0.1, 1.0, 10.0],
                       sens_batches=[1, 64], max_steps=60_000),
         "tiny": dict(n_chains=600, batches=[16, 64], eps0=[1.0], sens_batches=[64], max_steps=5_000)}
PARAMS = {"eta0": FACTOR, "N_g0": FACTOR, "N_s0": 1 / FACTOR, "eps0": FACTOR}


def decoupled(batch, eta0=ETA0, n_g0=N_G0, n_s0=N_S0, eps0=EPS0_REF):
    return gs.optimizers.Adam.decoupled(eta0, batch, n_g0, n_s0, eps0)


def time_scales(opt, batch):
    """(relaxation time tau = 1/(lr_eff h), slowest time scale) in steps, at small lr.

    Adam's effective step is lr / (sqrt(v) + eps) with sqrt(v) ~ sigma / sqrt(B) (noise-dominated v)."""
    if isinstance(opt, gs.optimizers.SGD):
        lr_eff, horizons = opt.lr, [1.0]
    else:
        lr_eff = opt.lr / (SIGMA / math.sqrt(batch) + opt.eps)
        horizons = [1 / (1 - b) for b in opt.betas]
    tau = 1.0 / (lr_eff * H)
    return tau, max([tau] + horizons), lr_eff


def measure(label, opt, batch, size, seed):
    """Fit T at one setting, or refuse it when the burn-in it needs exceeds the budget."""
    tau, slowest, lr_eff = time_scales(opt, batch)
    burn = int(math.ceil(BURN_MULT * slowest))
    steps = burn + int(max(MIN_WINDOW, WINDOW_MULT * tau))
    point = {"series": label, "batch_size": batch, "lr": opt.lr, "tau": tau, "slowest": slowest, "burn_in": burn,
             "burn_in_multiple": burn / slowest, "n_steps": steps, "temperature": math.nan, "stderr": math.nan}
    if steps > size["max_steps"]:
        point["refused"] = (f"needs {steps:,} steps ({BURN_MULT:g} x slowest time {slowest:.3g} + window) "
                            f"> budget {size['max_steps']:,}")
        return point
    sd = math.sqrt(lr_eff * SIGMA**2 / (2 * batch) / H)
    land = gs.landscapes.Quadratic(H, box=[[-10 * sd, 10 * sd]])
    init = np.random.default_rng(seed + batch).normal(0.0, sd, size=(size["n_chains"], 1))
    run = gs.simulate(land, opt, noise=gs.noise.Gaussian(SIGMA), batch_size=batch, n_chains=size["n_chains"],
                      n_steps=steps, burn_in=burn, thin=max(1, int(tau // 20)), init=init,
                      seed=seed + 7919 * batch, progress=False, dtype=np.float64)
    fit = gs.fit_temperature(run)
    point.update(temperature=fit.temperature, stderr=fit.estimators["mle"].stderr, n_diverged=run.n_diverged,
                 gibbs=fit.status)
    return point


def _ratio(a, b):
    """T(a)/T(b) of two measured points (independent runs) and its standard error."""
    return ratio(a["temperature"], a["stderr"], b["temperature"], b["stderr"])


def flatness_check(label, points, tolerance=TOL_FLAT):
    """max |T(B)/T(B_ref) - 1| over the batch sizes, B_ref the smallest measured one.

    A lower bound when points are missing: it can then fail, but not hold (unresolved)."""
    ok = [p for p in points if np.isfinite(p["temperature"])]
    missing = [p["batch_size"] for p in points if not np.isfinite(p["temperature"])]
    span = f"B = {points[0]['batch_size']}..{points[-1]['batch_size']}"
    if len(ok) < 2:
        return Check(f"{label}: max |T(B)/T(B_ref) - 1| over {span} (fewer than 2 points equilibrated)",
                     math.nan, math.inf, tolerance)
    ref = ok[0]
    dev, se = worst_item([(r - 1, se) for r, se in (_ratio(p, ref) for p in ok[1:])], tolerance)
    quantity = f"{label}: max |T(B)/T({ref['batch_size']}) - 1| over {span}"
    if missing:
        quantity += f" (B = {missing} not equilibrated)"
    check = Check(quantity, dev, se, tolerance)
    if missing and check.outcome != "fails":  # a lower bound: it can fail, but not hold
        check = replace(check, no_verdict="a lower bound: batch sizes missing")
    return check


def sgd_exact_check(points, tolerance=TOL_EXACT):
    """SGD against its exact finite-lr curve: max |T(B)/T_exact(B) - 1|."""
    ok = [p for p in points if np.isfinite(p["temperature"])]
    if not ok:
        return Check("SGD: max |T(B)/T_exact(B) - 1|", math.nan, math.inf, tolerance)
    value, se = worst_item([(p["temperature"] / sgd_exact(p["batch_size"]) - 1, p["stderr"] / sgd_exact(p["batch_size"]))
                       for p in ok], tolerance)
    return Check(f"SGD: max |T(B)/T_exact(B) - 1| over B = {ok[0]['batch_size']}..{ok[-1]['batch_size']}, "
                 f"T_exact = eta0 sigma^2/(2 - B eta0 h)", value, se, tolerance)


def sgd_exact(batch):
    return ETA0 * SIGMA**2 / (2 - batch * ETA0 * H)


def sensitivity(base, varied, factor):
    """d log T / d log p over the factor, with its standard error."""
    if not (np.isfinite(base["temperature"]) and np.isfinite(varied["temperature"])):
        return math.nan, math.inf
    r, se = _ratio(varied, base)
    return math.log(r) / math.log(factor), se / r / abs(math.log(factor))


def sensitivity_checks(sens):
    """``sens``: {B: {"base": point, "eta0": point, ...}} -> one Check per parameter and B."""
    checks = []
    for b, pts in sens.items():
        for p, factor in PARAMS.items():
            value, se = sensitivity(pts["base"], pts[p], factor)
            target, tol = (1.0, TOL_ETA0) if p == "eta0" else (0.0, TOL_OTHER)
            checks.append(Check(f"decoupled Adam at B = {b}, eps0 = {EPS0_REF:g}: d log T / d log {p} "
                                f"(factor {factor:g})", value, se, tol, target=target))
    return checks


def limit_prediction(eps0, batch):
    """Small-lr T_decoupled / T_SGD: eps / (sqrt(v) + eps) with sqrt(v) = sigma/sqrt(B), eps = eps0 sqrt(B)."""
    return eps0 / (eps0 + SIGMA / batch)


def limit_checks(series, sgd, eps_values):
    """T_decoupled(eps0) / T_SGD at the smallest B where both equilibrated, against eps0 / (eps0 + sigma / B)."""
    checks = []
    for e0 in eps_values:
        pairs = [(p, q) for p, q in zip(series[e0], sgd)
                 if np.isfinite(p["temperature"]) and np.isfinite(q["temperature"])]
        if pairs:
            pt, ref = pairs[0]
            r, se = _ratio(pt, ref)
        else:
            pt, ref, r, se = series[e0][0], sgd[0], math.nan, math.inf
        b = ref["batch_size"]
        checks.append(Check(f"eps0 -> inf: T_decoupled(eps0 = {e0:g})/T_SGD at B = {b} against "
                            f"eps0/(eps0 + sigma/B)", r, se, TOL_LIMIT, target=limit_prediction(e0, b), relative=True))
    return checks


def make_checks(sgd, decoupled_series, sqrt_series, sens, eps_values):
    """Every check of the row from the measured points (a test feeds fabricated ones)."""
    checks = [flatness_check("SGD, lr = B eta0", sgd), sgd_exact_check(sgd)]
    checks += [flatness_check(f"decoupled Adam, eps0 = {e0:g}", decoupled_series[e0]) for e0 in eps_values]
    checks.append(flatness_check("Adam, square-root rule", sqrt_series))
    checks += sensitivity_checks(sens)
    checks += limit_checks(decoupled_series, sgd, eps_values)
    return checks


def _figure(sgd, decoupled_series, sqrt_series, sens, eps_values, batches):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6.2), gridspec_kw={"width_ratios": [1.5, 1]})
    unit = ETA0 * SIGMA**2 / 2  # SGD's small-lr temperature
    bb = np.geomspace(min(batches), max(batches), 200)
    curves = [("SGD, lr = B$\\eta_0$", sgd, "k", "o", sgd_exact(bb) / unit, "exact")]
    for k, e0 in enumerate(eps_values):
        curves.append((f"decoupled Adam, $\\epsilon_0$ = {e0:g}", decoupled_series[e0], f"C{k}", "s",
                       limit_prediction(e0, bb), "small lr"))
    sq = 1 / (1 + SQRT_REF.eps / SIGMA)
    curves.append(("Adam, square-root rule", sqrt_series, f"C{len(eps_values)}", "D", np.full_like(bb, sq),
                   "small lr"))
    for label, pts, color, marker, curve, kind in curves:
        ok = [p for p in pts if np.isfinite(p["temperature"])]
        if ok:
            ax.errorbar([p["batch_size"] for p in ok], [p["temperature"] / unit for p in ok],
                        yerr=[2 * p["stderr"] / unit for p in ok], fmt=marker, ms=7, color=color, capsize=3,
                        label=label)
        ax.plot(bb, curve, color=color, lw=1, ls="-" if kind == "exact" else "--")
        miss = [p for p in pts if not np.isfinite(p["temperature"])]
        if miss:  # not equilibrated within the budget: hollow, at the prediction
            xm = np.array([p["batch_size"] for p in miss], float)
            ym = np.interp(np.log(xm), np.log(bb), curve)
            ax.plot(xm, ym, marker, ms=9, mfc="none", mec=color, mew=1.5,
                    label=None if ok else label)
    ax.plot([], [], "o", mfc="none", mec="gray", ms=9, label="not equilibrated (at the prediction)")
    ax.plot([], [], "k-", lw=1, label="SGD exact: $\\eta_0\\sigma^2/(2-B\\eta_0 h)$")
    ax.plot([], [], "k--", lw=1, label="small-lr prediction")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("T / ($\\eta_0\\sigma^2/2$)  (±2 s.e.)")
    ax.set_title("Temperature against batch size")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2, fontsize=12, frameon=False)

    names = list(PARAMS)
    width = 0.8 / max(1, len(sens))
    for j, (b, pts) in enumerate(sens.items()):
        vals = [sensitivity(pts["base"], pts[p], PARAMS[p]) for p in names]
        x = np.arange(len(names)) + (j - (len(sens) - 1) / 2) * width
        v = np.array([a for a, _ in vals])
        e = np.array([2 * s if np.isfinite(s) else 0.0 for _, s in vals])
        color = ["C4", "C5", "C6"][j % 3]  # not the left panel's colours: these are batch sizes
        bx.bar(x, np.nan_to_num(v), width, yerr=e, capsize=3, color=color, label=f"B = {b}")
        for xi, vi in zip(x, v):
            if not np.isfinite(vi):  # a setting not equilibrated within the budget: hollow, at 0
                bx.plot(xi, 0, "o", mfc="none", mec=color, ms=9)
    bx.axhspan(1 - TOL_ETA0, 1 + TOL_ETA0, xmin=0.0, xmax=0.25, color="0.85", zorder=0)
    bx.axhspan(-TOL_OTHER, TOL_OTHER, xmin=0.25, xmax=1.0, color="0.85", zorder=0, label="tolerance")
    bx.axhline(0, color="k", lw=0.6)
    bx.set_xticks(range(len(names)), ["$\\eta_0$", "$N_g^0$", "$N_s^0$", "$\\epsilon_0$"])
    bx.set_xlim(-0.5, len(names) - 0.5)
    bx.set_ylabel("d log T / d log p (factor 4)")
    bx.set_title(f"Decoupled Adam: what T depends on ($\\epsilon_0$ = {EPS0_REF:g})")
    bx.plot([], [], "o", mfc="none", mec="gray", ms=9, label="not equilibrated")
    bx.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3, fontsize=12, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    batches, eps_values = size["batches"], size["eps0"]
    seed = args.seed

    def series(label, make):
        return [measure(label, make(b), b, size, seed) for b in batches]

    sgd = series("sgd", lambda b: gs.optimizers.SGD.scaled(ETA0, b))
    dec = {e0: series(f"decoupled eps0={e0:g}", lambda b, e0=e0: decoupled(b, eps0=e0)) for e0 in eps_values}
    sqrt_series = series("sqrt", lambda b: SQRT_REF.sqrt_scaled(1, b))
    sens = {}
    for b in size["sens_batches"]:
        base = next((p for p in dec.get(EPS0_REF, []) if p["batch_size"] == b), None)
        pts = {"base": base or measure("sens base", decoupled(b), b, size, seed)}
        varied = {"eta0": dict(eta0=ETA0 * PARAMS["eta0"]), "N_g0": dict(n_g0=N_G0 * PARAMS["N_g0"]),
                  "N_s0": dict(n_s0=N_S0 * PARAMS["N_s0"]), "eps0": dict(eps0=EPS0_REF * PARAMS["eps0"])}
        for p, kw in varied.items():
            pts[p] = measure(f"sens {p}", decoupled(b, **kw), b, size, seed + 1)
        sens[b] = pts

    checks = make_checks(sgd, dec, sqrt_series, sens, eps_values)
    fig = _figure(sgd, dec, sqrt_series, sens, eps_values, batches)

    def cell(p):
        return (f"B={p['batch_size']}: {fmt(p['temperature'], p['stderr'])} (burn-in {p['burn_in_multiple']:.0f} x "
                f"{p['slowest']:.3g} steps)" if np.isfinite(p["temperature"]) else
                f"B={p['batch_size']}: not run, {p['refused']}")

    parts = [f"SGD: " + "; ".join(cell(p) for p in sgd)]
    parts += [f"decoupled eps0 = {e0:g}: " + "; ".join(cell(p) for p in dec[e0]) for e0 in eps_values]
    parts.append("square-root rule: " + "; ".join(cell(p) for p in sqrt_series))
    for b, pts in sens.items():
        parts.append(f"sensitivities at B = {b}: " + ", ".join(
            f"d log T/d log {p} = {fmt(*sensitivity(pts['base'], pts[p], PARAMS[p]))}" for p in PARAMS))
    row = Row(
        name="adam_batch_size",
        claim="Decoupled Adam: \"temperature should depend primarily on eta0 independent of the other parameters\" "
              "(N_g0, N_s0, B, eps0) and \"gracefully converges to vanilla SGD in the limit as eps0 -> infinity\"; "
              "with eta = B eta0, SGD's temperature is \"essentially determined by eta0 independent of B\"",
        setup=f"Slide read as DESIGN.md: N = max(1, N0/B), 1 - beta = min(1, B/N0) for g and s, eps = eps0 sqrt(B), "
              f"lr = eps B eta0. 1-D quadratic h = {H}, Gaussian per-example noise sigma = {SIGMA}, eta0 = {ETA0}, "
              f"N_g0 = {N_G0:g}, N_s0 = {N_S0:g}, eps0 in {eps_values}; square-root rule from lr = {SQRT_REF.lr}, "
              f"betas = {SQRT_REF.betas}, eps = {SQRT_REF.eps} at B = 1; B = {batches}; sensitivities over a factor "
              f"{FACTOR:g} in each parameter at eps0 = {EPS0_REF:g}, B = {size['sens_batches']}; "
              f"{size['n_chains']:,} chains per point from the small-lr law; burn-in {BURN_MULT:g} x the slowest of "
              f"tau = 1/(lr_eff h), 1/(1-beta_g), 1/(1-beta_s) at every point (points needing more than "
              f"{size['max_steps']:,} steps are not run), then {WINDOW_MULT:g} tau sampled",
        result="; ".join(parts),
        checks=checks,
        details={"sgd": sgd, "decoupled": {str(k): v for k, v in dec.items()}, "sqrt": sqrt_series,
                 "sensitivity": {str(b): pts for b, pts in sens.items()}},
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
