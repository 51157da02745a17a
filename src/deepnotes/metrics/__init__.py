"""Evaluation metrics with scikit-learn's signatures (classification) and detection's mAP.

``deepnotes.metrics.detection`` holds the detection metrics (import it explicitly); the
classification metrics of :mod:`deepnotes.metrics.classification` are exported here.
"""

from . import classification as _classification
from .classification import (
    UndefinedMetricWarning,
    accuracy_score,
    auc,
    average_precision_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)

__all__ = ["UndefinedMetricWarning", *_classification.__all__]
