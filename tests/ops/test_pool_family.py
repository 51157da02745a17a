"""max/avg pooling in 1-D and 3-D, adaptive pooling in 1-D and 3-D, max unpooling and power-average
pooling against PyTorch (forward, gradients, float32, indices, errors)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import pool
from deepnotes.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool3d,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from tests.helpers import check_against_torch, check_gradients

TF = torch.nn.functional
MAX_POOL = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}
AVG_POOL = {1: avg_pool1d, 3: avg_pool3d}
UNPOOL = {1: max_unpool1d, 2: max_unpool2d, 3: max_unpool3d}
LP_POOL = {1: lp_pool1d, 2: lp_pool2d, 3: lp_pool3d}


# -- fixed-window pooling in 1-D and 3-D ------------------------------------------------------

POOL_CASES = {
    "max1d_2":          (max_pool1d, dict(x=(2, 3, 8), kernel_size=2)),
    "max1d_overlap":    (max_pool1d, dict(x=(2, 2, 9), kernel_size=3, stride=2, padding=1,
                                          return_indices=True)),
    "max1d_dilated":    (max_pool1d, dict(x=(1, 2, 11), kernel_size=3, dilation=2, padding=1,
                                          ceil_mode=True, return_indices=True)),
    "max1d_unbatched":  (max_pool1d, dict(x=(3, 7), kernel_size=2, return_indices=True)),
    "max3d_2":          (max_pool3d, dict(x=(2, 2, 4, 6, 6), kernel_size=2)),
    "max3d_c3d":        (max_pool3d, dict(x=(1, 2, 5, 7, 7), kernel_size=(1, 2, 2),
                                          stride=(1, 2, 2), return_indices=True)),
    "max3d_padded":     (max_pool3d, dict(x=(2, 1, 5, 6, 5), kernel_size=3, stride=2, padding=1,
                                          ceil_mode=True, return_indices=True)),
    "max3d_dilated":    (max_pool3d, dict(x=(1, 2, 6, 5, 7), kernel_size=(2, 2, 3),
                                          dilation=(2, 1, 2), stride=1)),
    "max3d_unbatched":  (max_pool3d, dict(x=(2, 4, 4, 4), kernel_size=2, return_indices=True)),
    "avg1d_2":          (avg_pool1d, dict(x=(2, 3, 8), kernel_size=2)),
    "avg1d_pad":        (avg_pool1d, dict(x=(2, 2, 9), kernel_size=3, stride=2, padding=1,
                                          count_include_pad=False)),
    "avg1d_ceil":       (avg_pool1d, dict(x=(1, 2, 8), kernel_size=3, stride=2, padding=1,
                                          ceil_mode=True)),
    "avg1d_unbatched":  (avg_pool1d, dict(x=(3, 7), kernel_size=(3,), stride=(1,))),
    "avg3d_2":          (avg_pool3d, dict(x=(2, 2, 4, 6, 6), kernel_size=2)),
    "avg3d_pad":        (avg_pool3d, dict(x=(1, 2, 5, 6, 5), kernel_size=3, stride=2, padding=1,
                                          count_include_pad=False, ceil_mode=True)),
    "avg3d_divisor":    (avg_pool3d, dict(x=(1, 2, 4, 5, 6), kernel_size=(2, 3, 2),
                                          divisor_override=5)),
    "avg3d_unbatched":  (avg_pool3d, dict(x=(2, 4, 4, 4), kernel_size=(2, 2, 1))),
}


@pytest.mark.parametrize("name", POOL_CASES)
def test_pool_1d_3d_match_torch(name, rng):
    op, kw = POOL_CASES[name]
    kw = dict(kw)
    check_against_torch(op, op.__name__, (rng.standard_normal(kw.pop("x")),), **kw)


@st.composite
def pool_nd_settings(draw, nd, dilation=True):
    """Kernel, stride, padding (at most half the kernel), dilation, ceil_mode, input shape."""
    top = 4 if nd == 1 else 3
    kernel = tuple(draw(st.integers(1, top)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilation else (1,) * nd
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 5 if nd == 1 else 2))
                 for k, d, p in zip(kernel, dil, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if dilation:
        kw["dilation"] = dil
    return shape, kw


def _assume_no_window_inside_padding(op, x, kw):
    """With dilation a window of a tiny input can hold padding only: -inf, and an index PyTorch
    leaves pointing outside the window (see test_pool.py); skip those."""
    expected = getattr(TF, op.__name__)(torch.tensor(x), **kw)
    assume(torch.isfinite(expected).all())


@pytest.mark.parametrize("nd", [1, 3])
@given(data=st.data(), return_indices=st.booleans(), ties=st.booleans())
def test_max_pool_1d_3d_random_settings_match_torch(nd, data, return_indices, ties):
    shape, kw = data.draw(pool_nd_settings(nd))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=shape).astype(np.float64) if ties else rng.standard_normal(shape)
    op = MAX_POOL[nd]
    _assume_no_window_inside_padding(op, x, kw)
    check_against_torch(op, op.__name__, (x,), return_indices=return_indices, **kw)


@pytest.mark.parametrize("nd", [1, 3])
@given(data=st.data(), count_include_pad=st.booleans())
def test_avg_pool_1d_3d_random_settings_match_torch(nd, data, count_include_pad):
    shape, kw = data.draw(pool_nd_settings(nd, dilation=False))
    if nd == 3:
        kw["divisor_override"] = data.draw(st.sampled_from([None, None, 1, 3]))
        # torch's avg_pool3d also wants the unpadded input to hold a window (tested below)
        assume(all(m >= k for m, k in zip(shape[2:], kw["kernel_size"])))
    x = np.random.default_rng(0).standard_normal(shape)
    op = AVG_POOL[nd]
    check_against_torch(op, op.__name__, (x,), count_include_pad=count_include_pad, **kw)


def test_max_pool1d_equals_max_pool2d_on_a_row(rng):
    """A 1-D pool is a 2-D pool of height 1 (same code path, one axis fewer)."""
    x = rng.standard_normal((2, 3, 11))
    y1, i1 = max_pool1d(dn.tensor(x), 3, 2, 1, 2, True, True)
    y2, i2 = max_pool2d(dn.tensor(x[:, :, None]), (1, 3), (1, 2), (0, 1), (1, 2), True, True)
    np.testing.assert_array_equal(y1.numpy(), y2.numpy()[:, :, 0])
    np.testing.assert_array_equal(i1.numpy(), i2.numpy()[:, :, 0])


def test_pool_1d_3d_gradients_numerically(rng):
    check_gradients(max_pool1d, rng.standard_normal((1, 2, 7)), kernel_size=3, stride=2,
                    padding=1)
    check_gradients(avg_pool3d, rng.standard_normal((1, 1, 4, 3, 4)), kernel_size=2, stride=1,
                    padding=1, ceil_mode=True, count_include_pad=False)


# -- adaptive pooling in 1-D and 3-D ----------------------------------------------------------

@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 12)),
       out=st.integers(1, 13))
def test_adaptive_pools_1d_match_torch(shape, out):
    x = np.random.default_rng(5).standard_normal(shape)
    check_against_torch(adaptive_avg_pool1d, "adaptive_avg_pool1d", (x,), output_size=out)
    check_against_torch(adaptive_max_pool1d, "adaptive_max_pool1d", (x,), output_size=(out,),
                        return_indices=True)


@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5),
                       st.integers(1, 5)),
       out=st.tuples(*[st.one_of(st.none(), st.integers(1, 6))] * 3))
def test_adaptive_pools_3d_match_torch(shape, out):
    x = np.random.default_rng(6).standard_normal(shape)
    check_against_torch(adaptive_avg_pool3d, "adaptive_avg_pool3d", (x,), output_size=out)
    check_against_torch(adaptive_max_pool3d, "adaptive_max_pool3d", (x,), output_size=out,
                        return_indices=True)


@pytest.mark.parametrize("output_size", [1, 2, (1, 1, 1), (3, 1, 2)])
def test_adaptive_pools_3d_common_sizes_and_unbatched(output_size, rng):
    x = rng.standard_normal((2, 3, 4, 5, 6))
    check_against_torch(adaptive_avg_pool3d, "adaptive_avg_pool3d", (x,), output_size=output_size)
    check_against_torch(adaptive_max_pool3d, "adaptive_max_pool3d", (x[0],),
                        output_size=output_size)
    check_against_torch(adaptive_avg_pool1d, "adaptive_avg_pool1d", (x[0, :, 0],),
                        output_size=2)


def test_adaptive_pools_equal_fixed_pools_when_sizes_divide(rng):
    """When the output size divides the input, the adaptive bins are plain k = S/S_out windows."""
    x = dn.tensor(rng.standard_normal((2, 3, 4, 6, 8)))
    np.testing.assert_allclose(adaptive_avg_pool3d(x, (2, 3, 2)).numpy(),
                               avg_pool3d(x, (2, 2, 4)).numpy(), atol=1e-12)
    np.testing.assert_array_equal(adaptive_max_pool3d(x, (2, 3, 2)).numpy(),
                                  max_pool3d(x, (2, 2, 4)).numpy())


# -- max unpooling ----------------------------------------------------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@given(data=st.data())
def test_max_unpool_inverts_torch_max_pool_like_torch(nd, data):
    shape, kw = data.draw(pool_nd_settings(nd, dilation=False))
    kw.pop("ceil_mode")
    x = np.random.default_rng(7).standard_normal(shape)
    pooled, indices = getattr(TF, f"max_pool{nd}d")(torch.tensor(x), return_indices=True, **kw)
    default = [(m - 1) * s + k - 2 * p for m, k, s, p in zip(pooled.shape[2:], kw["kernel_size"],
                                                             kw["stride"], kw["padding"])]
    assume(min(default) > 0)          # an empty default output: torch's backward fails (below)
    output_size = data.draw(st.sampled_from([None, shape[2:], shape]))
    op = UNPOOL[nd]
    if output_size is None and indices.max() >= math.prod(default):
        # The default size is smaller than the pooled input: some arg-max falls outside it.
        with pytest.raises(RuntimeError, match="Found an invalid max index"):
            op(dn.tensor(pooled.numpy()), dn.tensor(indices.numpy()), **kw)
        with pytest.raises(RuntimeError, match="Found an invalid max index"):
            getattr(TF, op.__name__)(pooled, indices, **kw)
        return
    check_against_torch(op, op.__name__, (pooled.numpy(), indices.numpy()),
                        output_size=output_size, **kw)


def test_max_unpool_to_an_empty_output_like_torch():
    """(1 - 1)*2 + 2 - 2*1 = 0 columns: torch returns an empty tensor without checking the
    indices; so do we (and our gradient is zero, where torch's backward raises)."""
    x = dn.tensor(np.ones((1, 1, 1)), requires_grad=True)
    y = max_unpool1d(x, dn.tensor(np.zeros((1, 1, 1), np.int64)), 2, padding=1)
    expected = TF.max_unpool1d(torch.ones(1, 1, 1, dtype=torch.float64),
                               torch.zeros(1, 1, 1, dtype=torch.long), 2, padding=1)
    assert y.shape == tuple(expected.shape) == (1, 1, 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 1)))


def test_max_unpool2d_round_trip_with_our_max_pool2d(rng):
    """unpool(pool(x)) keeps each window's maximum in place and zeroes the rest."""
    x = rng.standard_normal((2, 3, 7, 6))
    y, indices = max_pool2d(dn.tensor(x), 2, return_indices=True)
    restored = max_unpool2d(y, indices, 2, output_size=x.shape[-2:]).numpy()
    expected = TF.max_unpool2d(*TF.max_pool2d(torch.tensor(x), 2, return_indices=True), 2,
                               output_size=x.shape[-2:]).numpy()
    np.testing.assert_array_equal(restored, expected)
    kept = restored != 0
    np.testing.assert_array_equal(restored[kept], x[kept])
    assert kept.sum() == y.numel()


def test_max_unpool_gradients_numerically(rng):
    x = rng.standard_normal((1, 2, 3, 3))
    indices = dn.tensor(np.array([[[[0, 3, 5], [14, 9, 11], [31, 27, 35]]] * 2]))
    check_gradients(lambda t: max_unpool2d(t, indices, 2), x)


# -- power-average pooling --------------------------------------------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@given(data=st.data(), norm_type=st.sampled_from([1, 2, 3, 1.5, float("inf")]))
def test_lp_pool_matches_torch(nd, data, norm_type):
    shape, kw = data.draw(pool_nd_settings(nd, dilation=False))
    kw.pop("padding")                                   # lp_pool has no padding
    if data.draw(st.booleans()):
        kw.pop("stride")
    assume(all(s >= k for s, k in zip(shape[2:], kw["kernel_size"])))
    if nd == 1:
        kw["kernel_size"] = kw["kernel_size"][0]       # torch's lp_pool1d multiplies by it
    x = np.random.default_rng(8).standard_normal(shape)
    if norm_type not in (2, float("inf")):
        x = np.abs(x) + 0.1                    # x^p and its 1/p-th root stay real and away from 0
    op = LP_POOL[nd]
    check_against_torch(op, op.__name__, (x,), norm_type=norm_type, **kw)


def test_lp_pool_special_cases(rng):
    """p = 1 on positive inputs is sum pooling; p = 2 is the window's Euclidean norm."""
    x = dn.tensor(np.abs(rng.standard_normal((2, 3, 6, 6))))
    np.testing.assert_allclose(lp_pool2d(x, 1, 2).numpy(),
                               pool.avg_pool2d(x, 2).numpy() * 4, atol=1e-12)
    windows = x.numpy().reshape(2, 3, 3, 2, 3, 2)
    np.testing.assert_allclose(lp_pool2d(x, 2, 2).numpy(),
                               np.sqrt((windows ** 2).sum(axis=(3, 5))), atol=1e-12)


# -- errors -----------------------------------------------------------------------------------

BAD_POOL_FAMILY_INPUTS = {
    "max1d_rank": (max_pool1d, (7,), dict(kernel_size=2),
                   "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch "
                   "size for input, but got:[7]"),
    "max1d_pad": (max_pool1d, (2, 3, 7), dict(kernel_size=3, padding=2),
                  "pad should be at most half of effective kernel size, but got pad=2, "
                  "kernel_size=3 and dilation=1"),
    "max1d_too_small": (max_pool1d, (2, 3, 7), dict(kernel_size=3, dilation=4),
                        "Given input size: (3x7). Calculated output size: (3x0). Output size is "
                        "too small"),
    "max1d_kernel_len": (max_pool1d, (2, 3, 7), dict(kernel_size=(2, 2)),
                         "max_pool1d: kernel_size must either be a single int, or a tuple of one "
                         "ints"),
    "max1d_stride": (max_pool1d, (2, 3, 7), dict(kernel_size=2, stride=0),
                     "stride should be greater than zero, but got dW: 0"),
    "max3d_rank": (max_pool3d, (3, 5, 6), dict(kernel_size=2),
                   "non-empty 4D or 5D (batch mode) tensor expected for input"),
    "max3d_pad": (max_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=3, padding=2),
                  "pad should be at most half of effective kernel size"),
    "max3d_pad_vs_kernel": (max_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=3, padding=2,
                                                              dilation=2),
                            "pad should be smaller than or equal to half of kernel size"),
    "max3d_too_small": (max_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=6),
                        "Given input size: (3x5x6x7). Calculated output size: (3x0x1x1). Output "
                        "size is too small"),
    "max3d_stride_len": (max_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=3, stride=(1, 2)),
                         "max_pool3d: stride must either be omitted, a single int, or a tuple of "
                         "three ints"),
    "max3d_dilation": (max_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=2, dilation=0),
                       "dilation should be greater than zero, but got dilationT: 0 dilationH: 0 "
                       "dilationW: 0"),
    "avg1d_pad": (avg_pool1d, (2, 3, 7), dict(kernel_size=3, padding=2),
                  "pad should be at most half of effective kernel size"),
    "avg1d_too_small": (avg_pool1d, (2, 3, 7), dict(kernel_size=8),
                        "Output size is too small"),
    "avg3d_divisor": (avg_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=2, divisor_override=0),
                      "divisor must be not zero"),
    "avg3d_small_input": (avg_pool3d, (1, 1, 3, 1, 3), dict(kernel_size=(1, 2, 1), stride=1,
                                                           padding=(0, 1, 0)),
                          "input image (T: 3 H: 1 W: 3) smaller than kernel size (kT: 1 kH: 2 "
                          "kW: 1)"),
    "avg3d_negative_pad": (avg_pool3d, (2, 3, 5, 6, 7), dict(kernel_size=2, padding=-1),
                           "pad must be non-negative, but got pad: -1"),
    "adaptive1d_rank": (adaptive_avg_pool1d, (7,), dict(output_size=2),
                        "Expected 2 to 3 dimensions, but got 1-dimensional tensor for argument "
                        "#1 'self' (while checking arguments for adaptive_avg_pool1d)"),
    "adaptive1d_size": (adaptive_max_pool1d, (2, 3, 7), dict(output_size=(2, 2)),
                        "adaptive_max_pool1d() argument 'output_size' should contain one int "
                        "(got 2)"),
    "adaptive1d_empty": (adaptive_max_pool1d, (2, 3, 0), dict(output_size=2),
                         "adaptive_max_pool1d(): Expected input to have non-zero size for "
                         "non-batch dimensions, but input has sizes [2, 3, 0] with dimension 2 "
                         "being empty"),
    "adaptive3d_rank": (adaptive_avg_pool3d, (5, 6), dict(output_size=2),
                        "adaptive_avg_pool3d(): Expected 4D or 5D tensor, but got [5, 6]"),
    "adaptive3d_size": (adaptive_avg_pool3d, (2, 3, 4, 4, 4), dict(output_size=(2, 2)),
                        "adaptive_avg_pool3d: output_size must be 3"),
    "adaptive3d_negative": (adaptive_avg_pool3d, (2, 3, 4, 4, 4), dict(output_size=(2, -1, 2)),
                            "adaptive_avg_pool3d: elements of output_size must be greater than "
                            "or equal to 0 but received {2, -1, 2}"),
    "adaptive3d_max_rank": (adaptive_max_pool3d, (5, 6), dict(output_size=2),
                            "adaptive_max_pool3d(): Expected 4D or 5D tensor, but got: [5, 6]"),
    "lp2d_too_small": (lp_pool2d, (2, 3, 5, 5), dict(norm_type=2, kernel_size=6),
                       "Given input size: (3x5x5). Calculated output size: (3x0x0). Output size "
                       "is too small"),
}


@pytest.mark.parametrize("name", BAD_POOL_FAMILY_INPUTS)
def test_pool_family_rejects_bad_input_like_torch(name, rng):
    op, shape, kw, message = BAD_POOL_FAMILY_INPUTS[name]
    x = rng.standard_normal(shape)
    with pytest.raises(RuntimeError) as ours:
        op(dn.tensor(x), **kw)
    assert message in str(ours.value)
    with pytest.raises(RuntimeError):                  # torch rejects the same input
        getattr(TF, op.__name__)(torch.tensor(x), **kw)


def _pooled(rng):
    x = torch.tensor(rng.standard_normal((2, 3, 4, 4)))
    return TF.max_pool2d(x, 2, return_indices=True)


BAD_UNPOOL_INPUTS = {
    "index_too_big": (lambda y, i: (y, i.fill_(100), 2), {}, RuntimeError,
                      "Found an invalid max index: 100 (output volumes are of size 4x4)"),
    "negative_index": (lambda y, i: (y, i.fill_(-1), 2), {}, RuntimeError,
                       "Found an invalid max index: -1 (output volumes are of size 4x4)"),
    "index_shape": (lambda y, i: (y, i[..., :1], 2), {}, RuntimeError,
                    "Expected shape of indices to be same as that of the input tensor "
                    "([2, 3, 2, 2]) but got indices tensor with shape: [2, 3, 2, 1]"),
    "index_dtype": (lambda y, i: (y, i.double(), 2), {}, RuntimeError,
                    "elements in indices should be type int64"),
    "rank": (lambda y, i: (y[0, 0], i[0, 0], 2), {}, RuntimeError,
             "Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with 2 "
             "dimensions."),
    "output_size_range": (lambda y, i: (y, i, 2), dict(output_size=(6, 6)), ValueError,
                          'invalid output_size "(6, 6)" (dim 0 must be between 2 and 6)'),
    "output_size_length": (lambda y, i: (y, i, 2), dict(output_size=(5,)), ValueError,
                           "output_size should be a sequence containing 2 or 4 elements, but it "
                           "has a length of '1'"),
}


@pytest.mark.parametrize("name", BAD_UNPOOL_INPUTS)
def test_max_unpool2d_rejects_bad_input_like_torch(name, rng):
    build, kw, error, message = BAD_UNPOOL_INPUTS[name]
    y, indices, kernel = build(*_pooled(rng))
    with pytest.raises(error) as ours:
        max_unpool2d(dn.tensor(y.numpy()), dn.tensor(indices.numpy()), kernel, **kw)
    assert message in str(ours.value)
    with pytest.raises(error):
        TF.max_unpool2d(y, indices, kernel, **kw)


def test_lp_pool_rejects_zero_norm_and_padding_argument(rng):
    x = dn.tensor(rng.standard_normal((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="norm_type must be non-zero"):
        lp_pool2d(x, 0, 2)
    with pytest.raises(TypeError):                     # no padding argument, as in torch
        lp_pool2d(x, 2, 2, padding=1)
    y = lp_pool1d(dn.tensor(-np.ones((1, 1, 4))), float("-inf"), 2)   # min of |x|
    np.testing.assert_array_equal(y.numpy(), np.ones((1, 1, 2)))
    np.testing.assert_array_equal(
        TF.lp_pool1d(-torch.ones((1, 1, 4), dtype=torch.float64), float("-inf"), 2).numpy(),
        y.numpy())


def test_adaptive_max_pool2d_still_matches_torch_after_generalisation(rng):
    x = rng.standard_normal((2, 3, 7, 5))
    check_against_torch(adaptive_max_pool2d, "adaptive_max_pool2d", (x,), output_size=(3, 4),
                        return_indices=True)
