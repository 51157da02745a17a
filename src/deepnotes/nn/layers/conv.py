"""``Conv2d``: the convolution layer. The math (im2col + GEMM) lives in ``ops.conv``."""

from __future__ import annotations

import math
from typing import Any

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, check_size, factory, is_int, to_pair

_PADDING_STRINGS = ("same", "valid")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _as_set(names: tuple[str, ...]) -> str:
    """"{'a', 'b'}" in a fixed order (printing a Python set would vary between runs)."""
    return "{" + ", ".join(repr(n) for n in names) + "}"


class Conv2d(Module):
    """2-D convolution (cross-correlation) over an (N, C_in, H, W) input.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or (kH, kW).
        stride: int or (sH, sW), default 1.
        padding: int, (pH, pW), ``'valid'`` (none) or ``'same'`` (output size = input size,
            stride 1 only). Zeros are padded on both sides.
        dilation: int or (dH, dW), default 1 (dense kernel; notes 001 on dilated convolution).
        groups: split channels into this many independent convolutions; ``groups = C_in``
            is a depthwise convolution (notes 001, 004: 4608 vs 656 parameters).
        bias: learn a bias per output channel.
        padding_mode: only ``'zeros'`` is implemented.
        device: None or "cpu".
        dtype: parameter dtype (default float32).

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
        H_out = floor((H + 2 pH - dH (kH - 1) - 1) / sH) + 1   (notes 004 Q3), W_out likewise.

    Attributes:
        weight: (C_out, C_in / groups, kH, kW), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
            fan_in = C_in / groups * kH * kW (PyTorch's default, kaiming_uniform_ with a=sqrt(5)).
        bias: (C_out,), same distribution.

    Raises:
        ValueError: non-positive channels, kernel_size, stride or dilation, negative padding,
            groups that do not divide the channels, an unknown padding string, 'same' with a
            stride, or an unknown padding_mode.
        NotImplementedError: padding_mode 'reflect', 'replicate' or 'circular'.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        super().__init__()
        in_channels = check_count(in_channels, "in_channels", "Conv2d")
        out_channels = check_count(out_channels, "out_channels", "Conv2d")
        kernel_size = to_pair(check_size(kernel_size, "kernel_size", "Conv2d", 1))
        stride = to_pair(check_size(stride, "stride", "Conv2d", 1))
        dilation = to_pair(check_size(dilation, "dilation", "Conv2d", 1))
        if not is_int(groups):
            raise TypeError(f"Conv2d: groups must be an int, got {groups!r}")
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels="
                             f"{in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels="
                             f"{out_channels}, groups={groups})")
        if isinstance(padding, str):
            if padding not in _PADDING_STRINGS:
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 f"{_as_set(_PADDING_STRINGS)}")
            if padding == "same" and stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = to_pair(check_size(padding, "padding", "Conv2d", 0))
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_as_set(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: only padding_mode='zeros' is implemented, got "
                                      f"padding_mode={padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups, self.padding_mode = dilation, groups, padding_mode
        self.transposed, self.output_padding = False, (0, 0)
        shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(factory(shape, device, dtype))
        if bias:
            self.bias = Parameter(factory((out_channels,), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
