"""Sorting: output equals sorted() on arbitrary lists (duplicates included); comparison counts
equal the closed forms of the notes' best/worst cases."""

import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepnotes.algorithms import (
    SORTS,
    heap_sort,
    insertion_sort,
    merge_sort,
    quicksort,
)


@pytest.mark.parametrize("name", list(SORTS))
@given(values=st.lists(st.integers(-5, 5), max_size=60) | st.lists(st.floats(
    allow_nan=False), max_size=30))
def test_sorted_output_equals_builtin(name, values):
    original = list(values)
    result, count = SORTS[name](values)
    assert result == sorted(values)
    assert values == original               # the input is left alone
    assert count >= 0 and (len(values) < 2 or count >= len(values) - 1)


def test_merge_sort_is_stable():
    pairs = [(1, "a"), (0, "b"), (1, "c"), (0, "d")]
    keys = [KeyOnly(k, tag) for k, tag in pairs]
    assert [x.tag for x in merge_sort(keys)[0]] == ["b", "d", "a", "c"]


class KeyOnly:
    def __init__(self, key, tag):
        self.key, self.tag = key, tag

    def __lt__(self, other):
        return self.key < other.key


@pytest.mark.parametrize("n", [1, 2, 10, 57])
def test_insertion_sort_counts(n):
    assert insertion_sort(range(n - 1, -1, -1))[1] == n * (n - 1) // 2   # reversed: worst case
    assert insertion_sort(range(n))[1] == max(n - 1, 0)                  # sorted: best case


def test_naive_quicksort_is_quadratic_on_sorted_input_without_recursion_error():
    n = 2000
    assert n > sys.getrecursionlimit() / 2
    result, count = quicksort(list(range(n)), "first")
    assert result == list(range(n))
    assert count == n * (n - 1) // 2
    assert quicksort(list(range(60, 0, -1)), "first")[1] == 60 * 59 // 2


def test_median_of_three_avoids_the_worst_case():
    n = 2000
    bound = 2 * n * math.log2(n)
    for data in (list(range(n)), list(range(n, 0, -1))):
        assert quicksort(data, "median3")[1] < bound
    rng = np.random.default_rng(0)
    assert quicksort(list(range(n)), "random", generator=rng)[1] < bound


def test_merge_and_heap_sort_are_n_log_n_on_every_input():
    n = 1024
    for data in (list(range(n)), list(range(n, 0, -1)),
                 np.random.default_rng(1).permutation(n).tolist()):
        assert merge_sort(data)[1] <= n * math.log2(n)
        assert heap_sort(data)[1] <= 2 * n * math.log2(n)
    assert merge_sort(list(range(n)))[1] == n // 2 * math.log2(n)  # sorted: min(p, q) per merge


def test_random_pivot_follows_the_seed():
    data = list(range(200))
    a = quicksort(data, "random", generator=np.random.default_rng(3))[1]
    b = quicksort(data, "random", generator=np.random.default_rng(3))[1]
    assert a == b


def test_bad_pivot():
    with pytest.raises(ValueError, match="pivot"):
        quicksort([3, 1], "last")
