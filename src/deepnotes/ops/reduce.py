"""Reductions: sum, mean, max/min, variance.

A reduction over axes R maps many inputs to one output, so its backward *broadcasts* the upstream
gradient back over R: for the sum every input gets g, for the mean g / |R|, for the max only the
input(s) that won.
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from ..autograd import Function
from ._util import normalize_dim, normalize_dims

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _expand_back(grad_y: np.ndarray, dims: tuple[int, ...] | None, keepdim: bool, shape) -> np.ndarray:
    """Re-insert the reduced axes of ``grad_y`` (size 1) so that it broadcasts against ``shape``."""
    if dims is not None and not keepdim:
        grad_y = np.expand_dims(grad_y, dims)
    return np.broadcast_to(grad_y, shape)


class SumFn(Function):
    """y = sum_{i in R} x_i.   dL/dx_i = g (broadcast back over R)."""

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.x_shape = x.shape
        return np.sum(x, axis=self.dims, keepdims=self.keepdim)

    def backward(self, grad_y):
        return _expand_back(grad_y, self.dims, self.keepdim, self.x_shape)


class MeanFn(Function):
    """y = (1/|R|) sum_{i in R} x_i.   dL/dx_i = g / |R|."""

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.x_shape = x.shape
        self.count = x.size if self.dims is None else int(np.prod([x.shape[d] for d in self.dims]))
        return np.mean(x, axis=self.dims, keepdims=self.keepdim)

    def backward(self, grad_y):
        return _expand_back(grad_y / self.count, self.dims, self.keepdim, self.x_shape)


class AmaxFn(Function):
    """y = max_{i in R} x_i (or min). The gradient is shared evenly among the tied maxima.

    This is the rule of ``torch.max(x)`` without ``dim`` and of ``torch.amax``: if k elements tie for
    the maximum, each receives g / k.
    """

    def __init__(self, dims: tuple[int, ...] | None, keepdim: bool, largest: bool = True):
        self.dims, self.keepdim, self.largest = dims, keepdim, largest

    def forward(self, x):
        reduce = np.max if self.largest else np.min
        y = reduce(x, axis=self.dims, keepdims=True)
        self.save_for_backward(x, y)
        return y if self.keepdim else (np.squeeze(y, self.dims) if self.dims else y.reshape(()))

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
        arg = np.argmax if self.largest else np.argmin
        indices = np.expand_dims(arg(x, axis=self.dim), self.dim)
        values = np.take_along_axis(x, indices, axis=self.dim)
        self.indices, self.x_shape = indices, x.shape
        if not self.keepdim:
            values, indices = values.squeeze(self.dim), indices.squeeze(self.dim)
        return values, indices.astype(np.int64)

    def backward(self, grad_values, grad_indices):
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
        count = x.size if self.dims is None else int(np.prod([x.shape[d] for d in self.dims]))
        centred = x - np.mean(x, axis=self.dims, keepdims=True)
        self.denominator = builtins.max(count - self.correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.sum(centred * centred, axis=self.dims, keepdims=self.keepdim) / self.denominator
        self.save_for_backward(centred)
        return y

    def backward(self, grad_y):
        (centred,) = self.saved
        g = _expand_back(grad_y, self.dims, self.keepdim, centred.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (2.0 / self.denominator) * centred


# ----------------------------------------------------------------------------------------------------
# Wrappers


def sum(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001 - torch name
    return SumFn(normalize_dims(dim, input.ndim, "sum"), keepdim)(input)


def mean(input: Any, dim: Any = None, keepdim: bool = False):
    if input.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or "
            f"complex dtype. Got: {input.dtype}"
        )
    return MeanFn(normalize_dims(dim, input.ndim, "mean"), keepdim)(input)


def _extreme(input: Any, dim: Any, keepdim: bool, largest: bool, name: str):
    from ..tensor import Tensor

    if isinstance(dim, Tensor):  # torch.max(a, b): the elementwise form
        from .elementwise import maximum, minimum

        return maximum(input, dim) if largest else minimum(input, dim)
    if input.numel() == 0:
        raise RuntimeError(
            f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
            "reduction dim with the 'dim' argument."
        )
    if dim is None:
        return AmaxFn(None, False, largest)(input)
    values, indices = MaxDimFn(normalize_dim(dim, input.ndim, name), keepdim, largest)(input)
    return MaxMin(values, indices)


def max(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001 - torch name
    """Without dim: the largest element. With dim: (values, indices). With a Tensor: elementwise."""
    return _extreme(input, dim, keepdim, True, "max")


def min(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001 - torch name
    return _extreme(input, dim, keepdim, False, "min")


def amax(input: Any, dim: Any = (), keepdim: bool = False):
    dims = None if dim == () or dim is None else normalize_dims(dim, input.ndim, "amax")
    return AmaxFn(dims, keepdim, True)(input)


def amin(input: Any, dim: Any = (), keepdim: bool = False):
    dims = None if dim == () or dim is None else normalize_dims(dim, input.ndim, "amin")
    return AmaxFn(dims, keepdim, False)(input)


def _correction(unbiased: bool | None, correction: float | None) -> float:
    if unbiased is not None and correction is not None:
        raise RuntimeError("var(): pass either 'unbiased' or 'correction', not both")
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def var(input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None):
    """Variance over ``dim`` with Bessel's correction by default (divide by n - 1), as PyTorch."""
    dims = normalize_dims(dim, input.ndim, "var")
    return VarFn(dims, _correction(unbiased, correction), keepdim)(input)


def std(input: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None):
    """sqrt(var): the composite of two ops, so its gradient is g / (2 std) * dvar/dx."""
    from .elementwise import sqrt

    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def argmax(input: Any, dim: int | None = None, keepdim: bool = False):
    from ..tensor import Tensor

    if dim is None:
        return Tensor(np.int64(np.argmax(input.data)))
    d = normalize_dim(dim, input.ndim, "argmax")
    return Tensor(np.argmax(input.data, axis=d, keepdims=keepdim).astype(np.int64))


def argmin(input: Any, dim: int | None = None, keepdim: bool = False):
    from ..tensor import Tensor

    if dim is None:
        return Tensor(np.int64(np.argmin(input.data)))
    d = normalize_dim(dim, input.ndim, "argmin")
    return Tensor(np.argmin(input.data, axis=d, keepdims=keepdim).astype(np.int64))
