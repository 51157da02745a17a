"""im2col / col2im: a convolution as one matrix product (notes 003 "卷积的矩阵运算", notes 004 Q37).

``im2col`` copies every receptive field (patch) of the input into a column of a matrix, so that a
convolution becomes ``weight_rows @ cols``; ``col2im`` is its adjoint: it adds each column back onto
the input positions it was read from (overlapping patches add up), which is exactly what the
backward pass of a convolution needs. Derivation: docs/derivations/conv2d.md.

The code works for any number d of spatial dimensions (conv1d: d = 1, conv2d: 2, conv3d: 3); the
2-D case reads::

    cols[(c, i, j), (n, oh, ow)] = x_padded[n, c, oh*sH + i*dH, ow*sW + j*dW]
    shape (C*kH*kW, N*L), L = H_out*W_out, row index c*kH*kW + i*kW + j, column n*L + oh*W_out + ow

and in d dimensions the kernel offset (i, j) becomes a d-tuple and L the product of the d output
sizes. Rows are ordered like ``weight.reshape(C_out, C*kH*kW)``, so the forward pass is ONE 2-D
GEMM ``(C_out, K) @ (K, N*L)`` with contiguous operands (with groups, the rows split into G
contiguous blocks). Putting the batch in the columns (rather than one (K, L) matrix per sample)
keeps the GEMM large even when L is small (deep layers, LeNet), and the channel-first row order
makes every kernel offset ``cols[:, i, j]`` one contiguous (C, N, H_out, W_out) block, which is what
``col2im`` reads. Measured with NumPy/OpenBLAS float32 at N=32, C 64->64, 32x32: this layout is
about 10 % faster end to end than per-sample (N, K, L) columns and 3x faster to build than (N*L, K)
rows. The general d-dimensional code costs nothing over a 2-D-only version (the loops run over
kernel offsets, never over pixels; ``benchmarks/bench.py`` conv2d ratio unchanged).

Padding may be an int, one int per spatial axis, or one (before, after) pair per axis; the
asymmetric form is what ``padding='same'`` with an even kernel needs.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import backend

Pads = tuple[tuple[int, int], ...]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _ntuple(value: Any, n: int) -> tuple[int, ...]:
    """int -> (int,)*n; a sequence is returned as a tuple of ints (its length is the caller's)."""
    if type(value) is tuple:             # the common case, already normalised by the wrappers
        return value
    if _is_int(value):
        return (int(value),) * n
    return tuple(int(v) for v in value)


def _pair(value: Any) -> tuple[int, int]:
    if _is_int(value):
        return int(value), int(value)
    a, b = value
    return int(a), int(b)


def normalize_padding(padding: Any, ndim: int = 2) -> Pads:
    """int | (p_1, ..., p_d) | ((lo_1, hi_1), ..., (lo_d, hi_d))  ->  ((lo_1, hi_1), ...).

    An int applies to ``ndim`` spatial axes; a sequence gives one entry per axis (its length wins).
    """
    if type(padding) is tuple and padding and type(padding[0]) is tuple:
        return padding                   # already ((lo, hi), ...)
    if _is_int(padding):
        p = int(padding)
        return ((p, p),) * ndim
    return tuple(_pair(p) for p in padding)


def conv_output_size(
    input_size: tuple[int, ...],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> tuple[int, ...]:
    """Spatial output size of a convolution (notes 000 Q3, with dilation), per axis:

        out = floor((size + pad_lo + pad_hi - d*(k - 1) - 1) / s) + 1

    A dilated kernel spans d*(k - 1) + 1 input positions; the numerator counts the positions where
    it fits, then every s-th one is taken. ``input_size`` has one entry per spatial axis.
    """
    nd = len(input_size)
    kernel, stride, dilation = _ntuple(kernel_size, nd), _ntuple(stride, nd), _ntuple(dilation, nd)
    pads = normalize_padding(padding, nd)
    return tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                 for size, k, s, (lo, hi), d in zip(input_size, kernel, stride, pads, dilation))


def pad_spatial(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last len(pads) axes of ``x`` with ``value``; ``x`` itself when there is no padding.

    Negative amounts are not supported here (use a slice).
    """
    if not any(lo or hi for lo, hi in pads):
        return x
    xp = backend.array_module(x)
    nd = len(pads)
    lead, sizes = x.shape[:-nd], x.shape[-nd:]
    out = xp.full(lead + tuple(s + lo + hi for s, (lo, hi) in zip(sizes, pads)), value,
                  dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(sizes, pads))] = x
    return out


def pad2d(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` (the 2-D case of :func:`pad_spatial`)."""
    return pad_spatial(x, pads, value)


def patches(
    x_padded: np.ndarray, kernel_size: Any, stride: Any, dilation: Any, out_size: tuple[int, ...]
) -> np.ndarray:
    """A zero-copy view (N, C, k_1..k_d, out_1..out_d) of the patches of an already padded input.

    In 2-D, ``view[n, c, i, j, oh, ow] = x_padded[n, c, oh*sH + i*dH, ow*sW + j*dW]``: moving one
    kernel row steps dH input rows, moving one output row steps sH input rows, so both axes reuse
    the input's row stride, scaled. Every spatial axis works the same way.
    """
    nd = x_padded.ndim - 2
    kernel, stride, dilation = _ntuple(kernel_size, nd), _ntuple(stride, nd), _ntuple(dilation, nd)
    n, c = x_padded.shape[:2]
    s_n, s_c, *s_sp = x_padded.strides
    return as_strided(
        x_padded,
        shape=(n, c) + kernel + tuple(out_size),
        strides=(s_n, s_c) + tuple(s * d for s, d in zip(s_sp, dilation))
        + tuple(s * st for s, st in zip(s_sp, stride)),
        writeable=False,
    )


def im2col(
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    out_size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Copy the patches of ``x`` (N, C, *spatial) into the columns of a (C*prod(k), N*L) matrix.

    Args:
        x: input array (N, C, s_1, ..., s_d), d >= 1 spatial axes (NCHW for d = 2).
        kernel_size, stride, dilation: int or one int per spatial axis.
        padding: int, one int per axis, or one (before, after) pair per axis; zeros are added.
        out_size: the number of windows per axis (default: all that fit, :func:`conv_output_size`);
            a smaller count keeps the first windows only (the transposed convolution needs that
            when output_padding >= stride).

    Returns:
        ``cols`` of shape (C*prod(k), N*L), L = prod(out_size), C-contiguous (see module doc).
    """
    nd = x.ndim - 2
    n = x.shape[0]
    pads = normalize_padding(padding, nd)
    if out_size is None:
        out_size = conv_output_size(x.shape[2:], kernel_size, stride, pads, dilation)
    view = patches(pad_spatial(x, pads), kernel_size, stride, dilation, out_size)
    # (N, C, *k, *out) -> (C, *k, N, *out): the reshape makes the one copy.
    order = (1,) + tuple(range(2, 2 + nd)) + (0,) + tuple(range(2 + nd, 2 + 2 * nd))
    rows = x.shape[1] * math.prod(view.shape[2:2 + nd])  # C*prod(k), explicit: N*L may be 0
    return view.transpose(order).reshape(rows, n * math.prod(out_size))  # (C*prod(k), N*L)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    out_size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column entry back onto the pixel it was read from.

    For each of the prod(k) kernel offsets (i, j) (in 2-D), the block ``cols[(:, i, j), :]`` holds
    one value per (channel, sample, output pixel); it is added to the strided slice of the padded
    input that offset read, ``x_padded[:, :, i*dH + sH*oh, j*dW + sW*ow]``: prod(k) vectorised
    adds, no loop over pixels. Pixels covered by several patches receive the sum. The padding
    border is cut off at the end (its gradient is discarded).

    Args:
        cols: (C*prod(k), N*L) in the layout of :func:`im2col`.
        x_shape: (N, C, *spatial) of the input that ``im2col`` was applied to.
        out_size: as in :func:`im2col`.

    Returns:
        Array of ``x_shape`` (C-contiguous).
    """
    n, c, *sizes = x_shape
    nd = len(sizes)
    kernel, stride, dilation = _ntuple(kernel_size, nd), _ntuple(stride, nd), _ntuple(dilation, nd)
    pads = normalize_padding(padding, nd)
    if out_size is None:
        out_size = conv_output_size(tuple(sizes), kernel, stride, pads, dilation)
    xp = backend.array_module(cols)
    blocks = cols.reshape((c,) + kernel + (n,) + tuple(out_size))    # (C, *k, N, *out)
    blocks = blocks.transpose(tuple(range(1, nd + 1)) + (0,) + tuple(range(nd + 1, 2 * nd + 2)))
    # blocks: (*k, C, N, *out), a view: blocks[offset] is one contiguous (C, N, *out) block.
    # Accumulate channel-first, (C, N, *padded), so that each added block is contiguous.
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(sizes, pads))
    grad = xp.zeros((c, n) + padded, dtype=cols.dtype)
    # The input slice that kernel tap o of an axis reads: o*d, o*d + s, ..., one per output.
    taps = [[slice(o * d, o * d + s * (m - 1) + 1, s) for o in range(k)]
            for k, d, s, m in zip(kernel, dilation, stride, out_size)]
    everything = (slice(None), slice(None))
    for offset, window in zip(product(*(range(k) for k in kernel)), product(*taps)):
        grad[everything + window] += blocks[offset]
    inner = tuple(slice(lo, lo + s) for s, (lo, _) in zip(sizes, pads))
    order = (1, 0) + tuple(range(2, 2 + nd))
    return xp.ascontiguousarray(grad[(slice(None), slice(None)) + inner].transpose(order))
