"""Convolution layers: ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``LocallyConnected2d`` and
``DepthwiseSeparableConv2d``. The math (im2col + GEMM, col2im) lives in ``ops.conv``."""

from __future__ import annotations

import math
from typing import Any

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, check_size, factory, is_int

_PADDING_STRINGS = ("same", "valid")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _as_set(names: tuple[str, ...]) -> str:
    """"{'a', 'b'}" in a fixed order (printing a Python set would vary between runs)."""
    return "{" + ", ".join(repr(n) for n in names) + "}"


def _to_tuple(value: Any, n: int) -> tuple[int, ...]:
    """int -> (int,)*n; a 1- or n-element sequence -> n-tuple (checked by check_size before)."""
    if is_int(value):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    return value * n if len(value) == 1 else value


class _ConvNd(Module):
    """What Conv1d/2d/3d and ConvTranspose1d/2d/3d share: argument checks, parameters, init, repr.

    Subclasses set ``_nd`` (spatial dimensions) and ``_transposed``; the weight is
    (C_out, C_in/groups, *k) for a convolution and (C_in, C_out/groups, *k) for a transposed one
    (PyTorch's layouts, so state_dicts move between the two frameworks).
    """

    _nd = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None,
                 output_padding: Any = 0):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        in_channels = check_count(in_channels, "in_channels", name)
        out_channels = check_count(out_channels, "out_channels", name)
        kernel_size = _to_tuple(check_size(kernel_size, "kernel_size", name, 1, nd), nd)
        stride = _to_tuple(check_size(stride, "stride", name, 1, nd), nd)
        dilation = _to_tuple(check_size(dilation, "dilation", name, 1, nd), nd)
        output_padding = _to_tuple(check_size(output_padding, "output_padding", name, 0, nd), nd)
        if not is_int(groups):
            raise TypeError(f"{name}: groups must be an int, got {groups!r}")
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels="
                             f"{in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels="
                             f"{out_channels}, groups={groups})")
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(f"{name}: padding must be an int or a tuple of ints, got "
                                 f"padding={padding!r} (PyTorch fails on a string only in forward)")
            if padding not in _PADDING_STRINGS:
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 f"{_as_set(_PADDING_STRINGS)}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _to_tuple(check_size(padding, "padding", name, 0, nd), nd)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_as_set(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        if padding_mode != "zeros":
            if self._transposed:
                raise ValueError(f'Only "zeros" padding mode is supported for {name}')
            raise NotImplementedError(f"{name}: only padding_mode='zeros' is implemented, got "
                                      f"padding_mode={padding_mode!r}")
        if self._transposed and any(op >= s and op >= d for op, s, d
                                    in zip(output_padding, stride, dilation)):
            raise ValueError(f"{name}: output_padding must be smaller than either stride or "
                             f"dilation, got output_padding={output_padding}, stride={stride}, "
                             f"dilation={dilation}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups, self.padding_mode = dilation, groups, padding_mode
        self.transposed, self.output_padding = self._transposed, output_padding
        if self._transposed:
            shape = (in_channels, out_channels // groups, *kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(factory(shape, device, dtype))
        if bias:
            self.bias = Parameter(factory((out_channels,), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with
        fan_in = weight.shape[1] * prod(kernel) (for a transposed conv that is C_out/groups * k,
        as in PyTorch, which applies the same rule to its transposed layout)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        nd = self._nd
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * nd:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


_CONV_DOC = """{d}-D convolution (cross-correlation) over an (N, C_in, {axes}) input (or unbatched).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or one int per spatial axis ({axes}).
        stride: int or one per axis, default 1.
        padding: int, one per axis, ``'valid'`` (none) or ``'same'`` (output size = input size,
            stride 1 only). Zeros are padded on both sides.
        dilation: int or one per axis, default 1 (dense kernel; notes 001 on dilated convolution).
        groups: split channels into this many independent convolutions; ``groups = C_in``
            is a depthwise convolution (notes 001, 004 Q31: 4608 vs 656 parameters).
        bias: learn a bias per output channel.
        padding_mode: only ``'zeros'`` is implemented.
        device: None or "cpu".
        dtype: parameter dtype (default float32).

    Shape:
        (N, C_in, {axes}) -> (N, C_out, {axes_out}) with, per axis,
        out = floor((in + 2 p - d (k - 1) - 1) / s) + 1   (notes 004 Q3).

    Attributes:
        weight: (C_out, C_in / groups, {kernel}), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
            fan_in = C_in / groups * prod(kernel) (PyTorch's default, kaiming_uniform_ with
            a=sqrt(5)).
        bias: (C_out,), same distribution.

    Raises:
        ValueError: non-positive channels, kernel_size, stride or dilation, negative padding,
            groups that do not divide the channels, an unknown padding string, 'same' with a
            stride, or an unknown padding_mode.
        NotImplementedError: padding_mode 'reflect', 'replicate' or 'circular'.

    Math: ops.conv.ConvNdFn (im2col + GEMM), docs/derivations/conv2d.md.
    """


class _Conv(_ConvNd):
    """Convolutions: PyTorch's exact constructor signature (no output_padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)


class Conv1d(_Conv):
    __doc__ = _CONV_DOC.format(d=1, axes="L", axes_out="L_out", kernel="k")
    _nd = 1

    def forward(self, input: Tensor) -> Tensor:
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv2d(_Conv):
    __doc__ = _CONV_DOC.format(d=2, axes="H, W", axes_out="H_out, W_out", kernel="kH, kW")
    _nd = 2

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv3d(_Conv):
    __doc__ = _CONV_DOC.format(d=3, axes="D, H, W", axes_out="D_out, H_out, W_out",
                               kernel="kD, kH, kW")
    _nd = 3

    def forward(self, input: Tensor) -> Tensor:
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class _ConvTransposeNd(_ConvNd):
    """Transposed convolutions: PyTorch's argument order (output_padding before groups)."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype, output_padding=output_padding)

    def _output_padding(self, input: Tensor, output_size: Any) -> tuple[int, ...]:
        """The output_padding that gives ``output_size`` (PyTorch's rule), or the layer's own."""
        if output_size is None:
            return self.output_padding
        nd = self._nd
        lead = 2 if input.ndim == nd + 2 else 1
        if len(output_size) == lead + nd:
            output_size = output_size[lead:]
        if len(output_size) != nd:
            raise ValueError(f"ConvTranspose{nd}D: for {input.ndim}D input, output_size must have "
                             f"{nd} or {lead + nd} elements (got {len(output_size)})")
        sizes = input.shape[-nd:]
        low = [(m - 1) * s - 2 * p + d * (k - 1) + 1 for m, s, p, d, k
               in zip(sizes, self.stride, self.padding, self.dilation, self.kernel_size)]
        high = [lo + s - 1 for lo, s in zip(low, self.stride)]
        if any(not lo <= o <= hi for o, lo, hi in zip(output_size, low, high)):
            raise ValueError(f"requested an output size of {output_size}, but valid sizes range "
                             f"from {low} to {high} (for an input of {list(sizes)})")
        return tuple(int(o) - lo for o, lo in zip(output_size, low))

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self._nd - 1]
        return fn(input, self.weight, self.bias, self.stride, self.padding,
                  self._output_padding(input, output_size), self.groups, self.dilation)


_CONV_TRANSPOSE_DOC = """{d}-D transposed convolution ("deconvolution") over an (N, C_in, {axes})
    input: the gradient of Conv{d}d with respect to its input, used as an upsampling layer
    (notes 001 "如何理解转置卷积", notes 004 Q38).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, groups, bias, dilation: as in
            Conv{d}d (they describe the convolution being transposed; padding is int or tuple).
        output_padding: added to one side of each output axis (< stride or < dilation): picks
            one of the sizes a strided convolution would map to the input's size.
        padding_mode: only ``'zeros'`` (as in PyTorch).

    forward(input, output_size=None): ``output_size`` asks for an exact output size instead of
    output_padding (within [min, min + stride - 1] per axis, as in PyTorch).

    Shape:
        out = (in - 1) s - 2 p + d (k - 1) + output_padding + 1 per axis (notes 001).

    Attributes:
        weight: (C_in, C_out / groups, {kernel}) (PyTorch's layout), U(-b, b) with
            b = 1/sqrt(C_out / groups * prod(kernel)) (PyTorch's fan_in rule on this layout).
        bias: (C_out,), same distribution.

    Math: ops.conv.ConvTransposeNdFn (GEMM + col2im), docs/derivations/conv_transpose.md.
    """


class ConvTranspose1d(_ConvTransposeNd):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=1, axes="L", kernel="k")
    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=2, axes="H, W", kernel="kH, kW")
    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    __doc__ = _CONV_TRANSPOSE_DOC.format(d=3, axes="D, H, W", kernel="kD, kH, kW")
    _nd = 3


class LocallyConnected2d(Module):
    """A convolution whose filters are *not shared* across positions (deepnotes only).

    Every output position (p, q) has its own bank of C_out filters of size C_in x kH x kW, so the
    layer keeps the convolution's local connectivity but drops its weight sharing (notes 002 Q7,
    notes 003): useful when the input is aligned, e.g. DeepFace's frontalised faces, where the eyes
    always sit in the same place and deserve different detectors than the mouth. The price is
    H_out*W_out times the parameters of the equivalent Conv2d, and a fixed input size.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        input_size: (H, W) of the inputs (int for square); fixes the number of positions.
        kernel_size, stride, padding: int or (h, w), as in Conv2d (zero padding).
        bias: learn one bias per output unit (C_out, H_out, W_out), also unshared.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out), H_out = (H + 2 pH - kH) // sH + 1.

    Attributes:
        weight: (H_out*W_out, C_out, C_in*kH*kW): row l = p*W_out + q holds position (p, q)'s
            filters, flattened in im2col's (c, i, j) order. U(-1/sqrt(K), 1/sqrt(K)), K = C_in*kH*kW
            (Conv2d's default bound, with the same fan_in).
        bias: (C_out, H_out, W_out), same distribution.

    Math: ops.conv.LocallyConnected2dFn (im2col, then one matmul per position, batched).
    """

    def __init__(self, in_channels: int, out_channels: int, input_size: Any, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        name = "LocallyConnected2d"
        self.in_channels = check_count(in_channels, "in_channels", name)
        self.out_channels = check_count(out_channels, "out_channels", name)
        self.input_size = _to_tuple(check_size(input_size, "input_size", name, 1), 2)
        self.kernel_size = _to_tuple(check_size(kernel_size, "kernel_size", name, 1), 2)
        self.stride = _to_tuple(check_size(stride, "stride", name, 1), 2)
        self.padding = _to_tuple(check_size(padding, "padding", name, 0), 2)
        out = [(m + 2 * p - k) // s + 1 for m, p, k, s
               in zip(self.input_size, self.padding, self.kernel_size, self.stride)]
        if min(out) < 1:
            raise ValueError(f"{name}: kernel_size {self.kernel_size} does not fit into "
                             f"input_size {self.input_size} with padding {self.padding}")
        self.output_size = (out[0], out[1])
        fan_in = self.in_channels * math.prod(self.kernel_size)
        self.weight = Parameter(factory((out[0] * out[1], self.out_channels, fan_in), device,
                                        dtype))
        if bias:
            self.bias = Parameter(factory((self.out_channels, *self.output_size), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(K), 1/sqrt(K)) with K = C_in*kH*kW, for the weight and the bias."""
        bound = 1 / math.sqrt(self.weight.shape[2])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        if tuple(input.shape[-2:]) != self.input_size:
            raise RuntimeError(f"LocallyConnected2d: expected input of spatial size "
                               f"{self.input_size} (fixed at construction), but got input of "
                               f"size {list(input.shape)}")
        return F.locally_connected2d(input, self.weight, self.bias, self.kernel_size,
                                     self.stride, self.padding)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


class DepthwiseSeparableConv2d(Module):
    """A depthwise convolution followed by a pointwise (1x1) one (MobileNet; notes 001, 004 Q31).

    ``depthwise``: Conv2d(C_in, C_in*m, k, groups=C_in), each input channel filtered on its own
    (m = depth_multiplier filters per channel); ``pointwise``: Conv2d(C_in*m, C_out, 1), which
    mixes the channels. Together they replace one k x k Conv2d(C_in, C_out).

    Cost (notes 004 Q31), weights without biases, output H x W:
        standard:  C_in*C_out*k^2            multiply-adds  H*W*C_in*C_out*k^2
        separable: C_in*m*k^2 + C_in*m*C_out multiply-adds  H*W*(C_in*m*k^2 + C_in*m*C_out)
    ratio (m = 1): 1/C_out + 1/k^2, so a 3x3 layer is roughly 8-9 times cheaper. Example: 3x3,
    16 -> 32 channels: 16*32*9 = 4608 weights vs 16*9 + 16*32 = 144 + 512 = 656.

    Args:
        in_channels, out_channels, kernel_size: as in Conv2d.
        stride, padding, dilation: of the depthwise convolution (the 1x1 one has none).
        bias: give both convolutions a bias.
        depth_multiplier: m, output channels of the depthwise step per input channel.

    Shape:
        as Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, bias: bool = True,
                 depth_multiplier: int = 1, device: Any = None, dtype: Any = None):
        super().__init__()
        name = "DepthwiseSeparableConv2d"
        in_channels = check_count(in_channels, "in_channels", name)
        multiplier = check_count(depth_multiplier, "depth_multiplier", name)
        hidden = in_channels * multiplier
        self.depthwise = Conv2d(in_channels, hidden, kernel_size, stride, padding, dilation,
                                groups=in_channels, bias=bias, device=device, dtype=dtype)
        self.pointwise = Conv2d(hidden, out_channels, 1, bias=bias, device=device, dtype=dtype)
        self.depth_multiplier = multiplier

    def forward(self, input: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(input))
