"""One curve for three rules: T / T_small against x = lr_eff h (1 - mu) / (1 + mu) for SGD, heavy ball and EMA momentum.

The lecture's three scaling rules each keep the small-lr temperature T_small = lr_eff sigma^2 / (2B)
fixed ("Making Temperature Independent of B": lr = B eta0; "Heavy Ball Momentum":
lr = (1 - mu) B eta0; "EMA Momentum: Temperature is Independent of N"), and each is exact only in
the limit of small steps. On the quadratic h Phi^2/2 with Gaussian noise the exact stationary law
of all three linear recursions (gs.theory.stationary_covariance, a discrete Lyapunov equation) is
one function of one dimensionless number:

    T / T_small = 2 / (2 - x),   x = lr_eff h (1 - m) / (1 + m),

with, for each rule,
    SGD, lr = B eta0:                    lr_eff = lr = B eta0,       m = 0      -> x = B eta0 h;
    heavy ball, lr = (1 - mu) B eta0:    lr_eff = lr / (1 - mu),     m = mu     -> x = B eta0 h (1 - mu)/(1 + mu);
    EMA momentum, beta = 1 - 1/N:        lr_eff = lr,                m = beta   -> x = lr h / (2N - 1).
(No stationary law at x >= 2.) So the three rules break in the same way and at the same x: the
departure from the lecture's T is 1 - T_small/T = x/2 exactly.

Checks, tolerances fixed below before the run:
* every measured point on its rule's exact curve (gs.theory): T / T_exact - 1 within EXACT_TOL;
* the exact curves of the three rules coincide with 2/(2 - x) over the plotted range: largest
  |T_theory / T_small - 2/(2 - x)| within THEORY_TOL (a rounding-level tolerance: exact numbers);
* burn-in: BURN_TAU relaxation times of the slowest mode before sampling; a point with less than
  MIN_BURN_TAU gets no verdict (unresolved, drawn hollow).
The row's details hold the table of the exact reference laws the report uses: formula, where it
comes from, its agreement with gs.theory, and which validation scripts use it.

    python validation/collapse.py [--quick | --tiny] [--out FOLDER]
"""
import math
from pathlib import Path

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, burn_in_refusal, combine, finish, fmt, options, run_length

H, SIGMA = 1.0, 1.0
ETA0 = 0.005  # eta0 h
# Tolerances, fixed before the run.
EXACT_TOL = 0.01     # every point within 1% of its exact temperature
THEORY_TOL = 1e-9    # the three exact curves equal 2/(2 - x) to rounding
MIN_BURN_TAU = 5.0   # from the minimum, the variance's bias after b relaxation times is e^(-2b): 5e-5 at b = 5
MIN_WINDOW = 200     # steps sampled at least, for the fast points
SIZES = {
    "full": dict(n_chains=1_000_000, xs=[0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.28, 1.6],
                 burn_tau=6.0, window_tau=10.0, cap=10**6),
    "quick": dict(n_chains=50_000, xs=[0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28],
                  burn_tau=6.0, window_tau=10.0, cap=10**6),
    # tiny: a smoke test; the cap leaves the slow points under-burnt, so it exercises the refusal
    "tiny": dict(n_chains=2_000, xs=[0.02, 1.28], burn_tau=6.0, window_tau=10.0, cap=300),
}
LAND = gs.landscapes.Quadratic(H, box=[[-8.0, 8.0]])
NOISE = gs.noise.Gaussian(SIGMA)


def _series():
    """name -> (m, function x -> (optimizer, batch size)); B is real-valued in the theory, but a
    run needs an integer B, so the heavy-ball and SGD series reach x through B eta0 with B
    rounded and x recomputed from the rounded B."""
    def sgd(x):
        b = max(1, round(x / ETA0))
        return gs.optimizers.SGD(lr=b * ETA0 / H), b

    def heavy(mu):
        def make(x):
            b = max(1, round(x * (1 + mu) / ((1 - mu) * ETA0)))
            return gs.optimizers.HeavyBall(lr=(1 - mu) * b * ETA0 / H, momentum=mu), b
        return make

    def ema(n):
        def make(x):
            return gs.optimizers.EMAMomentum(lr=x * (2 * n - 1) / H, beta=1 - 1 / n), 1
        return make

    return {"SGD, lr = B eta0": (0.0, sgd),
            "heavy ball mu = 0.5, lr = (1-mu) B eta0": (0.5, heavy(0.5)),
            "heavy ball mu = 0.9, lr = (1-mu) B eta0": (0.9, heavy(0.9)),
            "EMA momentum N = 2": (0.5, ema(2)),
            "EMA momentum N = 10": (0.9, ema(10))}


def x_of(opt):
    """The collapse variable of a linear optimizer: lr_eff h (1 - m) / (1 + m)."""
    m = opt.momentum if isinstance(opt, gs.optimizers.HeavyBall) else getattr(opt, "beta", 0.0)
    return gs.theory.effective_lr(opt) * H * (1 - m) / (1 + m)


def exact_ratio(opt, batch):
    return (H * gs.theory.stationary_covariance(opt, H, NOISE, batch)[0, 0]
            / gs.theory.small_lr_temperature(opt, NOISE, batch))


def plan(size):
    """Per series, the point dicts (optimizer, batch size, run length from the relaxation time)."""
    out = []
    for name, (_, make) in _series().items():
        for x in size["xs"]:
            opt, b = make(x)
            tau = gs.theory.relaxation_time(opt, [[H]])
            steps, burn = run_length(tau, size["burn_tau"], size["window_tau"], size["cap"], MIN_WINDOW)
            out.append({"series": name, "opt": opt, "batch_size": b, "n_steps": steps, "burn_in": burn, "tau": tau})
    return out


def run_points(points, n_chains, seed):
    """Simulate and fit every point; returns the measured dicts the checks read."""
    out = []
    for k, p in enumerate(points):
        run = gs.simulate(LAND, p["opt"], noise=NOISE, batch_size=p["batch_size"], n_chains=n_chains,
                          n_steps=p["n_steps"], burn_in=p["burn_in"], seed=seed + k, progress=False, dtype=np.float64)
        fit = gs.fit_temperature(run)
        t_small = gs.theory.small_lr_temperature(p["opt"], NOISE, p["batch_size"])
        se = fit.estimators["mle"].stderr
        out.append({"series": p["series"], "optimizer": repr(p["opt"]), "batch_size": p["batch_size"],
                    "x": x_of(p["opt"]), "ratio": fit.temperature / t_small, "ratio_se": se / t_small,
                    "exact": exact_ratio(p["opt"], p["batch_size"]), "tau": p["tau"], "burn_in": p["burn_in"],
                    "n_steps": p["n_steps"], "burn_tau": p["burn_in"] / p["tau"], "temperature": fit.temperature,
                    "se": se, "gibbs_status": getattr(fit, "status", None)})
    return out


def _equilibrated(p):
    return p["burn_tau"] >= MIN_BURN_TAU


def theory_curves(xs):
    """Per series, (x, T_theory / T_small) along a dense grid of real-valued settings (B is real in
    gs.theory, so the curve is smooth)."""
    curves = {}
    for name, (m, _) in _series().items():
        xx = np.geomspace(min(xs) / 1.5, min(max(xs) * 1.15, 1.9), 120)
        ys = []
        for x in xx:
            if name.startswith("SGD"):
                b = x / ETA0
                opt = gs.optimizers.SGD(lr=b * ETA0 / H)
            elif name.startswith("heavy"):
                b = x * (1 + m) / ((1 - m) * ETA0)
                opt = gs.optimizers.HeavyBall(lr=(1 - m) * b * ETA0 / H, momentum=m)
            else:
                n = round(1 / (1 - m))
                opt, b = gs.optimizers.EMAMomentum(lr=x * (2 * n - 1) / H, beta=m), 1.0
            ys.append(exact_ratio(opt, b) if b >= 1 else math.nan)
        curves[name] = (xx, np.array(ys))
    return curves


def checks(points, curves):
    """The row's checks from measured points and the exact curves."""
    out = []
    dev = max(float(np.nanmax(np.abs(y - 2 / (2 - x)))) for x, y in curves.values())
    out.append(Check("largest |T_theory/T_small - 2/(2 - x)| over the three rules' exact curves", dev, 0.0,
                     THEORY_TOL))
    for p in points:
        out.append(Check(f"T/T_exact, {p['series']}, x = {p['x']:.3g}", p["ratio"] / p["exact"],
                         p["ratio_se"] / p["exact"], EXACT_TOL, target=1.0, relative=True,
                         no_verdict=burn_in_refusal(p["burn_tau"], MIN_BURN_TAU, "tau")))
    return out


# -- the exact reference laws the report uses ------------------------------------------------------
# mean estimation on a data set of 64 examples with zero-mean residuals: the finite-population law
_FPC_R = np.random.default_rng(7).standard_normal(64)
_FPC_R -= _FPC_R.mean()
_FPC_S = float(np.mean(_FPC_R**2))


def _closed_forms():
    """(law, formula, source, gs.theory functions, text a script using it contains, closed form(lr, mu, batch),
    the same number from gs.theory(lr, mu, batch))."""
    s2 = SIGMA**2

    def th(opt, b):
        return H * gs.theory.stationary_covariance(opt, H, NOISE, b)[0, 0]

    return [
        ("SGD, 1-D quadratic", "T = h Var Phi = lr sigma^2 / (B (2 - lr h))",
         "discrete Lyapunov equation of Phi' = (1 - lr h) Phi - lr xi",
         ("sgd_stationary_variance_1d", "stationary_covariance", "stationary_variance"), "optimizers.SGD(",
         lambda lr, mu, b: lr * s2 / (b * (2 - lr * H)), lambda lr, mu, b: th(gs.optimizers.SGD(lr=lr), b)),
        ("SGD under lr = B eta0", "T = eta0 sigma^2 / (2 - B eta0 h)", "the row above with lr = B eta0",
         ("sgd_stationary_variance_1d", "stationary_covariance"), "optimizers.SGD(",
         lambda lr, mu, b: (lr / b) * s2 / (2 - lr * H), lambda lr, mu, b: th(gs.optimizers.SGD(lr=lr), b)),
        ("heavy ball (PyTorch SGD, no dampening)", "T = lr sigma^2 (1 + mu) / (B (1 - mu) (2 (1 + mu) - lr h))",
         "discrete Lyapunov equation on (Phi, v)", ("stationary_covariance",), "optimizers.HeavyBall(",
         lambda lr, mu, b: lr * s2 * (1 + mu) / (b * (1 - mu) * (2 * (1 + mu) - lr * H)),
         lambda lr, mu, b: th(gs.optimizers.HeavyBall(lr=lr, momentum=mu), b)),
        ("heavy ball under lr = (1 - mu) B eta0", "T = eta0 sigma^2 (1 + mu) / (2 (1 + mu) - (1 - mu) B eta0 h)",
         "the row above with lr = (1 - mu) B eta0", ("stationary_covariance",), "optimizers.HeavyBall(",
         lambda lr, mu, b: (lr / ((1 - mu) * b)) * s2 * (1 + mu) / (2 * (1 + mu) - lr * H),
         lambda lr, mu, b: th(gs.optimizers.HeavyBall(lr=lr, momentum=mu), b)),
        ("EMA momentum, beta = 1 - 1/N", "T = (lr sigma^2 / 2B) / (1 - lr h / (2 (2N - 1)))",
         "discrete Lyapunov equation on (Phi, g~)", ("stationary_covariance",), "optimizers.EMAMomentum(",
         lambda lr, mu, b: lr * s2 / (2 * b) / (1 - lr * H * (1 - mu) / (2 * (1 + mu))),
         lambda lr, mu, b: th(gs.optimizers.EMAMomentum(lr=lr, beta=mu), b)),
        ("small-lr (Langevin) limit", "T_small = lr_eff sigma^2 / (2B): lr_eff = lr (SGD, EMA), lr/(1 - mu) (heavy "
         "ball, Nesterov)", "continuous Lyapunov equation H P + P H = lr_eff C / B",
         ("small_lr_temperature", "small_lr_covariance"), "",
         lambda lr, mu, b: lr / (1 - mu) * s2 / (2 * b),
         lambda lr, mu, b: gs.theory.small_lr_temperature(gs.optimizers.HeavyBall(lr=lr, momentum=mu), NOISE, b)),
        ("the collapse", "T / T_small = 2 / (2 - x), x = lr_eff h (1 - m)/(1 + m) (m = 0, mu, beta)",
         "the three Lyapunov laws above, divided by T_small", ("stationary_covariance",), "2 / (2 - x)",
         lambda lr, mu, b: 2 / (2 - lr / (1 - mu) * H * (1 - mu) / (1 + mu)),
         lambda lr, mu, b: exact_ratio(gs.optimizers.HeavyBall(lr=lr, momentum=mu), b)),
        ("online least squares (multiplicative noise)", "<L> - L* = lr s^2 / (2 (2 - 3 lr)) (inputs N(0, 1), B = 1)",
         "second moment of e' = (1 - lr A) e + lr R, A = x^2, R = x r", ("least_squares_stationary_loss",
                                                                          "online_least_squares_moments"), "",
         lambda lr, mu, b: lr * s2 / (2 * (2 - 3 * lr)),
         lambda lr, mu, b: gs.theory.least_squares_stationary_loss(
             lr, *gs.theory.online_least_squares_moments(1, noise_std=SIGMA))),
        ("finite data set, batches without replacement", "T = f lr S / (B (2 - lr h)), f = (n - B)/(n - 1)",
         "covariance of two distinct draws, -var/(n - 1); mean estimation over n = 64 examples",
         ("least_squares_moments",), "replace",
         lambda lr, mu, b: _FPC_S * (64 - b) / (63 * b) * lr / (2 - lr),
         lambda lr, mu, b: 2 * gs.theory.least_squares_stationary_loss(
             lr, *gs.theory.least_squares_moments(np.ones(64), _FPC_R, b, replace=False))),
        ("relaxation time",
         "tau = -1 / log rho(A), rho the spectral radius of the recursion (SGD: rho = |1 - lr h|; covariance: tau/2)",
         "the linear state-space recursion z' = A z + G xi", ("relaxation_time",), "",
         lambda lr, mu, b: -1 / math.log(abs(1 - lr * H)), lambda lr, mu, b: gs.theory.relaxation_time(
             gs.optimizers.SGD(lr=lr), [[H]])),
    ]


def _users(functions, token):
    """Validation scripts that call one of gs.theory.<functions> and contain ``token`` (if given):
    found by reading the scripts' text when this one runs."""
    here = Path(__file__).resolve().parent
    found = []
    for path in sorted(here.glob("*.py")):
        text = path.read_text()
        if any(f"theory.{f}" in text for f in functions) and (not token or token in text):
            found.append(path.stem)
    return found


_AGREE = "closed form vs gs.theory (largest relative difference)"


def reference_laws():
    """The table of exact reference laws: each formula checked against gs.theory at a few settings
    (largest relative difference), and the scripts that use it."""
    settings = [(0.01, 0.0, 1), (0.3, 0.5, 4), (1.2, 0.9, 16), (0.05, 0.99, 2)]
    rows = []
    for law, formula, source, functions, token, closed, theory in _closed_forms():
        use = [(lr, 0.0 if "SGD" in token or law == "relaxation time" else mu, b) for lr, mu, b in settings]
        use = [s for s in use if math.isfinite(theory(*s))]  # settings with a stationary law
        diff = max(abs(closed(*s) / theory(*s) - 1) for s in use)
        users = _users(functions, token) or ["(none found)"]
        rows.append({"law": law, "formula": formula, "source": f"{source}; gs.theory.{functions[0]}",
                     "closed form vs gs.theory (largest relative difference)": diff, "used by": ", ".join(users)})
    rows.append({"law": "Kramers escape time (stated, not checked)",
                 "formula": "2 pi / sqrt(L''(min) |L''(saddle)|) exp(Delta L / T)",
                 "source": "Kramers 1940, overdamped Langevin limit", "closed form vs gs.theory (largest relative "
                 "difference)": math.nan, "used by": "same_schedule"})
    return rows


def _markdown(rows):
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.1e}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def figure(points, curves, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "legend.fontsize": 11,
                         "xtick.labelsize": 11, "ytick.labelsize": 11})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.4))
    markers = ["o", "s", "D", "^", "v"]
    xx = np.geomspace(min(size["xs"]) / 1.5, min(max(size["xs"]) * 1.15, 1.9), 200)
    ax.plot(xx, 2 / (2 - xx), color="k", lw=3.0, alpha=0.25)
    handles = [Line2D([], [], color="k", lw=3.0, alpha=0.25, label="2 / (2 - x)")]
    for k, (name, (cx, cy)) in enumerate(curves.items()):
        c = f"C{k}"
        ax.plot(cx, cy, color=c, lw=1.0)
        for p in (p for p in points if p["series"] == name):
            face = c if _equilibrated(p) else "white"
            ax.errorbar(p["x"], p["ratio"], yerr=2 * p["ratio_se"], fmt=markers[k], ms=6, capsize=3, color=c, mfc=face)
            ax2.errorbar(p["x"] * 1.08 ** (k - 2), p["ratio"] / p["exact"] - 1, yerr=2 * p["ratio_se"] / p["exact"],
                         fmt=markers[k], ms=6, capsize=3, color=c, mfc=face)
        handles.append(Line2D([], [], color=c, marker=markers[k], lw=1.0, label=f"{name} (line: gs.theory)"))
    handles += [Line2D([], [], color="k", marker="o", ls="", label="measured, 2 s.e."),
                Line2D([], [], color="k", marker="o", mfc="white", ls="",
                       label=f"left out: burn-in < {MIN_BURN_TAU:g} relaxation times")]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([1.0, 1.1, 1.25, 1.5, 2, 3, 5, 10]))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("x = lr$_{eff}$ h (1 - m) / (1 + m)  (dimensionless)")
    ax.set_ylabel("T / T$_{small}$,  T$_{small}$ = lr$_{eff}\\sigma^2$/2B")
    ax.set_title("three rules, one exact curve")
    ax2.axhspan(-EXACT_TOL, EXACT_TOL, color="0.88", zorder=-1)
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("x (dimensionless; series offset sideways to be legible)")
    ax2.set_ylabel("T / T$_{exact}$ - 1")
    ax2.set_title(f"residual from the exact law (band: ±{EXACT_TOL:.0%} tolerance)")
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    points = run_points(plan(size), size["n_chains"], args.seed)
    curves = theory_curves(size["xs"])
    cs = checks(points, curves)
    outcome, deciding = combine(cs)
    laws = reference_laws()
    burns = [p["burn_tau"] for p in points]
    worst = max((p for p in points if _equilibrated(p)), key=lambda p: abs(p["ratio"] / p["exact"] - 1), default=None)
    head = "" if worst is None else (
        f"Largest residual from the exact law: "
        f"{fmt(worst['ratio'] / worst['exact'] - 1, worst['ratio_se'] / worst['exact'])} "
        f"({worst['series']}, x = {worst['x']:.3g}).")
    row = Row(
        name="collapse",
        claim="The lecture's three rules (lr = B eta0; heavy ball lr = (1 - mu) B eta0; EMA momentum) keep T at its "
              "small-lr value only as the step goes to 0; their finite-step temperatures collapse on one exact curve "
              "T/T_small = 2/(2 - x), x = lr_eff h (1 - m)/(1 + m)",
        setup=f"quadratic h = {H}, Gaussian noise sigma = {SIGMA}; eta0 h = {ETA0}; series: {', '.join(_series())}; "
              f"x = {size['xs']} (B rounded to an integer, x recomputed); {size['n_chains']:,} chains per point from "
              f"the minimum; burn-in {min(burns):.1f} to {max(burns):.1f} relaxation times of the slowest mode (no "
              f"verdict below {MIN_BURN_TAU:g}), then at least {size['window_tau']:g} sampled; tolerances: exact "
              f"±{EXACT_TOL:.0%}, theory {THEORY_TOL:g}",
        result="; ".join(f"{p['series']}, x = {p['x']:.3g}: T/T_small = {fmt(p['ratio'], p['ratio_se'])} (exact "
                         f"{p['exact']:.4f})" for p in points)
               + f"; exact reference laws: {len(laws)} (details['reference_laws']), the closed forms within "
               f"{max(r[_AGREE] for r in laws if r[_AGREE] == r[_AGREE]):.1e} of gs.theory",
        verdict=f"{outcome}: {deciding}. {head}",
        checks=cs,
        details={"points": points, "reference_laws": laws, "reference_laws_markdown": _markdown(laws)},
    )
    finish(args, row, figure(points, curves, size))


if __name__ == "__main__":
    main()
