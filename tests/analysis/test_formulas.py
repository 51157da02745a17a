"""The notes' formulas: output sizes against PyTorch's layers, receptive fields against the
notes' worked example and against the definition (the support of an output's gradient),
parameter and MAC counts against PyTorch's modules and ``torch.utils.flop_counter``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from deepnotes.analysis import (
    conv_flops,
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    depthwise_separable_macs,
    depthwise_separable_params,
    linear_macs,
    linear_params,
    receptive_field,
    separable_cost_ratio,
)

# --- output sizes ------------------------------------------------------------------------------


@settings(deadline=None)
@given(size=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3))
def test_conv_output_size_matches_torch_conv2d(size, k, s, p, d):
    if size + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError, match="kernel spans"):
            conv_output_size(size, k, s, p, d)
        return
    out = TF.conv2d(torch.zeros(1, 1, size, size + 1), torch.zeros(1, 1, k, k), stride=s,
                    padding=p, dilation=d)
    assert conv_output_size(size, k, s, p, d) == out.shape[2]
    assert conv_output_size((size, size + 1), k, s, p, d) == tuple(out.shape[2:])


@settings(deadline=None)
@given(size=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 4), data=st.data(),
       ceil=st.booleans())
def test_conv_output_size_ceil_mode_matches_torch_max_pool(size, k, s, data, ceil):
    p = data.draw(st.integers(0, k // 2))            # PyTorch: pad <= kernel / 2
    if size + 2 * p < k:
        return
    out = TF.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, ceil_mode=ceil)
    assert conv_output_size(size, k, s, p, ceil_mode=ceil) == out.shape[2]


@settings(deadline=None)
@given(size=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2), data=st.data())
def test_conv_transpose_output_size_matches_torch(size, k, s, p, d, data):
    op = data.draw(st.integers(0, max(s, d) - 1))
    expected = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
    if expected < 1:
        with pytest.raises(ValueError):
            conv_transpose_output_size(size, k, s, p, op, d)
        return
    out = TF.conv_transpose2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s,
                              padding=p, output_padding=op, dilation=d)
    assert conv_transpose_output_size(size, k, s, p, op, d) == out.shape[2]
    # it inverts the convolution with the same settings (notes 001), for output_padding < stride
    if op < s:
        assert conv_output_size(out.shape[2], k, s, p, d) == size


def test_output_size_per_axis_and_errors():
    assert conv_output_size((224, 200), (7, 3), (2, 1), (3, 1)) == (112, 200)
    assert conv_output_size(224, 3, padding=1) == 224
    with pytest.raises(ValueError, match="same length"):
        conv_output_size((8, 8), (3, 3, 3))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        conv_output_size(8, 3, stride=0)
    with pytest.raises(TypeError, match="kernel must be an int"):
        conv_output_size(8, 2.5)
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        conv_transpose_output_size(4, 3, stride=2, output_padding=2)


# --- receptive field ---------------------------------------------------------------------------


def test_receptive_field_worked_example_of_notes_000():
    # notes 000 Q3: convnet = [[11,4,0], [3,2,0], [5,1,2], [3,2,0], [3,1,1]] (AlexNet's conv1,
    # pool1, conv2, pool2, conv3): sizes 11, 19, 51, 67, 99 and jumps s1..s5 = 4, 8, 8, 16, 16.
    fields = receptive_field([(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1)])
    assert [f.size for f in fields] == [11, 19, 51, 67, 99]
    assert [f.jump for f in fields] == [4, 8, 8, 16, 16]
    # centre of the first output's field: 0.5 + 5 = 5.5 (conv1), + 1*4 = 9.5, + (2-2)*8 ...
    assert [f.start for f in fields] == [5.5, 9.5, 9.5, 17.5, 17.5]


def test_two_3x3_see_what_one_5x5_sees_for_072_of_the_weights():
    # notes 001: two stacked 3x3 convolutions have a 5x5 receptive field with
    # 2*3*3/(5*5) = 0.72 of the weights of one 5x5 layer.
    assert receptive_field([(3, 1, 1), (3, 1, 1)])[-1].size == receptive_field([(5, 1, 2)])[0].size
    two = 2 * conv_params(64, 64, 3, bias=False)
    one = conv_params(64, 64, 5, bias=False)
    assert Fraction(two, one) == Fraction(72, 100)
    # and three 3x3 see a 7x7 (notes 001 "同等规模的感受野")
    assert receptive_field([(3, 1, 1)] * 3)[-1].size == 7


def _support(layers, size):
    """Receptive field of the centre output of a chain of all-ones convolutions, from the
    definition: the input pixels its gradient reaches (float64, no cancellation)."""
    x = torch.zeros(1, 1, size, requires_grad=True)
    y = x
    for k, s, p, d in layers:
        y = TF.conv1d(y, torch.ones(1, 1, k, dtype=y.dtype), stride=s, padding=p, dilation=d)
    i = y.shape[-1] // 2
    y[0, 0, i].backward()
    hit = np.flatnonzero(x.grad[0, 0].numpy())
    return i, hit[0], hit[-1]


@settings(deadline=None, max_examples=30)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(0, 2),
                          st.integers(1, 2)), min_size=1, max_size=4))
def test_receptive_field_equals_gradient_support(layers):
    layers = [(k, s, min(p, (d * (k - 1)) // 2), d) for k, s, p, d in layers]
    field = receptive_field(layers)[-1]
    size = 4 * int(field.size) + 8 * int(field.jump) + 16
    i, lo, hi = _support(layers, size)
    centre = field.start + i * field.jump
    assert 0 < lo and hi < size - 1                  # the input is wide enough: not clipped
    assert hi - lo + 1 == field.size
    assert (lo + hi + 1) / 2 == centre               # pixel p has its centre at p + 0.5


def test_receptive_field_with_dilation_and_errors():
    # a 3x3 kernel with dilation 2 spans 5 pixels; stacking 1, 2, 4 gives 15 (the dilated
    # convolution's exponential growth without pooling, notes 000 "空洞卷积")
    assert [f.size for f in receptive_field([(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)])] == \
        [3, 7, 15]
    with pytest.raises(ValueError, match=r"layers\[1\] must be"):
        receptive_field([(3, 1, 1), (3, 1)])
    with pytest.raises(ValueError, match=r"layers\[0\] stride must be >= 1"):
        receptive_field([(3, 0, 1)])


# --- parameters and cost -----------------------------------------------------------------------


@settings(deadline=None)
@given(g=st.integers(1, 4), cin=st.integers(1, 4), cout=st.integers(1, 4), k=st.integers(1, 4),
       bias=st.booleans())
def test_conv_params_match_torch_modules(g, cin, cout, k, bias):
    c_in, c_out = cin * g, cout * g
    layer = torch.nn.Conv2d(c_in, c_out, k, groups=g, bias=bias)
    assert conv_params(c_in, c_out, k, groups=g, bias=bias) == sum(
        p.numel() for p in layer.parameters())
    # notes 001: grouped convolution has h*w*c1*c2/g weights
    assert conv_params(c_in, c_out, k, groups=g, bias=False) * g == k * k * c_in * c_out
    transposed = torch.nn.ConvTranspose2d(c_in, c_out, k, groups=g, bias=bias)
    assert conv_params(c_in, c_out, k, groups=g, bias=bias) == sum(
        p.numel() for p in transposed.parameters())


@settings(deadline=None, max_examples=10)
@given(g=st.integers(1, 3), cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 4),
       s=st.integers(1, 3), n=st.integers(1, 3), size=st.integers(4, 12))
def test_conv_macs_match_torch_flop_counter(g, cin, cout, k, s, n, size):
    c_in, c_out = cin * g, cout * g
    x, w = torch.zeros(n, c_in, size, size + 2), torch.zeros(c_out, cin, k, k)
    with FlopCounterMode(display=False) as counter:
        out = TF.conv2d(x, w, stride=s, groups=g)
    macs = conv_macs(c_in, c_out, k, tuple(out.shape[2:]), groups=g, batch_size=n)
    assert 2 * macs == counter.get_total_flops()
    assert conv_flops(c_in, c_out, k, tuple(out.shape[2:]), groups=g, batch_size=n) == 2 * macs
    with FlopCounterMode(display=False) as counter:
        TF.linear(torch.zeros(n, c_in), torch.zeros(c_out, c_in))
    assert 2 * linear_macs(c_in, c_out, batch_size=n) == counter.get_total_flops()
    assert linear_params(c_in, c_out) == c_in * c_out + c_out


def test_depthwise_separable_example_of_notes_001():
    # notes 001: 3x3, 16 -> 32 channels: 16*32*3*3 = 4608 weights against 16*3*3 + 16*32 = 656
    assert conv_params(16, 32, 3, bias=False) == 4608
    assert depthwise_separable_params(16, 32, 3) == 656
    # the two steps, counted as two Conv2d of PyTorch
    dw = torch.nn.Conv2d(16, 16, 3, groups=16, bias=False)
    pw = torch.nn.Conv2d(16, 32, 1, bias=False)
    assert dw.weight.numel() + pw.weight.numel() == 656
    # notes 004 Q31: both cost ratios are 1/C_out + 1/K^2 (656/4608 = 1/32 + 1/9 exactly)
    assert Fraction(656, 4608) == separable_cost_ratio(32, 3) == Fraction(1, 32) + Fraction(1, 9)


@pytest.mark.parametrize("c_in, c_out, k, hw", [(16, 32, 3, 56), (3, 16, 3, 112),
                                                 (128, 256, 5, 14), (7, 11, (3, 5), (9, 4))])
def test_separable_mac_ratio_is_one_over_cout_plus_one_over_k2(c_in, c_out, k, hw):
    ratio = Fraction(depthwise_separable_macs(c_in, c_out, k, hw),
                     conv_macs(c_in, c_out, k, hw))
    assert ratio == separable_cost_ratio(c_out, k)
    # depthwise step: one k x k filter per input channel, HW k^2 C_in (notes 004 Q31)
    kk = k[0] * k[1] if isinstance(k, tuple) else k * k
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    assert depthwise_separable_macs(c_in, c_out, k, hw) == h * w * (kk * c_in + c_in * c_out)


def test_bottleneck_example_of_notes_002():
    # notes 002 Q15: 100x100x128 -> 5x5 conv, 256 channels: 128*5*5*256 = 819,200 weights;
    # a 64-channel 1x1 first: 128*1*1*64 + 64*5*5*256 = 417,792, about half.
    assert conv_params(128, 256, 5, bias=False) == 819_200
    assert conv_params(128, 64, 1, bias=False) + conv_params(64, 256, 5, bias=False) == 417_792
    # the same saving in MACs at 100x100 (padding 2 keeps the size)
    out = conv_output_size(100, 5, 1, 2)
    assert conv_macs(128, 256, 5, out) == 819_200 * 100 * 100
    assert conv_macs(128, 64, 1, out) + conv_macs(64, 256, 5, out) == 417_792 * 100 * 100


def test_count_argument_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        conv_params(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match="in_channels must be >= 1, got 0"):
        conv_params(0, 4, 3)
    with pytest.raises(TypeError, match="out_channels must be an int"):
        conv_macs(3, 4.0, 3, 8)
