"""Same temperature schedule, same behaviour: the lecture's main practical claim, on a landscape with two minima.

The lecture ("Temperature"): "Two setting of hyper-parameters (such as the learning rate eta and
batch size B) will behave similarly if they have the same **temperature schedule** (as opposed
to learning rate schedule)."

Which time axis. The temperature of the small-lr limit is T = lr_eff sigma^2 / (2B) (lr_eff = lr
for SGD, lr / (1 - mu) for heavy ball), and in that limit every setting follows the same Langevin
dynamics dPhi = -grad L dt + sqrt(2T) dW in the time t = sum over steps of lr_eff -- "steps x lr"
of the small-lr limit (at a fixed eta0 it is eta0 times the number of examples processed,
steps x B). So the claim implies: two settings with the same T(t) have the same mean loss and the
same basin occupation at the same t, not at the same step.

Measured on the tilted double well L = D((Phi/a)^2 - 1)^2 + tau Phi/a with Gaussian gradient noise,
every chain starting in the upper (right) well. The temperature schedule: T(t) = T0 up to t1, then
halving every t_half until t_end. Settings:
  A: SGD, B = 1, lr(t) = 2 T(t) / sigma^2;
  B: heavy ball mu = 0.9, B = 4, lr(t) = (1 - mu) 2 B T(t) / sigma^2 -- the same T(t), 4 x fewer steps;
  C (negative control): SGD, B = 4, at A's learning-rate schedule step for step -- the same
     learning-rate schedule and the same t, a temperature schedule 4 x colder;
  D (reported, not checked): heavy ball mu = 0.99, B = 4, the same T(t). The small-lr argument
     also needs the momentum's memory, 1/(1 - mu) steps = lr_eff / (1 - mu) in t, short against
     the landscape's fastest time (1/|L''| at the barrier): here it is 0.25 / 0.25 = 1, so D's
     inertia changes the barrier crossing (Kramers-Grote-Hynes) though its stationary law is the same.

Checks, tolerances fixed below before the run:
* B against A: the mean loss above the global minimum averaged over each time window
  (N_WINDOWS windows of equal t), <L>_B / <L>_A - 1 within SAME_TOL;
* B against A: the fraction of chains in the upper well at t_end, difference within OCC_TOL;
* negative control: C's largest window departure |<L>_C / <L>_A - 1| must exceed SAME_TOL by more
  than its 2 s.e. (the check is written as "lies in [SAME_TOL, 2 - SAME_TOL]");
Burn-in does not apply: the claim is about the whole transient from a common start; the row states
the relaxation times (within a well, and the Kramers escape time at T0) against the run length.

    python validation/same_schedule.py [--quick | --tiny] [--out FOLDER]
"""
import math
from dataclasses import dataclass, field

import numpy as np

import gibbs_sgd as gs
from gibbs_sgd.validation import Check, Row, combine, finish, fmt, options, ratio

BARRIER, WIDTH, TILT = 1.0, 1.0, 0.25
H_WELL = 8.0 * BARRIER / WIDTH**2  # curvature at the minima (exactly, without tilt)
T0 = 0.3 * BARRIER                 # hot enough to cross the barrier within t1, cold enough to have wells
T1, T_HALF, N_HALVINGS = 10.0, 2.0, 3
T_END = T1 + N_HALVINGS * T_HALF
LR0_H = 0.005                      # lr h of setting A at T0: its finite-lr correction to T is ~ lr h / 2 = 0.25%
SIGMA = math.sqrt(2 * T0 / (LR0_H / H_WELL))  # T0 = lr0 sigma^2 / 2 at B = 1
MU_B, BATCH_B, BATCH_C = 0.5, 4, 4
MU_D = 0.99  # setting D: heavy momentum whose memory is not short against the barrier's time scale
# Tolerances, fixed before the run.
SAME_TOL = 0.05   # mean excess loss per time window within 5%
OCC_TOL = 0.03    # upper-well occupation at t_end within 0.03 (absolute)
N_WINDOWS = 8
SIZES = {"full": dict(n_chains=1_000_000), "quick": dict(n_chains=20_000), "tiny": dict(n_chains=1_500)}
LAND = gs.landscapes.DoubleWell(barrier=BARRIER, width=WIDTH, tilt=TILT)


def temperature(t):
    """The temperature schedule T(t) against Langevin time t."""
    t = np.asarray(t, float)
    return T0 * np.where(t < T1, 1.0, 0.5 ** np.minimum((t - T1) / T_HALF, N_HALVINGS))


@dataclass(frozen=True)
class OnLangevinTime(gs.schedules.Schedule):
    """Learning-rate factor f(step) = T(t_step) / T0, with t advancing by ``dt0 * f`` per step
    (``dt0`` the setting's lr_eff at factor 1), so that T is the same function of t for every ``dt0``."""

    dt0: float
    n_steps: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "n_steps", len(self._walk()[0]))

    def _walk(self):
        f, ts, t = [], [], 0.0
        while t < T_END:
            ts.append(t)
            f.append(float(temperature(t)) / T0)
            t += self.dt0 * f[-1]
        return np.array(f), np.array(ts)

    def times(self) -> np.ndarray:
        """Langevin time t at the start of each step."""
        return self._walk()[1]

    def factors(self, n_steps: int) -> np.ndarray:
        f = self._walk()[0]
        return np.concatenate([f, np.full(max(0, n_steps - f.size), f[-1])])[:n_steps]


def _roots():
    u = np.roots([4.0, 0.0, -4.0, TILT / BARRIER])
    return np.sort(u[np.abs(u.imag) < 1e-12].real) * WIDTH  # left minimum, saddle, right minimum


def _loss(x):
    u = np.asarray(x) / WIDTH
    return BARRIER * (u * u - 1) ** 2 + TILT * u


def settings():
    """name -> (optimizer, batch size, schedule, role)."""
    lr_a = LR0_H / H_WELL
    lr_eff_b = BATCH_B * lr_a  # same T0 = lr_eff sigma^2 / 2B
    return {
        "A": (gs.optimizers.SGD(lr=lr_a), 1, OnLangevinTime(lr_a), f"SGD, B = 1, lr0 = {lr_a:.4g}"),
        "B": (gs.optimizers.HeavyBall(lr=(1 - MU_B) * lr_eff_b, momentum=MU_B), BATCH_B, OnLangevinTime(lr_eff_b),
              f"heavy ball mu = {MU_B:g}, B = {BATCH_B}, lr0 = (1 - mu) B x {lr_a:.4g} = {(1 - MU_B) * lr_eff_b:.4g}"),
        "C": (gs.optimizers.SGD(lr=lr_a), BATCH_C, OnLangevinTime(lr_a),
              f"negative control: SGD, B = {BATCH_C}, A's lr schedule (T {BATCH_C} x colder)"),
        "D": (gs.optimizers.HeavyBall(lr=(1 - MU_D) * lr_eff_b, momentum=MU_D), BATCH_B, OnLangevinTime(lr_eff_b),
              f"heavy ball mu = {MU_D:g}, B = {BATCH_B}, the same T(t): memory 1/(1-mu) steps = "
              f"{lr_eff_b / (1 - MU_D):.2g} in t (reported, not checked)"),
    }


def run_all(n_chains, seed):
    """Simulate every setting; per setting: time of each trace point, mean excess loss trace,
    window averages (value, s.e.) and the final upper-well occupation (value, s.e.)."""
    saddle = _roots()[1]
    right = _roots()[2]
    l_min = float(_loss(_roots()[0]))
    edges = np.linspace(0.0, T_END, N_WINDOWS + 1)
    out = {}
    for k, (name, (opt, batch, sched, label)) in enumerate(settings().items()):
        run = gs.simulate(LAND, opt, noise=gs.noise.Gaussian(SIGMA), batch_size=batch, n_chains=n_chains,
                          n_steps=sched.n_steps, burn_in=0, schedule=sched, init=[right], keep_final=True,
                          trace_points=400, seed=seed + k, progress=False, dtype=np.float64)
        times = sched.times()
        steps, mean, se = run.mean_loss_trace()
        t_of = lambda s: np.interp(s, np.arange(times.size), times)  # noqa: E731
        windows = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            s_lo, s_hi = np.searchsorted(times, lo), np.searchsorted(times, hi)
            e = run.trace_window(int(s_lo), int(s_hi))
            windows.append((e.value - l_min, e.stderr))
        occ = float(np.mean(run.final[:, 0] > saddle))
        out[name] = {"label": label, "batch_size": batch, "n_steps": sched.n_steps, "lr0": opt.lr,
                     "t": t_of(steps).tolist(), "steps": steps.tolist(), "excess": (mean - l_min).tolist(),
                     "excess_se": se.tolist(), "windows": windows,
                     "occupation": (occ, math.sqrt(max(occ * (1 - occ), 1.0 / n_chains) / n_chains)),
                     "n_diverged": run.n_diverged}
    return out, edges


def _ratio(a, b):
    """a / b - 1 for (value, s.e.) pairs of independent runs, with its s.e."""
    r, se = ratio(a[0], a[1], b[0], b[1])
    return r - 1.0, se


def checks(res, edges):
    """The row's checks from the measured windows and occupations (see :func:`run_all`)."""
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        d, s = _ratio(res["B"]["windows"][i], res["A"]["windows"][i])
        out.append(Check(f"<L - L_min>_B / <L - L_min>_A - 1 over t in [{lo:g}, {hi:g})", d, s, SAME_TOL))
    (pa, sa), (pb, sb) = res["A"]["occupation"], res["B"]["occupation"]
    out.append(Check(f"upper-well occupation at t = {T_END:g}: B - A", pb - pa, math.hypot(sa, sb), OCC_TOL))
    ctrl = [_ratio(res["C"]["windows"][i], res["A"]["windows"][i]) for i in range(len(edges) - 1)]
    d, s = max(ctrl, key=lambda c: abs(c[0]) - 2 * c[1])
    out.append(Check(f"negative control: largest window |<L - L_min>_C / <L - L_min>_A - 1|, which must exceed "
                     f"{SAME_TOL:.0%}", abs(d), s, SAME_TOL, expect="beyond"))
    return out


def reported(res, edges):
    """Setting D's departure from A, in numbers (not a check)."""
    dd = [_ratio(res["D"]["windows"][i], res["A"]["windows"][i]) for i in range(len(edges) - 1)]
    i = max(range(len(dd)), key=lambda i: abs(dd[i][0]))
    (pa, sa), (pd, sd) = res["A"]["occupation"], res["D"]["occupation"]
    return (f"Where it stops: D ({res['D']['label']}) departs from A by up to {fmt(*dd[i])} in the window "
            f"t in [{edges[i]:g}, {edges[i + 1]:g}), occupation D - A = {fmt(pd - pa, math.hypot(sa, sd))}")


def figure(res, edges):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "legend.fontsize": 11,
                         "xtick.labelsize": 11, "ytick.labelsize": 11})
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 5.2))
    styles = {"A": dict(color="C0", lw=2.2), "B": dict(color="C1", lw=1.4, ls="--"), "C": dict(color="C3", lw=1.4),
              "D": dict(color="C2", lw=1.4, ls="-.")}
    for name, r in res.items():
        ex, se = np.array(r["excess"]), np.array(r["excess_se"])
        ax0.plot(r["steps"], ex, label=f"{name}: {r['label']}; upper-well occupation at t = {T_END:g}: "
                                       f"{fmt(*r['occupation'])}", **styles[name])
        ax1.plot(r["t"], ex, **styles[name])
        ax1.fill_between(r["t"], ex - 2 * se, ex + 2 * se, color=styles[name]["color"], alpha=0.25, lw=0)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            v, s = r["windows"][i]
            ax1.errorbar(0.5 * (lo + hi), v, yerr=2 * s, fmt="o", ms=5, color=styles[name]["color"], capsize=3)
    tt = np.linspace(0, T_END, 400)
    ax1b = ax1.twinx()
    ax1b.plot(tt, temperature(tt), color="0.5", lw=1.0, ls=":")
    ax1b.set_ylabel("temperature schedule T(t) (dotted, loss units)", color="0.35")
    ax1b.set_ylim(0, T0 * 1.15)
    for a in (ax0, ax1):
        a.set_ylabel("mean loss above the minimum, $\\langle L\\rangle - L_{min}$")
    ax0.set_xscale("log")
    ax0.set_xlabel("optimizer steps")
    ax0.set_title("against optimizer steps")
    ax1.set_xlabel("Langevin time t = sum over steps of lr$_{eff}$ (units of lr: $\\Phi^2$/loss)")
    ax1.set_title("against t (points: window means, 2 s.e.)")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = options(__doc__, argv)
    size = SIZES[args.mode]
    res, edges = run_all(size["n_chains"], args.seed)
    cs = checks(res, edges)
    outcome, deciding = combine(cs)
    if outcome == "holds":  # all hold: lead with the claim's own worst check, not the control's
        deciding = combine([c for c in cs if not c.quantity.startswith("negative control")])[1]
    escape = 2 * math.pi / math.sqrt(H_WELL * 4 * BARRIER / WIDTH**2) * math.exp((_loss(0.0) - _loss(_roots()[2])) / T0)
    parts = [f"{n}: " + ", ".join(f"t in [{lo:g}, {hi:g}): {fmt(*w)}" for (lo, hi), w in
                                  zip(zip(edges[:-1], edges[1:]), r["windows"]))
             + f"; upper-well occupation at t = {T_END:g}: {fmt(*r['occupation'])}; {r['n_steps']} steps, "
             f"{r['n_diverged']} diverged" for n, r in res.items()]
    row = Row(
        name="same_schedule",
        claim="\"Two setting of hyper-parameters (such as the learning rate eta and batch size B) will behave "
              "similarly if they have the same temperature schedule (as opposed to learning rate schedule)\"",
        setup=f"tilted double well (barrier {BARRIER:g}, minima at ±{WIDTH:g}, tilt {TILT:g}), Gaussian noise sigma = "
              f"{SIGMA:.4g}, {size['n_chains']:,} chains per setting from the upper minimum; T(t) = {T0:g} up to t = "
              f"{T1:g}, then halving every {T_HALF:g} to t = {T_END:g}, t = sum of lr_eff (the time axis the small-lr "
              f"limit implies); " + "; ".join(f"{n}: {r['label']}" for n, r in res.items())
              + f". Burn-in: none, the claim is about the transient from a common start; relaxation times at T0: "
              f"within a well 1/h = {1 / H_WELL:.3g}, Kramers escape from the upper well ~{escape:.3g} (run: "
              f"{T_END / escape:.2g} escape times). Tolerances: window means ±{SAME_TOL:.0%}, "
              f"occupation ±{OCC_TOL:g}",
        result="mean loss above the minimum per time window: " + " | ".join(parts),
        verdict=f"{outcome}: {deciding}. {reported(res, edges)}",
        checks=cs,
        details={"settings": {n: {k: v for k, v in r.items() if k not in ("t", "steps", "excess", "excess_se")}
                              for n, r in res.items()}, "window_edges": edges.tolist()},
    )
    row.deciding = deciding  # the report's leading number (Row computed the control's)
    finish(args, row, figure(res, edges))


if __name__ == "__main__":
    main()
