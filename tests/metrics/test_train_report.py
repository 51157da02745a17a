"""``deepnotes train``: the test-set report (metrics.json + confusion matrix / ROC / PR PNGs),
--early-stopping (stop, restore the best weights, exact resume) and --data with local files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn.metrics as skm

import deepnotes as dn
from deepnotes import train as train_module
from deepnotes.cli import main
from deepnotes.data import Subset
from deepnotes.metrics.report import predict_proba
from deepnotes.models import get_model
from deepnotes.train import EarlyStopping, validation_split

QUICK = ["--epochs", "2", "--limit-batches", "2", "--batch-size", "32", "--quiet"]
PNG = b"\x89PNG\r\n\x1a\n"
REAL_EVALUATE = train_module.evaluate


def test_report_matches_sklearn_on_the_final_model(tmp_path):
    assert main(["train", "--out", str(tmp_path), "--name", "r", "--seed", "3", *QUICK]) == 0
    run = tmp_path / "r"
    for name in ("confusion_matrix.png", "roc_curves.png", "pr_curves.png"):
        assert (run / name).read_bytes()[:8] == PNG
    report = json.loads((run / "metrics.json").read_text())["test_metrics"]
    model = get_model("digits_cnn")
    model.load_state_dict(dn.load(run / "checkpoint.safetensors")["model"])
    _, test = dn.data.datasets.digits()
    y, proba = predict_proba(model, test, limit_batches=2)
    pred = proba.argmax(axis=1)
    labels = list(range(10))
    assert report["num_samples"] == len(y) == 359
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["f1_macro"] == pytest.approx(
        skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0))
    assert report["top_2_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(y, proba, k=2, labels=labels))
    assert report["roc_auc_ovr_macro"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  skm.confusion_matrix(y, pred, labels=labels))


def test_early_stopping_rule():
    stopper = EarlyStopping(patience=2, min_delta=0.05)
    decisions = [stopper.step(loss, epoch) for epoch, loss in
                 enumerate([1.0, 0.9, 0.87, 0.95], start=1)]
    # 0.87 is not below 0.9 - 0.05: no improvement; 0.95 neither -> stop after epoch 4
    assert decisions == [False, False, False, True]
    assert stopper.best == 0.9 and stopper.best_epoch == 2
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(0)


class ScriptedValLoss:
    """Replaces ``train.evaluate``: the loss on the validation split (a Subset of the training
    set; the test set is not one) follows a script, the real accuracy is kept, and the test set
    is evaluated for real; ``interrupt_at`` raises KeyboardInterrupt at that validation call,
    like Ctrl-C during an epoch."""

    def __init__(self, losses, interrupt_at=None):
        self.losses, self.calls, self.interrupt_at = losses, 0, interrupt_at

    def __call__(self, model, loader, loss_fn, *, limit_batches=None):
        loss, acc = REAL_EVALUATE(model, loader, loss_fn, limit_batches=limit_batches)
        if not isinstance(loader.dataset, Subset):
            return loss, acc                               # the test set
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.losses[self.calls - 1], acc


RUN = ["--epochs", "8", "--limit-batches", "2", "--batch-size", "32", "--seed", "5",
       "--lr-schedule", "constant", "--early-stopping", "2", "--quiet"]
LOSSES = [1.0, 0.8, 0.6, 0.7, 0.65, 0.1, 0.1, 0.1]   # best at epoch 3, stop after epoch 5


def test_early_stopping_stops_restores_the_best_weights_and_resumes(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(train_module, "evaluate", ScriptedValLoss(LOSSES))
    assert main(["train", "--out", str(tmp_path), "--name", "es", *RUN]) == 0
    run = tmp_path / "es"
    metrics = json.loads((run / "metrics.json").read_text())
    # The summary reports the test accuracy of the restored weights, which the report measured.
    assert (f"final test accuracy {metrics['test_metrics']['accuracy']:.2%} (the weights of "
            f"epoch 3, restored by early stopping") in capsys.readouterr().out
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4, 5]
    assert metrics["early_stopping"] == {"patience": 2, "stopped": True, "best_epoch": 3,
                                         "best_val_loss": 0.6, "restored_best": True}
    # The validation split is 10 % of the 1,438 training digits, trained on by no epoch.
    assert (metrics["train_samples"], metrics["val_samples"]) == (1294, 144)
    assert [e["val_loss"] for e in metrics["epochs"]] == LOSSES[:5]
    assert all(e["test_loss"] not in LOSSES for e in metrics["epochs"])   # measured, not scripted
    checkpoint = dn.load(run / "checkpoint.safetensors")
    assert checkpoint["epoch"] == 5 and checkpoint["early_stopping"]["stopped"]

    # The restored weights are those after epoch 3: a 3-epoch run (constant lr) ends there.
    monkeypatch.setattr(train_module, "evaluate", ScriptedValLoss(LOSSES))
    assert main(["train", "--out", str(tmp_path), "--name", "three", "--epochs", "3",
                 *RUN[2:]]) == 0
    three = dn.load(tmp_path / "three" / "checkpoint.safetensors")["model"]
    best = checkpoint["early_stopping"]["best_state"]
    for key, value in three.items():
        np.testing.assert_array_equal(best[key].data, value.data)

    # Interrupted in epoch 4, then resumed: the same stop, the same best weights.
    scripted = ScriptedValLoss(LOSSES, interrupt_at=4)
    monkeypatch.setattr(train_module, "evaluate", scripted)
    assert main(["train", "--out", str(tmp_path), "--name", "cut", *RUN]) == 130
    assert dn.load(tmp_path / "cut" / "checkpoint.safetensors")["epoch"] == 3
    scripted.interrupt_at = None
    scripted.calls = 3
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    resumed = dn.load(tmp_path / "cut" / "checkpoint.safetensors")
    assert resumed["epoch"] == 5
    for key, value in checkpoint["model"].items():
        np.testing.assert_array_equal(resumed["model"][key].data, value.data)
        np.testing.assert_array_equal(resumed["early_stopping"]["best_state"][key].data,
                                      best[key].data)
    # Resuming a run that stopped early does nothing.
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert dn.load(tmp_path / "cut" / "checkpoint.safetensors")["epoch"] == 5


def test_train_on_mnist_files(tmp_path, capsys):
    from tests.data.test_files import write_mnist

    write_mnist(tmp_path / "data", n_train=40, n_test=20, gz=True)
    assert main(["train", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--model", "mlp", "--image-size", "8", "--out", str(tmp_path),
                 "--name", "m", *QUICK]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["config"]["dataset"] == "mnist" and metrics["train_samples"] == 40
    assert metrics["test_metrics"]["num_samples"] == 20
    code = main(["train", "--data", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path), *QUICK])
    assert code == 2 and "data_batch_1.bin" in capsys.readouterr().err
    code = main(["train", "--data", "mnist", "--out", str(tmp_path), *QUICK])
    assert code == 2 and "--data-dir" in capsys.readouterr().err


def test_early_stopping_keeps_a_copy_of_the_best_weights_and_its_state_round_trips():
    model = dn.nn.Linear(3, 2)
    stopper = EarlyStopping(patience=2, min_delta=0.0)
    weights = {}
    for epoch, loss in enumerate([0.5, 0.4, 0.45, 0.41], start=1):
        with dn.no_grad():
            model.weight.data[...] = epoch          # training changes the weights in place
        weights[epoch] = model.weight.data.copy()
        stopped = stopper.step(loss, epoch, model)
    assert stopped and stopper.best_epoch == 2 and stopper.bad_epochs == 2
    assert stopper.restore(model)
    np.testing.assert_array_equal(model.weight.data, weights[2])    # not the last epoch's
    clone = EarlyStopping(2)
    clone.load_state_dict(stopper.state_dict())
    assert (clone.best, clone.best_epoch, clone.bad_epochs, clone.stopped) == (0.4, 2, 2, True)

    keep_nothing = EarlyStopping(1, restore_best=False)
    keep_nothing.step(1.0, 1, model)
    assert keep_nothing.best_state is None and not keep_nothing.restore(model)
    assert keep_nothing.step(float("nan"), 2, model)              # nan never improves


@pytest.mark.parametrize("kwargs, match", [
    (dict(patience=0), "patience"), (dict(patience=2.5), "patience"),
    (dict(patience=2, min_delta=-0.1), "min_delta"),
    (dict(patience=2, min_delta=float("nan")), "min_delta"),
])
def test_early_stopping_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_early_stopping_min_delta_from_the_cli(tmp_path, monkeypatch):
    # Patience 1 on LOSSES: without a margin the drops 1.0 -> 0.8 -> 0.6 are improvements and the
    # run stops after epoch 4; with --early-stopping-min-delta 0.25 the first drop (0.2) is not.
    args = ["--epochs", "8", "--limit-batches", "2", "--batch-size", "32", "--lr-schedule",
            "constant", "--early-stopping", "1", "--quiet"]
    for name, extra, epochs, best in [("plain", [], 4, 3),
                                      ("margin", ["--early-stopping-min-delta", "0.25"], 2, 1)]:
        monkeypatch.setattr(train_module, "evaluate", ScriptedValLoss(LOSSES))
        assert main(["train", "--out", str(tmp_path), "--name", name, *args, *extra]) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert len(metrics["epochs"]) == epochs
        assert metrics["early_stopping"]["best_epoch"] == best


def test_validation_split_is_disjoint_seeded_and_leaves_the_global_stream_alone():
    data = dn.data.TensorDataset(dn.arange(50))
    state = dn.random.get_rng_state()
    train, val = validation_split(data, 0.2, seed=7)
    assert dn.random.get_rng_state() == state
    assert (len(train), len(val)) == (40, 10)
    assert sorted(train.indices + val.indices) == list(range(50))
    again_train, again_val = validation_split(data, 0.2, seed=7)
    assert again_val.indices == val.indices
    assert validation_split(data, 0.2, seed=8)[1].indices != val.indices
    assert [len(s) for s in validation_split(data, 0.001, seed=0)] == [49, 1]    # at least one
    assert [len(s) for s in validation_split(data, 0.999, seed=0)] == [1, 49]    # one to train
    with pytest.raises(ValueError, match="only 1 sample"):
        validation_split(dn.data.TensorDataset(dn.arange(1)), 0.5, seed=0)


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan", "x"])
def test_val_fraction_must_be_a_fraction(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--early-stopping", "2", "--val-fraction", value])
    assert exit_info.value.code == 2
    assert "--val-fraction" in capsys.readouterr().err
