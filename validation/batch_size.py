"""Batch size and temperature on a finite data set: T ~ 1/B at fixed lr, T flat under lr = B eta0.

The lecture: "For PyTorch vanilla SGD both the batch size and the learning rate influence
temperature (not good)", and with batch updates Phi <- Phi - B eta0 g_hat "the temperature is
essentially determined by eta0 independent of B" (Goyal et al. 2017: eta = B eta0), a limit
valid "for academic batch sizes".

The noise is real minibatch noise, not an input: mean estimation on a data set of n points
a_i (per-example loss (Phi - a_i)^2 / 2, gs.noise.MeanEstimation), each batch drawn with or
without replacement and its per-example gradients averaged by the kernel. The per-example
gradient Phi - a_i deviates from the full gradient by abar - a_i, whose variance over the data
set is S. Averaging B indices drawn with replacement divides S by B; drawing a B-subset
without replacement multiplies that by the finite-population factor f = (n - B)/(n - 1) (the
covariance of two distinct draws is -S/(n - 1)). The recursion e' = (1 - lr h) e + lr xi is
linear with xi independent of e, so its stationary variance is exact whatever the law of xi:

    T := 2 (<L> - L*) = h Var Phi = lr S f / (B (2 - lr h))     (h = 1 here).

Under lr = B eta0 this is T = eta0 S f / (2 - B eta0 h): the lecture's limit eta0 S / 2 with two
small parameters, B eta0 h (finite lr: departure (B - 1) eta0 h / 2 to first order) and
(B - 1)/(n - 1) (sampling without replacement only).

The realistic case beside it: least squares on n examples (gs.noise.LinearRegression), whose
per-example gradient x_i^2 e - x_i r_i (e = w - w*, r_i the residual at w*) makes the noise
depend on the state. Its batch mean is A_B e - R_B, with A_B and R_B drawn afresh each step and
E R_B = 0, so E e^2 still closes: T = H lr Var R_B / (2 H - lr (H^2 + Var A_B)), the variances
over B (times f without replacement). Under lr = B eta0 the departure from flat is again
(B - 1) eta0 H / 2 to first order.

Every point runs from the minimum for a burn-in of BURN relaxation times (the slowest, of the
mean or of the error's scale) and is averaged over WINDOW more; no verdict is given on a point
with less than NEED relaxation times of burn-in.

    python validation/batch_size.py [--quick | --tiny] [--out FOLDER]
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, finish, fmt, options

N_DATA = 1024
DATA_SEED = 20171  # any fixed seed: the data set is part of the setup
LR_FIXED = 0.02
ETA0 = 1e-3
BURN, NEED = 6.0, 5.0  # burn-in run, and the least a verdict accepts, in relaxation times of the mean
# Tolerances, fixed before the run:
TOL_EXACT = 0.02     # every T within 2% of the exact finite-lr law (the law the claim approximates)
TOL_RATIO = 0.05     # at fixed lr, T(1)/T(Bmax) within 5% of the exact ratio (~ Bmax: B sets T)
ACADEMIC_B = 16      # "academic" batch sizes: B eta0 h <= 1/64 and (B - 1)/(n - 1) <= 1.5% (exact departures <= 0.8%)
TOL_FLAT = 0.03      # under lr = B eta0, T(B)/T(1) - 1 within +-3% over B = 1..ACADEMIC_B
RATE_X = 0.6         # the departure's rate is checked over B eta0 h <= 0.6 ...
TOL_RATE = 0.10      # ... as the scale of the measured departure on the exact one: 1 +- 10%
TOL_FPC = 0.02       # T(without)/T(with) at the largest B within 0.02 of (n - B)/(n - 1)
SIZES = {
    "full": dict(n_chains=200_000, window=40.0, fixed=[1, 2, 4, 8, 16, 32, 64, 128, 256],
                 scaled=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1536], without=[1, 2, 4, 8, 16, 32, 64],
                 least_squares=[1, 4, 16, 32, 128, 512, 1024]),
    "quick": dict(n_chains=10_000, window=20.0, fixed=[1, 4, 16, 64], scaled=[1, 4, 16, 32, 64, 128, 512, 1536],
                  without=[1, 16, 32, 64], least_squares=[1, 16, 32, 128, 512]),
    "tiny": dict(n_chains=400, window=4.0, fixed=[1, 16], scaled=[1, 32, 512], without=[1, 32], least_squares=[1, 32]),
}


def data_set() -> np.ndarray:
    """n points, shifted and scaled so that their mean is 0 and their variance (1/n) is exactly 1."""
    a = np.random.default_rng(DATA_SEED).standard_normal(N_DATA)
    a = a - a.mean()
    return a / math.sqrt(np.mean(a * a))


def least_squares_data():
    """Least squares on n examples: inputs x_i ~ N(0, 1) scaled so that H = mean x^2 = 1, labels
    y_i = 2 x_i + eps_i (eps_i ~ N(0, 1)); the fitted w* makes the residuals r_i orthogonal to x."""
    rng = np.random.default_rng(DATA_SEED + 1)
    x = rng.standard_normal(N_DATA)
    x = x / math.sqrt(np.mean(x * x))
    return x, 2.0 * x + rng.standard_normal(N_DATA)


def _moments(noise, batch: float):
    """(H, variance of the batch-mean curvature A_B, variance of the batch-mean residual force R_B)
    of the data set (gs.theory.least_squares_moments; mean estimation: zero curvature variance)."""
    if isinstance(noise, gs.noise.LinearRegression):
        x = noise.inputs[:, 0]
        return gs.theory.least_squares_moments(x, noise.targets - x * float(noise.landscape.center[0]), batch,
                                               noise.replace)
    n = noise.data.shape[0]
    f = 1.0 if noise.replace else (n - batch) / (n - 1)
    return float(noise.landscape.hessian[0, 0]), 0.0, float(noise.per_example_covariance()[0, 0]) * f / batch


def t_exact(noise, lr: float, batch: float) -> float:
    """Exact stationary T = 2 (<L> - L*) = h E e^2 of SGD at finite lr.

    Mean estimation: gs.theory's Lyapunov solution, h lr S f / (B h (2 - lr h)), with the
    finite-population factor f without replacement. Least squares: e' = (1 - lr A_B) e + lr R_B,
    T = H lr Var R_B / (2 H - lr (H^2 + Var A_B)) (gs.theory.least_squares_stationary_loss).
    """
    if isinstance(noise, gs.noise.LinearRegression):
        return 2.0 * gs.theory.least_squares_stationary_loss(lr, *_moments(noise, batch))
    h = float(noise.landscape.hessian[0, 0])
    if noise.replace:
        cov = noise
    else:  # the theory takes the per-example covariance: the batch covariance times B
        n = noise.data.shape[0]
        cov = noise.per_example_covariance() * (n - batch) / (n - 1)
    return h * float(gs.theory.stationary_covariance(gs.optimizers.SGD(lr=lr), h, cov, batch)[0, 0])


def relaxation_time(noise, lr: float, batch: float) -> float:
    """The slowest relaxation in steps: of the mean, -1/log|1 - lr h|, or of the error's scale,
    -2/log E(1 - lr A_B)^2 (the same for mean estimation; slower for least squares)."""
    h, va, _ = _moments(noise, batch)
    return gs.theory.least_squares_relaxation_time(lr, h, va)


def run_point(noise, lr: float, batch: int, n_chains: int, window: float, seed: int) -> dict:
    """One (lr, B): T = 2 (<L> - L*) with its chain-to-chain error, and the burn-in in relaxation times."""
    land = noise.landscape
    h = float(land.hessian[0, 0])
    tau = relaxation_time(noise, lr, batch)
    burn = int(math.ceil(BURN * tau))
    n_steps = burn + max(int(math.ceil(window * tau)), 64)
    run = gs.simulate(land, gs.optimizers.SGD(lr=lr), noise=noise, batch_size=batch, n_chains=n_chains,
                      n_steps=n_steps, burn_in=burn, seed=seed, bins=20, progress=False, dtype=np.float64)
    ml = run.mean_loss
    return dict(batch_size=batch, lr=lr, x=lr * h, temperature=2.0 * (ml.value - land.offset), stderr=2.0 * ml.stderr,
                exact=t_exact(noise, lr, batch), burn_tau=burn / tau, n_steps=n_steps, n_diverged=run.n_diverged)


def _worst(quantity: str, values, errors, target, tolerance, relative=False, labels=None) -> Check:
    """The point farthest from the target once its 2-sigma error is added (the one that decides)."""
    values, errors = np.asarray(values, float), np.asarray(errors, float)
    i = int(np.argmax(np.abs(values - target) + 2 * errors))
    at = f" (at {labels[i]})" if labels is not None else ""
    return Check(quantity + at, float(values[i]), float(errors[i]), tolerance, target, relative)


def _span(rows) -> str:
    b = [r["batch_size"] for r in rows]
    return f"B = {min(b)}..{max(b)}"


def equilibrated(rows):
    return [r for r in rows if r["burn_tau"] >= NEED]


def make_checks(fixed: list[dict], scaled: list[dict], without: list[dict], least_squares: list[dict] = (),
                n_data: int = N_DATA) -> list[Check]:
    """The claim's checks from the measured rows (dicts with batch_size, x = lr h, temperature,
    stderr, exact, burn_tau). Rows with fewer than NEED relaxation times of burn-in are left out
    of every other check; their own agreement with the exact law is reported with no verdict."""

    def vs_exact(name, rows):
        return _worst(f"{name}: worst T/T_exact over {_span(rows)}", [r["temperature"] / r["exact"] for r in rows],
                      [r["stderr"] / r["exact"] for r in rows], 1.0, TOL_EXACT, True,
                      [f"B = {r['batch_size']}" for r in rows])

    checks = []
    for name, rows in (("fixed lr", fixed), ("lr = B eta0, with replacement", scaled),
                       ("lr = B eta0, without replacement", without), ("least squares, lr = B eta0", least_squares)):
        short = [r for r in rows if r["burn_tau"] < NEED]
        if short:
            checks.append(replace(vs_exact(f"{name}, not equilibrated", short),
                                  no_verdict=f"burn-in {min(r['burn_tau'] for r in short):.1f} < {NEED:g} relaxation "
                                             f"times: no verdict, left out of every other check"))
    fixed, scaled, without = equilibrated(fixed), equilibrated(scaled), equilibrated(without)
    least_squares = equilibrated(least_squares)

    if fixed:
        checks.append(vs_exact(f"fixed lr = {fixed[0]['lr']:g}", fixed))
        lo = min(fixed, key=lambda r: r["batch_size"])
        hi = max(fixed, key=lambda r: r["batch_size"])
        if hi is not lo:
            ratio = lo["temperature"] / hi["temperature"]
            err = ratio * math.hypot(lo["stderr"] / lo["temperature"], hi["stderr"] / hi["temperature"])
            checks.append(Check(f"fixed lr: T(B = {lo['batch_size']})/T(B = {hi['batch_size']}) (exact law: "
                                f"B sets T)", ratio, err, TOL_RATIO, lo["exact"] / hi["exact"], True))

    def flat(name, rows):
        ref = min(rows, key=lambda r: r["batch_size"])
        acad = [r for r in rows if r["batch_size"] <= ACADEMIC_B and r is not ref]
        if not acad:
            return None
        d = [r["temperature"] / ref["temperature"] - 1 for r in acad]
        e = [(r["temperature"] / ref["temperature"]) * math.hypot(r["stderr"] / r["temperature"],
                                                                  ref["stderr"] / ref["temperature"]) for r in acad]
        return _worst(f"{name}: flat over B = {ref['batch_size']}..{max(r['batch_size'] for r in acad)}, worst "
                      f"T(B)/T({ref['batch_size']}) - 1", d, e, 0.0, TOL_FLAT,
                      labels=[f"B = {r['batch_size']}" for r in acad])

    for name, rows in (("lr = B eta0, with replacement", scaled), ("lr = B eta0, without replacement", without),
                       ("least squares, lr = B eta0, with replacement", least_squares)):
        if rows:
            checks.append(vs_exact(name, rows))
            c = flat(name, rows)
            if c is not None:
                checks.append(c)

    # the rate at which the departure from the limit grows with the small parameter B eta0 h:
    # the measured departure T(B)/T_exact(1) - 1 regressed on the exact one (scale 1 = the exact rate)
    ref = [r for r in scaled if r["batch_size"] == 1]
    pts = [r for r in scaled if r["batch_size"] > 1 and r["x"] <= RATE_X]
    if ref and pts:
        t1 = ref[0]["exact"]
        dm = np.array([r["temperature"] / t1 - 1 for r in pts])
        de = np.array([r["exact"] / t1 - 1 for r in pts])
        w = 1.0 / np.array([r["stderr"] / t1 for r in pts]) ** 2
        scale = float(np.sum(w * dm * de) / np.sum(w * de * de))
        checks.append(Check(f"lr = B eta0: measured departure T(B)/T(1) - 1 on the exact (2 - eta0 h)/(2 - B eta0 h) "
                            f"- 1, scale over B eta0 h <= {RATE_X:g}", scale, float(1 / math.sqrt(np.sum(w * de * de))),
                            TOL_RATE, 1.0, True))
    # the finite-population factor, directly: same B, without over with replacement
    common = sorted({r["batch_size"] for r in scaled} & {r["batch_size"] for r in without})
    if common and common[-1] > 1:
        b = common[-1]
        a = next(r for r in without if r["batch_size"] == b)
        c = next(r for r in scaled if r["batch_size"] == b)
        ratio = a["temperature"] / c["temperature"]
        err = ratio * math.hypot(a["stderr"] / a["temperature"], c["stderr"] / c["temperature"])
        checks.append(Check(f"T(without)/T(with replacement) at B = {b}, against (n - B)/(n - 1)", ratio, err,
                            TOL_FPC, (n_data - b) / (n_data - 1)))
    return checks


def _figure(fixed, scaled, without, least_squares):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 6.2))

    def points(ax, xs, ys, es, rows, color, label, marker="o"):
        if not len(rows):
            return
        ok = np.array([r["burn_tau"] >= NEED for r in rows], bool)
        xs, ys, es = map(np.asarray, (xs, ys, es))
        ax.errorbar(xs[ok], ys[ok], yerr=2 * es[ok], fmt=marker, ms=6, capsize=2, color=color, label=label)
        if (~ok).any():
            ax.errorbar(xs[~ok], ys[~ok], yerr=2 * es[~ok], fmt=marker, ms=6, capsize=2, color=color, mfc="none",
                        label=f"{label}: burn-in < {NEED:g} tau (no verdict)")

    noise_w = gs.noise.MeanEstimation(data_set(), replace=True)
    noise_wo = gs.noise.MeanEstimation(data_set(), replace=False)
    noise_ls = gs.noise.LinearRegression(*least_squares_data())
    ax = axes[0]
    b = [r["batch_size"] for r in fixed]
    points(ax, b, [r["temperature"] for r in fixed], [r["stderr"] for r in fixed], fixed, "C0",
           f"measured, lr = {LR_FIXED:g} (±2 s.e.)")
    bb = np.geomspace(1, max(b), 200)
    ax.plot(bb, [t_exact(noise_w, LR_FIXED, x) for x in bb], "k-", lw=1, label="exact: lr S / (B (2 - lr h))")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("temperature T = 2(<L> - L*)  (loss units)")
    ax.set_title("fixed lr (PyTorch SGD): T falls as 1/B")

    ax = axes[1]
    marker = {"C1": "o", "C2": "s", "C3": "^"}
    for rows, noise, color, label in ((scaled, noise_w, "C1", "with replacement"),
                                      (without, noise_wo, "C2", "without replacement"),
                                      (least_squares, noise_ls, "C3", "least squares, with repl.")):
        if not rows:
            continue
        x = np.array([r["batch_size"] for r in rows], float)
        t0 = t_exact(noise, ETA0 * 1e-3, 1) * 1e3  # the lecture's limit eta0 S / 2 (eta0 -> 0 at B = 1)
        points(ax, x, [r["temperature"] / t0 for r in rows], [r["stderr"] / t0 for r in rows], rows, color,
               f"measured, {label}", marker[color])
        xx = np.geomspace(1, x.max(), 200)
        if noise is noise_wo:
            xx = np.minimum(xx, N_DATA - 1)
        ax.plot(xx, [t_exact(noise, ETA0 * v, v) / t0 for v in xx], color=color, lw=1,
                label=f"exact, {label}")
    ax.axhspan(1 - TOL_FLAT, 1 + TOL_FLAT, color="0.88", zorder=-1, label=f"±{TOL_FLAT:.0%} (flatness tolerance)")
    ax.axvline(ACADEMIC_B, color="0.4", lw=0.8, ls=":", label=f"B = {ACADEMIC_B}: largest 'academic' B")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B  (lr = B eta0)")
    ax.set_ylabel("T / (its limit as eta0 -> 0)  (lecture: 1)")
    ax.set_title(f"lr = B eta0 (eta0 = {ETA0:g}): flat for small B")

    ax = axes[2]
    ref = next((r for r in scaled if r["batch_size"] == 1), None)
    if ref is not None:
        pts = [r for r in scaled if r["batch_size"] > 1]
        t1 = ref["exact"]
        x = np.array([(r["batch_size"] - 1) * ETA0 for r in pts])  # (B - 1) eta0 h, h = 1
        d = np.array([r["temperature"] / t1 - 1 for r in pts])
        e = np.array([r["stderr"] / t1 for r in pts])
        pos = d > 0
        points(ax, x[pos], d[pos], e[pos], [r for r, p in zip(pts, pos) if p], "C1",
               "measured T(B)/T_exact(1) - 1, with replacement")
        floor = 0.3 * ETA0 / 2
        if (~pos).any():
            ax.plot(x[~pos], np.full((~pos).sum(), floor), "v", color="C1", mfc="none", ms=8,
                    label="measured departure <= 0 (drawn at the floor)")
        xx = np.geomspace(ETA0 * 0.7, max(x.max(), 2 * ETA0) * 1.05, 200)
        ax.plot(xx, (2 - ETA0) / (2 - ETA0 - xx) - 1, "C1-", lw=1, label="exact: (2 - eta0 h)/(2 - B eta0 h) - 1")
        ax.plot(xx, xx / 2, "k--", lw=0.8, label="leading order: (B - 1) eta0 h / 2")
        ax.axvline(RATE_X, color="0.4", lw=0.8, ls=":", label="end of the rate-check range")
        ax.set_ylim(bottom=floor * 0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("small parameter (B - 1) eta0 h")
    ax.set_ylabel("departure from flat, T(B)/T(1) - 1")
    ax.set_title("departure vanishes linearly")
    from matplotlib.ticker import FixedLocator, FormatStrFormatter
    axes[1].yaxis.set_major_locator(FixedLocator([0.9, 1.0, 1.5, 2.0, 3.0, 4.0]))
    axes[1].yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes[1].yaxis.set_minor_formatter(FormatStrFormatter(""))
    for ax in axes:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=11, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    noise_w = gs.noise.MeanEstimation(data_set(), replace=True)
    noise_wo = gs.noise.MeanEstimation(data_set(), replace=False)
    common = dict(n_chains=size["n_chains"], window=size["window"])
    seed = args.seed * 1000
    fixed = [run_point(noise_w, LR_FIXED, b, seed=seed + k, **common) for k, b in enumerate(size["fixed"])]
    scaled = [run_point(noise_w, ETA0 * b, b, seed=seed + 100 + k, **common) for k, b in enumerate(size["scaled"])]
    without = [run_point(noise_wo, ETA0 * b, b, seed=seed + 200 + k, **common) for k, b in enumerate(size["without"])]
    noise_ls = gs.noise.LinearRegression(*least_squares_data())
    least_squares = [run_point(noise_ls, ETA0 * b, b, seed=seed + 300 + k, **common)
                     for k, b in enumerate(size["least_squares"])]
    checks = make_checks(fixed, scaled, without, least_squares)
    fig = _figure(fixed, scaled, without, least_squares)

    def cells(rows):
        return "; ".join(f"B = {r['batch_size']}: T = {fmt(r['temperature'], r['stderr'])} (exact {r['exact']:.5g})"
                         for r in rows)

    every = fixed + scaled + without + least_squares
    burn = min(r["burn_tau"] for r in every)
    result = (f"fixed lr = {LR_FIXED:g}: {cells(fixed)}. lr = B eta0 (eta0 = {ETA0:g}), with replacement: "
              f"{cells(scaled)}. Without replacement: {cells(without)}. Least squares, with replacement: "
              f"{cells(least_squares)}. Burn-in >= {burn:.1f} relaxation times at every point; diverged chains: "
              f"{sum(r['n_diverged'] for r in every)}")
    row = Row(
        name="batch_size",
        claim="\"For PyTorch vanilla SGD both the batch size and the learning rate influence temperature\"; with "
              "eta = B eta0 \"the temperature is essentially determined by eta0 independent of B\" (academic B)",
        setup=f"SGD on mean estimation over a data set of n = {N_DATA} points (per-example loss (Phi - a_i)^2/2, "
              f"h = 1, per-example gradient variance S = 1), batches drawn with and without replacement; "
              f"T = 2(<L> - L*) against the exact finite-lr law lr S f/(B(2 - lr h)), f = 1 or (n - B)/(n - 1); "
              f"fixed lr = {LR_FIXED:g} over B = {size['fixed']}, lr = B eta0 (eta0 = {ETA0:g}) over B = "
              f"{size['scaled']} (with) and {size['without']} (without); least squares on n = {N_DATA} examples (inputs "
              f"N(0, 1), H = 1, labels 2x + N(0, 1): state-dependent noise, exact law H lr Var R_B/(2H - lr(H^2 + "
              f"Var A_B))) with replacement under lr = B eta0 over B = {size['least_squares']}; "
              f"{size['n_chains']:,} chains per point from "
              f"the minimum, burn-in {BURN:g} relaxation times of the mean (a verdict needs >= {NEED:g}), then "
              f"{size['window']:g} more averaged; tolerances: each T within {TOL_EXACT:.0%} of exact, fixed-lr ratio "
              f"within {TOL_RATIO:.0%}, flat within ±{TOL_FLAT:.0%} over B <= {ACADEMIC_B}, departure scale "
              f"1 ± {TOL_RATE:.0%}, finite-population ratio within {TOL_FPC:g}",
        result=result,
        checks=checks,
        details={"fixed": fixed, "scaled": scaled, "without": without, "least_squares": least_squares},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
