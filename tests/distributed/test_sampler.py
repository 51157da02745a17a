"""DistributedSampler: torch's shard layout, padding rule and lengths; disjoint shards whose union
is the epoch; determinism per (seed, epoch). No MPI needed: num_replicas and rank are given."""

from __future__ import annotations

import pytest
import torch.utils.data as tud
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.data import DataLoader, DistributedSampler, TensorDataset


class Sized:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def shards(n: int, p: int, **kwargs) -> list[list[int]]:
    return [list(DistributedSampler(Sized(n), num_replicas=p, rank=r, **kwargs)) for r in range(p)]


@given(n=st.integers(0, 40), p=st.integers(1, 6), drop_last=st.booleans())
def test_unshuffled_shards_equal_torch(n, p, drop_last):
    ours = shards(n, p, shuffle=False, drop_last=drop_last)
    theirs = [list(tud.DistributedSampler(range(n), num_replicas=p, rank=r, shuffle=False,
                                          drop_last=drop_last)) for r in range(p)]
    assert ours == theirs
    assert [len(DistributedSampler(Sized(n), p, r, drop_last=drop_last)) for r in range(p)] == \
        [len(tud.DistributedSampler(range(n), p, r, drop_last=drop_last)) for r in range(p)]


@given(n=st.integers(1, 40), p=st.integers(1, 6), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 100), drop_last=st.booleans())
def test_shuffled_shards_partition_one_permutation(n, p, seed, epoch, drop_last):
    """Interleaving the shards back (position k*p + r holds shard_r[k]) gives a permutation of
    range(n), cut (drop_last) or followed by its own first indices (padding), as torch's rule."""
    parts = []
    for r in range(p):
        sampler = DistributedSampler(Sized(n), num_replicas=p, rank=r, seed=seed,
                                     drop_last=drop_last)
        sampler.set_epoch(epoch)
        parts.append(list(sampler))
    per = len(parts[0])
    assert all(len(part) == per for part in parts)        # every rank takes the same steps
    order = [parts[r][k] for k in range(per) for r in range(p)]
    if drop_last:
        assert per == n // p and len(set(order)) == len(order)      # disjoint, tail dropped
    else:
        assert per == -(-n // p)
        head, pad = order[:n], order[n:]
        assert sorted(head) == list(range(n))                       # union = the whole epoch
        assert pad == (head * (len(pad) // n + 1))[:len(pad)]       # padding by repetition


def test_set_epoch_reshuffles_and_seed_fixes_the_order():
    a = DistributedSampler(Sized(50), num_replicas=2, rank=0, seed=3)
    b = DistributedSampler(Sized(50), num_replicas=2, rank=0, seed=3)
    first = list(a)
    assert first == list(b) == list(a)                    # deterministic, whatever was drawn
    dn.manual_seed(123)
    dn.randn(5)                                           # the global generator is not used
    assert list(a) == first
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(DistributedSampler(Sized(50), 2, 0, seed=4)) != first


def test_padding_repeats_many_times_when_the_dataset_is_tiny():
    assert shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]
    assert shards(3, 2, shuffle=False, drop_last=True) == [[0], [1]]


def test_with_dataloader():
    data = TensorDataset(dn.arange(10))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 2, 1,
                                                                        shuffle=False))
    assert [batch[0].tolist() for batch in loader] == [[1, 3], [5, 7], [9]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_replicas=2, rank=2), "Invalid rank 2, rank should be in the interval [0, 1]"),
    (dict(num_replicas=2, rank=-1), "Invalid rank -1"),
    (dict(num_replicas=0, rank=0), "num_replicas must be a positive integer, got 0"),
    (dict(), "init_process_group() has not been called"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, RuntimeError)) as info:
        DistributedSampler(Sized(4), **kwargs)
    assert message in str(info.value)
