"""Region Proposal Network (Ren et al., Faster R-CNN 2015; notes 004 "Faster R-CNN: RPN replaces
Selective Search"), with torchvision's structure and defaults scaled down.

At every cell of every pyramid level and for each of its A anchors the RPN predicts an
objectness logit and a box delta (dx, dy, dw, dh) relative to the anchor (a 3x3 conv shared by
the levels, then two 1x1 convs). Training targets: anchors with IoU >= 0.7 with a ground truth
(and, for each ground truth, its best anchors) are positive, IoU < 0.3 negative, the rest
ignored; 256 anchors per image are sampled at most half positive. Loss = binary cross-entropy on
the objectness of the sampled anchors + smooth L1 (beta 1/9) on the deltas of the positive
ones, divided by the number sampled. Proposals: decode the deltas, keep the pre_nms_top_n best
anchors per level, clip to the image, drop tiny boxes, NMS per level at 0.7, keep post_nms_top_n.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import nn
from ...autograd import no_grad
from ...nn import functional as F
from ...ops import shape as _shape
from ...tensor import Tensor
from ...vision.ops import boxes as box_ops
from ...vision.ops.matching import (
    AnchorGenerator,
    BalancedPositiveNegativeSampler,
    BoxCoder,
    Matcher,
)
from ...vision.ops.poolers import take_rows


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 convs to A objectness logits and 4A deltas per cell."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for f in features:
            t = F.relu(self.conv(f))
            logits.append(self.cls_logits(t))    # (N, A, H, W)
            deltas.append(self.bbox_pred(t))     # (N, 4A, H, W)
        return logits, deltas


def _flatten_level(t: Tensor, c: int) -> Tensor:
    """(N, A*C, H, W) -> (N, H*W*A, C): rows in the anchors' order (cell-major, then anchor)."""
    n, _, h, w = t.shape
    return t.reshape(n, -1, c, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, c)


class RegionProposalNetwork(nn.Module):
    """torchvision's ``RegionProposalNetwork``: forward(images, features, targets) ->
    (proposals per image, losses dict {loss_objectness, loss_rpn_box_reg} in training)."""

    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead,
                 fg_iou_thresh: float = 0.7, bg_iou_thresh: float = 0.3,
                 batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: dict[str, int] | None = None,
                 post_nms_top_n: dict[str, int] | None = None,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh,
                                        allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image,
                                                             positive_fraction)
        self._pre_nms_top_n = pre_nms_top_n or {"training": 2000, "testing": 1000}
        self._post_nms_top_n = post_nms_top_n or {"training": 2000, "testing": 1000}
        self.nms_thresh = nms_thresh
        self.score_thresh = score_thresh
        self.min_size = 1e-3

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def assign_targets_to_anchors(self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
                                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per image: labels (1 object, 0 background, -1 ignored) and matched gt boxes."""
        labels, matched_boxes = [], []
        for a, target in zip(anchors, targets):
            gt = target["boxes"]
            if gt.shape[0] == 0:
                labels.append(np.zeros(a.shape[0], dtype=np.float32))
                matched_boxes.append(np.zeros(a.shape, dtype=np.float32))
                continue
            quality = box_ops.iou_matrix(gt.data, a.data)                 # (G, A)
            idx = self.proposal_matcher(Tensor._wrap(quality)).data
            matched_boxes.append(gt.data[np.maximum(idx, 0)])
            lab = (idx >= 0).astype(np.float32)
            lab[idx == Matcher.BELOW_LOW_THRESHOLD] = 0.0
            lab[idx == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab)
        return labels, matched_boxes

    def filter_proposals(self, proposals: np.ndarray, objectness: np.ndarray,
                         image_size: tuple[int, int], per_level: list[int]) -> list[Tensor]:
        """proposals (N, A_total, 4), objectness (N, A_total) -> kept boxes per image."""
        levels = np.concatenate([np.full(n, i) for i, n in enumerate(per_level)])
        starts = np.cumsum([0, *per_level])
        result = []
        for boxes, scores in zip(proposals, objectness):
            top = []
            for i in range(len(per_level)):                 # best pre_nms_top_n per level
                s = scores[starts[i]:starts[i + 1]]
                k = min(self.pre_nms_top_n(), len(s))
                top.append(starts[i] + np.argsort(-s, kind="stable")[:k])
            top = np.concatenate(top)
            b, s, lv = boxes[top], scores[top], levels[top]
            b = np.stack([np.clip(b[:, 0], 0, image_size[1]), np.clip(b[:, 1], 0, image_size[0]),
                          np.clip(b[:, 2], 0, image_size[1]), np.clip(b[:, 3], 0, image_size[0])],
                         axis=1)
            prob = 1 / (1 + np.exp(-s))
            keep = ((b[:, 2] - b[:, 0]) >= self.min_size) & ((b[:, 3] - b[:, 1]) >= self.min_size)
            keep &= prob >= self.score_thresh
            b, prob, lv = b[keep], prob[keep], lv[keep]
            kept = box_ops.batched_nms(Tensor._wrap(b), Tensor._wrap(prob), Tensor._wrap(lv),
                                       self.nms_thresh).data[:self.post_nms_top_n()]
            result.append(Tensor._wrap(b[kept].astype(np.float32)))
        return result

    def compute_loss(self, objectness: Tensor, deltas: Tensor, labels: list[np.ndarray],
                     regression_targets: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        pos_masks, neg_masks = self.fg_bg_sampler([Tensor._wrap(lab) for lab in labels])
        pos = np.flatnonzero(np.concatenate([m.data for m in pos_masks]))
        neg = np.flatnonzero(np.concatenate([m.data for m in neg_masks]))
        sampled = np.concatenate([pos, neg])
        targets = Tensor._wrap(np.concatenate(regression_targets)[pos].astype(np.float32))
        box_loss = F.smooth_l1_loss(take_rows(deltas, pos), targets, beta=1 / 9, reduction="sum") \
            / max(len(sampled), 1)
        lab = Tensor._wrap(np.concatenate(labels)[sampled])
        objectness_loss = F.binary_cross_entropy_with_logits(take_rows(objectness, sampled), lab)
        return objectness_loss, box_loss

    def forward(self, images: Tensor, features: dict[str, Tensor],
                targets: list[dict[str, Tensor]] | None = None
                ) -> tuple[list[Tensor], dict[str, Tensor]]:
        feats = list(features.values())
        logits, deltas = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        n = images.shape[0]
        a = self.anchor_generator.num_anchors_per_location()[0]
        per_level = [lg.shape[2] * lg.shape[3] * a for lg in logits]
        objectness = _shape.cat([_flatten_level(lg, 1) for lg in logits], dim=1)   # (N, T, 1)
        pred_deltas = _shape.cat([_flatten_level(d, 4) for d in deltas], dim=1)    # (N, T, 4)
        objectness = objectness.reshape(-1)                                          # (N*T,)
        pred_deltas = pred_deltas.reshape(-1, 4)                                     # (N*T, 4)
        with no_grad():  # proposals are not differentiated (torchvision detaches them)
            boxes = self.box_coder.decode(pred_deltas.detach(), anchors)             # (N*T, 1, 4)
        proposals = self.filter_proposals(boxes.data.reshape(n, -1, 4),
                                          objectness.data.reshape(n, -1),
                                          tuple(images.shape[-2:]), per_level)
        losses: dict[str, Any] = {}
        if self.training:
            if targets is None:
                raise ValueError("RegionProposalNetwork: targets should not be None in training")
            labels, matched = self.assign_targets_to_anchors(anchors, targets)
            with no_grad(), np.errstate(divide="ignore", invalid="ignore"):
                reg = [self.box_coder.encode_single(Tensor._wrap(m), anc).data
                       for m, anc in zip(matched, anchors)]
            loss_obj, loss_box = self.compute_loss(objectness, pred_deltas, labels, reg)
            losses = {"loss_objectness": loss_obj, "loss_rpn_box_reg": loss_box}
        return proposals, losses
