"""Slow loop references of the detection ops, written from their definitions (torchvision's
CPU kernels) one scalar at a time; tests compare the vectorised ops with them."""

from __future__ import annotations

import math

import numpy as np


def bilinear_reference(plane: np.ndarray, y: float, x: float) -> float:
    """Value of ``plane`` (H, W) at (y, x) as RoI Align reads it: 0 outside [-1, H] x [-1, W],
    clamp to >= 0, the last cell repeated beyond H - 1 (W - 1)."""
    height, width = plane.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
            + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


def roi_align_reference(x: np.ndarray, rois: np.ndarray, output_size: tuple[int, int],
                        spatial_scale: float, sampling_ratio: int, aligned: bool) -> np.ndarray:
    ph_out, pw_out = output_size
    out = np.zeros((len(rois), x.shape[1], ph_out, pw_out))
    offset = 0.5 if aligned else 0.0
    for k, (n, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        ex, ey = x2 * spatial_scale - offset, y2 * spatial_scale - offset
        roi_w, roi_h = ex - sx, ey - sy
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph_out, roi_w / pw_out
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph_out)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw_out)
        count = max(grid_h * grid_w, 1)
        for c in range(x.shape[1]):
            plane = x[int(n), c]
            for p in range(ph_out):
                for q in range(pw_out):
                    total = 0.0
                    for iy in range(grid_h):
                        yy = sy + p * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            xx = sx + q * bin_w + (ix + 0.5) * bin_w / grid_w
                            total += bilinear_reference(plane, yy, xx)
                    out[k, c, p, q] = total / count
    return out


def roi_pool_reference(x: np.ndarray, rois: np.ndarray, output_size: tuple[int, int],
                       spatial_scale: float) -> np.ndarray:
    ph_out, pw_out = output_size
    height, width = x.shape[2:]
    out = np.zeros((len(rois), x.shape[1], ph_out, pw_out))

    def c_round(v: float) -> int:  # C's round: half away from zero
        return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))

    for k, (n, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = c_round(x1 * spatial_scale), c_round(y1 * spatial_scale)
        ex, ey = c_round(x2 * spatial_scale), c_round(y2 * spatial_scale)
        bin_h = max(ey - sy + 1, 1) / ph_out
        bin_w = max(ex - sx + 1, 1) / pw_out
        for c in range(x.shape[1]):
            for p in range(ph_out):
                for q in range(pw_out):
                    h0 = min(max(math.floor(p * bin_h) + sy, 0), height)
                    h1 = min(max(math.ceil((p + 1) * bin_h) + sy, 0), height)
                    w0 = min(max(math.floor(q * bin_w) + sx, 0), width)
                    w1 = min(max(math.ceil((q + 1) * bin_w) + sx, 0), width)
                    best = 0.0 if (h1 <= h0 or w1 <= w0) else -math.inf
                    for hh in range(h0, h1):
                        for ww in range(w0, w1):
                            best = max(best, x[int(n), c, hh, ww])
                    out[k, c, p, q] = best
    return out


def iou_reference(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def nms_reference(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS, one pair at a time: take the best remaining box (first on equal scores),
    drop the boxes with IoU > threshold with it."""
    remaining = list(range(len(boxes)))
    keep = []
    while remaining:
        best = remaining[0]
        for i in remaining:
            if scores[i] > scores[best]:
                best = i
        keep.append(best)
        remaining = [i for i in remaining
                     if i != best and not iou_reference(boxes[best], boxes[i]) > iou_threshold]
    return keep


def soft_nms_reference(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, sigma: float,
                       score_threshold: float, method: str) -> tuple[list[int], list[float]]:
    """Algorithm 1 of Bodla et al. (2017), one box at a time."""
    s = [float(v) for v in scores]
    remaining = [i for i in range(len(boxes)) if s[i] >= score_threshold]
    keep, kept = [], []
    while remaining:
        m = remaining[0]
        for i in remaining:
            if s[i] > s[m]:
                m = i
        keep.append(m)
        kept.append(s[m])
        remaining.remove(m)
        for i in remaining:
            o = iou_reference(boxes[m], boxes[i])
            if method == "linear":
                if o >= iou_threshold:
                    s[i] *= 1 - o
            else:
                s[i] *= math.exp(-o * o / sigma)
        remaining = [i for i in remaining if s[i] >= score_threshold]
    return keep, kept
