"""batch_norm and layer_norm against PyTorch: forward, all gradients, running statistics, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops.norm import batch_norm, layer_norm
from tests.helpers import check_against_torch, check_gradients


def _bn_pair(running_mean: np.ndarray | None, running_var: np.ndarray | None):
    """(ours, theirs) taking (x, weight, bias); each call gets FRESH running buffers built from the
    same arrays in the input's dtype, so the in-place update of one call cannot leak into the next.
    """

    def buffers(make, dtype):
        if running_mean is None:
            return None, None
        return make(running_mean.astype(dtype)), make(running_var.astype(dtype))

    def ours(x, weight=None, bias=None, **kw):
        rm, rv = buffers(dn.tensor, x.dtype)
        return batch_norm(x, rm, rv, weight, bias, **kw)

    def theirs(x, weight=None, bias=None, **kw):
        rm, rv = buffers(torch.tensor, np.float64 if x.dtype == torch.float64 else np.float32)
        return TF.batch_norm(x, rm, rv, weight, bias, **kw)

    return ours, theirs


@st.composite
def bn_case(draw):
    ndim = draw(st.sampled_from([2, 3, 4, 5]))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 4))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(ndim - 2))
    training = draw(st.booleans())
    if training and n * math.prod(spatial) == 1:
        n = 2
    return dict(
        shape=(n, c) + spatial,
        training=training,
        momentum=draw(st.floats(0.0, 1.0)),
        eps=draw(st.sampled_from([1e-5, 1e-3, 0.1, 1.0])),
        affine=draw(st.sampled_from(["both", "weight", "bias", "none"])),
        track=draw(st.booleans()) or not training,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@given(bn_case())
def test_batch_norm_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    c = case["shape"][1]
    x = rng.standard_normal(case["shape"]) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    weight = rng.standard_normal(c) if case["affine"] in ("both", "weight") else None
    bias = rng.standard_normal(c) if case["affine"] in ("both", "bias") else None
    rm, rv = (rng.standard_normal(c), rng.uniform(0.2, 2.0, c)) if case["track"] else (None, None)
    ours, theirs = _bn_pair(rm, rv)
    check_against_torch(ours, theirs, (x, weight, bias), names=["input", "weight", "bias"],
                        training=case["training"], momentum=case["momentum"], eps=case["eps"])


BN_CASES = {
    "bn1d_(N,C)": dict(shape=(8, 3)),
    "bn1d_(N,C,L)": dict(shape=(4, 3, 5)),
    "bn2d": dict(shape=(2, 4, 5, 5)),
    "bn2d_one_sample": dict(shape=(1, 3, 2, 3)),
    "bn3d": dict(shape=(2, 2, 3, 2, 2)),
    "two_values_per_channel": dict(shape=(2, 5)),
}


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", BN_CASES)
def test_batch_norm_named_cases(name, training, rng):
    shape = BN_CASES[name]["shape"]
    c = shape[1]
    ours, theirs = _bn_pair(rng.standard_normal(c), rng.uniform(0.5, 2.0, c))
    check_against_torch(ours, theirs, (rng.standard_normal(shape), rng.standard_normal(c),
                                       rng.standard_normal(c)),
                        names=["input", "weight", "bias"], training=training)


@given(shape=st.sampled_from([(6, 3), (3, 2, 4), (2, 3, 3, 3)]),
       momentum=st.floats(0.0, 1.0), eps=st.sampled_from([1e-5, 1e-2]),
       seed=st.integers(0, 2**31 - 1))
def test_batch_norm_running_statistics_match_torch(shape, momentum, eps, seed):
    """Three training steps update the buffers in place exactly as torch; eval then uses them."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    rm0, rv0 = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    ours_rm, ours_rv = dn.tensor(rm0.copy()), dn.tensor(rv0.copy())
    theirs_rm, theirs_rv = torch.tensor(rm0.copy()), torch.tensor(rv0.copy())
    buffer_mean, buffer_var = ours_rm.data, ours_rv.data
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        batch_norm(dn.tensor(x), ours_rm, ours_rv, training=True, momentum=momentum, eps=eps)
        TF.batch_norm(torch.tensor(x), theirs_rm, theirs_rv, training=True, momentum=momentum,
                      eps=eps)
        np.testing.assert_allclose(ours_rm.data, theirs_rm.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours_rv.data, theirs_rv.numpy(), rtol=1e-12, atol=1e-12)
    assert ours_rm.data is buffer_mean and ours_rv.data is buffer_var  # updated in place
    x = rng.standard_normal(shape)
    out = batch_norm(dn.tensor(x), ours_rm, ours_rv, training=False, eps=eps)
    expected = TF.batch_norm(torch.tensor(x), theirs_rm, theirs_rv, training=False, eps=eps)
    np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_running_update_uses_unbiased_variance():
    x = np.array([[1.0], [3.0]])  # one channel, batch mean 2, biased var 1, unbiased var 2
    rm, rv = dn.zeros(1, dtype=dn.float64), dn.ones(1, dtype=dn.float64)
    batch_norm(dn.tensor(x), rm, rv, training=True, momentum=0.5)
    np.testing.assert_allclose(rm.data, [0.5 * 0 + 0.5 * 2])
    np.testing.assert_allclose(rv.data, [0.5 * 1 + 0.5 * 2])


def test_batch_norm_float32_running_statistics_match_torch(rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    ours_rm, ours_rv = dn.zeros(3), dn.ones(3)
    theirs_rm, theirs_rv = torch.zeros(3), torch.ones(3)
    batch_norm(dn.tensor(x), ours_rm, ours_rv, training=True)
    TF.batch_norm(torch.tensor(x), theirs_rm, theirs_rv, training=True)
    assert ours_rm.dtype == np.float32 and ours_rv.dtype == np.float32
    np.testing.assert_allclose(ours_rm.data, theirs_rm.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours_rv.data, theirs_rv.numpy(), atol=1e-6)


def test_batch_norm_eval_leaves_running_statistics_alone(rng):
    rm, rv = dn.tensor(rng.standard_normal(3)), dn.tensor(rng.uniform(0.5, 1, 3))
    before = rm.data.copy(), rv.data.copy()
    batch_norm(dn.tensor(rng.standard_normal((4, 3))), rm, rv, training=False)
    np.testing.assert_array_equal(rm.data, before[0])
    np.testing.assert_array_equal(rv.data, before[1])


def test_batch_norm_updates_running_statistics_under_no_grad(rng):
    x = rng.standard_normal((4, 3))
    rm, rv = dn.zeros(3, dtype=dn.float64), dn.ones(3, dtype=dn.float64)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    with dn.no_grad():
        batch_norm(dn.tensor(x, requires_grad=True), rm, rv, training=True)
    with torch.no_grad():
        TF.batch_norm(torch.tensor(x), trm, trv, training=True)
    np.testing.assert_allclose(rm.data, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.data, trv.numpy(), rtol=1e-12)


def test_batch_norm_eval_backward_is_a_per_channel_scale(rng):
    x = dn.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    rv = rng.uniform(0.5, 2.0, 2)
    gamma = rng.standard_normal(2)
    out = batch_norm(x, dn.tensor(rng.standard_normal(2)), dn.tensor(rv), dn.tensor(gamma),
                     training=False, eps=1e-3)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    scale = (gamma / np.sqrt(rv + 1e-3))[None, :, None]
    np.testing.assert_allclose(x.grad.data, upstream * scale, rtol=1e-12)


def test_batch_norm_training_gradient_has_zero_mean_and_is_orthogonal_to_x_hat(rng):
    """The two terms the fused formula subtracts: dL/dx sums to 0 and is orthogonal to x_hat
    (the second exactly only as eps -> 0, since with eps mean(x_hat^2) = var / (var + eps))."""
    x = dn.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    out = batch_norm(x, None, None, training=True, eps=1e-13)
    out.backward(rng.standard_normal(out.shape))
    grad = x.grad.data
    x_hat = out.data  # no affine map: the output is x_hat
    np.testing.assert_allclose(grad.sum(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose((grad * x_hat).sum(axis=(0, 2)), 0, atol=1e-9)


def test_batch_norm_gradients_numerically(rng):
    def fn(x, w, b):
        return batch_norm(x, None, None, w, b, training=True, eps=1e-3)

    check_gradients(fn, rng.standard_normal((3, 2, 2)), rng.standard_normal(2),
                    rng.standard_normal(2))


def test_batch_norm_output_is_not_an_alias_of_saved_state(rng):
    """Without weight/bias the output must not be the array backward reads."""
    x_np, upstream = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    x = dn.tensor(x_np, requires_grad=True)
    out = batch_norm(x, None, None, training=True)
    out.data[...] = 0  # an in-place edit of the output
    out.backward(upstream)
    xt = torch.tensor(x_np, requires_grad=True)
    TF.batch_norm(xt, None, None, training=True).backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_empty_batch_keeps_running_statistics(rng):
    rm, rv = dn.zeros(3), dn.ones(3)
    out = batch_norm(dn.zeros(0, 3), rm, rv, training=True)
    assert out.shape == (0, 3)
    np.testing.assert_array_equal(rm.data, 0)
    np.testing.assert_array_equal(rv.data, 1)


# -- errors ----------------------------------------------------------------------------------------


def _x(*shape):
    return dn.tensor(np.random.default_rng(0).standard_normal(shape))


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1)])
def test_batch_norm_one_value_per_channel_in_training(shape):
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3"):
        batch_norm(_x(*shape), dn.zeros(3), dn.ones(3), training=True)
    batch_norm(_x(*shape), dn.zeros(3), dn.ones(3), training=False)  # fine in evaluation


@pytest.mark.parametrize("name", ["running_mean", "running_var", "weight", "bias"])
def test_batch_norm_channel_count_mismatch(name):
    args = dict(running_mean=dn.zeros(3), running_var=dn.ones(3), weight=dn.ones(3),
                bias=dn.zeros(3))
    args[name] = dn.ones(4)
    with pytest.raises(RuntimeError, match=f"{name} should contain 3 elements not 4"):
        batch_norm(_x(4, 3), training=True, **args)


def test_batch_norm_needs_running_statistics_in_eval():
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        batch_norm(_x(4, 3), None, None, training=False)


def test_batch_norm_running_statistics_both_or_neither():
    with pytest.raises(RuntimeError, match="must either both be None or neither be None"):
        batch_norm(_x(4, 3), dn.zeros(3), None, training=True)


def test_batch_norm_rejects_one_dimensional_input():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        batch_norm(_x(3), dn.zeros(3), dn.ones(3), training=True)


def test_batch_norm_momentum_none_is_a_type_error_in_the_functional_form():
    with pytest.raises(TypeError, match="momentum"):
        batch_norm(_x(4, 3), dn.zeros(3), dn.ones(3), training=True, momentum=None)


def test_batch_norm_eps_must_be_positive_in_training():
    with pytest.raises(ValueError, match="eps must be positive during training, but got -1"):
        batch_norm(_x(4, 3), dn.zeros(3), dn.ones(3), training=True, eps=-1)


def test_batch_norm_rejects_integer_input():
    with pytest.raises(TypeError, match="floating point"):
        batch_norm(dn.tensor([[1, 2], [3, 4]]), None, None, training=True)


# -- layer norm ------------------------------------------------------------------------------------


@st.composite
def ln_case(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    k = draw(st.integers(1, ndim))
    return dict(shape=shape, normalized_shape=list(shape[ndim - k:]),
                affine=draw(st.sampled_from(["both", "weight", "bias", "none"])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])), seed=draw(st.integers(0, 2**31 - 1)))


@given(ln_case())
def test_layer_norm_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    ns = case["normalized_shape"]
    x = rng.standard_normal(case["shape"]) * 2 + 0.5
    weight = rng.standard_normal(ns) if case["affine"] in ("both", "weight") else None
    bias = rng.standard_normal(ns) if case["affine"] in ("both", "bias") else None
    check_against_torch(layer_norm, "layer_norm", (x, ns, weight, bias),
                        names=["input", "normalized_shape", "weight", "bias"], eps=case["eps"])


def test_layer_norm_accepts_an_int_shape(rng):
    x = rng.standard_normal((2, 5))
    out = layer_norm(dn.tensor(x), 5)
    np.testing.assert_allclose(out.data, TF.layer_norm(torch.tensor(x), [5]).numpy(), atol=1e-12)


def test_layer_norm_gradients_numerically(rng):
    check_gradients(lambda x, w, b: layer_norm(x, [2, 3], w, b), rng.standard_normal((2, 2, 3)),
                    rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))


def test_layer_norm_errors():
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with "
                                           r"shape \[\*, 4\], but got input of size\[2, 3\]"):
        layer_norm(_x(2, 3), [4])
    with pytest.raises(RuntimeError, match=r"Expected weight to be of same shape as "
                                           r"normalized_shape, but got weight of shape \[4\]"):
        layer_norm(_x(2, 3), [3], dn.ones(4))
    with pytest.raises(RuntimeError, match=r"Expected bias to be of same shape"):
        layer_norm(_x(2, 3), [3], None, dn.ones(4))
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        layer_norm(_x(2, 3), [])
    with pytest.raises(TypeError, match="normalized_shape"):
        layer_norm(_x(2, 3), "3")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_parameter_gradients_without_input_gradient(training, rng):
    """Only weight and bias require grad (a frozen input): their gradients still match torch."""
    x, upstream = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    ours_w, ours_b = dn.tensor(w, requires_grad=True), dn.tensor(b, requires_grad=True)
    theirs_w, theirs_b = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    batch_norm(dn.tensor(x), dn.zeros(3, dtype=dn.float64), dn.ones(3, dtype=dn.float64), ours_w,
               ours_b, training=training).backward(upstream)
    TF.batch_norm(torch.tensor(x), torch.zeros(3, dtype=torch.float64),
                  torch.ones(3, dtype=torch.float64), theirs_w, theirs_b,
                  training=training).backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours_w.grad.data, theirs_w.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_b.grad.data, theirs_b.grad.numpy(), rtol=1e-10, atol=1e-12)
