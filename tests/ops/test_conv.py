"""conv2d, im2col and col2im against PyTorch and against the naive loops in ops/reference.py."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import reference
from deepnotes.ops.conv import conv2d
from deepnotes.ops.im2col import col2im, conv_output_size, im2col
from tests.helpers import check_against_torch, check_gradients

CONV2D_CASES = {
    "plain":        dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3)),
    "stride_pad":   dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), stride=2, padding=1),
    "dilated":      dict(x=(1, 2, 9, 9), w=(2, 2, 3, 3), dilation=2),
    "depthwise":    dict(x=(1, 4, 6, 6), w=(4, 1, 3, 3), groups=4),
    "depthwise_x2": dict(x=(2, 3, 6, 5), w=(6, 1, 3, 3), groups=3, padding=1),
    "grouped":      dict(x=(2, 6, 6, 5), w=(4, 3, 3, 2), groups=2, stride=(2, 1), padding=(1, 0)),
    "pointwise":    dict(x=(2, 6, 5, 5), w=(3, 6, 1, 1)),
    "asym_1x3":     dict(x=(1, 2, 5, 7), w=(2, 2, 1, 3), padding=(0, 1)),
    "asym_stride":  dict(x=(2, 2, 9, 8), w=(3, 2, 3, 2), stride=(3, 2), dilation=(1, 2)),
    "no_bias":      dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), padding=2, bias=False),
    "same":         dict(x=(2, 3, 6, 6), w=(4, 3, 3, 3), padding="same"),
    "same_even":    dict(x=(2, 3, 6, 7), w=(4, 3, 4, 2), padding="same", dilation=(1, 3)),
    "valid":        dict(x=(1, 3, 5, 6), w=(2, 3, 2, 3), padding="valid"),
    "kernel_=_input": dict(x=(2, 3, 4, 5), w=(2, 3, 4, 5)),
    "unbatched":    dict(x=(3, 7, 7), w=(4, 3, 3, 3), stride=2),
}


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", CONV2D_CASES)
def test_conv2d_matches_torch(name, rng):
    kw = dict(CONV2D_CASES[name])
    x, w = rng.standard_normal(kw.pop("x")), rng.standard_normal(kw.pop("w"))
    inputs = (x, w, rng.standard_normal(w.shape[0])) if kw.pop("bias", True) else (x, w)
    check_against_torch(conv2d, "conv2d", inputs, **kw)


@st.composite
def conv_settings(draw):
    """Random shapes and hyper-parameters, including grouped and depthwise convolutions."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans())
    c_in_group = 1 if depthwise else draw(st.integers(1, 3))
    c_out_group = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    if stride == (1, 1) and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
        pads = (0, 0)
    else:
        padding = pads = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # The dilated kernel must fit into the padded input.
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * pads[0]) + draw(st.integers(0, 4))
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pads[1]) + draw(st.integers(0, 4))
    n = draw(st.integers(1, 2))
    x_shape = (n, c_in_group * groups, h, w)
    w_shape = (c_out_group * groups, c_in_group, kh, kw)
    return x_shape, w_shape, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(settings=conv_settings(), with_bias=st.booleans())
def test_conv2d_random_settings_match_torch(settings, with_bias):
    x_shape, w_shape, kw = settings
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    inputs = (x, w, rng.standard_normal(w_shape[0])) if with_bias else (x, w)
    check_against_torch(conv2d, "conv2d", inputs, **kw)


@given(settings=conv_settings())
def test_conv2d_matches_reference_loops(settings):
    x_shape, w_shape, kw = settings
    if isinstance(kw["padding"], str):
        kw["padding"] = 0 if kw["padding"] == "valid" else None
    if kw["padding"] is None:  # 'same' with an odd total pads asymmetrically; loops pad evenly
        return
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(
        w_shape[0])
    ours = conv2d(dn.tensor(x), dn.tensor(w), dn.tensor(b), **kw)
    np.testing.assert_allclose(ours.numpy(), reference.conv2d(x, w, b, **kw), atol=1e-12)


def test_conv2d_gradients_numerically(rng):
    check_gradients(conv2d, rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)),
                    rng.standard_normal(3), stride=2, padding=1)


def test_conv2d_skips_input_gradient_when_not_needed(rng, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("col2im ran although the input needs no gradient")

    monkeypatch.setattr("deepnotes.ops.conv.col2im", fail)
    x = dn.tensor(rng.standard_normal((2, 3, 6, 6)))                    # a first layer's input
    w = dn.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x.numpy()), tw, padding=1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), atol=1e-10)


def test_conv2d_float32_stays_float32(rng):
    x = dn.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = dn.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = dn.tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True)
    y = conv2d(x, w, b, padding=1)
    y.sum().backward()
    assert y.dtype == np.float32 and y.data.flags.c_contiguous
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


@given(settings=conv_settings())
def test_im2col_matches_loops_and_col2im_is_its_adjoint(settings):
    x_shape, w_shape, kw = settings
    if isinstance(kw["padding"], str):
        return
    k, s, p, d = w_shape[2:], kw["stride"], kw["padding"], kw["dilation"]
    n, c, h, w = x_shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, w))
    h_out, w_out = conv_output_size((h, w), k, s, p, d)
    cols = im2col(x, k, s, p, d)
    assert cols.shape == (c * k[0] * k[1], n * h_out * w_out)
    np.testing.assert_array_equal(cols, reference.im2col(x, k, s, p, d))
    # col2im is the transpose of the linear map im2col: <im2col(x), C> = <x, col2im(C)>.
    other = rng.standard_normal(cols.shape)
    back = col2im(other, x.shape, k, s, p, d)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * other), np.sum(x * back), rtol=1e-12)


BAD_CONV_INPUTS = {
    "channels": (dict(x=(2, 5, 7, 7), w=(4, 3, 3, 3)),
                 "Given groups=1, weight of size [4, 3, 3, 3], expected input[2, 5, 7, 7] to have "
                 "3 channels, but got 5 channels instead"),
    "kernel_too_big": (dict(x=(2, 3, 2, 2), w=(4, 3, 3, 3)),
                       "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). "
                       "Kernel size can't be greater than actual input size"),
    "groups_vs_out_channels": (dict(x=(2, 6, 7, 7), w=(5, 3, 3, 3), groups=2),
                               "expected weight to be divisible by 2 at dimension 0"),
    "bias_shape": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), b=(3,)),
                   "expected bias to be 1-dimensional with 4 elements, but got bias of size [3]"),
    "input_dims": (dict(x=(7, 7), w=(4, 3, 3, 3)),
                   "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of "
                   "size: [7, 7]"),
    "stride": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), stride=0), "non-positive stride"),
    "dilation": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), dilation=(1, -1)), "non-positive dilation"),
    "padding": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), padding=-1), "negative padding"),
    "same_strided": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), padding="same", stride=2),
                     "padding='same' is not supported for strided convolutions"),
    "padding_string": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), padding="full"),
                       "Invalid padding string: 'full'"),
    "stride_length": (dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), stride=(1, 2, 3)),
                      "list of 2 values to match the convolution dimensions, but got "
                      "stride=[1, 2, 3]"),
}


@pytest.mark.parametrize("name", BAD_CONV_INPUTS)
def test_conv2d_rejects_bad_input_like_torch(name, rng):
    kw, message = BAD_CONV_INPUTS[name]
    kw = dict(kw)
    x, w = dn.tensor(rng.standard_normal(kw.pop("x"))), dn.tensor(rng.standard_normal(kw.pop("w")))
    b = dn.tensor(rng.standard_normal(kw.pop("b"))) if "b" in kw else None
    with pytest.raises(RuntimeError) as ours:
        conv2d(x, w, b, **kw)
    assert message in str(ours.value)
    with pytest.raises(RuntimeError):  # torch rejects the same input
        torch.nn.functional.conv2d(torch.tensor(x.numpy()), torch.tensor(w.numpy()),
                                   None if b is None else torch.tensor(b.numpy()), **kw)


def test_conv2d_rejects_non_tensor_and_mixed_dtypes(rng):
    w = dn.tensor(rng.standard_normal((4, 3, 3, 3)))
    with pytest.raises(TypeError, match="argument 'input' must be Tensor"):
        conv2d(rng.standard_normal((2, 3, 5, 5)), w)
    with pytest.raises(RuntimeError, match=r"Input type \(float32\) and weight type \(float64\)"):
        conv2d(dn.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32)), w)
