"""Adam against gradient normalisation (beta_g = 0) on an anisotropic quadratic, coordinate by coordinate.

The lecture ("Adam as Gradient Normalization"): "We can set beta_g = 0 without influencing
temperature. Hence Adam should be approximately equivalent to" Phi <- Phi - eta g / (sqrt(s) + eps).
Measured on the quadratic (h_1 Phi_1^2 + h_2 Phi_2^2)/2, h = (1, 10), isotropic Gaussian noise
sigma, B = 1, at three learning rates: the per-coordinate (virial) temperature T_i of Adam
(beta_g = 0.9) and of the normalisation (beta_g = 0), both with beta_s = 0.999. The claim is a
small-lr statement, so the departure D_i(lr) = T_i(Adam)/T_i(beta_g = 0) - 1 is measured against
the learning rate and against its prediction: Adam acts per coordinate, so each coordinate is a
1-D problem, and with the denominator frozen at its mean a_i = sqrt(sigma^2 + h_i^2 Var Phi_i)
Adam is EMA momentum (the normalisation: SGD) with step lr / a_i, whose exact Lyapunov variance
closes the equation for a_i (the "mean field"). The same numbers say whether the stationary law
is Gibbs at all: a Gibbs law has T_2 / T_1 = 1; SGD at step lr/sigma is the control, with its
exact finite-lr T_2 / T_1.

Burn-in: 5 x the slowest time scale, the largest of the relaxation time 1/(lr_eff h_1) and the
horizon 1/(1 - beta_s) = 1000 steps of the squared-gradient average.

    python validation/adam_anisotropic.py [--quick | --tiny] [--out FOLDER]
"""
import math
from dataclasses import replace

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, burn_in_refusal, finish, fmt, options, ratio, worst_item

H = [1.0, 10.0]
SIGMA = 1.0
LRS = [0.002, 0.01, 0.05]  # lr h_2 = 0.02 .. 0.5: from the small-lr regime to a visible finite-lr effect
BETA_G, BETA_S = 0.9, 0.999
NOISE = gs.noise.Gaussian(SIGMA)
# burn-in BURN_MULT x the slowest time scale; sampled window WINDOW_MULT relaxation times, at
# least MIN_WINDOW steps. A run whose burn-in is below BURN_MULT slowest times gets no verdict.
BURN_MULT, WINDOW_MULT, MIN_WINDOW = 5.0, 10.0, 2000
# Tolerances, fixed before the run:
TOL_CLAIM = 0.02  # beta_g = 0 "without influencing temperature": |D_i| < 2% at the smallest lr
TOL_MEAN_FIELD = 0.01  # measured ratios against the frozen-denominator mean field / exact SGD
TOL_GIBBS = 0.02  # Adam Gibbs at small lr: |T_2/T_1 - 1| < 2% at the smallest lr
SIZES = {"full": dict(n_chains=200_000, lrs=LRS), "quick": dict(n_chains=40_000, lrs=LRS),
         "tiny": dict(n_chains=1_000, lrs=LRS[1:2])}
OPTIMIZERS = {
    "Adam": lambda lr: gs.optimizers.Adam(lr=lr, betas=(BETA_G, BETA_S)),
    "Adam, beta_g = 0": lambda lr: gs.optimizers.Adam(lr=lr, betas=(0.0, BETA_S)),
    "SGD, lr/sigma": lambda lr: gs.optimizers.SGD(lr=lr / SIGMA),
}


def predicted(name, lr):
    """Per-coordinate T_i: the frozen-denominator mean field for Adam (EMA momentum at step
    lr / a_i, a_i^2 = sigma^2 + h_i^2 V_i, V_i its exact Lyapunov variance); exact for SGD."""
    out = []
    for h in H:
        if name.startswith("SGD"):
            var = gs.theory.stationary_covariance(gs.optimizers.SGD(lr=lr / SIGMA), h, NOISE, 1)[0, 0]
        else:
            beta = BETA_G if name == "Adam" else 0.0
            a = SIGMA
            for _ in range(200):
                var = gs.theory.stationary_covariance(gs.optimizers.EMAMomentum(lr=lr / a, beta=beta), h, NOISE, 1)[0, 0]
                a_new = math.sqrt(SIGMA**2 + h**2 * var)
                if abs(a_new - a) < 1e-15:
                    break
                a = a_new
        out.append(h * var)
    return np.array(out)


def schedule(lr):
    """(burn-in, steps, relaxation time, slowest time scale) for one learning rate."""
    tau = 1.0 / (lr / SIGMA * min(H))
    slowest = max(tau, 1 / (1 - BETA_S), 1 / (1 - BETA_G))
    burn = int(math.ceil(BURN_MULT * slowest))
    return burn, burn + int(max(MIN_WINDOW, WINDOW_MULT * tau)), tau, slowest


def measure(name, lr, size, seed):
    burn, steps, tau, slowest = schedule(lr)
    t_guess = lr * SIGMA / 2
    sd = [math.sqrt(t_guess / h) for h in H]
    land = gs.landscapes.Quadratic(H, box=[[-10 * sd[0], 10 * sd[0]], [-10 * sd[1], 10 * sd[1]]])
    init = np.random.default_rng(seed).normal(0.0, sd, size=(size["n_chains"], 2))
    run = gs.simulate(land, OPTIMIZERS[name](lr), noise=NOISE, n_chains=size["n_chains"], n_steps=steps,
                      burn_in=burn, thin=max(1, int(tau // 20)), init=init, seed=seed, bins=60, progress=False,
                      dtype=np.float64)
    fit = gs.fit_temperature(run)
    return {"name": name, "lr": lr, "T": np.asarray(fit.per_coordinate, float),
            "se": np.asarray(fit.per_coordinate_stderr, float), "burn_in": burn, "n_steps": steps, "tau": tau,
            "burn_in_multiple": burn / slowest, "status": fit.status, "verdict": fit.verdict}


def make_checks(results, lrs):
    """``results``: {(name, lr): {"T": (2,), "se": (2,), "burn_in_multiple": float}} -> the row's
    checks; every check is refused (unresolved) when a run's burn-in is below BURN_MULT slowest
    time scales."""
    small = min(lrs)
    checks = []
    # 1. the claim at the smallest lr: beta_g = 0 leaves every coordinate's T unchanged
    dep = []
    for i in range(len(H)):
        r, se = ratio(results[("Adam", small)]["T"][i], results[("Adam", small)]["se"][i],
                       results[("Adam, beta_g = 0", small)]["T"][i], results[("Adam, beta_g = 0", small)]["se"][i])
        dep.append((r - 1, se))
    v, se = worst_item(dep, TOL_CLAIM)
    checks.append(Check(f"max_i |T_i(beta_g = {BETA_G})/T_i(beta_g = 0) - 1| at lr = {small:g}", v, se, TOL_CLAIM))
    # 2. the departure at every lr against its mean-field prediction (the rate at which it vanishes)
    dev = []
    for lr in lrs:
        pa, pn = predicted("Adam", lr), predicted("Adam, beta_g = 0", lr)
        for i in range(len(H)):
            r, se = ratio(results[("Adam", lr)]["T"][i], results[("Adam", lr)]["se"][i],
                           results[("Adam, beta_g = 0", lr)]["T"][i], results[("Adam, beta_g = 0", lr)]["se"][i])
            dev.append((r - pa[i] / pn[i], se))
    v, se = worst_item(dev, TOL_MEAN_FIELD)
    checks.append(Check(f"max over lr = {lrs}, i of |T_i(beta_g = {BETA_G})/T_i(beta_g = 0) - mean field|", v, se,
                        TOL_MEAN_FIELD))
    # 3. Gibbs in the small-lr limit: T_2 / T_1 = 1 for Adam at the smallest lr
    f = results[("Adam", small)]
    r, se = ratio(f["T"][1], f["se"][1], f["T"][0], f["se"][0])
    checks.append(Check(f"Adam: |T_2/T_1 - 1| at lr = {small:g} (a Gibbs law has 1)", r - 1, se, TOL_GIBBS))
    # 4. T_2/T_1 of every optimizer at every lr against the mean field (SGD: exact)
    dev = []
    for (name, lr), f in results.items():
        p = predicted(name, lr)
        r, se = ratio(f["T"][1], f["se"][1], f["T"][0], f["se"][0])
        dev.append((r - p[1] / p[0], se))
    v, se = worst_item(dev, TOL_MEAN_FIELD)
    checks.append(Check("max over optimizers and lr of |T_2/T_1 - prediction| (Adam: mean field, SGD: exact)", v, se,
                        TOL_MEAN_FIELD))
    shortest = min(f.get("burn_in_multiple", BURN_MULT) for f in results.values())
    refusal = burn_in_refusal(shortest, BURN_MULT, "slowest time scales")
    return [replace(c, no_verdict=refusal) for c in checks]


def _figure(results, lrs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 6))
    grid = np.geomspace(min(LRS) / 2, max(LRS) * 1.5, 40)
    mf = {name: np.array([predicted(name, lr) for lr in grid]) for name in OPTIMIZERS}
    for i, (h, marker) in enumerate(zip(H, "os")):
        d = []
        for lr in lrs:
            r, se = ratio(results[("Adam", lr)]["T"][i], results[("Adam", lr)]["se"][i],
                           results[("Adam, beta_g = 0", lr)]["T"][i], results[("Adam, beta_g = 0", lr)]["se"][i])
            d.append((r - 1, se))
        ax.errorbar(lrs, [100 * a for a, _ in d], yerr=[200 * s for _, s in d], fmt=marker, ms=8, capsize=3,
                    color=f"C{i}", label=f"coordinate {i + 1} (h = {h:g}), measured")
        ax.plot(grid, 100 * (mf["Adam"][:, i] / mf["Adam, beta_g = 0"][:, i] - 1), color=f"C{i}", lw=1,
                label=f"coordinate {i + 1}, mean field")
    ax.axhspan(-100 * TOL_CLAIM, 100 * TOL_CLAIM, color="0.88", zorder=0, label=f"tolerance ±{TOL_CLAIM:.0%} (tested at the smallest lr)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("$T_i(\\beta_g=0.9)/T_i(\\beta_g=0) - 1$  (%, ±2 s.e.)")
    ax.set_title("Adam against gradient normalisation")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2, fontsize=12, frameon=False)
    for k, name in enumerate(OPTIMIZERS):
        rr = [ratio(results[(name, lr)]["T"][1], results[(name, lr)]["se"][1], results[(name, lr)]["T"][0],
                     results[(name, lr)]["se"][0]) for lr in lrs]
        bx.errorbar(lrs, [r for r, _ in rr], yerr=[2 * s for _, s in rr], fmt="o", ms=8, capsize=3, color=f"C{k + 2}",
                    label=name)
        bx.plot(grid, mf[name][:, 1] / mf[name][:, 0], color=f"C{k + 2}", lw=1)
    bx.plot([], [], "k-", lw=1, label="mean field (Adam) / exact (SGD)")
    bx.axhline(1.0, color="k", lw=0.6)
    bx.set_xscale("log")
    bx.set_xlabel("learning rate $\\eta$")
    bx.set_ylabel("$T_2/T_1$ (virial, ±2 s.e.; Gibbs: 1)")
    bx.set_title(f"Per-coordinate temperatures, h = {H}")
    bx.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2, fontsize=12, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    lrs = size["lrs"]
    results = {(name, lr): measure(name, lr, size, args.seed) for lr in lrs for name in OPTIMIZERS}
    checks = make_checks(results, lrs)
    fig = _figure(results, lrs)
    parts = []
    for (name, lr), f in results.items():
        p = predicted(name, lr)
        parts.append(f"{name}, lr = {lr:g}: T_1 = {fmt(f['T'][0], f['se'][0])} (predicted {p[0]:.5g}), "
                     f"T_2 = {fmt(f['T'][1], f['se'][1])} (predicted {p[1]:.5g}), histogram test: {f['status']}, "
                     f"burn-in {f['burn_in']} steps = {f['burn_in_multiple']:.1f} x the slowest time scale")
    row = Row(
        name="adam_anisotropic",
        claim="\"We can set beta_g = 0 without influencing temperature. Hence Adam should be approximately "
              "equivalent to\" gradient normalisation; and whether Adam's stationary law is Gibbs on an "
              "anisotropic landscape",
        setup=f"quadratic h = {H}, Gaussian noise sigma = {SIGMA}, B = 1; Adam (betas {BETA_G}, {BETA_S}, eps 1e-8, "
              f"torch bias correction), the same with beta_g = 0, and SGD at lr/sigma; lr = {lrs}; "
              f"{size['n_chains']:,} chains from the small-lr law; burn-in {BURN_MULT:g} x max(1/(lr_eff h_1), "
              f"1/(1 - beta_s) = {1 / (1 - BETA_S):.0f}) steps, then max({WINDOW_MULT:g} relaxation times, "
              f"{MIN_WINDOW}) steps sampled",
        result="; ".join(parts),
        checks=checks,
        details={f"{name} @ {lr:g}": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.items()}
                 for (name, lr), f in results.items()},
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
