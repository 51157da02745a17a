"""Small helpers shared by the op wrappers: argument checks and tuple normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_tensor(value: Any, name: str, op: str) -> None:
    """Raise PyTorch's TypeError when an op that needs a Tensor gets something else."""
    from ..tensor import Tensor

    if not isinstance(value, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(value).__name__}")


def ntuple(value: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    """Expand an int into an n-tuple (``2 -> (2, 2)``) and check a given tuple has length n."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, tuple | list) and len(value) == n and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        return tuple(int(v) for v in value)
    raise TypeError(f"{op}(): {name} must be an int or a tuple of {n} ints, got {value!r}")


def pair(value: Any, name: str = "argument", op: str = "op") -> tuple[int, int]:
    return ntuple(value, 2, name, op)  # type: ignore[return-value]


def normalize_dim(dim: int, ndim: int, op: str = "op") -> int:
    """Map a possibly negative dim into [0, ndim), with PyTorch's IndexError when out of range."""
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool):
        raise TypeError(f"{op}(): dim must be an int, got {type(dim).__name__}")
    if dim < low or dim > high:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})"
        )
    return int(dim) % max(ndim, 1)


def normalize_dims(dim: Any, ndim: int, op: str = "op") -> tuple[int, ...] | None:
    """``None`` (all dims), an int, or a sequence of ints -> a sorted tuple of non-negative dims."""
    if dim is None:
        return None
    if isinstance(dim, tuple | list):
        dims = tuple(sorted(normalize_dim(d, ndim, op) for d in dim))
        if len(set(dims)) != len(dims):
            raise RuntimeError(
                f"{op}(): dim {tuple(dim)} appears multiple times in the list of dims"
            )
        return dims
    return (normalize_dim(dim, ndim, op),)
