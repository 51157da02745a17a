"""Training targets of a two-stage detector: box encoding, matching, sampling, OHEM, anchors
(notes 004, Faster R-CNN's positive/negative samples; notes 003, OHEM).

* ``BoxCoder`` (R-CNN's box regression, used by Fast/Faster R-CNN): a box is predicted as an
  offset of a reference box (anchor or proposal) with centre (x_a, y_a) and size (w_a, h_a):
      dx = w_x (x - x_a) / w_a     dy = w_y (y - y_a) / h_a
      dw = w_w log(w / w_a)        dh = w_h log(h / h_a)
  The targets are scale-invariant (offsets in units of the reference's size) and the log makes
  size errors symmetric. Decoding inverts it; dw, dh are clamped at log(1000/16) before exp so a
  wild prediction cannot overflow (torchvision's ``bbox_xform_clip``).
* ``Matcher``: each prediction takes the ground truth of highest IoU; IoU >= high -> that index,
  low <= IoU < high -> BETWEEN_THRESHOLDS (-2, ignored), IoU < low -> BELOW_LOW_THRESHOLD (-1,
  background). With ``allow_low_quality_matches`` each ground truth also claims its best
  prediction(s), ties included, so that no object is left without a positive.
* ``BalancedPositiveNegativeSampler``: per image, a random mini-batch of at most
  ``batch_size_per_image`` with at most ``positive_fraction`` positives (Faster R-CNN: 256 anchors
  at 1:1 for the RPN, 512 RoIs at 1:3 for the head); background would swamp it otherwise.
* ``ohem_sample(losses, k)``: Online Hard Example Mining (Shrivastava et al. 2016): rather than a
  random sample, back-propagate only through the k RoIs with the largest current loss.
* ``AnchorGenerator``: per feature level, ``len(sizes) * len(aspect_ratios)`` anchors at each
  cell; anchor (w, h) = (s / sqrt(r), s * sqrt(r)) for size s and ratio r = h / w, centred at
  the cell's top-left pixel (x * stride, y * stride), coordinates rounded, as torchvision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...nn.module import Module
from ...ops import shape as _shape
from ...ops._util import check_tensor
from ...random import default_generator
from ...tensor import Tensor
from .boxes import nms


class BoxCoder:
    """Encode boxes as (dx, dy, dw, dh) relative to reference boxes, and back (torchvision's
    ``models.detection._utils.BoxCoder``).

    Args:
        weights: (w_x, w_y, w_w, w_h) multiplying the four targets (Faster R-CNN's RoI head uses
            (10, 10, 5, 5) so the regression loss has a useful scale; the RPN uses (1, 1, 1, 1)).
        bbox_xform_clip: upper clamp of dw, dh before exp in :meth:`decode`.
    """

    def __init__(self, weights: tuple[float, float, float, float],
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        if len(weights) != 4:
            raise ValueError(f"BoxCoder: weights should have 4 values, got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> list[Tensor]:
        """Per image: targets (L, 4) of ``reference_boxes`` (the ground truth) w.r.t.
        ``proposals``."""
        sizes = [len(b) for b in reference_boxes]
        targets = self.encode_single(_shape.cat(list(reference_boxes), dim=0),
                                     _shape.cat(list(proposals), dim=0))
        out, start = [], 0
        for n in sizes:
            out.append(targets[start:start + n])
            start += n
        return out

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """(dx, dy, dw, dh) of ``reference_boxes`` relative to ``proposals``; (L, 4) -> (L, 4)."""
        check_tensor(reference_boxes, "reference_boxes", "BoxCoder.encode_single")
        check_tensor(proposals, "proposals", "BoxCoder.encode_single")
        if reference_boxes.shape != proposals.shape:
            raise ValueError(f"BoxCoder.encode_single: reference_boxes "
                             f"{tuple(reference_boxes.shape)} and proposals "
                             f"{tuple(proposals.shape)} should have the same shape")
        wx, wy, ww, wh = self.weights
        ex_w = proposals[:, 2] - proposals[:, 0]
        ex_h = proposals[:, 3] - proposals[:, 1]
        ex_x = proposals[:, 0] + 0.5 * ex_w
        ex_y = proposals[:, 1] + 0.5 * ex_h
        gt_w = reference_boxes[:, 2] - reference_boxes[:, 0]
        gt_h = reference_boxes[:, 3] - reference_boxes[:, 1]
        gt_x = reference_boxes[:, 0] + 0.5 * gt_w
        gt_y = reference_boxes[:, 1] + 0.5 * gt_h
        dx = wx * (gt_x - ex_x) / ex_w
        dy = wy * (gt_y - ex_y) / ex_h
        dw = ww * (gt_w / ex_w).log()
        dh = wh * (gt_h / ex_h).log()
        return _shape.stack([dx, dy, dw, dh], dim=1)

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        """Decode ``rel_codes`` (sum L_i, 4*C) against the concatenated ``boxes``;
        returns (sum L_i, C, 4)."""
        if not isinstance(boxes, list | tuple):
            raise TypeError(f"BoxCoder.decode: boxes should be a list of Tensors, "
                            f"got {type(boxes).__name__}")
        total = sum(len(b) for b in boxes)
        pred = self.decode_single(rel_codes.reshape(total, -1), _shape.cat(list(boxes), dim=0))
        return pred.reshape(total, -1, 4)

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes from (L, 4*C) codes and (L, 4) references -> (L, 4*C), (x1, y1, x2, y2) per
        class:  x = dx/w_x * w_a + x_a,  w = exp(min(dw/w_w, clip)) * w_a,  x1 = x - w/2 ..."""
        check_tensor(rel_codes, "rel_codes", "BoxCoder.decode_single")
        check_tensor(boxes, "boxes", "BoxCoder.decode_single")
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx                                  # (L, C)
        dy = rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        pred_x = dx * widths[:, None] + ctr_x[:, None]
        pred_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * (dw.exp() * widths[:, None])
        half_h = 0.5 * (dh.exp() * heights[:, None])
        pred = _shape.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h],
                            dim=2)                                    # (L, C, 4)
        return pred.flatten(1)                                        # (L, 4*C)


class Matcher:
    """Assign each prediction (column) the ground truth (row) of highest quality (IoU).

    Args:
        high_threshold: quality >= this -> matched (the gt index).
        low_threshold: quality in [low, high) -> BETWEEN_THRESHOLDS (-2); below -> -1.
        allow_low_quality_matches: also match, for every gt, the predictions of highest quality
            with it (ties included), whatever that quality is.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float,
                 allow_low_quality_matches: bool = False) -> None:
        if low_threshold > high_threshold:
            raise ValueError(f"Matcher: low_threshold should be <= high_threshold, got "
                             f"low_threshold={low_threshold}, high_threshold={high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        """(M gt, N predictions) quality -> int64 (N,): gt index, -1 or -2."""
        q = match_quality_matrix.data if isinstance(match_quality_matrix, Tensor) else \
            np.asarray(match_quality_matrix)
        if q.ndim != 2:
            raise ValueError(f"Matcher: match_quality_matrix should be (M, N), got shape {q.shape}")
        if q.size == 0:
            if q.shape[0] == 0:
                raise ValueError("No ground-truth boxes available for one of the images during "
                                 "training")
            raise ValueError("No proposal boxes available for one of the images during training")
        matches = q.argmax(axis=0)                 # first maximal row, as torch.max(dim=0)
        matched_vals = q[matches, np.arange(q.shape[1])]
        all_matches = matches.copy()
        matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = q.max(axis=1)                                # (M,)
            _, preds = np.nonzero(q == best_per_gt[:, None])           # ties included
            matches[preds] = all_matches[preds]
        return Tensor._wrap(matches.astype(np.int64))


class BalancedPositiveNegativeSampler:
    """Sample, per image, at most ``batch_size_per_image`` elements of which at most
    ``positive_fraction`` are positive (label >= 1); the rest are negatives (label 0); -1 is
    ignored. Returns two lists of uint8 masks (positives, negatives), as torchvision. Random
    choices come from ``deepnotes.random`` (seeded by ``manual_seed``)."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, matched_idxs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        rng = default_generator()
        pos_masks, neg_masks = [], []
        for labels in matched_idxs:
            lab = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
            positive = np.flatnonzero(lab >= 1)
            negative = np.flatnonzero(lab == 0)
            num_pos = min(len(positive), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(len(negative), self.batch_size_per_image - num_pos)
            pos = positive[rng.permutation(len(positive))[:num_pos]]
            neg = negative[rng.permutation(len(negative))[:num_neg]]
            pos_mask = np.zeros(lab.shape, dtype=np.uint8)
            neg_mask = np.zeros(lab.shape, dtype=np.uint8)
            pos_mask[pos] = 1
            neg_mask[neg] = 1
            pos_masks.append(Tensor._wrap(pos_mask))
            neg_masks.append(Tensor._wrap(neg_mask))
        return pos_masks, neg_masks


def ohem_sample(losses: Any, k: int, boxes: Any = None, iou_threshold: float = 0.7) -> Tensor:
    """Online hard example mining: indices of the ``k`` largest per-RoI losses, hardest first
    (equal losses: lower index first). ``k`` larger than the number of RoIs takes them all.
    With ``boxes`` (the RoIs, (R, 4) x1y1x2y2), near-duplicates are removed first, as in the
    paper (Shrivastava et al. 2016, NMS at IoU 0.7): NMS with the losses as scores, so that of
    RoIs overlapping by more than ``iou_threshold`` only the hardest can be chosen; otherwise
    overlapping RoIs with nearly the same loss would fill the batch with one hard region.
    The losses are only read (no gradient flows through the choice)."""
    values = losses.data if isinstance(losses, Tensor) else np.asarray(losses)
    if values.ndim != 1:
        raise ValueError(f"ohem_sample(): losses should be 1-D (one per RoI), got shape "
                         f"{values.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"ohem_sample(): k should be an int >= 0, got {k!r}")
    if boxes is None:
        order = np.argsort(-values, kind="stable")
    else:
        box_array = boxes.data if isinstance(boxes, Tensor) else np.asarray(boxes)
        if box_array.shape != (len(values), 4):
            raise ValueError(f"ohem_sample(): boxes should be ({len(values)}, 4), one per loss, "
                             f"got shape {box_array.shape}")
        order = nms(Tensor._wrap(box_array), Tensor._wrap(values), iou_threshold).data
    return Tensor._wrap(np.asarray(order[:k], dtype=np.int64))


class AnchorGenerator(Module):
    """Anchors for a set of feature maps (torchvision's ``AnchorGenerator``).

    Args:
        sizes: one tuple of sizes (pixels, sqrt of the anchor area) per feature level.
        aspect_ratios: one tuple of ratios h / w per level (or one tuple for all levels).

    ``forward(images, feature_maps)`` returns one Tensor[A, 4] per image: for each level, for
    each cell (row-major), its ``len(sizes) * len(ratios)`` anchors (ratios outer, sizes inner).
    The stride of a level is image_size // feature_size.
    """

    def __init__(self, sizes: Any = ((128, 256, 512),),
                 aspect_ratios: Any = ((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        if not isinstance(sizes[0], list | tuple):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], list | tuple):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: {len(sizes)} levels of sizes but "
                             f"{len(aspect_ratios)} of aspect_ratios")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(a) for a in aspect_ratios)
        self.cell_anchors = [self.generate_anchors(s, a)
                             for s, a in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def generate_anchors(scales: Any, aspect_ratios: Any, dtype: Any = np.float32) -> np.ndarray:
        """(len(ratios)*len(scales), 4) anchors centred at 0: (-w/2, -h/2, w/2, h/2), rounded."""
        scales = np.asarray(scales, dtype=dtype)
        ratios = np.asarray(aspect_ratios, dtype=dtype)
        h_ratios = np.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2)  # half to even, as torch

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes: list[tuple[int, int]], strides: list[tuple[int, int]],
                     dtype: Any = np.float32) -> list[np.ndarray]:
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            shift_y, shift_x = np.meshgrid(np.arange(gh) * sh, np.arange(gw) * sw, indexing="ij")
            shifts = np.stack([shift_x.ravel(), shift_y.ravel()] * 2, axis=1)    # (gh*gw, 4)
            anchors = shifts[:, None, :] + base.astype(dtype)[None, :, :]        # (gh*gw, A, 4)
            out.append(anchors.reshape(-1, 4).astype(dtype))
        return out

    def forward(self, images: Any, feature_maps: list[Tensor]) -> list[Tensor]:
        if len(feature_maps) != len(self.cell_anchors):
            raise ValueError(f"AnchorGenerator: {len(feature_maps)} feature maps but anchors "
                             f"for {len(self.cell_anchors)} levels")
        tensors = getattr(images, "tensors", images)
        n = len(getattr(images, "image_sizes", tensors))
        image_h, image_w = tensors.shape[-2:]
        grid_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        strides = [(image_h // gh, image_w // gw) for gh, gw in grid_sizes]
        dtype = feature_maps[0].data.dtype
        levels = self.grid_anchors(grid_sizes, strides, dtype)
        anchors = np.concatenate(levels, axis=0)
        return [Tensor._wrap(anchors.copy()) for _ in range(n)]
