"""nn.utils.clip_grad_norm_ / clip_grad_value_ / get_total_norm against torch.nn.utils."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.nn import utils as nn_utils

NORM_TYPES = [2.0, 1.0, 3.5, 0.5, math.inf, -math.inf, 0.0, "inf"]


def _pair(grads: list[np.ndarray | None], dtype: str = "float64"):
    """The same parameters with the same .grad in both frameworks (None: no gradient)."""
    ours, theirs = [], []
    for g in grads:
        shape = (2,) if g is None else g.shape
        p = dn.zeros(*shape, dtype=getattr(dn, dtype), requires_grad=True)
        t = torch.zeros(shape, dtype=getattr(torch, dtype), requires_grad=True)
        if g is not None:
            p.grad = dn.from_numpy(np.array(g, dtype=dtype))  # private copies
            t.grad = torch.from_numpy(np.array(g, dtype=dtype))
        ours.append(p)
        theirs.append(t)
    return ours, theirs


def _assert_grads_equal(ours, theirs, rtol, atol):
    for i, (p, t) in enumerate(zip(ours, theirs)):
        if t.grad is None:
            assert p.grad is None, i
            continue
        assert p.grad.dtype == np.dtype(str(t.grad.dtype).removeprefix("torch.")), i
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"grad {i}")


shapes = st.lists(st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=0, max_size=3)),
                  min_size=1, max_size=4)


@given(shapes=shapes, norm_type=st.sampled_from(NORM_TYPES),
       max_norm=st.sampled_from([1e-3, 0.5, 1.0, 3.0, 1e3]), scale=st.sampled_from([0.01, 1, 50]),
       seed=st.integers(0, 2**16))
def test_clip_grad_norm_matches_torch(shapes, norm_type, max_norm, scale, seed):
    rng = np.random.default_rng(seed)
    grads = [None if s is None else np.asarray(scale * rng.standard_normal(s)) for s in shapes]
    for dtype, rtol, atol in (("float64", 1e-12, 1e-12), ("float32", 1e-5, 1e-6)):
        ours, theirs = _pair(grads, dtype)
        total = nn_utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
        assert isinstance(total, dn.Tensor) and total.shape == ()
        assert total.dtype == np.dtype(str(expected.dtype).removeprefix("torch."))
        np.testing.assert_allclose(total.data, expected.numpy(), rtol=rtol, atol=atol)
        _assert_grads_equal(ours, theirs, rtol, atol)


@pytest.mark.parametrize("norm_type", [n for n in NORM_TYPES if float(n) > 0])
def test_clipped_norm_is_at_most_max_norm_and_direction_is_kept(norm_type, rng):
    grads = [rng.standard_normal((3, 4)) * 10, rng.standard_normal(5) * 10]
    ours, _ = _pair(grads)
    before = [p.grad.data.copy() for p in ours]
    total = float(nn_utils.clip_grad_norm_(ours, 1.0, norm_type).data)
    after = float(nn_utils.get_total_norm([p.grad for p in ours], norm_type).data)
    assert total > 1.0 and after == pytest.approx(1.0, rel=1e-5)
    ratio = ours[0].grad.data / before[0]
    np.testing.assert_allclose(ratio, ratio.flat[0])  # one common factor: direction kept
    np.testing.assert_allclose(ours[1].grad.data / before[1], ratio.flat[0])


def test_total_norm_is_the_norm_of_the_concatenation(rng):
    grads = [rng.standard_normal((2, 3)), rng.standard_normal(4), rng.standard_normal((1, 1, 2))]
    flat = np.concatenate([g.ravel() for g in grads])
    tensors = [dn.from_numpy(g) for g in grads]
    for p in (1.0, 2.0, 3.0, math.inf):
        total = nn_utils.get_total_norm(tensors, p)
        np.testing.assert_allclose(total.data, np.linalg.norm(flat, ord=p), rtol=1e-12)


def test_small_gradients_are_left_alone_and_the_grad_arrays_are_scaled_in_place(rng):
    p = dn.zeros(3, requires_grad=True)
    p.grad = dn.from_numpy(np.array([0.1, -0.2, 0.2]))
    alias = p.grad.data
    total = nn_utils.clip_grad_norm_([p], max_norm=1.0)
    np.testing.assert_allclose(total.data, 0.3)
    np.testing.assert_array_equal(p.grad.data, [0.1, -0.2, 0.2])  # factor clamped to 1
    nn_utils.clip_grad_norm_([p], max_norm=0.15)
    assert p.grad.data is alias  # in place, as torch's mul_
    np.testing.assert_allclose(alias, np.array([0.1, -0.2, 0.2]) * 0.15 / (0.3 + 1e-6))


def test_a_single_tensor_and_a_generator_of_parameters_are_accepted(rng):
    model = dn.nn.Linear(3, 2)
    tmodel = torch.nn.Linear(3, 2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    with torch.no_grad():
        tmodel.weight.copy_(torch.from_numpy(model.weight.data))
        tmodel.bias.copy_(torch.from_numpy(model.bias.data))
    (model(dn.from_numpy(x)) ** 2).sum().backward()
    (tmodel(torch.from_numpy(x)) ** 2).sum().backward()
    total = nn_utils.clip_grad_norm_(model.parameters(), 0.1)  # a generator, as in torch
    expected = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 0.1)
    np.testing.assert_allclose(total.data, expected.numpy(), rtol=1e-5)
    _assert_grads_equal(list(model.parameters()), list(tmodel.parameters()), 1e-5, 1e-7)

    single = dn.zeros(2, requires_grad=True)
    single.grad = dn.from_numpy(np.array([3.0, 4.0]))
    assert float(nn_utils.clip_grad_norm_(single, 1.0).data) == 5.0
    np.testing.assert_allclose(single.grad.data, [3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)])


def test_no_gradients_gives_a_zero_norm_and_an_empty_generator_warns():
    p = dn.zeros(3, requires_grad=True)  # .grad is None
    total = nn_utils.clip_grad_norm_([p], 1.0)
    expected = torch.nn.utils.clip_grad_norm_([torch.zeros(3, requires_grad=True)], 1.0)
    assert total.dtype == np.float32 and expected.dtype == torch.float32
    assert float(total.data) == float(expected) == 0.0
    assert p.grad is None
    with pytest.warns(UserWarning, match="empty generator"):
        nn_utils.clip_grad_norm_((q for q in []), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn_utils.clip_grad_norm_([], 1.0)  # an empty list is not a generator: no warning


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_gradients(bad):
    grads = [np.array([1.0, bad]), np.array([2.0])]
    ours, theirs = _pair(grads)
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        nn_utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ours[0].grad.data, grads[0])  # untouched after the error
    # Without error_if_nonfinite, both scale by the non-finite norm.
    total = nn_utils.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_array_equal(total.data, expected.numpy())
    _assert_grads_equal(ours, theirs, 0, 0)


def test_deprecated_clip_grad_norm_warns_and_clips():
    p = dn.zeros(2, requires_grad=True)
    p.grad = dn.from_numpy(np.array([3.0, 4.0]))
    with pytest.warns(FutureWarning, match="deprecated"):
        total = nn_utils.clip_grad_norm(p, 1.0)
    assert float(total.data) == 5.0 and np.linalg.norm(p.grad.data) < 1.0


@given(shapes=shapes, clip_value=st.sampled_from([0.0, 0.1, 1.0, 2.5, 100.0, -1.0]),
       seed=st.integers(0, 2**16))
def test_clip_grad_value_matches_torch(shapes, clip_value, seed):
    assume(any(s is not None for s in shapes))  # torch 2.13 fails on "no gradient at all"
    rng = np.random.default_rng(seed)
    grads = [None if s is None else np.asarray(3 * rng.standard_normal(s)) for s in shapes]
    for dtype in ("float64", "float32"):
        ours, theirs = _pair(grads, dtype)
        assert nn_utils.clip_grad_value_(ours, clip_value) is None
        torch.nn.utils.clip_grad_value_(theirs, clip_value)
        _assert_grads_equal(ours, theirs, 0, 0)


def test_clip_grad_value_without_gradients_does_nothing():
    p = dn.zeros(2, requires_grad=True)
    assert nn_utils.clip_grad_value_([p], 1.0) is None and p.grad is None


def test_clip_grad_value_keeps_nan_and_works_in_place():
    p = dn.zeros(4, requires_grad=True)
    p.grad = dn.from_numpy(np.array([-5.0, 0.3, np.nan, 7.0]))
    alias = p.grad.data
    nn_utils.clip_grad_value_([p], 1.0)
    assert p.grad.data is alias
    np.testing.assert_array_equal(alias, [-1.0, 0.3, np.nan, 1.0])


def test_bad_arguments_raise_type_errors():
    p = dn.zeros(2, requires_grad=True)
    p.grad = dn.ones(2)
    with pytest.raises(TypeError, match="parameters must be a Tensor or an iterable"):
        nn_utils.clip_grad_norm_(3, 1.0)
    with pytest.raises(TypeError, match="must contain Tensors, got ndarray at index 1"):
        nn_utils.clip_grad_norm_([p, np.ones(2)], 1.0)
    with pytest.raises((TypeError, ValueError)):
        nn_utils.clip_grad_norm_([p], "big")
    with pytest.raises(ValueError):
        nn_utils.clip_grad_norm_([p], 1.0, norm_type="fro")
    np.testing.assert_array_equal(p.grad.data, [1.0, 1.0])  # unchanged after each error


def test_training_with_clipping_follows_torch(rng):
    """Three SGD steps with clip_grad_norm_ between backward and step, in both frameworks."""
    model = dn.nn.Sequential(dn.nn.Linear(4, 8), dn.nn.Tanh(), dn.nn.Linear(8, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    tmodel.double()
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    opt = dn.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        x = rng.standard_normal((5, 4)) * 5
        y = rng.integers(0, 3, 5)
        loss = dn.nn.functional.cross_entropy(model(dn.from_numpy(x)), dn.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        nn_utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()

        tmodel.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 0.1)
        with torch.no_grad():  # plain SGD: w <- w - lr * g
            for t in tmodel.parameters():
                t -= 0.5 * t.grad
    for p, t in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)
