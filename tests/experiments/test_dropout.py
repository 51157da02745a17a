"""The dropout experiment (notes 000 Q7) on a quick run. The quick run is too short to show the
overfitting claim (the full run does, see docs/experiments.md), so its test checks that the
verdict follows the numbers; the expectation claim is asserted."""

from .conftest import check_files


def test_both_scalings_match_the_expected_training_output(quick):
    errors = quick("dropout").results["expectation_errors"]
    assert errors["inverted (PyTorch)"] < 0.05
    assert errors["scale at test (notes)"] < 0.05
    assert abs(errors["no rescaling"] - 0.5) < 0.05   # E[mask x] = (1 - p) x: off by p = 0.5


def test_the_small_training_set_is_overfitted(quick):
    curves = quick("dropout").results["curves"]["none"]
    assert curves["train_loss"][-1] < 0.25 * curves["test_loss"][-1]
    assert curves["train_acc"][-1] > curves["test_acc"][-1]


def test_verdict_follows_the_numbers(quick):
    run = quick("dropout")
    no, do = run.results["curves"]["none"], run.results["curves"]["dropout"]
    assert run.json["checks"][0]["passed"] == (do["test_loss"][-1] < no["test_loss"][-1])
    assert run.json["checks"][1]["passed"] == (run.results["gap_dropout"]
                                               < run.results["gap_no_dropout"])
    check_files(run.out, figures=2)
