"""Shapes: a detection data set that is drawn, not downloaded.

Each image (3 x size x size, float32 in [0, 1]) has a noisy background (a random dark colour plus
Gaussian pixel noise and a soft gradient) and 1 to ``max_objects`` filled shapes, each in its own
random bright colour:

    label 1  square     axis-aligned, side s
    label 2  circle     diameter s
    label 3  triangle   isosceles, apex up, base s and height s

with s in [min_size, max_size] pixels. Shapes overlap by at most IoU 0.1 (so each box shows its
object), and a box is exact: (x1, y1, x2, y2) in continuous pixel coordinates, pixel (i, j)
covering [j, j+1) x [i, i+1); a pixel is painted when its centre lies inside the shape.
Everything is drawn from ``numpy.random.default_rng(seed)``, so ``shapes(n, seed=s)`` is the same
on every machine, and the first k images of ``shapes(n)`` do not depend on n.
Use different seeds for the train and test splits (``deepnotes detect`` uses 0 and 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset

CLASSES = ("background", "square", "circle", "triangle")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _mask(label: int, box: np.ndarray, size: int) -> np.ndarray:
    """Boolean (size, size) mask of the pixels whose centres lie inside the shape."""
    c = np.arange(size) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    x1, y1, x2, y2 = box
    if label == 1:
        return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    if label == 2:
        r = (x2 - x1) / 2
        return (xx - (x1 + r)) ** 2 + (yy - (y1 + r)) ** 2 <= r * r
    # triangle: apex (xm, y1), base from (x1, y2) to (x2, y2); inside = below both slanted sides
    xm, half = (x1 + x2) / 2, (x2 - x1) / 2
    depth = (yy - y1) / (y2 - y1)                      # 0 at the apex, 1 at the base
    return (yy >= y1) & (yy < y2) & (np.abs(xx - xm) <= half * depth)


def _draw_image(rng: np.random.Generator, size: int, max_objects: int, min_size: int,
                max_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = rng.uniform(0.0, 0.35, size=3)
    ramp = np.linspace(-1, 1, size)
    direction = rng.uniform(-0.08, 0.08, size=2)
    image = (base[:, None, None] + direction[0] * ramp[None, :, None]
             + direction[1] * ramp[None, None, :])                           # (3, S, S)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    count = int(rng.integers(1, max_objects + 1))
    for _ in range(50 * count):                                             # placement attempts
        if len(boxes) == count:
            break
        label = int(rng.integers(1, 4))
        s = float(rng.integers(min_size, max_size + 1))
        x1, y1 = (float(v) for v in rng.integers(0, size - int(s) + 1, size=2))
        box = np.array([x1, y1, x1 + s, y1 + s])
        if any(_iou(box, b) > 0.1 for b in boxes):
            continue
        colour = rng.uniform(0.5, 1.0, size=3)
        colour[rng.integers(0, 3)] = rng.uniform(0.0, 0.3)                 # a saturated hue
        mask = _mask(label, box, size)
        image[:, mask] = colour[:, None]
        boxes.append(box)
        labels.append(label)
    image = image + rng.normal(0.0, 0.06, size=image.shape)
    return (np.clip(image, 0, 1).astype(np.float32),
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64))


class ShapesDataset(Dataset):
    """``n`` drawn images; item i is ``(image, target)`` with image a float32 Tensor (3, S, S)
    and target ``{"boxes": Tensor[K, 4] float32, "labels": Tensor[K] int64}`` (torchvision's
    detection convention). ``images`` (N, 3, S, S), ``boxes`` and ``labels`` (lists of arrays)
    hold the raw data."""

    classes = CLASSES

    def __init__(self, images: np.ndarray, boxes: list[np.ndarray],
                 labels: list[np.ndarray]) -> None:
        self.images, self.boxes, self.labels = images, boxes, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return (Tensor._wrap(self.images[index].copy()),
                {"boxes": Tensor._wrap(self.boxes[index].copy()),
                 "labels": Tensor._wrap(self.labels[index].copy())})


def shapes(n: int, size: int = 64, seed: int = 0, max_objects: int = 3, min_size: int = 12,
           max_size: int = 28) -> ShapesDataset:
    """``n`` images of coloured squares, circles and triangles with their boxes and labels.

    Args:
        n: number of images.
        size: image height and width in pixels.
        seed: seed of the data set's own generator (not ``deepnotes.manual_seed``).
        max_objects: at most this many shapes per image (at least one).
        min_size, max_size: range of the shapes' side / diameter in pixels.
    """
    for name, value in (("n", n), ("size", size), ("max_objects", max_objects),
                        ("min_size", min_size), ("max_size", max_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"shapes(): {name} should be a positive int, got {value!r}")
    if not min_size <= max_size <= size:
        raise ValueError(f"shapes(): need min_size <= max_size <= size, got min_size={min_size}, "
                         f"max_size={max_size}, size={size}")
    images = np.empty((n, 3, size, size), dtype=np.float32)
    all_boxes, all_labels = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])  # one stream per image: a prefix is stable
        images[i], boxes, labels = _draw_image(rng, size, max_objects, min_size, max_size)
        all_boxes.append(boxes)
        all_labels.append(labels)
    return ShapesDataset(images, all_boxes, all_labels)


def collate_detection(batch: list[Any]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """DataLoader ``collate_fn`` for detection: lists of images and of targets (images may
    differ in size, targets in their number of boxes)."""
    return [item[0] for item in batch], [item[1] for item in batch]
