"""Datasets: anything with ``__getitem__(i)`` and ``__len__``, as ``torch.utils.data``.

A map-style dataset answers "give me sample i". The :class:`~deepnotes.data.DataLoader` decides
*which* i's go into a batch (a sampler) and how samples become one batch (a collate function).

Datasets that hold their samples in arrays (``TensorDataset`` and ``Subset`` of one) also offer
``_get_batch(indices)``: the whole batch in one fancy-indexing step instead of ``batch_size``
separate ``__getitem__`` calls and a stack. The DataLoader uses it when the collate function is
the default one, and the batch is identical to what the slow path would build.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..random import default_generator
from ..tensor import Tensor


class Dataset:
    """Base class of map-style datasets: subclasses define ``__getitem__`` and ``__len__``."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are slices of tensors along their first dimension: ``dataset[i] = (t[i] for t)``.

    Args:
        *tensors: tensors (or ndarrays) with the same size of the first dimension.

    Example:
        >>> ds = TensorDataset(dn.randn(10, 3), dn.arange(10))
        >>> x, y = ds[0]          # x.shape == (3,), y is a 0-d int64 tensor
    """

    def __init__(self, *tensors: Any):
        converted = []
        for t in tensors:
            if isinstance(t, np.ndarray):
                t = Tensor._wrap(t)
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"TensorDataset expects Tensors, got {type(t).__name__}"
                )
            if t.ndim == 0:
                raise ValueError("TensorDataset expects tensors with at least one dimension, "
                                 "got a 0-d tensor")
            converted.append(t)
        if converted and any(t.shape[0] != converted[0].shape[0] for t in converted):
            sizes = [t.shape[0] for t in converted]
            raise AssertionError(f"Size mismatch between tensors: first dimensions are {sizes}")
        self.tensors: tuple[Tensor, ...] = tuple(converted)

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(_take(t, index) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0] if self.tensors else 0

    def _get_batch(self, indices: np.ndarray) -> list[Tensor]:
        """The collated batch for ``indices`` in one step (a list, as default_collate of tuples)."""
        return [_take(t, indices) for t in self.tensors]


def _take(t: Tensor, index: Any) -> Tensor:
    """``t[index]``; through the autograd op only when ``t`` needs a gradient (rare for data)."""
    if t.requires_grad:
        return t[index]
    try:
        return Tensor._wrap(t.data[index])
    except IndexError:  # NumPy says "axis"; say it as PyTorch does
        return t[index]  # Tensor indexing raises PyTorch's message


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    def _get_batch(self, indices: np.ndarray) -> Any:
        """Fast path, valid when the parent dataset has one (see :func:`has_batch_fetch`)."""
        cached = self.__dict__.get("_index_cache")
        if cached is None or cached[0] is not self.indices:  # converted once, not per batch
            cached = (self.indices, np.asarray(self.indices, dtype=np.int64))
            self._index_cache = cached
        return self.dataset._get_batch(cached[1][indices])  # type: ignore[attr-defined]


def has_batch_fetch(dataset: Dataset) -> bool:
    """Whether ``dataset._get_batch(indices)`` returns the default-collated batch in one step."""
    if isinstance(dataset, TensorDataset):
        # A subclass that changes how one sample is made (e.g. adds a transform) loses it.
        return type(dataset).__getitem__ is TensorDataset.__getitem__
    return isinstance(dataset, Subset) and has_batch_fetch(dataset.dataset)


class ConcatDataset(Dataset):
    """Several datasets one after another: index i goes to the dataset whose range holds it."""

    def __init__(self, datasets: Sequence[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = 0 if which == 0 else self.cumulative_sizes[which - 1]
        return self.datasets[which][index - start]


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (as PyTorch).

    ``lengths`` are either counts that sum to ``len(dataset)`` or fractions that sum to 1; with
    fractions, each subset gets ``floor(fraction * n)`` samples and the remainder is handed out one
    by one, round-robin, from the first subset on.

    Args:
        dataset: the dataset to split.
        lengths: counts or fractions, one per subset.
        generator: a ``numpy.random.Generator``; default: ``deepnotes.random.default_generator()``.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(
            "Sum of input lengths does not equal the length of the input dataset! "
            f"(sum={sum(lengths)}, len={n})"
        )
    rng = generator if generator is not None else default_generator()
    perm = rng.permutation(n).tolist()
    subsets, offset = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, perm[offset:offset + int(length)]))
        offset += int(length)
    return subsets
