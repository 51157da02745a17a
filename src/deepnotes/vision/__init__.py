"""Computer vision for detection (notes 003-004): ``deepnotes.vision.ops`` holds the box ops,
NMS / Soft-NMS, RoI Pool / RoI Align and the target machinery of a two-stage detector; the
detector itself is ``deepnotes.models.detection.faster_rcnn_small``; ``deepnotes detect`` is the
command line (``deepnotes.vision.cli``)."""

from . import ops
from .ops import *  # noqa: F403 - the ops are the package's API

__all__ = ["ops", *ops.__all__]
