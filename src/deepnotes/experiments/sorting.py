"""Comparison counts of the classic sorts on random, sorted, reversed and all-equal input
(notes 004 Q13 "排序算法的时间/空间复杂度", Q14 "快排的最好最差情况以及如何避免").

Counting comparisons instead of timing makes the complexity classes visible exactly and
independently of the machine: every sort of :mod:`deepnotes.algorithms` returns how many times
it compared two elements.

Quicksort with the first element as pivot splits sorted (or reversed) input into an empty side
and a side of m - 1 elements, so it makes (n-1) + (n-2) + ... + 1 = n(n-1)/2 comparisons. The
median of the first, middle and last elements is the true median of a sorted range, so every split
is even and the count drops to the best case, ~n lg n. A uniformly random pivot makes the expected
count 2(n+1)H_n - 4n ~ 1.39 n lg n on every input (H_n the harmonic number: the probability that
the i-th and j-th smallest are ever compared is 2/(j - i + 1); sum over the pairs). The notes also
list all-equal input as a worst case: with a two-way partition every element lands on one side,
whatever the pivot rule -- median-of-three does not help there (a three-way partition would).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt

KINDS = ("random", "sorted", "reversed", "equal")
STYLE = {"insertion": ("tab:gray", "o"), "merge": ("tab:blue", "s"), "heap": ("tab:purple", "D"),
         "quick-first": ("tab:red", "v"), "quick-random": ("tab:orange", "^"),
         "quick-median3": ("tab:green", "P")}


def expected_random_pivot(n: int) -> float:
    """Expected comparisons of quicksort with a uniform random pivot on n distinct keys,
    2(n+1)H_n - 4n, with m - 1 comparisons per partition of m elements."""
    harmonic = sum(1.0 / k for k in range(1, n + 1))
    return 2 * (n + 1) * harmonic - 4 * n


def slope(ns: list[int], counts: list[float]) -> float:
    """Exponent b of the least-squares fit counts ~ a n^b on a log-log scale."""
    return float(np.polyfit(np.log(ns), np.log(np.maximum(counts, 1)), 1)[0])


def measure(ns: list[int], repeats: int) -> dict[str, dict[str, list[float]]]:
    """counts[sort][kind][i]: comparisons on input ``kind`` of size ns[i] (random input: the
    mean over ``repeats`` permutations drawn from deepnotes.random)."""
    from deepnotes.algorithms import SORTS, make_input

    counts: dict[str, dict[str, list[float]]] = {s: {k: [] for k in KINDS} for s in SORTS}
    for n in ns:
        for kind in KINDS:
            inputs = [make_input(kind, n) for _ in range(repeats if kind == "random" else 1)]
            for name, sort in SORTS.items():
                counts[name][kind].append(float(np.mean([sort(v)[1] for v in inputs])))
    return counts


def _figures(ctx: Context, ns: list[int], counts: dict[str, Any]) -> None:
    grid = np.array(ns, dtype=float)
    fig, axes = ctx.figure(2, 2, size=(4.2, 3.2), sharex=True, sharey=True)
    for ax, kind in zip(axes.ravel(), KINDS):
        ax.loglog(grid, grid * (grid - 1) / 2, "k--", lw=0.8, label="n(n-1)/2")
        ax.loglog(grid, grid * np.log2(grid), "k:", lw=0.8, label="n lg n")
        for name, (colour, marker) in STYLE.items():
            ax.loglog(grid, counts[name][kind], color=colour, marker=marker, ms=3, lw=1,
                      label=name)
        ax.set_title(f"{kind} input", fontsize=9)
        ax.grid(True, which="major", lw=0.5, alpha=0.5)
    for ax in axes[1]:
        ax.set_xlabel("n")
    for ax in axes[:, 0]:
        ax.set_ylabel("comparisons")
    axes[0, 0].legend(fontsize=7.5, ncol=2)
    ctx.save_figure(fig, "comparisons", "Comparisons vs n (log-log) of each sort on random "
                    "(mean of the permutations), sorted, reversed and all-equal input; dashed: "
                    "n(n-1)/2, dotted: n lg n.")

    fig, axes = ctx.figure(1, 2, size=(4.2, 3.2), sharey=True)
    for ax, kind in zip(axes[0], ("sorted", "random")):
        for name in ("quick-first", "quick-random", "quick-median3"):
            colour, marker = STYLE[name]
            ax.semilogx(grid, np.array(counts[name][kind]) / (grid * np.log2(grid)),
                        color=colour, marker=marker, ms=3, label=name)
        ax.semilogx(grid, [expected_random_pivot(n) / (n * math.log2(n)) for n in ns], "k:",
                    lw=0.8, label="2(n+1)H_n - 4n")
        ax.set_yscale("log")
        ax.set_title(f"quicksort pivots, {kind} input", fontsize=9)
        ax.set_xlabel("n")
        ax.grid(True, which="major", lw=0.5, alpha=0.5)
    axes[0, 0].set_ylabel("comparisons / (n lg n)")
    axes[0, 0].legend(fontsize=7.5)
    ctx.save_figure(fig, "pivots", "Quicksort's comparisons divided by n lg n: the first-element "
                    "pivot grows like n/(2 lg n) on sorted input, median-of-three and a random "
                    "pivot stay flat.")


@experiment(
    "sorting", title="Comparisons of the classic sorts, and quicksort's worst case",
    note="notes 004 Q13-Q14",
    claim="""Insertion sort is O(n^2), merge sort and heap sort O(n log n); quicksort is
    O(n log n) on average but O(n^2) when the pivot is always the minimum or maximum: with the
    first element as pivot that happens on sorted input (and on all-equal values). Taking the
    median of the first, middle and last elements as pivot (O(1) extra) avoids the worst case.""",
    setup="""Insertion, bottom-up merge, heap sort and quicksort (Lomuto partition, pivot: the
    first element, a uniform random one, or the median of three) from deepnotes.algorithms, each
    counting its comparisons. Inputs of n = 100, 200, ..., 3200 (quick: 50 ... 400), doubling:
    random permutations (mean over 3 of them; quick: 2), sorted, reversed and all-equal. The
    growth exponent is the slope of log(comparisons) against log(n) over all n.""")
def run(ctx: Context) -> Outcome:
    ns = ctx.pick([100, 200, 400, 800, 1600, 3200], [50, 100, 200, 400])
    repeats = ctx.pick(3, 2)
    counts = measure(ns, repeats)
    n = ns[-1]
    worst, nlgn = n * (n - 1) / 2, n * math.log2(n)
    slopes = {name: {kind: slope(ns, c) for kind, c in by_kind.items()}
              for name, by_kind in counts.items()}
    quadratic = [k * (k - 1) / 2 for k in ns]

    first = counts["quick-first"]
    median3 = counts["quick-median3"]
    random_pivot = counts["quick-random"]
    first_exact = first["sorted"] == quadratic and first["reversed"] == quadratic
    median3_bound = max(max(c / (k * math.log2(k)) for c, k in zip(median3[kind], ns))
                        for kind in ("sorted", "reversed"))
    gap_grows = all(np.all(np.diff(np.array(first[kind]) / np.array(median3[kind])) > 0)
                    for kind in ("sorted", "reversed"))
    expected = expected_random_pivot(n)
    random_dev = {kind: random_pivot[kind][-1] / expected - 1
                  for kind in ("random", "sorted", "reversed")}
    merge_max = max(max(c / (k * math.log2(k)) for c, k in zip(counts["merge"][kind], ns))
                    for kind in KINDS)
    heap_max = max(max(c / (k * math.log2(k)) for c, k in zip(counts["heap"][kind], ns))
                   for kind in KINDS)
    insertion = counts["insertion"]
    equal_quick = {name: counts[name]["equal"][-1] / worst
                   for name in ("quick-first", "quick-random", "quick-median3")}

    checks = [
        Check("first-element pivot on sorted and reversed input: n(n-1)/2 comparisons, O(n^2)",
              f"exactly n(n-1)/2 at every n: {first_exact}; n = {n}: {first['sorted'][-1]:,.0f}"
              f" (sorted), {first['reversed'][-1]:,.0f} (reversed); growth exponent "
              f"{slopes['quick-first']['sorted']:.2f} / {slopes['quick-first']['reversed']:.2f}",
              first_exact and min(slopes["quick-first"]["sorted"],
                                  slopes["quick-first"]["reversed"]) > 1.9),
        Check("median-of-three avoids the worst case on sorted and reversed input",
              f"n = {n}: {median3['sorted'][-1]:,.0f} (sorted) and "
              f"{median3['reversed'][-1]:,.0f} (reversed) vs {first['sorted'][-1]:,.0f} with "
              f"the first element, {first['sorted'][-1] / median3['sorted'][-1]:.0f}x and "
              f"{first['reversed'][-1] / median3['reversed'][-1]:.0f}x fewer (at n = {ns[0]}: "
              f"{first['sorted'][0] / median3['sorted'][0]:.0f}x and "
              f"{first['reversed'][0] / median3['reversed'][0]:.0f}x; the gap grows at every "
              f"doubling: {gap_grows}); at most {median3_bound:.2f} n lg n at every n",
              median3_bound <= 2.0 and gap_grows),
        Check("a random pivot gives the average case 2(n+1)H_n - 4n ~ 1.39 n lg n on every "
              "input",
              f"n = {n}: expected {expected:,.0f}; measured "
              + ", ".join(f"{kind} {random_pivot[kind][-1]:,.0f} ({100 * d:+.1f}%)"
                          for kind, d in random_dev.items()),
              max(abs(d) for d in random_dev.values()) < 0.15),
        Check("merge sort <= n lg n and heap sort <= 2 n lg n comparisons on every input: "
              "O(n log n) whatever the order",
              f"largest count / (n lg n) over all n and inputs: merge {merge_max:.2f}, heap "
              f"{heap_max:.2f}; exponents <= "
              f"{max(max(slopes[s].values()) for s in ('merge', 'heap')):.2f}",
              merge_max <= 1.0 and heap_max <= 2.0),
        Check("insertion sort: n - 1 comparisons on sorted, n(n-1)/2 on reversed, ~n^2/4 on "
              "random input",
              f"n = {n}: sorted {insertion['sorted'][-1]:,.0f}, reversed "
              f"{insertion['reversed'][-1]:,.0f} (n(n-1)/2 = {worst:,.0f}), random "
              f"{insertion['random'][-1]:,.0f} = {insertion['random'][-1] / (n * n / 4):.2f} "
              f"n^2/4",
              insertion["sorted"] == [k - 1 for k in ns] and insertion["reversed"] == quadratic
              and abs(insertion["random"][-1] / (n * n / 4) - 1) < 0.1),
        Check("all-equal values (the notes' other worst case) stay O(n^2) for every pivot rule "
              "of a two-way partition",
              "n = " + str(n) + ": comparisons / (n(n-1)/2) = "
              + ", ".join(f"{k} {v:.3f}" for k, v in equal_quick.items()),
              min(equal_quick.values()) >= 1.0),
    ]
    rows = [[name, *(f"{counts[name][kind][-1]:,.0f}" for kind in KINDS),
             *(f"{slopes[name][kind]:.2f}" for kind in KINDS)] for name in counts]
    table = Table(f"Comparisons at n = {n} (random: mean of {repeats} permutations) and growth "
                  f"exponents over n = {ns[0]}..{n} (2: quadratic; ~1.1-1.2: n lg n)",
                  ["sort", *KINDS, *(f"exponent {k}" for k in KINDS)], rows)
    _figures(ctx, ns, counts)
    return Outcome(
        results=dict(ns=ns, repeats=repeats, counts=counts, exponents=slopes,
                     n_lg_n=nlgn, worst_case=worst, expected_random_pivot=expected,
                     median3_max_over_n_lg_n=median3_bound, merge_max_over_n_lg_n=merge_max,
                     heap_max_over_n_lg_n=heap_max, equal_over_worst=equal_quick),
        checks=checks, tables=[table],
        remarks=f"""Median-of-three turns sorted input into quicksort's best case (every split
        even). On reversed input it costs about twice as much, and its count / (n lg n) creeps
        up slowly (1.20 at n = 100, 1.68 at 3,200; 1.96 at n = 204,800, measured once outside
        this experiment with the same code): the Lomuto partition scrambles the reversed range
        into sub-ranges that are neither sorted nor random, but far from quadratic. It is no
        guarantee: inputs built against it ("median-of-three killers") are still quadratic, and
        all-equal values remain n(n-1)/2 for every pivot rule of this two-way partition, which
        sends every element equal to the pivot to the same side (a three-way, Dutch-flag
        partition makes them linear). Insertion sort's n - 1 on sorted input is the best of all
        ({fmt(insertion['sorted'][-1] / nlgn)} n lg n at n = {n}).""")
