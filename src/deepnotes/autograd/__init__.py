"""Autograd: the ``Function`` node, the backward engine, grad modes, anomaly detection and
finite-difference checks."""

from .anomaly_mode import (
    detect_anomaly,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    set_detect_anomaly,
)
from .engine import backward, unbroadcast
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, numerical_grad

__all__ = [
    "Function",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "gradcheck",
    "is_anomaly_check_nan_enabled",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "no_grad",
    "numerical_grad",
    "set_detect_anomaly",
    "set_grad_enabled",
    "unbroadcast",
]
