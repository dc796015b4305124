"""Early speed against final loss: "At the beginning a large learning rate reduces the loss faster.
Near the end a small learning rate reaches a lower loss."

The lecture's claim is about training iterations (its learning-rate schedule figure plots the
loss against steps), so it is tested per step: SGD (B = 1) from Phi_0 = 10 (loss 50 above the
minimum) at a ladder of constant learning rates, each twice the next, on two problems with an
exact law at every step (see validation/step_halving.py): the quadratic Phi^2/2 with additive
Gaussian gradient noise, q' = (1 - lr)^2 q + lr^2 sigma^2, and online least squares (inputs
N(0, 1), label noise sigma), q' = (1 - 2 lr + 3 lr^2) q + lr^2 sigma^2, with q = E (Phi - Phi*)^2
and the mean loss above the minimum q / 2.

"At the beginning": the mean loss after T_EARLY steps; "near the end": the stationary mean loss,
averaged over the second half of the run after a burn-in of at least NEED relaxation times of
the smallest learning rate. For each neighbouring pair (lr, lr/2) the early ratio
L_t(lr)/L_t(lr/2) must lie below 1 and the late ratio L_inf(lr/2)/L_inf(lr) below 1; both are also
checked against their exact values. The result also reports the early loss at equal
"time" t * lr, the continuous-time reading, where the claim is not made.

    python validation/early_speed.py [--quick | --tiny] [--out FOLDER]
"""
from __future__ import annotations


import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, finish, fmt, options, ratio

SIGMA, PHI0 = 1.0, 10.0
T_EARLY = 10  # "the beginning": 10 steps, while every chain is still far above its plateau
NEED = 10.0   # burn-in before the late window, in relaxation times of the slowest lr: the chains start
#                ~10^4 above the plateau, and the excess decays as exp(-2 t / tau): 10 tau leave < 0.01%
# Tolerances, fixed before the run:
TOL_EXACT = 0.03  # every late ratio within 3% of its exact value
TOL_EARLY = 0.05  # every early ratio within 5% of its exact value: early on, least squares' multiplicative
#                   noise makes the loss skewed (a product of random factors), so its mean is known less well
# "reduces faster" / "lower loss": the largest ratio must lie in [0, 1], written as 1/2 +- 1/2
SIZES = {"full": dict(n_chains=200_000, n_steps=8000), "quick": dict(n_chains=20_000, n_steps=4000),
         "tiny": dict(n_chains=500, n_steps=300)}


def _quadratic():
    return gs.landscapes.Quadratic(1.0, box=[[-3 * PHI0, 3 * PHI0]]), gs.noise.Gaussian(SIGMA)


def _least_squares():
    noise = gs.noise.LinearRegression.streamed([0.0], input_std=1.0, noise_std=SIGMA)
    return noise.landscape, noise


# name: (factory, learning rates (each twice the next), the moments (h, Var A, Var R) of the error's
# recursion e' = (1 - lr A) e + lr R: gs.theory, as in validation/step_halving.py)
PROBLEMS = {
    "quadratic, Gaussian noise": (_quadratic, [0.4, 0.2, 0.1, 0.05, 0.025], (1.0, 0.0, SIGMA**2)),
    # lr <= 0.2: the stationary error's tail index stays above 4, so the loss has a variance and an error bar
    "online least squares": (_least_squares, [0.2, 0.1, 0.05, 0.025, 0.0125],
                             gs.theory.online_least_squares_moments(1, input_std=1.0, noise_std=SIGMA)),
}


def exact_loss(moments, lr: float, steps) -> np.ndarray:
    """Exact mean loss above the minimum after ``steps`` steps from Phi_0: the second moment q
    relaxes geometrically, q_t = q_inf + (Phi_0^2 - q_inf) a^t (a and q_inf from gs.theory)."""
    h, va, _ = moments
    a = gs.theory.least_squares_moment_factor(lr, h, va)
    loss_inf = gs.theory.least_squares_stationary_loss(lr, *moments)
    return loss_inf + (0.5 * h * PHI0**2 - loss_inf) * a ** np.asarray(steps, float)


def relaxation_time(moments, lr: float) -> float:
    """Slowest relaxation in steps: of the mean, or of sqrt(q) (gs.theory.least_squares_relaxation_time)."""
    return gs.theory.least_squares_relaxation_time(lr, moments[0], moments[1])


def _ratio(a, b):
    """a/b with its error, for independent (value, stderr) pairs."""
    return ratio(a[0], a[1], b[0], b[1])


def make_checks(series: dict) -> list[Check]:
    """``series[name]``: ``lrs`` (descending), ``early`` and ``late`` [(value, stderr)] per lr,
    ``early_exact``, ``late_exact``, ``burn_tau`` (late window's burn-in in relaxation times)."""
    checks = []
    for name, s in series.items():
        lrs = s["lrs"]
        pairs = range(1, len(lrs))
        early = [_ratio(s["early"][k - 1], s["early"][k]) for k in pairs]
        early_ex = [s["early_exact"][k - 1] / s["early_exact"][k] for k in pairs]
        j = max(range(len(early)), key=lambda i: early[i][0] + 2 * early[i][1])
        checks.append(Check(f"{name}: at the beginning (after {T_EARLY} steps) the larger lr is lower: largest "
                            f"L(lr)/L(lr/2) (at lr = {lrs[j]:g}), must lie in [0, 1]", early[j][0], early[j][1],
                            0.5, 0.5))
        j = max(range(len(early)), key=lambda i: abs(early[i][0] / early_ex[i] - 1) + 2 * early[i][1] / early_ex[i])
        checks.append(Check(f"{name}: worst early ratio over its exact value (at lr = {lrs[j]:g})",
                            early[j][0] / early_ex[j], early[j][1] / early_ex[j], TOL_EARLY, 1.0, True))
        refuse = ""
        if min(s["burn_tau"]) < NEED:
            refuse = f"late window after {min(s['burn_tau']):.1f} < {NEED:g} relaxation times of burn-in: no verdict"
        late = [_ratio(s["late"][k], s["late"][k - 1]) for k in pairs]
        late_ex = [s["late_exact"][k] / s["late_exact"][k - 1] for k in pairs]
        j = max(range(len(late)), key=lambda i: late[i][0] + 2 * late[i][1])
        checks.append(Check(f"{name}: near the end the smaller lr is lower: largest L_inf(lr/2)/L_inf(lr) (at lr = "
                            f"{lrs[j]:g}), must lie in [0, 1]", late[j][0], late[j][1], 0.5, 0.5, no_verdict=refuse))
        j = max(range(len(late)), key=lambda i: abs(late[i][0] / late_ex[i] - 1) + 2 * late[i][1] / late_ex[i])
        checks.append(Check(f"{name}: worst final-loss ratio over its exact value (at lr = {lrs[j]:g})",
                            late[j][0] / late_ex[j], late[j][1] / late_ex[j], TOL_EXACT, 1.0, True, no_verdict=refuse))
    return checks


def _figure(series):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2))
    for ax, (name, s) in zip(axes, series.items()):
        for k, lr in enumerate(s["lrs"]):
            t = s["steps"] + 1
            ax.plot(t, s["mean"][k], color=f"C{k}", lw=1.2, label=f"lr = {lr:g}")
            ax.plot(t, exact_loss(s["moments"], lr, t), color="k", lw=0.6, ls="--")
            ok = s["burn_tau"][k] >= NEED
            ax.errorbar(t[-1] * 1.15, s["late"][k][0], yerr=2 * s["late"][k][1], fmt="s", color=f"C{k}",
                        mfc=f"C{k}" if ok else "none", ms=6)
            ax.errorbar(T_EARLY, s["early"][k][0], yerr=2 * s["early"][k][1], fmt="o", color=f"C{k}", mec="k", ms=6)
        ax.plot([], [], "k--", lw=0.6, label="exact moment recursion")
        ax.plot([], [], "o", color="0.5", mec="k", label=f"after {T_EARLY} steps")
        ax.plot([], [], "s", color="0.5", label="late mean (hollow: not equilibrated)")
        ax.axvline(T_EARLY, color="0.6", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        ax.set_ylabel("mean loss above the minimum, <L> - L*")
        ax.set_title(f"{name}: large lr early, small lr late")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=11, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    n = size["n_steps"]
    burn = n // 2
    series = {}
    for j, (name, (factory, lrs, moments)) in enumerate(PROBLEMS.items()):
        land, noise = factory()
        s = dict(lrs=lrs, moments=moments, early=[], late=[], mean=[], burn_tau=[], n_diverged=0)
        for k, lr in enumerate(lrs):
            run = gs.simulate(land, gs.optimizers.SGD(lr=lr), noise=noise, n_chains=size["n_chains"], n_steps=n,
                              burn_in=burn, init=[PHI0], trace_points=n, seed=args.seed * 100 + 10 * j + k, bins=20,
                              progress=False, dtype=np.float64)
            steps, mean, se = run.mean_loss_trace()
            i = int(np.searchsorted(steps, T_EARLY - 1))  # the state after T_EARLY steps
            s["early"].append((mean[i] - land.offset, se[i]))
            ml = run.mean_loss
            s["late"].append((ml.value - land.offset, ml.stderr))
            s["mean"].append(mean - land.offset)
            s["steps"] = steps
            s["burn_tau"].append(burn / relaxation_time(moments, lr))
            s["n_diverged"] += run.n_diverged
        s["early_exact"] = [float(exact_loss(moments, lr, T_EARLY)) for lr in lrs]
        s["late_exact"] = [gs.theory.least_squares_stationary_loss(lr, *moments) for lr in lrs]
        # the continuous-time reading (not the lecture's): exact loss at equal t * lr = T_EARLY * min(lr)
        s["equal_time"] = [float(exact_loss(moments, lr, T_EARLY * min(lrs) / lr)) for lr in lrs]
        series[name] = s
    checks = make_checks(series)
    fig = _figure(series)

    parts = []
    for name, s in series.items():
        cells = "; ".join(f"lr = {lr:g}: after {T_EARLY} steps {fmt(*e)} (exact {ee:.4g}), final {fmt(*l)} "
                          f"(exact {le:.4g}, burn-in {b:.0f} tau)"
                          for lr, e, ee, l, le, b in zip(s["lrs"], s["early"], s["early_exact"], s["late"],
                                                         s["late_exact"], s["burn_tau"]))
        eq = ", ".join(f"{v:.3g}" for v in s["equal_time"])
        parts.append(f"{name}: {cells}; exact loss at equal t * lr = {T_EARLY * min(s['lrs']):g} (continuous time, not "
                     f"the lecture's reading), lr descending: {eq}; diverged chains: {s['n_diverged']}")
    row = Row(
        name="early_speed",
        claim="\"At the beginning a large learning rate reduces the loss faster. Near the end a small learning rate "
              "reaches a lower loss.\"",
        setup=f"SGD, B = 1, constant lr from Phi_0 = {PHI0} ({size['n_chains']:,} chains x {n:,} steps per lr), "
              f"quadratic with Gaussian noise sigma = {SIGMA} at lr = {PROBLEMS['quadratic, Gaussian noise'][1]} and "
              f"online least squares (label noise {SIGMA}) at lr = {PROBLEMS['online least squares'][1]}; early = mean "
              f"loss after {T_EARLY} steps (per step, as the lecture plots), late = mean over steps {burn}..{n} "
              f"(burn-in >= {NEED:g} relaxation times of the smallest lr needed); tolerances: each neighbour ratio "
              f"in [0, 1], and within {TOL_EARLY:.0%} (early) and {TOL_EXACT:.0%} (late) of exact",
        result=". ".join(parts),
        checks=checks,
        details={name: {k: s[k] for k in ("lrs", "early", "early_exact", "late", "late_exact", "burn_tau",
                                          "equal_time", "n_diverged")} for name, s in series.items()},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
