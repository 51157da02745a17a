"""Matrix products: ``matmul`` (with NumPy/PyTorch broadcasting over batch axes) and ``linear``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import Function
from ._util import check_tensor


def _rows(a: np.ndarray) -> np.ndarray:
    """(..., K) -> (R, K), R the product of the leading sizes (also when K or R is 0, where
    ``reshape(-1, K)`` cannot infer R)."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


class MatmulFn(Function):
    """y = a @ b, batched over leading axes.

    With a (..., M, K), b (..., K, P), g = dL/dy (..., M, P):
        dL/da = g @ b^T      (..., M, K)
        dL/db = a^T @ g      (..., K, P)
    then summed over any batch axes that broadcasting created. A 1-D operand is treated as a row
    (a) or column (b) vector, and the axis it would add is dropped again. dL/da needs only b and
    dL/db only a, so each operand is saved only when the other one needs a gradient (as PyTorch).
    """

    def forward(self, a, b):
        needs = self.needs_input_grad
        if needs:
            self.save_for_backward(a if needs[1] else None, b if needs[0] else None)
            self.ndims = (a.ndim, b.ndim)
        return a @ b

    def backward(self, grad_y):
        a, b = self.saved
        a_ndim, b_ndim = self.ndims
        grad_a = grad_b = None
        if a_ndim == 1 and b_ndim == 1:  # dot product: y = sum_k a_k b_k
            if self.needs_input_grad[0]:
                grad_a = grad_y * b
            if self.needs_input_grad[1]:
                grad_b = grad_y * a
            return grad_a, grad_b
        g = grad_y
        if a_ndim == 1:
            g = g[..., None, :]                          # (..., 1, P): restore M = 1
        if b_ndim == 1:
            g = g[..., None]                             # (..., M, 1): restore P = 1
        if self.needs_input_grad[0]:
            b2 = b[:, None] if b_ndim == 1 else b        # (..., K, P)
            grad_a = g @ np.swapaxes(b2, -1, -2)         # (..., M, K)
            if a_ndim == 1:
                grad_a = _rows(grad_a).sum(axis=0)       # (K,)
        if self.needs_input_grad[1]:
            a2 = a[None, :] if a_ndim == 1 else a        # (..., M, K)
            grad_b = np.swapaxes(a2, -1, -2) @ g         # (..., K, P)
            if b_ndim == 1:
                grad_b = _rows(grad_b[..., 0]).sum(axis=0)   # (K,)
        return grad_a, grad_b


class LinearFn(Function):
    """y = x W^T + b  (the fully connected layer).

    x (*, in), W (out, in), b (out,) -> y (*, out). Flattening the leading axes of x to rows
    X (R, in) and of g to G (R, out):
        dL/dX = G W          (R, in)
        dL/dW = G^T X        (out, in)
        dL/db = sum_rows G   (out,)
    """

    def forward(self, x, weight, bias=None):
        needs = self.needs_input_grad
        if needs:  # dL/dx needs W, dL/dW needs x: save each only if the other needs a gradient
            self.save_for_backward(x if needs[1] else None, weight if needs[0] else None)
        y = x @ weight.T                                                     # (*, out)
        if bias is not None:
            y = y + bias
        return y

    def backward(self, grad_y):
        x, weight = self.saved
        grad_rows = _rows(grad_y)                                            # (R, out)
        grad_x = grad_y @ weight if self.needs_input_grad[0] else None      # (*, in)
        grad_weight = grad_bias = None
        if self.needs_input_grad[1]:
            grad_weight = grad_rows.T @ _rows(x)                             # (out, in)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_rows.sum(axis=0)                                # (out,)
        return grad_x, grad_weight, grad_bias


def _check_same_dtype(a: Any, b: Any, op: str) -> None:
    if a.dtype != b.dtype and (a.dtype.kind == "f" or b.dtype.kind == "f"):
        raise RuntimeError(
            f"{op}(): expected both operands to have the same dtype, but got {a.dtype} and "
            f"{b.dtype}"
        )


def matmul(input: Any, other: Any) -> Any:
    """Matrix product with PyTorch's rules for 1-D operands and batch broadcasting.

    1-D @ 1-D is a dot product; a 1-D left operand is a row vector, a 1-D right operand a column
    vector (the added axis is removed again); leading (batch) axes broadcast.
    """
    check_tensor(input, "input", "matmul")
    check_tensor(other, "other", "matmul")
    _check_same_dtype(input, other, "matmul")
    if input.ndim == 0 or other.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {input.ndim}D and "
            f"{other.ndim}D"
        )
    k_a = input.shape[-1]
    k_b = other.shape[0] if other.ndim == 1 else other.shape[-2]
    if k_a != k_b:
        a_rows = input.shape[-2] if input.ndim > 1 else 1
        b_cols = other.shape[-1] if other.ndim > 1 else 1
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({a_rows}x{k_a} and {k_b}x{b_cols})"
        )
    try:
        np.broadcast_shapes(input.shape[:-2], other.shape[:-2])
    except ValueError:
        raise RuntimeError(
            f"matmul(): batch dimensions {tuple(input.shape[:-2])} and {tuple(other.shape[:-2])} "
            "are not broadcastable"
        ) from None
    return MatmulFn()(input, other)


def linear(input: Any, weight: Any, bias: Any = None) -> Any:
    """y = input @ weight.T + bias. input (*, in_features), weight (out_features, in_features)."""
    check_tensor(input, "input", "linear")
    check_tensor(weight, "weight", "linear")
    _check_same_dtype(input, weight, "linear")
    if weight.ndim != 2:
        raise RuntimeError(f"linear(): weight must be 2-D (out_features, in_features), got shape "
                           f"{tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        rows = int(np.prod(input.shape[:-1])) if input.ndim else 1
        cols = input.shape[-1] if input.ndim else 1
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
            f"{weight.shape[1]}x{weight.shape[0]}): linear expected input with last dimension "
            f"in_features={weight.shape[1]}, got input of shape {tuple(input.shape)}"
        )
    if bias is not None:
        check_tensor(bias, "bias", "linear")
        _check_same_dtype(input, bias, "linear")
        out_shape = tuple(input.shape[:-1]) + (weight.shape[0],)
        try:  # (out_features,) as a rule; like PyTorch, anything that broadcasts to the output
            fits = np.broadcast_shapes(tuple(bias.shape), out_shape) == out_shape
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(f"linear(): bias of shape {tuple(bias.shape)} does not broadcast "
                               f"to the output shape {out_shape} (expected bias of shape "
                               f"(out_features,) = ({weight.shape[0]},))")
        return LinearFn()(input, weight, bias)
    return LinearFn()(input, weight)
