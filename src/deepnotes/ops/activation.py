"""Activation functions and the softmax family (notes 000 on activations, 003 on softmax).

Each backward reuses the forward output where the derivative can be written in it:
sigmoid' = y (1 - y), tanh' = 1 - y^2, relu' = [y > 0].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ._util import check_tensor, normalize_dim


class ReluFn(Function):
    """y = max(x, 0).   dL/dx = g * [x > 0] (the subgradient at 0 is taken as 0, as PyTorch)."""

    def forward(self, x):
        y = np.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * (y > 0)


class SigmoidFn(Function):
    """y = 1 / (1 + e^-x).   dy/dx = y (1 - y).

    Computed as e^x / (1 + e^x) for negative x so that e^-x never overflows.
    """

    def forward(self, x):
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * y * (1 - y)


class TanhFn(Function):
    """y = tanh x.   dy/dx = 1 - y^2."""

    def forward(self, x):
        y = np.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * (1 - y * y)


class SoftmaxFn(Function):
    """y_i = e^{x_i} / sum_j e^{x_j} along ``dim``.

    Forward subtracts max_j x_j first: the result is unchanged (the factor e^{-max} cancels) and no
    exponent exceeds 0, so nothing overflows.
    Backward: dy_i/dx_k = y_i (delta_ik - y_k), hence
        dL/dx_k = sum_i g_i y_i (delta_ik - y_k) = y_k (g_k - sum_i g_i y_i).
    """

    def __init__(self, dim: int | None):
        self.dim = dim

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        y = e / e.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return y * (grad_y - (grad_y * y).sum(axis=self.dim, keepdims=True))


class LogSoftmaxFn(Function):
    """y_i = x_i - log sum_j e^{x_j} = x_i - m - log sum_j e^{x_j - m}, with m = max_j x_j.

    Backward: dy_i/dx_k = delta_ik - softmax_k, hence dL/dx_k = g_k - softmax_k * sum_i g_i,
    with softmax = e^y.
    """

    def __init__(self, dim: int | None):
        self.dim = dim

    def forward(self, x):
        shifted = x - x.max(axis=self.dim, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y - np.exp(y) * grad_y.sum(axis=self.dim, keepdims=True)


def relu(input: Any, inplace: bool = False) -> Any:
    """max(x, 0). With ``inplace=True`` the result is written into ``input``, which is returned."""
    check_tensor(input, "input", "relu")
    if not inplace:
        return ReluFn()(input)
    if input._tracked():  # in the graph: recorded out of place, then ``input`` is rebound to it
        return input._inplace_via(ReluFn())
    input._ufunc_(np.maximum, 0)
    return input


def sigmoid(input: Any) -> Any:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    check_tensor(input, "input", "sigmoid")
    return SigmoidFn()(input)


def tanh(input: Any) -> Any:
    """The hyperbolic tangent."""
    check_tensor(input, "input", "tanh")
    return TanhFn()(input)


def _softmax_input(input: Any, dim: int | None, dtype: Any, op: str) -> tuple[Any, int | None]:
    check_tensor(input, "input", op)
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:  # PyTorch's legacy implicit choice, with its warning turned into a rule
        dim = 0 if input.ndim in (0, 1, 3) else 1
    d = normalize_dim(dim, input.ndim, op)
    return input, (d if input.ndim else None)  # axis None: a 0-d tensor is its own "row"


def softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """e^x / sum e^x along ``dim`` (max-shifted, so large inputs do not overflow)."""
    input, d = _softmax_input(input, dim, dtype, "softmax")
    return SoftmaxFn(d)(input)


def log_softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """x - logsumexp(x) along ``dim``, computed stably."""
    input, d = _softmax_input(input, dim, dtype, "log_softmax")
    return LogSoftmaxFn(d)(input)
