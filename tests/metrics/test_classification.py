"""Classification metrics against scikit-learn on random labels and scores (ties, missing
classes, weights), plus hand-computed table cases."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given
from hypothesis import strategies as st

from deepnotes import metrics

ZERO_DIVISION = ["warn", 0.0, 1.0, np.nan]


@st.composite
def label_pairs(draw, max_classes=5):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, max_classes))
    y_true = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    y_pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return y_true, y_pred, k


@st.composite
def binary_scores(draw):
    n = draw(st.integers(2, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    levels = draw(st.integers(1, 8))  # few levels -> many tied scores
    score = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    weights = draw(st.none() | st.just(np.array(draw(st.lists(
        st.integers(0, 3), min_size=n, max_size=n)), dtype=np.float64)))
    return y, score, weights


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def same_or_both_raise(ours, theirs, *args, **kwargs):
    try:
        expected = quiet(theirs, *args, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            quiet(ours, *args, **kwargs)
        return
    got = quiet(ours, *args, **kwargs)
    for a, b in zip(got, expected) if isinstance(expected, tuple) else [(got, expected)]:
        assert_same(a, b)


def assert_same(ours, theirs):
    if theirs is None:
        assert ours is None
        return
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=1e-12, atol=1e-12, equal_nan=True)


@given(label_pairs(), st.sampled_from([None, "micro", "macro", "weighted", "binary"]),
       st.sampled_from(ZERO_DIVISION), st.sampled_from([0.5, 1.0, 2.0]), st.booleans())
def test_prf_matches_sklearn(pair, average, zero_division, beta, use_labels):
    y_true, y_pred, k = pair
    labels = list(range(k + 1)) if use_labels else None  # label k is never present
    kwargs = dict(beta=beta, average=average, zero_division=zero_division, labels=labels)
    try:
        expected = quiet(skm.precision_recall_fscore_support, y_true, y_pred, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            quiet(metrics.precision_recall_fscore_support, y_true, y_pred, **kwargs)
        return
    got = quiet(metrics.precision_recall_fscore_support, y_true, y_pred, **kwargs)
    for ours, theirs in zip(got, expected):
        assert_same(ours, theirs)


@given(label_pairs(), st.sampled_from(["micro", "macro", "weighted", None]))
def test_f1_precision_recall_accuracy_match_sklearn(pair, average):
    y_true, y_pred, _ = pair
    for name in ("f1_score", "precision_score", "recall_score"):
        assert_same(quiet(getattr(metrics, name), y_true, y_pred, average=average),
                    quiet(getattr(skm, name), y_true, y_pred, average=average))
    assert metrics.accuracy_score(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)
    w = np.arange(len(y_true)) % 3 + 0.5
    assert metrics.accuracy_score(y_true, y_pred, sample_weight=w, normalize=False) == \
        pytest.approx(skm.accuracy_score(y_true, y_pred, sample_weight=w, normalize=False))


@given(label_pairs(), st.sampled_from([None, "true", "pred", "all"]), st.booleans())
def test_confusion_matrix_matches_sklearn(pair, normalize, weighted):
    y_true, y_pred, k = pair
    w = ((np.arange(len(y_true)) + 1) % 4).astype(float) if weighted else None
    got = quiet(metrics.confusion_matrix, y_true, y_pred, normalize=normalize, sample_weight=w)
    expected = quiet(skm.confusion_matrix, y_true, y_pred, normalize=normalize,
                     sample_weight=w)
    assert got.dtype == expected.dtype
    assert_same(got, expected)
    labels = [k, *range(k - 1, -1, -1)]  # reversed order and an absent class
    assert_same(quiet(metrics.confusion_matrix, y_true, y_pred, labels=labels),
                quiet(skm.confusion_matrix, y_true, y_pred, labels=labels))


def test_confusion_matrix_table_case():
    y_true = ["cat", "dog", "dog", "bird", "cat", "cat"]
    y_pred = ["cat", "cat", "dog", "bird", "dog", "cat"]
    # rows/columns: bird, cat, dog (sorted)
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred),
                                  [[1, 0, 0], [0, 2, 1], [0, 1, 1]])
    p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred)
    np.testing.assert_allclose(p, [1, 2 / 3, 1 / 2])
    np.testing.assert_allclose(r, [1, 2 / 3, 1 / 2])
    np.testing.assert_array_equal(s, [1, 3, 2])


@given(binary_scores(), st.booleans())
def test_roc_curve_matches_sklearn(data, drop):
    y, score, w = data
    same_or_both_raise(metrics.roc_curve, skm.roc_curve, y, score, sample_weight=w,
                       drop_intermediate=drop)


@given(binary_scores(), st.booleans())
def test_precision_recall_curve_matches_sklearn(data, drop):
    y, score, w = data
    same_or_both_raise(metrics.precision_recall_curve, skm.precision_recall_curve, y, score,
                       sample_weight=w, drop_intermediate=drop)


@given(binary_scores(), st.sampled_from([None, 0.3, 1.0]))
def test_binary_auc_and_ap_match_sklearn(data, max_fpr):
    y, score, w = data
    same_or_both_raise(metrics.roc_auc_score, skm.roc_auc_score, y, score, sample_weight=w,
                       max_fpr=max_fpr)
    same_or_both_raise(metrics.average_precision_score, skm.average_precision_score, y, score,
                       sample_weight=w)


def test_auc_is_the_pairwise_ranking_probability(rng):
    y = rng.integers(0, 2, 60)
    score = rng.integers(0, 5, 60).astype(float)  # many ties
    pos, neg = score[y == 1], score[y == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert metrics.roc_auc_score(y, score) == pytest.approx(pairs.mean(), abs=1e-12)


@st.composite
def multiclass_scores(draw):
    k = draw(st.integers(3, 5))
    n = draw(st.integers(k, 40))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    raw = np.array(draw(st.lists(st.integers(1, 4), min_size=n * k, max_size=n * k)),
                   dtype=float).reshape(n, k)
    return y, raw / raw.sum(axis=1, keepdims=True), k


@given(multiclass_scores(), st.sampled_from(["macro", "weighted", "micro", None]))
def test_multiclass_ovr_auc_and_ap_match_sklearn(data, average):
    y, proba, k = data
    labels = list(range(k))  # some classes may be missing from y
    got = quiet(metrics.roc_auc_score, y, proba, multi_class="ovr", average=average,
                labels=labels)
    expected = quiet(skm.roc_auc_score, y, proba, multi_class="ovr", average=average,
                     labels=labels)
    assert_same(got, expected)
    if len(np.unique(y)) == k:
        assert_same(quiet(metrics.average_precision_score, y, proba, average=average),
                    quiet(skm.average_precision_score, y, proba, average=average))


@given(multiclass_scores(), st.integers(1, 4))
def test_top_k_accuracy_matches_sklearn(data, k_top):
    y, proba, k = data
    labels = list(range(k))
    assert quiet(metrics.top_k_accuracy_score, y, proba, k=k_top, labels=labels) == \
        quiet(skm.top_k_accuracy_score, y, proba, k=k_top, labels=labels)


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.f1_score([0, 1, 2], [0, 1, 1]), "multiclass"),
    (lambda: metrics.f1_score([0, 1], [0, 1], average="bogus"), "average"),
    (lambda: metrics.roc_auc_score([0, 1, 2], np.eye(3)), "multi_class"),
    (lambda: metrics.accuracy_score([0, 1], [0]), "inconsistent"),
    (lambda: metrics.confusion_matrix([0, 1], [0, 1], normalize="rows"), "normalize"),
    (lambda: metrics.roc_curve([0, 1, 2], [0.1, 0.2, 0.3]), "multiclass"),
])
def test_bad_input_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@given(binary_scores(), st.integers(1, 2), st.booleans(), st.booleans())
def test_top_k_accuracy_binary_weights_and_counts_match_sklearn(data, k_top, centred,
                                                                normalize):
    y, score, w = data
    if centred:
        score = score * 4 - 2          # decision-function scores: threshold 0, not 0.5
    if w is not None and w.sum() == 0:
        w = None
    same_or_both_raise(metrics.top_k_accuracy_score, skm.top_k_accuracy_score, y, score,
                       k=k_top, sample_weight=w, normalize=normalize, labels=[0, 1])


@given(multiclass_scores(), st.integers(1, 3), st.booleans())
def test_top_k_accuracy_weighted_counts_match_sklearn(data, k_top, normalize):
    y, proba, k = data
    w = (np.arange(len(y)) % 3 + 0.5)
    assert quiet(metrics.top_k_accuracy_score, y, proba, k=k_top, labels=list(range(k)),
                 sample_weight=w, normalize=normalize) == pytest.approx(
        quiet(skm.top_k_accuracy_score, y, proba, k=k_top, labels=list(range(k)),
              sample_weight=w, normalize=normalize), abs=1e-12)
