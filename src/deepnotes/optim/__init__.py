"""Optimisers with PyTorch's API and update rules (notes 004 Q21): ``SGD`` (momentum, Nesterov,
weight decay), ``Adam``/``AdamW``, and ``lr_scheduler``. Updates write ``p.data`` in place with
NumPy; state dicts use PyTorch's format."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
