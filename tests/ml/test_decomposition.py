"""PCA against scikit-learn (up to the sign of each component); whitening properties: identity
covariance, and ZCA as the whitening closest to the data."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ortho_group
from sklearn.decomposition import PCA as SkPCA

from deepnotes.ml import PCA, zca_whiten


def correlated(seed, n, d):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)


@given(st.integers(0, 10_000), st.integers(5, 30), st.integers(2, 6), st.booleans(),
       st.sampled_from([None, 1, 2, 0.9]))
def test_pca_matches_sklearn(seed, n, d, whiten, n_components):
    X = correlated(seed, n, d)
    ours = PCA(n_components, whiten=whiten).fit(X)
    theirs = SkPCA(n_components, whiten=whiten, svd_solver="full").fit(X)
    assert ours.n_components_ == theirs.n_components_
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.explained_variance_ratio_,
                               theirs.explained_variance_ratio_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-9)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-12, atol=1e-12)
    # Same axes up to sign: flip ours onto theirs, then everything must agree.
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))
    np.testing.assert_allclose(ours.components_ * signs[:, None], theirs.components_,
                               atol=1e-8)
    # With n <= d the centred data has rank n - 1: a zero-variance axis is an arbitrary direction
    # (and whitening divides by ~0 there), so the coordinates are compared on the other axes.
    kept = theirs.explained_variance_ > 1e-9 * theirs.explained_variance_[0]
    np.testing.assert_allclose((ours.transform(X) * signs)[:, kept],
                               theirs.transform(X)[:, kept], atol=1e-8)
    np.testing.assert_allclose((ours.fit_transform(X) * signs)[:, kept],
                               theirs.transform(X)[:, kept], atol=1e-8)
    assert np.isfinite(ours.transform(X)).all()
    Z = theirs.transform(X) * kept
    np.testing.assert_allclose(ours.inverse_transform(Z * signs), theirs.inverse_transform(Z),
                               atol=1e-8)


def test_pca_round_trip_and_whitened_covariance(rng):
    X = correlated(1, 50, 4)
    pca = PCA(whiten=True).fit(X)
    Z = pca.transform(X)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-10)
    np.testing.assert_allclose(pca.inverse_transform(Z), X, atol=1e-10)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(4), atol=1e-12)


@given(st.integers(0, 10_000), st.integers(2, 6))
def test_zca_whitened_covariance_is_identity(seed, d):
    X = correlated(seed, 40, d)
    white, W, mean = zca_whiten(X, eps=0.0, return_matrix=True)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(d), atol=1e-8)
    np.testing.assert_allclose(W, W.T, atol=1e-12)           # symmetric: W = Sigma^{-1/2}
    np.testing.assert_allclose(white, (X - mean) @ W)
    sigma = np.cov(X, rowvar=False)
    np.testing.assert_allclose(W @ sigma @ W, np.eye(d), atol=1e-8)


@given(st.integers(0, 10_000), st.integers(2, 6))
def test_zca_is_the_whitening_closest_to_the_data(seed, d):
    X = correlated(seed, 40, d)
    A = X - X.mean(axis=0)
    white, W, _ = zca_whiten(X, eps=0.0, return_matrix=True)
    zca_distance = np.linalg.norm(white - A)
    # Every other whitening is W R for an orthogonal R (R = I is ZCA): still white, farther.
    R = ortho_group.rvs(d, random_state=seed)
    other = A @ W @ R
    np.testing.assert_allclose(np.cov(other, rowvar=False), np.eye(d), atol=1e-8)
    assert zca_distance <= np.linalg.norm(other - A) + 1e-9
    # PCA whitening is such a rotation of ZCA: also white, and no closer.
    pca_white = PCA(whiten=True).fit_transform(X)
    assert zca_distance <= np.linalg.norm(pca_white - A) + 1e-9


def test_zca_eps_regularises_a_singular_covariance():
    X = correlated(0, 30, 3)
    X = np.hstack([X, X[:, :1]])                   # a duplicated column: rank 3 of 4
    with pytest.raises(ValueError, match="eps"):
        zca_whiten(X, eps=0.0)
    white = zca_whiten(X, eps=1e-3)
    assert np.all(np.isfinite(white))
    assert np.all(np.linalg.eigvalsh(np.cov(white, rowvar=False)) <= 1 + 1e-9)


@pytest.mark.parametrize("n_components", [0, 7, -1, "all", 1.5])
def test_pca_bad_n_components(n_components):
    with pytest.raises(ValueError, match="n_components"):
        PCA(n_components).fit(correlated(0, 10, 6))
