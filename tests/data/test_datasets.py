"""The offline digits dataset: shapes, dtypes, scaling, a deterministic stratified split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

import deepnotes as dn
from deepnotes.data import datasets


def test_digits_shapes_dtypes_and_scaling():
    train, test = datasets.digits()
    x_train, y_train = train.tensors
    x_test, y_test = test.tensors
    assert len(train) + len(test) == 1797
    assert len(test) == 359  # round(0.2 * n_c) per class
    assert x_train.shape == (len(train), 1, 8, 8) and x_test.shape == (len(test), 1, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.data.min() and x_train.data.max() == 1.0
    assert set(np.unique(y_test.data)) == set(range(10))


def test_digits_images_are_the_sklearn_images_divided_by_16():
    bunch = load_digits()
    train, test = datasets.digits()
    all_x = np.concatenate([train.tensors[0].data, test.tensors[0].data])[:, 0]
    all_y = np.concatenate([train.tensors[1].data, test.tensors[1].data])
    # the split is a partition: sort both collections of (label, pixels) rows and compare
    ours = np.concatenate([all_y[:, None], all_x.reshape(len(all_x), -1) * 16], axis=1)
    ref = np.concatenate([bunch.target[:, None], bunch.images.reshape(1797, -1)], axis=1)
    np.testing.assert_allclose(ours[np.lexsort(ours.T[::-1])], ref[np.lexsort(ref.T[::-1])])


def test_digits_split_is_stratified_deterministic_and_independent_of_manual_seed():
    dn.manual_seed(1)
    train_a, test_a = datasets.digits()
    dn.manual_seed(2)
    train_b, test_b = datasets.digits()
    np.testing.assert_array_equal(test_a.tensors[0].data, test_b.tensors[0].data)
    np.testing.assert_array_equal(train_a.tensors[1].data, train_b.tensors[1].data)
    counts = np.bincount(test_a.tensors[1].data, minlength=10)
    totals = np.bincount(load_digits().target, minlength=10)
    np.testing.assert_array_equal(counts, np.round(0.2 * totals).astype(int))
    _, test_c = datasets.digits(seed=1)
    assert not np.array_equal(test_a.tensors[0].data, test_c.tensors[0].data)


def test_digits_flatten_and_returned_arrays_are_independent_copies():
    train, _ = datasets.digits(flatten=True)
    assert train.tensors[0].shape == (len(train), 64)
    train.tensors[0].data[:] = -1  # must not poison the cached arrays
    again, _ = datasets.digits()
    assert again.tensors[0].data.min() >= 0


def test_digits_rejects_bad_test_size():
    with pytest.raises(ValueError, match="test_size"):
        datasets.digits(test_size=1.5)
