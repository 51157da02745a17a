"""Switch graph recording off and on: ``no_grad`` and ``enable_grad``.

Both work as context managers and as decorators, like their PyTorch namesakes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether new ops record themselves in the graph."""
    return _grad_enabled


def set_grad_enabled(mode: bool) -> None:
    global _grad_enabled
    _grad_enabled = bool(mode)


class _GradMode:
    mode: bool

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        set_grad_enabled(self.mode)

    def __exit__(self, *exc: object) -> None:
        set_grad_enabled(self._previous)

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return func(*args, **kwargs)

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
