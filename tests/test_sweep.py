"""Sweeps: grids with tied parameters, executors (serial, processes, dask), resume, interruption,
keys, input checks, laws."""

import importlib
import json
import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gibbs_sgd as gs

sweep_mod = importlib.import_module("gibbs_sgd.sweep")  # the module, not the gs.sweep function

LAND = gs.landscapes.Quadratic(1.0, box=[[-1.0, 1.0]])
SIM = dict(n_chains=4000, n_steps=800, burn_in=300, thin=2, progress=False)
TIE = {"lr": lambda p: p["batch_size"] * p["eta0"]}
SGD = gs.optimizers.SGD(lr=1.0)
RUN = {k: v for k, v in SIM.items() if k != "progress"}  # the simulate keywords of SIM (for _plan)


def _exact_t(lr, batch, h=1.0, s2=1.0):
    return lr * s2 / (batch * (2 - lr * h))


def _count_calls(monkeypatch, interrupt=(), block=None, release=None):
    """Wrap the sweep's simulate: record the lr of every call; return an incomplete run (what
    simulate returns after Ctrl-C) for lr in ``interrupt``; wait for ``release`` before lr == block."""
    calls = []
    real = sweep_mod.simulate

    def fake(landscape, optimizer, **kwargs):
        calls.append(optimizer.lr)
        if optimizer.lr == block:
            assert release.wait(60)
        run = real(landscape, optimizer, **kwargs)
        if optimizer.lr in interrupt:
            run.config["interrupted"] = True
            assert not run.complete
        return run

    monkeypatch.setattr(sweep_mod, "simulate", fake)
    return calls


def _stored_lrs(results_dir):
    return sorted(json.loads(f.read_text())["lr"] for f in results_dir.glob("*.json"))


# -- physics ---------------------------------------------------------------------------------------
def test_tied_grid_rows_and_exact_temperatures():
    table = gs.sweep(LAND, SGD, grid={"eta0": [0.01, 0.03], "batch_size": [1, 8]}, tie=TIE, **SIM)
    assert len(table) == 4
    assert np.allclose(table["lr"], table["batch_size"] * table["eta0"])
    truth = np.array([_exact_t(r["lr"], r["batch_size"]) for r in table.rows])
    z = (table["temperature"] - truth) / ((table["ci_hi"] - table["ci_lo"]) / (2 * 1.96))
    assert np.max(np.abs(z)) < 4
    assert set(["t_mle", "t_virial", "t_configurational", "p_value", "n_diverged", "chain_steps_per_second",
                "fit_method", "status", "departure"]) <= set(table.columns)
    assert set(table["status"]) <= {"gibbs", "not gibbs", "undetermined"}


def test_scaling_law_exponents_cover_the_exact_local_exponents():
    grid = {"lr": [0.005, 0.01, 0.02, 0.04], "batch_size": [1, 2, 4]}
    table = gs.sweep(LAND, SGD, grid=grid, **SIM)
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
    """lr = B eta0 gives T = eta0 / (2 - B eta0 h) (h = sigma = 1): the small-lr law T = eta0 / 2
    holds while B eta0 h << 1 and fails as B eta0 h grows.

    The law is fitted on the points with B eta0 h <= 0.04 (B = 1, 2) and every point is tested
    against it. Error budget, 4000 chains x 10 samples (steps 300, 350, ..., 750): the relative
    standard error of a point's T is 0.7-0.9%. The law, fitted to the exact T of the B = 1, 2
    points with the same weights, sits between T(B = 1) and T(B = 2), which differ by 0.5%
    (eta0 = 0.01) and 1% (eta0 = 0.02): those points depart from it by under 1.5 SE, while the
    B = 32 points depart by 18% (eta0 = 0.01) and 45% (eta0 = 0.02), over 20 SE. The verdict's
    thresholds are 4 SE and a histogram chi2 at p < 1e-3, so an explained point is misjudged
    only by a Monte-Carlo error beyond 2.5 SE and a flagged one never: the partition is sharp
    (0 misjudged sweeps in 30 with other seeds). The B = 32 points are the negative control.

    Why thin = 50, about the relaxation time 1 / (lr h) of the slowest point: the histogram test
    divides chi2 by the *mean* design effect over bins, which for strongly correlated samples is
    several times smaller than that of the histogram's scale and location modes (4 against 21
    at lr = 0.02, thin = 2). It then rejects a given T that is only 1-2 SE from the run's own,
    and at thin = 2 one sweep in four misjudges an explained point. Nearly independent samples
    make both design effects about 1, and the budget above holds.
    """
    eta0s, batches = [0.01, 0.02], [1, 2, 32]
    table = gs.sweep(LAND, SGD, grid={"eta0": eta0s, "batch_size": batches}, tie=TIE, **dict(SIM, thin=50))
    small = 0.04  # B eta0 h at B = 2, eta0 = 0.02
    law = table.common_law("eta0", fit_on=lambda r: r["batch_size"] * r["eta0"] <= small)
    # the prediction from the physics: each point's exact departure from the exact law, in SE
    se = {(r["eta0"], r["batch_size"]): (r["ci_hi"] - r["ci_lo"]) / (2 * 1.96) for r in law.rows}
    basis = [(e, b) for e in eta0s for b in batches if b * e <= small]
    a, c = np.polyfit(np.log([e for e, _ in basis]), np.log([_exact_t(b * e, b) for e, b in basis]), 1,
                      w=[_exact_t(b * e, b) / se[e, b] for e, b in basis])  # weights 1 / SE(log T), as the law's
    for r in law.rows:
        point = (r["eta0"], r["batch_size"])
        departure = abs(_exact_t(r["lr"], r["batch_size"]) - math.exp(c) * r["eta0"] ** a) / se[point]
        assert departure < 1.5 or departure > 20, (point, departure)  # the sizes make the partition sharp
        assert r["common_law_is_gibbs"] == (departure < 1.5), (point, departure, r["common_law_verdict"])
    explained = {(r["eta0"], r["batch_size"]) for r in law.explained}
    assert explained == {(0.01, 1), (0.01, 2), (0.02, 1), (0.02, 2)}, law.rows
    assert {(r["eta0"], r["batch_size"]) for r in law.unexplained} == {(0.01, 32), (0.02, 32)}
    assert "explains 4 of 6 points" in str(law)


# -- results_dir, resume, keys ----------------------------------------------------------------------
def test_resume_recomputes_exactly_the_missing_points(tmp_path, monkeypatch):
    grid = {"lr": [0.01, 0.02, 0.04]}
    first = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 3 and len(list(tmp_path.glob("*.npz"))) == 3
    gone = json.loads(files[1].read_text())
    files[1].unlink()  # as if the sweep had been stopped before this point
    os.unlink(gone["run_path"])
    calls = _count_calls(monkeypatch)
    second = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)
    assert calls == [gone["lr"]]
    assert [r["key"] for r in first.rows] == [r["key"] for r in second.rows]
    assert np.array_equal(first["temperature"], second["temperature"])  # same seed: bitwise the same
    assert second.run(0).n_chains == SIM["n_chains"]
    third = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)  # all there: nothing runs
    assert calls == [gone["lr"]] and np.array_equal(first["temperature"], third["temperature"])


def test_fit_method_is_checked_first_and_keys_the_rows(tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch)
    with pytest.raises(ValueError, match="fit_method must be one of 'mle', 'virial', 'configurational'"):
        gs.sweep(LAND, SGD, grid={"lr": [0.01]}, fit_method="MLE", results_dir=tmp_path, **SIM)
    assert calls == [] and not list(tmp_path.iterdir())  # checked before anything ran or was written
    grid = {"lr": [0.01, 0.04]}
    mle = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)
    virial = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, fit_method="virial", **SIM)
    assert calls == [0.01, 0.04]  # the virial rows are new, refitted from the stored runs
    assert set(virial["fit_method"]) == {"virial"} and set(mle["fit_method"]) == {"mle"}
    assert not set(mle["key"]) & set(virial["key"])
    assert np.array_equal(virial["temperature"], mle["t_virial"])
    assert not np.any(virial["temperature"] == mle["temperature"])  # negative control: not the MLE's T
    again = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)
    assert np.array_equal(again["temperature"], mle["temperature"]) and calls == [0.01, 0.04]


def _keys(landscape=LAND, optimizer=SGD, noise=gs.noise.Gaussian(1.0), grid=None, tie=None, fit_method="mle",
          **kwargs):
    jobs = sweep_mod._plan(landscape, optimizer, noise, grid or {"lr": [0.01]}, tie, {**RUN, **kwargs}, fit_method)
    return [j.key for j in jobs]


def _quartic(scale):
    return gs.landscapes.Custom(loss=lambda x: scale * x[0] ** 4, grad=lambda x: 4.0 * scale * x**3, dim=1,
                                box=[[-2, 2]])


CHANGES = [  # (what changes, keyword overrides of _keys): each must change every row's key
    ("landscape field", dict(landscape=gs.landscapes.Quadratic(2.0, box=[[-1.0, 1.0]]))),
    ("landscape box", dict(landscape=gs.landscapes.Quadratic(1.0, box=[[-1.0, 1.5]]))),
    ("optimizer type", dict(optimizer=gs.optimizers.HeavyBall(lr=1.0, momentum=0.0))),
    ("optimizer field", dict(optimizer=gs.optimizers.HeavyBall(lr=1.0, momentum=0.5))),
    ("noise", dict(noise=gs.noise.Gaussian(2.0))),
    ("simulate keyword", dict(thin=3)),
    ("simulate array keyword", dict(init=np.array([0.1]))),
    ("tie-resolved value", dict(tie={"batch_size": lambda p: 2})),
    ("fit method", dict(fit_method="configurational")),
]


@pytest.mark.parametrize("what, change", CHANGES, ids=[c[0] for c in CHANGES])
def test_every_setting_is_in_the_key(what, change):
    base = dict(optimizer=gs.optimizers.HeavyBall(lr=1.0, momentum=0.0)) if what == "optimizer field" else {}
    assert not set(_keys(**base)) & set(_keys(**{**base, **change}))


def test_key_is_stable_and_sees_user_function_code():
    # equal settings built anew: the same key (else a rerun would recompute everything)
    assert _keys(init=np.array([0.1])) == _keys(init=np.array([0.1]))
    assert _keys(landscape=gs.landscapes.Quadratic(1.0, box=[[-1.0, 1.0]])) == _keys()
    # two Custom landscapes alike in every name, different in their functions' closures
    assert _keys(landscape=_quartic(1.0)) == _keys(landscape=_quartic(1.0))
    assert _keys(landscape=_quartic(1.0)) != _keys(landscape=_quartic(2.0))


# -- interruption ----------------------------------------------------------------------------------
def test_interrupted_point_is_not_kept_and_the_rerun_computes_the_rest(tmp_path, monkeypatch):
    grid = {"lr": [0.01, 0.02, 0.04]}
    clean = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path / "clean", **SIM)
    calls = _count_calls(monkeypatch, interrupt={0.02})
    with pytest.raises(KeyboardInterrupt) as info:
        gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path / "run", **SIM)
    assert calls == [0.01, 0.02]  # stopped: the next point never started
    assert _stored_lrs(tmp_path / "run") == [0.01]  # the interrupted point was not written
    assert len(list((tmp_path / "run").glob("*.npz"))) == 1
    assert [r["lr"] for r in info.value.table.rows] == [0.01]
    assert "1 of 3 points finished" in str(info.value)
    monkeypatch.undo()
    calls = _count_calls(monkeypatch)
    resumed = gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path / "run", **SIM)
    assert calls == [0.02, 0.04]  # exactly the missing points
    assert np.array_equal(resumed["temperature"], clean["temperature"])


def test_interrupted_point_is_not_returned_without_results_dir(monkeypatch):
    calls = _count_calls(monkeypatch, interrupt={0.01})
    with pytest.raises(KeyboardInterrupt) as info:
        gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02]}, **SIM)
    assert calls == [0.01] and len(info.value.table) == 0
    assert "pass results_dir" in str(info.value)


def test_ctrl_c_inside_simulate_stops_the_serial_sweep(tmp_path, monkeypatch):
    """A real SIGINT, raised while the second point's simulate has its Ctrl-C handler installed
    (the run is made long, so it is still running then)."""
    real = sweep_mod.simulate
    calls = []

    def fake(landscape, optimizer, **kwargs):
        calls.append(optimizer.lr)
        if optimizer.lr != 0.02:
            return real(landscape, optimizer, **kwargs)
        before = signal.getsignal(signal.SIGINT)

        def ctrl_c():
            deadline = time.monotonic() + 20
            while signal.getsignal(signal.SIGINT) is before and time.monotonic() < deadline:
                time.sleep(0.001)
            signal.raise_signal(signal.SIGINT)

        threading.Thread(target=ctrl_c, daemon=True).start()
        # ~250 kernel calls: minutes if Ctrl-C were not answered, one call if it is
        return real(landscape, optimizer, **dict(kwargs, n_steps=2**20, burn_in=10))

    monkeypatch.setattr(sweep_mod, "simulate", fake)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02, 0.04]}, results_dir=tmp_path, **SIM)
    assert calls == [0.01, 0.02]
    assert _stored_lrs(tmp_path) == [0.01]
    assert signal.getsignal(signal.SIGINT) is handler


def test_executor_interruption_cancels_pending_points(tmp_path, monkeypatch):
    """On an executor: the interrupted point is not written, queued points are cancelled, the
    sweep raises at once; the point already running finishes in the background, complete."""
    release = threading.Event()
    calls = _count_calls(monkeypatch, interrupt={0.02}, block=0.04, release=release)
    grid = {"lr": [0.01, 0.02, 0.04, 0.08]}
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            gs.sweep(LAND, SGD, grid=grid, executor=pool, results_dir=tmp_path, **SIM)
        assert [r["lr"] for r in info.value.table.rows] == [0.01]
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert calls == [0.01, 0.02, 0.04]  # 0.08 was cancelled before it started
    assert _stored_lrs(tmp_path) == [0.01, 0.04]  # 0.04 finished in the background: complete, kept
    monkeypatch.undo()
    calls = _count_calls(monkeypatch)
    gs.sweep(LAND, SGD, grid=grid, results_dir=tmp_path, **SIM)
    assert calls == [0.02, 0.08]


def test_stopping_worker_runs_nothing(monkeypatch):
    """A point still queued in the process pool after Ctrl-C returns at once, unrun."""
    calls = _count_calls(monkeypatch)
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(sweep_mod, "_STOP", stop)
    job = sweep_mod._plan(LAND, SGD, gs.noise.Gaussian(1.0), {"lr": [0.01]}, None, RUN, "mle")[0]
    assert sweep_mod._run_point(LAND, job, "mle", None) == (None, None) and calls == []


def _ctrl_c_to_workers(results_dir, finished):
    """Once the first point is on disk (the worker has moved on to the long second one), press
    Ctrl-C for this process's children (the pool's worker) once, and again every second until the
    sweep has returned, in case a press came while the worker was not yet inside simulate."""
    deadline = time.monotonic() + 120
    while not list(results_dir.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    while not finished.is_set() and time.monotonic() < deadline:
        for child in multiprocessing.active_children():
            try:
                os.kill(child.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        finished.wait(1.0)


def test_processes_ctrl_c_in_workers_stops_the_sweep(tmp_path):
    """executor="processes": Ctrl-C reaches the workers; the one inside simulate stops it and its
    point is not written, the queued point does not run, and the sweep raises KeyboardInterrupt
    (before, the interrupted point was written as finished and the sweep went on)."""
    tie = {"n_steps": lambda p: 800 if p["lr"] == 0.01 else 2**22, "burn_in": lambda p: 300}
    finished = threading.Event()
    signaller = threading.Thread(target=_ctrl_c_to_workers, args=(tmp_path, finished), daemon=True)
    signaller.start()
    sim = {k: v for k, v in SIM.items() if k not in ("n_steps", "burn_in")}
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02, 0.04]}, tie=tie, executor="processes", max_workers=1,
                     results_dir=tmp_path, **dict(sim, n_chains=64))
    finally:
        finished.set()
        signaller.join()
    assert _stored_lrs(tmp_path) == [0.01]
    assert time.monotonic() - t0 < 60  # not the 5e8 chain-steps of the two long points


# -- the rest of the API -----------------------------------------------------------------------------
def test_csv_and_pandas(tmp_path):
    table = gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02]}, **SIM)
    path = table.to_csv(tmp_path / "t.csv")
    text = path.read_text().splitlines()
    assert text[0].split(",")[0] == "lr" and len(text) == 3
    pd = pytest.importorskip("pandas")
    df = table.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 2 and "temperature" in df


def test_processes_executor_matches_serial():
    grid = {"lr": [0.01, 0.03]}
    serial = gs.sweep(LAND, SGD, grid=grid, **SIM)
    procs = gs.sweep(LAND, SGD, grid=grid, executor="processes", max_workers=2, **SIM)
    assert np.array_equal(serial["temperature"], procs["temperature"])


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            table = gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02]}, executor=client, **SIM)
    serial = gs.sweep(LAND, SGD, grid={"lr": [0.01, 0.02]}, **SIM)
    assert np.array_equal(table["temperature"], serial["temperature"])


def test_free_symbols_count_only_when_a_tie_reads_them(monkeypatch):
    calls = _count_calls(monkeypatch)
    # read with [] and with .get: both are reads
    plan = sweep_mod._plan(LAND, SGD, gs.noise.Gaussian(1.0), {"eta0": [0.01, 0.02], "batch_size": [1, 4]},
                           {"lr": lambda p: p.get("eta0") * p["batch_size"]}, RUN, "mle")
    assert [j.optimizer.lr for j in plan] == [0.01, 0.04, 0.02, 0.08]
    # a symbol read only at some points still counts
    plan = sweep_mod._plan(LAND, SGD, gs.noise.Gaussian(1.0), {"eta0": [0.01], "batch_size": [1, 4]},
                           {"lr": lambda p: 0.1 if p["batch_size"] == 1 else p["eta0"]}, RUN, "mle")
    assert [j.optimizer.lr for j in plan] == [0.1, 0.01]
    # noise fields are settings even when noise is left to its default
    plan = sweep_mod._plan(LAND, SGD, gs.noise.Gaussian(1.0), {"sigma": [1.0, 2.0]}, None, RUN, "mle")
    assert [j.noise.sigma for j in plan] == [1.0, 2.0]
    assert calls == []


BAD = [  # (grid, tie, sweep keywords, exception, message)
    ({"learning_rate": [0.1]}, None, {}, ValueError, r"'learning_rate' set nothing.*SGD: lr.*batch_size"),
    ({"eta0": [0.01]}, None, {}, ValueError, r"'eta0' set nothing.*no tie reads one"),
    ({"eta0": [0.01], "batch_size": [1]}, {"lr": lambda p: 0.1 * p["batch_size"]}, {}, ValueError,
     r"'eta0' set nothing"),
    ({"lr": [0.1]}, {"learning_rate": lambda p: 0.1}, {}, ValueError,
     r"tie\['learning_rate'\].*not a setting.*SGD: lr"),
    ({"lr": [0.1]}, {"batch_size": lambda p: p["B"]}, {}, ValueError, r"tie\['batch_size'\] reads 'B'"),
    ({"lr": [0.1]}, {"batch_size": 4}, {}, TypeError, r"tie\['batch_size'\] must be a callable"),
    ({"lr": []}, None, {}, ValueError, r"grid\['lr'\] must be a non-empty list"),
    ({"lr": 0.1}, None, {}, TypeError, r"grid\['lr'\] must be a non-empty list.*\[0.1\]"),
    ({"lr": np.ones((2, 2))}, None, {}, ValueError, r"grid\['lr'\] must be a non-empty list.*shape \(2, 2\)"),
    ({}, None, {}, ValueError, r"grid must name at least one setting"),
    ([], None, {}, ValueError, r"grid must hold at least one point"),
    ([{"lr": 0.1}, 3], None, {}, TypeError, r"grid\[1\] must be a non-empty dict"),
    ({1: [0.1]}, None, {}, TypeError, r"grid names must be strings"),
    ({"lr": [-0.1]}, None, {}, ValueError, r"at grid point \{'lr': -0.1\}: lr must be"),
    ({"batch_size": [1]}, None, {"batch_size": 2}, ValueError, r"'batch_size' given both in grid"),
    ({"lr": [0.1]}, None, {"n_chain": 10}, TypeError, r"unexpected keyword argument\(s\) 'n_chain'.*n_chains"),
    ({"lr": [0.1]}, None, {"checkpoint": "x.npz"}, ValueError, r"checkpoint cannot be passed to sweep"),
    ({"lr": [0.1]}, None, {"max_workers": 0, "executor": "processes"}, ValueError, r"max_workers must be"),
    ({"lr": [0.1]}, None, {"max_workers": 2}, ValueError, r"max_workers applies to executor='processes' only"),
    ({"lr": [0.1]}, None, {"executor": "threads"}, ValueError, r"executor must be None, 'processes'"),
    ({"lr": [0.1]}, None, {"executor": 3}, TypeError, r"executor must be None, 'processes'"),
    ({"lr": [0.1]}, None, {"fit_method": None}, ValueError, r"fit_method must be one of"),
]


@pytest.mark.parametrize("grid, tie, kwargs, exc, message", BAD, ids=[b[4][:40] for b in BAD])
def test_bad_input_is_refused_before_anything_runs(monkeypatch, tmp_path, grid, tie, kwargs, exc, message):
    calls = _count_calls(monkeypatch)
    with pytest.raises(exc, match=message):
        gs.sweep(LAND, SGD, grid=grid, tie=tie, results_dir=tmp_path, **{**SIM, **kwargs})
    assert calls == [] and not list(tmp_path.iterdir())
