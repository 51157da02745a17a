"""Pooling layers; the math (forward and the routing of gradients back) lives in ``ops.pool``
(notes 000 on pooling backward)."""

from __future__ import annotations

from typing import Any

from ...tensor import Tensor
from .. import functional as F
from ..module import Module
from ._common import check_size, is_int


class MaxPool2d(Module):
    """Maximum over each kH x kW window; the gradient goes to the arg-max only.

    Args:
        kernel_size: int or (kH, kW).
        stride: default ``kernel_size`` (non-overlapping windows).
        padding: implicit -inf padding on both sides, at most half the kernel.
        dilation: spacing between window elements.
        return_indices: also return the flat arg-max indices (for ``MaxUnpool2d``).
        ceil_mode: round the output size up instead of down.

    Shape:
        H_out = floor_or_ceil((H + 2 p - d (k - 1) - 1) / s) + 1, W_out likewise.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = check_size(kernel_size, "kernel_size", "MaxPool2d", 1)
        self.stride = self.kernel_size if stride is None else \
            check_size(stride, "stride", "MaxPool2d", 1)
        self.padding = check_size(padding, "padding", "MaxPool2d", 0)
        self.dilation = check_size(dilation, "dilation", "MaxPool2d", 1)
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Any:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over each kH x kW window; the gradient is spread evenly over the window.

    Args:
        kernel_size: int or (kH, kW).
        stride: default ``kernel_size``.
        padding: implicit zero padding on both sides, at most half the kernel.
        ceil_mode: round the output size up instead of down.
        count_include_pad: count padded zeros in the divisor (default True, as PyTorch).
        divisor_override: divide by this instead of the window size.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__()
        self.kernel_size = check_size(kernel_size, "kernel_size", "AvgPool2d", 1)
        self.stride = self.kernel_size if stride is None else \
            check_size(stride, "stride", "AvgPool2d", 1)
        self.padding = check_size(padding, "padding", "AvgPool2d", 0)
        if divisor_override is not None and (not is_int(divisor_override)
                                             or divisor_override == 0):
            raise ValueError(f"AvgPool2d: divisor_override must be a non-zero int or None, got "
                             f"{divisor_override!r}")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _check_output_size(output_size: Any, layer: str) -> Any:
    items = (output_size,) if is_int(output_size) or output_size is None else output_size
    if not isinstance(items, tuple | list) or len(items) not in (1, 2) or not all(
        v is None or is_int(v) for v in items
    ):
        raise TypeError(f"{layer}: output_size must be an int or a tuple of 2 ints (or None), got "
                        f"{output_size!r}")
    if any(v is not None and v <= 0 for v in items):
        raise ValueError(f"{layer}: output_size must be positive, got {output_size!r}")
    return tuple(output_size) if isinstance(output_size, list) else output_size


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (H_out, W_out), whatever the input size.

    Output cell i covers input rows floor(i H / H_out) .. ceil((i + 1) H / H_out) - 1.
    ``output_size`` is an int, a pair, or a pair with None (keep that input dimension).
    ``AdaptiveAvgPool2d(1)`` is global average pooling.
    """

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = _check_output_size(output_size, "AdaptiveAvgPool2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size, with the same bins as :class:`AdaptiveAvgPool2d`.

    ``return_indices=True`` also returns the flat arg-max positions.
    """

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size = _check_output_size(output_size, "AdaptiveMaxPool2d")
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
