"""Samplers decide the order in which a DataLoader visits a dataset's indices.

Shuffling before every epoch matters (notes 004, on BN: "shuffle well before training"): without it
each mini-batch always holds the same samples and the gradient noise loses its variety.
``RandomSampler`` draws a fresh permutation from ``deepnotes.random.default_generator()`` (or the
generator it is given) at the start of every epoch, so ``deepnotes.manual_seed(s)`` fixes the
order of every epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np

from ..random import default_generator


class Sampler:
    """Base class: an iterable over dataset indices (or over lists of them, for batch samplers)."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)

    def _index_array(self) -> np.ndarray:
        return np.arange(len(self.data_source))


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch (or ``num_samples`` draws with replacement).

    Args:
        data_source: the dataset.
        replacement: draw ``num_samples`` indices independently (with repeats) instead of permuting.
        num_samples: how many indices per epoch; default ``len(data_source)``.
        generator: a ``numpy.random.Generator``; default: the library's global one.
    """

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: int | None = None, generator: np.random.Generator | None = None):
        if not isinstance(replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got "
                f"num_samples={self.num_samples}"
            )

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _index_array(self) -> np.ndarray:
        rng = self.generator if self.generator is not None else default_generator()
        n = len(self.data_source)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples)
        # Whole permutations, as many as needed to cover num_samples, then cut.
        repeats = -(-self.num_samples // n)
        return np.concatenate([rng.permutation(n) for _ in range(repeats)])[:self.num_samples]

    def __iter__(self) -> Iterator[int]:
        return iter(self._index_array().tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    The last, smaller batch is kept unless ``drop_last``; so there are ``ceil(n / batch_size)``
    batches, or ``floor(n / batch_size)`` with ``drop_last=True``.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                or batch_size <= 0):
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(
                f"drop_last should be a boolean value, but got drop_last={drop_last}"
            )
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def _index_batches(self) -> Iterator[np.ndarray]:
        """The batches as index arrays (the DataLoader's fast path)."""
        if hasattr(self.sampler, "_index_array"):
            order = self.sampler._index_array()
        else:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._index_batches():
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)
