"""The test-set report of ``deepnotes train``: classification metrics and their plots.

:func:`write_test_report` runs the trained model over the test set once (eval mode, no graph),
turns the logits into class probabilities (softmax), and computes with
:mod:`deepnotes.metrics.classification`:

* accuracy and top-k accuracy, the confusion matrix (counts, rows = true class);
* precision, recall and F1 per class and averaged (macro and weighted);
* one-vs-rest ROC AUC and average precision per class and macro-averaged (class c against
  the rest, scored by p(c | x)).

It saves three PNGs into the run directory: ``confusion_matrix.png``, ``roc_curves.png`` and
``pr_curves.png`` (one curve per class, one-vs-rest), and returns the numbers for
``metrics.json``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .classification import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)

REPORT_FILES = ("confusion_matrix.png", "roc_curves.png", "pr_curves.png")


def predict_proba(model: Any, dataset: Any, batch_size: int = 256,
                  limit_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), softmax probabilities (N, K)) of ``model`` on ``dataset``, in eval mode."""
    from ..autograd import no_grad
    from ..data import DataLoader

    was_training = getattr(model, "training", False)
    model.eval()
    labels, probs = [], []
    try:
        with no_grad():
            for i, (x, y) in enumerate(DataLoader(dataset, batch_size=batch_size)):
                if limit_batches is not None and i >= limit_batches:
                    break
                logits = np.asarray(model(x).data, dtype=np.float64)           # (B, K)
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs.append(e / e.sum(axis=1, keepdims=True))
                labels.append(np.asarray(y.data))
    finally:
        if was_training:
            model.train()
    return np.concatenate(labels), np.concatenate(probs)


def summarize(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """The metrics of the module docstring as plain JSON values (nan -> None)."""
    k = proba.shape[1]
    classes = list(range(k))
    y_pred = proba.argmax(axis=1)

    def clean(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [clean(v) for v in value.tolist()]
        if isinstance(value, list):
            return [clean(v) for v in value]
        value = float(value)
        return None if np.isnan(value) else value

    out: dict[str, Any] = {"accuracy": accuracy_score(y_true, y_pred), "num_samples": len(y_true)}
    if k > 2:
        out["top_2_accuracy"] = top_k_accuracy_score(y_true, proba, k=2, labels=classes)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                     average=average, zero_division=0.0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = p, r, f
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                       zero_division=0.0)
    out["per_class"] = {"precision": clean(p), "recall": clean(r), "f1": clean(f),
                        "support": [int(s) for s in support]}
    onehot = (y_true[:, None] == np.arange(k)[None, :]).astype(np.float64)  # (N, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class absent from a small test set gives nan
        auc = [roc_auc_score(onehot[:, c], proba[:, c]) if 0 < onehot[:, c].sum() < len(onehot)
               else float("nan") for c in classes]
        ap = [average_precision_score(onehot[:, c], proba[:, c]) if onehot[:, c].sum() > 0
              else float("nan") for c in classes]
    out["per_class"]["roc_auc"], out["per_class"]["average_precision"] = clean(auc), clean(ap)
    out["roc_auc_ovr_macro"] = clean(np.nanmean(auc)) if not np.all(np.isnan(auc)) else None
    out["average_precision_macro"] = clean(np.nanmean(ap)) if not np.all(np.isnan(ap)) \
        else None
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    return out


def _save(fig: Any, path: Path) -> None:
    from ..io import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())


def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_confusion_matrix(cm: np.ndarray, path: str | Path, title: str = "") -> None:
    """Heat map of the counts, each cell labelled, rows = true class."""
    cm = np.asarray(cm)
    k = len(cm)
    fig = _figure((1.2 + 0.45 * k, 1.0 + 0.4 * k))
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class",
           title=title or "confusion matrix (test set)")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > threshold else "black")
    _save(fig, Path(path))


def plot_curves_ovr(y_true: np.ndarray, proba: np.ndarray, roc_path: str | Path,
                    pr_path: str | Path, title: str = "") -> None:
    """One-vs-rest ROC and precision-recall curves, one line per class (with its AUC / AP)."""
    k = proba.shape[1]
    fig_roc, fig_pr = _figure((6, 5)), _figure((6, 5))
    ax_roc, ax_pr = fig_roc.subplots(), fig_pr.subplots()
    colours = [f"C{c % 10}" for c in range(k)]
    for c in range(k):
        positive = (y_true == c).astype(np.int64)
        if positive.sum() == 0 or positive.sum() == len(positive):
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        auc = roc_auc_score(positive, proba[:, c])
        ap = average_precision_score(positive, proba[:, c])
        ax_roc.plot(fpr, tpr, color=colours[c], lw=1, label=f"{c} (AUC {auc:.3f})")
        ax_pr.step(recall, precision, where="post", color=colours[c], lw=1,
                   label=f"{c} (AP {ap:.3f})")
    ax_roc.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate",
               title=title or "ROC curves, one class vs the rest")
    ax_pr.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02),
              title=title or "precision-recall curves, one class vs the rest")
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if k > 5 else 1)
    _save(fig_roc, Path(roc_path))
    _save(fig_pr, Path(pr_path))


def write_test_report(model: Any, test_set: Any, run_dir: str | Path, *,
                      limit_batches: int | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``test_set``, save the three PNGs in ``run_dir`` and return the
    metrics (for ``metrics.json``)."""
    run_dir = Path(run_dir)
    y_true, proba = predict_proba(model, test_set, limit_batches=limit_batches)
    summary = summarize(y_true, proba)
    plot_confusion_matrix(np.asarray(summary["confusion_matrix"]),
                          run_dir / "confusion_matrix.png")
    plot_curves_ovr(y_true, proba, run_dir / "roc_curves.png", run_dir / "pr_curves.png")
    return summary
