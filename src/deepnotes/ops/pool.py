"""Pooling: max, average, and their adaptive forms (notes 000 Q2, notes 001 on pooling).

Pooling has no parameters; its backward only routes the error to the inputs (notes 000 Q2):
max pooling hands each output's gradient, unchanged, to the input that was the maximum of its
window (all other inputs get 0); average pooling spreads it evenly, g / divisor, over the window.
Overlapping windows (stride < kernel) add up. Full derivation: docs/derivations/pooling.md.

Fixed-window pools loop over the kH*kW kernel offsets: for offset (i, j) the strided slice
``x_pad[:, :, i*dH::sH, j*dW::sW]`` (H_out x W_out of it) holds, for every output position, the
input that offset reads. So the forward pass is kH*kW vectorised max/add operations and the
backward pass kH*kW vectorised adds, with no copy of the windows and no Python loop over pixels.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from ._util import check_tensor
from .im2col import pad2d


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


def _offset_slices(i: int, j: int, dilation: tuple[int, int], stride: tuple[int, int],
                   out_size: tuple[int, int]) -> tuple[Any, ...]:
    """Index of the (N, C, H_out, W_out) slice of the padded input that kernel offset i, j reads."""
    (dh, dw), (sh, sw), (h_out, w_out) = dilation, stride, out_size
    return (slice(None), slice(None),
            slice(i * dh, i * dh + sh * (h_out - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (w_out - 1) + 1, sw))


def _window_pads(size: int, out: int, kernel: int, stride: int, pad: int,
                 dilation: int) -> tuple[int, int]:
    """(left, right) padding so that every window lies inside the padded axis.

    The right side may need more than ``pad`` in ceil_mode (the last window hangs over the end) and
    less when the windows never reach the end.
    """
    needed = (out - 1) * stride + dilation * (kernel - 1) + 1
    return pad, max(needed - size - pad, 0)


class MaxPool2dFn(Function):
    """y[n, c, p, q] = max_{i, j} x_pad[n, c, p*sH + i*dH, q*sW + j*dW], x_pad padded with -inf.

    Forward keeps, per output, the window offset k = i*kW + j of the first maximum (PyTorch's
    tie-breaking: a later element replaces the running max only when strictly greater; NaN
    propagates). Backward (notes 000 Q2): y depends on x only through that one element, with slope
    1, so
        dL/dx[n, c, h, w] = sum of g[n, c, p, q] over the outputs whose arg-max is (h, w)
    done as one masked add per kernel offset. ``return_indices`` gives the arg-max as PyTorch does:
    the flat index h*W + w into the input plane. (With dilation, a window of a tiny input can hold
    padding only; its output is -inf and its index meaningless, in PyTorch as here.)
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], ceil_mode: bool,
                 return_indices: bool):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.return_indices = dilation, ceil_mode, return_indices

    def forward(self, x):
        self.unbatched = x.ndim == 3
        if self.unbatched:
            x = x[None]
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (self.kernel_size, self.stride, self.padding,
                                                  self.dilation)
        h_out = pool_output_size(h, kh, sh, ph, dh, self.ceil_mode)
        w_out = pool_output_size(w, kw, sw, pw, dw, self.ceil_mode)
        pads = (_window_pads(h, h_out, kh, sh, ph, dh), _window_pads(w, w_out, kw, sw, pw, dw))
        lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        x_pad = pad2d(x, pads, lowest)
        track = bool(self.needs_input_grad) or self.return_indices
        nan_aware = track and x.dtype.kind == "f" and bool(np.isnan(x).any())
        y = arg = None
        for k, (i, j) in enumerate(product(range(kh), range(kw))):
            window = x_pad[_offset_slices(i, j, (dh, dw), (sh, sw), (h_out, w_out))]
            if y is None:
                y = window.copy()                                        # (N, C, H_out, W_out)
                if track:
                    arg = np.zeros(y.shape, np.min_scalar_type(kh * kw - 1))
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
        ki, kj = np.divmod(arg.astype(np.int64), kw)                        # kernel row, column
        rows = (np.arange(h_out) * sh - ph)[:, None] + ki * dh             # input row of the max
        cols = np.arange(w_out) * sw - pw + kj * dw                        # input column
        indices = rows * w + cols                                          # (N, C, H_out, W_out)
        return y, indices[0] if self.unbatched else indices

    def backward(self, grad_y, grad_indices=None):
        if self.unbatched:
            grad_y = grad_y[None]
        n, c, h, w = self.x_shape
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        h_out, w_out = grad_y.shape[2:]
        xp = backend.array_module(grad_y)
        (sh, sw), (dh, dw) = self.stride, self.dilation
        # Windows that do not overlap (e.g. 2x2, stride 2) touch disjoint slices: write, not add.
        disjoint = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1
        grad_pad = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=grad_y.dtype)
        for k, (i, j) in enumerate(product(range(kh), range(kw))):
            index = _offset_slices(i, j, self.dilation, self.stride, (h_out, w_out))
            if disjoint:
                np.multiply(grad_y, self.arg == k, out=grad_pad[index])  # g only where k won
            else:
                grad_pad[index] += grad_y * (self.arg == k)
        grad_x = grad_pad[:, :, top:top + h, left:left + w]
        if top or bottom or left or right:
            grad_x = xp.ascontiguousarray(grad_x)
        return grad_x[0] if self.unbatched else grad_x


class AvgPool2dFn(Function):
    """y[n, c, p, q] = (1 / D[p, q]) sum_{i, j} x_pad[n, c, p*sH + i, q*sW + j], x_pad zero-padded.

    The divisor D[p, q] (PyTorch's rule): ``divisor_override`` if given; else the window size
    counted up to the padded border H + pH (a ceil_mode window that hangs further out is cut
    there) when ``count_include_pad``; else the number of real input elements in the window.
    Backward (notes 000 Q2): dy[p, q]/dx = 1/D[p, q] for every x in the window, so each input
    receives g[p, q] / D[p, q] from every window that contains it.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], ceil_mode: bool, count_include_pad: bool,
                 divisor_override: int | None):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def _divisor(self, h: int, w: int, h_out: int, w_out: int, dtype: np.dtype) -> Any:
        if self.divisor_override is not None:
            return self.divisor_override
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding

        def counts(size: int, out: int, k: int, s: int, p: int) -> np.ndarray:
            start = np.arange(out) * s - p
            end = np.minimum(start + k, size + p)        # cut at the padded border
            if self.count_include_pad:
                return end - start
            return np.minimum(end, size) - np.maximum(start, 0)  # real elements only

        rows, cols = counts(h, h_out, kh, sh, ph), counts(w, w_out, kw, sw, pw)
        return (rows[:, None] * cols[None, :]).astype(dtype)     # (H_out, W_out)

    def forward(self, x):
        self.unbatched = x.ndim == 3
        if self.unbatched:
            x = x[None]
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        h_out = pool_output_size(h, kh, sh, ph, 1, self.ceil_mode)
        w_out = pool_output_size(w, kw, sw, pw, 1, self.ceil_mode)
        pads = (_window_pads(h, h_out, kh, sh, ph, 1), _window_pads(w, w_out, kw, sw, pw, 1))
        x_pad = pad2d(x, pads, 0)
        total = None
        for i, j in product(range(kh), range(kw)):
            window = x_pad[_offset_slices(i, j, (1, 1), (sh, sw), (h_out, w_out))]
            if total is None:
                total = window.copy()                                    # (N, C, H_out, W_out)
            else:
                total += window
        divisor = self._divisor(h, w, h_out, w_out, x.dtype)
        total /= divisor
        if self.needs_input_grad:
            self.divisor, self.pads, self.x_shape = divisor, pads, x.shape
        return total[0] if self.unbatched else total

    def backward(self, grad_y):
        if self.unbatched:
            grad_y = grad_y[None]
        n, c, h, w = self.x_shape
        kh, kw = self.kernel_size
        (top, bottom), (left, right) = self.pads
        h_out, w_out = grad_y.shape[2:]
        share = grad_y / self.divisor                    # what each window element receives
        xp = backend.array_module(grad_y)
        grad_pad = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=grad_y.dtype)
        for i, j in product(range(kh), range(kw)):
            grad_pad[_offset_slices(i, j, (1, 1), self.stride, (h_out, w_out))] += share
        grad_x = grad_pad[:, :, top:top + h, left:left + w]
        if top or bottom or left or right:
            grad_x = xp.ascontiguousarray(grad_x)
        return grad_x[0] if self.unbatched else grad_x


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive bins: bin i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def _averaging_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """A (out, size) with A[i, h] = 1/|bin i| for h in bin i: averaging the bins is ``A @ v``."""
    start, end = adaptive_bins(size, out)
    h = np.arange(size)
    inside = (h >= start[:, None]) & (h < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class AdaptiveAvgPool2dFn(Function):
    """Average over PyTorch's adaptive bins, which are products of a row bin and a column bin.

    That makes the pool separable: with averaging matrices A_h (H_out, H) and A_w (W_out, W)
    (A[i, h] = 1/|bin i| inside bin i, else 0),
        y = A_h x A_w^T            per (n, c) plane: two GEMMs over all planes at once
        dL/dx = A_h^T g A_w        (the transpose of a linear map carries the gradient back)
    The global pool (output 1x1) is a plain mean, and its gradient g / (H*W) everywhere.
    """

    def __init__(self, output_size: tuple[int, int]):
        self.output_size = output_size

    def forward(self, x):
        *lead, h, w = x.shape
        h_out, w_out = self.output_size
        self.x_shape = x.shape
        if (h_out, w_out) == (1, 1):
            return x.mean(axis=(-2, -1), keepdims=True)
        self.a_h, self.a_w = _averaging_matrix(h, h_out, x.dtype), _averaging_matrix(w, w_out,
                                                                                      x.dtype)
        t = x.reshape(-1, w) @ self.a_w.T                            # (B*H, W_out), B = N*C
        t = t.reshape(-1, h, w_out).swapaxes(1, 2).reshape(-1, h)   # (B*W_out, H)
        y = (t @ self.a_h.T).reshape(-1, w_out, h_out).swapaxes(1, 2)  # (B, H_out, W_out)
        return np.ascontiguousarray(y).reshape(*lead, h_out, w_out)

    def backward(self, grad_y):
        *lead, h, w = self.x_shape
        h_out, w_out = self.output_size
        if (h_out, w_out) == (1, 1):
            return np.broadcast_to(grad_y / (h * w), self.x_shape).copy()
        g = grad_y.reshape(-1, h_out, w_out).swapaxes(1, 2).reshape(-1, h_out)  # (B*W_out, H_out)
        t = (g @ self.a_h).reshape(-1, w_out, h).swapaxes(1, 2)     # (B, H, W_out)
        grad_x = t.reshape(-1, w_out) @ self.a_w                     # (B*H, W)
        return grad_x.reshape(self.x_shape)


class AdaptiveMaxPool2dFn(Function):
    """Max over PyTorch's adaptive bins (see :func:`adaptive_bins`), one vectorised max per bin.

    Ties go to the first maximum in row-major window order; indices are flat h*W + w as in
    max_pool2d. Backward: each output's gradient goes to its arg-max input (bins may overlap when
    the sizes do not divide, so the contributions are summed with a bincount).
    """

    def __init__(self, output_size: tuple[int, int], return_indices: bool):
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        *lead, h, w = x.shape
        h_out, w_out = self.output_size
        planes = x.reshape(-1, h, w)                                 # (B, H, W), B = N*C
        y = np.empty((planes.shape[0], h_out, w_out), dtype=x.dtype)
        indices = np.empty(y.shape, dtype=np.int64)
        (h_start, h_end), (w_start, w_end) = adaptive_bins(h, h_out), adaptive_bins(w, w_out)
        for p, q in product(range(h_out), range(w_out)):
            window = planes[:, h_start[p]:h_end[p], w_start[q]:w_end[q]]
            flat = window.reshape(window.shape[0], -1)               # (B, bin_h*bin_w)
            best = flat.argmax(axis=1)                               # first max (NaN counts as max)
            y[:, p, q] = flat[np.arange(flat.shape[0]), best]
            row, col = np.divmod(best, window.shape[2])
            indices[:, p, q] = (h_start[p] + row) * w + w_start[q] + col
        self.indices, self.x_shape = indices, x.shape
        y = y.reshape(*lead, h_out, w_out)
        if self.return_indices:
            return y, indices.reshape(y.shape)
        return y

    def backward(self, grad_y, grad_indices=None):
        *lead, h, w = self.x_shape
        planes = self.indices.shape[0]
        flat = self.indices + (np.arange(planes) * (h * w))[:, None, None]  # index into x.ravel()
        grad_x = np.bincount(flat.ravel(), weights=grad_y.ravel(), minlength=planes * h * w)
        return grad_x.astype(grad_y.dtype, copy=False).reshape(self.x_shape)


# ----------------------------------------------------------------------------- argument checks


def _size(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _pool_pair(value: Any, message: str) -> tuple[int, int]:
    """int or 1/2-element tuple/list of ints -> (h, w); otherwise PyTorch's RuntimeError."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, tuple | list) and len(value) in (1, 2) and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[-1]))
    raise RuntimeError(message)


def _check_pool_input(input: Any, op: str) -> None:
    check_tensor(input, "input", op)
    shape = tuple(input.shape)
    if len(shape) not in (3, 4) or 0 in shape[-3:]:
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size "
                           f"for input, but got:{_size(shape)}")


def _check_window(op: str, input: Any, kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int], dilation: tuple[int, int], ceil_mode: bool) -> None:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {sh} dW: {sw}")
    if dh <= 0 or dw <= 0:
        raise RuntimeError("dilation should be greater than zero, but got dilationH: "
                           f"{dh} dilationW: {dw}")
    if ph < 0 or pw < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {ph if ph < 0 else pw}")
    for p, k, d in ((ph, kh, dh), (pw, kw, dw)):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError("pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    if ph > kh // 2 or pw > kw // 2:  # PyTorch also bounds the pad by the undilated kernel
        raise RuntimeError("pad should be smaller than or equal to half of kernel size, but got "
                           f"padW = {pw}, padH = {ph}, kW = {kw}, kH = {kh}")
    c, h, w = input.shape[-3:]
    h_out = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    w_out = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    if h_out < 1 or w_out < 1:
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                           f"({c}x{h_out}x{w_out}). Output size is too small")


def _window_args(op: str, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any = 1) -> tuple[tuple[int, int], ...]:
    kernel = _pool_pair(kernel_size, f"{op}: kernel_size must either be a single int, or a tuple "
                                     "of two ints")
    if stride is None or (isinstance(stride, tuple | list) and len(stride) == 0):
        stride = kernel
    stride = _pool_pair(stride, f"{op}: stride must either be omitted, a single int, or a tuple "
                                "of two ints")
    padding = _pool_pair(padding, f"{op}: padding must either be a single int, or a tuple of two "
                                  "ints")
    dilation = _pool_pair(dilation, f"{op}: dilation must be either a single int, or a tuple of "
                                    "two ints")
    return kernel, stride, padding, dilation


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
        return_indices: also return the flat index h*W + w of each maximum in its input plane.

    Shape:
        H_out = (H + 2*pH - dH*(kH - 1) - 1) / sH + 1, floored (or ceiled), W_out likewise.

    Math: :class:`MaxPool2dFn`, docs/derivations/pooling.md.
    """
    _check_pool_input(input, "max_pool2d")
    kernel, stride, padding, dilation = _window_args("max_pool2d", kernel_size, stride, padding,
                                                     dilation)
    _check_window("max_pool2d", input, kernel, stride, padding, dilation, ceil_mode)
    return MaxPool2dFn(kernel, stride, padding, dilation, bool(ceil_mode),
                       bool(return_indices))(input)


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

    Math: :class:`AvgPool2dFn`, docs/derivations/pooling.md.
    """
    _check_pool_input(input, "avg_pool2d")
    kernel, stride, padding, _ = _window_args("avg_pool2d", kernel_size, stride, padding)
    if divisor_override is not None:
        if not _is_int(divisor_override):
            raise TypeError("avg_pool2d(): argument 'divisor_override' must be int, not "
                            f"{type(divisor_override).__name__}")
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
        divisor_override = int(divisor_override)
    _check_window("avg_pool2d", input, kernel, stride, padding, (1, 1), ceil_mode)
    return AvgPool2dFn(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                       divisor_override)(input)


def _adaptive_output_size(op: str, input: Any, output_size: Any) -> tuple[int, int]:
    check_tensor(input, "input", op)
    shape = tuple(input.shape)
    if len(shape) not in (3, 4):
        sep = ": " if op == "adaptive_max_pool2d" else " "
        raise RuntimeError(f"{op}(): Expected 3D or 4D tensor, but got{sep}{_size(shape)}")
    for dim in (len(shape) - 2, len(shape) - 1):
        if shape[dim] == 0:
            raise RuntimeError(
                f"{op}(): Expected input to have non-zero size for non-batch dimensions, but "
                f"input has sizes {_size(shape)} with dimension {dim} being empty"
            )
    if _is_int(output_size):
        sizes = [int(output_size)] * 2
    elif isinstance(output_size, tuple | list) and len(output_size) == 2 and all(
        s is None or _is_int(s) for s in output_size
    ):
        sizes = [shape[-2 + k] if s is None else int(s) for k, s in enumerate(output_size)]
    else:
        raise RuntimeError(f"{op}: output_size must be 2")
    if min(sizes) < 0:
        raise RuntimeError(f"{op}: elements of output_size must be greater than or equal to 0 but "
                           f"received {{{sizes[0]}, {sizes[1]}}}")
    return sizes[0], sizes[1]


def adaptive_avg_pool2d(input: Any, output_size: Any):
    """Average pooling to a fixed output size (int, (h, w), None = keep that input size).

    Output cell i averages input rows floor(i*H/H_out) .. ceil((i+1)*H/H_out) - 1 (columns
    likewise), as in PyTorch; ``output_size=1`` is global average pooling.
    """
    size = _adaptive_output_size("adaptive_avg_pool2d", input, output_size)
    return AdaptiveAvgPool2dFn(size)(input)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False):
    """Max pooling to a fixed output size, with PyTorch's bins (see :func:`adaptive_avg_pool2d`)."""
    size = _adaptive_output_size("adaptive_max_pool2d", input, output_size)
    return AdaptiveMaxPool2dFn(size, bool(return_indices))(input)
