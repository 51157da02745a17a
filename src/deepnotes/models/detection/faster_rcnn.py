"""Faster R-CNN with an FPN (Ren et al. 2015; Lin et al. 2017), the two-stage detector at the end
of the detection history in notes 004: R-CNN (a CNN per Selective-Search crop) -> SPP-Net (one
CNN pass, pooled regions) -> Fast R-CNN (RoI Pooling, one network for classes and boxes) ->
Faster R-CNN (the RPN proposes the regions from the same features) -> FPN (a pyramid of strong
features). RoI Align replaces RoI Pooling (Mask R-CNN), OHEM is an option of the RoI head.

    images -> normalise -> backbone (small ResNet + FPN) -> {P2, P3, P4}
           -> RPN: anchors, objectness, deltas -> proposals (NMS)      losses: BCE + smooth L1
           -> RoI head: MultiScaleRoIAlign 7x7 -> 2 FC -> classes + boxes   losses: CE + smooth L1

torchvision's convention: ``model(images, targets)`` in training mode returns the loss dict
{loss_classifier, loss_box_reg, loss_objectness, loss_rpn_box_reg}; in eval mode
``model(images)`` returns one dict per image {boxes (D, 4), labels (D,), scores (D,)}.
``images`` is a list of (3, H, W) Tensors of one size (or an (N, 3, H, W) Tensor) in [0, 1];
``targets`` a list of {boxes: Tensor[G, 4] (x1, y1, x2, y2) float, labels: Tensor[G] int64}.
The input is not resized (torchvision's transform resizes to 800 px; the shapes are 64 px).

``faster_rcnn_small`` for 64x64 images (3 foreground classes + background) has 339,266 params
(backbone + FPN 109,104, RPN 10,238, RoI head 219,924, most of it the 1,568 -> 128 fc6).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import nn
from ...tensor import Tensor
from ...vision.ops.matching import AnchorGenerator
from ...vision.ops.poolers import MultiScaleRoIAlign
from .backbone import SmallResNetFPN
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RegionProposalNetwork, RPNHead


class FasterRCNN(nn.Module):
    """Backbone (returning a dict of feature maps with ``out_channels``), RPN and RoI heads."""

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork, roi_heads: RoIHeads,
                 image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
                 image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.image_mean = np.asarray(image_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.image_std = np.asarray(image_std, dtype=np.float32).reshape(1, 3, 1, 1)

    def _batch(self, images: Any) -> Tensor:
        if isinstance(images, Tensor):
            batch = images.data
        else:
            if not images:
                raise ValueError("FasterRCNN: expected a non-empty list of images")
            sizes = {tuple(im.shape) for im in images}
            if len(sizes) != 1:
                raise ValueError(f"FasterRCNN: all images should have one size (no resizing "
                                 f"here), got {sorted(sizes)}")
            batch = np.stack([im.data for im in images])             # (N, 3, H, W)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"FasterRCNN: images should be (3, H, W), got batch shape "
                             f"{batch.shape}")
        return Tensor._wrap(((batch - self.image_mean) / self.image_std).astype(np.float32))

    def forward(self, images: Any, targets: list[dict[str, Tensor]] | None = None) -> Any:
        if self.training:
            if targets is None:
                raise ValueError("FasterRCNN: in training mode, targets should be passed")
            for i, t in enumerate(targets):
                b = t["boxes"]
                if b.ndim != 2 or b.shape[1] != 4:
                    raise ValueError(f"FasterRCNN: targets[{i}]['boxes'] should be (G, 4), got "
                                     f"{tuple(b.shape)}")
                if len(b) and np.any(b.data[:, 2:] <= b.data[:, :2]):
                    raise ValueError(f"FasterRCNN: targets[{i}] has a box of non-positive "
                                     f"width or height")
        x = self._batch(images)
        image_size = tuple(x.shape[-2:])
        features = self.backbone(x)
        proposals, rpn_losses = self.rpn(x, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, image_size, targets)
        if self.training:
            return {**head_losses, **rpn_losses}
        return detections


class _FirstLevels(nn.Module):
    """Keep the levels "0", "1", "2" (strides 4, 8, 16) of a backbone's feature dict."""

    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.body(x)
        return {name: features[name] for name in ("0", "1", "2")}


def faster_rcnn_small(num_classes: int = 4, ohem: bool = False, backbone: str = "small",
                      widths: tuple[int, ...] = (16, 32, 64),
                      out_channels: int = 32, representation_size: int = 128,
                      rpn_batch_size_per_image: int = 128, box_batch_size_per_image: int = 64,
                      **kwargs: Any) -> FasterRCNN:
    """Faster R-CNN + FPN sized for 64x64 images (the ``shapes`` data set).

    Args:
        num_classes: including the background (4 for squares, circles, triangles).
        ohem: train the RoI head on the hardest RoIs (OHEM) instead of a random sample.
        backbone: "small" (``SmallResNetFPN``: one BasicBlock per stage, the fast default) or
            "resnet18_fpn" (the zoo's ``models.fpn.resnet_fpn``: a narrow ResNet-18 + FPN,
            layer1..3 used; 438,114 params, about 15 % more CPU time per step).
        widths: channels of the three backbone stages; out_channels: FPN channels.
        representation_size: width of the RoI head's two FC layers.
        rpn_batch_size_per_image, box_batch_size_per_image: anchors / RoIs per image in the
            losses (torchvision: 256 and 512, for 800 px images).
        **kwargs: passed to :class:`RoIHeads` (score_thresh, nms_thresh, detections_per_img).

    Anchors: sizes (12, 16), (20, 26), (32, 40) px on P2, P3, P4 (strides 4, 8, 16), aspect
    ratios 0.5, 1, 2: 6 per cell, 2,016 per 64x64 image. RoIs are assigned to P2..P4 by FPN's
    rule with a canonical 32 px box at level 4.
    """
    if backbone == "small":
        body: nn.Module = SmallResNetFPN(widths, out_channels)
    elif backbone == "resnet18_fpn":
        from ..fpn import resnet_fpn

        body = _FirstLevels(resnet_fpn(18, (*widths, 2 * widths[-1]), out_channels,
                                       returned_layers=[1, 2, 3]), out_channels)
    else:
        raise ValueError(f"faster_rcnn_small: backbone should be 'small' or 'resnet18_fpn', "
                         f"got {backbone!r}")
    anchors = AnchorGenerator(((12, 16), (20, 26), (32, 40)), ((0.5, 1.0, 2.0),) * 3)
    rpn = RegionProposalNetwork(
        anchors, RPNHead(out_channels, anchors.num_anchors_per_location()[0]),
        batch_size_per_image=rpn_batch_size_per_image,
        pre_nms_top_n={"training": 300, "testing": 300},
        post_nms_top_n={"training": 150, "testing": 100})
    pool = MultiScaleRoIAlign(["0", "1", "2"], 7, 2, canonical_scale=32, canonical_level=4)
    heads = RoIHeads(pool, TwoMLPHead(out_channels * 49, representation_size),
                     FastRCNNPredictor(representation_size, num_classes),
                     batch_size_per_image=box_batch_size_per_image, ohem=ohem, **kwargs)
    return FasterRCNN(body, rpn, heads)


__all__ = ["FasterRCNN", "faster_rcnn_small"]
