"""The Transformer encoder (Vaswani et al. 2017) and sinusoidal positional encoding (notes 003).

One encoder layer is self-attention followed by a position-wise feed-forward network, each wrapped
in a residual connection and a LayerNorm, either after the sum (post-norm, the paper and PyTorch's
default) or before the block (pre-norm, ``norm_first=True``):

    post-norm:  x = norm1(x + SA(x));          x = norm2(x + FF(x))
    pre-norm:   x = x + SA(norm1(x));          x = x + FF(norm2(x))
    SA(x) = dropout1(self_attn(x, x, x)),      FF(x) = dropout2(linear2(dropout(act(linear1(x)))))

Notes 003 "transformer为什么不能表示位置关系": every step above treats the tokens as a set. Self-
attention scores q_i . k_j depend only on the token vectors x_i, x_j, never on i and j, and the
feed-forward network acts on each position alone, so permuting the input tokens permutes the
output rows the same way (permutation equivariance). Adding a position-dependent vector p_i to
each x_i (``PositionalEncoding``) is what lets the model tell positions apart.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from ..containers import ModuleList
from ..module import Module
from ._common import check_count, factory
from .attention import MultiheadAttention, canonical_mask
from .dropout import Dropout
from .linear import Linear
from .norm import LayerNorm


def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
    """The causal float mask (sz, sz): 0 on and below the diagonal, -inf above it.

    Position i may attend to positions j <= i only (as ``torch.nn.Transformer``'s static method
    of the same name and signature).
    """
    sz = check_count(sz, "sz", "generate_square_subsequent_mask", minimum=0)
    mask = factory((sz, sz), device, dtype)
    mask.data[...] = np.triu(np.full((sz, sz), -np.inf), k=1)
    return mask


def _detect_is_causal_mask(mask: Tensor | None, is_causal: bool | None, size: int) -> bool:
    """``is_causal`` if given; otherwise whether ``mask`` equals the causal mask of ``size``."""
    if is_causal is not None or mask is None:
        return is_causal is True
    causal = np.triu(np.full((size, size), -np.inf), k=1)
    return tuple(mask.shape) == causal.shape and bool(np.array_equal(mask.data, causal))


def _activation_fn(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"activation must be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block, as ``torch.nn.TransformerEncoderLayer``.

    Args:
        d_model: E, the token dimension.
        nhead: number of attention heads (E must be divisible by it).
        dim_feedforward: hidden size of the feed-forward network (default 2048).
        dropout: dropout probability for the attention weights, after the activation and on the
            two residual branches (default 0.1).
        activation: ``"relu"``, ``"gelu"`` (exact erf form) or any callable (a function or a
            Module, which is then registered as the submodule ``activation``).
        layer_norm_eps: eps of norm1 and norm2.
        batch_first: (N, L, E) instead of (L, N, E).
        norm_first: pre-norm (LayerNorm before each block) instead of post-norm.
        bias: biases in the linear layers, the attention and the LayerNorms.

    Submodules (PyTorch's names, so state_dicts move both ways): self_attn, linear1, dropout,
    linear2, norm1, norm2, dropout1, dropout2.

    Shape: src (L, N, E), (N, L, E) with batch_first, or (L, E) -> the same shape.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str | Callable[[Tensor], Tensor] = F.relu,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation_fn(activation)
        # PyTorch's flag for its fused fast path (1 relu, 2 gelu, 0 other); informational here
        self.activation_relu_or_gelu = (1 if self.activation is F.relu else
                                        2 if self.activation is F.gelu else 0)

    def forward(self, src: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        """src_mask: (L, L) or (N*nhead, L, L); src_key_padding_mask: (N, L). Bool True or
        float -inf masks a key out; ``is_causal`` says src_mask is the causal mask (a hint, as in
        ``MultiheadAttention``)."""
        src_key_padding_mask = canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                              src.dtype, src_mask, "src_mask")
        src_mask = canonical_mask(src_mask, "src_mask", src.dtype)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` deep copies of ``encoder_layer``, then an optional ``norm``.

    As ``torch.nn.TransformerEncoder``: submodules ``layers.0 ... layers.{n-1}`` and ``norm``.
    ``enable_nested_tensor`` and ``mask_check`` are accepted and stored for compatibility; there
    is no nested-tensor fast path here, so padded positions are computed like any other (PyTorch
    in eval mode under no_grad may return zeros there instead).
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got "
                            f"{type(encoder_layer).__name__}")
        self.num_layers = check_count(num_layers, "num_layers", "TransformerEncoder", minimum=0)
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(self.num_layers)])
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = False
        self.mask_check = mask_check

    def forward(self, src: Tensor, mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        """Pass ``src`` through every layer. ``is_causal=None`` detects a causal ``mask``."""
        src_key_padding_mask = canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                              src.dtype, mask, "mask")
        mask = canonical_mask(mask, "mask", src.dtype)
        batch_first = bool(self.layers) and getattr(
            getattr(self.layers[0], "self_attn", None), "batch_first", False)
        seq_len = src.shape[1 if batch_first and src.ndim == 3 else 0]
        is_causal = _detect_is_causal_mask(mask, is_causal, seq_len)
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal,
                           src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            output = self.norm(output)
        return output


class PositionalEncoding(Module):
    """Sinusoidal positional encoding (Vaswani et al. 2017, section 3.5), added to the input.

        pe[pos, 2i]   = sin(pos / 10000^(2i / d_model))
        pe[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

    Each pair of dimensions is a rotation at its own frequency, so pe[pos + k] is a fixed linear
    map of pe[pos] for every offset k. Output: dropout(x + pe[:L]). There is no
    ``nn.PositionalEncoding`` in PyTorch; this follows its Transformer tutorial (and handles odd
    d_model: the last, unpaired dimension gets a sine).

    Args:
        d_model: E, the token dimension.
        max_len: the longest sequence supported (rows of ``pe``).
        dropout: dropout probability after the addition (training mode only).
        batch_first: input (N, L, E) instead of (L, N, E). (L, E) input is accepted either way.
        device: None or "cpu". dtype: dtype of the table (default float32; computed in float64).

    Buffer ``pe`` (max_len, d_model), non-persistent: it is a fixed function of the arguments,
    recomputed on construction, and not saved in the state_dict.
    Notes 003 "transformer": without it the encoder cannot tell positions apart.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0,
                 batch_first: bool = False, device: Any = None, dtype: Any = None):
        super().__init__()
        self.d_model = check_count(d_model, "d_model", "PositionalEncoding")
        self.max_len = check_count(max_len, "max_len", "PositionalEncoding")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"PositionalEncoding: dropout must be a float, got {dropout!r}")
        self.dropout = Dropout(dropout)
        self.batch_first = batch_first
        position = np.arange(self.max_len, dtype=np.float64)[:, None]             # (max_len, 1)
        div_term = np.exp(np.arange(0, self.d_model, 2) * (-math.log(10000.0) / self.d_model))
        angles = position * div_term                                             # (max_len, E/2)
        pe = np.zeros((self.max_len, self.d_model))
        pe[:, 0::2] = np.sin(angles)
        pe[:, 1::2] = np.cos(angles[:, : self.d_model // 2])
        self.register_buffer("pe", factory(pe.shape, device, dtype), persistent=False)
        self.pe.data[...] = pe

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise RuntimeError(f"PositionalEncoding: expected input (L, N, {self.d_model}), "
                               f"(N, L, {self.d_model}) with batch_first, or (L, {self.d_model}),"
                               f" got {shape}")
        seq_axis = 1 if self.batch_first and x.ndim == 3 else 0
        length = x.shape[seq_axis]
        if length > self.max_len:
            raise RuntimeError(f"PositionalEncoding: sequence length {length} exceeds max_len="
                               f"{self.max_len}")
        pe = self.pe.data[:length].astype(x.dtype, copy=False)                   # (L, E)
        if x.ndim == 3 and seq_axis == 0:
            pe = pe[:, None, :]                                                  # (L, 1, E)
        return self.dropout(x + Tensor._wrap(pe))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"
