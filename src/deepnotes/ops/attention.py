"""Scaled dot-product attention as one fused op (notes 003 "attention", "transformer").

Attention reads a set of values V through weights that say how well each query matches each key:

    S = Q K^T * scale + M          scores, scale = 1/sqrt(E) by default, M an additive mask
    P = softmax(S) along the keys  each query's weights are a distribution over the S keys
    O = P V                        each output row is a weighted average of value rows

Masks: a bool mask keeps the True positions (False -> -inf in S, weight 0); a float mask is added
to S; ``is_causal`` keeps position j for query i only when j <= i (lower triangle). A query whose
every key is masked gets a zero row (PyTorch's "safe softmax"), not NaN.

The backward is derived in full in docs/derivations/attention.md; the op keeps P instead of
rebuilding it from Q and K, so backward costs four matrix products.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from ._util import check_tensor
from .dropout import _draw_keep_mask


def _masked_softmax(scores: np.ndarray, empty_rows_zero: bool) -> np.ndarray:
    """Softmax along the last axis, in place on ``scores``; rows that are all -inf give 0 (or NaN).

    The row max m is subtracted first (nothing overflows, notes 003 softmax). A row with every
    score -inf has m = -inf and e^(s - m) = e^nan; setting m = 0 there gives e^-inf = 0 in every
    entry, a zero sum, and 0 weights after the guarded division (PyTorch's sdpa). With
    ``empty_rows_zero=False`` the plain formula runs and such rows are NaN, as in PyTorch's
    ``need_weights=True`` path of multi-head attention.
    """
    row_max = np.max(scores, axis=-1, keepdims=True, initial=-np.inf)   # (..., L, 1)
    if empty_rows_zero:
        row_max[row_max == -np.inf] = 0
    with np.errstate(invalid="ignore"):  # -inf - -inf = NaN is the intended result without it
        scores -= row_max
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)                           # (..., L, 1)
    if empty_rows_zero:
        total[total == 0] = 1  # the row is all zeros: 0 / 1 = 0
    scores /= total
    return scores


class ScaledDotProductAttentionFn(Function):
    """O = dropout(softmax(Q K^T * scale + M)) V, with its hand-derived backward.

    Q (..., L, E), K (..., S, E), V (..., S, E_v), M broadcastable to (..., L, S)
    -> O (..., L, E_v).
    Batch axes ("...") broadcast as in matmul. Forward, per batch entry:
        S  = Q K^T * scale (+ M, or -inf where a bool mask is False or above the causal diagonal)
        P  = softmax(S) by rows                                   (L, S)
        P' = P * keep / (1 - p)     (dropout on the weights; P' = P when p = 0)
        O  = P' V                                                 (L, E_v)
    Backward, with dO = dL/dO (docs/derivations/attention.md):
        dV  = P'^T dO                                             (S, E_v)
        dP' = dO V^T,  dP = dP' * keep / (1 - p)                  (L, S)
        dS  = P * (dP - rowsum(dP * P))       (the softmax Jacobian, notes 003 softmax)
        dQ  = dS K * scale,   dK = dS^T Q * scale,   dM = dS
    Masked entries have P = 0, hence dS = 0: no gradient reaches a masked key.

    With ``need_weights`` the op also returns P' (what ``nn.MultiheadAttention`` hands back);
    its upstream gradient simply adds to dP'. Torch: F.scaled_dot_product_attention.
    """

    def __init__(self, scale: float, is_causal: bool = False, dropout_p: float = 0.0,
                 need_weights: bool = False, empty_rows_zero: bool = True, gqa_groups: int = 1):
        self.scale, self.is_causal, self.dropout_p = scale, is_causal, dropout_p
        self.need_weights, self.empty_rows_zero = need_weights, empty_rows_zero
        self.gqa_groups = gqa_groups

    def forward(self, q, k, v, mask=None):
        xp = backend.array_module(q)
        if self.gqa_groups > 1:  # each key/value head serves gqa_groups query heads
            k = xp.repeat(k, self.gqa_groups, axis=-3)                  # (..., H_q, S, E)
            v = xp.repeat(v, self.gqa_groups, axis=-3)                  # (..., H_q, S, E_v)
        scale = q.dtype.type(self.scale)
        scores = (q @ xp.swapaxes(k, -1, -2)) * scale                   # (..., L, S)
        length, source = scores.shape[-2:]
        if self.is_causal:
            future = xp.triu(xp.ones((length, source), dtype=bool), k=1)  # (L, S) j > i
            scores = xp.where(future, -np.inf, scores).astype(q.dtype, copy=False)
        if mask is not None:
            if mask.dtype == np.bool_:
                scores = xp.where(mask, scores, -np.inf).astype(q.dtype, copy=False)
            else:
                scores = scores + mask.astype(q.dtype, copy=False)
        probs = _masked_softmax(scores, self.empty_rows_zero)           # (..., L, S) P
        keep = None
        weights = probs
        if self.dropout_p > 0:
            keep = _draw_keep_mask(probs.shape, self.dropout_p)
            drop_scale = 0.0 if self.dropout_p == 1 else 1.0 / (1.0 - self.dropout_p)
            self.drop_scale = q.dtype.type(drop_scale)
            weights = probs * keep * self.drop_scale                    # (..., L, S) P'
        out = weights @ v                                               # (..., L, E_v)
        self.save_for_backward(q, k, v, probs, keep, weights)
        if self.need_weights:
            return out, (weights.copy() if weights is probs else weights)
        return out

    def backward(self, grad_out, grad_weights=None):
        q, k, v, probs, keep, weights = self.saved
        needs = self.needs_input_grad
        grad_v = None
        if needs[2]:
            grad_v = self._gqa_sum(np.swapaxes(weights, -1, -2) @ grad_out)  # (..., S, E_v)
        wants_scores = needs[0] or needs[1] or (len(needs) > 3 and needs[3])
        if not wants_scores:
            return None, None, grad_v, None
        grad_p = grad_out @ np.swapaxes(v, -1, -2)                      # (..., L, S) dP'
        if grad_weights is not None:
            grad_p = grad_p + grad_weights
        if keep is not None:
            grad_p = grad_p * keep * self.drop_scale                    # dP
        row_dot = np.einsum("...ls,...ls->...l", grad_p, probs)[..., None]  # (..., L, 1)
        grad_scores = probs * (grad_p - row_dot)                        # (..., L, S) dS
        scale = q.dtype.type(self.scale)
        grad_q = (grad_scores @ k) * scale if needs[0] else None        # (..., L, E)
        grad_k = None
        if needs[1]:
            grad_k = self._gqa_sum((np.swapaxes(grad_scores, -1, -2) @ q) * scale)  # (..., S, E)
        grad_mask = grad_scores if len(needs) > 3 and needs[3] else None
        return grad_q, grad_k, grad_v, grad_mask

    def _gqa_sum(self, grad: np.ndarray) -> np.ndarray:
        """Undo the head repetition of enable_gqa: sum the gradients of each group's copies."""
        g = self.gqa_groups
        if g == 1:
            return grad
        shape = grad.shape
        grouped = grad.reshape(*shape[:-3], shape[-3] // g, g, *shape[-2:])  # (..., H_kv, g, S, E)
        return grouped.sum(axis=-3)                                          # (..., H_kv, S, E)


def _float_arg(value: Any, name: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}(): argument '{name}' must be float, not {type(value).__name__}")
    return float(value)


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Any:
    """softmax(Q K^T / sqrt(E) + mask) V, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        query: (..., L, E) floating tensor (at least 2-D; typically (N, H, L, E)).
        key: (..., S, E), batch axes broadcastable with the query's.
        value: (..., S, E_v).
        attn_mask: None, a bool tensor (True = the query may attend to this key) or a float tensor
            added to the scores (e.g. 0 / -inf, or a learned bias, which then gets a gradient);
            broadcastable to (..., L, S).
        dropout_p: dropout probability applied to the attention weights. Applied whenever it is
            positive (the functional form has no training flag: pass 0.0 in evaluation).
        is_causal: mask out keys j > i for query i (the upper triangle of the (L, S) grid, aligned
            at the top-left corner as in PyTorch). Cannot be combined with ``attn_mask``.
        scale: the factor applied to Q K^T; default 1/sqrt(E).
        enable_gqa: grouped-query attention: key/value have H_kv heads on axis -3, the query
            H_q = g * H_kv, and each key/value head is shared by g consecutive query heads.

    Returns:
        (..., L, E_v). A query whose every key is masked gets zeros (and zero gradients).

    Raises:
        RuntimeError: fewer than 2 dimensions, mismatched dtypes or sizes, a mask that does not
            broadcast or has an integer dtype, attn_mask together with is_causal, or dropout_p
            outside [0, 1].

    Math: :class:`ScaledDotProductAttentionFn`; docs/derivations/attention.md. Notes 003.
    """
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_tensor(t, name, op)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be at least 2 dimensional, but "
                           f"got query.dim: {query.ndim} key.dim: {key.ndim} and value.dim: "
                           f"{value.ndim} instead.")
    if not (query.dtype == key.dtype == value.dtype) or query.dtype.kind != "f":
        raise RuntimeError(f"Expected query, key, and value to have the same floating dtype, but "
                           f"got query.dtype: {query.dtype} key.dtype: {key.dtype} and "
                           f"value.dtype: {value.dtype} instead.")
    p = _float_arg(dropout_p, "dropout_p", op)
    if not 0.0 <= p <= 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {p}")
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    else:
        scale = _float_arg(scale, "scale", op)
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"{op}(): query and key must have the same embedding size E, got "
                           f"query {tuple(query.shape)} (E={query.shape[-1]}) and key "
                           f"{tuple(key.shape)} (E={key.shape[-1]})")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"{op}(): key and value must have the same sequence length S, got "
                           f"key {tuple(key.shape)} and value {tuple(value.shape)}")
    groups = 1
    if enable_gqa:
        if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
            raise RuntimeError(f"{op}(): enable_gqa needs a head axis (-3) on query, key and "
                               "value")
        heads_q, heads_k, heads_v = query.shape[-3], key.shape[-3], value.shape[-3]
        if heads_k != heads_v or heads_q % heads_k != 0:
            raise RuntimeError(f"Number of heads in key and value must divide the number of heads "
                               f"in query, got query heads {heads_q}, key heads {heads_k} and "
                               f"value heads {heads_v}")
        groups = heads_q // heads_k
    def heads_repeated(t: Any) -> tuple[int, ...]:  # the batch axes after the GQA repetition
        return (*t.shape[:-3], t.shape[-3] * groups) if groups > 1 else tuple(t.shape[:-2])

    try:
        batch = np.broadcast_shapes(query.shape[:-2], heads_repeated(key), heads_repeated(value))
    except ValueError:
        raise RuntimeError(f"{op}(): the batch dimensions of query {tuple(query.shape)}, key "
                           f"{tuple(key.shape)} and value {tuple(value.shape)} are not "
                           "broadcastable") from None
    if attn_mask is not None:
        check_tensor(attn_mask, "attn_mask", op)
        if is_causal:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                               "set when is_causal=True")
        if attn_mask.dtype != np.bool_ and attn_mask.dtype.kind != "f":
            raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query "
                               f"dtype, but got attn_mask.dtype: {attn_mask.dtype} and "
                               f"query.dtype: {query.dtype} instead.")
        scores_shape = (*batch, query.shape[-2], key.shape[-2])
        try:
            if np.broadcast_shapes(attn_mask.shape, scores_shape) != scores_shape:
                raise ValueError
        except ValueError:
            raise RuntimeError(f"{op}(): attn_mask of shape {tuple(attn_mask.shape)} does not "
                               f"broadcast to the attention scores' shape {scores_shape} "
                               "(..., L, S)") from None
    fn = ScaledDotProductAttentionFn(scale, bool(is_causal), p, gqa_groups=groups)
    return fn(query, key, value, attn_mask)
