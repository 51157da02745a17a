"""Image transforms and data augmentation (torchvision.transforms' names and semantics).

Data augmentation (notes 000 on AlexNet, 001/004 on regularisation) makes new training samples
from old ones with label-preserving changes, a cheap way to more data and less overfitting:
AlexNet took random 224x224 crops of the 256x256 images and their horizontal mirrors
((256 - 224)^2 * 2 = 2048 times as many distinct inputs) and added PCA colour noise along the
principal components of the RGB values (:class:`PCALighting`).

Images are ``(C, H, W)`` float arrays (or deepnotes Tensors, which come back as Tensors) with
values in [0, 1], as after :class:`ToTensor`. Every random choice is drawn from
``deepnotes.random.default_generator()`` (or the ``generator`` given to the transform), so
``deepnotes.manual_seed`` fixes the augmentations, and DataLoader workers, which re-seed that
generator per worker, draw different ones. (A transform given a ``generator`` of its own is
copied into every worker with the same state, so the workers would repeat each other's draws:
leave ``generator`` at None for data loaded with ``num_workers > 0``.)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..random import default_generator
from ..tensor import Tensor

__all__ = [
    "ColorJitter",
    "Compose",
    "GaussianNoise",
    "Lambda",
    "Normalize",
    "PCALighting",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "ToTensor",
    "TransformDataset",
    "resize",
    "resized_crop",
]


def _unwrap(img: Any) -> tuple[np.ndarray, bool]:
    if isinstance(img, Tensor):
        return img.data, True
    return np.asarray(img), False


def _wrap(array: np.ndarray, was_tensor: bool) -> Any:
    return Tensor._wrap(array) if was_tensor else array


def _check_chw(array: np.ndarray, name: str) -> None:
    if array.ndim != 3:
        raise ValueError(f"{name} expects a (C, H, W) image, got shape {array.shape}")


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{name} must be a positive int or a pair (h, w), got {size!r}")
    return size  # type: ignore[return-value]


class _Random:
    """Base of the random transforms: where the random numbers come from."""

    generator: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        return self.generator if self.generator is not None else default_generator()


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """Apply a user function."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, img: Any) -> Any:
        return self.fn(img)


class ToTensor:
    """(H, W, C) or (H, W) image -> (C, H, W) float32 Tensor; uint8 values are divided by 255
    (torchvision's ToTensor), floats are kept as they are."""

    def __call__(self, pic: Any) -> Tensor:
        array = np.asarray(pic.data if isinstance(pic, Tensor) else pic)
        if array.ndim == 2:
            array = array[:, :, None]                       # (H, W, 1)
        if array.ndim != 3:
            raise ValueError(f"ToTensor expects an (H, W) or (H, W, C) image, got shape "
                             f"{array.shape}")
        chw = np.ascontiguousarray(array.transpose(2, 0, 1))  # (C, H, W)
        if chw.dtype == np.uint8:
            return Tensor._wrap(chw.astype(np.float32) / 255.0)
        return Tensor._wrap(chw.astype(np.float32, copy=False))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """out[c] = (img[c] - mean[c]) / std[c], per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std == 0):
            raise ValueError(f"std evaluated to zero after conversion to float, leading to "
                             f"division by zero: std={list(std)}")
        self.inplace = inplace

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        _check_chw(array, "Normalize")
        c = array.shape[0]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize: mean and std need 1 or {c} values (one per channel), "
                             f"got {self.mean.size} and {self.std.size}")
        dtype = array.dtype if array.dtype.kind == "f" else np.float32
        mean = self.mean.astype(dtype).reshape(-1, 1, 1)
        std = self.std.astype(dtype).reshape(-1, 1, 1)
        if self.inplace and array.dtype.kind == "f":
            array -= mean
            array /= std
            return img
        return _wrap(((array - mean) / std).astype(dtype), was_tensor)


def _pad(array: np.ndarray, padding: Any, fill: float, mode: str) -> np.ndarray:
    if isinstance(padding, numbers.Integral):
        left = right = top = bottom = int(padding)
    elif len(padding) == 2:
        left = right = int(padding[0])
        top = bottom = int(padding[1])
    else:
        left, top, right, bottom = (int(p) for p in padding)
    widths = ((0, 0), (top, bottom), (left, right))
    if mode == "constant":
        return np.pad(array, widths, mode="constant", constant_values=fill)
    numpy_mode = {"edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}.get(mode)
    if numpy_mode is None:
        raise ValueError(f"padding_mode must be 'constant', 'edge', 'reflect' or 'symmetric', "
                         f"got '{mode}'")
    return np.pad(array, widths, mode=numpy_mode)


class RandomCrop(_Random):
    """Pad (optionally), then cut a ``size`` window at a uniformly random position: top
    i ~ U{0..H-h}, left j ~ U{0..W-w} (the standard CIFAR augmentation: padding=4, 32x32).

    ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom), as in
    torchvision; ``pad_if_needed`` pads images smaller than ``size``.
    """

    def __init__(self, size: int | Sequence[int], padding: Any = None,
                 pad_if_needed: bool = False, fill: float = 0, padding_mode: str = "constant",
                 generator: np.random.Generator | None = None):
        self.size = _pair(size, "size")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode, self.generator = fill, padding_mode, generator

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        _check_chw(array, "RandomCrop")
        if self.padding is not None:
            array = _pad(array, self.padding, self.fill, self.padding_mode)
        h, w = self.size
        _, height, width = array.shape
        if self.pad_if_needed and (height < h or width < w):
            dh, dw = max(h - height, 0), max(w - width, 0)
            array = _pad(array, (dw, dh), self.fill, self.padding_mode)
            _, height, width = array.shape
        if height < h or width < w:
            raise ValueError(f"RandomCrop: required crop size {(h, w)} is larger than the "
                             f"(padded) input image size {(height, width)}")
        i = int(self.rng.integers(0, height - h + 1))
        j = int(self.rng.integers(0, width - w + 1))
        return _wrap(array[:, i:i + h, j:j + w].copy(), was_tensor)


class RandomHorizontalFlip(_Random):
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        if self.rng.random() < self.p:
            return _wrap(array[..., ::-1].copy(), was_tensor)
        return img


def resize(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of a (C, H, W) array to (C, h, w), half-pixel centres
    (``F.interpolate(mode="bilinear", align_corners=False)``, no antialiasing).

    Output pixel (y, x) samples the input at u = (y + 0.5) H/h - 0.5 (clamped at 0), and mixes
    the two nearest rows (and columns) with weights given by the fractional part.
    """
    c, height, width = array.shape
    h, w = size

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = ((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5).clip(min=0)
        lo = np.minimum(np.floor(u).astype(np.int64), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, u - lo

    y0, y1, fy = taps(h, height)
    x0, x1, fx = taps(w, width)
    rows = array[:, y0, :] * (1 - fy)[:, None] + array[:, y1, :] * fy[:, None]   # (C, h, W)
    out = rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx                           # (C, h, w)
    return out.astype(array.dtype if array.dtype.kind == "f" else np.float32)


def resized_crop(array: np.ndarray, top: int, left: int, height: int, width: int,
                 size: Sequence[int]) -> np.ndarray:
    """Crop ``[top:top+height, left:left+width]`` and resize it to ``size`` (bilinear)."""
    return resize(array[:, top:top + height, left:left + width], size)


class RandomResizedCrop(_Random):
    """Crop a random area fraction s ~ U(scale) of the image with a random aspect ratio
    r ~ logU(ratio), then resize it to ``size`` (the Inception / ResNet ImageNet augmentation).

    torchvision's sampling: up to 10 tries of w = round(sqrt(s A r)), h = round(sqrt(s A / r));
    the first that fits is placed uniformly at random; otherwise a central crop with the ratio
    clamped into ``ratio``. Bilinear resize without antialiasing.
    """

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 generator: np.random.Generator | None = None):
        self.size = _pair(size, "size")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"scale and ratio should be of kind (min, max), got {scale} and "
                             f"{ratio}")
        self.scale, self.ratio, self.generator = scale, ratio, generator

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * self.rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(self.rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(self.rng.integers(0, height - h + 1))
                j = int(self.rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        _check_chw(array, "RandomResizedCrop")
        i, j, h, w = self.get_params(array.shape[1], array.shape[2])
        return _wrap(resized_crop(array, i, j, h, w, self.size), was_tensor)


def _grayscale(array: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, (1, H, W): 0.2989 R + 0.587 G + 0.114 B (torchvision's weights; the
    channel itself if C = 1)."""
    if array.shape[0] == 1:
        return array
    r, g, b = array[0], array[1], array[2]
    return (0.2989 * r + 0.587 * g + 0.114 * b)[None].astype(array.dtype)


def _blend(img: np.ndarray, other: np.ndarray | float, factor: float) -> np.ndarray:
    return np.clip(factor * img + (1 - factor) * other, 0.0, 1.0).astype(img.dtype)


def adjust_brightness(array: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black: clip(factor * img)."""
    return _blend(array, 0.0, factor)


def adjust_contrast(array: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean grey level of the image."""
    return _blend(array, float(_grayscale(array).mean()), factor)


def adjust_saturation(array: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the grey-scale version of the image (factor 0 = grey)."""
    return _blend(array, _grayscale(array), factor)


class ColorJitter(_Random):
    """Random brightness, contrast and saturation (no hue: the "lite" version), applied in a
    random order, each with a factor drawn uniformly from [max(0, 1 - v), 1 + v] for a number v
    (or from the given (min, max)). Images in [0, 1]."""

    def __init__(self, brightness: float | Sequence[float] = 0,
                 contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0,
                 generator: np.random.Generator | None = None):
        self.brightness = self._range(brightness, "brightness")
        self.contrast = self._range(contrast, "contrast")
        self.saturation = self._range(saturation, "saturation")
        self.generator = generator

    @staticmethod
    def _range(value: float | Sequence[float], name: str) -> tuple[float, float] | None:
        if isinstance(value, numbers.Real):
            if value < 0:
                raise ValueError(f"If {name} is a single number, it must be non negative, "
                                 f"got {value}")
            low, high = max(0.0, 1 - float(value)), 1 + float(value)
        else:
            low, high = (float(v) for v in value)
            if not 0 <= low <= high:
                raise ValueError(f"{name} values should be between (0, inf), got {value}")
        return None if low == high == 1 else (low, high)

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        _check_chw(array, "ColorJitter")
        ops = ((self.brightness, adjust_brightness), (self.contrast, adjust_contrast),
               (self.saturation, adjust_saturation))
        for k in self.rng.permutation(3):
            bounds, fn = ops[k]
            if bounds is not None:
                array = fn(array, float(self.rng.uniform(*bounds)))
        return _wrap(array, was_tensor)


class GaussianNoise(_Random):
    """img + N(mean, sigma^2) noise per pixel, clipped to [0, 1] if ``clip`` (torchvision v2's
    GaussianNoise; notes 001: noise on the inputs as a regulariser)."""

    def __init__(self, mean: float = 0.0, sigma: float = 0.1, clip: bool = True,
                 generator: np.random.Generator | None = None):
        if sigma < 0:
            raise ValueError(f"sigma shouldn't be negative, got {sigma}")
        self.mean, self.sigma, self.clip, self.generator = mean, sigma, clip, generator

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        dtype = array.dtype if array.dtype.kind == "f" else np.float32
        noisy = array + self.rng.normal(self.mean, self.sigma, size=array.shape)
        if self.clip:
            noisy = np.clip(noisy, 0.0, 1.0)
        return _wrap(noisy.astype(dtype), was_tensor)


class PCALighting(_Random):
    """AlexNet's colour augmentation (Krizhevsky et al. 2012, sec. 4.1; notes 000 on AlexNet).

    From the training set: the 3x3 covariance of the RGB values of all pixels,
    Sigma = P diag(lambda) P^T (eigenvectors p_k as columns). For every image, draw
    alpha_k ~ N(0, alphastd^2) once and add the same RGB shift to every pixel::

        delta = P (alpha * lambda) = sum_k alpha_k lambda_k p_k

    Natural images vary mostly along the first component (overall intensity), then
    yellow-blue, then magenta-green; the shift changes colour and intensity of the lighting in
    proportion to how much they vary in the data, while the object's identity stays.

    Args:
        alphastd: standard deviation of the alphas (AlexNet: 0.1).
        eigval: lambda (3,), and eigvec: P (3, 3); build them with :meth:`fit`.
    """

    def __init__(self, alphastd: float, eigval: Sequence[float], eigvec: Any,
                 generator: np.random.Generator | None = None):
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(eigval, dtype=np.float64)
        self.eigvec = np.asarray(eigvec, dtype=np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"eigval must have shape (3,) and eigvec (3, 3), got "
                             f"{self.eigval.shape} and {self.eigvec.shape}")
        self.generator = generator

    @staticmethod
    def rgb_eigen(images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending) and eigenvectors (columns) of the RGB covariance of all
        pixels of ``images`` (N, 3, H, W)."""
        array = np.asarray(images.data if isinstance(images, Tensor) else images,
                           dtype=np.float64)
        if array.ndim != 4 or array.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {array.shape}")
        pixels = array.transpose(0, 2, 3, 1).reshape(-1, 3)               # (N*H*W, 3)
        centred = pixels - pixels.mean(axis=0)
        cov = centred.T @ centred / (len(pixels) - 1)                     # (3, 3)
        eigval, eigvec = np.linalg.eigh(cov)                              # ascending
        return eigval[::-1].copy(), eigvec[:, ::-1].copy()

    @classmethod
    def fit(cls, images: Any, alphastd: float = 0.1,
            generator: np.random.Generator | None = None) -> PCALighting:
        """The transform with the eigen-decomposition of the training images' RGB covariance."""
        eigval, eigvec = cls.rgb_eigen(images)
        return cls(alphastd, eigval, eigvec, generator)

    def shift(self, alpha: np.ndarray) -> np.ndarray:
        """delta = P (alpha * lambda), the RGB offset for given alphas (3,)."""
        return self.eigvec @ (alpha * self.eigval)

    def __call__(self, img: Any) -> Any:
        array, was_tensor = _unwrap(img)
        _check_chw(array, "PCALighting")
        if array.shape[0] != 3:
            raise ValueError(f"PCALighting needs an RGB image (3, H, W), got {array.shape}")
        if self.alphastd == 0:
            return img
        alpha = self.rng.normal(0.0, self.alphastd, size=3)
        delta = self.shift(alpha)
        dtype = array.dtype if array.dtype.kind == "f" else np.float32
        return _wrap((array + delta.reshape(3, 1, 1)).astype(dtype), was_tensor)


class TransformDataset:
    """``dataset`` with ``transform`` applied to each sample's input (and ``target_transform``
    to its label), as torchvision datasets' ``transform=`` arguments do. Each access draws new
    random augmentations."""

    def __init__(self, dataset: Any, transform: Callable[[Any], Any] | None = None,
                 target_transform: Callable[[Any], Any] | None = None):
        self.dataset, self.transform = dataset, transform
        self.target_transform = target_transform

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x, y = self.dataset[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def __len__(self) -> int:
        return len(self.dataset)
