"""Adam and AdamW (notes 004 Q21: Adam = momentum's first moment + RMSProp's second moment)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative, check_number, scalar_dtype


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with PyTorch's exact update rule.

    For each parameter w with gradient g, at step t = 1, 2, ... (lr, beta1, beta2, eps,
    lambda = weight_decay):

        g   <- -g                                     if maximize
        g   <- g + lambda * w                         (L2 penalty; AdamW decays w instead)
        m   <- beta1 * m + (1 - beta1) * g            first moment: momentum
        v   <- beta2 * v + (1 - beta2) * g^2          second moment: RMSProp
        v_max <- max(v_max, v)                        (amsgrad only; v_max replaces v below)
        w   <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Bias correction: m and v start at 0, so early on they are biased towards 0, by exactly the
    factors (1 - beta^t) (e.g. m_1 = (1 - beta1) g_1); dividing by them gives unbiased estimates
    at every step. Each coordinate then moves by about lr * mean(g) / rms(g): the step size is
    invariant to the gradient's scale (notes 004 Q21).

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty lambda (default 0).
        amsgrad: use the running maximum of v (Reddi et al. 2018).
        maximize: ascend the objective.
        decoupled_weight_decay: AdamW's rule, w <- w (1 - lr lambda) before the update, instead
            of adding lambda w to the gradient (where Adam's normalisation would shrink it).

    State per parameter: ``step`` (a 0-d float tensor), ``exp_avg`` (m), ``exp_avg_sq`` (v) and,
    with amsgrad, ``max_exp_avg_sq``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        check_lr(lr)
        check_non_negative(eps, "epsilon")
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas}")
        for index, beta in enumerate(betas):
            check_number(beta, f"betas[{index}]")
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), dtype=scalar_dtype()))
            state["exp_avg"] = Tensor._wrap(np.zeros_like(w))
            state["exp_avg_sq"] = Tensor._wrap(np.zeros_like(w))
            if amsgrad:
                state["max_exp_avg_sq"] = Tensor._wrap(np.zeros_like(w))
        if group["maximize"]:
            grad = -grad
        state["step"].data += 1
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                w *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * w
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        # m <- beta1 m + (1 - beta1) g, written as PyTorch's lerp(m, g, weight) to round alike
        weight = 1 - beta1
        if weight < 0.5:
            m += weight * (grad - m)
        else:
            m[...] = grad - (grad - m) * (1 - weight)
        v *= beta2
        v += (1 - beta2) * grad * grad
        step = float(state["step"].data)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        if amsgrad:
            v_max = state["max_exp_avg_sq"].data
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
        w += (-lr / bias_correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): w <- w (1 - lr lambda), then
    the Adam step on the raw gradient. Default weight_decay 1e-2. See :class:`Adam`."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
