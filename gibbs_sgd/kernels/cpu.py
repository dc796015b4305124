"""CPU backend: one fused Numba kernel per (landscape, noise, optimizer) structure, run on threads.

The kernel is generated as Python source from :data:`_TEMPLATE`, with the model's scalar
functions imported by name and the structural constants (dimension ``D``, number of optimizer
state variables ``NS``, normals per step ``NZ``) written in as literals, so LLVM sees fixed
trip counts. Every number a user can change (learning rate, curvature, noise level, batch
size, burn-in, ...) is a run-time argument, so one compiled kernel serves a whole sweep.

Generated files live in a cache folder (``$GIBBS_SGD_CACHE_DIR``, default
``~/.cache/gibbs_sgd``), named by a hash of the template, the model modules' source and the
library versions, and compiled with ``cache=True``: a structure compiles once per machine,
and any change to the model code produces a new file, so a stale cache cannot be used.
Kernels built from user functions (``landscapes.Custom``) are compiled per process.

Threads: the kernel is a plain ``nogil`` function taking ``(tid, nt)``; :func:`parallel_call`
runs it on ``nt = numba.get_num_threads()`` Python threads, thread ``tid`` taking blocks
``tid, tid + nt, ...``. This compiles about 3x faster than a ``prange`` kernel (no parfor
passes: 3.7 s against 10.7 s for an Adam kernel) at the same speed, and leaves no OpenMP
runtime in the process (so it can fork).

Work decomposition (what makes results independent of threads and chunking):

* chains are grouped into *statistics blocks* of ``block`` consecutive chains; one thread runs
  a whole block, so the block's moment sums are added in a fixed order;
* a block is processed in tiles of :data:`TILE` chains: for each step the tile's normals are
  drawn in one loop over chains (Philox + Box-Muller), then each chain takes its step;
* the histograms (per coordinate, joint for d = 2, of the loss) are kept per block too: their
  scatter over blocks gives the design effect of the goodness-of-fit test.

What makes the step loop vectorise (LLVM; 8 chains per AVX-512 instruction, 4 per AVX2 one). A
tile lives in per-thread workspaces as rows of TILE columns, one column per chain: position and
optimizer state (the state dtype), gradient, normals and alive flags (float64). The model
functions see one chain as column views (``x = TX[0:D, c]``), so they keep their one-chain
calling convention, and the chain loop vectorises because:

* the library's kernels compile with ``_nrt=False`` and allocate nothing (the workspaces come
  from :class:`Engine`): with reference counting on, every view made in the loop left NRT
  incref/decref calls there when the vectoriser ran, and a call blocks it;
* :func:`fixed_tiles` gives the tiles compile-time shapes, so every row is a constant offset
  from one pointer and LLVM proves the rows disjoint (with float64 state both tiles are cut
  from one buffer, so not even an overlap test is left);
* short parameter arrays reach the model as tuples: values, which no store can alias;
* the alive flags are floats in the tile, so the branch on them becomes a vector mask; where
  masked stores are slow (every target but AVX-512: :func:`target_isa`), LLVM's cost model
  refused to vectorise Adam's step with them, so there the step is written with selects
  instead (``_STEP_SELECT``: the same arithmetic, the same bits);
* the generator and the statistics use only operations AVX2 and NEON have in vector registers:
  32-bit integer <-> float conversions, logical shifts, floors in floating point (no int64
  conversions or arithmetic shifts, which only AVX-512 vectorises).

The statistics of a sampled step are one pass over the tile (the loss, the gradient and
Laplacian of the sample, the moment sums through :func:`~gibbs_sgd.kernels.common.add_sample`,
the extended bin of every coordinate and of the loss), vectorised with the same mask-free
selects: a chain that is not alive adds 0.0. The moment sums go to 8 partial sums per column
(chain c into partial c mod 8, in step order), added pairwise into the block's row when the
tile ends its segment; the trace the same way per step (:func:`tile_sums`); the bins are counted
into 4 interleaved copies of per-thread counters (consecutive chains in one bin are then not a
chain of dependent increments), folded into the block's histograms with the moment sums. Every
order is fixed by the tile, never by the vector width, so the statistics are the same bits on
AVX2 and AVX-512, whatever the threads or chunking.

Measured with ``gibbs-sgd bench --isa native avx2`` and ``benchmarks/where_time_goes.py``
(README, Performance).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .common import moment_layout  # noqa: F401  (re-exported: the layout is read from here too)

# Chains per tile: the tile's state (TILE x D) and normals (NZ x TILE) stay in L1 cache
# (128 chains x 8 normals x 8 B = 8 KiB), and 128 is a multiple of every SIMD width.
TILE = 128
# Parameter arrays at most this long reach the kernel as tuples (see ``_as_tuple``).
MAX_TUPLE = 32
# Bits of ``record_flags``: what a step records.
SAMPLE, TRACE, TRAJ = 1, 2, 4


def record_flags(n_steps: int, burn_in: int, thin: int, trace_every: int, traj_every: int) -> np.ndarray:
    """Per step, what it records: SAMPLE (histograms and moments: ``t >= burn_in`` and
    ``(t - burn_in) % thin == 0``), TRACE (the mean loss: ``t % trace_every == 0``) and TRAJ (the
    recorded trajectories: ``t % traj_every == 0``); computed once on the host instead of three
    integer divisions per tile and step in the kernel."""
    t = np.arange(n_steps)
    flags = np.where((t >= burn_in) & ((t - burn_in) % thin == 0), SAMPLE, 0)
    flags |= np.where(t % trace_every == 0, TRACE, 0)
    flags |= np.where(t % traj_every == 0, TRAJ, 0)
    return flags.astype(np.uint8)


def _tile_view(context, builder, buf_type, buf, tid, first_row, n_rows, n_cols, out_type):
    """(n_rows, n_cols) C-contiguous view from row ``first_row`` of ``buf[tid]``, with constant
    shape and strides."""
    src = make_array(buf_type)(context, builder, buf)
    itemsize = context.get_abi_sizeof(context.get_data_type(buf_type.dtype))
    offset = builder.add(builder.mul(tid, builder.extract_value(src.strides, 0)),
                         context.get_constant(types.intp, first_row * n_cols * itemsize))
    data = builder.bitcast(builder.gep(builder.bitcast(src.data, ir.IntType(8).as_pointer()), [offset]),
                           src.data.type)
    out = make_array(out_type)(context, builder)
    const = lambda v: context.get_constant(types.intp, v)
    populate_array(out, data=data, shape=(const(n_rows), const(n_cols)),
                   strides=(const(n_cols * itemsize), const(itemsize)), itemsize=const(itemsize), meminfo=None)
    return out._getvalue()


@intrinsic
def fixed_tiles(typingctx, wx, wf, tid, rx, rf, cols):
    """This thread's two tiles: ``rx`` rows in the state dtype (from ``wx[tid]``) and ``rf`` rows
    in float64, each of ``cols`` columns, as C-contiguous arrays whose shape and strides are
    compile-time constants (``rx``, ``rf``, ``cols`` literal ints).

    Why: a slice of a run-time-shaped array has run-time strides, and LLVM cannot then prove
    that the rows of a tile (position, state, gradient, normals, alive flags) never overlap, so
    it either gives up on vectorising the step loop or guards it with overlap tests. With
    constant strides every row is a constant offset from one pointer, and with float64 state
    both tiles are cut from the one buffer ``wx`` (``wf`` is then not used), so no test is
    left. The views hold no reference: the caller keeps the buffers alive (Engine allocates
    them with at least ``rx + rf`` (float64) or ``rx`` / ``rf`` rows of ``cols``).
    """
    lit = (rx, rf, cols)
    if not (isinstance(wx, types.Array) and isinstance(wf, types.Array) and wx.ndim == wf.ndim == 2
            and wx.layout == wf.layout == "C" and wf.dtype == types.float64
            and all(isinstance(v, types.IntegerLiteral) for v in lit)):
        return None
    n_x, n_f, n_c = (v.literal_value for v in lit)
    tx_type = types.Array(wx.dtype, 2, "C")
    tf_type = types.Array(types.float64, 2, "C")
    one = wx.dtype == types.float64

    def codegen(context, builder, signature, args):
        bx, bf, t = args[0], args[1], args[2]
        tx = _tile_view(context, builder, wx, bx, t, 0, n_x, n_c, tx_type)
        if one:
            tf = _tile_view(context, builder, wx, bx, t, n_x, n_f, n_c, tf_type)
        else:
            tf = _tile_view(context, builder, wf, bf, t, 0, n_f, n_c, tf_type)
        return context.make_tuple(builder, signature.return_type, (tx, tf))

    return types.Tuple((tx_type, tf_type))(wx, wf, tid, rx, rf, cols), codegen


@intrinsic
def fixed_tile(typingctx, buf, tid, rows, cols):
    """``buf[tid]`` as a (rows, cols) C-contiguous array of constant shape (see
    :func:`fixed_tiles`)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 2 and buf.layout == "C"
            and isinstance(rows, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
        return None
    n_rows, n_cols = rows.literal_value, cols.literal_value
    out_type = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        return _tile_view(context, builder, buf, args[0], args[1], 0, n_rows, n_cols, out_type)

    return out_type(buf, tid, rows, cols), codegen

@intrinsic
def stack_array(typingctx, n, cols):
    """A float64 array of ``n`` x ``cols`` (literal ints) on the stack of the calling function.

    Why: the moment sums of a tile's samples are reductions over its chains; LLVM keeps them in
    vector registers (and so vectorises the loop) only if it can prove that their memory is
    touched by nothing else in the loop, which it can for a stack array and not for a buffer
    passed in. The array holds no reference and dies with the function's frame."""
    if not (isinstance(n, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
        return None
    rows, width = n.literal_value, cols.literal_value
    out_type = types.Array(types.float64, 2, "C")

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        dbl = context.get_data_type(types.float64)
        data = cgutils.alloca_once(builder, dbl, size=context.get_constant(types.intp, rows * width))
        out = make_array(out_type)(context, builder)
        const = lambda v: context.get_constant(types.intp, v)
        populate_array(out, data=data, shape=(const(rows), const(width)), strides=(const(8 * width), const(8)),
                       itemsize=const(8), meminfo=None)
        return out._getvalue()

    return out_type(n, cols), codegen


_TEMPLATE = '''\
# Generated by gibbs_sgd.kernels.cpu -- do not edit (structure: {structure}).
import numpy as np
from numba import njit
from gibbs_sgd.rng import stream_words, open_uniform, half_open_uniform, box_muller_tile
from gibbs_sgd.kernels.common import add_sample, bin_index, bin_of_offset
from gibbs_sgd.kernels.cpu import fixed_tile, fixed_tiles, stack_array
{imports}

D = {D}
NS = {NS}
NSD = {NSD}
NZ = {NZ}
NZ1 = {NZ1}
TILE = {TILE}
HALF = TILE // 2 + 1
ADDS = {ADDS}
NACC = {NACC}
MZ = {MZ}
# rows of the per-thread tiles: RX rows in the state dtype (x, then the optimizer state), RF
# rows in float64 (the gradient, the normals, the alive flags as 1.0 / 0.0, then the
# Box-Muller scratch u, v, z0, z1)
RX = D + NSD
GR = 0
ZR = D
AR = D + NZ1
UR = AR + 1
LRR = UR + 4
# then, for the sampled steps: the state with 0.0 in chains that are not alive, the extended
# bin of each coordinate and of the loss (int64), the Laplacian, and 8 partial sums
ZSR = LRR + 1
KFR = ZSR + RX
LPR = KFR + D + 1
RF = LPR + 1
NA = NACC + 5
# histogram counters per thread: NHC interleaved copies (consecutive chains count into different
# copies, so a run of chains in one bin is not one chain of dependent increments), each with a
# row per coordinate and one for the loss of W = max(bins) + 3 slots: below, the bins, above and
# a slot for chains that are not alive
NHC = 4  # (the counting loop below is written out for 4)
SAMPLE = {SAMPLE}
TRACE = {TRACE}
TRAJ = {TRAJ}


@njit(cache={CACHE}, error_model="numpy", nogil=True, inline="always", fastmath={{"contract"}})
def draw_tile(TF, IB, first, nc, t, k0, k1):
    """Z[k, c] = normal k of chain first + c at step t (Z: the tile's rows ZR...): Philox call k
    of its pair, one half each; the Box-Muller scratch is the tile's rows UR... and IB."""
    Z = TF[ZR:ZR + NZ1]
    U = TF[UR]
    V = TF[UR + 1]
    ZA = TF[UR + 2]
    ZB = TF[UR + 3]
    p0 = first // 2
    npairs = (first + nc - 1) // 2 - p0 + 1
    off = first & 1
    for k in range(NZ):
        for q in range(npairs):
            w0, w1, w2, w3 = stream_words(k0, k1, p0 + q, t, k)
            U[q] = open_uniform(w0, w1)
            V[q] = half_open_uniform(w2, w3)
        box_muller_tile(U, V, ZA, ZB, IB, npairs)
        zk = Z[k]
        if off == 0:
            # over the whole tile, whatever nc: with a constant trip count LLVM sees that the
            # rows cannot overlap and vectorises the interleave (columns >= nc are not read)
            for q in range(TILE // 2):
                zk[2 * q] = ZA[q]
                zk[2 * q + 1] = ZB[q]
        else:
            for c in range(nc):
                q = (c + 1) >> 1
                zk[c] = ZA[q] if c & 1 else ZB[q]


@njit(cache={CACHE}, error_model="numpy", nogil=True, inline="always", fastmath={{"contract"}})
def tile_sums(ra, rb):
    """The sums of two tile rows, each in a fixed order that vectorises: 8 partial sums over the
    columns c = j mod 8 (eight scalars, which LLVM keeps in one vector register: an array in
    memory would make every add wait on the previous store; the two rows' chains of adds
    overlap), then added pairwise; the same bits on every instruction set."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0
    for q in range(TILE // 8):
        o = 8 * q
        a0 += ra[o]
        a1 += ra[o + 1]
        a2 += ra[o + 2]
        a3 += ra[o + 3]
        a4 += ra[o + 4]
        a5 += ra[o + 5]
        a6 += ra[o + 6]
        a7 += ra[o + 7]
        b0 += rb[o]
        b1 += rb[o + 1]
        b2 += rb[o + 2]
        b3 += rb[o + 3]
        b4 += rb[o + 4]
        b5 += rb[o + 5]
        b6 += rb[o + 6]
        b7 += rb[o + 7]
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)),
            ((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7)))


@njit(cache={CACHE}, error_model="numpy", nogil=True, inline="always", fastmath={{"contract"}})
def chain_step(TX, TF, Z, c, chain, t, lr, cf, pl, pn, po, data, batch, k0, k1, scratch, center, bound):
    """One step of chain c of the tile: minibatch gradient, update; False if it diverged."""
    xc = TX[0:D, c]
    g = TF[GR:GR + D, c]
    s = TX[D:D + NSD, c]
    if ADDS:
        land_grad(xc, pl, g)
    noise_fn(xc, g, pn, data, batch, Z, c, k0, k1, chain, t, scratch)
    update(xc, g, s, lr, po, cf)
    ok = True
    for i in range(D):
        if not abs(xc[i] - center[i]) <= bound:  # also catches NaN
            ok = False
    return ok


@njit(cache={CACHE}, error_model="numpy", nogil=True, fastmath={{"contract"}}, _nrt={NRT}, boundscheck={BOUNDS})
def run_segment(tid, nt, X, S, alive, t0, t1, chain0, k0, k1, lrs, coef, pl_a, pn_a, data, po_a, batch,
                records, block, hlo, hinv, hper, lossr, hist1, hist2, histL, hout,
                mom, trace, trace_every, traj, traj_every, center_a, bound, wx, wf, wm, wi, wh):
    n = X.shape[0]
    nb = hist1.shape[2]
    nb2 = hist2.shape[1]
    nbl = histL.shape[1]
    nblk = (n + block - 1) // block
    ktraj = traj.shape[0]
    ncol_traj = min(traj.shape[2], D + NS * D)
    # this thread's workspaces: tiles of a fixed shape (every row offset is then a constant
    # LLVM can see) and small scratch
    TX, TF = fixed_tiles(wx, wf, tid, RX, RF, TILE)
    Z = TF[ZR:ZR + NZ1]
    ta = TF[AR]
    IB = wi[tid, 0:HALF]
    LR = TF[LRR]
    ZS = TF[ZSR:ZSR + RX]
    KI = TF[KFR:KFR + D + 1].view(np.int64)
    A8 = stack_array(NA, 8)
    W = max(nb, nbl) + 3
    trash = np.int64(W - 1)
    lo_l = lossr[0]
    inv_l = lossr[1]
    hlo_t = {HLO}
    hinv_t = {HINV}
    HC = wh[tid].reshape(NHC, D + 1, W)
    scratch = wm[tid]
    # the parameters as tuples where short: values, not memory, so nothing the loop stores
    # can alias them and LLVM keeps them in registers
    pl = {PL}
    pn = {PN}
    po = {PO}
    center = {CENTER}
    for b in range(tid, nblk, nt):
        h_1 = hist1[b]
        h_2 = hist2[b]
        h_l = histL[b]
        h_out = hout[b]
        lo_c = b * block
        hi_c = min(n, lo_c + block)
        for c0 in range(lo_c, hi_c, TILE):
            nc = min(TILE, hi_c - c0)
            first = chain0 + c0
            for c in range(nc):
                ta[c] = 1.0 if alive[c0 + c] != 0 else 0.0
                for i in range(D):
                    TX[i, c] = X[c0 + c, i]
                for i in range(NSD):
                    TX[D + i, c] = S[c0 + c, i]
            for c in range(nc, TILE):  # the statistics run over whole tiles: the rest is not alive
                ta[c] = 0.0
            # the tile's moment sums: 8 partial sums per column of the moment row (chain c into
            # partial c mod 8, in step order), added pairwise into the block's row at the end
            for q in range(NA):
                for j in range(8):
                    A8[q, j] = 0.0
            sampled = False
            for t in range(t0, t1):
                lr = lrs[t]
                cf = {CF}
                draw_tile(TF, IB, first, nc, t, k0, k1)
{STEP}                rec = records[t]  # what step t records (bits SAMPLE, TRACE, TRAJ)
                if rec == 0:
                    continue
                sample = (rec & SAMPLE) != 0
                do_trace = (rec & TRACE) != 0
                do_traj = (rec & TRAJ) != 0 and first < ktraj
                # the statistics, on the steps that record something
                if do_traj:  # phi, then (when traj has the columns) the optimizer state
                    for c in range(nc):
                        if ta[c] != 0.0 and first + c < ktraj:
                            for i in range(ncol_traj):
                                traj[first + c, t // traj_every, i] = TX[i, c]
                if not (sample or do_trace):
                    continue
                # over the whole tile (columns >= nc are not alive), in one pass: the loss (a
                # non-finite one ends the chain, which is then not counted) and, on a sampled
                # step, the sample's moment sums and the extended bin of every coordinate and of
                # the loss (0 below, 1 + bin, nb + 1 above, TRASH for a chain not alive). A
                # chain that is not alive adds 0.0 to every sum and to the count.
                if sample:
                    sampled = True
                    for c8 in range(TILE // 8):
                      for j in range(8):
                        c = 8 * c8 + j
                        L = land_loss(TX[0:D, c], pl)
                        live = (ta[c] != 0.0) & np.isfinite(L)
                        w = 1.0 if live else 0.0
                        ta[c] = w
                        L = L if live else 0.0
                        LR[c] = L
                        g = TF[GR:GR + D, c]
                        land_grad(TX[0:D, c], pl, g)
                        lap = land_lap(TX[0:D, c], pl)
                        for i in range(D):
                            g[i] = g[i] if live else 0.0
                        for i in range(RX):
                            ZS[i, c] = TX[i, c] if live else 0.0
                        lap = lap if live else 0.0
                        add_sample(A8[:, j], ZS[0:MZ, c], g, L, lap, w)
                        for i in range(D):  # periodic coordinates: redone below
                            k = bin_of_offset((TX[i, c] - hlo_t[i]) * hinv_t[i], nb)
                            KI[i, c] = k + 1 if live else trash
                        k = bin_of_offset((L - lo_l) * inv_l, nbl)
                        KI[D, c] = k + 1 if live else trash
                    for i in range(D):
                        if hper[i] > 0.0:  # folded onto the period first (a remainder: not vectorised)
                            for c in range(TILE):
                                k = bin_index(TX[i, c], hlo[i], hinv[i], hper[i], nb)
                                KI[i, c] = k + 1 if ta[c] != 0.0 else trash
                else:
                    for c in range(TILE):
                        L = land_loss(TX[0:D, c], pl)
                        live = (ta[c] != 0.0) & np.isfinite(L)
                        ta[c] = 1.0 if live else 0.0
                        LR[c] = L if live else 0.0
                if do_trace:
                    tr_sum, tr_n = tile_sums(LR, ta)
                    trace[b, t // trace_every, 0] += tr_sum
                    trace[b, t // trace_every, 1] += tr_n
                if not sample:
                    continue
                # count the bins: chain c into copy c % 4 (so that a run of chains in one bin
                # is not one chain of dependent increments)
                for i in range(D + 1):
                    ki = KI[i]
                    h0 = HC[0, i]
                    h1 = HC[1, i]
                    h2 = HC[2, i]
                    h3 = HC[3, i]
                    for c4 in range(0, TILE, 4):
                        h0[np.uint64(ki[c4])] += 1
                        h1[np.uint64(ki[c4 + 1])] += 1
                        h2[np.uint64(ki[c4 + 2])] += 1
                        h3[np.uint64(ki[c4 + 3])] += 1
                if D == 2 and nb2 > 1:
                    for c in range(TILE):
                        k_0 = KI[0, c] - 1
                        k_1 = KI[1, c] - 1
                        if 0 <= k_0 < nb and 0 <= k_1 < nb:
                            h_2[k_0, k_1] += 1
            # this tile's counts and sums into its block's rows (a fixed order: the same bits
            # however the chains are chunked or threaded); the counters and sums are left at 0
            if sampled:
                m = mom[b]
                for q in range(NA):
                    m[q] += ((A8[q, 0] + A8[q, 1]) + (A8[q, 2] + A8[q, 3])) + ((A8[q, 4] + A8[q, 5]) + (A8[q, 6] + A8[q, 7]))
                for j in range(NHC):
                    for i in range(D + 1):
                        row = HC[j, i]
                        nbi = nb if i < D else nbl
                        if i < D:
                            h_out[i, 0] += row[0]
                            h_out[i, 1] += row[nbi + 1]
                            for k in range(nbi):
                                h_1[i, k] += row[k + 1]
                        else:
                            h_out[D, 0] += row[0]
                            h_out[D, 1] += row[nbi + 1]
                            for k in range(nbi):
                                h_l[k] += row[k + 1]
                        for k in range(W):
                            row[k] = 0
            for c in range(nc):
                alive[c0 + c] = 1 if ta[c] != 0.0 else 0
                for i in range(D):
                    X[c0 + c, i] = TX[i, c]
                for i in range(NSD):
                    S[c0 + c, i] = TX[D + i, c]


@njit(cache={CACHE}, error_model="numpy", nogil=True, fastmath={{"contract"}}, _nrt={NRT})
def rng_only(tid, nt, n, t0, t1, chain0, k0, k1, out, wf, wi):
    """The kernel's random-number work alone (same tiles, same draws), for benchmarks: every
    normal is added into a per-chain sum, so none can be optimised away."""
    TF = fixed_tile(wf, tid, RF, TILE)
    Z = TF[ZR:ZR + NZ1]
    IB = wi[tid, 0:HALF]
    sums = TF[GR]
    for c in range(TILE):
        sums[c] = 0.0
    ntile = (n + TILE - 1) // TILE
    for tl in range(tid, ntile, nt):
        c0 = tl * TILE
        nc = min(TILE, n - c0)
        for t in range(t0, t1):
            draw_tile(TF, IB, chain0 + c0, nc, t, k0, k1)
            for k in range(NZ):
                zk = Z[k]
                for c in range(nc):
                    sums[c] += zk[c]
    acc = 0.0
    for c in range(TILE):
        acc += sums[c]
    out[tid] += acc
'''


# The step over a tile, the hot loop, vectorised across chains. Two forms of the same arithmetic
# (the same bits): with masked stores, the chains that are not alive skipped by a mask (AVX-512
# has mask registers and cheap masked stores; measured fastest there), and without (for AVX2,
# NEON, SSE: LLVM's cost model refuses to vectorise Adam's step with their slow masked stores,
# and it ran scalar): every chain's gradient in one loop, then every chain steps on a copy of
# its state kept in the rows ZS, and one that is not alive gets it back by a select.
_STEP_MASKED = '''\
                for c in range(nc):
                    if ta[c] != 0.0:
                        if not chain_step(TX, TF, Z, c, first + c, t, lr, cf, pl, pn, po, data, batch, k0, k1,
                                          scratch, center, bound):
                            ta[c] = 0.0
'''
_STEP_SELECT = '''\
                for c in range(nc):
                    xc = TX[0:D, c]
                    g = TF[GR:GR + D, c]
                    if ADDS:
                        land_grad(xc, pl, g)
                    noise_fn(xc, g, pn, data, batch, Z, c, k0, k1, first + c, t, scratch)
                for c in range(nc):
                    live = ta[c] != 0.0
                    for i in range(RX):
                        ZS[i, c] = TX[i, c]
                    update(TX[0:D, c], TF[GR:GR + D, c], TX[D:D + NSD, c], lr, po, cf)
                    ok = True
                    for i in range(D):  # also catches NaN
                        ok = ok & (abs(TX[i, c] - center[i]) <= bound)
                    for i in range(RX):
                        TX[i, c] = TX[i, c] if live else ZS[i, c]
                    ta[c] = 1.0 if live & ok else 0.0
'''

_ISA = None
_PROBE_IR = """
define void @probe(ptr %p, ptr %q) {
  %a = load <8 x double>, ptr %p
  %b = load <8 x double>, ptr %q
  %c = call <8 x double> @llvm.fma.v8f64(<8 x double> %a, <8 x double> %b, <8 x double> %a)
  store <8 x double> %c, ptr %p
  ret void
}
declare <8 x double> @llvm.fma.v8f64(<8 x double>, <8 x double>, <8 x double>)
"""


def target_isa() -> dict:
    """The instruction set Numba compiles the kernels for in this process.

    Read from the machine code of a one-line probe (an FMA of 8 doubles) assembled by Numba's
    own target machine, so it honours ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` exactly as the
    kernels do (``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=""`` gives AVX2 code on any x86-64;
    the name alone keeps the host's features). Returns ``{"isa": "AVX-512" | "AVX2" | "AVX" |
    "SSE" | "NEON" | ..., "cpu": the CPU name, "features": the feature string or None (the
    CPU's own), "overridden": whether either variable is set}``."""
    global _ISA
    if _ISA is None:
        import llvmlite.binding as llvm
        from numba.core.registry import cpu_target

        try:  # Numba's target machine is not public API: if it moves, say so and take the safe form
            cg = cpu_target.target_context.codegen()
            tm = cg._tm
            mod = llvm.parse_assembly(_PROBE_IR)
            mod.triple = tm.triple
            asm = tm.emit_assembly(mod)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"could not read the instruction set Numba compiles for ({exc!r}); the kernels "
                          "use the step without masked stores, which is correct on every target",
                          RuntimeWarning, stacklevel=2)
            _ISA = {"isa": "unknown", "cpu": "unknown", "features": numba.config.CPU_FEATURES,
                    "overridden": numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None}
            return dict(_ISA)
        code = "\n".join(line for line in asm.splitlines() if line.startswith("\t") and not line.strip().startswith("."))
        if "%zmm" in code:
            isa = "AVX-512"
        elif "%ymm" in code:
            isa = "AVX2" if "vfmadd" in code else "AVX"
        elif "%xmm" in code:
            isa = "SSE"
        elif "fmla" in code and ".2d" in code:
            isa = "NEON"
        else:
            isa = tm.triple.split("-")[0]
        _ISA = {"isa": isa, "cpu": cg._get_host_cpu_name(),
                "features": numba.config.CPU_FEATURES,
                "overridden": numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None}
    return dict(_ISA)


_POOL = None


def parallel_call(kernel, nt: int, *args) -> None:
    """Run ``kernel(tid, nt, *args)`` for ``tid`` in ``range(nt)`` on a shared thread pool."""
    global _POOL
    if nt == 1:
        kernel(0, 1, *args)
        return
    if _POOL is None or _POOL._max_workers < nt:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(nt, os.cpu_count() or 1), thread_name_prefix="gibbs_sgd")
    futures = [_POOL.submit(kernel, tid, nt, *args) for tid in range(nt)]
    for f in futures:
        f.result()


def cache_dir() -> Path:
    """Where generated kernels and Numba's on-disk cache live."""
    root = os.environ.get("GIBBS_SGD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gibbs_sgd")
    path = Path(root) / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError:
        path = Path(tempfile.gettempdir()) / f"gibbs_sgd-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "kernels"
        path.mkdir(parents=True, exist_ok=True)
    return path


def _model_source_hash() -> str:
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent.parent
    for name in ("rng.py", "landscapes.py", "noise.py", "optimizers.py", "_model.py", "kernels/common.py",
                 "kernels/cpu.py"):
        h.update((pkg / name).read_bytes())
    h.update(_TEMPLATE.encode())
    h.update(numba.__version__.encode())
    h.update(np.__version__.encode())
    return h.hexdigest()


_MODEL_HASH = None
_KERNELS: dict = {}


def _model_hash() -> str:
    """Hash of the model modules' source and the library versions (computed once per process)."""
    global _MODEL_HASH
    if _MODEL_HASH is None:
        _MODEL_HASH = _model_source_hash()
    return _MODEL_HASH


def model_functions(landscape, noise, optimizer) -> dict:
    """The kernel's roles mapped to the model's functions (``"module:name"`` or user objects)."""
    lf = landscape.kernel_functions()
    return {
        "land_loss": lf["loss"],
        "land_grad": lf["grad"],
        "land_lap": lf["laplacian"],
        "noise_fn": noise.kernel_functions()["noise"],
        "update": optimizer.kernel_functions()["update"],
    }


def structure_constants(landscape, noise, optimizer) -> dict:
    """The structural constants written into every backend's generated kernel: dimension D,
    optimizer state variables NS (NSD = NS * D columns, at least 1), normals per step NZ
    (NZ1 >= 1 rows for them), whether the noise adds to the gradient, and the moment row's
    layout (NACC columns after the first five, MZ the state vector's length)."""
    d = landscape.dim
    ns = optimizer.n_state
    nz = noise.n_normals(d)
    lay = moment_layout(d, ns)
    return {"D": d, "NS": ns, "NSD": max(ns * d, 1), "NZ": nz, "NZ1": max(nz, 1),
            "ADDS": bool(noise.adds_to_gradient), "NACC": lay["n_columns"] - 5, "MZ": lay["state_size"]}


def import_lines(fns: dict) -> str:
    """``from module import name as role`` for the model functions that live in modules."""
    return "\n".join(
        f"from {f.split(':')[0]} import {f.split(':')[1]} as {role}" for role, f in fns.items() if isinstance(f, str)
    )


def load_generated(src: str, fns: dict, prefix: str, key):
    """Import generated kernel source: from a file in :func:`cache_dir` named by its hash when
    every model function lives in a module (so Numba can cache it on disk), else in memory
    with the user's function objects in its namespace."""
    if all(isinstance(f, str) for f in fns.values()):
        digest = hashlib.sha256((_model_hash() + src).encode()).hexdigest()[:20]
        name = f"{prefix}_{digest}"
        path = cache_dir() / f"{name}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(src)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    import types

    module = types.ModuleType(f"{prefix}_user_{abs(hash(key))}")
    module.__dict__.update({k: v for k, v in fns.items() if not isinstance(v, str)})
    exec(compile(src, f"<{prefix} {key!r}>", "exec"), module.__dict__)
    return module


def _as_tuple(name: str, n, row: str = "") -> str:
    """Source for a parameter inside the kernel: a tuple of its ``n`` numbers, or the array
    itself when ``n`` is None (user models, long arrays)."""
    if n is None:
        return f"{name}[{row.rstrip(', ')}]" if row else name
    return "(" + "".join(f"{name}[{row}{i}], " for i in range(n)) + ")"


_SVML_WARNED = False


def _warn_svml() -> None:
    """With Intel SVML, Numba vectorises ``exp``/``sin``/... with SVML's versions, which can
    differ from libm's in the last bit, while the scalar remainder of a tile's loop uses libm:
    a chain's trajectory could then depend on its column in the tile (i.e. on ``block``)."""
    global _SVML_WARNED
    if numba.config.USING_SVML and not _SVML_WARNED:
        _SVML_WARNED = True
        warnings.warn(
            "Numba uses Intel SVML in this process: vectorised exp/sin/cos in the kernels may differ from "
            "libm in the last bit, so a chain's trajectory can depend on its place in a tile of chains "
            "(the block size) and differ from the NumPy reference at ~1e-16; for bitwise reproducibility "
            "set NUMBA_DISABLE_INTEL_SVML=1 before importing numba",
            RuntimeWarning,
            stacklevel=3,
        )


def build(landscape, noise, optimizer, batch_size: int = 1):
    """The compiled kernel module (``run_segment``, ``rng_only``) for this structure.

    The parameter arrays short enough to reach the kernel as tuples (library models only) are
    compiled in with their lengths, which are then part of the structure; ``batch_size`` is
    the run's (a noise's parameters could depend on it)."""
    _warn_svml()
    d = landscape.dim
    fns = model_functions(landscape, noise, optimizer)
    library = all(isinstance(f, str) for f in fns.values())
    lengths = {
        "pl": int(np.size(landscape.kernel_params())),
        "pn": int(np.size(noise.kernel_params(d, batch_size))),
        "po": int(np.size(optimizer.kernel_params())),
        "coef": int(np.shape(optimizer.step_coefficients(1))[1]),
    }
    sizes = {k: (n if library and 0 < n <= MAX_TUPLE else None) for k, n in lengths.items()}
    masked = target_isa()["isa"] == "AVX-512"
    key = (landscape.structure_key(), noise.structure_key(), optimizer.structure_key(), tuple(sizes.values()),
           "masked" if masked else "select")
    if key in _KERNELS:
        return _KERNELS[key]
    src = _TEMPLATE.format(
        structure=repr(key),
        imports=import_lines(fns),
        **structure_constants(landscape, noise, optimizer),
        TILE=TILE,
        CACHE=library,
        SAMPLE=SAMPLE,
        TRACE=TRACE,
        TRAJ=TRAJ,
        # user functions may allocate, which needs Numba's reference counting; the library's
        # never do (they also compile for the GPU), and without it no call is left in the loop
        NRT=not library,
        # user functions are inlined into the kernel, whose flags they then take: bounds checks
        # there (a Custom landscape's default) turn an out-of-range index into an IndexError
        BOUNDS=(not library) and bool(getattr(landscape, "boundscheck", False)),
        PL=_as_tuple("pl_a", sizes["pl"]),
        PN=_as_tuple("pn_a", sizes["pn"]),
        PO=_as_tuple("po_a", sizes["po"]),
        CENTER=_as_tuple("center_a", d if library and d <= MAX_TUPLE else None),
        STEP=_STEP_MASKED if masked else _STEP_SELECT,
        HLO=_as_tuple("hlo", d if d <= MAX_TUPLE else None),
        HINV=_as_tuple("hinv", d if d <= MAX_TUPLE else None),
        CF=_as_tuple("coef", sizes["coef"], row="t, "),
    )
    module = load_generated(src, fns, "gibbs_sgd_kernel", key)
    module.sizes = sizes
    _KERNELS[key] = module
    return module


def workspaces(module, nt: int, dtype, scratch_size: int = 0, bins: int = 1, loss_bins: int = 1) -> dict:
    """Per-thread scratch of ``run_segment`` / ``rng_only`` (the kernels allocate nothing).

    With float64 state both tiles are cut from ``wx`` (see :func:`fixed_tiles`); ``wh`` holds
    the histogram counters of a tile (``NHC`` copies of ``D + 1`` rows of ``max(bins,
    loss_bins) + 3`` slots)."""
    m = module
    dtype = np.dtype(dtype)
    rows_x = m.RX + m.RF if dtype == np.float64 else m.RX
    return {
        "wx": np.zeros((nt, rows_x * TILE), dtype),
        "wf": np.zeros((nt, m.RF * TILE)),
        "wm": np.zeros((nt, max(1, scratch_size))),
        "wi": np.zeros((nt, m.HALF + m.D), np.int64),
        "wh": np.zeros((nt, m.NHC * (m.D + 1) * (max(bins, loss_bins) + 3)), np.int64),
    }


class Engine:
    """Runs one simulation's segments on this machine's cores (the interface of every backend).

    ``load`` hands it a chunk's state arrays, ``segment`` advances them from step ``t0`` to
    ``t1`` while adding to the statistics in ``host`` (rows ``b_lo:b_hi`` for this chunk's
    blocks), ``store`` copies the state back and ``sync`` the statistics; on the CPU the
    kernel works on the host arrays themselves, so both are no-ops.
    """

    name = "cpu"

    def __init__(self, module, host: dict, consts: dict):
        self.kern = module
        self.host = host
        self.c = consts
        self.threads = numba.get_num_threads()
        for name, n in module.sizes.items():  # the kernel unpacks these as tuples of n numbers
            have = consts[name].shape[-1]
            if n is not None and have != n:
                raise RuntimeError(f"{name} holds {have} numbers per row; the kernel was built for {n}")
        self.work = None
        self.records = record_flags(consts["lrs"].shape[0], int(consts["burn_in"]), int(consts["thin"]),
                                    int(consts["trace_every"]), int(consts["traj_every"]))

    def load(self, X, S, alive):
        self.X, self.S, self.alive = X, S, alive
        if self.work is None or self.work["wx"].dtype != X.dtype:
            self.work = workspaces(self.kern, self.threads, X.dtype, int(self.c["scratch_size"]),
                                   self.host["hist1"].shape[2], self.host["histL"].shape[1])

    def segment(self, t0, t1, c_lo, b_lo, b_hi):
        c, h, w = self.c, self.host, self.work
        parallel_call(
            self.kern.run_segment, self.threads, self.X, self.S, self.alive, np.int64(t0), np.int64(t1),
            np.int64(c_lo), c["k0"], c["k1"], c["lrs"], c["coef"], c["pl"], c["pn"], c["data"], c["po"],
            np.int64(c["batch"]), self.records, np.int64(c["block"]),
            c["hlo"], c["hinv"], c["hper"], c["lossr"], h["hist1"][b_lo:b_hi], h["hist2"][b_lo:b_hi],
            h["histL"][b_lo:b_hi], h["hout"][b_lo:b_hi], h["moments"][b_lo:b_hi], h["trace"][b_lo:b_hi],
            np.int64(c["trace_every"]), h["traj"], np.int64(c["traj_every"]), c["center"],
            float(c["bound"]), w["wx"], w["wf"], w["wm"], w["wi"], w["wh"],
        )

    def set_consts(self, values: dict):
        """Replace run constants (the histogram ranges, fixed from the pilot chains mid-run)."""
        self.c.update(values)

    def zero_blocks(self, b_lo, b_hi):
        """Clear the statistics of blocks ``b_lo:b_hi`` (before they are run again)."""
        for k, v in self.host.items():
            if k != "traj":  # trajectories are per chain: a rerun writes the same values again
                v[b_lo:b_hi] = 0

    def unload(self):
        """Drop the chunk's arrays, so the next chunk's are not allocated beside them."""
        self.X = self.S = self.alive = None

    def store(self, X, S, alive):
        pass

    def sync(self):
        pass
