"""Object detection models: a small Faster R-CNN + FPN (``faster_rcnn_small``) with its parts
(backbone, RPN, RoI heads), torchvision's structure and conventions."""

from .backbone import FeaturePyramidNetwork, SmallResNetFPN
from .faster_rcnn import FasterRCNN, faster_rcnn_small
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead, fastrcnn_loss
from .rpn import RegionProposalNetwork, RPNHead

__all__ = [
    "FastRCNNPredictor",
    "FasterRCNN",
    "FeaturePyramidNetwork",
    "RPNHead",
    "RegionProposalNetwork",
    "RoIHeads",
    "SmallResNetFPN",
    "TwoMLPHead",
    "fastrcnn_loss",
    "faster_rcnn_small",
]
