"""DataLoader: iterate over a dataset in (shuffled) mini-batches (``torch.utils.data.DataLoader``).

    sampler        -> indices, in order or shuffled (a new permutation each epoch)
    batch_sampler  -> lists of batch_size indices (the last one shorter unless drop_last)
    fetch          -> [dataset[i] for i in batch]
    collate_fn     -> one batch: samples stacked along a new first dimension

Mini-batches trade the noise of single-sample SGD against the cost of full-batch steps (notes 000,
"what happens when batch size is 1 / the whole dataset"). For a ``TensorDataset`` the fetch and the
collate are fused into one fancy-indexing step, ``tensor.data[indices]``, which gives the same batch
as stacking the samples one by one, without a Python loop over the batch.

With ``num_workers = W > 0`` the batches are loaded by W worker processes (``multiprocessing``,
"fork" where the platform has it). Batch k goes to worker k mod W and the results are put back in
order, so the batches are the same, in the same order, as with ``num_workers=0``. The batches'
index lists are drawn in the main process, before the workers start.

**Per-worker seeding.** A forked worker inherits a copy of the parent's random generators: with
nothing done, every worker would draw the *same* random crops and flips (the classic pitfall of
NumPy-based augmentation in PyTorch DataLoaders). Each epoch the main process draws one
``base_seed`` from its generator (after the shuffle); worker w then seeds
``deepnotes.random`` (and Python's ``random`` and NumPy's legacy global generator) with
``base_seed + w`` before it loads anything, and calls ``worker_init_fn(w)``. So the workers draw
different streams, a run with the same seed draws the same ones again, and every epoch gets new
ones. :func:`get_worker_info` tells code running in a worker which one it is (None in the main
process).
"""

from __future__ import annotations

import collections.abc
import multiprocessing
import numbers
import queue as _queue
import random as _pyrandom
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..random import default_generator, manual_seed
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
        num_workers: worker processes loading batches (0: load in the main process); see the
            module docstring for their seeding.
        collate_fn: merges a list of samples into a batch; default :func:`default_collate`.
        pin_memory: accepted for PyTorch compatibility; no effect on the CPU.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        timeout: seconds to wait for a batch from the workers before a ``RuntimeError``
            (0: wait as long as the workers live).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: a ``multiprocessing`` context or its name ("fork", "spawn",
            "forkserver"); default "fork" where available. With "spawn" the dataset, the
            collate_fn and worker_init_fn must be picklable.
        generator: ``numpy.random.Generator`` for shuffling; default: the library's global one, so
            ``deepnotes.manual_seed(s)`` fixes the order. The workers' base seed is drawn from it.
        prefetch_factor: batches requested ahead per worker (default 2 with workers).
        persistent_workers: accepted for PyTorch compatibility; workers start every epoch.

    ``len(loader)`` is the number of batches: ``ceil(n / batch_size)``, or ``floor`` with drop_last.

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        >>> for xb, yb in loader: ...
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable[int] | None = None,
                 batch_sampler: Sampler | Iterable[list[int]] | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list[Any]], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: Any = None,
                 generator: np.random.Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; "
                             "use num_workers=0 to disable multiprocessing. Got "
                             f"num_workers={num_workers!r}")
        if not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int)
                                            or prefetch_factor <= 0):
            raise ValueError(f"prefetch_factor should be a positive integer, got "
                             f"prefetch_factor={prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
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
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.generator = generator
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else \
            prefetch_factor
        self.persistent_workers = persistent_workers  # accepted; workers start every epoch
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_convert if self.batch_sampler is None else default_collate
        self.collate_fn = collate_fn

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers > 0:
            return _MultiProcessIter(self)
        return self._single_process_iter()

    def _single_process_iter(self) -> Iterator[Any]:
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


# -- worker processes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerInfo:
    """What :func:`get_worker_info` returns inside a worker process."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker: its ``id``, ``num_workers``, ``seed`` and its copy of the
    ``dataset``; None in the main process (``torch.utils.data.get_worker_info``)."""
    return _worker_info


class _TensorPayload:
    """A Tensor's array on its way between processes (Tensors themselves are not sent)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


def _pack(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return _TensorPayload(obj.data)
    if isinstance(obj, dict):
        return {key: _pack(value) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_pack(v) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(_pack(v) for v in obj)
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, _TensorPayload):
        return Tensor._wrap(obj.array)
    if isinstance(obj, dict):
        return {key: _unpack(value) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_unpack(v) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(_unpack(v) for v in obj)
    return obj


class _WorkerError:
    def __init__(self, worker_id: int, text: str):
        self.worker_id, self.text = worker_id, text


def _fetch(loader_state: tuple[Any, Any, bool, bool], indices: Any) -> Any:
    dataset, collate_fn, auto_batch, fast = loader_state
    if not auto_batch:
        return collate_fn(dataset[indices])
    if fast:
        return dataset._get_batch(np.asarray(indices))
    return collate_fn([dataset[i] for i in indices])


def _worker_loop(loader_state: tuple[Any, Any, bool, bool], index_queue: Any, result_queue: Any,
                 worker_id: int, num_workers: int, seed: int,
                 init_fn: Callable[[int], None] | None) -> None:
    global _worker_info
    try:
        manual_seed(seed)                      # deepnotes.random: every transform draws here
        _pyrandom.seed(seed)
        np.random.seed(seed % 2**32)           # NumPy's legacy global generator, for user code
        _worker_info = WorkerInfo(worker_id, num_workers, seed, loader_state[0])
        if init_fn is not None:
            init_fn(worker_id)
    except Exception:
        result_queue.put((-1, _WorkerError(worker_id, traceback.format_exc())))
        return
    while True:
        try:
            task = index_queue.get(timeout=5.0)
        except _queue.Empty:                   # the main process may be gone: check, then wait
            if multiprocessing.parent_process() is not None and \
                    not multiprocessing.parent_process().is_alive():  # type: ignore[union-attr]
                return
            continue
        if task is None:
            return
        k, indices = task
        try:
            payload = _pack(_fetch(loader_state, indices))
        except Exception:
            payload = _WorkerError(worker_id, traceback.format_exc())
        result_queue.put((k, payload))


class _MultiProcessIter:
    """One epoch with worker processes; yields the batches in sampler order."""

    _poll_s = 1.0

    def __init__(self, loader: DataLoader):
        self.loader = loader
        if loader.batch_sampler is None:
            tasks: list[Any] = list(loader.sampler)
        else:
            tasks = [list(map(int, b)) for b in loader.batch_sampler]
        self.tasks = tasks
        rng = loader.generator if loader.generator is not None else default_generator()
        base_seed = int(rng.integers(0, 2**62))   # drawn after the shuffle: same order as W = 0
        ctx = loader.multiprocessing_context
        if ctx is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        elif isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        fast = (loader._default_collate and isinstance(loader.batch_sampler, BatchSampler)
                and has_batch_fetch(loader.dataset))
        state = (loader.dataset, loader.collate_fn, loader.batch_sampler is not None, fast)
        self.num_workers = loader.num_workers
        self.result_queue = ctx.Queue()
        self.index_queues, self.workers = [], []
        for w in range(self.num_workers):
            index_queue = ctx.Queue()
            worker = ctx.Process(target=_worker_loop, daemon=True,
                                 args=(state, index_queue, self.result_queue, w,
                                       self.num_workers, base_seed + w, loader.worker_init_fn))
            worker.start()
            self.index_queues.append(index_queue)
            self.workers.append(worker)
        self.sent = 0
        self.next_k = 0
        self.buffer: dict[int, Any] = {}
        self.closed = False
        for _ in range(loader.prefetch_factor * self.num_workers):  # type: ignore[operator]
            self._send()

    def _send(self) -> None:
        if self.sent < len(self.tasks):
            k = self.sent
            self.index_queues[k % self.num_workers].put((k, self.tasks[k]))
            self.sent += 1

    def __iter__(self) -> _MultiProcessIter:
        return self

    def __next__(self) -> Any:
        if self.next_k >= len(self.tasks):
            self.close()
            raise StopIteration
        started = time.monotonic()
        while self.next_k not in self.buffer:
            try:
                k, payload = self.result_queue.get(timeout=self._poll_s)
            except _queue.Empty:
                dead = [w for w in self.workers if not w.is_alive()]
                if dead:
                    self.close()
                    raise RuntimeError(f"DataLoader worker (pid(s) "
                                       f"{', '.join(str(w.pid) for w in dead)}) exited "
                                       f"unexpectedly (exit code {dead[0].exitcode})") from None
                waited = time.monotonic() - started
                if self.loader.timeout and waited > self.loader.timeout:
                    self.close()
                    raise RuntimeError(f"DataLoader timed out after {self.loader.timeout} "
                                       f"seconds") from None
                continue
            if isinstance(payload, _WorkerError):
                self.close()
                raise RuntimeError(f"Caught an exception in DataLoader worker process "
                                   f"{payload.worker_id}. Original traceback:\n{payload.text}")
            self.buffer[k] = payload
        batch = _unpack(self.buffer.pop(self.next_k))
        self.next_k += 1
        self._send()
        return batch

    def __len__(self) -> int:
        return len(self.tasks)

    def close(self) -> None:
        """Stop the workers (also when the loop over the loader is left early)."""
        if self.closed:
            return
        self.closed = True
        for index_queue in self.index_queues:
            try:
                index_queue.put(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.join(timeout=2.0)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=1.0)
        for q in (*self.index_queues, self.result_queue):
            q.cancel_join_thread()  # never block on data nobody will read
            q.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
