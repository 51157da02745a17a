"""group_norm, instance_norm, local_response_norm, _weight_norm and mean_only_batch_norm against
PyTorch: forward and every gradient in float64, float32 forward, running statistics, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import norm as N
from tests.helpers import check_against_torch, check_gradients

seeds = st.integers(0, 2**31 - 1)


def _affine(rng: np.random.Generator, c: int, which: str):
    weight = rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c) if which in ("both", "w") else None
    bias = rng.standard_normal(c) if which in ("both", "b") else None
    return weight, bias


# -- group norm -----------------------------------------------------------------------------------


@st.composite
def gn_case(draw):
    groups = draw(st.integers(1, 4))
    c = groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(0, 3))))
    if c // groups * math.prod(spatial) == 1:  # one value per group: test_group_norm_one_value
        spatial += (2,)
    return dict(shape=(draw(st.integers(1, 3)), c) + spatial, groups=groups,
                affine=draw(st.sampled_from(["both", "w", "b", "none"])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])), seed=draw(seeds))


def _torch_group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """torch's group_norm; a bias without a weight gets an explicit constant weight of ones, the
    same function, because torch 2.13's backward fails ("tensor does not have a device") when
    the bias requires grad and the weight is None."""
    if weight is None and bias is not None:
        weight = torch.ones(x.shape[1], dtype=x.dtype)
    return TF.group_norm(x, num_groups, weight, bias, eps)


@given(gn_case())
def test_group_norm_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    weight, bias = _affine(rng, case["shape"][1], case["affine"])
    check_against_torch(N.group_norm, _torch_group_norm, (x, case["groups"], weight, bias),
                        names=["input", "num_groups", "weight", "bias"], eps=case["eps"])


@pytest.mark.parametrize("shape,groups", [((2, 6, 4, 4), 1), ((2, 6, 4, 4), 6), ((3, 4), 2),
                                          ((0, 4, 3), 2)])
def test_group_norm_named_cases(shape, groups, rng):
    """G = 1 (layer norm over C, H, W), G = C (instance norm), no spatial axes, an empty batch."""
    weight, bias = _affine(rng, shape[1], "both")
    check_against_torch(N.group_norm, "group_norm", (rng.standard_normal(shape), groups, weight,
                                                     bias), names=["input", "G", "weight", "bias"])


def test_group_norm_one_value_per_group(rng):
    """A group of one value is its own mean: x_hat = 0 exactly, y = beta, and no gradient reaches
    x. (PyTorch's float32 kernel returns rounding noise of ~1e-5 here, and its backward fails for
    some of these shapes, so the comparison is in float64 forward only.)"""
    x = dn.tensor(rng.standard_normal((3, 4, 1)), requires_grad=True)
    bias = rng.standard_normal(4)
    out = N.group_norm(x, 4, dn.tensor(rng.standard_normal(4)), dn.tensor(bias))
    np.testing.assert_array_equal(out.data, np.broadcast_to(bias[:, None], (3, 4, 1)))
    expected = TF.group_norm(torch.tensor(x.data), 4, None, torch.tensor(bias))
    np.testing.assert_allclose(out.data, expected.numpy(), atol=1e-10)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0)


def test_group_norm_with_one_group_is_layer_norm_over_all_but_the_batch(rng):
    x = rng.standard_normal((3, 4, 5))
    ours = N.group_norm(dn.tensor(x), 1).data
    np.testing.assert_allclose(ours, TF.layer_norm(torch.tensor(x), [4, 5]).numpy(), atol=1e-12)


def test_group_norm_gradients_numerically(rng):
    check_gradients(lambda x, w, b: N.group_norm(x, 2, w, b, eps=1e-3),
                    rng.standard_normal((2, 4, 3)), rng.standard_normal(4), rng.standard_normal(4))


def test_group_norm_is_one_node(rng):
    x, w = dn.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True), dn.ones(4)
    y = N.group_norm(x, 2, w)
    assert isinstance(y.grad_fn, N.GroupNormFn) and y.grad_fn.inputs[0] is x


def _x(*shape):
    return dn.tensor(np.random.default_rng(0).standard_normal(shape))


def test_group_norm_errors():
    with pytest.raises(RuntimeError, match=r"Expected number of channels in input to be divisible "
                                           r"by num_groups, but got input of shape \[2, 5, 3\] "
                                           r"and num_groups=2"):
        N.group_norm(_x(2, 5, 3), 2)
    with pytest.raises(RuntimeError, match=r"Expected weight to be a vector of size equal to the "
                                           r"number of channels in input, but got weight of shape"
                                           r" \[3\] and input of shape \[2, 4, 3\]"):
        N.group_norm(_x(2, 4, 3), 2, dn.ones(3))
    with pytest.raises(RuntimeError, match="Expected bias to be a vector"):
        N.group_norm(_x(2, 4, 3), 2, None, dn.ones(5))
    with pytest.raises(RuntimeError, match="Expected at least 2 dimensions for input tensor but "
                                           "received 1"):
        N.group_norm(_x(4), 2)
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \[1, 1\]"):
        N.group_norm(_x(1, 1), 1)                                # PyTorch's check, N * C/G * L = 1
    with pytest.raises(ValueError, match="num_groups must be a positive integer"):
        N.group_norm(_x(2, 4), 0)
    with pytest.raises(TypeError, match="floating point"):
        N.group_norm(dn.tensor([[1, 2]]), 1)


# -- instance norm --------------------------------------------------------------------------------


def _in_pair(running_mean, running_var):
    """(ours, theirs) taking (x, weight, bias), each call with FRESH running buffers."""

    def buffers(make, dtype):
        if running_mean is None:
            return None, None
        return make(running_mean.astype(dtype)), make(running_var.astype(dtype))

    def ours(x, weight=None, bias=None, **kw):
        return N.instance_norm(x, *buffers(dn.tensor, x.dtype), weight, bias, **kw)

    def theirs(x, weight=None, bias=None, **kw):
        dtype = np.float64 if x.dtype == torch.float64 else np.float32
        return TF.instance_norm(x, *buffers(torch.tensor, dtype), weight, bias, **kw)

    return ours, theirs


@st.composite
def in_case(draw):
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    if math.prod(spatial) == 1:
        spatial = spatial[:-1] + (2,)
    use_input_stats = draw(st.booleans())
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 4))) + spatial,
                use_input_stats=use_input_stats,
                running=draw(st.booleans()) or not use_input_stats,
                affine=draw(st.sampled_from(["both", "w", "b", "none"])),
                momentum=draw(st.floats(0.0, 1.0)), eps=draw(st.sampled_from([1e-5, 1e-2])),
                seed=draw(seeds))


@given(in_case())
def test_instance_norm_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    c = case["shape"][1]
    x = rng.standard_normal(case["shape"]) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    weight, bias = _affine(rng, c, case["affine"])
    rm, rv = (rng.standard_normal(c), rng.uniform(0.2, 2, c)) if case["running"] else (None, None)
    ours, theirs = _in_pair(rm, rv)
    check_against_torch(ours, theirs, (x, weight, bias), names=["input", "weight", "bias"],
                        use_input_stats=case["use_input_stats"], momentum=case["momentum"],
                        eps=case["eps"])


@given(shape=st.sampled_from([(2, 3, 4), (3, 2, 2, 3), (1, 3, 5), (2, 2, 2, 2, 2)]),
       momentum=st.floats(0.0, 1.0), seed=seeds)
def test_instance_norm_running_statistics_match_torch(shape, momentum, seed):
    """The update is the batch average of the per-instance mean and unbiased variance, in place."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    ours = dn.tensor(rng.standard_normal(c)), dn.tensor(rng.uniform(0.5, 2, c))
    theirs = torch.tensor(ours[0].data.copy()), torch.tensor(ours[1].data.copy())
    arrays = ours[0].data, ours[1].data
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        N.instance_norm(dn.tensor(x), *ours, momentum=momentum)
        TF.instance_norm(torch.tensor(x), *theirs, momentum=momentum)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-12, atol=1e-14)
    assert ours[0].data is arrays[0] and ours[1].data is arrays[1]      # updated in place


def test_instance_norm_running_update_formula(rng):
    x = rng.standard_normal((3, 2, 5)) * 2 + 1
    rm0, rv0 = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    rm, rv = dn.tensor(rm0.copy()), dn.tensor(rv0.copy())
    N.instance_norm(dn.tensor(x), rm, rv, momentum=0.3)
    expected_mean = 0.7 * rm0 + 0.3 * x.mean(axis=2).mean(axis=0)           # batch average of
    expected_var = 0.7 * rv0 + 0.3 * x.var(axis=2, ddof=1).mean(axis=0)     # per-instance stats
    np.testing.assert_allclose(rm.data, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(rv.data, expected_var, rtol=1e-12)


def test_instance_norm_is_group_norm_with_one_channel_per_group(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(N.instance_norm(dn.tensor(x)).data,
                               N.group_norm(dn.tensor(x), 3).data, rtol=1e-15, atol=0)


def test_instance_norm_gradients_numerically(rng):
    check_gradients(lambda x, w, b: N.instance_norm(x, weight=w, bias=b, eps=1e-3),
                    rng.standard_normal((2, 3, 4)), rng.standard_normal(3), rng.standard_normal(3))


def test_instance_norm_errors():
    for shape in [(2, 3, 1), (2, 3), (3,)]:
        with pytest.raises(ValueError, match="Expected more than 1 spatial element when training, "
                                             "got input size"):
            N.instance_norm(_x(*shape))
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        N.instance_norm(_x(2, 3, 4), dn.zeros(4), dn.ones(4))
    with pytest.raises(RuntimeError, match="weight should contain 3 elements not 4"):
        N.instance_norm(_x(2, 3, 4), None, None, dn.ones(4))
    with pytest.raises(RuntimeError, match="Expected running_mean and running_var to be defined "
                                           "when use_input_stats is false"):
        N.instance_norm(_x(2, 3, 4), use_input_stats=False)
    with pytest.raises(ValueError, match="must either both be None or neither be None"):
        N.instance_norm(_x(2, 3, 4), dn.zeros(3), None)
    with pytest.raises(TypeError, match="momentum"):
        N.instance_norm(_x(2, 3, 4), dn.zeros(3), dn.ones(3), momentum=None)


# -- local response norm --------------------------------------------------------------------------


@given(ndim=st.integers(3, 5), n=st.integers(1, 2), c=st.integers(1, 7), size=st.integers(1, 8),
       alpha=st.sampled_from([1e-4, 0.1, 1.0, 3.0]), beta=st.sampled_from([0.5, 0.75, 2.0]),
       k=st.sampled_from([0.5, 1.0, 2.0]), seed=seeds)
def test_local_response_norm_matches_torch(ndim, n, c, size, alpha, beta, k, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c) + tuple(rng.integers(1, 4, ndim - 2))
    x = rng.standard_normal(shape) * 2
    check_against_torch(N.local_response_norm, "local_response_norm", (x,), size=size,
                        alpha=alpha, beta=beta, k=k)


def test_local_response_norm_matches_its_definition_with_loops(rng):
    """y_c = x_c / (k + alpha/size * sum of x_j^2 over j = c - size//2 ... c + (size-1)//2)^beta."""
    x = rng.standard_normal((2, 6, 3))
    size, alpha, beta, k = 4, 0.5, 0.75, 2.0
    expected = np.empty_like(x)
    for c in range(6):
        window = range(max(c - size // 2, 0), min(c + (size - 1) // 2, 5) + 1)
        d = k + alpha / size * sum(x[:, j] ** 2 for j in window)
        expected[:, c] = x[:, c] / d**beta
    out = N.local_response_norm(dn.tensor(x), size, alpha, beta, k)
    np.testing.assert_allclose(out.data, expected, rtol=1e-13)


def test_local_response_norm_gradients_numerically(rng):
    check_gradients(lambda x: N.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.0),
                    rng.standard_normal((2, 5, 2)))


def test_local_response_norm_errors():
    with pytest.raises(ValueError, match=r"Expected 3D or higher dimensionality input \(got 2 "
                                         r"dimensions\)"):
        N.local_response_norm(_x(2, 4), 2)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        N.local_response_norm(_x(2, 4, 3), 0)


# -- weight norm ----------------------------------------------------------------------------------


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(), seed=seeds)
def test_weight_norm_matches_torch(shape, data, seed):
    rng = np.random.default_rng(seed)
    dim = data.draw(st.sampled_from([-1] + list(range(-len(shape), len(shape)))))
    v = rng.standard_normal(shape)
    g = np.asarray(torch.norm_except_dim(torch.tensor(v), 2, dim).numpy() * rng.uniform(0.5, 2))
    check_against_torch(N._weight_norm, torch._weight_norm, (v, g, dim), names=["v", "g", "dim"])


def test_weight_norm_direction_and_length(rng):
    """Each row of w has length g and the direction of v; the gradient reaching v is orthogonal
    to v (a step along it cannot change ||v||)."""
    v = dn.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    g = dn.tensor(np.array([[2.0], [0.5], [3.0]]), requires_grad=True)
    w = N._weight_norm(v, g, 0)
    np.testing.assert_allclose(np.linalg.norm(w.data, axis=1), [2.0, 0.5, 3.0], rtol=1e-14)
    cosine = (w.data * v.data).sum(1) / np.linalg.norm(w.data, axis=1) / np.linalg.norm(v.data,
                                                                                        axis=1)
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-14)
    w.backward(rng.standard_normal((3, 5)))
    np.testing.assert_allclose((v.grad.data * v.data).sum(1), 0, atol=1e-12)


def test_weight_norm_gradients_numerically(rng):
    check_gradients(lambda v, g: N._weight_norm(v, g, 1), rng.standard_normal((2, 3, 2)),
                    rng.uniform(0.5, 2, (1, 3, 1)))


def test_weight_norm_errors():
    with pytest.raises(IndexError, match="Dimension out of range"):
        N._weight_norm(_x(2, 3), _x(2, 1), 2)
    with pytest.raises(RuntimeError, match="expected g of shape"):
        N._weight_norm(_x(2, 3), _x(3, 1), 0)


# -- mean-only batch norm (not in PyTorch: torch composites and numerical gradients) --------------


def _torch_mean_only(x, running_mean=None, bias=None, training=False, momentum=0.1):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(dim=axes, keepdim=True) if training else running_mean.reshape(shape)
    y = x - mean
    return y if bias is None else y + bias.reshape(shape)


@given(ndim=st.integers(2, 5), training=st.booleans(), with_bias=st.booleans(), seed=seeds)
def test_mean_only_batch_norm_matches_a_torch_composite(ndim, training, with_bias, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 4, ndim))
    c = shape[1]
    rm = rng.standard_normal(c)

    def ours(x, bias=None, **kw):
        return N.mean_only_batch_norm(x, dn.tensor(rm.astype(x.dtype)), bias, **kw)

    def theirs(x, bias=None, **kw):
        dtype = np.float64 if x.dtype == torch.float64 else np.float32
        return _torch_mean_only(x, torch.tensor(rm.astype(dtype)), bias, **kw)

    bias = rng.standard_normal(c) if with_bias else None
    check_against_torch(ours, theirs, (rng.standard_normal(shape) + 3, bias),
                        names=["input", "bias"], training=training)


@pytest.mark.parametrize("training", [True, False])
def test_mean_only_batch_norm_gradients_numerically(training, rng):
    rm = dn.tensor(rng.standard_normal(3))
    check_gradients(lambda x, b: N.mean_only_batch_norm(x, rm, b, training=training),
                    rng.standard_normal((4, 3, 2)), rng.standard_normal(3))


def test_mean_only_batch_norm_running_mean_and_output_statistics(rng):
    rm = dn.tensor(np.zeros(3))
    buffer = rm.data
    x = rng.standard_normal((8, 3, 4, 4)) * 3 + np.array([1.0, -2.0, 5.0])[:, None, None]
    out = N.mean_only_batch_norm(dn.tensor(x), rm, dn.tensor([0.5, 0.0, -1.0]), training=True,
                                 momentum=0.25)
    np.testing.assert_allclose(out.data.mean(axis=(0, 2, 3)), [0.5, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(out.data.std(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rm.data, 0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    assert rm.data is buffer and rm._version == 1


def test_mean_only_batch_norm_is_one_node_and_errors(rng):
    x = dn.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = N.mean_only_batch_norm(x, None, training=True)
    assert isinstance(y.grad_fn, N.MeanOnlyBatchNormFn)
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        N.mean_only_batch_norm(x, None, training=False)
    with pytest.raises(RuntimeError, match="bias should contain 3 elements not 2"):
        N.mean_only_batch_norm(x, None, dn.ones(2), training=True)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        N.mean_only_batch_norm(dn.ones(3), None, training=True)
