"""EMA momentum: "the temperature is determined by eta independent of N".

The lecture: with g~ <- (1 - 1/N) g~ + g_hat / N, Phi <- Phi - eta g~, "the total contribution of
a single g_hat" is (1/N) sum_i (1 - 1/N)^i = 1, "hence the temperature is determined by eta
independent of N". Measured with gs.sweep over N = 1/(1 - beta) at two fixed learning rates on
the 1-D quadratic h Phi^2/2 with Gaussian noise: a small one (lr h = 0.01) and a finite one
(lr h = 0.5), against the exact stationary variance of the linear recursion (discrete
Lyapunov equation, gs.theory.stationary_covariance), which works out to
T = (eta sigma^2 / 2B) / (1 - eta h / (2 (2N - 1))), and the small-lr value eta sigma^2 / 2B.

    python validation/ema_momentum.py [--quick]
"""
import math

import numpy as np
from scipy import stats

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

H, SIGMA, B = 1.0, 1.0, 1
HORIZONS = [1, 2, 5, 10, 100]
LRS = [0.01, 0.5]
SIZES = {"full": dict(n_chains=1_000_000), "quick": dict(n_chains=50_000), "tiny": dict(n_chains=500)}
LAND = gs.landscapes.Quadratic(H, box=[[-5.0, 5.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _opt(p):
    return gs.optimizers.EMAMomentum(lr=p["lr"], beta=p["beta"])


def _exact(p):
    return H * gs.theory.stationary_covariance(_opt(p), H, NOISE, B)[0, 0]


def _steps(p):
    """10 relaxation times of the slowest mode of the linear recursion."""
    return int(max(400, 10.0 * gs.theory.relaxation_time(_opt(p), [[H]])))


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    horizons = HORIZONS if args.mode != "tiny" else [1, 10, 100]
    table = gs.sweep(LAND, gs.optimizers.EMAMomentum(lr=1.0, beta=0.0), noise=NOISE, batch_size=B,
                     grid={"lr": LRS, "N": horizons},
                     tie={"beta": lambda p: 1.0 - 1.0 / p["N"], "n_steps": _steps,
                          "burn_in": lambda p: p["n_steps"] // 2,
                          "bins": lambda p: np.linspace(-6, 6, 61) * math.sqrt(_exact(p) / H)},
                     n_chains=size["n_chains"], progress=False, dtype=np.float64)
    for r in table.rows:
        r.pop("bins", None)
        r["t_exact"] = _exact(r)
        r["t_small"] = gs.theory.small_lr_temperature(_opt(r), NOISE, B)
        r["se"] = 0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96
        r["z_exact"] = (r["temperature"] - r["t_exact"]) / r["se"]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    nn = np.geomspace(1, max(horizons), 200)
    summary, notes = [], []
    for k, lr in enumerate(LRS):
        rows = sorted((r for r in table.rows if r["lr"] == lr), key=lambda r: r["N"])
        t_small = rows[0]["t_small"]
        n = np.array([r["N"] for r in rows], float)
        t = np.array([r["temperature"] for r in rows]) / t_small
        err = [t - np.array([r["ci_lo"] for r in rows]) / t_small, np.array([r["ci_hi"] for r in rows]) / t_small - t]
        ax.errorbar(n, t, yerr=err, fmt="o", ms=5, capsize=3, color=f"C{k}", label=f"lr h = {lr * H:g} (95% CI)")
        ax.plot(nn, [_exact({"lr": lr, "beta": 1 - 1 / v}) / t_small for v in nn], color=f"C{k}", lw=0.9,
                label=f"exact (Lyapunov), lr h = {lr * H:g}")
        # is T the same for every N? chi2 of the weighted mean over N, and the spread
        tv, se = np.array([r["temperature"] for r in rows]), np.array([r["se"] for r in rows])
        w = 1 / se**2
        mean = np.sum(w * tv) / w.sum()
        chi2 = float(np.sum(w * (tv - mean) ** 2))
        p = float(stats.chi2.sf(chi2, len(rows) - 1))
        spread = float(tv.max() / tv.min() - 1)
        summary.append(f"lr h = {lr * H:g}: " + "; ".join(
            f"N = {r['N']}: T = {fmt(r['temperature'], r['se'])} (exact {r['t_exact']:.5g}, z = {r['z_exact']:+.1f})"
            for r in rows) + f"; small-lr T = {t_small:.5g}")
        same = p > 1e-3
        notes.append(f"lr h = {lr * H:g}: " + (
            f"T independent of N within errors (spread {spread:.2%}, chi2/dof = {chi2 / (len(rows) - 1):.2f})" if same
            else f"T depends on N (spread {spread:.1%}: from {rows[0]['temperature'] / t_small:.3f} x at N = "
                 f"{rows[0]['N']} to {rows[-1]['temperature'] / t_small:.4f} x the small-lr T at N = {rows[-1]['N']})"))
    zmax = max(abs(r["z_exact"]) for r in table.rows)
    ax.axhline(1.0, color="k", lw=0.6, ls="--", label="small-lr: $\\eta\\sigma^2/2B$")
    ax.set_xscale("log")
    ax.set_xlabel("EMA horizon N = 1/(1 - beta)")
    ax.set_ylabel("T / ($\\eta\\sigma^2/2B$)")
    ax.set_title("EMA momentum at fixed lr on $h\\Phi^2/2$: T against N", fontsize=9)
    ax.legend(fontsize=7)
    verdict = "; ".join(notes) + (f"; every point matches the exact Lyapunov value (max |z| = {zmax:.1f}): "
                                  f"N enters only through eta h / (2(2N - 1)), a finite-lr correction that momentum "
                                  f"shrinks" if zmax < 4 else f"; some points miss the exact value (max |z| = {zmax:.1f})")
    row = Row(
        name="ema_momentum",
        claim="EMA momentum: \"the total contribution of a single g_hat_t is 1 ... Hence the temperature is determined "
              "by eta independent of N\"",
        setup=f"EMA momentum beta = 1 - 1/N, N = {horizons}, on the quadratic h = {H}, Gaussian noise sigma = {SIGMA}, "
              f"B = {B}, lr = {LRS}; gs.sweep, {size['n_chains']:,} chains per point from the minimum, 10 relaxation "
              f"times (spectral radius of the recursion) with half burn-in",
        result="; ".join(summary),
        verdict=verdict,
        details={"rows": table.rows},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
