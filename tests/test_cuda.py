"""The CUDA backend: CPU-GPU agreement, the stationary law on the GPU path, backend selection.

Without a GPU these run on numba-cuda's simulator (the root conftest switches it on), at the
small sizes the simulator can afford (about 0.2 ms per chain-step); with a real GPU they run on
it at full size. numba-cuda absent: skipped.

Error budget of the statistical tests: as tests/test_stationary.py -- standard errors from the
scatter of per-block means, |z| < 4 required (false-alarm rate 6e-5 per assertion), and a
negative control (a wrong temperature) must give |z| > 4.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd.kernels import cuda as cuda_kernels
from gibbs_sgd.theory import sgd_stationary_variance_1d

pytestmark = pytest.mark.skipif(not cuda_kernels.available(), reason="numba-cuda (or its simulator) is not available")

SIM = cuda_kernels.simulator_enabled()
Z_BOUND = 4.0
rng = np.random.default_rng(5)

# Structures covering every kind of code path: 1-D and 2-D, optimizer state (heavy ball,
# Adam), Gaussian noise with a full covariance, data-set noise without replacement (per-chain
# scratch), a periodic landscape (histogram folding), and float32 state.
AGREEMENT_CASES = [
    pytest.param(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.3), gs.noise.Gaussian(1.0), np.float64,
                 id="quadratic-sgd"),
    pytest.param(gs.landscapes.DoubleWell(barrier=1.0, tilt=0.2), gs.optimizers.Adam(lr=0.02), gs.noise.Gaussian(2.0),
                 np.float64, id="doublewell-adam"),
    pytest.param(gs.landscapes.MuellerBrown(scale=0.05), gs.optimizers.HeavyBall(lr=5e-5, momentum=0.9),
                 gs.noise.Gaussian(covariance=[[400.0, 100.0], [100.0, 900.0]]), np.float64, id="muellerbrown-heavyball"),
    pytest.param(None, gs.optimizers.SGD(lr=0.2), gs.noise.MeanEstimation(data=rng.normal(size=(40, 2)), replace=False),
                 np.float64, id="mean-estimation-without-replacement"),
    pytest.param(gs.landscapes.Periodic(), gs.optimizers.EMAMomentum(lr=0.2, beta=0.8), gs.noise.Gaussian(1.0),
                 np.float64, id="periodic-ema"),
    pytest.param(gs.landscapes.DoubleWell(barrier=1.0, tilt=0.2), gs.optimizers.RMSprop(lr=0.01, centered=True),
                 gs.noise.Gaussian(2.0), np.float32, id="doublewell-rmsprop-float32"),
]


def _both(landscape, optimizer, noise, dtype, **kw):
    landscape = landscape if landscape is not None else noise.landscape
    args = dict(noise=noise, batch_size=3 if not isinstance(noise, gs.noise.Gaussian) else 1, n_chains=260,
                n_steps=24, burn_in=6, seed=17, progress=False, keep_final=True, record_trajectories=5,
                dtype=dtype, block=128, trace_points=6, bins=40)
    args.update(kw)
    return gs.simulate(landscape, optimizer, backend="cpu", **args), gs.simulate(landscape, optimizer, backend="cuda", **args)


@pytest.mark.parametrize("landscape,optimizer,noise,dtype", AGREEMENT_CASES)
def test_cuda_reproduces_the_cpu_backend(landscape, optimizer, noise, dtype):
    """Same seed, same streams, same formulas: the chains and every statistic agree.

    260 chains span three statistics blocks, the last one partial, and a CUDA block of 128
    threads with idle threads. Trajectories and final states agree to 1e-12 relative (float64;
    float32 state: to its rounding), histograms and divergence counts exactly; the moment sums
    differ only in summation order.
    """
    cpu, gpu = _both(landscape, optimizer, noise, dtype)
    assert gpu.config["backend"] == "cuda" and cpu.config["backend"] == "cpu"
    assert gpu.final.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    scale = np.max(np.abs(cpu.final))
    np.testing.assert_allclose(gpu.final, cpu.final, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(gpu.trajectories, cpu.trajectories, rtol=tol, atol=tol * scale)
    np.testing.assert_array_equal(gpu.alive, cpu.alive)
    np.testing.assert_array_equal(gpu.block_hist, cpu.block_hist)
    np.testing.assert_array_equal(gpu.block_loss_hist, cpu.block_loss_hist)
    np.testing.assert_array_equal(gpu.block_outside, cpu.block_outside)
    if cpu.block_hist2d is not None:
        np.testing.assert_array_equal(gpu.block_hist2d, cpu.block_hist2d)
    np.testing.assert_array_equal(gpu.diverged, cpu.diverged)
    # float32: both backends round the state to float32 every step, but where each contracts a
    # multiply-add into an FMA differs, so a last-bit difference can flip a float32 rounding
    stol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gpu.moments, cpu.moments, rtol=stol, atol=stol * np.max(np.abs(cpu.moments)))
    np.testing.assert_allclose(gpu.trace, cpu.trace, rtol=stol, atol=1e-12)


def test_cuda_chunks_and_divergence():
    """Chunked runs (state copied per chunk) and a diverging chain are handled as on the CPU."""
    land = gs.landscapes.Quadratic(1.0)
    # lr h = 3 > 2: every chain grows by 2x per step and is frozen once beyond the divergence radius
    with pytest.warns(RuntimeWarning, match="chains diverged"):
        cpu, gpu = _both(land, gs.optimizers.SGD(lr=3.0), gs.noise.Gaussian(1.0), np.float64, n_steps=60,
                         max_chunk=128)
    assert cpu.n_diverged == gpu.n_diverged > 0
    np.testing.assert_array_equal(gpu.diverged, cpu.diverged)
    np.testing.assert_allclose(gpu.final, cpu.final, rtol=1e-12)


@pytest.mark.parametrize("block", [None, 7])
def test_statistics_blocks_smaller_than_a_cuda_block(block):
    """Small runs (default block of 2 chains here) or a small user block: counts go straight to
    global memory, with the same results as the CPU's."""
    cpu, gpu = _both(gs.landscapes.DoubleWell(barrier=1.0, tilt=0.2), gs.optimizers.HeavyBall(lr=0.02),
                     gs.noise.Gaussian(2.0), np.float64, block=block, n_chains=300)
    assert gpu.moments.shape[0] == cpu.moments.shape[0] > 40
    np.testing.assert_allclose(gpu.final, cpu.final, rtol=1e-12)
    np.testing.assert_array_equal(gpu.block_hist, cpu.block_hist)
    np.testing.assert_array_equal(gpu.block_loss_hist, cpu.block_loss_hist)
    np.testing.assert_array_equal(gpu.block_outside, cpu.block_outside)
    np.testing.assert_allclose(gpu.moments, cpu.moments, rtol=1e-9, atol=1e-9 * np.max(np.abs(cpu.moments)))
    np.testing.assert_allclose(gpu.trace, cpu.trace, rtol=1e-9, atol=1e-12)


def test_float64_is_the_default_on_every_backend():
    """One physics on every machine: float64 unless float32 is asked for (then kept)."""
    kw = dict(n_chains=64, n_steps=4, progress=False, trace_points=1)
    land, opt = gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1)
    assert gs.simulate(land, opt, backend="cuda", **kw).config["dtype"] == "float64"
    assert gs.simulate(land, opt, backend="cpu", **kw).config["dtype"] == "float64"
    run32 = gs.simulate(land, opt, backend="cuda", dtype=np.float32, keep_final=True, **kw)
    assert run32.config["dtype"] == "float32" and run32.final.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stationary_variance_and_temperature_on_the_gpu(dtype):
    """SGD on a quadratic at lr h = 0.5: the exact finite-lr variance, and the fitted T, on the GPU path.

    Simulator: 512 chains x 200 steps (150 sampled, correlation time ~1.3 steps): about 7e4
    effective samples, a 0.6% standard error on the variance; the negative control (the
    small-lr temperature, 25% off) is then ~40 standard errors away. GPU: 10^6 chains.
    """
    lr, h, sigma = 0.5, 1.0, 1.0
    truth = sgd_stationary_variance_1d(lr, h, sigma**2, 1)
    sd = np.sqrt(truth)
    n = 512 if SIM else 1_000_000
    run = gs.simulate(gs.landscapes.Quadratic(h, box=[[-6 * sd, 6 * sd]]), gs.optimizers.SGD(lr),
                      noise=gs.noise.Gaussian(sigma), backend="cuda", dtype=dtype, n_chains=n, n_steps=200,
                      burn_in=50, seed=3, progress=False, trace_points=4, block=128 if SIM else None)
    var = run.phi_var()
    assert abs(var.z(truth)[0]) < Z_BOUND, (var, truth)
    assert abs(run.phi_mean.z(0.0)[0]) < Z_BOUND
    fit = gs.fit_temperature(run, temperature=h * truth)
    assert fit.ci[0] < h * truth < fit.ci[1], fit
    # negative control: the small-lr (Langevin) temperature lr sigma^2 / 2 is rejected
    t_small = lr * sigma**2 / 2
    assert abs(var.z(t_small / h)[0]) > Z_BOUND


def test_backend_selection_and_errors(monkeypatch):
    # "auto" never picks the simulator; it picks a real GPU when there is one
    run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), n_chains=4, n_steps=2, progress=False)
    assert run.config["backend"] == ("cpu" if SIM else "cuda")
    assert "cuda" in gs.available_backends()
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'cpu', 'cuda'"):
        gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), backend="gpu", n_chains=4, n_steps=2)
    monkeypatch.setattr(cuda_kernels, "_cuda_module", lambda: None)
    monkeypatch.setattr(cuda_kernels, "simulator_enabled", lambda: False)
    assert gs.available_backends() == ["cpu"]
    with pytest.raises(RuntimeError, match="numba-cuda is not installed"):
        gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), backend="cuda", n_chains=4, n_steps=2)


def test_too_many_bins_for_shared_memory_is_a_clear_error():
    with pytest.raises(ValueError, match="bins=8000"):
        gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), backend="cuda", n_chains=4,
                    n_steps=2, bins=8000, progress=False)
    # the moment sums share the 48 KiB: 8-D amsgrad Adam keeps 1087 of them (8.7 kB) beside 1200-bin histograms
    with pytest.raises(ValueError, match="shared memory"):
        gs.simulate(gs.landscapes.Quadratic(np.eye(8)), gs.optimizers.Adam(lr=0.01, amsgrad=True), backend="cuda",
                    n_chains=4, n_steps=2, bins=1200, progress=False)


def test_auto_falls_back_to_the_cpu_for_runs_the_gpu_cannot_do(monkeypatch):
    monkeypatch.setattr(cuda_kernels, "gpu_available", lambda: True)
    no_lap = gs.landscapes.Custom(loss=_quartic_loss, grad=_quartic_grad, dim=2, box=[[-2.0, 2.0], [-2.0, 2.0]])
    run = gs.simulate(no_lap, gs.optimizers.SGD(lr=0.05), n_chains=4, n_steps=2, progress=False)
    assert run.config["backend"] == "cpu"
    run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), n_chains=4, n_steps=2, bins=20000,
                      progress=False)
    assert run.config["backend"] == "cpu"


def test_huge_values_are_counted_above_the_histogram_range():
    """A loss far above a tiny loss range lands in the upper outside counter on both backends
    (it must not wrap around through a 64-bit integer conversion)."""
    cpu, gpu = _both(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.3), gs.noise.Gaussian(1.0), np.float64,
                     n_chains=130, loss_range=(0.0, 1e-20))
    np.testing.assert_array_equal(gpu.block_outside, cpu.block_outside)
    assert cpu.outside[1, 0] == 0 and cpu.outside[1, 1] == cpu.n_samples


@pytest.mark.skipif(not SIM, reason="on a real GPU every kernel is compiled by the tests above")
def test_every_structure_compiles_for_the_real_gpu():
    """The simulator runs the model's CPU-compiled functions; this compiles them for sm_90.

    A separate process without the simulator types, lowers and emits PTX for the kernel of
    every landscape, noise and optimizer (float32; float64 for two). It needs NVVM (installed with
    ``numba-cuda[cu13]``) but no GPU.
    """
    code = r"""
import numpy as np
from gibbs_sgd.kernels import cuda as K
from gibbs_sgd import landscapes as L, optimizers as O, noise as N
rng = np.random.default_rng(0)
cases = [(l, N.Gaussian(1.0), O.SGD(lr=0.1)) for l in (L.Quadratic(1.0), L.Periodic(), L.MuellerBrown(),
         L.Rosenbrock(), L.GaussianMixture(weights=[1, 2], means=[[0.0, 0.0], [2.0, 1.0]], covariances=0.5))]
cases += [(L.DoubleWell(barrier=1.0, tilt=0.2), N.Gaussian(1.0), o) for o in (O.HeavyBall(lr=0.1, nesterov=True),
          O.EMAMomentum(lr=0.1, beta=0.9), O.RMSprop(lr=0.01, momentum=0.9, centered=True),
          O.Adam(lr=0.01, amsgrad=True), O.Adam(lr=0.01, bias_correction="running"))]
for noise in (N.MeanEstimation(data=rng.normal(size=(50, 2)), replace=False), N.MeanEstimation(mean=[0.0, 1.0]),
              N.LinearRegression(inputs=rng.normal(size=(40, 2)), targets=rng.normal(size=40)),
              N.LinearRegression(weights=[1.0, 2.0])):
    cases.append((noise.landscape, noise, O.SGD(lr=0.1)))


def quartic_loss(x):
    return 0.25 * (x[0] * x[0] + x[1] * x[1]) ** 2


def quartic_grad(x, out):
    out[0] = (x[0] * x[0] + x[1] * x[1]) * x[0]
    out[1] = (x[0] * x[0] + x[1] * x[1]) * x[1]


def quartic_lap(x):
    return 4.0 * (x[0] * x[0] + x[1] * x[1])


cases.append((L.Custom(loss=quartic_loss, grad=quartic_grad, laplacian=quartic_lap, dim=2, box=[[-2.0, 2.0]] * 2),
              N.Gaussian(1.0), O.Adam(lr=0.01)))
n = 0
for i, (land, noise, opt) in enumerate(cases):
    for dt in (np.float32, np.float64) if i in (0, 9) else (np.float32,):
        ptx = K.compile_ptx(land, noise, opt, dt)
        assert ".entry" in ptx and "atom" in ptx
        n += 1
print("compiled", n)
"""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; from numba.cuda.cudadrv import nvvm; "
                            "nvvm.NVVM()"], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("NVVM is not installed (pip install 'numba-cuda[cu13]')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "compiled 17" in out.stdout


def test_the_package_works_without_numba_cuda():
    """numba-cuda missing (import blocked): the package imports, "auto" runs on the CPU and
    backend="cuda" is a clear error."""
    code = r"""
import sys
sys.modules["numba.cuda"] = None  # as if numba-cuda were not installed
import gibbs_sgd as gs
assert gs.available_backends() == ["cpu"], gs.available_backends()
run = gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), n_chains=8, n_steps=4, progress=False)
assert run.config["backend"] == "cpu"
try:
    gs.simulate(gs.landscapes.Quadratic(1.0), gs.optimizers.SGD(lr=0.1), backend="cuda", n_chains=8, n_steps=4)
except RuntimeError as e:
    assert "numba-cuda is not installed" in str(e), e
else:
    raise AssertionError("backend='cuda' ran without numba-cuda")
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_interrupted_gpu_run_resumes(tmp_path, monkeypatch):
    """Ctrl-C between kernel launches: the state and statistics come back from the GPU into the
    checkpoint, and the resumed run ends where an uninterrupted one does."""
    import signal

    monkeypatch.setattr(cuda_kernels, "STEPS_PER_CALL_BUDGET", 256 * 20)  # 3 launches of 20 steps
    kw = dict(noise=gs.noise.Gaussian(2.0), n_chains=256, n_steps=60, burn_in=10, seed=4, backend="cuda",
              dtype=np.float64, block=128, trace_points=3, keep_final=True, progress=False)
    land, opt = gs.landscapes.DoubleWell(barrier=1.0, tilt=0.2), gs.optimizers.HeavyBall(lr=0.02)
    whole = gs.simulate(land, opt, **kw)
    real = cuda_kernels.Engine.segment
    count = [0]

    def segment(self, *args):
        real(self, *args)
        count[0] += 1
        if count[0] == 2:  # the first call ends at burn_in: stop inside the sampling window
            os.kill(os.getpid(), signal.SIGINT)

    ckpt = tmp_path / "gpu.ckpt.npz"
    with monkeypatch.context() as m:
        m.setattr(cuda_kernels.Engine, "segment", segment)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            part = gs.simulate(land, opt, checkpoint=ckpt, **kw)
    assert not part.complete and ckpt.exists()
    assert 0 < part.moments[:, 0].sum() < whole.moments[:, 0].sum()
    resumed = gs.simulate(land, opt, checkpoint=ckpt, **kw)
    assert resumed.complete and ckpt.exists()  # kept until the user deletes it
    np.testing.assert_allclose(resumed.final, whole.final, rtol=1e-12)
    np.testing.assert_array_equal(resumed.block_hist, whole.block_hist)
    np.testing.assert_allclose(resumed.moments, whole.moments, rtol=1e-9)


def _quartic_loss(x):
    return 0.25 * (x[0] * x[0] + x[1] * x[1]) ** 2 + 0.5 * x[0] * x[1]


def _quartic_grad(x, out):
    r2 = x[0] * x[0] + x[1] * x[1]
    out[0] = r2 * x[0] + 0.5 * x[1]
    out[1] = r2 * x[1] + 0.5 * x[0]


def _quartic_lap(x):
    return 4.0 * (x[0] * x[0] + x[1] * x[1])


def test_custom_landscape_on_the_gpu():
    """A user's landscape runs on the GPU when it needs no arrays (grad into out, a Laplacian);
    otherwise the error says what to change."""
    land = gs.landscapes.Custom(loss=_quartic_loss, grad=_quartic_grad, laplacian=_quartic_lap, dim=2,
                                box=[[-2.0, 2.0], [-2.0, 2.0]], name="quartic")
    cpu, gpu = _both(land, gs.optimizers.SGD(lr=0.05), gs.noise.Gaussian(1.0), np.float64,
                     schedule=gs.schedules.StepHalving(every=8))
    np.testing.assert_allclose(gpu.final, cpu.final, rtol=1e-12)
    np.testing.assert_array_equal(gpu.block_hist2d, cpu.block_hist2d)
    no_lap = gs.landscapes.Custom(loss=_quartic_loss, grad=_quartic_grad, dim=2, box=[[-2.0, 2.0], [-2.0, 2.0]])
    with pytest.raises(ValueError, match="a laplacian"):
        gs.simulate(no_lap, gs.optimizers.SGD(lr=0.05), backend="cuda", n_chains=4, n_steps=2, progress=False)
