"""Independent pure-NumPy reference for ``gibbs_sgd.rng`` (slow, vectorised, for tests only).

Written from the specification, not from ``gibbs_sgd/rng.py`` (nothing is imported from it):

* Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
  SC'11). One round maps counter ``(c0, c1, c2, c3)`` under key ``(k0, k1)`` to::

      hi0:lo0 = 0xD2511F53 * c0          (64-bit product split in two 32-bit halves)
      hi1:lo1 = 0xCD9E8D57 * c2
      (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

  and the key is bumped by the Weyl increments ``(0x9E3779B9, 0xBB67AE85)`` (mod 2**32)
  between rounds. Ten rounds.

* Stream layout: key = ``(seed mod 2**32, seed div 2**32)``; counter =
  ``(step, call, chain mod 2**32, chain div 2**32)``.

* Philox call ``j`` of a chain at a step gives words ``w0..w3`` and

  - normals ``2j`` and ``2j+1``: with ``int53(a, b) = (a << 21) | (b >> 11)``,
    ``u = (int53(w0, w1) + 1) * 2**-53`` in (0, 1], ``v = int53(w2, w3) * 2**-53`` in [0, 1),
    ``r = sqrt(-2 log u)``, ``z0 = r cos(2 pi v)``, ``z1 = r sin(2 pi v)``;
  - uniforms ``2j`` and ``2j+1``: ``int53(w0, w1) * 2**-53`` and ``int53(w2, w3) * 2**-53``.

Public API (all array arguments follow NumPy broadcasting):

``philox4x32_10(counter, key)``      raw block function on arrays of 32-bit words
``ref_words(seed, chains, step, call)``  the four words of one Philox call of each chain
``ref_normals(seed, chains, step, n)``   (len(chains), n) float64 normals
``ref_uniforms(seed, chains, step, n)``  (len(chains), n) float64 uniforms in [0, 1)

Words are carried in ``uint64`` arrays so every 32 x 32-bit product is exact; the public
stream functions return them as ``uint32``. Transcendentals are NumPy's ``log``, ``cos`` and
``sin``, so normals agree with a libm/Numba implementation to a few ulp, not bitwise;
uniforms involve only exact integer and power-of-two arithmetic and agree bitwise.
"""
from __future__ import annotations

import numpy as np

__all__ = ["philox4x32_10", "ref_words", "ref_normals", "ref_uniforms", "TWO_M53"]

_MASK32 = np.uint64(0xFFFFFFFF)
_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_WEYL = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))
_ROUNDS = 10
TWO_M53 = 2.0**-53  #: spacing of the 53-bit uniforms


def _as_words(x, name: str, bits: int = 32) -> np.ndarray:
    """``x`` (int or integer array-like) as a uint64 array, checked to lie in [0, 2**bits)."""
    # Non-arrays go through dtype=object so that Python ints are checked exactly: NumPy would
    # turn e.g. [0, 2**64 - 1] into float64 and 2**64 into an object array.
    arr = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=object)
    if arr.dtype == object:
        flat = arr.ravel().tolist()
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                   for v in flat):
            raise TypeError(f"{name} must hold integers")
        if any(not 0 <= int(v) < 2**bits for v in flat):
            raise ValueError(f"{name} must lie in [0, 2**{bits})")
        return np.array([int(v) for v in flat], dtype=np.uint64).reshape(arr.shape)
    if arr.dtype.kind not in "iu":  # floats and bools are never accepted
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.size:
        if arr.dtype.kind == "i" and arr.min() < 0:
            raise ValueError(f"{name} must lie in [0, 2**{bits})")
        if bits < 64 and int(arr.max()) >= 2**bits:
            raise ValueError(f"{name} must lie in [0, 2**{bits})")
    return arr.astype(np.uint64)


def philox4x32_10(counter, key):
    """Philox4x32-10 of (arrays of) counters under (arrays of) keys.

    Parameters
    ----------
    counter : sequence of 4 ints or integer arrays, each word in [0, 2**32)
    key : sequence of 2 ints or integer arrays, each word in [0, 2**32)
        All six words broadcast against each other.

    Returns
    -------
    tuple of 4 uint64 arrays (the output words, each in [0, 2**32)), of the broadcast shape.
    """
    if len(counter) != 4 or len(key) != 2:
        raise ValueError("counter must hold 4 words and key 2 words")
    c0, c1, c2, c3 = (_as_words(w, "counter") for w in counter)
    k0, k1 = (_as_words(w, "key") for w in key)
    c0, c1, c2, c3, k0, k1 = np.broadcast_arrays(c0, c1, c2, c3, k0, k1)
    m0, m1 = _MULTIPLIERS
    for rnd in range(_ROUNDS):
        if rnd:
            k0 = (k0 + _WEYL[0]) & _MASK32
            k1 = (k1 + _WEYL[1]) & _MASK32
        prod0 = m0 * c0  # < 2**64: exact in uint64
        prod1 = m1 * c2
        hi0, lo0 = prod0 >> np.uint64(32), prod0 & _MASK32
        hi1, lo1 = prod1 >> np.uint64(32), prod1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _key(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
    return seed & 0xFFFFFFFF, seed >> 32


def _words64(seed, chains, step, call):
    k0, k1 = _key(seed)
    ch = _as_words(chains, "chains", bits=64)
    st = _as_words(step, "step")
    cl = _as_words(call, "call")
    return philox4x32_10((st, cl, ch & _MASK32, ch >> np.uint64(32)), (k0, k1))


def ref_words(seed, chains, step, call):
    """The four words of Philox call ``call`` of each chain at ``step``.

    Parameters
    ----------
    seed : int in [0, 2**64)
    chains : int or integer array, each in [0, 2**64)
    step, call : int or integer array, each in [0, 2**32)
        ``chains``, ``step`` and ``call`` broadcast against each other.

    Returns
    -------
    tuple of 4 uint32 arrays ``(w0, w1, w2, w3)`` of the broadcast shape.
    """
    return tuple(w.astype(np.uint32) for w in _words64(seed, chains, step, call))


def _int53(wa, wb):
    """The 53-bit integer ``(wa << 21) | (wb >> 11)`` as an exact float64 (uint64 inputs)."""
    return ((wa << np.uint64(21)) | (wb >> np.uint64(11))).astype(np.float64)


def _calls(seed, chains, step, n):
    """Words of calls 0..ceil(n/2)-1 of each chain, each of shape (len(chains), ceil(n/2))."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    ch = np.atleast_1d(_as_words(chains, "chains", bits=64))
    if ch.ndim != 1:
        raise ValueError("chains must be an int or a 1-D array")
    calls = np.arange((int(n) + 1) // 2, dtype=np.uint64)
    return _words64(seed, ch[:, None], step, calls[None, :])


def _interleave(a, b, n):
    out = np.empty((a.shape[0], 2 * a.shape[1]), dtype=np.float64)
    out[:, 0::2] = a
    out[:, 1::2] = b
    return out[:, :n]


def ref_normals(seed, chains, step, n):
    """The first ``n`` Box-Muller normals of each chain's stream at ``step``.

    Philox call ``j`` gives normals ``2j`` (cosine branch) and ``2j+1`` (sine branch); for odd
    ``n`` the last sine is dropped.

    Parameters
    ----------
    seed : int in [0, 2**64)
    chains : int or 1-D integer array-like, each in [0, 2**64)
    step : int in [0, 2**32)
    n : int >= 0

    Returns
    -------
    numpy.ndarray, shape (len(chains), n), float64
    """
    w0, w1, w2, w3 = _calls(seed, chains, step, n)
    u = (_int53(w0, w1) + 1.0) * TWO_M53
    v = _int53(w2, w3) * TWO_M53
    r = np.sqrt(-2.0 * np.log(u))
    angle = (2.0 * np.pi) * v
    return _interleave(r * np.cos(angle), r * np.sin(angle), n)


def ref_uniforms(seed, chains, step, n):
    """The first ``n`` 53-bit uniforms in [0, 1) of each chain's stream at ``step``.

    Philox call ``j`` gives uniforms ``2j`` (from ``w0, w1``) and ``2j+1`` (from ``w2, w3``).
    Parameters as for ``ref_normals``.

    Returns
    -------
    numpy.ndarray, shape (len(chains), n), float64
    """
    w0, w1, w2, w3 = _calls(seed, chains, step, n)
    return _interleave(_int53(w0, w1) * TWO_M53, _int53(w2, w3) * TWO_M53, n)
