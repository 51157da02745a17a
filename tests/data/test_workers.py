"""DataLoader with worker processes: same batches in the same order as in the main process,
different random streams per worker, the same streams again for the same seed."""

import numpy as np
import pytest

import deepnotes as dn
from deepnotes.data import DataLoader, Dataset, TensorDataset, get_worker_info
from deepnotes.random import default_generator


class NoisyDataset(Dataset):
    """Sample i = (i, one draw of the library generator, the worker id): a stand-in for a
    random augmentation."""

    def __getitem__(self, index):
        info = get_worker_info()
        return np.array([index, default_generator().random(), -1 if info is None else info.id])

    def __len__(self):
        return 24


def batches(loader):
    return [b.data.copy() for b in loader]


def test_same_batches_and_order_as_the_main_process():
    x = np.arange(40.0).reshape(20, 2)
    ds = TensorDataset(dn.from_numpy(x), dn.arange(20))
    dn.manual_seed(5)
    single = [[t.data for t in b] for b in DataLoader(ds, batch_size=3, shuffle=True)]
    dn.manual_seed(5)
    multi = [[t.data for t in b] for b in DataLoader(ds, batch_size=3, shuffle=True,
                                                     num_workers=2, timeout=60)]
    assert len(single) == len(multi) == 7
    for a, b in zip(single, multi):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_workers_draw_different_reproducible_streams():
    def run(seed):
        dn.manual_seed(seed)
        loader = DataLoader(NoisyDataset(), batch_size=4, num_workers=2, timeout=60)
        return [batches(loader), batches(loader)]          # two epochs

    first, again, other = run(0), run(0), run(1)
    epoch = np.concatenate(first[0])                       # (24, 3): index, draw, worker id
    np.testing.assert_array_equal(epoch[:, 0], np.arange(24))  # in order
    assert set(epoch[:, 2]) == {0, 1}                      # batch k came from worker k % 2
    np.testing.assert_array_equal(epoch[:, 2], (np.arange(24) // 4) % 2)
    # The pitfall: forked workers with copied generator states draw identical "augmentations".
    draws_w0, draws_w1 = epoch[epoch[:, 2] == 0, 1], epoch[epoch[:, 2] == 1, 1]
    assert len(set(draws_w0) & set(draws_w1)) == 0
    assert len(set(epoch[:, 1])) == 24
    np.testing.assert_array_equal(np.concatenate(first[0]), np.concatenate(again[0]))
    np.testing.assert_array_equal(np.concatenate(first[1]), np.concatenate(again[1]))
    assert not np.array_equal(np.concatenate(first[0])[:, 1], np.concatenate(first[1])[:, 1])
    assert not np.array_equal(np.concatenate(first[0])[:, 1], np.concatenate(other[0])[:, 1])
    assert get_worker_info() is None                       # main process


def test_worker_init_fn_and_info():
    def init(worker_id):
        info = get_worker_info()
        assert info is not None and info.id == worker_id and info.num_workers == 3
        np.random.seed(1000 + worker_id)                   # user seeding still works

    class Probe(Dataset):
        def __getitem__(self, index):
            info = get_worker_info()
            return np.array([info.id, info.seed, np.random.randint(10**6)])

        def __len__(self):
            return 6

    dn.manual_seed(0)
    rows = np.concatenate(batches(DataLoader(Probe(), batch_size=1, num_workers=3,
                                             worker_init_fn=init, timeout=60)))
    assert list(rows[:, 0]) == [0, 1, 2, 0, 1, 2]
    assert rows[1, 1] - rows[0, 1] == 1 and rows[2, 1] - rows[1, 1] == 1   # base_seed + id
    np.testing.assert_array_equal(rows[:3, 2], [np.random.RandomState(1000 + w).randint(10**6)
                                                for w in range(3)])


def test_errors_in_workers_are_reported():
    class Broken(Dataset):
        def __getitem__(self, index):
            if index == 3:
                raise KeyError("sample 3 is broken")
            return np.zeros(2)

        def __len__(self):
            return 8

    with pytest.raises(RuntimeError, match="sample 3 is broken"):
        list(DataLoader(Broken(), batch_size=2, num_workers=2, timeout=60))


def test_leaving_the_loop_early_stops_the_workers():
    loader = DataLoader(NoisyDataset(), batch_size=2, num_workers=2, timeout=60)
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert all(not w.is_alive() for w in iterator.workers)
