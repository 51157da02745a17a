"""nn.MultiheadAttention against torch.nn.MultiheadAttention with the same weights."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from tests.nn.module_oracle import (
    compare_float32_forward,
    compare_with_torch_module,
    load_torch_weights,
)


def _bool_mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """True = masked out, with at least one key left open in every row (no all-masked query)."""
    mask = rng.random(shape) < 0.4
    mask[..., 0] = False
    return mask


def _make_mask(kind: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "bool":
        return _bool_mask(rng, shape)
    return rng.standard_normal(shape)


@given(data=st.data(), heads=st.integers(1, 3), head_dim=st.integers(1, 3),
       length=st.integers(1, 4), source=st.integers(1, 4), batch=st.integers(1, 3),
       batch_first=st.booleans(), unbatched=st.booleans(), separate_kv=st.booleans(),
       bias=st.booleans(), add_bias_kv=st.booleans(), add_zero_attn=st.booleans(),
       need_weights=st.booleans(), average=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_multihead_attention_matches_torch(data, heads, head_dim, length, source, batch,
                                           batch_first, unbatched, separate_kv, bias,
                                           add_bias_kv, add_zero_attn, need_weights, average,
                                           seed):
    rng = np.random.default_rng(seed)
    e = heads * head_dim
    kdim, vdim = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))) if separate_kv \
        else (None, None)
    kw = dict(bias=bias, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn, kdim=kdim,
              vdim=vdim, batch_first=batch_first)
    self_attention = data.draw(st.booleans()) and not separate_kv
    if self_attention:
        source = length
    padding_kind = data.draw(st.sampled_from(["none", "bool", "float"]))
    mask_kind = data.draw(st.sampled_from(["none", "bool", "float", "float3d"]))
    if padding_kind != "none" and mask_kind not in ("none", "float3d"):
        mask_kind = "bool" if padding_kind == "bool" else "float"  # same dtypes: no warning

    def seq(n: int, f: int) -> tuple[int, ...]:
        if unbatched:
            return (n, f)
        return (batch, n, f) if batch_first else (n, batch, f)

    q = rng.standard_normal(seq(length, e))
    k = q if self_attention else rng.standard_normal(seq(source, kdim or e))
    v = q if self_attention else rng.standard_normal(seq(source, vdim or e))
    padding = _make_mask(padding_kind, rng, (source,) if unbatched else (batch, source))
    if mask_kind == "float3d":
        attn_mask = rng.standard_normal(((1 if unbatched else batch) * heads, length, source))
    else:
        attn_mask = _make_mask(mask_kind, rng, (length, source))

    def call(module, args):
        query, key, value, kpm, am = args
        if self_attention:
            key = value = query
        return module(query, key, value, key_padding_mask=kpm, need_weights=need_weights,
                      attn_mask=am, average_attn_weights=average)

    inputs = (q, k, v, padding, attn_mask)
    torch.manual_seed(0)
    compare_with_torch_module(nn.MultiheadAttention(e, heads, **kw),
                              torch.nn.MultiheadAttention(e, heads, **kw), inputs, call=call)
    compare_float32_forward(nn.MultiheadAttention(e, heads, **kw),
                            torch.nn.MultiheadAttention(e, heads, **kw), inputs, call=call)


@pytest.mark.parametrize("need_weights", [True, False])
def test_is_causal_hint_matches_torch(need_weights, rng):
    causal = np.triu(np.ones((5, 5), dtype=bool), k=1)         # True above the diagonal
    x = rng.standard_normal((5, 2, 6))

    def call(module, args):
        (query, mask) = args
        return module(query, query, query, attn_mask=mask, need_weights=need_weights,
                      is_causal=True)

    compare_with_torch_module(nn.MultiheadAttention(6, 3), torch.nn.MultiheadAttention(6, 3),
                              (x, causal), call=call)


def test_fully_masked_queries_follow_torch(rng):
    """need_weights=True: NaN rows (plain softmax); need_weights=False: zero attention."""
    x = rng.standard_normal((3, 2, 4))
    padding = np.zeros((2, 3), dtype=bool)
    padding[1] = True                                          # sequence 1: every key is padding
    theirs = torch.nn.MultiheadAttention(4, 2).double()
    ours = nn.MultiheadAttention(4, 2).double()
    load_torch_weights(ours, theirs)
    for need_weights in (True, False):
        t_out, t_w = theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(padding),
                            need_weights=need_weights)
        o_out, o_w = ours(*(dn.tensor(x),) * 3, key_padding_mask=dn.tensor(padding),
                          need_weights=need_weights)
        np.testing.assert_allclose(o_out.detach().numpy(), t_out.detach().numpy(), atol=1e-12)
        assert np.isnan(o_out.detach().numpy()[:, 1]).all() == need_weights
        if need_weights:
            np.testing.assert_allclose(o_w.detach().numpy(), t_w.detach().numpy(), atol=1e-12)


def test_parameters_names_shapes_and_init_match_torch():
    for kw in [dict(), dict(kdim=3, vdim=5), dict(bias=False, add_bias_kv=True)]:
        ours, theirs = nn.MultiheadAttention(8, 2, **kw), torch.nn.MultiheadAttention(8, 2, **kw)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
            k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    big = nn.MultiheadAttention(64, 4)
    np.testing.assert_array_equal(big.in_proj_bias.detach().numpy(), 0.0)
    np.testing.assert_array_equal(big.out_proj.bias.detach().numpy(), 0.0)
    bound = np.sqrt(6.0 / (64 + 3 * 64))                       # xavier_uniform on (3E, E)
    w = big.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_state_dict_loads_back_into_torch(rng):
    ours = nn.MultiheadAttention(6, 2, add_bias_kv=True).double()
    theirs = torch.nn.MultiheadAttention(6, 2, add_bias_kv=True).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((4, 3, 6))
    t_out, t_w = theirs(*(torch.tensor(x),) * 3)
    o_out, o_w = ours(*(dn.tensor(x),) * 3)
    np.testing.assert_allclose(o_out.detach().numpy(), t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(o_w.detach().numpy(), t_w.detach().numpy(), atol=1e-12)


def test_dropout_acts_in_training_only(rng):
    x = dn.tensor(rng.standard_normal((5, 2, 8)).astype(np.float32))
    module = nn.MultiheadAttention(8, 2, dropout=0.5)
    dn.manual_seed(1)
    out_a, w_a = module(x, x, x)
    out_b, w_b = module(x, x, x)
    assert not np.allclose(out_a.detach().numpy(), out_b.detach().numpy())
    module.eval()
    out_c, w_c = module(x, x, x)
    out_d, _ = module(x, x, x)
    np.testing.assert_array_equal(out_c.detach().numpy(), out_d.detach().numpy())
    np.testing.assert_allclose(w_c.detach().numpy().sum(-1), 1.0, atol=1e-6)
    theirs = torch.nn.MultiheadAttention(8, 2, dropout=0.5).eval()
    load_torch_weights(module, theirs)
    with torch.no_grad():
        t_out, _ = theirs(*(torch.tensor(x.numpy()),) * 3)
    np.testing.assert_allclose(module(x, x, x)[0].detach().numpy(), t_out.numpy(), atol=1e-5)
    # in training the weights per head have dropped entries scaled by 2 = 1 / (1 - p)
    module.train()
    _, heads_w = module(x, x, x, average_attn_weights=False)
    values = heads_w.detach().numpy()
    assert (values == 0).mean() > 0.3


ERROR_CASES = {
    "not_divisible": (lambda: nn.MultiheadAttention(5, 2), AssertionError, "divisible"),
    "zero_heads": (lambda: nn.MultiheadAttention(4, 0), ValueError, "greater than 0"),
    "bad_dropout": (lambda: nn.MultiheadAttention(4, 2, dropout=2.0), ValueError, "between"),
}


@pytest.mark.parametrize("name", ERROR_CASES)
def test_constructor_errors(name):
    make, error, message = ERROR_CASES[name]
    with pytest.raises(error, match=message):
        make()


def test_forward_errors_match_torch(rng):
    ours, theirs = nn.MultiheadAttention(4, 2), torch.nn.MultiheadAttention(4, 2)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    wrong_embed = rng.standard_normal((3, 2, 6)).astype(np.float32)
    cases = [
        (dict(query=wrong_embed), AssertionError, "embedding dimension of 4"),
        (dict(query=x[0]), AssertionError, "expected `key` and `value` to be 2-D"),
        (dict(query=x[None]), AssertionError, "unbatched 2D or batched 3D"),
        (dict(attn_mask=np.zeros((3, 2), dtype=bool)), RuntimeError, "2D attn_mask"),
        (dict(attn_mask=np.zeros((3, 3, 3), dtype=bool)), RuntimeError, "3D attn_mask"),
        (dict(key_padding_mask=np.zeros((2, 4), dtype=bool)), AssertionError,
         r"key_padded_mask.shape\[1\] to be 3"),
        (dict(key_padding_mask=np.zeros((2, 3), dtype=np.int64)), AssertionError,
         "only bool and floating"),
        (dict(is_causal=True), RuntimeError, "Need attn_mask"),
    ]
    for kw, error, message in cases:
        query = kw.pop("query", x)
        for module, make in ((ours, dn.tensor), (theirs, torch.tensor)):
            args = {k: make(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
            with pytest.raises(error, match=message), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module(make(query), make(x), make(x), **args)
