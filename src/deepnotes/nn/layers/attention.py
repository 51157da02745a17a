"""``MultiheadAttention`` (Vaswani et al. 2017), as ``torch.nn.MultiheadAttention``.

Notes 003 "attention": weights computed from queries, keys and values (KQV). Each of the H heads
projects the inputs to its own D = E / H dimensional subspace, attends there, and the H results
are concatenated and mixed by an output projection:

    head_h = softmax(Q W_q,h (K W_k,h)^T / sqrt(D) + mask) V W_v,h        (L, D)
    output = concat(head_1, ..., head_H) W_o^T + b_o                       (L, E)

The attention itself is one fused op, ``ops.attention.ScaledDotProductAttentionFn`` (its backward is
derived in docs/derivations/attention.md); this module owns the projections and the masks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ...ops.attention import ScaledDotProductAttentionFn
from ...ops.shape import cat
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, factory
from .linear import Linear


def canonical_mask(mask: Tensor | None, mask_name: str, dtype: np.dtype,
                   other: Tensor | None = None, other_name: str = "") -> Tensor | None:
    """A bool mask (True = masked out) -> a float mask (-inf there, 0 elsewhere); float passes.

    This is the convention of ``nn.MultiheadAttention`` and the Transformer layers, the opposite
    of ``F.scaled_dot_product_attention``'s bool masks (True = attend).
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{mask_name} must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if other is not None and other.dtype != mask.dtype:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use "
                      "same type for both instead.", stacklevel=3)
    if mask.dtype == np.bool_:
        return Tensor._wrap(np.where(mask.data, -np.inf, 0.0).astype(dtype))
    return mask


def _check_shapes(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None,
                  attn_mask: Tensor | None, num_heads: int) -> bool:
    """PyTorch's rank checks (AssertionError, as torch); returns whether the input is batched."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got "
                            f"{type(t).__name__}")
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise AssertionError(f"For batched (3-D) `query`, expected `key` and `value` to be 3-D "
                                 f"but found {key.ndim}-D and {value.ndim}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise AssertionError(f"For batched (3-D) `query`, expected `key_padding_mask` to be "
                                 f"`None` or 2-D but found {key_padding_mask.ndim}-D tensor "
                                 "instead")
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise AssertionError(f"For batched (3-D) `query`, expected `attn_mask` to be `None`, "
                                 f"2-D or 3-D but found {attn_mask.ndim}-D tensor instead")
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key` and `value` to be "
                                 f"2-D but found {key.ndim}-D and {value.ndim}-D tensors "
                                 "respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key_padding_mask` to be "
                                 f"`None` or 1-D but found {key_padding_mask.ndim}-D tensor "
                                 "instead")
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise AssertionError(f"For unbatched (2-D) `query`, expected `attn_mask` to be "
                                     f"`None`, 2-D or 3-D but found {attn_mask.ndim}-D tensor "
                                     "instead")
            expected = (num_heads, query.shape[0], key.shape[0])
            if attn_mask.ndim == 3 and tuple(attn_mask.shape) != expected:
                raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got "
                                     f"{tuple(attn_mask.shape)}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received "
                         f"{query.ndim}-D query tensor")


class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's parameters, masks and outputs.

    Args:
        embed_dim: E, the model dimension (query size and output size).
        num_heads: H; E must be divisible by H, each head has D = E / H dimensions.
        dropout: dropout probability on the attention weights (training mode only).
        bias: learn in_proj_bias (3E,) and out_proj.bias.
        add_bias_kv: learn one extra key and value row, bias_k and bias_v (1, 1, E), appended to
            the keys and values of every sequence.
        add_zero_attn: append a zero key and value row to every head (a key the query can
            attend to "nothing" through).
        kdim, vdim: feature sizes of key and value (default E). When either differs from E the
            projections are separate parameters q_proj_weight (E, E), k_proj_weight (E, kdim),
            v_proj_weight (E, vdim) instead of the packed in_proj_weight (3E, E).
        batch_first: inputs and output are (N, L, E) instead of (L, N, E).
        device: None or "cpu". dtype: parameter dtype.

    Shape (forward):
        query (L, N, E) / (N, L, E) with batch_first / (L, E) unbatched;
        key (S, N, kdim), value (S, N, vdim) in the same layout;
        key_padding_mask (N, S) or (S,): bool True = ignore that key, or float added;
        attn_mask (L, S) or (N*H, L, S): bool True = NOT allowed to attend, or float added.
        output (L, N, E) in the input's layout; weights (N, L, S), or (N, H, L, S) with
        ``average_attn_weights=False`` (S counts the bias_kv / zero rows when present).

    Parameters (PyTorch's names, so a torch state_dict loads as is):
        in_proj_weight (3E, E) xavier_uniform (rows: W_q, W_k, W_v) or q/k/v_proj_weight,
        in_proj_bias (3E,) zeros, out_proj.weight (E, E) Linear's default, out_proj.bias zeros,
        bias_k, bias_v (1, 1, E) xavier_normal.

    Note the mask convention: True means *masked out* here (as in torch's module), while a bool
    ``attn_mask`` of ``F.scaled_dot_product_attention`` means *may attend*. A query with every key
    masked gives NaN with ``need_weights=True`` and zeros with ``need_weights=False``, as in
    PyTorch (its two code paths differ). Notes 003 "attention".
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        if isinstance(embed_dim, int) and isinstance(num_heads, int) and (
                embed_dim <= 0 or num_heads <= 0):
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim="
                             f"{embed_dim} and num_heads={num_heads} instead")
        self.embed_dim = check_count(embed_dim, "embed_dim", "MultiheadAttention")
        self.num_heads = check_count(num_heads, "num_heads", "MultiheadAttention")
        self.kdim = embed_dim if kdim is None else check_count(kdim, "kdim", "MultiheadAttention")
        self.vdim = embed_dim if vdim is None else check_count(vdim, "vdim", "MultiheadAttention")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not (
                0 <= dropout <= 1):
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout}")
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError(f"embed_dim must be divisible by num_heads, got embed_dim="
                                 f"{embed_dim} and num_heads={num_heads}")
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(factory((3 * e, e), device, dtype))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(factory((e, e), device, dtype))
            self.k_proj_weight = Parameter(factory((e, self.kdim), device, dtype))
            self.v_proj_weight = Parameter(factory((e, self.vdim), device, dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(factory((3 * e,), device, dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(factory((1, 1, e), device, dtype))
            self.bias_v = Parameter(factory((1, 1, e), device, dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: xavier_uniform projections, zero biases."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q = query W_q^T + b_q etc., each (len, N, E)."""
        e = self.embed_dim
        b = self.in_proj_bias
        b_q, b_k, b_v = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if not self._qkv_same_embed_dim:
            return (F.linear(query, self.q_proj_weight, b_q),
                    F.linear(key, self.k_proj_weight, b_k),
                    F.linear(value, self.v_proj_weight, b_v))
        w = self.in_proj_weight
        if query is key and key is value:  # self-attention: one (3E, E) product
            qkv = F.linear(query, w, b)                                  # (L, N, 3E)
            return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
        return (F.linear(query, w[:e], b_q), F.linear(key, w[e:2 * e], b_k),
                F.linear(value, w[2 * e:], b_v))

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; returns (output, weights or None).

        ``is_causal`` is a hint that ``attn_mask`` is the causal mask, as in PyTorch: it needs an
        ``attn_mask``, and when there is no key_padding_mask and ``need_weights=False`` the
        causal mask is applied in place of ``attn_mask``. The returned weights are those the
        values were averaged with (after dropout in training).
        """
        is_batched = _check_shapes(query, key, value, key_padding_mask, attn_mask,
                                   self.num_heads)
        dtype = query.dtype
        key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", dtype,
                                          attn_mask, "attn_mask")
        attn_mask = canonical_mask(attn_mask, "attn_mask", dtype)
        if self.batch_first and is_batched:  # keep "query is key is value" true after transposing
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = query.transpose(1, 0), key.transpose(1, 0)
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        if not is_batched:
            same = query is key and key is value
            query, key, value = (x.unsqueeze(1) for x in (query, key, value))
            if same:
                key = value = query
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        output, weights = self._attend(query, key, value, key_padding_mask, need_weights,
                                       attn_mask, average_attn_weights, is_causal)
        if not is_batched:
            output = output.squeeze(1)
            if weights is not None:
                weights = weights.squeeze(0)
        elif self.batch_first:
            output = output.transpose(1, 0)
        return output, weights

    def _check_sizes(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        length, n, e = query.shape
        if e != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got "
                                 f"{e}")
        if key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise RuntimeError(f"MultiheadAttention: expected key (S, N, kdim={self.kdim}) and "
                               f"value (S, N, vdim={self.vdim}), got key {tuple(key.shape)} and "
                               f"value {tuple(value.shape)} (in the (seq, batch, feature) layout)")
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not "
                                 f"match value's {tuple(value.shape[:2])}")
        if key.shape[1] != n:
            raise AssertionError(f"query and key must have the same batch size, got query "
                                 f"{tuple(query.shape)} and key {tuple(key.shape)} (in the "
                                 "(seq, batch, feature) layout)")

    def _attend(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None, need_weights: bool, attn_mask: Tensor | None,
                average_attn_weights: bool, is_causal: bool) -> tuple[Tensor, Tensor | None]:
        """The batched computation on (seq, N, feature) inputs and float masks."""
        self._check_sizes(query, key, value)
        length, n, e = query.shape
        source = key.shape[0]
        h, d = self.num_heads, self.head_dim
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                               "Transformer module method `generate_square_subsequent_mask` to "
                               "create this mask.")
        use_causal = bool(is_causal) and key_padding_mask is None and not need_weights
        if use_causal:
            attn_mask = None
        if attn_mask is not None:
            expected = (length, source) if attn_mask.ndim == 2 else (n * h, length, source)
            if tuple(attn_mask.shape) != expected:
                raise RuntimeError(f"The shape of the {attn_mask.ndim}D attn_mask is "
                                   f"{tuple(attn_mask.shape)}, but should be {expected}.")
        q, k, v = self._project(query, key, value)                       # (L|S, N, E)
        if self.bias_k is not None:  # one learned extra key/value for every sequence
            k = cat([k, self.bias_k.expand(1, n, e)], 0)                 # (S+1, N, E)
            v = cat([v, self.bias_v.expand(1, n, e)], 0)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = (None if key_padding_mask is None
                                else F.pad(key_padding_mask, (0, 1)))
        q = q.reshape(length, n, h, d).permute(1, 2, 0, 3)              # (N, H, L, D)
        k = k.reshape(k.shape[0], n, h, d).permute(1, 2, 0, 3)          # (N, H, S, D)
        v = v.reshape(v.shape[0], n, h, d).permute(1, 2, 0, 3)          # (N, H, S, D)
        if self.add_zero_attn:
            zeros = Tensor._wrap(np.zeros((n, h, 1, d), dtype=q.dtype))
            k, v = cat([k, zeros], 2), cat([v, zeros], 2)                # (N, H, S+1, D)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = (None if key_padding_mask is None
                                else F.pad(key_padding_mask, (0, 1)))
        source = k.shape[2]
        mask = None
        if attn_mask is not None:
            shape = (1, 1, length, source) if attn_mask.ndim == 2 else (n, h, length, source)
            mask = attn_mask.reshape(*shape)                             # (1|N, 1|H, L, S)
        if key_padding_mask is not None:
            for axis, size in enumerate((n, source)):  # torch's message (with its typo)
                if key_padding_mask.shape[axis] != size:
                    raise AssertionError(f"Expected key_padded_mask.shape[{axis}] to be {size}, "
                                         f"but got {key_padding_mask.shape[axis]} (key_padding_"
                                         f"mask must be (N, S) = {(n, source)})")
            padding = key_padding_mask.reshape(n, 1, 1, source)          # (N, 1, 1, S)
            mask = padding if mask is None else mask + padding
        p = self.dropout if self.training else 0.0
        fn = ScaledDotProductAttentionFn(1.0 / math.sqrt(d), use_causal, p,
                                         need_weights=need_weights,
                                         empty_rows_zero=not need_weights)
        result = fn(q, k, v, mask)
        out, weights = result if need_weights else (result, None)       # (N, H, L, D)
        out = out.permute(2, 0, 1, 3).reshape(length, n, e)              # (L, N, E)
        out = self.out_proj(out)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)                                # (N, L, S)
        return out, weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
                f", batch_first={self.batch_first}")
