"""Why Adam cannot reach 80% of the RNG-only rate on this CPU: the measurements behind it.

    python benchmarks/adam_step_bound.py

Times, in one process on the same threads, in ns per chain-step per core:

1. ``rng``: the kernel's RNG-only loop (Philox + Box-Muller per chain-step), as in
   ``gibbs-sgd bench``;
2. ``divider``: the part of torch's Adam step that no rewriting can remove, one square root
   and two divisions per coordinate (``m / (sqrt(v) / bc2 + eps)``, then ``lr / bc1`` is a
   per-step constant), as one flat loop that LLVM vectorises with AVX-512;
3. ``fused`` and ``fused-rng``: a hand-written loop that draws the normals and takes the Adam
   step in the same iteration (so that the out-of-order core could overlap the divider's work
   with the generator's), and the same loop with the step removed;
4. ``simulate`` on the benchmark's Adam case, with the statistics of the benchmark (thin 10)
   and with none.

The step needs the divider for at least ``divider`` ns; unless that work overlaps the
generator's, simulate / RNG-only is at most ``rng / (rng + divider)``. The fused loop measures
how much of it can overlap, with nothing else in the loop (no statistics, no divergence check,
no generic model calls): it is the most any kernel built on this generator can keep. On the
2-core reference machine (five runs, 2026-11-25): bound 68-69%, fused 67-76%, simulate 51%.
"""
import math
import time

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from gibbs_sgd import bench, simulate
from gibbs_sgd.kernels import cpu as cpu_kernels
from gibbs_sgd.rng import _log_reduced, _sincos_2pi, half_open_uniform, open_uniform, seed_key, stream_words

N, STEPS = 1_000_000, 200
TILE = 128


@njit(error_model="numpy", nogil=True, fastmath={"contract"})
def divider_only(tid, nt, m, v, out, nrep, bc2, eps, step):
    """torch's ``step * m / (sqrt(v) / bc2 + eps)`` over chains tid, tid + nt, ... (blocks of 1024)."""
    n = m.shape[0]
    for blk in range(tid, (n + 1023) // 1024, nt):
        lo = blk * 1024
        hi = min(n, lo + 1024)
        ms, vs, os = m[lo:hi], v[lo:hi], out[lo:hi]  # slices: indices from 0, so the loop vectorises
        for _ in range(nrep):
            for i in range(ms.shape[0]):
                os[i] = step * (ms[i] / (math.sqrt(vs[i]) / bc2 + eps))


@intrinsic
def _f64_bits(typingctx, x):
    """The bits of a float64 as an int64 (free: a register move), so Box-Muller's exponent
    split vectorises inside one loop with the step."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(inline="always")
def _box_muller(u, v):
    """gibbs_sgd.rng.box_muller's formulas, with the exponent taken from the bits of u."""
    b = _f64_bits(u)
    m = _bits_f64((b & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    e = np.float64(((b >> 52) & 0x7FF) - 1023)
    r = math.sqrt(-2.0 * _log_reduced(m, e))
    c, s = _sincos_2pi(v)
    return r * c, r * s


@njit(error_model="numpy", nogil=True, fastmath={"contract"}, inline="always")
def _adam(T, i, z, w1, w2, keep2, step, bc2, eps, sig):
    """torch's Adam step on the double well (barrier 1, tilt 0.2) for column i of T = (x, m, v)."""
    x = T[0, i]
    g = 4.0 * x * (x * x - 1.0) + 0.2 + sig * z
    m = T[1, i] + w1 * (g - T[1, i])
    v = T[2, i] * keep2 + w2 * g * g
    T[0, i] = x - step * (m / (math.sqrt(v) / bc2 + eps))
    T[1, i] = m
    T[2, i] = v


@njit(error_model="numpy", nogil=True, fastmath={"contract"}, _nrt=False)
def fused(tid, nt, n, steps, k0, k1, W, w1, w2, keep2, step, bc2, eps, sig, with_step):
    """Per tile of 128 chains (even chains in columns 0-63, odd in 64-127) and step: one loop
    over the 64 pairs that draws the pair's two normals and, if ``with_step``, steps both
    chains with them; else adds them into per-chain sums (the RNG-only twin)."""
    T = cpu_kernels.fixed_tile(W, tid, 4, TILE)
    half = TILE // 2
    for tl in range(tid, n // TILE, nt):
        p0 = tl * half
        for c in range(TILE):
            T[0, c] = -1.0
            T[1, c] = 0.0
            T[2, c] = 0.0
        for t in range(steps):
            if with_step:
                for q in range(half):
                    a0, a1, a2, a3 = stream_words(k0, k1, p0 + q, t, 0)
                    z0, z1 = _box_muller(open_uniform(a0, a1), half_open_uniform(a2, a3))
                    _adam(T, q, z0, w1, w2, keep2, step, bc2, eps, sig)
                    _adam(T, half + q, z1, w1, w2, keep2, step, bc2, eps, sig)
            else:
                for q in range(half):
                    a0, a1, a2, a3 = stream_words(k0, k1, p0 + q, t, 0)
                    z0, z1 = _box_muller(open_uniform(a0, a1), half_open_uniform(a2, a3))
                    T[3, q] += z0
                    T[3, half + q] += z1


def main():
    nt = numba.get_num_threads()
    land, opt, noise, B = bench.CASES["adam-doublewell"].make()
    kern = cpu_kernels.build(land, noise, opt)
    k0, k1 = seed_key(0)
    w1, w2, bc1, bc2 = opt.step_coefficients(STEPS)[-1]
    keep2, eps, step, sig = opt.betas[1], opt.eps, opt.lr / bc1, noise.sigma
    rng = np.random.default_rng(0)
    m, v, out = rng.standard_normal(N), 1.0 + rng.random(N), np.empty(N)
    W = np.zeros((nt, 4 * TILE))
    n_tiles = N // TILE * TILE

    def run_fused(n, steps, with_step):
        cpu_kernels.parallel_call(fused, nt, n, steps, k0, k1, W, w1, w2, keep2, step, bc2, eps, sig, with_step)

    # compile everything first
    divider_only(0, 1, m[:1024], v[:1024], out[:1024], 1, bc2, eps, step)
    run_fused(TILE, 2, True)
    run_fused(TILE, 2, False)
    bench._run_rng_only(kern, 4096, 20, 0)
    simulate(land, opt, noise=noise, n_chains=4096, n_steps=20, progress=False)

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    codes = {
        "rng": lambda: bench._run_rng_only(kern, N, STEPS, 0),
        "divider": lambda: cpu_kernels.parallel_call(divider_only, nt, m, v, out, STEPS, bc2, eps, step),
        "fused-rng": lambda: run_fused(n_tiles, STEPS, False),
        "fused": lambda: run_fused(n_tiles, STEPS, True),
        "simulate": lambda: simulate(land, opt, noise=noise, n_chains=N, n_steps=STEPS, thin=10,
                                     trace_points=STEPS // 10, progress=False),
        "simulate, no statistics": lambda: simulate(land, opt, noise=noise, n_chains=N, n_steps=STEPS,
                                                    burn_in=STEPS - 1, thin=STEPS, trace_points=1,
                                                    progress=False),
    }
    best = {k: math.inf for k in codes}
    for _ in range(3):  # interleaved, best of 3
        for k, fn in codes.items():
            best[k] = min(best[k], timed(fn))
    work = {k: N * STEPS for k in codes}
    work["fused"] = work["fused-rng"] = n_tiles * STEPS
    ns = {k: best[k] / work[k] * 1e9 * nt for k in codes}  # ns per chain-step per core
    print(f"{nt} threads, {N:,} chains x {STEPS} steps; ns per chain-step per core:")
    for k in codes:
        print(f"  {k:24s} {ns[k]:6.2f}")
    print(f"bound from the divider alone, rng / (rng + divider): {ns['rng'] / (ns['rng'] + ns['divider']):.0%}")
    print(f"fused loop, step / no step:                          {ns['fused-rng'] / ns['fused']:.0%}")
    print(f"simulate / RNG-only, no statistics:                  {ns['rng'] / ns['simulate, no statistics']:.0%}")
    print(f"simulate / RNG-only (the benchmark's job):           {ns['rng'] / ns['simulate']:.0%}")


if __name__ == "__main__":
    main()
