"""The activation modules against torch.nn with copied weights (forward, input and parameter
gradients in float64, float32 forward, state_dict keys, repr), RReLU's two modes, and Maxout
(not in PyTorch) against an explicit max of linear maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from tests.helpers import check_gradients
from tests.nn.test_layers import both, check_layer

CONFIGS = [
    ("LeakyReLU", (), {}), ("LeakyReLU", (0.2,), {"inplace": True}),
    ("PReLU", (), {}), ("PReLU", (4,), {"init": -0.1}),
    ("RReLU", (), {}), ("RReLU", (0.1, 0.3), {"inplace": True}),
    ("ELU", (), {}), ("ELU", (0.5,), {"inplace": True}),
    ("CELU", (2.0,), {}), ("SELU", (), {}), ("SELU", (True,), {}),
    ("GELU", (), {}), ("GELU", ("tanh",), {}),
    ("Softplus", (), {}), ("Softplus", (2, 3), {}),
    ("Mish", (), {}), ("Mish", (True,), {}), ("SiLU", (), {}), ("SiLU", (True,), {}),
    ("Hardtanh", (), {}), ("Hardtanh", (-2, 0.5), {"inplace": True}),
    ("ReLU6", (), {}), ("ReLU6", (True,), {}),
    ("Hardswish", (), {}), ("Hardsigmoid", (True,), {}),
    ("Softsign", (), {}), ("LogSigmoid", (), {}),
]


def _inplace(args, kwargs) -> bool:
    return kwargs.get("inplace", False) or (bool(args) and args[-1] is True)


@pytest.mark.parametrize("name,args,kwargs", [c for c in CONFIGS if not _inplace(c[1], c[2])])
@settings(max_examples=5)  # the modules only call F.*, tested in depth in tests/ops
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 3), spatial=st.integers(1, 4))
def test_activation_module_matches_torch(name, args, kwargs, seed, batch, spatial):
    ours, theirs = both(name, *args, **kwargs)
    ours.eval()                                       # RReLU: its deterministic mode
    theirs.eval()
    if name == "PReLU":                               # distinct slopes per channel
        with torch.no_grad():
            theirs.weight.uniform_(-0.5, 1.0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 4, spatial)) * 3
    x.reshape(-1)[::5] = 0.0                          # the kink of the ReLU family
    check_layer(ours, theirs, x)


@pytest.mark.parametrize("name,args,kwargs", [c for c in CONFIGS if _inplace(c[1], c[2])])
def test_inplace_activation_module_matches_torch(name, args, kwargs):
    """In place on the output of an op (a leaf that requires grad cannot be modified)."""
    ours, theirs = both(name, *args, **kwargs)
    assert repr(ours) == repr(theirs)
    ours.eval()
    theirs.eval()
    x_np = np.random.default_rng(0).standard_normal((2, 4, 3)) * 3
    x, xt = dn.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    h, ht = x * 1.0, xt * 1.0
    y, yt = ours(h), theirs(ht)
    assert y is h and yt is ht                        # the input object is returned
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    upstream = np.random.default_rng(1).standard_normal(x_np.shape)
    y.backward(upstream)
    yt.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-7, atol=1e-14)


def test_prelu_per_channel_slope_gradient_on_images():
    ours, theirs = both("PReLU", 3)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.1, -0.2, 0.5]))
    check_layer(ours, theirs, np.random.default_rng(1).standard_normal((2, 3, 4, 4)))
    assert np.all(nn.PReLU(5).weight.data == 0.25) and nn.PReLU().weight.shape == (1,)


def test_rrelu_module_training_draws_slopes_and_evaluation_uses_their_mean():
    layer = nn.RReLU(0.1, 0.3)
    x = dn.tensor(-np.ones(20_000))
    dn.manual_seed(0)
    slopes = -layer(x).data
    assert 0.1 <= slopes.min() and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 5 * 0.2 / math.sqrt(12 * 20_000)
    layer.eval()
    np.testing.assert_array_equal(-layer(x).data, 0.2)
    theirs = torch.nn.RReLU(0.1, 0.3).eval()(-torch.ones(3, dtype=torch.float64))
    np.testing.assert_allclose(-theirs.numpy(), 0.2, rtol=1e-15)


def test_activation_module_errors():
    with pytest.raises(ValueError, match=r"max_val \(1\) must be greater than min_val \(2\)"):
        nn.Hardtanh(2, 1)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU("erf")
    with pytest.raises(ValueError, match="num_parameters must be a positive integer"):
        nn.PReLU(0)
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        nn.RReLU(0.5, 0.1)
    with pytest.raises(TypeError, match="negative_slope must be a number"):
        nn.LeakyReLU("0.1")
    with pytest.raises(RuntimeError, match="Found parameter numbers = 3 and channel size = 2"):
        nn.PReLU(3)(dn.ones(4, 2))


# -- Maxout ---------------------------------------------------------------------------------------


def _torch_maxout(x, weight, bias, out_features, pieces):
    """max over k of (x W_k^T + b_k), W_k the rows of unit j's k-th piece, written as a loop."""
    maps = []
    for k in range(pieces):
        rows = torch.arange(out_features) * pieces + k                # piece k of every unit
        maps.append(x @ weight[rows].T + (0 if bias is None else bias[rows]))
    return torch.stack(maps).max(dim=0).values


@given(in_features=st.integers(1, 5), out_features=st.integers(1, 4), pieces=st.integers(1, 4),
       lead=st.lists(st.integers(1, 3), max_size=2), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_maxout_is_the_max_of_linear_maps(in_features, out_features, pieces, lead, bias, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Maxout(in_features, out_features, pieces, bias=bias).double()
    w, b = layer.weight.data, None if layer.bias is None else layer.bias.data
    x_np = rng.standard_normal((*lead, in_features))
    x = dn.tensor(x_np, requires_grad=True)
    y = layer(x)
    assert y.shape == (*lead, out_features)
    xt = torch.tensor(x_np, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    yt = _torch_maxout(xt, wt, bt, out_features, pieces)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(y.shape)
    y.backward(upstream)
    yt.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.data, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.bias.grad.data, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_maxout_gradients_numerically(rng):
    layer = nn.Maxout(3, 2, 3).double()
    w, b = layer.weight.data.copy(), layer.bias.data.copy()

    def fn(x, weight, bias):
        layer.weight.data, layer.bias.data = weight.data, bias.data
        z = nn.functional.linear(x, weight, bias).reshape(4, 2, 3)
        return z.amax(-1)

    check_gradients(fn, rng.standard_normal((4, 3)), w, b)
    layer.weight.data, layer.bias.data = w, b
    np.testing.assert_allclose(layer(dn.tensor(np.eye(3))).data,
                               (np.eye(3) @ w.T + b).reshape(3, 2, 3).max(-1), rtol=1e-14)


def test_maxout_with_one_fixed_zero_piece_is_relu():
    layer = nn.Maxout(2, 2, 2, bias=False).double()
    layer.weight.data[...] = [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    x = np.random.default_rng(0).standard_normal((5, 2))
    np.testing.assert_array_equal(layer(dn.tensor(x)).data, np.maximum(x, 0))


def test_maxout_parameters_init_repr_and_errors():
    dn.manual_seed(0)
    layer = nn.Maxout(64, 10, 3)
    assert layer.weight.shape == (30, 64) and layer.bias.shape == (30,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    bound = 1 / math.sqrt(64)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound
    assert repr(layer) == "Maxout(in_features=64, out_features=10, pieces=3, bias=True)"
    with pytest.raises(ValueError, match="pieces must be a positive integer"):
        nn.Maxout(3, 2, 0)
    with pytest.raises(TypeError, match="in_features must be an int"):
        nn.Maxout(2.5, 2, 2)
