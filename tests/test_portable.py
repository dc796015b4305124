"""The kernels' portable forms: the same bits on every instruction set, and the target honoured.

The generator and the statistics are written with operations that AVX2 and NEON have in vector
registers (32-bit conversions, logical shifts, floating-point floors and quadrants, selects);
the CPU kernel steps a tile with masked stores where they are cheap (AVX-512) and with selects
elsewhere. Every rewrite replaces an exact operation by another exact one, so these tests are
identities, checked bit for bit (no tolerance):

* the 53-bit uniforms against the integer formula they replace, on edge words and random ones;
* the float floor against ``math.floor`` wherever the normal transform uses it, including every
  quadrant boundary of ``_sincos_2pi`` and the ulps around it;
* ``bin_of_offset`` against the branchy definition it replaced (NaN, signed zero, the top edge,
  huge values);
* the two step forms against each other on runs that diverge, use every Adam / RMSprop branch
  and record their trajectories, final states and statistics;
* ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` reach the kernels: the probe reports AVX2 under
  the override, and a kernel compiled for one target is not loaded from the on-disk cache for
  another (Numba's cache index holds the CPU name and features).
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numba import njit

import gibbs_sgd as gs
from gibbs_sgd import rng
from gibbs_sgd.kernels import common
from gibbs_sgd.kernels import cpu as cpu_kernels


@njit(cache=True)
def _uniforms_of(words):
    out = np.empty((words.shape[0], 2))
    for i in range(words.shape[0]):
        out[i, 0] = rng.open_uniform(words[i, 0], words[i, 1])
        out[i, 1] = rng.half_open_uniform(words[i, 0], words[i, 1])
    return out


def test_uniforms_equal_the_53_bit_integer_formula():
    edge = [0, 1, 2, 2**11 - 1, 2**11, 2**21 - 1, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]
    pairs = [(a, b) for a in edge for b in edge]
    pairs += [tuple(w) for w in np.random.default_rng(3).integers(0, 2**32, size=(20000, 2)).tolist()]
    words = np.array(pairs, dtype=np.uint64)
    got = _uniforms_of(words)
    k = np.array([(a << 21) | (b >> 11) for a, b in pairs], dtype=np.uint64)
    # the previous formulas, in exact integer arithmetic: (k + 1) 2^-53 and k 2^-53
    np.testing.assert_array_equal(got[:, 0], (k.astype(np.float64) + 1.0) * 2.0**-53)
    np.testing.assert_array_equal(got[:, 1], k.astype(np.float64) * 2.0**-53)
    assert got[:, 0].min() > 0.0 and got[:, 0].max() == 1.0 and got[:, 1].max() < 1.0


@njit(cache=True)
def _floors(y):
    out = np.empty_like(y)
    for i in range(y.shape[0]):
        out[i] = rng._floor(y[i])
    return out


@njit(cache=True)
def _sincos(v):
    out = np.empty((v.shape[0], 2))
    for i in range(v.shape[0]):
        c, s = rng._sincos_2pi(v[i])
        out[i, 0] = c
        out[i, 1] = s
    return out


def _around(points, n_ulps=4):
    vals = []
    for p in points:
        x = p
        for _ in range(n_ulps):
            x = np.nextafter(x, -np.inf)
        for _ in range(2 * n_ulps + 1):
            vals.append(x)
            x = np.nextafter(x, np.inf)
    return np.array(vals)


def test_float_floor_equals_math_floor():
    y = np.concatenate([_around([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]),
                        np.random.default_rng(5).uniform(0, 4.5, 100000), [2.0**51 + 0.5, 2.0**52 - 1]])
    y = y[y >= 0]
    np.testing.assert_array_equal(_floors(y), np.floor(y))


@njit(cache=True)
def _sincos_integer_quadrant(v):
    """``_sincos_2pi`` as it was written with an int64 quadrant (shifts and masks): the reference."""
    qi = np.int64(math.floor(4.0 * v + 0.5))
    a = rng._TWO_PI * (v - 0.25 * np.float64(qi))
    a2 = a * a
    sp = rng._SIN_C[8]
    for k in range(7, -1, -1):
        sp = sp * a2 + rng._SIN_C[k]
    sn = a * sp
    cp = rng._COS_C[9]
    for k in range(8, -1, -1):
        cp = cp * a2 + rng._COS_C[k]
    odd = np.float64(qi & 1)
    sign_c = 1.0 - 2.0 * np.float64(((qi + 1) >> 1) & 1)
    sign_s = 1.0 - 2.0 * np.float64((qi >> 1) & 1)
    return sign_c * (cp + odd * (sn - cp)), sign_s * (sn + odd * (cp - sn))


@njit(cache=True)
def _sincos_reference(v):
    out = np.empty((v.shape[0], 2))
    for i in range(v.shape[0]):
        c, s = _sincos_integer_quadrant(v[i])
        out[i, 0] = c
        out[i, 1] = s
    return out


def test_sincos_quadrants_at_their_boundaries():
    # v = (2k + 1)/8 are where round(4v) changes: the quadrant logic (now in floats) must give
    # the integer version's signs and swap on both sides of each, bit for bit
    v = _around([k / 8 for k in range(9)], n_ulps=3)
    v = np.concatenate([v[(v >= 0) & (v <= 1)], np.random.default_rng(6).uniform(0, 1, 100000)])
    np.testing.assert_array_equal(_sincos(v), _sincos_reference(v))
    np.testing.assert_allclose(_sincos(v)[:, 0], np.cos(2 * np.pi * v), rtol=0, atol=3e-15)


@njit(cache=True)
def _bins(y, nb):
    out = np.empty(y.shape[0], np.int64)
    for i in range(y.shape[0]):
        out[i] = common.bin_of_offset(y[i], nb)
    return out


def _bin_reference(y, nb):
    if not y >= 0.0:
        return -1
    if y >= nb:
        return nb
    return int(y)


def test_bin_of_offset_equals_the_branchy_rule():
    nb = 100
    y = np.concatenate([_around([0.0, 1.0, 99.0, 100.0], 3), [-0.0, np.nan, np.inf, -np.inf, 1e300, -1e300,
                                                               2.0**31, 2.0**40, -0.5, 99.9999999],
                        np.random.default_rng(9).uniform(-20, 120, 5000)])
    np.testing.assert_array_equal(_bins(y, nb), [_bin_reference(v, nb) for v in y])


def _run(land, opt, noise, **kw):
    return gs.simulate(land, opt, noise=noise, n_chains=300, n_steps=60, burn_in=20, thin=1, bins=24, seed=11,
                       record_trajectories=300, trajectory_state=True, progress=False, **kw)


_CASES = [
    (gs.landscapes.DoubleWell(), gs.optimizers.Adam(lr=0.05, amsgrad=True), gs.noise.Gaussian(sigma=2.0)),
    (gs.landscapes.Quadratic(1.0), gs.optimizers.RMSprop(lr=0.02, momentum=0.5, centered=True),
     gs.noise.Gaussian(sigma=1.0)),
    # chains leave the divergence radius: frozen in both forms at the same step and state
    (gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=2.5), gs.noise.Gaussian(sigma=1.0)),
    (gs.landscapes.MuellerBrown(), gs.optimizers.HeavyBall(lr=1e-4, momentum=0.5), gs.noise.Gaussian(sigma=3.0)),
]


@pytest.mark.parametrize("case", range(len(_CASES)), ids=["adam-amsgrad", "rmsprop-centered", "sgd-diverging",
                                                          "heavyball-mueller-brown"])
def test_step_forms_give_the_same_bits(case, monkeypatch):
    land, opt, noise = _CASES[case]
    here = cpu_kernels.target_isa()["isa"]
    runs = {}
    for isa in ("AVX-512", "AVX2"):  # masked stores / selects, both compiled for this machine
        monkeypatch.setattr(cpu_kernels, "_ISA", {**cpu_kernels.target_isa(), "isa": isa})
        monkeypatch.setattr(cpu_kernels, "_KERNELS", {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the diverging case warns about its chains
            runs[isa] = _run(land, opt, noise)
    a, b = runs["AVX-512"], runs["AVX2"]
    assert here in ("AVX-512", "AVX2", "AVX", "SSE", "NEON") or here
    for name in ("trajectories", "final", "final_state", "alive", "hist", "loss_hist", "outside", "moments",
                 "trace", "diverged"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if case == 2:
        assert a.n_diverged > 0  # the control: the chains did diverge (and froze)


_PROBE = """
import json, sys
import gibbs_sgd as gs
from gibbs_sgd.kernels import cpu
run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), n_chains=200, n_steps=20, progress=False)
mod = cpu.build(gs.landscapes.Quadratic(1.0), gs.noise.Gaussian(), gs.optimizers.SGD(lr=0.1), 1)
stats = mod.run_segment.stats
print(json.dumps({"isa": cpu.target_isa()["isa"], "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "mean": float(run.mean_loss.value)}))
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="an x86-64 target override")
def test_target_override_reaches_kernels_and_cache(tmp_path):
    def probe(**env):
        full = {**os.environ, "GIBBS_SGD_CACHE_DIR": str(tmp_path), **env}
        for k in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
            if k not in env:
                full.pop(k, None)
        out = subprocess.run([sys.executable, "-c", _PROBE], env=full, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    avx2 = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}
    first = probe(**avx2)
    assert first["isa"] == "AVX2" and first["misses"] == 1 and first["hits"] == 0
    again = probe(**avx2)
    assert again["hits"] == 1 and again["misses"] == 0  # the same target: loaded from the cache
    host = probe()
    if host["isa"] != "AVX2":
        assert host["misses"] == 1 and host["hits"] == 0  # another target: compiled, not the AVX2 code
    assert host["mean"] == first["mean"] == again["mean"]  # and the same numbers, bit for bit
