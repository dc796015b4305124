"""Right answers with default settings: histograms that resolve the law at any temperature,
verdicts that never rest on a check that could not be made, diverged chains out of every
statistic, and the optimizer state with its errors.

Error budgets: every Monte-Carlo comparison below is a z-score against the run's own
chain-to-chain standard error (|z| < 4: false-alarm rate 6e-5 per check); the bin counts and
the divergence bookkeeping are exact.
"""
import warnings

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd._bins import PILOT_CHAINS, informative_bins
from gibbs_sgd.result import SimulationResult

QUAD = gs.landscapes.Quadratic(1.0)


def _sgd_run(lr, sigma, **kw):
    args = dict(noise=gs.noise.Gaussian(sigma), n_chains=4000, n_steps=3000, seed=3, progress=False)
    args.update(kw)
    return gs.simulate(QUAD, gs.optimizers.SGD(lr=lr), **args)


@pytest.mark.parametrize("lr, sigma", [(0.002, 1.0), (0.02, 100.0)], ids=["T=1e-3", "T=100"])
def test_default_bins_resolve_the_law_at_any_temperature(lr, sigma):
    """The issue's case (T = 1e-3, spread 0.03: the box put it in 2 bins) and T = 100 (spread 10,
    wider than the box): the default range follows the chains, so at least 30 bins hold more
    than 1% of the fullest, for the coordinate and for the loss, and the verdict is Gibbs."""
    run = _sgd_run(lr, sigma)
    assert run.config["hist_range_rule"]["coordinates"] == ["pilot"]
    assert informative_bins(run.hist[0]) >= 30
    assert informative_bins(run.loss_hist) >= 30
    assert run.outside[0].sum() <= 1e-4 * run.n_samples
    fit = gs.fit_temperature(run)
    assert fit.status == "gibbs", fit.verdict
    assert fit.informative_bins >= 30
    # negative control: the old default (the landscape's box) cannot resolve T = 1e-3, and says so
    if lr == 0.002:
        boxed = gs.fit_temperature(_sgd_run(lr, sigma, hist_range="box"))
        assert boxed.status == "undetermined" and not boxed.is_gibbs
        assert "resolves the law in only" in boxed.verdict


def test_joint_histogram_adapts_in_2d():
    land = gs.landscapes.Quadratic([1.0, 4.0])
    run = gs.simulate(land, gs.optimizers.SGD(lr=0.002), n_chains=4000, n_steps=3000, seed=1, progress=False)
    for k in range(2):
        assert informative_bins(run.hist[k]) >= 30
    assert informative_bins(run.hist2d.ravel()) >= 30 * 30 * 0.5  # a 2-D Gaussian fills an ellipse
    assert gs.fit_temperature(run).status == "gibbs"


def test_adaptive_edges_are_exact_binary_numbers_and_the_same_however_chunked():
    """The range is fixed from the first PILOT_CHAINS chains, whatever the chunking, and the
    bin width is a 4-significant-bit binary number, so the edges are exact."""
    kw = dict(n_chains=PILOT_CHAINS + 500, n_steps=200, burn_in=100, thin=10)
    whole = _sgd_run(0.05, 1.0, **kw)
    chunked = _sgd_run(0.05, 1.0, max_chunk=4096, **kw)  # the pilot then runs on its own first
    assert chunked.config["max_chunk"] < PILOT_CHAINS
    for a, b in zip(whole.hist_edges, chunked.hist_edges):
        assert np.array_equal(a, b)
        width = a[1] - a[0]
        mantissa, _ = np.frexp(width)
        assert (mantissa * 32) == np.round(mantissa * 32)
        assert np.array_equal(np.diff(a), np.full(a.shape[0] - 1, width))
    assert np.array_equal(whole.hist, chunked.hist) and np.array_equal(whole.moments, chunked.moments)
    assert np.array_equal(whole.loss_edges, chunked.loss_edges)


def test_periodic_window_and_full_period():
    land = gs.landscapes.Periodic(amplitude=1.0, period=1.0)
    cold = gs.simulate(land, gs.optimizers.SGD(lr=0.002), n_chains=2000, n_steps=2000, seed=2, progress=False)
    assert cold.hist_edges[0][-1] - cold.hist_edges[0][0] < 0.5
    assert informative_bins(cold.hist[0]) >= 30
    hot = gs.simulate(land, gs.optimizers.SGD(lr=0.1), noise=gs.noise.Gaussian(30.0), n_chains=2000,
                      n_steps=2000, seed=2, progress=False)
    assert hot.config["hist_range_rule"]["coordinates"] == ["period"]
    assert hot.hist_edges[0][-1] - hot.hist_edges[0][0] == pytest.approx(1.0)
    assert hot.outside.sum() == hot.outside[1].sum()  # nothing is outside a whole period


def test_from_samples_adapts_too():
    for t in (1e-4, 1e2):
        x = gs.Gibbs(QUAD, temperature=t).rvs(50_000, random_state=0)
        fit = gs.fit_temperature(SimulationResult.from_samples(QUAD, x))
        assert fit.informative_bins >= 30 and fit.status == "gibbs", fit.verdict
        # negative control: the wrong temperature must fail
        wrong = gs.fit_temperature(SimulationResult.from_samples(QUAD, x), temperature=1.2 * t)
        assert wrong.status == "not gibbs"


def test_a_verdict_never_rests_on_a_check_that_could_not_be_made():
    # one step: no time axis for the drift test, and the chains have not spread (2 bins)
    run = _sgd_run(0.002, 1.0, n_steps=1)
    fit = gs.fit_temperature(run)
    assert fit.status == "undetermined" and not fit.is_gibbs
    assert any("drift test" in u for u in fit.unchecked)
    assert "undetermined" in fit.verdict and "consistent with Gibbs" not in fit.verdict


def test_nan_estimator_is_not_a_pass(monkeypatch):
    run = _sgd_run(0.02, 1.0, n_chains=2000, n_steps=1000)
    good = gs.fit_temperature(run)
    assert good.status == "gibbs"
    lay = run._layout
    broken = run.moments.copy()
    broken[:, lay["laplacian"]] = np.nan  # the configurational estimator cannot be computed
    run.moments[...] = broken
    fit = gs.fit_temperature(run)
    assert fit.status == "undetermined"
    assert any("configurational" in u for u in fit.unchecked)


def test_verdict_leads_with_the_size_of_the_departure():
    """Finite lr on the double well: a small departure (the estimators agree within a few
    percent) resolved at many sigma. The verdict gives both numbers."""
    n = 20_000
    init = np.where(np.arange(n) % 2 == 0, -1.0, 1.0)  # both wells from the start (T = 0.2, barrier 1)
    run = gs.simulate(gs.landscapes.DoubleWell(barrier=1.0), gs.optimizers.SGD(lr=0.01), init=init,
                      noise=gs.noise.Gaussian(6.3), n_chains=n, n_steps=3000, seed=5, progress=False)
    fit = gs.fit_temperature(run)
    assert fit.status == "not gibbs"
    assert 0 < fit.departure < 0.05 and fit.significance > 4
    assert fit.verdict.startswith("close to Gibbs, not exact")
    assert f"{100 * fit.departure:.2g}%" in fit.verdict and "resolved at" in fit.verdict


def test_diverged_chains_leave_no_sample_in_any_statistic():
    """SGD at lr = 0.2 on the double well: some chains run away. Their samples before they
    crossed the divergence radius are kept out of every statistic: the sample count is exactly
    (chains that never diverged) x (sampled steps), and the moment sums equal those recomputed
    from the surviving chains' trajectories."""
    land = gs.landscapes.DoubleWell()
    n, steps, burn = 3000, 400, 100
    with pytest.warns(RuntimeWarning, match="diverged"):
        run = gs.simulate(land, gs.optimizers.SGD(lr=0.2), n_chains=n, n_steps=steps, burn_in=burn, seed=1,
                          keep_final=True, record_trajectories=n, trajectory_every=1, progress=False)
    dead = ~run.alive
    assert dead.sum() > 0 and run.n_diverged == dead.sum()
    per_chain = steps - burn
    assert run.n_samples == (n - dead.sum()) * per_chain
    assert run.hist[0].sum() + run.outside[0].sum() == run.n_samples
    x = run.trajectories[~dead, burn:, 0]
    loss = land.loss(x.ravel())
    assert np.isclose(run.moments[:, 1].sum(), loss.sum(), rtol=1e-12, atol=0)
    assert run.mean_loss.value < 1.0  # the bulk; a diverged chain's samples reach 1e10
    assert run.config["diverged_blocks_rerun"] >= 1


def test_incomplete_run_is_not_fitted_unless_asked(monkeypatch):
    run = _sgd_run(0.02, 1.0, n_chains=500, n_steps=200)
    run.config["interrupted"] = True
    with pytest.raises(ValueError, match="incomplete"):
        gs.fit_temperature(run)
    with pytest.warns(RuntimeWarning, match="incomplete"):
        fit = gs.fit_temperature(run, allow_incomplete=True)
    assert not fit.is_gibbs and "incomplete" in fit.verdict


def test_fit_checks_its_arguments():
    run = _sgd_run(0.02, 1.0, n_chains=500, n_steps=200)
    with pytest.raises(TypeError, match="run must be"):
        gs.fit_temperature("x")
    with pytest.raises(ValueError, match="landscape does not match"):
        gs.fit_temperature(run, landscape=gs.landscapes.Quadratic(2.0))
    assert gs.fit_temperature(run, landscape=gs.landscapes.Quadratic(1.0)).temperature > 0


def test_optimizer_state_final_trajectory_and_moments_with_errors():
    """Heavy ball on a quadratic: the exact Lyapunov covariance of (phi, momentum buffer),
    every entry within 4 standard errors; final_state is the last recorded state; negative
    control: the small-lr covariance (40% off in Var b at this lr) is rejected."""
    opt = gs.optimizers.HeavyBall(lr=0.05, momentum=0.5)
    run = gs.simulate(QUAD, opt, n_chains=20_000, n_steps=400, seed=7, keep_final=True,
                      record_trajectories=5, trajectory_every=1, trajectory_state=True, progress=False)
    sm = run.state_moments()
    assert sm.names == ("phi[0]", "momentum_buffer[0]")
    exact = gs.theory.stationary_covariance(opt, hessian=[[1.0]], noise=gs.noise.Gaussian(1.0), batch_size=1,
                                            include_state=True)
    z = (sm.covariance.value - exact) / sm.covariance.stderr
    assert np.all(np.abs(z) < 4), z
    assert np.abs((sm.mean.value - 0) / sm.mean.stderr).max() < 4
    small_lr = np.array([[exact[0, 0], exact[0, 1]], [exact[1, 0], 1.0 * exact[1, 1] * 0.6]])
    assert np.abs((sm.covariance.value - small_lr) / sm.covariance.stderr).max() > 4
    assert run.trajectories.shape[2] == 2
    assert np.array_equal(run.final_state[:5, 0], run.trajectories[:, -1, 1])
    assert np.array_equal(run.final[:5, 0], run.trajectories[:, -1, 0])
    np.testing.assert_array_equal(run.phi_var().value, sm.covariance.value[:1, 0])


def test_chunk_budget_counts_every_per_chain_array():
    """SGD has no optimizer state, but S keeps one placeholder column: 8 + 8 + 1 bytes a chain."""
    import sys

    sim = sys.modules["gibbs_sgd.simulate"]

    run = _sgd_run(0.02, 1.0, n_chains=200, n_steps=20, block=1)
    assert run.config["max_chunk"] == sim._CHUNK_BYTES // 17


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_divergence_rerun_and_pilot_range_on_every_backend(backend):
    """The same bookkeeping on both backends (CUDA on the simulator at small size): diverged
    chains leave no sample (count = survivors x sampled steps), and the adaptive range, read off
    the float64 pilot, is bitwise the same as the CPU's."""
    land = gs.landscapes.DoubleWell()
    kw = dict(n_chains=128, n_steps=60, burn_in=20, seed=1, block=32, keep_final=True, progress=False)
    with pytest.warns(RuntimeWarning, match="diverged"):
        run = gs.simulate(land, gs.optimizers.SGD(lr=0.25), backend=backend, **kw)
    assert run.n_diverged > 0
    assert run.n_samples == run.alive.sum() * 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cpu = gs.simulate(land, gs.optimizers.SGD(lr=0.25), backend="cpu", **kw)
    assert np.array_equal(run.hist_edges[0], cpu.hist_edges[0])
    assert np.array_equal(run.loss_edges, cpu.loss_edges)
    assert np.array_equal(run.hist, cpu.hist) and np.array_equal(run.diverged, cpu.diverged)
    # float64 chains agree to ~1e-16 per step between backends (FMA contraction differs), and at
    # lr = 0.25 the chains near the unstable edge amplify that by up to ~1e8 in 60 steps
    np.testing.assert_allclose(run.moments, cpu.moments, rtol=1e-6)


def _index_jumps(x):
    return np.array([x[int(abs(x[0]) > 3.0) * 5]])  # index 5 (out of range) only beyond |x| = 3


def test_custom_out_of_range_index_in_the_kernel_is_an_error():
    """The test point (the box centre) passes; in the kernel the index leaves the array once a
    chain passes |x| = 3: with the default bounds checks that is an IndexError, not a stray read."""
    land = gs.landscapes.Custom(loss=lambda x: 0.5 * x[0] ** 2, grad=_index_jumps, dim=1, box=[[-5.0, 5.0]],
                                laplacian=lambda x: 1.0)
    with pytest.raises(IndexError):
        gs.simulate(land, gs.optimizers.SGD(lr=0.1), n_chains=64, n_steps=10, init=[4.0], progress=False,
                    backend="cpu")


def test_editing_a_custom_landscape_refuses_its_old_checkpoint(tmp_path, monkeypatch):
    """A checkpoint is keyed by the Custom functions' code: after the gradient is edited, resuming
    is refused instead of finishing the old run with the new physics."""
    import os
    import signal

    from gibbs_sgd.kernels import cpu

    def landscape(k):
        return gs.landscapes.Custom(loss=lambda x: 0.5 * k * x[0] ** 2, grad=lambda x: k * x, dim=1,
                                    box=[[-3.0, 3.0]], laplacian=lambda x: k)

    kw = dict(n_chains=256, n_steps=400, burn_in=100, progress=False, backend="cpu", checkpoint=tmp_path / "c.npz")
    old = landscape(1.0)
    kern = cpu.build(old, gs.noise.Gaussian(1.0), gs.optimizers.SGD(lr=0.05))
    real = kern.run_segment
    calls = [0]

    def once(*a):  # called once per thread and segment: interrupt once
        real(*a)
        calls[0] += 1
        if calls[0] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(kern, "run_segment", once)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        part = gs.simulate(old, gs.optimizers.SGD(lr=0.05), **kw)
    assert not part.complete
    monkeypatch.undo()
    with pytest.raises(ValueError, match="different settings"):
        gs.simulate(landscape(1.5), gs.optimizers.SGD(lr=0.05), **kw)
    assert gs.simulate(old, gs.optimizers.SGD(lr=0.05), **kw).complete  # the same code resumes
