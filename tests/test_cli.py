"""The command line: demo and bench run end to end at small size."""
import json
import subprocess
import sys


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "gibbs_sgd.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_demo_small(tmp_path):
    out = tmp_path / "q.png"
    proc = _cli("demo", "--chains", "4000", "--steps", "600", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "theory temperature T = lr sigma^2 / (2B) = 0.5" in proc.stdout
    assert "fitted temperature T = " in proc.stdout and "verdict:" in proc.stdout
    assert out.stat().st_size > 20_000


def test_bench_small(tmp_path):
    path = tmp_path / "b.json"
    proc = _cli("bench", "--chains", "3000", "--steps", "20", "--repeat", "1", "--cases", "sgd-quadratic",
                "adam-doublewell", "--json", str(path), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(path.read_text())
    case = data["cases"]["sgd-quadratic"]
    assert set(case["rate"]) == {"simulate", "simulate_thin1", "numpy", "jax", "rng_only"}
    assert abs(case["check"]["z"]) < 5  # simulate and NumPy did the same job
    assert "| 1-D SGD, quadratic |" in proc.stdout
    assert data["machine"]["compiled_for"]["isa"] in proc.stdout  # the instruction set is named
    if data["machine"]["versions"]["jax"]:  # and so did JAX, where installed
        assert case["rate"]["jax"] > 0 and abs(case["check"]["z_jax"]) < 5


def test_bench_both_instruction_sets(tmp_path):
    """``--isa native avx2``: one process per target, a table per target and their ratios."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    path = tmp_path / "b.json"
    proc = _cli("bench", "--chains", "2000", "--steps", "20", "--repeat", "1", "--cases", "sgd-quadratic",
                "--isa", "native", "avx2", "--json", str(path), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(path.read_text())
    assert set(data["isas"]) == {"native", "avx2"}
    assert data["isas"]["avx2"]["machine"]["compiled_for"]["isa"] == "AVX2"
    assert "kernels compiled for **AVX2**" in proc.stdout and "Rates relative to native" in proc.stdout


def test_version_and_bad_arguments():
    assert _cli("--version").stdout.strip().endswith("0.1.0")
    bad = _cli("demo", "--chains", "0")
    assert bad.returncode != 0 and "positive integer" in bad.stderr


def test_validate_runs_one_script(tmp_path):
    proc = _cli("validate", "--tiny", "--out", str(tmp_path), "--only", "bias_correction")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "REPORT.md").exists() and (tmp_path / "bias_correction.png").exists()


def test_bench_cuda_smoke(tmp_path):
    """``bench --backend cuda`` end to end (on the simulator without a GPU: the path, not the speed)."""
    import os

    import pytest

    from gibbs_sgd.kernels import cuda as cuda_kernels

    if not cuda_kernels.available():
        pytest.skip("numba-cuda is not installed")
    path = tmp_path / "c.json"
    fig = tmp_path / "c.png"
    env_sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    chains, steps = ("128", "10") if env_sim else ("100000", "100")
    proc = _cli("bench", "--backend", "cuda", "--chains", chains, "--steps", steps, "--repeat", "1", "--cases",
                "adam-doublewell", "--json", str(path), "--figure", str(fig), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(path.read_text())
    case = data["cases"]["adam-doublewell"]
    assert set(case["rate"]) == {"simulate", "cupy", "torch", "rng_only"}
    assert case["rate"]["simulate"] > 0 and case["rate"]["rng_only"] > 0
    assert "| Adam, double well (float32) |" in proc.stdout and data["gpu"]["device"] in proc.stdout
    assert fig.stat().st_size > 10_000
    bad = _cli("bench", "--backend", "cuda", "--cases", "sgd-quadratic-fp64x")
    assert bad.returncode != 0
