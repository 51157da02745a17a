"""nn.init against torch.nn.init: gains, fans, bounds, variances and errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.nn import init

GAIN_CASES = [("linear",), ("conv2d",), ("conv_transpose3d",), ("sigmoid",), ("tanh",), ("relu",),
              ("leaky_relu",), ("leaky_relu", 0.2), ("leaky_relu", 1), ("selu",)]


@pytest.mark.parametrize("args", GAIN_CASES)
def test_calculate_gain_matches_torch(args):
    assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args),
                                                       rel=1e-15)


@pytest.mark.parametrize("args", [("foo",), ("leaky_relu", "x"), ("leaky_relu", True)])
def test_calculate_gain_errors_match_torch(args):
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.calculate_gain(*args)
    with pytest.raises(ValueError) as ours:
        init.calculate_gain(*args)
    assert str(ours.value) == str(theirs.value)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_fans_match_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(dn.zeros(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    for mode in ("fan_in", "fan_out", "FAN_IN"):
        assert init._calculate_correct_fan(dn.zeros(*shape), mode) == \
            torch.nn.init._calculate_correct_fan(torch.zeros(*shape), mode.lower())


ERROR_CASES = [
    (lambda m, t: m.xavier_uniform_(t(3)), "fewer than 2 dimensions"),
    (lambda m, t: m.xavier_normal_(t(3)), "fewer than 2 dimensions"),
    (lambda m, t: m.kaiming_uniform_(t(3)), "fewer than 2 dimensions"),
    (lambda m, t: m.kaiming_normal_(t(3, 3), mode="fan_avg"), "Mode fan_avg not supported"),
    (lambda m, t: m.kaiming_uniform_(t(3, 3), nonlinearity="swish"), "Unsupported nonlinearity"),
    (lambda m, t: m.eye_(t(3, 3, 3)), "Only tensors with 2 dimensions are supported"),
]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
def test_errors_match_torch(case):
    action, fragment = ERROR_CASES[case]
    with pytest.raises(ValueError) as theirs:
        action(torch.nn.init, torch.zeros)
    with pytest.raises(ValueError) as ours:
        action(init, dn.zeros)
    assert str(ours.value) == str(theirs.value) and fragment in str(ours.value)
    with pytest.raises(TypeError, match="must be Tensor"):
        init.normal_(np.zeros(3))


def _torch_sample(fn, shape, **kwargs):
    torch.manual_seed(0)
    t = torch.empty(*shape, dtype=torch.float64)
    fn(t, **kwargs)
    return t.numpy()


# (function name, kwargs, shape, kind, expected std from the formula, with torch's fan and gain)
def _std_cases():
    tn = torch.nn.init
    w = torch.empty(200, 50, 3, 3)
    fan_in, fan_out = tn._calculate_fan_in_and_fan_out(w)
    return [
        ("xavier_uniform_", {}, "uniform", math.sqrt(2 / (fan_in + fan_out))),
        ("xavier_uniform_", {"gain": 2.0}, "uniform", 2 * math.sqrt(2 / (fan_in + fan_out))),
        ("xavier_normal_", {"gain": 0.5}, "normal", 0.5 * math.sqrt(2 / (fan_in + fan_out))),
        ("kaiming_uniform_", {"nonlinearity": "relu"}, "uniform", math.sqrt(2 / fan_in)),
        ("kaiming_uniform_", {"a": math.sqrt(5)}, "uniform", 1 / math.sqrt(3 * fan_in)),
        ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, "normal",
         math.sqrt(2 / fan_out)),
        ("kaiming_normal_", {"a": 0.1}, "normal",
         tn.calculate_gain("leaky_relu", 0.1) / math.sqrt(fan_in)),
        ("kaiming_normal_", {"nonlinearity": "tanh", "mode": "fan_out"}, "normal",
         5 / 3 / math.sqrt(fan_out)),
    ]


@pytest.mark.parametrize("case", _std_cases(), ids=lambda c: f"{c[0]}{c[1]}" if isinstance(
    c, tuple) else str(c))
def test_variance_and_bounds_match_formula_and_torch(case):
    name, kwargs, kind, std = case
    shape = (200, 50, 3, 3)                               # 90,000 samples
    dn.manual_seed(1)
    w = dn.empty(*shape, dtype=dn.float64)
    assert getattr(init, name)(w, **kwargs) is w
    theirs = _torch_sample(getattr(torch.nn.init, name), shape, **kwargs)
    assert abs(w.data.std() - std) < 0.02 * std            # sampling error ~0.3%
    assert abs(w.data.std() - theirs.std()) < 0.03 * std
    assert abs(w.data.mean()) < 0.02 * std
    if kind == "uniform":
        bound = math.sqrt(3) * std
        assert np.abs(w.data).max() <= bound and np.abs(theirs).max() <= bound * (1 + 1e-12)
        assert np.abs(w.data).max() > 0.999 * bound
    else:                                                   # Gaussian: 4th moment 3 sigma^4
        kurtosis = np.mean(w.data**4) / w.data.var() ** 2
        assert abs(kurtosis - 3) < 0.1


def test_simple_fills_and_uniform_normal():
    t = dn.empty(30, 40, dtype=dn.float64)
    assert np.all(init.constant_(t, 0.3).data == 0.3)
    assert np.all(init.ones_(t).data == 1) and np.all(init.zeros_(t).data == 0)
    np.testing.assert_array_equal(init.eye_(t).data, torch.nn.init.eye_(torch.empty(30, 40)))
    dn.manual_seed(0)
    init.uniform_(t, -2, 3)
    assert t.data.min() >= -2 and t.data.max() < 3 and abs(t.data.mean() - 0.5) < 0.1
    init.normal_(t, 1.0, 0.5)
    assert abs(t.data.mean() - 1.0) < 0.05 and abs(t.data.std() - 0.5) < 0.03


def test_trunc_normal_matches_torch_statistics():
    dn.manual_seed(0)
    w = init.trunc_normal_(dn.empty(100_000, dtype=dn.float64), mean=0.5, std=2.0, a=-1.0, b=3.0)
    theirs = _torch_sample(torch.nn.init.trunc_normal_, (100_000,), mean=0.5, std=2.0, a=-1.0,
                           b=3.0)
    assert w.data.min() >= -1 and w.data.max() <= 3
    assert abs(w.data.mean() - theirs.mean()) < 0.03
    assert abs(w.data.std() - theirs.std()) < 0.03
    with pytest.raises(ValueError):
        init.trunc_normal_(dn.empty(3), mean=0.0, std=1.0, a=10.0, b=11.0)


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 2, 3, 3)])
def test_orthogonal(shape):
    w = init.orthogonal_(dn.empty(*shape, dtype=dn.float64), gain=2.0)
    flat = w.data.reshape(shape[0], -1)
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(gram, 4 * np.eye(gram.shape[0]), atol=1e-12)
    with pytest.raises(ValueError):
        init.orthogonal_(dn.empty(3))


def test_in_place_without_graph_and_reproducible():
    p = dn.zeros(20, 10, requires_grad=True)
    dn.manual_seed(3)
    init.kaiming_uniform_(p)
    first = p.data.copy()
    assert p.is_leaf and p.grad_fn is None and p.requires_grad and p._version > 0
    dn.manual_seed(3)
    init.kaiming_uniform_(p)
    np.testing.assert_array_equal(p.data, first)
    gen = np.random.default_rng(5)
    a = init.xavier_normal_(dn.empty(5, 5), generator=gen).data.copy()
    b = init.xavier_normal_(dn.empty(5, 5), generator=np.random.default_rng(5)).data
    np.testing.assert_array_equal(a, b)


def test_zero_element_tensor_warns_like_torch():
    for module, factory in ((torch.nn.init, torch.zeros), (init, dn.zeros)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module.kaiming_uniform_(factory(0, 3))
        assert [str(w.message) for w in caught] == ["Initializing zero-element tensors is a no-op"]
