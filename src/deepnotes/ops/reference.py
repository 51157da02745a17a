"""Naive-loop versions of convolution, im2col and pooling: the definitions, written out.

Slow on purpose: one Python loop per index, nothing vectorised but the innermost window, so that
each line reads like the formula. The tests check the fast ops in ``conv.py``, ``im2col.py`` and
``pool.py`` against these (and against PyTorch); the docs quote them. Forward passes only, on raw
NCHW ndarrays (``im2col_nd``: any number of spatial axes).
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _zero_pad(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
           dilation: int | tuple[int, int] = 1, groups: int = 1) -> np.ndarray:
    """y[n, o, p, q] = b[o] + sum_{c,i,j} w[o,c,i,j] x_pad[n, g*C_g + c, p*sH + i*dH, q*sW + j*dW]

    where g = o // (C_out / groups) is the group of output channel o and C_g = C_in / groups.
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c_in, h, w = x.shape
    c_out, c_group, kh, kw = weight.shape
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x_pad = _zero_pad(x, ph, pw)
    y = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    out_per_group = c_out // groups
    for b in range(n):
        for o in range(c_out):
            first = (o // out_per_group) * c_group              # first input channel of o's group
            for p in range(h_out):
                for q in range(w_out):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(c_group):
                        for i in range(kh):
                            for j in range(kw):
                                total += (weight[o, c, i, j]
                                          * x_pad[b, first + c, p * sh + i * dh, q * sw + j * dw])
                    y[b, o, p, q] = total
    return y


def im2col(x: np.ndarray, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] = 0,
           dilation: int | tuple[int, int] = 1) -> np.ndarray:
    """cols[(c, i, j), (n, p, q)] = x_pad[n, c, p*sH + i*dH, q*sW + j*dW], shape (C*kH*kW, N*L)."""
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    x_pad = _zero_pad(x, ph, pw)
    cols = np.zeros((c * kh * kw, n * h_out * w_out), dtype=x.dtype)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ch * kh + i) * kw + j
                for b in range(n):
                    for p in range(h_out):
                        for q in range(w_out):
                            column = (b * h_out + p) * w_out + q
                            cols[row, column] = x_pad[b, ch, p * sh + i * dh, q * sw + j * dw]
    return cols


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Number of windows; in ceil_mode the last one must start inside the input or left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
               dilation: int | tuple[int, int] = 1,
               ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """y[n, c, p, q] = max over the window of x, and the flat index h*W + w of its first maximum.

    The window of output (p, q) reads rows p*sH - pH + i*dH and columns q*sW - pW + j*dW; positions
    outside the input (padding) are skipped, which is the same as padding with -inf.
    """
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(kernel_size if stride is None else stride)
    n, c, h, w = x.shape
    h_out = _pool_size(h, kh, sh, ph, dh, ceil_mode)
    w_out = _pool_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    indices = np.zeros((n, c, h_out, w_out), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for p in range(h_out):
                for q in range(w_out):
                    best, best_index = -np.inf, -1
                    for i in range(kh):
                        for j in range(kw):
                            row, col = p * sh - ph + i * dh, q * sw - pw + j * dw
                            if 0 <= row < h and 0 <= col < w and x[b, ch, row, col] > best:
                                best, best_index = x[b, ch, row, col], row * w + col
                    y[b, ch, p, q], indices[b, ch, p, q] = best, best_index
    return y, indices


def avg_pool2d(x: np.ndarray, kernel_size: int | tuple[int, int],
               stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> np.ndarray:
    """y[n, c, p, q] = (sum of the real inputs in the window) / divisor.

    divisor = divisor_override, else the window size cut at the padded border (count_include_pad),
    else the number of real inputs in the window.
    """
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(kernel_size if stride is None else stride)
    n, c, h, w = x.shape
    h_out = _pool_size(h, kh, sh, ph, 1, ceil_mode)
    w_out = _pool_size(w, kw, sw, pw, 1, ceil_mode)
    y = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            for p in range(h_out):
                for q in range(w_out):
                    top, left = p * sh - ph, q * sw - pw
                    bottom, right = min(top + kh, h + ph), min(left + kw, w + pw)
                    total, count = 0.0, 0
                    for row in range(max(top, 0), min(bottom, h)):
                        for col in range(max(left, 0), min(right, w)):
                            total += x[b, ch, row, col]
                            count += 1
                    if divisor_override is not None:
                        divisor = divisor_override
                    elif count_include_pad:
                        divisor = (bottom - top) * (right - left)
                    else:
                        divisor = count
                    y[b, ch, p, q] = total / divisor
    return y


def adaptive_avg_pool2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Output (p, q) averages rows floor(p*H/H_out) .. ceil((p+1)*H/H_out) - 1, columns likewise."""
    n, c, h, w = x.shape
    h_out, w_out = output_size
    y = np.zeros((n, c, h_out, w_out), dtype=x.dtype)
    for p in range(h_out):
        top, bottom = (p * h) // h_out, -((-(p + 1) * h) // h_out)
        for q in range(w_out):
            left, right = (q * w) // w_out, -((-(q + 1) * w) // w_out)
            y[:, :, p, q] = x[:, :, top:bottom, left:right].mean(axis=(2, 3))
    return y


def im2col_nd(x: np.ndarray, kernel_size: tuple[int, ...], stride: tuple[int, ...],
              padding: tuple[int, ...], dilation: tuple[int, ...]) -> np.ndarray:
    """cols[(c, *i), (n, *p)] = x_pad[n, c, *(p*s + i*d)] for any number of spatial axes."""
    n, c, *sizes = x.shape
    out = [(m + 2 * p - d * (k - 1) - 1) // s + 1
           for m, k, s, p, d in zip(sizes, kernel_size, stride, padding, dilation)]
    x_pad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    cols = np.zeros((c * math.prod(kernel_size), n * math.prod(out)), dtype=x.dtype)
    for row, (ch, *offset) in enumerate(product(range(c), *(range(k) for k in kernel_size))):
        for column, (b, *position) in enumerate(product(range(n), *(range(m) for m in out))):
            where = tuple(q * s + o * d for q, o, s, d in zip(position, offset, stride, dilation))
            cols[row, column] = x_pad[(b, ch) + where]
    return cols


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                     stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                     output_padding: int | tuple[int, int] = 0, groups: int = 1,
                     dilation: int | tuple[int, int] = 1) -> np.ndarray:
    """The scatter definition: input pixel (h, w) adds x[n, c, h, w] * w[c, o, i, j] to output
    pixel (h*sH - pH + i*dH, w*sW - pW + j*dW) of every output channel o of c's group.

    weight (C_in, C_out/groups, kH, kW); H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + opH + 1.
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    (oph, opw), (dh, dw) = _pair(output_padding), _pair(dilation)
    n, c_in, h, w = x.shape
    _, c_group, kh, kw = weight.shape
    h_out = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    w_out = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n, c_group * groups, h_out, w_out), dtype=x.dtype)
    in_per_group = c_in // groups
    for b in range(n):
        for c in range(c_in):
            first = (c // in_per_group) * c_group          # first output channel of c's group
            for p in range(h):
                for q in range(w):
                    for o in range(c_group):
                        for i in range(kh):
                            for j in range(kw):
                                row, col = p * sh - ph + i * dh, q * sw - pw + j * dw
                                if 0 <= row < h_out and 0 <= col < w_out:
                                    y[b, first + o, row, col] += x[b, c, p, q] * weight[c, o, i, j]
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def locally_connected2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                        kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                        padding: int | tuple[int, int] = 0) -> np.ndarray:
    """y[n, o, p, q] = b[o, p, q] + sum_{c,i,j} W[p*W_out + q, o, (c, i, j)] x_pad[n, c, p*sH + i,
    q*sW + j]: a convolution with a separate filter at every output position."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    n, c_in, h, w = x.shape
    h_out = (h + 2 * ph - kh) // sh + 1
    w_out = (w + 2 * pw - kw) // sw + 1
    c_out = weight.shape[1]
    x_pad = _zero_pad(x, ph, pw)
    y = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    for b in range(n):
        for o in range(c_out):
            for p in range(h_out):
                for q in range(w_out):
                    filters = weight[p * w_out + q, o].reshape(c_in, kh, kw)   # this position's
                    total = 0.0 if bias is None else bias[o, p, q]
                    for c in range(c_in):
                        for i in range(kh):
                            for j in range(kw):
                                total += filters[c, i, j] * x_pad[b, c, p * sh + i, q * sw + j]
                    y[b, o, p, q] = total
    return y
