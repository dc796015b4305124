"""Checkpoints of a running `simulate`: enough to resume it to the bitwise-same result.

A checkpoint is written at a kernel-call boundary (never in the middle of a call), so the
chain state, the position ``(chunk start, step)`` and every accumulator are consistent. It is
tagged with a fingerprint of the run's settings; resuming a different run from it is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def fingerprint(settings: dict, init: np.ndarray) -> str:
    """A hash of everything that determines the run's result."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(init[: min(len(init), 1 << 20)]).tobytes())
    h.update(str(init.shape).encode())
    return h.hexdigest()


def save(path: Path, tag: str, position: dict, chunk_state: dict, acc: dict) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never corrupts."""
    arrays = {f"acc_{k}": v for k, v in acc.items() if v is not None}
    arrays.update({f"chunk_{k}": v for k, v in chunk_state.items()})
    meta = {"tag": tag, **position}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load(path: Path, tag: str):
    """``(position, chunk_state, accumulators)`` or a ValueError if written by another run."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        if meta.get("tag") != tag:
            raise ValueError(
                f"checkpoint {path} was written by a run with different settings; "
                "pass another checkpoint path or delete the file"
            )
        chunk = {k[6:]: z[k] for k in z.files if k.startswith("chunk_")}
        acc = {k[4:]: z[k] for k in z.files if k.startswith("acc_")}
    meta.pop("tag")
    return meta, chunk, acc


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
