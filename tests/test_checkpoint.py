"""`gibbs_sgd._checkpoint` on synthetic arrays: fingerprint, location checks, durable saves and
a load that refuses every corrupt or inconsistent file with one message naming it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from gibbs_sgd import _checkpoint

# A small run: 20 chains in chunks of 8 (the last chunk holds 4), 10 steps, d = 2, 3 blocks.
N_CHAINS, N_STEPS, CHUNK, D = 20, 10, 8, 2
ACC_SPEC = {
    "hist1": ((3, D, 5), np.int64),
    "moments": ((3, 4), np.float64),
    "traj": ((2, 3, D), np.float64),
    "diverged": ((3,), np.int64),
    "final": None,  # keep_final=False: the run keeps no final states
    "alive_all": None,
}


def state_spec(nc):
    return {"X": ((nc, D), np.float64), "S": ((nc, D), np.float64), "alive": ((nc,), np.uint8)}


def make_acc(rng):
    return {
        "hist1": rng.integers(0, 100, (3, D, 5)),
        "moments": rng.normal(size=(3, 4)),
        "traj": np.where(rng.random((2, 3, D)) < 0.5, np.nan, 1.0),  # NaN: point not recorded
        "diverged": np.array([0, 2, 1]),
        "final": None,
        "alive_all": None,
    }


def make_state(rng, nc):
    return {"X": rng.normal(size=(nc, D)), "S": rng.normal(size=(nc, D)),
            "alive": (rng.random(nc) < 0.8).astype(np.uint8)}


def load(path, tag="tag", **overrides):
    kw = dict(n_chains=N_CHAINS, n_steps=N_STEPS, chunk=CHUNK, acc_spec=ACC_SPEC, state_spec=state_spec)
    kw.update(overrides)
    return _checkpoint.load(path, tag, **kw)


def unreadable(path):
    """The message every corrupt or inconsistent checkpoint at ``path`` must give."""
    return pytest.raises(ValueError, match=rf"checkpoint {path} is unreadable or inconsistent \(.+\): "
                                           r"delete it to start over")


# --------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("chunk_start, nc", [(0, 8), (16, 4)], ids=["full-chunk", "last-short-chunk"])
def test_round_trip(tmp_path, chunk_start, nc):
    rng = np.random.default_rng(0)
    acc, state = make_acc(rng), make_state(rng, nc)
    path = tmp_path / "run.ckpt.npz"
    _checkpoint.save(path, "tag", {"chunk_start": chunk_start, "step": 7, "note": [1, "a"]}, state, acc)
    position, chunk_state, got = load(path)
    assert position == {"chunk_start": chunk_start, "step": 7, "note": [1, "a"]}  # extra keys pass through
    assert sorted(chunk_state) == ["S", "X", "alive"]
    for k, v in state.items():
        assert chunk_state[k].dtype == v.dtype
        np.testing.assert_array_equal(chunk_state[k], v)
    assert sorted(got) == ["diverged", "hist1", "moments", "traj"]  # None specs are absent
    for k, v in got.items():
        assert v.dtype == np.dtype(ACC_SPEC[k][1])
        np.testing.assert_array_equal(v, acc[k])  # NaN compares equal here
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt.npz"]


def test_round_trip_without_chunk_state(tmp_path):
    """Between chunks (step 0) and after the last one (chunk_start == n_chains, not a multiple
    of the chunk) no chunk state is needed: load gives None for it."""
    rng = np.random.default_rng(1)
    path = tmp_path / "run.ckpt.npz"
    for position in ({"chunk_start": 8, "step": 0}, {"chunk_start": N_CHAINS, "step": N_STEPS}):
        _checkpoint.save(path, "tag", position, {}, make_acc(rng))
        got_position, chunk_state, acc = load(path)
        assert got_position == position and chunk_state is None and len(acc) == 4


def test_nan_is_allowed_in_traj_and_final(tmp_path):
    rng = np.random.default_rng(2)
    acc = make_acc(rng)
    acc["final"] = np.full((N_CHAINS, D), np.nan)
    path = tmp_path / "run.ckpt.npz"
    _checkpoint.save(path, "tag", {"chunk_start": 8, "step": 0}, {}, acc)
    _, _, got = load(path, acc_spec={**ACC_SPEC, "final": ((N_CHAINS, D), np.float64)})
    assert np.isnan(got["final"]).all()


# -------------------------------------------------------------------------------- fingerprint

def test_fingerprint_hashes_all_of_init():
    """Row 2**20 + 5 lies past the first 2**20 rows (and past the first 16 MiB slice at d = 2)."""
    a = np.zeros((2**20 + 10, D))
    b = a.copy()
    b[2**20 + 5, 1] = 1e-300
    assert _checkpoint.fingerprint({"seed": 0}, a) != _checkpoint.fingerprint({"seed": 0}, b)


@pytest.mark.parametrize("n", [1, 1000, 2**20, 3 * 2**20 + 7], ids=lambda n: f"n={n}")
def test_fingerprint_of_broadcast_view_equals_its_copy(n):
    row = np.array([0.25, -3.0])
    view = np.broadcast_to(row, (n, D))
    assert view.strides[0] == 0
    assert _checkpoint.fingerprint({}, view) == _checkpoint.fingerprint({}, np.array(view))


def test_fingerprint_ignores_memory_layout():
    a = np.random.default_rng(3).normal(size=(5000, 3))
    assert _checkpoint.fingerprint({}, a) == _checkpoint.fingerprint({}, np.asfortranarray(a))
    wide = np.random.default_rng(3).normal(size=(5000, 6))
    assert _checkpoint.fingerprint({}, wide[:, ::2]) == _checkpoint.fingerprint({}, wide[:, ::2].copy())


def test_fingerprint_of_1e8_broadcast_chains_does_not_materialise():
    """10**8 chains x d = 2 is 1.6 GB as a copy; the view's fingerprint needs one 16 MiB slice."""
    view = np.broadcast_to(np.array([1.0, 2.0]), (10**8, D))
    tracemalloc.start()
    try:
        _checkpoint.fingerprint({}, view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


@pytest.mark.parametrize("other", [
    lambda a: a.astype(np.float32),  # dtype
    lambda a: a.reshape(D, -1),  # shape
    lambda a: a[:-1],  # one chain fewer
], ids=["dtype", "shape", "length"])
def test_fingerprint_depends_on_dtype_and_shape(other):
    a = np.zeros((64, D))
    assert _checkpoint.fingerprint({}, a) != _checkpoint.fingerprint({}, other(a))


def test_fingerprint_depends_on_settings_including_array_contents():
    a = np.zeros((4, D))
    # str() of a long array elides its middle; arrays in settings are hashed by their contents
    e1, e2 = np.linspace(0, 1, 2001), np.linspace(0, 1, 2001)
    e2[1000] += 1e-9
    assert _checkpoint.fingerprint({"edges": e1}, a) != _checkpoint.fingerprint({"edges": e2}, a)
    assert _checkpoint.fingerprint({"seed": 1}, a) != _checkpoint.fingerprint({"seed": 2}, a)


# ----------------------------------------------------------------------------- check_location

def _dead_pid():
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_check_location_removes_temporaries_of_dead_writers_only(tmp_path):
    path = tmp_path / "run.ckpt.npz"
    dead = _dead_pid()
    if _checkpoint._pid_alive(dead):
        pytest.skip(f"pid {dead} was reused already")
    path.write_bytes(b"the checkpoint")
    dead_tmp = tmp_path / f"run.ckpt.npz.{dead}.tmp.npz"
    live_tmp = tmp_path / f"run.ckpt.npz.{os.getpid()}.tmp.npz"
    other_run = tmp_path / f"other.npz.{dead}.tmp.npz"  # another checkpoint's temporary
    not_a_pid = tmp_path / "run.ckpt.npz.abc.tmp.npz"
    for p in (dead_tmp, live_tmp, other_run, not_a_pid):
        p.write_bytes(b"partial")
    _checkpoint.check_location(path)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (path, live_tmp, other_run, not_a_pid))
    assert path.read_bytes() == b"the checkpoint"


def test_check_location_accepts_a_new_path_and_creates_nothing(tmp_path):
    _checkpoint.check_location(tmp_path / "run.ckpt.npz")
    _checkpoint.check_location(str(tmp_path / "run.ckpt.npz"))
    assert os.listdir(tmp_path) == []


def test_check_location_missing_directory(tmp_path):
    path = tmp_path / "nowhere" / "run.ckpt.npz"
    with pytest.raises(ValueError, match=rf"{path}.*does not exist; create it"):
        _checkpoint.check_location(path)


def test_check_location_path_is_a_directory(tmp_path):
    with pytest.raises(ValueError, match=rf"{tmp_path} is a directory; pass a file path"):
        _checkpoint.check_location(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_check_location_path_is_not_a_regular_file(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(ValueError, match=rf"{path} exists and is not a regular file"):
        _checkpoint.check_location(path)


def test_check_location_read_only_directory(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("running as root: a mode-0500 directory stays writable")
        with pytest.raises(ValueError, match=rf"{directory / 'run.npz'}.*is not writable"):
            _checkpoint.check_location(directory / "run.npz")
    finally:
        directory.chmod(0o700)


def test_check_location_unwritable_directory_as_reported_by_access(tmp_path, monkeypatch):
    """Same as above where the tests run as root: the OS's answer is what is checked."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'run.npz'}.*{tmp_path} is not writable"):
        _checkpoint.check_location(tmp_path / "run.npz")


# ------------------------------------------------------------------------------------- save

@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")],
                         ids=["killed", "disk-full"])
def test_failed_save_leaves_old_checkpoint_and_no_temporary(tmp_path, monkeypatch, error):
    rng = np.random.default_rng(4)
    path = tmp_path / "run.ckpt.npz"
    old_acc, old_state = make_acc(rng), make_state(rng, 8)
    _checkpoint.save(path, "tag", {"chunk_start": 0, "step": 3}, old_state, old_acc)
    real_savez = np.savez

    def savez_then_fail(file, **arrays):
        real_savez(file, **arrays)
        file.seek(file.tell() // 2)  # keep half of what was written
        file.truncate()
        raise error

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        _checkpoint.save(path, "tag", {"chunk_start": 0, "step": 6}, make_state(rng, 8), make_acc(rng))
    assert os.listdir(tmp_path) == ["run.ckpt.npz"]
    position, chunk_state, acc = load(path)
    assert position["step"] == 3
    np.testing.assert_array_equal(chunk_state["X"], old_state["X"])
    np.testing.assert_array_equal(acc["moments"], old_acc["moments"])


@pytest.mark.skipif(os.name != "posix", reason="directories can be opened and fsynced on POSIX only")
def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _checkpoint.save(tmp_path / "run.npz", "tag", {"chunk_start": 8, "step": 0}, {},
                     make_acc(np.random.default_rng(5)))
    assert events == [("fsync", "file"), ("replace", f"run.npz.{os.getpid()}.tmp.npz"), ("fsync", "dir")]


def test_save_refuses_a_position_without_its_keys(tmp_path):
    for position in ({"step": 0}, {"chunk_start": 0, "step": 0, "tag": "x"}):
        with pytest.raises(ValueError, match="position must hold"):
            _checkpoint.save(tmp_path / "run.npz", "tag", position, {}, {})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------- load

def _valid(path, **changes):
    """Save a valid mid-chunk checkpoint, with ``changes`` applied to its position, chunk state
    (``state_X=...``; None drops it) and accumulators (``acc_moments=...``; None drops it)."""
    rng = np.random.default_rng(6)
    position = {"chunk_start": 8, "step": 5}
    state, acc = make_state(rng, 8), make_acc(rng)
    for key, value in changes.items():
        where, name = key.split("_", 1)
        target = {"pos": position, "state": state, "acc": acc}[where]
        if value is None:
            target.pop(name)
        else:
            target[name] = value
    _checkpoint.save(path, "tag", position, state, acc)
    return path


def _cut(n):
    def corrupt(path):
        data = _valid(path).read_bytes()
        path.write_bytes(data[:n] if n >= 0 else data[:len(data) + n])
    return corrupt


def _flip_data_byte(path):
    """Flip one byte inside an array's data: only the zip CRC can tell."""
    data = bytearray(_valid(path).read_bytes())
    data[data.index(b"\n", data.index(b"acc_moments.npy")) + 20] ^= 0xFF  # past the .npy header
    path.write_bytes(bytes(data))


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(7).bytes(3000))


def _random_bytes_after_zip_magic(path):
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(8).bytes(3000))


def _meta(raw: bytes):
    def corrupt(path):
        rng = np.random.default_rng(9)
        arrays = {f"acc_{k}": v for k, v in make_acc(rng).items() if v is not None}
        arrays["__meta__"] = np.frombuffer(raw, np.uint8)
        np.savez(path, **arrays)
    return corrupt


def _npy_not_npz(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def _object_array(path):
    _valid(path, acc_moments=np.array([{"a": 1}] * 12, dtype=object).reshape(3, 4))


CORRUPTIONS = {
    "empty": _cut(0),
    "cut-at-1": _cut(1),
    "cut-at-30": _cut(30),
    "cut-at-300": _cut(300),
    "cut-at-1500": _cut(1500),
    "cut-1-short": _cut(-1),
    "cut-100-short": _cut(-100),
    "flipped-data-byte": _flip_data_byte,
    "random-bytes": _random_bytes,
    "random-bytes-after-zip-magic": _random_bytes_after_zip_magic,
    "npy-not-npz": _npy_not_npz,
    "meta-not-json": _meta(b"{not json"),
    "meta-not-utf8": _meta(b'{"tag": "\xff"}'),
    "meta-not-an-object": _meta(b'"tag"'),
    "meta-without-tag": _meta(b'{"chunk_start": 0, "step": 0}'),
    "missing-accumulator": lambda p: _valid(p, acc_moments=None),
    "missing-chunk-state": lambda p: _valid(p, state_X=None, state_S=None, state_alive=None),
    "partial-chunk-state": lambda p: _valid(p, state_S=None),
    "unknown-accumulator": lambda p: _valid(p, acc_bogus=np.zeros(3)),
    "unknown-chunk-entry": lambda p: _valid(p, state_Y=np.zeros(3)),
    "accumulator-the-run-does-not-keep": lambda p: _valid(p, acc_final=np.zeros((N_CHAINS, D))),
    "chunk_start-1e9": lambda p: _valid(p, pos_chunk_start=10**9),
    "chunk_start-negative": lambda p: _valid(p, pos_chunk_start=-8),
    "chunk_start-not-a-chunk-multiple": lambda p: _valid(p, pos_chunk_start=4),
    "chunk_start-float": lambda p: _valid(p, pos_chunk_start=8.0),
    "chunk_start-bool": lambda p: _valid(p, pos_chunk_start=True),
    "chunk_start-missing": _meta(b'{"tag": "tag", "step": 0}'),
    "step-missing": _meta(b'{"tag": "tag", "chunk_start": 8}'),
    "step-past-n_steps": lambda p: _valid(p, pos_step=N_STEPS + 1),
    "step-negative": lambda p: _valid(p, pos_step=-1),
    "step-string": lambda p: _valid(p, pos_step="5"),
    "wrong-state-shape": lambda p: _valid(p, state_X=np.zeros((8, D + 1))),
    "state-of-another-chunk-size": lambda p: _valid(p, state_X=np.zeros((4, D)), state_S=np.zeros((4, D)),
                                                    state_alive=np.ones(4, np.uint8)),
    "wrong-state-dtype": lambda p: _valid(p, state_X=np.zeros((8, D), np.float32)),
    "alive-7": lambda p: _valid(p, state_alive=np.full(8, 7, np.uint8)),
    "wrong-accumulator-shape": lambda p: _valid(p, acc_moments=np.zeros((3, 5))),
    "wrong-accumulator-dtype": lambda p: _valid(p, acc_hist1=np.zeros((3, D, 5), np.int32)),
    "negative-count": lambda p: _valid(p, acc_hist1=np.full((3, D, 5), -1, np.int64)),
    "nan-in-moments": lambda p: _valid(p, acc_moments=np.full((3, 4), np.nan)),
    "pickled-object-array": _object_array,
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_every_corruption_is_refused_with_the_path_and_the_fix(tmp_path, corrupt):
    path = tmp_path / "run.ckpt.npz"
    corrupt(path)
    with unreadable(path):
        load(path)


def test_a_valid_file_passes_the_same_checks(tmp_path):
    """Control for the table above: the unchanged file loads."""
    position, chunk_state, acc = load(_valid(tmp_path / "run.ckpt.npz"))
    assert position == {"chunk_start": 8, "step": 5} and chunk_state["alive"].shape == (8,)


def test_checkpoint_of_another_run_has_its_own_message(tmp_path):
    path = _valid(tmp_path / "run.ckpt.npz")
    for kw in ({}, {"n_chains": 3, "acc_spec": {}}):  # the tag is checked before anything else
        with pytest.raises(ValueError, match=rf"checkpoint {path} was written by a run with different settings; "
                                             "pass another checkpoint path or delete the file") as err:
            load(path, tag="another tag", **kw)
        assert "unreadable" not in str(err.value)


def test_a_missing_file_is_an_os_error_not_a_corrupt_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


def test_meta_must_be_valid_json_written_by_save(tmp_path):
    """Control for the meta rows: save writes exactly the JSON that load reads back."""
    path = _valid(tmp_path / "run.ckpt.npz", pos_note={"nested": [1.5, None]})
    with np.load(path) as z:
        meta = json.loads(z["__meta__"].tobytes())
    assert meta == {"tag": "tag", "chunk_start": 8, "step": 5, "note": {"nested": [1.5, None]}}
    assert load(path)[0]["note"] == {"nested": [1.5, None]}
