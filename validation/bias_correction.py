"""Adam's bias correction: PyTorch's, none, and the lecture's 1/min(t, N) running average.

The lecture: for t < N the EMA "will be strongly biased toward zero"; the running average
x_t = (1 - 1/min(N, t)) x_{t-1} + x_t / min(N, t) "avoids the initial bias toward zero while
still tracking a moving average", and "the PyTorch version of Adam has a more subtle form of
bias correction which yields the same effect". Measured: the chain-mean loss against the step
for the three corrections, from the same start, same noise, same seeds, on an anisotropic
quadratic. Checks (tolerances fixed below, before the run):

* "the same effect": max over every step t of |L_running(t)/L_torch(t) - 1| within 10%;
* a correction changes the transient only: the stationary loss (the plateau, averaged after a
  burn-in of BURN_MULT x the slowest time scale, max of the relaxation time 1/(lr_eff h_1) and
  the horizon 1/(1 - beta_s) = 1000 of the squared-gradient average) of the running average and
  of no correction against PyTorch's, within 1%; with a shorter run these are refused.

How strongly the uncorrected run departs (its loss in the first N_s steps, the step at which
it comes within 10% of its plateau) is reported beside them.

    python validation/bias_correction.py [--quick | --tiny] [--out FOLDER]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, burn_in_refusal, finish, fmt, options, worst_item

H = [1.0, 10.0]
SIGMA = 1.0
BETAS = (0.9, 0.999)
LR = 0.01
START = [2.0, 0.5]
BURN_MULT = 5.0  # the plateau is averaged after 5 slowest time scales (an EMA's start is then e^-5 = 0.7%)
TOL_SAME = 0.10  # "yields the same effect": the two corrected transients within 10% at every step
TOL_PLATEAU = 0.01  # the stationary loss does not depend on the correction: within 1%
SLOWEST = max(SIGMA / (LR * min(H)), 1 / (1 - BETAS[1]), 1 / (1 - BETAS[0]))  # steps
SIZES = {"full": dict(n_chains=200_000, window=5000), "quick": dict(n_chains=20_000, window=3000),
         "tiny": dict(n_chains=500, window=0, n_steps=600)}
MODES = {"torch": "PyTorch (1 - beta^t)", "none": "none (plain EMA)", "running": "lecture: 1/min(t, N)"}


def make_checks(traces, plateaus, burn_in_multiple):
    """``traces``: {mode: (steps, mean, stderr)}; ``plateaus``: {mode: (value, stderr)};
    ``burn_in_multiple``: where the plateau window starts, in slowest time scales."""
    _, m_t, se_t = traces["torch"]
    _, m_r, se_r = traces["running"]
    ratio = m_r / m_t
    se = ratio * np.hypot(se_r / m_r, se_t / m_t)
    # steps whose error is not finite are left out (worst_item keeps them, and they would leave the check open)
    v, s = worst_item([it for it in zip(ratio - 1, se) if np.isfinite(it[1])], TOL_SAME)
    checks = [Check("max over t of |L_running(t)/L_torch(t) - 1| (chain-mean loss)", v, s, TOL_SAME)]
    pt, st = plateaus["torch"]
    for mode in ("running", "none"):
        p, sp = plateaus[mode]
        r = p / pt
        err = r * math.hypot(sp / p, st / pt)
        checks.append(Check(f"stationary loss, {MODES[mode]} / PyTorch's - 1", r - 1, err, TOL_PLATEAU,
                            no_verdict=burn_in_refusal(burn_in_multiple, BURN_MULT, "slowest time scales before "
                                                                                    "the plateau")))
    return checks


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    burn = int(math.ceil(BURN_MULT * SLOWEST - 1e-9))
    if "n_steps" in size:  # smoke test: too short for the plateau checks, which are then refused
        n_steps = size["n_steps"]
        burn = n_steps // 2
    else:
        n_steps = burn + size["window"]
    land = gs.landscapes.Quadratic(H, box=[[-3, 3], [-3, 3]])
    traces, plateaus = {}, {}
    for mode in MODES:
        opt = gs.optimizers.Adam(lr=LR, betas=BETAS, bias_correction=mode)
        run = gs.simulate(land, opt, noise=gs.noise.Gaussian(SIGMA), n_chains=size["n_chains"], n_steps=n_steps,
                          burn_in=burn, init=START, seed=args.seed, trace_points=n_steps, progress=False,
                          dtype=np.float64)
        traces[mode] = run.mean_loss_trace()
        est = run.trace_window(burn, n_steps + 1)
        plateaus[mode] = (est.value, est.stderr)
    checks = make_checks(traces, plateaus, burn / SLOWEST)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 13})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6.5))
    parts = []
    n_s = round(1 / (1 - BETAS[1]))
    for k, (mode, (s, mean, se)) in enumerate(traces.items()):
        ax.plot(s + 1, mean, color=f"C{k}", lw=1.5, label=MODES[mode])
        ax.fill_between(s + 1, mean - 2 * se, mean + 2 * se, color=f"C{k}", alpha=0.25)
        plateau = plateaus[mode][0]
        first = int(np.argmax(mean < 1.1 * plateau))  # first step within 10% of the plateau
        early = float(np.mean(mean[s < n_s]))
        parts.append(f"{MODES[mode]}: plateau {fmt(*plateaus[mode])}, mean loss over t < {n_s} = {early:.4g}, "
                     f"within 10% of the plateau from step {first + 1}")
    ax.axvline(burn, color="0.4", lw=1, ls=":", label=f"plateau averaged from here ({burn / SLOWEST:.1f} x "
                                                       f"{SLOWEST:.0f} steps)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("chain-mean loss L (±2 s.e.)")
    ax.set_title(f"Adam bias corrections: quadratic h = {H}, lr = {LR}, betas = {BETAS}")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2, fontsize=12, frameon=False)
    s_t, m_t, se_t = traces["torch"]
    for k, mode in enumerate(MODES):
        if mode == "torch":
            continue
        s_m, m_m, se_m = traces[mode]
        ratio = m_m / m_t
        band = 2 * ratio * np.hypot(se_m / m_m, se_t / m_t)
        bx.plot(s_m + 1, 100 * (ratio - 1), color=f"C{k}", lw=1.5, label=f"{MODES[mode]} / PyTorch's - 1")
        bx.fill_between(s_m + 1, 100 * (ratio - 1 - band), 100 * (ratio - 1 + band), color=f"C{k}", alpha=0.25)
    bx.axhspan(-100 * TOL_SAME, 100 * TOL_SAME, color="0.85", zorder=0,
               label=f"tolerance ±{TOL_SAME:.0%} (running average)")
    bx.axhline(0, color="k", lw=0.6)
    bx.set_xscale("log")
    bx.set_ylim(-100, 150)
    bx.set_xlabel("step t")
    bx.set_ylabel("L(t) / L_PyTorch(t) - 1  (%, ±2 s.e.)")
    bx.set_title("Against PyTorch's correction, step by step")
    bx.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize=12, frameon=False)
    fig.tight_layout()

    row = Row(
        name="bias_correction",
        claim="Bias correction: the 1/min(t, N) running average avoids the initial bias toward zero; "
              "\"the PyTorch version of Adam has a more subtle form of bias correction which yields the same effect\"",
        setup=f"Adam lr = {LR}, betas = {BETAS}, eps = 1e-8 on the quadratic h = {H} from Phi = {START}, Gaussian "
              f"noise sigma = {SIGMA}, B = 1, {size['n_chains']:,} chains x {n_steps} steps, same seeds; plateau "
              f"averaged from step {burn} = {burn / SLOWEST:.2g} x the slowest time scale {SLOWEST:.0f} steps "
              f"(max of 1/(lr_eff h_1) and 1/(1 - beta_s)); a verdict on it needs >= {BURN_MULT:g}",
        result="; ".join(parts),
        checks=checks,
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
