"""The histogram test is calibrated: under the null hypothesis its p-values are uniform.

Samples whose law is exactly the tested Gibbs law: independent (``Gibbs.rvs``), and
time-correlated with an exact marginal (random-walk Metropolis chains started in the law, on the
double well), the temperature fitted or given. Error budget: 120 repetitions, so the rejection
rate at 5% has a binomial standard error of 2.0%; it must lie within 4 of them (false alarm 6e-5),
and the Kolmogorov-Smirnov p-value of the p-values against U(0, 1) must exceed 1e-4. Negative
control: the same correlated samples tested at a temperature 20% off are rejected in most
repetitions (9000 correlated samples resolve T to about 3%; at 5% off the rate is ~25%).
The full calibration (Mueller-Brown, SGD at finite lr, sparse bins, 200+ repetitions) is
``benchmarks/gof_calibration.py``.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import gibbs_sgd as gs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gof_calibration import _metropolis  # noqa: E402

REPS = 120
WELL = gs.landscapes.DoubleWell(tilt=0.2)
T = 0.3


def _iid(r, given):
    x = gs.Gibbs(WELL, T).rvs(3000, random_state=r)
    return gs.fit_temperature(gs.SimulationResult.from_samples(WELL, x, bins=50, n_blocks=100), temperature=given)


def _correlated(r, given):
    x = _metropolis(WELL, T, 300, 30, 0.3, np.random.default_rng(r))
    return gs.fit_temperature(gs.SimulationResult.from_samples(WELL, x, bins=50, n_blocks=100), temperature=given)


@pytest.mark.parametrize("draw", [_iid, _correlated], ids=["independent", "correlated"])
@pytest.mark.parametrize("given", [None, T], ids=["T fitted", "T given"])
def test_p_values_are_uniform_under_the_null(draw, given):
    p = np.array([draw(1000 + r, given).p_value for r in range(REPS)])
    assert np.all(np.isfinite(p))
    rate = np.mean(p < 0.05)
    se = math.sqrt(0.05 * 0.95 / REPS)
    assert abs(rate - 0.05) < 4 * se, rate
    assert stats.kstest(p, "uniform").pvalue > 1e-4


def test_wrong_temperature_is_rejected():
    p = np.array([_correlated(2000 + r, 1.2 * T).p_value for r in range(30)])
    assert np.mean(p < 0.05) > 0.8
