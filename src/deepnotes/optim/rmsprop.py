"""RMSprop (Hinton, Coursera lecture 6e, 2012): AdaGrad with a moving average of g^2 instead of
the sum (notes 004 Q21)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative, lerp_, scalar_dtype


class RMSprop(Optimizer):
    """RMSprop, with PyTorch's exact update rule.

    For each parameter w with gradient g (lr, alpha, eps, mu = momentum, lambda = weight_decay):

        g   <- -g                                     if maximize
        g   <- g + lambda * w                         (L2 penalty)
        V   <- alpha * V + (1 - alpha) * g^2          second moment, a moving average
        a   <- sqrt(V) + eps                          or, if centered,
        m   <- alpha * m + (1 - alpha) * g            first moment
        a   <- sqrt(V - m^2) + eps                    a running standard deviation of g
        b   <- mu * b + g / a;   w <- w - lr * b      if mu > 0, else
        w   <- w - lr * g / a

    V_t = beta2 V_{t-1} + (1 - beta2) g_t^2 is the notes' RMSProp (notes 004 Q21, with
    beta2 = alpha): unlike AdaGrad's growing sum, the average forgets old gradients, so the step
    size does not decay to zero. ``centered`` divides by the variance of g instead of its second
    moment (Graves 2013). V and m start at 0 and, unlike Adam, are not bias-corrected.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the averages (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty lambda (default 0).
        momentum: mu, momentum on the normalised step (default 0).
        centered: normalise by the estimated variance of g.
        maximize: ascend the objective.

    State per parameter: ``step``, ``square_avg`` (V), ``momentum_buffer`` (b, if momentum > 0),
    ``grad_avg`` (m, if centered).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False):
        check_lr(lr)
        check_non_negative(eps, "epsilon")
        check_non_negative(momentum, "momentum")
        check_non_negative(weight_decay, "weight_decay")
        check_non_negative(alpha, "alpha")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), dtype=scalar_dtype()))
            state["square_avg"] = Tensor._wrap(np.zeros_like(w))
            if momentum > 0:
                state["momentum_buffer"] = Tensor._wrap(np.zeros_like(w))
            if group["centered"]:
                state["grad_avg"] = Tensor._wrap(np.zeros_like(w))
        if group["maximize"]:
            grad = -grad
        state["step"].data += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * w
        square_avg = state["square_avg"].data
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad                # V <- alpha V + (1 - alpha) g^2
        if group["centered"]:
            grad_avg = state["grad_avg"].data
            lerp_(grad_avg, grad, 1 - alpha)                   # m <- alpha m + (1 - alpha) g
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"].data
            buf *= momentum
            buf += grad / avg                                  # b <- mu b + g / a
            w += -group["lr"] * buf
        else:
            w += (-group["lr"] * grad) / avg
