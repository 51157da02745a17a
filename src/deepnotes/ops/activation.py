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

    def __init__(self, dim: int):
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

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, x):
        shifted = x - x.max(axis=self.dim, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y - np.exp(y) * grad_y.sum(axis=self.dim, keepdims=True)


def relu(input: Any, inplace: bool = False):
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility; a new tensor is returned."""
    check_tensor(input, "input", "relu")
    return ReluFn()(input)


def sigmoid(input: Any):
    check_tensor(input, "input", "sigmoid")
    return SigmoidFn()(input)


def tanh(input: Any):
    check_tensor(input, "input", "tanh")
    return TanhFn()(input)


def _softmax_dim(input: Any, dim: int | None, op: str) -> int:
    check_tensor(input, "input", op)
    if dim is None:  # PyTorch's legacy implicit choice, with its warning turned into a rule
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return normalize_dim(dim, input.ndim, op)


def softmax(input: Any, dim: int | None = None, dtype: Any = None):
    if dtype is not None:
        input = input.to(dtype)
    return SoftmaxFn(_softmax_dim(input, dim, "softmax"))(input)


def log_softmax(input: Any, dim: int | None = None, dtype: Any = None):
    if dtype is not None:
        input = input.to(dtype)
    return LogSoftmaxFn(_softmax_dim(input, dim, "log_softmax"))(input)
