"""Our update rules reproduce torch.optim step for step (float64, 1000 steps, <= 1e-12 relative).

The default suite replays the committed torch trajectories (tests/data/torch_reference.npz,
written by make_torch_reference.py); when torch is importable, a live test reruns torch.
The error is |x_ours - x_torch| / max(|x_torch|, 1) per coordinate and step: relative where
the trajectory is large, absolute near 0 where a relative error means nothing.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from torch_cases import CASES, our_trajectory, torch_trajectory

REFERENCE = Path(__file__).parent / "data" / "torch_reference.npz"
TOL = 1e-12


def _err(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        return meta, {k: z[k] for k in z.files if k != "__meta__"}


def test_reference_file_covers_every_case(reference):
    meta, data = reference
    assert sorted(data) == sorted(CASES) == meta["cases"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_committed_torch_trajectories(name, reference):
    ours = our_trajectory(name)
    theirs = reference[1][name]
    assert _err(ours, theirs) <= TOL
    # the trajectory really moved (a frozen optimizer would pass trivially)
    assert np.max(np.abs(theirs[-1] - theirs[0])) > 1e-3


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_live_torch(name):
    pytest.importorskip("torch")
    assert _err(our_trajectory(name), torch_trajectory(name)) <= TOL


def test_negative_control_a_different_optimizer_is_detected(reference):
    """Adam without amsgrad replayed against the amsgrad reference must differ."""
    import dataclasses

    import torch_cases

    land, opt, cls, kw, scale = CASES["adam-amsgrad"]
    swapped = dict(CASES)
    swapped["adam-amsgrad"] = (land, dataclasses.replace(opt, amsgrad=False), cls, kw, scale)
    old = torch_cases.CASES
    torch_cases.CASES = swapped
    try:
        ours = torch_cases.our_trajectory("adam-amsgrad")
    finally:
        torch_cases.CASES = old
    assert _err(ours, reference[1]["adam-amsgrad"]) > 1e-6
