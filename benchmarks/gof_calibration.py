"""Calibration of fit_temperature's histogram test: are its p-values uniform under the null?

    python benchmarks/gof_calibration.py --reps 200 [--json figures/gof_calibration.json]

Every case draws samples whose law is *exactly* the Gibbs law being tested, many times over,
and collects the goodness-of-fit p-value of each repetition. A calibrated test gives uniform
p-values: the script prints the rejection rate at the 5% level with its binomial standard error
(sqrt(0.05 * 0.95 / reps) = 1.5% at 200 repetitions) and the Kolmogorov-Smirnov p-value of the
p-values against U(0, 1).

Cases (1-D and 2-D, independent and time-correlated samples, metastable landscapes, sparse bins):

* exact independent Gibbs samples (``Gibbs.rvs``) of a 1-D quadratic, a tilted double well and
  Mueller-Brown (2-D joint histogram), the temperature fitted or given;
* time-correlated samples with an exact Gibbs marginal: random-walk Metropolis chains started
  from ``Gibbs.rvs`` (so stationary from the first step) on the double well and Mueller-Brown;
* SGD on a 1-D quadratic, whose stationary law is exactly Gaussian, i.e. Gibbs at the exact
  finite-lr temperature T = lr sigma^2 / (B (2 - lr h)), tested at that given T and fitted;
* sparse bins: 400 bins for 3000 samples (most bins expect fewer than 5).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
import warnings

import numpy as np
from scipy import stats

import gibbs_sgd as gs


def _metropolis(land, temperature, n_chains, n_steps, step, rng):
    """Random-walk Metropolis chains with the exact Gibbs law as their stationary law, started
    in it (from Gibbs.rvs), so every sample has the exact marginal; returns (chains, steps, d)."""
    d = land.dim
    x = np.asarray(gs.Gibbs(land, temperature).rvs(n_chains, random_state=rng), dtype=np.float64).reshape(n_chains, d)
    loss = land.loss(x)
    out = np.empty((n_chains, n_steps, d))
    for t in range(n_steps):
        prop = x + step * rng.standard_normal(x.shape)
        lp = land.loss(prop)
        accept = np.log(rng.random(n_chains)) < -(lp - loss) / temperature
        x = np.where(accept[:, None], prop, x)
        loss = np.where(accept, lp, loss)
        out[:, t] = x
    return out


def _cases(args):
    quad = gs.landscapes.Quadratic(1.0)
    well = gs.landscapes.DoubleWell(tilt=0.2)
    mb = gs.landscapes.MuellerBrown()
    t_mb = 15.0  # Mueller-Brown's barriers are ~100: T = 15 keeps the wells exchanging

    def iid(land, t, n, given, bins=60):
        def one(r):
            x = gs.Gibbs(land, t).rvs(n, random_state=r)
            run = gs.SimulationResult.from_samples(land, x, bins=bins, n_blocks=100)
            return gs.fit_temperature(run, temperature=t if given else None)
        return one

    def mcmc(land, t, step, given, chains=400, steps=40, bins=50):
        def one(r):
            x = _metropolis(land, t, chains, steps, step, np.random.default_rng(r))
            run = gs.SimulationResult.from_samples(land, x, bins=bins, n_blocks=100)
            return gs.fit_temperature(run, temperature=t if given else None)
        return one

    lr, batch = 0.5, 2
    exact = lr / (batch * (2 - lr))

    def sgd(given):
        def one(r):
            run = gs.simulate(quad, gs.optimizers.SGD(lr), batch_size=batch, n_chains=args.chains, n_steps=160,
                              burn_in=40, seed=r, progress=False)
            return gs.fit_temperature(run, temperature=exact if given else None)
        return one

    return {
        "iid quadratic 1-D, T fitted": iid(quad, 0.5, 4000, False),
        "iid quadratic 1-D, T given": iid(quad, 0.5, 4000, True),
        "iid double well 1-D, T fitted": iid(well, 0.3, 4000, False),
        "iid Mueller-Brown 2-D joint, T fitted": iid(mb, t_mb, 4000, False, bins=30),
        "Metropolis double well 1-D (correlated), T fitted": mcmc(well, 0.3, 0.3, False),
        "Metropolis double well 1-D (correlated), T given": mcmc(well, 0.3, 0.3, True),
        "Metropolis Mueller-Brown 2-D (correlated), T fitted": mcmc(mb, t_mb, 0.1, False, bins=30),
        "SGD quadratic lr h = 0.5, exact T given": sgd(True),
        "SGD quadratic lr h = 0.5, T fitted": sgd(False),
        "sparse bins: 400 bins, 3000 samples, T fitted": iid(quad, 0.5, 3000, False, bins=400),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--chains", type=int, default=2000, help="SGD chains per repetition")
    ap.add_argument("--only", default=None, help="run the cases whose name contains this text")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    se = math.sqrt(0.05 * 0.95 / args.reps)
    print(f"{args.reps} repetitions per case; rejection rate at 5% has a binomial s.e. of {se:.1%}")
    print(f"| case | rejected at 5% | z | KS p (uniform) | mean dof | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for name, one in _cases(args).items():
        if args.only and args.only not in name:
            continue
        t0 = time.perf_counter()
        ps, dofs = [], []
        for r in range(args.reps):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = one(10_000 + r)
            ps.append(fit.p_value if fit.p_value is not None else math.nan)
            dofs.append(fit.dof if fit.dof is not None else math.nan)
        ps = np.array(ps, dtype=float)
        rate = float(np.mean(ps < 0.05))
        ks = float(stats.kstest(ps[np.isfinite(ps)], "uniform").pvalue)
        row = {"case": name, "reps": args.reps, "rejected_at_5pct": rate, "z": (rate - 0.05) / se, "ks_p": ks,
               "mean_dof": float(np.nanmean(dofs)), "undefined": int(np.sum(~np.isfinite(ps))),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"| {name} | {rate:.1%} | {row['z']:+.1f} | {ks:.2g} | {row['mean_dof']:.1f} | {row['seconds']:.0f} |",
              flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "gibbs_sgd": gs.__version__}
    print(f"Machine: {meta['machine']}; Python {meta['python']}, NumPy {meta['numpy']}; {meta['date']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
