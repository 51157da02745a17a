"""Sorting: output equals sorted() on arbitrary lists (duplicates included); comparison counts
equal the closed forms of the notes' best/worst cases."""

import itertools
import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.algorithms import (
    SORTS,
    comparison_counts,
    heap_sort,
    insertion_sort,
    make_input,
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


class Counted:
    """A key whose every comparison is counted independently of the sorts' own counter: the
    oracle for "each sort counts every comparison it makes, and only those"."""

    calls = 0

    def __init__(self, key):
        self.key = key

    def __lt__(self, other):
        Counted.calls += 1
        return self.key < other.key

    def __gt__(self, other):
        Counted.calls += 1
        return self.key > other.key

    def __le__(self, other):
        Counted.calls += 1
        return self.key <= other.key

    def __ge__(self, other):
        Counted.calls += 1
        return self.key >= other.key


@pytest.mark.parametrize("name", list(SORTS))
@given(keys=st.lists(st.integers(-4, 4), max_size=40))
def test_reported_count_equals_the_comparisons_made(name, keys):
    Counted.calls = 0
    result, count = SORTS[name]([Counted(k) for k in keys])
    assert count == Counted.calls
    assert [x.key for x in result] == sorted(keys)


def test_insertion_sort_count_is_inversions_plus_stops():
    # Element i is compared with each larger element before it (one shift each: the
    # inversions) plus once with the element where it stops, unless it becomes the new minimum.
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 40):
        a = rng.integers(0, 10, n).tolist()
        inversions = sum(a[j] > a[i] for i in range(n) for j in range(i))
        new_minimum = sum(all(a[j] > a[i] for j in range(i)) for i in range(1, n))
        assert insertion_sort(a)[1] == inversions + (max(n - 1, 0) - new_minimum)


def test_merge_sort_worst_case_over_all_inputs():
    # n lg n - n + 1 for n a power of two: every merge of p + q elements takes p + q - 1.
    for n in (2, 4, 8):
        worst = max(merge_sort(p)[1] for p in itertools.permutations(range(n)))
        assert worst == n * int(math.log2(n)) - n + 1


def test_quicksort_first_pivot_average_over_all_inputs():
    # E[C_n] = 2(n+1)H_n - 4n, from C_n = n - 1 + (2/n) sum_{k<n} C_k (each rank equally likely
    # as the pivot, and both sides again uniformly random).
    for n in range(1, 7):
        mean = np.mean([quicksort(p, "first")[1] for p in itertools.permutations(range(n))])
        recurrence = [0.0]
        for m in range(1, n + 1):
            recurrence.append(m - 1 + 2 / m * sum(recurrence[:m]))
        assert mean == pytest.approx(recurrence[n], abs=1e-12)


def test_heap_sort_counts_match_a_textbook_heapsort():
    # A recursive textbook heapsort written independently (same sift-down rule: the larger
    # child, ties to the left child; stop when the parent is not smaller).
    def reference(values):
        a, count = list(values), 0

        def sift(root, end):
            nonlocal count
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end:
                count += 1
                if a[child] < a[child + 1]:
                    child += 1
            count += 1
            if a[root] < a[child]:
                a[root], a[child] = a[child], a[root]
                sift(child, end)

        for root in reversed(range(len(a) // 2)):
            sift(root, len(a))
        for end in reversed(range(1, len(a))):
            a[0], a[end] = a[end], a[0]
            sift(0, end)
        return a, count

    rng = np.random.default_rng(2)
    for n in (0, 1, 5, 31, 64):
        data = rng.integers(0, 20, n).tolist()
        assert heap_sort(data) == reference(data)


@pytest.mark.parametrize("kind", ["random", "sorted", "reversed", "equal"])
def test_comparison_counts_table(kind):
    dn.manual_seed(11)
    counts = comparison_counts([5, 20], kinds=[kind], algorithms=["insertion", "merge"])
    dn.manual_seed(11)
    inputs = [make_input(kind, 5), make_input(kind, 20)]
    assert counts["insertion"][kind] == [insertion_sort(v)[1] for v in inputs]
    assert counts["merge"][kind] == [merge_sort(v)[1] for v in inputs]
    with pytest.raises(ValueError, match="kind"):
        make_input("shuffled", 3)
