"""Pooling modules in 1-D and 3-D, unpooling and power-average pooling against torch.nn; the spatial
pyramid pooling layer (no torch class) against a composition of torch's adaptive pools."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from tests.nn.test_layers import both, check_layer

TF = torch.nn.functional

LAYER_CASES = {
    "max1d":          ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 9)),
    "max1d_dilated":  ("MaxPool1d", ((2,),), dict(stride=1, dilation=3), (2, 2, 8)),
    "max1d_indices":  ("MaxPool1d", (2,), dict(return_indices=True), (2, 3, 7)),
    "max3d":          ("MaxPool3d", (2,), {}, (2, 2, 4, 5, 6)),
    "max3d_padded":   ("MaxPool3d", ((1, 3, 3),), dict(stride=(1, 2, 2), padding=(0, 1, 1),
                                                       return_indices=True), (1, 2, 3, 7, 6)),
    "avg1d":          ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False),
                       (2, 3, 9)),
    "avg1d_tuple":    ("AvgPool1d", ((2,),), dict(ceil_mode=True), (2, 3, 7)),
    "avg3d":          ("AvgPool3d", (2,), {}, (2, 2, 4, 5, 6)),
    "avg3d_divisor":  ("AvgPool3d", ((2, 3, 2),), dict(stride=1, padding=1, divisor_override=7),
                       (1, 2, 3, 4, 4)),
    "adaptive_avg1d": ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    "adaptive_avg3d": ("AdaptiveAvgPool3d", ((2, None, 3),), {}, (2, 2, 5, 4, 7)),
    "adaptive_max1d": ("AdaptiveMaxPool1d", (3,), dict(return_indices=True), (2, 3, 7)),
    "adaptive_max3d": ("AdaptiveMaxPool3d", (2,), {}, (2, 2, 5, 3, 4)),
    "lp1d":           ("LPPool1d", (2, 3), dict(stride=2), (2, 3, 9)),
    "lp2d":           ("LPPool2d", (2, (2, 3)), dict(stride=1, ceil_mode=True), (2, 3, 5, 6)),
    "lp3d":           ("LPPool3d", (2, 2), {}, (1, 2, 4, 4, 5)),
}


@pytest.mark.parametrize("name", LAYER_CASES)
def test_pool_layers_match_torch(name):
    layer, args, kwargs, x_shape = LAYER_CASES[name]
    ours, theirs = both(layer, *args, **kwargs)
    check_layer(ours, theirs, np.random.default_rng(0).standard_normal(x_shape))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("with_output_size", [False, True])
def test_max_unpool_layers_match_torch(nd, with_output_size):
    # odd sizes need output_size: (S - 1)//2 windows unpool to S - 1 by default
    shape = (2, 3) + ((5, 7, 3) if with_output_size else (6, 8, 4))[:nd]
    x = torch.tensor(np.random.default_rng(1).standard_normal(shape))
    pooled, indices = getattr(TF, f"max_pool{nd}d")(x, 2, return_indices=True)
    ours, theirs = both(f"MaxUnpool{nd}d", 2)
    if not with_output_size:
        check_layer(ours, theirs, pooled.numpy(), indices.numpy())
        return
    y = ours(dn.tensor(pooled.numpy()), dn.tensor(indices.numpy()), output_size=shape[2:])
    expected = theirs(pooled, indices, output_size=shape[2:])
    np.testing.assert_array_equal(y.numpy(), expected.numpy())


def test_pool_modules_keep_torch_attributes():
    for name, args in (("AvgPool1d", (3,)), ("MaxUnpool2d", (3, 2, 1)), ("MaxUnpool3d", (2,)),
                       ("MaxPool3d", ((1, 2, 2),)), ("LPPool2d", (1.5, 2))):
        ours, theirs = both(name, *args)
        assert repr(ours) == repr(theirs)
        for attr in ("kernel_size", "stride", "padding", "norm_type"):
            if hasattr(theirs, attr):
                assert getattr(ours, attr) == getattr(theirs, attr), (name, attr)


VALIDATION = [
    (lambda: nn.MaxPool1d((2, 2)), TypeError, "kernel_size must be an int or a tuple of 1 ints"),
    (lambda: nn.MaxPool3d(0), ValueError, "kernel_size must be positive"),
    (lambda: nn.AvgPool3d(2, stride=0), ValueError, "stride must be positive"),
    (lambda: nn.AvgPool3d(2, divisor_override=0), ValueError, "divisor_override must be a "
     "non-zero int"),
    (lambda: nn.AdaptiveAvgPool3d((2, 2)), TypeError, "output_size must be an int or a tuple of 3"),
    (lambda: nn.AdaptiveMaxPool1d(0), ValueError, "output_size must be positive"),
    (lambda: nn.MaxUnpool2d(0), ValueError, "kernel_size must be positive"),
    (lambda: nn.LPPool2d(0, 2), ValueError, "norm_type must be non-zero"),
    (lambda: nn.SpatialPyramidPooling((1, 0)), ValueError, "levels must be a positive integer"),
    (lambda: nn.SpatialPyramidPooling(mode="sum"), ValueError, "mode must be 'max' or 'avg'"),
    (lambda: nn.SpatialPyramidPooling(()), TypeError, "levels must be a non-empty tuple"),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_constructor_validation(case):
    build, error, message = VALIDATION[case]
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


# -- SpatialPyramidPooling ------------------------------------------------------------------------

def _torch_spp(x: torch.Tensor, levels, mode: str) -> torch.Tensor:
    pool = TF.adaptive_max_pool2d if mode == "max" else TF.adaptive_avg_pool2d
    return torch.cat([pool(x, level).flatten(-3) for level in levels], dim=-1)


@given(h=st.integers(1, 13), w=st.integers(1, 13), mode=st.sampled_from(["max", "avg"]),
       levels=st.sampled_from([(1, 2, 4), (1,), (3, 1, 2), (6, 3)]))
def test_spatial_pyramid_pooling_is_concatenated_adaptive_pools(h, w, mode, levels):
    spp = nn.SpatialPyramidPooling(levels, mode)
    x = np.random.default_rng(2).standard_normal((2, 3, h, w))
    xo, xt = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, expected = spp(xo), _torch_spp(xt, levels, mode)
    assert y.shape == (2, spp.output_features(3)) == tuple(expected.shape)
    np.testing.assert_allclose(y.data, expected.detach().numpy(), atol=1e-12)
    upstream = np.random.default_rng(3).standard_normal(y.shape)
    (y * dn.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-12)


def test_spatial_pyramid_pooling_gives_a_fixed_length_for_any_input_size():
    """The SPP-Net property: C * (1 + 4 + 16) = 21 C features, whatever H x W, so one Linear
    layer after it serves 13x13 and 8x11 feature maps alike."""
    dn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.SpatialPyramidPooling(),
                          nn.Linear(5 * 21, 4))
    for size in ((13, 13), (8, 11), (4, 4)):
        x = dn.tensor(np.random.default_rng(4).standard_normal((3, 2, *size)).astype(np.float32))
        features = model[2](model[1](model[0](x)))
        assert features.shape == (3, 5 * 21)
        assert model(x).shape == (3, 4)
    single = dn.tensor(np.random.default_rng(5).standard_normal((5, 6, 7)))
    expected = _torch_spp(torch.tensor(single.numpy()), (1, 2, 4), "max")
    np.testing.assert_array_equal(nn.SpatialPyramidPooling()(single).numpy(), expected.numpy())
    assert repr(nn.SpatialPyramidPooling()) == "SpatialPyramidPooling(levels=(1, 2, 4), mode='max')"
