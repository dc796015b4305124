"""Every statistic `simulate` accumulates inside its kernel, recomputed from the run's own trajectories.

Why: the kernels histogram, count and sum the sampled states without letting them out, and the
other tests check those statistics against their totals, against the other backend and against
Monte-Carlo truths, none of which notices a sample taken one step early, a chain added to the
wrong block, a periodic coordinate folded into the wrong bin or an outside count in the wrong
column. Here every chain's trajectory is recorded, and NumPy rebuilds from it, per statistics
block (``config["block"]`` consecutive chains): the per-coordinate histograms with their
below / above counts, the joint 2-D histogram, the loss histogram, every column of the moment
rows (:func:`gibbs_sgd.kernels.common.moment_layout`) and the mean-loss trace.

Which state a step records. Both kernels (``run_segment`` in ``kernels/cpu.py`` and
``kernels/cuda.py``) first update the chain at step ``t``, then record; the trajectory point
(``t % trajectory_every == 0``), the trace point (``t % trace_every == 0``) and the sample
(``t >= burn_in`` and ``(t - burn_in) % thin == 0``) all see the state *after* the update of
step ``t``. So ``trajectories[:, j]`` is the state after step ``trajectory_steps[j] = j *
trajectory_every``, and the sample of step ``t`` is ``trajectories[:, t // trajectory_every]``
whenever ``trajectory_every`` divides ``t``: here ``trajectory_every`` divides ``burn_in``,
``thin`` and ``trace_every``. The test checks that mapping too: the last recorded point is the
final state, and the first is not the initial one.

Error budget. Nothing here is Monte-Carlo: these are identities.

* Integer statistics (histograms, outside counts, sample and trace counts) must match exactly.
  The reference bins are computed without rounding: bin ``k`` is the half-open
  ``[e_k, e_{k+1})`` of ``run.hist_edges`` (``run.loss_edges`` for the loss), a value below
  ``e_0`` is outside below and one at or above ``e_nb`` outside above (``bin_index``'s
  convention), and a periodic coordinate is first folded onto ``[e_0, e_0 + period)`` in
  rational arithmetic (``fractions.Fraction``), so the reference has no rounding of its own.
  A moving chain comes within an ulp of a bin edge with a probability of order 1e-15 per
  sample, so it never does here (and a fixed seed makes each run the same every time); samples
  *on* edges are put there on purpose, by frozen chains (below).
* Float sums (moments, trace sums) are added in another order (the CPU tile by tile, the GPU
  by atomics, NumPy in its own), and the kernel may contract ``a * b + c`` into an FMA where
  :meth:`Landscape.loss` does not (and a GPU's ``exp`` / ``sin`` may differ from libm's in the
  last bit). Summing ``n`` terms in any order is within ``(n - 1) u sum|x_i|`` of the exact sum
  (``u = 2**-53``; Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., sec.
  4.2), so two orders differ by at most ``2 (n - 1) u sum|x_i|``; a term computed differently
  is a few ulps of its operands off, which the other ``2 n u sum|x_i|`` covers (``n`` is at
  least 9 samples a chain here). The bound is ``4 n u sum|x_i|`` per block and column, ``n``
  the block's samples; the kernels stay within 3% of it, and it is ~1e-12 relative, so a
  sample missing or counted twice is far outside it.
* The heavy-ball momentum buffer is not recorded (trajectories hold Phi only): it is
  reconstructed from consecutive states, ``b_t = (Phi_{t-1} - Phi_t) / lr``, with the rounding
  bound derived at :func:`_momentum_buffer` propagated into the state moments.

Samples on bin edges and beyond the range: with ``lr = 1e-200`` a step moves a chain by
``< 1e-199``, far below half an ulp of any state used here (``> 1e-18``), so each chain stays
bitwise at its initial value (asserted) and ``block = 1`` gives each chain's histograms on
their own: values are put exactly on every edge, a hair inside and outside the range, and far
outside. The edges have power-of-two widths, so for a value on an edge the kernel's
``(v - lo) * inv`` is exact.

The torus fold of a value a hair below the origin, whose remainder ``(v - lo) % period``
rounds up to the period itself (``-1.1e-16 % 2.5 == 2.5``), is checked to land in the last bin
(it was once counted outside a range covering the whole period).

A known limitation, marked ``xfail(strict=True)`` with the exact behaviour asserted (a fix
turns it into a failure that asks for the marker to go), from ``bin_index`` (kernels/common.py)
computing ``floor((v - lo) * inv)``, ``inv = nb / (e_nb - e_0)``, in rounded arithmetic:

* bin boundaries sit up to an ulp off ``run.hist_edges``: ``v - lo`` rounds up onto an edge
  for a value a hair below it (which then lands in the bin above, or outside above for the top
  edge, or, on the torus, in bin 0 instead of the last one), and for a width that is not a
  power of two ``inv`` rounds, so a sample exactly on ``hist_edges[k]`` can land in bin
  ``k - 1`` (``np.histogram`` corrects its fast path against the edges). Statistically
  harmless, but the histograms then disagree with the edges the result reports.

Backends: ``"cpu"`` and ``"cuda"``; without a GPU the root conftest switches numba-cuda's
simulator on, which is slow (about 0.2 ms per chain-step), hence the small CUDA sizes.
"""
from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd.kernels.common import moment_layout

# unit roundoff of the float64 sums (the moment rows and the trace are float64 for any state dtype)
U64 = 2.0**-53
# see the module docstring: two summation orders plus contracted terms
SUM_ULPS = 4.0


# =========================================================================================
# Run sizes, one per backend configuration
# =========================================================================================
@dataclass(frozen=True)
class Size:
    backend: str
    dtype: type
    n_chains: int
    block: int
    n_steps: int
    burn_in: int
    thin: int
    # chosen so that trace_every = ceil(n_steps / trace_points) is a multiple of thin
    trace_points: int


SIZES = [
    # 300 chains in blocks of 64: five blocks, the last partial (44 chains); 17 samples a chain.
    # trace_every = ceil(101 / 11) = 10: trace points 0, 10, ..., 100.
    pytest.param(Size("cpu", np.float64, 300, 64, 101, 20, 5, 11), id="cpu"),
    # 160 chains in blocks of 128: one whole CUDA block, then one with 96 idle threads (the
    # shared-memory path); 9 samples a chain; trace_every = ceil(41 / 11) = 4.
    pytest.param(Size("cuda", np.float64, 160, 128, 41, 8, 4, 11), id="cuda"),
    # The GPU's default float32 state, and statistics blocks smaller than a CUDA block (counts
    # go straight to global memory); 64 chains in blocks of 24, the last partial (16).
    pytest.param(Size("cuda", np.float32, 64, 24, 41, 8, 4, 11), id="cuda-float32-small-blocks"),
]


# =========================================================================================
# The optimizer state, reconstructed from the recorded positions
# =========================================================================================
def _no_state(phi, init, lr, dtype):
    """SGD has no state: empty (n, n_recorded, 0) arrays for the state and its error bound."""
    empty = np.zeros(phi.shape[:2] + (0,))
    return empty, empty


def _momentum_buffer(phi, init, lr, dtype):
    r"""Heavy ball's buffer after each step, from the positions at *every* step (trajectory_every = 1).

    The update is :math:`b_t = \mu b_{t-1} + \hat g_t` (stored in the state dtype), then
    :math:`\Phi_t = \Phi_{t-1} - \eta b_t`, so :math:`b_t = (\Phi_{t-1} - \Phi_t)/\eta` with
    :math:`\Phi_{-1}` the initial state. Rounding bound: the kernel forms :math:`\eta b_t` in
    float64 (relative error u) and stores :math:`\Phi_t` (absolute error
    :math:`u_s |\Phi_t|`, :math:`u_s` the state dtype's unit roundoff, plus u of the float64
    difference); the reconstruction's difference and division add a relative error 2u. To first
    order :math:`|\tilde b_t - b_t| \le 3u|b_t| + 2 u_s |\Phi_t| / \eta`; the bound used,
    :math:`4 u_s (|\tilde b_t| + (|\Phi_{t-1}| + |\Phi_t|)/\eta)`, covers it with room for the
    second-order terms.
    """
    prev = np.concatenate([np.broadcast_to(init, (phi.shape[0], 1, phi.shape[2])), phi[:, :-1]], axis=1)
    b = (prev - phi) / lr
    u_state = np.finfo(dtype).eps / 2
    return b, 4.0 * u_state * (np.abs(b) + (np.abs(prev) + np.abs(phi)) / lr)


# =========================================================================================
# The cases: landscapes x optimizers whose samples fall on both sides of every range
# =========================================================================================
@dataclass(frozen=True)
class Case:
    landscape: gs.landscapes.Landscape
    optimizer: gs.optimizers.Optimizer
    noise: gs.noise.Noise
    init: np.ndarray
    bins: list
    loss_range: tuple
    # (phi (n, n_rec, d), init (d,), lr, dtype) -> (state, error bound), each (n, n_rec, n_state * d)
    state_from_phi: Callable = _no_state
    # record every step (the momentum reconstruction needs consecutive states), else every thin
    every_step: bool = False
    # which outside counters (rows: coordinates, then the loss; columns: below, above) the
    # samples must reach, so that the test covers them; False: none may be counted there
    outside: np.ndarray = field(default_factory=lambda: np.ones((3, 2), bool))
    # some chain's samples must span at least this much on every coordinate
    min_excursion: float = 0.0


_QUADRATIC_2D = gs.landscapes.Quadratic([[1.0, 0.3], [0.3, 2.0]], center=[0.2, -0.1])

CASES = [
    # A coupled 2-D bowl at T ~ 0.1 (lr sigma^2 / 2): the edges cover about two standard
    # deviations either side of the centre, so every coordinate and the loss overflow on both sides.
    pytest.param(Case(_QUADRATIC_2D, gs.optimizers.SGD(lr=0.2), gs.noise.Gaussian(1.0), np.array([0.2, -0.1]),
                      bins=[np.linspace(-0.55, 0.95, 21), np.linspace(-0.6, 0.4, 21)], loss_range=(0.02, 0.3)),
                 id="quadratic2d-sgd"),
    # Mueller-Brown's deepest well at T ~ 0.1 (well depth 7.3): exponentials, a non-polynomial loss.
    pytest.param(Case(gs.landscapes.MuellerBrown(scale=0.05), gs.optimizers.SGD(lr=2e-3), gs.noise.Gaussian(10.0),
                      gs.landscapes.MuellerBrown(scale=0.05).minimum,
                      bins=[np.linspace(-0.68, -0.45, 21), np.linspace(1.33, 1.55, 21)], loss_range=(-7.3, -6.9)),
                 id="muellerbrown-sgd"),
    # A hot torus: a step moves a chain by about lr sigma = 1.5, so chains wander over several
    # periods (2.5) within the run. Coordinate 0's edges cover one whole period from the origin
    # -0.9 (so nothing may be counted outside); coordinate 1's cover 0.8 of it from 0.35, so
    # folded samples past its top edge count above, and none below.
    pytest.param(Case(gs.landscapes.Periodic(amplitude=1.0, period=2.5, dim=2), gs.optimizers.SGD(lr=0.5),
                      gs.noise.Gaussian(3.0), np.array([0.3, -0.2]),
                      bins=[np.linspace(-0.9, 1.6, 21), np.linspace(0.35, 2.35, 21)], loss_range=(0.5, 3.5),
                      outside=np.array([[False, False], [False, True], [True, True]]), min_excursion=3 * 2.5),
                 id="periodic2d-sgd-hot"),
    # Heavy ball on the same bowl (effective step lr / (1 - mu) = 0.5): the state moments include
    # the momentum buffer, reconstructed from consecutive states.
    pytest.param(Case(_QUADRATIC_2D, gs.optimizers.HeavyBall(lr=0.1, momentum=0.8), gs.noise.Gaussian(1.0),
                      np.array([0.2, -0.1]), bins=[np.linspace(-0.55, 0.95, 21), np.linspace(-0.6, 0.4, 21)],
                      loss_range=(0.02, 0.3), state_from_phi=_momentum_buffer, every_step=True),
                 id="quadratic2d-heavyball"),
]


def _simulate(case: Case, size: Size):
    return gs.simulate(
        case.landscape, case.optimizer, noise=case.noise, n_chains=size.n_chains, n_steps=size.n_steps,
        burn_in=size.burn_in, thin=size.thin, seed=11, backend=size.backend, dtype=size.dtype, init=case.init,
        bins=case.bins, loss_range=case.loss_range, block=size.block, keep_final=True,
        record_trajectories=size.n_chains, trajectory_every=1 if case.every_step else size.thin,
        trace_points=size.trace_points, progress=False,
    )


# =========================================================================================
# The reference: NumPy, from the trajectories
# =========================================================================================
def _exact_bins(values, edges, period=None) -> np.ndarray:
    """Bin of each value among the half-open bins ``[e_k, e_{k+1})``: ``-1`` below ``e_0``,
    ``nb`` at or above ``e_nb``. A periodic coordinate is first folded onto
    ``[e_0, e_0 + period)`` in rational arithmetic, with no rounding anywhere."""
    values = np.asarray(values, dtype=np.float64)
    if period is None:
        return np.searchsorted(edges, values, side="right") - 1  # float comparisons are exact
    fe = [Fraction(float(e)) for e in edges]
    p = Fraction(float(period))
    out = np.empty(values.shape, np.int64)
    for idx, v in np.ndenumerate(values):
        out[idx] = bisect.bisect_right(fe, fe[0] + (Fraction(float(v)) - fe[0]) % p) - 1
    return out


def _count(n_blocks, shape, index, keep):
    """Counts per (block, *bin) of the samples where ``keep``."""
    out = np.zeros((n_blocks,) + shape, np.int64)
    np.add.at(out, tuple(i[keep] for i in index), 1)
    return out


def _recompute(run, case: Case, step_offset: int = 0, block: int | None = None) -> dict:
    """Every statistic of ``run`` from its trajectories, per block.

    ``step_offset`` and ``block`` are for the negative controls only: samples taken
    ``step_offset`` steps off the sampled ones (-1: the state before the update), and another
    block size."""
    cfg = run.config
    land = run.landscape
    n, d = run.n_chains, run.dim
    block = cfg["block"] if block is None else block
    every = cfg["trajectory_every"]
    nb = run.hist_edges[0].shape[0] - 1
    n_blocks = run.block_hist.shape[0]
    # the sampled steps and their trajectory columns (the state after the update of step t)
    steps = np.arange(cfg["burn_in"], cfg["n_steps"], cfg["thin"]) + step_offset
    assert np.all(steps % every == 0), "trajectory_every must divide burn_in and thin here"
    cols = steps // every
    assert np.array_equal(run.trajectory_steps[cols], steps)
    phi = run.trajectories[:, cols]  # (n, S, d)
    state, state_err = case.state_from_phi(run.trajectories, case.init, case.optimizer.lr, run.final.dtype)
    state, state_err = state[:, cols], state_err[:, cols]
    blk = np.broadcast_to((np.arange(n) // block)[:, None], phi.shape[:2])

    # histograms: per coordinate, joint, loss; outside counts
    k = [_exact_bins(phi[..., i], run.hist_edges[i], land.period) for i in range(d)]
    loss = land.loss(phi)
    k_loss = _exact_bins(loss, run.loss_edges)
    hist = np.zeros((n_blocks, d, nb), np.int64)
    outside = np.zeros((n_blocks, d + 1, 2), np.int64)
    for i, ki in enumerate(k + [k_loss]):
        inside = (ki >= 0) & (ki < nb)
        if i < d:
            hist[:, i] = _count(n_blocks, (nb,), (blk, ki), inside)
        outside[:, i, 0] = _count(n_blocks, (), (blk,), ki < 0)
        outside[:, i, 1] = _count(n_blocks, (), (blk,), ki >= nb)
    ref = {"block_hist": hist, "block_outside": outside,
           "block_loss_hist": _count(n_blocks, (nb,), (blk, k_loss), (k_loss >= 0) & (k_loss < nb))}
    if d == 2:
        both = np.all([(ki >= 0) & (ki < nb) for ki in k], axis=0)
        ref["block_hist2d"] = _count(n_blocks, (nb, nb), (blk, k[0], k[1]), both)

    # the moment rows, column by column as moment_layout lays them out, with the error bound of
    # a reconstructed state propagated (z = (Phi, state); |z_m z_q - z~_m z~_q| <=
    # e_m |z~_q| + |z~_m| e_q + e_m e_q)
    lay = moment_layout(d, case.optimizer.n_state)
    g = land.grad(phi).reshape(phi.shape)
    z = np.concatenate([phi, state], axis=-1)
    ez = np.concatenate([np.zeros_like(phi), state_err], axis=-1)
    m = z.shape[-1]
    assert m == lay["state_size"]
    terms = np.zeros(phi.shape[:2] + (lay["n_columns"],))
    err = np.zeros_like(terms)
    terms[..., lay["count"]] = 1.0
    terms[..., lay["loss"]] = loss
    terms[..., lay["loss_sq"]] = loss**2
    terms[..., lay["laplacian"]] = land.laplacian(phi)
    terms[..., lay["grad_sq"]] = np.sum(g**2, axis=-1)
    terms[..., lay["phi_grad"]] = phi * g
    terms[..., lay["grad"]] = g
    terms[..., lay["grad_sq_coord"]] = g**2
    terms[..., lay["state"]] = z
    terms[..., lay["state_outer"]] = (z[..., :, None] * z[..., None, :]).reshape(phi.shape[:2] + (m * m,))
    err[..., lay["state"]] = ez
    az = np.abs(z)
    err[..., lay["state_outer"]] = (ez[..., :, None] * az[..., None, :] + az[..., :, None] * ez[..., None, :]
                                    + ez[..., :, None] * ez[..., None, :]).reshape(phi.shape[:2] + (m * m,))
    moments = np.zeros((n_blocks, lay["n_columns"]))
    np.add.at(moments, blk, terms)
    abs_sum = np.zeros_like(moments)
    np.add.at(abs_sum, blk, np.abs(terms))
    err_sum = np.zeros_like(moments)
    np.add.at(err_sum, blk, err)
    per_block = moments[:, [lay["count"]]]
    ref["moments"] = moments
    ref["moments_bound"] = SUM_ULPS * per_block * U64 * abs_sum + err_sum

    # the mean-loss trace: the sum of L over the block's (live) chains and their count, at
    # every trace step, before and after burn-in
    ts = run.trace_steps
    assert np.all(ts % every == 0), "trajectory_every must divide trace_every here"
    loss_t = land.loss(run.trajectories[:, ts // every])  # (n, n_trace)
    chain_blk = np.arange(n) // block
    trace_sum = np.zeros((n_blocks, ts.shape[0]))
    np.add.at(trace_sum, chain_blk, loss_t)
    trace_abs = np.zeros_like(trace_sum)
    np.add.at(trace_abs, chain_blk, np.abs(loss_t))
    chains = np.bincount(chain_blk, minlength=n_blocks).astype(np.float64)
    ref["trace_sum"] = trace_sum
    ref["trace_count"] = np.broadcast_to(chains[:, None], trace_sum.shape)
    ref["trace_bound"] = SUM_ULPS * chains[:, None] * U64 * trace_abs
    ref["phi"] = phi
    return ref


# =========================================================================================
# The tests
# =========================================================================================
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", CASES)
def test_statistics_are_those_of_the_recorded_trajectories(case, size):
    """Histograms, outside counts, moment rows and trace of every block, from the trajectories."""
    run = _simulate(case, size)
    cfg = run.config
    assert cfg["backend"] == size.backend and cfg["block"] == size.block and run.final.dtype == size.dtype
    assert run.n_diverged == 0 and run.alive.all()
    traj = run.trajectories
    assert traj.shape == (size.n_chains, -(-size.n_steps // cfg["trajectory_every"]), run.dim)
    assert np.all(np.isfinite(traj))
    # the recorded state is the one after the step: the last point (step n_steps - 1) is the
    # final state, bit for bit, and the first (after step 0) has left the initial state
    assert run.trajectory_steps[-1] == size.n_steps - 1
    np.testing.assert_array_equal(traj[:, -1], run.final)
    assert np.all(np.any(traj[:, 0] != case.init, axis=-1))

    ref = _recompute(run, case)
    # the run covers what it claims to: the outside counters it should reach, several periods
    reached = ref["block_outside"].sum(axis=0) > 0
    np.testing.assert_array_equal(reached, case.outside)
    assert np.all(np.max(np.ptp(ref["phi"], axis=1), axis=0) >= case.min_excursion)

    # integer statistics: exact, per block and in total
    for name in ("block_hist", "block_outside", "block_loss_hist", "block_hist2d"):
        if name in ref:
            np.testing.assert_array_equal(getattr(run, name), ref[name], err_msg=name)
        else:
            assert getattr(run, name) is None
    np.testing.assert_array_equal(run.hist, ref["block_hist"].sum(axis=0))
    np.testing.assert_array_equal(run.outside, ref["block_outside"].sum(axis=0))
    np.testing.assert_array_equal(run.loss_hist, ref["block_loss_hist"].sum(axis=0))
    if run.dim == 2:
        np.testing.assert_array_equal(run.hist2d, ref["block_hist2d"].sum(axis=0))
    lay = moment_layout(run.dim, case.optimizer.n_state)
    np.testing.assert_array_equal(run.moments[:, lay["count"]], ref["moments"][:, lay["count"]])
    np.testing.assert_array_equal(run.trace[..., 1], ref["trace_count"])

    # float sums: within the summation-order (and reconstruction) bound
    dev = np.abs(run.moments - ref["moments"])
    worst = np.unravel_index(np.argmax(dev - ref["moments_bound"]), dev.shape)
    assert np.all(dev <= ref["moments_bound"]), (
        f"moment column {worst[1]} of block {worst[0]}: |kernel - reference| = {dev[worst]:.3g} > bound "
        f"{ref['moments_bound'][worst]:.3g} (kernel {run.moments[worst]!r}, reference {ref['moments'][worst]!r})")
    dev = np.abs(run.trace[..., 0] - ref["trace_sum"])
    assert np.all(dev <= ref["trace_bound"]), np.max(dev - ref["trace_bound"])


def test_negative_controls_are_caught():
    """The comparison fails for samples taken before their step's update (one step early) and
    for chains assigned to the wrong blocks: the checks above can tell those apart."""
    case = next(p.values[0] for p in CASES if p.id == "quadratic2d-heavyball")  # records every step
    size = SIZES[0].values[0]
    run = _simulate(case, size)
    early = _recompute(run, case, step_offset=-1)
    moved = _recompute(run, case, block=size.block + 1)
    for wrong in (early, moved):
        assert not np.array_equal(run.block_hist, wrong["block_hist"])
        assert not np.array_equal(run.block_loss_hist, wrong["block_loss_hist"])
        assert np.any(np.abs(run.moments - wrong["moments"]) > wrong["moments_bound"])
    # the trace takes every chain at the trace steps: only the wrong blocks change it
    assert not np.array_equal(run.trace[..., 1], moved["trace_count"])


# ---- frozen chains: samples exactly on edges, just inside and just outside the range ------
FROZEN_LR = 1e-200  # see the module docstring: every chain stays at its initial value
BACKENDS = ["cpu", "cuda"]


@functools.lru_cache(maxsize=None)
def _frozen(name: str, backend: str):
    """A run of chains that never move, one per value of ``FROZEN[name]``, one chain a block,
    with the bins of each chain (coordinate 0 and the loss) read off its block's histograms."""
    land, values, edges, loss_range = FROZEN[name]
    values = np.asarray(values, dtype=np.float64)
    run = gs.simulate(land, gs.optimizers.SGD(lr=FROZEN_LR), n_chains=values.shape[0], n_steps=4, burn_in=0,
                      thin=2, trajectory_every=2, trace_points=2, init=values[:, None], bins=edges,
                      loss_range=loss_range, block=1, keep_final=True, record_trajectories=values.shape[0],
                      backend=backend, dtype=np.float64, seed=3, progress=False)
    np.testing.assert_array_equal(run.final[:, 0], values)  # frozen, bit for bit
    np.testing.assert_array_equal(run.trajectories[..., 0], np.broadcast_to(values[:, None], (values.shape[0], 2)))

    def bins_of(hist, out):  # (n_chains, nb) and (n_chains, 2) -> the one bin (-1 / nb outside) of each chain
        full = np.concatenate([out[:, :1], hist, out[:, 1:]], axis=1)
        assert np.all(full.sum(axis=1) == 2) and np.all(full.max(axis=1) == 2)  # both samples in one bin
        return np.argmax(full, axis=1) - 1

    return run, bins_of(run.block_hist[:, 0], run.block_outside[:, 0]), bins_of(run.block_loss_hist,
                                                                                run.block_outside[:, 1])


# Coordinate edges -1.1875 + k/8 (k = 0..20; 0 is not an edge: a chain at 0 would move) and loss
# edges 1/8 + j/128, j = 0..20, up to 0.28125: widths are powers of two, so edges and
# L = phi^2 / 2 of the values below are exact binary numbers, and the loss range runs from
# L(0.5) to L(0.75).
_DYADIC_EDGES = -1.1875 + np.arange(21) / 8
_NB = 20
_DYADIC_ROWS = (
    # (value, bin of the coordinate, bin of the loss); -1: below the range, _NB: above it
    [(e, k, None) for k, e in enumerate(_DYADIC_EDGES[:-1])]  # on edge k: bin k opens there
    + [
        (_DYADIC_EDGES[-1], _NB, None),  # the top edge closes the range
        (np.nextafter(_DYADIC_EDGES[0], -np.inf), -1, None),  # a hair below the bottom edge
        (-3.0, -1, _NB),
        (3.0, _NB, _NB),
        (0.25, 11, -1),  # L = 1/32, below the loss range
        (0.5, 13, 0),  # L = 1/8: the bottom loss edge
        (0.625, 14, 9),  # L = 25/128: on loss edge 9
        (0.75, 15, _NB),  # L = 9/32: the top loss edge
        (np.nextafter(0.75, 0.0), 15, _NB - 1),  # L a hair below the top loss edge
        (-0.8125, 3, _NB),  # on coordinate edge 3; L = 169/512, above the loss range
        (0.6875, 15, 14),  # on coordinate edge 15; L = 121/512, inside loss bin 14 (j = 14.25)
    ]
)


# Periodic(period=2.5): edges over one whole period from the origin -0.75, width 1/8.
_P = 2.5
_TORUS_EDGES = -0.75 + np.arange(21) / 8
_BUG_FOLD = "bin_index folds with lo + (v - lo) % period, which rounds: {}"
_TORUS_ROWS = [
    # (value, bin after folding onto [-0.75, 1.75)); no value may be counted outside
    pytest.param(-0.75, 0, id="origin"),
    pytest.param(1.75, 0, id="origin+P"),
    pytest.param(-0.75 - 2 * _P, 0, id="origin-2P"),
    pytest.param(-0.75 + 4 * _P, 0, id="origin+4P"),
    pytest.param(-0.75 + 4 * _P + 7 / 8, 7, id="edge7+4P"),
    pytest.param(-0.75 - _P + 13 / 8, 13, id="edge13-P"),
    pytest.param(11.3, 16, id="inside-bin16+4P"),
    pytest.param(np.nextafter(-0.75 - _P, -np.inf), _NB - 1, id="hair-below-origin-P"),
    # (v - lo) % period = -1.1e-16 % 2.5 rounds to 2.5: bin_index puts it in the last bin
    pytest.param(np.nextafter(-0.75, -np.inf), _NB - 1, id="hair-below-origin"),
    pytest.param(np.nextafter(1.75, -np.inf), _NB - 1, id="hair-below-top-edge", marks=pytest.mark.xfail(
        strict=True, reason=_BUG_FOLD.format("v - lo = 2.5 - 2.2e-16 rounds to 2.5 = period, so a value already "
                                             "inside the range folds onto the origin: bin 0, not the last bin "
                                             "(the torus case of the boundary rounding below)"))),
]

# a hair below each edge but the bottom one, which belongs to the bin below (the last bin for the top edge)
_HAIR_BELOW = np.nextafter(_DYADIC_EDGES[1:], -np.inf)
# np.linspace(-0.7, 0.9, 17): width 0.1, not a power of two
_DECIMAL_EDGES = np.linspace(-0.7, 0.9, 17)
_BUG_BOUNDARY = ("bin boundaries sit up to an ulp off hist_edges (bin_index computes "
                 "floor((v - e_0) * nb / (e_nb - e_0)) in rounded arithmetic): {}")

FROZEN = {
    "dyadic": (gs.landscapes.Quadratic(1.0), [r[0] for r in _DYADIC_ROWS], _DYADIC_EDGES, (0.125, 0.28125)),
    "torus": (gs.landscapes.Periodic(amplitude=1.0, period=_P), [p.values[0] for p in _TORUS_ROWS], _TORUS_EDGES,
              (0.0, 2.0)),
    "hair-below": (gs.landscapes.Quadratic(1.0), _HAIR_BELOW, _DYADIC_EDGES, (0.125, 0.28125)),
    "decimal": (gs.landscapes.Quadratic(1.0), _DECIMAL_EDGES, _DECIMAL_EDGES, (0.0, 1.0)),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_on_edges_and_outside_the_range(backend):
    """Half-open bins [e_k, e_{k+1}), the top edge outside above, for the coordinate and the loss."""
    run, k_coord, k_loss = _frozen("dyadic", backend)
    values = [row[0] for row in _DYADIC_ROWS]
    np.testing.assert_array_equal(k_coord, [row[1] for row in _DYADIC_ROWS], err_msg=f"values {values}")
    stated = [i for i, row in enumerate(_DYADIC_ROWS) if row[2] is not None]
    np.testing.assert_array_equal(k_loss[stated], [_DYADIC_ROWS[i][2] for i in stated],
                                  err_msg=f"values {[values[i] for i in stated]}")
    # and the trajectory reference agrees with these hand-written bins
    np.testing.assert_array_equal(k_coord, _exact_bins(run.final[:, 0], run.hist_edges[0]))
    np.testing.assert_array_equal(k_loss, _exact_bins(run.landscape.loss(run.final), run.loss_edges))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value,expected", _TORUS_ROWS)
def test_periodic_fold_near_the_seam(backend, value, expected):
    """On the torus a value folds onto [e_0, e_0 + period) exactly: the edges cover the whole
    period, so it is never counted outside, and a value already inside keeps its bin."""
    run, k_coord, _ = _frozen("torus", backend)
    chain = [p.values[0] for p in _TORUS_ROWS].index(value)
    assert _exact_bins(value, run.hist_edges[0], run.landscape.period) == expected  # the hand-written bin
    assert k_coord[chain] == expected


@pytest.mark.xfail(strict=True, reason=_BUG_BOUNDARY.format(
    "v - e_0 rounds up onto edge k for v a hair below it (here edges 6..20), so v lands in bin k "
    "(the top edge: outside above)"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hair_below_an_edge_is_in_the_bin_below(backend):
    """``np.nextafter(hist_edges[k], -inf)`` is in bin k - 1 (below the top edge: the last bin)."""
    _, k_coord, _ = _frozen("hair-below", backend)
    np.testing.assert_array_equal(k_coord, np.arange(_NB))


@pytest.mark.xfail(strict=True, reason=_BUG_BOUNDARY.format(
    "nb / (e_nb - e_0) rounds for a width of 0.1, so a sample on hist_edges[1] of np.linspace(-0.7, 0.9, 17) "
    "lands in bin 0"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_on_an_edge_opens_its_bin_whatever_the_width(backend):
    """A sample equal to ``hist_edges[k]`` is in bin k (the top edge: outside above)."""
    _, k_coord, _ = _frozen("decimal", backend)
    np.testing.assert_array_equal(k_coord, np.arange(_DECIMAL_EDGES.shape[0]))
