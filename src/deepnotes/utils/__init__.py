"""Utilities beside the framework proper, as in ``torch.utils``: ``checkpoint`` (recompute
activations in backward instead of storing them)."""

from . import checkpoint

__all__ = ["checkpoint"]
