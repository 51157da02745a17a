"""``mpiexec -n 2 deepnotes train --distributed``: one writer, one voice, and a run that resumes
on another number of ranks and ends where a 1-rank run ends (SyncBN + DDP + the global batch
make a step independent of N)."""

from __future__ import annotations

import io
import json
import sys

import numpy as np

import deepnotes as dn
import deepnotes.distributed as dist
from deepnotes.train import TrainConfig, resume, train

from .launch import run

SETTINGS = dict(model="digits_cnn", limit_batches=2, batch_size=32, optimizer="sgd",
                lr_schedule="constant", seed=5, quiet=True)


def test_two_ranks_write_one_checkpoint_and_resume_on_one(tmp_path):
    args = ["--distributed", "--epochs", "1", "--out", str(tmp_path), "--name", "part"]
    for key, value in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    part = run([sys.executable, "-m", "deepnotes.cli", "train", *args], n=2)
    assert part.returncode == 0, part.stderr
    assert part.stdout.count("final test accuracy") == 1  # rank 0 speaks, rank 1 is silent
    assert [p.name for p in tmp_path.iterdir()] == ["part"]  # one run directory, made by rank 0
    written = {p.name for p in (tmp_path / "part").iterdir()}
    assert {"checkpoint.safetensors", "curves.png", "metrics.csv", "metrics.json"} <= written
    assert not any(name.endswith(".tmp") for name in written)  # atomic writes finished
    path = tmp_path / "part" / "checkpoint.safetensors"
    checkpoint = dn.load(path)
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 2
    assert checkpoint["config"]["distributed"] is True
    assert "features.1.running_mean" in checkpoint["model"]  # plain BatchNorm keys, no "module."
    checkpoint["config"]["epochs"] = 2                   # as if the run had been stopped there
    dn.save(checkpoint, path)
    try:  # in this process: a world of one rank
        resume(tmp_path / "part", stdout=io.StringIO())
        train(TrainConfig(**SETTINGS, epochs=2, distributed=True, out=str(tmp_path),
                          name="one"), stdout=io.StringIO())
    finally:
        dist.destroy_process_group()
    ours = dn.load(path)
    ref = dn.load(tmp_path / "one" / "checkpoint.safetensors")
    assert ours["epoch"] == ref["epoch"] == 2
    for key, value in ref["model"].items():
        np.testing.assert_allclose(ours["model"][key].data, value.data, rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    history = json.loads((tmp_path / "part" / "metrics.json").read_text())["epochs"]
    ref_history = json.loads((tmp_path / "one" / "metrics.json").read_text())["epochs"]
    for got, want in zip(history, ref_history, strict=True):  # metrics reduced over ranks
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert abs(got[key] - want[key]) < 1e-4, (key, got, want)
