"""Logistic regression by hand: loss, gradient and Hessian derived, then gradient descent or
Newton's method (notes 004 Q22 "手推逻辑回归", Q25 on why cross-entropy, Q26 on L1/L2, Q20/Q21
on first- vs second-order optimisers).

scikit-learn's conventions: ``fit`` / ``predict`` / ``predict_proba`` / ``decision_function``,
``coef_`` (K', d) and ``intercept_`` (K',) with K' = 1 for two classes, ``classes_``, ``n_iter_``;
``C`` is the inverse regularisation strength and the intercept is never penalised.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before reaching ``tol``."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])                       # no overflow for very negative z
    out[~pos] = ez / (1.0 + ez)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class LogisticRegression:
    r"""Binary and multinomial logistic regression with an L2, L1 or no penalty.

    Objective, with x~ = [x, 1] (the intercept as a last, unpenalised weight) and the
    parameters as rows theta_k = [w_k, b_k]::

        J(theta) = C * sum_i loss_i + R(W),   R = 1/2 ||W||_F^2 (l2) | ||W||_1 (l1) | 0 (None)

    (without a penalty C only scales J and is ignored).

    **Binary** (K' = 1, y in {0, 1}): z_i = w.x_i + b, p_i = sigma(z_i),
    loss_i = -[y_i log p_i + (1 - y_i) log(1 - p_i)] = softplus(z_i) - y_i z_i.
    Since d softplus(z)/dz = sigma(z) = p (equivalently, dL/dp * dp/dz =
    (p - y)/(p(1 - p)) * p(1 - p): the sigmoid's slope cancels, notes Q22/Q25)::

        dloss_i/dz_i = p_i - y_i            grad_theta J = C X~^T (p - y) + [w, 0]
        d2loss_i/dz_i^2 = p_i (1 - p_i)     H = C X~^T diag(p (1 - p)) X~ + diag(1,..,1, 0)

    H is positive semi-definite (a sum of x~ x~^T with weights p(1-p) >= 0): J is convex, and
    strictly convex with the L2 term, so there is one minimum, which every solver finds.

    **Multinomial** (K >= 3 classes, Y one-hot): Z = X~ Theta^T (N, K), P = softmax(Z),
    loss_i = -sum_k Y_ik log P_ik = logsumexp(Z_i) - sum_k Y_ik Z_ik. With
    dP_ik/dZ_il = P_ik (delta_kl - P_il)::

        dloss_i/dZ_ik = P_ik - Y_ik             grad_Theta J = C (P - Y)^T X~ + [W, 0]
        H[(k, :), (l, :)] = C sum_i P_ik (delta_kl - P_il) x~_i x~_i^T + delta_kl diag(1,..,1, 0)

    Adding one vector to every theta_k leaves P unchanged, so the unpenalised intercepts are only
    defined up to a common constant (H is singular along it); like scikit-learn, the solution with
    sum_k b_k = 0 is returned (and sum_k w_k = 0 holds at the L2 optimum).

    **Solvers.**

    * ``"gd"``: gradient descent with Nesterov momentum and step 1/L, where
      L = C c sigma_max(X~)^2 + 1 bounds the Hessian's largest eigenvalue (c = 1/4 binary:
      p(1 - p) <= 1/4; c = 1/2 multinomial: diag(P) - P P^T <= 1/2 I), restarting the momentum
      whenever J goes up. With ``penalty="l1"`` the step is proximal (FISTA): a gradient step on the
      smooth part, then soft-thresholding w <- sign(w) max(|w| - t, 0), which sets weights exactly
      to zero (the sparsity of L1, notes Q26).
    * ``"newton"``: theta <- theta - alpha H^+ g with a backtracking (Armijo) line search;
      quadratic convergence near the optimum, a few iterations in all (notes Q20 on why deep
      nets do not do this: H has (#params)^2 entries). Smooth penalties only.

    Both stop when the largest entry of the (proximal) gradient is below ``tol``.

    Args:
        penalty: ``"l2"``, ``"l1"`` or None.
        C: inverse regularisation strength (> 0).
        solver: ``"gd"`` or ``"newton"``.
        tol: stopping tolerance on the gradient's max-norm.
        max_iter: iteration cap (a :class:`ConvergenceWarning` when it is hit).
        fit_intercept: learn b (unpenalised) or fix it at 0.
    """

    def __init__(self, penalty: str | None = "l2", *, C: float = 1.0, solver: str = "newton",
                 tol: float = 1e-6, max_iter: int = 1000, fit_intercept: bool = True):
        self.penalty = penalty
        self.C = C
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept

    # -- the objective ---------------------------------------------------------------------------
    def _design(self, X: np.ndarray) -> np.ndarray:
        if self.fit_intercept:
            return np.hstack([X, np.ones((len(X), 1))])  # X~ (N, d + 1)
        return X

    def _penalty_mask(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.ones(shape)
        if self.fit_intercept:
            mask[:, -1] = 0.0  # the intercept column is not penalised
        return mask

    def _smooth(self, theta: np.ndarray, Xt: np.ndarray, T: np.ndarray, C: float,
                mask: np.ndarray) -> tuple[float, np.ndarray]:
        """Smooth part of J (data term, plus 1/2||W||^2 for l2) and its gradient."""
        Z = Xt @ theta.T                                                  # (N, K')
        if theta.shape[0] == 1:
            z = Z[:, 0]
            data = np.sum(np.logaddexp(0.0, z) - T[:, 0] * z)            # softplus(z) - y z
            residual = (_sigmoid(z) - T[:, 0])[:, None]                   # (N, 1): p - y
        else:
            logsum = np.logaddexp.reduce(Z, axis=1)                       # (N,)
            data = np.sum(logsum - np.sum(T * Z, axis=1))
            residual = np.exp(Z - logsum[:, None]) - T                    # (N, K): P - Y
        value, grad = C * data, C * residual.T @ Xt                        # (K', d + 1)
        if self.penalty == "l2":
            W = theta * mask
            value += 0.5 * np.sum(W * W)
            grad = grad + W
        return float(value), grad

    def _hessian(self, theta: np.ndarray, Xt: np.ndarray, C: float, mask: np.ndarray
                 ) -> np.ndarray:
        """(K'(d+1), K'(d+1)) Hessian of the smooth part (see the class docstring)."""
        k, p = theta.shape
        Z = Xt @ theta.T                                                  # (N, K')
        if k == 1:
            s = _sigmoid(Z[:, 0])
            H = C * (Xt.T * (s * (1 - s))) @ Xt                           # (d+1, d+1)
        else:
            P = _softmax(Z)                                               # (N, K)
            # S[i, a, b] = P_ia (delta_ab - P_ib); H[a, :, b, :] = C sum_i S[i, a, b] x_i x_i^T
            S = -P[:, :, None] * P[:, None, :]                            # (N, K, K)
            S[:, np.arange(k), np.arange(k)] += P
            H = C * np.einsum("iab,ip,iq->apbq", S, Xt, Xt).reshape(k * p, k * p)
        if self.penalty == "l2":
            H = H + np.diag(mask.ravel())
        return H

    def _objective(self, theta: np.ndarray, Xt: np.ndarray, T: np.ndarray, C: float,
                   mask: np.ndarray) -> float:
        value = self._smooth(theta, Xt, T, C, mask)[0]
        if self.penalty == "l1":
            value += float(np.sum(np.abs(theta * mask)))
        return value

    # -- solvers ---------------------------------------------------------------------------------
    def _fit_gd(self, Xt: np.ndarray, T: np.ndarray, C: float, theta: np.ndarray,
                mask: np.ndarray) -> tuple[np.ndarray, int]:
        c = 0.25 if theta.shape[0] == 1 else 0.5
        lipschitz = C * c * np.linalg.norm(Xt, 2) ** 2 + (1.0 if self.penalty == "l2" else 0.0)
        step = 1.0 / lipschitz
        l1 = self.penalty == "l1"

        def prox(v: np.ndarray) -> np.ndarray:  # soft-threshold the weights, not the intercept
            if not l1:
                return v
            shrunk = np.sign(v) * np.maximum(np.abs(v) - step, 0.0)
            return np.where(mask > 0, shrunk, v)

        y, t, previous = theta.copy(), 1.0, self._objective(theta, Xt, T, C, mask)
        for it in range(1, self.max_iter + 1):
            _, grad = self._smooth(y, Xt, T, C, mask)
            new = prox(y - step * grad)
            gradient_map = (y - new) / step      # = grad for smooth penalties
            if np.max(np.abs(gradient_map)) < self.tol:
                return new, it
            value = self._objective(new, Xt, T, C, mask)
            if value > previous and t > 1.0:     # momentum overshot: restart from theta
                y, t = theta.copy(), 1.0
                continue
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            y = new + ((t - 1) / t_next) * (new - theta)
            theta, t, previous = new, t_next, value
        return theta, -self.max_iter

    def _fit_newton(self, Xt: np.ndarray, T: np.ndarray, C: float, theta: np.ndarray,
                    mask: np.ndarray) -> tuple[np.ndarray, int]:
        value, grad = self._smooth(theta, Xt, T, C, mask)
        for it in range(1, self.max_iter + 1):
            if np.max(np.abs(grad)) < self.tol:
                return theta, it - 1
            H = self._hessian(theta, Xt, C, mask)
            # Minimum-norm Newton step: H is singular along the common-intercept direction.
            direction = np.linalg.lstsq(H, grad.ravel(), rcond=None)[0].reshape(theta.shape)
            slope = float(np.sum(grad * direction))
            alpha = 1.0
            # Near the optimum the decrease <g, d>/2 falls below the rounding error of J
            # (~1e-16 |J|): J cannot tell the steps apart any more, the gradient still can.
            rounding = 64 * np.finfo(np.float64).eps * max(abs(value), 1.0)
            while True:  # backtracking: accept when J drops by at least 1e-4 alpha <g, d>
                candidate = theta - alpha * direction
                new_value, new_grad = self._smooth(candidate, Xt, T, C, mask)
                if new_value <= value - 1e-4 * alpha * slope or alpha < 1e-10:
                    break
                if (new_value <= value + rounding and slope < rounding
                        and np.max(np.abs(new_grad)) < np.max(np.abs(grad))):
                    break  # a decrease below J's resolution, and a smaller gradient
                alpha *= 0.5
            theta, value, grad = candidate, new_value, new_grad
        if np.max(np.abs(grad)) < self.tol:
            return theta, self.max_iter
        return theta, -self.max_iter

    # -- the scikit-learn interface -------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> LogisticRegression:
        """Fit on X (N, d) and labels y (N,) of at least two classes. Returns self."""
        if self.penalty not in ("l2", "l1", None):
            raise ValueError(f"penalty must be 'l2', 'l1' or None, got {self.penalty!r}")
        if self.solver not in ("gd", "newton"):
            raise ValueError(f"solver must be 'gd' or 'newton', got {self.solver!r}")
        if self.solver == "newton" and self.penalty == "l1":
            raise ValueError("solver='newton' needs a smooth objective: use solver='gd' "
                             "(proximal gradient) with penalty='l1'")
        if not (isinstance(self.C, numbers.Real) and not isinstance(self.C, bool)
                and 0 < self.C < np.inf):
            raise ValueError(f"C must be a positive finite number, got {self.C!r}")
        if not (isinstance(self.max_iter, numbers.Integral)
                and not isinstance(self.max_iter, bool) and self.max_iter > 0):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        X = np.asarray(getattr(X, "data", X), dtype=np.float64)
        y = np.asarray(getattr(y, "data", y))
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d (n_samples, n_features), got shape {X.shape}")
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-d with {len(X)} entries (one per row of X), "
                             f"got shape {y.shape}")
        self.classes_ = np.unique(y)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {self.classes_[0]!r}")
        encoded = np.searchsorted(self.classes_, y)
        T = (encoded == 1).astype(np.float64)[:, None] if k == 2 else \
            np.eye(k)[encoded]                                            # (N, K') targets
        Xt = self._design(X)                                              # (N, p)
        rows = 1 if k == 2 else k
        theta = np.zeros((rows, Xt.shape[1]))                             # (K', p)
        mask = self._penalty_mask(theta.shape)
        C = float(self.C) if self.penalty is not None else 1.0
        fit = self._fit_gd if self.solver == "gd" else self._fit_newton
        theta, n_iter = fit(Xt, T, C, theta, mask)
        if n_iter < 0:
            warnings.warn(f"{self.solver} did not converge to tol={self.tol} in "
                          f"max_iter={self.max_iter} iterations; increase max_iter (or the "
                          f"data may be separable with penalty=None)", ConvergenceWarning,
                          stacklevel=2)
        if rows > 1 and self.fit_intercept:
            theta[:, -1] -= theta[:, -1].mean()  # the sum-zero representative of b
        self.n_iter_ = np.array([abs(n_iter)])
        if self.fit_intercept:
            self.coef_, self.intercept_ = theta[:, :-1].copy(), theta[:, -1].copy()
        else:
            self.coef_, self.intercept_ = theta.copy(), np.zeros(rows)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_fitted(self, X: Any) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise RuntimeError("This LogisticRegression instance is not fitted yet; call fit "
                               "first")
        X = np.asarray(getattr(X, "data", X), dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}, expected (n_samples, "
                             f"{self.n_features_in_})")
        return X

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores z = X W^T + b: (N,) for two classes (of classes_[1]), (N, K) otherwise."""
        X = self._check_fitted(X)
        scores = X @ self.coef_.T + self.intercept_                       # (N, K')
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of ``classes_``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = _sigmoid(scores)
            return np.stack([1 - p, p], axis=1)
        return _softmax(scores)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(getattr(y, "data", y))))
