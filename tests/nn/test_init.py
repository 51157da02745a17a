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


def _truncated_normal_moments(mean, std, a, b):
    """Mean and variance of N(mean, std^2) conditioned on [a, b], from their closed forms."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / mass
    var = std**2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift**2)
    return mean + std * shift, var


# (mean, std, a, b): wide (normal proposals), narrow, one-sided tail, far tail (uniform proposals)
TRUNC_CASES = [(0.0, 1.0, -2.0, 2.0), (0.5, 2.0, -1.0, 3.0), (0.0, 1.0, -0.3, 0.2),
               (1.0, 0.5, 1.8, 4.0), (0.0, 1.0, 3.0, 3.5)]


@pytest.mark.parametrize("mean,std,a,b", TRUNC_CASES)
def test_trunc_normal_is_the_truncated_distribution(mean, std, a, b):
    from scipy import stats

    dn.manual_seed(0)
    n = 40_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the far-tail case warns (tested below)
        w = init.trunc_normal_(dn.empty(n, dtype=dn.float64), mean=mean, std=std, a=a, b=b).data
        torch.manual_seed(0)                  # (fewer: torch's tail sampler is slow)
        theirs = torch.nn.init.trunc_normal_(torch.empty(5000, dtype=torch.float64), mean, std,
                                             a, b)
    assert w.min() >= a and w.max() <= b
    expected_mean, expected_var = _truncated_normal_moments(mean, std, a, b)
    spread = math.sqrt(expected_var)
    assert abs(w.mean() - expected_mean) < 4 * spread / math.sqrt(n)
    assert abs(w.var() / expected_var - 1) < 0.04
    truncated = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(w, truncated.cdf).pvalue > 1e-3         # the whole distribution
    assert stats.ks_2samp(w, theirs.numpy()).pvalue > 1e-3      # same law as torch's samples


def test_trunc_normal_float32_bounds_warning_and_errors():
    dn.manual_seed(0)
    w = init.trunc_normal_(dn.empty(50, 50), std=1.0, a=-0.1, b=0.1).data
    assert w.dtype == np.float32 and w.min() >= np.float32(-0.1) and w.max() <= np.float32(0.1)
    for module, factory in ((torch.nn.init, torch.empty), (init, dn.empty)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module.trunc_normal_(factory(100), mean=0.0, std=1.0, a=10.0, b=11.0)
        assert [str(c.message) for c in caught] == [
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of "
            "values may be incorrect."]
    with pytest.raises(ValueError, match="expected a < b"):
        init.trunc_normal_(dn.empty(3), a=1.0, b=-1.0)
    with pytest.raises(ValueError, match="expected std > 0"):
        init.trunc_normal_(dn.empty(3), std=0.0)


@given(st.integers(1, 7), st.integers(1, 7), st.sampled_from([(), (2,), (3, 2)]),
       st.sampled_from([0.5, 1.0, 2.0]))
def test_orthogonal_is_the_sign_fixed_qr_of_a_gaussian(rows, cols, kernel, gain):
    """Q has orthonormal rows or columns, and Q R = X with R upper triangular with a positive
    diagonal: the unique QR factor PyTorch's algorithm returns (X the Gaussian it drew)."""
    shape = (rows, cols, *kernel)
    w = init.orthogonal_(dn.empty(*shape, dtype=dn.float64), gain=gain,
                         generator=np.random.default_rng(7)).data
    flat = w.reshape(rows, -1) / gain                               # (rows, cols * k)
    x = np.random.default_rng(7).standard_normal(flat.shape)
    if rows < flat.shape[1]:
        flat, x = flat.T, x.T                                       # tall: (n, m), n >= m
    np.testing.assert_allclose(flat.T @ flat, np.eye(flat.shape[1]), atol=1e-12)
    r = flat.T @ x                                                  # (m, m) = R
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-12)
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(flat @ r, x, atol=1e-12)


def test_orthogonal_is_haar_distributed():
    """With the sign fix, Q is uniform on the orthogonal group: every entry has mean 0 and
    variance 1/n (without it, LAPACK's Householder QR gives Q[0, 0] < 0 every time)."""
    n, draws = 4, 2000
    gen = np.random.default_rng(0)
    samples = np.stack([init.orthogonal_(dn.empty(n, n, dtype=dn.float64), generator=gen).data
                        for _ in range(draws)])
    assert np.abs(samples.mean(axis=0)).max() < 4 / math.sqrt(n * draws)
    np.testing.assert_allclose(samples.var(axis=0), 1 / n, rtol=0.1)
    np.testing.assert_allclose(np.abs(np.linalg.det(samples)), 1, atol=1e-12)
    assert 0.45 < np.mean(np.linalg.det(samples) > 0) < 0.55        # both components of O(n)
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions"):
        init.orthogonal_(dn.empty(3))
    assert init.orthogonal_(dn.empty(0, 3)).shape == (0, 3)


@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5),
       st.integers(3, 5))
def test_dirac_matches_torch(groups, out_per_group, in_channels, k, ndim):
    shape = (groups * out_per_group, in_channels, *([k] * (ndim - 2)))
    ours = init.dirac_(dn.full(shape, 5.0, dtype=dn.float64), groups=groups)
    theirs = torch.nn.init.dirac_(torch.full(shape, 5.0, dtype=torch.float64), groups=groups)
    np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_dirac_conv_is_the_identity(rng):
    """A dirac-initialised conv with 'same' padding copies its input channels (per group)."""
    import deepnotes.nn.functional as F  # noqa: N812

    x = rng.standard_normal((2, 4, 6, 7))
    w = init.dirac_(dn.empty(4, 2, 3, 5, dtype=dn.float64), groups=2)
    y = F.conv2d(dn.tensor(x), w, padding=(1, 2), groups=2)
    np.testing.assert_allclose(y.data, x, atol=1e-15)


def test_dirac_and_eye_errors_match_torch():
    cases = [(lambda m, t: m.dirac_(t(3, 3)), ValueError),
             (lambda m, t: m.dirac_(t(3, 2, 3, 3), groups=2), ValueError),
             (lambda m, t: m.sparse_(t(3, 3, 3), 0.1), ValueError)]
    for action, error in cases:
        with pytest.raises(error) as theirs:
            action(torch.nn.init, torch.empty)
        with pytest.raises(error) as ours:
            action(init, dn.empty)
        assert str(ours.value).startswith(str(theirs.value))   # + the actual values
    for shape in [(3, 5), (5, 3), (4, 4)]:
        np.testing.assert_array_equal(init.eye_(dn.empty(*shape)).data,
                                      torch.nn.init.eye_(torch.empty(*shape)).numpy())


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.35, 1.0])
def test_sparse_zeroes_a_fixed_share_of_each_column(sparsity):
    rows, cols = 40, 300
    w = init.sparse_(dn.empty(rows, cols, dtype=dn.float64), sparsity, std=0.5,
                     generator=np.random.default_rng(0)).data
    theirs = torch.nn.init.sparse_(torch.empty(rows, cols, dtype=torch.float64), sparsity,
                                   std=0.5).numpy()
    zeros = (w == 0).sum(axis=0)
    np.testing.assert_array_equal(zeros, (theirs == 0).sum(axis=0))
    assert np.all(zeros == math.ceil(sparsity * rows))
    if sparsity < 1:
        assert abs(w[w != 0].std() - 0.5) < 0.02 and abs(theirs[theirs != 0].std() - 0.5) < 0.02
        rows_hit = (w == 0).sum(axis=1)                           # the zero rows are random
        assert sparsity == 0 or rows_hit.min() > 0


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


NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("a", [0, 0.2, math.sqrt(5)])
def test_kaiming_in_every_combination_matches_torch(nonlinearity, mode, a):
    """std = gain(nonlinearity, a) / sqrt(fan) with torch's gain and fan, drawn exactly from our
    generator; torch's own samples have that std too."""
    shape = (60, 40, 3, 2)                                        # 14,400 samples
    tn = torch.nn.init
    fan = tn._calculate_correct_fan(torch.empty(shape), mode)
    std = tn.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    assert init.calculate_gain(nonlinearity, a) == pytest.approx(
        tn.calculate_gain(nonlinearity, a), rel=1e-15)
    bound = math.sqrt(3) * std
    for name, expected in [("kaiming_uniform_", lambda g: g.uniform(-bound, bound, shape)),
                           ("kaiming_normal_", lambda g: g.normal(0.0, std, shape))]:
        w = getattr(init, name)(dn.empty(*shape, dtype=dn.float64), a=a, mode=mode,
                                nonlinearity=nonlinearity, generator=np.random.default_rng(3))
        np.testing.assert_allclose(w.data, expected(np.random.default_rng(3)), rtol=1e-13)
        torch.manual_seed(0)
        theirs = getattr(tn, name)(torch.empty(shape, dtype=torch.float64), a=a, mode=mode,
                                   nonlinearity=nonlinearity).numpy()
        assert abs(theirs.std() / std - 1) < 0.03 and abs(w.data.std() / std - 1) < 0.03


@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.sampled_from(NONLINEARITIES))
def test_xavier_with_every_gain_matches_torch(shape, nonlinearity):
    tn = torch.nn.init
    fan_in, fan_out = tn._calculate_fan_in_and_fan_out(torch.empty(shape))
    gain = tn.calculate_gain(nonlinearity)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    w = init.xavier_uniform_(dn.empty(*shape, dtype=dn.float64), gain=gain,
                             generator=np.random.default_rng(1))
    bound = math.sqrt(3) * std
    np.testing.assert_allclose(w.data, np.random.default_rng(1).uniform(-bound, bound, shape),
                               rtol=1e-13)
    w = init.xavier_normal_(dn.empty(*shape, dtype=dn.float64), gain=gain,
                            generator=np.random.default_rng(1))
    np.testing.assert_allclose(w.data, np.random.default_rng(1).normal(0.0, std, shape),
                               rtol=1e-13)
