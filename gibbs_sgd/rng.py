"""Counter-based random numbers: Philox4x32-10 and the normal deviates built from it.

Every random number a chain uses is a pure function of ``(seed, chain, step, call)``:

* key     = ``(seed mod 2**32, seed div 2**32)``  -- two 32-bit words,
* counter = ``(step, call, chain mod 2**32, chain div 2**32)`` -- four 32-bit words,

where ``call`` numbers the Philox calls a chain makes within one step. Nothing else enters
(not the number of chains, the chunking, the thread count or the backend), which is what
makes a chain's trajectory reproducible bit for bit under any layout.

The Gaussian-noise stream (:func:`gaussian_normals`) shares each call between the two chains
of a *pair*: the ``k``-th normal of chain ``i`` at a step is half ``i mod 2`` of call ``k`` of
"chain" ``i div 2`` (the pair index takes the chain's place in the counter). Every normal
drawn is used -- one call per dimension per pair, so a 1-D chain costs half a Philox call and
half a Box-Muller transform per step instead of a whole one whose second normal is thrown
away -- and the stream is still a function of (seed, chain, step) alone. Data-set noise draws
per chain (counter chain word = the chain itself).

Philox4x32-10 is the counter-based generator of Salmon et al., "Parallel random numbers: as
easy as 1, 2, 3" (SC'11), also cuRAND's ``CURAND_RNG_PSEUDO_PHILOX4_32_10``. Ten rounds is
the authors' recommended count: seven already pass BigCrush; the three extra rounds are the
published safety margin, and the same constant is what cuRAND uses, so GPU and CPU agree.

Normal deviates -- Box-Muller on 53-bit uniforms
-------------------------------------------------
One Philox call yields four 32-bit words ``w0..w3`` and is turned into two normals::

    u = (floor-53-bit integer of (w0, w1) + 1) * 2**-53     in (0, 1]
    v =  floor-53-bit integer of (w2, w3)      * 2**-53     in [0, 1)
    r = sqrt(-2 log u),   z0 = r cos(2 pi v),   z1 = r sin(2 pi v)

Why this method:

* Exact tails. ``P(r > x) = exp(-x**2/2)`` exactly for the continuous uniform; with a 53-bit
  ``u`` the discretisation error of that tail probability is at most ``2**-53`` absolute, so
  at 6 sigma (tail mass 1.5e-8 per pair) the relative error is below 1e-8 and the largest
  deviate is ``sqrt(2 * 53 ln 2) = 8.57`` sigma. A 32-bit ``u`` would cap at 6.66 sigma and
  resolve the region beyond 6 sigma with only about 65 distinct radii, so it is not used.
* Fixed cost, no rejection: exactly one Philox call per two normals, so a chain's stream
  position never depends on the values drawn, and SIMD lanes (CPU) or warp threads (GPU) never
  diverge. A ziggurat is faster per scalar but branches and consumes a data-dependent number
  of words.
* Same formula on every backend: ``log``, ``sin`` and ``cos`` are evaluated by the
  polynomials below (accurate to about 1 ulp; within 3e-15 absolute of libm on 10^6 pairs),
  which vectorise on the CPU and compile unchanged for the GPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "philox4x32_10",
    "seed_key",
    "normals",
    "uniforms",
    "gaussian_normals",
    "MAX_SEED",
]

MAX_SEED = 2**64 - 1

# Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, table 2; the golden
# ratio and sqrt(3)-1 in 32-bit fixed point). Kept as uint64 so that every product of two
# 32-bit words is exact and Numba never mixes signed and unsigned types (which it would
# promote to float64).
_M32 = np.uint64(0xFFFFFFFF)
_MUL0 = np.uint64(0xD2511F53)
_MUL1 = np.uint64(0xCD9E8D57)
_WEYL0 = np.uint64(0x9E3779B9)
_WEYL1 = np.uint64(0xBB67AE85)
_SH32 = np.uint64(32)
_SH21 = np.uint64(21)
_SH11 = np.uint64(11)
_TWO_M53 = 2.0**-53
_TWO_PI = 2.0 * np.pi
N_ROUNDS = 10


@njit(cache=True, inline="always")
def philox_words(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 values holding 32-bit words; returns the four output words."""
    for _ in range(N_ROUNDS):
        p0 = _MUL0 * c0
        p1 = _MUL1 * c2
        n0 = (p1 >> _SH32) ^ c1 ^ k0
        n2 = (p0 >> _SH32) ^ c3 ^ k1
        c1 = p1 & _M32
        c3 = p0 & _M32
        c0 = n0
        c2 = n2
        k0 = (k0 + _WEYL0) & _M32
        k1 = (k1 + _WEYL1) & _M32
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def stream_words(k0, k1, chain, step, call):
    """The four words of Philox call ``call`` of chain ``chain`` at step ``step``."""
    ch = np.uint64(chain)
    return philox_words(np.uint64(step), np.uint64(call), ch & _M32, ch >> _SH32, k0, k1)


# The 53-bit integer k = wa * 2**21 + (wb >> 11) of two 32-bit words is formed in floating point,
# from the two parts converted as 32-bit unsigned integers: both products and the sum are exact
# (k < 2**53), so the value is the integer's bit for bit. Why not np.float64(k) of the uint64:
# a 64-bit integer to float64 conversion exists as a vector instruction on AVX-512 only; AVX2
# and NEON then convert lane by lane through scalar registers, which made the AVX2 generator
# 3x slower than the AVX-512 one. A 32-bit unsigned word converts in vector registers on every
# SIMD instruction set (LLVM's 2**52 exponent-bias form on AVX2, a native conversion elsewhere).
_TWO_21 = 2.0**21


@njit(cache=True, inline="always")
def _k53(wa, wb):
    """``float(wa * 2**21 + (wb >> 11))`` exactly, for 32-bit words ``wa``, ``wb`` (held in uint64)."""
    return np.float64(np.uint32(wa)) * _TWO_21 + np.float64(np.uint32(wb >> _SH11))


@njit(cache=True, inline="always")
def open_uniform(wa, wb):
    """53-bit uniform in (0, 1] from two words (never 0, so its log is finite)."""
    return (_k53(wa, wb) + 1.0) * _TWO_M53


@njit(cache=True, inline="always")
def half_open_uniform(wa, wb):
    """53-bit uniform in [0, 1) from two words."""
    return _k53(wa, wb) * _TWO_M53


# Transcendentals of the normal transform, as plain polynomials so that the loop over a tile
# of chains vectorises (Numba has no vector libm here; scalar libm log/sin/cos ran at 35 M
# pairs/s on 2 cores, these at 357 M) and so that every backend evaluates the same formulas.
#
# log(m) for m in [1/sqrt 2, sqrt 2): with s = (m - 1)/(m + 1), |s| <= 0.1716,
# log m = 2 atanh s = 2 sum_k s^(2k+1)/(2k+1); twelve terms leave a truncation error below
# 0.1716^25/25 ~ 3e-21, far under one ulp. The exponent is added back as e*ln2 with ln2 split
# into a 32-bit head (exact products e*LN2_HI for |e| <= 2^20) and its tail (Cody & Waite).
_LOG_C = tuple(1.0 / (2 * k + 1) for k in range(12))
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951
_MANT_BITS = np.uint64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.uint64(0x3FF0000000000000)
_SH52 = np.uint64(52)
_EXP_MASK = np.uint64(0x7FF)
# sin and cos of 2 pi w for |w| <= 1/8 (|a| <= pi/4): Taylor series to a^17/17! and a^18/18!,
# truncation below (pi/4)^19/19! ~ 1e-19. The quadrant q = round(4v) is applied by exact sign
# flips and a swap written as arithmetic (a branch-free select keeps the loop vectorisable).
_SIN_C = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(9))
_COS_C = tuple((-1) ** k / math.factorial(2 * k) for k in range(10))


@njit(cache=True, inline="always")
def _log_reduced(m, e):
    """``log(m * 2**e)`` for ``m`` in [1, 2) (``e`` a float holding an integer)."""
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1.0 if big else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = _LOG_C[11]
    p = p * s2 + _LOG_C[10]
    p = p * s2 + _LOG_C[9]
    p = p * s2 + _LOG_C[8]
    p = p * s2 + _LOG_C[7]
    p = p * s2 + _LOG_C[6]
    p = p * s2 + _LOG_C[5]
    p = p * s2 + _LOG_C[4]
    p = p * s2 + _LOG_C[3]
    p = p * s2 + _LOG_C[2]
    p = p * s2 + _LOG_C[1]
    p = p * s2 + _LOG_C[0]
    return e * _LN2_HI + (2.0 * s * p + e * _LN2_LO)


_TWO_52 = 2.0**52


@njit(cache=True, inline="always")
def _floor(y):
    """``floor(y)`` for ``0 <= y < 2**52`` as a float, by adding and removing 2**52 (round to the
    nearest integer) and stepping down where that rounded up. Not ``math.floor``: Numba's returns
    an int64 (Python's semantics), and the conversions to and back from it have vector
    instructions on AVX-512 only."""
    r = (y + _TWO_52) - _TWO_52
    return r - 1.0 if r > y else r


@njit(cache=True, inline="always")
def _sincos_2pi(v):
    """``(cos 2 pi v, sin 2 pi v)`` for ``v`` in [0, 1]."""
    # the quadrant q = round(4v) in {0, ..., 4} and its bits, in floating point (exact for such
    # small integers): float <-> int64 conversions and 64-bit arithmetic shifts have vector
    # instructions on AVX-512 only, and would make AVX2 / NEON code convert lane by lane
    q = _floor(4.0 * v + 0.5)
    a = _TWO_PI * (v - 0.25 * q)  # exact reduction: v - q/4 has no rounding error
    a2 = a * a
    sp = _SIN_C[8]
    sp = sp * a2 + _SIN_C[7]
    sp = sp * a2 + _SIN_C[6]
    sp = sp * a2 + _SIN_C[5]
    sp = sp * a2 + _SIN_C[4]
    sp = sp * a2 + _SIN_C[3]
    sp = sp * a2 + _SIN_C[2]
    sp = sp * a2 + _SIN_C[1]
    sp = sp * a2 + _SIN_C[0]
    sn = a * sp
    cp = _COS_C[9]
    cp = cp * a2 + _COS_C[8]
    cp = cp * a2 + _COS_C[7]
    cp = cp * a2 + _COS_C[6]
    cp = cp * a2 + _COS_C[5]
    cp = cp * a2 + _COS_C[4]
    cp = cp * a2 + _COS_C[3]
    cp = cp * a2 + _COS_C[2]
    cp = cp * a2 + _COS_C[1]
    cp = cp * a2 + _COS_C[0]
    half = _floor(0.5 * q)  # q >> 1
    odd = q - 2.0 * half  # q & 1: quadrants 1, 3 swap cos and sin
    half_up = _floor(0.5 * q + 0.5)  # (q + 1) >> 1
    sign_c = 1.0 - 2.0 * (half_up - 2.0 * _floor(0.5 * half_up))  # cos sign per quadrant: + - - +
    sign_s = 1.0 - 2.0 * (half - 2.0 * _floor(0.5 * half))  # sin sign per quadrant: + + - -
    return sign_c * (cp + odd * (sn - cp)), sign_s * (sn + odd * (cp - sn))


@njit(cache=True, inline="always")
def box_muller(u, v):
    """Two independent standard normals from ``u`` in (0, 1] and ``v`` in [0, 1)."""
    m, e = math.frexp(u)  # u = m 2^e, m in [1/2, 1)
    r = math.sqrt(-2.0 * _log_reduced(2.0 * m, np.float64(e - 1)))
    c, s = _sincos_2pi(v)
    return r * c, r * s


@njit(cache=True, inline="always")
def box_muller_tile(u, v, z0, z1, bits, nc):
    """Box-Muller over a tile: ``z0[c], z1[c]`` from ``u[c], v[c]`` for ``c < nc``.

    The same values as :func:`box_muller`, bit for bit, written as three loops that LLVM
    vectorises (the exponent is read from the bits of ``u`` through an int64 view; ``bits``
    is int64 scratch of the tile's length; ``u`` is overwritten with the radii).
    """
    ub = u.view(np.uint64)
    mant = bits.view(np.float64)
    for c in range(nc):
        bits[c] = (ub[c] & _MANT_BITS) | _ONE_BITS
    for c in range(nc):
        # the biased exponent by a logical shift of the unsigned bits (u > 0), converted as a
        # 32-bit integer: both have vector instructions on AVX2 and NEON, unlike an arithmetic
        # shift of an int64 or an int64 -> float64 conversion
        e = np.float64(np.int32((ub[c] >> _SH52) & _EXP_MASK)) - 1023.0
        u[c] = math.sqrt(-2.0 * _log_reduced(mant[c], e))
    for c in range(nc):
        cs, sn = _sincos_2pi(v[c])
        z0[c] = u[c] * cs
        z1[c] = u[c] * sn


@njit(cache=True, inline="always")
def normal_pair(k0, k1, chain, step, call):
    """The two normals of Philox call ``call`` of a chain's stream at ``step``."""
    w0, w1, w2, w3 = stream_words(k0, k1, chain, step, call)
    return box_muller(open_uniform(w0, w1), half_open_uniform(w2, w3))


@njit(cache=True, inline="always")
def uniform_pair(k0, k1, chain, step, call):
    """Two 53-bit uniforms in [0, 1) of Philox call ``call`` (used for data-set indices)."""
    w0, w1, w2, w3 = stream_words(k0, k1, chain, step, call)
    return half_open_uniform(w0, w1), half_open_uniform(w2, w3)


def seed_key(seed) -> tuple[np.uint64, np.uint64]:
    """The Philox key ``(seed mod 2**32, seed div 2**32)`` of an integer seed in [0, 2**64)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer in [0, 2**64 - 1], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**64 - 1], got {seed}")
    return np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 of one counter under one key.

    Parameters
    ----------
    counter : sequence of 4 ints in [0, 2**32)
    key : sequence of 2 ints in [0, 2**32)

    Returns
    -------
    numpy.ndarray, shape (4,), dtype uint32

    Example
    -------
    >>> philox4x32_10([0, 0, 0, 0], [0, 0]).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    True
    """
    c = [int(x) for x in counter]
    k = [int(x) for x in key]
    if len(c) != 4 or len(k) != 2:
        raise ValueError("counter must hold 4 words and key 2 words")
    if any(not 0 <= x < 2**32 for x in c + k):
        raise ValueError("counter and key words must lie in [0, 2**32)")
    out = philox_words(*(np.uint64(x) for x in c), np.uint64(k[0]), np.uint64(k[1]))
    return np.array([int(x) for x in out], dtype=np.uint32)


@njit(cache=True)
def _fill_normals(k0, k1, chains, step, n, out):
    for i in range(chains.shape[0]):
        for j in range((n + 1) // 2):
            z0, z1 = normal_pair(k0, k1, chains[i], step, j)
            out[i, 2 * j] = z0
            if 2 * j + 1 < n:
                out[i, 2 * j + 1] = z1


@njit(cache=True)
def _fill_uniforms(k0, k1, chains, step, n, out):
    for i in range(chains.shape[0]):
        for j in range((n + 1) // 2):
            a, b = uniform_pair(k0, k1, chains[i], step, j)
            out[i, 2 * j] = a
            if 2 * j + 1 < n:
                out[i, 2 * j + 1] = b


def _chains_array(chains) -> np.ndarray:
    if isinstance(chains, np.ndarray) and chains.dtype.kind in "ui":
        arr = np.atleast_1d(chains)
        if arr.dtype.kind == "i" and (arr < 0).any():
            raise ValueError("chains must be non-negative integers < 2**64")
        return arr.astype(np.uint64).ravel() if arr.ndim <= 1 else _bad_chains()
    items = [chains] if isinstance(chains, (int, np.integer)) else list(chains)
    if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < 2**64 for c in items):
        _bad_chains()
    return np.array([int(c) for c in items], dtype=np.uint64)


def _bad_chains():
    raise ValueError("chains must be an integer or a 1-D sequence of integers in [0, 2**64)")


def _check_counter(name, value, hi) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < hi:
        raise ValueError(f"{name} must be an integer in [0, {hi}), got {value!r}")
    return int(value)


def normals(seed, chains, step: int, n: int) -> np.ndarray:
    """The first ``n`` normals of each chain's stream at ``step`` (what the kernels draw).

    Parameters
    ----------
    seed : int in [0, 2**64)
    chains : int or 1-D array of non-negative ints
    step : int in [0, 2**32)
    n : int >= 0, normals per chain (Philox call ``j`` gives normals ``2j`` and ``2j+1``)

    Returns
    -------
    numpy.ndarray, shape (len(chains), n), float64

    Example
    -------
    >>> normals(0, [0, 1], step=0, n=3).shape
    (2, 3)
    """
    k0, k1 = seed_key(seed)
    ch = _chains_array(chains)
    step = _check_counter("step", step, 2**32)
    n = _check_counter("n", n, 2**33)
    out = np.empty((ch.shape[0], n), dtype=np.float64)
    _fill_normals(k0, k1, ch, np.uint64(step), n, out)
    return out


def uniforms(seed, chains, step: int, n: int) -> np.ndarray:
    """The first ``n`` uniforms in [0, 1) of each chain's stream at ``step`` (as ``normals``)."""
    k0, k1 = seed_key(seed)
    ch = _chains_array(chains)
    step = _check_counter("step", step, 2**32)
    n = _check_counter("n", n, 2**33)
    out = np.empty((ch.shape[0], n), dtype=np.float64)
    _fill_uniforms(k0, k1, ch, np.uint64(step), n, out)
    return out


def gaussian_normals(seed, chains, step: int, n: int) -> np.ndarray:
    """The ``n`` normals chain ``i`` uses at ``step`` under Gaussian noise (the pair layout).

    Normal ``k`` of chain ``i`` is normal ``2k + (i mod 2)`` of :func:`normals` of the pair
    ``i div 2``: both chains of a pair share Philox call ``k``.

    Returns
    -------
    numpy.ndarray, shape (len(chains), n), float64

    Example
    -------
    >>> z = gaussian_normals(0, [4, 5], step=0, n=1)
    >>> bool(z[0, 0] == normals(0, [2], 0, 2)[0, 0] and z[1, 0] == normals(0, [2], 0, 2)[0, 1])
    True
    """
    ch = _chains_array(chains)
    n = _check_counter("n", n, 2**32)
    pairs = normals(seed, ch // np.uint64(2), step, 2 * n)
    half = (ch % np.uint64(2)).astype(np.int64)
    return pairs[np.arange(ch.shape[0])[:, None], 2 * np.arange(n)[None, :] + half[:, None]]
