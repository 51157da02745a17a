"""Offline datasets: nothing here downloads anything.

``digits`` is scikit-learn's bundled copy of the UCI optical handwritten digits test set: 1,797
grey-scale 8x8 images of the digits 0-9 with 17 intensity levels (0..16), about 180 per class.
It is small enough to train a CNN on a laptop CPU in seconds, which makes it the default data set
of ``deepnotes train``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..tensor import Tensor
from .dataset import TensorDataset
from .shapes import shapes  # noqa: F401 - the detection data set (data/shapes.py)


@lru_cache(maxsize=1)
def _load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # reads a file shipped with scikit-learn

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8) in [0, 1]
    labels = bunch.target.astype(np.int64)                            # (N,)
    images.flags.writeable = False  # the cache is shared: callers get copies
    labels.flags.writeable = False
    return images, labels


def stratified_split(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Train and test indices with each class split in the same proportion.

    For each class c with n_c samples, ``round(test_size * n_c)`` of them, chosen by a permutation
    drawn from ``numpy.random.default_rng(seed)``, go to the test set. Both index arrays are sorted,
    so the split depends only on ``labels``, ``test_size`` and ``seed``.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size should be a float in the open interval (0, 1), "
                         f"got test_size={test_size}")
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(round(test_size * len(members)))
        test_parts.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test_parts))
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx


def digits(test_size: float = 0.2, seed: int = 0, flatten: bool = False
           ) -> tuple[TensorDataset, TensorDataset]:
    """The 8x8 handwritten digits as train and test ``TensorDataset``s (offline).

    Args:
        test_size: fraction of each class held out for the test set (default 0.2 -> 1,438 / 359).
        seed: seed of the split's own generator (the split ignores ``deepnotes.manual_seed``, so
            every run sees the same test set).
        flatten: give images as (N, 64) vectors instead of (N, 1, 8, 8).

    Returns:
        ``(train, test)``; each sample is ``(image, label)``: float32 pixels scaled to [0, 1]
        (value / 16) of shape (1, 8, 8) (or (64,)), and an int64 label in 0..9.
    """
    images, labels = _load_digits_arrays()
    train_idx, test_idx = stratified_split(labels, test_size, seed)
    if flatten:
        images = images.reshape(len(images), -1)  # (N, 64)

    def make(idx: np.ndarray) -> TensorDataset:
        return TensorDataset(Tensor._wrap(images[idx]), Tensor._wrap(labels[idx]))  # copies

    return make(train_idx), make(test_idx)
