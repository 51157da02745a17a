import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import deepnotes as dn

settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# CI: the same 25 examples on every run (derandomized), so that a landing does not depend on the
# draw; local runs keep drawing new examples, which is how the fuzzing finds new cases.
settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, fixed-seed generator per test (and the library's global one seeded too)."""
    dn.manual_seed(0)
    return np.random.default_rng(0)
