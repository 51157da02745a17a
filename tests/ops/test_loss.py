"""Loss functions against PyTorch: forward, gradients of input (and of float targets), errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import loss as L
from tests.helpers import check_against_torch

REDUCTIONS = ["none", "mean", "sum"]
reductions = st.sampled_from(REDUCTIONS)
seeds = st.integers(0, 2**31 - 1)


def _with_fixed(ours_fn, theirs_fn, **fixed_arrays):
    """Wrap both frameworks' functions so that the arrays in ``fixed_arrays`` (class targets and
    class weights, which take no gradient) are passed as tensors of the right dtype: integers as
    they are, floats in the dtype of the input (float64 for the gradient check, float32 after).
    """

    def convert(make, value, float_dtype):
        if value is None:
            return None
        if value.dtype.kind == "f":
            return make(value.astype(float_dtype))
        return make(value)

    def ours(x, *rest, **kw):
        extra = {k: convert(dn.tensor, v, x.dtype) for k, v in fixed_arrays.items()}
        return ours_fn(x, *rest, **extra, **kw)

    def theirs(x, *rest, **kw):
        dtype = np.float64 if x.dtype == torch.float64 else np.float32
        extra = {k: convert(torch.tensor, v, dtype) for k, v in fixed_arrays.items()}
        return theirs_fn(x, *rest, **extra, **kw)

    return ours, theirs


# -- cross-entropy with class indices --------------------------------------------------------------


@st.composite
def class_index_case(draw):
    layout = draw(st.sampled_from(["(C,)", "(N,C)", "(N,C,d)", "(N,C,d1,d2)"]))
    c = draw(st.integers(1, 5))
    n = draw(st.integers(1, 4))
    extra = {"(C,)": (), "(N,C)": (), "(N,C,d)": (draw(st.integers(1, 3)),),
             "(N,C,d1,d2)": (draw(st.integers(1, 3)), draw(st.integers(1, 3)))}[layout]
    input_shape = (c,) if layout == "(C,)" else (n, c) + extra
    target_shape = () if layout == "(C,)" else (n,) + extra
    ignore = draw(st.sampled_from(["-100", "-1", "a class"]))
    ignore_index = {"-100": -100, "-1": -1, "a class": draw(st.integers(0, c - 1))}[ignore]
    return dict(
        input_shape=input_shape, target_shape=target_shape, classes=c,
        ignore_index=ignore_index,
        ignored_fraction=draw(st.sampled_from([0.0, 0.3, 1.0])),
        weighted=draw(st.booleans()),
        reduction=draw(reductions),
        label_smoothing=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)),
        seed=draw(seeds),
    )


def _class_targets(case, rng):
    target = rng.integers(0, case["classes"], size=case["target_shape"])
    ignored = rng.random(case["target_shape"]) < case["ignored_fraction"]
    target = np.where(ignored, case["ignore_index"], target)
    weight = rng.uniform(0.1, 2.0, case["classes"]) if case["weighted"] else None
    return np.asarray(target, dtype=np.int64), weight


@given(class_index_case())
def test_cross_entropy_class_indices_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    target, weight = _class_targets(case, rng)
    ours, theirs = _with_fixed(L.cross_entropy, TF.cross_entropy, target=target, weight=weight)
    check_against_torch(ours, theirs, (rng.standard_normal(case["input_shape"]) * 2,),
                        ignore_index=case["ignore_index"], reduction=case["reduction"],
                        label_smoothing=case["label_smoothing"])


@given(class_index_case())
def test_nll_loss_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    target, weight = _class_targets(case, rng)
    ours, theirs = _with_fixed(L.nll_loss, TF.nll_loss, target=target, weight=weight)
    check_against_torch(ours, theirs, (rng.standard_normal(case["input_shape"]),),
                        ignore_index=case["ignore_index"], reduction=case["reduction"])


CE_CASES = {
    "plain": dict(z=(4, 3), y=[0, 2, 1, 2]),
    "one_class": dict(z=(3, 1), y=[0, 0, 0]),
    "ignored_row": dict(z=(3, 4), y=[1, -100, 3]),
    "all_ignored_mean_is_nan": dict(z=(2, 3), y=[-100, -100]),
    "weighted": dict(z=(4, 3), y=[0, 1, 2, 2], weight=[0.2, 1.0, 3.0]),
    "weighted_ignored_smoothed": dict(z=(4, 3), y=[0, -100, 2, 2], weight=[0.2, 1.0, 3.0],
                                      label_smoothing=0.1),
    "spatial": dict(z=(2, 3, 2, 2), y=[[[0, 1], [2, 0]], [[1, 1], [2, 2]]]),
    "unbatched": dict(z=(5,), y=3),
    "empty_batch": dict(z=(0, 3), y=np.zeros(0, dtype=np.int64)),
    "large_logits": dict(z=(2, 3), y=[0, 1], scale=1e3),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CE_CASES)
def test_cross_entropy_named_cases(name, reduction, rng):
    kw = dict(CE_CASES[name])
    z = rng.standard_normal(kw.pop("z")) * kw.pop("scale", 1.0)
    target = np.asarray(kw.pop("y"), dtype=np.int64)
    weight = np.asarray(kw.pop("weight")) if "weight" in kw else None
    ours, theirs = _with_fixed(L.cross_entropy, TF.cross_entropy, target=target, weight=weight)
    check_against_torch(ours, theirs, (z,), reduction=reduction, **kw)


def test_cross_entropy_gradient_is_softmax_minus_onehot(rng):
    """The fused backward in its textbook form: sum reduction, no weight, no smoothing."""
    z_np, y = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    z = dn.tensor(z_np, requires_grad=True)
    L.cross_entropy(z, dn.tensor(y), reduction="sum").backward()
    softmax = np.exp(z_np) / np.exp(z_np).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(z.grad.data, softmax - np.eye(4)[y], atol=1e-14)


def test_cross_entropy_equals_nll_of_log_softmax(rng):
    z_np, y = rng.standard_normal((6, 5)), dn.tensor(rng.integers(0, 5, 6))
    fused = L.cross_entropy(dn.tensor(z_np), y)
    composed = L.nll_loss(dn.log_softmax(dn.tensor(z_np), dim=1), y)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8])
def test_cross_entropy_accepts_any_integer_target(dtype, rng):
    """A documented superset of PyTorch, which takes only int64 and uint8 class indices."""
    z, y = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    ours = L.cross_entropy(dn.tensor(z), dn.tensor(y.astype(dtype)))
    np.testing.assert_allclose(ours.data, TF.cross_entropy(torch.tensor(z), torch.tensor(y)),
                               rtol=1e-12)


# -- cross-entropy with class probabilities --------------------------------------------------------


@st.composite
def probability_case(draw):
    c = draw(st.integers(1, 5))
    n = draw(st.integers(1, 4))
    extra = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2))))
    unbatched = draw(st.booleans())
    return dict(shape=(c,) if unbatched else (n, c) + extra,
                weighted=draw(st.booleans()), normalised=draw(st.booleans()),
                reduction=draw(reductions),
                label_smoothing=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)),
                seed=draw(seeds))


@given(probability_case())
def test_cross_entropy_probabilities_matches_torch(case):
    """Gradients of the logits, of the target and of the class weight are all compared."""
    rng = np.random.default_rng(case["seed"])
    shape = case["shape"]
    class_axis = 0 if len(shape) == 1 else 1
    target = rng.random(shape)
    if case["normalised"]:
        target = target / target.sum(axis=class_axis, keepdims=True)
    inputs = [rng.standard_normal(shape) * 2, target]
    names = ["input", "target"]
    if case["weighted"]:
        inputs.append(rng.uniform(0.1, 2.0, shape[class_axis]))
        names.append("weight")
    check_against_torch(L.cross_entropy, "cross_entropy", inputs, names=names,
                        reduction=case["reduction"], label_smoothing=case["label_smoothing"])


# -- regression losses -----------------------------------------------------------------------------


@given(fn=st.sampled_from(["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"]),
       shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
       reduction=reductions, param=st.sampled_from([0.0, 0.5, 1.0, 2.5]), seed=seeds)
def test_regression_losses_match_torch(fn, shape, reduction, param, seed):
    rng = np.random.default_rng(seed)
    kw = {"reduction": reduction}
    if fn == "smooth_l1_loss":
        kw["beta"] = param
    if fn == "huber_loss" and param > 0:
        kw["delta"] = param
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    check_against_torch(getattr(L, fn), fn, (x, t), names=["input", "target"], **kw)


@pytest.mark.parametrize("fn", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses_broadcast_with_torchs_warning(fn, rng):
    x, t = rng.standard_normal((3, 1)), rng.standard_normal(4)
    with pytest.warns(UserWarning, match=r"Using a target size \(\(4,\)\) that is different to "
                                         r"the input size \(\(3, 1\)\)"):
        getattr(L, fn)(dn.tensor(x), dn.tensor(t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_against_torch(getattr(L, fn), fn, (x, t), names=["input", "target"])


def test_regression_losses_reject_shapes_that_do_not_broadcast():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(RuntimeError, match=r"\(3, 2\).*\(4,\).*not broadcastable"):
            L.mse_loss(dn.ones(3, 2), dn.ones(4))


def test_l1_loss_gradient_at_zero_difference_is_zero():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    L.l1_loss(x, dn.tensor([1.0, 0.0]), reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0])


# -- binary cross-entropy --------------------------------------------------------------------------


@st.composite
def binary_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    k = draw(st.integers(0, len(shape)))
    weight_shape = draw(st.sampled_from([None, shape[len(shape) - k:]]))
    return dict(shape=shape, weight_shape=weight_shape, pos_weight=draw(st.booleans()),
                reduction=draw(reductions), seed=draw(seeds))


@given(binary_case())
def test_binary_cross_entropy_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    shape, ws = case["shape"], case["weight_shape"]
    weight = None if ws is None else rng.uniform(0.1, 2.0, ws)
    ours, theirs = _with_fixed(L.binary_cross_entropy, TF.binary_cross_entropy, weight=weight)
    check_against_torch(ours, theirs, (rng.uniform(0.02, 0.98, shape), rng.random(shape)),
                        names=["input", "target"], reduction=case["reduction"])


@given(binary_case())
def test_binary_cross_entropy_with_logits_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    shape, ws = case["shape"], case["weight_shape"]
    weight = None if ws is None else rng.uniform(0.1, 2.0, ws)
    pos_weight = rng.uniform(0.1, 3.0, shape[-1]) if case["pos_weight"] else None
    ours, theirs = _with_fixed(L.binary_cross_entropy_with_logits,
                               TF.binary_cross_entropy_with_logits,
                               weight=weight, pos_weight=pos_weight)
    check_against_torch(ours, theirs, (rng.standard_normal(shape) * 4, rng.random(shape)),
                        names=["input", "target"], reduction=case["reduction"])


def test_binary_cross_entropy_clamps_the_log_at_probabilities_0_and_1():
    x, t = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    check_against_torch(L.binary_cross_entropy, "binary_cross_entropy", (x, t), grad=False,
                        reduction="none")
    np.testing.assert_allclose(L.binary_cross_entropy(dn.tensor(x), dn.tensor(t), reduction="sum")
                               .data, 200.0)


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    x, t = np.array([-800.0, 800.0, 30.0]), np.array([1.0, 0.0, 1.0])
    check_against_torch(L.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                        (x, t), names=["input", "target"], reduction="none")


# -- errors ----------------------------------------------------------------------------------------


def _z(*shape):
    return dn.tensor(np.random.default_rng(0).standard_normal(shape))


def _y(*values):
    return dn.tensor(np.array(values, dtype=np.int64))


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
def test_class_target_out_of_bounds(fn):
    with pytest.raises(IndexError,
                       match=r"^Target 7 is out of bounds\. Expected class indices in \[0, 5\)"):
        fn(_z(4, 5), _y(0, 1, 7, 2))
    with pytest.raises(IndexError,
                       match=r"^Target -2 is out of bounds\. Expected class indices in \[0, 5\)"):
        fn(_z(4, 5), _y(0, 1, -2, 2))
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):
        fn(_z(4, 5), _y(0, 5, 0, 0), ignore_index=0)  # ignore_index does not widen the range


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
def test_batch_size_mismatch(fn):
    with pytest.raises(ValueError, match=r"^Expected input batch_size \(4\) to match target "
                                         r"batch_size \(3\)\.$"):
        fn(_z(4, 5), _y(0, 1, 2))


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
def test_spatial_target_shape_mismatch(fn):
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 3\], got \[2, 2\]"):
        fn(_z(2, 5, 3), dn.tensor(np.zeros((2, 2), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        fn(_z(4, 5), dn.tensor(np.zeros((4, 2), dtype=np.int64)))
    with pytest.raises(ValueError, match="For 1D input, 1D target must have size 1"):
        fn(_z(5), _y(1, 2))


def test_cross_entropy_float_target_with_a_different_shape():
    with pytest.raises(RuntimeError, match=r"expected target dtype to be Long or Byte, but got "
                                           r"Double.*class probabilities.*\(4, 5\).*\(4,\)"):
        L.cross_entropy(_z(4, 5), dn.tensor(np.array([0.0, 1.0, 2.0, 3.0])))
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got "
                                           "Float"):
        L.nll_loss(_z(4, 5), dn.tensor([0.0, 1.0, 2.0, 3.0]))


def test_cross_entropy_integer_target_with_the_input_shape():
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class "
                                           "probabilities, got Long"):
        L.cross_entropy(_z(4, 5), dn.tensor(np.zeros((4, 5), dtype=np.int64)))


def test_cross_entropy_probabilities_reject_a_non_negative_ignore_index():
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point"):
        L.cross_entropy(_z(4, 5), _z(4, 5), ignore_index=1)


@pytest.mark.parametrize("call", [
    lambda r: L.cross_entropy(_z(4, 5), _y(0, 1, 2, 3), reduction=r),
    lambda r: L.nll_loss(_z(4, 5), _y(0, 1, 2, 3), reduction=r),
    lambda r: L.mse_loss(_z(3), _z(3), reduction=r),
    lambda r: L.l1_loss(_z(3), _z(3), reduction=r),
    lambda r: L.smooth_l1_loss(_z(3), _z(3), reduction=r),
    lambda r: L.binary_cross_entropy(dn.tensor([0.5]), dn.tensor([1.0]), reduction=r),
    lambda r: L.binary_cross_entropy_with_logits(_z(3), _z(3), reduction=r),
])
@pytest.mark.parametrize("reduction", ["avg", None, "MEAN"])
def test_bad_reduction(call, reduction):
    with pytest.raises(ValueError, match=f"^{reduction} is not a valid value for reduction "
                                         r"\(expected one of 'none', 'mean', 'sum'\)$"):
        call(reduction)


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
@pytest.mark.parametrize("weight_shape", [(3,), (5, 1), (6,)])
def test_class_weight_of_the_wrong_length(fn, weight_shape):
    with pytest.raises(RuntimeError, match=r"weight tensor should be defined either for all 5 "
                                           r"classes or no classes but got weight tensor of "
                                           rf"shape: \[{', '.join(map(str, weight_shape))}\]"):
        fn(_z(4, 5), _y(0, 1, 2, 3), weight=dn.ones(*weight_shape))


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
def test_class_weight_that_requires_grad(fn):
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        fn(_z(4, 5), _y(0, 1, 2, 3), weight=dn.ones(5, requires_grad=True))


@pytest.mark.parametrize("eps", [1.5, -0.1])
def test_label_smoothing_out_of_range(eps):
    with pytest.raises(RuntimeError, match=f"label_smoothing must be between 0.0 and 1.0. Got: "
                                           f"{eps}"):
        L.cross_entropy(_z(4, 5), _y(0, 1, 2, 3), label_smoothing=eps)


def test_class_losses_reject_a_zero_dimensional_input_and_bad_ignore_index():
    with pytest.raises(ValueError, match=r"Expected 1 or more dimensions \(got 0\)"):
        L.nll_loss(dn.tensor(1.0), dn.tensor(0))
    with pytest.raises(TypeError, match="'ignore_index' must be int"):
        L.cross_entropy(_z(4, 5), _y(0, 1, 2, 3), ignore_index=1.5)


def test_binary_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"Using a target size \(\(4,\)\) that is different to "
                                         r"the input size \(\(3,\)\) is deprecated"):
        L.binary_cross_entropy(dn.full((3,), 0.5), dn.ones(4))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        L.binary_cross_entropy(dn.tensor([1.5, 0.5]), dn.tensor([1.0, 0.0]))
    with pytest.raises(RuntimeError, match=r"weight of shape \(3,\) cannot be broadcast to the "
                                           r"input's shape \(3, 2\)"):
        L.binary_cross_entropy(dn.full((3, 2), 0.5), dn.ones(3, 2), weight=dn.ones(3))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        L.binary_cross_entropy(dn.full((3,), 0.5), dn.ones(3),
                               weight=dn.ones(3, requires_grad=True))


def test_binary_cross_entropy_with_logits_errors():
    with pytest.raises(ValueError, match=r"Target size \(\(3,\)\) must be the same as input size "
                                         r"\(\(3, 2\)\)"):
        L.binary_cross_entropy_with_logits(_z(3, 2), _z(3))
    with pytest.raises(RuntimeError, match=r"pos_weight of shape \(3,\) cannot be broadcast"):
        L.binary_cross_entropy_with_logits(_z(3, 2), _z(3, 2), pos_weight=dn.ones(3))


def test_smooth_l1_and_huber_parameter_errors():
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for "
                                           "beta"):
        L.smooth_l1_loss(_z(3), _z(3), beta=-1.0)
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for "
                                           "delta"):
        L.huber_loss(_z(3), _z(3), delta=0.0)


def test_losses_reject_non_tensors():
    with pytest.raises(TypeError, match="argument 'target' must be Tensor, not list"):
        L.cross_entropy(_z(4, 5), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="argument 'input' must be Tensor, not ndarray"):
        L.mse_loss(np.ones(3), _z(3))
