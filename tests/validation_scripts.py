"""Load a validation script (``validation/<name>.py``) as a module, for the tests that feed its
check-making functions fabricated numbers.

The scripts are not a package (each runs as ``python validation/<name>.py``), so they are loaded
from their file; pytest puts ``tests/`` on ``sys.path``, so a test imports this helper as
``from validation_scripts import load_script`` (as it imports ``reference_model``).
"""
import importlib.util
from pathlib import Path

VALIDATION = Path(__file__).resolve().parent.parent / "validation"


def load_script(name: str):
    """The module of ``validation/<name>.py``, executed afresh (its ``main`` is not run).

    Parameters
    ----------
    name : str, the script's file name without ``.py``, e.g. ``"batch_size"``

    Returns
    -------
    module, named ``validation_<name>`` (not entered in ``sys.modules``)
    """
    spec = importlib.util.spec_from_file_location(f"validation_{name}", VALIDATION / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
