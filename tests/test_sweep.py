"""Sweeps: grids with tied parameters, executors (serial, processes, dask), resume, laws."""

import numpy as np
import pytest

import gibbs_sgd as gs
import importlib

sweep_mod = importlib.import_module("gibbs_sgd.sweep")  # the module, not the gs.sweep function

LAND = gs.landscapes.Quadratic(1.0, box=[[-1.0, 1.0]])
SIM = dict(n_chains=4000, n_steps=800, burn_in=300, thin=2, progress=False)
TIE = {"lr": lambda p: p["batch_size"] * p["eta0"]}


def _exact_t(lr, batch, h=1.0, s2=1.0):
    return lr * s2 / (batch * (2 - lr * h))


def test_tied_grid_rows_and_exact_temperatures():
    table = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"eta0": [0.01, 0.03], "batch_size": [1, 8]}, tie=TIE, **SIM)
    assert len(table) == 4
    assert np.allclose(table["lr"], table["batch_size"] * table["eta0"])
    truth = np.array([_exact_t(r["lr"], r["batch_size"]) for r in table.rows])
    z = (table["temperature"] - truth) / ((table["ci_hi"] - table["ci_lo"]) / (2 * 1.96))
    assert np.max(np.abs(z)) < 4
    assert set(["t_mle", "t_virial", "t_configurational", "p_value", "n_diverged", "chain_steps_per_second"]) <= set(table.columns)


def test_scaling_law_exponents_cover_the_exact_local_exponents():
    grid = {"lr": [0.005, 0.01, 0.02, 0.04], "batch_size": [1, 2, 4]}
    table = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid=grid, **SIM)
    law = table.scaling_law({"lr": "lr", "B": "batch_size"})
    # the exact exponents: the same weighted regression applied to the exact T = lr / (B (2 - lr))
    exact_rows = [dict(r, temperature=_exact_t(r["lr"], r["batch_size"]),
                       ci_lo=r["ci_lo"] - r["temperature"] + _exact_t(r["lr"], r["batch_size"]),
                       ci_hi=r["ci_hi"] - r["temperature"] + _exact_t(r["lr"], r["batch_size"])) for r in table.rows]
    exact = gs.SweepTable(exact_rows).scaling_law({"lr": "lr", "B": "batch_size"}).exponents
    assert law.ci["lr"][0] <= exact["lr"] <= law.ci["lr"][1], (law, exact)
    assert law.ci["B"][0] <= exact["B"] <= law.ci["B"][1], (law, exact)
    # negative control: the lecture-free guess "T independent of B" is excluded
    assert not law.ci["B"][0] <= 0.0 <= law.ci["B"][1]


def test_common_law_explains_small_batches_and_flags_large_ones():
    """lr = B eta0 keeps T = eta0 / (2 - B eta0) nearly B-independent only while B eta0 h << 1."""
    table = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"eta0": [0.01, 0.02], "batch_size": [1, 2, 32]}, tie=TIE,
                     **SIM)
    law = table.common_law("eta0")
    by_b = {}
    for r in law.rows:
        by_b.setdefault(r["batch_size"], []).append(r["common_law_is_gibbs"])
    assert not any(by_b[32]), law.rows
    assert len(law.unexplained) >= 2
    assert "explains" in str(law)


def test_resume_skips_finished_points(tmp_path, monkeypatch):
    grid = {"lr": [0.01, 0.02, 0.04]}
    first = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid=grid, results_dir=tmp_path, **SIM)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 3 and len(list(tmp_path.glob("*.npz"))) == 3
    files[1].unlink()  # as if the sweep had been interrupted before this point
    calls = []
    real = sweep_mod.simulate
    monkeypatch.setattr(sweep_mod, "simulate", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid=grid, results_dir=tmp_path, **SIM)
    assert len(calls) == 1
    assert [r["key"] for r in first.rows] == [r["key"] for r in second.rows]
    assert np.array_equal(first["temperature"], second["temperature"])  # same seed: bitwise the same
    assert second.run(0).n_chains == SIM["n_chains"]


def test_csv_and_pandas(tmp_path):
    table = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"lr": [0.01, 0.02]}, **SIM)
    path = table.to_csv(tmp_path / "t.csv")
    text = path.read_text().splitlines()
    assert text[0].split(",")[0] == "lr" and len(text) == 3
    pd = pytest.importorskip("pandas")
    df = table.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and "temperature" in df


def test_processes_executor_matches_serial():
    grid = {"lr": [0.01, 0.03]}
    serial = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid=grid, **SIM)
    procs = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid=grid, executor="processes", max_workers=2, **SIM)
    assert np.array_equal(serial["temperature"], procs["temperature"])


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            table = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"lr": [0.01, 0.02]}, executor=client, **SIM)
    serial = gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"lr": [0.01, 0.02]}, **SIM)
    assert np.array_equal(table["temperature"], serial["temperature"])


def test_bad_grid():
    with pytest.raises(ValueError, match="grid\\['lr'\\] must be a non-empty list"):
        gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"lr": []}, **SIM)
    with pytest.raises(TypeError, match="executor must be"):
        gs.sweep(LAND, gs.optimizers.SGD(lr=1.0), grid={"lr": [0.1]}, executor=3, **SIM)
