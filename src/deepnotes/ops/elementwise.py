"""Elementwise arithmetic and math functions.

Every op here maps each element independently, so its backward is the upstream gradient times the
local derivative, element by element (the chain rule with a diagonal Jacobian). Inputs may broadcast;
the engine sums each gradient back to its input's shape (see ``autograd.engine.unbroadcast``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function


class AddFn(Function):
    """y = a + b.   dy/da = 1, dy/db = 1, so both receive g unchanged."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_y):
        return grad_y, grad_y


class SubFn(Function):
    """y = a - b.   dL/da = g, dL/db = -g."""

    def forward(self, a, b):
        return a - b

    def backward(self, grad_y):
        return grad_y, (-grad_y if self.needs_input_grad[1] else None)


class MulFn(Function):
    """y = a * b.   dL/da = g * b, dL/db = g * a."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad_y):
        a, b = self.saved
        grad_a = grad_y * b if self.needs_input_grad[0] else None
        grad_b = grad_y * a if self.needs_input_grad[1] else None
        return grad_a, grad_b


class DivFn(Function):
    """y = a / b.   dL/da = g / b, dL/db = -g * a / b^2 = -g * y / b."""

    def forward(self, a, b):
        y = a / b
        self.save_for_backward(b, y)
        return y

    def backward(self, grad_y):
        b, y = self.saved
        grad_a = grad_y / b if self.needs_input_grad[0] else None
        grad_b = -grad_y * y / b if self.needs_input_grad[1] else None
        return grad_a, grad_b


class PowFn(Function):
    """y = a ** p.

    dL/da = g * p * a^(p-1);  dL/dp = g * a^p * ln(a), taken as 0 where a == 0 and p >= 0 (the limit
    PyTorch uses, since a^p ln a -> 0 there).
    """

    def forward(self, a, p):
        y = a**p
        self.save_for_backward(a, p, y)
        return y

    def backward(self, grad_y):
        a, p, y = self.saved
        grad_a = grad_p = None
        if self.needs_input_grad[0]:
            if np.isscalar(p) and p == 0:
                grad_a = np.zeros_like(grad_y)
            else:
                grad_a = grad_y * p * a ** (p - 1)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_term = y * np.log(a)
            log_term = np.where((a == 0) & (np.asarray(p) >= 0), 0.0, log_term)
            grad_p = grad_y * log_term
        return grad_a, grad_p


class NegFn(Function):
    """y = -x.   dL/dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, grad_y):
        return -grad_y


class ExpFn(Function):
    """y = e^x.   dL/dx = g * e^x = g * y (reuse the output)."""

    def forward(self, x):
        y = np.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * y


class LogFn(Function):
    """y = ln x.   dL/dx = g / x."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def backward(self, grad_y):
        (x,) = self.saved
        return grad_y / x


class SqrtFn(Function):
    """y = sqrt(x).   dL/dx = g / (2 sqrt(x)) = g / (2 y)."""

    def forward(self, x):
        y = np.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y / (2 * y)


class AbsFn(Function):
    """y = |x|.   dL/dx = g * sign(x), with sign(0) = 0 as in PyTorch."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, grad_y):
        (x,) = self.saved
        return grad_y * np.sign(x)


class ClampFn(Function):
    """y = min(max(x, lo), hi).

    dL/dx = g where lo <= x <= hi (both ends inclusive, as PyTorch), else 0: outside the range the
    output does not move with x.
    """

    def __init__(self, min: float | None, max: float | None):
        self.min, self.max = min, max

    def forward(self, x):
        self.save_for_backward(x)
        return np.clip(x, self.min, self.max)

    def backward(self, grad_y):
        (x,) = self.saved
        inside = np.ones(x.shape, dtype=bool)
        if self.min is not None:
            inside &= x >= self.min
        if self.max is not None:
            inside &= x <= self.max
        return grad_y * inside


class MaximumFn(Function):
    """y = max(a, b) elementwise. The larger input takes g; on a tie each takes g/2 (as PyTorch)."""

    def __init__(self, take_larger: bool = True):
        self.take_larger = take_larger

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return np.maximum(a, b) if self.take_larger else np.minimum(a, b)

    def backward(self, grad_y):
        a, b = self.saved
        wins_a = (a > b) if self.take_larger else (a < b)
        share_a = np.where(a == b, 0.5, wins_a.astype(grad_y.dtype))
        grad_a = grad_y * share_a if self.needs_input_grad[0] else None
        grad_b = grad_y * (1 - share_a) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class WhereFn(Function):
    """y = cond ? a : b.   dL/da = g where cond, dL/db = g elsewhere."""

    def forward(self, cond, a, b):
        self.cond = cond
        return np.where(cond, a, b)

    def backward(self, grad_y):
        zero = np.zeros((), dtype=grad_y.dtype)
        grad_a = np.where(self.cond, grad_y, zero) if self.needs_input_grad[1] else None
        grad_b = np.where(self.cond, zero, grad_y) if self.needs_input_grad[2] else None
        return None, grad_a, grad_b


class CastFn(Function):
    """y = x converted to another floating dtype; the gradient is converted back."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, grad_y):
        return grad_y.astype(self.source_dtype)


class CloneFn(Function):
    """y = a copy of x.   dL/dx = g."""

    def forward(self, x):
        return x.copy()

    def backward(self, grad_y):
        return grad_y


# ----------------------------------------------------------------------------------------------------
# Lowercase wrappers (the torch.* / Tensor.* names)


def add(input: Any, other: Any, *, alpha: float = 1):
    """input + alpha * other."""
    if alpha != 1:
        other = mul(other, alpha)
    return AddFn()(input, other)


def sub(input: Any, other: Any, *, alpha: float = 1):
    """input - alpha * other."""
    if alpha != 1:
        other = mul(other, alpha)
    return SubFn()(input, other)


def mul(input: Any, other: Any):
    return MulFn()(input, other)


def div(input: Any, other: Any):
    return DivFn()(input, other)


def pow(input: Any, exponent: Any):  # noqa: A001 - torch name
    return PowFn()(input, exponent)


def neg(input: Any):
    return NegFn()(input)


def exp(input: Any):
    return ExpFn()(input)


def log(input: Any):
    return LogFn()(input)


def sqrt(input: Any):
    return SqrtFn()(input)


def abs(input: Any):  # noqa: A001 - torch name
    return AbsFn()(input)


def clamp(input: Any, min: float | None = None, max: float | None = None):  # noqa: A002
    """Clamp every element into [min, max]; at least one bound must be given (as in PyTorch)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return ClampFn(min, max)(input)


clip = clamp


def maximum(input: Any, other: Any):
    return MaximumFn(True)(input, other)


def minimum(input: Any, other: Any):
    return MaximumFn(False)(input, other)


def where(condition: Any, input: Any, other: Any):
    return WhereFn()(condition, input, other)
