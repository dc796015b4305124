"""CPU benchmark of gibbs_sgd: simulate vs NumPy vs the RNG alone, in chain-steps/s.

Same as ``gibbs-sgd bench``; all arguments are passed through, e.g.::

    python benchmarks/bench_cpu.py --json figures/bench_cpu.json
    python benchmarks/bench_cpu.py --chains 200000 --steps 100 --repeat 1 --cases sgd-quadratic

See ``gibbs_sgd/bench.py`` for exactly what each code does.
"""
import sys

from gibbs_sgd.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
