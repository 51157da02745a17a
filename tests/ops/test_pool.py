"""max/avg/adaptive pooling against PyTorch and against the naive loops in ops/reference.py."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import reference
from deepnotes.ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from tests.helpers import check_against_torch, check_gradients

MAX_POOL_CASES = {
    "lenet_2x2":      dict(x=(2, 3, 8, 8), kernel_size=2),
    "odd_size_floor": dict(x=(2, 2, 7, 7), kernel_size=2),
    "overlapping":    dict(x=(1, 2, 9, 9), kernel_size=3, stride=2),
    "padded":         dict(x=(2, 2, 7, 6), kernel_size=3, stride=2, padding=1),
    "ceil_mode":      dict(x=(1, 2, 7, 7), kernel_size=2, ceil_mode=True),
    "ceil_mode_pad":  dict(x=(1, 2, 6, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    "dilated":        dict(x=(1, 2, 9, 8), kernel_size=3, stride=1, padding=1, dilation=2),
    "asymmetric":     dict(x=(2, 1, 6, 9), kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
    "indices":        dict(x=(2, 2, 7, 7), kernel_size=3, stride=2, padding=1,
                           return_indices=True),
    "unbatched":      dict(x=(3, 6, 6), kernel_size=2, return_indices=True),
}


@pytest.mark.parametrize("name", MAX_POOL_CASES)
def test_max_pool2d_matches_torch(name, rng):
    kw = dict(MAX_POOL_CASES[name])
    check_against_torch(max_pool2d, "max_pool2d", (rng.standard_normal(kw.pop("x")),), **kw)


AVG_POOL_CASES = {
    "2x2":              dict(x=(2, 3, 8, 8), kernel_size=2),
    "overlapping":      dict(x=(1, 2, 9, 9), kernel_size=3, stride=2),
    "padded":           dict(x=(2, 2, 7, 6), kernel_size=3, stride=2, padding=1),
    "exclude_pad":      dict(x=(2, 2, 7, 6), kernel_size=3, stride=2, padding=1,
                             count_include_pad=False),
    "ceil_mode":        dict(x=(1, 2, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    "ceil_exclude_pad": dict(x=(1, 2, 6, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True,
                             count_include_pad=False),
    "divisor":          dict(x=(2, 2, 6, 6), kernel_size=(2, 3), padding=(1, 1),
                             divisor_override=4),
    "unbatched":        dict(x=(3, 6, 6), kernel_size=2),
}


@pytest.mark.parametrize("name", AVG_POOL_CASES)
def test_avg_pool2d_matches_torch(name, rng):
    kw = dict(AVG_POOL_CASES[name])
    check_against_torch(avg_pool2d, "avg_pool2d", (rng.standard_normal(kw.pop("x")),), **kw)


@st.composite
def pool_settings(draw, dilation=True):
    """Kernel, stride, padding (at most half the kernel), dilation, ceil_mode, input shape."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, e - 2 * p) + draw(st.integers(0, 5)) for e, p in zip(effective, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    kw = dict(kernel_size=kernel, stride=stride, padding=padding,
              ceil_mode=draw(st.booleans()))
    if dilation:
        kw["dilation"] = dil
    return shape, kw


def _assume_no_window_inside_padding(x, kw):
    """With dilation, a window of a tiny input can hold padding only: -inf, and an index PyTorch
    leaves pointing outside the window (its gradient lands in a neighbouring plane); skip those."""
    assume(np.isfinite(reference.max_pool2d(x, **kw)[0]).all())


@given(settings=pool_settings(), return_indices=st.booleans())
def test_max_pool2d_random_settings_match_torch(settings, return_indices):
    shape, kw = settings
    x = np.random.default_rng(0).standard_normal(shape)
    _assume_no_window_inside_padding(x, kw)
    check_against_torch(max_pool2d, "max_pool2d", (x,), return_indices=return_indices, **kw)


@given(settings=pool_settings(), return_indices=st.booleans())
def test_max_pool2d_ties_go_to_the_first_maximum_like_torch(settings, return_indices):
    shape, kw = settings
    x = np.random.default_rng(0).integers(0, 3, size=shape).astype(np.float64)  # many ties
    _assume_no_window_inside_padding(x, kw)
    check_against_torch(max_pool2d, "max_pool2d", (x,), return_indices=return_indices, **kw)


@given(settings=pool_settings(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
def test_avg_pool2d_random_settings_match_torch(settings, count_include_pad, divisor_override):
    shape, kw = settings
    x = np.random.default_rng(0).standard_normal(shape)
    check_against_torch(avg_pool2d, "avg_pool2d", (x,), count_include_pad=count_include_pad,
                        divisor_override=divisor_override, **kw)


@given(settings=pool_settings())
def test_max_pool2d_matches_reference_loops(settings):
    shape, kw = settings
    x = np.random.default_rng(3).standard_normal(shape)
    _assume_no_window_inside_padding(x, kw)
    y, indices = max_pool2d(dn.tensor(x), return_indices=True, **kw)
    expected_y, expected_indices = reference.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y.numpy(), expected_y)
    np.testing.assert_array_equal(indices.numpy(), expected_indices)


@given(settings=pool_settings(dilation=False), count_include_pad=st.booleans())
def test_avg_pool2d_matches_reference_loops(settings, count_include_pad):
    shape, kw = settings
    x = np.random.default_rng(4).standard_normal(shape)
    ours = avg_pool2d(dn.tensor(x), count_include_pad=count_include_pad, **kw)
    expected = reference.avg_pool2d(x, count_include_pad=count_include_pad, **kw)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)


def test_max_pool2d_propagates_nan_like_torch():
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = x[0, 1, 0, 2] = x[0, 1, 1, 3] = np.nan
    y, indices = max_pool2d(dn.tensor(x), 2, return_indices=True)
    y_torch, indices_torch = torch.nn.functional.max_pool2d(torch.tensor(x), 2,
                                                            return_indices=True)
    np.testing.assert_array_equal(y.numpy(), y_torch.numpy())  # NaN == NaN for this assert
    np.testing.assert_array_equal(indices.numpy(), indices_torch.numpy())


def test_pool_gradients_numerically(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    check_gradients(max_pool2d, x, kernel_size=3, stride=2, padding=1)
    check_gradients(avg_pool2d, x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
    check_gradients(adaptive_avg_pool2d, x, output_size=(3, 2))
    check_gradients(adaptive_max_pool2d, x, output_size=(2, 4))


@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    out_h=st.one_of(st.none(), st.integers(1, 10)), out_w=st.one_of(st.none(), st.integers(1, 10)),
)
def test_adaptive_pools_match_torch(shape, out_h, out_w):
    x = np.random.default_rng(5).standard_normal(shape)
    size = (out_h, out_w)
    check_against_torch(adaptive_avg_pool2d, "adaptive_avg_pool2d", (x,), output_size=size)
    check_against_torch(adaptive_max_pool2d, "adaptive_max_pool2d", (x,),
                        output_size=(out_h, out_w), return_indices=True)
    expected = reference.adaptive_avg_pool2d(
        x, (shape[2] if out_h is None else out_h, shape[3] if out_w is None else out_w))
    np.testing.assert_allclose(adaptive_avg_pool2d(dn.tensor(x), (out_h, out_w)).numpy(), expected,
                               atol=1e-12)


@pytest.mark.parametrize("output_size", [1, (1, 1), 4, (2, 3)])
def test_adaptive_pools_common_sizes_and_unbatched(output_size, rng):
    x = rng.standard_normal((2, 3, 7, 8))
    check_against_torch(adaptive_avg_pool2d, "adaptive_avg_pool2d", (x,), output_size=output_size)
    check_against_torch(adaptive_max_pool2d, "adaptive_max_pool2d", (x[0],),
                        output_size=output_size)


BAD_POOL_INPUTS = {
    "pad_too_big": (max_pool2d, dict(kernel_size=3, padding=2),
                    "pad should be at most half of effective kernel size, but got pad=2, "
                    "kernel_size=3 and dilation=1"),
    "avg_pad_too_big": (avg_pool2d, dict(kernel_size=3, padding=2),
                        "pad should be at most half of effective kernel size, but got pad=2"),
    "pad_vs_kernel": (max_pool2d, dict(kernel_size=3, padding=2, dilation=2),
                      "pad should be smaller than or equal to half of kernel size, but got "
                      "padW = 2, padH = 2, kW = 3, kH = 3"),
    "too_small": (max_pool2d, dict(kernel_size=3, stride=1, dilation=4),
                  "Given input size: (3x7x7). Calculated output size: (3x-1x-1). Output size is "
                  "too small"),
    "stride": (max_pool2d, dict(kernel_size=2, stride=-1),
               "stride should be greater than zero, but got dH: -1 dW: -1"),
    "kernel_tuple": (avg_pool2d, dict(kernel_size=(2, 2, 2)),
                     "avg_pool2d: kernel_size must either be a single int, or a tuple of two ints"),
    "divisor": (avg_pool2d, dict(kernel_size=2, divisor_override=0), "divisor must be not zero"),
    "adaptive_size": (adaptive_avg_pool2d, dict(output_size=(2, 2, 2)),
                      "adaptive_avg_pool2d: output_size must be 2"),
    "adaptive_negative": (adaptive_avg_pool2d, dict(output_size=(-1, 2)),
                          "elements of output_size must be greater than or equal to 0 but "
                          "received {-1, 2}"),
}


@pytest.mark.parametrize("name", BAD_POOL_INPUTS)
def test_pools_reject_bad_input_like_torch(name, rng):
    op, kw, message = BAD_POOL_INPUTS[name]
    x = rng.standard_normal((2, 3, 7, 7))
    with pytest.raises(RuntimeError) as ours:
        op(dn.tensor(x), **kw)
    assert message in str(ours.value)
    with pytest.raises(RuntimeError):  # torch rejects the same input
        getattr(torch.nn.functional, op.__name__)(torch.tensor(x), **kw)


def test_pools_reject_wrong_input_rank(rng):
    x = dn.tensor(rng.standard_normal((2, 3, 7, 7, 1)))
    with pytest.raises(RuntimeError, match=r"Expected 3D or 4D .* but got:\[2, 3, 7, 7, 1\]"):
        max_pool2d(x, 2)
    with pytest.raises(RuntimeError, match=r"Expected 3D or 4D tensor, but got \[2, 3, 7, 7, 1\]"):
        adaptive_avg_pool2d(x, 2)
