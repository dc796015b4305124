"""The Gibbs law at stationarity: exp(-L/T)/Z in the small-lr limit, and where it is not.

The lecture: "under certain (somewhat special) conditions the asymptotic probability
distribution over model parameters is a Gibbs distribution where the energy is the loss",
P(x) = exp(-E(x)/kT)/Z. For SGD with isotropic additive noise that is a *limit*: at small lr the
chains follow the Langevin dynamics d Phi = -grad L dt + sqrt(2T) dW (time t = lr * steps,
T = lr sigma^2 / 2B), whose stationary law is exactly Gibbs; at finite lr the law departs from it
by an amount of order lr h (h a curvature). So the script measures the departure against lr and
checks that it goes to zero linearly:

* the departure is the configurational temperature <|grad L|^2>/<Laplacian L> over the small-lr
  T = lr sigma^2/2B, minus 1 (the most precise of gs.fit_temperature's three estimators; the
  others, their spread and the histogram's total-variation distance are reported beside it);
* on three landscapes -- a tilted double well, a cosine on a torus and the Mueller-Brown
  surface -- at several lr: a weighted line through departure(lr) must extrapolate to 0 at
  lr -> 0, and the departure per unit lr must be the same at the smallest and largest lr;
* in 1-D the *exact* finite-lr stationary law exists (the stationary vector of SGD's Gaussian
  transition kernel, computed on a grid: :func:`gs.theory.finite_lr_law`), and the measured departure must
  equal it at every lr; in any dimension the law is known to first order in lr (the Gibbs law
  times 1 + lr (|grad L|^2/4T - Laplacian L/2): :func:`gs.theory.first_order_slope`), and on Mueller-Brown
  the measured departure must equal that first-order one.

Every run states its burn-in in units of the slowest relaxation time of the Langevin dynamics
(the basin-exchange time on the double well and Mueller-Brown; :func:`gs.theory.langevin_relaxation_time`,
from the spectrum of the Fokker-Planck generator on a grid) and gives no verdict below
``BURN_IN_RELAXATIONS`` of them. Chains start from the small-lr Gibbs law, so the finite-lr
departure is what the burn-in must relax: after 4 relaxation times at most e^-4 = 2% of it is left.

The cases where the law is *not* Gibbs keep checks, each against its exact (or small-lr)
prediction: finite lr h on the double well (lr h = 0.44) and on a quadratic h = (1, 10) (per-
coordinate T_i = lr sigma^2 / (2 - lr h_i), Lyapunov), anisotropic noise covariance (SGD: per-
coordinate T_i = lr C_ii / (2 - lr h)), Adam under it (small lr: T_i = lr sigma_i / 2) and least
squares on a finite data set (state-dependent noise: a skewed law, whose exact skewness follows
from the moments of the random linear recursion e' = (1 - lr a) e - lr b).

    python validation/gibbs_law.py [--quick | --tiny] [--out FOLDER]
"""
import math

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.theory import finite_lr_law, first_order_slope, langevin_relaxation_time
from gibbs_sgd.validation import Check, Row, finish, fmt, options

# -- sizes: chains per run, and the fraction of the stated burn-in and window actually run ------
# (tiny runs a twentieth of both: every verdict is then refused as not equilibrated, by design).
# Full: about 15 minutes on 2 CPU cores (Mueller-Brown's 2.4e5 steps per chain dominate).
SIZES = {"full": dict(n_chains=200_000, mb_chains=50_000, length=1.0, series="full"),
         "quick": dict(n_chains=30_000, mb_chains=8_000, length=1.0, series="quick"),
         "tiny": dict(n_chains=500, mb_chains=200, length=0.05, series="quick")}
# Burn-in and sampling window in units of the slowest relaxation time. Chains start from the
# small-lr Gibbs law, so the burn-in relaxes the O(lr) finite-lr departure: after 4 relaxation
# times at most e^-4 = 2% of it is left. Fewer than 4 and the run gets no verdict.
BURN_IN_RELAXATIONS = 4.0
WINDOW_RELAXATIONS = 2.0
# Tolerances, fixed before the run:
LIMIT_TOL = 0.004   # |departure extrapolated to lr -> 0| <= 0.4% (the smallest lr's departure is 1-2%)
RATE_TOL = 0.25     # departure / lr equal at the smallest and largest lr within 25% (linear in lr)
EXACT_TOL = 0.002   # measured departure within 0.2% (absolute) of the exact finite-lr one
RATIO_TOL = 0.01    # a non-Gibbs signature within 1% of its exact prediction
ADAM_TOL = 0.05     # Adam's per-coordinate T ratio within 5% of its small-lr prediction
SKEW_TOL = 0.05     # least squares' skewness within 5% of its exact value (binning: < 0.1%)

DW = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.3)
DW_T = 1.0 / 3.0
COS = gs.landscapes.Periodic(amplitude=1.0)
COS_T = 0.5
MB_SCALE = 0.01
MB = gs.landscapes.MuellerBrown(scale=MB_SCALE, box=[[-2.8, 1.3], [-0.9, 2.9]])  # holds the law at T = 25 scale
MB_T = 25 * MB_SCALE
ANISO_C = np.diag([1.0, 9.0])
# lr of each series, as lr * h (h the largest curvature at the deepest minimum), and its sampling
# window in relaxation times
# (the cosine relaxes in ~100 steps: its window is longer, at no cost worth counting)
SERIES = {
    "double well": dict(land=DW, t=DW_T, lr_h={"quick": [0.071, 0.0355, 0.0177],
                                                 "full": [0.071, 0.0355, 0.0177, 0.00887]}, thin=10, window=3.0),
    "cosine": dict(land=COS, t=COS_T, lr_h={"quick": [0.16, 0.08, 0.04], "full": [0.16, 0.08, 0.04, 0.02]}, thin=5,
                   window=150.0),
    "Mueller-Brown": dict(land=MB, t=MB_T, lr_h={"quick": [0.08, 0.04], "full": [0.08, 0.04, 0.02]}, thin=10,
                          window=2.0),
}


def _curvatures(land, at) -> np.ndarray:
    """Eigenvalues of the Hessian at a point, by central differences of the analytic gradient."""
    at = np.asarray(at, dtype=np.float64)
    d, eps = at.size, 1e-5
    hess = np.array([(np.atleast_1d(land.grad(at + eps * e)) - np.atleast_1d(land.grad(at - eps * e))) / (2 * eps)
                     for e in np.eye(d)])
    return np.linalg.eigvalsh(0.5 * (hess + hess.T))


def _deepest_minimum(land) -> np.ndarray:
    if isinstance(land, gs.landscapes.DoubleWell):
        a, dd, tau = land.width, land.barrier, land.tilt
        u = np.roots([4 * dd, 0.0, -4 * dd, tau]).real
        x = u * a
        return np.array([x[np.argmin(land.loss(x))]])
    return np.asarray(land.minimum, dtype=np.float64)


# =============================================================================================
# Measured numbers -> checks (pure functions: the tests feed them fabricated numbers)
# =============================================================================================
def weighted_line(x, y, se):
    """Weighted least squares y = a + b x: ((a, b), their covariance)."""
    x, y, se = (np.asarray(v, dtype=np.float64) for v in (x, y, se))
    w = 1.0 / se**2
    design = np.stack([np.ones_like(x), x], 1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    return cov @ (design.T @ (w * y)), cov


def limit_checks(label: str, lr, departure, stderr, equilibrated: bool, burn_in: float, exact=None,
                 exact_name: str = "exact finite-lr departure") -> list:
    """The small-lr limit as Checks: the departure's weighted line through lr extrapolates to 0
    (within ``LIMIT_TOL``), departure / lr is the same at the smallest and largest lr (within
    ``RATE_TOL``), and, with ``exact``, every point equals the exact finite-lr departure (within
    ``EXACT_TOL``). Not equilibrated (``burn_in`` below ``BURN_IN_RELAXATIONS`` relaxation
    times): the same checks with no verdict (unresolved), the reason in their ``no_verdict``."""
    lr, dep, se = (np.asarray(v, dtype=np.float64) for v in (lr, departure, stderr))
    why = "" if equilibrated else f"burn-in {burn_in:.2g} relaxation times < {BURN_IN_RELAXATIONS:g}"
    lr_text = ", ".join(f"{v:.3g}" for v in lr)
    (a, b), cov = weighted_line(lr, dep, se)
    lo, hi = int(np.argmin(lr)), int(np.argmax(lr))
    rate = (dep[lo] / lr[lo]) / (dep[hi] / lr[hi])
    rate_se = abs(rate) * math.hypot(se[lo] / dep[lo], se[hi] / dep[hi])
    checks = [
        Check(f"{label}: departure extrapolated to lr -> 0 (weighted line through lr = {lr_text})",
              a, math.sqrt(cov[0, 0]), LIMIT_TOL, no_verdict=why),
        Check(f"{label}: (departure/lr at lr = {lr[lo]:.3g}) / (departure/lr at lr = {lr[hi]:.3g})",
              rate, rate_se, RATE_TOL, target=1.0, no_verdict=why),
    ]
    if exact is not None:
        diff = dep - np.asarray(exact, dtype=np.float64)
        k = int(np.argmax(np.abs(diff) / np.maximum(se, 1e-300) + np.abs(diff) / EXACT_TOL))
        checks.append(Check(f"{label}: measured - {exact_name}, the largest (at lr = {lr[k]:.3g})",
                            diff[k], se[k], EXACT_TOL, no_verdict=why))
    return checks


def signature_check(quantity: str, value: float, stderr: float, predicted: float, tolerance: float,
                    equilibrated: bool, burn_in: float) -> Check:
    """A non-Gibbs signature against its prediction (relative tolerance); no verdict when not equilibrated."""
    why = "" if equilibrated else f"burn-in {burn_in:.2g} relaxation times < {BURN_IN_RELAXATIONS:g}"
    return Check(quantity, value, stderr, tolerance, target=predicted, relative=True, no_verdict=why)


# =============================================================================================
# Runs
# =============================================================================================
def _run(land, opt, noise, tau_steps, length, n, seed, init, thin=1, window=WINDOW_RELAXATIONS):
    """One simulate call with burn-in BURN_IN_RELAXATIONS and a window of ``window`` relaxation
    times (both times ``length``); returns the run and its burn-in in relaxation times."""
    burn = max(20, int(math.ceil(BURN_IN_RELAXATIONS * tau_steps * length)))
    window = max(20 * thin, int(math.ceil(window * tau_steps * length)))
    run = gs.simulate(land, opt, noise=noise, n_chains=n, n_steps=burn + window, burn_in=burn, thin=thin,
                      init=init, seed=seed, keep_final=False, progress=False, dtype=np.float64)
    return run, burn / tau_steps


def _series(name, spec, size, seed):
    land, t = spec["land"], spec["t"]
    h_max = float(_curvatures(land, _deepest_minimum(land)).max())
    slope = first_order_slope(land, t)
    tau = langevin_relaxation_time(land, t)
    n = size["mb_chains"] if land.dim > 1 else size["n_chains"]
    init = gs.Gibbs(land, t).rvs(n, random_state=seed)  # the small-lr law, the same draw at every lr
    points = []
    for k, lr_h in enumerate(spec["lr_h"][size["series"]]):
        lr = lr_h / h_max
        run, burn = _run(land, gs.optimizers.SGD(lr=lr), gs.noise.Gaussian(math.sqrt(2 * t / lr)), tau / lr,
                         size["length"], n, seed + k, init, spec["thin"], spec["window"])
        fit = gs.fit_temperature(run)
        est = {key: e for key, e in fit.estimators.items() if e is not None}
        conf = est["configurational"]
        exact = finite_lr_law(land, lr, t)["configurational"] / t - 1 if land.dim == 1 else None
        window = (run.config["n_steps"] - run.config["burn_in"]) / (tau / lr)
        points.append(dict(lr=lr, lr_h=lr_h, burn=burn, window=window, run=run, fit=fit, est=est, dep=conf.value / t - 1,
                           se=conf.stderr / t, exact=exact, first_order=slope * lr,
                           dep_mle=est["mle"].value / t - 1, se_mle=est["mle"].stderr / t))
    equilibrated = min(p["burn"] for p in points) >= BURN_IN_RELAXATIONS
    one_d = land.dim == 1
    checks = limit_checks(name, [p["lr"] for p in points], [p["dep"] for p in points], [p["se"] for p in points],
                          equilibrated, min(p["burn"] for p in points),
                          exact=[p["exact"] if one_d else p["first_order"] for p in points],
                          exact_name="exact finite-lr departure" if one_d else "first-order finite-lr departure")
    return dict(name=name, land=land, t=t, h_max=h_max, slope=slope, tau=tau, points=points,
                equilibrated=equilibrated, checks=checks, n=n)


def _lin_reg_data(seed):
    rng = np.random.default_rng(1000 + seed)
    a = rng.normal(size=(200, 1))
    return gs.noise.LinearRegression(a, 0.5 * a[:, 0] + rng.normal(size=200))


def exact_skewness(inputs, targets, center, lr) -> float:
    r"""Stationary skewness of 1-D least-squares SGD (batch 1, with replacement), exactly.

    With :math:`e = w - w^*` the update is :math:`e' = (1 - \eta a)e - \eta b`, :math:`a = x_i^2`,
    :math:`b = x_i(x_i w^* - y_i)` drawn together, :math:`E b = 0`; so :math:`E e = 0`,
    :math:`V = \eta^2 E b^2 / (1 - E(1-\eta a)^2)` and
    :math:`m_3 = (-3\eta E[(1-\eta a)^2 b] V - \eta^3 E b^3) / (1 - E(1-\eta a)^3)`.
    """
    x = np.asarray(inputs, dtype=np.float64).ravel()
    a = x * x
    b = x * (x * center - np.asarray(targets, dtype=np.float64))
    c = 1 - lr * a
    var = lr**2 * np.mean(b * b) / (1 - np.mean(c * c))
    m3 = (-3 * lr * np.mean(c * c * b) * var - lr**3 * np.mean(b**3)) / (1 - np.mean(c**3))
    return float(m3 / var**1.5)


def _skewness(run, coordinate=0):
    """Skewness of a coordinate from the histogram (bin centres), its error from the blocks."""
    edges = run.hist_edges[coordinate]
    mid = 0.5 * (edges[:-1] + edges[1:])
    blocks = run.block_hist[:, coordinate, :].astype(np.float64)
    blocks = blocks[blocks.sum(1) > 0]

    def skew(counts):
        p = counts / counts.sum()
        m = p @ mid
        return (p @ (mid - m) ** 3) / (p @ (mid - m) ** 2) ** 1.5

    whole = skew(blocks.sum(0))
    nb = blocks.shape[0]
    jack = np.array([skew(blocks.sum(0) - blocks[k]) for k in range(nb)])  # jackknife over blocks of chains
    return float(whole), float(math.sqrt((nb - 1) / nb * np.sum((jack - jack.mean()) ** 2)))


def _departures(size, seed):
    """The cases expected NOT to be Gibbs, each with its predicted signature."""
    rng = np.random.default_rng(seed)
    n = size["n_chains"] // 2
    out = []
    # finite lr h on the double well: the exact finite-lr law
    lr = 0.05
    tau = langevin_relaxation_time(DW, DW_T)
    run, burn = _run(DW, gs.optimizers.SGD(lr=lr), gs.noise.Gaussian(math.sqrt(2 * DW_T / lr)), tau / lr,
                     size["length"], n, seed + 100, gs.Gibbs(DW, DW_T).rvs(n, random_state=seed + 100), window=20.0)
    fit = gs.fit_temperature(run)
    conf = fit.estimators["configurational"]
    exact = finite_lr_law(DW, lr, DW_T)["configurational"]
    out.append(dict(name="double well, SGD, lr h = 0.44", short="double well\nlr h = 0.44", run=run, fit=fit,
                    burn=burn, quantity="configurational T", value=conf.value, se=conf.stderr, predicted=exact,
                    gibbs=DW_T, tol=RATIO_TOL, basis="exact finite-lr law (transition kernel)"))
    # finite lr on an anisotropic quadratic: per-coordinate T ratio from the Lyapunov solution
    h, lr = np.array([1.0, 10.0]), 0.1
    opt = gs.optimizers.SGD(lr=lr)
    cov = gs.theory.stationary_covariance(opt, np.diag(h), gs.noise.Gaussian(1.0))
    sd = np.sqrt(np.diag(cov))
    per = np.diag(np.diag(h) @ cov)
    out.append(_quadratic_case("quadratic h = (1, 10), SGD, lr h = (0.1, 1)", "quadratic\nlr h = (0.1, 1)",
                               gs.landscapes.Quadratic(h, box=np.stack([-6 * sd, 6 * sd], 1)), opt,
                               gs.noise.Gaussian(1.0), gs.theory.relaxation_time(opt, np.diag(h)), sd, per[1] / per[0],
                               RATIO_TOL, "Lyapunov (exact)", size, n, rng, seed + 101))
    # anisotropic noise covariance
    lr = 0.01
    noise = gs.noise.Gaussian(covariance=ANISO_C)
    opt = gs.optimizers.SGD(lr=lr)
    cov = gs.theory.stationary_covariance(opt, np.eye(2), noise)
    sd = np.sqrt(np.diag(cov))
    out.append(_quadratic_case("quadratic h = (1, 1), noise C = diag(1, 9), SGD", "anisotropic\nnoise, SGD",
                               gs.landscapes.Quadratic([1.0, 1.0], box=[[-6 * sd.max(), 6 * sd.max()]] * 2), opt,
                               noise, gs.theory.relaxation_time(opt, np.eye(2)), sd, cov[1, 1] / cov[0, 0], RATIO_TOL,
                               "Lyapunov (exact)", size, n, rng, seed + 102))
    # Adam under the same noise: small lr, T_i = lr sigma_i / 2
    opt = gs.optimizers.Adam(lr=lr)
    sd = np.sqrt(lr * np.sqrt(np.diag(ANISO_C)) / 2)
    # slowest: the gradient-square EMA (1/(1 - beta2) steps) or the slow coordinate (sigma / (lr h) steps)
    tau_adam = max(1.0 / (1 - opt.betas[1]), float(np.sqrt(ANISO_C.max())) / lr)
    out.append(_quadratic_case("same, Adam (lr = 0.01)", "anisotropic\nnoise, Adam",
                               gs.landscapes.Quadratic([1.0, 1.0], box=[[-6 * sd.max(), 6 * sd.max()]] * 2), opt,
                               noise, tau_adam, sd, float(np.sqrt(ANISO_C[1, 1] / ANISO_C[0, 0])), ADAM_TOL,
                               "small-lr (sigma_2/sigma_1)", size, n, rng, seed + 103))
    # least squares on a finite data set: state-dependent noise, a skewed law
    lin = _lin_reg_data(seed)
    h = float(lin.landscape.hessian[0, 0])
    c = float(lin.landscape.center[0])
    s0 = float(np.mean((lin.inputs[:, 0] * c - lin.targets) ** 2 * lin.inputs[:, 0] ** 2))
    lr = 0.05 / h
    sd4 = math.sqrt(lr * s0 / (2 * h))
    land = gs.landscapes.Quadratic(lin.landscape.hessian, center=c, offset=lin.landscape.offset,
                                   box=[[c - 7 * sd4, c + 7 * sd4]])
    run, burn = _run(land, gs.optimizers.SGD(lr=lr), lin, 1.0 / (lr * h), size["length"], n, seed + 104,
                     c + rng.normal(0, sd4, (n, 1)), window=200.0)
    skew, skew_se = _skewness(run)
    out.append(dict(name="least squares, 200 examples, SGD, lr h = 0.05", short="least\nsquares", run=run,
                    fit=gs.fit_temperature(run), burn=burn, quantity="skewness of w", value=skew, se=skew_se,
                    predicted=exact_skewness(lin.inputs, lin.targets, c, lr), gibbs=0.0, tol=SKEW_TOL,
                    basis="exact moment recursion"))
    for case in out:
        case["check"] = signature_check(f"{case['name']}: {case['quantity']} against the {case['basis']}",
                                        case["value"], case["se"], case["predicted"], case["tol"],
                                        case["burn"] >= BURN_IN_RELAXATIONS, case["burn"])
    return out


def _quadratic_case(name, short, land, opt, noise, tau, sd, predicted, tol, basis, size, n, rng, seed):
    # a window of 200 relaxation times (Adam's: 2, its tau is the 1000-step EMA) for percent errors
    run, burn = _run(land, opt, noise, tau, size["length"], n, seed, rng.normal(0, sd, (n, 2)),
                     window=200.0 if tau < 100 else 2.0)
    fit = gs.fit_temperature(run)
    per, per_se = fit.per_coordinate, fit.per_coordinate_stderr
    ratio = per[1] / per[0]
    return dict(name=name, short=short, run=run, fit=fit, burn=burn, quantity="per-coordinate T_2 / T_1",
                value=float(ratio), se=float(ratio * math.hypot(per_se[0] / per[0], per_se[1] / per[1])),
                predicted=float(predicted), gibbs=1.0, tol=tol, basis=basis)


# =============================================================================================
# Figure
# =============================================================================================
def _figure(series, broken):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})
    fig, axes = plt.subplots(1, 3, figsize=(21, 8.4), gridspec_kw={"width_ratios": [1.3, 1, 1.1]})
    ax = axes[0]
    for k, s in enumerate(series):
        color = f"C{k}"
        x = np.array([p["lr_h"] for p in s["points"]])
        y = np.array([p["dep"] for p in s["points"]]) * 100
        e = 2 * np.array([p["se"] for p in s["points"]]) * 100
        face = color if s["equilibrated"] else "white"
        ax.errorbar(x, y, yerr=e, fmt="o", ms=8, mfc=face, mec=color, ecolor=color, capsize=3,
                    label=f"{s['name']}, measured" + ("" if s["equilibrated"] else " (hollow: burn-in too short)"))
        (a, b), _ = weighted_line(x, y, e)
        ax.plot([0, x.max()], [a, a + b * x.max()], ":", color=color, lw=2.0,
                label=f"{s['name']}, weighted line to lr -> 0")
        xx = np.linspace(0, x.max() * 1.1, 12)
        if s["points"][0]["exact"] is not None:
            ex = [finite_lr_law(s["land"], v / s["h_max"], s["t"])["configurational"] / s["t"] - 1 for v in xx[1:]]
            ax.plot(xx, np.concatenate([[0.0], ex]) * 100, "-", color=color, lw=1.5,
                    label=f"{s['name']}, exact finite-lr law")
        else:
            ax.plot(xx, 100 * s["slope"] * xx / s["h_max"], "--", color=color, lw=1.5,
                    label=f"{s['name']}, first-order finite-lr law")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xlim(0, None)
    ax.set_xlabel("lr x h_max (h_max: largest curvature at the deepest minimum)")
    ax.set_ylabel("configurational T / (lr sigma^2 / 2) - 1  [%]  (95% CI)")
    ax.set_title("Departure from Gibbs goes to 0 linearly in lr")
    # legends sit below the axes: they never cover data
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=10.5, ncol=2)

    # the double well's stationary histogram at lr h = 0.44 against Gibbs at the small-lr T
    ax = axes[1]
    case = broken[0]
    run = case["run"]
    edges = run.hist_edges[0]
    mid = 0.5 * (edges[:-1] + edges[1:])
    dens = run.hist[0] / (run.hist[0].sum() * np.diff(edges))
    ax.step(mid, dens, where="mid", color="C3", lw=1.6, label="measured, lr h = 0.44")
    xx = np.linspace(edges[0], edges[-1], 400)
    ax.plot(xx, gs.Gibbs(DW, DW_T).pdf(xx), "k--", lw=1.2, label=f"Gibbs at small-lr T = {DW_T:.3g}")
    ax.plot(xx, gs.Gibbs(DW, case["fit"].temperature).pdf(xx), ":", color="0.3", lw=1.4,
            label=f"best Gibbs fit, T = {case['fit'].temperature:.3g}")
    ax.set_xlabel("Phi (double well, barrier 1, tilt 0.3)")
    ax.set_ylabel("density")
    ax.set_title(f"Finite lr (lr h = 0.44): not Gibbs, TV = {case['fit'].total_variation:.3f}")
    ax.set_ylim(0, max(dens.max(), gs.Gibbs(DW, DW_T).pdf(xx).max()) * 1.05)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=10.5)

    # every non-Gibbs signature over its prediction; Gibbs's value for comparison
    ax = axes[2]
    for k, case in enumerate(broken):
        eq = case["burn"] >= BURN_IN_RELAXATIONS
        ax.errorbar(k, case["value"] / case["predicted"], yerr=2 * case["se"] / abs(case["predicted"]), fmt="o",
                    ms=9, color="C0", mfc="C0" if eq else "white", capsize=3,
                    label="measured / predicted (95% CI)" if k == 0 else None)
        ax.plot(k, case["gibbs"] / case["predicted"], "s", ms=9, mfc="none", mec="C3",
                label="Gibbs law's value / predicted" if k == 0 else None)
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(broken)))
    ax.set_xticklabels([c["short"] for c in broken], fontsize=10.5, rotation=30, ha="right")
    ax.set_xlim(-0.5, len(broken) - 0.5)
    ax.set_ylim(-0.1, 1.5)
    ax.set_ylabel("non-Gibbs signature / its prediction")
    ax.set_title("Expected not Gibbs: the predicted departure")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=10.5)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    series = [_series(name, spec, size, args.seed + 10 * k) for k, (name, spec) in enumerate(SERIES.items())]
    broken = _departures(size, args.seed)
    checks = [c for s in series for c in s["checks"]] + [c["check"] for c in broken]
    fig = _figure(series, broken)

    parts = []
    for s in series:
        cells = []
        for p in s["points"]:
            e = p["est"]
            cells.append(f"lr h {p['lr_h']:.3g} (lr {p['lr']:.3g}, burn-in {p['burn']:.2g} and window "
                         f"{p['window']:.2g} relaxation times): "
                         f"departure {100 * p['dep']:+.3f}% ± {100 * p['se']:.3f}%"
                         + (f" (exact {100 * p['exact']:+.3f}%)" if p["exact"] is not None
                            else f" (first order {100 * p['first_order']:+.3f}%)")
                         + "; T " + ", ".join(f"{k} {fmt(v.value, v.stderr)}" for k, v in e.items())
                         + f", spread {p['fit'].departure:.2%}, TV {p['fit'].total_variation:.4f}, "
                         f"Gibbs test: {p['fit'].status}")
        parts.append(f"{s['name']} (small-lr T = {s['t']:.4g}, h_max = {s['h_max']:.4g}, first-order departure "
                     f"{s['slope']:.4g} x lr, relaxation time "
                     f"{s['tau']:.3g} time units, {s['n']:,} chains): " + "; ".join(cells))
    for c in broken:
        parts.append(f"{c['name']} (burn-in {c['burn']:.2g} relaxation times): {c['quantity']} "
                     f"{fmt(c['value'], c['se'])}, predicted {c['predicted']:.5g} ({c['basis']}), Gibbs "
                     f"{c['gibbs']:.4g}; Gibbs test: {c['fit'].status}, TV {c['fit'].total_variation:.4f}")
    row = Row(
        name="gibbs_law",
        claim="\"Under certain (somewhat special) conditions the asymptotic probability distribution over model "
              "parameters is a Gibbs distribution where the energy is the loss\", P(x) = exp(-E(x)/kT)/Z: for SGD "
              "with isotropic additive noise, in the small-lr limit",
        setup=f"SGD with Gaussian noise, chains from the small-lr Gibbs law; burn-in {BURN_IN_RELAXATIONS:g} slowest "
              f"relaxation times of the Langevin dynamics (Fokker-Planck spectrum; verdicts refused below "
              f"{BURN_IN_RELAXATIONS:g}), window 2 (Mueller-Brown, Adam), 3 (double well), 20 (double well lr h = 0.44), "
              f"150 (cosine) or 200 (quadratics) of them, both x {size['length']:g}; tilted double well (barrier "
              f"1, tilt 0.3, T = 1/3), cosine A = 1 (T = 1/2), Mueller-Brown x {MB_SCALE} (T = 0.25) at several lr; "
              f"departure = configurational T / (lr sigma^2/2) - 1 against the exact finite-lr law (1-D: stationary "
              f"vector of the transition kernel) or to first order in lr (Gibbs averages); expected not Gibbs: double well lr h = 0.44, "
              f"quadratics with finite lr h or anisotropic noise (SGD, Adam), least squares on 200 examples",
        result="; ".join(parts),
        checks=checks,
        details={"series": {s["name"]: {"relaxation_time": s["tau"], "h_max": s["h_max"], "equilibrated": s["equilibrated"],
                                        "points": [{k: p[k] for k in ("lr", "lr_h", "burn", "window", "dep", "se", "exact",
                                                                      "first_order", "dep_mle", "se_mle")}
                                                   | {"status": p["fit"].status, "spread": p["fit"].departure,
                                                      "total_variation": p["fit"].total_variation}
                                                   for p in s["points"]]} for s in series},
                 "not_gibbs": {c["name"]: {k: c[k] for k in ("quantity", "value", "se", "predicted", "gibbs", "burn",
                                                             "basis")} | {"status": c["fit"].status}
                               for c in broken}},
    )
    finish(args, row, fig)
    return row


if __name__ == "__main__":
    main()
