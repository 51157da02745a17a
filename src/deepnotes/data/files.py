"""Loaders for the real data files, from a local folder; nothing is ever downloaded.

* MNIST and Fashion-MNIST, in the IDX format of LeCun's site (``.gz`` or uncompressed):
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``. IDX: two zero bytes, a type byte (0x08 = uint8, 0x09 int8,
  0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then one
  big-endian uint32 per dimension, then the values, big-endian, row-major.
* CIFAR-10, "binary version": ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
  ``test_batch.bin``, each 10,000 records of 3,073 bytes: the label (0-9), then the 32x32 red,
  green and blue planes, row-major.

The folder may be the one holding the files or a parent of it (torchvision's layout
``MNIST/raw``, ``FashionMNIST/raw``, or ``cifar-10-batches-bin``). When files are missing, the
error names every missing file and the folders searched.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..tensor import Tensor
from .dataset import TensorDataset

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed or not), in native byte order."""
    path = Path(path)
    data = _open_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {data[:4]!r})")
    dtype, ndim = np.dtype(IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: the header says shape {shape} ({count * dtype.itemsize} "
                         f"bytes of data) but the file holds {len(data) - header}")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=header)
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``, or when the name ends
    in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{sorted(str(d) for d in codes)}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress or (compress is None and path.suffix == ".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def _candidates(root: Path, subdirs: tuple[str, ...]) -> list[Path]:
    return [root, *(root / s for s in subdirs)]


def _find(root: str | Path, names: dict[str, str], subdirs: tuple[str, ...], what: str,
          suffixes: tuple[str, ...] = ("", ".gz")) -> dict[str, Path]:
    """Locate every file of ``names`` in one of the candidate folders, or raise naming them."""
    root = Path(root).expanduser()
    folders = _candidates(root, subdirs)
    for folder in folders:
        found = {}
        for key, name in names.items():
            for suffix in suffixes:
                if (folder / (name + suffix)).is_file():
                    found[key] = folder / (name + suffix)
                    break
        if len(found) == len(names):
            return found
    # Report against the folder that had the most files (or the root).
    best, best_found = root, {}
    for folder in folders:
        present = {k for k, n in names.items() if any((folder / (n + s)).is_file()
                                                      for s in suffixes)}
        if len(present) > len(best_found):
            best, best_found = folder, present
    missing = [n + (" (or .gz)" if ".gz" in suffixes else "") for k, n in names.items()
               if k not in best_found]
    raise FileNotFoundError(
        f"{what}: missing {', '.join(missing)} in {best} (searched "
        f"{', '.join(str(f) for f in folders)}). deepnotes never downloads data: put the "
        f"original files in one of these folders, or pass --data-dir FOLDER")


def mnist(data_dir: str | Path, fashion: bool = False) -> tuple[TensorDataset, TensorDataset]:
    """MNIST (or Fashion-MNIST with ``fashion=True``) from IDX files in ``data_dir``.

    Returns ``(train, test)`` ``TensorDataset``s of (1, 28, 28) float32 images scaled to [0, 1]
    (value / 255) and int64 labels 0-9: 60,000 and 10,000 samples for the real files.
    """
    name = "Fashion-MNIST" if fashion else "MNIST"
    subdirs = ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist") if fashion else \
        ("MNIST/raw", "mnist")
    paths = _find(data_dir, MNIST_FILES, subdirs, name)

    def split(prefix: str) -> TensorDataset:
        images = read_idx(paths[f"{prefix}_images"])
        labels = read_idx(paths[f"{prefix}_labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name} {prefix}: expected images (N, H, W) and labels (N,), got "
                             f"{images.shape} and {labels.shape}")
        x = (images.astype(np.float32) / 255.0)[:, None]                  # (N, 1, H, W)
        return TensorDataset(Tensor._wrap(x), Tensor._wrap(labels.astype(np.int64)))

    return split("train"), split("test")


def fashion_mnist(data_dir: str | Path) -> tuple[TensorDataset, TensorDataset]:
    """Fashion-MNIST (same file names and format as MNIST); see :func:`mnist`."""
    return mnist(data_dir, fashion=True)


def read_cifar10_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one CIFAR-10 binary batch file."""
    path = Path(path)
    data = np.frombuffer(_open_bytes(path), dtype=np.uint8)
    record = 1 + 3 * 32 * 32
    if data.size % record:
        raise ValueError(f"{path}: {data.size} bytes is not a whole number of {record}-byte "
                         f"CIFAR-10 records")
    rows = data.reshape(-1, record)                                       # (N, 3073)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def cifar10(data_dir: str | Path) -> tuple[TensorDataset, TensorDataset]:
    """CIFAR-10 from the binary batches in ``data_dir`` (or ``data_dir/cifar-10-batches-bin``).

    Returns ``(train, test)`` ``TensorDataset``s of (3, 32, 32) float32 images in [0, 1] and
    int64 labels (class names in ``CIFAR10_CLASSES``): 50,000 and 10,000 for the real files.
    """
    names = {n: n for n in (*CIFAR10_TRAIN, CIFAR10_TEST)}
    paths = _find(data_dir, names, ("cifar-10-batches-bin",), "CIFAR-10", suffixes=("",))

    def load(files: tuple[str, ...]) -> TensorDataset:
        parts = [read_cifar10_batch(paths[f]) for f in files]
        images = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
        labels = np.concatenate([p[1] for p in parts])
        if labels.size and labels.max() > 9:
            raise ValueError(f"CIFAR-10 labels must be 0-9, found {labels.max()}")
        return TensorDataset(Tensor._wrap(images), Tensor._wrap(labels))

    return load(CIFAR10_TRAIN), load((CIFAR10_TEST,))
