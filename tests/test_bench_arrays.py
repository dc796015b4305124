"""The benchmark's array code (one source, run by NumPy, PyTorch and CuPy) does simulate's job.

Each library draws its own normals, so the runs agree in distribution only: the mean loss
over the sampling window must agree with simulate's within |z| < 4 (z from simulate's
block standard error, times sqrt 2 for the two independent runs). Negative control: the same
code with a 30% larger learning rate gives a different stationary loss, |z| > 4.
"""
import dataclasses

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd import bench


@pytest.mark.parametrize("name", list(bench.CASES))
@pytest.mark.parametrize("library", ["numpy"] + bench.array_libraries())
def test_array_code_does_the_same_job(name, library):
    case = bench.CASES[name]
    land, opt, noise, B = case.make()
    n, steps, burn_in, thin = 20_000, 120, 60, 10
    edges = [np.linspace(land.box[i, 0], land.box[i, 1], 41) for i in range(land.dim)]
    sim = gs.simulate(land, opt, noise=noise, batch_size=B, n_chains=n, n_steps=steps, burn_in=burn_in, thin=thin,
                      bins=40, seed=1, backend="cpu", progress=False)
    ops = bench.ArrayOps(library, seed=2, device="cpu" if library == "torch" else None)
    ref = case.array_run(ops, land, opt, noise, B, n, steps, burn_in, thin, edges)
    assert ref["n_samples"] == sim.n_samples
    assert abs(bench._mean_loss_z(sim, ref)) < 4
    if name == "sgd-quadratic":
        wrong = case.array_run(ops, land, dataclasses.replace(opt, lr=opt.lr * 1.3), noise, B, n, steps, burn_in,
                               thin, edges)
        assert abs(bench._mean_loss_z(sim, wrong)) > 4


def test_array_ops_rejects_unknown_library():
    with pytest.raises(ValueError, match="library must be"):
        bench.ArrayOps("jax")


@pytest.mark.parametrize("name", sorted(bench._bench_jax.JAX_CASES))
def test_jax_code_does_the_same_job(name):
    """The JAX column's job (jit + lax.scan) is simulate's: the same mean loss within |z| < 4, the
    same number of samples; negative control: a 30% larger learning rate is told apart."""
    pytest.importorskip("jax")
    case = bench.CASES[name]
    land, opt, noise, B = case.make()
    n, steps, burn_in, thin = 20_000, 120, 60, 10
    edges = [np.linspace(land.box[0, 0], land.box[0, 1], 41)]
    sim = gs.simulate(land, opt, noise=noise, batch_size=B, n_chains=n, n_steps=steps, burn_in=burn_in, thin=thin,
                      bins=40, seed=1, backend="cpu", progress=False)
    ref = bench._bench_jax.prepare(name, land, opt, noise, B, n, steps, burn_in, thin, edges, 3)()
    assert ref["n_samples"] == sim.n_samples
    assert ref["hist"].sum() + ref["outside"].sum() == sim.n_samples
    assert abs(bench._mean_loss_z(sim, ref)) < 4
    wrong = bench._bench_jax.prepare(name, land, dataclasses.replace(opt, lr=opt.lr * 1.3), noise, B, n, steps,
                                     burn_in, thin, edges, 3)()
    assert abs(bench._mean_loss_z(sim, wrong)) > 4
