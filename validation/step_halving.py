"""Step halving: "As the learning rate is decreased (here by factors of 2) the asymptotic loss decreases".

SGD (B = 1) under the lecture's step schedule, lr halved every K steps, on two problems that
both have an exact finite-lr law. For each the error e = Phi - Phi* has a second moment
q = E e^2 that obeys a linear recursion q' = a(lr) q + lr^2 c, so the mean loss above the
minimum, h q / 2, is exact at every step and its stationary value (the plateau) is
h lr^2 c / (2 (1 - a)):

* the quadratic h Phi^2/2 with additive Gaussian gradient noise sigma^2: a = (1 - lr h)^2,
  c = sigma^2, plateau lr sigma^2 / (2 (2 - lr h));
* online least squares (gs.noise.LinearRegression.streamed: fresh inputs x ~ N(0, 1), labels
  y = w* x + sigma eps), whose per-example gradient (e x - sigma eps) x is multiplicative,
  state-dependent noise: E(1 - lr x^2)^2 = 1 - 2 lr + 3 lr^2 (E x^4 = 3), c = sigma^2, so the
  plateau is lr sigma^2 / (2 (2 - 3 lr)).

The claim is checked as stated (each plateau below the previous one) and against the exact
laws: every plateau, and every ratio of successive plateaus, whose small-lr limit 1/2 (T ~ lr)
is approached as 1/2 - lr h/8 (quadratic) and 1/2 - 3 lr/8 (least squares). The plateau of a
phase is the chain-mean loss above the minimum over the phase's second half, whose first half
is its burn-in; a plateau with less than NEED relaxation times of burn-in gets no verdict.

    python validation/step_halving.py [--quick | --tiny] [--out FOLDER]
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, finish, fmt, options

N_PHASES = 6
SIZES = {"full": dict(n_chains=400_000, every=4000), "quick": dict(n_chains=20_000, every=2000),
         "tiny": dict(n_chains=500, every=400)}
SIGMA = 1.0
PHI0 = 2.0  # every chain starts here, far from the minimum, as a training run does
NEED = 5.0  # burn-in (the first half of a phase) needed for a verdict, in relaxation times
# Tolerances, fixed before the run:
TOL_PLATEAU = 0.03  # every plateau within 3% of the exact stationary loss at its lr
TOL_RATIO = 0.03    # every ratio L_{k+1}/L_k within 3% of the exact ratio
TOL_RATE = 0.10     # measured departure (ratio - 1/2) on the exact one: scale 1 +- 10%
# "decreases": the largest ratio L_{k+1}/L_k in [0, 1], written as 1/2 +- 1/2


def _quadratic():
    return gs.landscapes.Quadratic(1.0, box=[[-3.0, 3.0]]), gs.noise.Gaussian(SIGMA)


def _least_squares():
    noise = gs.noise.LinearRegression.streamed([0.0], input_std=1.0, noise_std=SIGMA)
    return noise.landscape, noise


# the moments (h, Var A, Var R) of e' = (1 - lr A) e + lr R, the same for every lr (B = 1): additive
# noise has a constant curvature; online least squares' E x^4 = 3 gives Var A = 2 (gs.theory)
QUADRATIC_MOMENTS = (1.0, 0.0, SIGMA**2)
LEAST_SQUARES_MOMENTS = gs.theory.online_least_squares_moments(1, input_std=1.0, noise_std=SIGMA)
# name: (factory, lr0, moments, label of the exact law)
PROBLEMS = {
    "quadratic, Gaussian noise": (_quadratic, 0.4, QUADRATIC_MOMENTS, "lr s^2/(2(2 - lr h))"),
    "online least squares": (_least_squares, 0.2, LEAST_SQUARES_MOMENTS, "lr s^2/(2(2 - 3 lr))"),
}


def exact_trace(moments, lrs_per_step: np.ndarray, q0: float) -> np.ndarray:
    """E L - L* after every step: q' = a(lr) q + lr^2 Var R, L - L* = h q / 2 (gs.theory's moments)."""
    h, va, vr = moments
    q = q0
    out = np.empty(lrs_per_step.shape[0])
    for t, lr in enumerate(lrs_per_step):
        q = gs.theory.least_squares_moment_factor(lr, h, va) * q + lr * lr * vr
        out[t] = 0.5 * h * q
    return out


def plateau_exact(moments, lr: float) -> float:
    """Stationary loss above the minimum at learning rate lr (gs.theory.least_squares_stationary_loss)."""
    return gs.theory.least_squares_stationary_loss(lr, *moments)


def relaxation_time(moments, lr: float) -> float:
    """The slowest relaxation, in steps: of the mean, or of the error's scale sqrt(q), whichever is longer."""
    return gs.theory.least_squares_relaxation_time(lr, moments[0], moments[1])


def make_checks(series: dict) -> list[Check]:
    """Checks from measured plateaus. ``series[name]`` holds ``lrs``, ``plateaus`` [(value, stderr)],
    ``exact`` (stationary loss per phase) and ``burn_tau`` (each plateau's burn-in in relaxation
    times). Plateaus below NEED relaxation times are left out of every check but their own
    comparison with the exact law, which is reported with no verdict."""
    checks = []
    for name, s in series.items():
        ok = [b >= NEED for b in s["burn_tau"]]

        def worst_plateau(ks, label=""):
            dev = [(s["plateaus"][k][0] / s["exact"][k], s["plateaus"][k][1] / s["exact"][k]) for k in ks]
            i = max(range(len(ks)), key=lambda j: abs(dev[j][0] - 1) + 2 * dev[j][1])
            return Check(f"{name}: worst{label} plateau / exact stationary loss (at lr = {s['lrs'][ks[i]]:g})",
                         dev[i][0], dev[i][1], TOL_PLATEAU, 1.0, True)

        short = [k for k, o in enumerate(ok) if not o]
        if short:
            checks.append(replace(worst_plateau(short, " unequilibrated"),
                                  no_verdict=f"burn-in {min(s['burn_tau'][k] for k in short):.1f} < {NEED:g} "
                                             f"relaxation times: no verdict, left out of every other check"))
        good = [k for k, o in enumerate(ok) if o]
        if good:
            checks.append(worst_plateau(good))
        pairs = [k for k in range(1, len(ok)) if ok[k] and ok[k - 1]]
        if not pairs:
            continue
        ratios, exact = [], []
        for k in pairs:
            (a, sa), (b, sb) = s["plateaus"][k - 1], s["plateaus"][k]
            ratios.append((b / a, b / a * math.hypot(sa / a, sb / b)))
            exact.append(s["exact"][k] / s["exact"][k - 1])
        j = max(range(len(pairs)), key=lambda i: ratios[i][0] + 2 * ratios[i][1])
        checks.append(Check(f"{name}: the loss decreases at every halving: largest L_(k+1)/L_k (at lr = "
                            f"{s['lrs'][pairs[j] - 1]:g} -> {s['lrs'][pairs[j]]:g}), must lie in [0, 1]",
                            ratios[j][0], ratios[j][1], 0.5, 0.5))
        j = max(range(len(pairs)), key=lambda i: abs(ratios[i][0] / exact[i] - 1) + 2 * ratios[i][1] / exact[i])
        checks.append(Check(f"{name}: worst L_(k+1)/L_k over its exact finite-lr value (at lr = "
                            f"{s['lrs'][pairs[j] - 1]:g} -> {s['lrs'][pairs[j]]:g})",
                            ratios[j][0] / exact[j], ratios[j][1] / exact[j], TOL_RATIO, 1.0, True))
        # the rate at which the ratio tends to its small-lr limit 1/2: measured departure on the exact one
        dm = np.array([r for r, _ in ratios]) - 0.5
        de = np.array(exact) - 0.5
        w = 1.0 / np.array([e for _, e in ratios]) ** 2
        if np.sum(w * de * de) > 0:
            checks.append(Check(f"{name}: departure L_(k+1)/L_k - 1/2 on the exact one (limit T ~ lr), scale",
                                float(np.sum(w * dm * de) / np.sum(w * de * de)),
                                float(1.0 / math.sqrt(np.sum(w * de * de))), TOL_RATE, 1.0, True))
    return checks


def _figure(series, every):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, (ax, axr) = plt.subplots(1, 2, figsize=(14, 6.2), gridspec_kw={"width_ratios": [3, 2]})
    for j, (name, s) in enumerate(series.items()):
        color = f"C{j}"
        ax.plot(s["steps"] + 1, s["mean"], color=color, lw=0.8, label=f"{name}, lr0 = {s['lrs'][0]:g}: chain mean")
        ax.plot(np.arange(1, s["exact_trace"].shape[0] + 1), s["exact_trace"], color="k", lw=0.8, ls="--",
                label="exact moment recursion" if j == 0 else None)
        for k, (p, pe) in enumerate(s["plateaus"]):
            ok = s["burn_tau"][k] >= NEED
            ax.errorbar((k + 0.75) * every, p, yerr=2 * pe, fmt="o", ms=7, color=color, mec="k",
                        mfc=color if ok else "none", capsize=2, zorder=5)
        r = np.array([[b / a, b / a * math.hypot(sa / a, sb / b)]
                      for (a, sa), (b, sb) in zip(s["plateaus"][:-1], s["plateaus"][1:])])
        ok = np.array([s["burn_tau"][k] >= NEED and s["burn_tau"][k + 1] >= NEED for k in range(len(r))])
        x = np.array(s["lrs"][:-1])
        if ok.any():
            axr.errorbar(x[ok], r[ok, 0] - 0.5, yerr=2 * r[ok, 1], fmt="o", color=color, ms=6, capsize=2,
                         label=f"{name}: measured (±2 s.e.)")
        if (~ok).any():
            axr.errorbar(x[~ok], r[~ok, 0] - 0.5, yerr=2 * r[~ok, 1], fmt="o", color=color, mfc="none", ms=6,
                         capsize=2, label=f"{name}: burn-in < {NEED:g} tau (no verdict)")
        xx = np.geomspace(min(s["lrs"]) * 0.8, s["lrs"][0] * 1.1, 200)
        moments = PROBLEMS[name][2]
        axr.plot(xx, [plateau_exact(moments, v / 2) / plateau_exact(moments, v) - 0.5 for v in xx], color=color, lw=1,
                 label=f"{name}: exact")
    ax.errorbar([], [], yerr=[], fmt="o", color="0.5", mec="k", label="plateau: filled = equilibrated, hollow = not")
    for k in range(1, N_PHASES):
        ax.axvline(k * every, color="0.7", lw=0.5)
    ax.set_yscale("log")
    ax.set_xlabel(f"step t (lr halved every {every} steps)")
    ax.set_ylabel("mean loss above the minimum, <L> - L*")
    ax.set_title("SGD with step halving: each plateau below the last")
    axr.axhline(0.0, color="0.5", lw=0.6)
    axr.set_xscale("log")
    axr.set_xlabel("learning rate before the halving (h = 1)")
    axr.set_ylabel("plateau ratio L_(k+1)/L_k - 1/2")
    axr.set_title("ratios tend to 1/2 (T ~ lr) as lr -> 0")
    for a in (ax, axr):
        a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=11, frameon=False, ncol=1)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    every = size["every"]
    n = N_PHASES * every
    schedule = gs.schedules.StepHalving(every=every)
    series = {}
    for j, (name, (factory, lr0, moments, law)) in enumerate(PROBLEMS.items()):
        land, noise = factory()
        run = gs.simulate(land, gs.optimizers.SGD(lr=lr0), noise=noise, n_chains=size["n_chains"], n_steps=n,
                          burn_in=n - every // 2, schedule=schedule, trace_points=n, init=[PHI0], seed=args.seed + j,
                          bins=20, progress=False, dtype=np.float64)
        lrs = [lr0 * 0.5**k for k in range(N_PHASES)]
        plateaus = []
        for k in range(N_PHASES):
            e = run.trace_window(k * every + every // 2, (k + 1) * every)
            plateaus.append((e.value - land.offset, e.stderr))
        steps, mean, se = run.mean_loss_trace()
        series[name] = dict(lrs=lrs, plateaus=plateaus, law=law,
                            exact=[plateau_exact(moments, lr) for lr in lrs],
                            burn_tau=[(every // 2) / relaxation_time(moments, lr) for lr in lrs],
                            exact_trace=exact_trace(moments, lr0 * schedule.factors(n), PHI0**2),
                            steps=steps, mean=mean - land.offset, n_diverged=run.n_diverged)
    checks = make_checks(series)
    fig = _figure(series, every)

    parts = []
    for name, s in series.items():
        cells = "; ".join(f"lr = {lr:g}: {fmt(p, pe)} (exact {ex:.5g}, burn-in {b:.1f} tau)"
                          for lr, (p, pe), ex, b in zip(s["lrs"], s["plateaus"], s["exact"], s["burn_tau"]))
        parts.append(f"{name} (exact law {s['law']}): {cells}; diverged chains: {s['n_diverged']}")
    row = Row(
        name="step_halving",
        claim="\"As the learning rate is decreased (here by factors of 2) the asymptotic loss decreases\"; "
              "the learning rate acts as a temperature",
        setup=f"SGD, B = 1, lr halved every {every} steps ({N_PHASES} phases), all {size['n_chains']:,} chains from "
              f"Phi_0 = {PHI0}; quadratic h = 1 with Gaussian noise sigma = {SIGMA} from lr = 0.4, and online least "
              f"squares (inputs N(0, 1), label noise {SIGMA}) from lr = 0.2; plateau = mean loss above the minimum over "
              f"each phase's second half (burn-in: the first half, a verdict needs >= {NEED:g} relaxation times); "
              f"tolerances: plateaus {TOL_PLATEAU:.0%} and ratios {TOL_RATIO:.0%} of exact, every ratio in [0, 1], "
              f"departure from 1/2 scale 1 ± {TOL_RATE:.0%}",
        result=". ".join(parts),
        checks=checks,
        details={name: {k: s[k] for k in ("lrs", "plateaus", "exact", "burn_tau", "n_diverged")}
                 for name, s in series.items()},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
