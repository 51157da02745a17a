"""The model zoo and its registry: ``get_model(name, **kwargs)``, ``list_models()``.

Each entry is a function that builds a fresh model; keyword arguments go to it
(``get_model("mlp", hidden=256)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .small import MLP, DigitsCNN, LeNet5, digits_cnn, lenet5, mlp

_REGISTRY: dict[str, Callable[..., Any]] = {
    "digits_cnn": digits_cnn,
    "lenet5": lenet5,
    "mlp": mlp,
}


def register_model(name: str, builder: Callable[..., Any]) -> None:
    """Add ``builder`` to the registry under ``name`` (a name may be registered only once)."""
    if name in _REGISTRY:
        raise ValueError(f"a model named '{name}' is already registered")
    _REGISTRY[name] = builder


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` with ``kwargs`` (as ``torchvision.models.get_model``)."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'; available models: "
                         f"{', '.join(list_models())}") from None
    return builder(**kwargs)


__all__ = ["MLP", "DigitsCNN", "LeNet5", "digits_cnn", "get_model", "lenet5", "list_models", "mlp",
           "register_model"]
