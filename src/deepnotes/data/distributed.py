"""``DistributedSampler``: each rank of a data-parallel run reads its own shard of every epoch.

Data parallelism (notes 004 Q33) splits every batch across the workers. The sampler does it by
index: all ranks draw the *same* permutation of the dataset for an epoch (seeded with
``seed + epoch``, so no communication is needed), pad it to a multiple of the number of ranks, and
rank r takes every p-th index starting at r:

    order    = permutation(len(dataset))  (or 0..n-1 without shuffle)
    padded   = order + order[:pad]        pad = p * ceil(n / p) - n   (repeated as often as needed)
    shard_r  = padded[r::p]               len(shard_r) = ceil(n / p) for every r

so the shards are disjoint positions of one list and their union is the whole epoch (plus at
most p - 1 repeated samples, which keep every rank at the same number of steps: a rank that ran
out of batches would leave the others waiting in the gradient all-reduce). With
``drop_last=True`` the tail is cut instead: n_r = ceil((n - p) / p), i.e. floor(n / p).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from .sampler import Sampler


class DistributedSampler(Sampler):
    """Indices of rank ``rank``'s shard of the dataset (``torch.utils.data.DistributedSampler``).

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: number of ranks (default: ``distributed.get_world_size()``).
        rank: this rank (default: ``distributed.get_rank()``).
        shuffle: a new permutation each epoch (call :meth:`set_epoch` before each epoch).
        seed: the permutation of epoch e is drawn from a generator seeded with seed + e; it must
            be the same on every rank.
        drop_last: drop the tail so that the data divides evenly, instead of padding it with
            repeated indices.

    The permutation comes from NumPy's PCG64 seeded with ``seed + epoch`` (a private generator,
    not the global ``deepnotes.random`` one: the order must be the same on every rank whatever
    else each rank has drawn). PyTorch uses its own generator, so the shuffled orders differ from
    torch's; the rules (shard layout, padding, lengths) are the same.
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from .. import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: num_replicas and rank default to the "
                                   "process group's, but init_process_group() has not been "
                                   "called; pass num_replicas= and rank=")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int | np.integer) \
                or num_replicas <= 0:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got "
                             f"{num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) \
                or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"DistributedSampler: seed must be an int, got {seed!r}")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n, p = len(dataset), self.num_replicas
        if self.drop_last and n % p != 0:
            self.num_samples = math.ceil((n - p) / p)  # = n // p: the tail is dropped
        else:
            self.num_samples = math.ceil(n / p)
        self.total_size = self.num_samples * p

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (call it with the same epoch on every rank)."""
        self.epoch = int(epoch)

    def _index_array(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)   # (n,)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            pad = self.total_size - n
            order = np.concatenate([order, np.resize(order, pad)])  # np.resize repeats order
        return order[self.rank:self.total_size:self.num_replicas]                  # (n_r,)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index_array().tolist())

    def __len__(self) -> int:
        return self.num_samples
