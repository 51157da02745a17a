"""The sorting experiment (notes 004 Q13-Q14) on a quick run: its counts against the closed
forms, its verdict, and the expected-count formula against an exhaustive average."""

import itertools
import math

import pytest

from deepnotes.algorithms import quicksort
from deepnotes.experiments.sorting import expected_random_pivot, slope

from .conftest import check_files


def test_worst_case_of_the_first_pivot_and_the_median_of_three_fix(quick):
    run = quick("sorting")
    r = run.results
    ns, counts = r["ns"], r["counts"]
    for kind in ("sorted", "reversed", "equal"):
        assert counts["quick-first"][kind] == [n * (n - 1) / 2 for n in ns], kind
    for kind in ("sorted", "reversed"):
        assert all(c <= 2 * n * math.log2(n) for c, n in zip(counts["quick-median3"][kind], ns))
        assert counts["quick-median3"][kind][-1] * 10 < counts["quick-first"][kind][-1]
    assert counts["insertion"]["reversed"] == [n * (n - 1) / 2 for n in ns]
    assert counts["insertion"]["sorted"] == [n - 1 for n in ns]
    assert r["exponents"]["quick-first"]["sorted"] == pytest.approx(2.0, abs=0.05)
    assert run.outcome.verdict == "confirmed", [c.measured for c in run.outcome.checks]
    assert run.json["checks"][1]["passed"] and "fewer" in run.json["checks"][1]["measured"]
    check_files(run.out, figures=2)


def test_expected_count_of_the_random_pivot_is_the_average_over_all_inputs():
    # On a uniformly random permutation the first element is a uniformly random pivot, and the
    # sides stay uniformly random: the mean over all n! inputs is exactly 2(n+1)H_n - 4n.
    for n in range(1, 8):
        total = sum(quicksort(p, "first")[1] for p in itertools.permutations(range(n)))
        assert total / math.factorial(n) == pytest.approx(expected_random_pivot(n), abs=1e-9)
    # ~1.39 n lg n: 2(n+1)H_n - 4n = 2n ln n + (2 gamma - 4) n + O(log n), 2 ln 2 = 1.386
    n, gamma = 10_000, 0.5772156649015329
    assert expected_random_pivot(n) == pytest.approx(2 * n * math.log(n) + (2 * gamma - 4) * n,
                                                     rel=1e-3)


def test_slope_recovers_power_laws():
    ns = [10, 20, 40, 80]
    assert slope(ns, [n ** 2 for n in ns]) == pytest.approx(2.0)
    assert slope(ns, [3 * n for n in ns]) == pytest.approx(1.0)
