"""Shape ops and indexing against PyTorch: reshape/view, permute, flatten, squeeze, expand, getitem,
setitem, cat/stack and pad."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from deepnotes.ops import shape as S
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


# -- reshape / view -------------------------------------------------------------------------------


@st.composite
def reshape_cases(draw):
    """A shape and a new shape with the same number of elements (maybe with one -1)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    factors = [f for s in shape for f in _prime_factors(s)]
    factors = draw(st.permutations(factors))
    cuts = sorted(draw(st.lists(st.integers(0, len(factors)), max_size=3)))
    new_shape, start = [], 0
    for cut in cuts + [len(factors)]:
        new_shape.append(int(np.prod(factors[start:cut])))
        start = cut
    if draw(st.booleans()):
        new_shape[draw(st.integers(0, len(new_shape) - 1))] = -1
    return shape, tuple(new_shape)


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@pytest.mark.parametrize("method", ["reshape", "view"])
@given(case=reshape_cases(), seed=seeds, as_tuple=st.booleans())
def test_reshape_and_view_match_torch(method, case, seed, as_tuple):
    shape, new_shape = case
    args = (new_shape,) if as_tuple else new_shape
    check_against_torch(lambda t: getattr(t, method)(*args), lambda t: getattr(t, method)(*args),
                        (normal(seed, shape),))


@given(case=reshape_cases(), seed=seeds)
def test_reshape_function_matches_torch(case, seed):
    shape, new_shape = case
    check_against_torch(dn.reshape, "reshape", (normal(seed, shape),), shape=new_shape)


def test_reshape_errors_match_torch():
    x = dn.ones(2, 3)
    with pytest.raises(RuntimeError, match="invalid for input of size 6"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match="invalid shape dimension -2"):
        x.reshape(-2, 3)
    with pytest.raises(TypeError, match="tuple of ints"):
        x.reshape(2.0, 3)


def test_view_as_and_reshape_as_match_torch(rng):
    x, other = rng.standard_normal((2, 6)), rng.standard_normal((3, 4))
    check_against_torch(lambda t, o: t.view_as(o), lambda t, o: t.view_as(o), (x, other))
    check_against_torch(lambda t, o: t.reshape_as(o), lambda t, o: t.reshape_as(o), (x, other))


# -- permute / transpose / flatten / squeeze / unsqueeze / expand ---------------------------------


@given(shape=shapes, data=st.data(), seed=seeds)
def test_permute_matches_torch(shape, data, seed):
    dims = data.draw(st.permutations(range(len(shape))))
    dims = [d - len(shape) if data.draw(st.booleans()) else d for d in dims]
    check_against_torch(dn.permute, "permute", (normal(seed, shape),), dims=dims)
    check_against_torch(lambda t: t.permute(*dims), lambda t: t.permute(*dims),
                        (normal(seed, shape),))


@given(shape=shapes, data=st.data(), seed=seeds)
def test_transpose_matches_torch(shape, data, seed):
    ndim = len(shape)
    dim0, dim1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    check_against_torch(dn.transpose, "transpose", (normal(seed, shape),), dim0=dim0, dim1=dim1)


def test_t_T_and_mT_match_torch(rng):
    m, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 3, 4))
    check_against_torch(lambda t: t.t(), lambda t: t.t(), (m,))
    check_against_torch(lambda t: t.T, lambda t: t.T, (m,))
    check_against_torch(lambda t: t.mT, lambda t: t.mT, (b,))
    check_against_torch(lambda t: t.t(), lambda t: t.t(), (rng.standard_normal(3),))


def test_permute_errors_match_torch():
    x = dn.ones(2, 3)
    with pytest.raises(RuntimeError, match="number of dimensions"):
        x.permute(0)
    with pytest.raises(RuntimeError, match="duplicate dims"):
        x.permute(0, 0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.transpose(0, 2)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4), data=st.data(),
       seed=seeds)
def test_flatten_matches_torch(shape, data, seed):
    n = max(len(shape), 1)
    start = data.draw(st.integers(-n, n - 1))
    end = data.draw(st.integers(-n, n - 1))
    if start % n > end % n:
        with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
            dn.flatten(dn.tensor(normal(seed, shape)), start, end)
        return
    check_against_torch(dn.flatten, "flatten", (normal(seed, shape),), start_dim=start,
                        end_dim=end)


def test_flatten_method_and_empty_tensor_match_torch():
    assert dn.zeros(2, 0, 3).flatten(1).shape == tuple(torch.zeros(2, 0, 3).flatten(1).shape)
    check_against_torch(lambda t: t.flatten(), lambda t: t.flatten(), (np.ones((2, 3, 2)),))


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2), data=st.data(),
       seed=seeds)
def test_squeeze_matches_torch(shape, data, seed):
    ndim = len(shape)
    dim = data.draw(st.one_of(
        st.none(),
        st.integers(-ndim, ndim - 1),
        st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
    ))
    kwargs = {} if dim is None else {"dim": dim}
    check_against_torch(dn.squeeze, "squeeze", (normal(seed, shape),), **kwargs)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4), data=st.data(),
       seed=seeds)
def test_unsqueeze_matches_torch(shape, data, seed):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check_against_torch(dn.unsqueeze, "unsqueeze", (normal(seed, shape),), dim=dim)


@st.composite
def expand_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    shape = tuple(s if draw(st.booleans()) else 1 for s in shape)
    target = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))]  # new leading axes
    for s in shape:
        choice = draw(st.sampled_from(["keep", "minus_one", "grow"]))
        if choice == "grow" and s == 1:
            target.append(draw(st.integers(1, 4)))
        else:
            target.append(-1 if choice == "minus_one" else s)
    return shape, tuple(target)


@given(case=expand_cases(), seed=seeds, as_tuple=st.booleans())
def test_expand_matches_torch(case, seed, as_tuple):
    shape, target = case
    args = (target,) if as_tuple or not target else target
    check_against_torch(lambda t: t.expand(*args), lambda t: t.expand(*args),
                        (normal(seed, shape),))


def test_expand_as_and_errors_match_torch(rng):
    check_against_torch(lambda a, b: a.expand_as(b), lambda a, b: a.expand_as(b),
                        (rng.standard_normal((3, 1)), rng.standard_normal((2, 3, 4))))
    with pytest.raises(RuntimeError, match="must match the existing size"):
        dn.ones(3).expand(2, 4)
    with pytest.raises(RuntimeError, match="leading, non-existing dimension"):
        dn.ones(3).expand(-1, 3)
    with pytest.raises(RuntimeError, match="greater or equal"):
        dn.ones(2, 3).expand(3)


# -- indexing -------------------------------------------------------------------------------------


@st.composite
def basic_indices(draw, shape):
    """ints, positive-step slices, None and at most one Ellipsis, valid for ``shape``."""
    items: list = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "full", "none"]))
        if kind == "int":
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
            stop = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
            items.append(slice(start, stop, draw(st.integers(1, 3))))
        elif kind == "full":
            items.append(slice(None))
        else:
            items.append(None)
            items.append(slice(None))
    if items and draw(st.booleans()):  # replace a trailing run of full slices by Ellipsis
        cut = draw(st.integers(0, len(items)))
        items = items[:cut] + [Ellipsis]
    return tuple(items)


@given(shape=shapes, data=st.data(), seed=seeds)
def test_basic_indexing_matches_torch(shape, data, seed):
    index = data.draw(basic_indices(shape))
    check_against_torch(lambda t: t[index], lambda t: t[index], (normal(seed, shape),))


def test_single_int_slice_none_and_ellipsis_indices_match_torch(rng):
    x = rng.standard_normal((3, 4, 5))
    for index in [1, -1, slice(1, 3), (Ellipsis, 2), (None, 1), (1, None, Ellipsis, None),
                  (slice(None), -2, slice(0, 5, 2)), ()]:
        check_against_torch(lambda t, i=index: t[i], lambda t, i=index: t[i], (x,))


@given(shape=shapes, data=st.data(), seed=seeds)
def test_negative_step_slices_match_torch_flip(shape, data, seed):
    # PyTorch has no negative steps; x[::-1] is compared with torch.flip.
    dim = data.draw(st.integers(0, len(shape) - 1))
    index = (slice(None),) * dim + (slice(None, None, -1),)
    check_against_torch(lambda t: t[index], lambda t: torch.flip(t, (dim,)),
                        (normal(seed, shape),))


def test_negative_step_with_start_and_stop_matches_numpy_and_gradient():
    data = np.arange(7.0)
    x = dn.tensor(data, requires_grad=True)
    y = x[5:0:-2]
    np.testing.assert_array_equal(y.detach().numpy(), data[5:0:-2])
    (y * dn.tensor([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 100, 0, 10, 0, 1, 0])


@given(shape=shapes, data=st.data(), seed=seeds)
def test_integer_array_indexing_with_repeats_scatter_adds_the_gradient_as_torch(shape, data, seed):
    size = shape[0]
    picks = data.draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=6))
    check_against_torch(lambda t: t[dn.tensor(picks)], lambda t: t[torch.tensor(picks)],
                        (normal(seed, shape),))
    check_against_torch(lambda t: t[picks], lambda t: t[picks], (normal(seed, shape),))


def test_repeated_index_gradient_is_the_number_of_picks():
    x = dn.zeros(4, requires_grad=True)
    x[[0, 2, 2, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 0, 3, 0])


def test_advanced_indexing_with_several_arrays_and_slices_matches_torch(rng):
    x = rng.standard_normal((4, 5, 3))
    rows, cols = [0, 3, 3, 1], [4, 0, 0, 2]
    check_against_torch(lambda t: t[dn.tensor(rows), dn.tensor(cols)],
                        lambda t: t[torch.tensor(rows), torch.tensor(cols)], (x,))
    check_against_torch(lambda t: t[:, dn.tensor(cols)], lambda t: t[:, torch.tensor(cols)], (x,))
    check_against_torch(lambda t: t[dn.tensor([[0, 1], [1, 1]]), 2],
                        lambda t: t[torch.tensor([[0, 1], [1, 1]]), 2], (x,))


@given(shape=shapes, seed=seeds, full_mask=st.booleans())
def test_boolean_mask_indexing_matches_torch(shape, seed, full_mask):
    x = normal(seed, shape)
    mask = np.random.default_rng(seed + 1).random(shape if full_mask else shape[:1]) > 0.4
    check_against_torch(lambda t: t[dn.tensor(mask)], lambda t: t[torch.tensor(mask)], (x,))


def test_index_errors_are_torch_like():
    x = dn.ones(3, 2)
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match="too many indices for tensor"):
        x[0, 0, 0]


# -- setitem: in-place writes into tensors that are part of the graph -----------------------------


def test_setitem_on_a_non_leaf_matches_torch(rng):
    x_np, v_np = rng.standard_normal((3, 4)), rng.standard_normal(4)
    upstream = rng.standard_normal((3, 4))

    def run(mod, x, v):
        y = x * 2
        y[1] = v * 3
        y[:, 0] = 0.0
        return (y * mod.tensor(upstream)).sum()

    ours_x, ours_v = dn.tensor(x_np, requires_grad=True), dn.tensor(v_np, requires_grad=True)
    theirs_x, theirs_v = (torch.tensor(x_np, requires_grad=True),
                          torch.tensor(v_np, requires_grad=True))
    run(dn, ours_x, ours_v).backward()
    run(torch, theirs_x, theirs_v).backward()
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours_v.grad.numpy(), theirs_v.grad.numpy(), atol=1e-12)


def test_setitem_of_a_grad_tensor_into_a_plain_buffer_makes_it_part_of_the_graph():
    w = dn.tensor([1.0, 2.0], requires_grad=True)
    buffer = dn.zeros(2, 2)
    buffer[0] = w
    buffer[1] = w * w
    assert buffer.requires_grad and not buffer.is_leaf
    buffer.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 5.0])  # 1 + 2w


def test_setitem_on_a_plain_tensor_writes_in_place():
    x = dn.zeros(2, 3)
    view = x.numpy()
    x[0, 1:] = 5
    x[dn.tensor([False, True])] = dn.tensor([1.0, 2.0, 3.0])
    assert view[0, 2] == 5 and view[1, 2] == 3 and x._version == 2


# -- cat / stack ----------------------------------------------------------------------------------


@given(shape=shapes, data=st.data(), seed=seeds)
def test_cat_matches_torch(shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    arrays = []
    for i, size in enumerate(sizes):
        piece = list(shape)
        piece[dim] = size
        arrays.append(normal(seed + i, tuple(piece)))
    check_against_torch(lambda *ts: dn.cat(ts, dim), lambda *ts: torch.cat(ts, dim), arrays)
    check_against_torch(lambda *ts: dn.concat(list(ts), dim=dim),
                        lambda *ts: torch.concat(list(ts), dim=dim), arrays)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4), data=st.data(),
       seed=seeds)
def test_stack_matches_torch(shape, data, seed):
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    count = data.draw(st.integers(1, 4))
    arrays = [normal(seed + i, shape) for i in range(count)]
    check_against_torch(lambda *ts: dn.stack(ts, dim), lambda *ts: torch.stack(ts, dim), arrays)


def test_cat_and_stack_promote_dtypes_and_raise_like_torch():
    assert dn.cat([dn.ones(2), dn.ones(2, dtype=dn.int64)]).dtype == dn.float32
    assert dn.stack([dn.ones(2, dtype=dn.float64), dn.ones(2)]).dtype == dn.float64
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 0"):
        dn.cat([dn.ones(2, 3), dn.ones(2, 4)])
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        dn.cat([dn.ones(2, 3), dn.ones(3)])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        dn.stack([dn.ones(2), dn.ones(3)])
    with pytest.raises(TypeError, match="tuple of Tensors"):
        dn.cat(dn.ones(2))
    with pytest.raises(TypeError, match="expected Tensor as element 1"):
        dn.stack([dn.ones(2), np.ones(2)])


def test_cat_gradient_reaches_every_input_including_ones_without_grad():
    a = dn.ones(2, requires_grad=True)
    b = dn.ones(3)
    c = dn.ones(1, requires_grad=True)
    (dn.cat([a, b, c]) * dn.arange(6.0)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0, 1])
    np.testing.assert_array_equal(c.grad.numpy(), [5])
    assert b.grad is None


# -- pad ------------------------------------------------------------------------------------------


@st.composite
def pad_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    count = draw(st.integers(1, len(shape)))
    amounts = []
    for i in range(count):
        size = shape[-1 - i]
        before = draw(st.integers(-(size - 1), 3))
        after = draw(st.integers(-(size + min(before, 0) - 1), 3))
        amounts += [before, after]
    return shape, tuple(amounts)


@given(case=pad_cases(), seed=seeds, value=st.sampled_from([None, 0.0, -1.5]))
def test_pad_with_positive_and_negative_amounts_matches_torch(case, seed, value):
    shape, amounts = case
    kwargs = {} if value is None else {"value": value}
    check_against_torch(S.pad, TF.pad, (normal(seed, shape),), pad=amounts,
                        **kwargs)


def test_pad_errors():
    with pytest.raises(ValueError, match="divisible by 2"):
        S.pad(dn.ones(3), (1,))
    with pytest.raises(ValueError, match="divisible by 2"):
        S.pad(dn.ones(3), (1, 1, 1, 1))
    with pytest.raises(RuntimeError, match="negative output size"):
        S.pad(dn.ones(3), (-2, -2))
    with pytest.raises(NotImplementedError):
        S.pad(dn.ones(1, 3), (1, 1), mode="reflect")
