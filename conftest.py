"""Test-session set-up shared by tests/ and the doctests.

Without a GPU, numba-cuda's simulator is switched on before numba is imported, so the CUDA
backend's tests run (slowly, at small sizes) on any machine; "auto" never picks the simulator.
With a GPU (a driver device node present) the CUDA tests run on the real device.
"""
import glob
import os

if not glob.glob("/dev/nvidia[0-9]*") and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
