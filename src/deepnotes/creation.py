"""Tensor factories with PyTorch's names and defaults (float32 unless a dtype is given)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .random import default_generator
from .tensor import Tensor


def _size(size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], tuple | list):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int | np.integer) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
    return tuple(int(s) for s in size)


def _dtype(dtype: Any) -> np.dtype:
    return backend.get_default_dtype() if dtype is None else np.dtype(dtype)


def _make(array: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(array)
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of ``data`` (floats -> float32, ints -> int64 by default)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like ``tensor`` but without a copy when ``data`` already is a Tensor or an ndarray of the
    requested dtype (the result then shares memory with ``data``, as ``torch.as_tensor``)."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor._wrap(data)
    return Tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (no copy, dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._wrap(array)


def zeros(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _make(np.zeros(_size(size), dtype=_dtype(dtype)), requires_grad)


def ones(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _make(np.ones(_size(size), dtype=_dtype(dtype)), requires_grad)


def empty(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _make(np.empty(_size(size), dtype=_dtype(dtype)), requires_grad)


def full(
    size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; the dtype follows the value's type as in
    PyTorch (bool -> bool, int -> int64, float -> the default float dtype)."""
    if dtype is None:
        if isinstance(fill_value, bool | np.bool_):
            dtype = np.bool_
        elif isinstance(fill_value, int | np.integer):
            dtype = np.int64
    return _make(np.full(_size((size,)), fill_value, dtype=_dtype(dtype)), requires_grad)


def eye(
    n: int, m: int | None = None, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """The n x m identity matrix (m = n by default)."""
    for name, value in (("n", n), ("m", n if m is None else m)):
        if not isinstance(value, int | np.integer) or value < 0:
            raise RuntimeError(f"eye(): {name} must be a non-negative int, got {value!r}")
    return _make(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def arange(
    start: float, end: float | None = None, step: float = 1, dtype: Any = None,
    device: Any = None, requires_grad: bool = False,
) -> Tensor:
    """Like torch.arange: int64 when every bound is an int, else the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        all_int = all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (start, end, step)
        )
        dtype = np.int64 if all_int else backend.get_default_dtype()
    return _make(np.arange(start, end, step, dtype=np.dtype(dtype)), requires_grad)


def linspace(
    start: float, end: float, steps: int, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if not isinstance(steps, int | np.integer) or steps < 0:
        raise RuntimeError(f"linspace(): number of steps must be a non-negative int, got {steps!r}")
    return _make(np.linspace(start, end, steps, dtype=_dtype(dtype)), requires_grad)


def randn(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
    generator: Any = None,
) -> Tensor:
    """Standard normal samples from the global seeded generator."""
    rng = generator or default_generator()
    return _make(rng.standard_normal(_size(size)).astype(_dtype(dtype)), requires_grad)


def rand(
    *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
    generator: Any = None,
) -> Tensor:
    """Uniform samples on [0, 1) from the global seeded generator."""
    rng = generator or default_generator()
    return _make(rng.random(_size(size)).astype(_dtype(dtype)), requires_grad)


def randint(
    low: int, high: Any = None, size: Any = None, dtype: Any = None, device: Any = None,
    generator: Any = None,
) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, as torch.randint."""
    if size is None:
        if not isinstance(high, tuple | list):
            raise TypeError("randint(): missing the 'size' argument (a tuple of ints)")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(
            f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        )
    rng = generator or default_generator()
    return Tensor._wrap(rng.integers(low, high, size=_size((size,))).astype(dtype or np.int64))


def randperm(n: int, dtype: Any = None, device: Any = None, generator: Any = None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    rng = generator or default_generator()
    return Tensor._wrap(rng.permutation(n).astype(dtype or np.int64))


def _like(fn: Any, input: Tensor, dtype: Any, requires_grad: bool, **kw: Any) -> Tensor:
    return fn(
        *input.shape, dtype=input.dtype if dtype is None else dtype, requires_grad=requires_grad,
        **kw,
    )


def zeros_like(
    input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _like(zeros, input, dtype, requires_grad)


def ones_like(
    input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _like(ones, input, dtype, requires_grad)


def empty_like(
    input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _like(empty, input, dtype, requires_grad)


def full_like(
    input: Tensor, fill_value: Any, dtype: Any = None, device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                requires_grad=requires_grad)


def randn_like(
    input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _like(randn, input, dtype, requires_grad)


def rand_like(
    input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _like(rand, input, dtype, requires_grad)
