"""Ops that move elements without changing them: reshape, permute, indexing, cat/stack, expand, pad.

Their backward passes route each gradient element back to where its input element came from:
reshape reshapes back, permute applies the inverse permutation, indexing scatters (adding where an
index repeats), cat splits, expand sums over the expanded axes.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any

import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from ._util import check_tensor, normalize_dim


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


def _picks_each_once(index: Any) -> bool:
    """True when no element can be picked twice: basic indexing, or a single boolean mask."""
    if isinstance(index, np.ndarray) and index.dtype == np.bool_:
        return True
    return _is_basic_index(index)


class GetitemFn(Function):
    """y = x[index].

    Backward scatters g into zeros of x's shape. With basic indexing (ints, slices) or a boolean
    mask each element is picked at most once, so plain assignment does it; with integer arrays an
    element may be picked several times, and its gradient is the *sum* of the picks (``np.add.at``).
    """

    def __init__(self, index: Any):
        self.index = index

    def forward(self, x):
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, grad_y):
        grad_x = np.zeros(self.x_shape, dtype=grad_y.dtype)
        if _picks_each_once(self.index):
            grad_x[self.index] = grad_y
        else:
            np.add.at(grad_x, self.index, grad_y)
        return grad_x


class SetitemFn(Function):
    """y = x with y[index] = value (x is not modified; ``t[index] = v`` on a tensor in the graph
    records this op and rebinds ``t`` to y).

    dL/dx = g with zeros at index (those elements were overwritten and no longer depend on x);
    dL/dvalue = g[index] (summed back to value's shape by the engine when value was broadcast).
    """

    def __init__(self, index: Any):
        self.index = index

    def forward(self, x, value):
        y = x.copy()
        y[self.index] = value
        return y

    def backward(self, grad_y):
        grad_x = grad_value = None
        if self.needs_input_grad[0]:
            grad_x = grad_y.copy()
            grad_x[self.index] = 0
        if self.needs_input_grad[1]:
            grad_value = grad_y[self.index]
        return grad_x, grad_value


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


# ------------------------------------------------------------------------------------------------
# Wrappers


def _resolve_shape(shape: tuple[Any, ...], numel: int, op: str) -> tuple[int, ...]:
    """Sizes given as ``*shape`` or one sequence, with at most one -1 inferred from ``numel``."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    try:
        shape = tuple([operator.index(s) for s in shape])
    except TypeError:
        names = [type(s).__name__ for s in shape if not isinstance(s, int | np.integer)]
        raise TypeError(
            f"{op}(): argument 'shape' must be tuple of ints, but found element of type {names[0]}"
        ) from None
    infer, known = None, 1
    for i, s in enumerate(shape):
        if s == -1:
            if infer is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
        else:
            known *= s
    if infer is not None:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        return shape[:infer] + (numel // known,) + shape[infer + 1:]
    if known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(input: Any, *shape: Any, **kwargs: Any) -> Any:
    """The same elements in a new shape (row-major order); one size may be -1 (inferred).

    Accepts ``reshape(x, 2, 3)``, ``reshape(x, (2, 3))`` and ``reshape(x, shape=(2, 3))``.
    """
    check_tensor(input, "input", "reshape")
    shape = _sizes_argument(shape, kwargs, "shape", "reshape")
    return ReshapeFn(_resolve_shape(shape, input.data.size, "reshape"))(input)


def _sizes_argument(args: tuple, kwargs: dict, name: str, op: str) -> tuple:
    """``*args`` or the keyword ``name`` (PyTorch's functional form), not both."""
    if kwargs:
        if args or set(kwargs) != {name}:
            raise TypeError(f"{op}() got unexpected arguments {sorted(kwargs)}")
        value = kwargs[name]
        return tuple(value) if isinstance(value, tuple | list) else (value,)
    return args


view = reshape


def permute(input: Any, *dims: Any, **kwargs: Any) -> Any:
    """Reorder the axes: output axis i is input axis ``dims[i]``.

    Accepts ``permute(x, 1, 0)``, ``permute(x, (1, 0))`` and ``permute(x, dims=(1, 0))``.
    """
    check_tensor(input, "input", "permute")
    dims = _sizes_argument(dims, kwargs, "dims", "permute")
    if len(dims) == 1 and isinstance(dims[0], tuple | list):
        dims = tuple(dims[0])
    if len(dims) != input.ndim:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {input.ndim} is not "
            f"equal to len(dims) = {len(dims)}"
        )
    normalized = tuple(normalize_dim(d, input.ndim, "permute") for d in dims)
    if len(set(normalized)) != len(normalized):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return PermuteFn(normalized)(input)


def transpose(input: Any, dim0: int, dim1: int) -> Any:
    """Swap two axes."""
    check_tensor(input, "input", "transpose")
    ndim = builtins.max(input.ndim, 1)  # a 0-d tensor accepts dims 0 and -1, as PyTorch
    a = normalize_dim(dim0, ndim, "transpose")
    b = normalize_dim(dim1, ndim, "transpose")
    if input.ndim == 0:
        return PermuteFn(())(input)
    dims = list(range(input.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    return PermuteFn(tuple(dims))(input)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one; a 0-d tensor becomes shape (1,)."""
    check_tensor(input, "input", "flatten")
    if input.ndim == 0:
        normalize_dim(start_dim, 0, "flatten")
        normalize_dim(end_dim, 0, "flatten")
        return ReshapeFn((1,))(input)
    start = normalize_dim(start_dim, input.ndim, "flatten")
    end = normalize_dim(end_dim, input.ndim, "flatten")
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape
    merged = int(np.prod(shape[start:end + 1]))
    return ReshapeFn(shape[:start] + (merged,) + shape[end + 1:])(input)


def squeeze(input: Any, dim: Any = None) -> Any:
    """Drop size-1 axes (all of them, or only those in ``dim`` that have size 1)."""
    check_tensor(input, "input", "squeeze")
    if dim is None:
        shape = tuple(s for s in input.shape if s != 1)
    else:
        dims = dim if isinstance(dim, tuple | list) else (dim,)
        ndim = builtins.max(input.ndim, 1)
        dims = {normalize_dim(d, ndim, "squeeze") for d in dims}
        shape = tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1))
    return ReshapeFn(shape)(input)


def unsqueeze(input: Any, dim: int) -> Any:
    """Insert a size-1 axis at ``dim`` (in the output's numbering)."""
    check_tensor(input, "input", "unsqueeze")
    d = normalize_dim(dim, input.ndim + 1, "unsqueeze")
    shape = input.shape[:d] + (1,) + input.shape[d:]
    return ReshapeFn(shape)(input)


def torch_index_message(error: Exception) -> str:
    """NumPy's IndexError text in PyTorch's words ("dimension", "tensor")."""
    return str(error).replace("axis", "dimension").replace("array", "tensor")


def getitem(input: Any, index: Any) -> Any:
    """``input[index]`` with NumPy's (and PyTorch's) indexing rules; raw arrays in ``index``.

    Unlike PyTorch, negative slice steps are allowed (``x[::-1]``), as in NumPy.
    """
    try:
        return GetitemFn(index)(input)
    except IndexError as error:
        raise IndexError(torch_index_message(error)) from None


def setitem(input: Any, index: Any, value: Any) -> Any:
    """Out-of-place ``input[index] = value`` recorded in the graph (see ``SetitemFn``)."""
    try:
        return SetitemFn(index)(input, value)
    except IndexError as error:
        raise IndexError(torch_index_message(error)) from None
    except ValueError as error:
        raise RuntimeError(f"setitem: {error}") from None


def _check_sequence(tensors: Any, op: str) -> list:
    if not isinstance(tensors, list | tuple):
        raise TypeError(f"{op}(): argument 'tensors' must be tuple of Tensors, "
                        f"not {type(tensors).__name__}")
    if len(tensors) == 0:
        raise ValueError(f"{op}(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    return list(tensors)


def _common_dtype(tensors: list) -> list:
    """Cast the tensors to PyTorch's common result dtype (int64 + float32 -> float32)."""
    from .elementwise import _cast, promote_types

    dtype = tensors[0].data.dtype
    if builtins.all(t.data.dtype == dtype for t in tensors):
        return tensors
    for t in tensors[1:]:
        dtype = promote_types(dtype, t.data.dtype)
    return [_cast(t, dtype) for t in tensors]


def cat(tensors: Any, dim: int = 0) -> Any:
    """Concatenate along an existing axis; all other sizes must match.

    As in PyTorch, 1-D empty tensors (shape (0,)) are skipped whatever the others' shapes (a
    legacy rule that lets ``cat`` start from ``empty(0)``); they still take part in the dtype.
    """
    tensors = _check_sequence(tensors, "cat")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated")
    kept = [i for i, t in enumerate(tensors) if t.shape != (0,)]
    if not kept:
        return CatFn(0)(*_common_dtype(tensors))
    first = tensors[kept[0]]
    d = normalize_dim(dim, first.ndim, "cat")
    for i in kept:
        t = tensors[i]
        if t.ndim != first.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} "
                               f"and {t.ndim}")
        for k in range(first.ndim):
            if k != d and t.shape[k] != first.shape[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{first.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list."
                )
    typed = _common_dtype(tensors)
    return CatFn(d)(*[typed[i] for i in kept])


concat = cat


def stack(tensors: Any, dim: int = 0) -> Any:
    """Stack equal-shaped tensors along a new axis ``dim``."""
    tensors = _check_sequence(tensors, "stack")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} "
                f"at entry 0 and {list(t.shape)} at entry {i}"
            )
    d = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return StackFn(d)(*_common_dtype(tensors))


def expand(input: Any, *sizes: Any) -> Any:
    """Broadcast to ``sizes`` without copying; -1 keeps a size. New axes go in front."""
    check_tensor(input, "input", "expand")
    if len(sizes) == 1 and isinstance(sizes[0], tuple | list):
        sizes = tuple(sizes[0])
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(
            f"expand(torch.FloatTensor{{{list(input.shape)}}}, size={list(sizes)}): the number of "
            f"sizes provided ({len(sizes)}) must be greater or equal to the number of dimensions "
            f"in the tensor ({input.ndim})"
        )
    offset = len(sizes) - input.ndim
    shape = []
    for i, s in enumerate(sizes):
        if i < offset:
            if s < 0:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) isn't allowed in a leading, "
                    f"non-existing dimension {i}"
                )
            shape.append(s)
            continue
        old = input.shape[i - offset]
        if s == -1:
            s = old
        elif s < 0:
            raise RuntimeError(f"expand(): the size {s} at dimension {i} is negative")
        elif old != 1 and old != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({old}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(input.shape)}"
            )
        shape.append(s)
    return ExpandFn(tuple(shape))(input)


def pad(input: Any, pad: Any, mode: str = "constant", value: float | None = None) -> Any:
    """Constant padding with F.pad's convention: (left, right, top, bottom, ...) from the last axis.

    Negative amounts crop, as in PyTorch.
    """
    check_tensor(input, "input", "pad")
    if mode != "constant":
        raise NotImplementedError(f"pad(): only mode='constant' is implemented, got mode={mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            "Padding length must be divisible by 2 and at most 2*input.ndim "
            f"({2 * input.ndim}), got {len(pad)}"
        )
    for i in range(len(pad) // 2):
        size = input.shape[input.ndim - 1 - i]
        new_size = size + pad[2 * i] + pad[2 * i + 1]
        if new_size < 0 or size + builtins.min(pad[2 * i], 0) < 0 or (
            size + builtins.min(pad[2 * i + 1], 0) < 0
        ):
            raise RuntimeError(
                f"The input size {size}, plus negative padding {pad[2 * i]} and "
                f"{pad[2 * i + 1]} resulted in a negative output size, which is invalid. Check "
                f"dimension {input.ndim - 1 - i} of your input."
            )
    return PadFn(pad, 0.0 if value is None else value)(input)


# Channel shuffle (ShuffleNet, Zhang et al. 2017; notes 004 "MobileNet ShuffleNet").
#
# A grouped 1x1 convolution mixes channels only inside each group, so a stack of them lets no
# information cross from one group to another (notes 004: "否则信息不流通"). Shuffling the channels
# between two grouped convolutions fixes that: with g groups of n = C/g channels each, write the
# channel index as c = i*n + j (group i, position j) and send it to j*g + i, so the next grouped
# convolution sees one channel from every group in each of its groups. It is a transpose of a
# (g, n) grid of channels: reshape (N, g, n, ...) -> swap the two axes -> reshape back.
class ChannelShuffleFn(Function):
    """y[:, j*g + i] = x[:, i*n + j] for i < g, j < n = C/g (extra trailing dims ride along).

    Forward: x (N, C, *) -> (N, g, n, *) -> swap axes 1, 2 -> (N, n, g, *) -> (N, C, *).
    Backward: a permutation's gradient is the inverse permutation of g. Swapping a (g, n) grid
    back is swapping an (n, g) grid: dL/dx = channel_shuffle(g, groups=n), the same op with
    C/g groups.
    """

    def __init__(self, groups: int):
        self.groups = groups

    @staticmethod
    def _shuffle(x: np.ndarray, groups: int) -> np.ndarray:
        n, c = x.shape[:2]
        grid = x.reshape(n, groups, c // groups, *x.shape[2:])  # (N, g, C/g, *)
        return np.ascontiguousarray(grid.swapaxes(1, 2)).reshape(x.shape)  # (N, C/g, g, *)

    def forward(self, x):
        return self._shuffle(x, self.groups)

    def backward(self, grad_y):
        return self._shuffle(grad_y, grad_y.shape[1] // self.groups)


def channel_shuffle(input: Any, groups: int) -> Any:
    """Interleave the channels of ``groups`` groups, as ``torch.nn.functional.channel_shuffle``.

    Args:
        input: (N, C, *) with at least 3 dims and C divisible by ``groups``.
        groups: number of groups g; channel i*(C/g) + j moves to j*g + i.

    Example: 6 channels [0 1 2 3 4 5], groups=2 -> [0 3 1 4 2 5].
    """
    check_tensor(input, "input", "channel_shuffle")
    if not isinstance(groups, int | np.integer) or isinstance(groups, bool):
        raise TypeError(f"channel_shuffle(): argument 'groups' (position 2) must be int, not "
                        f"{type(groups).__name__}")
    if input.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with "
                           f"sizes {list(input.shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of "
                           f"groups:{groups}")
    if input.shape[1] % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got "
                           f"{input.shape[1]} channels and {groups} groups.")
    return ChannelShuffleFn(int(groups))(input)
