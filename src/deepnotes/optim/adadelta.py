"""Adadelta (Zeiler 2012): RMSprop whose step is rescaled by a moving RMS of past updates, so
that it has the units of the parameters and needs no learning rate (notes 004 Q21)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative, check_number, scalar_dtype


class Adadelta(Optimizer):
    """Adadelta, with PyTorch's exact update rule.

    For each parameter w with gradient g (lr, rho, eps, lambda = weight_decay):

        g    <- -g                                    if maximize
        g    <- g + lambda * w                        (L2 penalty)
        V    <- rho * V + (1 - rho) * g^2             moving average of g^2 (as RMSprop)
        dx   = sqrt(U + eps) / sqrt(V + eps) * g      U: moving average of dx^2
        U    <- rho * U + (1 - rho) * dx^2
        w    <- w - lr * dx

    Why the ratio: in Newton's method the step H^{-1} g has the units of w, while a plain g/RMS(g)
    is unitless. Since H ~ g / dx, Zeiler approximates 1/H by RMS(dx) / RMS(g) with running
    averages; the paper has no learning rate (PyTorch's lr = 1.0 default reproduces it).
    eps starts the process (U = 0 at first) and keeps the division finite.

    Args:
        params: parameters or parameter groups.
        lr: scales dx before it is applied (default 1.0).
        rho: decay of both averages, in [0, 1] (default 0.9).
        eps: added inside both square roots (default 1e-6).
        weight_decay: L2 penalty lambda (default 0).
        maximize: ascend the objective.

    State per parameter: ``step``, ``square_avg`` (V), ``acc_delta`` (U).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, *, maximize: bool = False):
        check_lr(lr)
        check_number(rho, "rho")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho} (expected 0 <= rho <= 1)")
        check_non_negative(eps, "epsilon")
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        rho, eps = group["rho"], group["eps"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), dtype=scalar_dtype()))
            state["square_avg"] = Tensor._wrap(np.zeros_like(w))
            state["acc_delta"] = Tensor._wrap(np.zeros_like(w))
        state["step"].data += 1
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * w
        square_avg, acc_delta = state["square_avg"].data, state["acc_delta"].data
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad                  # V <- rho V + (1 - rho) g^2
        delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta                 # U <- rho U + (1 - rho) dx^2
        w += -group["lr"] * delta
