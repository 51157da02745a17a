"""The notes' formulas for convolution layers: output sizes, receptive fields, parameters, cost.

Every function is a one-line formula with its arguments checked, so that the worked examples of
the notes can be recomputed (and tested) exactly:

* output size (notes 001 "卷积公式", notes 000 Q3; the transposed form from notes 001
  "转置卷积输出尺寸计算"):
      out = floor((in + 2p - d(k - 1) - 1) / s) + 1
      out_transposed = (in - 1)s - 2p + d(k - 1) + output_padding + 1
* receptive field (notes 000 Q3, with r_0 = 1, j_0 = 1):
      r_l = r_{l-1} + (k_l - 1) j_{l-1},   j_l = j_{l-1} s_l
  (notes 003 writes the same recursion from the other end, RF_i = (RF_{i-1} - 1)s + k.) A dilated
  kernel spans k_eff = d(k - 1) + 1 inputs and enters the formula as k_eff. The third number,
  ``start``, is where the centre of the first output's field lies in the input, counting the
  first pixel's centre as 0.5 (the image covers [0, W]):
      start_l = start_{l-1} + ((k_eff - 1)/2 - p) j_{l-1},   start_0 = 0.5
  Worked example of notes 000 Q3 (AlexNet's conv1, pool1, conv2, pool2, conv3): 11, 19, 51, 67, 99.
* parameters (notes 000 Q3, F*F*D*K; notes 001 grouped convolution, h*w*c1*c2/g):
      params = C_out * (C_in / g) * prod(k)  (+ C_out with a bias)
  Notes 001 (VGG): two 3x3 layers have 2*3*3/(5*5) = 0.72 of the weights of one 5x5 with the same
  5x5 field; notes 002 Q15 (1x1 bottleneck): 128*5*5*256 = 819,200 weights against
  128*1*1*64 + 64*5*5*256 = 417,792 with a 64-channel 1x1 convolution first.
* cost: one multiply-accumulate (MAC) per weight per output position,
      MACs = N * prod(out) * C_out * (C_in / g) * prod(k)        (notes 003, notes 004 Q31)
  and FLOPs = 2 * MACs (a multiply and an add per MAC: with a bias, the K products of one output
  take K - 1 additions plus the bias's, exactly 2K; without one, one add fewer per output, which
  the convention ignores). Additions of the notes 003 count ("不考虑加法") are thus FLOPs - MACs.

Depthwise-separable convolution (notes 001, 003, 004 Q31): a k x k depthwise step (C_in filters
of one channel each) then a 1x1 pointwise step (C_out filters over C_in channels):
      params   C_in k^2 + C_in C_out          vs  C_in C_out k^2
      MACs     HW (C_in k^2 + C_in C_out)    vs  HW C_in C_out k^2
so both ratios are exactly 1/C_out + 1/k^2 (notes 004 Q31; notes 001's example: 656 / 4608 =
1/32 + 1/9). Two slips in the notes are corrected here: notes 003 writes 1/C_in + 1/k^2, having
counted the depthwise step as k^2 W H C_out (it has C_in filters, so k^2 W H C_in), and notes 004
Q31 gives the separable parameter count as C_in C_out + k^2 (one depthwise filter instead of C_in
of them) and its ratio as 1/(C_in C_out) + 1/k^2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

__all__ = [
    "ReceptiveField",
    "conv_flops",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "conv_transpose_output_size",
    "depthwise_separable_macs",
    "depthwise_separable_params",
    "linear_macs",
    "linear_params",
    "receptive_field",
    "rf_step",
    "separable_cost_ratio",
]


def _check_int(value: Any, name: str, minimum: int, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = value.__index__()
        else:
            raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return value


def _axes(value: Any, name: str, minimum: int, fn: str) -> tuple[int, ...]:
    """An int or a tuple of ints, checked, as a tuple."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{fn}: {name} must not be empty")
        return tuple(_check_int(v, name, minimum, fn) for v in value)
    return (_check_int(value, name, minimum, fn),)


def _broadcast(fn: str, **values: tuple[int, ...]) -> int:
    """The common number of axes of the per-axis arguments (length-1 ones broadcast)."""
    lengths = {len(v) for v in values.values()} - {1}
    if len(lengths) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise ValueError(f"{fn}: per-axis arguments must have the same length, got {shown}")
    return lengths.pop() if lengths else 1


def _kernel(value: Any, name: str, fn: str) -> tuple[int, ...]:
    """A kernel size: an int is a square k x k kernel (as ``nn.Conv2d(..., kernel_size=3)``), a
    tuple gives one entry per axis (any number of axes)."""
    axes = _axes(value, name, 1, fn)
    return axes * 2 if not isinstance(value, (tuple, list)) else axes


def _result(values: list[int], scalar: bool) -> int | tuple[int, ...]:
    return values[0] if scalar else tuple(values)


def conv_output_size(size: int | Sequence[int], kernel: int | Sequence[int],
                     stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                     dilation: int | Sequence[int] = 1, *,
                     ceil_mode: bool = False) -> int | tuple[int, ...]:
    """Output length of a convolution or pooling window along each axis (notes 001, 000 Q3).

        out = floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1

    With ``ceil_mode`` (pooling layers) the division rounds up, and, as in PyTorch, a last window
    that would start beyond the input and its left padding is dropped.

    Args:
        size, kernel, stride, padding, dilation: ints, or tuples with one entry per axis (an int
            applies to every axis). The result is an int when every argument is an int.
        ceil_mode: round up instead of down.

    Raises:
        ValueError: when the (dilated) kernel does not fit in the padded input.
    """
    from ..ops.pool import pool_output_size  # the one implementation of the rule (ops layer)

    fn = "conv_output_size"
    scalar = not any(isinstance(v, (tuple, list)) for v in (size, kernel, stride, padding,
                                                            dilation))
    args = dict(size=_axes(size, "size", 1, fn), kernel=_axes(kernel, "kernel", 1, fn),
                stride=_axes(stride, "stride", 1, fn), padding=_axes(padding, "padding", 0, fn),
                dilation=_axes(dilation, "dilation", 1, fn))
    nd = _broadcast(fn, **args)
    full = {k: v * nd if len(v) == 1 else v for k, v in args.items()}
    out = []
    for n, k, s, p, d in zip(full["size"], full["kernel"], full["stride"], full["padding"],
                             full["dilation"]):
        if n + 2 * p < d * (k - 1) + 1:
            raise ValueError(f"{fn}: the kernel spans {d * (k - 1) + 1} positions (kernel={k}, "
                             f"dilation={d}) but the padded input has only {n + 2 * p} "
                             f"(size={n}, padding={p})")
        out.append(pool_output_size(n, k, s, p, d, bool(ceil_mode)))
    return _result(out, scalar)


def conv_transpose_output_size(size: int | Sequence[int], kernel: int | Sequence[int],
                               stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                               output_padding: int | Sequence[int] = 0,
                               dilation: int | Sequence[int] = 1) -> int | tuple[int, ...]:
    """Output length of a transposed convolution along each axis (notes 001, notes 004 Q38):

        out = (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1

    It inverts :func:`conv_output_size`: the convolution with the same settings maps ``out`` back
    to ``size``; ``output_padding`` (< stride or < dilation, as PyTorch requires) picks one of the
    sizes that the convolution's floor sends to the same ``size``. Arguments in PyTorch's order
    (``nn.ConvTranspose2d(..., stride, padding, output_padding, groups, bias, dilation)``).
    """
    fn = "conv_transpose_output_size"
    scalar = not any(isinstance(v, (tuple, list)) for v in (size, kernel, stride, padding,
                                                            output_padding, dilation))
    args = dict(size=_axes(size, "size", 1, fn), kernel=_axes(kernel, "kernel", 1, fn),
                stride=_axes(stride, "stride", 1, fn), padding=_axes(padding, "padding", 0, fn),
                output_padding=_axes(output_padding, "output_padding", 0, fn),
                dilation=_axes(dilation, "dilation", 1, fn))
    nd = _broadcast(fn, **args)
    full = {k: v * nd if len(v) == 1 else v for k, v in args.items()}
    out = []
    for n, k, s, p, op, d in zip(*full.values()):
        if op >= s and op >= d:
            raise ValueError(f"{fn}: output_padding must be smaller than either stride or "
                             f"dilation, got output_padding={op}, stride={s}, dilation={d}")
        length = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if length < 1:
            raise ValueError(f"{fn}: the output would have length {length} (size={n}, "
                             f"kernel={k}, stride={s}, padding={p}); it must be >= 1")
        out.append(length)
    return _result(out, scalar)


class ReceptiveField(NamedTuple):
    """The receptive field of one layer's outputs, along one axis, in input pixels.

    size: how many input pixels one output sees (r); jump: the distance in the input between
    two neighbouring outputs (j, the product of the strides so far); start: the centre of the
    first output's field, the first pixel's centre being 0.5 (it can be negative: padding).
    """

    size: float
    jump: float
    start: float


def rf_step(rf: ReceptiveField, kernel: int, stride: int = 1, padding: int = 0,
            dilation: int = 1) -> ReceptiveField:
    """One layer of the recursion of notes 000 Q3, with a dilated kernel k_eff = d(k - 1) + 1:

        size' = size + (k_eff - 1)*jump,   jump' = jump*stride,
        start' = start + ((k_eff - 1)/2 - padding)*jump
    """
    span = dilation * (kernel - 1)                                  # k_eff - 1
    return ReceptiveField(rf.size + span * rf.jump, rf.jump * stride,
                          rf.start + (Fraction(span, 2) - padding) * rf.jump)


def _neat(value: Any) -> int | float:
    """An exact Fraction as an int when whole, else a float (for printing and JSON)."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def receptive_field(layers: Sequence[Sequence[int]]) -> list[ReceptiveField]:
    """Receptive field after each layer of a chain of convolutions/poolings (notes 000 Q3).

    Args:
        layers: one ``(kernel, stride, padding)`` or ``(kernel, stride, padding, dilation)`` per
            layer, along one axis (axes are independent: run it once per axis for non-square
            kernels).

    Returns:
        one :class:`ReceptiveField` ``(size, jump, start)`` per layer, starting from the input's
        r_0 = 1, j_0 = 1, start_0 = 0.5.

    Example (notes 000 Q3)::

        >>> [rf.size for rf in receptive_field([(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0),
        ...                                     (3, 1, 1)])]
        [11, 19, 51, 67, 99]
    """
    fn = "receptive_field"
    rf = ReceptiveField(Fraction(1), Fraction(1), Fraction(1, 2))
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (3, 4):
            raise ValueError(f"{fn}: layers[{i}] must be (kernel, stride, padding) or (kernel, "
                             f"stride, padding, dilation), got {layer!r}")
        kernel = _check_int(layer[0], f"layers[{i}] kernel", 1, fn)
        stride = _check_int(layer[1], f"layers[{i}] stride", 1, fn)
        padding = _check_int(layer[2], f"layers[{i}] padding", 0, fn)
        dilation = _check_int(layer[3], f"layers[{i}] dilation", 1, fn) if len(layer) == 4 else 1
        rf = rf_step(rf, kernel, stride, padding, dilation)
        out.append(ReceptiveField(*(_neat(v) for v in rf)))
    return out


def conv_params(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                groups: int = 1, bias: bool = True) -> int:
    """Parameters of a convolution (notes 000 Q3: F*F*D*K; notes 001: h*w*c1*c2/g for groups).

    ``kernel_size``: an int for a square k x k kernel, or a tuple (any number of axes).

        params = out_channels * (in_channels / groups) * prod(kernel_size) + (out_channels if bias)

    The same count holds for a transposed convolution (its weight is (C_in, C_out/g, *k)).
    Default ``bias=True`` as ``nn.Conv2d``; the notes' examples count weights only (bias=False).
    """
    fn = "conv_params"
    c_in = _check_int(in_channels, "in_channels", 1, fn)
    c_out = _check_int(out_channels, "out_channels", 1, fn)
    g = _check_int(groups, "groups", 1, fn)
    kernel = _kernel(kernel_size, "kernel_size", fn)
    if c_in % g or c_out % g:
        raise ValueError(f"{fn}: in_channels ({c_in}) and out_channels ({c_out}) must both be "
                         f"divisible by groups ({g})")
    return c_out * (c_in // g) * math.prod(kernel) + (c_out if bias else 0)


def conv_macs(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
              output_size: int | Sequence[int], groups: int = 1, batch_size: int = 1) -> int:
    """Multiply-accumulates of a convolution (notes 003 "不考虑加法", notes 000 "No. of FLOPS"):

        MACs = batch_size * prod(output_size) * out_channels * (in_channels / groups) * prod(k)

    i.e. each weight is used once per output position. ``output_size`` is the spatial size of
    the output (an int for every axis, or one per axis); see :func:`conv_output_size`.
    """
    fn = "conv_macs"
    weights = conv_params(in_channels, out_channels, kernel_size, groups, bias=False)
    kernel = _kernel(kernel_size, "kernel_size", fn)
    out = _axes(output_size, "output_size", 1, fn)
    if len(out) == 1 and len(kernel) > 1:
        out = out * len(kernel)
    if len(out) != len(kernel):
        raise ValueError(f"{fn}: output_size {out} and kernel_size {kernel} must have the same "
                         "number of axes")
    n = _check_int(batch_size, "batch_size", 1, fn)
    return n * math.prod(out) * weights


def conv_flops(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
               output_size: int | Sequence[int], groups: int = 1, batch_size: int = 1) -> int:
    """FLOPs of a convolution with this module's convention: 2 * :func:`conv_macs` (one multiply
    and one add per MAC; exact with a bias, see the module docstring)."""
    return 2 * conv_macs(in_channels, out_channels, kernel_size, output_size, groups, batch_size)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a fully connected layer: in*out (+ out with a bias)."""
    fn = "linear_params"
    n_in = _check_int(in_features, "in_features", 1, fn)
    n_out = _check_int(out_features, "out_features", 1, fn)
    return n_in * n_out + (n_out if bias else 0)


def linear_macs(in_features: int, out_features: int, batch_size: int = 1) -> int:
    """Multiply-accumulates of a fully connected layer: batch_size * in * out (a 1x1 conv on a
    1x1 map)."""
    n = _check_int(batch_size, "batch_size", 1, "linear_macs")
    return n * linear_params(in_features, out_features, bias=False)


def depthwise_separable_params(in_channels: int, out_channels: int,
                               kernel_size: int | Sequence[int], bias: bool = False,
                               depth_multiplier: int = 1) -> int:
    """Parameters of a depthwise k x k conv (C_in*m filters of one channel) plus a pointwise
    1x1 conv (notes 001: 16*3*3 + 16*32 = 656 for 16 -> 32 channels, vs 4608 for one conv).

    ``bias`` gives both steps a bias, as ``nn.DepthwiseSeparableConv2d``; the notes count weights.
    """
    fn = "depthwise_separable_params"
    c_in = _check_int(in_channels, "in_channels", 1, fn)
    m = _check_int(depth_multiplier, "depth_multiplier", 1, fn)
    hidden = c_in * m
    return (conv_params(c_in, hidden, kernel_size, groups=c_in, bias=bias)
            + conv_params(hidden, out_channels, 1, bias=bias))


def depthwise_separable_macs(in_channels: int, out_channels: int,
                             kernel_size: int | Sequence[int], output_size: int | Sequence[int],
                             batch_size: int = 1, depth_multiplier: int = 1) -> int:
    """MACs of depthwise (k x k, groups = C_in) + pointwise (1x1) convolution at ``output_size``
    (notes 004 Q31: HW k^2 C_in + HW C_in C_out)."""
    fn = "depthwise_separable_macs"
    c_in = _check_int(in_channels, "in_channels", 1, fn)
    hidden = c_in * _check_int(depth_multiplier, "depth_multiplier", 1, fn)
    return (conv_macs(c_in, hidden, kernel_size, output_size, groups=c_in, batch_size=batch_size)
            + conv_macs(hidden, out_channels, 1, output_size, batch_size=batch_size))


def separable_cost_ratio(out_channels: int, kernel_size: int | Sequence[int]) -> Fraction:
    """The cost of a depthwise-separable convolution over that of the standard one, exactly
    1/C_out + 1/k^2 (notes 004 Q31), for both MACs and weights (as a Fraction)."""
    fn = "separable_cost_ratio"
    c_out = _check_int(out_channels, "out_channels", 1, fn)
    kernel = math.prod(_kernel(kernel_size, "kernel_size", fn))
    return Fraction(1, c_out) + Fraction(1, kernel)
