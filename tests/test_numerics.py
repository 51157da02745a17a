"""Numerical guards: extreme logits stay finite, and float32 stays float32.

1. log-sum-exp, softmax, log_softmax, sigmoid, logsigmoid, softplus, BCE-with-logits and
   cross-entropy on float32 logits of +-1e4 (where e^x overflows float32 at x > 88.7) give finite
   values and finite gradients, equal to PyTorch's.
2. Every function of the functional API (``deepnotes.nn.functional``), and the tensor operators
   with Python-scalar and NumPy-scalar operands, return float32 for float32 inputs, as PyTorch
   does: no silent promotion to float64 by a Python float, a NumPy float64 scalar or a float64
   constant inside an op. The gradients that flow back are float32 too.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import deepnotes as dn
import deepnotes.nn.functional as F

# -- 1. extreme logits ----------------------------------------------------------------------------

BIG = 1e4
LOGITS = np.array([[BIG, -BIG, 0.0, 1.0],
                   [-BIG, -BIG, -BIG, -BIG],
                   [BIG, BIG, BIG, -BIG],
                   [BIG, BIG - 1, BIG - 30, -BIG],
                   [0.5, -0.5, 2.0, 100.0]], dtype=np.float32)
TARGETS = np.array([0, 3, 1, 2, 3])
PROBS = np.array([[1.0, 0.0, 0.0, 0.0], [0.25] * 4, [0.0, 0.5, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4],
                  [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)

EXTREME = {
    "logsumexp_dim1": (lambda lib, z: lib.logsumexp(z, 1), ()),
    "logsumexp_dim0_keepdim": (lambda lib, z: lib.logsumexp(z, 0, keepdim=True), ()),
    "logsumexp_all_dims": (lambda lib, z: lib.logsumexp(z, (0, 1)), ()),
    "softmax": (lambda lib, z: lib.softmax(z, 1), ()),
    "softmax_dim0": (lambda lib, z: lib.nn.functional.softmax(z, dim=0), ()),
    "log_softmax": (lambda lib, z: lib.nn.functional.log_softmax(z, dim=1), ()),
    "sigmoid": (lambda lib, z: lib.sigmoid(z), ()),
    "tanh": (lambda lib, z: lib.tanh(z), ()),
    "logsigmoid": (lambda lib, z: lib.nn.functional.logsigmoid(z), ()),
    "softplus": (lambda lib, z: lib.nn.functional.softplus(z), ()),
    "bce_with_logits": (lambda lib, z, t: lib.nn.functional.binary_cross_entropy_with_logits(
        z, t, reduction="none"), ("probs",)),
    "bce_with_logits_mean_pos_weight": (
        lambda lib, z, t: lib.nn.functional.binary_cross_entropy_with_logits(
            z, t, pos_weight=lib.tensor([1.0, 2.0, 0.5, 3.0])), ("probs",)),
    "cross_entropy_indices": (lambda lib, z, y: lib.nn.functional.cross_entropy(
        z, y, reduction="none"), ("targets",)),
    "cross_entropy_smoothed_mean": (lambda lib, z, y: lib.nn.functional.cross_entropy(
        z, y, label_smoothing=0.1), ("targets",)),
    "cross_entropy_probabilities": (lambda lib, z, t: lib.nn.functional.cross_entropy(
        z, t, reduction="none"), ("probs",)),
    "nll_of_log_softmax": (lambda lib, z, y: lib.nn.functional.nll_loss(
        lib.nn.functional.log_softmax(z, dim=1), y), ("targets",)),
}


def _extra(lib: Any, kind: str) -> Any:
    return lib.tensor(TARGETS) if kind == "targets" else lib.tensor(PROBS)


@pytest.mark.parametrize("name", EXTREME)
def test_extreme_float32_logits_give_finite_values_and_gradients_equal_to_torch(name):
    fn, extras = EXTREME[name]
    z = dn.tensor(LOGITS, requires_grad=True)
    zt = torch.tensor(LOGITS, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow inside
        out = fn(dn, z, *[_extra(dn, k) for k in extras])
    out_t = fn(torch, zt, *[_extra(torch, k) for k in extras])
    assert out.dtype == dn.float32
    assert np.isfinite(out.data).all(), out.data
    expected = out_t.detach().numpy()
    np.testing.assert_allclose(out.data, expected, rtol=1e-6, atol=1e-6)
    upstream = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (out * dn.tensor(upstream)).sum().backward()
    (out_t * torch.tensor(upstream)).sum().backward()
    assert z.grad.dtype == dn.float32 and np.isfinite(z.grad.data).all()
    np.testing.assert_allclose(z.grad.data, zt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_log_softmax_of_extreme_logits_is_finite_where_torch_is():
    # log_softmax may be -2e4 (a finite log-probability of ~e^-20000), never -inf or nan
    out = F.log_softmax(dn.tensor(LOGITS), dim=1)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, torch.log_softmax(torch.tensor(LOGITS), 1).numpy(),
                               rtol=1e-6)


def test_naive_formulas_overflow_so_the_stable_ones_matter():
    with np.errstate(all="ignore"):
        naive = np.log(np.exp(LOGITS).sum(axis=1))
    assert not np.isfinite(naive).all()
    stable = dn.logsumexp(dn.tensor(LOGITS), 1)
    assert np.isfinite(stable.data).all()


def test_logsumexp_matches_torch_on_random_shapes(rng):
    for shape, dim, keepdim in [((3, 4), 1, False), ((2, 3, 5), (0, 2), True), ((6,), 0, False),
                                ((2, 0, 3), 2, False), ((2, 3), -1, True)]:
        x = rng.standard_normal(shape) * 30
        ours = dn.tensor(x, requires_grad=True)
        theirs = torch.tensor(x, requires_grad=True)
        y, yt = dn.logsumexp(ours, dim, keepdim), torch.logsumexp(theirs, dim, keepdim)
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(yt.shape)
        (y * dn.tensor(g)).sum().backward()
        (yt * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_logsumexp_gradient_is_the_softmax(rng):
    x = dn.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    dn.logsumexp(x, 1).sum().backward()
    np.testing.assert_allclose(x.grad.data, dn.softmax(x.detach(), 1).data, rtol=1e-12)


def test_logsumexp_infinities_as_torch():
    for values in ([-np.inf, -np.inf], [np.inf, 1.0], [np.inf, -np.inf]):
        x = dn.tensor(values, requires_grad=True)
        xt = torch.tensor(values, requires_grad=True)
        with np.errstate(all="ignore"):
            y = dn.logsumexp(x, 0)
            y.backward()
        yt = torch.logsumexp(xt, 0)
        yt.backward()
        np.testing.assert_array_equal(y.data, yt.detach().numpy())
        np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())


def test_logsumexp_of_integers_is_float32_and_method_and_errors():
    assert dn.logsumexp(dn.tensor([1, 2, 3]), 0).dtype == dn.float32
    assert dn.randn(2, 3).logsumexp(1).shape == (2,)
    with pytest.raises(IndexError, match="Dimension out of range"):
        dn.logsumexp(dn.randn(2, 3), 2)


# -- 2. float32 in -> float32 out, over the functional API ---------------------------------------


def r(lib: Any, *shape: int, low: float | None = None, grad: bool = True) -> Any:
    """float32 values, the same in both frameworks (uniform in [low, 1) when ``low`` is given)."""
    rng = np.random.default_rng(len(shape) * 7 + sum(shape))
    array = rng.uniform(low, 1.0, shape) if low is not None else rng.standard_normal(shape)
    return lib.tensor(array.astype(np.float32), requires_grad=grad)


def ints(lib: Any, high: int, *shape: int) -> Any:
    return lib.tensor(np.random.default_rng(sum(shape)).integers(0, high, shape))


def signs(lib: Any, *shape: int) -> Any:
    values = np.where(np.random.default_rng(3).standard_normal(shape) > 0, 1.0, -1.0)
    return lib.tensor(values.astype(np.float32))


def _unpool(dim: int) -> Callable:
    def build(lib: Any) -> tuple:
        shape = {1: (2, 3, 6), 2: (2, 3, 6, 6), 3: (1, 2, 4, 4, 4)}[dim]
        pool = getattr(lib.nn.functional, f"max_pool{dim}d")
        values, indices = pool(r(lib, *shape, grad=False), 2, return_indices=True)
        return (values.detach().requires_grad_(), indices, 2), {}
    return build


def _ctc(lib: Any) -> tuple:
    log_probs = lib.nn.functional.log_softmax(r(lib, 6, 2, 4), dim=2)
    targets = lib.tensor([[1, 2], [3, 3]])
    return (log_probs, targets, lib.tensor([6, 5]), lib.tensor([2, 2])), {}


X4 = (2, 3, 6, 6)
SAMPLES: dict[str, Callable[[Any], tuple[tuple, dict]]] = {
    "adaptive_avg_pool1d": lambda lib: ((r(lib, 2, 3, 7), 3), {}),
    "adaptive_avg_pool2d": lambda lib: ((r(lib, *X4), (2, 3)), {}),
    "adaptive_avg_pool3d": lambda lib: ((r(lib, 1, 2, 4, 4, 5), 2), {}),
    "adaptive_max_pool1d": lambda lib: ((r(lib, 2, 3, 7), 3), {}),
    "adaptive_max_pool2d": lambda lib: ((r(lib, *X4), 2), {}),
    "adaptive_max_pool3d": lambda lib: ((r(lib, 1, 2, 4, 4, 5), 2), {}),
    "alpha_dropout": lambda lib: ((r(lib, *X4), 0.3, True), {}),
    "avg_pool1d": lambda lib: ((r(lib, 2, 3, 7), 3), {"padding": 1}),
    "avg_pool2d": lambda lib: ((r(lib, *X4), 3), {"stride": 2, "padding": 1,
                                                  "count_include_pad": False}),
    "avg_pool3d": lambda lib: ((r(lib, 1, 2, 4, 4, 5), 2), {}),
    "batch_norm": lambda lib: ((r(lib, *X4), lib.zeros(3), lib.ones(3), r(lib, 3), r(lib, 3)),
                               {"training": True, "momentum": 0.3, "eps": 1e-3}),
    "binary_cross_entropy": lambda lib: ((r(lib, 4, 5, low=0.05), r(lib, 4, 5, low=0.0,
                                                                      grad=False)), {}),
    "binary_cross_entropy_with_logits": lambda lib: (
        (r(lib, 4, 5), r(lib, 4, 5, low=0.0, grad=False)),
        {"pos_weight": r(lib, 5, low=0.5, grad=False)}),
    "channel_shuffle": lambda lib: ((r(lib, 2, 6, 3, 3), 3), {}),
    "conv1d": lambda lib: ((r(lib, 2, 3, 7), r(lib, 4, 3, 3), r(lib, 4)), {"padding": 1}),
    "conv2d": lambda lib: ((r(lib, *X4), r(lib, 4, 3, 3, 3), r(lib, 4)), {"stride": 2}),
    "conv3d": lambda lib: ((r(lib, 1, 2, 4, 4, 4), r(lib, 3, 2, 2, 2, 2)), {}),
    "conv_transpose1d": lambda lib: ((r(lib, 2, 3, 5), r(lib, 3, 4, 3)), {"stride": 2}),
    "conv_transpose2d": lambda lib: ((r(lib, *X4), r(lib, 3, 4, 3, 3), r(lib, 4)),
                                     {"stride": 2, "output_padding": 1}),
    "conv_transpose3d": lambda lib: ((r(lib, 1, 2, 3, 3, 3), r(lib, 2, 3, 2, 2, 2)), {}),
    "cosine_embedding_loss": lambda lib: ((r(lib, 4, 5), r(lib, 4, 5), signs(lib, 4)),
                                          {"margin": 0.2}),
    "cross_entropy": lambda lib: ((r(lib, 4, 5), ints(lib, 5, 4)), {"label_smoothing": 0.1}),
    "ctc_loss": _ctc,
    "dropout": lambda lib: ((r(lib, *X4), 0.3), {}),
    "dropout1d": lambda lib: ((r(lib, 2, 3, 7), 0.3), {}),
    "dropout2d": lambda lib: ((r(lib, *X4), 0.3), {}),
    "dropout3d": lambda lib: ((r(lib, 1, 2, 4, 4, 4), 0.3), {}),
    "group_norm": lambda lib: ((r(lib, 2, 4, 3, 3), 2, r(lib, 4), r(lib, 4)), {}),
    "hardtanh": lambda lib: ((r(lib, *X4),), {"min_val": -0.5, "max_val": 0.5}),
    "hinge_embedding_loss": lambda lib: ((r(lib, 4, 5), signs(lib, 4, 5)), {"margin": 0.5}),
    "huber_loss": lambda lib: ((r(lib, *X4), r(lib, *X4, grad=False)), {"delta": 0.5}),
    "instance_norm": lambda lib: ((r(lib, *X4),), {"eps": 1e-3}),
    "kl_div": lambda lib: ((lib.nn.functional.log_softmax(r(lib, 4, 5), dim=1),
                            lib.nn.functional.softmax(r(lib, 4, 5, grad=False), dim=1)),
                           {"reduction": "batchmean"}),
    "l1_loss": lambda lib: ((r(lib, *X4), r(lib, *X4, grad=False)), {}),
    "layer_norm": lambda lib: ((r(lib, *X4), (6, 6), r(lib, 6, 6), r(lib, 6, 6)), {}),
    "leaky_relu": lambda lib: ((r(lib, *X4), 0.2), {}),
    "linear": lambda lib: ((r(lib, 4, 5), r(lib, 3, 5), r(lib, 3)), {}),
    "local_response_norm": lambda lib: ((r(lib, *X4), 2), {"alpha": 1e-3, "k": 2.0}),
    "log_softmax": lambda lib: ((r(lib, *X4), 1), {}),
    "lp_pool1d": lambda lib: ((r(lib, 2, 3, 6, low=0.1), 2.0, 2), {}),
    "lp_pool2d": lambda lib: ((r(lib, *X4, low=0.1), 3.0, 2), {}),
    "lp_pool3d": lambda lib: ((r(lib, 1, 2, 4, 4, 4, low=0.1), 2.0, 2), {}),
    "margin_ranking_loss": lambda lib: ((r(lib, 6), r(lib, 6), signs(lib, 6)), {"margin": 0.1}),
    "max_pool1d": lambda lib: ((r(lib, 2, 3, 7), 3), {"stride": 2}),
    "max_pool2d": lambda lib: ((r(lib, *X4), 3), {"stride": 2, "padding": 1}),
    "max_pool3d": lambda lib: ((r(lib, 1, 2, 4, 4, 4), 2), {}),
    "max_unpool1d": _unpool(1),
    "max_unpool2d": _unpool(2),
    "max_unpool3d": _unpool(3),
    "mse_loss": lambda lib: ((r(lib, *X4), r(lib, *X4, grad=False)), {}),
    "multi_margin_loss": lambda lib: ((r(lib, 4, 5), ints(lib, 5, 4)), {"margin": 0.5}),
    "nll_loss": lambda lib: ((lib.nn.functional.log_softmax(r(lib, 4, 5), dim=1),
                              ints(lib, 5, 4)), {}),
    "pad": lambda lib: ((r(lib, *X4), (1, 1, 2, 0)), {"value": 0.5}),
    "poisson_nll_loss": lambda lib: ((r(lib, 4, 5), r(lib, 4, 5, low=0.0, grad=False)),
                                     {"full": True}),
    "prelu": lambda lib: ((r(lib, *X4), r(lib, 3)), {}),
    "rrelu": lambda lib: ((r(lib, *X4),), {}),
    "scaled_dot_product_attention": lambda lib: ((r(lib, 2, 3, 4, 8), r(lib, 2, 3, 5, 8),
                                                  r(lib, 2, 3, 5, 8)), {"scale": 0.5}),
    "smooth_l1_loss": lambda lib: ((r(lib, *X4), r(lib, *X4, grad=False)), {"beta": 0.5}),
    "soft_margin_loss": lambda lib: ((r(lib, 4, 5), signs(lib, 4, 5)), {}),
    "softmax": lambda lib: ((r(lib, *X4), 1), {}),
    "softplus": lambda lib: ((r(lib, *X4),), {"beta": 2.0, "threshold": 5.0}),
    # deepnotes-only variants (no torch twin): the dtype rule still holds
    "conv_transpose2d_zero_insert": lambda lib: ((r(lib, *X4), r(lib, 3, 4, 3, 3)),
                                                 {"stride": 2}),
    "dropout_scale_at_test": lambda lib: ((r(lib, *X4), 0.3, False), {}),
    "locally_connected2d": lambda lib: ((r(lib, 1, 2, 4, 4), r(lib, 4, 3, 8)),
                                        {"kernel_size": 2, "stride": 2}),
}

_FUNCTIONS = sorted(n for n, f in vars(F).items()
                    if not n.startswith("_") and inspect.isfunction(f))


def _default_sample(lib: Any) -> tuple[tuple, dict]:
    """Elementwise activations: one (N, C, H, W) input and their default arguments."""
    return (r(lib, *X4),), {}


def _float_outputs(result: Any) -> list:
    items = list(result) if isinstance(result, tuple | list) else [result]
    if isinstance(items[0], torch.Tensor):
        return [o for o in items if o.is_floating_point()]
    return [o for o in items if o.dtype.kind == "f"]


def _run(lib: Any, name: str) -> tuple[Any, list]:
    args, kwargs = SAMPLES.get(name, _default_sample)(lib)
    if lib is dn:
        dn.manual_seed(0)
    else:
        torch.manual_seed(0)
    result = getattr(lib.nn.functional, name)(*args, **kwargs)
    leaves = [a for a in args if getattr(a, "requires_grad", False)]
    return result, leaves


@pytest.mark.parametrize("name", _FUNCTIONS)
def test_float32_in_float32_out_over_the_functional_api(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, leaves = _run(dn, name)
        outputs = _float_outputs(result)
        assert outputs, f"{name} returned no floating output"
        for out in outputs:
            assert out.dtype == dn.float32, f"{name}: output dtype {out.dtype}"
        total = outputs[0].sum()
        for out in outputs[1:]:
            total = total + out.sum()
        total.backward()
        for leaf in leaves:
            if leaf.grad is not None:
                assert leaf.grad.dtype == dn.float32, f"{name}: gradient dtype {leaf.grad.dtype}"
        if hasattr(torch.nn.functional, name):
            theirs, _ = _run(torch, name)
            assert all(o.dtype == torch.float32 for o in _float_outputs(theirs))
            assert len(_float_outputs(theirs)) == len(outputs)


def test_every_functional_name_has_a_sample_or_takes_one_input():
    # a new F function with several required arguments needs a SAMPLES row above
    for name in _FUNCTIONS:
        if name in SAMPLES:
            continue
        params = [p for p in inspect.signature(getattr(F, name)).parameters.values()
                  if p.default is inspect.Parameter.empty
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert len(params) == 1, f"add a SAMPLES entry for F.{name}"


SCALARS: dict[str, Callable[[Any, Any], Any]] = {
    "x * 2.5": lambda lib, x: x * 2.5,
    "2.5 * x": lambda lib, x: 2.5 * x,
    "x + 1": lambda lib, x: x + 1,
    "1 - x": lambda lib, x: 1 - x,
    "x - 0.1": lambda lib, x: x - 0.1,
    "x / 3": lambda lib, x: x / 3,
    "3.0 / x": lambda lib, x: 3.0 / x,
    "x ** 2": lambda lib, x: x ** 2,
    "x ** 0.5": lambda lib, x: x.abs() ** 0.5,
    "2.0 ** x": lambda lib, x: 2.0 ** x,
    "x * np.float64(2.5)": lambda lib, x: x * np.float64(2.5),
    "np.float64(2.5) + x": lambda lib, x: np.float64(2.5) + x,
    "x - np.float64(1)": lambda lib, x: x - np.float64(1),
    "x / np.float64(3)": lambda lib, x: x / np.float64(3),
    "x * float64 0-d tensor": lambda lib, x: x * lib.tensor(2.5, dtype=lib.float64),
    "x + int tensor": lambda lib, x: x + lib.tensor([1, 2, 3, 4]),
    "x.clamp(-0.5, 0.5)": lambda lib, x: x.clamp(-0.5, 0.5),
    "where(x > 0, x, 0.0)": lambda lib, x: lib.where(x > 0, x, 0.0),
    "x.mean()": lambda lib, x: x.mean(),
    "x.var()": lambda lib, x: x.var(),
    "x.std(dim=1)": lambda lib, x: x.std(dim=1),
    "x.sum(1)": lambda lib, x: x.sum(1),
    "x.exp()": lambda lib, x: x.exp(),
    "x.abs().log()": lambda lib, x: x.abs().log(),
    "x.abs().sqrt()": lambda lib, x: x.abs().sqrt(),
    "x.tanh()": lambda lib, x: x.tanh(),
    "logsumexp": lambda lib, x: lib.logsumexp(x, 1),
    "x @ x.T": lambda lib, x: x @ x.T,
    "x.max(1).values": lambda lib, x: x.max(1)[0],
    "x.add(x, alpha=0.5)": lambda lib, x: x.add(x, alpha=0.5),
    "x.sub(1.5, alpha=2)": lambda lib, x: x.sub(1.5, alpha=2),
}


@pytest.mark.parametrize("name", SCALARS)
def test_python_and_numpy_scalars_do_not_promote_float32(name):
    fn = SCALARS[name]
    x = r(dn, 3, 4)
    xt = r(torch, 3, 4)
    out, out_t = fn(dn, x), fn(torch, xt)
    assert out_t.dtype == torch.float32
    assert out.dtype == dn.float32, f"{name}: {out.dtype}"
    out.sum().backward()
    assert x.grad.dtype == dn.float32
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_integer_inputs_of_float_functions_become_float32_as_in_torch():
    ints_ = dn.tensor([1, 2, 3])
    ints_t = torch.tensor([1, 2, 3])
    for name in ("exp", "log", "sqrt", "sigmoid", "tanh"):
        ours, theirs = getattr(ints_, name)(), getattr(ints_t, name)()
        assert ours.dtype == dn.float32 and theirs.dtype == torch.float32, name
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)
    assert (ints_ / 2).dtype == dn.float32 and (ints_t / 2).dtype == torch.float32
