"""PCA, PCA whitening and ZCA whitening (notes 004 Q4 "为什么需要白化", Q5 "如何进行白化",
Q7 "PCA 的流程").

Centre the data, A = X - mean (N, d), with covariance Sigma = A^T A / (N - 1). PCA looks for an
orthonormal basis P such that Z = A P has a diagonal covariance: P^T Sigma P diagonal, i.e. the
columns of P are eigenvectors of Sigma. The SVD A = U S V^T gives them without forming Sigma:
Sigma = V (S^2 / (N - 1)) V^T, so the principal directions are the rows of V^T (``components_``)
and the variances along them are lambda_j = s_j^2 / (N - 1) (``explained_variance_``). Keeping the
k largest reduces the dimension with the least lost variance.

Whitening (notes Q4/Q5): decorrelate the features and give them all unit variance, so that the
covariance becomes the identity. Any W with W Sigma W^T = I does it, and if W is one, so is
R W for every orthogonal R (R R^T = I). Two choices:

* PCA whitening: x_pca = Lambda^{-1/2} V^T (x - mean) -- rotate onto the principal axes, scale.
* ZCA whitening: x_zca = V Lambda^{-1/2} V^T (x - mean) = Sigma^{-1/2} (x - mean) -- the same,
  rotated back into the original coordinates. Among all whitening matrices it is the one that
  changes the data least: minimising E||W x - x||^2 = tr(W Sigma W^T) - 2 tr(W Sigma) + tr(Sigma)
  with tr(W Sigma W^T) = d fixed, amounts to maximising tr(W Sigma) = tr(R Sigma^{1/2}), whose
  maximum over orthogonal R is reached at R = I (von Neumann's trace inequality), i.e. at
  W = Sigma^{-1/2}. So ZCA images still look like images (edges enhanced), which is why it is the
  whitening used before CNNs on CIFAR.

``eps`` is added to the eigenvalues before the inverse square root, so directions of (near) zero
variance are not blown up.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_2d(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(getattr(X, "data", X), dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n_samples, n_features), got shape {X.shape}")
    return X


class PCA:
    """Principal component analysis by SVD (scikit-learn's attributes and methods).

    Args:
        n_components: how many components to keep: an int, a float in (0, 1) (the fewest
            components explaining at least that fraction of the variance), or None (all,
            min(N, d)).
        whiten: divide the projections by sqrt(explained_variance_), giving unit variance.

    Attributes (after ``fit``): ``mean_`` (d,), ``components_`` (k, d) (orthonormal rows, sorted by
    variance; the sign of each row is fixed so that its largest-magnitude entry is positive),
    ``explained_variance_`` (k,) = s^2 / (N - 1), ``explained_variance_ratio_`` (k,),
    ``singular_values_`` (k,), ``n_components_``, ``noise_variance_`` (mean of the dropped
    variances, as in probabilistic PCA).
    """

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = False):
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, X: Any, y: Any = None) -> PCA:
        self._fit(_as_2d(X))
        return self

    def _fit(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        if n < 2:
            raise ValueError(f"PCA needs at least 2 samples, got {n}")
        self.mean_ = X.mean(axis=0)
        A = X - self.mean_                                                # (N, d) centred
        U, S, Vt = np.linalg.svd(A, full_matrices=False)                  # U (N, r), Vt (r, d)
        # Deterministic signs: the largest |entry| of every component is positive.
        signs = np.sign(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)])
        signs[signs == 0] = 1.0
        U, Vt = U * signs, Vt * signs[:, None]
        variance = S**2 / (n - 1)
        total = variance.sum()
        ratio = variance / total if total > 0 else np.zeros_like(variance)
        r = min(n, d)
        k = self.n_components
        if k is None:
            k = r
        elif isinstance(k, float) and 0 < k < 1:
            k = int(np.searchsorted(np.cumsum(ratio), k, side="right") + 1)
            k = min(k, r)
        elif not isinstance(k, int | np.integer) or isinstance(k, bool) or not 0 < k <= r:
            raise ValueError(f"n_components must be None, a float in (0, 1) or an int in "
                             f"[1, min(n_samples, n_features)] = [1, {r}], got {k!r}")
        k = int(k)
        self.n_components_ = k
        self.n_samples_, self.n_features_in_ = n, d
        self.components_ = Vt[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = ratio[:k]
        self.singular_values_ = S[:k]
        self.noise_variance_ = float(variance[k:].mean()) if k < min(n, d) else 0.0
        return U[:, :k] * S[:k]                                           # = A @ V_k

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        Z = self._fit(_as_2d(X))
        if self.whiten:
            Z = Z / self._whitening_scale()
        return Z

    def _whitening_scale(self) -> np.ndarray:
        # A rank-deficient X has components of (numerically) zero variance; clip their scale at
        # machine epsilon so that whitening gives large but finite values, as scikit-learn does.
        scale = np.sqrt(self.explained_variance_)
        return np.maximum(scale, np.finfo(scale.dtype).eps)

    def transform(self, X: Any) -> np.ndarray:
        """Coordinates on the principal axes: (X - mean) V_k, scaled to unit variance if whiten."""
        if not hasattr(self, "components_"):
            raise RuntimeError("This PCA instance is not fitted yet; call fit first")
        X = _as_2d(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, PCA was fitted with "
                             f"{self.n_features_in_}")
        Z = (X - self.mean_) @ self.components_.T                         # (N, k)
        if self.whiten:
            Z = Z / self._whitening_scale()
        return Z

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Back to the input space: Z V_k^T + mean (exact when all components are kept)."""
        Z = _as_2d(Z, "Z")
        if Z.shape[1] != self.n_components_:
            raise ValueError(f"Z has {Z.shape[1]} columns, expected n_components_ = "
                             f"{self.n_components_}")
        if self.whiten:
            Z = Z * self._whitening_scale()
        return Z @ self.components_ + self.mean_                          # (N, d)


def zca_whiten(X: Any, eps: float = 1e-5, *, return_matrix: bool = False) -> Any:
    """ZCA whitening: (X - mean) W with W = V (Lambda + eps)^{-1/2} V^T = (Sigma + eps I)^{-1/2}.

    Sigma is the covariance with the N - 1 denominator (as ``np.cov`` and PCA), so with eps = 0
    the result has exactly the identity as its covariance. W is symmetric, so row vectors
    ``x W`` and column vectors ``W x`` agree.

    Args:
        X: (N, d) data, one sample per row.
        eps: added to every eigenvalue (regularises near-zero-variance directions).
        return_matrix: also return ``W`` (d, d) and ``mean`` (d,), to whiten other data the
            same way: ``(X_new - mean) @ W``.

    Returns:
        The whitened (N, d) array, or ``(whitened, W, mean)``.
    """
    X = _as_2d(X)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    n = len(X)
    if n < 2:
        raise ValueError(f"zca_whiten needs at least 2 samples, got {n}")
    mean = X.mean(axis=0)
    A = X - mean                                                          # (N, d)
    sigma = A.T @ A / (n - 1)                                             # (d, d)
    eigenvalues, V = np.linalg.eigh(sigma)                                # Sigma = V L V^T
    tiny = eigenvalues.max(initial=0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    if eps == 0 and eigenvalues.min() <= tiny:
        raise ValueError(f"the covariance is singular (smallest eigenvalue "
                         f"{eigenvalues.min():.3g}); pass eps > 0 to whiten it")
    scale = eigenvalues.clip(min=0) + eps
    W = (V / np.sqrt(scale)) @ V.T                                        # (d, d) symmetric
    whitened = A @ W
    return (whitened, W, mean) if return_matrix else whitened
