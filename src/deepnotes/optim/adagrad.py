"""AdaGrad (Duchi, Hazan & Singer 2011): a learning rate per coordinate, from the sum of its
squared gradients (notes 004 Q21)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative, scalar_dtype


class Adagrad(Optimizer):
    """AdaGrad, with PyTorch's exact update rule.

    For each parameter w with gradient g, at step t = 1, 2, ... (lr, lambda = weight_decay):

        g   <- -g                                     if maximize
        g   <- g + lambda * w                         (L2 penalty)
        lr_t = lr / (1 + (t - 1) * lr_decay)
        V   <- V + g^2                                V_0 = initial_accumulator_value
        w   <- w - lr_t * g / (sqrt(V) + eps)

    V_t = sum_{tau <= t} g_tau^2 is the notes' second moment (notes 004 Q21): a coordinate with
    large or frequent gradients gets a small step and a rarely updated one (a rare feature) a large
    step. V only grows, so the effective rate lr / sqrt(V_t) decays like 1/sqrt(t) and can stall
    training too early: RMSprop and Adam replace the sum with a moving average. (The notes write
    eps inside the square root; PyTorch, and this class, add it outside.)

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-2).
        lr_decay: 1/t-style decay of lr over steps (default 0).
        weight_decay: L2 penalty lambda (default 0).
        initial_accumulator_value: V_0, the starting value of the sum (default 0).
        eps: added to the denominator (default 1e-10).
        maximize: ascend the objective.

    State per parameter (created for every parameter at construction, as PyTorch): ``step``
    (0-d float tensor) and ``sum`` (V).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False):
        check_lr(lr)
        check_non_negative(lr_decay, "lr_decay")
        check_non_negative(weight_decay, "weight_decay")
        check_non_negative(initial_accumulator_value, "initial_accumulator_value")
        check_non_negative(eps, "epsilon")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = self._initial_state(p, group)

    @staticmethod
    def _initial_state(param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": Tensor._wrap(np.zeros((), dtype=scalar_dtype())),
                "sum": Tensor._wrap(np.full_like(param.data,
                                                 group["initial_accumulator_value"]))}

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        if not state:  # a parameter group added after construction
            state.update(self._initial_state(param, group))
        state["step"].data += 1
        step = float(state["step"].data)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * w
        lr_t = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        total = state["sum"].data
        total += grad * grad                                  # V <- V + g^2
        w += (-lr_t * grad) / (np.sqrt(total) + group["eps"])     # PyTorch's addcdiv order
