"""The pure-PyTorch parts of torchvision as oracles for the detection ops.

torchvision's compiled operators (nms, roi_pool, the C++ roi_align) do not load beside this torch
build (see tests/models/tv.py), but several detection pieces are plain torch code and run:
``torchvision.ops.boxes`` (box_area, box_iou, generalized_box_iou, box_convert), the pure-Python
``_roi_align`` in ``torchvision/ops/roi_align.py`` (written to mirror the CUDA kernel; called
here without its lazy torch.compile wrapper), and ``torchvision.models.detection._utils``
(BoxCoder, Matcher) and ``anchor_utils.AnchorGenerator``. NMS and RoI Pooling have no usable
oracle and are checked against the loop references in ``deepnotes.vision.ops.reference``.

One known difference: the Python ``_roi_align`` omits the kernel's rule that a sample outside
[-1, H] x [-1, W] reads 0, so it is compared only on boxes inside the map; the loop reference
covers the outside case.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def _import() -> None:
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models.detection  # noqa: F401
    import torchvision.ops  # noqa: F401


def boxes_module() -> Any:
    _import()
    return sys.modules["torchvision.ops.boxes"]


def roi_align_python() -> Any:
    """torchvision's pure-torch ``_roi_align(input, rois, spatial_scale, pooled_height,
    pooled_width, sampling_ratio, aligned)``."""
    _import()
    return sys.modules["torchvision.ops.roi_align"]._roi_align.__wrapped__


def det_utils() -> Any:
    _import()
    return sys.modules["torchvision.models.detection._utils"]


def anchor_utils() -> Any:
    _import()
    return sys.modules["torchvision.models.detection.anchor_utils"]


def image_list() -> Any:
    _import()
    return sys.modules["torchvision.models.detection.image_list"].ImageList
