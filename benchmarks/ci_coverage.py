"""Coverage of fit_temperature's confidence intervals over many independent repetitions.

    python benchmarks/ci_coverage.py --reps 1000

Two cases: exact Gibbs samples of a tilted double well (T = 0.3), and SGD on a quadratic at
lr h = 0.5, whose stationary law is Gibbs at the exact finite-lr temperature
T = lr sigma^2 / (B (2 - lr h)). Prints the fraction of 95% intervals that cover the truth
with its binomial standard error.
"""
import argparse
import math
import time

import gibbs_sgd as gs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=4000, help="exact samples per repetition")
    ap.add_argument("--chains", type=int, default=2000, help="SGD chains per repetition")
    args = ap.parse_args()

    land = gs.landscapes.DoubleWell(tilt=0.2)
    g = gs.Gibbs(land, temperature=0.3)
    t0 = time.perf_counter()
    hits = 0
    for r in range(args.reps):
        run = gs.SimulationResult.from_samples(land, g.rvs(args.samples, random_state=10_000 + r), n_blocks=100)
        fit = gs.fit_temperature(run)
        hits += fit.ci[0] <= 0.3 <= fit.ci[1]
    _report("exact Gibbs samples, double well, T = 0.3", hits, args.reps, time.perf_counter() - t0)

    lr, batch = 0.5, 2
    truth = lr / (batch * (2 - lr))
    quad = gs.landscapes.Quadratic(1.0, box=[[-2.5, 2.5]])
    t0 = time.perf_counter()
    hits = 0
    for r in range(args.reps):
        run = gs.simulate(quad, gs.optimizers.SGD(lr), batch_size=batch, n_chains=args.chains, n_steps=150,
                          burn_in=50, seed=50_000 + r, progress=False)
        fit = gs.fit_temperature(run)
        hits += fit.ci[0] <= truth <= fit.ci[1]
    _report(f"SGD on a quadratic, lr h = 0.5, exact T = {truth:.6g}", hits, args.reps, time.perf_counter() - t0)


def _report(name, hits, reps, seconds):
    p = hits / reps
    print(f"{name}: {hits}/{reps} covered = {p:.3f} +- {math.sqrt(p * (1 - p) / reps):.3f} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
