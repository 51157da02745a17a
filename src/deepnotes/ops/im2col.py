"""im2col / col2im: a convolution as one matrix product (notes 003 "卷积的矩阵运算", notes 004 Q37).

``im2col`` copies every receptive field (patch) of the input into a column of a matrix, so that a
convolution becomes ``weight_rows @ cols``; ``col2im`` is its adjoint: it adds each column back onto
the input positions it was read from (overlapping patches add up), which is exactly what the
backward pass of a convolution needs. Derivation: docs/derivations/conv2d.md.

Layout of ``cols`` (chosen for speed, see below)::

    cols[(c, i, j), (n, oh, ow)] = x_padded[n, c, oh*sH + i*dH, ow*sW + j*dW]
    shape (C*kH*kW, N*L), L = H_out*W_out, row index c*kH*kW + i*kW + j, column n*L + oh*W_out + ow

Rows are ordered like ``weight.reshape(C_out, C*kH*kW)``, so the forward pass is ONE 2-D GEMM
``(C_out, K) @ (K, N*L)`` with contiguous operands (with groups, the rows split into G contiguous
blocks). Putting the batch in the columns (rather than one (K, L) matrix per sample) keeps the
GEMM large even when L is small (deep layers, LeNet), and the channel-first row order makes every
kernel offset ``cols[:, i, j]`` one contiguous (C, N, H_out, W_out) block, which is what ``col2im``
reads. Measured with NumPy/OpenBLAS float32 at N=32, C 64->64, 32x32: this layout is about 10 %
faster end to end than per-sample (N, K, L) columns and 3x faster to build than (N*L, K) rows.

Padding may be an int, a pair (pH, pW), or a pair of pairs ((top, bottom), (left, right)); the
asymmetric form is what ``padding='same'`` with an even kernel needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import backend

Pads = tuple[tuple[int, int], tuple[int, int]]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    a, b = value
    return int(a), int(b)


def normalize_padding(padding: Any) -> Pads:
    """int | (pH, pW) | ((top, bottom), (left, right))  ->  ((top, bottom), (left, right))."""
    if isinstance(padding, int | np.integer):
        p = int(padding)
        return (p, p), (p, p)
    ph, pw = padding
    return _pair(ph), _pair(pw)


def conv_output_size(
    input_size: tuple[int, int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> tuple[int, int]:
    """Spatial output size of a convolution (notes 000 Q3, with dilation):

        H_out = floor((H + pad_top + pad_bottom - dH*(kH - 1) - 1) / sH) + 1      (W likewise)

    A dilated kernel spans dH*(kH - 1) + 1 input rows; the numerator counts the positions where it
    fits, then every sH-th one is taken.
    """
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = normalize_padding(padding)
    h, w = input_size
    h_out = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return h_out, w_out


def pad2d(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` with ``value``; ``x`` itself when there is no padding."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    xp = backend.array_module(x)
    h, w = x.shape[-2:]
    out = xp.full(x.shape[:-2] + (h + pt + pb, w + pl + pr), value, dtype=x.dtype)
    out[..., pt:pt + h, pl:pl + w] = x
    return out


def patches(
    x_padded: np.ndarray, kernel_size: Any, stride: Any, dilation: Any, out_size: tuple[int, int]
) -> np.ndarray:
    """A zero-copy view (N, C, kH, kW, H_out, W_out) of the patches of an already padded input.

    ``view[n, c, i, j, oh, ow] = x_padded[n, c, oh*sH + i*dH, ow*sW + j*dW]``: moving one kernel row
    steps dH input rows, moving one output row steps sH input rows, so both axes reuse the input's
    row stride, scaled.
    """
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(stride), _pair(dilation)
    n, c = x_padded.shape[:2]
    s_n, s_c, s_h, s_w = x_padded.strides
    return as_strided(
        x_padded,
        shape=(n, c, kh, kw) + tuple(out_size),
        strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
        writeable=False,
    )


def im2col(
    x: np.ndarray, kernel_size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> np.ndarray:
    """Copy the patches of NCHW ``x`` into the columns of a (C*kH*kW, N*L) matrix (see module doc).

    Args:
        x: input array (N, C, H, W).
        kernel_size, stride, dilation: int or (h, w) pair.
        padding: int, (pH, pW) or ((top, bottom), (left, right)); zeros are added.

    Returns:
        ``cols`` of shape (C*kH*kW, N*H_out*W_out), C-contiguous.
    """
    n, c, h, w = x.shape
    pads = normalize_padding(padding)
    h_out, w_out = conv_output_size((h, w), kernel_size, stride, pads, dilation)
    view = patches(pad2d(x, pads), kernel_size, stride, dilation, (h_out, w_out))
    # (N, C, kH, kW, H_out, W_out) -> (C, kH, kW, N, H_out, W_out): reshape makes the one copy.
    return view.transpose(1, 2, 3, 0, 4, 5).reshape(-1, n * h_out * w_out)  # (C*kH*kW, N*L)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column entry back onto the pixel it was read from.

    For each of the kH*kW kernel offsets (i, j), the block ``cols[(:, i, j), :]`` holds one value
    per (channel, sample, output pixel); it is added to the strided slice of the padded input that
    offset i, j read, ``x_padded[:, :, i*dH + sH*oh, j*dW + sW*ow]``: kH*kW vectorised adds, no
    loop over pixels. Pixels covered by several patches receive the sum. The padding border is cut
    off at the end (its gradient is discarded).

    Args:
        cols: (C*kH*kW, N*L) in the layout of :func:`im2col`.
        x_shape: (N, C, H, W) of the input that ``im2col`` was applied to.

    Returns:
        Array of ``x_shape`` (C-contiguous).
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = normalize_padding(padding)
    h_out, w_out = conv_output_size((h, w), (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (dh, dw))
    xp = backend.array_module(cols)
    blocks = cols.reshape(c, kh, kw, n, h_out, w_out)                  # (C, kH, kW, N, Ho, Wo)
    # Accumulate channel-first, (C, N, H_pad, W_pad), so that each added block is contiguous.
    grad = xp.zeros((c, n, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (h_out - 1) + 1, sh)
        for j in range(kw):
            grad[:, :, rows, j * dw:j * dw + sw * (w_out - 1) + 1:sw] += blocks[:, i, j]
    return xp.ascontiguousarray(grad[:, :, pt:pt + h, pl:pl + w].transpose(1, 0, 2, 3))
