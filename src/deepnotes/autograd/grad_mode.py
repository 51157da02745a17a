"""Switch graph recording off and on: ``no_grad``, ``enable_grad`` and ``set_grad_enabled``.

All three work as context managers and as decorators, like their PyTorch namesakes; ``no_grad`` and
``enable_grad`` also decorate without parentheses (``@no_grad``), and ``set_grad_enabled(False)``
also works as a plain call that sets the mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Read directly by Function.__call__ on every op (a module attribute read is the cheapest check).
_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether new ops record themselves in the graph."""
    return _grad_enabled


def _set(mode: bool) -> None:
    global _grad_enabled
    _grad_enabled = bool(mode)


class _GradMode:
    """Base of the context managers: sets ``mode`` on enter, restores the previous mode on exit."""

    mode: bool

    def __new__(cls, func: Callable | None = None) -> Any:
        instance = super().__new__(cls)
        if func is not None:  # used as a bare decorator: @no_grad
            if not callable(func):
                raise TypeError(f"{cls.__name__}() takes no arguments, got {type(func).__name__}")
            return instance(func)
        return instance

    def __init__(self, func: Callable | None = None) -> None:
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_grad_enabled)
        _set(self.mode)

    def __exit__(self, *exc: object) -> None:
        _set(self._previous.pop())

    def __call__(self, func: F) -> F:
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = _grad_enabled
            _set(mode)
            try:
                return func(*args, **kwargs)
            finally:
                _set(previous)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Ops inside run without recording a graph: outputs have ``requires_grad=False``.

    Example::

        with deepnotes.no_grad():
            y = model(x)          # no graph, no saved activations

        @deepnotes.no_grad()
        def evaluate(model, x): ...
    """

    mode = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Turn graph recording back on inside a ``no_grad`` region."""

    mode = True


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """Set the mode now (``set_grad_enabled(False)``) or for a block (``with
    set_grad_enabled(mode):``).

    As in PyTorch the mode changes when the object is created; leaving the ``with`` block restores
    the mode that was active before.
    """

    def __new__(cls, mode: bool) -> Any:
        return object.__new__(cls)

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._previous = [_grad_enabled]
        _set(self.mode)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        _set(self._previous[0])

    def __call__(self, func: F) -> F:
        _set(self._previous[0])  # as a decorator it only changes the mode inside ``func``
        return super().__call__(func)
