"""The ``deepnotes`` command line: help texts, version, and short ``deepnotes train`` runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import deepnotes as dn
from deepnotes import train as train_module
from deepnotes.cli import main
from deepnotes.models import get_model

SHORT = ["--epochs", "1", "--limit-batches", "3", "--quiet"]


def test_top_level_help_lists_the_train_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: deepnotes" in out and "train" in out and "--version" in out


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--epochs", "--batch-size", "--lr", "--optimizer", "--momentum",
                   "--weight-decay", "--seed", "--out", "--name", "--quiet", "--limit-batches",
                   "--grad-clip", "--resume", "checkpoint.safetensors", "metrics.json",
                   "curves.png", "confusion_matrix.png", "roc_curves.png", "pr_curves.png",
                   "--early-stopping-min-delta", "--data-dir"):
        assert option in out, option


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"deepnotes {dn.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: deepnotes" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--lr", "-1"],
                                  ["train", "--optimizer", "rmsprop"], ["train", "--bogus"],
                                  ["fly"]])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


# Flags out of range: an argparse error (exit status 2) naming the flag and the bad value.
BAD_FLAGS = [
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["--epochs", "-3"], "argument --epochs: expected a positive integer, got -3"),
    (["--epochs", "2.5"], "argument --epochs: expected a positive integer, got '2.5'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got 0"),
    (["--batch-size", "-64"], "argument --batch-size: expected a positive integer, got -64"),
    (["--lr", "0"], "argument --lr: expected a positive finite number, got 0.0"),
    (["--lr", "-0.1"], "argument --lr: expected a positive finite number, got -0.1"),
    (["--lr", "nan"], "argument --lr: expected a positive finite number, got nan"),
    (["--lr", "inf"], "argument --lr: expected a positive finite number, got inf"),
    (["--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
    (["--momentum", "-0.9"], "argument --momentum: expected a finite number >= 0, got -0.9"),
    (["--weight-decay", "nan"], "argument --weight-decay: expected a finite number >= 0, got nan"),
    (["--grad-clip", "0"], "argument --grad-clip: expected a positive finite number, got 0.0"),
    (["--grad-clip", "nan"], "argument --grad-clip: expected a positive finite number, got nan"),
    (["--limit-batches", "0"], "argument --limit-batches: expected a positive integer, got 0"),
    (["--threads", "0"], "argument --threads: expected a positive integer, got 0"),
    (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["--model", "resnet9000"], "argument --model: unknown model 'resnet9000'; available: "
                                "alexnet, "),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop' (choose from "),
    (["--lr-schedule", "linear"], "argument --lr-schedule: invalid choice: 'linear'"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_flags_out_of_range_are_usage_errors_naming_flag_and_value(argv, message, capsys,
                                                                    tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path)] + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: deepnotes train" in err
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing was started


def test_unfit_model_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--model", "lenet5", "--out", str(tmp_path)] + SHORT) == 2
    assert "does not accept (1, 8, 8) inputs" in capsys.readouterr().err


def test_train_writes_checkpoint_metrics_and_curves(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path), "--name", "smoke", "--epochs", "2",
                 "--limit-batches", "3", "--seed", "7"])
    assert code == 0
    captured = capsys.readouterr()
    assert "epoch 1/2" in captured.out and "epoch 2/2" in captured.out
    assert "test loss" in captured.out and "final test accuracy" in captured.out
    run = tmp_path / "smoke"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.safetensors", "confusion_matrix.png", "curves.png", "metrics.csv",
        "metrics.json", "pr_curves.png", "roc_curves.png"]

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["seed"] == 7 and metrics["config"]["model"] == "digits_cnn"
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["final_test_acc"] == metrics["epochs"][-1]["test_acc"]
    assert 0 <= metrics["final_test_acc"] <= 1 and metrics["wall_time_s"] > 0
    assert metrics["model_params"] == 24058

    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["test_acc"]) == pytest.approx(metrics["epochs"][1]["test_acc"])

    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    checkpoint = dn.load(run / "checkpoint.safetensors")
    assert checkpoint["epoch"] == 2
    assert checkpoint["config"]["name"] == "smoke"
    model = get_model("digits_cnn")
    result = model.load_state_dict(checkpoint["model"])
    assert not result.missing_keys and not result.unexpected_keys
    assert set(checkpoint["optimizer"]) == {"state", "param_groups"}
    assert all(isinstance(k, int) for k in checkpoint["optimizer"]["state"])


def test_train_is_reproducible_with_a_seed_and_default_names_do_not_collide(tmp_path):
    for _ in range(2):
        assert main(["train", "--out", str(tmp_path), "--model", "mlp", "--optimizer", "sgd",
                     "--lr-schedule", "constant", "--seed", "3"] + SHORT) == 0
    runs = sorted(tmp_path.iterdir())
    assert len(runs) == 2 and all(r.name.startswith("mlp-") for r in runs)
    first, second = (json.loads((r / "metrics.json").read_text())["epochs"] for r in runs)
    assert first[0]["lr"] == 0.05  # sgd's default lr, kept constant
    for a, b in zip(first, second):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert a[key] == b[key]
    w1 = dn.load(runs[0] / "checkpoint.safetensors")["model"]["fc1.weight"].data
    w2 = dn.load(runs[1] / "checkpoint.safetensors")["model"]["fc1.weight"].data
    np.testing.assert_array_equal(w1, w2)


def test_threads_option_applies_to_the_run_only(tmp_path, monkeypatch):
    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):  # start from 2 threads, ask for 1
        before = blas_threads()
        assert before and all(n == 2 for n in before)
        seen = []
        original = train_module._train

        def spy(*args, **kwargs):
            seen.append(blas_threads())
            return original(*args, **kwargs)

        monkeypatch.setattr(train_module, "_train", spy)
        assert main(["train", "--out", str(tmp_path), "--threads", "1"] + SHORT) == 0
        assert seen == [[1] * len(before)]
        assert blas_threads() == before


def test_console_script_module_runs():
    done = subprocess.run([sys.executable, "-m", "deepnotes.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"deepnotes {dn.__version__}"
