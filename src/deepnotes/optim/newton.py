"""Newton's method with an exact (finite-difference) Hessian, for small problems (notes 004 Q20).

Newton's method minimises the second-order Taylor model of the loss around w,

    f(w + u) ~ f(w) + g . u + 1/2 u^T H u,

whose minimiser is u = -H^{-1} g (the notes' one-dimensional x = x0 - f'(x0) / f''(x0)). On a
quadratic the model is exact, so one step with lr = 1 lands on the minimum, whatever the
conditioning; near any minimum with H positive definite, convergence is quadratic (the number of
correct digits doubles each step). The price is why deep learning does not use it (notes 004 Q20):
n^2 numbers to store and O(n^3) work to solve, for n parameters. Here n is meant to be small
(logistic regression, toy problems, a few thousand parameters at most).

How the Hessian is built. deepnotes has no double backward, so H is not obtained from autograd;
it is built column by column from central differences of the *gradient* (which autograd does give):

    H[:, j] = (g(w + h e_j) - g(w - h e_j)) / (2 h),     then H <- (H + H^T) / 2.

The error is O(h^2) times third derivatives, plus rounding of order eps_machine * |g| / h; for a
quadratic the gradient is affine, so the columns are exact up to rounding. Cost: 2n + 1 closure
evaluations per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_non_negative


class Newton(Optimizer):
    """Damped Newton's method: w <- w - lr * (H + damping * I)^{-1} g (not in PyTorch).

    ``damping`` (Levenberg's trick) adds lambda to every eigenvalue of H: it makes an indefinite
    or singular H usable and moves the step from Newton's (lambda -> 0) towards gradient descent
    with step lr / lambda (lambda -> infinity). All parameters form one vector and one Hessian,
    so there is a single parameter group.

    Args:
        params: the parameters (one group).
        lr: step scale (default 1: the full Newton step).
        damping: lambda >= 0 added to the Hessian's diagonal (default 0).
        fd_eps: h, the finite-difference step for the Hessian's columns (default 1e-5).

    ``step(closure)`` needs a closure that zeroes the gradients, computes the loss, calls
    ``backward()`` and returns the loss; it is called 2n + 1 times. Returns the loss at the start.

    State (on the first parameter): ``n_iter``, ``func_evals``, ``hessian`` (the last H, an
    (n, n) tensor, to look at).

    Example::

        opt = optim.Newton(model.parameters())
        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(closure)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, damping: float = 0.0,
                 fd_eps: float = 1e-5):
        check_lr(lr)
        check_non_negative(damping, "damping")
        check_non_negative(fd_eps, "fd_eps")
        if fd_eps == 0:
            raise ValueError("Invalid fd_eps value: 0 (the finite-difference step must be > 0)")
        super().__init__(params, dict(lr=lr, damping=damping, fd_eps=fd_eps))
        if len(self.param_groups) != 1:
            raise ValueError("Newton doesn't support per-parameter options (parameter groups) "
                             f"(expected 1 group, got {len(self.param_groups)})")
        self._params = self.param_groups[0]["params"]

    def _flat_grad(self) -> np.ndarray:
        return np.concatenate([np.zeros(p.data.size) if p.grad is None
                               else p.grad.data.reshape(-1).astype(np.float64)
                               for p in self._params])

    def _gradient(self, closure: Callable[[], Any]) -> tuple[Any, np.ndarray]:
        with enable_grad():
            loss = closure()
        return loss, self._flat_grad()

    def hessian(self, closure: Callable[[], Any]) -> np.ndarray:
        """The (n, n) Hessian at the current parameters by central differences of the gradient
        (2n closure calls; the parameters are left unchanged)."""
        h = self.param_groups[0]["fd_eps"]
        columns = []
        for p in self._params:
            for i in range(p.data.size):
                original = p.data.flat[i]
                p.data.flat[i] = original + h
                _, grad_plus = self._gradient(closure)
                p.data.flat[i] = original - h
                _, grad_minus = self._gradient(closure)
                p.data.flat[i] = original
                columns.append((grad_plus - grad_minus) / (2 * h))
        hessian = np.stack(columns, axis=1)                  # (n, n), column j = dg / dw_j
        return (hessian + hessian.T) / 2

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """One Newton step; returns the loss before it."""
        if closure is None:
            raise RuntimeError("Newton.step() needs a closure that re-evaluates the loss")
        group = self.param_groups[0]
        with no_grad():
            loss, grad = self._gradient(closure)
            hessian = self.hessian(closure)
            system = hessian + group["damping"] * np.eye(hessian.shape[0])
            try:
                direction = np.linalg.solve(system, -grad)   # (H + lambda I) u = -g
            except np.linalg.LinAlgError as err:
                raise RuntimeError("Newton: the Hessian plus damping is singular; use "
                                   "damping > 0") from err
            offset = 0
            for p in self._params:
                n = p.data.size
                p.data += group["lr"] * direction[offset:offset + n].reshape(p.data.shape)
                p._version += 1
                offset += n
        state = self.state[self._params[0]]
        state["n_iter"] = state.get("n_iter", 0) + 1
        state["func_evals"] = state.get("func_evals", 0) + 1 + 2 * grad.size
        state["hessian"] = Tensor._wrap(hessian)
        return loss
