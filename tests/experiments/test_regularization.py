"""The regularization experiment (notes 004 Q23/Q26, 001) on a quick run."""

import numpy as np

from deepnotes.experiments.regularization import expected_calibration_error

from .conftest import check_files


def test_l1_sparse_l2_small(quick):
    p = quick("regularization").results["penalties"]
    assert p["L1"]["near_zero"] > 2 * p["L2"]["near_zero"] and p["L1"]["near_zero"] > 0.2
    assert p["L2"]["l2_norm"] < 0.8 * p["none"]["l2_norm"]


def test_robust_losses_ignore_outliers(quick):
    fits = quick("regularization").results["robust_fits"]
    assert fits["smooth L1"]["error"] < 0.3 * fits["L2 (MSE)"]["error"]
    assert fits["L1"]["error"] < 0.3 * fits["L2 (MSE)"]["error"]
    assert fits["L2 (MSE)"]["intercept"] > 2.0            # pulled up by the +15..30 outliers


def test_label_smoothing_keeps_logits_small(quick):
    ls = quick("regularization").results["label_smoothing"]
    assert ls["0.1"]["logit_gap"] < 0.7 * ls["0.0"]["logit_gap"]
    assert ls["0.1"]["test_acc"] > ls["0.0"]["test_acc"] - 0.02
    check_files(quick("regularization").out, figures=3)


def test_ece_on_hand_made_predictions():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 1/2, confidence 0.9; bin of 0.6: accuracy 1, confidence 0.6
    assert abs(expected_calibration_error(probs, labels) - (0.5 * 0.4 + 0.5 * 0.4)) < 1e-12


def test_label_smoothing_lowers_confidence_and_calibration_is_judged_from_ece(quick):
    run = quick("regularization")
    ls = run.results["label_smoothing"]
    assert ls["0.1"]["confidence"] < ls["0.0"]["confidence"] - 0.02
    assert ls["0.1"]["confidence"] < 0.95                 # eps 0.1 caps the target at 0.91
    ece_check = run.json["checks"][4]
    assert ece_check["claim"].startswith("label smoothing improves calibration")
    assert ece_check["passed"] == (ls["0.1"]["ece"] < ls["0.0"]["ece"])
