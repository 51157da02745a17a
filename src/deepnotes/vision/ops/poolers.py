"""Multi-scale RoI Align for a feature pyramid (FPN, Lin et al. 2017; torchvision's
``MultiScaleRoIAlign``).

FPN reads each RoI from the pyramid level whose scale suits it (eq. 1 of the paper):
    k = floor(k0 + log2(sqrt(w h) / s0) + eps),  clamped to the levels present
with canonical size s0 (224, an ImageNet crop) mapped to level k0 (4). A level k has stride 2^k.
Small images (the 64x64 shapes) call for a smaller ``canonical_scale``.
"""

from __future__ import annotations

import math

import numpy as np

from ...autograd import Function
from ...nn.module import Module
from ...ops import shape as _shape
from ...tensor import Tensor
from .roi import convert_boxes_to_roi_format, roi_align


class TakeRowsFn(Function):
    """y = x[index] for an index array that picks each row at most once (a selection or a
    permutation). Backward: dL/dx[index] = dL/dy, rows not picked get 0 (plain assignment, not
    the scatter-add a general integer index needs)."""

    def __init__(self, index: np.ndarray) -> None:
        self.index = index

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        grad_x = np.zeros(self.x_shape, dtype=grad_y.dtype)
        grad_x[self.index] = grad_y
        return grad_x


def take_rows(x: Tensor, index: np.ndarray) -> Tensor:
    """``x[index]`` along dim 0 for distinct indices, with a cheap backward (see TakeRowsFn)."""
    index = np.asarray(index, dtype=np.int64)
    if len(np.unique(index)) != len(index):
        raise ValueError("take_rows(): index should not repeat a row")
    return TakeRowsFn(index)(x)


class MultiScaleRoIAlign(Module):
    """RoI Align over the levels ``featmap_names`` of a dict of feature maps.

    forward(x: dict[str, Tensor], boxes: list[Tensor[L_i, 4]], image_shapes: list[(H, W)])
    -> Tensor[sum L_i, C, PH, PW], rows in the order of the concatenated boxes.
    """

    def __init__(self, featmap_names: list[str], output_size: int | tuple[int, int],
                 sampling_ratio: int, *, canonical_scale: int = 224,
                 canonical_level: int = 4) -> None:
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def map_levels(self, boxes: np.ndarray, scales: list[float]) -> np.ndarray:
        """Pyramid level index (0 = the first of ``featmap_names``) of each box."""
        k_min = -math.log2(scales[0])
        k_max = -math.log2(scales[-1])
        size = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        with np.errstate(divide="ignore"):
            k = np.floor(self.canonical_level + np.log2(size / self.canonical_scale) + 1e-6)
        return (np.clip(k, k_min, k_max) - k_min).astype(np.int64)

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> Tensor:
        features = [x[name] for name in self.featmap_names]
        image_h = max(s[0] for s in image_shapes)
        scales = [2.0 ** round(math.log2(f.shape[-2] / image_h)) for f in features]
        rois = convert_boxes_to_roi_format(list(boxes))                     # (K, 5)
        if len(features) == 1 or len(rois) == 0:
            return roi_align(features[0], rois, self.output_size, scales[0], self.sampling_ratio)
        levels = self.map_levels(rois.data[:, 1:], scales)
        parts, order = [], []
        for level, (feature, scale) in enumerate(zip(features, scales)):
            idx = np.flatnonzero(levels == level)
            if len(idx) == 0:
                continue
            parts.append(roi_align(feature, Tensor._wrap(rois.data[idx]), self.output_size,
                                   scale, self.sampling_ratio))
            order.append(idx)
        out = _shape.cat(parts, dim=0) if len(parts) > 1 else parts[0]
        inverse = np.argsort(np.concatenate(order))                          # back to box order
        return take_rows(out, inverse)

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")
