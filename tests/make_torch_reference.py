"""Write torch.optim's reference trajectories for the conformance cases (needs torch).

    python tests/make_torch_reference.py    # writes tests/data/torch_reference.npz
"""
import json
from pathlib import Path

import numpy as np
import torch

from torch_cases import CASES, torch_trajectory


def main():
    out = {name: torch_trajectory(name) for name in CASES}
    meta = {"torch": torch.__version__, "numpy": np.__version__, "cases": sorted(CASES)}
    out["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(__file__).parent / "data" / "torch_reference.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({len(CASES)} cases, torch {torch.__version__})")


if __name__ == "__main__":
    main()
