"""mAP: COCO numbers against pycocotools on random predictions (ties in score included), VOC
all-point / 11-point / COCO 101-point against values worked out by hand, and the two matching
rules."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import deepnotes as dn
from deepnotes.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    average_precision,
    coco_map,
    mean_average_precision,
)


def _random_case(seed: int, n_images: int = 5):
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 5))
        xy = rng.uniform(0, 50, (n_gt, 2))
        gt = np.concatenate([xy, xy + rng.uniform(3, 30, (n_gt, 2))], 1)
        gt_labels = rng.integers(1, 4, n_gt)
        jitter = gt + rng.normal(0, 3, gt.shape)                     # near-misses and hits
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        n_fp = int(rng.integers(0, 5))
        xy = rng.uniform(0, 50, (n_fp, 2))
        fp = np.concatenate([xy, xy + rng.uniform(3, 30, (n_fp, 2))], 1)
        boxes = np.concatenate([jitter, fp])
        labels = np.concatenate([gt_labels, rng.integers(1, 4, n_fp)])
        labels[rng.random(len(labels)) < 0.15] = 2                  # some wrong classes
        scores = np.round(rng.uniform(0, 1, len(boxes)), 1)          # many ties
        preds.append({"boxes": boxes, "scores": scores, "labels": labels})
        targets.append({"boxes": gt, "labels": gt_labels})
    return preds, targets


def _pycocotools(preds, targets) -> list[float]:
    gt = {"images": [{"id": i + 1} for i in range(len(targets))],
          "categories": [{"id": c} for c in (1, 2, 3)], "annotations": []}
    dets = []
    for i, (p, t) in enumerate(zip(preds, targets)):
        for b, lab in zip(t["boxes"], t["labels"]):
            w, h = b[2] - b[0], b[3] - b[1]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": int(lab), "bbox": [b[0], b[1], w, h],
                                      "area": w * h, "iscrowd": 0})
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"]):
            dets.append({"image_id": i + 1, "category_id": int(lab),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        result = COCOeval(coco, coco.loadRes(dets), "bbox")
        result.evaluate()
        result.accumulate()
        result.summarize()
    return list(result.stats[:3])


@settings(max_examples=8)
@given(seed=st.integers(0, 2**31))
def test_coco_map_matches_pycocotools(seed):
    preds, targets = _random_case(seed)
    if not any(len(t["boxes"]) for t in targets) or not any(len(p["boxes"]) for p in preds):
        return  # pycocotools reports -1 / cannot load empty results; covered below
    ours = coco_map(preds, targets)
    expected = _pycocotools(preds, targets)
    np.testing.assert_allclose([ours["map"], ours["map_50"], ours["map_75"]], expected,
                               atol=1e-12)


def test_coco_map_matches_pycocotools_fixed_seeds():
    for seed in (0, 1, 2):
        preds, targets = _random_case(seed, n_images=8)
        ours = mean_average_precision(preds, targets, COCO_IOU_THRESHOLDS, "coco")
        assert ours == pytest.approx(_pycocotools(preds, targets)[0], abs=1e-12)


def _tp_fp_case():
    """3 ground truths of one class; 5 detections ranked TP, FP, TP, FP, TP:
    precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1."""
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=float)
    det = np.array([[0, 0, 10, 10], [60, 60, 70, 70], [20, 0, 30, 10], [80, 80, 90, 90],
                    [40, 0, 50, 10]], dtype=float)
    preds = [{"boxes": det, "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
              "labels": np.ones(5, dtype=int)}]
    return preds, [{"boxes": gt, "labels": np.ones(3, dtype=int)}]


def test_voc_and_coco_hand_values():
    preds, targets = _tp_fp_case()
    # all-point: recall steps of 1/3 at envelope precisions 1, 2/3, 3/5
    assert mean_average_precision(preds, targets, 0.5, "all_point") == pytest.approx(
        (1 + 2 / 3 + 3 / 5) / 3)
    # 11-point: R = 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3), 0.7..1.0 -> 3/5 (4)
    assert mean_average_precision(preds, targets, 0.5, "11_point") == pytest.approx(
        (4 * 1 + 3 * 2 / 3 + 4 * 0.6) / 11)
    # 101-point: R <= .33 -> 1 (34 points), .34...66 -> 2/3 (33), .67..1 -> 3/5 (34)
    assert mean_average_precision(preds, targets, 0.5, "coco") == pytest.approx(
        (34 * 1 + 33 * 2 / 3 + 34 * 0.6) / 101)


def test_average_precision_curve_directly():
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision, "all_point") == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_voc_and_coco_matching_rules_differ():
    # gt A and B overlap; det 1 takes A; det 2's best gt is A (taken) but IoU(det2, B) = 0.6
    a, b = [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 6.0]
    det2 = [0.0, 0.0, 10.0, 7.5]
    targets = [{"boxes": np.array([a, b]), "labels": np.array([1, 1])}]
    preds = [{"boxes": np.array([a, det2]), "scores": np.array([0.9, 0.8]),
              "labels": np.array([1, 1])}]
    # IoU(det2, A) = 75/100 = 0.75; IoU(det2, B) = 60/75 = 0.8: det2's best gt is B -> both TP
    assert mean_average_precision(preds, targets, 0.5, "all_point") == pytest.approx(1.0)
    det2 = [0.0, 0.0, 10.0, 9.0]                  # IoU with A 0.9 (taken), with B 60/90 = 2/3
    preds[0]["boxes"] = np.array([a, det2])
    # VOC: det2 looks only at A, already taken -> FP, AP = 1/2; COCO: falls back to B -> AP 1
    assert mean_average_precision(preds, targets, 0.5, "all_point") == pytest.approx(0.5)
    assert mean_average_precision(preds, targets, 0.5, "coco") == pytest.approx(1.0)


def test_empty_cases_and_tensor_inputs():
    targets = [{"boxes": dn.tensor([[0.0, 0, 5, 5]]), "labels": dn.tensor([1])}]
    no_dets = [{"boxes": dn.zeros(0, 4), "scores": dn.zeros(0), "labels": dn.zeros(0).long()}]
    assert mean_average_precision(no_dets, targets) == 0.0
    hit = [{"boxes": dn.tensor([[0.0, 0, 5, 5]]), "scores": dn.tensor([0.3]),
            "labels": dn.tensor([1])}]
    assert mean_average_precision(hit, targets) == 1.0
    assert mean_average_precision(hit, targets, COCO_IOU_THRESHOLDS, "coco") == 1.0
    # a class that only appears in the predictions does not count
    extra = [{"boxes": dn.tensor([[0.0, 0, 5, 5], [9.0, 9, 12, 12]]),
              "scores": dn.tensor([0.3, 0.9]), "labels": dn.tensor([1, 2])}]
    assert mean_average_precision(extra, targets) == 1.0
    with pytest.raises(ValueError, match="method"):
        mean_average_precision(hit, targets, method="voc")
    with pytest.raises(ValueError, match="1 predictions for 2 targets"):
        mean_average_precision(hit, targets * 2)


def _voc_reference(preds, targets, cls, threshold, eleven_point):
    """PASCAL VOC's evaluation of one class, one detection at a time (the devkit's VOCevaldet
    with IoU >= threshold, and VOCap / the 2007 11-point rule), from scratch."""
    gts = {i: [list(b) for b, lab in zip(t["boxes"], t["labels"]) if lab == cls]
           for i, t in enumerate(targets)}
    n_gt = sum(len(g) for g in gts.values())
    dets = [(float(s), i, list(b)) for i, p in enumerate(preds)
            for b, s, lab in zip(p["boxes"], p["scores"], p["labels"]) if lab == cls]
    dets.sort(key=lambda d: -d[0])            # Python's sort is stable: ties in image order
    taken = {i: [False] * len(g) for i, g in gts.items()}
    tp, fp = [], []
    for _, i, b in dets:
        best, best_iou = -1, -1.0
        for g, gt in enumerate(gts[i]):
            iw = min(b[2], gt[2]) - max(b[0], gt[0])
            ih = min(b[3], gt[3]) - max(b[1], gt[1])
            if iw > 0 and ih > 0:
                inter = iw * ih
                union = (b[2] - b[0]) * (b[3] - b[1]) + (gt[2] - gt[0]) * (gt[3] - gt[1]) - inter
                if inter / union > best_iou:
                    best, best_iou = g, inter / union
        hit = best >= 0 and best_iou >= threshold and not taken[i][best]
        if hit:
            taken[i][best] = True
        tp.append(1 if hit else 0)
        fp.append(0 if hit else 1)
    rec, prec, ctp, cfp = [], [], 0, 0
    for t, f in zip(tp, fp):
        ctp, cfp = ctp + t, cfp + f
        rec.append(ctp / n_gt)
        prec.append(ctp / (ctp + cfp))
    if eleven_point:   # R = 0, 0.1, ..., 1 as py-faster-rcnn's np.arange(0, 1.1, 0.1) (so R[3]
        total = 0.0     # is 0.30000000000000004, as in the devkits)
        for t in np.arange(0.0, 1.1, 0.1):
            above = [p for r, p in zip(rec, prec) if r >= t]
            total += max(above) if above else 0.0
        return total / 11
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31), threshold=st.sampled_from([0.3, 0.5, 0.7]),
       method=st.sampled_from(["all_point", "11_point"]))
def test_voc_map_matches_loop_reference(seed, threshold, method):
    preds, targets = _random_case(seed, n_images=6)
    classes = sorted({int(c) for t in targets for c in t["labels"]})
    if not classes:
        return
    expected = np.mean([_voc_reference(preds, targets, c, threshold, method == "11_point")
                        for c in classes])
    assert mean_average_precision(preds, targets, threshold, method) == pytest.approx(
        expected, abs=1e-12)
