"""Ops that move elements without changing them: reshape, permute, indexing, cat/stack, expand, pad.

Their backward passes route each gradient element back to where its input element came from:
reshape reshapes back, permute applies the inverse permutation, indexing scatters (adding where an
index repeats), cat splits, expand sums over the expanded axes.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..autograd import Function
from ._util import normalize_dim


class ReshapeFn(Function):
    """y = x viewed with a new shape (same elements, row-major order). dL/dx = g reshaped back."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, grad_y):
        return grad_y.reshape(self.x_shape)


class PermuteFn(Function):
    """y = x with axes reordered: y.shape[i] = x.shape[dims[i]]. dL/dx = g permuted by dims^-1."""

    def __init__(self, dims: tuple[int, ...]):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, grad_y):
        return grad_y.transpose(np.argsort(self.dims))


def _is_basic_index(index: Any) -> bool:
    """True when the index has only ints, slices, None and Ellipsis (so no element repeats)."""
    items = index if isinstance(index, tuple) else (index,)
    return builtins.all(
        isinstance(i, int | slice | np.integer) or i is None or i is Ellipsis for i in items
    )


class GetitemFn(Function):
    """y = x[index].

    Backward scatters g into zeros of x's shape. With basic indexing (ints, slices) each element is
    picked at most once, so plain assignment does it; with integer arrays an element may be picked
    several times, and its gradient is the *sum* of the picks (``np.add.at``).
    """

    def __init__(self, index: Any):
        self.index = index

    def forward(self, x):
        self.x_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, grad_y):
        grad_x = np.zeros(self.x_shape, dtype=grad_y.dtype)
        if _is_basic_index(self.index):
            grad_x[self.index] = grad_y
        else:
            np.add.at(grad_x, self.index, grad_y)
        return grad_x


class CatFn(Function):
    """y = concatenation of xs along dim. dL/dx_k = the slice of g that x_k filled."""

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        self.sizes = [x.shape[self.dim] for x in xs]
        return np.concatenate(xs, axis=self.dim)

    def backward(self, grad_y):
        splits = np.cumsum(self.sizes)[:-1]
        return tuple(np.split(grad_y, splits, axis=self.dim))


class StackFn(Function):
    """y = xs stacked along a new axis dim. dL/dx_k = g[..., k, ...] (index k along dim)."""

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        return np.stack(xs, axis=self.dim)

    def backward(self, grad_y):
        return tuple(np.moveaxis(grad_y, self.dim, 0))


class ExpandFn(Function):
    """y = x broadcast to a larger shape (no copy). dL/dx = g summed over the expanded axes."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def forward(self, x):
        return np.broadcast_to(x, self.shape)

    def backward(self, grad_y):
        return grad_y  # the engine's unbroadcast sums the expanded axes


class PadFn(Function):
    """Constant padding. ``pad`` lists (before, after) pairs starting from the *last* axis, as in
    ``torch.nn.functional.pad``; negative amounts crop.

    Forward: pad by the positive amounts, then crop by the negative ones.
    Backward: put g back into the padded frame (zeros where the crop removed elements) and take
    the part of the frame that holds x: dL/dx = frame[inner].
    """

    def __init__(self, pad: tuple[int, ...], value: float):
        self.pad, self.value = pad, value

    def forward(self, x):
        widths = [(0, 0)] * x.ndim
        for i in range(len(self.pad) // 2):
            widths[x.ndim - 1 - i] = (self.pad[2 * i], self.pad[2 * i + 1])
        grow = [(builtins.max(a, 0), builtins.max(b, 0)) for a, b in widths]
        padded = np.pad(x, grow, mode="constant", constant_values=self.value)
        self.crop = tuple(slice(-builtins.min(a, 0), n + builtins.min(b, 0))
                          for (a, b), n in zip(widths, padded.shape))
        self.inner = tuple(slice(a, a + n) for (a, _), n in zip(grow, x.shape))
        self.padded_shape = padded.shape
        return padded[self.crop]

    def backward(self, grad_y):
        frame = np.zeros(self.padded_shape, dtype=grad_y.dtype)
        frame[self.crop] = grad_y
        return frame[self.inner]


# ----------------------------------------------------------------------------------------------------
# Wrappers


def _resolve_shape(shape: tuple[int, ...], numel: int, op: str) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = int(np.prod([s for s in shape if s != -1])) if shape else 1
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(input: Any, *shape: Any):
    return ReshapeFn(_resolve_shape(shape, input.numel(), "reshape"))(input)


def permute(input: Any, *dims: Any):
    if len(dims) == 1 and isinstance(dims[0], tuple | list):
        dims = tuple(dims[0])
    if len(dims) != input.ndim:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {input.ndim} is not "
            f"equal to len(dims) = {len(dims)}"
        )
    normalized = tuple(normalize_dim(d, input.ndim, "permute") for d in dims)
    if len(set(normalized)) != len(normalized):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return PermuteFn(normalized)(input)


def transpose(input: Any, dim0: int, dim1: int):
    dims = list(range(input.ndim))
    a = normalize_dim(dim0, input.ndim, "transpose")
    b = normalize_dim(dim1, input.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return PermuteFn(tuple(dims))(input)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1):
    if input.ndim == 0:
        return reshape(input, 1)
    start = normalize_dim(start_dim, input.ndim, "flatten")
    end = normalize_dim(end_dim, input.ndim, "flatten")
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape[:start] + (-1,) + input.shape[end + 1:]
    if input.numel() == 0:
        shape = input.shape[:start] + (int(np.prod(input.shape[start:end + 1])),) + input.shape[end + 1:]
    return reshape(input, *shape)


def squeeze(input: Any, dim: Any = None):
    if dim is None:
        shape = tuple(s for s in input.shape if s != 1)
    else:
        dims = dim if isinstance(dim, tuple | list) else (dim,)
        dims = {normalize_dim(d, input.ndim, "squeeze") for d in dims}
        shape = tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1))
    return ReshapeFn(shape)(input)


def unsqueeze(input: Any, dim: int):
    d = normalize_dim(dim, input.ndim + 1, "unsqueeze")
    shape = input.shape[:d] + (1,) + input.shape[d:]
    return ReshapeFn(shape)(input)


def _check_sequence(tensors: Any, op: str) -> list:
    from ..tensor import Tensor

    if not isinstance(tensors, list | tuple):
        raise TypeError(f"{op}(): argument 'tensors' must be a tuple or list of Tensors, "
                        f"not {type(tensors).__name__}")
    if len(tensors) == 0:
        raise ValueError(f"{op}(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    return list(tensors)


def cat(tensors: Any, dim: int = 0):
    tensors = _check_sequence(tensors, "cat")
    first = tensors[0]
    d = normalize_dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} "
                               f"and {t.ndim}")
        for k in range(first.ndim):
            if k != d and t.shape[k] != first.shape[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{first.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list."
                )
    return CatFn(d)(*tensors)


concat = cat


def stack(tensors: Any, dim: int = 0):
    tensors = _check_sequence(tensors, "stack")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at entry {i}")
    d = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return StackFn(d)(*tensors)


def expand(input: Any, *sizes: Any):
    if len(sizes) == 1 and isinstance(sizes[0], tuple | list):
        sizes = tuple(sizes[0])
    if len(sizes) < input.ndim:
        raise RuntimeError(
            f"expand(torch.FloatTensor{{{list(input.shape)}}}, size={list(sizes)}): the number of "
            f"sizes provided ({len(sizes)}) must be greater or equal to the number of dimensions in "
            f"the tensor ({input.ndim})"
        )
    offset = len(sizes) - input.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = input.shape[i - offset] if i >= offset else 1
        if s == -1:
            s = old
        elif old != 1 and old != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({old}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(input.shape)}"
            )
        shape.append(s)
    return ExpandFn(tuple(shape))(input)


def pad(input: Any, pad: Any, mode: str = "constant", value: float | None = None):
    """Constant padding with F.pad's convention: (left, right, top, bottom, ...) from the last axis."""
    if mode != "constant":
        raise NotImplementedError(f"pad(): only mode='constant' is implemented, got mode={mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad(): padding length must be even and at most 2*input.ndim "
                         f"({2 * input.ndim}), got {len(pad)}")
    return PadFn(pad, 0.0 if value is None else value)(input)
