"""relu, sigmoid, tanh, softmax and log_softmax against PyTorch, including large inputs."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from deepnotes.ops import activation as A
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5)


def values(seed: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@given(shape=shapes, seed=seeds, scale=st.sampled_from([1.0, 30.0, 800.0]))
def test_pointwise_activations_match_torch(name, shape, seed, scale):
    # scale 800: e^800 overflows float64, so a naive sigmoid would produce nan or warnings.
    x = values(seed, shape, scale)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        check_against_torch(getattr(A, name), name, (x,))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activation_methods_and_top_level_names_match_torch(name, rng):
    x = rng.standard_normal((3, 4))
    check_against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), (x,))
    check_against_torch(getattr(dn, name), name, (x,))


def test_relu_gradient_at_zero_is_zero_as_torch():
    check_against_torch(A.relu, "relu", (np.array([-1.0, 0.0, 2.0]),))


def test_sigmoid_saturates_without_overflow():
    x = dn.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = A.sigmoid(x)
        y.sum().backward()
    expected = torch.sigmoid(torch.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
    np.testing.assert_allclose(y.detach().numpy(), expected.numpy(), rtol=1e-6)
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=shapes, data=st.data(), seed=seeds, scale=st.sampled_from([1.0, 50.0, 1e4]))
def test_softmax_family_matches_torch_including_large_inputs(name, shape, data, seed, scale):
    n = max(len(shape), 1)
    dim = data.draw(st.integers(-n, n - 1))
    x = values(seed, shape, scale)
    with np.errstate(over="raise"):
        out = check_against_torch(getattr(A, name), name, (x,), dim=dim)
    assert np.isfinite(out.detach().numpy()).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_with_implicit_dim_and_dtype_match_torch(name, rng):
    import warnings

    for shape in [(4,), (2, 3), (2, 3, 4), (2, 3, 2, 2)]:
        x = rng.standard_normal(shape)
        with warnings.catch_warnings():  # torch warns about the implicit dim choice
            warnings.simplefilter("ignore")
            check_against_torch(getattr(A, name), name, (x,))
    x = rng.standard_normal((2, 3)).astype(np.float32)
    ours = getattr(A, name)(dn.tensor(x), dim=1, dtype=dn.float64)
    theirs = getattr(torch, name)(torch.tensor(x), dim=1, dtype=torch.float64)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-12)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_methods_match_torch(name, rng):
    x = rng.standard_normal((3, 5))
    check_against_torch(lambda t: getattr(t, name)(-1), lambda t: getattr(t, name)(-1), (x,))


def test_softmax_rows_sum_to_one_with_huge_spread():
    y = A.softmax(dn.tensor([[1e30, 0.0, -1e30], [3.0, 3.0, 3.0]], dtype=dn.float64), dim=1)
    np.testing.assert_allclose(y.numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_relu_inplace_matches_torch_semantics():
    x = dn.tensor([-1.0, 2.0])
    assert A.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    w = dn.tensor([-1.0, 2.0, 3.0], requires_grad=True)
    y = w * 2
    A.relu(y, inplace=True)
    (y * dn.tensor([1.0, 1.0, 10.0])).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 2.0, 20.0])
    with pytest.raises(RuntimeError, match="leaf Variable"):
        A.relu(w, inplace=True)


def test_activations_reject_non_tensors():
    for name in ["relu", "sigmoid", "tanh", "softmax", "log_softmax"]:
        with pytest.raises(TypeError, match="must be Tensor"):
            getattr(A, name)(np.ones(3))
