"""Convolutions (cross-correlation, as in every framework) by im2col + GEMM, in 1, 2 or 3-D.

notes 004 Q37: im2col turns the input into a (C_in*k*k, H_out*W_out) matrix and the kernel into a
(C_out, C_in*k*k) matrix, so the forward pass is y = W X + b, and the backward pass is that of a
fully connected layer: dL/dW = dL/dy X^T, dL/dX = W^T dL/dy followed by col2im
(notes 003 "卷积的矩阵运算"). Grouped, depthwise and dilated convolutions (notes 001) are the
same GEMM on blocks of rows. One class, :class:`ConvNdFn`, does conv1d, conv2d and conv3d: im2col
and col2im work for any number of spatial axes.

The transposed convolution (notes 001 "如何理解转置卷积", notes 004 Q38) swaps the two passes:
its forward pass is the backward-data pass of a convolution (cols = W^T x, y = col2im(cols)) and
its backward pass is a forward convolution. :func:`conv_transpose2d_zero_insert` builds the same
map the second way the note describes (insert zeros, pad, convolve with the flipped kernel).

A locally connected layer (:class:`LocallyConnected2dFn`, notes 002 Q7 on face papers) is the same
im2col with a *different* weight matrix at every output position: one batched matmul.

Full derivations: docs/derivations/conv2d.md, docs/derivations/conv_transpose.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import Function
from ..threads import map_chunks
from . import shape
from ._util import check_tensor
from .im2col import _ntuple, col2im, conv_output_size, im2col, normalize_padding

# im2col columns up to this size are built for the whole batch in one piece and kept from forward
# for the weight gradient (LeNet's and the deep, small layers of a ResNet: one large GEMM, no
# recomputation). Larger ones are built in chunks of the batch of about COLUMNS_CHUNK_BYTES each,
# in forward and again in backward, and never kept: a 3x3 convolution's columns are 9x its input,
# and keeping those of every large layer made the resnet_step benchmark add 1.9x PyTorch's peak
# memory (docs/performance.md). A chunk's columns are still in cache when its GEMM reads them, and
# the chunks may run on the BLAS threads (deepnotes.threads.map_chunks says when).
COLUMNS_KEPT_BYTES = 16 * 2**20
COLUMNS_CHUNK_BYTES = 4 * 2**20


def _channels_first(nd: int) -> tuple[int, ...]:
    """The axis order that swaps the first two axes of a (2 + nd)-axis array: (1, 0, 2, 3, ...)."""
    return (1, 0) + tuple(range(2, 2 + nd))


def batch_chunks(n: int, bytes_per_sample: int) -> list[tuple[int, int]]:
    """The (start, stop) chunks of a batch of ``n`` whose im2col columns take ``bytes_per_sample``
    each: the whole batch when its columns fit ``COLUMNS_KEPT_BYTES``, else chunks of
    ``COLUMNS_CHUNK_BYTES`` (at least one sample). Fixed by the shapes alone, so the numbers do
    not depend on the thread count."""
    if n * bytes_per_sample <= COLUMNS_KEPT_BYTES:
        return [(0, n)]
    step = max(1, COLUMNS_CHUNK_BYTES // bytes_per_sample)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


class ConvNdFn(Function):
    """d-dimensional cross-correlation (d = 1, 2, 3) as one GEMM per group over im2col columns.

    x (N, C_in, *S), weight (C_out, C_in/G, *k), bias (C_out,) -> y (N, C_out, *S_out); in 2-D
      y[n, o, p, q] = b[o] + sum_{c,i,j} w[o,c,i,j] x_pad[n, g*C_in/G + c, p*sH + i*dH, q*sW + j*dW]
    where g = o // (C_out/G) and H_out = (H + pad_top + pad_bottom - dH*(kH - 1) - 1) // sH + 1.
    Other d: one index per spatial axis, same formula on each.

    Forward, with L = prod(S_out), K = C_in/G*prod(k) (notes 004 Q37):
        cols = im2col(x)                    (G, K, N*L)   (rows of group g are a contiguous block)
        y    = weight_rows @ cols + b       weight_rows (G, C_out/G, K)  ->  (G, C_out/G, N*L)
    Backward, with g = dL/dy as rows (G, C_out/G, N*L); y is linear in weight_rows and in cols:
        dweight_rows = g @ cols^T                         (G, C_out/G, K)
        dcols        = weight_rows^T @ g,  dx = col2im(dcols)   (overlapping patches add up)
        dbias        = g summed over N and L
    With stride 1 (and groups 1) dx is computed as the equivalent convolution instead (notes 004
    Q38: the backward-data pass is a transposed convolution, and with stride 1 that is a plain
    one): dx = conv(g padded by d*(k - 1) - pad, weight flipped in space with C_in and C_out
    swapped), i.e. an im2col of g and one GEMM; no col2im. Same numbers, 10-25 % faster (an im2col
    copy beats prod(k) strided adds, most of all on small images) when its columns are no larger
    than col2im's (:meth:`_dx_by_convolution`).
    Every sample's output and dx depend on that sample alone, and dweight is a sum over samples,
    so all of this can run on chunks of the batch (:func:`batch_chunks`): dweight is then the sum
    of the chunks' products, in chunk order. Small convolutions are one chunk, whose columns are
    kept from forward for dweight; large ones are chunked and rebuild each chunk's columns from x
    in backward (PyTorch too keeps only x).
    grad_x is skipped when x needs no gradient (the first layer).
    Derivation: docs/derivations/conv2d.md.
    Torch: torch.nn.functional.conv1d / conv2d / conv3d.
    """

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.stride, self.dilation = stride, dilation
        self.padding = padding           # ((lo, hi), ...) per spatial axis, or an int (symmetric)
        self.groups = groups

    def _columns(self, x):
        """im2col of (a chunk of) the input, as (G, K, n*L) row blocks, one per group."""
        cols = im2col(x, self.kernel_size, self.stride, self.pads, self.dilation, self.out_size)
        return cols.reshape(self.groups, cols.shape[0] // self.groups, cols.shape[-1])

    def forward(self, x, weight, bias=None):
        nd = weight.ndim - 2
        self.unbatched = x.ndim == nd + 1
        if self.unbatched:
            x = x[None]                                    # (1, C_in, *S)
        n, c_in, *in_size = x.shape
        c_out, _, *kernel = weight.shape
        g = self.groups
        self.pads = normalize_padding(self.padding, nd)
        self.kernel_size = tuple(kernel)
        self.out_size = conv_output_size(tuple(in_size), kernel, self.stride, self.pads,
                                         self.dilation)
        bytes_per_sample = x.itemsize * c_in * math.prod(kernel) * math.prod(self.out_size)
        self.chunks = batch_chunks(n, bytes_per_sample)
        needs = self.needs_input_grad                      # () when no graph is recorded
        keep = len(needs) > 1 and needs[1] and n * bytes_per_sample <= COLUMNS_KEPT_BYTES
        weight_rows = weight.reshape(g, c_out // g, -1)               # (G, C_out/G, K)
        y = np.empty((n, c_out, *self.out_size), dtype=np.result_type(x, weight))
        bias_shape = (1, c_out) + (1,) * nd

        def forward_chunk(start, stop):
            cols = self._columns(x[start:stop])                       # (G, K, n*L)
            rows = weight_rows[0] @ cols[0] if g == 1 else weight_rows @ cols
            # rows (G, C_out/G, n*L) -> (n, C_out, *S_out), copied into y (adding the bias)
            rows = rows.reshape(c_out, stop - start, *self.out_size).transpose(
                _channels_first(nd))
            if bias is not None:
                np.add(rows, bias.reshape(bias_shape), out=y[start:stop])
            else:
                y[start:stop] = rows
            return cols if keep else None                  # keep: one chunk, the whole batch

        cols = map_chunks(forward_chunk, self.chunks)[0]
        if needs:                                          # recorded in the graph
            self.save_for_backward(cols, weight_rows, x if needs[1] and not keep else None)
            self.x_shape = x.shape
        return y[0] if self.unbatched else y

    def backward(self, grad_y):
        cols, weight_rows, x = self.saved
        if self.unbatched:
            grad_y = grad_y[None]
        c_out, nd, g = grad_y.shape[1], grad_y.ndim - 2, self.groups
        needs_x, needs_w = self.needs_input_grad[0], self.needs_input_grad[1]
        by_convolution = needs_x and g == 1 and self._dx_by_convolution(c_out)
        if by_convolution:
            flipped_rows = self._flipped_rows(weight_rows[0])
        grad_x = np.empty(self.x_shape, dtype=grad_y.dtype) if needs_x else None

        def backward_chunk(start, stop):
            chunk_grad = grad_y[start:stop]
            if needs_w or not by_convolution:           # a copy: only when a GEMM reads it
                grad_rows = chunk_grad.transpose(_channels_first(nd)).reshape(g, c_out // g, -1)
                # grad_rows: (G, C_out/G, n*L)
            partial = None
            if needs_w:
                chunk_cols = cols if cols is not None else self._columns(x[start:stop])
                # dweight_rows = g @ cols^T, computed as (cols @ g^T)^T: the same numbers, but
                # with the long n*L axis as the inner dimension of a (K x n*L) @ (n*L x C_out/G)
                # GEMM, which OpenBLAS splits well over threads; the (C_out/G x n*L) @
                # (n*L x K) form ran up to 20x slower on 2 loaded cores (docs/performance.md).
                partial = (chunk_cols[0] @ grad_rows[0].T if g == 1
                           else chunk_cols @ grad_rows.transpose(0, 2, 1))
                # partial: (K, C_out) or (G, K, C_out/G)
            if by_convolution:
                grad_x[start:stop] = self._grad_input_by_convolution(chunk_grad, flipped_rows)
            elif needs_x:
                if g == 1:
                    grad_cols = weight_rows[0].T @ grad_rows[0]                  # (K, n*L)
                else:
                    grad_cols = weight_rows.transpose(0, 2, 1) @ grad_rows       # (G, K, n*L)
                grad_x[start:stop] = col2im(
                    grad_cols.reshape(math.prod(grad_cols.shape[:-1]), grad_cols.shape[-1]),
                    (stop - start,) + self.x_shape[1:], self.kernel_size, self.stride,
                    self.pads, self.dilation, self.out_size)
            return partial

        partials = map_chunks(backward_chunk, self.chunks)
        grad_weight = grad_bias = None
        if needs_w:
            total = partials[0]
            for partial in partials[1:]:                   # in chunk order: deterministic
                total += partial
            # The transposed sum is copied into a fresh array of the weight's shape, which owns
            # its memory, so the engine can store it as .grad without another copy.
            k = weight_rows.shape[-1]
            grad_weight = np.empty((c_out, k // math.prod(self.kernel_size), *self.kernel_size),
                                   dtype=weight_rows.dtype)              # weight's shape
            if g == 1:
                grad_weight.reshape(c_out, k)[...] = total.T                      # (C_out, K)
            else:
                grad_weight.reshape(g, c_out // g, k)[...] = total.transpose(0, 2, 1)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_y.sum(axis=(0,) + tuple(range(2, 2 + nd)))     # (C_out,)
        if grad_x is not None and self.unbatched:
            grad_x = grad_x[0]
        return grad_x, grad_weight, grad_bias

    def _dx_by_convolution(self, c_out: int) -> bool:
        """Whether dx is computed as a convolution of g (else: GEMM + col2im).

        Stride 1 is needed (:meth:`_stride_one`), and the convolution's columns must not be
        larger than col2im's: they hold C_out*prod(k) rows of N*L_in entries, col2im's hold
        C_in*prod(k) rows of N*L_out, and the GEMM's FLOPs scale the same way. With 'same' padding
        and C_in = C_out (every 3x3 layer of a ResNet) the two are equal and the convolution wins
        (no strided adds); with no padding and more output than input channels (LeNet-5's
        conv 6->16 k5 on 12x12: 400 x 18432 against 150 x 8192 entries) col2im does 6x less work
        (the rule took LeNet-5's step from 1.4x to 1.0x PyTorch's time, docs/performance.md).
        """
        c_in = self.x_shape[1]
        return (self._stride_one() and c_out * math.prod(self.x_shape[2:])
                <= c_in * math.prod(self.out_size))

    def _stride_one(self) -> bool:
        """Stride 1 on every axis and no padding beyond the kernel's reach (so that the padding
        of g below is >= 0)."""
        nd = len(self.kernel_size)
        stride, dilation = _ntuple(self.stride, nd), _ntuple(self.dilation, nd)
        return all(s == 1 and max(lo, hi) <= d * (k - 1) for s, d, k, (lo, hi)
                   in zip(stride, dilation, self.kernel_size, self.pads))

    def _flipped_rows(self, weight_rows):
        """The kernel of dx's convolution as rows: w'[c, o, *i'] = w[o, c, *(k - 1 - i')],
        shape (C_in, C_out*prod(k)), rows ordered as im2col's (o, *i)."""
        nd = len(self.kernel_size)
        c_out, c_in = weight_rows.shape[0], self.x_shape[1]
        weight = weight_rows.reshape(c_out, c_in, *self.kernel_size)        # (C_out, C_in, *k)
        flipped = weight[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
        return np.ascontiguousarray(flipped.swapaxes(0, 1)).reshape(c_in, -1)

    def _grad_input_by_convolution(self, grad_y, flipped_rows):
        """dx for stride 1, groups 1: the convolution of g with the flipped, transposed kernel.

        dx[n, c, p] = sum_{o, i} g[n, o, p + pad - d*i] w[o, c, i]; substituting i' = k - 1 - i,
        this is a convolution of g padded by d*(k - 1) - pad with w'[c, o, i'] = w[o, c, k-1-i']
        (:meth:`_flipped_rows`). ``grad_y`` may be a chunk of the batch.
        """
        nd = len(self.kernel_size)
        n, (c_in, *in_size) = grad_y.shape[0], self.x_shape[1:]
        dilation = _ntuple(self.dilation, nd)
        pads = tuple((d * (k - 1) - lo, d * (k - 1) - hi)
                     for d, k, (lo, hi) in zip(dilation, self.kernel_size, self.pads))
        grad_cols = im2col(grad_y, self.kernel_size, 1, pads, dilation, tuple(in_size))
        grad_x = flipped_rows @ grad_cols                                   # (C_in, n*L_in)
        return grad_x.reshape(c_in, n, *in_size).transpose(_channels_first(nd))  # (n, C_in, *S)


Conv2dFn = ConvNdFn   # the 2-D case; the name the docs and notes-map use


class DepthwiseConv2dFn(Function):
    """Depthwise 2-D convolution (groups = C_in = C_out) by shift-and-add instead of im2col.

    x (N, C, H, W), weight (C, 1, kH, kW), bias (C,), stride s, dilation d, padding (lo, hi) per
    axis -> y (N, C, H_out, W_out):
        y[n, c, p, q] = b[c] + sum_{i,j} w[c, 0, i, j] x_pad[n, c, p*sH + i*dH, q*sW + j*dW]
    i.e. y = b + sum_{i,j} w[:, 0, i, j] * window_ij(x_pad), where window_ij is x_pad shifted by
    (i*dH, j*dW) and sampled every s: kH*kW multiply-adds of whole (N, C) planes.
    Backward, with g = dL/dy (y is linear in w, in x and in b):
        dw[c, 0, i, j] = sum_{n,p,q} g[n, c, p, q] window_ij(x_pad)[n, c, p, q]
        window_ij(dx_pad) += w[c, 0, i, j] g        for every (i, j); dx = dx_pad without border
        db[c] = sum_{n,p,q} g[n, c, p, q]

    The same numbers as :class:`ConvNdFn` with groups = C (up to the order of the float sums).
    im2col builds a (C*kH*kW, N*L) column matrix, k^2 times the input, and then runs C GEMMs of
    one row each: for a depthwise layer that is all copying and no arithmetic intensity. Here the
    work is k^2 in-place multiply-adds in an (H, W, N, C) layout, where every window is a block of
    contiguous (N, C) rows. Forward + backward of a (32, 96, 16, 16) float32 input on one thread:
    1.8x faster than im2col for 3x3, 2.4x for 7x7 (same-run medians).
    Notes 001 / 004 Q31: depthwise separable convolution.
    Torch: torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups=C).
    """

    def __init__(self, stride: tuple[int, int], pads: Any, dilation: tuple[int, int]):
        self.stride, self.padding, self.dilation = stride, pads, dilation

    def _windows(self, kernel: tuple[int, int], out_size: tuple[int, int]):
        """(i, j, index of window_ij in the padded (H, W, N, C) array) for every kernel tap."""
        (sh, sw), (dh, dw), (h_out, w_out) = self.stride, self.dilation, out_size
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                yield i, j, (slice(i * dh, i * dh + sh * (h_out - 1) + 1, sh),
                             slice(j * dw, j * dw + sw * (w_out - 1) + 1, sw))

    def forward(self, x, weight, bias=None):
        n, c, h, w = x.shape
        kernel = weight.shape[2:]
        (top, bottom), (left, right) = self.padding
        out_size = conv_output_size((h, w), kernel, self.stride, self.padding, self.dilation)
        x_pad = np.zeros((h + top + bottom, w + left + right, n, c), dtype=x.dtype)
        x_pad[top:top + h, left:left + w] = x.transpose(2, 3, 0, 1)     # (H_pad, W_pad, N, C)
        taps = weight[:, 0].transpose(1, 2, 0)                            # (kH, kW, C)
        y = np.zeros((*out_size, n, c), dtype=x.dtype)                    # (H_out, W_out, N, C)
        product = np.empty_like(y)
        for i, j, window in self._windows(kernel, out_size):
            y += np.multiply(x_pad[window], taps[i, j], out=product)
        if bias is not None:
            y += bias
        if self.needs_input_grad:
            self.save_for_backward(x_pad if self.needs_input_grad[1] else None, taps)
            self.x_shape, self.out_size = x.shape, out_size
        return np.ascontiguousarray(y.transpose(2, 3, 0, 1))              # (N, C, H_out, W_out)

    def backward(self, grad_y):
        x_pad, taps = self.saved
        kernel, dtype = taps.shape[:2], taps.dtype
        n, c, h, w = self.x_shape
        (top, _), (left, _) = self.padding
        g = np.ascontiguousarray(grad_y.transpose(2, 3, 0, 1))            # (H_out, W_out, N, C)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        grad_taps = np.empty((*kernel, c), dtype=dtype) if need_w else None    # (kH, kW, C)
        grad_x_pad = None
        if need_x:
            grad_x_pad = np.zeros((h + sum(self.padding[0]), w + sum(self.padding[1]), n, c), dtype)
            product = np.empty_like(g)
        for i, j, window in self._windows(kernel, self.out_size):
            if need_w:
                grad_taps[i, j] = np.einsum("pqnc,pqnc->c", g, x_pad[window])  # (C,)
            if need_x:
                grad_x_pad[window] += np.multiply(g, taps[i, j], out=product)
        grad_x = grad_weight = grad_bias = None
        if need_x:
            grad_x = np.ascontiguousarray(
                grad_x_pad[top:top + h, left:left + w].transpose(2, 3, 0, 1))   # (N, C, H, W)
        if need_w:
            grad_weight = np.ascontiguousarray(grad_taps.transpose(2, 0, 1)[:, None])  # (C,1,kH,kW)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = g.sum(axis=(0, 1, 2))                                # (C,)
        return grad_x, grad_weight, grad_bias


def transposed_output_size(
    input_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """Spatial output size of a transposed convolution (notes 001 "转置卷积输出尺寸计算"), per axis:

        out = (in - 1)*s - 2*p + d*(k - 1) + output_padding + 1

    It inverts :func:`conv_output_size`: a convolution with the same settings maps ``out`` back to
    ``in`` (for every output_padding < s; the floor in the convolution's formula is what makes
    several sizes map to the same ``in``, and output_padding picks one of them).
    """
    return tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d
                 in zip(input_size, kernel_size, stride, padding, output_padding, dilation))


class ConvTransposeNdFn(Function):
    """Transposed convolution: the map whose matrix is the transpose of a convolution's.

    x (N, C_in, *S), weight (C_in, C_out/G, *k) (PyTorch's layout: the *convolution's* (out, in)
    order), bias (C_out,) -> y (N, C_out, *S_out),
        S_out = (S - 1)*s - 2*p + d*(k - 1) + output_padding + 1.
    A convolution with this weight maps (N, C_out, *S_out) to (N, C_in, *S); this op is the
    transpose of that linear map, i.e. the convolution's backward-data pass (notes 004 Q38,
    "gemm + col2im"): every input pixel scatters ``x[n, c, p] * w[c, o, i]`` onto output
    position p*s - pad + i*d.

    Forward, with L = prod(S), K = C_out/G*prod(k):
        cols = weight_rows^T @ x_rows        weight_rows (G, C_in/G, K), x_rows (G, C_in/G, N*L)
        y    = col2im(cols) + b              (G, K, N*L) -> (N, C_out, *S_out)
    Backward: y is linear in cols and col2im is the adjoint of im2col, so dcols = im2col(g) with
    g = dL/dy; then, as for any product cols = W^T X,
        dx_rows      = weight_rows @ dcols           (a plain convolution of g with the weight)
        dweight_rows = x_rows @ dcols^T
        dbias        = g summed over N and S_out
    Derivation: docs/derivations/conv_transpose.md.  Torch: torch.nn.functional.conv_transpose2d.
    """

    def __init__(self, stride: tuple[int, ...], padding: tuple[int, ...],
                 output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int = 1):
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, groups

    def forward(self, x, weight, bias=None):
        nd = weight.ndim - 2
        self.unbatched = x.ndim == nd + 1
        if self.unbatched:
            x = x[None]                                    # (1, C_in, *S)
        n, c_in, *in_size = x.shape
        _, c_out_group, *kernel = weight.shape
        g = self.groups
        c_out = c_out_group * g
        out_size = transposed_output_size(tuple(in_size), tuple(kernel), self.stride,
                                          self.padding, self.output_padding, self.dilation)
        x_rows = x.reshape(n, c_in, math.prod(in_size)).transpose(1, 0, 2).reshape(
            g, c_in // g, n * math.prod(in_size))
        # x_rows: (G, C_in/G, N*L)
        weight_rows = weight.reshape(g, c_in // g, -1)                 # (G, C_in/G, K)
        if g == 1:
            cols = weight_rows[0].T @ x_rows[0]                        # (K, N*L)
        else:
            cols = weight_rows.transpose(0, 2, 1) @ x_rows             # (G, K, N*L)
        y = col2im(cols.reshape(math.prod(cols.shape[:-1]), cols.shape[-1]),
                   (n, c_out, *out_size), kernel,
                   self.stride, self.padding, self.dilation, out_size=tuple(in_size))
        if bias is not None:
            y += bias.reshape((1, c_out) + (1,) * nd)      # y is a fresh array from col2im
        needs = self.needs_input_grad
        if needs:
            self.save_for_backward(x_rows if needs[1] else None,
                                   weight_rows if needs[0] else None)
            self.x_shape, self.kernel_size = x.shape, tuple(kernel)
        return y[0] if self.unbatched else y

    def backward(self, grad_y):
        x_rows, weight_rows = self.saved
        if self.unbatched:
            grad_y = grad_y[None]
        nd = grad_y.ndim - 2
        n, c_in, *in_size = self.x_shape
        g = self.groups
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0] or self.needs_input_grad[1]:
            grad_cols = im2col(grad_y, self.kernel_size, self.stride, self.padding,
                               self.dilation, out_size=tuple(in_size))  # (C_out*prod(k), N*L)
            grad_cols = grad_cols.reshape(g, grad_cols.shape[0] // g,  # (G, K, N*L)
                                          grad_cols.shape[-1])
            if self.needs_input_grad[0]:
                grad_x = weight_rows @ grad_cols                       # (G, C_in/G, N*L)
                grad_x = grad_x.reshape(c_in, n, *in_size).transpose(_channels_first(nd))
                grad_x = np.ascontiguousarray(grad_x[0] if self.unbatched else grad_x)
            if self.needs_input_grad[1]:
                grad_weight = x_rows @ grad_cols.transpose(0, 2, 1)    # (G, C_in/G, K)
                grad_weight = grad_weight.reshape(c_in, -1, *self.kernel_size)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_y.sum(axis=(0,) + tuple(range(2, 2 + nd)))     # (C_out,)
        return grad_x, grad_weight, grad_bias


class ZeroInsertFn(Function):
    """Insert s - 1 zeros between neighbouring elements along each of the last d axes.

    y[..., p*s] = x[..., p] and y = 0 elsewhere, so an axis of size n becomes (n - 1)*s + 1 (the
    "fractionally strided" input of notes 004 Q38). y is a linear selection of x, so
    dL/dx[..., p] = g[..., p*s]: the strided slice of the upstream gradient.
    """

    def __init__(self, stride: tuple[int, ...]):
        self.stride = stride

    def forward(self, x):
        nd = len(self.stride)
        lead, sizes = x.shape[:-nd], x.shape[-nd:]
        y = np.zeros(lead + tuple((m - 1) * s + 1 for m, s in zip(sizes, self.stride)), x.dtype)
        self.index = (Ellipsis,) + tuple(slice(None, None, s) for s in self.stride)
        y[self.index] = x
        return y

    def backward(self, grad_y):
        return np.ascontiguousarray(grad_y[self.index])


class LocallyConnected2dFn(Function):
    """A convolution whose weights are not shared: every output position has its own filter.

    x (N, C_in, H, W), weight (L, C_out, K) with L = H_out*W_out and K = C_in*kH*kW (row (c, i, j)
    as in im2col), bias (C_out, H_out, W_out) -> y (N, C_out, H_out, W_out):
        y[n, o, l] = b[o, l] + sum_{c,i,j} weight[l, o, (c,i,j)] x_pad[n, c, p_l*sH + i, q_l*sW + j]
    where l = p_l*W_out + q_l (notes 002 Q7, notes 003: DeepFace-style face models use it on
    aligned faces, where eyes and mouth sit at fixed places and deserve their own filters).

    Forward: the same im2col columns as a convolution, regrouped by position:
        cols = im2col(x) -> (L, K, N);   y = weight @ cols   (L, C_out, N), one matmul per position
    Backward, with g = dL/dy as (L, C_out, N) (y is linear in weight and in cols):
        dweight = g @ cols^T   (L, C_out, K)
        dcols   = weight^T @ g (L, K, N),  dx = col2im(dcols)
        dbias   = g summed over N
    Parameter count L*C_out*K (+ C_out*L): L times that of the shared-weight convolution.
    Checked against an explicit loop (ops/reference.py) and numerical gradients.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x, weight, bias=None):
        self.unbatched = x.ndim == 3
        if self.unbatched:
            x = x[None]
        n, c_in, h, w = x.shape
        positions, c_out, k = weight.shape
        h_out, w_out = conv_output_size((h, w), self.kernel_size, self.stride, self.padding)
        cols = im2col(x, self.kernel_size, self.stride, self.padding)   # (K, N*L)
        cols = cols.reshape(k, n, positions).transpose(2, 0, 1)         # (L, K, N)
        y = weight @ cols                                               # (L, C_out, N)
        y = y.transpose(2, 1, 0).reshape(n, c_out, h_out, w_out)        # (N, C_out, H_out, W_out)
        if bias is not None:
            y = y + bias                                                # bias (C_out, Ho, Wo)
        if self.needs_input_grad:
            self.save_for_backward(cols, weight)
            self.x_shape = x.shape
        return y[0] if self.unbatched else y

    def backward(self, grad_y):
        cols, weight = self.saved
        if self.unbatched:
            grad_y = grad_y[None]
        n, c_out = grad_y.shape[:2]
        grad_rows = grad_y.reshape(n, c_out, -1).transpose(2, 1, 0)     # (L, C_out, N)
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_cols = weight.transpose(0, 2, 1) @ grad_rows           # (L, K, N)
            grad_cols = grad_cols.transpose(1, 2, 0).reshape(cols.shape[1], -1)  # (K, N*L)
            grad_x = col2im(grad_cols, self.x_shape, self.kernel_size, self.stride, self.padding)
            if self.unbatched:
                grad_x = grad_x[0]
        if self.needs_input_grad[1]:
            grad_weight = grad_rows @ cols.transpose(0, 2, 1)           # (L, C_out, K)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_y.sum(axis=0)                              # (C_out, H_out, W_out)
        return grad_x, grad_weight, grad_bias


# ----------------------------------------------------------------------------- argument checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _conv_tuple(value: Any, name: str, nd: int = 2, op: str = "conv2d") -> tuple[int, ...]:
    """int or a 1- or nd-element tuple/list -> nd-tuple, with PyTorch's message otherwise."""
    if _is_int(value):
        return (int(value),) * nd
    if isinstance(value, tuple | list) and len(value) in (1, nd) and all(
        _is_int(v) for v in value
    ):
        return (int(value[0]),) * nd if len(value) == 1 else tuple(int(v) for v in value)
    if isinstance(value, str):
        raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not str")
    shown = list(value) if isinstance(value, tuple | list) else value
    raise RuntimeError(
        f"expected {name} to be a single integer value or a list of {nd} values to match the "
        f"convolution dimensions, but got {name}={shown}"
    )


def _size(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _axis_names(nd: int) -> tuple[str, ...]:
    return ("depth", "height", "width")[3 - nd:]


def _check_common(op: str, nd: int, input: Any, weight: Any, groups: Any,
                  weight_layout: str) -> None:
    """Types, ranks, dtypes and groups: what every convolution wrapper checks first."""
    check_tensor(input, "input", op)
    check_tensor(weight, "weight", op)
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {op}, "
                           f"but got input of size: {_size(input.shape)}")
    if weight.ndim != nd + 2:
        raise RuntimeError(f"{op}(): expected weight to be {nd + 2}-D ({weight_layout}), but got "
                           f"weight of size {_size(weight.shape)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and weight type ({weight.dtype}) should be "
                           "the same")
    if not _is_int(groups):
        raise TypeError(f"{op}(): argument 'groups' must be int, not {type(groups).__name__}")
    if groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported, got groups={groups}")
    if weight.shape[0] == 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least 1 at dimension "
                           f"0, but got weight of size {_size(weight.shape)} instead")
    if weight.shape[0] % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at "
                           f"dimension 0, but got weight of size [{_size(weight.shape)}] instead")


def _check_positive(stride: tuple[int, ...], dilation: tuple[int, ...]) -> None:
    if min(stride) <= 0:
        raise RuntimeError(f"non-positive stride is not supported, got stride={list(stride)}")
    if min(dilation) <= 0:
        raise RuntimeError(f"non-positive dilation is not supported, got dilation={list(dilation)}")


def _check_bias(op: str, bias: Any, input: Any, weight: Any, c_out: int,
                transposed: bool = False) -> None:
    check_tensor(bias, "bias", op)
    if tuple(bias.shape) != (c_out,):
        prefix = "Given transposed=1, weight" if transposed else "Given weight"
        raise RuntimeError(
            f"{prefix} of size {_size(weight.shape)}, expected bias to be 1-dimensional with "
            f"{c_out} elements, but got bias of size {_size(bias.shape)} instead"
        )
    if bias.dtype != input.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and bias type ({bias.dtype}) should be "
                           "the same")


def _convnd(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
            dilation: Any, groups: Any):
    """Check the arguments of conv1d/2d/3d as PyTorch does, then apply :class:`ConvNdFn`."""
    _check_common(op, nd, input, weight, groups,
                  "out_channels, in_channels/groups, " + ", ".join("kD kH kW".split()[3 - nd:]))
    stride = _conv_tuple(stride, "stride", nd, op)
    dilation = _conv_tuple(dilation, "dilation", nd, op)
    _check_positive(stride, dilation)
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            # Total padding d*(k - 1) keeps the size; an odd total puts the extra one at the end.
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            pads = tuple((t // 2, t - t // 2) for t in totals)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        padding = _conv_tuple(padding, "padding", nd, op)
        if min(padding) < 0:
            raise RuntimeError(f"negative padding is not supported, got padding={list(padding)}")
        pads = tuple((p, p) for p in padding)
    c_out = weight.shape[0]
    c_in = input.shape[-nd - 1]
    if c_in != weight.shape[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {_size(weight.shape)}, expected "
            f"input{_size(input.shape)} to have {weight.shape[1] * groups} channels, but got "
            f"{c_in} channels instead"
        )
    batch = input.shape[0] if input.ndim == nd + 2 else 1
    if batch and c_in and 0 in input.shape[-nd:]:  # PyTorch's rule, even when padding would help
        raise RuntimeError(f"Only zero batch or zero channel inputs are supported, but got input "
                           f"shape: {_size(input.shape)} (an empty spatial size needs an empty "
                           "batch or no channels)")
    padded = [s + lo + hi for s, (lo, hi) in zip(input.shape[-nd:], pads)]
    extent = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if any(p < e for p, e in zip(padded, extent)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
            f"size: ({' x '.join(map(str, extent))}). Kernel size can't be greater than actual "
            "input size"
        )
    # A depthwise 2-D layer (MobileNet, ShuffleNet, the NAS ops) skips im2col: DepthwiseConv2dFn.
    depthwise = nd == 2 and input.ndim == 4 and 1 < groups == c_in == c_out
    fn = (DepthwiseConv2dFn(stride, pads, dilation) if depthwise
          else ConvNdFn(stride, pads, dilation, groups))
    if bias is None:
        return fn(input, weight)
    _check_bias(op, bias, input, weight, c_out)
    return fn(input, weight, bias)


def _conv_transpose_args(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: Any,
                         padding: Any, output_padding: Any, groups: Any,
                         dilation: Any) -> tuple[tuple[int, ...], ...]:
    """Check the arguments of conv_transpose1d/2d/3d as PyTorch does; return the tuples."""
    _check_common(op, nd, input, weight, groups,
                  "in_channels, out_channels/groups, " + ", ".join("kD kH kW".split()[3 - nd:]))
    stride = _conv_tuple(stride, "stride", nd, op)
    padding = _conv_tuple(padding, "padding", nd, op)
    output_padding = _conv_tuple(output_padding, "output_padding", nd, op)
    dilation = _conv_tuple(dilation, "dilation", nd, op)
    _check_positive(stride, dilation)
    if min(padding) < 0:
        raise RuntimeError(f"negative padding is not supported, got padding={list(padding)}")
    if min(output_padding) < 0:
        raise RuntimeError("negative output_padding is not supported, got output_padding="
                           f"{list(output_padding)}")
    if any(op_ >= s and op_ >= d for op_, s, d in zip(output_padding, stride, dilation)):
        names = _axis_names(nd)
        shown = " ".join(
            [f"output_padding_{a}: {v}" for a, v in zip(names, output_padding)]
            + [f"stride_{a}: {v}" for a, v in zip(names, stride)]
            + [f"dilation_{a}: {v}" for a, v in zip(names, dilation)])
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but "
                           f"got {shown}")
    c_in = input.shape[-nd - 1]
    if c_in != weight.shape[0]:
        raise RuntimeError(
            f"Given transposed=1, weight of size {_size(weight.shape)}, expected "
            f"input{_size(input.shape)} to have {weight.shape[0]} channels, but got {c_in} "
            "channels instead"
        )
    if weight.shape[1] == 0:
        raise RuntimeError(f"Given transposed=1, expected weight to be at least 1 at dimension 1, "
                           f"but got weight of size {_size(weight.shape)} instead")
    out = transposed_output_size(tuple(input.shape[-nd:]), tuple(weight.shape[2:]), stride,
                                 padding, output_padding, dilation)
    if min(out) < 1:
        raise RuntimeError(
            f"Given input size per channel: ({' x '.join(map(str, input.shape[-nd:]))}). "
            f"Calculated output size per channel: ({' x '.join(map(str, out))}). Output size is "
            "too small"
        )
    if bias is not None:
        _check_bias(op, bias, input, weight, weight.shape[1] * groups, transposed=True)
    return stride, padding, output_padding, dilation


def _conv_transposend(op: str, nd: int, input: Any, weight: Any, bias: Any, stride: Any,
                      padding: Any, output_padding: Any, groups: Any, dilation: Any):
    stride, padding, output_padding, dilation = _conv_transpose_args(
        op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
    fn = ConvTransposeNdFn(stride, padding, output_padding, dilation, int(groups))
    return fn(input, weight) if bias is None else fn(input, weight, bias)


# ----------------------------------------------------------------------------- public wrappers


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1):
    """1-D convolution over an (N, C_in, L) or (C_in, L) input. Same signature as torch's F.conv1d.

    Args:
        input: (N, C_in, L) or (C_in, L).
        weight: (C_out, C_in/groups, k).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as :func:`conv2d`, with one value per spatial axis.

    Shape:
        L_out = (L + 2*p - d*(k - 1) - 1) // s + 1.

    Math: :class:`ConvNdFn` (the same im2col + GEMM code as conv2d).
    """
    return _convnd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
):
    """2-D convolution over an NCHW (or unbatched CHW) input. Same signature as torch's F.conv2d.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_out, C_in/groups, kH, kW).
        bias: optional (C_out,).
        stride, dilation: int or (h, w); must be positive.
        padding: int, (h, w), ``'valid'`` (no padding) or ``'same'`` (output size = input size;
            stride 1 only; with an even dilated kernel the extra row/column goes bottom/right,
            as in PyTorch).
        groups: input and output channels split into this many independent convolutions
            (``groups == C_in`` with ``C_out = m*C_in`` is a depthwise convolution, notes 001).

    Shape:
        H_out = (H + 2*pH - dH*(kH - 1) - 1) // sH + 1, W_out likewise (notes 000 Q3).

    Math: see :class:`ConvNdFn` and docs/derivations/conv2d.md.
    """
    return _convnd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1):
    """3-D convolution over an (N, C_in, D, H, W) or (C_in, D, H, W) input (torch's F.conv3d).

    Args:
        input: (N, C_in, D, H, W) or (C_in, D, H, W).
        weight: (C_out, C_in/groups, kD, kH, kW).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as :func:`conv2d`, with one value per spatial axis.

    Shape:
        D_out = (D + 2*pD - dD*(kD - 1) - 1) // sD + 1, H_out and W_out likewise.

    Math: :class:`ConvNdFn` (notes 003 on 3-D convolution: the kernel also slides along depth).
    """
    return _convnd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1):
    """1-D transposed convolution (torch's F.conv_transpose1d); see :func:`conv_transpose2d`."""
    return _conv_transposend("conv_transpose1d", 1, input, weight, bias, stride, padding,
                             output_padding, groups, dilation)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1):
    """2-D transposed convolution ("deconvolution"), same signature as torch's F.conv_transpose2d.

    The gradient of conv2d with respect to its input, used as a layer: it maps a small feature
    map to a large one (upsampling in FCN/U-Net/GAN decoders). It restores the *shape* of a
    convolution's input, not its values (notes 001 "如何理解转置卷积").

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_in, C_out/groups, kH, kW), PyTorch's layout.
        bias: optional (C_out,).
        stride, padding, dilation: int or (h, w); those of the convolution being transposed
            (so ``padding`` *removes* padding rows/columns from the border of the output).
        output_padding: extra rows/columns at the bottom/right, < stride or < dilation: a
            strided convolution maps several input sizes to the same output size, and this picks
            which one to produce.
        groups: as in conv2d.

    Shape:
        H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + output_padding_H + 1, W_out likewise.

    Math: :class:`ConvTransposeNdFn` (GEMM + col2im, notes 004 Q38); the zero-insertion form is
    :func:`conv_transpose2d_zero_insert`; docs/derivations/conv_transpose.md.
    """
    return _conv_transposend("conv_transpose2d", 2, input, weight, bias, stride, padding,
                             output_padding, groups, dilation)


def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1):
    """3-D transposed convolution (torch's F.conv_transpose3d); see :func:`conv_transpose2d`."""
    return _conv_transposend("conv_transpose3d", 3, input, weight, bias, stride, padding,
                             output_padding, groups, dilation)


def conv_transpose2d_zero_insert(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                                 padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                                 dilation: Any = 1):
    """The transposed convolution built the way notes 004 Q38 describes: zeros, pad, flipped kernel.

    Same arguments and result as :func:`conv_transpose2d` (deepnotes only; PyTorch has one
    implementation). Four steps, each an op with its own backward, so autograd differentiates it:

    1. insert stride - 1 zeros between neighbouring input pixels (:class:`ZeroInsertFn`):
       H -> (H - 1)*sH + 1;
    2. pad by dil*(k - 1) - padding on each side, plus output_padding at the bottom/right
       (a negative amount crops, when padding > dil*(k - 1));
    3. flip the kernel by 180° and swap its in/out channel axes, per group:
       w'[g*C_out/G + o, c, i, j] = w[g*C_in/G + c, o, kH-1-i, kW-1-j];
    4. convolve at stride 1 with the same dilation and groups.

    Why it matches: input pixel p lands at position p*s + dil*(k - 1) - padding of the padded
    array, and output q reads it with the flipped tap k-1-i when q + (k-1-i)*dil equals that,
    i.e. q = p*s - padding + i*dil, which is exactly where the scatter form puts x[p]*w[i].
    Wasteful (most of the multiplications hit inserted zeros), which is why the GEMM + col2im
    form is the one used in practice; the tests check both against each other and PyTorch.
    """
    op = "conv_transpose2d_zero_insert"
    stride, padding, output_padding, dilation = _conv_transpose_args(
        op, 2, input, weight, bias, stride, padding, output_padding, groups, dilation)
    g = int(groups)
    c_in, c_out_group, kh, kw = weight.shape
    x = ZeroInsertFn(stride)(input) if stride != (1, 1) else input
    (ph, pw), (oph, opw), (dh, dw) = padding, output_padding, dilation
    top, left = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    x = shape.pad(x, (left, left + opw, top, top + oph))                # F.pad order: W, then H
    w = shape.reshape(weight, (g, c_in // g, c_out_group, kh, kw))
    w = shape.permute(w, (0, 2, 1, 3, 4))                                 # (G, C_out/G, C_in/G, k)
    w = shape.reshape(w, (g * c_out_group, c_in // g, kh, kw))
    w = shape.getitem(w, (Ellipsis, slice(None, None, -1), slice(None, None, -1)))  # 180° turn
    return conv2d(x, w, bias, stride=1, padding=0, dilation=dilation, groups=g)


def locally_connected2d(input: Any, weight: Any, bias: Any = None, kernel_size: Any = 1,
                        stride: Any = 1, padding: Any = 0):
    """Unshared-weight convolution (deepnotes only; PyTorch lacks it). See nn.LocallyConnected2d.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (H_out*W_out, C_out, C_in*kH*kW): one filter bank per output position.
        bias: optional (C_out, H_out, W_out): one bias per output unit.
        kernel_size, stride, padding: int or (h, w), as in conv2d (zero padding).

    Math: :class:`LocallyConnected2dFn`.
    """
    op = "locally_connected2d"
    check_tensor(input, "input", op)
    check_tensor(weight, "weight", op)
    kernel = _conv_tuple(kernel_size, "kernel_size")
    stride = _conv_tuple(stride, "stride")
    padding = _conv_tuple(padding, "padding")
    if min(kernel) <= 0:
        raise RuntimeError(f"non-positive kernel_size is not supported, got kernel_size="
                           f"{list(kernel)}")
    _check_positive(stride, (1, 1))
    if min(padding) < 0:
        raise RuntimeError(f"negative padding is not supported, got padding={list(padding)}")
    if input.ndim not in (3, 4):
        raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input "
                           f"of size: {_size(input.shape)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and weight type ({weight.dtype}) should be "
                           "the same")
    c_in, h, w = input.shape[-3:]
    if any(s + 2 * p < k for s, p, k in zip((h, w), padding, kernel)):
        raise RuntimeError(f"Calculated padded input size per channel: ({h + 2 * padding[0]} x "
                           f"{w + 2 * padding[1]}). Kernel size: ({kernel[0]} x {kernel[1]}). "
                           "Kernel size can't be greater than actual input size")
    h_out, w_out = conv_output_size((h, w), kernel, stride, padding)
    expected = (h_out * w_out, weight.shape[1] if weight.ndim == 3 else -1,
                c_in * math.prod(kernel))
    if weight.ndim != 3 or weight.shape[0] != expected[0] or weight.shape[2] != expected[2]:
        raise RuntimeError(
            f"{op}(): expected weight of size [H_out*W_out, C_out, C_in*kH*kW] = [{expected[0]}, "
            f"C_out, {expected[2]}] for input{_size(input.shape)}, but got weight of size "
            f"{_size(weight.shape)}"
        )
    pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    fn = LocallyConnected2dFn(kernel, stride, pads)
    if bias is None:
        return fn(input, weight)
    check_tensor(bias, "bias", op)
    if tuple(bias.shape) != (weight.shape[1], h_out, w_out):
        raise RuntimeError(f"{op}(): expected bias of size {_size((weight.shape[1], h_out, w_out))}"
                           f" (C_out, H_out, W_out), but got bias of size {_size(bias.shape)}")
    if bias.dtype != input.dtype:
        raise RuntimeError(f"Input type ({input.dtype}) and bias type ({bias.dtype}) should be "
                           "the same")
    return fn(input, weight, bias)
