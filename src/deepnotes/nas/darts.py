"""DARTS: bi-level optimisation of the architecture alpha and the weights w (notes 004, DARTS).

The search problem is

    min_alpha  L_val(w*(alpha), alpha)     s.t.  w*(alpha) = argmin_w L_train(w, alpha)

solved by alternating one step on w (train split) with one step on alpha (validation split).

**First order** (DARTS-1st): take w*(alpha) ~ w, i.e. the alpha step uses grad_alpha L_val(w, a).

**Second order** (DARTS-2nd): approximate w* by one "unrolled" SGD step,
w' = w - xi * grad_w L_train(w, alpha), and differentiate through it (chain rule):

    grad_alpha L_val(w', alpha)
        = grad_alpha L_val(w', a) - xi * grad^2_{alpha,w} L_train(w, a) . grad_w' L_val(w', a)

The mixed second derivative times the vector v = grad_w' L_val(w', alpha) is approximated by a
central finite difference (the paper's eq. 8), with w+- = w +- eps v and eps = 0.01 / ||v||:

    grad^2_{alpha,w} L_train(w, a) . v ~ (grad_alpha L_train(w+, a) - grad_alpha L_train(w-, a))
                                          / (2 eps)

which costs two more forward/backward passes instead of a Hessian (error O(eps^2)). Our
autograd has no double backward, so the tests check this against the exact product that
PyTorch's ``create_graph=True`` gives on a tiny problem.

The functions below work on lists of parameters and zero-argument loss closures, so that the
same code serves the search network and the tiny test problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..nn import functional as F
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["DARTS", "Architect", "finite_difference_hvp", "gradients", "unrolled_arch_grad"]

LossFn = Callable[[], Tensor]


def gradients(loss_fn: LossFn, params: Sequence[Tensor], others: Sequence[Tensor] = ()
              ) -> list[np.ndarray]:
    """d loss / d p for every p in ``params`` (zeros where the loss does not depend on p), by one
    backward pass. The ``.grad`` of ``params`` and ``others`` is cleared before and after."""
    for p in (*params, *others):
        p.grad = None
    loss_fn().backward()
    out = [np.zeros_like(p.data) if p.grad is None else p.grad.data.copy() for p in params]
    for p in (*params, *others):
        p.grad = None
    return out


def _assign(params: Sequence[Tensor], arrays: Sequence[np.ndarray]) -> None:
    for p, a in zip(params, arrays):
        p.data[...] = a


def finite_difference_hvp(train_loss: LossFn, weights: Sequence[Tensor], arch: Sequence[Tensor],
                          vector: Sequence[np.ndarray], eps_scale: float = 0.01
                          ) -> list[np.ndarray]:
    """grad^2_{alpha,w} L_train(w, alpha) . v by a central difference (DARTS eq. 8).

    eps = eps_scale / ||v|| (the norm over all weight tensors together); the weights are moved
    to w + eps v and w - eps v and restored afterwards.
    """
    w0 = [p.data.copy() for p in weights]
    norm = float(np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in vector)))
    if norm == 0.0:
        return [np.zeros_like(a.data) for a in arch]
    eps = eps_scale / norm
    try:
        _assign(weights, [w + eps * v for w, v in zip(w0, vector)])
        g_plus = gradients(train_loss, arch, weights)
        _assign(weights, [w - eps * v for w, v in zip(w0, vector)])
        g_minus = gradients(train_loss, arch, weights)
    finally:
        _assign(weights, w0)
    return [(gp - gm) / (2 * eps) for gp, gm in zip(g_plus, g_minus)]


def unrolled_arch_grad(train_loss: LossFn, val_loss: LossFn, weights: Sequence[Tensor],
                       arch: Sequence[Tensor], xi: float, weight_decay: float = 0.0,
                       momentum: float = 0.0, momentum_buffers: Sequence[Any] | None = None,
                       eps_scale: float = 0.01) -> list[np.ndarray]:
    """DARTS' second-order gradient of L_val(w - xi * grad_w L_train(w, a), a) w.r.t. alpha.

    The virtual step is the weight optimiser's SGD step as DARTS takes it:
    w' = w - xi * (momentum * buf + grad_w L_train + weight_decay * w). The weight-decay and
    momentum terms do not depend on alpha, so they move w' but add nothing to the Hessian term.
    The weights are restored before returning.
    """
    w0 = [p.data.copy() for p in weights]
    try:
        g_train = gradients(train_loss, weights, arch)
        step = []
        for i, (w, g) in enumerate(zip(w0, g_train)):
            d = g + weight_decay * w
            buf = None if momentum_buffers is None else momentum_buffers[i]
            if momentum and buf is not None:
                d = d + momentum * np.asarray(getattr(buf, "data", buf))
            step.append(d)
        _assign(weights, [w - xi * d for w, d in zip(w0, step)])        # w'
        grads = gradients(val_loss, [*arch, *weights])
        g_arch, g_w_prime = grads[:len(arch)], grads[len(arch):]
    finally:
        _assign(weights, w0)
    hvp = finite_difference_hvp(train_loss, weights, arch, g_w_prime, eps_scale)
    return [ga - xi * h for ga, h in zip(g_arch, hvp)]


class Architect:
    """The alpha half of DARTS: Adam on the architecture parameters (DARTS' lr 3e-4,
    betas (0.5, 0.999), weight decay 1e-3), first or second order.

    ``step(x_train, y_train, x_val, y_val, xi, w_optimizer)``: one update of alpha. With
    ``second_order`` the weights' virtual step uses ``xi`` (DARTS: the current weight lr) and
    the momentum / weight decay of ``w_optimizer`` (an SGD) if given. Batch-norm running
    statistics touched by the extra passes are restored, so the step leaves w unchanged.
    ``penalty``: a term added to the validation loss of the alpha step (e.g. the expected cost,
    gdas.cost_loss).
    """

    def __init__(self, model: Any, second_order: bool = False, lr: float = 3e-4,
                 betas: tuple[float, float] = (0.5, 0.999), weight_decay: float = 1e-3,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
                 penalty: Callable[[], Tensor] | None = None):
        self.model, self.second_order, self.loss_fn = model, second_order, loss_fn
        self.penalty = penalty
        self.optimizer = Adam(model.arch_parameters(), lr=lr, betas=betas,
                              weight_decay=weight_decay)

    def _loss(self, x: Tensor, y: Tensor, penalty: bool = False) -> LossFn:
        def fn() -> Tensor:
            loss = self.loss_fn(self.model(x), y)
            if penalty and self.penalty is not None:
                loss = loss + self.penalty()
            return loss
        return fn

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor,
             xi: float = 0.0, w_optimizer: Any = None) -> None:
        arch, weights = self.model.arch_parameters(), self.model.weights()
        if self.second_order:
            buffers = [b.data.copy() for b in self.model.buffers()]
            momentum, wd, bufs = 0.0, 0.0, None
            if w_optimizer is not None:
                group = w_optimizer.param_groups[0]
                momentum, wd = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
                bufs = [w_optimizer.state.get(p, {}).get("momentum_buffer") for p in weights]
            grads = unrolled_arch_grad(self._loss(x_train, y_train), self._loss(x_val, y_val, True),
                                       weights, arch, xi, wd, momentum, bufs)
            for b, saved in zip(self.model.buffers(), buffers):
                b.data[...] = saved
            for p in weights:
                p.grad = None
        else:
            grads = gradients(self._loss(x_val, y_val, True), arch, weights)
        for a, g in zip(arch, grads):
            a.grad = Tensor._wrap(g.astype(a.data.dtype))
        self.optimizer.step()
        for a in arch:
            a.grad = None


#: The issue's name for it: ``DARTS(model, second_order=True)``.
DARTS = Architect
