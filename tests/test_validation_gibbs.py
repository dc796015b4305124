"""validation/gibbs_law.py and validation/beta_from_eta0.py: their theory and the functions that turn
measured numbers into checks, fed fabricated numbers (a verdict must follow the numbers)."""
import math

import numpy as np
import pytest

import gibbs_sgd as gs
from gibbs_sgd.validation import Row
from validation_scripts import load_script

