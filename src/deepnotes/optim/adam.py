"""Adam and AdamW (notes 004 Q21: Adam = momentum's first moment + RMSProp's second moment)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_betas, check_lr, check_non_negative, lerp_, scalar_dtype


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
        betas = check_betas(betas)
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
        lerp_(m, grad, 1 - beta1)                       # m <- beta1 m + (1 - beta1) g
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
        w += ((-lr / bias_correction1) * m) / denom     # PyTorch's addcdiv order


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


class Adamax(Optimizer):
    """Adamax (Kingma & Ba 2015, section 7): Adam with the infinity norm in place of the L2 norm.

    For each parameter w with gradient g, at step t (lr, beta1, beta2, eps, lambda):

        g   <- -g                                     if maximize
        g   <- g + lambda * w                         (L2 penalty)
        m   <- beta1 * m + (1 - beta1) * g            as Adam
        u   <- max(beta2 * u, |g| + eps)              exponentially weighted infinity norm
        w   <- w - lr / (1 - beta1^t) * m / u

    Adam's v is an average of |g|^2; generalising to |g|^p and letting p -> infinity turns
    (v)^(1/p) into this running maximum, which needs no bias correction (the max of decayed
    values is not biased towards 0 the way an average started at 0 is).

    Args: as :class:`Adam` (no amsgrad), default lr 2e-3.

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False):
        check_lr(lr)
        check_non_negative(eps, "epsilon")
        betas = check_betas(betas)
        check_non_negative(weight_decay, "weight_decay")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), dtype=scalar_dtype()))
            state["exp_avg"] = Tensor._wrap(np.zeros_like(w))
            state["exp_inf"] = Tensor._wrap(np.zeros_like(w))
        if group["maximize"]:
            grad = -grad
        state["step"].data += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * w
        m, u = state["exp_avg"].data, state["exp_inf"].data
        lerp_(m, grad, 1 - beta1)                       # m <- beta1 m + (1 - beta1) g
        u *= beta2
        np.maximum(u, np.abs(grad) + eps, out=u)        # u <- max(beta2 u, |g| + eps)
        bias_correction = 1 - beta1 ** float(state["step"].data)
        w += ((-lr / bias_correction) * m) / u


class NAdam(Optimizer):
    """NAdam (Dozat 2016): Adam with Nesterov momentum, with PyTorch's exact update rule.

    For each parameter w with gradient g, at step t (lr, beta1, beta2, eps, lambda, psi =
    momentum_decay):

        g     <- -g                                   if maximize
        g     <- g + lambda * w                       (or w <- w (1 - lr lambda) if decoupled)
        mu_t   = beta1 * (1 - 0.96^(t psi) / 2)       a momentum that warms up to beta1
        P_t    = prod_{i <= t} mu_i                   (state ``mu_product``)
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g^2
        d      = sqrt(v / (1 - beta2^t)) + eps
        w     <- w - lr (1 - mu_t) / (1 - P_t) * g / d
                   - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / d

    Nesterov's idea is to take the gradient step from the point momentum is about to carry us
    to: the update uses the momentum of the *next* step (mu_{t+1} m) plus the current gradient,
    each with its own bias correction, instead of Adam's m alone.

    Args: as :class:`Adam` (no amsgrad), default lr 2e-3, plus
        momentum_decay: psi (default 4e-3).
        decoupled_weight_decay: AdamW-style decay (NAdamW).

    State per parameter: ``step``, ``mu_product`` (P_t, 0-d), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False):
        check_lr(lr)
        check_non_negative(eps, "epsilon")
        betas = check_betas(betas)
        check_non_negative(weight_decay, "weight_decay")
        check_non_negative(momentum_decay, "momentum_decay")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, psi = group["weight_decay"], group["momentum_decay"]
        if not state:
            state["step"] = Tensor._wrap(np.zeros((), dtype=scalar_dtype()))
            state["mu_product"] = Tensor._wrap(np.ones((), dtype=scalar_dtype()))
            state["exp_avg"] = Tensor._wrap(np.zeros_like(w))
            state["exp_avg_sq"] = Tensor._wrap(np.zeros_like(w))
        if group["maximize"]:
            grad = -grad
        state["step"].data += 1
        step = float(state["step"].data)
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                w *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * w
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        state["mu_product"].data *= mu                  # kept in the step counters' dtype
        mu_product = float(state["mu_product"].data)
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        lerp_(m, grad, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * grad * grad
        denom = np.sqrt(v / (1 - beta2**step)) + eps
        w += ((-lr * (1.0 - mu) / (1.0 - mu_product)) * grad) / denom
        w += ((-lr * mu_next / (1.0 - mu_product * mu_next)) * m) / denom
