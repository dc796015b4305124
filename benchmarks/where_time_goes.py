"""Where a chain-step's time goes, per instruction set: generator, step, statistics.

    python benchmarks/where_time_goes.py                     # this machine's target
    python benchmarks/where_time_goes.py --isa native avx2   # both, one process each, interleaved

For each case of ``gibbs-sgd bench`` asked for (default: 1-D SGD on the quadratic and Adam on
the double well), three runs of the same chains x steps on the same threads, timed side by side
(best of ``--repeat``), in ns per chain-step per core (seconds x cores / chain-steps):

* ``generator``: the kernel's RNG-only loop (Philox + Box-Muller over the same tiles);
* ``step``: ``simulate`` with nothing recorded but the last step (burn-in = steps - 1, one trace
  point), minus the generator: the gradient, the update, the divergence check, the tile's
  loads and stores;
* ``statistics``: ``simulate`` with every step sampled and traced (thin 1), minus the run
  without: the loss, the moment sums, the histograms and the trace of every chain and step.

Numba fixes its target when it starts, so ``--isa`` runs this script once per instruction set
(``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` as in ``gibbs_sgd.bench.ISA_TARGETS``), alternating
them ``--repeat`` times, and prints one table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numba
import numpy as np

from gibbs_sgd import bench, simulate
from gibbs_sgd.kernels import cpu as cpu_kernels


def measure(cases, n, steps, seed=1):
    """{case: {part: seconds}} for one round in this process (compiled and warmed first)."""
    out = {}
    for name in cases:
        land, opt, noise, B = bench.CASES[name].make()
        kern = cpu_kernels.build(land, noise, opt, B)

        def run(burn_in, thin, trace_points, n_=n, steps_=steps):
            t = time.perf_counter()
            simulate(land, opt, noise=noise, batch_size=B, n_chains=n_, n_steps=steps_, burn_in=burn_in, thin=thin,
                     trace_points=trace_points, seed=seed, progress=False)
            return time.perf_counter() - t

        run(5, 1, 10, 4096, 10)  # compile / load, warm
        bench._run_rng_only(kern, 4096, 10, seed)
        out[name] = {"generator": bench._run_rng_only(kern, n, steps, seed), "no_stats": run(steps - 1, 1, 1),
                     "thin1": run(0, 1, steps)}
    return out


def table(rounds_by_isa, n, steps, cores):
    per = cores * 1e9 / (n * steps)
    lines = ["ns per chain-step per core (best of the rounds; step = no-statistics run - generator, statistics = "
             "thin-1 run - no-statistics run):", "",
             "| case | instruction set | generator | step | statistics | total (thin 1) | statistics share |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name in next(iter(rounds_by_isa.values()))[0]["times"]:
        for isa, rounds in rounds_by_isa.items():
            best = {k: min(r["times"][name][k] for r in rounds) for k in ("generator", "no_stats", "thin1")}
            g, s0, s1 = (best[k] * per for k in ("generator", "no_stats", "thin1"))
            label = f"{isa} ({rounds[0]['isa']})"
            lines.append(f"| {bench.CASES[name].title} | {label} | {g:.2f} | {s0 - g:.2f} | {s1 - s0:.2f} | "
                         f"{s1:.2f} | {(s1 - s0) / s1:.0%} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", nargs="+", choices=sorted(bench.ISA_TARGETS), default=None)
    ap.add_argument("--cases", nargs="+", choices=sorted(bench.CASES), default=["sgd-quadratic", "adam-doublewell"])
    ap.add_argument("--chains", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one_round:  # a child: one round on this process's target, as JSON
        print(json.dumps({"isa": cpu_kernels.target_isa()["isa"], "times": measure(args.cases, args.chains, args.steps)}))
        return 0
    isas = args.isa or ["this process"]
    rounds = {isa: [] for isa in isas}
    for _ in range(args.repeat):
        for isa in isas:
            env = dict(os.environ)
            if isa in bench.ISA_TARGETS:
                for k in bench.ISA_TARGETS["avx2"]:
                    env.pop(k, None)
                env.update(bench.ISA_TARGETS[isa])
            cmd = [sys.executable, __file__, "--one-round", "--cases", *args.cases, "--chains", str(args.chains),
                   "--steps", str(args.steps)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            rounds[isa].append(json.loads(res.stdout.strip().splitlines()[-1]))
    m = bench.machine_info()
    print(table(rounds, args.chains, args.steps, numba.get_num_threads()))
    print(f"\n{args.chains:,} chains x {args.steps} steps, float64; {m['cpu']}, {m['cores']} cores, "
          f"{m['numba_threads']} Numba threads; Numba {numba.__version__}, NumPy {np.__version__}; {m['date']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
