"""Elementwise arithmetic and math functions.

Every op here maps each element independently, so its backward is the upstream gradient times the
local derivative, element by element (the chain rule with a diagonal Jacobian). Inputs may
broadcast; the engine sums each gradient back to its input's shape (see
``autograd.engine.unbroadcast``). Binary ops first cast their operands to PyTorch's result dtype
(:func:`promote`), since NumPy's promotion rules differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from ._util import check_tensor


def _floating(x: np.ndarray) -> np.ndarray:
    """Integer and bool inputs of exp/log/sqrt become the default float dtype, as in PyTorch
    (NumPy would give float64)."""
    return x if x.dtype.kind in "fc" else x.astype(backend.get_default_dtype())


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
    """y = a * b.   dL/da = g * b, dL/db = g * a.

    Each operand is saved only when the *other* one needs a gradient (as PyTorch does), so that
    changing, say, a constant factor in place after the product is no error.
    """

    def forward(self, a, b):
        needs = self.needs_input_grad
        if needs:
            self.save_for_backward(a if needs[1] else None, b if needs[0] else None)
        return a * b

    def backward(self, grad_y):
        a, b = self.saved
        grad_a = grad_y * b if self.needs_input_grad[0] else None
        grad_b = grad_y * a if self.needs_input_grad[1] else None
        return grad_a, grad_b


class DivFn(Function):
    """y = a / b.   dL/da = g / b, dL/db = -g * a / b^2.

    Saves b, and a only when b needs a gradient (PyTorch's choice: the output is not saved, so
    it may be changed in place).
    """

    def forward(self, a, b):
        needs = self.needs_input_grad
        if needs:
            self.save_for_backward(a if needs[1] else None, b)
        return a / b

    def backward(self, grad_y):
        a, b = self.saved
        grad_a = grad_y / b if self.needs_input_grad[0] else None
        grad_b = -grad_y * a / (b * b) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class PowFn(Function):
    """y = a ** p.

    dL/da = g * p * a^(p-1), taken as 0 where p == 0 (PyTorch's rule: the derivative of a^0 = 1 is
    0 even at a = 0, where the formula would give 0 * inf);
    dL/dp = g * a^p * ln(a), taken as 0 where a == 0 and p >= 0 (the limit a^p ln a -> 0).
    """

    def forward(self, a, p):
        y = a**p
        needs = self.needs_input_grad
        if needs:  # y (for dL/dp) only when the exponent needs a gradient, as PyTorch
            self.save_for_backward(a, p, y if needs[1] else None)
        return y

    def backward(self, grad_y):
        a, p, y = self.saved
        grad_a = grad_p = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                if np.ndim(p) == 0 and p == 0:
                    grad_a = np.zeros_like(grad_y)
                else:
                    grad_a = grad_y * np.where(p == 0, 0.0, p * a ** (p - 1))
            if self.needs_input_grad[1]:
                log_term = np.where((a == 0) & (p >= 0), 0.0, y * np.log(a))
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
        y = np.exp(_floating(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * y


class LogFn(Function):
    """y = ln x.   dL/dx = g / x."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(_floating(x))

    def backward(self, grad_y):
        (x,) = self.saved
        return grad_y / x


class SqrtFn(Function):
    """y = sqrt(x).   dL/dx = g / (2 sqrt(x)) = g / (2 y)."""

    def forward(self, x):
        y = np.sqrt(_floating(x))
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
    """y = min(max(x, lo), hi); either bound may be None, a number or an array (broadcast).

    dL/dx = g where lo <= x <= hi (both ends inclusive, as PyTorch), else 0: outside the range the
    output does not move with x. With array bounds, as ``torch.clamp``:
        dL/dlo = g where x < lo (and lo < hi when both are given), else 0
        dL/dhi = g where x > hi (or hi < lo, where hi wins), else 0
    """

    def forward(self, x, lo, hi):
        self.save_for_backward(x, lo, hi)
        if lo is None:
            return np.minimum(x, hi)
        if hi is None:
            return np.maximum(x, lo)
        return np.minimum(np.maximum(x, lo), hi)

    def backward(self, grad_y):
        x, lo, hi = self.saved
        zero = np.zeros((), dtype=grad_y.dtype)
        inside = True
        if lo is not None:
            inside = x >= lo
        if hi is not None:
            inside = inside & (x <= hi)
        grad_x = np.where(inside, grad_y, zero) if self.needs_input_grad[0] else None
        grad_lo = grad_hi = None
        if self.needs_input_grad[1]:
            below = (x < lo) if hi is None else (x < lo) & (lo < hi)
            grad_lo = np.where(below, grad_y, zero)
        if self.needs_input_grad[2]:
            above = (x > hi) if lo is None else (x > hi) | (hi < lo)
            grad_hi = np.where(above, grad_y, zero)
        return grad_x, grad_lo, grad_hi


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


# ------------------------------------------------------------------------------------------------
# Type promotion: NumPy and PyTorch disagree on mixed dtypes, so binary ops cast their operands to
# PyTorch's result dtype first and let NumPy compute in that dtype.

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def promote_types(dx: np.dtype, dy: np.dtype) -> np.dtype:
    """PyTorch's ``promote_types``: the higher category (bool < integer < floating) wins; within one
    category the wider type (int64 + float32 -> float32, where NumPy would say float64)."""
    cx, cy = _CATEGORY.get(dx.kind, 4), _CATEGORY.get(dy.kind, 4)
    if cx == cy:
        return np.promote_types(dx, dy)
    return dx if cx > cy else dy


def _pair_dtype(x: np.ndarray, y: np.ndarray) -> np.dtype:
    """PyTorch's result dtype for two array operands.

    A 0-d operand only counts when it brings a higher category than the n-d one
    (float32 (3,) + float64 () -> float32, but int64 (3,) + float64 () -> float64).
    """
    if (x.ndim == 0) == (y.ndim == 0):
        return promote_types(x.dtype, y.dtype)
    zero, full = (x, y) if x.ndim == 0 else (y, x)
    if _CATEGORY.get(zero.dtype.kind, 4) > _CATEGORY.get(full.dtype.kind, 4):
        return zero.dtype
    return full.dtype


def _cast(value: Any, dtype: np.dtype) -> Any:
    if value.dtype == dtype:
        return value
    if isinstance(value, np.ndarray):
        return value.astype(dtype)
    return value.to(dtype)


def _scalar_dtype_fix(t: Any, scalar: Any) -> Any:
    """The tensor operand, cast when a Python scalar of a higher category meets it."""
    kind = t.data.dtype.kind
    if kind == "f":
        return t
    if isinstance(scalar, float):
        return t.to(backend.get_default_dtype())  # int tensor * 2.5 -> float32, as PyTorch
    if kind == "b" and isinstance(scalar, int) and not isinstance(scalar, bool):
        return t.to(np.int64)
    return t


def promote(a: Any, b: Any) -> tuple[Any, Any]:
    """Return the operands of a binary op cast so that NumPy computes PyTorch's result dtype.

    Python numbers (and NumPy scalars, treated as Python numbers as PyTorch does) stay numbers:
    NumPy then keeps the tensor's dtype (float32 * 2.0 is float32). Tensors of different dtypes are
    cast (differentiably) to the dtype :func:`_pair_dtype` picks.
    """
    a_is_tensor, b_is_tensor = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_tensor and b_is_tensor:
        if a.data.dtype == b.data.dtype:
            return a, b
        dtype = _pair_dtype(a.data, b.data)
        return _cast(a, dtype), _cast(b, dtype)
    if not (a_is_tensor or b_is_tensor):
        return a, b
    tensor, other = (a, b) if a_is_tensor else (b, a)
    if isinstance(other, np.generic):
        other = other.item()
    if isinstance(other, bool | int | float):
        tensor = _scalar_dtype_fix(tensor, other)
    elif isinstance(other, np.ndarray):
        if other.dtype != tensor.data.dtype:
            dtype = _pair_dtype(tensor.data, other)
            tensor, other = _cast(tensor, dtype), _cast(other, dtype)
    else:
        raise TypeError(
            f"unsupported operand type(s) for a Tensor operation: 'Tensor' and "
            f"'{type(other).__name__}'"
        )
    return (tensor, other) if a_is_tensor else (other, tensor)


def promote_sub(a: Any, b: Any) -> tuple[Any, Any]:
    """As :func:`promote`, and PyTorch's refusal of bool operands in a subtraction."""
    for value in (a, b):
        if isinstance(value, bool | np.bool_) or (
            isinstance(value, Tensor | np.ndarray) and value.dtype == np.bool_
        ):
            raise RuntimeError(
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
    return promote(a, b)


def promote_div(a: Any, b: Any) -> tuple[Any, Any]:
    """As :func:`promote`, and true division of integers gives the default float dtype."""
    a, b = promote(a, b)
    for value in (a, b):
        if isinstance(value, Tensor) and value.data.dtype.kind != "f":
            dtype = backend.get_default_dtype()
            a = a.to(dtype) if isinstance(a, Tensor) else a
            b = b.to(dtype) if isinstance(b, Tensor) else b
            break
    return a, b


# ------------------------------------------------------------------------------------------------
# Lowercase wrappers (the torch.* / Tensor.* names)


def add(input: Any, other: Any, *, alpha: float = 1) -> Any:
    """input + alpha * other."""
    check_tensor(input, "input", "add")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return AddFn()(*promote(input, other))


def sub(input: Any, other: Any, *, alpha: float = 1) -> Any:
    """input - alpha * other."""
    check_tensor(input, "input", "sub")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return SubFn()(*promote_sub(input, other))


def mul(input: Any, other: Any) -> Any:
    check_tensor(input, "input", "mul")
    return MulFn()(*promote(input, other))


def div(input: Any, other: Any) -> Any:
    """True division; integer inputs give the default float dtype, as ``torch.div``."""
    check_tensor(input, "input", "div")
    return DivFn()(*promote_div(input, other))


def pow(input: Any, exponent: Any) -> Any:  # noqa: A001 - torch name
    """input ** exponent; either may be a number (torch.pow(2, t) is allowed), not both."""
    if not isinstance(input, Tensor):
        check_tensor(exponent, "exponent", "pow")
    return PowFn()(*promote(input, exponent))


def neg(input: Any) -> Any:
    check_tensor(input, "input", "neg")
    if input.dtype == np.bool_:
        raise RuntimeError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
            "invert a mask, use the `~` or `logical_not()` operator instead."
        )
    return NegFn()(input)


def exp(input: Any) -> Any:
    check_tensor(input, "input", "exp")
    return ExpFn()(input)


def log(input: Any) -> Any:
    check_tensor(input, "input", "log")
    return LogFn()(input)


def sqrt(input: Any) -> Any:
    check_tensor(input, "input", "sqrt")
    return SqrtFn()(input)


def abs(input: Any) -> Any:  # noqa: A001 - torch name
    check_tensor(input, "input", "abs")
    return AbsFn()(input)


def clamp(input: Any, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    """Clamp every element into [min, max]; at least one bound must be given (as in PyTorch).

    Bounds may be numbers or Tensors (broadcast against ``input``, and differentiable).
    """
    check_tensor(input, "input", "clamp")
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    for name, bound in (("min", min), ("max", max)):
        if not (bound is None or isinstance(bound, Tensor | np.ndarray | np.generic | int | float)):
            raise TypeError(
                f"clamp(): argument '{name}' must be a Number or Tensor, not {type(bound).__name__}"
            )
    if isinstance(min, np.generic):
        min = min.item()  # noqa: A001
    if isinstance(max, np.generic):
        max = max.item()  # noqa: A001
    return ClampFn()(input, min, max)


clip = clamp


def maximum(input: Any, other: Any) -> Any:
    """Elementwise max; on ties each input gets half the gradient (as ``torch.maximum``)."""
    check_tensor(input, "input", "maximum")
    check_tensor(other, "other", "maximum")
    return MaximumFn(True)(*promote(input, other))


def minimum(input: Any, other: Any) -> Any:
    """Elementwise min; on ties each input gets half the gradient (as ``torch.minimum``)."""
    check_tensor(input, "input", "minimum")
    check_tensor(other, "other", "minimum")
    return MaximumFn(False)(*promote(input, other))


def where(condition: Any, input: Any, other: Any) -> Any:
    """input where condition else other (``condition`` a bool tensor; the others broadcast)."""
    check_tensor(condition, "condition", "where")
    if condition.dtype != np.bool_:
        raise RuntimeError(
            "where expected condition to be a boolean tensor, but got a tensor with dtype "
            f"{condition.dtype}"
        )
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input, other = Tensor(input), Tensor(other)  # numbers: float -> default dtype, int -> int64
    return WhereFn()(condition, *promote(input, other))
