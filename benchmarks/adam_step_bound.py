"""How fast can an Adam step be on this CPU? The bound behind the Adam speed target.

    python benchmarks/adam_step_bound.py

Times, in one process on the same threads:

1. the kernel's RNG-only loop (Philox + Box-Muller per chain-step), as ``gibbs-sgd bench``;
2. the best case for the step alone: torch's Adam update on the double well written as one
   flat, branch-free loop over structure-of-arrays state (position, m, v and a pre-drawn
   normal per chain), which LLVM vectorises with AVX-512 (one square root and two divisions
   per chain-step: the divider is the bottleneck);
3. ``simulate`` on the benchmark's Adam case.

If the step ran after the generator in the same loop without overlapping it, the fraction
of the RNG-only rate an Adam kernel keeps would be at most t_rng / (t_rng + t_step), whatever
the code around it; the script prints that bound beside the measured fraction.
"""
import time

import numba
import numpy as np
from numba import njit

from gibbs_sgd import bench, simulate
from gibbs_sgd.kernels import cpu as cpu_kernels

N, STEPS = 1_000_000, 200


@njit(error_model="numpy", nogil=True, fastmath={"contract"})
def flat_adam(tid, nt, x, m, v, z, nrep, p, c, lr, sig):
    """The Adam step of the benchmark case over chains tid, tid + nt, ... in blocks of 1024."""
    n = x.shape[0]
    w1, w2, step, bc2, eps, keep2 = c[0], c[1], lr / c[2], c[3], p[2], p[1]
    d0, tau, inv = 1.0, 0.2, 1.0
    for blk in range(tid, (n + 1023) // 1024, nt):
        lo = blk * 1024
        hi = min(n, lo + 1024)
        # slices, so the index starts at 0: Numba then drops its negative-index wraparound,
        # which would otherwise keep LLVM from vectorising the loop
        xs, ms, vs, zs = x[lo:hi], m[lo:hi], v[lo:hi], z[lo:hi]
        for _ in range(nrep):
            for i in range(xs.shape[0]):
                xi = xs[i]
                u = xi * inv
                g = (4.0 * d0 * u * (u * u - 1.0) + tau) * inv + sig * zs[i]
                mi = ms[i] + w1 * (g - ms[i])
                vi = vs[i] * keep2 + w2 * g * g
                xs[i] = xi - step * (mi / (np.sqrt(vi) / bc2 + eps))
                ms[i] = mi
                vs[i] = vi


def main():
    nt = numba.get_num_threads()
    land, opt, noise, B = bench.CASES["adam-doublewell"].make()
    kern = cpu_kernels.build(land, noise, opt)
    rng = np.random.default_rng(0)
    x, m, v, z = -np.ones(N), np.zeros(N), np.ones(N), rng.standard_normal(N)
    p, c = opt.kernel_params(), opt.step_coefficients(STEPS)[-1].copy()
    flat_adam(0, 1, x[:1024].copy(), m[:1024].copy(), v[:1024].copy(), z[:1024], 1, p, c, opt.lr, 2.0)
    bench._run_rng_only(kern, 4096, 20, 0)
    simulate(land, opt, noise=noise, n_chains=4096, n_steps=20, progress=False)
    best = {"rng": [], "step": [], "simulate": []}
    for _ in range(3):
        best["rng"].append(bench._run_rng_only(kern, N, STEPS, 0))
        t = time.perf_counter()
        cpu_kernels.parallel_call(flat_adam, nt, x, m, v, z, STEPS, p, c, opt.lr, 2.0)
        best["step"].append(time.perf_counter() - t)
        t = time.perf_counter()
        simulate(land, opt, noise=noise, n_chains=N, n_steps=STEPS, thin=10, progress=False,
                 trace_points=STEPS // 10)
        best["simulate"].append(time.perf_counter() - t)
    ns = {k: min(v) / (N * STEPS) * 1e9 * nt for k, v in best.items()}  # ns per chain-step per core
    bound = ns["rng"] / (ns["rng"] + ns["step"])
    print(f"{nt} threads, {N:,} chains x {STEPS} steps; ns per chain-step per core:")
    print(f"  RNG-only {ns['rng']:.2f}   flat vectorised Adam step {ns['step']:.2f}   simulate {ns['simulate']:.2f}")
    print(f"  bound on simulate / RNG-only for a generator-then-step kernel: {bound:.0%}")
    print(f"  measured simulate / RNG-only: {ns['rng'] / ns['simulate']:.0%}")


if __name__ == "__main__":
    main()
