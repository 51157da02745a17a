"""Pooling layers in 1, 2 and 3 dimensions, unpooling, power-average pooling and spatial pyramid
pooling; the math (forward and the routing of gradients back) lives in ``ops.pool`` (notes 000 on
pooling backward)."""

from __future__ import annotations

from typing import Any

from ...ops import shape
from ...tensor import Tensor
from .. import functional as F
from ..module import Module
from ._common import check_count, check_size, is_int

_WORDS = {1: "one", 2: "two", 3: "three"}


def _as_tuple(value: Any, n: int) -> tuple[int, ...]:
    if is_int(value):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    return value * n if len(value) == 1 else value


class _MaxPoolNd(Module):
    """Maximum over each window; the gradient goes to the arg-max only (notes 000 Q2).

    Args:
        kernel_size: int or one int per spatial axis.
        stride: default ``kernel_size`` (non-overlapping windows).
        padding: implicit -inf padding on both sides, at most half the kernel.
        dilation: spacing between window elements.
        return_indices: also return the flat arg-max indices (for ``MaxUnpool``).
        ceil_mode: round the output size up instead of down.

    Shape:
        out = floor_or_ceil((in + 2 p - d (k - 1) - 1) / s) + 1 per axis.
    """

    _nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.kernel_size = check_size(kernel_size, "kernel_size", name, 1, nd)
        self.stride = self.kernel_size if stride is None else \
            check_size(stride, "stride", name, 1, nd)
        self.padding = check_size(padding, "padding", name, 0, nd)
        self.dilation = check_size(dilation, "dilation", name, 1, nd)
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Any:
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self._nd - 1]
        return fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                  ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    __doc__ = "1-D max pooling over (N, C, L). " + (_MaxPoolNd.__doc__ or "")
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    __doc__ = "2-D max pooling over (N, C, H, W). " + (_MaxPoolNd.__doc__ or "")
    _nd = 2


class MaxPool3d(_MaxPoolNd):
    __doc__ = "3-D max pooling over (N, C, D, H, W). " + (_MaxPoolNd.__doc__ or "")
    _nd = 3


class _AvgPoolNd(Module):
    """Mean over each window; the gradient is spread evenly over the window (notes 000 Q2).

    Args:
        kernel_size: int or one int per spatial axis.
        stride: default ``kernel_size``.
        padding: implicit zero padding on both sides, at most half the kernel.
        ceil_mode: round the output size up instead of down.
        count_include_pad: count padded zeros in the divisor (default True, as PyTorch).
        divisor_override: divide by this instead of the window size (2-D and 3-D only).
    """

    _nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.kernel_size = check_size(kernel_size, "kernel_size", name, 1, nd)
        self.stride = self.kernel_size if stride is None else \
            check_size(stride, "stride", name, 1, nd)
        self.padding = check_size(padding, "padding", name, 0, nd)
        if divisor_override is not None and (not is_int(divisor_override)
                                             or divisor_override == 0):
            raise ValueError(f"{name}: divisor_override must be a non-zero int or None, got "
                             f"{divisor_override!r}")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        fn = (F.avg_pool2d, F.avg_pool3d)[self._nd - 2]
        return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                  self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling over (N, C, L): mean over each window (no divisor_override, as in
    PyTorch). Arguments as :class:`AvgPool2d`; kernel_size, stride and padding are kept as
    1-tuples, as PyTorch does."""

    _nd = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.kernel_size = _as_tuple(self.kernel_size, 1)
        self.stride = _as_tuple(self.stride, 1)
        self.padding = _as_tuple(self.padding, 1)

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    __doc__ = "2-D average pooling over (N, C, H, W). " + (_AvgPoolNd.__doc__ or "")
    _nd = 2


class AvgPool3d(_AvgPoolNd):
    __doc__ = "3-D average pooling over (N, C, D, H, W). " + (_AvgPoolNd.__doc__ or "")
    _nd = 3


def _check_output_size(output_size: Any, layer: str, n: int = 2) -> Any:
    items = (output_size,) if is_int(output_size) or output_size is None else output_size
    if not isinstance(items, tuple | list) or len(items) not in (1, n) or not all(
        v is None or is_int(v) for v in items
    ):
        raise TypeError(f"{layer}: output_size must be an int or a tuple of {n} ints (or None), "
                        f"got {output_size!r}")
    if any(v is not None and v <= 0 for v in items):
        raise ValueError(f"{layer}: output_size must be positive, got {output_size!r}")
    return tuple(output_size) if isinstance(output_size, list) else output_size


class _AdaptiveAvgPoolNd(Module):
    """Average pooling to a fixed output size, whatever the input size.

    Output cell i covers input positions floor(i S / S_out) .. ceil((i + 1) S / S_out) - 1 along
    each axis. ``output_size`` is an int, a tuple, or (2-D/3-D) a tuple with None (keep that input
    size). ``output_size=1`` is global average pooling.
    """

    _nd = 2

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = _check_output_size(output_size, type(self).__name__, self._nd)

    def forward(self, input: Tensor) -> Tensor:
        fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[self._nd - 1]
        return fn(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    __doc__ = "Adaptive average pooling of (N, C, L). " + (_AdaptiveAvgPoolNd.__doc__ or "")
    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    __doc__ = "Adaptive average pooling of (N, C, H, W). " + (_AdaptiveAvgPoolNd.__doc__ or "")
    _nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    __doc__ = "Adaptive average pooling of (N, C, D, H, W). " + (_AdaptiveAvgPoolNd.__doc__ or "")
    _nd = 3


class _AdaptiveMaxPoolNd(Module):
    """Max pooling to a fixed output size, with the same bins as adaptive average pooling.

    ``return_indices=True`` also returns the flat arg-max positions.
    """

    _nd = 2

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size = _check_output_size(output_size, type(self).__name__, self._nd)
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:
        fn = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[self._nd - 1]
        return fn(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    __doc__ = "Adaptive max pooling of (N, C, L). " + (_AdaptiveMaxPoolNd.__doc__ or "")
    _nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    __doc__ = "Adaptive max pooling of (N, C, H, W). " + (_AdaptiveMaxPoolNd.__doc__ or "")
    _nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    __doc__ = "Adaptive max pooling of (N, C, D, H, W). " + (_AdaptiveMaxPoolNd.__doc__ or "")
    _nd = 3


class _MaxUnpoolNd(Module):
    """The partial inverse of max pooling: each value goes back to its arg-max, zeros elsewhere.

    Args:
        kernel_size, stride (default kernel_size), padding: those of the max pooling to undo.

    forward(input, indices, output_size=None): ``indices`` from the pooling's
    ``return_indices=True``; ``output_size`` chooses among the input sizes that pool to the same
    size (e.g. 7 and 6 both pool to 3 with a 2x2 window).

    Shape:
        out = (in - 1) s - 2 p + k per axis by default.
    """

    _nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        self.kernel_size = _as_tuple(check_size(kernel_size, "kernel_size", name, 1, nd), nd)
        self.stride = self.kernel_size if stride is None else \
            _as_tuple(check_size(stride, "stride", name, 1, nd), nd)
        self.padding = _as_tuple(check_size(padding, "padding", name, 0, nd), nd)

    def forward(self, input: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        fn = (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d)[self._nd - 1]
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    __doc__ = "1-D max unpooling of (N, C, L). " + (_MaxUnpoolNd.__doc__ or "")
    _nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    __doc__ = "2-D max unpooling of (N, C, H, W). " + (_MaxUnpoolNd.__doc__ or "")
    _nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    __doc__ = "3-D max unpooling of (N, C, D, H, W). " + (_MaxUnpoolNd.__doc__ or "")
    _nd = 3


class _LPPoolNd(Module):
    """Power-average pooling: y = (sum over the window of x^p)^(1/p).

    p = 1 is sum pooling, p = 2 the window's L2 norm (for x >= 0), p = inf max pooling of |x|
    (between average and max pooling, notes 000 on pooling). No padding, as in PyTorch.

    Args:
        norm_type: p (non-zero number).
        kernel_size: int or one int per axis.
        stride: default ``kernel_size``.
        ceil_mode: round the output size up.
    """

    _nd = 2

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__()
        name, nd = type(self).__name__, self._nd
        if isinstance(norm_type, bool) or not isinstance(norm_type, int | float):
            raise TypeError(f"{name}: norm_type must be a number, got {norm_type!r}")
        if norm_type == 0:
            raise ValueError(f"{name}: norm_type must be non-zero, got {norm_type}")
        self.norm_type = norm_type
        self.kernel_size = check_size(kernel_size, "kernel_size", name, 1, nd)
        self.stride = None if stride is None else check_size(stride, "stride", name, 1, nd)
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        fn = (F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)[self._nd - 1]
        return fn(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    __doc__ = "1-D power-average pooling of (N, C, L). " + (_LPPoolNd.__doc__ or "")
    _nd = 1


class LPPool2d(_LPPoolNd):
    __doc__ = "2-D power-average pooling of (N, C, H, W). " + (_LPPoolNd.__doc__ or "")
    _nd = 2


class LPPool3d(_LPPoolNd):
    __doc__ = "3-D power-average pooling of (N, C, D, H, W). " + (_LPPoolNd.__doc__ or "")
    _nd = 3


class SpatialPyramidPooling(Module):
    """Spatial pyramid pooling (SPP-Net, He et al. 2014; notes 000 on pooling, 004 on SPP-Net).

    Pools the feature map at several grid sizes, levels (1, 2, 4) giving 1x1, 2x2 and 4x4 grids,
    flattens each and concatenates them: a vector of fixed length C * sum(l*l) for *any* input
    size, so that a network with fully connected layers accepts images of any size (and the
    pyramid describes the map at several scales).

    The grid cells are PyTorch's adaptive-pooling bins (cell i of n covers rows
    floor(i H / n) .. ceil((i + 1) H / n) - 1), i.e. the layer is a concatenation of adaptive
    pools; the paper sizes its windows ceil(H / n) with stride floor(H / n), which gives the same
    cells whenever n divides H.

    Args:
        levels: grid sizes, each a positive int (default (1, 2, 4): 21 cells per channel).
        mode: ``"max"`` (as in the paper) or ``"avg"``.

    Shape:
        (N, C, H, W) -> (N, C * sum(l*l)); (C, H, W) -> (C * sum(l*l),). Per level, the C*l*l
        values are in (c, row, column) order.
    """

    def __init__(self, levels: Any = (1, 2, 4), mode: str = "max"):
        super().__init__()
        if is_int(levels):
            levels = (levels,)
        if not isinstance(levels, tuple | list) or not levels:
            raise TypeError(f"SpatialPyramidPooling: levels must be a non-empty tuple of ints, "
                            f"got {levels!r}")
        self.levels = tuple(check_count(level, "levels", "SpatialPyramidPooling")
                            for level in levels)
        if mode not in ("max", "avg"):
            raise ValueError(f"SpatialPyramidPooling: mode must be 'max' or 'avg', got {mode!r}")
        self.mode = mode

    def output_features(self, channels: int) -> int:
        """Length of the output vector for ``channels`` input channels: C * sum(l*l)."""
        return channels * sum(level * level for level in self.levels)

    def forward(self, input: Tensor) -> Tensor:
        pool = F.adaptive_max_pool2d if self.mode == "max" else F.adaptive_avg_pool2d
        parts = [shape.flatten(pool(input, level), -3) for level in self.levels]
        return shape.cat(parts, -1)                        # (N, C * sum(l*l))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}"
