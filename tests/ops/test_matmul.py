"""matmul (1-D, 2-D, batched, broadcast batches) and linear against PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from deepnotes.ops.matmul import linear
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


@st.composite
def matmul_shapes(draw):
    """Operand shapes for every matmul case: 1-D or n-D on either side, broadcastable batches."""
    m, k, p = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batches = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    a_batch, b_batch = batches.input_shapes
    a_shape = (k,) if draw(st.booleans()) else a_batch + (m, k)
    b_shape = (k,) if draw(st.booleans()) else b_batch + (k, p)
    return a_shape, b_shape


@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_matches_torch(shapes, seed):
    a_shape, b_shape = shapes
    a, b = normal(seed, a_shape), normal(seed + 1, b_shape)
    check_against_torch(dn.matmul, "matmul", (a, b), names=["input", "other"])
    check_against_torch(lambda x, y: x @ y, lambda x, y: x @ y, (a, b))


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
     ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 2)), ((1, 2, 3), (6, 3, 1))],
)
def test_matmul_named_cases_match_torch(a_shape, b_shape, rng):
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    check_against_torch(dn.matmul, "matmul", (a, b))


def test_matmul_method_and_rmatmul_with_arrays(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    check_against_torch(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), (a, b))
    out = a @ dn.tensor(b)  # ndarray @ Tensor: Tensor.__rmatmul__
    assert isinstance(out, dn.Tensor)
    np.testing.assert_allclose(out.numpy(), a @ b)


def test_matmul_errors_match_torch():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        dn.matmul(dn.ones(2, 3), dn.ones(4, 2))
    with pytest.raises(RuntimeError, match="at least 1D"):
        dn.matmul(dn.ones(()), dn.ones(2))
    with pytest.raises(RuntimeError, match="broadcastable"):
        dn.matmul(dn.ones(2, 2, 3), dn.ones(3, 3, 4))
    with pytest.raises(RuntimeError, match="same dtype"):
        dn.matmul(dn.ones(2, 3), dn.ones(3, 2, dtype=dn.float64))
    with pytest.raises(TypeError, match="must be Tensor"):
        dn.matmul(np.ones((2, 2)), dn.ones(2, 2))
    with pytest.raises(RuntimeError):
        torch.matmul(torch.ones(2, 3), torch.ones(3, 2, dtype=torch.float64))


@given(
    lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4),
    in_features=st.integers(1, 5),
    out_features=st.integers(1, 5),
    bias=st.booleans(),
    seed=seeds,
)
def test_linear_matches_torch(lead, in_features, out_features, bias, seed):
    x = normal(seed, lead + (in_features,))  # 1-D, 2-D or 3-D input
    w = normal(seed + 1, (out_features, in_features))
    inputs = (x, w, normal(seed + 2, (out_features,))) if bias else (x, w)
    check_against_torch(linear, TF.linear, inputs, names=["input", "weight", "bias"])


def test_linear_with_bias_none_keyword_matches_torch(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    check_against_torch(linear, TF.linear, (x, w), bias=None)


def test_linear_gradient_only_where_needed():
    x = dn.randn(4, 3)
    w = dn.randn(2, 3, requires_grad=True)
    b = dn.randn(2)
    linear(x, w, b).sum().backward()
    assert w.grad is not None and x.grad is None and b.grad is None


def test_linear_errors():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        linear(dn.ones(4, 3), dn.ones(2, 4))
    with pytest.raises(RuntimeError, match=r"bias of shape \(3,\) does not broadcast"):
        linear(dn.ones(4, 3), dn.ones(2, 3), dn.ones(3))
    with pytest.raises(RuntimeError, match="weight must be 2-D"):
        linear(dn.ones(4, 3), dn.ones(3))
    with pytest.raises(RuntimeError, match="same dtype"):
        linear(dn.ones(4, 3), dn.ones(2, 3), dn.ones(2, dtype=dn.float64))
