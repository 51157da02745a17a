"""Anomaly detection: find the first op whose forward output or backward gradient is nan or inf.

A loss that turns into nan after an hour of training says nothing about where the nan was born.
Inside ``detect_anomaly()`` every op checks what it produces:

* forward: the op's output (each floating output, for ops with several) must be finite;
* backward: each gradient that the op's ``backward`` returns must be finite;

and the first op that fails raises a ``RuntimeError`` naming the op (its ``Function`` class) and
the line of user code that created it, for example::

    with deepnotes.autograd.detect_anomaly():
        loss = model(x).log().mean()      # LogFn on a zero: -inf
        loss.backward()

    RuntimeError: Function 'LogFn' returned -inf values in its forward output (1 of 6 values not
    finite; its inputs were finite). It was created at train.py:12 in step: loss = ...

Where each node was created is captured only while the mode is on (walking the Python stack
costs a few microseconds per op), so the mode is for debugging, as in PyTorch. When it is off the
cost is one flag test per op. With ``check_nan=False`` the values are not checked; the creation
sites are still recorded, and errors raised in backward (such as an in-place modification of a
saved tensor) then name the op's creation site too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

# Read by Function.__call__ and the engine on every op (a module attribute is the cheapest test).
_enabled = False
_check_nan = True

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../deepnotes
# Frames in these files belong to the op machinery, not to the code that asked for the op.
_MACHINERY = tuple(os.path.join(_PACKAGE_DIR, part) for part in (
    "autograd" + os.sep, "ops" + os.sep, "tensor.py", os.path.join("nn", "functional.py"),
))


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on."""
    return _enabled


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection checks values for nan/inf (``check_nan``)."""
    return _enabled and _check_nan


def _set(mode: bool, check_nan: bool) -> None:
    global _enabled, _check_nan
    _enabled, _check_nan = bool(mode), bool(check_nan)


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) that turns anomaly detection on, as
    ``torch.autograd.detect_anomaly``.

    Args:
        check_nan: raise on the first nan/inf in a forward output or a backward gradient
            (default True). With False only the creation sites are recorded.

    Example::

        with deepnotes.autograd.detect_anomaly():
            loss = criterion(model(x), y)
            loss.backward()
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = bool(check_nan)
        self._previous: list[tuple[bool, bool]] = []

    def __enter__(self) -> None:
        self._previous.append((_enabled, _check_nan))
        _set(True, self.check_nan)

    def __exit__(self, *exc: object) -> None:
        _set(*self._previous.pop())

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly detection on or off now (``set_detect_anomaly(True)``) or for a ``with``
    block, which restores the previous mode on exit."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self._previous = (_enabled, _check_nan)
        _set(mode, check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        _set(*self._previous)


# -- used by Function.__call__ and the engine while the mode is on ----------------------------


def _frame_text(frame: Any) -> str:
    import linecache

    code = frame.f_code
    line = linecache.getline(code.co_filename, frame.f_lineno).strip()
    text = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
    return f"{text}: {line}" if line else text


def creation_site() -> str:
    """Where the op being created was asked for: the innermost frame outside the op machinery
    (autograd, ops, tensor.py, nn.functional), plus the innermost frame outside deepnotes when
    that is a different one (the user's line that called a deepnotes layer)."""
    frame = sys._getframe(2)
    site = user = None
    while frame is not None and user is None:
        filename = frame.f_code.co_filename
        if site is None and not filename.startswith(_MACHINERY):
            site = frame
        if not filename.startswith(_PACKAGE_DIR):
            user = frame
        frame = frame.f_back
    if site is None:
        return "an unknown place"
    text = _frame_text(site)
    if user is not None and user is not site:
        text = f"{_frame_text(user)} (inside {text})"
    return text


def _describe(array: np.ndarray) -> str:
    """'nan', 'inf', '-inf' or a combination, for the non-finite values of ``array``."""
    kinds = []
    if np.isnan(array).any():
        kinds.append("nan")
    if np.isposinf(array).any():
        kinds.append("inf")
    if np.isneginf(array).any():
        kinds.append("-inf")
    return "/".join(kinds)


def _bad(array: Any) -> bool:
    return (isinstance(array, np.ndarray | np.generic) and array.dtype.kind in "fc"
            and not np.isfinite(array).all())


def _where(node: Any) -> str:
    site = node.__dict__.get("_created_at")
    return f"It was created at {site}" if site else ""


def check_forward(node: Any, arrays: list, outputs: tuple) -> None:
    """Raise if an output of ``node``'s forward holds nan/inf (called only in anomaly mode)."""
    for index, out in enumerate(outputs):
        if _bad(out):
            inputs_bad = any(_bad(a) for a in arrays)
            which = "its forward output" if len(outputs) == 1 else f"forward output {index}"
            count = int(out.size - np.isfinite(out).sum())
            origin = ("an input already held nan/inf" if inputs_bad
                      else "its inputs were finite")
            raise RuntimeError(
                f"Function '{type(node).__name__}' returned {_describe(out)} values in {which} "
                f"({count} of {out.size} values not finite; {origin}). "
                f"{_where(node)}".rstrip()
            )


def check_backward(node: Any, grads: tuple) -> None:
    """Raise if a gradient returned by ``node.backward`` holds nan/inf (anomaly mode only)."""
    for index, grad in enumerate(grads):
        if grad is not None and _bad(np.asarray(grad)):
            grad = np.asarray(grad)
            raise RuntimeError(
                f"Function '{type(node).__name__}' returned {_describe(grad)} values in its "
                f"{index}th output (the gradient of its input {index}) during backward. "
                f"{_where(node)}".rstrip()
            )
