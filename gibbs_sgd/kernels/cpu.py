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

What makes the step loop vectorise (LLVM, AVX-512 on the reference machine: 8 chains per
instruction). A tile lives in per-thread workspaces as rows of TILE columns, one column per
chain: position and optimizer state (the state dtype), gradient, normals and alive flags
(float64). The model functions see one chain as column views (``x = TX[0:D, c]``), so they keep
their one-chain calling convention, and the chain loop vectorises because:

* the library's kernels compile with ``_nrt=False`` and allocate nothing (the workspaces come
  from :class:`Engine`): with reference counting on, every view made in the loop left NRT
  incref/decref calls there when the vectoriser ran, and a call blocks it;
* :func:`fixed_tiles` gives the tiles compile-time shapes, so every row is a constant offset
  from one pointer and LLVM proves the rows disjoint (with float64 state both tiles are cut
  from one buffer, so not even an overlap test is left);
* short parameter arrays reach the model as tuples: values, which no store can alias;
* the alive flags are floats in the tile, so the branch on them becomes a vector mask.

Measured on the benchmark's Adam case: 165 -> 397 M chain-steps/s (2 cores); see
``benchmarks/adam_step_bound.py`` for what bounds it.
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

_TEMPLATE = '''\
# Generated by gibbs_sgd.kernels.cpu -- do not edit (structure: {structure}).
import numpy as np
from numba import njit
from gibbs_sgd.rng import stream_words, open_uniform, half_open_uniform, box_muller_tile
from gibbs_sgd.kernels.common import add_sample, bin_index
from gibbs_sgd.kernels.cpu import fixed_tile, fixed_tiles
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
# then this thread's scratch of the sampled steps (the tile's moment sums, the state vector, the
# gradient): in the tile, at constant offsets, so they cannot alias the rows
SCR = LRR + 1
NSCR = (NACC + 5 + MZ + D + TILE - 1) // TILE
RF = SCR + NSCR
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
                mom, trace, trace_every, traj, traj_every, center_a, bound, wx, wf, wm, wi):
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
    bins = wi[tid, HALF:HALF + D]
    LR = TF[LRR]
    sums = TF[SCR:SCR + NSCR].reshape(NSCR * TILE)
    acc = sums[0:NACC + 5]
    zv = sums[NACC + 5:NACC + 5 + MZ]
    gt = sums[NACC + 5 + MZ:NACC + 5 + MZ + D]
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
            for t in range(t0, t1):
                lr = lrs[t]
                cf = {CF}
                draw_tile(TF, IB, first, nc, t, k0, k1)
                # the step (the hot loop), vectorised across chains with the alive flags as a
                # mask (measured as fast as a branch-free copy for all-alive tiles, and half
                # the code to compile)
                for c in range(nc):
                    if ta[c] != 0.0:
                        if not chain_step(TX, TF, Z, c, first + c, t, lr, cf, pl, pn, po, data, batch, k0, k1,
                                          scratch, center, bound):
                            ta[c] = 0.0
                rec = records[t]  # what step t records (bits SAMPLE, TRACE, TRAJ)
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
                # the loss trace and the moment sums, over the tile chain by chain (in chain
                # order: the sums are the same bit for bit however the chains are chunked)
                tr_sum = 0.0
                tr_n = 0.0
                for q in range(NACC + 5):
                    acc[q] = 0.0
                for c in range(nc):
                    if ta[c] == 0.0:
                        continue
                    xc = TX[0:D, c]
                    L = land_loss(xc, pl)
                    if not np.isfinite(L):
                        ta[c] = 0.0
                        continue
                    tr_sum += L
                    tr_n += 1.0
                    if sample:
                        LR[c] = L
                        land_grad(xc, pl, gt)
                        add_sample(acc, xc, TX[D:D + NSD, c], gt, L, land_lap(xc, pl), zv)
                if do_trace:
                    trace[b, t // trace_every, 0] += tr_sum
                    trace[b, t // trace_every, 1] += tr_n
                if not sample:
                    continue
                m = mom[b]
                for q in range(NACC + 5):
                    m[q] += acc[q]
                # the histograms (periodic coordinates folded onto the box first)
                for c in range(nc):
                    if ta[c] == 0.0:
                        continue
                    inside = True
                    for i in range(D):
                        k = bin_index(TX[i, c], hlo[i], hinv[i], hper[i], nb)
                        if k < 0:
                            h_out[i, 0] += 1
                            inside = False
                        elif k >= nb:
                            h_out[i, 1] += 1
                            inside = False
                        else:
                            h_1[i, k] += 1
                        bins[i] = k
                    if D == 2 and inside and nb2 > 1:
                        h_2[bins[0], bins[1]] += 1
                    k = bin_index(LR[c], lossr[0], lossr[1], 0.0, nbl)
                    if k < 0:
                        h_out[D, 0] += 1
                    elif k >= nbl:
                        h_out[D, 1] += 1
                    else:
                        h_l[k] += 1
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


def moment_layout(dim: int, n_state: int) -> dict:
    """Column index of each running sum in the kernel's per-block moment rows."""
    m = dim * (1 + n_state)
    z0 = 5 + 3 * dim
    return {
        "count": 0,
        "loss": 1,
        "loss_sq": 2,
        "laplacian": 3,
        "grad_sq": 4,
        "phi_grad": slice(5, 5 + dim),
        "grad": slice(5 + dim, 5 + 2 * dim),
        "grad_sq_coord": slice(5 + 2 * dim, 5 + 3 * dim),
        "state": slice(z0, z0 + m),
        "state_outer": slice(z0 + m, z0 + m + m * m),
        "n_columns": z0 + m + m * m,
        "state_size": m,
    }


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
    key = (landscape.structure_key(), noise.structure_key(), optimizer.structure_key(), tuple(sizes.values()))
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
        CF=_as_tuple("coef", sizes["coef"], row="t, "),
    )
    module = load_generated(src, fns, "gibbs_sgd_kernel", key)
    module.sizes = sizes
    _KERNELS[key] = module
    return module


def workspaces(module, nt: int, dtype, scratch_size: int = 0) -> dict:
    """Per-thread scratch of ``run_segment`` / ``rng_only`` (the kernels allocate nothing).

    With float64 state both tiles are cut from ``wx`` (see :func:`fixed_tiles`)."""
    m = module
    dtype = np.dtype(dtype)
    rows_x = m.RX + m.RF if dtype == np.float64 else m.RX
    return {
        "wx": np.zeros((nt, rows_x * TILE), dtype),
        "wf": np.zeros((nt, m.RF * TILE)),
        "wm": np.zeros((nt, max(1, scratch_size))),
        "wi": np.zeros((nt, m.HALF + m.D), np.int64),
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
            self.work = workspaces(self.kern, self.threads, X.dtype, int(self.c["scratch_size"]))

    def segment(self, t0, t1, c_lo, b_lo, b_hi):
        c, h, w = self.c, self.host, self.work
        parallel_call(
            self.kern.run_segment, self.threads, self.X, self.S, self.alive, np.int64(t0), np.int64(t1),
            np.int64(c_lo), c["k0"], c["k1"], c["lrs"], c["coef"], c["pl"], c["pn"], c["data"], c["po"],
            np.int64(c["batch"]), self.records, np.int64(c["block"]),
            c["hlo"], c["hinv"], c["hper"], c["lossr"], h["hist1"][b_lo:b_hi], h["hist2"][b_lo:b_hi],
            h["histL"][b_lo:b_hi], h["hout"][b_lo:b_hi], h["moments"][b_lo:b_hi], h["trace"][b_lo:b_hi],
            np.int64(c["trace_every"]), h["traj"], np.int64(c["traj_every"]), c["center"],
            float(c["bound"]), w["wx"], w["wf"], w["wm"], w["wi"],
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
