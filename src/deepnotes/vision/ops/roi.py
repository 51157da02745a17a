"""RoI Pooling and RoI Align: a fixed-size feature for every region of interest (notes 003,
"RoI Pooling vs RoI Align"; notes 004, Fast R-CNN / Mask R-CNN).

Both cut a box out of a feature map and divide it into ``output_size`` = (PH, PW) bins.
RoI Pooling (Fast R-CNN) *rounds* the box to whole feature cells, rounds each bin's borders
(floor of the start, ceil of the end) and takes the max of each bin. The rounding misaligns the
feature with the box by up to a cell: a whole ``1/spatial_scale`` pixels (16 in VGG16).
RoI Align (Mask R-CNN) rounds nothing: it samples ``sampling_ratio``^2 points on a regular grid in
each bin, reads each point by *bilinear interpolation* of its four neighbouring cells, and
averages them. The output is then a smooth function of the box coordinates.

Boxes come as a Tensor[K, 5] of rows ``(batch_index, x1, y1, x2, y2)`` or as a list of
Tensor[L_i, 4], one per image, in image coordinates; ``spatial_scale`` (e.g. 1/16) maps them onto
the feature map. Neither op has a gradient with respect to the boxes (as in torchvision).

Worked example (checked in tests/vision/test_roi.py). Feature map 4x4, x[h, w] = 4h + w:

         w=0  1   2   3
    h=0    0  1   2   3
    h=1    4  5   6   7
    h=2    8  9  10  11
    h=3   12 13  14  15

RoI Align, box (0.5, 0.5, 2.5, 2.5), output 2x2, sampling_ratio=1, aligned=False,
spatial_scale=1: the box is 2x2 cells, each bin 1x1, its one sample sits at the bin centre:
(y, x) = (1, 1), (1, 2), (2, 1), (2, 2), which are grid points, so the output is
[[5, 6], [9, 10]]. With aligned=True the box shifts by -0.5 to (0, 0, 2, 2): samples at
(0.5, 0.5), ... -> bilinear means of four cells: [[2.5, 3.5], [6.5, 7.5]].
Gradient of out[0, 0] (aligned=True) w.r.t. x: 1/4 on each of x[0:2, 0:2].

RoI Pooling, box (0.4, 0.6, 2.6, 2.4), output 2x2, scale 1: round -> (0, 1, 3, 2), i.e. columns
0..3 and rows 1..2 (the end cell is included: width 4, height 2); bins are 1 row x 2 columns:
[[max(4, 5), max(6, 7)], [max(8, 9), max(10, 11)]] = [[5, 7], [9, 11]]; the gradient of each
output goes to its arg-max cell only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import backend
from ...autograd import Function
from ...nn.module import Module
from ...ops._util import check_tensor
from ...tensor import Tensor


def _pair_size(value: Any, name: str, op: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, tuple | list) or len(value) != 2
            or not all(isinstance(v, int | np.integer) and v > 0 for v in value)):
        raise ValueError(f"{op}(): {name} should be a positive int or a pair of them, "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


def convert_boxes_to_roi_format(boxes: list[Tensor]) -> Tensor:
    """List of Tensor[L_i, 4] -> Tensor[sum L_i, 5] with the image index in column 0."""
    rows = [np.concatenate([np.full((len(b), 1), i, dtype=b.data.dtype), b.data], axis=1)
            for i, b in enumerate(boxes)]
    if not rows:
        return Tensor._wrap(np.zeros((0, 5), dtype=np.float32))
    return Tensor._wrap(np.concatenate(rows, axis=0))  # (K, 5)


def _rois(input: Any, boxes: Any, op: str) -> np.ndarray:
    """Check ``input`` and ``boxes`` and return the (K, 5) array of RoIs in input's dtype."""
    check_tensor(input, "input", op)
    if input.ndim != 4:
        raise ValueError(f"{op}(): input should be (N, C, H, W), got shape {tuple(input.shape)}")
    if isinstance(boxes, list | tuple):
        for i, b in enumerate(boxes):
            check_tensor(b, f"boxes[{i}]", op)
            if b.ndim != 2 or b.shape[1] != 4:
                raise ValueError(f"{op}(): boxes[{i}] should be Tensor[L, 4], got shape "
                                 f"{tuple(b.shape)}")
        if len(boxes) > input.shape[0]:
            raise ValueError(f"{op}(): {len(boxes)} box tensors for a batch of "
                             f"{input.shape[0]} images")
        boxes = convert_boxes_to_roi_format(list(boxes))
    elif isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{op}(): boxes should be Tensor[K, 5], got shape "
                             f"{tuple(boxes.shape)}")
    else:
        raise TypeError(f"{op}(): boxes should be a Tensor[K, 5] or a list of Tensor[L, 4], "
                        f"got {type(boxes).__name__}")
    rois = boxes.data.astype(input.data.dtype, copy=False)
    index = rois[:, 0]
    if len(rois) and (index.min() < 0 or index.max() >= input.shape[0]
                      or np.any(index != np.round(index))):
        raise ValueError(f"{op}(): batch indices in boxes[:, 0] should be integers in "
                         f"[0, {input.shape[0] - 1}], got {np.unique(index)}")
    return rois


# -- RoI Align ----------------------------------------------------------------------------------


def roi_align_axis_weights(start: np.ndarray, bin_size: np.ndarray, grid: np.ndarray,
                           pooled: int, size: int) -> np.ndarray:
    """Interpolation matrix A (K, pooled, size) of RoI Align along one axis.

    Bin p of RoI k has ``grid[k]`` samples at  pos = start + p*bin + (i + 0.5)*bin/grid,
    i = 0..grid-1. A sample outside [-1, size] reads 0; otherwise it is clamped to >= 0 and read
    by linear interpolation between cells low = floor(pos) and low + 1 (both the last cell once
    low >= size - 1). A[k, p, j] = (1/grid) * sum_i (weight of cell j for sample i), so the
    average over a bin's grid of bilinear samples factorises into Ay @ x @ Ax^T.
    """
    xp = backend.array_module(start)
    k = len(start)
    g_max = max(int(grid.max()) if k else 1, 1)
    p = xp.arange(pooled, dtype=start.dtype)[None, :, None]                        # (1, P, 1)
    i = xp.arange(g_max, dtype=start.dtype)[None, None, :]                         # (1, 1, G)
    g = grid.astype(start.dtype)[:, None, None]                                     # (K, 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # grid 0: masked out below
        pos = (start[:, None, None] + p * bin_size[:, None, None]
               + (i + 0.5) * bin_size[:, None, None] / g)                          # (K, P, G)
    valid = (pos >= -1.0) & (pos <= size) & (i < g)
    pos = xp.where(valid, xp.maximum(pos, 0), 0)
    low = pos.astype(np.int64)                       # truncation == floor for pos >= 0
    at_end = low >= size - 1
    low = xp.where(at_end, size - 1, low)
    high = xp.where(at_end, size - 1, low + 1)
    frac = xp.where(at_end, 0, pos - low)
    w_low = (1 - frac) * valid
    w_high = frac * valid
    cells = xp.arange(size)                                                         # (S,)
    a = ((low[..., None] == cells) * w_low[..., None]
         + (high[..., None] == cells) * w_high[..., None]).sum(axis=2)             # (K, P, S)
    return (a / xp.maximum(g, 1)).astype(start.dtype)


class RoIAlignFn(Function):
    """RoI Align (He et al., Mask R-CNN 2017; torchvision.ops.roi_align).

    x (N, C, H, W), rois (K, 5) -> y (K, C, PH, PW).  For RoI k on image n = rois[k, 0]:
        offset = 0.5 if aligned else 0;  start = box * spatial_scale - offset
        roi_h = end_y - start_y (at least 1 when not aligned); bin_h = roi_h / PH (same for w)
        grid_h = sampling_ratio if > 0 else ceil(roi_h / PH)    (adaptive, per RoI; same for w)
        y[k, c, p, q] = 1/(grid_h*grid_w) * sum_{i,j} bilinear(x[n, c], sy_{p,i}, sx_{q,j})
    Bilinear interpolation is separable, so with the axis matrices A_y (K, PH, H) and
    A_x (K, PW, W) of :func:`roi_align_axis_weights`:
        y[k, c] = A_y[k] @ x[n, c] @ A_x[k]^T
    Backward: y is linear in x, so with g = dL/dy[k, c],
        dL/dx[n, c] = sum over RoIs k of image n of  A_y[k]^T @ g @ A_x[k]
    (each sample hands its share of the bin's gradient back to its four cells, weighted by its
    bilinear weights). No gradient for the boxes.
    """

    def __init__(self, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                 aligned: bool) -> None:
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def _matrices(self, rois: np.ndarray, height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        xp = backend.array_module(rois)
        ph, pw = self.output_size
        offset = 0.5 if self.aligned else 0.0
        start = rois[:, 1:] * rois.dtype.type(self.spatial_scale) - offset  # (K, 4) x1 y1 x2 y2
        roi_w = start[:, 2] - start[:, 0]
        roi_h = start[:, 3] - start[:, 1]
        if not self.aligned:
            roi_w, roi_h = xp.maximum(roi_w, 1.0), xp.maximum(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        if self.sampling_ratio > 0:
            grid_h = grid_w = xp.full(len(rois), self.sampling_ratio, dtype=np.int64)
        else:
            grid_h = xp.ceil(roi_h / ph).astype(np.int64)
            grid_w = xp.ceil(roi_w / pw).astype(np.int64)
        a_y = roi_align_axis_weights(start[:, 1], bin_h, grid_h, ph, height)  # (K, PH, H)
        a_x = roi_align_axis_weights(start[:, 0], bin_w, grid_w, pw, width)   # (K, PW, W)
        return a_y, a_x

    def forward(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        xp = backend.array_module(x)
        n, c, h, w = x.shape
        ph, pw = self.output_size
        k = len(rois)
        a_y, a_x = self._matrices(rois, h, w)
        batch = rois[:, 0].astype(np.int64)
        y = xp.zeros((k, c, ph, pw), dtype=x.dtype)
        for image in np.unique(batch):
            sel = np.flatnonzero(batch == image)
            m = len(sel)
            x_rows = x[image].transpose(1, 0, 2).reshape(h, c * w)                 # (H, C*W)
            t = a_y[sel].reshape(m * ph, h) @ x_rows                               # (m*PH, C*W)
            t = t.reshape(m, ph * c, w) @ a_x[sel].transpose(0, 2, 1)              # (m, PH*C, PW)
            y[sel] = t.reshape(m, ph, c, pw).transpose(0, 2, 1, 3)                 # (m, C, PH, PW)
        self.save_for_backward(a_y, a_x, batch)
        self.x_shape = x.shape
        return y

    def backward(self, grad_y: np.ndarray) -> tuple[np.ndarray | None, None]:
        a_y, a_x, batch = self.saved
        xp = backend.array_module(grad_y)
        n, c, h, w = self.x_shape
        ph, pw = self.output_size
        if not self.needs_input_grad[0]:
            return None, None
        grad_x = xp.zeros(self.x_shape, dtype=grad_y.dtype)
        for image in np.unique(batch):
            sel = np.flatnonzero(batch == image)
            m = len(sel)
            g = grad_y[sel].transpose(0, 2, 1, 3).reshape(m, ph * c, pw)           # (m, PH*C, PW)
            t = (g @ a_x[sel]).reshape(m * ph, c * w)                              # (m*PH, C*W)
            rows = a_y[sel].reshape(m * ph, h).T @ t                               # (H, C*W)
            grad_x[image] += rows.reshape(h, c, w).transpose(1, 0, 2)              # (C, H, W)
        return grad_x, None


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False
              ) -> Tensor:
    """torchvision.ops.roi_align: bilinear RoI features; see :class:`RoIAlignFn`.

    Args:
        input: (N, C, H, W) feature map.
        boxes: Tensor[K, 5] rows (batch_index, x1, y1, x2, y2), or a list of Tensor[L, 4].
        output_size: (PH, PW) or an int.
        spatial_scale: factor from box coordinates to feature cells (1/stride).
        sampling_ratio: samples per bin along each axis; <= 0 (-1 or 0) means adaptive,
            ceil(roi_size / output_size) per RoI, as torchvision.
        aligned: shift the box by -0.5 cell so that pixel centres line up (Detectron2's fix).
    Shape: (K, C, PH, PW).
    """
    size = _pair_size(output_size, "output_size", "roi_align")
    rois = _rois(input, boxes, "roi_align")
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int | np.integer):
        raise TypeError(f"roi_align(): sampling_ratio should be an int, got {sampling_ratio!r}")
    return RoIAlignFn(size, float(spatial_scale), int(sampling_ratio), bool(aligned))(
        input, Tensor._wrap(rois))


# -- RoI Pooling --------------------------------------------------------------------------------


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C's round(): halves go away from zero (NumPy's round goes to the even neighbour)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


class RoIPoolFn(Function):
    """RoI max pooling (Girshick, Fast R-CNN 2015; torchvision.ops.roi_pool).

    x (N, C, H, W), rois (K, 5) -> y (K, C, PH, PW).  For RoI k on image n:
        x1, y1, x2, y2 = round(box * spatial_scale)            (round half away from zero)
        roi_w = max(x2 - x1 + 1, 1), bin_w = roi_w / PW        (the end cell is included)
        bin q covers columns [floor(q*bin_w), ceil((q+1)*bin_w)) + x1, clipped to [0, W]
        y[k, c, p, q] = max of x[n, c] over the bin (0 for an empty bin)
    Backward: max routes the gradient (notes 000 Q2): dL/dx[n, c, argmax] += dL/dy[k, c, p, q];
    the arg-max is the first maximum in row-major order. No gradient for the boxes.
    """

    def __init__(self, output_size: tuple[int, int], spatial_scale: float) -> None:
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, x: np.ndarray, rois: np.ndarray) -> np.ndarray:
        xp = backend.array_module(x)
        n, c, h, w = x.shape
        ph, pw = self.output_size
        k = len(rois)
        y = xp.zeros((k, c, ph, pw), dtype=x.dtype)
        argmax = xp.full((k, c, ph, pw), -1, dtype=np.int64)  # flat index h*W + w, -1 if empty
        corners = _round_half_away(rois[:, 1:] * rois.dtype.type(self.spatial_scale))
        corners = corners.astype(np.int64)
        for r in range(k):
            image = int(rois[r, 0])
            x1, y1, x2, y2 = corners[r]
            bin_h = rois.dtype.type(max(y2 - y1 + 1, 1)) / ph
            bin_w = rois.dtype.type(max(x2 - x1 + 1, 1)) / pw
            for p in range(ph):
                h0 = min(max(int(np.floor(p * bin_h)) + y1, 0), h)
                h1 = min(max(int(np.ceil((p + 1) * bin_h)) + y1, 0), h)
                for q in range(pw):
                    w0 = min(max(int(np.floor(q * bin_w)) + x1, 0), w)
                    w1 = min(max(int(np.ceil((q + 1) * bin_w)) + x1, 0), w)
                    if h1 <= h0 or w1 <= w0:
                        continue
                    window = x[image, :, h0:h1, w0:w1].reshape(c, -1)        # (C, bin cells)
                    best = window.argmax(axis=1)                               # first maximum
                    y[r, :, p, q] = window[np.arange(c), best]
                    argmax[r, :, p, q] = (h0 + best // (w1 - w0)) * w + w0 + best % (w1 - w0)
        self.save_for_backward(argmax, rois[:, 0].astype(np.int64))
        self.x_shape = x.shape
        return y

    def backward(self, grad_y: np.ndarray) -> tuple[np.ndarray, None]:
        argmax, batch = self.saved
        xp = backend.array_module(grad_y)
        n, c, h, w = self.x_shape
        grad_x = xp.zeros((n, c, h * w), dtype=grad_y.dtype)
        hit = argmax >= 0
        images = np.broadcast_to(batch[:, None, None, None], argmax.shape)
        channels = np.broadcast_to(np.arange(c)[None, :, None, None], argmax.shape)
        np.add.at(grad_x, (images[hit], channels[hit], argmax[hit]), grad_y[hit])
        return grad_x.reshape(self.x_shape), None


def roi_pool(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """torchvision.ops.roi_pool: max over rounded bins; see :class:`RoIPoolFn`.
    Shape: input (N, C, H, W), boxes Tensor[K, 5] or list of Tensor[L, 4] -> (K, C, PH, PW)."""
    size = _pair_size(output_size, "output_size", "roi_pool")
    rois = _rois(input, boxes, "roi_pool")
    return RoIPoolFn(size, float(spatial_scale))(input, Tensor._wrap(rois))


class RoIAlign(Module):
    """Module form of :func:`roi_align` (torchvision.ops.RoIAlign)."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float,
                 sampling_ratio: int, aligned: bool = False) -> None:
        super().__init__()
        self.output_size = _pair_size(output_size, "output_size", "RoIAlign")
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                         self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class RoIPool(Module):
    """Module form of :func:`roi_pool` (torchvision.ops.RoIPool)."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = _pair_size(output_size, "output_size", "RoIPool")
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
