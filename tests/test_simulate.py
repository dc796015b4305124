"""simulate(): layout independence, persistence, dtypes, divergence accounting, bad input."""
import warnings

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
    for name in ("hist", "loss_hist", "outside", "moments", "trace", "final", "alive", "diverged", "trajectories"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x, y), name
        assert x.dtype == y.dtype


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


def test_float32_statistics_agree_with_float64():
    """Same stream, rounded state: the two means of L agree within their joint standard error."""
    a, b = _run(dtype=np.float32, n_chains=4000), _run(dtype=np.float64, n_chains=4000)
    ea, eb = a.mean_loss, b.mean_loss
    assert abs(ea.value - eb.value) < 4 * np.hypot(ea.stderr, eb.stderr)


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
        (dict(batch_size=0), "batch_size must be in"),
        (dict(n_chains=0), "n_chains must be in"),
        (dict(n_steps=0), "n_steps must be in"),
        (dict(burn_in=120), r"burn_in must be in \[0, n_steps - 1\]"),
        (dict(burn_in=-1), "burn_in must be in"),
        (dict(thin=0), "thin must be in"),
        (dict(seed=-1), "seed must be in"),
        (dict(seed=2**64), "seed must be in"),
        (dict(backend="tpu"), "backend must be one of"),
        (dict(dtype=np.int32), "dtype must be one of"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(init=np.zeros(3)), r"init must have shape \(1,\) or \(600, 1\)"),
        (dict(init=np.zeros((600, 2))), "init must have shape"),
        (dict(init=[np.nan]), "init must be finite"),
        (dict(bins=1), "bins must be in"),
        (dict(bins=[np.linspace(5, 6, 11)]), "misses the landscape's box"),
        (dict(bins=[np.array([0.0, 0.1, 0.5])]), "uniformly spaced"),
        (dict(loss_range=(1.0, 0.0)), "loss_range must be"),
        (dict(record_trajectories=601), "record_trajectories must be in"),
        (dict(trajectory_every=0), "trajectory_every must be in"),
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
    assert not ckpt.exists()


def test_checkpoint_of_another_run_is_refused(tmp_path, monkeypatch):
    ckpt = tmp_path / "run.ckpt.npz"
    kw = dict(n_steps=40_000, burn_in=1000, thin=50, trajectory_every=500)
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.warns(RuntimeWarning):
            _run(checkpoint=ckpt, **kw)
    with pytest.raises(ValueError, match="different settings"):
        _run(checkpoint=ckpt, seed=7, **kw)
