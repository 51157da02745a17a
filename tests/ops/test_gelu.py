"""F.gelu (exact erf form and tanh approximation) against PyTorch."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
import deepnotes.nn.functional as F
from tests.helpers import check_against_torch, check_gradients

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1.0, 4.0, 50.0]),
       approximate=st.sampled_from(["none", "tanh"]))
def test_gelu_matches_torch(shape, seed, scale, approximate):
    x = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale)
    with np.errstate(over="raise", invalid="raise"):
        check_against_torch(F.gelu, "gelu", (x,), approximate=approximate)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradients_numerically_and_known_values(approximate, rng):
    check_gradients(F.gelu, rng.standard_normal((3, 4)), approximate=approximate)
    y = F.gelu(dn.tensor([0.0, 1e3, -1e3]), approximate=approximate).numpy()
    np.testing.assert_allclose(y, [0.0, 1e3, 0.0], atol=1e-12)  # GELU -> ReLU far from 0


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(RuntimeError, match="none or tanh"):
        F.gelu(dn.tensor([1.0]), approximate="sigmoid")
    with pytest.raises(RuntimeError, match="none or tanh"):
        torch.nn.functional.gelu(torch.tensor([1.0]), approximate="sigmoid")
