"""Classic algorithms the notes ask about: comparison sorts with comparison counts (notes 004
Q13-Q14)."""

from .sorting import (
    PIVOTS,
    SORTS,
    comparison_counts,
    heap_sort,
    insertion_sort,
    make_input,
    merge_sort,
    quicksort,
)

__all__ = ["PIVOTS", "SORTS", "comparison_counts", "heap_sort", "insertion_sort", "make_input",
           "merge_sort", "quicksort"]
