"""The classical convergence theorem: decaying (Robbins-Monro) learning rates converge, a constant one plateaus.

The lecture: for eta_t >= 0 with lim eta_t = 0, sum_t eta_t = infinity and sum_t eta_t^2 < infinity,
"the training loss ... converges to a limit and any limit point of the sequence Phi_t is a
stationary point". Measured: SGD on the 1-D quadratic L = h Phi^2 / 2 (h = 1) with Gaussian
gradient noise (sigma = 1, B = 1), every chain started far from the minimum (Phi_0 = 10,
L = 50), under a constant lr and the schedules eta_t = eta_0 (1 + t/t_0)^(-gamma):
gamma in (1/2, 1] (the theorem's conditions), and the boundary cases gamma = 1/2
(sum eta^2 = infinity) and gamma = 3/2 (sum eta < infinity). The chain-mean loss against t
is compared at every recorded step with the exact moment recursion of linear SGD
(m' = (1 - eta h) m, v' = (1 - eta h)^2 v + eta^2 sigma^2 / B), and a late-time decay
exponent a (L ~ t^-a over the last decade of steps) is fitted with a block-jackknife error.

Verdicts (tolerances fixed before the run): (1) the traces follow the exact recursion: the
largest |z| over every recorded point of every schedule must stay below the Bonferroni cut
at 5% family-wise error over that many points (Student t with the blocks' degrees of freedom;
conservative, as neighbouring points are correlated); (2) each late exponent a equals the
exact recursion's within TOL_EXPONENT: a > 0 (convergence) for the theorem's schedules and the
gamma = 1/2 boundary, a = 0 (a plateau) for the constant lr, a ~ 0 (a stall) for gamma = 3/2;
(3) under gamma = 3/2 the chains stop at <Phi> equal to the exact Phi_0 prod(1 - eta_t h),
within TOL_STALL, a point where dL/dPhi = h <Phi> != 0: not a stationary point. No burn-in:
the whole transient from Phi_0 is compared with the exact one, step by step.

    python validation/convergence.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from scipy import stats

from gibbs_sgd.validation import Check, Row, finish, fmt, options

H, SIGMA, LR, PHI0 = 1.0, 1.0, 0.1, 10.0
RM = gs.schedules.RobbinsMonro
# (label, schedule, what the theorem says about it)
SCHEDULES = [
    ("constant lr", gs.schedules.Constant(), "violates lim eta = 0"),
    ("gamma = 1, eta0 t0 h = 2", RM(t0=20.0, gamma=1.0), "theorem holds"),
    ("gamma = 3/4", RM(t0=10.0, gamma=0.75), "theorem holds"),
    ("gamma = 1, eta0 t0 h = 0.2", RM(t0=2.0, gamma=1.0), "theorem holds"),
    ("gamma = 1/2 (sum eta^2 = inf)", RM(t0=10.0, gamma=0.5, strict=False), "boundary: sum eta^2 = inf"),
    ("gamma = 3/2 (sum eta < inf)", RM(t0=10.0, gamma=1.5, strict=False), "boundary: sum eta < inf"),
]
SIZES = {"full": dict(n_chains=50_000, n_steps=1_000_000, trace_points=20_000),
         "quick": dict(n_chains=8_000, n_steps=100_000, trace_points=10_000),
         "tiny": dict(n_chains=256, n_steps=2_000, trace_points=500)}
GROUPS = 32  # jackknife groups of blocks of chains
FAMILY_ALPHA = 0.05  # family-wise error rate of the trace test (Bonferroni over every trace point)
TOL_EXPONENT = 0.05  # each late decay exponent within 0.05 of the exact recursion's (a > 0 is the claim)
TOL_STALL = 0.01     # gamma = 3/2: <Phi> at the end within 1% of the exact Phi_0 prod(1 - eta_t h)
NEED = 5.0  # the constant lr's plateau exponent needs its fit window to start >= 5 relaxation times in


def _exact_trace(schedule, n_steps):
    """Exact chain-mean loss after each step of linear SGD from Phi_0 (moment recursion)."""
    eta = LR * schedule.factors(n_steps)
    m, v = PHI0, 0.0
    out = np.empty(n_steps)
    for t in range(n_steps):
        a = 1.0 - eta[t] * H
        m, v = a * m, a * a * v + eta[t] ** 2 * SIGMA**2
        out[t] = 0.5 * H * (m * m + v)
    return out


def bonferroni_cut(n_points: int, n_blocks: int) -> float:
    """|z| that one of n_points Student-t(n_blocks - 1) statistics exceeds with probability <= FAMILY_ALPHA."""
    return float(stats.t.isf(FAMILY_ALPHA / (2 * n_points), max(n_blocks - 1, 1)))


def make_checks(results: list[dict], n_blocks: int) -> list[Check]:
    """Checks from the measured numbers: per schedule ``label``, ``z`` (trace z-scores against the
    exact recursion), ``a``, ``a_se``, ``a_exact``; the gamma = 3/2 schedule also ``phi``,
    ``phi_se``, ``phi_exact``."""
    z = np.concatenate([np.asarray(r["z"], float) for r in results])
    z = z[np.isfinite(z)]
    cut = bonferroni_cut(z.size, n_blocks)
    checks = [Check(f"max |z| of the chain-mean loss against the exact recursion over {z.size} trace points of "
                    f"{len(results)} schedules (Bonferroni cut at {FAMILY_ALPHA:.0%} family-wise)",
                    float(np.max(np.abs(z))) if z.size else math.nan, 0.0, cut)]
    for r in results:
        refuse = ""
        if r.get("window_tau", math.inf) < NEED:
            refuse = f"the fit window starts {r['window_tau']:.1f} < {NEED:g} relaxation times in: no verdict"
        checks.append(Check(f"{r['label']}: late decay exponent a ({r['status']})", r["a"], r["a_se"], TOL_EXPONENT,
                            r["a_exact"], no_verdict=refuse))
        if "phi_exact" in r:
            checks.append(Check(f"{r['label']}: <Phi> where the chains stop, over the exact Phi_0 prod(1 - eta_t h) "
                                f"(nonzero: not a stationary point)", r["phi"] / r["phi_exact"],
                                r["phi_se"] / abs(r["phi_exact"]), TOL_STALL, 1.0, True))
    return checks


def _late_exponent(run, lo, hi):
    """-d log<L>/d log t over trace steps in [lo, hi], with a delete-one-group jackknife over blocks."""
    steps = run.trace_steps + 1
    sel = (steps >= lo) & (steps <= hi)
    x = np.log(steps[sel])
    sums, counts = run.trace[:, sel, 0], run.trace[:, sel, 1]
    groups = np.array_split(np.arange(sums.shape[0]), min(GROUPS, sums.shape[0]))

    def slope(keep):
        y = np.log(sums[keep].sum(axis=0) / counts[keep].sum(axis=0))
        return -np.polyfit(x, y, 1)[0]

    full = slope(np.ones(sums.shape[0], bool))
    jack = []
    for g in groups:
        keep = np.ones(sums.shape[0], bool)
        keep[g] = False
        jack.append(slope(keep))
    jack = np.array(jack)
    k = len(groups)
    return full, math.sqrt((k - 1) / k * np.sum((jack - jack.mean()) ** 2))


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    n = size["n_steps"]
    land = gs.landscapes.Quadratic(H, box=[[-3.0 * PHI0, 3.0 * PHI0]])
    lo, hi = n // 10, n
    results = []
    for k, (label, schedule, status) in enumerate(SCHEDULES):
        run = gs.simulate(land, gs.optimizers.SGD(lr=LR), noise=gs.noise.Gaussian(SIGMA), n_chains=size["n_chains"],
                          n_steps=n, burn_in=n - 1, init=[PHI0], schedule=schedule, seed=args.seed + k,
                          trace_points=size["trace_points"], progress=False, dtype=np.float64)
        steps, mean, se = run.mean_loss_trace()
        exact = _exact_trace(schedule, n)[steps]
        a, a_se = _late_exponent(run, lo, hi)
        sel = (steps + 1 >= lo) & (steps + 1 <= hi)
        a_th = -np.polyfit(np.log(steps[sel] + 1), np.log(exact[sel]), 1)[0]
        a_th = 0.0 if abs(a_th) < 1e-9 else float(a_th)  # the constant lr: exactly flat, up to rounding
        z = (mean - exact) / se
        phi_exact = PHI0 * float(np.prod(1.0 - LR * schedule.factors(n) * H))
        extra = {"phi_exact": phi_exact} if "3/2" in label else {}
        if isinstance(schedule, gs.schedules.Constant):  # a stationary law: the fit window must start past burn-in
            extra["window_tau"] = lo / gs.theory.relaxation_time(gs.optimizers.SGD(lr=LR), [[H]])
        results.append(dict(label=label, status=status, steps=steps, mean=mean, se=se, exact=exact, z=z, **extra,
                            final=mean[-1], final_se=se[-1], final_exact=exact[-1], a=a, a_se=a_se, a_exact=a_th,
                            max_abs_z=float(np.max(np.abs(z))), rms_z=float(np.sqrt(np.mean(z**2))),
                            sum_eta=float(LR * schedule.factors(n).sum()), phi=run.phi_mean.value[0],
                            phi_se=run.phi_mean.stderr[0], n_diverged=run.n_diverged,
                            n_blocks=int(run.trace.shape[0])))

    checks = make_checks(results, min(r["n_blocks"] for r in results))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, (ax, axz) = plt.subplots(1, 2, figsize=(14, 7), gridspec_kw={"width_ratios": [3, 2]})
    cut = bonferroni_cut(sum(np.isfinite(r["z"]).sum() for r in results), min(r["n_blocks"] for r in results))
    for k, r in enumerate(results):
        t = r["steps"] + 1
        ax.plot(t, r["mean"], color=f"C{k}", lw=1.2, label=f"{r['label']}: a = {fmt(r['a'], r['a_se'])} "
                                                           f"(exact {r['a_exact']:.3f})")
        ax.fill_between(t, r["mean"] - 2 * r["se"], r["mean"] + 2 * r["se"], color=f"C{k}", alpha=0.2, lw=0)
        ax.plot(t, r["exact"], color="k", lw=0.6, ls="--")
        axz.plot(t, r["z"], ".", color=f"C{k}", ms=1.5, alpha=0.5)
    ax.plot([], [], color="k", lw=0.6, ls="--", label="exact moment recursion")
    ax.axvspan(lo, hi, color="0.9", zorder=-1, label="window of the exponent fit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("chain-mean loss <L> (band: ±2 s.e.)")
    ax.set_title(f"SGD from Phi_0 = {PHI0:g}, eta_t = {LR} (1 + t/t_0)^-gamma")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=11, frameon=False, ncol=1)
    for sign in (-1, 1):
        axz.axhline(sign * cut, color="k", lw=0.8, ls="--")
    axz.plot([], [], "k--", lw=0.8, label=f"Bonferroni cut ±{cut:.2f} ({FAMILY_ALPHA:.0%} family-wise)")
    axz.set_xscale("log")
    axz.set_xlabel("step t")
    axz.set_ylabel("z = (measured - exact) / s.e.")
    axz.set_title("each trace point vs the exact law")
    axz.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=11, frameon=False)
    fig.tight_layout()

    parts = []
    for r in results:
        parts.append(f"{r['label']}: L(t = {n}) = {fmt(r['final'], r['final_se'])} (exact {r['final_exact']:.4g}), "
                     f"a = {fmt(r['a'], r['a_se'])} (exact {r['a_exact']:.3f}), sum eta = {r['sum_eta']:.3g}, "
                     f"<Phi>(t = {n}) = {fmt(r['phi'], r['phi_se'])}, trace vs exact: max |z| = {r['max_abs_z']:.1f}, "
                     f"rms z = {r['rms_z']:.2f}")
    row = Row(
        name="convergence",
        claim="Classical convergence theorem: with \"lim eta_t = 0, sum_t eta_t = infinity, sum_t eta_t^2 < infinity\" "
              "the training loss \"converges to a limit and any limit point of the sequence Phi_t is a stationary point\"",
        setup=f"SGD on L = h Phi^2/2 (h = {H}), Gaussian noise sigma = {SIGMA}, B = 1, Phi_0 = {PHI0}, eta_0 = {LR}; "
              f"schedules: {', '.join(r['label'] for r in results)}; {size['n_chains']:,} chains x {n:,} steps; "
              f"exponent a fitted over t in [{lo}, {hi}]; no burn-in (the whole transient is compared with the exact "
              f"recursion), the constant lr's fit window starts {results[0].get('window_tau', math.nan):.0f} relaxation "
              f"times in (>= {NEED:g} needed); tolerances: trace |z| below the Bonferroni cut at {FAMILY_ALPHA:.0%} family-wise, "
              f"exponents within {TOL_EXPONENT} of exact, the gamma = 3/2 stall within {TOL_STALL:.0%} of exact",
        result="; ".join(parts),
        checks=checks,
        details={r["label"]: {k: v for k, v in r.items() if k not in ("steps", "mean", "se", "exact", "z")}
                 for r in results},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
