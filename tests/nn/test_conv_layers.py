"""Conv1d, Conv3d, ConvTranspose1d/2d/3d against torch.nn with copied weights; LocallyConnected2d
and DepthwiseSeparableConv2d (no torch class) against loops, torch compositions, numerical
gradients and the parameter counts of notes 004 Q31."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from deepnotes.ops import reference
from tests.helpers import check_gradients
from tests.nn.test_layers import both, check_layer
from tests.ops.test_conv_family import _torch_locally_connected, transpose_settings

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


LAYER_CASES = {
    "conv1d":            ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 9)),
    "conv1d_same":       ("Conv1d", (4, 6, 4), dict(padding="same", dilation=2, groups=2,
                                                    bias=False), (2, 4, 8)),
    "conv1d_unbatched":  ("Conv1d", (2, 2, 1), {}, (2, 5)),
    "conv3d":            ("Conv3d", (2, 4, 3), dict(padding=1), (2, 2, 4, 5, 4)),
    "conv3d_c3d":        ("Conv3d", (2, 3, (1, 3, 3)), dict(stride=(1, 2, 2), padding=(0, 1, 1)),
                          (1, 2, 3, 6, 5)),
    "conv3d_grouped":    ("Conv3d", (4, 2, 2), dict(groups=2, dilation=(1, 2, 1), bias=False),
                          (2, 4, 3, 4, 3)),
    "tconv1d":           ("ConvTranspose1d", (3, 2, 4), dict(stride=2, padding=1), (2, 3, 5)),
    "tconv2d":           ("ConvTranspose2d", (3, 4, 3), dict(stride=2, padding=1,
                                                             output_padding=1), (2, 3, 4, 5)),
    "tconv2d_grouped":   ("ConvTranspose2d", (4, 6, (2, 3)), dict(groups=2, dilation=2,
                                                                  bias=False), (1, 4, 3, 3)),
    "tconv2d_unbatched": ("ConvTranspose2d", (2, 3, 2), dict(stride=2), (2, 3, 3)),
    "tconv3d":           ("ConvTranspose3d", (2, 3, 2), dict(stride=(1, 2, 2),
                                                             output_padding=(0, 1, 0)),
                          (2, 2, 2, 3, 3)),
}


@pytest.mark.parametrize("name", LAYER_CASES)
def test_conv_layers_match_torch(name):
    layer, args, kwargs, x_shape = LAYER_CASES[name]
    ours, theirs = both(layer, *args, **kwargs)
    check_layer(ours, theirs, np.random.default_rng(0).standard_normal(x_shape))


@given(settings=transpose_settings(2), bias=st.booleans())
def test_conv_transpose2d_layer_random_settings(settings, bias):
    x_shape, w_shape, kw = settings
    c_in, c_out = w_shape[0], w_shape[1] * kw["groups"]
    ours, theirs = both("ConvTranspose2d", c_in, c_out, w_shape[2:], bias=bias, **kw)
    check_layer(ours, theirs, np.random.default_rng(1).standard_normal(x_shape))


@pytest.mark.parametrize("output_size", [(11, 11), (12, 12), (11, 12), [1, 6, 12, 11]])
def test_conv_transpose2d_forward_output_size_like_torch(output_size):
    ours, theirs = both("ConvTranspose2d", 4, 6, 3, stride=2)
    ours.double()
    theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((1, 4, 5, 5))
    y = ours(dn.tensor(x), output_size=output_size)
    expected = theirs(torch.tensor(x), output_size=output_size)
    assert y.shape == tuple(expected.shape)
    np.testing.assert_allclose(y.data, expected.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("output_size", [(13, 13), (10, 12), (14,)])
def test_conv_transpose2d_rejects_unreachable_output_size_like_torch(output_size):
    ours, theirs = both("ConvTranspose2d", 4, 6, 3, stride=2)
    x = np.random.default_rng(2).standard_normal((1, 4, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError) as info:
        ours(dn.tensor(x), output_size=output_size)
    with pytest.raises(ValueError) as torch_info:
        theirs(torch.tensor(x), output_size=output_size)
    head = str(torch_info.value).split(" (for an input")[0].split(" (got")[0]
    assert head in str(info.value)


def test_conv_transpose2d_default_init_follows_torch_fan_in():
    """PyTorch computes fan_in from weight.shape[1] * k*k, i.e. C_out/groups * k*k for the
    transposed layout (C_in, C_out/groups, k, k); the bound is 1/sqrt(fan_in)."""
    dn.manual_seed(0)
    ours, theirs = both("ConvTranspose2d", 64, 128, 3, groups=2)
    bound = 1 / math.sqrt(64 * 9)
    for w in (ours.weight.data, theirs.weight.detach().numpy()):
        assert w.shape == (64, 64, 3, 3)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(ours.bias.data).max() <= bound


VALIDATION = [
    (lambda: nn.Conv1d(3, 4, (3, 3)), TypeError, "kernel_size must be an int or a tuple of 1 "
     "ints"),
    (lambda: nn.Conv3d(3, 4, (3, 3)), TypeError, "kernel_size must be an int or a tuple of 3 ints"),
    (lambda: nn.Conv3d(3, 4, 3, groups=2), ValueError, "in_channels must be divisible by groups"),
    (lambda: nn.Conv1d(3, 4, 3, padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), ValueError,
     "output_padding must be smaller than either stride or dilation"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding="same"), ValueError,
     "padding must be an int or a tuple of ints"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), ValueError,
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
    (lambda: nn.ConvTranspose1d(4, 3, 3, groups=2), ValueError,
     "out_channels must be divisible by groups"),
    (lambda: nn.LocallyConnected2d(3, 4, 4, 5), ValueError, "does not fit into input_size"),
    (lambda: nn.LocallyConnected2d(3, 4, (8, 8), 3, stride=0), ValueError,
     "stride must be positive"),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3, depth_multiplier=0), ValueError,
     "depth_multiplier must be a positive integer"),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_constructor_validation(case):
    build, error, message = VALIDATION[case]
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


# -- LocallyConnected2d ---------------------------------------------------------------------------

def test_locally_connected2d_shapes_count_and_loops():
    dn.manual_seed(0)
    layer = nn.LocallyConnected2d(3, 4, (6, 5), 3, stride=(1, 2), padding=1)
    assert layer.output_size == (6, 3)
    assert layer.weight.shape == (18, 4, 27) and layer.bias.shape == (4, 6, 3)
    assert list(layer.state_dict()) == ["weight", "bias"]
    conv = nn.Conv2d(3, 4, 3, stride=(1, 2), padding=1)
    assert _params(layer) == 18 * 4 * 27 + 4 * 18                 # no sharing:
    assert _params(layer) - 4 * 18 == 18 * (_params(conv) - 4)    # L times the conv's weights
    bound = 1 / math.sqrt(27)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.98 * bound
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = layer(dn.tensor(x))
    assert y.shape == (2, 4, 6, 3) and y.dtype == np.float32
    expected = reference.locally_connected2d(x.astype(np.float64),
                                             layer.weight.data.astype(np.float64),
                                             layer.bias.data.astype(np.float64), 3, (1, 2), 1)
    np.testing.assert_allclose(y.data, expected, atol=1e-5)
    assert repr(layer) == ("LocallyConnected2d(3, 4, input_size=(6, 5), kernel_size=(3, 3), "
                           "stride=(1, 2), padding=(1, 1))")


def test_locally_connected2d_gradients_match_torch_and_finite_differences():
    layer = nn.LocallyConnected2d(2, 3, 5, (2, 3), stride=2, dtype=dn.float64)
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 5))
    xt = dn.tensor(x, requires_grad=True)
    y = layer(xt)
    upstream = np.random.default_rng(5).standard_normal(y.shape)
    (y * dn.tensor(upstream)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.weight.data, requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True)
    ty = _torch_locally_connected(tx, tw, tb, (2, 3), 2)
    (ty * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-12)
    for ours, theirs in ((xt, tx), (layer.weight, tw), (layer.bias, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12)
    check_gradients(lambda t, w, b: dn.nn.functional.locally_connected2d(t, w, b, (2, 3), 2), x,
                    layer.weight.data, layer.bias.data)


def test_locally_connected2d_rejects_another_input_size():
    layer = nn.LocallyConnected2d(3, 4, (6, 5), 3, bias=False)
    with pytest.raises(RuntimeError, match=r"expected input of spatial size \(6, 5\)"):
        layer(dn.zeros(1, 3, 6, 6))
    assert layer(dn.zeros(3, 6, 5)).shape == (4, 4, 3)           # unbatched works
    assert "bias=False" in repr(layer)


# -- DepthwiseSeparableConv2d ---------------------------------------------------------------------

def test_depthwise_separable_parameter_count_of_the_note():
    """notes 004 Q31: a 3x3 conv from 16 to 32 channels has 16*32*9 = 4608 weights; depthwise
    then pointwise has 16*9 + 16*32 = 656."""
    standard = nn.Conv2d(16, 32, 3, bias=False)
    separable = nn.DepthwiseSeparableConv2d(16, 32, 3, bias=False)
    assert _params(standard) == 4608
    assert _params(separable) == 656
    assert separable.depthwise.weight.shape == (16, 1, 3, 3)
    assert separable.pointwise.weight.shape == (32, 16, 1, 1)
    assert _params(nn.DepthwiseSeparableConv2d(16, 32, 3)) == 656 + 16 + 32
    assert _params(nn.DepthwiseSeparableConv2d(16, 32, 3, bias=False, depth_multiplier=2)) == \
        32 * 9 + 32 * 32
    # the ratio 1/C_out + 1/k^2 of the note
    assert 656 / 4608 == pytest.approx(1 / 32 + 1 / 9)


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1),
                                    dict(padding=2, dilation=2, depth_multiplier=2, bias=False)])
def test_depthwise_separable_equals_torch_depthwise_then_pointwise(kwargs):
    kwargs = dict(kwargs)
    multiplier, bias = kwargs.pop("depth_multiplier", 1), kwargs.pop("bias", True)
    ours = nn.DepthwiseSeparableConv2d(3, 5, 3, bias=bias, depth_multiplier=multiplier, **kwargs)
    theirs = torch.nn.Sequential(OrderedDict(
        depthwise=torch.nn.Conv2d(3, 3 * multiplier, 3, groups=3, bias=bias, **kwargs),
        pointwise=torch.nn.Conv2d(3 * multiplier, 5, 1, bias=bias)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.double()
    theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((2, 3, 7, 6))
    xo, xt = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, expected = ours(xo), theirs(xt)
    np.testing.assert_allclose(y.data, expected.detach().numpy(), atol=1e-12)
    upstream = np.random.default_rng(7).standard_normal(y.shape)
    (y * dn.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), torch_params[name].grad.numpy(), atol=1e-12)
