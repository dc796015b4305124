"""Checkpoints of a running `simulate`: enough to resume it to the bitwise-same result.

A checkpoint is written at a kernel-call boundary (never in the middle of a call), so the
chain state, the position ``(chunk start, step)`` and every accumulator are consistent. It is
tagged with a fingerprint of the run's settings; resuming a different run from it is refused.

Why each step is here:

* `check_location` runs before any work, so a run of hours does not fail at its first save
  because the directory is missing or read-only; it also sweeps up the temporaries of writers
  that died mid-save.
* `save` writes a temporary, fsyncs it, renames it over the old file and fsyncs the directory:
  after a crash or power loss the path holds either the old checkpoint or the new one, whole.
* `load` trusts nothing in the file: a file that is cut short, corrupt, or inconsistent with the
  run resuming from it is refused with one message that names the file and the way out, never
  resumed into a silently wrong result.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.lib import format as _npy_format

# Arrays are hashed and scanned in slices of about 16 MiB along their first axis: large enough
# that per-slice overhead is negligible, small enough that a slice copy (np.ascontiguousarray
# of a strided or broadcast view) never costs real memory next to 10**8 chains.
_SLICE_BYTES = 16 * 2**20
# Accumulators in which NaN is a legal value: "traj" marks points not recorded with NaN, and
# "final" holds the last state of diverged chains as they were.
_NAN_ALLOWED = frozenset({"traj", "final", "final_state"})
_META = "__meta__"
_ZIP_MAGIC = b"PK\x03\x04"  # how np.savez's archive (a zip's first local file header) starts


# ---------------------------------------------------------------------------------------------
# fingerprint
# ---------------------------------------------------------------------------------------------

def _json_value(obj):
    """JSON form of the NumPy values a settings dict or a position may hold."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _json_value_or_str(obj):
    try:
        return _json_value(obj)
    except TypeError:
        return str(obj)


def _rows_per_slice(arr: np.ndarray) -> int:
    """Rows of ``arr`` (along axis 0) in one slice of about `_SLICE_BYTES`; shape and dtype only."""
    row_bytes = arr.dtype.itemsize * math.prod(arr.shape[1:])
    return max(1, _SLICE_BYTES // max(1, row_bytes))


def _slices(arr: np.ndarray):
    """``arr`` in consecutive slices of `_rows_per_slice` rows along axis 0."""
    if arr.ndim == 0:
        yield arr.reshape(1)
        return
    rows = _rows_per_slice(arr)
    for lo in range(0, arr.shape[0], rows):
        yield arr[lo:lo + rows]


def fingerprint(settings: dict, init: np.ndarray) -> str:
    """A SHA-256 hex digest of everything that determines the run's result.

    The digest covers ``settings`` (as sorted JSON; NumPy values by their contents, anything
    else by ``str``), the dtype and shape of ``init`` and *all* of its values. The values are
    hashed slice by slice (about 16 MiB each, fixed by shape and dtype alone): the digest is
    ``sha256(settings, dtype, shape, sha256(slice_0), sha256(slice_1), ...)``.

    Memory stays at one slice whatever ``init`` is. A broadcast view whose rows are all one row
    (stride 0 on axis 0, as ``np.broadcast_to(x0, (n_chains, d))``) has identical full slices,
    so the one digest of a full slice is reused: 10**8 chains cost one slice of hashing. A view
    and its materialised copy hold the same values and get the same fingerprint; so do C- and
    Fortran-ordered copies.

    Parameters
    ----------
    settings : dict, JSON-serialisable settings of the run (NumPy arrays and scalars allowed)
    init : array, shape (n_chains, d) (any shape is accepted), any numeric dtype, any strides

    Returns
    -------
    str, 64 hexadecimal digits

    Example
    -------
    >>> import numpy as np
    >>> x0 = np.array([0.5, -1.0])
    >>> view = np.broadcast_to(x0, (1000, 2))
    >>> fingerprint({"seed": 1}, view) == fingerprint({"seed": 1}, np.array(view))
    True
    >>> fingerprint({"seed": 1}, view) == fingerprint({"seed": 2}, view)
    False
    """
    init = np.asarray(init)
    if init.dtype.hasobject:
        raise TypeError(f"init must be a numeric array, got dtype {init.dtype}")
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=_json_value_or_str).encode())
    rows = _rows_per_slice(init) if init.ndim else 1
    h.update(json.dumps({"init_dtype": init.dtype.str, "init_shape": list(init.shape),
                         "rows_per_slice": rows}).encode())
    repeated_rows = init.ndim >= 1 and init.strides[0] == 0
    full_slice_digest = None
    for part in _slices(init):
        full = part.shape[0] == rows
        if repeated_rows and full and full_slice_digest is not None:
            h.update(full_slice_digest)
            continue
        digest = hashlib.sha256(np.ascontiguousarray(part)).digest()
        if repeated_rows and full:
            full_slice_digest = digest
        h.update(digest)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# check_location
# ---------------------------------------------------------------------------------------------

def _temp_path(path: Path, pid: int) -> Path:
    """Where the writer with process id ``pid`` writes before renaming onto ``path``."""
    return path.with_name(f"{path.name}.{pid}.tmp.npz")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine). Unsure means alive: its file is kept."""
    if pid <= 0:
        return False
    if os.name != "posix":
        # Windows has no harmless probe: os.kill(pid, 0) there *terminates* the process.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OverflowError:  # larger than any pid
        return False
    return True


def check_location(path: Path) -> None:
    """Check that a checkpoint can be written at ``path`` and remove dead writers' temporaries.

    Called once, before any work, so that a bad path fails at once rather than at the first
    save hours later. A save writes ``<name>.<pid>.tmp.npz`` beside ``path`` and renames it onto
    ``path``; a writer killed in between leaves that temporary behind. Those whose ``pid`` is
    no live process are removed; those of live processes (this one included) are kept. (A
    writer on another machine sharing the directory is not seen; two machines must not write
    one checkpoint.) On Windows, where no safe liveness probe exists, all are kept.

    Parameters
    ----------
    path : path-like, where the checkpoint is (to be) written

    Raises
    ------
    ValueError
        naming the path and the fix, when ``path`` is a directory or another non-file, or its
        directory does not exist or is not writable.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     check_location(Path(tmp) / "run.ckpt.npz")
    ...     check_location(Path(tmp))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: checkpoint path ... is a directory; pass a file path such as .../run.ckpt.npz
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint path {path} is a directory; pass a file path such as "
                         f"{path / 'run.ckpt.npz'}")
    if path.exists() and not path.is_file():
        raise ValueError(f"checkpoint path {path} exists and is not a regular file; pass another path")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write checkpoint {path}: its directory {parent} does not exist; "
                         "create it first or pass another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write checkpoint {path}: its directory {parent} is not writable; "
                         "fix its permissions or pass a path in a writable directory")
    pattern = re.compile(re.escape(path.name) + r"\.([0-9]+)\.tmp\.npz")
    with os.scandir(parent) as entries:
        stale = [e.path for e in entries
                 if (m := pattern.fullmatch(e.name)) and not e.is_dir(follow_symlinks=False)
                 and not _pid_alive(int(m.group(1)))]
    for name in stale:
        try:
            os.unlink(name)
        except OSError:  # gone already, or not ours to remove: a stale temporary is harmless
            pass


# ---------------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------------

def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable, where directories can be opened (POSIX)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open a directory; its rename is durable on its own
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems refuse fsync on a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def save(path: Path, tag: str, position: dict, chunk_state: dict, acc: dict) -> None:
    """Write a checkpoint atomically and durably.

    The arrays go to ``<name>.<pid>.tmp.npz`` beside ``path``, which is fsynced, renamed onto
    ``path`` (``os.replace``, atomic) and the directory fsynced: at every instant, crash or
    power loss included, ``path`` holds the old checkpoint or the new one, whole. If writing
    fails (or is interrupted, ``KeyboardInterrupt`` included) the temporary is removed, the
    old checkpoint is left as it was, and the exception propagates.

    Parameters
    ----------
    path : path-like, the checkpoint file
    tag : str, the run's `fingerprint`
    position : dict with int ``"chunk_start"`` and ``"step"``, plus any JSON-serialisable keys
        (returned by `load` as they were); ``"tag"`` is reserved
    chunk_state : dict name -> array (``"X"``, ``"S"``, ``"alive"``) of the chunk in flight;
        empty when there is none
    acc : dict name -> array or None, the accumulators; None entries are not written
    """
    path = Path(path)
    if "tag" in position or not {"chunk_start", "step"} <= position.keys():
        raise ValueError(f"position must hold 'chunk_start' and 'step' and no 'tag', got keys {sorted(position)}")
    meta = json.dumps({"tag": tag, **position}, default=_json_value)
    arrays = {f"acc_{k}": v for k, v in acc.items() if v is not None}
    arrays.update({f"chunk_{k}": v for k, v in chunk_state.items()})
    arrays[_META] = np.frombuffer(meta.encode(), dtype=np.uint8)
    tmp = _temp_path(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------

class _Inconsistent(Exception):
    """The file cannot be read, or its contents do not fit the run resuming from it."""


class _OtherRun(Exception):
    """The file was written by a run with other settings."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _header(z, key: str):
    """``(shape, dtype)`` of entry ``key`` of the archive, read from its header alone."""
    try:
        with z.zip.open(key + ".npy") as f:
            version = _npy_format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = _npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = _npy_format.read_array_header_2_0(f)
            else:  # 3.0 is only written for structured dtypes with non-ASCII names
                raise ValueError(f"unexpected .npy format version {version}")
    except MemoryError:
        raise
    except Exception as e:
        raise _Inconsistent(f"entry {key!r} cannot be read: {type(e).__name__}: {e}") from e
    return tuple(shape), dtype


def _read(z, key: str) -> np.ndarray:
    try:
        return z[key]
    except MemoryError:  # a genuine shortage: the header was checked, so the size is the run's
        raise
    except Exception as e:
        raise _Inconsistent(f"entry {key!r} cannot be read: {type(e).__name__}: {e}") from e


def _read_checked(z, key: str, shape, dtype) -> np.ndarray:
    """Entry ``key`` after checking, from its header first, that it has ``shape`` and ``dtype``."""
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    got_shape, got_dtype = _header(z, key)
    if got_shape != shape or got_dtype != dtype:
        raise _Inconsistent(f"{key!r} has shape {got_shape} and dtype {got_dtype}, "
                            f"expected shape {shape} and dtype {dtype}")
    arr = _read(z, key)
    if arr.shape != shape or arr.dtype != dtype:
        raise _Inconsistent(f"{key!r} has shape {arr.shape} and dtype {arr.dtype}, "
                            f"expected shape {shape} and dtype {dtype}")
    return arr


def _any(arr: np.ndarray, predicate) -> bool:
    """``predicate(arr).any()``, one slice at a time (no full-size temporary)."""
    return any(bool(predicate(part).any()) for part in _slices(arr))


def _check_values(key: str, name: str, arr: np.ndarray) -> None:
    """Range checks: 0/1 alive flags, non-negative counts, no NaN outside the NaN-carrying arrays.

    Bool accumulators are not checked: `simulate` allocates ``alive_all`` (like ``final``) with
    ``np.empty`` and fills it chunk by chunk, so its not-yet-run part may hold any bytes.
    """
    if name == "alive":
        if _any(arr, lambda a: (a != 0) & (a != 1)):
            raise _Inconsistent(f"{key!r} holds values other than 0 and 1")
    elif np.issubdtype(arr.dtype, np.signedinteger):
        if _any(arr, lambda a: a < 0):
            raise _Inconsistent(f"{key!r} holds negative counts")
    elif np.issubdtype(arr.dtype, np.inexact) and key.startswith("acc_") and name not in _NAN_ALLOWED:
        if _any(arr, np.isnan):
            raise _Inconsistent(f"{key!r} holds NaN")


def _load(z, tag, n_chains, n_steps, chunk, acc_spec, state_spec):
    files = set(z.files)
    if _META not in files:
        raise _Inconsistent(f"entry {_META!r} is missing")
    shape, dtype = _header(z, _META)
    if dtype != np.uint8 or len(shape) != 1:
        raise _Inconsistent(f"{_META!r} is not a byte string")
    raw = _read(z, _META)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError both are
        raise _Inconsistent(f"{_META!r} is not JSON: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("tag"), str):
        raise _Inconsistent(f"{_META!r} is not a JSON object with a string 'tag'")
    if meta["tag"] != tag:
        raise _OtherRun
    position = {k: v for k, v in meta.items() if k != "tag"}

    chunk_start, step = position.get("chunk_start"), position.get("step")
    if not (_is_int(chunk_start) and 0 <= chunk_start <= n_chains
            and (chunk_start % chunk == 0 or chunk_start == n_chains)):
        raise _Inconsistent(f"chunk_start must be an integer multiple of chunk={chunk} in "
                            f"[0, n_chains={n_chains}] (or n_chains itself), got {chunk_start!r}")
    if not (_is_int(step) and 0 <= step <= n_steps):
        raise _Inconsistent(f"step must be an integer in [0, n_steps={n_steps}], got {step!r}")

    known = {_META} | {f"acc_{k}" for k in acc_spec}
    nc = min(n_chains, chunk_start + chunk) - chunk_start
    spec = state_spec(nc)
    known |= {f"chunk_{k}" for k in spec}
    unexpected = sorted(files - known)
    if unexpected:
        raise _Inconsistent(f"unexpected entries {unexpected}")

    present = [k for k in spec if f"chunk_{k}" in files]
    if present and len(present) < len(spec):
        missing = [f"chunk_{k}" for k in spec if f"chunk_{k}" not in files]
        raise _Inconsistent(f"chunk state is partial: {missing} missing")
    if not present and chunk_start < n_chains and 0 < step < n_steps:
        raise _Inconsistent(f"no chunk state at step {step} of chunk {chunk_start}")
    chunk_state = None
    if present:
        chunk_state = {}
        for name, (shape, dtype) in spec.items():
            arr = _read_checked(z, f"chunk_{name}", shape, dtype)
            _check_values(f"chunk_{name}", name, arr)
            chunk_state[name] = arr

    acc = {}
    for name, entry in acc_spec.items():
        key = f"acc_{name}"
        if entry is None:
            if key in files:
                raise _Inconsistent(f"{key!r} is present but this run keeps no such accumulator")
            continue
        if key not in files:
            raise _Inconsistent(f"entry {key!r} is missing")
        shape, dtype = entry
        arr = _read_checked(z, key, shape, dtype)
        _check_values(key, name, arr)
        acc[name] = arr
    return position, chunk_state, acc


def load(path: Path, tag: str, *, n_chains: int, n_steps: int, chunk: int, acc_spec: dict, state_spec):
    """Read and validate a checkpoint written by `save` for the run tagged ``tag``.

    Nothing in the file is trusted: it is opened with ``allow_pickle=False``, every array's
    shape and dtype is checked (from its header, before its data is read) against the run's,
    and its values against their ranges.

    Parameters
    ----------
    path : path-like, an existing checkpoint file
    tag : str, the resuming run's `fingerprint`
    n_chains, n_steps : int, the run's sizes
    chunk : int, chains per chunk; a saved ``chunk_start`` is a multiple of it, or ``n_chains``
        (the run completed)
    acc_spec : dict name -> ``(shape, dtype)`` or None; every accumulator the run keeps, with
        the shape and dtype it must have; None names one the run does not keep (it must be
        absent from the file, as must any name not in ``acc_spec``)
    state_spec : callable ``nc -> {name: (shape, dtype)}``, the chunk state (``"X"``, ``"S"``,
        ``"alive"``) of a chunk of ``nc`` chains; checked with
        ``nc = min(n_chains, chunk_start + chunk) - chunk_start``

    Returns
    -------
    position : dict, ``{"chunk_start": int, "step": int}`` plus any other keys that were saved
    chunk_state : dict name -> array as ``state_spec`` says, or None when none was saved (it is
        always there when ``0 < step < n_steps`` and ``chunk_start < n_chains``)
    acc : dict name -> array, one per non-None entry of ``acc_spec``

    Raises
    ------
    ValueError
        ``checkpoint PATH was written by a run with different settings; ...`` on a tag mismatch;
        ``checkpoint PATH is unreadable or inconsistent (WHAT): delete it to start over`` when
        the file is cut short, corrupt, or does not fit the run.
    OSError
        when the file cannot be opened (missing, no permission): nothing is known of its content.

    Example
    -------
    >>> import tempfile
    >>> state = lambda nc: {"X": ((nc, 1), np.float64), "S": ((nc, 1), np.float64),
    ...                     "alive": ((nc,), np.uint8)}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "run.ckpt.npz"
    ...     save(path, "t", {"chunk_start": 0, "step": 5},
    ...          {"X": np.zeros((4, 1)), "S": np.zeros((4, 1)), "alive": np.ones(4, np.uint8)},
    ...          {"diverged": np.zeros(2, np.int64), "final": None})
    ...     position, chunk_state, acc = load(path, "t", n_chains=4, n_steps=10, chunk=4,
    ...         acc_spec={"diverged": ((2,), np.int64), "final": None}, state_spec=state)
    >>> position, sorted(chunk_state), sorted(acc)
    ({'chunk_start': 0, 'step': 5}, ['S', 'X', 'alive'], ['diverged'])
    """
    path = Path(path)
    with open(path, "rb") as fh:  # a missing or unreadable file says so itself, as an OSError
        try:
            # np.load tells anything that is neither zip nor .npy to unpickle it "if you trust the
            # file": check the signature first, so the message is about this file, not pickles
            if fh.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                raise _Inconsistent("not a NumPy .npz archive: it does not start with the zip signature")
            fh.seek(0)
            try:
                z = np.load(fh, allow_pickle=False)
            except MemoryError:
                raise
            except Exception as e:  # BadZipFile, EOFError, OSError, ValueError, ...
                raise _Inconsistent(f"not a NumPy .npz archive: {type(e).__name__}: {e}") from e
            with z:
                return _load(z, tag, n_chains, n_steps, chunk, acc_spec, state_spec)
        except _OtherRun:
            raise ValueError(
                f"checkpoint {path} was written by a run with different settings; "
                "pass another checkpoint path or delete the file"
            ) from None
        except _Inconsistent as e:
            raise ValueError(
                f"checkpoint {path} is unreadable or inconsistent ({e}): delete it to start over"
            ) from e.__cause__


# ---------------------------------------------------------------------------------------------
# deferred_interrupt
# ---------------------------------------------------------------------------------------------

@contextmanager
def deferred_interrupt():
    """Turn Ctrl-C into a flag checked between kernel calls (main thread only).

    Yields a one-element list whose item becomes True when SIGINT arrives; the kernel call in
    flight finishes, so the state stays consistent. A second Ctrl-C raises at once.
    """
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
