"""Comparison sorts that count their comparisons (notes 004 Q13 "排序算法的时间/空间复杂度",
Q14 "快排的最好最差情况以及如何避免").

| algorithm       | best       | average    | worst      | extra space          |
|-----------------|------------|------------|------------|----------------------|
| insertion sort  | n - 1      | ~n^2/4     | n(n-1)/2   | O(1)                 |
| merge sort      | ~n/2 lg n  | ~n lg n    | ~n lg n    | O(n) (the copies)    |
| heap sort       | ~n lg n *  | ~2n lg n   | ~2n lg n   | O(1)                 |
| quicksort       | ~n lg n    | ~1.39 n lg n | n(n-1)/2 | O(lg n) stack        |

(* distinct keys; with all keys equal every sift-down stops after 2 comparisons: about 3n.)

Quicksort partitions around a pivot with m - 1 comparisons for m elements, then sorts both sides.
Its worst case is a pivot that is always the minimum or maximum: one side is empty, the other has
m - 1 elements, and the total is (n-1) + (n-2) + ... + 1 = n(n-1)/2. With the first element as the
pivot that is exactly what happens on already sorted (or reversed) input -- the most common
"special" input there is. The notes' fixes: a random pivot (expected ~1.39 n lg n on every input)
or the median of the first, middle and last elements (2-3 extra comparisons per partition, and
sorted/reversed inputs become the best case, because the middle element is the median).

All-equal input is also a worst case of this two-way (Lomuto) partition, whatever the pivot:
every element goes to the same side. (A three-way partition would fix it; it is kept out to
show the effect.)

Every function takes a sequence and returns ``(sorted_list, comparisons)``; the input is not
modified. Quicksort is iterative with an explicit stack (the smaller side first, so the stack
holds O(lg n) ranges): the naive pivot on sorted input of n = 10,000 would otherwise need a
recursion depth of n, beyond Python's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..random import default_generator

PIVOTS = ("first", "random", "median3")


class _Counter:
    """``less(a, b)`` = a < b, counting the calls."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def less(self, a: Any, b: Any) -> bool:
        self.count += 1
        return a < b


def insertion_sort(values: Sequence[Any]) -> tuple[list[Any], int]:
    """Insert a[i] into the sorted prefix a[:i], scanning it right to left.

    Comparisons: n - 1 on sorted input (one per element), n(n-1)/2 on reversed input
    (element i is compared with all i elements before it).
    """
    a, c = list(values), _Counter()
    for i in range(1, len(a)):
        x, j = a[i], i
        while j > 0 and c.less(x, a[j - 1]):
            a[j] = a[j - 1]  # shift the larger element right
            j -= 1
        a[j] = x
    return a, c.count


def merge_sort(values: Sequence[Any]) -> tuple[list[Any], int]:
    """Bottom-up merge sort: merge runs of width 1, 2, 4, ... (stable).

    Merging runs of lengths p and q takes between min(p, q) and p + q - 1 comparisons, so every
    one of the lg n levels costs at most n: at most n lg n in all, whatever the input.
    """
    a, c = list(values), _Counter()
    n, width = len(a), 1
    buffer = a[:]
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if c.less(a[j], a[i]):   # take from the right only when strictly smaller: stable
                    buffer[k] = a[j]
                    j += 1
                else:
                    buffer[k] = a[i]
                    i += 1
                k += 1
            buffer[k:hi] = a[i:mid] if i < mid else a[j:hi]
        a, buffer = buffer, a
        width *= 2
    return a, c.count


def heap_sort(values: Sequence[Any]) -> tuple[list[Any], int]:
    """Build a max-heap in place (sift-down from the last parent), then repeatedly swap the
    maximum to the end and sift the new root down. About 2 n lg n comparisons on any input."""
    a, c = list(values), _Counter()
    n = len(a)

    def sift_down(root: int, end: int) -> None:
        while True:
            child = 2 * root + 1
            if child >= end:
                return
            if child + 1 < end and c.less(a[child], a[child + 1]):
                child += 1                      # the larger child
            if not c.less(a[root], a[child]):
                return
            a[root], a[child] = a[child], a[root]
            root = child

    for root in range(n // 2 - 1, -1, -1):
        sift_down(root, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        sift_down(0, end)
    return a, c.count


def quicksort(values: Sequence[Any], pivot: str = "first",
              generator: np.random.Generator | None = None) -> tuple[list[Any], int]:
    """Quicksort with a Lomuto partition around a pivot moved to the end of the range.

    Args:
        values: the sequence to sort.
        pivot: ``"first"`` (the naive choice: n(n-1)/2 comparisons on sorted input),
            ``"random"`` (a uniform index, drawn from ``generator``) or ``"median3"`` (the median
            of the first, middle and last elements, 2-3 comparisons).
        generator: for ``"random"``; default ``deepnotes.random.default_generator()``.

    Partition of a[lo..hi] with the pivot p swapped to a[hi]: every a[j], j = lo..hi-1, is
    compared once with p and those smaller go to the left block; then p is swapped between the
    blocks: m - 1 comparisons. (Parking the pivot at the end rather than the front matters for
    median-of-three: moving the middle element to the front scrambles reversed input into a
    quadratic case, ~n^2/8 comparisons for n = 2000, against ~18 n for the end.)
    """
    if pivot not in PIVOTS:
        raise ValueError(f"pivot must be one of {PIVOTS}, got '{pivot}'")
    rng = generator if generator is not None else default_generator()
    a, c = list(values), _Counter()
    stack = [(0, len(a) - 1)]
    while stack:
        lo, hi = stack.pop()
        if lo >= hi:
            continue
        k = lo                                     # "first"
        if pivot == "random":
            k = lo + int(rng.integers(hi - lo + 1))
        elif pivot == "median3" and hi - lo >= 2:
            k = _median_of_three(a, lo, (lo + hi) // 2, hi, c)
        a[hi], a[k] = a[k], a[hi]                  # the pivot waits at the end of the range
        p, store = a[hi], lo
        for j in range(lo, hi):
            if c.less(a[j], p):
                a[store], a[j] = a[j], a[store]
                store += 1
        a[hi], a[store] = a[store], a[hi]           # the pivot lands at its final place
        left, right = (lo, store - 1), (store + 1, hi)
        # Push the larger side first: the smaller one is sorted next, so the stack stays short.
        if left[1] - left[0] > right[1] - right[0]:
            stack += [left, right]
        else:
            stack += [right, left]
    return a, c.count


def _median_of_three(a: list[Any], i: int, j: int, k: int, c: _Counter) -> int:
    """Index of the median of a[i], a[j], a[k] (2 or 3 comparisons)."""
    if c.less(a[i], a[j]):
        if c.less(a[j], a[k]):
            return j                                 # a[i] < a[j] < a[k]
        return k if c.less(a[i], a[k]) else i        # a[j] is the largest
    if c.less(a[i], a[k]):
        return i                                     # a[j] <= a[i] < a[k]
    return k if c.less(a[j], a[k]) else j            # a[i] is the largest


SORTS = {
    "insertion": insertion_sort,
    "merge": merge_sort,
    "heap": heap_sort,
    "quick-first": lambda v: quicksort(v, "first"),
    "quick-random": lambda v: quicksort(v, "random"),
    "quick-median3": lambda v: quicksort(v, "median3"),
}


def make_input(kind: str, n: int, generator: np.random.Generator | None = None) -> list[int]:
    """``random`` (a permutation of 0..n-1), ``sorted``, ``reversed`` or ``equal`` input."""
    if kind == "sorted":
        return list(range(n))
    if kind == "reversed":
        return list(range(n - 1, -1, -1))
    if kind == "equal":
        return [0] * n
    if kind == "random":
        rng = generator if generator is not None else default_generator()
        return rng.permutation(n).tolist()
    raise ValueError(f"kind must be 'random', 'sorted', 'reversed' or 'equal', got '{kind}'")


def comparison_counts(ns: Sequence[int], kinds: Sequence[str] = ("random", "sorted", "reversed"),
                      algorithms: Sequence[str] = tuple(SORTS)) -> dict[str, dict[str, list[int]]]:
    """``counts[algorithm][kind][i]`` = comparisons to sort input ``kind`` of size ``ns[i]``."""
    counts: dict[str, dict[str, list[int]]] = {a: {k: [] for k in kinds} for a in algorithms}
    for n in ns:
        for kind in kinds:
            data = make_input(kind, n)
            for name in algorithms:
                result, count = SORTS[name](data)
                counts[name][kind].append(count)
    return counts
