"""L-BFGS with an optional strong-Wolfe line search (notes 004 Q20: quasi-Newton methods).

Newton's method steps by -H^{-1} g, which needs the Hessian: n^2 numbers to store and n^3 work to
invert, impossible for a network (notes 004 Q20). BFGS builds an approximation of H^{-1} from how
the gradient changed along the steps already taken; L-BFGS keeps only the last m pairs

    s_k = w_{k+1} - w_k,        y_k = g_{k+1} - g_k          (y_k ~ H s_k: the secant condition)

and never forms a matrix: H^{-1} g is computed from them in O(m n) by the *two-loop recursion*
(Nocedal & Wright, Numerical Optimization, Algorithm 7.4). With rho_k = 1 / (y_k . s_k):

    q = g
    for k = newest ... oldest:   a_k = rho_k s_k . q;     q <- q - a_k y_k
    r = gamma q                  gamma = (s . y) / (y . y) of the newest pair: the scale of H^{-1}
    for k = oldest ... newest:   b = rho_k y_k . r;       r <- r + (a_k - b) s_k
    direction d = -r

A pair is kept only when y . s > 1e-10 (curvature along s is positive), which keeps the
approximation positive definite, so d is a descent direction.

The step length is ``lr`` (``lr * min(1, 1 / ||g||_1)`` on the very first iteration), or comes from
a line search that finds t satisfying the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5
and 3.6), with phi(t) = f(w + t d):

    phi(t) <= phi(0) + c1 t phi'(0)              sufficient decrease (Armijo), c1 = 1e-4
    |phi'(t)| <= c2 |phi'(0)|                    curvature: t is near a stationary point, c2 = 0.9

This module follows the choices of minFunc (M. Schmidt), which PyTorch's LBFGS also follows, so
both produce the same iterates: trial steps come from the minimiser of the cubic that
interpolates phi and phi' at two points, the bracketing phase extrapolates within
[t + 0.01 (t - t_prev), 10 t], and the zoom phase keeps trial points at least 10% of the bracket
away from its ends when progress stalls.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, check_lr, check_number

Evaluate = Callable[[float], tuple[float, np.ndarray]]


def cubic_minimizer(t1: float, f1: float, g1: float, t2: float, f2: float, g2: float,
                    bounds: tuple[float, float] | None = None) -> float:
    """Minimiser of the cubic through (t1, f1) and (t2, f2) with slopes g1, g2, clipped to
    ``bounds`` (default: the interval between t1 and t2).

    Writing the cubic's derivative in terms of
        d1 = g1 + g2 - 3 (f1 - f2) / (t1 - t2),     d2 = sqrt(d1^2 - g1 g2),
    its local minimum lies at  t2 - (t2 - t1) (g2 + d2 - d1) / (g2 - g1 + 2 d2)  (for t1 <= t2;
    symmetric otherwise). If d1^2 < g1 g2 the cubic has no minimum: take the middle of bounds.
    (So does a degenerate cubic whose formula divides by zero, where PyTorch's gives NaN.)
    """
    low, high = bounds if bounds is not None else (min(t1, t2), max(t1, t2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2.0
    d2 = math.sqrt(d2_square)
    if t1 <= t2:
        numerator, denominator, far, near = g2 + d2 - d1, g2 - g1 + 2 * d2, t2, t1
    else:
        numerator, denominator, far, near = g1 + d2 - d1, g1 - g2 + 2 * d2, t1, t2
    if denominator == 0:
        return (low + high) / 2.0
    t_min = far - (far - near) * (numerator / denominator)
    return min(max(t_min, low), high)


class _Point:
    """One trial of the line search: step t, phi(t), the full gradient, phi'(t) = g . d."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t: float, f: float, g: np.ndarray, gtd: float):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def strong_wolfe(evaluate: Evaluate, t: float, d: np.ndarray, f: float, g: np.ndarray,
                 gtd: float, c1: float = 1e-4, c2: float = 0.9,
                 tolerance_change: float = 1e-9, max_ls: int = 25
                 ) -> tuple[float, np.ndarray, float, int]:
    """Find a step t along d that satisfies the strong Wolfe conditions.

    Args:
        evaluate: t -> (phi(t), gradient at w + t d).
        t: the first trial step.
        d: the search direction; f, g, gtd: phi(0), the gradient and phi'(0) = g . d < 0.
        c1, c2: the Wolfe constants; tolerance_change: stop when the bracket is shorter than
            this (measured in parameter change, |dt| * max|d|); max_ls: at most this many
            evaluations.

    Returns:
        (phi(t), gradient at t, t, number of evaluations).
    """
    d_norm = float(np.abs(d).max())
    start = _Point(0.0, f, g.copy(), gtd)
    f_new, g_new = evaluate(t)
    evals, ls_iter = 1, 0
    new = _Point(t, f_new, g_new, float(g_new @ d))
    prev = start
    bracket: list[_Point] = []
    done = False
    # Phase 1, bracketing: grow t until [prev, new] must contain an acceptable step.
    while ls_iter < max_ls:
        if new.f > f + c1 * new.t * gtd or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]           # too far: phi rose above the Armijo line
            break
        if abs(new.gtd) <= -c2 * gtd:
            bracket, done = [new], True     # both conditions hold
            break
        if new.gtd >= 0:
            bracket = [prev, new]           # the slope turned positive: a minimum lies inside
            break
        t_next = cubic_minimizer(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd,
                                 bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev = new
        f_new, g_new = evaluate(t_next)
        evals += 1
        ls_iter += 1
        new = _Point(t_next, f_new, g_new, float(g_new @ d))
    if ls_iter >= max_ls:
        bracket = [start, new]
    # Phase 2, zoom: shrink the bracket [low, high] (phi(low) <= phi(high)) until a point in it
    # satisfies both conditions.
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient_progress = False
    while not done and ls_iter < max_ls:
        a, b = bracket[0].t, bracket[1].t
        if abs(b - a) * d_norm < tolerance_change:
            break
        t = cubic_minimizer(a, bracket[0].f, bracket[0].gtd, b, bracket[1].f, bracket[1].gtd)
        lo, hi = min(a, b), max(a, b)
        margin = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < margin:    # the interpolant sits next to an end of the bracket
            if insufficient_progress or t >= hi or t <= lo:
                t = hi - margin if abs(t - hi) < abs(t - lo) else lo + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evals += 1
        ls_iter += 1
        new = _Point(t, f_new, g_new, float(g_new @ d))
        if new.f > f + c1 * t * gtd or new.f >= bracket[low].f:
            bracket[high] = new                  # no sufficient decrease: new upper end
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if abs(new.gtd) <= -c2 * gtd:
                done = True
            elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]     # the minimum lies on the other side of new
            bracket[low] = new
    best = bracket[low]
    return best.f, best.g, best.t, evals


class LBFGS(Optimizer):
    """L-BFGS (Liu & Nocedal 1989), with the update rule and stopping tests of PyTorch's.

    One ``step(closure)`` runs up to ``max_iter`` iterations of: direction d from the two-loop
    recursion (module docstring), step length t (``lr``, or a strong-Wolfe line search), move
    w <- w + t d, and re-evaluate. It stops early when

        max |g| <= tolerance_grad                     (first-order optimality),
        g . d > -tolerance_change                     (d is no longer a descent direction),
        max |t d| <= tolerance_change  or  |f_new - f_old| < tolerance_change   (no progress),
        ``max_eval`` evaluations of the closure have been made.

    The history (s, y pairs) persists across ``step`` calls. All parameters form one vector, so
    there is a single parameter group.

    Args:
        params: the parameters (one group).
        lr: step length (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: first-order optimality tolerance (default 1e-7).
        tolerance_change: tolerance on the change of the loss and the parameters (default 1e-9).
        history_size: m, the number of (s, y) pairs kept (default 100).
        line_search_fn: ``None`` (fixed step lr) or ``"strong_wolfe"``.

    ``step(closure)`` needs a closure that zeroes the gradients, computes the loss, calls
    ``backward()`` and returns the loss; it returns the loss of the first evaluation.

    State (on the first parameter, as PyTorch): ``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs`` (the y's), ``old_stps`` (the s's), ``ro`` (the rho's), ``H_diag`` (gamma),
    ``prev_flat_grad``, ``prev_loss``, ``al``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        check_lr(lr)
        _check_positive_int(max_iter, "max_iter")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        _check_positive_int(max_eval, "max_eval")
        _check_positive_int(history_size, "history_size")
        check_number(tolerance_grad, "tolerance_grad")
        check_number(tolerance_change, "tolerance_change")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r}")
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups) "
                             f"(expected 1 group, got {len(self.param_groups)})")
        self._params = self.param_groups[0]["params"]

    # -- the parameters as one flat vector ----------------------------------------------------
    def _flat_grad(self) -> np.ndarray:
        return np.concatenate([np.zeros(p.data.size, dtype=p.data.dtype) if p.grad is None
                               else p.grad.data.reshape(-1) for p in self._params])

    def _add_step(self, t: float, d: np.ndarray) -> None:
        """w <- w + t d, for the flat vector d cut into the parameters' shapes."""
        offset = 0
        for p in self._params:
            n = p.data.size
            p.data += t * d[offset:offset + n].reshape(p.data.shape)
            p._version += 1
            offset += n

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, np.ndarray]:
        with enable_grad():
            loss = closure()
        return loss, float(loss), self._flat_grad()

    def _evaluate_at(self, closure: Callable[[], Any], t: float,
                     d: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, gradient) at w + t d, leaving w unchanged."""
        saved = [p.data.copy() for p in self._params]
        self._add_step(t, d)
        _, loss, grad = self._evaluate(closure)
        for p, data in zip(self._params, saved):
            p.data[...] = data
        return loss, grad

    @staticmethod
    def _two_loop(grad: np.ndarray, old_stps: list[np.ndarray], old_dirs: list[np.ndarray],
                  ro: list[float], h_diag: float, al: list[Any]) -> np.ndarray:
        """d = -H g for the L-BFGS inverse-Hessian approximation H (module docstring)."""
        q = -grad
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = float(old_stps[i] @ q) * ro[i]
            q += -al[i] * old_dirs[i]
        r = q * h_diag
        for i in range(len(old_dirs)):
            beta = float(old_dirs[i] @ r) * ro[i]
            r += (al[i] - beta) * old_stps[i]
        return r

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; return the loss before the first one."""
        if closure is None:
            raise RuntimeError("LBFGS.step() needs a closure that re-evaluates the loss")
        with no_grad():
            return self._step(closure)

    def _step(self, closure: Callable[[], Any]) -> Any:
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, loss, grad = self._evaluate(closure)
        evals = 1
        state["func_evals"] += 1
        if np.abs(grad).max() <= tolerance_grad:
            return orig_loss

        # the history, as plain arrays and floats while we work
        d = _array(state.get("d"))
        t = state.get("t")
        old_dirs = [_array(y) for y in state.get("old_dirs", [])]
        old_stps = [_array(s) for s in state.get("old_stps", [])]
        ro = list(state.get("ro", []))
        h_diag = state.get("H_diag", 1.0)
        prev_grad = _array(state.get("prev_flat_grad"))
        prev_loss = state.get("prev_loss")
        al = state.get("al")

        n_iter, opt_cond = 0, False
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            # -- direction ------------------------------------------------------------------
            if state["n_iter"] == 1:
                d = -grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = grad - prev_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:                      # keep the pair only if curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                if al is None:
                    al = [None] * history_size
                d = self._two_loop(grad, old_stps, old_dirs, ro, h_diag, al)
            prev_grad = grad.copy()
            prev_loss = loss
            # -- step length ----------------------------------------------------------------
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(np.abs(grad).sum())) * lr
            else:
                t = lr
            gtd = float(grad @ d)
            if gtd > -tolerance_change:             # not a descent direction any more
                break
            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                loss, grad, t, ls_evals = strong_wolfe(
                    lambda step, d=d: self._evaluate_at(closure, step, d), t, d, loss, grad,
                    gtd, tolerance_change=tolerance_change, max_ls=max_eval - evals)
                self._add_step(t, d)
                opt_cond = np.abs(grad).max() <= tolerance_grad
            else:
                self._add_step(t, d)
                if n_iter != max_iter:              # the last iteration's loss is not needed
                    _, loss, grad = self._evaluate(closure)
                    opt_cond = np.abs(grad).max() <= tolerance_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            # -- stopping tests -------------------------------------------------------------
            if n_iter == max_iter or evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = Tensor._wrap(d)
        state["t"] = t
        state["old_dirs"] = [Tensor._wrap(y) for y in old_dirs]
        state["old_stps"] = [Tensor._wrap(s) for s in old_stps]
        state["ro"] = ro
        state["H_diag"] = h_diag
        state["prev_flat_grad"] = Tensor._wrap(prev_grad)
        state["prev_loss"] = prev_loss
        if al is not None:
            state["al"] = al
        return orig_loss


def _array(value: Any) -> Any:
    """The ndarray inside a state entry (a Tensor, an array, a torch tensor), or None."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.data
    return np.asarray(value)


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
