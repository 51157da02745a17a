"""Argument checks shared by the layer constructors (PyTorch-like messages naming the argument)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import backend
from ...creation import empty


def is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_count(value: Any, name: str, layer: str, minimum: int = 1) -> int:
    """An int argument such as in_features or num_features, at least ``minimum``."""
    if not is_int(value):
        raise TypeError(f"{layer}: {name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        bound = "a positive integer" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{layer}: {name} must be {bound}, got {name}={value}")
    return int(value)


def check_size(value: Any, name: str, layer: str, minimum: int, n: int = 2) -> Any:
    """An int or a tuple of ``n`` ints, each at least ``minimum`` (kernel_size, stride...).

    Returns the value unchanged (PyTorch's pooling layers keep an int as an int in their repr).
    """
    items = (value,) if is_int(value) else value
    if not (is_int(value) or (isinstance(value, tuple | list) and len(value) in (1, n)
                              and all(is_int(v) for v in value))):
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in items):
        what = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise ValueError(f"{layer}: {name} must be {what}, got {name}={value}")
    return tuple(int(v) for v in value) if isinstance(value, list) else value


def to_pair(value: Any) -> tuple[int, int]:
    if is_int(value):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    return value * 2 if len(value) == 1 else value  # type: ignore[return-value]


def factory(shape: tuple[int, ...], device: Any, dtype: Any) -> Any:
    """An uninitialised float tensor for a parameter (``device`` may only be None or "cpu")."""
    if device is not None and not str(device).startswith("cpu"):
        raise RuntimeError(f"deepnotes runs on the CPU only, got device={device!r}")
    dtype = backend.get_default_dtype() if dtype is None else np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"parameters must have a floating point dtype, got dtype={dtype}")
    return empty(*shape, dtype=dtype)
