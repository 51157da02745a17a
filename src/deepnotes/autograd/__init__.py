"""Autograd: the ``Function`` node, the backward engine, grad modes and finite-difference checks."""

from .engine import backward, unbroadcast
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, numerical_grad

__all__ = [
    "Function",
    "backward",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "numerical_grad",
    "set_grad_enabled",
    "unbroadcast",
]
