"""Box geometry and non-maximum suppression, with torchvision's names and semantics (notes 004,
"detection history": R-CNN and its successors all end with NMS).

Boxes are ``(x1, y1, x2, y2)`` rows, ``0 <= x1 < x2`` and ``0 <= y1 < y2``, in continuous pixel
coordinates (a box 0..4 covers four pixels; no "+1" as in the old VOC devkit).

    area(b)      = (x2 - x1) * (y2 - y1)
    IoU(a, b)    = |a ∩ b| / |a ∪ b|,  where
                   |a ∩ b| = max(0, min(ax2, bx2) - max(ax1, bx1)) * (the same in y)
                   |a ∪ b| = area(a) + area(b) - |a ∩ b|
    GIoU(a, b)   = IoU - (|C| - |a ∪ b|) / |C|,   C = the smallest box enclosing a and b

The geometry functions are composites of differentiable Tensor ops (min/max/clamp/mul), so
``generalized_box_iou`` can serve as a loss and autograd derives its gradient.

NMS (greedy): sort by score, keep the best box, drop every remaining box whose IoU with it is
*strictly greater* than ``iou_threshold`` (a box exactly at the threshold survives, as in
torchvision's kernel), repeat. Equal scores keep their input order (a stable sort).
Soft-NMS (Bodla et al. 2017) does not drop the neighbours of the kept box but decays their
scores, so an object that overlaps a stronger one is not lost:
    linear:    s_i <- s_i * (1 - IoU(M, b_i))   if IoU(M, b_i) >= N_t, else unchanged
    gaussian:  s_i <- s_i * exp(-IoU(M, b_i)^2 / sigma)            (every box)
and boxes whose score falls below ``score_threshold`` are discarded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import backend
from ...ops import elementwise as _ew
from ...ops import shape as _shape
from ...ops._util import check_tensor
from ...tensor import Tensor

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: Any, name: str, op: str, batched: bool = False) -> None:
    check_tensor(boxes, name, op)
    if batched:
        if boxes.ndim < 2 or boxes.shape[-1] != 4:
            raise ValueError(f"{op}(): {name} should have shape (..., N, 4), got "
                             f"{tuple(boxes.shape)}")
    elif boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{op}(): {name} should have shape (N, 4), got {tuple(boxes.shape)}")


def _check_fmt(fmt: str, op: str) -> None:
    if fmt not in _FORMATS:
        raise ValueError(f"{op}(): fmt should be one of {_FORMATS} (rotated boxes are not "
                         f"supported), got {fmt!r}")


def _check_pair(boxes1: Any, boxes2: Any, op: str) -> None:
    _check_boxes(boxes1, "boxes1", op, batched=True)
    _check_boxes(boxes2, "boxes2", op, batched=True)
    try:
        np.broadcast_shapes(tuple(boxes1.shape[:-2]), tuple(boxes2.shape[:-2]))
    except ValueError:
        raise ValueError(f"{op}(): the batch dimensions of boxes1 {tuple(boxes1.shape)} and "
                         f"boxes2 {tuple(boxes2.shape)} should broadcast") from None


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of each box: ``(x2 - x1) * (y2 - y1)`` for 'xyxy', ``w * h`` for 'xywh' and
    'cxcywh'.  Shape: (..., 4) -> (...)."""
    check_tensor(boxes, "boxes", "box_area")
    _check_fmt(fmt, "box_area")
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"box_area(): boxes should have shape (..., 4), got "
                         f"{tuple(boxes.shape)}")
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


def _corners(boxes: Tensor, fmt: str) -> tuple[Tensor, Tensor]:
    """Top-left and bottom-right corners (..., 2) of boxes in ``fmt``."""
    if fmt == "xyxy":
        return boxes[..., :2], boxes[..., 2:]
    if fmt == "xywh":
        return boxes[..., :2], boxes[..., :2] + boxes[..., 2:]
    half = boxes[..., 2:] / 2                                  # cxcywh
    return boxes[..., :2] - half, boxes[..., :2] + half


def _box_inter_union(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> tuple[Tensor, Tensor]:
    area1, area2 = box_area(boxes1, fmt), box_area(boxes2, fmt)
    lt1, rb1 = _corners(boxes1, fmt)
    lt2, rb2 = _corners(boxes2, fmt)
    lt = _ew.maximum(lt1[..., :, None, :], lt2[..., None, :, :])  # (..., N, M, 2) top-left of a ∩ b
    rb = _ew.minimum(rb1[..., :, None, :], rb2[..., None, :, :])  # (..., N, M, 2) bottom-right
    wh = (rb - lt).clamp(min=0)                                   # (..., N, M, 2) empty -> 0
    inter = wh[..., 0] * wh[..., 1]                               # (..., N, M)
    union = area1[..., :, None] + area2[..., None, :] - inter     # (..., N, M)
    return inter, union


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Pairwise IoU (Jaccard index) of boxes in ``fmt`` ('xyxy', 'xywh' or 'cxcywh'; torchvision's
    rotated formats need its compiled ops and are not supported).
    Shape: (..., N, 4), (..., M, 4) -> (..., N, M)."""
    _check_fmt(fmt, "box_iou")
    _check_pair(boxes1, boxes2, "box_iou")
    inter, union = _box_inter_union(boxes1, boxes2, fmt)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019), in [-1, 1]: IoU - (|C| - |a ∪ b|) / |C|.

    Unlike IoU it still says how far apart two disjoint boxes are, so 1 - GIoU is a usable loss.
    Shape: (..., N, 4), (..., M, 4) -> (..., N, M), boxes in 'xyxy'.
    """
    _check_pair(boxes1, boxes2, "generalized_box_iou")
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    lt = _ew.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # (..., N, M, 2) box C
    rb = _ew.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    area_c = wh[..., 0] * wh[..., 1]                                      # (..., N, M)
    return iou - (area_c - union) / area_c


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert between 'xyxy' (corners), 'xywh' (top-left corner, size) and 'cxcywh' (centre,
    size), through 'xyxy' as torchvision does.  Shape: (N, 4) -> (N, 4)."""
    check_tensor(boxes, "boxes", "box_convert")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(f"box_convert(): {name} should be one of {_FORMATS}, got {fmt!r}")
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"box_convert(): boxes should have shape (..., 4), got "
                         f"{tuple(boxes.shape)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = (boxes[..., i] for i in range(4))
    if in_fmt == "xywh":              # (x, y, w, h) -> (x1, y1, x2, y2)
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":          # (cx, cy, w, h) -> (x1, y1, x2, y2)
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":             # (x1, y1, x2, y2) -> (x1, y1, w, h)
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":         # (x1, y1, x2, y2) -> (cx, cy, w, h)
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return _shape.stack([a, b, c, d], dim=-1)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip x to [0, width] and y to [0, height]; ``size`` is (height, width) as torchvision."""
    check_tensor(boxes, "boxes", "clip_boxes_to_image")
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return _shape.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both >= ``min_size``."""
    check_tensor(boxes, "boxes", "remove_small_boxes")
    b = boxes.data
    keep = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    return Tensor._wrap(np.flatnonzero(keep).astype(np.int64))


# -- non-maximum suppression (no gradient: it selects indices) -----------------------------------


def iou_matrix(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of raw arrays, in their own dtype, with the kernel's order of operations:
    inter / (area_i + area_j - inter)."""
    xp = backend.array_module(b1, b2)
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    w = xp.maximum(xp.minimum(b1[:, None, 2], b2[None, :, 2])
                   - xp.maximum(b1[:, None, 0], b2[None, :, 0]), 0)  # (N, M)
    h = xp.maximum(xp.minimum(b1[:, None, 3], b2[None, :, 3])
                   - xp.maximum(b1[:, None, 1], b2[None, :, 1]), 0)  # (N, M)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for empty boxes -> nan, not kept
        return inter / (area1[:, None] + area2[None, :] - inter)


def _check_nms_args(boxes: Any, scores: Any, op: str) -> None:
    _check_boxes(boxes, "boxes", op)
    check_tensor(scores, "scores", op)
    if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"{op}(): scores should have shape ({boxes.shape[0]},) to match boxes, "
                         f"got {tuple(scores.shape)}")


def _nms_arrays(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")  # decreasing score, ties in input order
    iou = iou_matrix(boxes[order], boxes[order])  # (K, K) in sorted order
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold   # strictly greater: IoU == threshold survives
    return order[np.asarray(keep, dtype=np.int64)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: Tensor[N, 4] in (x1, y1, x2, y2).
        scores: Tensor[N].
        iou_threshold: discard a box whose IoU with a kept, higher-scoring box is > this.

    Returns:
        int64 Tensor of the kept indices, sorted by decreasing score (equal scores: input order).
    """
    _check_nms_args(boxes, scores, "nms")
    if boxes.shape[0] == 0:
        return Tensor._wrap(np.zeros(0, dtype=np.int64))
    return Tensor._wrap(_nms_arrays(boxes.data, scores.data, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done independently per category ``idxs`` (boxes of different categories never
    suppress each other). Returns the kept indices sorted by decreasing score."""
    _check_nms_args(boxes, scores, "batched_nms")
    check_tensor(idxs, "idxs", "batched_nms")
    if idxs.shape != scores.shape:
        raise ValueError(f"batched_nms(): idxs should have shape {tuple(scores.shape)}, got "
                         f"{tuple(idxs.shape)}")
    b, s, c = boxes.data, scores.data, idxs.data
    kept = [np.flatnonzero(c == k)[_nms_arrays(b[c == k], s[c == k], float(iou_threshold))]
            for k in np.unique(c)]
    keep = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    keep = np.sort(keep)  # input order, then a stable sort by score: ties in input order
    return Tensor._wrap(keep[np.argsort(-s[keep], kind="stable")].astype(np.int64))


def soft_nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.3, sigma: float = 0.5,
             score_threshold: float = 0.001, method: str = "linear") -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., "Improving Object Detection With One Line of Code", 2017).

    Repeatedly take the box M with the highest *current* score, then decay the others:
        linear:    s_i <- s_i * (1 - IoU(M, b_i))  if IoU(M, b_i) >= iou_threshold (N_t)
        gaussian:  s_i <- s_i * exp(-IoU(M, b_i)^2 / sigma)     (``iou_threshold`` unused)
    Boxes whose score drops below ``score_threshold`` are removed. torchvision has no Soft-NMS.

    Returns:
        ``(keep, new_scores)``: int64 indices in the order they were selected (decreasing
        decayed score; ties in input order) and their decayed scores.
    """
    _check_nms_args(boxes, scores, "soft_nms")
    if method not in ("linear", "gaussian"):
        raise ValueError(f"soft_nms(): method should be 'linear' or 'gaussian', got {method!r}")
    if sigma <= 0:
        raise ValueError(f"soft_nms(): sigma should be > 0, got {sigma}")
    b, s = boxes.data, scores.data.copy()
    iou = iou_matrix(b, b)
    alive = s >= score_threshold
    keep, kept_scores = [], []
    while alive.any():
        candidates = np.flatnonzero(alive)
        m = candidates[np.argmax(s[candidates])]  # first of equal maxima: input order
        keep.append(m)
        kept_scores.append(s[m])
        alive[m] = False
        overlap = iou[m]
        if method == "linear":
            decay = np.where(overlap >= iou_threshold, 1.0 - overlap, 1.0)
        else:
            decay = np.exp(-(overlap ** 2) / sigma)
        s = np.where(alive, s * decay, s).astype(scores.data.dtype)
        alive &= s >= score_threshold
    return (Tensor._wrap(np.asarray(keep, dtype=np.int64)),
            Tensor._wrap(np.asarray(kept_scores, dtype=scores.data.dtype)))
