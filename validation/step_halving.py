"""Step halving: "As the learning rate is decreased (here by factors of 2) the asymptotic loss decreases".

SGD under the lecture's step schedule (lr halved every K steps, K long enough to relax at the
smallest lr), on two problems: the 1-D quadratic h Phi^2/2 with Gaussian gradient noise, where
the stationary loss is exact at every lr (L = lr sigma^2 / (2 B (2 - lr h)), so successive
plateaus have the ratio (1/2)(2 - lr h)/(2 - lr h/2), which tends to 1/2 as lr h -> 0: T ~ lr),
and streamed least squares (LinearRegression: state-dependent, multiplicative noise, no exact
law). The plateau of each phase is the chain-mean loss above the minimum averaged over the
second half of the phase, with its chain-to-chain standard error.

    python validation/step_halving.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

N_PHASES = 6
SIZES = {"full": dict(n_chains=400_000, every=3200), "quick": dict(n_chains=20_000, every=1600),
         "tiny": dict(n_chains=500, every=400)}
SIGMA = 1.0
PHI0 = 2.0  # every chain starts here, far from the minimum, as a training run does
PROBLEMS = {
    # name: (landscape, noise, lr0, exact stationary loss above the minimum or None)
    "quadratic, Gaussian noise": (gs.landscapes.Quadratic(1.0, box=[[-3.0, 3.0]]), gs.noise.Gaussian(SIGMA), 0.4),
    "least squares (streamed)": (gs.noise.LinearRegression.streamed([0.0], input_std=1.0, noise_std=SIGMA).landscape,
                                 gs.noise.LinearRegression.streamed([0.0], input_std=1.0, noise_std=SIGMA), 0.2),
}


def _plateaus(run, every, offset):
    """Mean loss above the minimum over the second half of each phase: list of Estimates."""
    out = []
    for k in range(N_PHASES):
        e = run.trace_window(k * every + every // 2, (k + 1) * every)
        out.append((e.value - offset, e.stderr))
    return out


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    every = size["every"]
    n = N_PHASES * every
    schedule = gs.schedules.StepHalving(every=every)
    series = {}
    for j, (name, (land, noise, lr0)) in enumerate(PROBLEMS.items()):
        run = gs.simulate(land, gs.optimizers.SGD(lr=lr0), noise=noise, n_chains=size["n_chains"], n_steps=n,
                          burn_in=n - every // 2, schedule=schedule, trace_points=n, init=[PHI0], seed=args.seed + j,
                          progress=False, dtype=np.float64)
        h = float(land.hessian[0, 0])
        lrs = lr0 * 0.5 ** np.arange(N_PHASES)
        plateaus = _plateaus(run, every, land.offset)
        exact = None
        if isinstance(noise, gs.noise.Gaussian):
            exact = [0.5 * h * gs.theory.sgd_stationary_variance_1d(lr, h, SIGMA**2, 1) for lr in lrs]
        ratios = []
        for k in range(1, N_PHASES):
            (a, sa), (b, sb) = plateaus[k - 1], plateaus[k]
            ratios.append((b / a, b / a * math.hypot(sa / a, sb / b)))
        steps, mean, se = run.mean_loss_trace()
        series[name] = dict(lrs=lrs, h=h, plateaus=plateaus, exact=exact, ratios=ratios, steps=steps,
                            mean=mean - land.offset, se=se, n_diverged=run.n_diverged)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for j, (name, s) in enumerate(series.items()):
        ax.plot(s["steps"] + 1, s["mean"], color=f"C{j}", lw=0.8, label=f"{name}, lr$_0$ = {s['lrs'][0]:g}")
        for k, (p, pe) in enumerate(s["plateaus"]):
            ax.hlines(p, k * every + every // 2, (k + 1) * every, color=f"C{j}", lw=2.5, alpha=0.6)
            if s["exact"] is not None:
                ax.hlines(s["exact"][k], k * every, (k + 1) * every, color="k", lw=0.8, ls="--")
        r = np.array(s["ratios"])
        x = s["lrs"][:-1] * s["h"]
        axr.errorbar(x, r[:, 0], yerr=2 * r[:, 1], fmt="o-", color=f"C{j}", ms=4, capsize=2, label=name)
    for k in range(1, N_PHASES):
        ax.axvline(k * every, color="0.7", lw=0.5)
    ax.plot([], [], "k--", lw=0.8, label="exact stationary loss (quadratic)")
    ax.set_yscale("log")
    ax.set_xlabel("step t (lr halved every %d steps)" % every)
    ax.set_ylabel("chain-mean loss above the minimum")
    ax.set_title("SGD with step halving; thick bars: plateau (second half of each phase)", fontsize=9)
    ax.legend(fontsize=7)
    xx = np.geomspace(min(s["lrs"][-2] for s in series.values()) * 0.8, 0.5, 200)
    axr.plot(xx, 0.5 * (2 - xx) / (2 - xx / 2), "k--", lw=0.8,
             label="quadratic exact: $\\frac{1}{2}\\frac{2-\\eta h}{2-\\eta h/2}$")
    axr.axhline(0.5, color="0.5", lw=0.6)
    axr.set_xscale("log")
    axr.set_xlabel("lr h before the halving")
    axr.set_ylabel("plateau ratio $L_{k+1}/L_k$ (±2 s.e.)")
    axr.set_title("successive plateau ratios (1/2 means T ∝ lr)", fontsize=9)
    axr.legend(fontsize=7)
    fig.tight_layout()

    parts, notes = [], []
    all_decrease = True
    for name, s in series.items():
        cells = []
        for k, (p, pe) in enumerate(s["plateaus"]):
            ex = f" (exact {s['exact'][k]:.4g})" if s["exact"] is not None else ""
            cells.append(f"lr = {s['lrs'][k]:g}: {fmt(p, pe)}{ex}")
        rat = ", ".join(fmt(r, e) for r, e in s["ratios"])
        parts.append(f"{name}: plateaus {'; '.join(cells)}; ratios {rat}")
        dec = [r + 4 * e < 1 for r, e in s["ratios"]]
        all_decrease &= all(dec)
        first, last = s["ratios"][0], s["ratios"][-1]
        note = (f"{name}: the loss falls at {sum(dec)} of {len(dec)} halvings; ratio {fmt(*first)} at lr h = "
                f"{s['lrs'][0] * s['h']:g} -> {fmt(*last)} at lr h = {s['lrs'][-2] * s['h']:g} "
                f"({(last[0] - 0.5) / last[1]:+.1f} s.e. from 1/2)")
        if s["exact"] is not None:
            z = [(p - e) / pe for (p, pe), e in zip(s["plateaus"], s["exact"])]
            note += f", every plateau within {max(abs(v) for v in z):.1f} s.e. of the exact value"
        notes.append(note)
    verdict = ("the asymptotic loss decreases at every halving" if all_decrease else
               "the asymptotic loss does NOT decrease at every halving") + "; " + "; ".join(notes)
    row = Row(
        name="step_halving",
        claim="\"As the learning rate is decreased (here by factors of 2) the asymptotic loss decreases\"; "
              "the learning rate acts as a temperature",
        setup=f"SGD, lr halved every {every} steps ({N_PHASES} phases), B = 1, sigma = {SIGMA}; quadratic h = 1 with "
              f"Gaussian noise from lr = 0.4, and streamed least squares (inputs N(0, 1), label noise {SIGMA}) from "
              f"lr = 0.2; all chains from Phi_0 = {PHI0}; {size['n_chains']:,} chains; plateau = mean loss above the "
              f"minimum over each phase's second half",
        result="; ".join(parts),
        verdict=verdict,
        details={name: {"lrs": s["lrs"].tolist(), "plateaus": s["plateaus"], "exact": s["exact"], "ratios": s["ratios"],
                        "n_diverged": s["n_diverged"]} for name, s in series.items()},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
