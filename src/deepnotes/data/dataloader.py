"""DataLoader: iterate over a dataset in (shuffled) mini-batches (``torch.utils.data.DataLoader``).

    sampler        -> indices, in order or shuffled (a new permutation each epoch)
    batch_sampler  -> lists of batch_size indices (the last one shorter unless drop_last)
    fetch          -> [dataset[i] for i in batch]
    collate_fn     -> one batch: samples stacked along a new first dimension

Mini-batches trade the noise of single-sample SGD against the cost of full-batch steps (notes 000,
"what happens when batch size is 1 / the whole dataset"). For a ``TensorDataset`` the fetch and the
collate are fused into one fancy-indexing step, ``tensor.data[indices]``, which gives the same batch
as stacking the samples one by one, without a Python loop over the batch.

Single process only: ``num_workers`` must be 0.
"""

from __future__ import annotations

import collections.abc
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset, has_batch_fetch
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


def _collate_error(elem: Any) -> TypeError:
    return TypeError(
        "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        f"found {type(elem)}"
    )


def _stack_tensors(batch: list[Tensor]) -> Tensor:
    shape = batch[0].shape
    for i, t in enumerate(batch):
        if t.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(shape)} at entry 0 and {list(t.shape)} at entry {i}")
    if any(t.requires_grad for t in batch):  # keep the graph, as torch.stack would
        from ..ops.shape import stack

        return stack(batch)
    return Tensor._wrap(np.stack([t.data for t in batch]))


def default_collate(batch: list[Any]) -> Any:
    """Merge a list of samples into one batch, recursively (PyTorch's rules).

    * Tensors and ndarrays  -> one Tensor, stacked along a new dim 0 (dtype kept)
    * Python floats         -> float64 Tensor;  ints -> int64 Tensor;  bools -> bool Tensor
    * NumPy scalars         -> Tensor of their dtype
    * str                   -> the list of strings
    * dict                  -> dict of collated values, key by key
    * tuple / list          -> a list of collated fields (a namedtuple stays a namedtuple)
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OUS":
            raise _collate_error(elem)
        return _stack_tensors([Tensor._wrap(np.asarray(b)) for b in batch])
    if isinstance(elem, np.generic):
        return Tensor._wrap(np.array(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return Tensor._wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor._wrap(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor._wrap(np.array(batch, dtype=np.float64))
    if isinstance(elem, str | bytes):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise _collate_error(elem)


def default_convert(data: Any) -> Any:
    """What the DataLoader yields per sample when auto-batching is off (``batch_size=None``):
    ndarrays become Tensors, containers are converted recursively, everything else is unchanged."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OUS":
        return Tensor._wrap(data)
    if isinstance(data, np.generic) and not isinstance(data, np.str_ | np.bytes_):
        return Tensor._wrap(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {key: default_convert(value) for key, value in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data


class DataLoader:
    """Iterate over ``dataset`` in mini-batches.

    Args:
        dataset: a map-style dataset (``__getitem__`` and ``__len__``).
        batch_size: samples per batch; ``None`` turns batching off (one converted sample per step).
        shuffle: visit the samples in a new random order every epoch.
        sampler: an iterable of indices (mutually exclusive with ``shuffle``).
        batch_sampler: an iterable of index lists (mutually exclusive with batch_size, shuffle,
            sampler and drop_last).
        num_workers: must be 0 (loading runs in the main process).
        collate_fn: merges a list of samples into a batch; default :func:`default_collate`.
        pin_memory: accepted for PyTorch compatibility; no effect on the CPU.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: ``numpy.random.Generator`` for shuffling; default: the library's global one, so
            ``deepnotes.manual_seed(s)`` fixes the order.

    ``len(loader)`` is the number of batches: ``ceil(n / batch_size)``, or ``floor`` with drop_last.

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        >>> for xb, yb in loader: ...
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable[int] | None = None,
                 batch_sampler: Sampler | Iterable[list[int]] | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list[Any]], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False,
                 generator: np.random.Generator | None = None):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; "
                             "use num_workers=0 to disable multiprocessing. Got "
                             f"num_workers={num_workers!r}")
        if num_workers > 0:
            raise NotImplementedError(
                f"deepnotes.data.DataLoader loads in the main process only; got "
                f"num_workers={num_workers}, use num_workers=0"
            )
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle  # type: ignore[arg-type]
                       else SequentialSampler(dataset))  # type: ignore[arg-type]
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.generator = generator
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_convert if self.batch_sampler is None else default_collate
        self.collate_fn = collate_fn

    def __iter__(self) -> Iterator[Any]:
        if self.batch_sampler is None:  # no auto-batching: one converted sample per step
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
            return
        fast = (self._default_collate and isinstance(self.batch_sampler, BatchSampler)
                and has_batch_fetch(self.dataset))
        if fast:
            for indices in self.batch_sampler._index_batches():
                yield self.dataset._get_batch(indices)  # type: ignore[attr-defined]
            return
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)  # type: ignore[arg-type]
        return len(self.sampler)  # type: ignore[arg-type]
