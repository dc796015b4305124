"""Tests of ``gibbs_sgd.rng``: Philox4x32-10, the stream layout, and the normal/uniform deviates.

Three kinds of checks:

1. Exactness: the published Random123 known-answer vectors, and agreement of ``normals`` /
   ``uniforms`` with the independent NumPy reference in ``tests/reference_rng.py``.
2. Stream purity: a chain's numbers depend on ``(seed, chain, step, call)`` only.
3. Statistics on ~4 million deviates. Each statistic is turned into a z-score using the exact
   null mean and standard error of its estimator (so z is N(0, 1) up to CLT corrections that
   are negligible at these sizes), or a p-value. Each has a NEGATIVE CONTROL: a deliberately
   wrong sample that the very same check must reject, with the expected z of the control
   computed from the size of the defect (so a check that could never fail is caught).

Error budget: every z-test asserts ``|z| < 5``; for a correct generator and a random seed the
false-alarm probability is ``P(|N(0,1)| > 5) = 5.7e-7`` per test, and p-value tests use
``p > 1e-6``. With 17 z-tests and 2 p-value tests on correct samples the whole suite has a
false-alarm rate of about 1.2e-5 per seed. The seeds are fixed, so the outcome is
deterministic; the rate says how unlucky a seed would have to be for a correct generator to
fail.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gibbs_sgd import rng

try:
    from reference_rng import philox4x32_10 as ref_philox
    from reference_rng import ref_normals, ref_uniforms, ref_words
except ImportError:  # tests/ imported as a package
    from tests.reference_rng import philox4x32_10 as ref_philox
    from tests.reference_rng import ref_normals, ref_uniforms, ref_words

Z_BOUND = 5.0  # two-sided false-alarm rate 2 * norm.sf(5) = 5.7e-7 per test
P_MIN = 1e-6  # false-alarm rate 1e-6 per p-value test
M32 = 0xFFFFFFFF
R53 = math.sqrt(2.0 * 53.0 * math.log(2.0))  # largest |normal| a 53-bit u can give: 8.5717
R32 = math.sqrt(2.0 * 32.0 * math.log(2.0))  # the same for a 32-bit u: 6.6604

# Raw moments E z^k of N(0, 1): (k-1)!! for even k, 0 for odd k.
NORMAL_MOMENT = {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0, 4: 3.0, 5: 0.0, 6: 15.0, 7: 0.0, 8: 105.0}

# Statistical sample: 4096 chains x 1024 normals = 2**22 numbers. The chains straddle the
# 2**32 boundary (so both counter words of the chain id are exercised) and the seed uses both
# key words.
STAT_SEED = 2**40 + 0x5EED
STAT_STEP = 1000
STAT_CHAINS = np.arange(2**32 - 2048, 2**32 + 2048, dtype=np.uint64)
STAT_N = 1024
N_STAT = STAT_CHAINS.size * STAT_N  # 4_194_304; sqrt = 2048


# ----------------------------------------------------------------------------------------
# Known-answer tests (Random123 kat_vectors, philox4x32 with 10 rounds)
# ----------------------------------------------------------------------------------------

KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32, M32, M32, M32), (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers(counter, key, expected):
    out = rng.philox4x32_10(counter, key)
    assert out.dtype == np.uint32 and out.shape == (4,)
    assert [int(w) for w in out] == list(expected)
    assert [int(w) for w in ref_philox(counter, key)] == list(expected)


def test_reference_philox_known_answers_vectorised():
    """The reference evaluates all three vectors in one broadcast call."""
    ctr = np.array([c for c, _, _ in KAT], dtype=np.uint64).T
    key = np.array([k for _, k, _ in KAT], dtype=np.uint64).T
    out = np.stack(ref_philox(tuple(ctr), tuple(key)), axis=1)
    assert out.tolist() == [list(e) for _, _, e in KAT]


# ----------------------------------------------------------------------------------------
# Stream layout and agreement with the reference
# ----------------------------------------------------------------------------------------

def _int53(a: int, b: int) -> int:
    return (a << 21) | (b >> 11)


@pytest.mark.parametrize(
    "seed, chain, step, call",
    [
        (0, 0, 0, 0),
        (1, 2, 3, 4),
        (2**32 + 5, 2**32 + 7, 11, 2),
        (2**64 - 1, 2**64 - 1, 2**32 - 1, 6),
        (0xDEADBEEFCAFEF00D, 0x123456789, 0xABCDE, 3),
    ],
)
def test_stream_layout(seed, chain, step, call):
    """key = (seed mod 2^32, seed div 2^32), counter = (step, call, chain lo, chain hi),
    checked through the known-answer-verified block function, not through the reference."""
    w = [int(x) for x in rng.philox4x32_10([step, call, chain & M32, chain >> 32],
                                           [seed & M32, seed >> 32])]
    assert [int(x[()]) for x in ref_words(seed, chain, step, call)] == w
    n = 2 * call + 2
    chains = np.array([chain], dtype=np.uint64)
    uni = rng.uniforms(seed, chains, step, n)[0, 2 * call:]
    assert uni.tolist() == [_int53(w[0], w[1]) * 2.0**-53, _int53(w[2], w[3]) * 2.0**-53]
    u = (_int53(w[0], w[1]) + 1) * 2.0**-53
    v = _int53(w[2], w[3]) * 2.0**-53
    r = math.sqrt(-2.0 * math.log(u))
    expected = [r * math.cos(2.0 * math.pi * v), r * math.sin(2.0 * math.pi * v)]
    got = rng.normals(seed, chains, step, n)[0, 2 * call:]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-14)


EQUIVALENCE_CASES = [
    # seed, chains, step, n
    (0, [0, 1, 2, 3], 0, 1),
    (1, list(range(50)), 1, 33),
    (2**32 - 1, [2**32 - 1, 2**32, 2**32 + 1], 7, 9),
    (2**32, [0, 5, 2**33 + 3], 2**31, 6),
    (2**64 - 1, [0, 2**63, 2**64 - 1], 2**32 - 1, 5),
    (0xDEADBEEFCAFEF00D, [c * (2**32 + 12345) for c in range(300)], 123456, 101),
    (987654321, list(range(1500)), 3, 257),
    (42, [3, 1, 4], 5, 0),
]


def _assert_close_rel_or_abs(got, ref, tol=1e-14):
    assert got.shape == ref.shape and got.dtype == np.float64
    assert np.all(np.isfinite(got))
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert err.size == 0 or err.max() <= tol, f"max rel-or-abs error {err.max():.3g}"


@pytest.mark.parametrize("seed, chains, step, n", EQUIVALENCE_CASES)
def test_normals_match_reference(seed, chains, step, n):
    got = rng.normals(seed, np.array(chains, dtype=np.uint64), step, n)
    ref = ref_normals(seed, chains, step, n)
    assert ref.shape == (len(chains), n)
    _assert_close_rel_or_abs(got, ref)


@pytest.mark.parametrize("seed, chains, step, n", EQUIVALENCE_CASES)
def test_uniforms_match_reference_exactly(seed, chains, step, n):
    got = rng.uniforms(seed, np.array(chains, dtype=np.uint64), step, n)
    ref = ref_uniforms(seed, chains, step, n)
    assert got.shape == ref.shape == (len(chains), n)
    assert np.array_equal(got, ref)
    assert got.size == 0 or (got.min() >= 0.0 and got.max() < 1.0)


def test_reference_rejects_out_of_range_stream_arguments():
    for kwargs in (dict(step=2**32), dict(step=-1), dict(call=2**32), dict(chains=2**64),
                   dict(chains=-1)):
        args = dict(seed=0, chains=0, step=0, call=0) | kwargs
        with pytest.raises(ValueError):
            ref_words(**args)
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed"):
            ref_normals(seed, [0], 0, 2)
    for seed in (1.0, True):
        with pytest.raises(TypeError, match="seed"):
            ref_normals(seed, [0], 0, 2)


# ----------------------------------------------------------------------------------------
# Stream purity
# ----------------------------------------------------------------------------------------

PURITY_SEED = 2**33 + 99
PURITY_CHAINS = np.array(list(range(40)) + [2**32 - 3 + i for i in range(6)] + [2**64 - 1],
                         dtype=np.uint64)


@pytest.mark.parametrize("draw", [rng.normals, rng.uniforms], ids=["normals", "uniforms"])
def test_chain_stream_independent_of_other_chains(draw):
    full = draw(PURITY_SEED, PURITY_CHAINS, 17, 37)
    pick = np.array([45, 3, 0, 41, 3, 46, 39])
    sub = draw(PURITY_SEED, PURITY_CHAINS[pick], 17, 37)
    assert np.array_equal(sub, full[pick])  # bitwise, any order, duplicates allowed
    for i in (0, 41, 46):
        assert np.array_equal(draw(PURITY_SEED, PURITY_CHAINS[i], 17, 37)[0], full[i])
    chunks = np.concatenate([draw(PURITY_SEED, PURITY_CHAINS[a:a + 10], 17, 37)
                             for a in range(0, PURITY_CHAINS.size, 10)])
    assert np.array_equal(chunks, full)


@pytest.mark.parametrize("draw", [rng.normals, rng.uniforms], ids=["normals", "uniforms"])
def test_stream_prefix_independent_of_n(draw):
    full = draw(PURITY_SEED, PURITY_CHAINS, 5, 37)
    for n in (0, 1, 2, 9, 36):
        assert np.array_equal(draw(PURITY_SEED, PURITY_CHAINS, 5, n), full[:, :n])


def test_streams_differ_across_seed_step_and_chain_words():
    """Each of the six key/counter words changes the stream (none is silently dropped)."""
    base = rng.uniforms(5, [7], 9, 4)
    for seed, chain, step in [(5 + 1, 7, 9), (5 + 2**32, 7, 9), (5, 7 + 1, 9),
                              (5, 7 + 2**32, 9), (5, 7, 9 + 1)]:
        assert not np.any(rng.uniforms(seed, [chain], step, 4) == base)
    # call: the second pair is not the first pair again
    two_calls = rng.uniforms(5, [7], 9, 4)[0]
    assert not np.any(two_calls[:2] == two_calls[2:])


def test_step_out_of_range_is_rejected():
    # step = s + m 2^32 would alias another chain's stream at step s: it must be refused.
    for bad in (2**32, -1, 1.5):
        with pytest.raises(ValueError, match="step"):
            rng.normals(0, [0], bad, 4)
        with pytest.raises(ValueError, match="step"):
            rng.uniforms(0, [0], bad, 4)


def test_chain_lists_spanning_the_uint64_range():
    both = rng.normals(3, [0, 2**64 - 1], 1, 2)
    assert np.array_equal(both[1], rng.normals(3, np.array([2**64 - 1], np.uint64), 1, 2)[0])
    assert rng.normals(3, [], 1, 2).shape == (0, 2)
    for bad in ([-1], [2**64], [1.0], [True]):
        with pytest.raises(ValueError, match="chains"):
            rng.normals(3, bad, 1, 2)


# ----------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------

def test_seed_key_accepts_the_full_range():
    assert rng.seed_key(0) == (0, 0)
    assert rng.seed_key(2**64 - 1) == (M32, M32)
    assert rng.seed_key(np.uint64(2**64 - 1)) == (M32, M32)
    assert rng.seed_key(np.int64(2**32 + 5)) == (5, 1)
    assert rng.seed_key(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)


@pytest.mark.parametrize("seed", [-1, np.int64(-5), 2**64, 2**70])
def test_seed_key_rejects_out_of_range(seed):
    with pytest.raises(ValueError, match=r"\bseed\b"):
        rng.seed_key(seed)
    with pytest.raises(ValueError, match=r"\bseed\b"):
        rng.normals(seed, [0], 0, 2)


@pytest.mark.parametrize("seed", [1.0, 3.5, np.float64(2.0), True, False, np.bool_(True), "3",
                                  None])
def test_seed_key_rejects_non_integers(seed):
    with pytest.raises(TypeError, match=r"\bseed\b"):
        rng.seed_key(seed)
    with pytest.raises(TypeError, match=r"\bseed\b"):
        rng.uniforms(seed, [0], 0, 2)


@pytest.mark.parametrize(
    "counter, key",
    [
        ([0, 0, 0], [0, 0]),
        ([0, 0, 0, 0, 0], [0, 0]),
        ([0, 0, 0, 0], [0]),
        ([0, 0, 0, 0], [0, 0, 0]),
        ([], []),
    ],
)
def test_philox_rejects_wrong_lengths(counter, key):
    with pytest.raises(ValueError):
        rng.philox4x32_10(counter, key)
    with pytest.raises(ValueError):
        ref_philox(counter, key)


@pytest.mark.parametrize(
    "counter, key",
    [
        ([-1, 0, 0, 0], [0, 0]),
        ([0, 0, 0, 2**32], [0, 0]),
        ([0, 0, 0, 0], [2**32, 0]),
        ([0, 0, 0, 0], [0, -1]),
        ([0, 2**64, 0, 0], [0, 0]),
    ],
)
def test_philox_rejects_out_of_range_words(counter, key):
    with pytest.raises(ValueError):
        rng.philox4x32_10(counter, key)
    with pytest.raises(ValueError):
        ref_philox(counter, key)


# ----------------------------------------------------------------------------------------
# Statistics: helpers (each returns a z-score with an exactly known null distribution)
# ----------------------------------------------------------------------------------------

def moment_z(x, k):
    """z of the sample mean of x**k against N(0, 1).

    The mean of n iid copies of z**k has variance (E z^{2k} - (E z^k)^2) / n, with the raw
    normal moments E z^2 = 1, E z^4 = 3, E z^6 = 15, E z^8 = 105: the standard errors are
    sqrt(1/n) (k=1), sqrt(2/n) (k=2), sqrt(15/n) (k=3), sqrt(96/n) (k=4).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    ek = NORMAL_MOMENT[k]
    se = math.sqrt((NORMAL_MOMENT[2 * k] - ek**2) / x.size)
    return (np.mean(x**k) - ek) / se


def corr_z(a, b):
    """r * sqrt(N) for the Pearson correlation r of N pairs; N(0, 1) under independence."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return np.corrcoef(a, b)[0, 1] * math.sqrt(a.size)


def tail_prob(side, t=4.0):
    return {"both": 2.0 * stats.norm.sf(t), "upper": stats.norm.sf(t),
            "lower": stats.norm.cdf(-t)}[side]


def tail_count(x, side, t=4.0):
    x = np.asarray(x).ravel()
    return int({"both": np.count_nonzero(np.abs(x) > t), "upper": np.count_nonzero(x > t),
                "lower": np.count_nonzero(x < -t)}[side])


def tail_z(x, side, t=4.0):
    """Binomial z of the number of draws beyond t sigma against the exact normal tail."""
    n = np.asarray(x).size
    p = tail_prob(side, t)
    return (tail_count(x, side, t) - n * p) / math.sqrt(n * p * (1.0 - p))


def expected_tail_z(n, side, p_alt, t=4.0):
    """Mean and sd of tail_z for a sample whose tail probability is p_alt, not the normal one."""
    p = tail_prob(side, t)
    scale = math.sqrt(n * p * (1.0 - p))
    return n * (p_alt - p) / scale, math.sqrt(n * p_alt * (1.0 - p_alt)) / scale


def uniform_mean_z(u):
    u = np.asarray(u).ravel()
    return (u.mean() - 0.5) / math.sqrt(1.0 / 12.0 / u.size)


def uniform_var_z(u):
    """z of mean((u - 1/2)^2) against 1/12; Var((u-1/2)^2) = 1/80 - 1/144 = 1/180."""
    u = np.asarray(u).ravel()
    return (np.mean((u - 0.5) ** 2) - 1.0 / 12.0) / math.sqrt(1.0 / 180.0 / u.size)


def uniform_chi2_p(u, bins=64):
    u = np.asarray(u).ravel()
    counts = np.bincount(np.minimum((u * bins).astype(np.int64), bins - 1), minlength=bins)
    assert counts.size == bins
    return stats.chisquare(counts).pvalue


def assert_passes(z):
    assert abs(z) < Z_BOUND, f"|z| = {abs(z):.2f} >= {Z_BOUND}"


def assert_rejected(z, expected, sd=1.0):
    """The control is rejected, and by about the margin the size of its defect predicts.

    ``expected`` is the mean of the control's z and ``sd`` its standard deviation (1 unless
    the defect changes the variance of the statistic). Decisive by design: the expected z lies
    at least 4 sd beyond the bound, so even a different seed would miss the control with
    probability below 3e-5.
    """
    assert abs(expected) - Z_BOUND >= 4 * sd, "negative control is not decisive by design"
    assert abs(z) > Z_BOUND, f"negative control not rejected: z = {z:.2f}"
    assert abs(z - expected) <= Z_BOUND * sd + 1e-9, (
        f"control z = {z:.2f}, expected about {expected:.2f} +- {sd:.2f}")


# ----------------------------------------------------------------------------------------
# Statistics: samples
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def normal_sample():
    return rng.normals(STAT_SEED, STAT_CHAINS, STAT_STEP, STAT_N)


@pytest.fixture(scope="module")
def normal_sample_next_step():
    return rng.normals(STAT_SEED, STAT_CHAINS, STAT_STEP + 1, STAT_N)


@pytest.fixture(scope="module")
def uniform_sample():
    return rng.uniforms(STAT_SEED, STAT_CHAINS, STAT_STEP, STAT_N).ravel()


@pytest.fixture(scope="module")
def irwin_hall_sample():
    """A classic wrong normal generator: sum of 12 uniforms minus 6 (mean 0, variance 1,
    E x^4 = 2.9, support [-6, 6], P(x > 4) = P(sum < 2) = (2^12 - 12) / 12! = 8.53e-6)."""
    g = np.random.default_rng(20240917)
    x = np.full(N_STAT, -6.0)
    for _ in range(12):
        x += g.random(N_STAT)
    return x


IH_TAIL = (2**12 - 12) / math.factorial(12)  # P(Irwin-Hall(12) - 6 > 4), exact


def _scale_mixture(x):
    """x times s with s^2 = 0.8 / 1.2 on alternate draws: E s^2 = 1, E s^4 = 1.04."""
    s = np.where(np.arange(x.size) % 2 == 0, math.sqrt(0.8), math.sqrt(1.2))
    return x * s


# ----------------------------------------------------------------------------------------
# Statistics: moments
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_normal_moments(normal_sample, k):
    assert_passes(moment_z(normal_sample, k))


def test_normal_moments_negative_controls(normal_sample, irwin_hall_sample):
    x = normal_sample.ravel()
    sq = math.sqrt(N_STAT)
    # mean: shifted by 0.01 -> z = 0.01 sqrt(n) = 20.5
    assert_rejected(moment_z(x + 0.01, 1), 0.01 * sq)
    # variance: scaled by 1.02 -> E x^2 = 1.0404, z = 0.0404 / sqrt(2/n) = 58.5
    assert_rejected(moment_z(1.02 * x, 2), 0.0404 * sq / math.sqrt(2.0))
    # third moment: x + a (x^2 - 1), a = 0.01 (mean and, to O(a^2), variance unchanged):
    # E x^3 = 6a + 8a^3 -> z = 0.060008 / sqrt(15/n) = 31.7
    a = 0.01
    assert_rejected(moment_z(x + a * (x * x - 1.0), 3), (6 * a + 8 * a**3) * sq / math.sqrt(15))
    # fourth moment: variance-preserving scale mixture, E x^4 = 3 * 1.04 -> z = 0.12 / sqrt(96/n)
    # = 25.1, which the variance check does not see
    mix = _scale_mixture(x)
    assert_passes(moment_z(mix, 2) / math.sqrt(1.06))  # Var(x^2) is 2.12 here, not 2
    assert_rejected(moment_z(mix, 4), 0.12 * sq / math.sqrt(96),
                    sd=math.sqrt((105 * 1.2416 - 3.12**2) / 96))  # Var(x^4) = 120.6, not 96
    # fourth moment: sum of 12 uniforms, E x^4 = 3 - 1.2/12 = 2.9 -> z = -0.1 / sqrt(96/n) = -20.9
    assert_rejected(moment_z(irwin_hall_sample, 4), -0.1 * sq / math.sqrt(96))


# ----------------------------------------------------------------------------------------
# Statistics: distribution shape
# ----------------------------------------------------------------------------------------

KS_N = 2**21


def test_normal_kolmogorov_smirnov(normal_sample):
    assert stats.kstest(normal_sample.ravel()[:KS_N], "norm").pvalue > P_MIN


def test_normal_kolmogorov_smirnov_negative_control(normal_sample):
    # Scaled by 1.02: D = max |Phi(x/1.02) - Phi(x)| = 0.00479, sqrt(n) D = 6.9, so the
    # asymptotic p ~ 2 exp(-2 * 6.9^2) ~ 1e-41 (1e-21 even if sampling noise cost 2 units).
    grid = np.linspace(0.0, 4.0, 40001)
    d = np.max(np.abs(stats.norm.cdf(grid / 1.02) - stats.norm.cdf(grid)))
    assert math.sqrt(KS_N) * d > 6.5
    assert stats.kstest(1.02 * normal_sample.ravel()[:KS_N], "norm").pvalue < P_MIN


@pytest.mark.parametrize("side", ["both", "upper", "lower"])
def test_normal_tails_beyond_4_sigma(normal_sample, side):
    # n = 2^22: about 266 draws beyond 4 sigma on both sides together, 133 on each
    assert_passes(tail_z(normal_sample, side))


@pytest.mark.parametrize("side", ["both", "upper", "lower"])
def test_normal_tails_negative_controls(normal_sample, irwin_hall_sample, side):
    x = normal_sample.ravel()
    one_or_two = 2.0 if side == "both" else 1.0
    # heavy tails (sigma 5% too large): z = +19.5 (both), +13.8 (each side), sd 1.48
    p_heavy = one_or_two * stats.norm.sf(4.0 / 1.05)
    assert_rejected(tail_z(1.05 * x, side), *expected_tail_z(N_STAT, side, p_heavy))
    # light tails (sum of 12 uniforms, right mean and variance): z = -11.9 (both), -8.4 (each),
    # sd 0.52
    p_light = one_or_two * IH_TAIL
    assert_rejected(tail_z(irwin_hall_sample, side), *expected_tail_z(N_STAT, side, p_light))
    # one-sided defect the two-sided count cannot see: all draws folded to one sign (as
    # z1 = r sin(pi v) would be with the angle off by a factor 2): each side |z| = 11.5
    # (sd sqrt(2) on the upper side, 0 on the lower)
    folded = np.abs(x)
    if side == "both":
        assert tail_z(folded, side) == tail_z(x, side)
    else:
        p_fold = 2.0 * stats.norm.sf(4.0) if side == "upper" else 0.0
        assert_rejected(tail_z(folded, side), *expected_tail_z(N_STAT, side, p_fold))


def test_normal_max_below_53_bit_bound(normal_sample):
    # |z| <= r <= sqrt(-2 log 2^-53) = 8.5717 for every draw (the bound is structural).
    assert np.max(np.abs(normal_sample)) < R53 * (1 + 1e-15)
    # Negative control: sigma doubled. Then max|x| < R53 needs all 2^22 draws of |z| below
    # R53 / 2 = 4.29, probability (1 - 2 sf(4.29))^n = exp(-76).
    assert N_STAT * 2 * stats.norm.sf(R53 / 2) > 50
    assert np.max(np.abs(2.0 * normal_sample)) > R53


def _tail_mass_discrete(x, bits):
    """P(sqrt(-2 log u) > x) exactly, for u uniform on {m 2^-bits : m = 1..2^bits}."""
    t = math.exp(-0.5 * x * x)  # the continuous tail P(r > x)
    return (math.ceil(t * 2**bits) - 1) / 2**bits  # number of m with m 2^-bits < t


def test_tail_reach_and_resolution_of_53_bit_u():
    """Deterministic: the u grid the implementation uses reaches 8.57 sigma and gets the tail
    P(r > x) = exp(-x^2/2) right to 1e-8 relative out to 6 sigma; a 32-bit u (negative
    control) stops at 6.66 sigma and is off by 0.6% already at 6 sigma."""
    u_of = rng.open_uniform
    w = np.uint64
    # u = (int53(w0, w1) + 1) * 2^-53 on the grid ends
    assert u_of(w(0), w(0)) == 2.0**-53
    assert u_of(w(0), w(0x7FF)) == 2.0**-53  # the 11 discarded bits of w1 do not count
    assert u_of(w(0), w(0x800)) == 2 * 2.0**-53
    assert u_of(w(M32), w(M32)) == 1.0
    assert rng.half_open_uniform(w(M32), w(M32)) == 1.0 - 2.0**-53
    assert rng.half_open_uniform(w(0), w(0)) == 0.0
    # the largest deviate, and u = 1 gives 0
    assert rng.box_muller(2.0**-53, 0.0) == pytest.approx((R53, 0.0), rel=1e-15, abs=1e-300)
    assert rng.box_muller(1.0, 0.3) == (0.0, 0.0)
    for bits, ok in ((53, True), (32, False)):
        reach = math.sqrt(-2.0 * math.log(2.0**-bits))
        rel_err = [abs(_tail_mass_discrete(x, bits) / math.exp(-0.5 * x * x) - 1)
                   for x in (4.0, 5.0, 6.0)]
        good = reach > 8.5 and max(rel_err) < 1e-8
        assert good == ok, (bits, reach, rel_err)


# ----------------------------------------------------------------------------------------
# Statistics: independence
# ----------------------------------------------------------------------------------------

def _pairs(relation, x, x_next):
    """Paired draws (a_i, b_i) for one neighbour relation."""
    if relation == "chains":  # chain c vs chain c+1, same step and index
        return x[:-1].ravel(), x[1:].ravel()
    if relation == "steps":  # step s vs step s+1, same chain and index
        return x.ravel(), x_next.ravel()
    if relation == "pair":  # z0 vs z1 of one Philox call
        return x[:, 0::2].ravel(), x[:, 1::2].ravel()
    if relation == "calls":  # z1 of call j vs z0 of call j+1
        return x[:, 1:-1:2].ravel(), x[:, 2::2].ravel()
    raise AssertionError(relation)


RELATIONS = ["chains", "steps", "pair", "calls"]


@pytest.mark.parametrize("relation", RELATIONS)
def test_normal_neighbour_correlation(normal_sample, normal_sample_next_step, relation):
    a, b = _pairs(relation, normal_sample, normal_sample_next_step)
    assert_passes(corr_z(a, b))  # N = 4.2M (chains, steps) or 2.1M (pair, calls)
    assert_passes(corr_z(a * a, b * b))


@pytest.mark.parametrize("relation", RELATIONS)
def test_normal_neighbour_correlation_negative_controls(
    normal_sample, normal_sample_next_step, relation
):
    a, b = _pairs(relation, normal_sample, normal_sample_next_step)
    n = a.size
    # injected linear correlation rho = 0.01: z = 0.01 sqrt(N) = 20.5 or 14.5
    rho = 0.01
    assert_rejected(corr_z(a, rho * a + math.sqrt(1 - rho**2) * b), rho * math.sqrt(n))
    # shared volatility (both scaled by the same s, s^2 = 0.8 / 1.2): no linear correlation,
    # but corr(a^2, b^2) = (E s^4 - 1) / (3 E s^4 - 1) = 0.04 / 2.12: z = 38.6 or 27.3
    sa, sb = _scale_mixture(a), _scale_mixture(b)
    assert_passes(corr_z(sa, sb) / math.sqrt(1.04))  # Var(s^2 a b) = E s^4 = 1.04, mean 0
    assert_rejected(corr_z(sa * sa, sb * sb), 0.04 / 2.12 * math.sqrt(n))


# ----------------------------------------------------------------------------------------
# Statistics: uniforms
# ----------------------------------------------------------------------------------------

def test_uniform_mean_variance_and_bins(uniform_sample):
    u = uniform_sample
    assert u.min() >= 0.0 and u.max() < 1.0
    assert_passes(uniform_mean_z(u))
    assert_passes(uniform_var_z(u))
    assert uniform_chi2_p(u) > P_MIN


def test_uniform_negative_controls(uniform_sample):
    u = uniform_sample
    sq = math.sqrt(N_STAT)
    # u^1.02: mean 1/2.02 -> z = (1/2.02 - 1/2) / sqrt(1/(12 n)) = -35.1
    bent = u**1.02
    assert_rejected(uniform_mean_z(bent), (1 / 2.02 - 0.5) * sq * math.sqrt(12))
    # range shrunk to [0.005, 0.995): mean exact, variance * 0.9801 ->
    # z = -0.0199/12 / sqrt(1/(180 n)) = -45.6
    shrunk = 0.5 + 0.99 * (u - 0.5)
    assert_passes(uniform_mean_z(shrunk) / 0.99)
    assert_rejected(uniform_var_z(shrunk), -0.0199 / 12 * sq * math.sqrt(180))
    # chi-square over 64 bins: non-centrality n * sum (p_i' - p_i)^2 / p_i for each control,
    # against a 1e-6 critical value of about 131 for 63 degrees of freedom
    edges = np.linspace(0.0, 1.0, 65)
    crit = stats.chi2.isf(P_MIN, 63)
    for control, cdf in ((bent, edges ** (1 / 1.02)),
                         (shrunk, np.clip((edges - 0.005) / 0.99, 0.0, 1.0))):
        p_alt = np.diff(cdf)
        noncentrality = N_STAT * np.sum((p_alt - 1 / 64) ** 2 * 64)
        assert 63 + noncentrality > 10 * crit
        assert uniform_chi2_p(control) < P_MIN
