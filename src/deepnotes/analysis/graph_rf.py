"""Receptive fields along the recorded autograd graph (notes 000 Q3).

After one forward pass with an input that requires a gradient, every op that touched it is a node
of the graph (``Function`` instances linked by ``_edges``). This module walks those nodes in
topological order and gives each output tensor a receptive field per image axis (size, jump,
start; see ``formulas.rf_step``), so branching models (ResNet's shortcut, Inception's parallel
branches, DenseNet's concatenations) need no special handling:

* convolution, pooling (max, average, adaptive), transposed convolution, padding and slicing
  apply their formula to the field of their input along each spatial axis;
* every other op (activations, normalisation, dropout, add, multiply, concat, ...) combines its
  inputs: along each axis the output takes the largest field among the inputs ("经过多分支的路径，
  按照感受野最大支路计算", notes 000 Q3), which leaves the field unchanged for one-input
  element-wise ops ("不会改变感受野的情况: conv1x1 s1、ReLU、BN、dropout、shortcut", ibid.);
* an op that gives up the spatial layout of an axis (flatten, a reduction over it, a Linear or a
  matmul over it, recurrent layers and attention over a sequence) makes the field along it the
  whole image ("经过FC层和Global Ave Pooling层，感受野就是整个输入图像", ibid.): size
  max(image, field so far), jump = image size, start = image centre. Adaptive/global pooling
  keeps the formula (kernel = the map), as fixed pooling does.

A product with a broadcast gate (the SE block's (N, C, 1, 1) channel weights, computed from a
global mean) takes the gate's field, the whole image, as its size but keeps the map's jump and
start: from the first SE block on, every output depends on every pixel, and the sizes show it.

Sizes are "theoretical" receptive fields: they may exceed the image (ResNet-18's last stage sees
435 pixels of a 224 image) since padding is counted as pixels. Transposed convolutions and adaptive
pooling whose input is not a multiple of the output use the largest span (exact otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from ..ops import conv as _conv
from ..ops import matmul as _matmul
from ..ops import pool as _pool
from ..ops import reduce as _reduce_ops
from ..ops import rnn as _rnn
from ..ops import shape as _shape
from ..ops.attention import ScaledDotProductAttentionFn
from ..ops.im2col import _ntuple, normalize_padding

# One image axis: (size, jump, start, pos) with pos the tensor axis that carries it, or None
# when no tensor axis does (squeezed away, or the field is the whole image).
Axis = tuple[Fraction, Fraction, Fraction, "int | None"]
RF = tuple[Axis, ...]

# Ops whose every output depends on every position of the sequence or token axis.
_MIXING = (_rnn.RNNLayerFn, _rnn.LSTMLayerFn, _rnn.GRULayerFn, ScaledDotProductAttentionFn)
_REDUCTIONS = (_reduce_ops.SumFn, _reduce_ops.MeanFn, _reduce_ops.AmaxFn, _reduce_ops.MaxDimFn,
               _reduce_ops.VarFn, _reduce_ops.LogSumExpFn)


def input_rf(image: tuple[int, ...]) -> RF:
    """The input's own field: one pixel, jump 1, first centre at 0.5, on axes 2, 3, ..."""
    return tuple((Fraction(1), Fraction(1), Fraction(1, 2), 2 + i) for i in range(len(image)))


def _whole(image_size: int, size: Fraction) -> Axis:
    return (max(Fraction(image_size), size), Fraction(image_size), Fraction(image_size, 2), None)


def _merge(image: tuple[int, ...], candidates: list[tuple[RF, tuple[bool, ...]]]) -> RF | None:
    """Per axis, the largest field among the candidates (notes 000 Q3: the widest branch).

    Each candidate comes with per-axis flags: True where that input is broadcast along the axis
    (a (N, C, 1, 1) gate times an (N, C, H, W) map, as in SE blocks), or has no tensor axis for
    it: its size counts, but the output's positions, hence jump and start, are those of the
    inputs that are laid out along the axis.
    """
    if not candidates:
        return None
    out = []
    for i in range(len(image)):
        size = max(rf[i][0] for rf, _ in candidates)
        placed = ([rf[i] for rf, spread in candidates if not spread[i] and rf[i][3] is not None]
                  or [rf[i] for rf, _ in candidates])
        widest = max(placed, key=lambda a: (a[0], a[3] is not None))
        out.append((size, *widest[1:]))
    return tuple(out)


def _globalise(image: tuple[int, ...], rf: RF, axes: Iterable[int]) -> RF:
    axes = set(axes)
    return tuple(_whole(image[i], a[0]) if i in axes else a for i, a in enumerate(rf))


def _generic(image: tuple[int, ...], rf: RF, in_shape: tuple[int, ...],
             out_shape: tuple[int, ...]) -> tuple[RF, tuple[bool, ...]]:
    """An op about which nothing is known but the shapes. With as many or more output axes
    (element-wise ops, broadcasting): an axis that keeps its length, or is broadcast from 1,
    keeps its field (shifted if broadcasting added leading axes). With fewer output axes (a sum
    over a branch axis, a squeeze): as a view, see :func:`_reshape`. Any other spatial axis is
    taken as mixed (whole image). Also returns which axes the input is broadcast along."""
    shift = len(out_shape) - len(in_shape)
    if shift < 0:
        return _reshape(image, rf, in_shape, out_shape), (False,) * len(rf)
    out, broadcast = [], []
    for i, (size, jump, start, pos) in enumerate(rf):
        spread = False
        if pos is None:
            out.append((size, jump, start, None))
        elif in_shape[pos] == out_shape[pos + shift]:
            out.append((size, jump, start, pos + shift))
        elif in_shape[pos] == 1:
            out.append((size, jump, start, pos + shift))
            spread = True
        else:
            out.append(_whole(image[i], size))
        broadcast.append(spread)
    return tuple(out), tuple(broadcast)


def _reduce(image: tuple[int, ...], rf: RF, ndim: int, dims: Any, keepdim: bool) -> RF:
    """A reduction over ``dims``: a reduced spatial axis gives the whole image; the others keep
    their field (and move left by the reduced axes before them without keepdim)."""
    if dims is None:
        reduced = set(range(ndim))
    else:
        reduced = {d % ndim for d in ((dims,) if isinstance(dims, int) else dims)}
    out = []
    for i, (size, jump, start, pos) in enumerate(rf):
        if pos is None:
            out.append((size, jump, start, None))
        elif pos in reduced:
            out.append(_whole(image[i], size))
        else:
            shift = 0 if keepdim else sum(1 for d in reduced if d < pos)
            out.append((size, jump, start, pos - shift))
    return tuple(out)


def _window(image: tuple[int, ...], rf: RF, in_shape: tuple[int, ...],
            params: list[tuple[Fraction, Fraction, Fraction, Fraction]]) -> RF:
    """Apply per-axis (span, stride, padding-as-offset) windows to the last len(params) axes.

    ``params[a] = (span, stride, offset, jump_div)``: size += span*jump, start += offset*jump,
    jump = jump*stride/jump_div. Image axes on other tensor axes (channels) are mixed by the op.
    """
    first = len(in_shape) - len(params)
    out = []
    for i, (size, jump, start, pos) in enumerate(rf):
        if pos is None:
            out.append((size, jump, start, None))
        elif pos >= first:
            span, stride, offset, div = params[pos - first]
            out.append((size + span * jump, jump * stride / div, start + offset * jump, pos))
        else:
            out.append(_whole(image[i], size))
    return tuple(out)


def _conv_params(kernel: tuple[int, ...], stride: Any, padding: Any,
                 dilation: Any) -> list[tuple[Fraction, Fraction, Fraction, Fraction]]:
    nd = len(kernel)
    stride, dilation = _ntuple(stride, nd), _ntuple(dilation, nd)
    pads = normalize_padding(padding, nd)
    return [(Fraction(d * (k - 1)), Fraction(s), Fraction(d * (k - 1), 2) - lo, Fraction(1))
            for k, s, (lo, _), d in zip(kernel, stride, pads, dilation)]


def _adaptive_params(in_size: tuple[int, ...], out_size: tuple[int, ...]) -> list[Any]:
    params = []
    for m, o in zip(in_size, out_size):
        # PyTorch's bins: [floor(i*m/o), ceil((i+1)*m/o)); the longest one sets the span.
        lengths = [-(-(i + 1) * m // o) - (i * m) // o for i in range(o)]
        params.append((Fraction(max(lengths) - 1), Fraction(m, o),
                       Fraction(lengths[0] - 1, 2), Fraction(1)))
    return params


def _node_rf(node: Any, image: tuple[int, ...], in_rfs: list[RF | None],
             in_shapes: list[tuple[int, ...] | None], out_shape: tuple[int, ...]) -> RF | None:
    """The field of one output of ``node`` from the fields of its inputs."""
    present = [(rf, shape) for rf, shape in zip(in_rfs, in_shapes) if rf is not None]
    if not present:
        return None
    rf0, shape0 = in_rfs[0], in_shapes[0]
    kind = type(node)
    if kind in _MIXING:    # recurrence / attention: each output sees the whole sequence
        return _merge(image, [(_globalise(image, rf, range(len(image))), (False,) * len(image))
                              for rf, _ in present])
    if rf0 is not None and shape0 is not None:
        if kind in (_conv.ConvNdFn, _conv.DepthwiseConv2dFn):
            kernel = tuple(node.inputs[1].shape[2:])
            return _window(image, rf0, shape0,
                           _conv_params(kernel, node.stride, node.padding, node.dilation))
        if kind is _conv.LocallyConnected2dFn:
            return _window(image, rf0, shape0,
                           _conv_params(node.kernel_size, node.stride, node.padding, 1))
        if kind is _pool.MaxPoolNdFn:
            return _window(image, rf0, shape0,
                           _conv_params(node.kernel_size, node.stride, node.padding,
                                        node.dilation))
        if kind is _pool.AvgPoolNdFn:
            return _window(image, rf0, shape0,
                           _conv_params(node.kernel_size, node.stride, node.padding, 1))
        if kind in (_pool.AdaptiveAvgPoolNdFn, _pool.AdaptiveMaxPoolNdFn):
            nd = len(node.output_size)
            return _window(image, rf0, shape0,
                           _adaptive_params(shape0[-nd:], tuple(out_shape[-nd:])))
        if kind is _conv.ConvTransposeNdFn:
            kernel = tuple(node.inputs[1].shape[2:])
            nd = len(kernel)
            stride, dil = _ntuple(node.stride, nd), _ntuple(node.dilation, nd)
            pad = _ntuple(node.padding, nd)
            # o = i*s - p + t*d: output o reads inputs i in [(o + p - d(k-1))/s, (o + p)/s].
            params = [(Fraction(d * (k - 1) // s), Fraction(1),
                       Fraction(p - Fraction(d * (k - 1), 2), s), Fraction(s))
                      for k, s, p, d in zip(kernel, stride, pad, dil)]
            return _window(image, rf0, shape0, params)
        if kind is _shape.PadFn:
            return _pad(image, rf0, shape0, node.pad)
        if kind is _shape.GetitemFn:
            sliced = _getitem(image, rf0, shape0, node.index)
            if sliced is not None:
                return sliced
        if kind is _shape.PermuteFn:
            dims = list(node.dims)
            return tuple((s, j, st, None if p is None else dims.index(p)) for s, j, st, p in rf0)
        if kind is _shape.ReshapeFn:
            return _reshape(image, rf0, shape0, out_shape)
        if kind in _REDUCTIONS and len(present) == 1:
            dims = node.dim if kind is _reduce_ops.MaxDimFn else node.dims
            return _reduce(image, rf0, len(shape0), dims, node.keepdim)
        if kind is _matmul.LinearFn:
            last = len(shape0) - 1
            mixed = [i for i, a in enumerate(rf0) if a[3] == last]
            return _generic(image, _globalise(image, rf0, mixed), shape0, out_shape)[0]
        if kind is _matmul.MatmulFn:
            return _matmul_rf(image, in_rfs, in_shapes, out_shape)
    candidates = [_generic(image, rf, shape, out_shape) for rf, shape in present
                  if shape is not None]
    return _merge(image, candidates)


def _pad(image: tuple[int, ...], rf: RF, shape: tuple[int, ...], pad: tuple[int, ...]) -> RF:
    out = []
    for size, jump, start, pos in rf:
        from_end = len(shape) - 1 - pos if pos is not None else -1
        if 0 <= from_end < len(pad) // 2:
            start = start - pad[2 * from_end] * jump
        out.append((size, jump, start, pos))
    return tuple(out)


def _getitem(image: tuple[int, ...], rf: RF, shape: tuple[int, ...], index: Any) -> RF | None:
    """Basic slicing: a slice a:b:c along a spatial axis moves the start by a*jump and multiplies
    the jump by c. Anything else (ints, None, arrays) is left to the generic rule."""
    items = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, slice) and i is not Ellipsis for i in items):
        return None
    if items.count(Ellipsis) > 1:
        return None
    if Ellipsis in items:
        k = items.index(Ellipsis)
        fill = (slice(None),) * (len(shape) - len(items) + 1)
        items = items[:k] + fill + items[k + 1:]
    items = items + (slice(None),) * (len(shape) - len(items))
    out = []
    for size, jump, start, pos in rf:
        if pos is not None:
            first, _, step = items[pos].indices(shape[pos])
            if step < 0:
                return None
            start, jump = start + first * jump, jump * step
        out.append((size, jump, start, pos))
    return tuple(out)


def _reshape(image: tuple[int, ...], rf: RF, in_shape: tuple[int, ...],
             out_shape: tuple[int, ...]) -> RF:
    """A view keeps an axis when it and every axis after it are unchanged (flatten(1) of
    (N, C, H, W) keeps nothing; (N, C, H, W) -> (N, g, C/g, H, W) keeps H and W). A dropped axis
    of length 1 keeps its field with no tensor axis; a longer one is merged: whole image."""
    out = []
    for i, (size, jump, start, pos) in enumerate(rf):
        if pos is None:
            out.append((size, jump, start, None))
            continue
        tail = len(in_shape) - pos
        if tail <= len(out_shape) and tuple(in_shape[pos:]) == tuple(out_shape[-tail:]):
            out.append((size, jump, start, len(out_shape) - tail))
        elif in_shape[pos] == 1:
            out.append((size, jump, start, None))
        else:
            out.append(_whole(image[i], size))
    return tuple(out)


def _matmul_rf(image: tuple[int, ...], in_rfs: list[RF | None],
               in_shapes: list[tuple[int, ...] | None], out_shape: tuple[int, ...]) -> RF | None:
    """a @ b contracts a's last axis and b's second to last; the others line up from the right
    (b's last axis is the output's last)."""
    candidates = []
    for which, (rf, shape) in enumerate(zip(in_rfs[:2], in_shapes[:2])):
        if rf is None or shape is None:
            continue
        nd = len(shape)
        contracted = nd - 1 if which == 0 else max(nd - 2, 0)
        axes = []
        for i, (size, jump, start, pos) in enumerate(rf):
            if pos is None:
                axes.append((size, jump, start, None))
            elif pos == contracted or nd == 1:
                axes.append(_whole(image[i], size))
            else:
                axes.append((size, jump, start, pos + len(out_shape) - nd))
        candidates.append((tuple(axes), (False,) * len(axes)))
    return _merge(image, candidates)


def propagate(outputs: Iterable[tuple[Any, int]], input_array: Any,
              image: tuple[int, ...]) -> dict[tuple[int, int], RF | None]:
    """Receptive fields of every node output reachable backwards from ``outputs``.

    Args:
        outputs: ``(node, index)`` pairs (a tensor's ``_fn`` and ``_index``) to start from.
        input_array: the input's ndarray (the leaf whose field is one pixel).
        image: the input's spatial size.

    Returns:
        ``{(id(node), index): field}``; a field is a tuple of (size, jump, start, pos) per axis,
        or None for values that do not depend on the input (parameters, constants).
    """
    # Iterative post-order DFS (graphs of DenseNet-201 run into thousands of nodes).
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(node, False) for node, _ in outputs if node is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for edge in node._edges:
            if edge is not None and edge[0] is not None and id(edge[0]) not in seen:
                stack.append((edge[0], False))
    fields: dict[tuple[int, int], RF | None] = {}
    start = input_rf(image)
    for node in order:
        in_rfs: list[RF | None] = []
        in_shapes: list[tuple[int, ...] | None] = []
        for edge in node._edges:
            if edge is None:
                in_rfs.append(None)
                in_shapes.append(None)
                continue
            parent, index, _, array = edge
            if parent is None:
                in_rfs.append(start if array is input_array else None)
            else:
                in_rfs.append(fields.get((id(parent), index)))
            in_shapes.append(tuple(array.shape))
        for index, (shape, _) in enumerate(node._output_meta):
            fields[(id(node), index)] = _node_rf(node, image, in_rfs, in_shapes, tuple(shape))
    return fields
