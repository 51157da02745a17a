"""Classification metrics with scikit-learn's signatures and results (notes 003, "评价指标").

Everything starts from counts. For one class c taken as "positive"::

    TP_c = #{y = c, y_hat = c}    FP_c = #{y != c, y_hat = c}    FN_c = #{y = c, y_hat != c}

    precision_c = TP_c / (TP_c + FP_c)      of the samples predicted c, the fraction that is c
    recall_c    = TP_c / (TP_c + FN_c)      of the samples that are c, the fraction found
    F_beta,c    = (1 + b^2) TP_c / ((1 + b^2) TP_c + b^2 FN_c + FP_c)
                = (1 + b^2) P R / (b^2 P + R);   F1 = 2 P R / (P + R)

A zero denominator gives ``zero_division`` (0, 1 or nan; "warn" acts as 0). The confusion matrix
``C[i, j] = #{y = label_i, y_hat = label_j}`` holds all of these at once: TP_c on the diagonal,
FP_c the rest of column c, FN_c the rest of row c. Averages over classes:

* ``macro``: plain mean of the per-class values (every class counts the same),
* ``weighted``: mean weighted by the support #{y = c},
* ``micro``: the counts are summed over the classes first (for single-label multiclass data,
  micro precision = micro recall = accuracy),
* ``binary``: only the class ``pos_label``.

Ranking metrics sweep a threshold t over the scores (predict positive iff score >= t). Sorting
the scores in decreasing order, the cumulative sums of positives and negatives give TP(t) and
FP(t) at every distinct score (tied scores enter together, which is why ties make diagonal
steps in the ROC curve):

* ROC curve: FPR = FP/N against TPR = TP/P, from (0, 0) at t = inf to (1, 1). AUC is its area
  (trapezoids) = the probability that a random positive scores above a random negative, ties
  counting one half.
* PR curve: precision = TP/(TP+FP) against recall = TP/P. Average precision is the step-wise
  area ``AP = sum_k (R_k - R_{k-1}) P_k`` (no interpolation, as scikit-learn).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy_score",
    "auc",
    "average_precision_score",
    "confusion_matrix",
    "f1_score",
    "fbeta_score",
    "precision_recall_curve",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "roc_auc_score",
    "roc_curve",
    "top_k_accuracy_score",
]

ArrayLike = Any
_AVERAGES = (None, "binary", "micro", "macro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A metric is ill-defined (e.g. precision with no positive prediction)."""


# -- input checks --------------------------------------------------------------------------------
def _to_numpy(a: ArrayLike) -> np.ndarray:
    data = getattr(a, "data", None)  # a deepnotes Tensor
    if isinstance(data, np.ndarray):
        return data
    return np.asarray(a)


def _column(a: ArrayLike, name: str) -> np.ndarray:
    arr = _to_numpy(a)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of shape (n_samples,), got shape "
                         f"{arr.shape}")
    return arr


def _check_lengths(*arrays: np.ndarray | None) -> None:
    lengths = [len(a) for a in arrays if a is not None]
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"{lengths}")


def _weights(sample_weight: ArrayLike | None, n: int, check_nonzero: bool = True
             ) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = _column(sample_weight, "sample_weight")
    if len(w) != n:
        raise ValueError(f"sample_weight has {len(w)} entries, expected {n} (one per sample)")
    if check_nonzero and n and not np.any(w != 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w


def _zero_division_value(zero_division: str | float) -> float:
    if isinstance(zero_division, str):
        if zero_division != "warn":
            raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan, got "
                             f"'{zero_division}'")
        return 0.0
    if np.isnan(zero_division):
        return float("nan")
    if zero_division in (0, 1):
        return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan, got {zero_division!r}")


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: str | float,
            what: str) -> np.ndarray:
    """numerator / denominator, with ``zero_division`` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    zero = denominator == 0
    result = numerator / np.where(zero, 1.0, denominator)
    if zero.any():
        result[zero] = _zero_division_value(zero_division)
        if zero_division == "warn":
            warnings.warn(f"{what} is ill-defined and being set to 0.0 for labels with no "
                          f"samples; use zero_division to control this", UndefinedMetricWarning,
                          stacklevel=3)
    return result


def _targets(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[str, np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """(type, sorted present labels, y_true, y_pred); type is 'binary' for <= 2 labels."""
    y_true, y_pred = _column(y_true, "y_true"), _column(y_pred, "y_pred")
    _check_lengths(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.dtype.kind == "f" and (not np.isfinite(y).all() or np.any(y != np.round(y))):
            raise ValueError(f"{name} must hold class labels, got continuous values")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    return ("binary" if len(labels) <= 2 else "multiclass"), labels, y_true, y_pred


# -- counting metrics ----------------------------------------------------------------------------
def accuracy_score(y_true: ArrayLike, y_pred: ArrayLike, *, normalize: bool = True,
                   sample_weight: ArrayLike | None = None) -> float:
    """Fraction (or, with ``normalize=False``, number) of samples with ``y_pred == y_true``."""
    _, _, y_true, y_pred = _targets(y_true, y_pred)
    hits = (y_true == y_pred).astype(np.float64)
    w = _weights(sample_weight, len(hits))
    if normalize:
        return float(np.average(hits, weights=w))
    return float(hits.sum() if w is None else hits @ w)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None,
                     sample_weight: ArrayLike | None = None, normalize: str | None = None
                     ) -> np.ndarray:
    """``C[i, j]`` = (weighted) number of samples of true class ``labels[i]`` predicted as
    ``labels[j]``; rows are the truth, columns the prediction (scikit-learn's convention).

    Args:
        labels: the classes, in the order of the rows/columns; default the sorted union of the
            labels in ``y_true`` and ``y_pred``. Samples of other classes are left out.
        normalize: ``'true'`` (rows sum to 1: per-class recall on the diagonal), ``'pred'``
            (columns sum to 1: precision on the diagonal), ``'all'``, or None (counts).
            Empty rows/columns give 0.
    """
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be one of {{'true', 'pred', 'all', None}}, "
                         f"got '{normalize}'")
    _, present, y_true, y_pred = _targets(y_true, y_pred)
    w = _weights(sample_weight, len(y_true))
    if labels is None:
        labels = present
    else:
        labels = _column(labels, "labels")
        if labels.size == 0:
            raise ValueError("'labels' should contain at least one label.")
        if y_true.size and not np.isin(labels, y_true).any():
            raise ValueError("At least one label specified must be in y_true")
    k = len(labels)
    index = {label: i for i, label in enumerate(labels.tolist())}
    rows = np.array([index.get(v, -1) for v in y_true.tolist()], dtype=np.int64)
    cols = np.array([index.get(v, -1) for v in y_pred.tolist()], dtype=np.int64)
    keep = (rows >= 0) & (cols >= 0)
    if w is None:
        dtype, weight = np.int64, np.ones(int(keep.sum()), dtype=np.int64)
    else:
        dtype = np.int64 if w.dtype.kind in "iub" else np.float64
        weight = w[keep].astype(dtype)
    cm = np.zeros((k, k), dtype=dtype)
    np.add.at(cm, (rows[keep], cols[keep]), weight)
    if normalize is None:
        return cm
    with np.errstate(all="ignore"):
        if normalize == "true":
            cm = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            cm = cm / cm.sum(axis=0, keepdims=True)
        else:
            cm = cm / cm.sum()
    return np.nan_to_num(cm)


def _nan_average(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Average ignoring nan entries (and their weights); all weights 0 -> plain mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is None:
        return float(values[keep].mean())
    w = np.asarray(weights, dtype=np.float64)[keep]
    return float(values[keep].mean() if w.sum() == 0 else np.average(values[keep], weights=w))


def precision_recall_fscore_support(
    y_true: ArrayLike, y_pred: ArrayLike, *, beta: float = 1.0, labels: ArrayLike | None = None,
    pos_label: Any = 1, average: str | None = None,
    warn_for: Sequence[str] = ("precision", "recall", "f-score"),
    sample_weight: ArrayLike | None = None, zero_division: str | float = "warn",
) -> tuple[Any, Any, Any, Any]:
    """Per-class (``average=None``) or averaged precision, recall, F-beta and support.

    See the module docstring for the formulas and the averages. ``average='binary'`` needs
    at most two labels in ``y_true``/``y_pred`` and reports the class ``pos_label`` alone.
    Returns ``(precision, recall, fbeta, support)``; averaged results are floats and
    support is None.
    """
    del warn_for  # warnings are given for every metric (scikit-learn filters them)
    if average not in _AVERAGES:
        raise ValueError(f"average has to be one of {_AVERAGES}, got {average!r}")
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    _zero_division_value(zero_division)
    kind, present, y_true, y_pred = _targets(y_true, y_pred)
    if average == "binary":
        if kind != "binary":
            raise ValueError(f"Target is multiclass but average='binary'. Please choose another "
                             f"average setting, one of {[None, 'micro', 'macro', 'weighted']}.")
        if pos_label not in present.tolist() and len(present) >= 2:
            raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of "
                             f"{present}")
        labels = np.asarray([pos_label])
    elif pos_label not in (None, 1):
        warnings.warn(f"Note that pos_label (set to {pos_label!r}) is ignored when average != "
                      f"'binary' (got {average!r}). You may use labels=[pos_label] to specify a "
                      f"single positive class.", UserWarning, stacklevel=2)
    labels = present if labels is None else _column(labels, "labels")
    w = _weights(sample_weight, len(y_true))
    w = np.ones(len(y_true)) if w is None else w.astype(np.float64)
    hit = y_true == y_pred
    # Per label: tp = sum of w over hits of that label, pred = over predictions, true = over truth.
    tp = np.array([w[hit & (y_true == c)].sum() for c in labels.tolist()])
    pred = np.array([w[y_pred == c].sum() for c in labels.tolist()])
    true = np.array([w[y_true == c].sum() for c in labels.tolist()])
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision = _divide(tp, pred, zero_division, "Precision")
    recall = _divide(tp, true, zero_division, "Recall")
    if np.isposinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        b2 = beta * beta
        fscore = _divide((1 + b2) * tp, b2 * true + pred, zero_division, "F-score")
    if average is None:
        support = true if sample_weight is not None else true.astype(np.int64)
        return precision, recall, fscore, support
    weights = true if average == "weighted" else None
    return (_nan_average(precision, weights), _nan_average(recall, weights),
            _nan_average(fscore, weights), None)


def _one_prf(index: int, y_true: ArrayLike, y_pred: ArrayLike, beta: float, labels: Any,
             pos_label: Any, average: str | None, sample_weight: Any, zero_division: Any) -> Any:
    return precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division)[index]


def precision_score(y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None,
                    pos_label: Any = 1, average: str | None = "binary",
                    sample_weight: ArrayLike | None = None,
                    zero_division: str | float = "warn") -> Any:
    """TP / (TP + FP); see :func:`precision_recall_fscore_support`."""
    return _one_prf(0, y_true, y_pred, 1.0, labels, pos_label, average, sample_weight,
                    zero_division)


def recall_score(y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None,
                 pos_label: Any = 1, average: str | None = "binary",
                 sample_weight: ArrayLike | None = None,
                 zero_division: str | float = "warn") -> Any:
    """TP / (TP + FN); see :func:`precision_recall_fscore_support`."""
    return _one_prf(1, y_true, y_pred, 1.0, labels, pos_label, average, sample_weight,
                    zero_division)


def fbeta_score(y_true: ArrayLike, y_pred: ArrayLike, *, beta: float,
                labels: ArrayLike | None = None, pos_label: Any = 1,
                average: str | None = "binary", sample_weight: ArrayLike | None = None,
                zero_division: str | float = "warn") -> Any:
    """(1 + b^2) P R / (b^2 P + R); see :func:`precision_recall_fscore_support`."""
    return _one_prf(2, y_true, y_pred, beta, labels, pos_label, average, sample_weight,
                    zero_division)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None,
             pos_label: Any = 1, average: str | None = "binary",
             sample_weight: ArrayLike | None = None,
             zero_division: str | float = "warn") -> Any:
    """F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN) (notes 003)."""
    return _one_prf(2, y_true, y_pred, 1.0, labels, pos_label, average, sample_weight,
                    zero_division)


# -- ranking metrics -----------------------------------------------------------------------------
def _pos_label(y_true: np.ndarray, pos_label: Any) -> Any:
    classes = np.unique(y_true)
    if pos_label is None:
        values = set(classes.tolist())
        if classes.dtype.kind in "OUS" or not (values <= {0, 1} or values <= {-1, 1}
                                                or values <= {-1}):
            raise ValueError(f"y_true takes value in {classes.tolist()} and pos_label is not "
                             f"specified: either make y_true take value in {{0, 1}} or "
                             f"{{-1, 1}} or pass pos_label explicitly.")
        return 1
    return pos_label


def _binary_counts(y_true: ArrayLike, y_score: ArrayLike, pos_label: Any,
                   sample_weight: ArrayLike | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FP(t), TP(t) and t at every distinct score t, highest first (threshold: score >= t)."""
    y_true, y_score = _column(y_true, "y_true"), _column(y_score, "y_score")
    w = _weights(sample_weight, len(y_true))
    _check_lengths(y_true, y_score)
    if len(np.unique(y_true)) > 2 and pos_label is None:
        raise ValueError("multiclass format is not supported")
    if not np.isfinite(y_score).all():
        raise ValueError("y_score contains nan or inf")
    positive = (y_true == _pos_label(y_true, pos_label)).astype(np.float64)
    if w is not None:
        keep = w != 0
        if not keep.any():
            raise ValueError("Sample weights must contain at least one non-zero number.")
        positive, y_score, w = positive[keep], y_score[keep], w[keep].astype(np.float64)
    order = np.argsort(-y_score.astype(np.float64), kind="stable")  # descending, stable
    y_score, positive = y_score[order], positive[order]
    # The last index of every run of equal scores: all tied samples cross the threshold at once.
    last = np.r_[np.flatnonzero(np.diff(y_score)), len(y_score) - 1]
    if w is None:
        tps = np.cumsum(positive)[last]
        fps = 1.0 + last - tps
    else:
        w = w[order]
        tps = np.cumsum(positive * w)[last]
        fps = np.cumsum((1 - positive) * w)[last]
    return fps, tps, y_score[last]


def roc_curve(y_true: ArrayLike, y_score: ArrayLike, *, pos_label: Any = None,
              sample_weight: ArrayLike | None = None, drop_intermediate: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic: (fpr, tpr, thresholds), thresholds decreasing.

    The first point is (0, 0) at threshold +inf. ``drop_intermediate`` drops the points where
    both FP and TP change linearly (collinear with their neighbours: zero second difference),
    which leaves the area and the shape unchanged.
    """
    fps, tps, thresholds = _binary_counts(y_true, y_score, pos_label, sample_weight)
    if drop_intermediate and len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds.astype(np.float64)]
    if fps[-1] <= 0:
        warnings.warn("No negative samples in y_true, false positive value should be "
                      "meaningless", UndefinedMetricWarning, stacklevel=2)
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        warnings.warn("No positive samples in y_true, true positive value should be "
                      "meaningless", UndefinedMetricWarning, stacklevel=2)
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return fpr, tpr, thresholds


def precision_recall_curve(y_true: ArrayLike, y_score: ArrayLike, *, pos_label: Any = None,
                           sample_weight: ArrayLike | None = None,
                           drop_intermediate: bool = False
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) with thresholds increasing; the last point is
    precision 1, recall 0 (no threshold). Precision with no prediction is 0."""
    fps, tps, thresholds = _binary_counts(y_true, y_score, pos_label, sample_weight)
    if drop_intermediate and len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    predicted = tps + fps
    precision = np.where(predicted != 0, tps / np.where(predicted != 0, predicted, 1), 0.0)
    if tps[-1] == 0:
        warnings.warn("No positive class found in y_true, recall is set to one for all "
                      "thresholds.", UserWarning, stacklevel=2)
        recall = np.ones_like(tps)
    else:
        recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def auc(x: ArrayLike, y: ArrayLike) -> float:
    """Area under the curve y(x) by the trapezoidal rule; x must be monotonic."""
    x, y = _column(x, "x").astype(np.float64), _column(y, "y").astype(np.float64)
    if len(x) < 2:
        raise ValueError(f"At least 2 points are needed to compute area under curve, but "
                         f"x.shape = {len(x)}")
    dx = np.diff(x)
    direction = 1.0
    if np.any(dx < 0):
        if np.all(dx <= 0):
            direction = -1.0
        else:
            raise ValueError(f"x is neither increasing nor decreasing : {x}.")
    return float(direction * np.sum(dx * (y[1:] + y[:-1]) / 2))


def _binary_roc_auc(y_true: np.ndarray, y_score: np.ndarray, sample_weight: Any,
                    max_fpr: float | None) -> float:
    if len(np.unique(y_true)) != 2:
        warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in "
                      "that case.", UndefinedMetricWarning, stacklevel=3)
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, y_score, sample_weight=sample_weight)
    if max_fpr is None or max_fpr == 1:
        return auc(fpr, tpr)
    if not 0 < max_fpr <= 1:
        raise ValueError(f"Expected max_fpr in range (0, 1], got: {max_fpr!r}")
    # Partial area up to max_fpr (one interpolated point), then McClish's standardisation:
    # 0.5 for a useless classifier, 1 for a perfect one.
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    tpr_end = np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]])
    partial = auc(np.r_[fpr[:stop], max_fpr], np.r_[tpr[:stop], tpr_end])
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return 0.5 * (1 + (partial - min_area) / (max_area - min_area))


def _per_class_average(metric: Callable[..., float], onehot: np.ndarray, y_score: np.ndarray,
                       average: str | None, w: np.ndarray | None) -> Any:
    """Apply a binary metric one-vs-rest to each column and average (macro/weighted/micro)."""
    if average == "micro":
        return metric(onehot.ravel(), y_score.ravel(),
                      None if w is None else np.repeat(w, onehot.shape[1]))
    scores = np.array([metric(onehot[:, c], y_score[:, c], w) for c in range(onehot.shape[1])])
    if average is None:
        return scores
    if average == "macro":
        return float(np.mean(scores))
    support = (onehot if w is None else onehot * w[:, None]).sum(axis=0).astype(np.float64)
    if np.isclose(support.sum(), 0):
        return 0.0
    scores[support == 0] = 0
    return float(np.average(scores, weights=support))


def _class_list(y_true: np.ndarray, labels: ArrayLike | None, n_columns: int) -> np.ndarray:
    if labels is None:
        classes = np.unique(y_true)
        if len(classes) != n_columns:
            raise ValueError(f"Number of classes in y_true ({len(classes)}) not equal to the "
                             f"number of columns in 'y_score' ({n_columns}); pass labels= to "
                             f"name all the classes")
        return classes
    labels = _column(labels, "labels")
    classes = np.unique(labels)
    if len(classes) != len(labels):
        raise ValueError("Parameter 'labels' must be unique")
    if not np.array_equal(classes, labels):
        raise ValueError("Parameter 'labels' must be ordered")
    if len(classes) != n_columns:
        raise ValueError(f"Number of given labels, {len(classes)}, not equal to the number of "
                         f"columns in 'y_score', {n_columns}")
    if len(np.setdiff1d(y_true, classes)):
        raise ValueError("'y_true' contains labels not in parameter 'labels'")
    return classes


def roc_auc_score(y_true: ArrayLike, y_score: ArrayLike, *, average: str | None = "macro",
                  sample_weight: ArrayLike | None = None, max_fpr: float | None = None,
                  multi_class: str = "raise", labels: ArrayLike | None = None) -> Any:
    """Area under the ROC curve.

    Binary ``y_true`` with 1-d ``y_score`` (the score of the greater label): the AUC, or the
    McClish-standardised partial AUC up to ``max_fpr``. Multiclass (or ``y_score`` of shape
    (n, k > 2)): ``multi_class='ovr'`` averages the one-vs-rest AUCs of the k columns
    (``average`` macro, weighted by support, micro on the flattened one-hot matrix, or None);
    the rows of ``y_score`` must be probabilities. A class absent from ``y_true`` gives nan
    (scikit-learn 1.9 semantics). ``multi_class='ovo'`` is not implemented.
    """
    y_true = _column(y_true, "y_true")
    y_score = _to_numpy(y_score).astype(np.float64)
    w = _weights(sample_weight, len(y_true), check_nonzero=False)
    _check_lengths(y_true, y_score)
    classes_true = np.unique(y_true)

    def binary(t: np.ndarray, s: np.ndarray, weight: Any) -> float:
        return _binary_roc_auc(t, s, weight, max_fpr)

    if len(classes_true) > 2 or (y_score.ndim == 2 and y_score.shape[1] > 2):
        if max_fpr is not None and max_fpr != 1.0:
            raise ValueError(f"Partial AUC computation not available in multiclass setting, "
                             f"'max_fpr' must be set to `None`, received `max_fpr={max_fpr}` "
                             f"instead")
        if multi_class == "ovo":
            raise NotImplementedError("multi_class='ovo' is not implemented in deepnotes; "
                                      "use multi_class='ovr'")
        if multi_class != "ovr":
            raise ValueError("multi_class must be in ('ovo', 'ovr')")
        if y_score.ndim != 2:
            raise ValueError(f"`y_score` needs to be of shape `(n_samples, n_classes)`, since "
                             f"`y_true` contains multiple classes. Got "
                             f"`y_score.shape={y_score.shape}`.")
        if not np.allclose(1, y_score.sum(axis=1)):
            raise ValueError("Target scores need to be probabilities for multiclass roc_auc, "
                             "i.e. they should sum up to 1.0 over classes")
        if average not in ("micro", "macro", "weighted", None):
            raise ValueError(f"average must be one of ('micro', 'macro', 'weighted', None) for "
                             f"multiclass problems, got {average!r}")
        classes = _class_list(y_true, labels, y_score.shape[1])
        onehot = (y_true[:, None] == classes[None, :]).astype(np.float64)  # (N, K)
        return _per_class_average(binary, onehot, y_score, average, w)
    if y_score.ndim != 1:
        y_score = _column(y_score, "y_score")
    positive = (y_true == classes_true[-1]).astype(np.float64) if len(classes_true) == 2 \
        else np.zeros(len(y_true))
    return binary(positive, y_score, w)


def average_precision_score(y_true: ArrayLike, y_score: ArrayLike, *,
                            average: str | None = "macro", pos_label: Any = 1,
                            sample_weight: ArrayLike | None = None) -> Any:
    """AP = sum_k (R_k - R_{k-1}) P_k over the PR curve's thresholds (no interpolation).

    Multiclass ``y_true`` with (n, k) scores: one-vs-rest per class present in ``y_true``, then
    ``average`` (macro / weighted / micro / None).
    """
    y_true = _column(y_true, "y_true")
    y_score = _to_numpy(y_score).astype(np.float64)
    w = _weights(sample_weight, len(y_true))
    _check_lengths(y_true, y_score)
    present = np.unique(y_true)

    def binary(t: np.ndarray, s: np.ndarray, weight: Any, label: Any = 1) -> float:
        precision, recall, _ = precision_recall_curve(t, s, pos_label=label,
                                                      sample_weight=weight)
        return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))

    if average not in ("micro", "macro", "weighted", "samples", None):
        raise ValueError(f"average has to be one of (None, 'micro', 'macro', 'weighted', "
                         f"'samples'), got {average!r}")
    if len(present) > 2:
        if pos_label != 1:
            raise ValueError("Parameter pos_label is fixed to 1 for multiclass y_true. Do not "
                             "set pos_label or set pos_label to 1.")
        if y_score.ndim != 2 or y_score.shape[1] != len(present):
            raise ValueError(f"`y_score` needs to be of shape `(n_samples, n_classes)`, since "
                             f"`y_true` contains multiple classes. Got "
                             f"`y_score.shape={y_score.shape}`.")
        onehot = (y_true[:, None] == present[None, :]).astype(np.float64)  # (N, K)
        return _per_class_average(binary, onehot, y_score, average, w)
    if len(present) == 2 and pos_label not in present.tolist():
        raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of "
                         f"{present}")
    return binary(y_true, _column(y_score, "y_score"), w, pos_label)


def top_k_accuracy_score(y_true: ArrayLike, y_score: ArrayLike, *, k: int = 2,
                         normalize: bool = True, sample_weight: ArrayLike | None = None,
                         labels: ArrayLike | None = None) -> float:
    """Fraction of samples whose true class is among the k highest scores.

    Ties are broken as scikit-learn does: among equal scores the class with the larger index
    ranks higher. Binary 1-d scores: k = 1 thresholds at 0.5 (scores in [0, 1]) or 0;
    k >= 2 is always a hit.
    """
    y_true = _column(y_true, "y_true")
    y_score = _to_numpy(y_score).astype(np.float64)
    w = _weights(sample_weight, len(y_true))
    _check_lengths(y_true, y_score)
    binary = len(np.unique(y_true)) <= 2 and not (labels is not None and len(labels) > 2)
    if binary:
        if y_score.ndim == 2 and y_score.shape[1] != 1:
            raise ValueError(f"`y_true` is binary while y_score is 2d with {y_score.shape[1]} "
                             f"classes. If `y_true` does not contain all the labels, `labels` "
                             f"must be provided.")
        y_score = y_score.reshape(len(y_true))
    elif y_score.ndim != 2:
        raise ValueError(f"`y_score` needs to be of shape `(n_samples, n_classes)`, since "
                         f"`y_true` contains multiple classes. Got "
                         f"`y_score.shape={y_score.shape}`.")
    n_columns = y_score.shape[1] if y_score.ndim == 2 else 2
    classes = _class_list(y_true, labels, n_columns)
    encoded = np.searchsorted(classes, y_true)
    if binary:
        if k == 1:
            threshold = 0.5 if y_score.min() >= 0 and y_score.max() <= 1 else 0
            hits = (y_score > threshold).astype(np.int64) == encoded
        else:
            hits = np.ones(len(y_true), dtype=bool)
    else:
        ranked = np.argsort(y_score, axis=1, kind="stable")[:, ::-1]  # best first, ties: later
        hits = (ranked[:, :k] == encoded[:, None]).any(axis=1)
    if normalize:
        return float(np.average(hits, weights=w))
    return float(hits.sum() if w is None else hits @ w)
