"""Adam on an anisotropic quadratic: per-coordinate temperatures, and how far from Gibbs it is.

Adam divides each coordinate's step by sqrt(v_i), v_i the EMA of the squared gradient. With
gradient noise dominating v_i this is the same factor on every coordinate and the stationary
law stays Gibbs; the curvature term h_i^2 Var(Phi_i) in v_i, and finite lr h, break that. The
lecture's reading of Adam as gradient normalisation (beta_g = 0) is measured beside it.
SGD at the same small-lr temperature is the control.

    python validation/adam_anisotropic.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

H = [1.0, 10.0]
SIGMA = 1.0
LRS = [0.002, 0.01, 0.05]
SIZES = {"full": dict(n_chains=200_000), "quick": dict(n_chains=20_000), "tiny": dict(n_chains=1_000)}


def _run(opt, lr_eff, size, seed):
    tau = 1.0 / (lr_eff * min(H))
    steps = int(max(600, 10 * tau))
    t_guess = lr_eff * SIGMA**2 / 2
    sd = [math.sqrt(t_guess / h) for h in H]
    land = gs.landscapes.Quadratic(H, box=[[-8 * sd[0], 8 * sd[0]], [-8 * sd[1], 8 * sd[1]]])
    init = np.random.default_rng(seed).normal(0.0, sd, size=(size["n_chains"], 2))
    run = gs.simulate(land, opt, noise=gs.noise.Gaussian(SIGMA), n_chains=size["n_chains"], n_steps=steps,
                      burn_in=steps // 2, thin=max(1, steps // 2000), init=init, seed=seed, bins=60, progress=False,
                      dtype=np.float64)
    return gs.fit_temperature(run)


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    lrs = LRS if args.mode != "tiny" else LRS[1:2]
    results = {}
    for lr in lrs:
        # Adam's small-lr effective step with noise-dominated v: lr / sigma (B = 1, eps << sigma)
        results[("Adam", lr)] = _run(gs.optimizers.Adam(lr=lr), lr / SIGMA, size, args.seed)
        results[("Adam, beta_g = 0", lr)] = _run(gs.optimizers.Adam(lr=lr, betas=(0.0, 0.999)), lr / SIGMA, size,
                                                 args.seed)
        results[("SGD", lr)] = _run(gs.optimizers.SGD(lr=lr / SIGMA), lr / SIGMA, size, args.seed)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    parts = []
    for k, name in enumerate(["Adam", "Adam, beta_g = 0", "SGD"]):
        ratio, err = [], []
        for lr in lrs:
            f = results[(name, lr)]
            t, s = f.per_coordinate, f.per_coordinate_stderr
            ratio.append(t[1] / t[0])
            err.append(ratio[-1] * math.hypot(s[0] / t[0], s[1] / t[1]))
            parts.append(f"{name}, lr = {lr:g}: T_1 = {fmt(t[0], s[0])}, T_2 = {fmt(t[1], s[1])}, "
                         f"T_2/T_1 = {fmt(ratio[-1], err[-1])}, {'Gibbs' if f.is_gibbs else 'not Gibbs'}")
        ax.errorbar(lrs, ratio, yerr=err, fmt="o-", color=f"C{k}", capsize=3, label=name)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("$T_2/T_1$ (virial, per coordinate)")
    ax.set_title(f"Per-coordinate temperatures on the quadratic h = {H}, isotropic noise", fontsize=9)
    ax.legend(fontsize=8)

    adam = [results[("Adam", lr)] for lr in lrs]
    worst = max(abs(f.per_coordinate[1] / f.per_coordinate[0] - 1) for f in adam)
    gibbs_at = [lr for lr, f in zip(lrs, adam) if f.is_gibbs]
    verdict = (f"Adam's per-coordinate temperatures differ by up to {worst:.1%} over lr = {lrs}; its stationary law "
               f"passes the Gibbs tests at lr = {gibbs_at if gibbs_at else 'none of them'}")
    row = Row(
        name="adam_anisotropic",
        claim="Adam is \"approximately equivalent\" to gradient normalisation (beta_g = 0); "
              "whether its stationary law is a Gibbs law at all on an anisotropic landscape",
        setup=f"quadratic h = {H}, Gaussian noise sigma = {SIGMA}, B = 1; Adam (betas 0.9, 0.999, eps 1e-8), "
              f"Adam with beta_g = 0, and SGD with lr/sigma; lr = {lrs}; {size['n_chains']:,} chains, 10 relaxation times",
        result="; ".join(parts),
        verdict=verdict,
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
