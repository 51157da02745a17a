"""Detection ops with torchvision's names and semantics: box geometry, NMS and Soft-NMS,
RoI Pool / RoI Align, and the training-target machinery of a two-stage detector (box coder,
matcher, balanced sampler, OHEM, anchors).

    from deepnotes.vision import ops
    keep = ops.nms(boxes, scores, 0.5)
    feats = ops.roi_align(features, [boxes], output_size=7, spatial_scale=1 / 8, sampling_ratio=2)
"""

from .boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou,
    nms,
    remove_small_boxes,
    soft_nms,
)
from .matching import (
    AnchorGenerator,
    BalancedPositiveNegativeSampler,
    BoxCoder,
    Matcher,
    ohem_sample,
)
from .poolers import MultiScaleRoIAlign
from .roi import RoIAlign, RoIPool, convert_boxes_to_roi_format, roi_align, roi_pool

__all__ = [
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "Matcher",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "convert_boxes_to_roi_format",
    "generalized_box_iou",
    "nms",
    "ohem_sample",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "soft_nms",
]
