"""simulate(): layout independence, persistence, dtypes, divergence accounting, bad input."""
import dataclasses
import json
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import gibbs_sgd as gs

LAND = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.2)
OPT = gs.optimizers.HeavyBall(lr=0.02, momentum=0.5)
NOISE = gs.noise.Gaussian(2.0)


def _run(**kw):
    args = dict(noise=NOISE, batch_size=2, n_chains=600, n_steps=120, burn_in=40, seed=123,
                progress=False, keep_final=True, record_trajectories=4, trajectory_every=5)
    args.update(kw)
    return gs.simulate(LAND, OPT, **args)


def _assert_same(a, b):
    for name in ("hist", "loss_hist", "loss_edges", "outside", "moments", "trace", "final", "final_state", "alive",
                 "diverged", "trajectories"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x, y, equal_nan=True), name
        assert x.dtype == y.dtype
    for x, y in zip(a.hist_edges, b.hist_edges):
        assert np.array_equal(x, y)


def test_chunking_is_bitwise_invisible():
    whole = _run()
    chunked = _run(max_chunk=100)
    assert chunked.config["max_chunk"] < whole.config["max_chunk"]
    _assert_same(whole, chunked)


def test_thread_count_is_bitwise_invisible():
    base = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run()
    finally:
        numba.set_num_threads(base)
    _assert_same(one, _run())


def test_a_chains_trajectory_depends_only_on_seed_chain_and_step():
    small = _run(n_chains=40)
    large = _run(n_chains=600, max_chunk=150)
    assert np.array_equal(small.final, large.final[:40])
    assert np.array_equal(small.trajectories, large.trajectories)
    other_seed = _run(n_chains=40, seed=124)
    assert not np.array_equal(small.final, other_seed.final)


def test_save_load_round_trip(tmp_path):
    run = _run()
    path = run.save(tmp_path / "run")
    back = gs.load(path)
    _assert_same(run, back)
    assert back.config == run.config
    for a, b in zip(run.hist_edges, back.hist_edges):
        assert np.array_equal(a, b)
    assert np.array_equal(run.loss_edges, back.loss_edges)
    assert back.mean_loss.value == run.mean_loss.value
    assert back.summary() == run.summary()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    run = _run(dtype=dtype)
    assert run.final.dtype == dtype
    assert run.config["dtype"] == np.dtype(dtype).name


def _paired_loss_difference(a, b):
    """<L>_a - <L>_b with its standard error from the per-block *differences*. Two runs with the
    same seed share every random number, so their block means are strongly correlated: treating
    them as independent (hypot of the two errors) would overstate the error of the difference
    by orders of magnitude; the scatter of the paired differences over independent blocks is
    its honest error."""
    assert np.array_equal(a.moments[:, 0], b.moments[:, 0])
    n = a.moments[:, 0]
    diff = (a.moments[:, 1] - b.moments[:, 1]).sum() / n.sum()
    per = (a.moments[:, 1] - b.moments[:, 1]) / n
    nb = len(n)
    se = np.sqrt(np.sum((n / n.sum() * (per - diff)) ** 2) * nb / (nb - 1))
    return diff, se


def test_float32_statistics_agree_with_float64():
    """Same stream, state rounded to float32 each step: the mean loss agrees with float64 within
    the error of the paired difference (4e-11 here, against 1e-4 for either mean alone), so a
    float32 bias of one part in 10^6 would be seen. Negative control: float64 at a 0.5% larger
    learning rate, paired the same way, must be rejected."""
    a, b = _run(dtype=np.float32, n_chains=4000), _run(dtype=np.float64, n_chains=4000)
    diff, se = _paired_loss_difference(a, b)
    assert abs(diff) < 4 * se, (diff, se)
    hotter = gs.simulate(LAND, gs.optimizers.HeavyBall(lr=0.0201, momentum=0.5), noise=NOISE, batch_size=2,
                         n_chains=4000, n_steps=120, burn_in=40, seed=123, progress=False)
    diff, se = _paired_loss_difference(hotter, b)
    assert abs(diff) > 4 * se


def test_sampling_window_and_thinning_are_counted_exactly():
    run = _run(n_steps=101, burn_in=21, thin=4)
    per_chain = len(range(21, 101, 4))
    assert run.n_samples == 600 * per_chain
    assert run.hist.sum() + run.outside[0].sum() == run.n_samples
    assert run.loss_hist.sum() + run.outside[1].sum() == run.n_samples
    steps, mean, se = run.mean_loss_trace()
    assert steps[0] == 0 and np.all(np.isfinite(mean))


def test_divergence_is_counted_frozen_and_excluded():
    """Half the chains start far out on the quartic walls: one step throws them past the bound."""
    n = 400
    init = np.where(np.arange(n) % 2 == 0, 0.5, 1.0e3).reshape(n, 1)
    with pytest.warns(RuntimeWarning, match="200 of 400 chains diverged"):
        run = _run(n_chains=n, init=init)
    assert run.n_diverged == n // 2
    assert np.array_equal(run.alive, np.arange(n) % 2 == 0)
    assert np.isfinite(run.moments).all() and np.isfinite(run.trace).all()
    samples_per_chain = 120 - 40
    assert run.n_samples == (n // 2) * samples_per_chain
    assert run.hist.sum() + run.outside[0].sum() == run.n_samples
    assert "DIVERGED" in run.summary()


def test_a_tile_with_a_diverged_chain_steps_its_other_chains_exactly_as_before():
    """The step loop runs vectorised over a 128-chain tile with the alive flags as a mask: a
    diverged chain in the tile must not change what its neighbours compute. Chain 5 starts on
    the quartic wall (diverges at step 0) in one run and inside in the other; every other
    chain's final state is bitwise the same (heavy ball, and Adam with its extra branches)."""
    n = 300  # three tiles, the last one partial
    opt = gs.optimizers.Adam(lr=0.01)
    init = np.full((n, 1), 0.5)
    healthy = _run(n_chains=n, init=init, block=n)  # one statistics block: tiles of 128
    init[5] = 1.0e3
    with pytest.warns(RuntimeWarning, match="1 of 300 chains diverged"):
        broken = _run(n_chains=n, init=init, block=n)
    others = np.arange(n) != 5
    assert not broken.alive[5] and broken.alive[others].all()
    assert np.array_equal(broken.final[others], healthy.final[others])
    adam_h = gs.simulate(LAND, opt, noise=NOISE, n_chains=n, n_steps=60, init=np.full((n, 1), 0.5), block=n,
                         keep_final=True, progress=False)
    init_b = np.full((n, 1), 0.5)
    init_b[5] = 10 * LAND.divergence_radius  # Adam's steps are ~lr: start it past the bound
    with pytest.warns(RuntimeWarning, match="diverged"):
        adam_b = gs.simulate(LAND, opt, noise=NOISE, n_chains=n, n_steps=60, init=init_b, block=n,
                             keep_final=True, progress=False)
    assert np.array_equal(adam_b.final[others], adam_h.final[others])


def test_svml_is_reported_once_because_it_can_change_the_last_bit(monkeypatch):
    from gibbs_sgd.kernels import cpu

    monkeypatch.setattr(numba.config, "USING_SVML", True)
    monkeypatch.setattr(cpu, "_SVML_WARNED", False)
    with pytest.warns(RuntimeWarning, match="NUMBA_DISABLE_INTEL_SVML"):
        cpu.build(LAND, NOISE, OPT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu.build(LAND, NOISE, OPT)  # once per process


def test_kernel_key_holds_the_lengths_of_tuple_parameters_only():
    """Parameter arrays up to MAX_TUPLE numbers are compiled in as tuples, so their length is
    part of the kernel; longer ones stay arrays and share one kernel whatever their length."""
    from gibbs_sgd.kernels import cpu

    def mixture(k):
        return gs.landscapes.GaussianMixture(weights=np.ones(k), means=np.linspace(-1, 1, k)[:, None],
                                             covariances=0.25)

    small, big, bigger = mixture(2), mixture(12), mixture(13)
    assert small.kernel_params().size <= cpu.MAX_TUPLE < big.kernel_params().size < bigger.kernel_params().size
    sgd = gs.optimizers.SGD(lr=0.01)
    assert cpu.build(big, NOISE, sgd) is cpu.build(bigger, NOISE, sgd)
    assert cpu.build(small, NOISE, sgd) is not cpu.build(big, NOISE, sgd)
    assert cpu.build(small, NOISE, sgd).sizes["pl"] == small.kernel_params().size


def test_record_flags_follow_the_sampling_trace_and_trajectory_rules():
    from gibbs_sgd.kernels import cpu

    for n, burn, thin, te, je in [(50, 10, 3, 7, 5), (17, 0, 1, 1, 1), (40, 39, 40, 100, 13)]:
        f = cpu.record_flags(n, burn, thin, te, je)
        t = np.arange(n)
        assert f.dtype == np.uint8 and f.shape == (n,)
        assert np.array_equal((f & cpu.SAMPLE) != 0, (t >= burn) & ((t - burn) % thin == 0))
        assert np.array_equal((f & cpu.TRACE) != 0, t % te == 0)
        assert np.array_equal((f & cpu.TRAJ) != 0, t % je == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fixed_tiles_cut_the_workspaces_where_engine_allocated_them(dtype):
    """The kernel's tiles: (RX, TILE) in the state dtype and (RF, TILE) float64 for thread tid;
    with float64 state both come from the one buffer wx, one after the other."""
    from numba import njit

    from gibbs_sgd.kernels import cpu

    RX, RF, COLS = 3, 2, 4

    @njit(_nrt=False)
    def fill(wx, wf, tid):
        tx, tf = cpu.fixed_tiles(wx, wf, tid, RX, RF, COLS)
        for r in range(RX):
            for c in range(COLS):
                tx[r, c] = 1 + r * COLS + c
        for r in range(RF):
            for c in range(COLS):
                tf[r, c] = -(1 + r * COLS + c)
        return tx.shape, tf.shape, tx.strides, tf.strides

    one = np.dtype(dtype) == np.float64
    wx = np.zeros((3, (RX + RF) * COLS if one else RX * COLS), dtype)
    wf = np.zeros((3, RF * COLS))
    shapes = fill(wx, wf, 1)
    assert shapes[:2] == ((RX, COLS), (RF, COLS))
    assert shapes[2] == (COLS * wx.itemsize, wx.itemsize) and shapes[3] == (COLS * 8, 8)
    assert not wx[0].any() and not wx[2].any() and not wf[0].any() and not wf[2].any()
    assert np.array_equal(wx[1, :RX * COLS], np.arange(1, RX * COLS + 1))
    tf_seen = wx[1, RX * COLS:] if one else wf[1]
    assert np.array_equal(tf_seen, -np.arange(1, RF * COLS + 1))
    if one:
        assert not wf.any()


def test_unstable_learning_rate_diverges_every_chain():
    land = gs.landscapes.Quadratic(1.0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        run = gs.simulate(land, gs.optimizers.SGD(lr=2.5), n_chains=50, n_steps=200, progress=False)
    assert run.n_diverged == 50
    assert run.n_samples == 0 and not np.isnan(run.hist).any()


def test_no_warning_for_a_healthy_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _run().n_diverged == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), r"batch_size must be an integer in \["),
        (dict(n_chains=0), r"n_chains must be an integer in \["),
        (dict(n_steps=0), r"n_steps must be an integer in \["),
        (dict(burn_in=120), r"burn_in must be in \[0, n_steps - 1\]"),
        (dict(burn_in=-1), r"burn_in must be an integer in \[0, inf\)"),
        (dict(thin=0), r"thin must be an integer in \["),
        (dict(seed=-1), "seed must be in"),
        (dict(seed=2**64), "seed must be in"),
        (dict(backend="tpu"), "backend must be one of"),
        (dict(dtype=np.int32), "dtype must be one of"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(init=np.zeros(3)), r"init must have shape \(1,\) or \(600, 1\)"),
        (dict(init=np.zeros((600, 2))), "init must have shape"),
        (dict(init=[np.nan]), "init must be finite"),
        (dict(bins=1), r"bins must be an integer in \["),
        (dict(hist_range="wide"), "hist_range must be"),
        (dict(hist_range=[1.0, -1.0]), "hist_range must be"),
        (dict(checkpoint_every=-1), "checkpoint_every must be"),
        (dict(keep_final="yes"), "keep_final must be"),
        (dict(bins=[np.array([0.0, 0.1, 0.5])]), "uniformly spaced"),
        (dict(loss_range=(1.0, 0.0)), "loss_range must be"),
        (dict(record_trajectories=601), r"record_trajectories must be an integer in \["),
        (dict(trajectory_every=0), r"trajectory_every must be an integer in \["),
        (dict(batch_size=1.5), "batch_size must be an integer"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _run(**kwargs)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: gs.optimizers.SGD(lr=-0.1), r"lr must be finite and in \(0, inf\)"),
        (lambda: gs.optimizers.HeavyBall(lr=0.1, momentum=1.0), r"momentum must be in \[0.0, 1.0\)"),
        (lambda: gs.optimizers.HeavyBall(lr=0.1, dampening=0.5, nesterov=True), "nesterov=True requires"),
        (lambda: gs.optimizers.EMAMomentum(lr=0.1, beta=-0.1), "beta must be in"),
        (lambda: gs.noise.Gaussian(sigma=0.0), "sigma must be finite and in"),
        (lambda: gs.noise.Gaussian(covariance=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (lambda: gs.landscapes.Quadratic([[1.0, 0.0], [0.0, -1.0]]), "positive definite"),
        (lambda: gs.landscapes.DoubleWell(barrier=0.0), "barrier must be"),
        (lambda: gs.landscapes.Periodic(dim=9), r"dim must be an integer in \[1, 8\]"),
        (lambda: gs.schedules.RobbinsMonro(t0=10, gamma=0.5), r"gamma must be in \(0.5, 1.0\]"),
        (lambda: gs.schedules.StepHalving(every=0), "every must be an integer"),
        (lambda: gs.noise.MeanEstimation(np.zeros((1, 1))), "data must have shape"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_data_set_noise_requires_its_landscape():
    noise = gs.noise.MeanEstimation(np.arange(10.0))
    with pytest.raises(ValueError, match="landscape=noise.landscape"):
        gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(0.1), noise=noise, progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 10\]"):
        gs.simulate(noise.landscape, gs.optimizers.SGD(0.1),
                    noise=gs.noise.MeanEstimation(np.arange(10.0), replace=False), batch_size=11, progress=False)


def test_user_arrays_are_not_mutated():
    init = np.full((600, 1), 0.5)
    keep = init.copy()
    data = np.arange(12.0)
    noise = gs.noise.MeanEstimation(data)
    data[0] = 99.0
    assert noise.data[0, 0] == 0.0
    _run(init=init)
    assert np.array_equal(init, keep)


def _interrupt_after(monkeypatch, calls):
    """Deliver a real SIGINT to this process right after the kernel's ``calls``-th call."""
    import os
    import signal

    from gibbs_sgd.kernels import cpu

    kern = cpu.build(LAND, NOISE, OPT)
    real = kern.run_segment
    count = [0]

    def wrapped(*args):
        real(*args)
        count[0] += 1
        if count[0] == calls:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(kern, "run_segment", wrapped)


@pytest.mark.parametrize("calls, chunk", [(1, 600), (3, 150)], ids=["mid-chunk", "between-chunks"])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, calls, chunk):
    # 600 chains: a kernel call covers 2**24 // 600 = 27962 steps, so 40000 steps need two calls per chunk
    kw = dict(n_steps=40_000, burn_in=1000, thin=50, max_chunk=chunk, trajectory_every=500)
    whole = _run(**kw)
    ckpt = tmp_path / "run.ckpt.npz"
    with monkeypatch.context() as m:
        _interrupt_after(m, calls)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            part = _run(checkpoint=ckpt, **kw)
    assert not part.complete and ckpt.exists()
    assert "INTERRUPTED" in part.summary()
    resumed = _run(checkpoint=ckpt, **kw)
    assert resumed.complete and resumed.config["resumed_from_checkpoint"]
    _assert_same(whole, resumed)
    # the checkpoint outlives the call (a process dying before the caller saves loses nothing):
    # the same call now returns the completed run from it without running a step
    assert ckpt.exists()
    again = _run(checkpoint=ckpt, **kw)
    _assert_same(whole, again)
    assert again.config["resumed_from_checkpoint"] and again.config["chain_steps_run"] == 0


def test_checkpoint_of_another_run_is_refused(tmp_path, monkeypatch):
    ckpt = tmp_path / "run.ckpt.npz"
    kw = dict(n_steps=40_000, burn_in=1000, thin=50, trajectory_every=500)
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.warns(RuntimeWarning):
            _run(checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="different settings"):
        _run(checkpoint=ckpt, seed=7, **kw)


def test_one_description_of_the_run_feeds_fingerprint_and_config():
    """``RunPlan.describe()`` is the run: every field of the plan but the runtime ones is in it,
    changing any one of them changes the checkpoint fingerprint, and ``result.config`` holds the
    description whole (so a setting added to the plan cannot be left out of either)."""
    from gibbs_sgd.simulate import RunPlan, plan_run

    kw = dict(noise=NOISE, batch_size=2, n_chains=600, n_steps=120, burn_in=40, seed=123, backend="cpu",
              init=None, schedule=None, dtype=np.float64, thin=1, bins=100, hist_range="auto", loss_range=None,
              keep_final=True, record_trajectories=4, trajectory_every=5, trajectory_state=False,
              trace_points=1000, progress=False, max_chunk=None, block=None, checkpoint=None,
              checkpoint_every=60.0)
    plan = plan_run(LAND, OPT, **kw)
    identity = RunPlan.identity_fields()
    runtime = {f.name for f in dataclasses.fields(RunPlan)} - set(identity)
    assert runtime == {"init", "checkpoint", "checkpoint_every", "progress"}
    desc = plan.describe()
    assert list(desc) == identity
    json.dumps(desc)  # JSON-ready
    # a different value of every identity field gives a different fingerprint
    other = {"landscape": gs.landscapes.DoubleWell(barrier=1.1, tilt=0.2), "noise": gs.noise.Gaussian(2.5),
             "optimizer": gs.optimizers.HeavyBall(lr=0.03, momentum=0.5),
             "schedule": gs.schedules.StepHalving(every=60), "initial_edges": tuple(e * 2 for e in plan.initial_edges),
             "initial_loss_range": (0.0, 9.0), "range_request": {**plan.range_request, "hist_range": "box"},
             "dtype": "float32", "backend": "cuda", "version": "0.0.0", "keep_final": False,
             "divergence_radius": plan.divergence_radius * 2}
    for name in identity:
        v = other[name] if name in other else getattr(plan, name) + 1
        changed = dataclasses.replace(plan, **{name: v})
        assert changed.fingerprint != plan.fingerprint, name
    # init by value; the runtime fields never
    assert dataclasses.replace(plan, init=plan.init + 0.5).fingerprint != plan.fingerprint
    for name, v in (("checkpoint", Path("x.npz")), ("checkpoint_every", 1.0), ("progress", True)):
        assert dataclasses.replace(plan, **{name: v}).fingerprint == plan.fingerprint, name
    run = _run()
    for name, v in plan.describe().items():
        assert json.loads(json.dumps(run.config[name])) == json.loads(json.dumps(v)), name
