"""Pooling in 1, 2 or 3 dimensions: max, average, adaptive, power-average, unpooling (notes 000 Q2,
notes 001 on pooling).

Pooling has no parameters; its backward only routes the error to the inputs (notes 000 Q2):
max pooling hands each output's gradient, unchanged, to the input that was the maximum of its
window (all other inputs get 0); average pooling spreads it evenly, g / divisor, over the window.
Overlapping windows (stride < kernel) add up. Full derivation: docs/derivations/pooling.md.

Fixed-window pools loop over the prod(k) kernel offsets: for offset (i, j) (in 2-D) the strided
slice ``x_pad[:, :, i*dH::sH, j*dW::sW]`` (H_out x W_out of it) holds, for every output position,
the input that offset reads. So the forward pass is prod(k) vectorised max/add operations and the
backward pass prod(k) vectorised adds, with no copy of the windows and no Python loop over pixels.
The same classes serve 1-D, 2-D and 3-D inputs: an offset is a d-tuple, a slice has d axes.
"""

from __future__ import annotations

import math
from functools import reduce
from itertools import product
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from . import elementwise
from ._util import check_tensor
from .im2col import pad_spatial


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Output length of a pooling window sliding along one axis (PyTorch's rule).

        out = floor_or_ceil((size + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1

    With ``ceil_mode`` the division rounds up, but the last window must still *start* inside the
    input or the left padding: if (out - 1)*stride >= size + pad, it is dropped.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _windows(kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...],
             out_size: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """For each kernel offset, in row-major order (the order of PyTorch's window scan), the index
    of the (N, C, *S_out) slice of the padded input that the offset reads: along an axis, tap o
    reads o*d, o*d + s, ..., one element per output position."""
    taps = [[slice(o * d, o * d + s * (m - 1) + 1, s) for o in range(k)]
            for k, d, s, m in zip(kernel, dilation, stride, out_size)]
    everything = (slice(None), slice(None))
    return [everything + window for window in product(*taps)]


def _window_pads(size: int, out: int, kernel: int, stride: int, pad: int,
                 dilation: int) -> tuple[int, int]:
    """(left, right) padding so that every window lies inside the padded axis.

    The right side may need more than ``pad`` in ceil_mode (the last window hangs over the end) and
    less when the windows never reach the end.
    """
    needed = (out - 1) * stride + dilation * (kernel - 1) + 1
    return pad, max(needed - size - pad, 0)


def _crop(grad_pad: np.ndarray, pads: tuple[tuple[int, int], ...],
          sizes: tuple[int, ...]) -> np.ndarray:
    """The part of a padded gradient buffer that lies over the real input."""
    grad_x = grad_pad[(Ellipsis,) + tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, sizes))]
    if any(lo or hi for lo, hi in pads):
        grad_x = np.ascontiguousarray(grad_x)
    return grad_x


class MaxPoolNdFn(Function):
    """y[n, c, p, q] = max_{i, j} x_pad[n, c, p*sH + i*dH, q*sW + j*dW], x_pad padded with -inf.

    (2-D shown; 1-D and 3-D have one index per spatial axis.) Forward keeps, per output, the window
    offset k (row-major over the kernel) of the first maximum (PyTorch's tie-breaking: a later
    element replaces the running max only when strictly greater; NaN propagates). Backward
    (notes 000 Q2): y depends on x only through that one element, with slope 1, so
        dL/dx[n, c, h, w] = sum of g[n, c, p, q] over the outputs whose arg-max is (h, w)
    done as one masked add per kernel offset. ``return_indices`` gives the arg-max as PyTorch does:
    the flat index into the input plane (h*W + w; d*H*W + h*W + w in 3-D). (With dilation, a window
    of a tiny input can hold padding only; its output is -inf and its index meaningless, in PyTorch
    as here.)
    """

    def __init__(self, kernel_size: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool,
                 return_indices: bool):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.return_indices = dilation, ceil_mode, return_indices

    def forward(self, x):
        kernel, stride, padding, dilation = (self.kernel_size, self.stride, self.padding,
                                             self.dilation)
        nd = len(kernel)
        self.unbatched = x.ndim == nd + 1
        if self.unbatched:
            x = x[None]
        sizes = x.shape[2:]
        out = tuple(pool_output_size(*a, self.ceil_mode)
                    for a in zip(sizes, kernel, stride, padding, dilation))
        pads = tuple(_window_pads(m, o, k, s, p, d)
                     for m, o, k, s, p, d in zip(sizes, out, kernel, stride, padding, dilation))
        lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        x_pad = pad_spatial(x, pads, lowest)
        track = bool(self.needs_input_grad) or self.return_indices
        nan_aware = track and x.dtype.kind == "f" and bool(np.isnan(x).any())
        y = arg = None
        for k, index in enumerate(_windows(kernel, dilation, stride, out)):
            window = x_pad[index]
            if y is None:
                y = window.copy()                                        # (N, C, *S_out)
                if track:
                    arg = np.zeros(y.shape, np.min_scalar_type(math.prod(kernel) - 1))
                continue
            if track:                        # strictly greater: the first maximum keeps its place
                better = window > y
                if nan_aware:
                    better |= np.isnan(window)
                # arg = k where better. k only grows during the scan, so that is a running max.
                np.maximum(arg, better * arg.dtype.type(k), out=arg)
            np.maximum(y, window, out=y)     # (np.maximum propagates NaN, like PyTorch)
        if self.needs_input_grad:
            self.arg, self.pads, self.x_shape = arg, pads, x.shape
        if self.unbatched:
            y = y[0]
        if not self.return_indices:
            return y
        taps = np.unravel_index(arg.astype(np.int64), kernel)            # kernel index per axis
        indices = np.zeros(arg.shape, np.int64)
        for axis in range(nd):                # flat = ((pos_0)*S_1 + pos_1)*S_2 + ... (Horner)
            starts = np.arange(out[axis]) * stride[axis] - padding[axis]
            starts = starts.reshape((-1,) + (1,) * (nd - 1 - axis))     # broadcast along `axis`
            indices = indices * sizes[axis] + starts + taps[axis] * dilation[axis]
        return y, indices[0] if self.unbatched else indices

    def backward(self, grad_y, grad_indices=None):
        if self.unbatched:
            grad_y = grad_y[None]
        kernel, stride, dilation = self.kernel_size, self.stride, self.dilation
        sizes, out = self.x_shape[2:], grad_y.shape[2:]
        xp = backend.array_module(grad_y)
        # Windows that do not overlap (e.g. 2x2, stride 2) touch disjoint slices: write, not add.
        disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, kernel))
        padded = tuple(m + lo + hi for m, (lo, hi) in zip(sizes, self.pads))
        grad_pad = xp.zeros(self.x_shape[:2] + padded, dtype=grad_y.dtype)
        for k, index in enumerate(_windows(kernel, dilation, stride, out)):
            if disjoint:
                np.multiply(grad_y, self.arg == k, out=grad_pad[index])  # g only where k won
            else:
                grad_pad[index] += grad_y * (self.arg == k)
        grad_x = _crop(grad_pad, self.pads, sizes)
        return grad_x[0] if self.unbatched else grad_x


class AvgPoolNdFn(Function):
    """y[n, c, p, q] = (1 / D[p, q]) sum_{i, j} x_pad[n, c, p*sH + i, q*sW + j], x_pad zero-padded.

    (2-D shown; 1-D and 3-D likewise.) The divisor D (PyTorch's rule): ``divisor_override`` if
    given; else the window size counted up to the padded border S + p (a ceil_mode window that
    hangs further out is cut there) when ``count_include_pad``; else the number of real input
    elements in the window. Both are products of one count per axis.
    Backward (notes 000 Q2): dy[p, q]/dx = 1/D[p, q] for every x in the window, so each input
    receives g[p, q] / D[p, q] from every window that contains it.
    """

    def __init__(self, kernel_size: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
                 divisor_override: int | None):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def _divisor(self, sizes: tuple[int, ...], out: tuple[int, ...], dtype: np.dtype) -> Any:
        if self.divisor_override is not None:
            return self.divisor_override

        def counts(size: int, n_out: int, k: int, s: int, p: int) -> np.ndarray:
            start = np.arange(n_out) * s - p
            end = np.minimum(start + k, size + p)        # cut at the padded border
            if self.count_include_pad:
                return end - start
            return np.minimum(end, size) - np.maximum(start, 0)  # real elements only

        per_axis = [counts(*a) for a in zip(sizes, out, self.kernel_size, self.stride,
                                             self.padding)]
        return reduce(np.multiply, np.ix_(*per_axis)).astype(dtype)   # (*S_out)

    def forward(self, x):
        kernel, stride, padding = self.kernel_size, self.stride, self.padding
        nd = len(kernel)
        ones = (1,) * nd
        self.unbatched = x.ndim == nd + 1
        if self.unbatched:
            x = x[None]
        sizes = x.shape[2:]
        out = tuple(pool_output_size(m, k, s, p, 1, self.ceil_mode)
                    for m, k, s, p in zip(sizes, kernel, stride, padding))
        pads = tuple(_window_pads(m, o, k, s, p, 1)
                     for m, o, k, s, p in zip(sizes, out, kernel, stride, padding))
        x_pad = pad_spatial(x, pads, 0)
        total = None
        for index in _windows(kernel, ones, stride, out):
            window = x_pad[index]
            if total is None:
                total = window.copy()                                    # (N, C, *S_out)
            else:
                total += window
        divisor = self._divisor(sizes, out, x.dtype)
        total /= divisor
        if self.needs_input_grad:
            self.divisor, self.pads, self.x_shape = divisor, pads, x.shape
        return total[0] if self.unbatched else total

    def backward(self, grad_y):
        if self.unbatched:
            grad_y = grad_y[None]
        kernel = self.kernel_size
        sizes, out = self.x_shape[2:], grad_y.shape[2:]
        share = grad_y / self.divisor                    # what each window element receives
        xp = backend.array_module(grad_y)
        padded = tuple(m + lo + hi for m, (lo, hi) in zip(sizes, self.pads))
        grad_pad = xp.zeros(self.x_shape[:2] + padded, dtype=grad_y.dtype)
        for index in _windows(kernel, (1,) * len(kernel), self.stride, out):
            grad_pad[index] += share
        grad_x = _crop(grad_pad, self.pads, sizes)
        return grad_x[0] if self.unbatched else grad_x


MaxPool2dFn, AvgPool2dFn = MaxPoolNdFn, AvgPoolNdFn   # the 2-D cases, as the docs name them


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive bins: bin i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def _averaging_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """A (out, size) with A[i, h] = 1/|bin i| for h in bin i: averaging the bins is ``A @ v``."""
    start, end = adaptive_bins(size, out)
    h = np.arange(size)
    inside = (h >= start[:, None]) & (h < end[:, None])
    return (inside / np.maximum(end - start, 1)[:, None]).astype(dtype)


def _along(x: np.ndarray, axis: int, matrix: np.ndarray) -> np.ndarray:
    """Apply ``matrix`` (m_out, m) along ``axis``: y[..., i, ...] = sum_h M[i, h] x[..., h, ...]."""
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(moved @ matrix.T, -1, axis)


class AdaptiveAvgPoolNdFn(Function):
    """Average over PyTorch's adaptive bins, which are products of one bin per axis.

    That makes the pool separable: with averaging matrices A_a (S_out_a, S_a) (A[i, h] = 1/|bin i|
    inside bin i, else 0), one per spatial axis a,
        y = x  x_1 A_1  x_2 A_2 ...      (in 2-D, per (n, c) plane: y = A_h x A_w^T)
        dL/dx = g  x_1 A_1^T  x_2 A_2^T ...   (the transpose of a linear map carries g back)
    i.e. one small GEMM per axis over all planes at once. The global pool (output all ones) is a
    plain mean, and its gradient g / prod(S) everywhere.
    """

    def __init__(self, output_size: tuple[int, ...]):
        self.output_size = output_size

    def forward(self, x):
        nd = len(self.output_size)
        self.x_shape = x.shape
        axes = tuple(range(x.ndim - nd, x.ndim))
        if all(o == 1 for o in self.output_size):
            return x.mean(axis=axes, keepdims=True)
        self.matrices = [_averaging_matrix(x.shape[a], o, x.dtype)
                         for a, o in zip(axes, self.output_size)]
        y = x
        for a, matrix in zip(axes, self.matrices):
            y = _along(y, a, matrix)                          # axis a: S_a -> S_out_a
        return np.ascontiguousarray(y)

    def backward(self, grad_y):
        nd = len(self.output_size)
        axes = tuple(range(len(self.x_shape) - nd, len(self.x_shape)))
        if all(o == 1 for o in self.output_size):
            return np.broadcast_to(grad_y / math.prod(self.x_shape[-nd:]), self.x_shape).copy()
        grad_x = grad_y
        for a, matrix in zip(axes, self.matrices):
            grad_x = _along(grad_x, a, matrix.T)              # axis a: S_out_a -> S_a
        return np.ascontiguousarray(grad_x)


class AdaptiveMaxPoolNdFn(Function):
    """Max over PyTorch's adaptive bins (see :func:`adaptive_bins`), one vectorised max per bin.

    Ties go to the first maximum in row-major window order; indices are flat positions in the
    input plane as in max_pool. Backward: each output's gradient goes to its arg-max input (bins
    may overlap when the sizes do not divide, so the contributions are summed with a bincount).
    """

    def __init__(self, output_size: tuple[int, ...], return_indices: bool):
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        nd = len(self.output_size)
        lead, sizes = x.shape[:-nd], x.shape[-nd:]
        planes = x.reshape((-1,) + sizes)                            # (B, *S), B = N*C
        b = planes.shape[0]
        y = np.empty((b,) + self.output_size, dtype=x.dtype)
        indices = np.empty(y.shape, dtype=np.int64)
        bins = [adaptive_bins(m, o) for m, o in zip(sizes, self.output_size)]
        for cell in product(*(range(o) for o in self.output_size)):
            starts = [int(start[i]) for (start, _), i in zip(bins, cell)]
            window = planes[(slice(None),) + tuple(slice(s, int(end[i]))
                                                   for s, (_, end), i in zip(starts, bins, cell))]
            flat = window.reshape(b, math.prod(window.shape[1:]))    # (B, window size)
            best = flat.argmax(axis=1)                               # first max (NaN counts as max)
            y[(slice(None),) + cell] = flat[np.arange(b), best]
            where = np.unravel_index(best, window.shape[1:])         # position inside the window
            indices[(slice(None),) + cell] = np.ravel_multi_index(
                tuple(w + s for w, s in zip(where, starts)), sizes)
        self.indices, self.x_shape = indices, x.shape
        y = y.reshape(lead + self.output_size)
        if self.return_indices:
            return y, indices.reshape(y.shape)
        return y

    def backward(self, grad_y, grad_indices=None):
        nd = len(self.output_size)
        plane = math.prod(self.x_shape[-nd:])
        planes = self.indices.shape[0]
        offsets = (np.arange(planes) * plane).reshape((-1,) + (1,) * nd)
        flat = self.indices + offsets                                # index into x.ravel()
        grad_x = np.bincount(flat.ravel(), weights=grad_y.ravel(), minlength=planes * plane)
        return grad_x.astype(grad_y.dtype, copy=False).reshape(self.x_shape)


AdaptiveAvgPool2dFn, AdaptiveMaxPool2dFn = AdaptiveAvgPoolNdFn, AdaptiveMaxPoolNdFn


class MaxUnpoolNdFn(Function):
    """The partial inverse of max pooling: put each value back at its arg-max, zeros elsewhere.

    x (N, C, *S), indices (N, C, *S) (flat positions in the output plane, as max_pool's
    return_indices gives them) -> y (N, C, *S_out):
        y[n, c].flat[indices[n, c, p]] = x[n, c, p],   y = 0 everywhere else.
    y is a linear scatter of x, so its transpose is a gather:
        dL/dx[n, c, p] = g[n, c].flat[indices[n, c, p]]
    (used by SegNet-style decoders and by "deconvnet" visualisation: the max locations are
    remembered from the encoder's pooling).
    """

    def __init__(self, output_size: tuple[int, ...]):
        self.output_size = output_size

    def forward(self, x, indices):
        nd = len(self.output_size)
        lead = x.shape[:-nd]
        rows = x.reshape(-1, math.prod(x.shape[-nd:]))                # (B, L_in), B = N*C
        self.where = (np.arange(rows.shape[0])[:, None], indices.reshape(rows.shape))
        y = np.zeros((rows.shape[0], math.prod(self.output_size)), dtype=x.dtype)  # (B, L_out)
        if y.size:                               # an empty output plane receives nothing
            y[self.where] = rows
        self.x_shape = x.shape
        return y.reshape(lead + self.output_size)

    def backward(self, grad_y):
        if grad_y.size == 0:
            return np.zeros(self.x_shape, grad_y.dtype), None
        rows = grad_y.reshape(self.where[0].shape[0], -1)             # (B, L_out)
        return rows[self.where].reshape(self.x_shape), None


# ----------------------------------------------------------------------------- argument checks


_AXES = {1: ("W",), 2: ("H", "W"), 3: ("T", "H", "W")}
_WORDS = {1: "one", 2: "two", 3: "three"}


def _size(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _pool_tuple(value: Any, nd: int, message: str) -> tuple[int, ...]:
    """int or 1/nd-element tuple/list of ints -> nd-tuple; otherwise PyTorch's RuntimeError."""
    if _is_int(value):
        return (int(value),) * nd
    if isinstance(value, tuple | list) and len(value) in (1, nd) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value) if len(value) == nd else (int(value[0]),) * nd
    raise RuntimeError(message)


def _pool_pair(value: Any, message: str) -> tuple[int, int]:
    return _pool_tuple(value, 2, message)  # type: ignore[return-value]


def _check_pool_input(input: Any, op: str, nd: int = 2) -> None:
    check_tensor(input, "input", op)
    shape = tuple(input.shape)
    if len(shape) in (nd + 1, nd + 2) and 0 not in shape[-nd - 1:]:
        return
    if nd == 3:
        raise RuntimeError("non-empty 4D or 5D (batch mode) tensor expected for input")
    prefix = f"{op}: " if nd == 1 else ""
    raise RuntimeError(f"{prefix}Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional "
                       f"0 dim batch size for input, but got:{_size(shape)}")


def _labelled(prefix: str, values: tuple[int, ...]) -> str:
    """'kH: 3 kW: 2' style listing, with PyTorch's axis letters (T, H, W)."""
    return " ".join(f"{prefix}{a}: {v}" for a, v in zip(_AXES[len(values)], values))


def _check_window(op: str, input: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                  padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> None:
    """Kernel, stride, padding and dilation values as PyTorch checks them (any dimension)."""
    nd = len(kernel)
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got "
                           f"{_labelled('k', kernel)}")
    if min(stride) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got {_labelled('d', stride)}")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got "
                           f"{_labelled('dilation', dilation)}")
    if min(padding) < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(padding)}")
    for p, k, d in zip(padding, kernel, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError("pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):  # PyTorch also bounds it by the kernel
        shown = ", ".join([f"pad{a} = {p}" for a, p in zip(_AXES[nd][::-1], padding[::-1])]
                          + [f"k{a} = {k}" for a, k in zip(_AXES[nd][::-1], kernel[::-1])])
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                           f"{shown}")
    c, *sizes = input.shape[-nd - 1:]
    out = [pool_output_size(m, k, s, p, d, ceil_mode)
           for m, k, s, p, d in zip(sizes, kernel, stride, padding, dilation)]
    if min(out) < 1:
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, [c, *sizes]))}). Calculated "
                           f"output size: ({'x'.join(map(str, [c, *out]))}). Output size is too "
                           "small")


def _window_args(op: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1,
                 nd: int = 2) -> tuple[tuple[int, ...], ...]:
    word = _WORDS[nd]
    kernel = _pool_tuple(kernel_size, nd, f"{op}: kernel_size must either be a single int, or a "
                                          f"tuple of {word} ints")
    if stride is None or (isinstance(stride, tuple | list) and len(stride) == 0):
        stride = kernel
    stride = _pool_tuple(stride, nd, f"{op}: stride must either be omitted, a single int, or a "
                                     f"tuple of {word} ints")
    padding = _pool_tuple(padding, nd, f"{op}: padding must either be a single int, or a tuple "
                                       f"of {word} ints")
    dilation = _pool_tuple(dilation, nd, f"{op}: dilation must be either a single int, or a "
                                         f"tuple of {word} ints")
    return kernel, stride, padding, dilation


def _max_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              dilation: Any, ceil_mode: bool, return_indices: bool):
    _check_pool_input(input, op, nd)
    kernel, stride, padding, dilation = _window_args(op, kernel_size, stride, padding, dilation,
                                                     nd)
    _check_window(op, input, kernel, stride, padding, dilation, ceil_mode)
    return MaxPoolNdFn(kernel, stride, padding, dilation, bool(ceil_mode),
                       bool(return_indices))(input)


def _avg_pool(op: str, nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              ceil_mode: bool, count_include_pad: bool, divisor_override: Any):
    _check_pool_input(input, op, nd)
    kernel, stride, padding, _ = _window_args(op, kernel_size, stride, padding, 1, nd)
    if divisor_override is not None:
        if not _is_int(divisor_override):
            raise TypeError(f"{op}(): argument 'divisor_override' must be int, not "
                            f"{type(divisor_override).__name__}")
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
        divisor_override = int(divisor_override)
    _check_window(op, input, kernel, stride, padding, (1,) * nd, ceil_mode)
    sizes = input.shape[-nd:]
    if nd == 3 and any(m < k for m, k in zip(sizes, kernel)):   # PyTorch's extra 3-D rule
        raise RuntimeError(f"input image ({_labelled('', sizes)}) smaller than kernel size "
                           f"({_labelled('k', kernel)})")
    return AvgPoolNdFn(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                       divisor_override)(input)


# ----------------------------------------------------------------------------- max / avg pooling


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False):
    """1-D max pooling over (N, C, L) or (C, L). Same signature as torch's F.max_pool1d.

    Arguments and Shape as :func:`max_pool2d`, with one value per axis; indices are positions l.
    Math: :class:`MaxPoolNdFn`.
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """2-D max pooling over an NCHW (or CHW) input. Same signature as torch's F.max_pool2d.

    Args:
        kernel_size, stride (default: kernel_size), padding, dilation: int or (h, w).
            Padding is implicit -inf and at most half the kernel (as in PyTorch, both k // 2 and
            half the dilated extent (d*(k - 1) + 1) // 2).
        ceil_mode: round the output size up (the last window must start inside the input or the
            left padding).
        return_indices: also return the flat index h*W + w of each maximum in its input plane
            (what :func:`max_unpool2d` needs).

    Shape:
        H_out = (H + 2*pH - dH*(kH - 1) - 1) / sH + 1, floored (or ceiled), W_out likewise.

    Math: :class:`MaxPoolNdFn`, docs/derivations/pooling.md.
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False):
    """3-D max pooling over (N, C, D, H, W) or (C, D, H, W). Same signature as torch's F.max_pool3d.

    Arguments and Shape as :func:`max_pool2d`, with (d, h, w) triples; indices are flat
    d*H*W + h*W + w. Math: :class:`MaxPoolNdFn`.
    """
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True):
    """1-D average pooling over (N, C, L) or (C, L). Same signature as torch's F.avg_pool1d.

    Arguments as :func:`avg_pool2d` (no divisor_override, as in PyTorch).
    Math: :class:`AvgPoolNdFn`.
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
):
    """2-D average pooling over an NCHW (or CHW) input. Same signature as torch's F.avg_pool2d.

    Args:
        kernel_size, stride (default: kernel_size), padding: int or (h, w); zero padding of at
            most half the kernel.
        ceil_mode: round the output size up (see :func:`pool_output_size`).
        count_include_pad: divide by the window size including padding (default) or by the
            number of real elements.
        divisor_override: divide every window sum by this number instead.

    Math: :class:`AvgPoolNdFn`, docs/derivations/pooling.md.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None):
    """3-D average pooling over (N, C, D, H, W) or (C, D, H, W) (torch's F.avg_pool3d).

    Arguments as :func:`avg_pool2d`, with (d, h, w) triples. Math: :class:`AvgPoolNdFn`.
    """
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# ----------------------------------------------------------------------------- adaptive pooling


def _adaptive_output_size(op: str, input: Any, output_size: Any, nd: int = 2) -> tuple[int, ...]:
    check_tensor(input, "input", op)
    shape = tuple(input.shape)
    if isinstance(output_size, tuple | list) and len(shape) <= len(output_size):
        raise ValueError(f"Input dimension should be at least {len(output_size) + 1}, got a "
                         f"{len(shape)}-D input of size {_size(shape)} for output_size "
                         f"{tuple(output_size)}")
    if len(shape) not in (nd + 1, nd + 2):
        if nd == 1:
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {len(shape)}-dimensional "
                               f"tensor for argument #1 'self' (while checking arguments for {op})")
        sep = ": " if op.startswith("adaptive_max") else " "
        raise RuntimeError(f"{op}(): Expected {nd + 1}D or {nd + 2}D tensor, but got{sep}"
                           f"{_size(shape)}")
    # PyTorch's max pooling also refuses an empty channel axis (every axis after the first)
    first = 1 if op.startswith("adaptive_max") else len(shape) - nd
    for dim in range(first, len(shape)):
        if shape[dim] == 0:
            raise RuntimeError(
                f"{op}(): Expected input to have non-zero size for non-batch dimensions, but "
                f"input has sizes {_size(shape)} with dimension {dim} being empty"
            )
    if _is_int(output_size):
        sizes = [int(output_size)] * nd
    elif isinstance(output_size, tuple | list) and len(output_size) == nd and all(
        (s is None and nd > 1) or _is_int(s) for s in output_size
    ):
        sizes = [shape[-nd + k] if s is None else int(s) for k, s in enumerate(output_size)]
    elif nd == 1:
        got = len(output_size) if isinstance(output_size, tuple | list) else output_size
        raise RuntimeError(f"{op}() argument 'output_size' should contain one int (got {got})")
    else:
        raise RuntimeError(f"{op}: output_size must be {nd}")
    if min(sizes) < 0:
        raise RuntimeError(f"{op}: elements of output_size must be greater than or equal to 0 but "
                           f"received {{{', '.join(map(str, sizes))}}}")
    return tuple(sizes)


def adaptive_avg_pool1d(input: Any, output_size: Any):
    """Average pooling of (N, C, L) or (C, L) to a fixed length (torch's F.adaptive_avg_pool1d).

    Output i averages positions floor(i*L/L_out) .. ceil((i+1)*L/L_out) - 1.
    Math: :class:`AdaptiveAvgPoolNdFn`.
    """
    size = _adaptive_output_size("adaptive_avg_pool1d", input, output_size, 1)
    return AdaptiveAvgPoolNdFn(size)(input)


def adaptive_avg_pool2d(input: Any, output_size: Any):
    """Average pooling to a fixed output size (int, (h, w), None = keep that input size).

    Output cell i averages input rows floor(i*H/H_out) .. ceil((i+1)*H/H_out) - 1 (columns
    likewise), as in PyTorch; ``output_size=1`` is global average pooling.
    """
    size = _adaptive_output_size("adaptive_avg_pool2d", input, output_size, 2)
    return AdaptiveAvgPoolNdFn(size)(input)


def adaptive_avg_pool3d(input: Any, output_size: Any):
    """Average pooling of (N, C, D, H, W) to a fixed (D_out, H_out, W_out) (None keeps a size)."""
    size = _adaptive_output_size("adaptive_avg_pool3d", input, output_size, 3)
    return AdaptiveAvgPoolNdFn(size)(input)


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False):
    """Max pooling of (N, C, L) or (C, L) to a fixed length (the bins of adaptive_avg_pool1d)."""
    size = _adaptive_output_size("adaptive_max_pool1d", input, output_size, 1)
    return AdaptiveMaxPoolNdFn(size, bool(return_indices))(input)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False):
    """Max pooling to a fixed output size, with PyTorch's bins (see :func:`adaptive_avg_pool2d`)."""
    size = _adaptive_output_size("adaptive_max_pool2d", input, output_size, 2)
    return AdaptiveMaxPoolNdFn(size, bool(return_indices))(input)


def adaptive_max_pool3d(input: Any, output_size: Any, return_indices: bool = False):
    """Max pooling of (N, C, D, H, W) to a fixed size, with PyTorch's adaptive bins."""
    size = _adaptive_output_size("adaptive_max_pool3d", input, output_size, 3)
    return AdaptiveMaxPoolNdFn(size, bool(return_indices))(input)


# ----------------------------------------------------------------------------- unpooling


def _max_unpool(op: str, nd: int, input: Any, indices: Any, kernel_size: Any, stride: Any,
                padding: Any, output_size: Any):
    check_tensor(input, "input", op)
    check_tensor(indices, "indices", op)
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Input to max_unpooling{nd}d should be a {nd + 1}d or {nd + 2}d "
                           f"Tensor, but got a tensor with {input.ndim} dimensions.")
    if indices.dtype != np.int64:
        raise RuntimeError(f"elements in indices should be type int64 but got: {indices.dtype}")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({_size(input.shape)}) but got indices tensor with shape: "
                           f"{_size(indices.shape)}")
    kernel = _pool_tuple(kernel_size, nd, f"{op}: kernel_size must be an int or a tuple of "
                                          f"{_WORDS[nd]} ints")
    stride = kernel if stride is None else _pool_tuple(
        stride, nd, f"{op}: stride must be an int or a tuple of {_WORDS[nd]} ints")
    padding = _pool_tuple(padding, nd, f"{op}: padding must be an int or a tuple of "
                                       f"{_WORDS[nd]} ints")
    # PyTorch's _unpool_output_size: the inverse of max pooling's size formula (floor mode).
    default = [(m - 1) * s + k - 2 * p
               for m, k, s, p in zip(input.shape[-nd:], kernel, stride, padding)]
    if output_size is None:
        out = default
    else:
        out = list(output_size)
        if len(out) == nd + 2:
            out = out[2:]
        if len(out) != nd:
            raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} "
                             f"elements, but it has a length of '{len(out)}'")
        for d in range(nd):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < out[d] < high:
                raise ValueError(f'invalid output_size "{tuple(output_size)}" (dim {d} must be '
                                 f"between {low} and {high})")
    if min(out) < 0:
        raise ValueError(f"max_unpooling: output_size must contain non-negative spatial "
                         f"dimensions, but got output_size={out}")
    plane = math.prod(out)
    flat = indices.data
    if flat.size and plane and (flat.min() < 0 or flat.max() >= plane):  # (torch: no check when
        # the output is empty)
        bad = flat.min() if flat.min() < 0 else flat.max()
        shown = "x".join(map(str, out)) if nd > 1 else f"{out[0]}x1"
        raise RuntimeError(f"Found an invalid max index: {bad} (output volumes are of size "
                           f"{shown})")
    return MaxUnpoolNdFn(tuple(int(o) for o in out))(input, indices)


def max_unpool1d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None):
    """Partial inverse of max_pool1d (torch's F.max_unpool1d); see :func:`max_unpool2d`."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None):
    """Partial inverse of max_pool2d: values back at their arg-max, zeros elsewhere (torch's).

    Args:
        input: (N, C, H, W) or (C, H, W), e.g. the output of
            ``max_pool2d(..., return_indices=True)``.
        indices: int64 tensor of input's shape: flat positions h*W_out + w in the output plane.
        kernel_size, stride (default kernel_size), padding: those of the max pooling undone.
        output_size: (H_out, W_out) (or with N, C in front) to choose among the sizes that the
            pooling maps to the same size; must lie strictly within default ± stride.

    Shape:
        H_out = (H - 1)*sH - 2*pH + kH by default, W_out likewise.

    Math: :class:`MaxUnpoolNdFn`.
    """
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None):
    """Partial inverse of max_pool3d (torch's F.max_unpool3d); see :func:`max_unpool2d`."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)


# ----------------------------------------------------------------------------- power-average


def _lp_pool(nd: int, input: Any, norm_type: Any, kernel_size: Any, stride: Any,
             ceil_mode: bool):
    """(sum over the window of x^p)^(1/p), composed from primitives as PyTorch does it.

    sum = avg_pool(x^p) * prod(k) (the avg_pool divisor is the full window: no padding, and a
    ceil_mode window hanging over the end counts its missing part as zeros, as in PyTorch).
    p = inf is max pooling of |x|. A composite, so autograd derives the backward:
    dL/dx = g * y^(1-p) * x^(p-1) over each window containing x (0/0 = NaN where a window sum is
    0, as in PyTorch).
    """
    op = f"lp_pool{nd}d"
    check_tensor(input, "input", op)
    if not isinstance(norm_type, int | float | np.integer | np.floating) or isinstance(
            norm_type, bool):
        raise TypeError(f"{op}(): norm_type must be a number, got {type(norm_type).__name__}")
    if norm_type == 0:
        raise ValueError(f"{op}(): norm_type must be non-zero, got {norm_type}")
    pool_max = (max_pool1d, max_pool2d, max_pool3d)[nd - 1]
    if math.isinf(norm_type):
        magnitude = elementwise.abs(input)
        if norm_type > 0:
            return pool_max(magnitude, kernel_size, stride, 0, 1, ceil_mode)
        return elementwise.neg(pool_max(elementwise.neg(magnitude), kernel_size, stride, 0, 1,
                                        ceil_mode))
    pool_avg = (avg_pool1d, avg_pool2d, avg_pool3d)[nd - 1]
    powered = elementwise.pow(input, norm_type)
    mean = pool_avg(powered, kernel_size, stride, 0, ceil_mode)
    kernel = _pool_tuple(kernel_size, nd, "")
    return elementwise.pow(elementwise.mul(mean, math.prod(kernel)), 1.0 / norm_type)


def lp_pool1d(input: Any, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False):
    """1-D power-average pooling (torch's F.lp_pool1d); see :func:`lp_pool2d`."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: Any, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False):
    """2-D power-average pooling: y = (sum over the window of x^p)^(1/p) (torch's F.lp_pool2d).

    p = 1 is sum pooling, p = 2 the window's L2 norm (for x >= 0), p -> inf max pooling (of |x|).
    No padding (as in PyTorch). Math: composed from pow, avg_pool2d and mul.
    """
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: Any, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False):
    """3-D power-average pooling (torch's F.lp_pool3d); see :func:`lp_pool2d`."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)
