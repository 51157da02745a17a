"""The rest of the losses against PyTorch: kl_div, margin/hinge losses, poisson_nll_loss, ctc_loss.

Every op: float64 forward and the gradient of every float input (targets included where PyTorch
differentiates them), float32 forward, shapes and hyper-parameters drawn by hypothesis, plus
named cases and PyTorch's errors. CTC is also checked against a brute-force sum over all paths
and against finite differences of its own loss (PyTorch's gradient carries an extra exp(lp)).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes.autograd import numerical_grad
from tests.helpers import check_against_torch

REDUCTIONS = ["none", "mean", "sum"]
reductions = st.sampled_from(REDUCTIONS)
seeds = st.integers(0, 2**31 - 1)


def _fixed(ours_fn, theirs_fn, **fixed):
    """Both frameworks' functions with the arrays in ``fixed`` passed as constant tensors.

    Float arrays take the input's dtype (float64 for the gradient check, float32 after), so a
    weight or a target that must not require grad still follows the input's precision.
    """

    def convert(make, value, float_dtype):
        if value is None:
            return None
        return make(value.astype(float_dtype)) if value.dtype.kind == "f" else make(value)

    def ours(x, *rest, **kw):
        extra = {k: convert(dn.tensor, v, x.dtype) for k, v in fixed.items()}
        return ours_fn(x, *rest, **extra, **kw)

    def theirs(x, *rest, **kw):
        dtype = np.float64 if x.dtype == torch.float64 else np.float32
        extra = {k: convert(torch.tensor, v, dtype) for k, v in fixed.items()}
        return theirs_fn(x, *rest, **extra, **kw)

    return ours, theirs


@st.composite
def broadcast_shapes(draw, count=2, min_dims=0, max_dims=3, same_ndim=False):
    """``count`` shapes that broadcast together (some axes 1, some leading axes dropped)."""
    ndim = draw(st.integers(min_dims, max_dims))
    full = [draw(st.integers(1, 4)) for _ in range(ndim)]
    shapes = []
    for _ in range(count):
        shape = [1 if draw(st.booleans()) and draw(st.booleans()) else d for d in full]
        drop = 0 if same_ndim else draw(st.integers(0, ndim))
        shapes.append(tuple(shape[drop:]))
    return shapes


# -- kl_div ----------------------------------------------------------------------------------------


@given(shapes=broadcast_shapes(min_dims=1), reduction=st.sampled_from(REDUCTIONS + ["batchmean"]),
       log_target=st.booleans(), zeros=st.booleans(), seed=seeds)
def test_kl_div_matches_torch(shapes, reduction, log_target, zeros, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shapes[0]) - 1.0)
    t = np.asarray(rng.uniform(0.05, 1.0, shapes[1]))
    if log_target:
        t = np.asarray(np.log(t))
    elif zeros:
        drop = np.asarray(rng.random(shapes[1])) < 0.3
        t = np.asarray(np.where(drop, 0.0, t))                          # torch's dL/dt: nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # reduction='mean' warns in both
        check_against_torch(F.kl_div, "kl_div", (x, t), reduction=reduction,
                            log_target=log_target)


def test_kl_div_batchmean_is_the_mean_kl_per_sample(rng):
    logits, p = rng.standard_normal((4, 6)), rng.dirichlet(np.ones(6), 4)
    log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean(np.sum(p * (np.log(p) - log_q), axis=1))        # KL(p || q), per sample
    out = F.kl_div(dn.tensor(log_q), dn.tensor(p), reduction="batchmean")
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_kl_div_mean_warns_as_torch_and_legacy_arguments():
    x, t = np.log(np.full((2, 3), 1 / 3)), np.full((2, 3), 1 / 3)
    with pytest.warns(UserWarning) as ours:
        F.kl_div(dn.tensor(x), dn.tensor(t))
    with pytest.warns(UserWarning) as theirs:
        TF.kl_div(torch.tensor(x), torch.tensor(t))
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    for size_average, reduce in itertools.product([None, True, False], repeat=2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = F.kl_div(dn.tensor(x + 0.1), dn.tensor(t), size_average, reduce)
            b = TF.kl_div(torch.tensor(x + 0.1), torch.tensor(t), size_average, reduce)
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-12)


def test_kl_div_errors():
    x = dn.tensor(np.zeros((2, 3)))
    for call in (lambda m: m.kl_div(m.ones(2, 3), m.ones(2, 3, dtype=m.int64)),
                 lambda m: m.kl_div(m.ones(2, 3, dtype=m.int64), m.ones(2, 3))):
        with pytest.raises(RuntimeError, match="kl_div: Integral inputs not supported."):
            call(_Namespace(dn, F))
        with pytest.raises(RuntimeError, match="kl_div: Integral inputs not supported."):
            call(_Namespace(torch, TF))
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        F.kl_div(x, x, reduction="bad")
    with pytest.raises(RuntimeError, match="not broadcastable"):
        F.kl_div(x, dn.tensor(np.zeros((2, 4))))
    with pytest.raises(RuntimeError):
        TF.kl_div(torch.zeros(2, 3), torch.zeros(2, 4))


class _Namespace:
    """dn or torch with the functional namespace merged in: m.ones, m.int64, m.kl_div..."""

    def __init__(self, root, functional):
        self.root, self.functional = root, functional

    def __getattr__(self, name):
        return getattr(self.functional if hasattr(self.functional, name) else self.root, name)


# -- margin_ranking_loss, hinge_embedding_loss, soft_margin_loss -----------------------------------


@given(shapes=broadcast_shapes(count=3, same_ndim=True), margin=st.floats(-1, 1),
       reduction=reductions, seed=seeds)
def test_margin_ranking_loss_matches_torch(shapes, margin, reduction, seed):
    rng = np.random.default_rng(seed)
    x1 = np.asarray(rng.standard_normal(shapes[0]))
    x2 = np.asarray(rng.standard_normal(shapes[1]))
    y = np.asarray(rng.choice([-1.0, 1.0], shapes[2]))                  # y gets a gradient too
    check_against_torch(F.margin_ranking_loss, "margin_ranking_loss", (x1, x2, y),
                        margin=margin, reduction=reduction)


@given(shapes=broadcast_shapes(), margin=st.floats(-1, 2), labels=st.sampled_from(
    ["+-1 int", "+-1 float", "any float"]), reduction=reductions, seed=seeds)
def test_hinge_embedding_loss_matches_torch(shapes, margin, labels, reduction, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.uniform(-1, 3, shapes[0]))
    y = np.asarray(rng.choice([-1, 1], shapes[1]))
    if labels == "+-1 float":
        y = y.astype(np.float64)
    elif labels == "any float":                                         # both terms, as torch
        y = np.asarray(rng.choice([-1.0, 1.0, 0.5, 0.0], shapes[1]))
    check_against_torch(F.hinge_embedding_loss, "hinge_embedding_loss", (x, y), margin=margin,
                        reduction=reduction)


def test_hinge_embedding_loss_named_values():
    x = dn.tensor([0.3, 0.3, 2.0], requires_grad=True)
    out = F.hinge_embedding_loss(x, dn.tensor([1, -1, -1]), margin=1.0, reduction="none")
    np.testing.assert_allclose(out.data, [0.3, 0.7, 0.0])              # x | 1 - x | max(0, -1)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, -1.0, 0.0])


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
       target_rank=st.integers(0, 3), int_target=st.booleans(), reduction=reductions,
       seed=seeds)
def test_soft_margin_loss_matches_torch(shape, target_rank, int_target, reduction, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(3 * rng.standard_normal(shape))
    target_shape = shape[len(shape) - min(target_rank, len(shape)):]   # a trailing part
    y = np.asarray(rng.choice([-1, 1], target_shape))
    y = y if int_target else y.astype(np.float64)
    ours, theirs = _fixed(F.soft_margin_loss, TF.soft_margin_loss, target=y)
    check_against_torch(ours, theirs, (x,), reduction=reduction)


def test_soft_margin_loss_is_stable_where_torch_overflows():
    out = F.soft_margin_loss(dn.tensor([-1000.0, 1000.0]), dn.tensor([1.0, -1.0]),
                             reduction="none")
    np.testing.assert_allclose(out.data, [1000.0, 1000.0])              # torch: [inf, inf]


def test_margin_losses_errors():
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension but "
                                           r"got sizes: input1: \(3,\), input2: \(3, 1\)"):
        F.margin_ranking_loss(dn.ones(3), dn.ones(3, 1), dn.ones(3))
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension"):
        TF.margin_ranking_loss(torch.ones(3), torch.ones(3, 1), torch.ones(3))
    for ours, theirs in ((lambda: F.margin_ranking_loss(dn.ones(3), dn.ones(2), dn.ones(3)),
                          lambda: TF.margin_ranking_loss(torch.ones(3), torch.ones(2),
                                                         torch.ones(3))),
                         (lambda: F.hinge_embedding_loss(dn.ones(3), dn.ones(2)),
                          lambda: TF.hinge_embedding_loss(torch.ones(3), torch.ones(2))),
                         (lambda: F.soft_margin_loss(dn.ones(3, 1), dn.ones(3)),
                          lambda: TF.soft_margin_loss(torch.ones(3, 1), torch.ones(3))),
                         (lambda: F.poisson_nll_loss(dn.ones(3), dn.ones(2)),
                          lambda: TF.poisson_nll_loss(torch.ones(3), torch.ones(2)))):
        with pytest.raises(RuntimeError, match="broadcast"):
            ours()
        with pytest.raises(RuntimeError):
            theirs()
    message = ("The function 'soft_margin_loss' is not differentiable with respect to argument "
               "'target'")
    with pytest.raises(RuntimeError, match=message):
        F.soft_margin_loss(dn.ones(3), dn.ones(3, requires_grad=True))
    with pytest.raises(RuntimeError, match=message):
        TF.soft_margin_loss(torch.ones(3), torch.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        F.hinge_embedding_loss(dn.ones(3), dn.ones(3), reduction="bad")


# -- multi_margin_loss -----------------------------------------------------------------------------


@st.composite
def multi_margin_case(draw):
    layout = draw(st.sampled_from(["(N,C)", "(C,)", "(C,) target (1,)"]))
    c, n = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    input_shape = (n, c) if layout == "(N,C)" else (c,)
    target_shape = {"(N,C)": (n,), "(C,)": (), "(C,) target (1,)": (1,)}[layout]
    return dict(input_shape=input_shape, target_shape=target_shape, classes=c,
                p=draw(st.sampled_from([1, 2])), margin=draw(st.floats(-0.5, 2.0)),
                weighted=draw(st.booleans()), reduction=draw(reductions), seed=draw(seeds))


@given(multi_margin_case())
def test_multi_margin_loss_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["input_shape"])
    target = np.asarray(rng.integers(0, case["classes"], case["target_shape"]))
    weight = rng.uniform(0.1, 2.0, case["classes"]) if case["weighted"] else None
    ours, theirs = _fixed(F.multi_margin_loss, TF.multi_margin_loss, target=target,
                          weight=weight)
    check_against_torch(ours, theirs, (x,), p=case["p"], margin=case["margin"],
                        reduction=case["reduction"])


def test_multi_margin_loss_is_the_svm_loss():
    x = dn.tensor([[3.0, 1.0, 2.5], [0.0, 0.2, 0.1]], requires_grad=True)
    out = F.multi_margin_loss(x, dn.tensor([0, 1]), reduction="none")
    # sample 0: max(0, 1-3+1) + max(0, 1-3+2.5) = 0 + 0.5; sample 1: max(0, 1-0.2+0) + 0.9
    np.testing.assert_allclose(out.data, [0.5 / 3, (0.8 + 0.9) / 3])


def test_multi_margin_loss_errors():
    x, t = dn.tensor(np.zeros((4, 5))), dn.tensor([0, 1, 2, 3])
    cases = [
        (ValueError, "only p == 1 and p == 2 supported", dict(p=3)),
        (ValueError, "weight must be one-dimensional", dict(weight=dn.ones(5, 1))),
        (RuntimeError, r"inconsistent weight size, expected 5 but got \[4\]",
         dict(weight=dn.ones(4))),
    ]
    for error, message, kw in cases:
        with pytest.raises(error, match=message):
            F.multi_margin_loss(x, t, **kw)
        torch_kw = {k: torch.tensor(v.data) if isinstance(v, dn.Tensor) else v
                    for k, v in kw.items()}
        with pytest.raises(error, match=message):
            TF.multi_margin_loss(torch.zeros(4, 5), torch.tensor([0, 1, 2, 3]), **torch_kw)
    bad_calls = [
        ("target tensor should be 1-D with size equal to the number of input samples",
         (4, 5), [0, 1, 2]),
        ("target out of range", (4, 5), [0, 1, 5, 2]),
        ("target out of range", (4, 5), [0, 1, -1, 2]),
        ("Expected non-empty vector or matrix", (2, 2, 5), [0, 1]),
        ("Expected non-empty vector or matrix", (2, 0), [0, 0]),
    ]
    for message, shape, target in bad_calls:
        with pytest.raises(RuntimeError, match=message):
            F.multi_margin_loss(dn.zeros(*shape), dn.tensor(target))
        with pytest.raises(RuntimeError, match=message):
            TF.multi_margin_loss(torch.zeros(*shape), torch.tensor(target))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Float"):
        F.multi_margin_loss(x, dn.tensor([0.0, 1.0, 2.0, 3.0], dtype=dn.float32))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.multi_margin_loss(x, t, weight=dn.ones(5, requires_grad=True))


# -- cosine_embedding_loss -------------------------------------------------------------------------


@st.composite
def cosine_case(draw):
    batched = draw(st.booleans())
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if not batched:
        return dict(x1=(d,), x2=(d,), y=(), margin=draw(st.floats(-1, 1)),
                    reduction=draw(reductions), seed=draw(seeds))
    x1 = (draw(st.sampled_from([n, 1])), d)
    x2 = (draw(st.sampled_from([n, 1])), draw(st.sampled_from([d, 1])))
    y = (draw(st.sampled_from([n, 1])),)
    return dict(x1=x1, x2=x2, y=y, margin=draw(st.floats(-1, 1)), reduction=draw(reductions),
                seed=draw(seeds))


@given(cosine_case())
def test_cosine_embedding_loss_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x1, x2 = rng.standard_normal(case["x1"]), rng.standard_normal(case["x2"])
    y = np.asarray(rng.choice([-1, 1, 0], case["y"]))                # 0 gives a zero loss
    check_against_torch(F.cosine_embedding_loss, "cosine_embedding_loss", (x1, x2, y),
                        margin=case["margin"], reduction=case["reduction"])


def test_cosine_embedding_loss_named_values():
    x1 = dn.tensor([[1.0, 0.0], [1.0, 1.0]])
    x2 = dn.tensor([[0.0, 2.0], [2.0, 2.0]])
    out = F.cosine_embedding_loss(x1, x2, dn.tensor([1, -1]), margin=0.5, reduction="none")
    np.testing.assert_allclose(out.data, [1.0, 0.5], rtol=1e-9)        # 1 - 0, max(0, 1 - 0.5)


def test_cosine_embedding_loss_errors():
    cases = [
        ("0D or 1D target tensor expected, multi-target not supported", (4, 5), (4, 5), (4, 1)),
        (r"1D target tensor expects 2D input tensors, but found inputs with sizes \[5\] and "
         r"\[5\]", (5,), (5,), (4,)),
        (r"0D target tensor expects 1D input tensors, but found inputs with sizes \[4, 5\] and "
         r"\[4, 5\]", (4, 5), (4, 5), ()),
    ]
    for message, s1, s2, sy in cases:
        with pytest.raises(RuntimeError, match=message):
            F.cosine_embedding_loss(dn.ones(s1), dn.ones(s2), dn.ones(sy))
        with pytest.raises(RuntimeError, match=message):
            TF.cosine_embedding_loss(torch.ones(s1), torch.ones(s2), torch.ones(sy))
    for s1, s2, sy in (((4, 5), (3, 5), (4,)), ((4, 5), (4, 3), (4,)), ((4, 5), (4, 5), (3,))):
        with pytest.raises(RuntimeError, match="broadcast"):
            F.cosine_embedding_loss(dn.ones(s1), dn.ones(s2), dn.ones(sy))
        with pytest.raises(RuntimeError):
            TF.cosine_embedding_loss(torch.ones(s1), torch.ones(s2), torch.ones(sy))


# -- poisson_nll_loss ------------------------------------------------------------------------------


@given(shapes=broadcast_shapes(), log_input=st.booleans(), full=st.booleans(),
       eps=st.sampled_from([1e-8, 0.1]), reduction=reductions, seed=seeds)
def test_poisson_nll_loss_matches_torch(shapes, log_input, full, eps, reduction, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shapes[0]) if log_input else rng.uniform(0.1, 3.0, shapes[0])
    x = np.asarray(x)
    counts = np.asarray(rng.poisson(2.0, shapes[1])).astype(np.float64)
    counts.reshape(-1)[:1] = 0.0                                        # with full: dL/dt nan
    check_against_torch(F.poisson_nll_loss, "poisson_nll_loss", (x, counts),
                        log_input=log_input, full=full, eps=eps, reduction=reduction)


def test_poisson_nll_loss_is_the_poisson_negative_log_likelihood():
    from math import lgamma

    rate, k = np.array([0.5, 2.0, 7.0]), np.array([0.0, 3.0, 6.0])
    out = F.poisson_nll_loss(dn.tensor(np.log(rate)), dn.tensor(k), reduction="none")
    exact = rate - k * np.log(rate) + np.array([lgamma(v + 1) for v in k])  # -log P(k; rate)
    np.testing.assert_allclose(out.data, exact - [lgamma(v + 1) for v in k], rtol=1e-12)


# -- ctc_loss --------------------------------------------------------------------------------------


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - \
        z.max(-1, keepdims=True)


@st.composite
def ctc_case(draw):
    t, n, c = draw(st.integers(1, 10)), draw(st.integers(1, 4)), draw(st.integers(2, 6))
    s_max = draw(st.integers(0, 6))
    return dict(t=t, n=n, c=c, s_max=s_max, blank=draw(st.integers(0, c - 1)),
                layout=draw(st.sampled_from(["padded", "concatenated"])),
                lengths=draw(st.sampled_from(["tensor", "tuple"])),
                normalised=draw(st.booleans()), zero_infinity=draw(st.booleans()),
                reduction=draw(reductions), seed=draw(seeds))


def _ctc_inputs(case, rng):
    t, n, c, s_max, blank = case["t"], case["n"], case["c"], case["s_max"], case["blank"]
    z = rng.standard_normal((t, n, c))
    log_probs = _log_softmax(z) if case["normalised"] else z
    labels = rng.integers(0, c - 1, (n, s_max))
    labels = labels + (labels >= blank)                                 # any class but blank
    if rng.random() < 0.5 and s_max >= 2:
        labels[:, 1] = labels[:, 0]                                     # a repeated label
    target_lengths = rng.integers(0, s_max + 1, n)
    input_lengths = rng.integers(0, t + 1, n)                            # some impossible
    if case["layout"] == "concatenated":
        targets = np.concatenate([labels[i, :k] for i, k in enumerate(target_lengths)])
    else:
        targets = np.where(np.arange(s_max) < target_lengths[:, None], labels, -7)  # junk pad
    if case["lengths"] == "tuple":
        return log_probs, targets, tuple(int(v) for v in input_lengths), tuple(
            int(v) for v in target_lengths)
    return log_probs, targets, input_lengths, target_lengths


@given(ctc_case())
def test_ctc_loss_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    inputs = _ctc_inputs(case, rng)
    with np.errstate(invalid="ignore"):                                 # inf * upstream in sums
        check_against_torch(F.ctc_loss, "ctc_loss", inputs, blank=case["blank"],
                            reduction=case["reduction"], zero_infinity=case["zero_infinity"],
                            float32_atol=1e-4)


CTC_CASES = {
    # (T, C, labels, input length): one sample, blank 0
    "repeat needs a blank between": (3, 3, [1, 1], 3),
    "repeat impossible in 2 frames": (2, 3, [1, 1], 2),
    "three repeats": (6, 2, [1, 1, 1], 6),
    "empty target": (4, 3, [], 4),
    "target as long as input": (3, 4, [1, 2, 3], 3),
    "target longer than input": (2, 4, [1, 2, 3], 2),
    "zero-length input, empty target": (3, 3, [], 0),
    "zero-length input, one label": (3, 3, [2], 0),
    "shorter input length": (6, 3, [2, 1], 4),
}


@pytest.mark.parametrize("name", CTC_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_named_cases(name, reduction, zero_infinity, rng):
    t, c, labels, length = CTC_CASES[name]
    log_probs = _log_softmax(rng.standard_normal((t, 1, c)))
    targets = np.array([labels], dtype=np.int64).reshape(1, len(labels))
    with np.errstate(invalid="ignore"):
        check_against_torch(F.ctc_loss, "ctc_loss",
                            (log_probs, targets, np.array([length]), np.array([len(labels)])),
                            reduction=reduction, zero_infinity=zero_infinity)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lengths", ["0-D tensors", "1-element tensors", "tuples"])
@pytest.mark.parametrize("layout", ["(S,)", "(1, S)"])
def test_ctc_loss_unbatched_matches_torch(reduction, lengths, layout, rng):
    log_probs = _log_softmax(rng.standard_normal((7, 5)))              # (T, C)
    targets = np.array([3, 1, 1])
    if layout == "(1, S)":
        targets = np.array([[3, 1, 1, 4]])                              # padded, batch of one
    length_pair = {"0-D tensors": (np.array(6), np.array(3)),
                   "1-element tensors": (np.array([6]), np.array([3])),
                   "tuples": ((6,), (3,))}[lengths]
    check_against_torch(F.ctc_loss, "ctc_loss", (log_probs, targets) + length_pair,
                        reduction=reduction)


def test_ctc_loss_float_targets_are_truncated_as_torch(rng):
    log_probs = _log_softmax(rng.standard_normal((6, 2, 4)))
    lengths = (np.array([6, 5]), np.array([2, 2]))
    ours = F.ctc_loss(dn.tensor(log_probs), dn.tensor([[1.7, 2.2], [3.0, 1.9]]), *map(
        dn.tensor, lengths), reduction="none")
    theirs = TF.ctc_loss(torch.tensor(log_probs), torch.tensor([[1.7, 2.2], [3.0, 1.9]]),
                         *map(torch.tensor, lengths), reduction="none")
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


def _brute_force_ctc(log_probs: np.ndarray, labels: list[int], blank: int) -> float:
    """-log sum over all C^T paths that collapse to ``labels`` (merge repeats, drop blanks)."""
    t, c = log_probs.shape
    total = 0.0
    for path in itertools.product(range(c), repeat=t):
        merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
        if [k for k in merged if k != blank] == labels:
            total += np.exp(sum(log_probs[i, k] for i, k in enumerate(path)))
    return -np.log(total) if total > 0 else np.inf


@pytest.mark.parametrize("labels, blank", [([1, 2], 0), ([1, 1], 0), ([2], 1), ([], 0),
                                           ([1, 2, 1], 0), ([0, 0], 2)])
def test_ctc_loss_equals_the_sum_over_all_alignments(labels, blank, rng):
    log_probs = _log_softmax(rng.standard_normal((5, 3)))
    ours = F.ctc_loss(dn.tensor(log_probs), dn.tensor(np.array(labels, dtype=np.int64)),
                      5, len(labels), blank=blank, reduction="none")
    np.testing.assert_allclose(ours.data, _brute_force_ctc(log_probs, labels, blank),
                               rtol=1e-12)


def test_ctc_gradient_is_the_true_gradient_plus_softmax(rng):
    """PyTorch's (and our) gradient = d(loss)/d(log_probs) + exp(log_probs) for t < T_n."""
    log_probs = rng.standard_normal((6, 2, 4))                          # unnormalised on purpose
    targets, lengths = np.array([[1, 2, 2], [3, 1, 0]]), (np.array([6, 4]), np.array([3, 2]))

    def loss(lp):
        return F.ctc_loss(lp, dn.tensor(targets), *map(dn.tensor, lengths), reduction="sum")

    x = dn.tensor(log_probs, requires_grad=True)
    loss(x).backward()
    true_grad = numerical_grad(lambda lp: loss(dn.tensor(lp)).data, [log_probs], 0)
    expected = true_grad + np.exp(log_probs) * (np.arange(6)[:, None, None] < lengths[0][:, None])
    np.testing.assert_allclose(x.grad.data, expected, atol=1e-7)
    # through log_softmax the extra term cancels: both give the gradient of the logits
    z = dn.tensor(log_probs, requires_grad=True)
    loss(F.log_softmax(z, dim=2)).backward()
    zt = torch.tensor(log_probs, requires_grad=True)
    TF.ctc_loss(zt.log_softmax(2), torch.tensor(targets), *map(torch.tensor, lengths),
                reduction="sum").backward()
    np.testing.assert_allclose(z.grad.data, zt.grad.numpy(), atol=1e-10)


def test_ctc_loss_mean_divides_by_target_lengths(rng):
    log_probs = _log_softmax(rng.standard_normal((8, 3, 5)))
    targets = np.array([[1, 2, 3, 4], [2, 2, 0, 0], [1, 0, 0, 0]])
    lengths = (np.array([8, 8, 8]), np.array([4, 2, 0]))
    per_sample = F.ctc_loss(dn.tensor(log_probs), dn.tensor(targets), *map(dn.tensor, lengths),
                            reduction="none").data
    mean = F.ctc_loss(dn.tensor(log_probs), dn.tensor(targets), *map(dn.tensor, lengths)).data
    np.testing.assert_allclose(mean, np.mean(per_sample / np.array([4, 2, 1])), rtol=1e-12)


def test_ctc_loss_matches_torch_at_a_realistic_size(rng):
    """A CRNN-like batch: T = 40 frames, N = 8 words of up to 12 characters, C = 37 classes."""
    t, n, c, s = 40, 8, 37, 12
    log_probs = _log_softmax(rng.standard_normal((t, n, c)))
    targets = rng.integers(1, c, (n, s))
    lengths = (rng.integers(30, t + 1, n), rng.integers(1, s + 1, n))
    check_against_torch(F.ctc_loss, "ctc_loss", (log_probs, targets) + lengths,
                        float32_atol=1e-4)


CTC_ERRORS = [
    # (exception, message, overrides of the valid call's arguments)
    (RuntimeError, "blank must be in label range", dict(blank=4)),
    (RuntimeError, "blank must be in label range", dict(blank=-1)),
    (RuntimeError, "Expected input_lengths to have value at most 6, but got value 7",
     dict(input_lengths=np.array([7, 5]))),
    (RuntimeError, "Expected input_lengths to have value at least 0, but got value -1",
     dict(input_lengths=np.array([-1, 5]))),
    (RuntimeError, "Expected target_lengths to have value at least 0, but got value -1",
     dict(target_lengths=np.array([-1, 2]))),
    (RuntimeError, "Expected tensor to have size at least 4 at dimension 1, but got size 3",
     dict(target_lengths=np.array([4, 2]))),
    (RuntimeError, "input_lengths must be of size batch_size",
     dict(input_lengths=np.array([6, 5, 4]))),
    (RuntimeError, "target_lengths must be of size batch_size", dict(target_lengths=np.array([3]))),
    (RuntimeError, "Expected tensor to have size 2 at dimension 0, but got size 1",
     dict(targets=np.array([[1, 2, 2]]))),
    (RuntimeError, "Expected tensor to have size 5 at dimension 0, but got size 6",
     dict(targets=np.array([1, 2, 2, 3, 1, 1]))),
    (RuntimeError, "Expected 1 to 2 dimensions, but got 3-dimensional tensor",
     dict(targets=np.ones((1, 2, 3), dtype=np.int64))),
    (RuntimeError, "Expected 3-dimensional tensor", dict(log_probs=np.zeros((1, 6, 2, 4)))),
    (RuntimeError, "log_probs tensor must not be empty", dict(log_probs=np.zeros((0, 2, 4)))),
    (RuntimeError, "input_lengths must be integral", dict(input_lengths=np.array([6.0, 5.0]))),
    (ValueError, "bad is not a valid value for reduction", dict(reduction="bad")),
]


@pytest.mark.parametrize("error, message, overrides", CTC_ERRORS)
def test_ctc_loss_errors_as_torch(error, message, overrides, rng):
    args = dict(log_probs=_log_softmax(rng.standard_normal((6, 2, 4))),
                targets=np.array([[1, 2, 2], [3, 1, 1]]), input_lengths=np.array([6, 5]),
                target_lengths=np.array([3, 2]), blank=0, reduction="mean")
    args.update(overrides)

    def call(make, functional):
        tensors = {k: make(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
        return functional.ctc_loss(**tensors)

    with pytest.raises(error, match=message):
        call(dn.tensor, F)
    with pytest.raises(error, match=message):
        call(torch.tensor, TF)


def test_ctc_loss_rejects_labels_torch_does_not_check(rng):
    log_probs = dn.tensor(_log_softmax(rng.standard_normal((6, 1, 4))))
    lengths = (dn.tensor([6]), dn.tensor([2]))
    with pytest.raises(RuntimeError, match=r"target labels must be in \[0, 4\).*got 5"):
        F.ctc_loss(log_probs, dn.tensor([[1, 5]]), *lengths)
    with pytest.raises(RuntimeError, match="the targets contain the blank label 0"):
        F.ctc_loss(log_probs, dn.tensor([[1, 0]]), *lengths)
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        F.ctc_loss(dn.tensor(np.zeros((6, 1, 4), dtype=np.int64)), dn.tensor([[1, 2]]), *lengths)
    with pytest.raises(TypeError, match="'input_lengths' must be"):
        F.ctc_loss(log_probs, dn.tensor([[1, 2]]), [6.0], [2])
