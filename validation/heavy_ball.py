"""Heavy-ball momentum (PyTorch's SGD): T grows like 1/(1 - mu) at fixed lr; lr = (1 - mu) B eta0 flattens it.

The lecture: with v <- mu v + eta g_hat, Phi <- Phi - v, "in PyTorch vanilla SGD the temperature
depends on all three hyper parameters -- mu, B, and eta (not good)"; setting
eta = (1 - mu) B eta0 "for academic batch sizes ... makes the temperature depend on eta0
independent of mu and B". Measured with gs.sweep on the 1-D quadratic h Phi^2/2 with Gaussian
per-example noise: T against mu at a fixed lr and B = 1 (small-lr theory eta sigma^2/(2B(1-mu))),
and T against mu and B under the tie lr = (1 - mu) B eta0, both against the exact finite-lr
stationary law of the linear recursion (gs.theory.stationary_covariance), which under the rule is
T = eta0 sigma^2 (1 + mu) / (2 (1 + mu) - (1 - mu) B eta0 h): flat while B eta0 h (1-mu)/(1+mu) << 1.

    python validation/heavy_ball.py [--quick]
"""
import math

import numpy as np
from scipy import stats

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

H, SIGMA = 1.0, 1.0
LR_FIXED = 0.004
ETA0 = 0.002
MOMENTA = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99]
BATCHES = [1, 16, 256]
SIZES = {"full": dict(n_chains=1_000_000), "quick": dict(n_chains=20_000), "tiny": dict(n_chains=400)}
LAND = gs.landscapes.Quadratic(H, box=[[-5.0, 5.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _opt(p):
    return gs.optimizers.HeavyBall(lr=p["lr"], momentum=p["momentum"])


def _exact(p):
    return H * gs.theory.stationary_covariance(_opt(p), H, NOISE, p["batch_size"])[0, 0]


def _tie(rule):
    """lr (when a rule is given), run length (10 relaxation times of the recursion), histogram bins (+-6 sd)."""
    tie = {} if rule is None else {"lr": rule}
    tie["n_steps"] = lambda p: int(max(400, 10.0 * gs.theory.relaxation_time(_opt(p), [[H]])))
    tie["burn_in"] = lambda p: p["n_steps"] // 2
    tie["bins"] = lambda p: np.linspace(-6, 6, 61) * math.sqrt(_exact(p) / H)
    return tie


def _consistent(rows):
    """Weighted mean of T over rows, chi2 p-value of 'all equal', and the max/min spread."""
    t = np.array([r["temperature"] for r in rows])
    se = np.array([r["se"] for r in rows])
    w = 1 / se**2
    mean = np.sum(w * t) / w.sum()
    chi2 = float(np.sum(w * (t - mean) ** 2))
    return mean, float(stats.chi2.sf(chi2, len(rows) - 1)), float(t.max() / t.min() - 1)


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    momenta = MOMENTA if args.mode != "tiny" else [0.0, 0.9, 0.99]
    batches = BATCHES if args.mode != "tiny" else [1, 256]
    common = dict(noise=NOISE, n_chains=size["n_chains"], progress=False, dtype=np.float64)
    fixed = gs.sweep(LAND, gs.optimizers.HeavyBall(lr=LR_FIXED, momentum=0.0), grid={"momentum": momenta},
                     tie={"batch_size": lambda p: 1, "lr": lambda p: LR_FIXED, **_tie(None)}, **common)
    rule = gs.sweep(LAND, gs.optimizers.HeavyBall(lr=1.0, momentum=0.0),
                    grid={"eta0": [ETA0], "batch_size": batches, "momentum": momenta},
                    tie=_tie(lambda p: (1 - p["momentum"]) * p["batch_size"] * p["eta0"]), **common)
    for table in (fixed, rule):
        for r in table.rows:
            r.pop("bins", None)
            r["t_exact"] = _exact(r)
            r["t_small"] = gs.theory.small_lr_temperature(_opt(r), NOISE, r["batch_size"])
            r["se"] = 0.5 * (r["ci_hi"] - r["ci_lo"]) / 1.96
            r["z_exact"] = (r["temperature"] - r["t_exact"]) / r["se"]
    law = fixed.scaling_law({"1-mu": lambda r: 1 - r["momentum"]})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    inv = np.geomspace(1, 1 / (1 - max(momenta)), 200)
    t = np.array([r["temperature"] for r in fixed.rows])
    ax.errorbar([1 / (1 - r["momentum"]) for r in fixed.rows], t,
                yerr=[t - fixed["ci_lo"], fixed["ci_hi"] - t], fmt="o", ms=5, capsize=3, color="C0",
                label=f"fixed lr = {LR_FIXED}, B = 1 (95% CI)")
    ax.plot(inv, [_exact({"lr": LR_FIXED, "momentum": 1 - 1 / v, "batch_size": 1}) for v in inv], "C0-", lw=0.9,
            label="exact (Lyapunov)")
    ax.plot(inv, LR_FIXED * SIGMA**2 / 2 * inv, "k--", lw=0.7, label="small lr: $\\eta\\sigma^2/(2B(1-\\mu))$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/(1 - mu)")
    ax.set_ylabel("fitted T")
    ax.set_title(f"heavy ball at fixed lr: T ~ (1-mu)^{law.exponents['1-mu']:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    t_small = ETA0 * SIGMA**2 / 2
    for k, b in enumerate(batches):
        rows = sorted((r for r in rule.rows if r["batch_size"] == b), key=lambda r: r["momentum"])
        x = np.array([1 / (1 - r["momentum"]) for r in rows])
        t = np.array([r["temperature"] for r in rows])
        ax2.errorbar(x, t / t_small, yerr=[(t - [r["ci_lo"] for r in rows]) / t_small,
                                            ([r["ci_hi"] for r in rows] - t) / t_small],
                     fmt="o", ms=5, capsize=3, color=f"C{k + 1}", label=f"B = {b} (B eta0 h = {b * ETA0 * H:g})")
        ax2.plot(inv, [_exact({"lr": b * ETA0 / v, "momentum": 1 - 1 / v, "batch_size": b}) / t_small for v in inv],
                 color=f"C{k + 1}", lw=0.9)
    ax2.axhline(1.0, color="k", lw=0.7, ls="--", label="small lr: $\\eta_0\\sigma^2/2$")
    ax2.set_xscale("log")
    ax2.set_xlabel("1/(1 - mu)")
    ax2.set_ylabel("T / ($\\eta_0\\sigma^2/2$)")
    ax2.set_title(f"lr = (1-mu) B eta0, eta0 = {ETA0}: lines exact (Lyapunov)", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()

    def cell(r):
        return f"mu = {r['momentum']:g}: {fmt(r['temperature'], r['se'])} (exact {r['t_exact']:.5g})"

    parts = [f"fixed lr = {LR_FIXED}, B = 1: " + "; ".join(cell(r) for r in fixed.rows) + f"; {law}"]
    notes = [f"fixed lr: T ~ (1 - mu)^{law.exponents['1-mu']:.3f} ± {law.stderr['1-mu']:.2g} ("
             + ("T ∝ 1/(1 - mu): momentum heats" if abs(law.exponents["1-mu"] + 1) < max(4 * law.stderr["1-mu"], 0.01)
                else "not 1/(1 - mu)") + ")"]
    for b in batches:
        rows = sorted((r for r in rule.rows if r["batch_size"] == b), key=lambda r: r["momentum"])
        parts.append(f"lr = (1-mu) B eta0, B = {b}: " + "; ".join(cell(r) for r in rows))
        mean, p, spread = _consistent(rows)
        notes.append(f"rule, B = {b} (B eta0 h = {b * ETA0 * H:g}): " + (
            f"T flat in mu (spread {spread:.2%}, p = {p:.2g}), T = {mean / t_small:.4f} x eta0 sigma^2/2" if p > 1e-3
            else f"T depends on mu (spread {spread:.1%}: {rows[0]['temperature'] / t_small:.3f} x eta0 sigma^2/2 at "
                 f"mu = {rows[0]['momentum']:g}, {rows[-1]['temperature'] / t_small:.3f} x at "
                 f"mu = {rows[-1]['momentum']:g})"))
    zmax = max(abs(r["z_exact"]) for r in fixed.rows + rule.rows)
    notes.append(f"all {len(fixed) + len(rule)} points agree with the exact Lyapunov T within |z| <= {zmax:.1f}")
    row = Row(
        name="heavy_ball",
        claim="Heavy-ball momentum: \"the temperature depends on all three hyper parameters -- mu, B, and eta\"; "
              "\"eta = (1 - mu) B eta0 ... for academic batch sizes ... makes the temperature depend on eta0 "
              "independent of mu and B\"",
        setup=f"torch.optim.SGD heavy ball (no dampening) on the quadratic h = {H}, Gaussian per-example noise sigma = "
              f"{SIGMA}; mu = {momenta}; fixed lr = {LR_FIXED} at B = 1, and lr = (1-mu) B eta0 with eta0 = {ETA0}, "
              f"B = {batches}; gs.sweep, {size['n_chains']:,} chains per point from the minimum, 10 relaxation times",
        result="; ".join(parts),
        verdict="; ".join(notes),
        details={"fixed": fixed.rows, "rule": rule.rows, "law_fixed": str(law)},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
