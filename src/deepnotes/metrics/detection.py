"""Mean average precision of a detector: PASCAL VOC (all-point and 11-point) and COCO
(mAP@[.5:.95], 101-point), notes 004 "几种实现 map 类型的方法区别" (ways of computing mAP).

For one class and one IoU threshold t, rank every detection of that class over the whole data set
by score. Walking down the ranking, a detection is a true positive if it matches a ground-truth
box of the same image and class with IoU >= t that no higher-ranked detection took, otherwise a
false positive. After the first r detections:
    precision(r) = TP(r) / r,      recall(r) = TP(r) / (number of ground-truth boxes)
AP summarises the precision-recall curve, after making precision monotone (p_interp(r) =
max over r' >= r of p(r'), the "envelope"):
    VOC 2007, 11-point:   AP = 1/11 * sum_{R in 0, .1, ..., 1} p_interp(R)
    VOC 2010+, all-point: AP = sum_i (R_{i+1} - R_i) * p_interp(R_{i+1})  (area under envelope)
    COCO, 101-point:      AP = 1/101 * sum_{R in 0, .01, ..., 1} p_interp(R)
mAP averages AP over the classes that have ground truth (and, for COCO, over t = .50:.05:.95).

The two conventions also match differently, and both are reproduced exactly:
    VOC:  a detection looks only at the ground truth of highest IoU with it; if that one is
          already taken, the detection is a false positive (py-faster-rcnn's voc_eval, with
          IoU >= t as the MATLAB devkit).
    COCO: a detection takes the best still-unmatched ground truth with IoU >= t (equal IoUs:
          the later box), at most ``max_detections`` (100) highest-scoring detections per
          image and class count, and ties in score keep image order (pycocotools' COCOeval,
          checked against it in tests/metrics/test_detection_map.py).
Boxes are (x1, y1, x2, y2) in continuous coordinates (no VOC "+1"); no "difficult" or crowd
boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METHODS = ("all_point", "11_point", "coco")
COCO_IOU_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2))


def _array(value: Any, dtype: Any, width: int | None = None) -> np.ndarray:
    data = getattr(value, "data", value)
    arr = np.asarray(data, dtype=dtype)
    return arr.reshape(-1, width) if width else arr.reshape(-1)


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "all_point"
                      ) -> float:
    """AP of one precision-recall curve (points in ranking order), by ``method``:
    'all_point' (VOC 2010+), '11_point' (VOC 2007) or 'coco' (101 recall points)."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if method == "11_point":
        return float(np.mean([precision[recall >= r].max() if np.any(recall >= r) else 0.0
                              for r in np.linspace(0, 1, 11)]))
    envelope = precision.copy()
    for i in range(len(envelope) - 2, -1, -1):               # p_interp(r) = max_{r' >= r} p(r')
        envelope[i] = max(envelope[i], envelope[i + 1])
    if method == "coco":
        points = np.linspace(0, 1, 101)
        idx = np.searchsorted(recall, points, side="left")   # first rank reaching each R
        return float(np.mean(np.where(idx < len(envelope),
                                      envelope[np.minimum(idx, len(envelope) - 1)], 0.0)))
    if method != "all_point":
        raise ValueError(f"average_precision(): method should be one of {METHODS}, got {method!r}")
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], envelope, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _class_ap(dets: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray],
              threshold: float, method: str, max_detections: int | None) -> float | None:
    """AP of one class: ``dets[i]`` = (boxes, scores) and ``gts[i]`` = boxes of image i."""
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        return None
    coco = method == "coco"
    scores_all, tp_all = [], []
    for (boxes, scores), gt in zip(dets, gts):
        order = np.argsort(-scores, kind="mergesort")
        if max_detections is not None:
            order = order[:max_detections]
        boxes, scores = boxes[order], scores[order]
        tp = np.zeros(len(boxes), dtype=bool)
        if len(gt) and len(boxes):
            iou = _pairwise_iou(boxes, gt)                       # (D, G)
            taken = np.zeros(len(gt), dtype=bool)
            for d in range(len(boxes)):
                if coco:                                         # best unmatched gt, ties: last
                    best, m = min(threshold, 1 - 1e-10), -1
                    for g in range(len(gt)):
                        if taken[g] or iou[d, g] < best:
                            continue
                        best, m = iou[d, g], g
                else:                                            # VOC: the highest-IoU gt only
                    m = int(np.argmax(iou[d]))
                    if iou[d, m] < threshold or taken[m]:
                        m = -1
                if m >= 0:
                    taken[m] = True
                    tp[d] = True
        scores_all.append(scores)
        tp_all.append(tp)
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    tp = np.concatenate(tp_all) if tp_all else np.zeros(0, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")                # stable: ties in image order
    tp = tp[order]
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(~tp)
    recall = tp_cum / n_gt
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    if len(tp) == 0:
        return 0.0
    return average_precision(recall, precision, method)


def mean_average_precision(preds: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]],
                           iou_threshold: float | Sequence[float] = 0.5,
                           method: str = "all_point",
                           max_detections: int | None = None) -> float:
    """mAP of detections ``preds`` against ground truth ``targets`` (one dict per image).

    Args:
        preds: per image ``{"boxes": (D, 4), "scores": (D,), "labels": (D,)}`` (Tensors or
            arrays; torchvision's output convention).
        targets: per image ``{"boxes": (G, 4), "labels": (G,)}``.
        iou_threshold: a threshold, or a sequence of them to average over (e.g.
            ``COCO_IOU_THRESHOLDS`` for mAP@[.5:.95]).
        method: 'all_point' (VOC 2010+, VOC matching), '11_point' (VOC 2007, VOC matching) or
            'coco' (101-point, COCO matching).
        max_detections: keep only this many highest-scoring detections per image and class
            (COCO uses 100; default: all for VOC, 100 for 'coco').

    Returns:
        The mean over IoU thresholds and over the classes that have ground truth, in [0, 1]
        (0.0 when there is no ground truth at all).
    """
    if method not in METHODS:
        raise ValueError(f"mean_average_precision(): method should be one of {METHODS}, "
                         f"got {method!r}")
    if len(preds) != len(targets):
        raise ValueError(f"mean_average_precision(): {len(preds)} predictions for "
                         f"{len(targets)} targets (one dict per image each)")
    thresholds = [float(iou_threshold)] if np.isscalar(iou_threshold) else \
        [float(t) for t in iou_threshold]  # type: ignore[union-attr]
    if method == "coco" and max_detections is None:
        max_detections = 100
    pred_arrays = [(_array(p["boxes"], np.float64, 4), _array(p["scores"], np.float64),
                    _array(p["labels"], np.int64)) for p in preds]
    gt_arrays = [(_array(t["boxes"], np.float64, 4), _array(t["labels"], np.int64))
                 for t in targets]
    classes = np.unique(np.concatenate([g[1] for g in gt_arrays] or [np.zeros(0, np.int64)]))
    per_threshold = []
    for threshold in thresholds:
        aps = []
        for c in classes:
            dets = [(b[lab == c], s[lab == c]) for b, s, lab in pred_arrays]
            gts = [b[lab == c] for b, lab in gt_arrays]
            ap = _class_ap(dets, gts, threshold, method, max_detections)
            if ap is not None:
                aps.append(ap)
        per_threshold.append(np.mean(aps) if aps else 0.0)
    return float(np.mean(per_threshold))


def coco_map(preds: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]]
             ) -> dict[str, float]:
    """COCO's headline numbers: ``map`` (mAP@[.5:.95]), ``map_50`` and ``map_75``."""
    return {
        "map": mean_average_precision(preds, targets, COCO_IOU_THRESHOLDS, "coco"),
        "map_50": mean_average_precision(preds, targets, 0.5, "coco"),
        "map_75": mean_average_precision(preds, targets, 0.75, "coco"),
    }
