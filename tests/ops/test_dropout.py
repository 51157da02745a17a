"""dropout and dropout_scale_at_test.

Random masks cannot be compared with PyTorch's, so these tests check the properties that define
the op: eval is the identity, about 1 - p of the units survive, survivors are x / (1 - p), the
gradient is the same mask times the upstream gradient, the expectation is preserved, and a seed
reproduces the mask. The statistical bounds are 6 standard deviations wide (a false failure has
probability ~1e-9 per check).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops.dropout import dropout, dropout_scale_at_test
from tests.helpers import check_against_torch

probabilities = st.floats(0.05, 0.95)
small_shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@given(p=probabilities, shape=small_shapes, seed=st.integers(0, 2**31 - 1))
def test_dropout_survivors_are_scaled_and_gradient_is_the_same_mask(p, shape, seed):
    rng = np.random.default_rng(seed)
    dn.manual_seed(seed)
    x_np = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)  # never 0
    x = dn.tensor(x_np, requires_grad=True)
    y = dropout(x, p)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], x_np[kept] / (1 - p), rtol=1e-15)
    upstream = rng.standard_normal(shape)
    y.backward(upstream)
    np.testing.assert_allclose(x.grad.data, upstream * kept / (1 - p), rtol=1e-15)


@given(p=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_dropout_keeps_about_one_minus_p(p, seed):
    dn.manual_seed(seed)
    n = 100_000
    y = dropout(dn.ones(n), p)
    dropped = int((y.data == 0).sum())
    # The mask compares float32 uniforms (multiples of 2^-24) with p, so the drop probability is
    # p rounded up to that grid; the count is Binomial(n, p_grid). The absolute slack of 6 events
    # keeps the bound meaningful when the expected count is far below one (tiny p).
    p_grid = min(1.0, np.ceil(np.float64(np.float32(p)) * 2**24) / 2**24)
    expected = n * p_grid
    bound = 6 * np.sqrt(n * p_grid * (1 - p_grid)) + 6
    assert abs(dropped - expected) <= bound, (dropped, expected)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_preserves_the_expectation(p):
    """E[y] = x: the mean over many independent units equals the input value."""
    dn.manual_seed(7)
    n = 200_000
    y = dropout(dn.full((n,), 3.0, dtype=dn.float64), p)
    std_of_mean = 3.0 * np.sqrt(p / (1 - p) / n)  # y/3 is Bernoulli(1-p)/(1-p): var p/(1-p)
    assert abs(y.data.mean() - 3.0) <= 6 * std_of_mean


def test_dropout_expectation_matches_torch_statistically():
    """Same law as PyTorch's dropout: the means of the two outputs agree within noise."""
    dn.manual_seed(0)
    torch.manual_seed(0)
    n, p = 200_000, 0.3
    ours = dropout(dn.ones(n, dtype=dn.float64), p).data
    theirs = torch.nn.functional.dropout(torch.ones(n, dtype=torch.float64), p).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs)) == {0.0, 1 / (1 - p)}
    assert abs(ours.mean() - theirs.mean()) <= 6 * np.sqrt(2 * p / (1 - p) / n)


def test_dropout_eval_and_p_zero_return_the_input_itself(rng):
    x = dn.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.nn.functional.dropout(torch.ones(2), 0.5, training=False).sum() == 2


def test_dropout_p_one_gives_zeros_and_zero_gradient(rng):
    x = dn.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0)
    np.testing.assert_array_equal(torch.nn.functional.dropout(torch.ones(3, 4), 1.0).numpy(), 0)


def test_dropout_seed_reproduces_the_mask():
    dn.manual_seed(123)
    a = dropout(dn.ones(1000), 0.5).data
    dn.manual_seed(123)
    b = dropout(dn.ones(1000), 0.5).data
    c = dropout(dn.ones(1000), 0.5).data  # the generator moved on: a new mask
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_draws_from_the_library_generator():
    dn.manual_seed(5)
    state = dn.random.get_rng_state()
    a = dropout(dn.ones(500), 0.4).data
    dn.random.set_rng_state(state)
    np.testing.assert_array_equal(dropout(dn.ones(500), 0.4).data, a)


def test_dropout_keeps_float32():
    y = dropout(dn.ones(10), 0.5)
    assert y.dtype == np.float32
    assert set(np.unique(y.data)) <= {np.float32(0), np.float32(2)}


def test_dropout_inplace_without_grad_writes_into_the_input():
    dn.manual_seed(1)
    x = dn.ones(1000)
    out = dropout(x, 0.5, inplace=True)
    assert out is x
    assert set(np.unique(x.data)) == {0.0, 2.0}


def test_dropout_inplace_on_a_leaf_that_requires_grad_raises():
    x = dn.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an "
                                           "in-place operation"):
        dropout(x, 0.5, inplace=True)


def test_dropout_inplace_inside_a_graph_returns_a_tracked_result(rng):
    dn.manual_seed(2)
    leaf = dn.tensor(rng.uniform(1, 2, 50), requires_grad=True)
    h = leaf * 2
    y = dropout(h, 0.5, inplace=True)
    y.sum().backward()
    np.testing.assert_allclose(leaf.grad.data, 2 * (y.data != 0) / 0.5)


@pytest.mark.parametrize("p", [1.5, -0.1])
def test_dropout_probability_out_of_range(p):
    with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got "
                                         f"{p}"):
        dropout(dn.ones(3), p)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        dropout_scale_at_test(dn.ones(3), p)


def test_dropout_rejects_integer_input_and_non_numeric_p():
    with pytest.raises(TypeError, match="floating point"):
        dropout(dn.tensor([1, 2, 3]), 0.5)
    with pytest.raises(TypeError, match="'p' must be float"):
        dropout(dn.ones(3), "0.5")
    with pytest.raises(TypeError, match="must be Tensor"):
        dropout(np.ones(3), 0.5)


# -- classic dropout (not in PyTorch) ------------------------------------------------------------


@given(p=st.floats(0.0, 1.0), shape=small_shapes, seed=st.integers(0, 2**31 - 1))
def test_dropout_scale_at_test_eval_is_the_scaled_identity(p, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_against_torch(dropout_scale_at_test, lambda x, p, training: x * (1 - p), (x,),
                        p=p, training=False)


@given(p=probabilities, shape=small_shapes, seed=st.integers(0, 2**31 - 1))
def test_dropout_scale_at_test_training_keeps_values_unscaled(p, shape, seed):
    rng = np.random.default_rng(seed)
    dn.manual_seed(seed)
    x_np = rng.uniform(0.5, 2.0, shape)
    x = dn.tensor(x_np, requires_grad=True)
    y = dropout_scale_at_test(x, p)
    kept = y.data != 0
    np.testing.assert_array_equal(y.data[kept], x_np[kept])
    upstream = rng.standard_normal(shape)
    y.backward(upstream)
    np.testing.assert_array_equal(x.grad.data, upstream * kept)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_scale_at_test_training_mean_matches_eval_output(p):
    """Both conventions agree in expectation: E[train output] = eval output = (1 - p) x."""
    dn.manual_seed(11)
    n = 200_000
    x = dn.full((n,), 2.0, dtype=dn.float64)
    train_mean = dropout_scale_at_test(x, p, training=True).data.mean()
    eval_value = dropout_scale_at_test(x, p, training=False).data[0]
    assert eval_value == pytest.approx(2.0 * (1 - p))
    assert abs(train_mean - eval_value) <= 6 * 2.0 * np.sqrt(p * (1 - p) / n)
