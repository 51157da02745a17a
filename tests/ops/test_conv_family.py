"""conv1d/conv3d, conv_transpose1d/2d/3d (GEMM + col2im and zero-insertion forms), N-d im2col and
the locally connected convolution, against PyTorch, the naive loops of ops/reference.py and
finite differences."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import reference
from deepnotes.ops.conv import (
    conv1d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose2d_zero_insert,
    conv_transpose3d,
    locally_connected2d,
    transposed_output_size,
)
from deepnotes.ops.im2col import col2im, conv_output_size, im2col
from tests.helpers import check_against_torch, check_gradients

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

CONV_ND = {1: (conv1d, "conv1d"), 3: (conv3d, "conv3d")}


def _inputs(rng, x_shape, w_shape, c_out, bias=True):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    return (x, w, rng.standard_normal(c_out)) if bias else (x, w)


# -- conv1d / conv3d --------------------------------------------------------------------------

CONV_ND_CASES = {
    "1d_plain":        dict(x=(2, 3, 9), w=(4, 3, 3)),
    "1d_stride_pad":   dict(x=(2, 3, 10), w=(4, 3, 3), stride=2, padding=1),
    "1d_dilated":      dict(x=(1, 2, 11), w=(3, 2, 3), dilation=3, padding=2),
    "1d_grouped":      dict(x=(2, 4, 8), w=(6, 2, 2), groups=2),
    "1d_depthwise":    dict(x=(2, 3, 8), w=(3, 1, 5), groups=3, padding="same"),
    "1d_valid":        dict(x=(2, 3, 8), w=(2, 3, 4), padding="valid", bias=False),
    "1d_unbatched":    dict(x=(3, 9), w=(4, 3, 3), stride=(2,)),
    "3d_plain":        dict(x=(2, 2, 5, 6, 5), w=(3, 2, 3, 3, 3)),
    "3d_stride_pad":   dict(x=(1, 2, 6, 5, 7), w=(3, 2, 3, 2, 3), stride=(2, 1, 2),
                            padding=(1, 0, 1)),
    "3d_dilated":      dict(x=(1, 2, 7, 6, 6), w=(2, 2, 2, 3, 2), dilation=(3, 1, 2)),
    "3d_grouped":      dict(x=(2, 4, 4, 4, 4), w=(4, 2, 2, 2, 2), groups=2, bias=False),
    "3d_same_even":    dict(x=(1, 2, 4, 5, 4), w=(3, 2, 2, 3, 4), padding="same"),
    "3d_pointwise":    dict(x=(2, 3, 3, 4, 2), w=(5, 3, 1, 1, 1)),
    "3d_unbatched":    dict(x=(2, 5, 4, 4), w=(3, 2, 3, 3, 3), padding=1),
}


@pytest.mark.parametrize("name", CONV_ND_CASES)
def test_conv1d_conv3d_match_torch(name, rng):
    kw = dict(CONV_ND_CASES[name])
    x_shape, w_shape = kw.pop("x"), kw.pop("w")
    op, torch_name = CONV_ND[len(w_shape) - 2]
    inputs = _inputs(rng, x_shape, w_shape, w_shape[0], kw.pop("bias", True))
    check_against_torch(op, torch_name, inputs, **kw)


@st.composite
def conv_nd_settings(draw, nd):
    """Shapes and hyper-parameters of a random nd-dimensional convolution that fits its input."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in_group = 1 if draw(st.booleans()) else draw(st.integers(1, 2))
    c_out_group = draw(st.integers(1, 2))
    top_k, top_extra = (4, 4) if nd == 1 else (3, 2)
    kernel = tuple(draw(st.integers(1, top_k)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3 if nd == 1 else 2)) for _ in range(nd))
    if all(s == 1 for s in stride) and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
        pads = (0,) * nd
    else:
        padding = pads = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    sizes = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, top_extra))
                  for k, d, p in zip(kernel, dilation, pads))
    x_shape = (draw(st.integers(1, 2)), c_in_group * groups) + sizes
    w_shape = (c_out_group * groups, c_in_group) + kernel
    return x_shape, w_shape, dict(stride=stride, padding=padding, dilation=dilation,
                                  groups=groups)


@given(settings=conv_nd_settings(1), with_bias=st.booleans())
def test_conv1d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    inputs = _inputs(np.random.default_rng(0), x_shape, w_shape, w_shape[0], with_bias)
    check_against_torch(conv1d, "conv1d", inputs, **kw)


@given(settings=conv_nd_settings(3), with_bias=st.booleans())
def test_conv3d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    inputs = _inputs(np.random.default_rng(0), x_shape, w_shape, w_shape[0], with_bias)
    check_against_torch(conv3d, "conv3d", inputs, **kw)


@pytest.mark.parametrize("nd", [1, 3])
def test_conv_nd_gradients_numerically(nd, rng):
    op = CONV_ND[nd][0]
    x = rng.standard_normal((1, 2) + (5,) * nd)
    w = rng.standard_normal((2, 2) + (2,) * nd)
    check_gradients(op, x, w, rng.standard_normal(2), stride=2, padding=1)


# -- N-d im2col / col2im ----------------------------------------------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@given(data=st.data())
def test_im2col_nd_matches_loops_and_col2im_is_its_adjoint(nd, data):
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(data.draw(st.integers(0, 2)) for _ in range(nd))
    sizes = tuple(max(1, d * (k - 1) + 1 - 2 * p) + data.draw(st.integers(0, 3))
                  for k, d, p in zip(kernel, dilation, padding))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2) + sizes)
    out = conv_output_size(sizes, kernel, stride, padding, dilation)
    cols = im2col(x, kernel, stride, padding, dilation)
    assert cols.shape == (2 * math.prod(kernel), 2 * math.prod(out))
    np.testing.assert_array_equal(cols, reference.im2col_nd(x, kernel, stride, padding, dilation))
    other = rng.standard_normal(cols.shape)                  # <im2col(x), C> = <x, col2im(C)>
    back = col2im(other, x.shape, kernel, stride, padding, dilation)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * other), np.sum(x * back), rtol=1e-12)


def test_im2col_out_size_keeps_the_first_windows(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    full = im2col(x, 3, 2, 1, 1)                              # 4 x 3 windows
    first = im2col(x, 3, 2, 1, 1, out_size=(3, 2))
    expected = full.reshape(27, 2, 4, 3)[:, :, :3, :2].reshape(27, -1)
    np.testing.assert_array_equal(first, expected)


# -- conv_transpose2d: GEMM + col2im, zero insertion, loops, torch ------------------------------

CONV_TRANSPOSE2D_CASES = {
    "plain":            dict(x=(2, 3, 5, 5), w=(3, 4, 3, 3)),
    "stride2":          dict(x=(2, 3, 4, 5), w=(3, 2, 3, 3), stride=2),
    "fcn_upsample_x2":  dict(x=(1, 2, 4, 4), w=(2, 2, 4, 4), stride=2, padding=1),
    "output_padding":   dict(x=(2, 3, 5, 5), w=(3, 2, 3, 3), stride=2, padding=1,
                             output_padding=1),
    "op_vs_dilation":   dict(x=(1, 2, 4, 5), w=(2, 3, 3, 2), stride=1, dilation=3,
                             output_padding=2),
    "dilated_strided":  dict(x=(2, 2, 4, 3), w=(2, 3, 2, 3), stride=(2, 3), dilation=(2, 1),
                             padding=(1, 2), output_padding=(1, 2)),
    "grouped":          dict(x=(2, 4, 4, 4), w=(4, 3, 3, 2), groups=2, stride=(1, 2),
                             padding=(1, 0)),
    "depthwise":        dict(x=(1, 3, 5, 4), w=(3, 1, 3, 3), groups=3, stride=2),
    "pointwise_s3":     dict(x=(2, 3, 3, 4), w=(3, 2, 1, 1), stride=3, output_padding=2),
    "crop_pad>d(k-1)":  dict(x=(1, 2, 6, 6), w=(2, 2, 3, 3), stride=3, padding=3),
    "no_bias":          dict(x=(2, 3, 5, 5), w=(3, 4, 3, 3), padding=1, bias=False),
    "unbatched":        dict(x=(3, 4, 5), w=(3, 2, 2, 2), stride=2),
}


@pytest.mark.parametrize("op", [conv_transpose2d, conv_transpose2d_zero_insert])
@pytest.mark.parametrize("name", CONV_TRANSPOSE2D_CASES)
def test_conv_transpose2d_both_forms_match_torch(name, op, rng):
    kw = dict(CONV_TRANSPOSE2D_CASES[name])
    x_shape, w_shape = kw.pop("x"), kw.pop("w")
    inputs = _inputs(rng, x_shape, w_shape, w_shape[1] * kw.get("groups", 1), kw.pop("bias", True))
    check_against_torch(op, "conv_transpose2d", inputs, names=["input", "weight", "bias"], **kw)


@st.composite
def transpose_settings(draw, nd):
    """Random transposed convolutions: output_padding < max(stride, dilation), output >= 1."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in_group, c_out_group = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    # out = (in - 1)*s - 2p + d(k - 1) + op + 1 >= 1  <=>  in >= 1 + ceil((2p - d(k-1) - op) / s)
    sizes = tuple(max(1, 1 - (-(2 * p - d * (k - 1) - op) // s)) + draw(st.integers(0, 2))
                  for k, s, p, op, d in zip(kernel, stride, padding, output_padding, dilation))
    x_shape = (draw(st.integers(1, 2)), c_in_group * groups) + sizes
    w_shape = (c_in_group * groups, c_out_group) + kernel
    return x_shape, w_shape, dict(stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups, dilation=dilation)


@given(settings=transpose_settings(2), with_bias=st.booleans())
def test_conv_transpose2d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    inputs = _inputs(np.random.default_rng(0), x_shape, w_shape, w_shape[1] * kw["groups"],
                     with_bias)
    check_against_torch(conv_transpose2d, "conv_transpose2d", inputs, **kw)


@given(settings=transpose_settings(2), with_bias=st.booleans())
def test_conv_transpose2d_zero_insert_equals_gemm_form_and_loops(settings, with_bias):
    """The note's two constructions (and the scatter definition) give the same numbers."""
    x_shape, w_shape, kw = settings
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * kw["groups"]) if with_bias else None
    tensors = [dn.tensor(a) for a in (x, w)] + ([dn.tensor(b)] if with_bias else [])
    gemm = conv_transpose2d(*tensors, **kw).numpy()
    zeros = conv_transpose2d_zero_insert(*tensors, **kw).numpy()
    assert gemm.shape == (x_shape[0], w_shape[1] * kw["groups"]) + transposed_output_size(
        x_shape[2:], w_shape[2:], kw["stride"], kw["padding"], kw["output_padding"],
        kw["dilation"])
    np.testing.assert_allclose(zeros, gemm, atol=1e-12)
    np.testing.assert_allclose(gemm, reference.conv_transpose2d(x, w, b, **kw), atol=1e-12)


@given(settings=transpose_settings(2))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(settings):
    """<conv2d(y, W), x> = <y, conv_transpose2d(x, W)>: the transposed convolution is the
    transpose of the convolution's matrix (notes 001), for the same stride/padding/dilation."""
    x_shape, w_shape, kw = settings
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    up = conv_transpose2d(dn.tensor(x), dn.tensor(w), **kw).numpy()
    y = rng.standard_normal(up.shape)
    down = dn.nn.functional.conv2d(dn.tensor(y), dn.tensor(w), stride=kw["stride"],
                                   padding=kw["padding"], dilation=kw["dilation"],
                                   groups=kw["groups"]).numpy()
    # The convolution maps the output size back to x's size (output_padding < stride picks one
    # of the sizes that do). With stride <= output_padding < dilation it finds extra windows
    # at the end; the transposed convolution is the adjoint of the map onto the first ones.
    if all(op < s for op, s in zip(kw["output_padding"], kw["stride"])):
        assert down.shape == x.shape
    down = down[(Ellipsis,) + tuple(slice(0, m) for m in x.shape[2:])]
    np.testing.assert_allclose(np.sum(down * x), np.sum(y * up), rtol=1e-10)


@given(settings=transpose_settings(1), with_bias=st.booleans())
def test_conv_transpose1d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    inputs = _inputs(np.random.default_rng(0), x_shape, w_shape, w_shape[1] * kw["groups"],
                     with_bias)
    check_against_torch(conv_transpose1d, "conv_transpose1d", inputs, **kw)


@given(settings=transpose_settings(3), with_bias=st.booleans())
def test_conv_transpose3d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    inputs = _inputs(np.random.default_rng(0), x_shape, w_shape, w_shape[1] * kw["groups"],
                     with_bias)
    check_against_torch(conv_transpose3d, "conv_transpose3d", inputs, **kw)


def test_conv_transpose_unbatched_1d_3d_match_torch(rng):
    check_against_torch(conv_transpose1d, "conv_transpose1d",
                        _inputs(rng, (3, 5), (3, 2, 3), 2), stride=2, output_padding=1)
    check_against_torch(conv_transpose3d, "conv_transpose3d",
                        _inputs(rng, (2, 3, 2, 3), (2, 2, 2, 2, 2), 2), stride=(1, 2, 2))


def test_conv_transpose2d_gradients_numerically(rng):
    x, w, b = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3)), \
        rng.standard_normal(2)
    kw = dict(stride=2, padding=1, output_padding=1)
    check_gradients(conv_transpose2d, x, w, b, **kw)
    check_gradients(conv_transpose2d_zero_insert, x, w, b, **kw)


def test_conv_transpose2d_skips_unneeded_gradients_and_keeps_float32(rng, monkeypatch):
    x = dn.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    w = dn.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    y = conv_transpose2d(x, w, stride=2)
    assert y.dtype == np.float32 and y.shape == (2, 2, 9, 9) and y.data.flags.c_contiguous
    y.sum().backward()
    assert x.grad is None and w.grad.dtype == np.float32
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    torch.nn.functional.conv_transpose2d(torch.tensor(x.numpy()), tw, stride=2).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-4)


# -- errors -----------------------------------------------------------------------------------

BAD_CONV_FAMILY_INPUTS = {
    "conv1d_rank": ("conv1d", dict(x=(7,), w=(4, 3, 3)),
                    "Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of "
                    "size: [7]"),
    "conv1d_stride_len": ("conv1d", dict(x=(2, 3, 7), w=(4, 3, 3), stride=(1, 2)),
                          "expected stride to be a single integer value or a list of 1 values "
                          "to match the convolution dimensions, but got stride=[1, 2]"),
    "conv1d_channels": ("conv1d", dict(x=(2, 5, 7), w=(4, 3, 3)),
                        "Given groups=1, weight of size [4, 3, 3], expected input[2, 5, 7] to "
                        "have 3 channels, but got 5 channels instead"),
    "conv1d_kernel": ("conv1d", dict(x=(2, 3, 2), w=(4, 3, 3)),
                      "Calculated padded input size per channel: (2). Kernel size: (3). Kernel "
                      "size can't be greater than actual input size"),
    "conv1d_bias": ("conv1d", dict(x=(2, 3, 7), w=(4, 3, 3), b=(3,)),
                    "Given weight of size [4, 3, 3], expected bias to be 1-dimensional with 4 "
                    "elements, but got bias of size [3] instead"),
    "conv1d_same_strided": ("conv1d", dict(x=(2, 3, 7), w=(4, 3, 3), padding="same", stride=2),
                            "padding='same' is not supported for strided convolutions"),
    "conv3d_rank": ("conv3d", dict(x=(3, 4, 4), w=(4, 3, 3, 3, 3)),
                    "Expected 4D (unbatched) or 5D (batched) input to conv3d, but got input of "
                    "size: [3, 4, 4]"),
    "conv3d_kernel": ("conv3d", dict(x=(2, 3, 2, 4, 4), w=(4, 3, 3, 3, 3)),
                      "Calculated padded input size per channel: (2 x 4 x 4). Kernel size: "
                      "(3 x 3 x 3)"),
    "conv3d_dilation": ("conv3d", dict(x=(2, 3, 4, 4, 4), w=(4, 3, 3, 3, 3), dilation=(1, 0, 1)),
                        "non-positive dilation is not supported"),
    "conv3d_padding": ("conv3d", dict(x=(2, 3, 4, 4, 4), w=(4, 3, 3, 3, 3), padding=(1, -1, 1)),
                       "negative padding is not supported"),
    "t2d_output_padding": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3), stride=2,
                                                    output_padding=2),
                           "output padding must be smaller than either stride or dilation, but "
                           "got output_padding_height: 2 output_padding_width: 2 stride_height: "
                           "2 stride_width: 2 dilation_height: 1 dilation_width: 1"),
    "t3d_output_padding": ("conv_transpose3d", dict(x=(1, 4, 2, 2, 2), w=(4, 3, 3, 3, 3),
                                                    stride=2, output_padding=(0, 2, 0)),
                           "output padding must be smaller than either stride or dilation"),
    "t2d_channels": ("conv_transpose2d", dict(x=(2, 5, 5, 5), w=(4, 3, 3, 3)),
                     "Given transposed=1, weight of size [4, 3, 3, 3], expected input[2, 5, 5, 5] "
                     "to have 4 channels, but got 5 channels instead"),
    "t2d_groups": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3), groups=3),
                   "Given groups=3, expected weight to be divisible by 3 at dimension 0"),
    "t2d_bias": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3), b=(4,)),
                 "Given transposed=1, weight of size [4, 3, 3, 3], expected bias to be "
                 "1-dimensional with 3 elements, but got bias of size [4] instead"),
    "t2d_negative_padding": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3),
                                                      padding=(-1, 0)),
                             "negative padding is not supported"),
    "t2d_negative_op": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3),
                                                 output_padding=(0, -1)),
                        "negative output_padding is not supported"),
    "t2d_stride": ("conv_transpose2d", dict(x=(2, 4, 5, 5), w=(4, 3, 3, 3), stride=0),
                   "non-positive stride is not supported"),
    "t2d_rank": ("conv_transpose2d", dict(x=(4, 5), w=(4, 3, 3, 3)),
                 "Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got "
                 "input of size: [4, 5]"),
    "t2d_too_small": ("conv_transpose2d", dict(x=(2, 4, 1, 1), w=(4, 3, 1, 1), padding=1),
                      "Calculated output size per channel: (-1 x -1). Output size is too small"),
    "t1d_op_len": ("conv_transpose1d", dict(x=(2, 4, 5), w=(4, 3, 3), output_padding=(1, 1)),
                   "expected output_padding to be a single integer value or a list of 1 values"),
}


@pytest.mark.parametrize("name", BAD_CONV_FAMILY_INPUTS)
def test_conv_family_rejects_bad_input_like_torch(name, rng):
    op_name, kw, message = BAD_CONV_FAMILY_INPUTS[name]
    kw = dict(kw)
    x, w = rng.standard_normal(kw.pop("x")), rng.standard_normal(kw.pop("w"))
    b = rng.standard_normal(kw.pop("b")) if "b" in kw else None
    ops = {"conv1d": conv1d, "conv3d": conv3d, "conv_transpose1d": conv_transpose1d,
           "conv_transpose2d": conv_transpose2d, "conv_transpose3d": conv_transpose3d}
    ours = [ops[op_name]]
    if op_name == "conv_transpose2d":
        ours.append(conv_transpose2d_zero_insert)              # same checks, same messages
    for op in ours:
        with pytest.raises(RuntimeError) as info:
            op(dn.tensor(x), dn.tensor(w), None if b is None else dn.tensor(b), **kw)
        assert message.replace(op_name, op.__name__) in str(info.value)
    with pytest.raises(RuntimeError):                          # torch rejects the same input
        getattr(torch.nn.functional, op_name)(torch.tensor(x), torch.tensor(w),
                                              None if b is None else torch.tensor(b), **kw)


def test_conv_transpose_rejects_string_padding_and_mixed_dtypes(rng):
    x, w = dn.tensor(rng.standard_normal((2, 4, 5, 5))), dn.tensor(rng.standard_normal((4, 3, 3,
                                                                                         3)))
    with pytest.raises(TypeError, match="argument 'padding' must be tuple of ints, not str"):
        conv_transpose2d(x, w, padding="same")
    with pytest.raises(TypeError):
        torch.nn.functional.conv_transpose2d(torch.tensor(x.numpy()), torch.tensor(w.numpy()),
                                             padding="same")
    with pytest.raises(RuntimeError, match=r"Input type \(float32\) and weight type \(float64\)"):
        conv_transpose2d(x.to(dn.float32), w)
    with pytest.raises(TypeError, match="argument 'input' must be Tensor"):
        conv3d(rng.standard_normal((1, 1, 3, 3, 3)), dn.tensor(rng.standard_normal((1, 1, 1, 1,
                                                                                      1))))


# -- locally connected ------------------------------------------------------------------------

def _torch_locally_connected(x, weight, bias=None, kernel_size=1, stride=1, padding=0):
    """The same layer in torch: unfold (im2col in (N, K, L) layout) and one einsum."""
    n, _, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = (torch.nn.modules.utils._pair(v)
                                    for v in (kernel_size, stride, padding))
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = torch.nn.functional.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))
    y = torch.einsum("lok,nkl->nol", weight, cols).reshape(n, -1, h_out, w_out)
    return y if bias is None else y + bias


@st.composite
def local_settings(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    h = max(1, kernel[0] - 2 * padding[0]) + draw(st.integers(0, 3))
    w = max(1, kernel[1] - 2 * padding[1]) + draw(st.integers(0, 3))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h_out, w_out = conv_output_size((h, w), kernel, stride, padding)
    x_shape = (draw(st.integers(1, 2)), c_in, h, w)
    w_shape = (h_out * w_out, c_out, c_in * kernel[0] * kernel[1])
    return x_shape, w_shape, (c_out, h_out, w_out), dict(kernel_size=kernel, stride=stride,
                                                          padding=padding)


@given(settings=local_settings(), with_bias=st.booleans())
def test_locally_connected2d_matches_loops_and_torch_unfold(settings, with_bias):
    x_shape, w_shape, b_shape, kw = settings
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), \
        rng.standard_normal(b_shape)
    ours = locally_connected2d(dn.tensor(x), dn.tensor(w), dn.tensor(b) if with_bias else None,
                               **kw)
    np.testing.assert_allclose(ours.numpy(), reference.locally_connected2d(
        x, w, b if with_bias else None, **kw), atol=1e-12)
    inputs = (x, w, b) if with_bias else (x, w)
    check_against_torch(locally_connected2d, _torch_locally_connected, inputs, **kw)


def test_locally_connected2d_gradients_numerically(rng):
    x = rng.standard_normal((2, 2, 4, 5))
    w = rng.standard_normal((3 * 3, 3, 2 * 2 * 3))            # 3x3 positions, kernel 2x3
    check_gradients(locally_connected2d, x, w, rng.standard_normal((3, 3, 3)), kernel_size=(2, 3),
                    stride=(1, 2), padding=(0, 1))


def test_locally_connected2d_with_one_shared_filter_is_a_convolution(rng):
    """Copying one conv filter bank to every position gives conv2d back: sharing is the only
    difference between the two layers."""
    x, conv_w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    shared = np.broadcast_to(conv_w.reshape(1, 4, 27), (4 * 3, 4, 27)).copy()   # 4x3 positions
    ours = locally_connected2d(dn.tensor(x), dn.tensor(shared), None, 3, (1, 1), 0)
    conv = dn.nn.functional.conv2d(dn.tensor(x), dn.tensor(conv_w))
    np.testing.assert_allclose(ours.numpy(), conv.numpy(), atol=1e-12)


def test_locally_connected2d_unbatched_and_bad_weight(rng):
    x, w = rng.standard_normal((2, 4, 4)), rng.standard_normal((9, 3, 8))
    y = locally_connected2d(dn.tensor(x), dn.tensor(w), None, 2)
    np.testing.assert_allclose(y.numpy(), reference.locally_connected2d(x[None], w, None, 2)[0],
                               atol=1e-12)
    with pytest.raises(RuntimeError, match=r"expected weight of size \[H_out\*W_out, C_out, "
                                           r"C_in\*kH\*kW\] = \[9, C_out, 8\]"):
        locally_connected2d(dn.tensor(x), dn.tensor(rng.standard_normal((8, 3, 8))), None, 2)
    with pytest.raises(RuntimeError, match=r"expected bias of size \[3, 3, 3\]"):
        locally_connected2d(dn.tensor(x), dn.tensor(w), dn.tensor(np.zeros(3)), 2)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        locally_connected2d(dn.tensor(x), dn.tensor(w), None, 5)


def test_conv_transpose_checkerboard_when_stride_does_not_divide_kernel():
    """notes 004 Q38: with k = 3, s = 2 neighbouring outputs receive 2 and 1 overlapping terms
    (a constant input gives stripes); with k = 4, s = 2 every interior output receives 2."""
    ones = dn.tensor(np.ones((1, 1, 6)))
    uneven = conv_transpose1d(ones, dn.tensor(np.ones((1, 1, 3))), stride=2).numpy()[0, 0]
    assert uneven.shape == (13,)
    np.testing.assert_array_equal(uneven[2:-2], [2, 1] * 4 + [2])
    even = conv_transpose1d(ones, dn.tensor(np.ones((1, 1, 4))), stride=2, padding=1).numpy()[0, 0]
    np.testing.assert_array_equal(even[1:-1], np.full(10, 2.0))
