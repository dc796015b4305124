"""The ``gibbs-sgd`` command line: ``demo`` (the quick-start figure), ``bench`` (CPU or GPU speed)
and ``validate`` (the lecture's claims).

::

    gibbs-sgd demo  [--chains 1000000] [--steps 16000] [--seed 0] [--out figures/quickstart.png]
    gibbs-sgd bench [--backend cpu|cuda] [--chains N] [--steps N] [--repeat 3] [--isa native avx2] [--json PATH]
                    [--figure PATH]
                    [--cases ...]
    gibbs-sgd validate [--quick | --tiny] [--out FOLDER] [--only NAME ...]
    gibbs-sgd --version
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["main", "run_demo", "DEMO"]

# -----------------------------------------------------------------------------------------
# The demo's physics (see run_demo's docstring for why these numbers)
# -----------------------------------------------------------------------------------------
DEMO = {
    "barrier": 1.0,  # Delta: the barrier height at 0 (the wells' curvature is h = 8 Delta / a^2 = 8)
    "width": 1.0,  # a: the minima sit near +-a
    "tilt": 0.25,  # raises the right well by ~0.5, so at T = 0.5 it holds ~30% of the chains
    "lr": 0.0025,  # lr * h = 0.02 at the minima
    "sigma": 40.0,  # per-example gradient noise
    "batch_size": 4,  # T = lr sigma^2 / (2B) = 0.0025 * 1600 / 8 = 0.5
    "steps": 16_000,  # 40 time units (lr * steps), ~9 relaxation times between the wells
    "burn_in_fraction": 0.75,  # burn-in 12,000 steps (~7 relaxation times), histogram over the last 4,000
    "thin": 10,
    "bins": 100,  # over the box [-2a, 2a]: bin width 0.04
}


def _int_at_least(lo: int, what: str):
    """An argparse type: an integer >= ``lo`` (underscores allowed), else an error naming ``what``."""

    def parse(text: str) -> int:
        try:
            v = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1, "positive integer")
_nonneg_int = _int_at_least(0, "non-negative integer")


# =========================================================================================
# demo
# =========================================================================================
def run_demo(n_chains: int = 1_000_000, n_steps: int = DEMO["steps"], seed: int = 0, burn_in=None,
             progress: bool = True) -> dict:
    r"""SGD with Gaussian minibatch noise on a tilted double well; the histogram against Gibbs.

    The model: :math:`L(\Phi) = \Delta((\Phi/a)^2 - 1)^2 + \tau\Phi/a` with
    :math:`\Delta = 1, a = 1, \tau = 0.25`; SGD at :math:`\eta = 0.0025` with per-example
    noise :math:`\sigma = 40` and batch size :math:`B = 4`, so the small-learning-rate theory
    temperature is :math:`T = \eta\sigma^2/(2B) = 0.5`.

    Why these numbers:

    * **the learning rate is small**: the curvature at the minima is :math:`h = 8\Delta/a^2 = 8`,
      so :math:`\eta h = 0.02`. On a quadratic of that curvature SGD's stationary variance
      exceeds the Gibbs one by :math:`1/(1 - \eta h/2) - 1 = 1\%`; that finite-learning-rate
      deviation (peaks ~0.5-1% low, tails a few % fat) is what remains between histogram and curve.
    * **the chains cross the barrier often**: in the time :math:`t = \eta \cdot` steps the
      dynamics is Langevin at :math:`T`. The barrier seen from the left (deep) well is 1.26, from
      the right one 0.76, and Kramers' rates :math:`\sqrt{h|h_s|}/(2\pi)\, e^{-\Delta L/T}`
      (:math:`h_s = -4` at the barrier top) give :math:`k_{\rm L\to R} + k_{\rm R\to L}
      \approx 0.07 + 0.20`, a relaxation time of about 4 time units; the mean-loss trace of the
      run itself decays with ~1,700 steps (4.3 time units). Chains start split 50/50 between
      the wells (a seeded NumPy generator puts each near :math:`-a` or :math:`+a`), far from the
      Gibbs split of about 70/30, so the histogram only matches if they equilibrate. The run
      lasts 16,000 steps (40 time units, ~9 relaxation times); the first 12,000 are burn-in
      (~7 relaxation times, leaving ~0.02% of the initial population imbalance), the histogram
      is taken over the last 4,000 (every 10th step). With :math:`10^6` chains that is still
      :math:`4 \cdot 10^8` samples. The figure's right panel shows the chain-mean loss
      relaxing onto its plateau, which sits above the Gibbs mean loss by the
      finite-learning-rate bias (harmonic estimate :math:`(T/2)(1/(1-\eta h/2) - 1) = 0.0025`).
    * **it is fast**: :math:`10^6` chains x 16,000 steps is :math:`1.6 \cdot 10^{10}`
      chain-steps, about a minute on two cores (0.2-0.35 G chain-steps/s).

    ``burn_in`` defaults to 3/4 of ``n_steps``. Returns a dict with the result, the model
    objects, the theory temperature, the Gibbs comparison (bin probabilities, the largest and
    rms relative deviation over the bins holding more than 5% of the peak, the left-well
    fraction, the mean loss) and the timing.
    """
    from . import landscapes, noise, optimizers, theory
    from .fit import fit_temperature
    from .gibbs import Gibbs
    from .simulate import simulate

    p = DEMO
    land = landscapes.DoubleWell(barrier=p["barrier"], width=p["width"], tilt=p["tilt"])
    opt = optimizers.SGD(lr=p["lr"])
    nz = noise.Gaussian(sigma=p["sigma"])
    B = p["batch_size"]
    T = theory.small_lr_temperature(opt, nz, B)
    burn_in = int(p["burn_in_fraction"] * n_steps) if burn_in is None else burn_in
    thin = max(1, min(p["thin"], (n_steps - burn_in) // 10))

    rng = np.random.default_rng(seed)
    side = np.where(rng.random(n_chains) < 0.5, -1.0, 1.0)
    init = (side * p["width"] + 0.2 * p["width"] * rng.standard_normal(n_chains)).reshape(n_chains, 1)

    t0 = time.perf_counter()
    res = simulate(land, opt, noise=nz, batch_size=B, n_chains=n_chains, n_steps=n_steps, burn_in=burn_in,
                   thin=thin, seed=seed, init=init, bins=p["bins"], hist_range="box", progress=progress)
    wall = time.perf_counter() - t0

    edges = res.hist_edges[0]
    centres, dens = res.density(0)
    total = res.hist[0].sum() + res.outside[0].sum()
    law = Gibbs(land, T)
    prob = law.bin_probabilities(edges)
    frac = res.hist[0] / total
    bulk = prob > 0.05 * prob.max()
    rel = frac[bulk] / prob[bulk] - 1.0
    left = edges[1:] <= 0.0  # the barrier top is at ~0.05: 0 is a bin edge
    grid = np.linspace(edges[0], edges[-1], 20_001)
    pg = law.pdf(grid)
    lg = land.loss(grid)
    trapz = getattr(np, "trapezoid", None) or np.trapz  # NumPy < 2 has only trapz
    gibbs_mean_loss = float(trapz(lg * pg, grid) / trapz(pg, grid))
    steps_tr, mean_tr, se_tr = res.mean_loss_trace()
    fit = fit_temperature(res)
    eta_h = 8.0 * land.barrier / land.width**2 * opt.lr  # lr x curvature at the minima
    return {
        "result": res,
        "landscape": land,
        "optimizer": opt,
        "noise": nz,
        "batch_size": B,
        "temperature": T,
        "burn_in": burn_in,
        "thin": thin,
        "wall_seconds": wall,
        "rate": res.chain_steps_per_second,
        "centres": centres,
        "density": dens,
        "gibbs_bin_prob": prob,
        "max_rel_dev_bulk": float(np.max(np.abs(rel))),
        "rms_rel_dev_bulk": float(np.sqrt(np.mean(rel**2))),
        "left_fraction": float(frac[left].sum() + res.outside[0, 0] / total),
        "left_fraction_gibbs": float(prob[left].sum()),
        "mean_loss": res.mean_loss,
        "gibbs_mean_loss": gibbs_mean_loss,
        "eta_h": eta_h,
        # <L> excess of SGD over Gibbs in a harmonic well: h Var / 2 with Var = (T/h) / (1 - eta h / 2)
        "harmonic_loss_bias": 0.5 * T * (1.0 / (1.0 - 0.5 * eta_h) - 1.0),
        "trace": (steps_tr, mean_tr, se_tr),
        "outside": int(res.outside[0].sum()),
        "fit": fit,
    }


def _demo_figure(d: dict, out: Path) -> Path:
    """Two panels: the stationary histogram over the Gibbs density; the mean loss vs step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .gibbs import Gibbs

    res = d["result"]
    land = d["landscape"]
    opt = d["optimizer"]
    T = d["temperature"]
    cfg = res.config
    edges = res.hist_edges[0]
    fig = Figure(figsize=(13.5, 7.6), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axs = fig.subplot_mosaic([["hist", "trace"], ["text", "text"]], width_ratios=[1.45, 1],
                             height_ratios=[1, 0.24])
    ax, ax2, axt = axs["hist"], axs["trace"], axs["text"]

    # (a) histogram vs Gibbs, with the loss on a second axis
    x = np.linspace(edges[0], edges[-1], 2001)
    axl = ax.twinx()
    axl.plot(x, land.loss(x), color="0.5", linestyle="--", linewidth=1.0, label=r"loss $L(\Phi)$ (right axis)")
    axl.set_ylim(-1.0, 6.0)
    axl.set_ylabel(r"loss $L(\Phi)$", color="0.4")
    axl.tick_params(axis="y", colors="0.4")
    ax.set_zorder(axl.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.stairs(d["density"], edges, fill=True, color="#9ecae1",
              label=f"SGD stationary histogram ({res.n_samples:.2g} samples)")
    ax.stairs(d["density"], edges, color="#3182bd", linewidth=0.8)
    ax.plot(x, Gibbs(land, T).pdf(x), color="#d62728", linewidth=1.6,
            label=rf"Gibbs $e^{{-L/T}}/Z$, $T=\eta\sigma^2/2B={T:g}$")
    fit = d["fit"]
    ax.plot(x, fit.gibbs.pdf(x), color="k", linewidth=0.9, linestyle=":",
            label=rf"Gibbs at the fitted $T = {fit.temperature:.4f}$ ({fit.confidence:.0%} CI "
                  rf"[{fit.ci[0]:.4f}, {fit.ci[1]:.4f}])")
    ax.set_xlabel(r"parameter $\Phi$")
    ax.set_ylabel(r"probability density $p(\Phi)$")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.3 * d["density"].max())
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axl.get_legend_handles_labels()
    # legends below the axes: nothing covers the data or the numbers
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=10,
              frameon=False)
    match = (f"left well: {d['left_fraction']:.3f} of samples\n(Gibbs {d['left_fraction_gibbs']:.3f}, start 0.5)\n"
             f"bins > 5% of peak:\n|hist/Gibbs - 1| max {d['max_rel_dev_bulk']:.1%}, rms {d['rms_rel_dev_bulk']:.1%}")
    ax.text(0.02, 0.97, match, transform=ax.transAxes, va="top", ha="left", fontsize=10,
            bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.75", alpha=0.95))
    ax.set_title("SGD on a tilted double well: stationary histogram vs the Gibbs law", fontsize=12)

    # (b) equilibration: the chain-mean loss against the step
    steps, mean, se = d["trace"]
    ax2.axvspan(0, cfg["burn_in"], color="0.88", linewidth=0, label="burn-in (not histogrammed)")
    ax2.fill_between(steps, mean - 2 * se, mean + 2 * se, color="#3182bd", alpha=0.3, linewidth=0)
    ax2.plot(steps, mean, color="#3182bd", linewidth=1.2, label=r"$\langle L\rangle$ over chains ($\pm 2$ s.e.)")
    ax2.axhline(d["gibbs_mean_loss"], color="#d62728", linewidth=1.2,
                label=rf"Gibbs $\langle L\rangle_T = {d['gibbs_mean_loss']:.4f}$")
    ml = d["mean_loss"]
    ax2.hlines(ml.value, cfg["burn_in"], cfg["n_steps"], color="k", linewidth=1.0, linestyle="--",
               label=rf"SGD, mean after burn-in: {ml.value:.4f} $\pm$ {ml.stderr:.1g}")
    eta_h = d["eta_h"]
    harmonic = d["harmonic_loss_bias"]
    ax2.text(0.97, 0.95,
             f"plateau - Gibbs = {ml.value - d['gibbs_mean_loss']:.4f} $\\pm$ {ml.stderr:.1g}:\n"
             "the finite-learning-rate bias;\n"
             rf"harmonic wells ($\eta h$ = {eta_h:.2g}) give"
             "\n"
             rf"$(T/2)\,(1/(1-\eta h/2) - 1)$ = {harmonic:.4f}",
             transform=ax2.transAxes, ha="right", va="top", fontsize=10,
             bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="0.75", alpha=0.95))
    ax2.set_xlim(0, cfg["n_steps"])
    ax2.set_xlabel("step")
    ax2.set_ylabel(r"mean loss $\langle L\rangle$")
    ax2.set_title("Equilibration from a 50/50 start", fontsize=12)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, fontsize=10, frameon=False)
    ax2.grid(alpha=0.3)

    # settings
    axt.axis("off")
    settings = (
        rf"$L(\Phi)=\Delta((\Phi/a)^2-1)^2+\tau\Phi/a$ with $\Delta={land.barrier:g}$, $a={land.width:g}$, "
        rf"$\tau={land.tilt:g}$;   SGD, $\eta={opt.lr:g}$ ($\eta h={8 * land.barrier / land.width**2 * opt.lr:.2g}$ "
        rf"at the minima), Gaussian gradient noise $\sigma={d['noise'].sigma:g}$, batch $B={d['batch_size']}$"
        "\n"
        f"{cfg['n_chains']:,} chains x {cfg['n_steps']:,} steps, burn-in {cfg['burn_in']:,}, thin {cfg['thin']}, "
        f"{len(edges) - 1} bins, seed {cfg['seed']}, {cfg['dtype']};   "
        f"{d['rate'] / 1e6:.0f} M chain-steps/s on {cfg['threads']} threads ({d['wall_seconds']:.0f} s);   "
        f"gibbs_sgd {cfg['versions']['gibbs_sgd']}"
        "\n" + textwrap.fill("fit: " + fit.verdict, width=150)
    )
    axt.text(0.0, 0.5, settings, transform=axt.transAxes, va="center", ha="left", fontsize=10, color="0.2")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _cmd_demo(args) -> int:
    try:
        import matplotlib  # noqa: F401
        have_mpl = True
    except ImportError:
        have_mpl = False
        print("note: the figure needs matplotlib, which is not installed (pip install 'gibbs_sgd[plot]', "
              "or pip install -e '.[plot]' in a checkout); running the simulation and printing the numbers only.",
              file=sys.stderr)
    p = DEMO
    print(f"gibbs-sgd demo: SGD on a tilted double well (barrier {p['barrier']:g}, tilt {p['tilt']:g}), "
          f"lr {p['lr']:g}, Gaussian noise sigma {p['sigma']:g}, batch {p['batch_size']}; "
          f"{args.chains:,} chains x {args.steps:,} steps")
    if args.steps < 2:
        print("error: --steps must be at least 2", file=sys.stderr)
        return 2
    d = run_demo(args.chains, args.steps, args.seed, progress=not args.no_progress)
    res = d["result"]
    ml = d["mean_loss"]
    print(f"  ran in {d['wall_seconds']:.1f} s: {d['rate']:.3g} chain-steps/s ({res.config['threads']} threads)")
    print(f"  theory temperature T = lr sigma^2 / (2B) = {d['temperature']:g}")
    fit = d["fit"]
    est = fit.estimators
    print(f"  fitted temperature T = {fit.temperature:.5f}, {fit.confidence:.0%} CI [{fit.ci[0]:.5f}, {fit.ci[1]:.5f}] "
          f"(virial {est['virial'].value:.5f}, configurational {est['configurational'].value:.5f})")
    print(f"  verdict: {fit.verdict}")
    print(f"  histogram vs Gibbs exp(-L/T)/Z, bins holding > 5% of the peak: max |hist/Gibbs - 1| = "
          f"{d['max_rel_dev_bulk']:.2%}, rms {d['rms_rel_dev_bulk']:.2%}")
    print(f"  left-well fraction {d['left_fraction']:.4f} (Gibbs {d['left_fraction_gibbs']:.4f}; start 0.5)")
    print(f"  <L> = {ml.value:.4f} +- {ml.stderr:.1g} (Gibbs {d['gibbs_mean_loss']:.4f}; excess "
          f"{ml.value - d['gibbs_mean_loss']:.4f}, finite-lr bias of harmonic wells at lr*h = {d['eta_h']:.2g}: "
          f"{d['harmonic_loss_bias']:.4f})")
    if d["outside"]:
        print(f"  {d['outside']:,} samples fell outside the histogram range (counted in the normalisation)")
    if res.n_diverged:
        print(f"  warning: {res.n_diverged:,} chains diverged")
    if args.steps < DEMO["steps"]:
        print(f"  note: fewer steps than the default {DEMO['steps']:,}: the chains may not have equilibrated "
              "between the wells (relaxation time ~1,700 steps), so expect a mismatch with the Gibbs law")
    if have_mpl:
        out = _demo_figure(d, Path(args.out))
        print(f"  figure written to {out}")
    else:
        print("  no figure written (matplotlib missing)")
    return 0


# =========================================================================================
# bench
# =========================================================================================
def _cmd_bench(args) -> int:
    from . import bench

    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    cuda = args.backend == "cuda"
    if cuda:
        unknown = [c for c in args.cases or [] if c not in bench.CUDA_CASES]
        if unknown:
            raise SystemExit(f"--cases: {unknown} are not GPU cases; choose from {list(bench.CUDA_CASES)}")
        run, fmt = bench.run_cuda_benchmarks, bench.format_cuda_table
        chains, steps = args.chains or bench.DEFAULT_CUDA_CHAINS, args.steps or bench.DEFAULT_CUDA_STEPS
    else:
        unknown = [c for c in args.cases or [] if c not in bench.CASES]
        if unknown:
            raise SystemExit(f"--cases: {unknown} are not CPU cases; choose from {list(bench.CASES)}")
        run, fmt = bench.run_benchmarks, bench.format_table
        chains, steps = args.chains or bench.DEFAULT_CHAINS, args.steps or bench.DEFAULT_STEPS
    if args.isa and not cuda:
        # one process per instruction set (Numba fixes its target when it starts), interleaved
        forward = ["--chains", str(chains), "--steps", str(steps), "--thin", str(args.thin), "--seed", str(args.seed)]
        if args.burn_in is not None:
            forward += ["--burn-in", str(args.burn_in)]
        if args.cases:
            forward += ["--cases", *args.cases]
        data = bench.run_isas(args.isa, forward, args.repeat, log=log)
        tables = [bench.format_table(d) for d in data["isas"].values()]
        table = "\n\n".join(tables + [bench.format_isa_comparison(data)])
        missed = [f"{isa}: {m}" for isa, d in data["isas"].items() for m in bench.missed_targets(d)]
    else:
        data = run(cases=args.cases, n_chains=chains, n_steps=steps, repeat=args.repeat, burn_in=args.burn_in,
                   thin=args.thin, seed=args.seed, log=log)
        table = fmt(data)
        missed = bench.missed_targets(data)
    data["table_markdown"] = table
    print(table)
    if missed:
        print("\nTargets missed:\n" + "\n".join(f"  - {m}" for m in missed))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        print(f"\nresults written to {path}")
    if args.figure:
        path = Path(args.figure)
        path.parent.mkdir(parents=True, exist_ok=True)
        bench.plot_benchmark(data, path)
        print(f"figure written to {path}")
    return 0


def _cmd_validate(args) -> int:
    # The scripts live beside the package in a source checkout (pip install -e .).
    root = Path(__file__).resolve().parent.parent / "validation" / "run_all.py"
    if not root.exists():
        print("error: the validation scripts are not installed with the package; run `gibbs-sgd validate` from a "
              "source checkout installed with `pip install -e .`", file=sys.stderr)
        return 2
    import importlib.util

    spec = importlib.util.spec_from_file_location("gibbs_sgd_validation_run_all", root)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = (["--quick"] if args.quick else []) + (["--tiny"] if args.tiny else [])
    argv += ["--out", args.out] if args.out else []
    argv += ["--only", *args.only] if args.only else []
    return module.main(argv)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        v = float(o)
        return v if math.isfinite(v) else None
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# =========================================================================================
def _parser() -> argparse.ArgumentParser:
    from .bench import CASES, CUDA_CASES, DEFAULT_CHAINS, DEFAULT_CUDA_CHAINS, DEFAULT_CUDA_STEPS, DEFAULT_STEPS, DEFAULT_THIN

    ap = argparse.ArgumentParser(
        prog="gibbs-sgd",
        description="Millions of parallel SGD chains on analytic loss landscapes, and their Gibbs temperature.",
    )
    ap.add_argument("--version", action="version", version=f"gibbs-sgd {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="SGD on a tilted double well: stationary histogram vs the Gibbs law (figure)",
                       description="Run 10^6 SGD chains on a tilted double well (about a minute on 2 cores), print "
                                   "the speed and the theory temperature, and plot the stationary histogram over "
                                   "the Gibbs density exp(-L/T)/Z.")
    d.add_argument("--chains", type=_positive_int, default=1_000_000, help="number of chains (default 1000000)")
    d.add_argument("--steps", type=_positive_int, default=DEMO["steps"],
                   help=f"steps per chain, the first 3/4 burn-in (default {DEMO['steps']})")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the chains and their start (default 0)")
    d.add_argument("--out", default="figures/quickstart.png", help="figure path (default figures/quickstart.png)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)

    b = sub.add_parser("bench", help="chain-steps/s of simulate vs NumPy vs the RNG alone",
                       description="Time gibbs_sgd.simulate, the array-at-a-time NumPy code for the same job and "
                                   "the kernel's RNG-only loop side by side; print a markdown table.")
    b.add_argument("--backend", choices=["cpu", "cuda"], default="cpu",
                   help="cpu: simulate vs NumPy vs RNG-only; cuda: simulate on the GPU vs CuPy vs PyTorch eager vs "
                        "the RNG-only kernel (default cpu)")
    b.add_argument("--chains", type=_positive_int, default=None,
                   help=f"default {DEFAULT_CHAINS} (cpu), {DEFAULT_CUDA_CHAINS} (cuda)")
    b.add_argument("--steps", type=_positive_int, default=None,
                   help=f"default {DEFAULT_STEPS} (cpu), {DEFAULT_CUDA_STEPS} (cuda)")
    b.add_argument("--repeat", type=_positive_int, default=3, help="timed runs per code, best reported (default 3)")
    b.add_argument("--burn-in", type=_nonneg_int, default=None, help="default steps // 2")
    b.add_argument("--thin", type=_positive_int, default=DEFAULT_THIN, help=f"default {DEFAULT_THIN}")
    b.add_argument("--seed", type=_nonneg_int, default=0)
    b.add_argument("--cases", nargs="+", choices=sorted(set(CASES) | set(CUDA_CASES)), default=None, metavar="CASE",
                   help=f"subset of cases; cpu: {', '.join(CASES)}; cuda: {', '.join(CUDA_CASES)} (default all)")
    b.add_argument("--isa", nargs="+", choices=["native", "avx2"], default=None, metavar="ISA",
                   help="cpu: compile for these instruction sets, each in its own process, interleaved, and print "
                        "a table per set and their ratios (native: this CPU's; avx2: any x86-64 AVX2 + FMA CPU's, "
                        "through NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=''); default: this process's target")
    b.add_argument("--json", metavar="PATH", default=None, help="also write everything as JSON")
    b.add_argument("--figure", metavar="PATH", default=None, help="also draw the rates as a bar chart (matplotlib)")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    b.set_defaults(func=_cmd_bench)

    v = sub.add_parser("validate", help="run every validation script (validation/*.py) and rebuild figures/REPORT.md",
                       description="Measure each claim of the lecture (one script per claim) and rebuild the report.")
    v.add_argument("--quick", action="store_true", help="at most a couple of minutes per script on 2 CPU cores")
    v.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    v.add_argument("--out", default=None, help="folder for figures and REPORT.md (default: figures/)")
    v.add_argument("--only", nargs="*", default=None, metavar="NAME", help="run only these scripts")
    v.set_defaults(func=_cmd_validate)
    return ap


def main(argv=None) -> int:
    """Entry point of the ``gibbs-sgd`` console script; returns the exit status."""
    ap = _parser()
    args = ap.parse_args(argv)
    if getattr(args, "func", None) is None:
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as e:
        print(f"gibbs-sgd: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
