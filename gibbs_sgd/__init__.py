"""gibbs_sgd -- at what temperature does a stochastic optimizer run?

Millions of independent SGD / momentum chains on analytic loss landscapes with minibatch
noise; their stationary histograms compared with the Gibbs law ``exp(-L/T)/Z``.
"""
__version__ = "0.1.0"

from . import gibbs, landscapes, noise, optimizers, rng, schedules, theory  # noqa: E402
from .result import Estimate, SimulationResult, load  # noqa: E402
from .simulate import available_backends, simulate  # noqa: E402
from .gibbs import Gibbs  # noqa: E402
from .fit import TemperatureFit, fit_temperature  # noqa: E402
from .sweep import SweepTable, sweep  # noqa: E402

__all__ = [
    "landscapes",
    "noise",
    "optimizers",
    "schedules",
    "rng",
    "gibbs",
    "theory",
    "simulate",
    "available_backends",
    "SimulationResult",
    "Estimate",
    "load",
    "Gibbs",
    "fit_temperature",
    "TemperatureFit",
    "sweep",
    "SweepTable",
]
