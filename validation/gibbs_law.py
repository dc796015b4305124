"""The Gibbs law at stationarity: where the stationary law of SGD is exp(-L/T)/Z, and where it is not.

The lecture: "under certain (somewhat special) conditions the asymptotic probability
distribution over model parameters is a Gibbs distribution where the energy is the loss",
P(x) = exp(-E(x)/kT)/Z. Measured on eight cases, each fitted with gs.fit_temperature (three
estimators of T -- maximum likelihood, virial, configurational -- which agree exactly for a
Gibbs law, and a histogram goodness-of-fit test):

* expected to hold (small lr h, isotropic additive noise): SGD on a tilted double well (chains
  started half in each well, run for several barrier-crossing times), on a cosine landscape
  (a torus), and on the Mueller-Brown surface (chains started from the small-lr Gibbs law, as
  its slowest basin exchange takes ~10^4 steps);
* expected to fail: finite lr h on the same double well; finite lr on an anisotropic quadratic
  (exact law: per-coordinate T_i = lr sigma^2 / (2 - lr h_i)); anisotropic noise covariance
  (SGD: T_i = lr C_ii / 2); Adam under that anisotropic noise (T_i ~ lr sigma_i / 2); least
  squares on a finite data set at small lr (state-dependent noise).

"How far off" is the total-variation distance between the histogram and the fitted Gibbs law,
the spread of the three estimators, and the ratio of per-coordinate temperatures.

    python validation/gibbs_law.py [--quick]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd import plot
from gibbs_sgd.validation import Row, finish, fmt, options

SIZES = {"full": dict(n_chains=400_000, steps=1.0), "quick": dict(n_chains=20_000, steps=1.0),
         "tiny": dict(n_chains=500, steps=0.1)}
DW = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.3)
DW_H = 8.0  # curvature at the double well's minima, 8 barrier / width^2
MB_SCALE = 0.01
MB = gs.landscapes.MuellerBrown(scale=MB_SCALE, box=[[-2.8, 1.3], [-0.9, 2.9]])  # holds the law at T = 25 scale
MB_H = (410.5 * MB_SCALE, 4068.2 * MB_SCALE)  # Hessian eigenvalues at the deepest minimum
ANISO_C = np.diag([1.0, 9.0])


def _lin_reg_data(seed):
    rng = np.random.default_rng(1000 + seed)
    a = rng.normal(size=(200, 1))
    return gs.noise.LinearRegression(a, 0.5 * a[:, 0] + rng.normal(size=200))


def _cases(seed):
    """The eight cases: landscape, optimizer, noise, steps, thinning, init (n -> array, or None), small-lr T."""
    rng = np.random.default_rng(seed)
    both_wells = lambda n: np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None]  # noqa: E731
    cases = []
    # -- expected Gibbs: small lr h, isotropic additive noise --------------------------------
    t_dw, lr = 1.0 / 3.0, 0.002
    cases.append(dict(
        name="double well, SGD, lr h = 0.016", short="double well small lr", expect=True, land=DW,
        opt=gs.optimizers.SGD(lr=lr), noise=gs.noise.Gaussian(math.sqrt(2 * t_dw / lr)), steps=40_000, thin=10,
        coordinate=0, t_small=t_dw, lr_h=lr * DW_H, init=both_wells, start="half the chains in each well"))
    t_p, lr = 0.5, 0.01
    cases.append(dict(
        name="cosine (torus), SGD, lr h = 0.01", short="cosine", expect=True,
        land=gs.landscapes.Periodic(amplitude=1.0), opt=gs.optimizers.SGD(lr=lr),
        noise=gs.noise.Gaussian(math.sqrt(2 * t_p / lr)), steps=4000, thin=5, coordinate=0, t_small=t_p,
        lr_h=lr * 1.0, init=None, start="all chains at the minimum"))
    t_mb = 25 * MB_SCALE
    lr = 0.02 / MB_H[1]
    cases.append(dict(
        name="Mueller-Brown, SGD, lr h_max = 0.02", short="Mueller-Brown", expect=True, land=MB,
        opt=gs.optimizers.SGD(lr=lr), noise=gs.noise.Gaussian(math.sqrt(2 * t_mb / lr)), steps=8000, thin=10,
        coordinate=0, t_small=t_mb, lr_h=0.02, init=lambda n: gs.Gibbs(MB, t_mb).rvs(n, random_state=seed),
        start="chains drawn from the small-lr Gibbs law"))
    # -- expected not Gibbs ------------------------------------------------------------------
    lr = 0.05
    cases.append(dict(
        name="double well, SGD, lr h = 0.4", short="double well lr h = 0.4", expect=False, land=DW,
        opt=gs.optimizers.SGD(lr=lr), noise=gs.noise.Gaussian(math.sqrt(2 * t_dw / lr)), steps=4000, thin=1,
        coordinate=0, t_small=t_dw, lr_h=lr * DW_H, init=both_wells, start="half the chains in each well"))
    h, lr = np.array([1.0, 10.0]), 0.1
    opt = gs.optimizers.SGD(lr=lr)
    sd1 = np.sqrt(np.diag(gs.theory.stationary_covariance(opt, np.diag(h), gs.noise.Gaussian(1.0))))
    cases.append(dict(
        name="quadratic h = (1, 10), SGD, lr h = (0.1, 1)", short="finite lr, h = (1, 10)", expect=False,
        land=gs.landscapes.Quadratic(h, box=np.stack([-6 * sd1, 6 * sd1], 1)), opt=opt, noise=gs.noise.Gaussian(1.0),
        steps=1000, thin=1, coordinate=1, t_small=lr / 2, lr_h=1.0, init=lambda n: rng.normal(0, sd1, (n, 2)),
        start="chains drawn from the exact stationary law"))
    lr = 0.01
    noise = gs.noise.Gaussian(covariance=ANISO_C)
    opt = gs.optimizers.SGD(lr=lr)
    sd2 = np.sqrt(np.diag(gs.theory.stationary_covariance(opt, np.eye(2), noise)))
    cases.append(dict(
        name="quadratic h = (1, 1), noise C = diag(1, 9), SGD", short="anisotropic noise, SGD", expect=False,
        land=gs.landscapes.Quadratic([1.0, 1.0], box=[[-6 * sd2.max(), 6 * sd2.max()]] * 2), opt=opt, noise=noise,
        steps=2000, thin=1, coordinate=1, t_small=lr * 5.0 / 2, lr_h=lr, init=lambda n: rng.normal(0, sd2, (n, 2)),
        start="chains drawn from the exact stationary law"))
    sd3 = np.sqrt(lr * np.sqrt(np.diag(ANISO_C)) / 2)
    cases.append(dict(
        name="same, Adam (lr = 0.01)", short="anisotropic noise, Adam", expect=False,
        land=gs.landscapes.Quadratic([1.0, 1.0], box=[[-6 * sd3.max(), 6 * sd3.max()]] * 2),
        opt=gs.optimizers.Adam(lr=lr), noise=noise, steps=4000, thin=1, coordinate=1, t_small=lr * 2.0 / 2,
        lr_h=lr / 1.0, init=lambda n: rng.normal(0, sd3, (n, 2)),
        start="chains drawn near the small-lr law T_i = lr sigma_i / 2"))
    lin = _lin_reg_data(seed)
    h = float(lin.landscape.hessian[0, 0])
    c = float(lin.landscape.center[0])
    s0 = float(np.mean((lin.inputs[:, 0] * c - lin.targets) ** 2 * lin.inputs[:, 0] ** 2))  # noise variance at w*
    lr = 0.05 / h
    sd4 = math.sqrt(lr * s0 / (2 * h))
    cases.append(dict(
        name="least squares, 200 examples, SGD, lr h = 0.05", short="least squares", expect=False,
        land=gs.landscapes.Quadratic(lin.landscape.hessian, center=c, offset=lin.landscape.offset,
                                     box=[[c - 7 * sd4, c + 7 * sd4]]),
        opt=gs.optimizers.SGD(lr=lr), noise=lin, steps=2000, thin=1, coordinate=0, t_small=lr * s0 / 2, lr_h=0.05,
        init=lambda n: c + rng.normal(0, sd4, (n, 1)), start="chains drawn from the small-lr Gaussian law"))
    return cases


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    n = size["n_chains"]
    cases = _cases(args.seed)
    for k, c in enumerate(cases):
        steps = max(200, int(c["steps"] * size["steps"]))
        run = gs.simulate(c["land"], c["opt"], noise=c["noise"], n_chains=n, n_steps=steps, burn_in=steps // 2,
                          thin=c["thin"], init=None if c["init"] is None else c["init"](n), seed=args.seed + k,
                          keep_final=True, progress=False, dtype=np.float64)
        fit = gs.fit_temperature(run)
        est = {name: e for name, e in fit.estimators.items() if e is not None}
        vals = np.array([e.value for e in est.values()])
        per = fit.per_coordinate
        x = run.final[run.alive, c["coordinate"]]
        x = x - x.mean()
        c.update(run=run, fit=fit, est=est, spread=float(vals.max() / vals.min() - 1),
                 per_ratio=float(per.max() / per.min()) if per is not None and len(per) > 1 else 1.0,
                 skew=float(np.mean(x**3) / np.mean(x**2) ** 1.5), skew_se=math.sqrt(6.0 / len(x)))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(18, 11))
    grid = fig.add_gridspec(5, 4, height_ratios=[3, 1, 0.7, 3, 1], hspace=0.25, wspace=0.25)
    for k, c in enumerate(cases):
        r, col = 3 * (k // 4), k % 4
        ax = fig.add_subplot(grid[r, col])
        axr = fig.add_subplot(grid[r + 1, col], sharex=ax)
        plot.histogram(c["run"], c["fit"], coordinate=c["coordinate"], axes=(ax, axr))
        e = c["est"]
        mark = "Gibbs" if c["fit"].is_gibbs else "NOT Gibbs"
        ax.set_title(f"{c['name']}\n{mark}, TV = {c['fit'].total_variation:.3f}; T mle/vir/conf =\n"
                     + " / ".join(f"{v.value:.4g}" for v in e.values()), fontsize=7.5)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
        axr.tick_params(labelsize=7)
        plt.setp(ax.get_xticklabels(), visible=False)
    fig.suptitle("Stationary histograms against the fitted Gibbs law exp(-L/T)/Z (top row: expected Gibbs; "
                 "bottom row: expected not)", fontsize=10)

    parts = []
    for c in cases:
        e, fit = c["est"], c["fit"]
        cells = ", ".join(f"{name} {fmt(v.value, v.stderr)}" for name, v in e.items())
        extra = ""
        if c["per_ratio"] != 1.0:
            extra += (f", per-coordinate T {np.array2string(fit.per_coordinate, precision=4)} "
                      f"(ratio {c['per_ratio']:.2f})")
        if isinstance(c["land"], gs.landscapes.Quadratic):  # Gibbs there is Gaussian: no skewness
            extra += f", skewness {fmt(c['skew'], c['skew_se'])}"
        parts.append(f"{c['name']} ({c['start']}): {'Gibbs' if fit.is_gibbs else 'NOT Gibbs'}; T {cells} "
                     f"(small-lr T = {c['t_small']:.4g}); chi2/dof = {fit.chi2 / fit.dof:.3g}, "
                     f"TV = {fit.total_variation:.4f}, estimator spread {c['spread']:.2%}{extra}")
    held = [c for c in cases if c["expect"]]
    broke = [c for c in cases if not c["expect"]]
    ok_held = [c for c in held if c["fit"].is_gibbs]
    ok_broke = [c for c in broke if not c["fit"].is_gibbs]
    verdict = (f"Gibbs holds in {len(ok_held)} of {len(held)} small-lr cases"
               + (f" (T within {max(abs(c['fit'].temperature / c['t_small'] - 1) for c in ok_held):.1%} of "
                  f"lr sigma^2/2B)" if ok_held else "")
               + (f"; rejected where expected to hold: {', '.join(c['name'] for c in held if c not in ok_held)}"
                  if len(ok_held) < len(held) else "")
               + f"; rejected in {len(ok_broke)} of {len(broke)} expected failures, by TV "
               + ", ".join(f"{c['fit'].total_variation:.3f} ({c['short']})" for c in broke)
               + (f"; NOT rejected: {', '.join(c['name'] for c in broke if c not in ok_broke)}"
                  if len(ok_broke) < len(broke) else "")
               + f"; largest per-coordinate T ratio {max(c['per_ratio'] for c in broke):.2f}")
    row = Row(
        name="gibbs_law",
        claim="\"Under certain (somewhat special) conditions the asymptotic probability distribution over model "
              "parameters is a Gibbs distribution where the energy is the loss\", P(x) = exp(-E(x)/kT)/Z",
        setup=f"{n:,} chains per case, half of each run as burn-in; tilted double well (barrier 1, tilt 0.3), cosine "
              f"A = 1, Mueller-Brown x {MB_SCALE}, quadratics, least squares on 200 examples; Gaussian noise scaled so "
              f"that the small-lr T is 1/3, 1/2, 0.25 on the three curved landscapes",
        result="; ".join(parts),
        verdict=verdict,
        details={c["name"]: {"expect_gibbs": c["expect"], "is_gibbs": c["fit"].is_gibbs, "verdict": c["fit"].verdict,
                             "estimators": {k: [v.value, v.stderr] for k, v in c["est"].items()},
                             "per_coordinate": (None if c["fit"].per_coordinate is None
                                                else c["fit"].per_coordinate.tolist()),
                             "t_small_lr": c["t_small"], "lr_h": c["lr_h"], "total_variation": c["fit"].total_variation,
                             "chi2_per_dof": c["fit"].chi2 / c["fit"].dof, "skewness": [c["skew"], c["skew_se"]]}
                 for c in cases},
    )
    finish(args, row, fig)


if __name__ == "__main__":
    main()
