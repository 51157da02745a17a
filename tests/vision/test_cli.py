"""``deepnotes detect train`` / ``eval`` on a tiny budget: files written, numbers printed."""

from __future__ import annotations

import json

from threadpoolctl import threadpool_limits

from deepnotes.cli import main
from deepnotes.models.detection.engine import DetectConfig, _lr_at


def test_detect_train_then_eval(tmp_path, capsys):
    with threadpool_limits(limits=1, user_api="blas"):   # restores the caller's threads after
        status = main(["detect", "train", "--iters", "3", "--batch-size", "2", "--train-size",
                       "4", "--test-size", "3", "--ckpt-every", "2", "--out", str(tmp_path),
                       "--name", "tiny", "--quiet"])
        assert status == 0
        run = tmp_path / "tiny"
        assert {p.name for p in run.iterdir()} >= {"checkpoint.safetensors", "metrics.json",
                                                    "predictions.png"}
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["iterations"] == 3 and 0 <= metrics["map_50"] <= 1
        assert "mAP@0.5" in capsys.readouterr().out
        grid = tmp_path / "grid.png"
        assert main(["detect", "eval", str(run), "--test-size", "2", "--grid", str(grid),
                     "--images", "2"]) == 0
        out = capsys.readouterr().out
        assert "mAP@0.5 (VOC all-point)" in out and "mAP@[.5:.95] (COCO)" in out
        assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_eval_without_checkpoint(tmp_path, capsys):
    assert main(["detect", "eval", str(tmp_path)]) == 2
    assert "no checkpoint.safetensors" in capsys.readouterr().err


def test_lr_schedule_warmup_cosine_and_time_budget():
    config = DetectConfig(iters=110, warmup=10, lr=1.0)
    assert _lr_at(config, 0) == 0.1 and _lr_at(config, 9) == 1.0
    assert abs(_lr_at(config, 60) - 0.5) < 1e-12                 # half way through the cosine
    timed = DetectConfig(iters=110, warmup=10, lr=1.0, time_limit=1.0)
    assert abs(_lr_at(timed, 20, elapsed=30.0) - 0.5) < 1e-12     # half the time budget gone


def test_detect_train_shows_progress_bar(tmp_path, capsys):
    with threadpool_limits(limits=1, user_api="blas"):
        assert main(["detect", "train", "--iters", "2", "--batch-size", "1", "--train-size",
                     "2", "--test-size", "1", "--out", str(tmp_path), "--name", "bar"]) == 0
    err = capsys.readouterr().err
    assert "detect train" in err and "2/2" in err          # tqdm's bar on stderr
    assert (tmp_path / "bar" / "checkpoint.safetensors").is_file()


def test_detect_train_rejects_bad_name(tmp_path, capsys):
    assert main(["detect", "train", "--name", "a/b", "--out", str(tmp_path)]) == 2
    assert "--name should be a plain directory name" in capsys.readouterr().err


def test_detect_eval_foreign_checkpoint(tmp_path, capsys):
    import deepnotes as dn

    dn.save({"x": dn.zeros(2)}, tmp_path / "checkpoint.safetensors")        # no config
    assert main(["detect", "eval", str(tmp_path)]) == 1
    assert "is not a 'deepnotes detect train' checkpoint" in capsys.readouterr().err
    config = json.dumps({"backbone": "small"})
    dn.save({"model": {"w": dn.zeros(2)}, "iteration": 1, "config": config},
            tmp_path / "checkpoint.safetensors")                             # other weights
    assert main(["detect", "eval", str(tmp_path)]) == 1
    assert "do not fit faster_rcnn_small(backbone='small')" in capsys.readouterr().err


def test_detect_train_resume_equals_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    """Ctrl-C in iteration 4 of 5 (checkpoint after 2), then --resume: the same final weights,
    optimizer moments and loss log, bit for bit, as a run that was never interrupted."""
    import numpy as np

    import deepnotes as dn
    from deepnotes.models.detection import engine

    args = ["detect", "train", "--iters", "5", "--batch-size", "2", "--train-size", "5",
            "--test-size", "2", "--ckpt-every", "2", "--out", str(tmp_path), "--quiet"]
    real_batch = engine._batch
    calls = {"n": 0}

    def interrupting_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_batch(*a, **k)

    with threadpool_limits(limits=1, user_api="blas"):
        assert main([*args, "--name", "whole"]) == 0
        monkeypatch.setattr(engine, "_batch", interrupting_batch)
        assert main([*args, "--name", "cut"]) == 130
        assert dn.load(tmp_path / "cut" / "checkpoint.safetensors")["iteration"] == 2
        monkeypatch.setattr(engine, "_batch", real_batch)
        assert main(["detect", "train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    whole = dn.load(tmp_path / "whole" / "checkpoint.safetensors")
    resumed = dn.load(tmp_path / "cut" / "checkpoint.safetensors")
    assert resumed["iteration"] == whole["iteration"] == 5
    for key, value in whole["model"].items():
        np.testing.assert_array_equal(resumed["model"][key].data, value.data)
    for a, b in zip(whole["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()):
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    assert resumed["history"] == whole["history"] and resumed["running"] == whole["running"]


def test_detect_train_resume_errors(tmp_path, capsys):
    assert main(["detect", "train", "--resume", str(tmp_path / "none")]) == 2
    assert "has no checkpoint.safetensors" in capsys.readouterr().err
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "train", "--resume", str(tmp_path), "--iters", "9", "--ohem"])
    assert exit_info.value.code == 2
    assert "cannot be combined with --iters, --ohem" in capsys.readouterr().err
