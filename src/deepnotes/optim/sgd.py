"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (notes 004 Q21)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative


class SGD(Optimizer):
    """SGD, with PyTorch's exact update rule.

    For each parameter w with gradient g, at step t (lr = learning rate, mu = momentum,
    tau = dampening, lambda = weight_decay):

        g <- -g                            if maximize
        g <- g + lambda * w                (L2 weight decay, if lambda != 0)
        b <- g                             at the first step, then
        b <- mu * b + (1 - tau) * g        (momentum buffer, if mu != 0)
        g <- g + mu * b  (nesterov)   or   g <- b
        w <- w - lr * g

    Plain SGD (mu = 0) is w <- w - lr * g (notes 004 Q21). With momentum the step direction is
    a running sum of past gradients, which damps oscillations across a ravine and speeds travel
    along it. Note the convention: PyTorch's buffer is b = mu b + g (no (1 - mu) factor), so the
    effective step is about lr / (1 - mu) times the gradient. The notes' exponential moving
    average m = beta m + (1 - beta) g is ``dampening = momentum`` (then b differs from it only
    at the first step, where PyTorch's b starts at g itself rather than (1 - beta) g).
    Nesterov evaluates the momentum step "ahead": g + mu * b instead of b.

    ``ema_momentum=True`` (not in PyTorch) is the notes' form exactly (notes 004 Q21):

        v <- mu * v + (1 - mu) * g         with v = 0 before the first step
        w <- w - lr * v

    v is an exponential moving average of the gradients, so its scale is that of g and lr keeps
    its meaning whatever mu is (PyTorch's b is about g / (1 - mu) in steady state). Unrolled,
    v_t = (1 - mu) sum_k mu^(t-k) g_k = (1 - mu) b_t with PyTorch's undampened buffer b, so this
    is exactly PyTorch's ``SGD(momentum=mu, lr=lr * (1 - mu))``: the two forms differ only in
    how lr is scaled. The first steps are shrunk by (1 - mu^t) (v starts at 0), which Adam's bias
    correction would undo; plain EMA momentum does not. No dampening or Nesterov with it.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3).
        momentum: mu >= 0 (default 0).
        dampening: tau, damping of the gradient in the momentum buffer (default 0).
        weight_decay: L2 penalty lambda >= 0 (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend the objective instead of descending it.
        ema_momentum: use the EMA form v = mu v + (1 - mu) g above (deepnotes only).

    State per parameter: ``momentum_buffer`` (only when momentum != 0).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False, ema_momentum: bool = False):
        check_lr(lr)
        check_non_negative(momentum, "momentum")
        check_non_negative(weight_decay, "weight_decay")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(expected momentum > 0 and dampening = 0, got momentum={momentum}, "
                             f"dampening={dampening})")
        if ema_momentum and (nesterov or dampening != 0):
            raise ValueError("ema_momentum=True takes no dampening and no Nesterov momentum, got "
                             f"dampening={dampening}, nesterov={nesterov}")
        if ema_momentum and not momentum <= 1:
            raise ValueError(f"ema_momentum=True needs momentum in [0, 1], got {momentum}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        if ema_momentum:  # only then, so that groups and state dicts stay PyTorch's otherwise
            defaults["ema_momentum"] = True
        super().__init__(params, defaults)

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        w = param.data
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * w
        if group.get("ema_momentum", False):
            if momentum != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    state["momentum_buffer"] = buf = Tensor._wrap(np.zeros_like(w))
                buf.data *= momentum                        # v <- mu v + (1 - mu) g
                buf.data += (1 - momentum) * grad
                grad = buf.data
        elif momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                state["momentum_buffer"] = buf = Tensor._wrap(grad.copy())
            else:
                buf.data *= momentum
                dampening = group["dampening"]
                buf.data += grad if dampening == 0 else (1 - dampening) * grad
            grad = grad + momentum * buf.data if group["nesterov"] else buf.data
        w -= group["lr"] * grad
