"""Reductions against PyTorch: sum, mean, max/min (with and without dim), amax/amin, var/std."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


def small_integers(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Values in {-1, 0, 1} as floats: ties everywhere."""
    return np.asarray(np.random.default_rng(seed).integers(-1, 2, shape), dtype=np.float64)


@st.composite
def shape_and_dims(draw, min_dims=1):
    """A shape and a dim argument for it: None, an int (maybe negative) or a tuple of dims."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=4))
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-ndim, ndim - 1))
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    negate = draw(st.booleans())
    return shape, tuple(d - ndim if negate else d for d in dims)


def dim_kwargs(dim, keepdim):
    return {} if dim is None else {"dim": dim, "keepdim": keepdim}


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_sum_mean_match_torch(name, case, keepdim, seed):
    shape, dim = case
    check_against_torch(getattr(dn, name), name, (normal(seed, shape),), **dim_kwargs(dim, keepdim))


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean_methods_on_0d_and_with_empty_dim_list_match_torch(name, rng):
    x = rng.standard_normal((2, 3))
    check_against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), (x,))
    check_against_torch(getattr(dn, name), name, (np.array(1.5),))
    check_against_torch(getattr(dn, name), name, (x,), dim=())  # () reduces every dim, as torch


@pytest.mark.parametrize("name", ["amax", "amin"])
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds, ties=st.booleans())
def test_amax_amin_match_torch_including_ties(name, case, keepdim, seed, ties):
    shape, dim = case
    x = (small_integers if ties else normal)(seed, shape)
    kwargs = {"keepdim": keepdim} if dim is None else {"dim": dim, "keepdim": keepdim}
    check_against_torch(getattr(dn, name), name, (x,), **kwargs)


@pytest.mark.parametrize("name", ["max", "min"])
@given(shape=shapes, seed=seeds, ties=st.booleans())
def test_full_max_min_share_the_gradient_among_ties_as_torch(name, shape, seed, ties):
    x = (small_integers if ties else normal)(seed, shape)
    check_against_torch(getattr(dn, name), name, (x,))


def test_full_max_with_three_ties_gives_each_a_third():
    x = dn.tensor([1.0, 3.0, 3.0, 0.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 1 / 3, 1 / 3, 0, 1 / 3])


@pytest.mark.parametrize("name", ["max", "min"])
@given(shape=shapes, data=st.data(), keepdim=st.booleans(), seed=seeds)
def test_max_min_with_dim_match_torch(name, shape, data, keepdim, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = normal(seed, shape)
    out = check_against_torch(getattr(dn, name), name, (x,), dim=dim, keepdim=keepdim)
    assert out[1].dtype == np.int64


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_with_dim_route_the_gradient_to_the_first_tie_as_torch(name):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0], [-4.0, -4.0, -4.0]])
    values, indices = check_against_torch(getattr(dn, name), name, (x,), dim=1)
    theirs = getattr(torch, name)(torch.tensor(x), dim=1)
    np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())
    assert values.shape == (3,)


def test_max_min_named_tuple_and_methods():
    x = dn.tensor([[1.0, 5.0], [7.0, 2.0]])
    result = x.max(dim=0)
    np.testing.assert_array_equal(result.values.numpy(), [7.0, 5.0])
    np.testing.assert_array_equal(result.indices.numpy(), [1, 0])
    assert x.min().item() == 1.0
    assert dn.max(x, dn.ones(2, 2) * 3).numpy().tolist() == [[3.0, 5.0], [7.0, 3.0]]


def test_max_of_0d_tensor_with_dim_matches_torch():
    values, indices = dn.max(dn.tensor(3.0), 0)
    theirs = torch.max(torch.tensor(3.0), 0)
    assert values.item() == theirs.values.item() and indices.item() == theirs.indices.item()


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(shape=shapes, data=st.data(), keepdim=st.booleans(), seed=seeds, ties=st.booleans())
def test_argmax_argmin_match_torch(name, shape, data, keepdim, seed, ties):
    x = (small_integers if ties else normal)(seed, shape)
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    ours = getattr(dn, name)(dn.tensor(x), dim=dim, keepdim=keepdim)
    theirs = getattr(torch, name)(torch.tensor(x), dim=dim, keepdim=keepdim)
    assert ours.dtype == np.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("name", ["var", "std"])
@given(
    case=shape_and_dims(),
    keepdim=st.booleans(),
    seed=seeds,
    correction=st.sampled_from([None, 0, 1, 2, 0.5]),
)
def test_var_std_with_correction_match_torch(name, case, keepdim, seed, correction):
    shape, dim = case
    x = normal(seed, shape)
    n = x.size if dim is None else int(np.prod([shape[d] for d in np.atleast_1d(dim)]))
    if n <= (1 if correction is None else correction):
        correction = 0  # keep n - correction positive (the degenerate case has its own test)
    kwargs = {"keepdim": keepdim} if dim is None else {"dim": dim, "keepdim": keepdim}
    if correction is not None:
        kwargs["correction"] = correction
    check_against_torch(getattr(dn, name), name, (x,), **kwargs)


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_var_std_unbiased_flag_matches_torch(name, unbiased, rng):
    x = rng.standard_normal((3, 4))
    check_against_torch(getattr(dn, name), name, (x,), dim=1, unbiased=unbiased)
    check_against_torch(getattr(dn, name), name, (x,), dim=0, unbiased=unbiased, keepdim=True)
    check_against_torch(lambda t: getattr(t, name)(unbiased), lambda t: getattr(t, name)(unbiased),
                        (x,))


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_of_constant_input_has_zero_gradient_as_torch(name):
    # std = 0: d sqrt(v)/dv is infinite, but torch defines the gradient as 0 there.
    check_against_torch(getattr(dn, name), name, (np.full((2, 3), 1.5),), dim=1)


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_with_no_degrees_of_freedom_give_nan_as_torch(name):
    check_against_torch(getattr(dn, name), name, (np.array([0.7]),))
    check_against_torch(getattr(dn, name), name, (np.ones((2, 3)),), dim=0, correction=2)


def test_var_std_reject_integer_tensors_like_torch():
    with pytest.raises(RuntimeError, match="floating point"):
        dn.var(dn.arange(4))
    with pytest.raises(RuntimeError, match="floating point"):
        dn.std(dn.arange(4))


def test_sum_dtypes_match_torch():
    for data, dtype in [([1, 2], "int64"), ([1, 2], "int32"), ([1, 2], "uint8"), ([True], "bool")]:
        ours = dn.tensor(data, dtype=getattr(dn, dtype)).sum()
        theirs = torch.tensor(data, dtype=getattr(torch, dtype)).sum()
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), dtype
    assert dn.ones(3).sum(dtype=dn.float64).dtype == dn.float64


def test_mean_of_integers_needs_a_dtype_like_torch():
    with pytest.raises(RuntimeError, match="mean"):
        dn.arange(4).mean()
    assert dn.arange(4).mean(dtype=dn.float32).item() == 1.5


def test_reductions_raise_torch_errors_on_bad_dims_and_empty_input():
    x = dn.ones(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(2)
    with pytest.raises(RuntimeError, match="multiple times"):
        x.sum((0, -2))
    with pytest.raises(RuntimeError, match="numel\\(\\) == 0"):
        dn.zeros(0).max()
    with pytest.raises(RuntimeError, match="numel\\(\\) == 0"):
        dn.zeros(0, 2).amax()
    with pytest.raises(IndexError, match="non-zero size"):
        dn.zeros(2, 0).max(1)
    with pytest.raises(IndexError, match="non-zero size"):
        dn.zeros(2, 0).amin(1)
    assert dn.zeros(2, 0).amax(0).shape == (0,)
