import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# Hypothesis profiles: "ci" (chosen when CI is set) draws the same examples on every run and
# keeps no example database; "dev" is Hypothesis' default; "fuzz" searches much longer.
# HYPOTHESIS_PROFILE picks one explicitly. Tests that set max_examples scale it for "fuzz"
# (tests/test_properties.py: examples()).
settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=50)
settings.register_profile("dev")
settings.register_profile("fuzz", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
