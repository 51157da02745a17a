"""Reductions: sum, mean, max/min, variance.

A reduction over axes R maps many inputs to one output, so its backward *broadcasts* the upstream
gradient back over R: for the sum every input gets g, for the mean g / |R|, for the max only the
input(s) that won.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import check_tensor, normalize_dim, normalize_dims

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _expand_back(
    grad_y: np.ndarray, dims: tuple[int, ...] | None, keepdim: bool, shape: tuple[int, ...]
) -> np.ndarray:
    """Re-insert the reduced axes of ``grad_y`` (size 1) so that it broadcasts against ``shape``."""
    if dims is not None and not keepdim:
        grad_y = np.expand_dims(grad_y, dims)
    return np.broadcast_to(grad_y, shape)


def _count(shape: tuple[int, ...], dims: tuple[int, ...] | None) -> int:
    """|R|: how many elements each output of a reduction over ``dims`` sums."""
    if dims is None:
        return int(np.prod(shape))
    return int(np.prod([shape[d] for d in dims]))


class SumFn(Function):
    """y = sum_{i in R} x_i.   dL/dx_i = g (broadcast back over R)."""

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool, dtype: Any = None):
        self.dims, self.keepdim, self.dtype = dims, keepdim, dtype

    def forward(self, x):
        self.x_shape = x.shape
        return np.sum(x, axis=self.dims, keepdims=self.keepdim, dtype=self.dtype)

    def backward(self, grad_y):
        return _expand_back(grad_y, self.dims, self.keepdim, self.x_shape)


class MeanFn(Function):
    """y = (1/|R|) sum_{i in R} x_i.   dL/dx_i = g / |R|."""

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.x_shape = x.shape
        self.count = _count(x.shape, self.dims)
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty mean is nan, as PyTorch
            return np.mean(x, axis=self.dims, keepdims=self.keepdim)

    def backward(self, grad_y):
        return _expand_back(grad_y / self.count, self.dims, self.keepdim, self.x_shape)


class AmaxFn(Function):
    """y = max_{i in R} x_i (or min). The gradient is shared evenly among the tied maxima.

    This is the rule of ``torch.max(x)`` without ``dim`` and of ``torch.amax``: if k elements tie
    for the maximum, each receives g / k.
    """

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool, largest: bool = True):
        self.dims, self.keepdim, self.largest = dims, keepdim, largest

    def forward(self, x):
        reduce = np.max if self.largest else np.min
        y = reduce(x, axis=self.dims, keepdims=True)
        self.save_for_backward(x, y)
        if self.keepdim:
            return y
        return np.squeeze(y, self.dims) if self.dims else y.reshape(())

    def backward(self, grad_y):
        x, y = self.saved
        winners = x == y
        count = np.sum(winners, axis=self.dims, keepdims=True)
        g = grad_y.reshape(y.shape)
        return winners * (g / count)


class MaxDimFn(Function):
    """(values, indices) = max (or min) of x along one dim.

    The gradient goes to the element whose index was returned (the first of any ties), as in
    ``torch.max(x, dim)``: dL/dx = scatter(g, indices) along the dim.
    """

    def __init__(self, dim: int, keepdim: bool, largest: bool = True):
        self.dim, self.keepdim, self.largest = dim, keepdim, largest

    def forward(self, x):
        self.x_shape = x.shape
        if x.ndim == 0:  # a 0-d tensor is its own maximum, at index 0
            return x.copy(), np.zeros((), dtype=np.int64)
        arg = np.argmax if self.largest else np.argmin
        indices = np.expand_dims(arg(x, axis=self.dim), self.dim)
        values = np.take_along_axis(x, indices, axis=self.dim)
        self.indices = indices
        if not self.keepdim:
            values, indices = values.squeeze(self.dim), indices.squeeze(self.dim)
        return values, indices.astype(np.int64)

    def backward(self, grad_values, grad_indices):
        if not self.x_shape:
            return grad_values
        grad_x = np.zeros(self.x_shape, dtype=grad_values.dtype)
        g = grad_values if self.keepdim else np.expand_dims(grad_values, self.dim)
        np.put_along_axis(grad_x, self.indices, g, axis=self.dim)
        return grad_x


class VarFn(Function):
    """y = sum_{i in R} (x_i - mean)^2 / (|R| - correction).

    dL/dx_i = g * 2 (x_i - mean) / (|R| - correction). (The mean's own dependence on x_i drops out
    because sum_i (x_i - mean) = 0.)
    """

    def __init__(self, dims: tuple[int, ...] | None, correction: float, keepdim: bool):
        self.dims, self.correction, self.keepdim = dims, correction, keepdim

    def forward(self, x):
        centred = x - np.mean(x, axis=self.dims, keepdims=True)
        self.denominator = builtins.max(_count(x.shape, self.dims) - self.correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.sum(centred * centred, axis=self.dims, keepdims=self.keepdim) / self.denominator
        self.save_for_backward(centred)
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_y):
        (centred,) = self.saved
        g = _expand_back(grad_y, self.dims, self.keepdim, centred.shape)
        scale = 2.0 / self.denominator if self.denominator else math.inf  # n <= correction: nan
        with np.errstate(invalid="ignore"):
            return g * scale * centred


class StdFn(VarFn):
    """s = sqrt(var).   dL/dx_i = g / (2 s) * dvar/dx_i = g (x_i - mean) / ((|R| - correction) s).

    Where s = 0 (all elements equal) the gradient is taken as 0, as PyTorch does, instead of 0/0.
    """

    def forward(self, x):
        y = np.sqrt(super().forward(x))
        self.std = y
        return y

    def backward(self, grad_y):
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_var = np.where(self.std == 0, 0.0, grad_y / (2 * self.std)).astype(grad_y.dtype)
        return super().backward(grad_var)


class LogSumExpFn(Function):
    """y = log sum_{i in R} e^{x_i}, computed as m + log sum_{i in R} e^{x_i - m}, m = max_R x.

    The shift changes nothing (e^m factors out of the sum and comes back as + m), but now no
    exponent exceeds 0, so nothing overflows, and the largest term is e^0 = 1, so the sum is at
    least 1 and its log is finite: logsumexp([1e4, 0]) = 1e4 in float32, where the naive formula
    gives log(inf) = inf. (An infinite m is not subtracted, as in PyTorch: all -inf gives -inf.)

    Backward: dy/dx_i = e^{x_i} / sum_j e^{x_j} = softmax(x)_i = e^{x_i - y}, so
        dL/dx_i = g * e^{x_i - y}       (g and y broadcast back over R)
    which never overflows either, since x_i <= y.   Torch: torch.logsumexp.
    """

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        m = np.max(x, axis=self.dims, keepdims=True) if x.size else np.zeros((1,) * x.ndim,
                                                                              x.dtype)
        m = np.where(np.isinf(m), np.zeros((), x.dtype), m)                 # keep -inf/inf as is
        with np.errstate(divide="ignore"):  # log 0 = -inf for an all -inf (or empty) reduction
            y = np.log(np.sum(np.exp(x - m), axis=self.dims, keepdims=True)) + m
        self.save_for_backward(x, y)
        if self.keepdim:
            return y
        return np.squeeze(y, self.dims) if self.dims is not None else y.reshape(())

    def backward(self, grad_y):
        x, y = self.saved
        g = grad_y.reshape(y.shape)                                          # keepdim shape
        with np.errstate(invalid="ignore"):  # -inf - -inf: nan, as PyTorch
            return g * np.exp(x - y)


# ------------------------------------------------------------------------------------------------
# Wrappers


def _dims(input: Any, dim: Any, op: str) -> tuple[int, ...] | None:
    """Normalised reduction dims; ``None`` and an empty list both mean "every dim", as PyTorch."""
    check_tensor(input, "input", op)
    if dim is None or (isinstance(dim, tuple | list) and len(dim) == 0):
        return None
    dims = normalize_dims(dim, input.ndim, op)
    return None if input.ndim == 0 else dims  # a 0-d tensor: dim 0 (or -1) is the whole of it


def _check_nonempty(input: Any, dims: tuple[int, ...] | None, op: str) -> None:
    """max/min/amax/amin have no identity element: reducing over a size-0 dim is an error."""
    if dims is None:
        if input.numel() == 0:
            raise RuntimeError(
                f"{op}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
                "the reduction dim with the 'dim' argument."
            )
        return
    for d in dims:
        if input.shape[d] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")


def _check_floating(input: Any, op: str, what: str) -> None:
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}(): {what}. Got: {input.dtype}")


def sum(  # noqa: A001 - torch name
    input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Any:
    """Sum over ``dim`` (all dims when None). Integer and bool inputs sum to int64, as PyTorch."""
    dims = _dims(input, dim, "sum")
    if dtype is None and input.dtype.kind in "biu":
        dtype = np.int64
    return SumFn(dims, keepdim, None if dtype is None else np.dtype(dtype))(input)


def mean(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
    """Mean over ``dim``; ``dtype`` casts the input first. Integer inputs need a float ``dtype``."""
    dims = _dims(input, dim, "mean")
    if dtype is not None:
        input = input.to(dtype)
    _check_floating(
        input, "mean", "could not infer output dtype. Input dtype must be either a floating point "
        "or complex dtype"
    )
    return MeanFn(dims, keepdim)(input)


def logsumexp(input: Any, dim: Any, keepdim: bool = False) -> Any:
    """log(sum(exp(input))) over ``dim`` (an int or a tuple of ints), without overflow.

    The numerically stable form of notes 003's softmax denominator; its gradient is the softmax
    of ``input`` along ``dim``. Integer inputs are converted to the default float dtype first, as
    in PyTorch. Math: :class:`LogSumExpFn`.
    """
    dims = _dims(input, dim, "logsumexp")
    if input.dtype.kind not in "fc":
        from .. import backend

        input = input.to(backend.get_default_dtype())
    return LogSumExpFn(dims, bool(keepdim))(input)


def _extreme(input: Any, dim: Any, keepdim: bool, largest: bool, name: str) -> Any:
    if isinstance(dim, Tensor):  # torch.max(a, b): the elementwise form
        from .elementwise import maximum, minimum

        return maximum(input, dim) if largest else minimum(input, dim)
    check_tensor(input, "input", name)
    if dim is None:
        _check_nonempty(input, None, name)
        return AmaxFn(None, False, largest)(input)
    d = normalize_dim(dim, input.ndim, name)
    _check_nonempty(input, (d,) if input.ndim else (), name)
    values, indices = MaxDimFn(d, keepdim, largest)(input)
    return MaxMin(values, indices)


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001 - torch name
    """Without dim: the largest element. With dim: (values, indices). With a Tensor: elementwise."""
    return _extreme(input, dim, keepdim, True, "max")


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001 - torch name
    """Without dim: the smallest element. With dim: (values, indices). With a Tensor: the
    elementwise minimum."""
    return _extreme(input, dim, keepdim, False, "min")


def amax(input: Any, dim: Any = (), keepdim: bool = False) -> Any:
    """Largest value over ``dim`` (all dims by default); tied maxima share the gradient evenly."""
    dims = _dims(input, dim, "amax")
    _check_nonempty(input, dims, "amax")
    return AmaxFn(dims, keepdim, True)(input)


def amin(input: Any, dim: Any = (), keepdim: bool = False) -> Any:
    """Smallest value over ``dim`` (all dims by default); tied minima share the gradient evenly."""
    dims = _dims(input, dim, "amin")
    _check_nonempty(input, dims, "amin")
    return AmaxFn(dims, keepdim, False)(input)


def _correction(unbiased: bool | None, correction: float | None, op: str) -> float:
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{op}(): pass either 'unbiased' or 'correction', not both")
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def _var_args(input: Any, dim: Any, unbiased: Any, op: str) -> tuple[Any, Any]:
    if isinstance(dim, bool):  # torch.var(x, False): the old (input, unbiased) overload
        dim, unbiased = None, dim
    dims = _dims(input, dim, op)
    _check_floating(input, op, "std and var only support floating point and complex dtypes")
    return dims, unbiased


def var(input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Any:
    """Variance over ``dim`` with Bessel's correction by default (divide by n - 1), as PyTorch."""
    dims, unbiased = _var_args(input, dim, unbiased, "var")
    return VarFn(dims, _correction(unbiased, correction, "var"), keepdim)(input)


def std(input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Any:
    """sqrt(var), with a zero gradient where all elements are equal (as PyTorch)."""
    dims, unbiased = _var_args(input, dim, unbiased, "std")
    return StdFn(dims, _correction(unbiased, correction, "std"), keepdim)(input)


def _arg_extreme(input: Any, dim: int | None, keepdim: bool, largest: bool, name: str) -> Any:
    check_tensor(input, "input", name)
    arg = np.argmax if largest else np.argmin
    if dim is None:
        if input.numel() == 0:
            raise IndexError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
            )
        index = np.int64(arg(input.data))
        return Tensor._wrap(np.full((1,) * input.ndim if keepdim else (), index, dtype=np.int64))
    d = normalize_dim(dim, input.ndim, name)
    if input.ndim == 0:
        return Tensor._wrap(np.zeros((), dtype=np.int64))
    _check_nonempty(input, (d,), name)
    return Tensor._wrap(arg(input.data, axis=d, keepdims=keepdim).astype(np.int64))


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Index of the largest element (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme(input, dim, keepdim, True, "argmax")


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Index of the smallest element (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme(input, dim, keepdim, False, "argmin")
