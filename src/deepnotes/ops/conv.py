"""2-D convolution (cross-correlation, as in every framework) by im2col + GEMM.

notes 004 Q37: im2col turns the input into a (C_in*k*k, H_out*W_out) matrix and the kernel into a
(C_out, C_in*k*k) matrix, so the forward pass is y = W X + b, and the backward pass is that of a
fully connected layer: dL/dW = dL/dy X^T, dL/dX = W^T dL/dy followed by col2im
(notes 003 "卷积的矩阵运算"). Grouped, depthwise and dilated convolutions (notes 001) are the
same GEMM on blocks of rows.
Full derivation: docs/derivations/conv2d.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ._util import check_tensor
from .im2col import col2im, conv_output_size, im2col, normalize_padding


class Conv2dFn(Function):
    """2-D cross-correlation as one GEMM per group over im2col columns.

    x (N, C_in, H, W), weight (C_out, C_in/G, kH, kW), bias (C_out,) -> y (N, C_out, H_out, W_out)
      y[n, o, p, q] = b[o] + sum_{c,i,j} w[o,c,i,j] x_pad[n, g*C_in/G + c, p*sH + i*dH, q*sW + j*dW]
    where g = o // (C_out/G) and H_out = (H + pad_top + pad_bottom - dH*(kH - 1) - 1) // sH + 1.

    Forward, with L = H_out*W_out, K = C_in/G*kH*kW (notes 004 Q37):
        cols = im2col(x)                    (G, K, N*L)   (rows of group g are a contiguous block)
        y    = weight_rows @ cols + b       weight_rows (G, C_out/G, K)  ->  (G, C_out/G, N*L)
    Backward, with g = dL/dy as rows (G, C_out/G, N*L); y is linear in weight_rows and in cols:
        dweight_rows = g @ cols^T                         (G, C_out/G, K)
        dcols        = weight_rows^T @ g,  dx = col2im(dcols)   (overlapping patches add up)
        dbias        = g summed over N and L
    grad_x is skipped when x needs no gradient (the first layer), and cols are kept for backward
    only when the weight needs a gradient. Derivation: docs/derivations/conv2d.md.
    Torch: torch.nn.functional.conv2d.
    """

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.stride, self.dilation = stride, dilation
        self.padding = normalize_padding(padding)          # ((top, bottom), (left, right))
        self.groups = groups

    def forward(self, x, weight, bias=None):
        self.unbatched = x.ndim == 3
        if self.unbatched:
            x = x[None]                                    # (1, C_in, H, W)
        n, c_in, h_in, w_in = x.shape
        c_out, _, kh, kw = weight.shape
        g = self.groups
        h_out, w_out = conv_output_size((h_in, w_in), (kh, kw), self.stride, self.padding,
                                        self.dilation)
        cols = im2col(x, (kh, kw), self.stride, self.padding, self.dilation)  # (C_in*kH*kW, N*L)
        cols = cols.reshape(g, -1, cols.shape[-1])                             # (G, K, N*L)
        weight_rows = weight.reshape(g, c_out // g, -1)                        # (G, C_out/G, K)
        y = weight_rows[0] @ cols[0] if g == 1 else weight_rows @ cols         # (G, C_out/G, N*L)
        y = y.reshape(c_out, n, h_out, w_out).transpose(1, 0, 2, 3)            # (N, C_out, Ho, Wo)
        if bias is not None:
            # The copy to contiguous NCHW adds the bias on the way.
            y = np.add(y, bias.reshape(1, c_out, 1, 1), out=np.empty(y.shape, y.dtype))
        else:
            y = np.ascontiguousarray(y)
        needs = self.needs_input_grad
        if needs:                                          # recorded in the graph
            self.save_for_backward(cols if needs[1] else None, weight_rows)
            self.x_shape, self.kernel_size = x.shape, (kh, kw)
        return y[0] if self.unbatched else y

    def backward(self, grad_y):
        cols, weight_rows = self.saved
        if self.unbatched:
            grad_y = grad_y[None]
        n, c_out = grad_y.shape[:2]
        g = self.groups
        grad_rows = grad_y.transpose(1, 0, 2, 3).reshape(g, c_out // g, -1)   # (G, C_out/G, N*L)
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[1]:
            grad_weight = grad_rows @ cols.transpose(0, 2, 1)                # (G, C_out/G, K)
            grad_weight = grad_weight.reshape(c_out, -1, *self.kernel_size)  # weight's shape
        if self.needs_input_grad[0]:
            grad_cols = weight_rows.transpose(0, 2, 1) @ grad_rows           # (G, K, N*L)
            grad_x = col2im(grad_cols.reshape(-1, grad_cols.shape[-1]), self.x_shape,
                            self.kernel_size, self.stride, self.padding, self.dilation)
            if self.unbatched:
                grad_x = grad_x[0]
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_y.sum(axis=(0, 2, 3))                           # (C_out,)
        return grad_x, grad_weight, grad_bias


def _conv_tuple(value: Any, name: str) -> tuple[int, int]:
    """int or 1/2-element tuple -> pair, with PyTorch's message otherwise."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, tuple | list) and len(value) in (1, 2) and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]),) * 2 if len(value) == 1 else (int(value[0]), int(value[1]))
    shown = list(value) if isinstance(value, tuple | list) else value
    raise RuntimeError(
        f"expected {name} to be a single integer value or a list of 2 values to match the "
        f"convolution dimensions, but got {name}={shown}"
    )


def _size(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
):
    """2-D convolution over an NCHW (or unbatched CHW) input. Same signature as torch's F.conv2d.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_out, C_in/groups, kH, kW).
        bias: optional (C_out,).
        stride, dilation: int or (h, w); must be positive.
        padding: int, (h, w), ``'valid'`` (no padding) or ``'same'`` (output size = input size;
            stride 1 only; with an even dilated kernel the extra row/column goes bottom/right,
            as in PyTorch).
        groups: input and output channels split into this many independent convolutions
            (``groups == C_in`` with ``C_out = m*C_in`` is a depthwise convolution, notes 001).

    Shape:
        H_out = (H + 2*pH - dH*(kH - 1) - 1) // sH + 1, W_out likewise (notes 000 Q3).

    Math: see :class:`Conv2dFn` and docs/derivations/conv2d.md.
    """
    check_tensor(input, "input", "conv2d")
    check_tensor(weight, "weight", "conv2d")
    if input.ndim not in (3, 4):
        raise RuntimeError("Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
                           f"input of size: {_size(input.shape)}")
    if weight.ndim != 4:
        raise RuntimeError("conv2d(): expected weight to be 4-D (out_channels, in_channels/groups, "
                           f"kH, kW), but got weight of size {_size(weight.shape)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and weight type ({weight.dtype}) should be "
                           "the same")
    if not isinstance(groups, int | np.integer) or isinstance(groups, bool):
        raise TypeError(f"conv2d(): argument 'groups' must be int, not {type(groups).__name__}")
    if groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported, got groups={groups}")
    stride = _conv_tuple(stride, "stride")
    dilation = _conv_tuple(dilation, "dilation")
    if min(stride) <= 0:
        raise RuntimeError(f"non-positive stride is not supported, got stride={list(stride)}")
    if min(dilation) <= 0:
        raise RuntimeError(f"non-positive dilation is not supported, got dilation={list(dilation)}")
    kh, kw = weight.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            # Total padding d*(k - 1) keeps the size; an odd total puts the extra one bottom/right.
            total_h, total_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = ((total_h // 2, total_h - total_h // 2), (total_w // 2, total_w - total_w // 2))
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        ph, pw = _conv_tuple(padding, "padding")
        if min(ph, pw) < 0:
            raise RuntimeError(f"negative padding is not supported, got padding={[ph, pw]}")
        pads = ((ph, ph), (pw, pw))

    c_out = weight.shape[0]
    if c_out == 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least 1 at dimension "
                           f"0, but got weight of size {_size(weight.shape)} instead")
    if c_out % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at "
                           f"dimension 0, but got weight of size [{_size(weight.shape)}] instead")
    c_in = input.shape[-3]
    if c_in != weight.shape[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {_size(weight.shape)}, expected "
            f"input{_size(input.shape)} to have {weight.shape[1] * groups} channels, but got "
            f"{c_in} channels instead"
        )
    h_pad = input.shape[-2] + pads[0][0] + pads[0][1]
    w_pad = input.shape[-1] + pads[1][0] + pads[1][1]
    k_h, k_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if h_pad < k_h or w_pad < k_w:
        raise RuntimeError(
            f"Calculated padded input size per channel: ({h_pad} x {w_pad}). Kernel size: "
            f"({k_h} x {k_w}). Kernel size can't be greater than actual input size"
        )
    if bias is None:
        return Conv2dFn(stride, pads, dilation, groups)(input, weight)
    check_tensor(bias, "bias", "conv2d")
    if tuple(bias.shape) != (c_out,):
        raise RuntimeError(
            f"Given weight of size {_size(weight.shape)}, expected bias to be 1-dimensional with "
            f"{c_out} elements, but got bias of size {_size(bias.shape)} instead"
        )
    if bias.dtype != input.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and bias type ({bias.dtype}) should be "
                           "the same")
    return Conv2dFn(stride, pads, dilation, groups)(input, weight, bias)
