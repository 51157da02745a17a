"""DataLoader, samplers, collate and datasets, checked against torch.utils.data."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def _to_numpy(batch):
    """Turn a (nested) batch from either framework into numpy arrays for comparison."""
    if isinstance(batch, dn.Tensor):
        return batch.data
    if isinstance(batch, torch.Tensor):
        return batch.numpy()
    if isinstance(batch, dict):
        return {k: _to_numpy(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return [_to_numpy(v) for v in batch]
    return batch


def _assert_same(ours, theirs):
    ours, theirs = _to_numpy(ours), _to_numpy(theirs)
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for k in ours:
            _assert_same(ours[k], theirs[k])
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)
    elif isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert ours == theirs


class ListDataset(Dataset):
    """A plain map-style dataset (no fast path), returning whatever samples it was given."""

    def __init__(self, samples):
        self.samples = samples

    def __getitem__(self, i):
        return self.samples[i]

    def __len__(self):
        return len(self.samples)


class TorchListDataset(tud.Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __getitem__(self, i):
        return self.samples[i]

    def __len__(self):
        return len(self.samples)


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), drop_last=st.booleans())
def test_len_and_batches_match_torch(n, batch_size, drop_last):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64) % 4
    ours = DataLoader(TensorDataset(dn.from_numpy(x), dn.from_numpy(y)), batch_size=batch_size,
                      drop_last=drop_last)
    theirs = tud.DataLoader(tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                            batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    ours_batches, theirs_batches = list(ours), list(theirs)
    assert len(ours_batches) == len(theirs_batches) == len(ours)
    for a, b in zip(ours_batches, theirs_batches):
        _assert_same(a, b)


@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), drop_last=st.booleans())
def test_fast_path_equals_item_by_item_collate(n, batch_size, drop_last):
    x = dn.randn(n, 2, 3)
    y = dn.arange(n)
    ds = TensorDataset(x, y)
    fast = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                      generator=np.random.default_rng(5))
    slow = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                      generator=np.random.default_rng(5), collate_fn=default_collate)
    for a, b in zip(fast, slow, strict=True):
        _assert_same(a, b)


def test_default_collate_matches_torch_on_mixed_samples():
    point = namedtuple("Point", ["x", "y"])
    rng = np.random.default_rng(0)
    samples = [
        {"image": rng.standard_normal((2, 3)), "label": i, "weight": 0.5 * i, "flag": i % 2 == 0,
         "name": f"s{i}", "pair": (np.float32(i), rng.standard_normal(2).astype(np.float32)),
         "point": point(i, float(i)), "list": [i, i + 1]}
        for i in range(5)
    ]
    ours = list(DataLoader(ListDataset(samples), batch_size=2))
    theirs = list(tud.DataLoader(TorchListDataset(samples), batch_size=2))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert isinstance(a["point"], point)
        _assert_same(a, b)
        assert a["weight"].dtype == np.float64 and a["label"].dtype == np.int64
        assert a["flag"].dtype == np.bool_


def test_collate_of_tensors_and_tuple_samples_is_a_list_like_torch():
    samples = [(dn.ones(2) * i, i) for i in range(4)]
    batch = default_collate(samples)
    assert isinstance(batch, list) and len(batch) == 2
    assert batch[0].shape == (4, 2) and batch[1].dtype == np.int64
    np.testing.assert_array_equal(batch[1].data, [0, 1, 2, 3])


def test_collate_keeps_graph_of_samples_that_require_grad():
    a = dn.ones(2, requires_grad=True)
    b = dn.ones(2, requires_grad=True)
    batch = default_collate([a * 2, b * 3])
    batch.sum().backward()
    np.testing.assert_array_equal(a.grad.data, [2, 2])
    np.testing.assert_array_equal(b.grad.data, [3, 3])


def test_tensor_dataset_keeps_the_graph_of_tensors_that_require_grad():
    x = dn.ones(4, 2, requires_grad=True)
    for loader in (DataLoader(TensorDataset(x), batch_size=2),
                   DataLoader(TensorDataset(x), batch_size=2, collate_fn=default_collate)):
        x.grad = None
        total = None
        for (xb,) in loader:
            total = xb.sum() if total is None else total + xb.sum()
        total.backward()
        np.testing.assert_array_equal(x.grad.data, np.ones((4, 2)))


def test_collate_errors_like_torch():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        default_collate([dn.zeros(2), dn.zeros(3)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object(), object()])


def test_shuffle_is_reproducible_with_manual_seed_and_differs_between_epochs():
    ds = TensorDataset(dn.arange(50))

    def epoch_orders():
        loader = DataLoader(ds, batch_size=7, shuffle=True)
        return [np.concatenate([b[0].data for b in loader]) for _ in range(2)]

    dn.manual_seed(123)
    first = epoch_orders()
    dn.manual_seed(123)
    second = epoch_orders()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # every epoch is a permutation of all samples, and a new one
    for order in first:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], np.arange(50))


def test_explicit_generator_is_used_instead_of_the_global_one():
    ds = TensorDataset(dn.arange(20))
    a = [b[0].data for b in DataLoader(ds, batch_size=20, shuffle=True,
                                       generator=np.random.default_rng(9))]
    dn.manual_seed(1)  # must not matter
    b = [b[0].data for b in DataLoader(ds, batch_size=20, shuffle=True,
                                       generator=np.random.default_rng(9))]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0], np.random.default_rng(9).permutation(20))


def test_drop_last_drops_only_the_short_batch():
    ds = TensorDataset(dn.arange(10))
    sizes = [len(b[0]) for b in DataLoader(ds, batch_size=4, drop_last=True)]
    assert sizes == [4, 4]
    sizes = [len(b[0]) for b in DataLoader(ds, batch_size=4)]
    assert sizes == [4, 4, 2]
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2


def test_batch_size_none_yields_converted_samples_like_torch():
    samples = [(np.arange(3) + i, i) for i in range(4)]
    ours = list(DataLoader(ListDataset(samples), batch_size=None))
    theirs = list(tud.DataLoader(TorchListDataset(samples), batch_size=None))
    assert len(ours) == 4
    for a, b in zip(ours, theirs):
        _assert_same(a, b)


def test_custom_sampler_and_batch_sampler():
    ds = TensorDataset(dn.arange(10) * 10)
    loader = DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 0])
    assert [b[0].data.tolist() for b in loader] == [[90, 80, 70], [0]]
    loader = DataLoader(ds, batch_sampler=[[1, 2], [5]])
    assert [b[0].data.tolist() for b in loader] == [[10, 20], [50]]
    assert len(loader) == 2


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(batch_size=0), ValueError, "batch_size should be a positive integer value, but got "
                                     "batch_size=0"),
    (dict(batch_size=-3), ValueError, "batch_size=-3"),
    (dict(batch_size=2.5), ValueError, "batch_size=2.5"),
    (dict(drop_last=1), ValueError, "drop_last should be a boolean value"),
    (dict(shuffle=True, sampler=[0, 1]), ValueError, "sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], batch_size=2), ValueError, "batch_sampler option is mutually"),
    (dict(batch_size=None, drop_last=True), ValueError, "mutually exclusive with drop_last"),
    (dict(num_workers=-1), ValueError, "num_workers option should be non-negative"),
    (dict(prefetch_factor=2), ValueError, "prefetch_factor option could only be specified"),
    (dict(timeout=-1), ValueError, "timeout option should be non-negative"),
])
def test_argument_errors_like_torch(kwargs, error, message):
    ds = TensorDataset(dn.arange(4))
    with pytest.raises(error, match=message):
        DataLoader(ds, **kwargs)
    if error is ValueError and "num_workers" not in message:
        with pytest.raises(ValueError):  # the same arguments are rejected by torch too
            tud.DataLoader(tud.TensorDataset(torch.arange(4)), **kwargs)


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    rs = RandomSampler(range(10), generator=np.random.default_rng(0))
    assert sorted(rs) == list(range(10)) and len(rs) == 10
    rs = RandomSampler(range(3), num_samples=7, generator=np.random.default_rng(0))
    drawn = list(rs)
    assert len(drawn) == len(rs) == 7 and sorted(drawn[:3]) == [0, 1, 2]
    rs = RandomSampler(range(3), replacement=True, num_samples=20,
                       generator=np.random.default_rng(0))
    assert len(list(rs)) == 20 and set(rs) <= {0, 1, 2}
    assert list(BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(3), replacement=1)


def test_tensor_dataset():
    x, y = dn.randn(5, 2), dn.arange(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.data, x.data[3])
    assert yi.item() == 3 and yi.shape == ()
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(dn.zeros(3), dn.zeros(4))
    with pytest.raises(TypeError):
        TensorDataset([1, 2, 3])


def test_tensor_dataset_subclass_with_own_getitem_skips_the_fast_path():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            (x,) = super().__getitem__(i)
            return (x * 2,)

    batch = next(iter(DataLoader(Doubled(dn.arange(4)), batch_size=4)))
    np.testing.assert_array_equal(batch[0].data, [0, 2, 4, 6])


def test_subset_concat_and_random_split():
    ds = TensorDataset(dn.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[0][0].item() == 7
    assert [b[0].data.tolist() for b in DataLoader(sub, batch_size=2)] == [[7, 2], [5]]
    cat = ConcatDataset([sub, TensorDataset(dn.arange(2) + 100)])
    assert len(cat) == 5 and cat[3][0].item() == 100 and cat[-1][0].item() == 101

    dn.manual_seed(0)
    parts = random_split(ds, [6, 4])
    items = sorted(int(p[i][0].item()) for p in parts for i in range(len(p)))
    assert [len(p) for p in parts] == [6, 4] and items == list(range(10))
    dn.manual_seed(0)
    again = random_split(ds, [6, 4])
    assert parts[0].indices == again[0].indices

    # fractions: floor(n*f) each, the remainder round-robin from the first (PyTorch's rule)
    assert [len(p) for p in random_split(range(10), [0.34, 0.33, 0.33])] == [4, 3, 3]
    theirs = tud.random_split(range(11), [0.5, 0.25, 0.25])
    assert [len(p) for p in random_split(range(11), [0.5, 0.25, 0.25])] == [len(p) for p in theirs]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(ds, [3, 3])
