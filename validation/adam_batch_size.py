"""Which batch-size rule keeps the temperature independent of B: SGD, decoupled Adam, square-root Adam.

The lecture: with lr = B eta0, SGD's temperature "is essentially determined by eta0
independent of B"; its decoupled Adam (1 - beta = min(1, B/N0), eps = eps0 sqrt(B),
lr = eps B eta0) should have a temperature that "depends primarily on eta0" and "converges to
vanilla SGD as eps0 -> infinity". Beside it, the published square-root rule (lr x sqrt(kappa),
1 - beta x kappa, eps / sqrt(kappa)). All on the same 1-D quadratic (h = 1) with per-example
Gaussian noise (sigma = 1), B = 1 .. 1024; T fitted with its 95% CI at every point.

    python validation/adam_batch_size.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Row, finish, fmt, options

H, SIGMA = 1.0, 1.0
ETA0 = 2e-4  # SGD at B = 1024 has lr h = 0.2: inside the stable range, with a visible finite-lr effect
EPS0 = [0.01, 0.1, 1.0, 10.0]  # decoupled Adam: from eps << noise (sqrt v ~ sigma/sqrt B) to eps >> noise
N_G0, N_S0 = 10.0, 1000.0
SQRT_REF = gs.optimizers.Adam(lr=ETA0, betas=(0.9, 0.999), eps=0.1, bias_correction="running")
SIZES = {"full": dict(n_chains=50_000, batches=[2**k for k in range(11)], max_steps=200_000),
         "quick": dict(n_chains=4_000, batches=[1, 4, 16, 64, 256, 1024], max_steps=60_000),
         "tiny": dict(n_chains=500, batches=[4, 64], max_steps=3_000)}


def _adam_lr_eff(opt, batch):
    """Small-lr effective SGD step of Adam in the noise-dominated regime: sqrt(v) ~ sigma/sqrt(B)."""
    return opt.lr / (SIGMA / math.sqrt(batch) + opt.eps)


def _series(name, make, batches, size, seed):
    """Fit T at every B; each point runs ~8 relaxation times 1/(lr_eff h), or is reported skipped."""
    rows = []
    for b in batches:
        opt = make(b)
        lr_eff = opt.lr if isinstance(opt, gs.optimizers.SGD) else _adam_lr_eff(opt, b)
        tau = 1.0 / (lr_eff * H)
        steps = int(min(size["max_steps"], max(400, 8 * tau)))
        t_guess = lr_eff * SIGMA**2 / (2 * b)
        sd = math.sqrt(t_guess / H)
        row = {"series": name, "batch_size": b, "lr": opt.lr, "tau": tau, "n_steps": steps}
        if 8 * tau > size["max_steps"]:
            row.update(temperature=math.nan, ci_lo=math.nan, ci_hi=math.nan,
                       verdict=f"skipped: relaxation time {tau:.3g} steps exceeds the budget")
            rows.append(row)
            continue
        land = gs.landscapes.Quadratic(H, box=[[-8 * sd, 8 * sd]])
        init = np.random.default_rng(seed + b).normal(0.0, sd, size=(size["n_chains"], 1))
        run = gs.simulate(land, opt, noise=gs.noise.Gaussian(SIGMA), batch_size=b, n_chains=size["n_chains"],
                          n_steps=steps, burn_in=steps // 2, thin=max(1, steps // 2000), init=init,
                          seed=seed + 7919 * b, progress=False, dtype=np.float64)
        fit = gs.fit_temperature(run)
        row.update(temperature=fit.temperature, ci_lo=fit.ci[0], ci_hi=fit.ci[1], verdict=fit.verdict,
                   n_diverged=run.n_diverged)
        rows.append(row)
    return rows


def _exponent(rows, b_max=None):
    """d log T / d log B over the measured points (B <= b_max), with its 95% CI (weighted fit)."""
    ok = [r for r in rows if np.isfinite(r["temperature"]) and (b_max is None or r["batch_size"] <= b_max)]
    if len(ok) < 3:
        return None
    return gs.SweepTable(ok).scaling_law({"B": "batch_size"})


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    batches = size["batches"]
    series = {"SGD, lr = B eta0": _series("sgd", lambda b: gs.optimizers.SGD.scaled(ETA0, b), batches, size, args.seed)}
    for e0 in EPS0:
        series[f"decoupled Adam, eps0 = {e0:g}"] = _series(
            f"decoupled eps0={e0:g}", lambda b, e0=e0: gs.optimizers.Adam.decoupled(ETA0, b, N_G0, N_S0, e0), batches,
            size, args.seed)
    series["Adam, square-root rule"] = _series("sqrt", lambda b: SQRT_REF.sqrt_scaled(1, b), batches, size, args.seed)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    summary = []
    for k, (label, rows) in enumerate(series.items()):
        ok = [r for r in rows if np.isfinite(r["temperature"])]
        if not ok:
            summary.append(f"{label}: no point equilibrates within the budget")
            continue
        b = np.array([r["batch_size"] for r in ok], float)
        t = np.array([r["temperature"] for r in ok])
        err = [t - [r["ci_lo"] for r in ok], [r["ci_hi"] for r in ok] - t]
        ax.errorbar(b, t, yerr=err, fmt="o-", ms=4, lw=1, capsize=2, color=f"C{k}", label=label)
        law = _exponent(rows)
        skipped = [r["batch_size"] for r in rows if not np.isfinite(r["temperature"])]
        half = [(h + l) / 2 for l, h in zip(err[0], err[1])]
        ratio = t[-1] / t[0]
        ratio_err = ratio * math.hypot(half[-1] / t[-1], half[0] / t[0]) / 1.96
        summary.append(f"{label}: T(B={ok[0]['batch_size']}) = {fmt(t[0], half[0] / 1.96)}, "
                       f"T(B={ok[-1]['batch_size']})/T(B={ok[0]['batch_size']}) = {fmt(ratio, ratio_err)}"
                       + (f", T ~ B^a with a = {fmt(law.exponents['B'], law.stderr['B'])}" if law else "")
                       + (f" (B = {skipped} not equilibrated within the step budget)" if skipped else ""))
    bb = np.geomspace(min(batches), max(batches), 200)
    ax.plot(bb, ETA0 * SIGMA**2 / (2 - bb * ETA0 * H), "k--", lw=0.8, label="SGD exact: $\\eta_0\\sigma^2/(2-B\\eta_0 h)$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("fitted temperature T (95% CI)")
    ax.set_title("T against B: SGD with lr = B$\\eta_0$, decoupled Adam, square-root Adam", fontsize=9)
    ax.legend(fontsize=7)

    # "independent of B": the fitted exponent of T ~ B^a is below 0.02 in magnitude (a 15% change
    # over the three decades), over all measured B and over B <= 64 (before lr h effects)
    flat, small_b, growing = [], [], []
    for label, rows in series.items():
        full, low = _exponent(rows), _exponent(rows, 64)
        if full and abs(full.exponents["B"]) < 0.02:
            flat.append(label)
        elif low and abs(low.exponents["B"]) < 0.02:
            small_b.append(label)
        else:
            growing.append(f"{label} (a = {full.exponents['B']:+.3f})" if full else f"{label} (too few points)")
    verdict = (f"T independent of B (|a| < 0.02 in T ~ B^a) over B = {min(batches)}..{max(batches)} for: "
               f"{', '.join(flat) or 'no rule'}; only for B <= 64: {', '.join(small_b) or 'none'}; "
               f"T depends on B for: {', '.join(growing) or 'none'}")
    row = Row(
        name="adam_batch_size",
        claim="Decoupled Adam: \"temperature should depend primarily on eta0 independent of the other parameters\"; "
              "with eta = B eta0, SGD's temperature is independent of B",
        setup=f"1-D quadratic h = {H}, Gaussian per-example noise sigma = {SIGMA}, eta0 = {ETA0}, N_g0 = {N_G0:g}, "
              f"N_s0 = {N_S0:g}, eps0 in {EPS0}; square-root rule from lr = {SQRT_REF.lr}, eps = {SQRT_REF.eps} at B = 1; "
              f"B = {batches}; {size['n_chains']:,} chains per point, ~8 relaxation times",
        result="; ".join(summary),
        verdict=verdict,
        details={k: v for k, v in series.items()},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
