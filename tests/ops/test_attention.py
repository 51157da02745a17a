"""F.scaled_dot_product_attention against PyTorch: shapes, masks, causal, scale, GQA, dropout."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes.ops.attention import ScaledDotProductAttentionFn
from tests.helpers import check_against_torch, check_gradients

SDPA = "scaled_dot_product_attention"
seeds = st.integers(0, 2**32 - 1)


def _mask_for(kind: str, rng: np.random.Generator, batch: tuple, length: int, source: int):
    """None, a bool mask (True = attend; some rows fully masked) or a float mask, broadcastable."""
    if kind in ("none", "causal"):
        return None
    lead = batch[-1:] if batch and rng.random() < 0.5 else ()
    shape = (*lead, length, source)
    if kind == "bool":
        return rng.random(shape) < 0.6
    return rng.standard_normal(shape)


@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
       length=st.integers(1, 5), source=st.integers(1, 5), e=st.integers(1, 6),
       e_v=st.integers(1, 6), mask=st.sampled_from(["none", "bool", "float", "causal"]),
       scale=st.sampled_from([None, 0.3, 2.0]), seed=seeds)
def test_sdpa_matches_torch(batch, length, source, e, e_v, mask, scale, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*batch, length, e))
    k = rng.standard_normal((*batch, source, e))
    v = rng.standard_normal((*batch, source, e_v))
    attn_mask = _mask_for(mask, rng, batch, length, source)
    # a float mask is an input like q, k, v: its gradient is compared with torch's too
    check_against_torch(F.scaled_dot_product_attention, SDPA, (q, k, v, attn_mask),
                        is_causal=mask == "causal", scale=scale)


SDPA_CASES = {
    "2d_inputs": dict(q=(3, 4), k=(5, 4), v=(5, 2)),
    "broadcast_batch": dict(q=(2, 1, 3, 4), k=(1, 3, 5, 4), v=(1, 3, 5, 6)),
    "key_batch_broadcast": dict(q=(2, 3, 3, 4), k=(3, 5, 4), v=(3, 5, 2)),
    "causal_wide": dict(q=(2, 3, 4), k=(2, 6, 4), v=(2, 6, 3), is_causal=True),
    "causal_tall": dict(q=(2, 6, 4), k=(2, 3, 4), v=(2, 3, 3), is_causal=True),
    "gqa": dict(q=(2, 4, 3, 5), k=(2, 2, 6, 5), v=(2, 2, 6, 3), enable_gqa=True),
    "gqa_one_kv_head": dict(q=(1, 3, 2, 4), k=(1, 1, 5, 4), v=(1, 1, 5, 4), enable_gqa=True,
                            is_causal=True),
    "zero_scale": dict(q=(2, 3, 4), k=(2, 5, 4), v=(2, 5, 3), scale=0.0),
    "no_keys": dict(q=(2, 3, 4), k=(2, 0, 4), v=(2, 0, 3)),
    "no_queries": dict(q=(2, 0, 4), k=(2, 5, 4), v=(2, 5, 3)),
}


@pytest.mark.parametrize("name", SDPA_CASES)
def test_sdpa_table_cases_match_torch(name, rng):
    kw = dict(SDPA_CASES[name])
    q, k, v = (rng.standard_normal(kw.pop(key)) for key in ("q", "k", "v"))
    check_against_torch(F.scaled_dot_product_attention, SDPA, (q, k, v), **kw)


def test_sdpa_fully_masked_rows_give_zeros_like_torch(rng):
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), rng.standard_normal(
        (2, 5, 2))
    bool_mask = rng.random((2, 4, 5)) < 0.5
    bool_mask[0, 1] = False                       # query 1 of batch 0 may attend to nothing
    float_mask = np.where(bool_mask, 0.0, -np.inf)
    for mask in (bool_mask, float_mask):
        out = check_against_torch(F.scaled_dot_product_attention, SDPA, (q, k, v, mask),
                                  grad=mask.dtype == np.bool_)
        np.testing.assert_array_equal(out.detach().numpy()[0, 1], 0.0)


def test_sdpa_large_scores_do_not_overflow(rng):
    q = rng.standard_normal((2, 3, 4)) * 300
    k = rng.standard_normal((2, 5, 4)) * 300
    v = rng.standard_normal((2, 5, 2))
    with np.errstate(over="raise", invalid="raise"):
        check_against_torch(F.scaled_dot_product_attention, SDPA, (q, k, v), atol=1e-8)


def test_sdpa_matches_its_definition_and_finite_differences(rng):
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal(
        (2, 5, 3))
    scores = q @ k.transpose(0, 2, 1) / 2.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = F.scaled_dot_product_attention(dn.tensor(q), dn.tensor(k), dn.tensor(v))
    np.testing.assert_allclose(out.numpy(), weights @ v, atol=1e-12)
    check_gradients(F.scaled_dot_product_attention, q, k, v, is_causal=True)


def test_sdpa_dropout_backward_matches_torch_with_the_same_mask(rng):
    q, k, v = (rng.standard_normal(s) for s in [(2, 2, 6, 4), (2, 2, 7, 4), (2, 2, 7, 3)])
    mask = rng.standard_normal((6, 7))
    p = 0.4
    ours = [dn.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    fn = ScaledDotProductAttentionFn(0.5, dropout_p=p, need_weights=True)
    out, dropped = fn(*ours)
    keep = dropped.detach().numpy() != 0
    assert 0.3 < 1 - keep.mean() < 0.5                           # about p of the weights dropped
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    probs = torch.softmax(theirs[0] @ theirs[1].mT * 0.5 + theirs[3], dim=-1)
    dropped_t = probs * torch.tensor(keep) / (1 - p)
    out_t = dropped_t @ theirs[2]
    np.testing.assert_allclose(dropped.detach().numpy(), dropped_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), atol=1e-12)
    g_out, g_w = rng.standard_normal(out_t.shape), rng.standard_normal(dropped_t.shape)
    ((out * dn.tensor(g_out)).sum() + (dropped * dn.tensor(g_w)).sum()).backward()
    ((out_t * torch.tensor(g_out)).sum() + (dropped_t * torch.tensor(g_w)).sum()).backward()
    for name, o, t in zip("qkvm", ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), atol=1e-10, err_msg=name)


def test_sdpa_dropout_is_seeded_and_unbiased(rng):
    q, k, v = (dn.tensor(rng.standard_normal(s)) for s in [(64, 4, 3), (64, 6, 3), (64, 6, 2)])
    dn.manual_seed(5)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    dn.manual_seed(5)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    clean = F.scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), clean.numpy())
    # inverted dropout keeps the expectation: averaged over many draws the output is unchanged
    mean = np.mean([F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
                    for _ in range(200)], axis=0)
    assert np.abs(mean - clean.numpy()).mean() < 0.05
    np.testing.assert_array_equal(
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy(), 0.0)


ERROR_CASES = {
    "1d": (dict(q=(4,), k=(4,), v=(4,)), RuntimeError, "at least 2 dimensional"),
    "embed_mismatch": (dict(q=(3, 4), k=(5, 3), v=(5, 2)), RuntimeError, "same embedding size"),
    "length_mismatch": (dict(q=(3, 4), k=(5, 4), v=(4, 2)), RuntimeError, "same sequence"),
    "batch_mismatch": (dict(q=(2, 3, 4), k=(3, 5, 4), v=(3, 5, 2)), RuntimeError,
                       "not broadcastable"),
    "mask_shape": (dict(q=(3, 4), k=(5, 4), v=(5, 2), attn_mask=np.zeros((4, 5))),
                   RuntimeError, "does not broadcast"),
    "int_mask": (dict(q=(3, 4), k=(5, 4), v=(5, 2), attn_mask=np.zeros((3, 5), np.int64)),
                 RuntimeError, "attn_mask dtype"),
    "mask_and_causal": (dict(q=(3, 4), k=(5, 4), v=(5, 2), attn_mask=np.ones((3, 5), bool),
                             is_causal=True), RuntimeError, "should not be set"),
    "dropout": (dict(q=(3, 4), k=(5, 4), v=(5, 2), dropout_p=1.5), RuntimeError,
                "between 0 and 1"),
    "gqa_heads": (dict(q=(4, 3, 4), k=(3, 5, 4), v=(3, 5, 2), enable_gqa=True), RuntimeError,
                  "must divide"),
}


@pytest.mark.parametrize("name", ERROR_CASES)
def test_sdpa_rejects_bad_arguments_like_torch(name, rng):
    kw, error, message = ERROR_CASES[name]
    kw = dict(kw)
    q, k, v = (dn.tensor(rng.standard_normal(kw.pop(key))) for key in ("q", "k", "v"))
    if "attn_mask" in kw:
        kw["attn_mask"] = dn.tensor(kw["attn_mask"])
    with pytest.raises(error, match=message):
        F.scaled_dot_product_attention(q, k, v, **kw)
    tq, tk, tv = (torch.tensor(t.numpy()) for t in (q, k, v))
    if "attn_mask" in kw:
        kw["attn_mask"] = torch.tensor(kw["attn_mask"].numpy())
    with pytest.raises(RuntimeError):  # torch rejects the same call
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **kw)


def test_sdpa_rejects_mixed_dtypes_and_non_tensors(rng):
    q = dn.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    k = dn.tensor(rng.standard_normal((5, 4)))
    with pytest.raises(RuntimeError, match="same floating dtype"):
        F.scaled_dot_product_attention(q, k, k)
    with pytest.raises(TypeError, match="argument 'query' must be Tensor"):
        F.scaled_dot_product_attention(np.zeros((3, 4)), k, k)
