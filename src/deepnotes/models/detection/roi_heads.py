"""The second stage of Faster R-CNN: classify each proposal and refine its box (Fast R-CNN,
notes 004; RoI Align instead of RoI Pooling, notes 003).

Training: the ground-truth boxes join the proposals; each proposal is matched to a ground truth
(IoU >= 0.5 -> its class, below -> background); a mini-batch of ``batch_size_per_image``
proposals, at most 25% foreground, is sampled. With ``ohem`` (Online Hard Example Mining,
Shrivastava et al. 2016; notes 003 "OHEM") the head instead runs on all proposals, and only the
``batch_size_per_image`` of each image with the highest current loss (classification + box)
enter the loss: easy background stops diluting the gradient. As in the paper, near-duplicate RoIs
are removed first, by NMS on the losses at IoU ``ohem_nms_thresh`` (0.7).
Features: MultiScaleRoIAlign (7x7) -> two fully connected layers -> class logits (K+1) and
class-specific deltas (4 (K+1)), coded with weights (10, 10, 5, 5).
Loss: cross-entropy on the classes + smooth L1 (beta 1/9) on the deltas of the true class of the
foreground proposals, summed and divided by the number of proposals in the mini-batch.
Inference: softmax scores, decode the boxes per class, clip, drop background and scores below
``score_thresh``, NMS per class, keep the ``detections_per_img`` best.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import nn
from ...autograd import no_grad
from ...nn import functional as F
from ...tensor import Tensor
from ...vision.ops import boxes as box_ops
from ...vision.ops.matching import BalancedPositiveNegativeSampler, BoxCoder, Matcher, ohem_sample
from ...vision.ops.poolers import MultiScaleRoIAlign, take_rows


class TwoMLPHead(nn.Module):
    """Flatten the RoI features and apply two fully connected layers with ReLU."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)                       # (R, C*7*7)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class FastRCNNPredictor(nn.Module):
    """Class logits and class-specific box deltas from the RoI representation."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def fastrcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: np.ndarray,
                  regression_targets: np.ndarray, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """Cross-entropy + smooth L1 on the true class's deltas of the foreground RoIs.

    ``reduction='none'`` gives per-RoI losses (R,) each (for OHEM), else the Faster R-CNN
    normalisation: mean CE and box loss summed / R.
    """
    r = len(labels)
    dtype = class_logits.data.dtype
    fg = labels > 0
    cls = F.cross_entropy(class_logits, Tensor._wrap(labels), reduction=reduction)
    k = box_regression.shape[1] // 4
    rows = np.arange(r) * k + labels                                  # row of (RoI, own class)
    pred = take_rows(box_regression.reshape(r * k, 4), rows)          # (R, 4)
    target = np.where(fg[:, None], regression_targets, 0).astype(dtype)  # bg rows: unused
    per_roi = F.smooth_l1_loss(pred, Tensor._wrap(target), beta=1 / 9, reduction="none")
    per_roi = per_roi.sum(dim=1) * Tensor._wrap(fg.astype(dtype))     # (R,) 0 for background
    if reduction == "none":
        return cls, per_roi
    return cls, per_roi.sum() / max(r, 1)


class RoIHeads(nn.Module):
    """torchvision's ``RoIHeads`` (box branch only), with an ``ohem`` option."""

    def __init__(self, box_roi_pool: MultiScaleRoIAlign, box_head: nn.Module,
                 box_predictor: FastRCNNPredictor, fg_iou_thresh: float = 0.5,
                 bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25,
                 bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
                 score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100, ohem: bool = False,
                 ohem_nms_thresh: float | None = 0.7) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image,
                                                             positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.batch_size_per_image = batch_size_per_image
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.ohem, self.ohem_nms_thresh = ohem, ohem_nms_thresh

    def select_training_samples(self, proposals: list[Tensor], targets: list[dict[str, Tensor]]
                                ) -> tuple[list[Tensor], np.ndarray, np.ndarray]:
        """Add the gt boxes to the proposals, match, sample (unless OHEM: keep all), and
        return the proposals kept, their labels and regression targets."""
        kept, all_labels, all_targets = [], [], []
        for props, target in zip(proposals, targets):
            gt, gt_labels = target["boxes"].data, target["labels"].data
            boxes = np.concatenate([props.data, gt.astype(props.data.dtype)], axis=0)
            if len(gt):
                idx = self.proposal_matcher(Tensor._wrap(box_ops.iou_matrix(gt, boxes))).data
                labels = gt_labels[np.maximum(idx, 0)].astype(np.int64)
                labels[idx == Matcher.BELOW_LOW_THRESHOLD] = 0
                labels[idx == Matcher.BETWEEN_THRESHOLDS] = -1
                matched = gt[np.maximum(idx, 0)]
            else:
                labels = np.zeros(len(boxes), dtype=np.int64)
                matched = np.zeros_like(boxes)
            if self.ohem:
                sel = np.flatnonzero(labels >= 0)
            else:
                pos, neg = self.fg_bg_sampler([Tensor._wrap(labels)])
                sel = np.flatnonzero(pos[0].data | neg[0].data)
            with no_grad(), np.errstate(divide="ignore", invalid="ignore"):
                reg = self.box_coder.encode_single(Tensor._wrap(matched[sel].astype(np.float32)),
                                                   Tensor._wrap(boxes[sel].astype(np.float32)))
            kept.append(Tensor._wrap(boxes[sel]))
            all_labels.append(labels[sel])
            all_targets.append(reg.data)
        return kept, np.concatenate(all_labels), np.concatenate(all_targets)

    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor,
                               proposals: list[Tensor], image_size: tuple[int, int]
                               ) -> list[dict[str, Tensor]]:
        num_classes = class_logits.shape[-1]
        boxes_all = self.box_coder.decode(box_regression.detach(), proposals).data  # (R, K+1, 4)
        scores_all = F.softmax(class_logits.detach(), dim=-1).data                    # (R, K+1)
        h, w = image_size
        results, start = [], 0
        for props in proposals:
            r = len(props)
            boxes = boxes_all[start:start + r, 1:]                   # drop background
            scores = scores_all[start:start + r, 1:]
            start += r
            boxes = np.stack([np.clip(boxes[..., 0], 0, w), np.clip(boxes[..., 1], 0, h),
                              np.clip(boxes[..., 2], 0, w), np.clip(boxes[..., 3], 0, h)], -1)
            labels = np.broadcast_to(np.arange(1, num_classes), scores.shape)
            boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
            keep = scores > self.score_thresh
            keep &= ((boxes[:, 2] - boxes[:, 0]) >= 1e-2) & ((boxes[:, 3] - boxes[:, 1]) >= 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            kept = box_ops.batched_nms(Tensor._wrap(boxes), Tensor._wrap(scores),
                                       Tensor._wrap(labels), self.nms_thresh).data
            kept = kept[:self.detections_per_img]
            results.append({"boxes": Tensor._wrap(boxes[kept].astype(np.float32)),
                            "scores": Tensor._wrap(scores[kept].astype(np.float32)),
                            "labels": Tensor._wrap(labels[kept].astype(np.int64))})
        return results

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_size: tuple[int, int], targets: list[dict[str, Tensor]] | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Any]]:
        shapes = [image_size] * len(proposals)
        if self.training:
            if targets is None:
                raise ValueError("RoIHeads: targets should not be None in training")
            proposals, labels, reg_targets = self.select_training_samples(proposals, targets)
        feats = self.box_roi_pool(features, proposals, shapes)       # (R, C, 7, 7)
        class_logits, box_regression = self.box_predictor(self.box_head(feats))
        if not self.training:
            return self.postprocess_detections(class_logits, box_regression, proposals,
                                               image_size), {}
        if self.ohem:
            cls, box = fastrcnn_loss(class_logits, box_regression, labels, reg_targets, "none")
            per_roi = (cls + box).data                  # read only: the choice is not learned
            hard, start = [], 0
            for props in proposals:                     # the k hardest RoIs of each image
                r = len(props)
                dedup = {} if self.ohem_nms_thresh is None else {
                    "boxes": props, "iou_threshold": self.ohem_nms_thresh}
                hard.append(start + ohem_sample(per_roi[start:start + r],
                                                self.batch_size_per_image, **dedup).data)
                start += r
            hard = np.concatenate(hard)
            n = max(len(hard), 1)
            return [], {"loss_classifier": take_rows(cls, hard).sum() / n,
                        "loss_box_reg": take_rows(box, hard).sum() / n}
        cls, box = fastrcnn_loss(class_logits, box_regression, labels, reg_targets)
        return [], {"loss_classifier": cls, "loss_box_reg": box}
