"""The activation catalogue against PyTorch: leaky_relu, prelu, rrelu, elu, selu, celu, gelu,
softplus, mish, silu, hardtanh, relu6, hardswish, hardsigmoid, softsign, logsigmoid.

Forward and gradient in float64 (including the kinks, where the derivative is PyTorch's choice),
float32 forward, hypothesis-drawn shapes, scales and hyper-parameters; one graph node per call;
in-place forms; errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from deepnotes.ops import activation as A
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5)

# name -> strategy of keyword hyper-parameters (PyTorch's names)
POINTWISE = {
    "leaky_relu": st.fixed_dictionaries({"negative_slope": st.floats(-2.0, 2.0)}),
    "elu": st.fixed_dictionaries({"alpha": st.floats(0.1, 3.0)}),
    "selu": st.just({}),
    # float32-representable alpha: see test_celu_gradient_uses_the_exact_inverse_alpha
    "celu": st.fixed_dictionaries({"alpha": st.floats(0.25, 3.0, width=32)}),
    "gelu": st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])}),
    "softplus": st.fixed_dictionaries({"beta": st.sampled_from([0.5, 1.0, 2.0, 3.0]),
                                       "threshold": st.sampled_from([1.0, 5.0, 20.0])}),
    "mish": st.just({}),
    "silu": st.just({}),
    "hardtanh": st.tuples(st.floats(-3.0, 1.0), st.floats(0.0, 3.0)).map(
        lambda p: {"min_val": p[0], "max_val": p[0] + p[1]}),
    "relu6": st.just({}),
    "hardswish": st.just({}),
    "hardsigmoid": st.just({}),
    "softsign": st.just({}),
    "logsigmoid": st.just({}),
}


def _with_kinks(x: np.ndarray, rng: np.random.Generator, kwargs: dict) -> np.ndarray:
    """Put the points where the derivative jumps (0, +-3, 6, the clamp bounds, the softplus
    threshold) into about a third of the entries, so PyTorch's choice there is checked too."""
    kinks = [0.0, -3.0, 3.0, 6.0, -1.0, 1.0]
    kinks += [v for k, v in kwargs.items() if k in ("min_val", "max_val")]
    if "threshold" in kwargs:
        kinks.append(kwargs["threshold"] / kwargs["beta"])
    flat = x.reshape(-1).copy()
    where = rng.random(flat.size) < 0.35
    flat[where] = rng.choice(kinks, size=int(where.sum()))
    return flat.reshape(x.shape)


@pytest.mark.parametrize("name", POINTWISE)
@given(data=st.data(), shape=shapes, seed=seeds, scale=st.sampled_from([0.5, 3.0, 30.0]))
def test_pointwise_activation_matches_torch(name, data, shape, seed, scale):
    kwargs = data.draw(POINTWISE[name])
    rng = np.random.default_rng(seed)
    x = _with_kinks(rng.standard_normal(shape) * scale, rng, kwargs)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        check_against_torch(getattr(A, name), name, (x,), **kwargs)


@pytest.mark.parametrize("name", ["elu", "selu", "celu", "gelu", "softplus", "mish", "silu",
                                  "logsigmoid", "softsign", "hardswish"])
def test_extreme_inputs_stay_finite_and_match_torch(name):
    """|x| = 800: e^800 overflows float64, so each op must avoid the naive exponential."""
    x = np.array([-800.0, -60.0, -1e-8, 0.0, 1e-8, 60.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = check_against_torch(getattr(A, name), name, (x,))
    assert np.isfinite(out.data).all()


@pytest.mark.parametrize("name,kwargs,x,expected", [
    # PyTorch's derivative at the kinks, written out (read off torch's backward kernels)
    ("leaky_relu", {"negative_slope": 0.2}, 0.0, 0.2),
    ("elu", {"alpha": 2.0}, 0.0, 2.0),
    ("celu", {"alpha": 2.0}, 0.0, 1.0),
    ("hardtanh", {"min_val": -1.0, "max_val": 1.0}, -1.0, 0.0),
    ("hardtanh", {"min_val": -1.0, "max_val": 1.0}, 1.0, 0.0),
    ("relu6", {}, 0.0, 0.0),
    ("relu6", {}, 6.0, 0.0),
    ("hardswish", {}, -3.0, 0.0),
    ("hardswish", {}, 3.0, 1.0),
    ("hardsigmoid", {}, 3.0, 0.0),
    ("softplus", {"beta": 1.0, "threshold": 2.0}, 2.0, 1 / (1 + np.exp(-2.0))),
    ("softsign", {}, 0.0, 1.0),
])
def test_derivative_at_the_kink_is_torchs(name, kwargs, x, expected):
    ours = dn.tensor([x], dtype=dn.float64, requires_grad=True)
    getattr(A, name)(ours, **kwargs).sum().backward()
    theirs = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    getattr(TF, name)(theirs, **kwargs).sum().backward()
    assert ours.grad.item() == pytest.approx(expected, rel=1e-12)
    assert theirs.grad.item() == pytest.approx(expected, rel=1e-12)


def test_celu_gradient_uses_the_exact_inverse_alpha():
    """PyTorch's celu backward takes the input scale as 1 / float32(alpha) (``alpha.toFloat()``
    in its derivative formula), so for an alpha that float32 cannot hold its float64 gradient is
    off by ~1e-7 relative. Ours is the exact e^{x/alpha}; the forward agrees to the last bit."""
    alpha = 2.7017382829348833
    x_np = np.array([-30.0, -10.0, -1.0, 0.0, 2.0])
    x = dn.tensor(x_np, requires_grad=True)
    y = A.celu(x, alpha)
    y.sum().backward()
    exact = np.where(x_np > 0, 1.0, np.exp(x_np / alpha))
    np.testing.assert_allclose(x.grad.data, exact, rtol=1e-14)
    xt = torch.tensor(x_np, requires_grad=True)
    yt = TF.celu(xt, alpha)
    yt.sum().backward()
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-6)
    torch_scale = 1 / float(np.float32(alpha))
    np.testing.assert_allclose(xt.grad.numpy(), np.where(
        x_np > 0, 1.0, torch_scale * alpha * np.exp(x_np * torch_scale)), rtol=1e-14)


# -- prelu ----------------------------------------------------------------------------------------


@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4), seed=seeds,
       per_channel=st.booleans())
def test_prelu_matches_torch_including_the_slope_gradient(shape, seed, per_channel):
    rng = np.random.default_rng(seed)
    x = _with_kinks(rng.standard_normal(shape) * 2, rng, {})
    channels = shape[1] if len(shape) >= 2 and per_channel else 1
    weight = rng.uniform(-0.5, 1.5, channels)
    check_against_torch(A.prelu, "prelu", (x, weight), names=["input", "weight"])


def test_prelu_scalar_weight_and_slope_gradient_by_hand(rng):
    x = np.array([[-2.0, 0.0, 3.0], [-1.0, -4.0, 5.0]])          # (N=2, C=3)
    check_against_torch(A.prelu, "prelu", (x, np.array(0.3)), names=["input", "weight"])
    xs = dn.tensor(x, requires_grad=True)
    w = dn.tensor([0.1, 0.2, 0.3], dtype=dn.float64, requires_grad=True)
    A.prelu(xs, w).sum().backward()
    np.testing.assert_allclose(w.grad.data, [-3.0, -4.0, 0.0])   # sum of x over x <= 0, per column
    np.testing.assert_allclose(xs.grad.data, [[0.1, 0.2, 1.0], [0.1, 0.2, 1.0]])


# -- rrelu ----------------------------------------------------------------------------------------

bounds = st.tuples(st.floats(0.0, 0.5), st.floats(0.0, 0.5)).map(lambda p: (p[0], p[0] + p[1]))


@given(shape=shapes, seed=seeds, lu=bounds)
def test_rrelu_evaluation_is_the_mean_slope_as_torch(shape, seed, lu):
    rng = np.random.default_rng(seed)
    x = _with_kinks(rng.standard_normal(shape), rng, {})
    check_against_torch(A.rrelu, "rrelu", (x,), lower=lu[0], upper=lu[1], training=False)


@given(seed=seeds, lu=bounds)
def test_rrelu_training_equals_a_leaky_relu_with_its_drawn_slopes(seed, lu):
    """Whatever slopes were drawn, the output and the gradient are those of x -> where(x > 0, x,
    r x) with r the slopes; PyTorch computes that expression here with our r as a constant."""
    rng = np.random.default_rng(seed)
    x_np = _with_kinks(rng.standard_normal((3, 4, 5)), rng, {})
    lower, upper = lu
    x = dn.tensor(x_np, requires_grad=True)
    y = A.rrelu(x, lower, upper, training=True)
    noise = y.grad_fn.noise                                    # the slopes used, 1 where x > 0
    upstream = rng.standard_normal(x_np.shape)
    y.backward(upstream)
    negative = x_np <= 0
    assert np.all(noise[~negative] == 1)
    assert np.all((noise[negative] >= lower) & (noise[negative] <= upper))
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.where(xt > 0, xt, xt * torch.tensor(noise))
    yt.backward(torch.tensor(upstream))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-15, atol=0)


def test_rrelu_training_slopes_are_uniform_like_torchs():
    lower, upper, n = 0.1, 0.4, 40_000
    x = -np.ones(n)
    dn.manual_seed(3)
    ours = -A.rrelu(dn.tensor(x), lower, upper, training=True).data
    torch.manual_seed(3)
    theirs = -TF.rrelu(torch.tensor(x), lower, upper, training=True).numpy()
    width = upper - lower
    sem = width / np.sqrt(12 * n)                              # standard error of the mean
    for slopes in (ours, theirs):
        assert lower <= slopes.min() and slopes.max() <= upper
        assert abs(slopes.mean() - (lower + upper) / 2) < 5 * sem
        assert abs(slopes.var() - width**2 / 12) < 0.03 * width**2 / 12
        # Kolmogorov-Smirnov distance to U(lower, upper); 1.95/sqrt(n) is the 0.1% critical value
        ordered = np.sort(slopes)
        cdf = (ordered - lower) / width
        ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
        assert ks < 1.95 / np.sqrt(n)
    assert len(np.unique(ours)) == n                          # drawn per element


def test_rrelu_draws_from_the_global_generator():
    x = dn.tensor(-np.ones((2, 3)))
    dn.manual_seed(7)
    first = A.rrelu(x, 0.2, 0.3, training=True).data
    dn.manual_seed(7)
    again = A.rrelu(x, 0.2, 0.3, training=True).data
    np.testing.assert_array_equal(first, again)
    expected = np.random.Generator(np.random.PCG64(7)).uniform(0.2, 0.3, (2, 3))
    np.testing.assert_allclose(-first, expected, rtol=1e-15)
    assert not np.array_equal(A.rrelu(x, 0.2, 0.3, training=True).data, first)


def test_rrelu_gradient_at_zero_is_the_drawn_slope():
    x = dn.tensor(np.zeros(5), requires_grad=True)
    y = A.rrelu(x, 0.1, 0.3, training=True)
    noise = y.grad_fn.noise                                    # read before backward frees it
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, noise)
    assert np.all((x.grad.data >= 0.1) & (x.grad.data <= 0.3))
    xt = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    TF.rrelu(xt, 0.1, 0.3, training=True).sum().backward()     # torch: also a drawn slope
    assert np.all((xt.grad.numpy() >= 0.1) & (xt.grad.numpy() <= 0.3))


# -- fused: one node per call ---------------------------------------------------------------------

FN_OF = {"leaky_relu": A.LeakyReluFn, "elu": A.EluFn, "selu": A.EluFn, "celu": A.EluFn,
         "softplus": A.SoftplusFn, "mish": A.MishFn, "silu": A.SiluFn, "hardtanh": A.HardtanhFn,
         "relu6": A.HardtanhFn, "hardswish": A.HardswishFn, "hardsigmoid": A.HardsigmoidFn,
         "softsign": A.SoftsignFn, "logsigmoid": A.LogsigmoidFn, "gelu": A.GeluFn}


@pytest.mark.parametrize("name", FN_OF)
def test_each_activation_is_one_graph_node(name):
    x = dn.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = getattr(A, name)(x)
    assert isinstance(y.grad_fn, FN_OF[name])
    assert len(y.grad_fn.inputs) == 1 and y.grad_fn.inputs[0] is x


def test_prelu_and_rrelu_are_one_graph_node():
    x = dn.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    w = dn.tensor([0.25], requires_grad=True)
    y = A.prelu(x, w)
    assert isinstance(y.grad_fn, A.PreluFn) and y.grad_fn.inputs == (x, w)
    y = A.rrelu(x, training=True)
    assert isinstance(y.grad_fn, A.RreluFn) and y.grad_fn.inputs == (x,)


# -- in-place forms -------------------------------------------------------------------------------

INPLACE = {"leaky_relu": {"negative_slope": 0.1}, "elu": {}, "selu": {}, "celu": {"alpha": 0.5},
           "mish": {}, "silu": {}, "hardtanh": {"min_val": -0.5, "max_val": 0.5}, "relu6": {},
           "hardswish": {}, "hardsigmoid": {}, "rrelu": {"training": False}}


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_writes_into_the_input_and_keeps_gradients(name):
    kwargs = INPLACE[name]
    values = np.array([-4.0, -1.0, 0.5, 2.0, 7.0])
    x = dn.tensor(values)
    view = x.data
    assert getattr(A, name)(x, inplace=True, **kwargs) is x
    expected = getattr(TF, name)(torch.tensor(values), **kwargs).numpy()
    np.testing.assert_allclose(x.data, expected, rtol=1e-12)
    assert x.data is view                                      # same memory, as PyTorch
    # in the graph: recorded out of place, the gradient still reaches the leaf
    w = dn.tensor(values, requires_grad=True)
    y = w * 1.0
    getattr(A, name)(y, inplace=True, **kwargs)
    y.sum().backward()
    wt = torch.tensor(values, requires_grad=True)
    getattr(TF, name)(wt * 1.0, inplace=True, **kwargs).sum().backward()
    # rtol 1e-7: torch's float64 hardsigmoid gradient is the float32 constant 1/6 (HardsigmoidFn)
    np.testing.assert_allclose(w.grad.data, wt.grad.numpy(), rtol=1e-7)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(A, name)(w, inplace=True, **kwargs)


# -- dtypes and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hardtanh", "relu6", "softsign"])
def test_integer_inputs_where_torch_accepts_them(name):
    values = np.array([-9, -1, 0, 2, 8])
    ours = getattr(A, name)(dn.tensor(values))
    theirs = getattr(TF, name)(torch.tensor(values))
    assert ours.dtype == theirs.numpy().dtype
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "selu", "celu", "softplus", "mish", "silu",
                                  "hardswish", "hardsigmoid", "logsigmoid", "rrelu"])
def test_integer_inputs_raise_like_torch(name):
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        getattr(A, name)(dn.tensor([1, -2]))
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        getattr(TF, name)(torch.tensor([1, -2]))


@pytest.mark.parametrize("name", list(POINTWISE) + ["rrelu"])
def test_non_tensors_are_rejected(name):
    with pytest.raises(TypeError, match="must be Tensor"):
        getattr(A, name)(np.ones(3))


def test_argument_errors():
    x = dn.tensor([1.0, -2.0])
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        A.hardtanh(x, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal to the upper"):
        A.rrelu(x, 0.5, 0.1, training=True)
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        A.celu(x, alpha=0.0)
    with pytest.raises(TypeError, match="'negative_slope' must be a number"):
        A.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="'beta' must be a number"):
        A.softplus(x, beta=None)
    xs = dn.tensor(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="Found parameter numbers = 2 and channel size = 3"):
        A.prelu(xs, dn.ones(2))
    with pytest.raises(RuntimeError, match="Found parameter numbers = 3 and channel size = 1"):
        A.prelu(dn.ones(3), dn.ones(3))
    with pytest.raises(RuntimeError, match="to be a scalar or 1D tensor, but got: ndim = 2"):
        A.prelu(xs, dn.ones(3, 1))
    with pytest.raises(TypeError, match="'weight' must be Tensor"):
        A.prelu(xs, 0.25)
