"""Adam's EMA momentum against PyTorch RMSprop's heavy-ball momentum: which one leaves T alone.

The lecture: Adam's momentum is an EMA, so "we can set beta_g = 0 without influencing
temperature. Hence Adam should be approximately equivalent to" gradient normalisation
Phi <- Phi - eta g / (sqrt(s) + eps); whereas "PyTorch RMSProp uses heavy ball parameterization
(not good)". Measured with gs.sweep on the 1-D quadratic h Phi^2/2 with Gaussian noise (sigma,
B = 1) at one fixed lr: T against beta_g for Adam (beta_s = 0.999) and against the momentum mu for
torch RMSprop (alpha = 0.999), whose mu = 0 is the same gradient normalisation. The references:
the small-lr value with sqrt(s) ~ sigma (Adam: lr sigma / 2; RMSprop: lr sigma / (2 (1 - mu))),
and a frozen-denominator mean field: the linear optimizer with step lr / a (EMA momentum for
Adam, heavy ball for RMSprop) whose exact Lyapunov variance V closes a^2 = sigma^2 + h^2 V.
Beyond T, Adam's histogram at beta_g = 0.9 is tested against the Gibbs law at the temperature
measured for beta_g = 0.

    python validation/adaptive_vs_normalisation.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

H, SIGMA, LR = 1.0, 1.0, 0.005
BETA_S = 0.999
MOMENTA = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99]
SIZES = {"full": dict(n_chains=200_000, n_steps=20_000), "quick": dict(n_chains=6_000, n_steps=10_000),
         "tiny": dict(n_chains=400, n_steps=1_500)}
LAND = gs.landscapes.Quadratic(H, box=[[-5.0, 5.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _mean_field(kind, m):
    """T of the linear optimizer with step lr/a, a = sqrt(sigma^2 + h^2 V) solved self-consistently."""
    a = SIGMA
    for _ in range(100):
        opt = (gs.optimizers.EMAMomentum(lr=LR / a, beta=m) if kind == "adam"
               else gs.optimizers.HeavyBall(lr=LR / a, momentum=m))
        var = gs.theory.stationary_covariance(opt, H, NOISE, 1)[0, 0]
        a = math.sqrt(SIGMA**2 + H**2 * var)
    return H * var


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    momenta = MOMENTA if args.mode != "tiny" else [0.0, 0.9, 0.99]
    sd = math.sqrt(LR * SIGMA / (2 * (1 - max(momenta))) / H)
    common = dict(noise=NOISE, n_chains=size["n_chains"], n_steps=size["n_steps"], burn_in=size["n_steps"] // 2,
                  bins=np.linspace(-6 * sd, 6 * sd, 81), progress=False, dtype=np.float64)
    adam = gs.sweep(LAND, gs.optimizers.Adam(lr=LR, betas=(0.0, BETA_S)), grid={"beta_g": momenta},
                    tie={"betas": lambda p: (p["beta_g"], BETA_S)}, **common)
    rms = gs.sweep(LAND, gs.optimizers.RMSprop(lr=LR, alpha=BETA_S), grid={"momentum": momenta}, **common)
    for kind, table, key in (("adam", adam, "beta_g"), ("rmsprop", rms, "momentum")):
        for r in table.rows:
            r["m"] = r[key]
            r["se"] = 0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96
            r["t_small"] = LR * SIGMA / 2 / (1.0 if kind == "adam" else 1 - r["m"])
            r["t_mean_field"] = _mean_field(kind, r["m"])
            r.pop("betas", None)
    # Adam with momentum against the normalisation's Gibbs law (beta_g = 0)
    i0 = next(i for i, r in enumerate(adam.rows) if r["m"] == 0.0)
    i9 = next(i for i, r in enumerate(adam.rows) if r["m"] == 0.9)
    t_norm = adam.rows[i0]["temperature"]
    cross = gs.fit_temperature(adam.run(i9), temperature=t_norm)
    rms_law = rms.scaling_law({"1-mu": lambda r: 1 - r["m"]})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    inv = np.geomspace(1, 1 / (1 - max(momenta)), 100)
    for k, (label, table, kind) in enumerate((("Adam: T against beta_g (EMA momentum)", adam, "adam"),
                                              ("torch RMSprop: T against momentum mu (heavy ball)", rms, "rmsprop"))):
        x = np.array([1 / (1 - r["m"]) for r in table.rows])
        t = table["temperature"]
        ax.errorbar(x, t, yerr=[t - table["ci_lo"], table["ci_hi"] - t], fmt="o", ms=5, capsize=3, color=f"C{k}",
                    label=label)
        ax.plot(inv, [_mean_field(kind, 1 - 1 / v) for v in inv], color=f"C{k}", lw=0.9,
                label="frozen-denominator mean field (exact Lyapunov at step lr/a)")
        small = LR * SIGMA / 2 * (np.ones_like(inv) if kind == "adam" else inv)
        ax.plot(inv, small, color=f"C{k}", lw=0.7, ls="--", label="small lr, $\\sqrt{s}\\approx\\sigma$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/(1 - beta_g) (Adam),  1/(1 - mu) (RMSprop)")
    ax.set_ylabel("fitted T (95% CI)")
    ax.set_title(f"Adam vs RMSprop at lr = {LR} on $h\\Phi^2/2$ (h = {H}, sigma = {SIGMA}, B = 1, "
                 f"beta_s = alpha = {BETA_S})", fontsize=9)
    ax.legend(fontsize=7)

    def cell(r):
        return f"{r['m']:g}: {fmt(r['temperature'], r['se'])} (mean field {r['t_mean_field']:.5g})"

    parts = ["Adam, T by beta_g: " + "; ".join(cell(r) for r in adam.rows),
             "RMSprop, T by momentum: " + "; ".join(cell(r) for r in rms.rows),
             f"Adam beta_g = 0.9 tested against the Gibbs law at beta_g = 0's T = {t_norm:.5g}: {cross.verdict}"]
    ta = adam["temperature"]
    se_a = adam["se"]
    w = 1 / se_a**2
    mean_a = float(np.sum(w * ta) / w.sum())
    chi2_a = float(np.sum(w * (ta - mean_a) ** 2)) / (len(ta) - 1)
    r9 = adam.rows[i9]["temperature"] / t_norm
    r9_se = r9 * math.hypot(adam.rows[i9]["se"] / adam.rows[i9]["temperature"], adam.rows[i0]["se"] / t_norm)
    rms_ratio = rms["temperature"].max() / rms["temperature"].min()
    zmf = max(abs(r["temperature"] - r["t_mean_field"]) / r["se"] for r in adam.rows + rms.rows)
    verdict = (f"Adam: T varies by {ta.max() / ta.min() - 1:.2%} over beta_g = {momenta} (chi2/dof = {chi2_a:.2f} "
               f"against one common T); T(beta_g = 0.9)/T(beta_g = 0) = {fmt(r9, r9_se)}; the beta_g = 0.9 histogram "
               + ("is" if cross.is_gibbs else "is NOT") + " consistent with the normalisation's Gibbs law; "
               f"RMSprop: T ~ (1 - mu)^{rms_law.exponents['1-mu']:.3f} ± {rms_law.stderr['1-mu']:.2g}, "
               f"x{rms_ratio:.0f} from mu = 0 to {max(momenta)}; every point within {zmf:.1f} s.e. of the mean field")
    row = Row(
        name="adaptive_vs_normalisation",
        claim="\"We can set beta_g = 0 without influencing temperature. Hence Adam should be approximately equivalent "
              "to\" gradient normalisation; \"PyTorch RMSProp uses heavy ball parameterization (not good)\"",
        setup=f"quadratic h = {H}, Gaussian noise sigma = {SIGMA}, B = 1, lr = {LR}; Adam (torch bias correction, "
              f"eps 1e-8, beta_s = {BETA_S}) over beta_g = {momenta}; torch RMSprop (alpha = {BETA_S}, eps 1e-8) over "
              f"momentum = {momenta}; gs.sweep, {size['n_chains']:,} chains x {size['n_steps']:,} steps per point from "
              f"the minimum, half burn-in (5 horizons of the squared-gradient average)",
        result="; ".join(parts),
        verdict=verdict,
        details={"adam": adam.rows, "rmsprop": rms.rows, "rmsprop_law": str(rms_law), "cross_test": cross.verdict},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
