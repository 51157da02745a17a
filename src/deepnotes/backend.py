"""The array module behind every op.

Ops never write ``np.zeros`` directly; they ask ``array_module(x)`` for the module that owns ``x``.
Today that is always NumPy. A GPU backend (CuPy has NumPy's API) can slot in here later without
rewriting the ops.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

# PyTorch aliases.
half, float, double = float16, float32, float64
long, int = int64, int32

_default_dtype = float32


def array_module(*arrays: Any) -> ModuleType:
    """Return the array module (NumPy) that owns ``arrays``."""
    return np


def get_default_dtype() -> np.dtype:
    """The floating dtype of new tensors built from Python floats (float32, as in PyTorch)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype used for tensors made from Python floats and by factories."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype expects a floating dtype, got {dtype}")
    _default_dtype = dtype


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"
