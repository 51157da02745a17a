"""``deepnotes train --resume`` and the training guards: exact resume after SIGKILL, what the
checkpoint header carries, nan/inf stops that keep the last good checkpoint, --grad-clip."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import deepnotes as dn
from deepnotes import io as dn_io
from deepnotes import train as train_module
from deepnotes.cli import main


def mlp_bn_dropout():
    """A model with BatchNorm (running statistics) and Dropout (random masks from the global
    generator), so that resuming must restore buffers and the random stream, not only weights."""
    return dn.nn.Sequential(dn.nn.Flatten(), dn.nn.Linear(64, 32), dn.nn.BatchNorm1d(32),
                            dn.nn.ReLU(), dn.nn.Dropout(0.3), dn.nn.Linear(32, 10))


@pytest.fixture
def registered_model(monkeypatch):
    """``mlp_bn_dropout`` in the model registry for one test (removed again afterwards)."""
    monkeypatch.setitem(dn.models._REGISTRY, "test_mlp_bn_dropout", mlp_bn_dropout)


RUN = ["--model", "test_mlp_bn_dropout", "--epochs", "4", "--limit-batches", "3",
       "--batch-size", "32", "--seed", "11", "--quiet"]

# Runs `deepnotes train` with epoch 3 slowed down (a sleep per batch, which changes no number)
# and a line on stdout when it starts, so that the test can SIGKILL it in the middle of epoch 3.
INTERRUPTED_RUN = textwrap.dedent("""
    import sys, time
    import deepnotes as dn
    from deepnotes import train as train_module
    from deepnotes.cli import main
    from deepnotes.models import register_model
""") + inspect.getsource(mlp_bn_dropout) + textwrap.dedent("""
    register_model("test_mlp_bn_dropout", mlp_bn_dropout)

    original, epochs = train_module.train_one_epoch, []

    class SlowLoader:
        def __init__(self, loader):
            self.loader = loader
        def __len__(self):
            return len(self.loader)
        def __iter__(self):
            for batch in self.loader:
                time.sleep(0.15)
                yield batch

    def train_one_epoch(model, loader, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 3:
            print("epoch 3 started", flush=True)
            loader = SlowLoader(loader)
        return original(model, loader, *args, **kwargs)

    train_module.train_one_epoch = train_one_epoch
    sys.exit(main(sys.argv[1:]))
""")


def _assert_same_tree(a, b, where="checkpoint"):
    """Bit-identical nested structures (Tensors: same dtype, shape and bytes)."""
    assert type(a) is type(b), where
    if isinstance(a, dn.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.data.tobytes() == b.data.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same_tree(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{where}/{i}")
    else:
        assert a == b, (where, a, b)


def _epochs_without_times(run_dir: Path) -> list[dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return [{k: v for k, v in epoch.items() if k != "time_s"} for epoch in metrics["epochs"]]


def test_resume_after_sigkill_in_epoch_3_is_bit_identical(tmp_path, registered_model):
    assert main(["train", "--out", str(tmp_path), "--name", "full"] + RUN) == 0

    script = tmp_path / "interrupted_run.py"
    script.write_text(INTERRUPTED_RUN)
    run = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(script), "train", "--out", str(tmp_path),
                             "--name", "cut"] + RUN, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout.readline() == "epoch 3 started\n"
        # Epoch 3 takes >= 0.45 s now; kill it at a random moment inside.
        threading.Event().wait(np.random.default_rng().uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        proc.kill()
    # Killed during epoch 3: the checkpoint and the metrics hold epochs 1-2 only.
    assert dn.load(run / "checkpoint.safetensors")["epoch"] == 2
    assert [e["epoch"] for e in _epochs_without_times(run)] == [1, 2]
    assert not (run / "curves.png").exists()

    assert main(["train", "--resume", str(run), "--quiet"]) == 0

    full = dn.load(tmp_path / "full" / "checkpoint.safetensors")
    resumed = dn.load(run / "checkpoint.safetensors")
    assert resumed["epoch"] == full["epoch"] == 4 and resumed["step"] == full["step"] == 12
    for key in ("model", "optimizer", "scheduler", "rng_state"):
        _assert_same_tree(full[key], resumed[key], key)
    assert [{k: v for k, v in h.items() if k != "time_s"} for h in resumed["history"]] == \
        [{k: v for k, v in h.items() if k != "time_s"} for h in full["history"]]
    assert _epochs_without_times(run) == _epochs_without_times(tmp_path / "full")
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 4
    assert (run / "curves.png").exists()
    assert len(json.loads((run / "metrics.json").read_text())["resumed_at"]) == 1
    model = dn.models.get_model("test_mlp_bn_dropout")
    model.load_state_dict(resumed["model"])  # the weights of the whole run, in a fresh model


def test_checkpoint_header_carries_epoch_step_rng_state_hyper_parameters_and_version(tmp_path):
    assert main(["train", "--out", str(tmp_path), "--name", "meta", "--epochs", "2",
                 "--limit-batches", "2", "--optimizer", "sgd", "--lr", "0.07", "--momentum",
                 "0.8", "--weight-decay", "0.001", "--grad-clip", "2.5", "--quiet"]) == 0
    path = tmp_path / "meta" / "checkpoint.safetensors"
    metadata = dn_io.read_metadata(path)  # the JSON header only, no tensor read
    assert metadata["library"] == f"deepnotes {dn.__version__}"
    header = json.loads(metadata["deepnotes"])
    assert header["epoch"] == 2 and header["step"] == 4
    assert header["deepnotes_version"] == dn.__version__
    (group,) = header["optimizer"]["param_groups"]
    assert group["momentum"] == 0.8 and group["weight_decay"] == 0.001
    assert group["initial_lr"] == 0.07  # lr itself has been annealed by the cosine schedule
    assert header["config"]["grad_clip"] == 2.5 and header["config"]["optimizer"] == "sgd"
    rng_state = header["rng_state"]
    assert rng_state["bit_generator"] == "PCG64"
    assert set(rng_state["state"]["state"]) == {"$int"}  # 128-bit ints as JSON-safe strings
    # ... and it is the state the generator was left in by the run (nothing drew since).
    assert dn.load(path)["rng_state"] == dn.get_rng_state()


def _patch_epochs(monkeypatch, on_epoch):
    """Wrap train_one_epoch; ``on_epoch(n, model, loss_fn)`` may return a new loss_fn."""
    original, count = train_module.train_one_epoch, []

    def wrapped(model, loader, loss_fn, *args, **kwargs):
        count.append(1)
        loss_fn = on_epoch(len(count), model, loss_fn) or loss_fn
        result = original(model, loader, loss_fn, *args, **kwargs)
        after = getattr(wrapped, "after", None)
        if after is not None:
            after(len(count), model)
        return result

    monkeypatch.setattr(train_module, "train_one_epoch", wrapped)
    return wrapped


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                   capsys):
    run = tmp_path / "nan"
    snapshot = {}

    def on_epoch(n, model, loss_fn):
        if n != 3:
            return None
        snapshot["bytes"] = (run / "checkpoint.safetensors").read_bytes()
        snapshot["metrics"] = (run / "metrics.json").read_bytes()
        calls = []

        def poisoned(logits, y):  # the loss of the 2nd batch of epoch 3 is nan
            calls.append(1)
            loss = loss_fn(logits, y)
            return loss * float("nan") if len(calls) == 2 else loss
        return poisoned

    _patch_epochs(monkeypatch, on_epoch)
    code = main(["train", "--out", str(tmp_path), "--name", "nan", "--epochs", "4",
                 "--limit-batches", "3", "--model", "mlp", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "training diverged: the loss became nan at epoch 3, batch 2 (optimizer step 8)" in err
    assert f"the checkpoint of epoch 2 is kept: {run / 'checkpoint.safetensors'}" in err
    assert "--grad-clip" in err
    assert (run / "checkpoint.safetensors").read_bytes() == snapshot["bytes"]
    assert (run / "metrics.json").read_bytes() == snapshot["metrics"]
    kept = dn.load(run / "checkpoint.safetensors")
    assert kept["epoch"] == 2 and all(np.isfinite(t.data).all() for t in kept["model"].values())
    monkeypatch.undo()  # without the poison, the run goes on from the kept checkpoint
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert dn.load(run / "checkpoint.safetensors")["epoch"] == 4


def test_nan_weights_after_an_epoch_are_never_saved(tmp_path, monkeypatch, capsys):
    wrapped = _patch_epochs(monkeypatch, lambda n, model, loss_fn: None)

    def after(n, model):  # a finite loss, but the last step of epoch 2 broke a weight
        if n == 2:
            model.fc1.weight.data[0, 0] = np.inf
    wrapped.after = after
    code = main(["train", "--out", str(tmp_path), "--name", "inf", "--epochs", "3",
                 "--limit-batches", "2", "--model", "mlp", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "after epoch 2 (optimizer step 4) 'fc1.weight' holds nan/inf" in err
    assert dn.load(tmp_path / "inf" / "checkpoint.safetensors")["epoch"] == 1


def test_absurd_learning_rate_stops_with_a_clear_error(tmp_path, capsys):
    with np.errstate(all="ignore"):
        code = main(["train", "--out", str(tmp_path), "--name", "boom", "--model", "mlp",
                     "--optimizer", "sgd", "--lr", "1e20", "--epochs", "2", "--limit-batches",
                     "5", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "deepnotes train: error: training diverged: the loss became" in err
    assert "no checkpoint was written (the first epoch did not finish)" in err
    assert not (tmp_path / "boom" / "checkpoint.safetensors").exists()


def test_grad_clip_clips_every_step_with_the_given_norm(tmp_path, monkeypatch):
    seen = []
    real = dn.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        total = real(parameters, max_norm, *args, **kwargs)
        after = real(parameters, np.inf)  # the norm after clipping (a second clip is a no-op)
        seen.append((max_norm, float(total.data), float(after.data)))
        return total

    monkeypatch.setattr(dn.nn.utils, "clip_grad_norm_", spy)
    assert main(["train", "--out", str(tmp_path), "--name", "clip", "--epochs", "2",
                 "--limit-batches", "3", "--model", "mlp", "--grad-clip", "0.05",
                 "--quiet"]) == 0
    assert len(seen) == 6 and all(max_norm == 0.05 for max_norm, _, _ in seen)
    assert any(total > 0.05 for _, total, _ in seen)  # clipping was active
    assert all(after <= 0.05 * (1 + 1e-5) for _, _, after in seen)
    monkeypatch.undo()
    assert main(["train", "--out", str(tmp_path), "--name", "noclip", "--epochs", "2",
                 "--limit-batches", "3", "--model", "mlp", "--quiet"]) == 0
    clipped = dn.load(tmp_path / "clip" / "checkpoint.safetensors")["model"]["fc1.weight"].data
    free = dn.load(tmp_path / "noclip" / "checkpoint.safetensors")["model"]["fc1.weight"].data
    assert not np.array_equal(clipped, free)


def test_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--name", "done", "--epochs", "1",
                 "--limit-batches", "2", "--quiet"]) == 0
    run = tmp_path / "done"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--threads", "1"]) == 0
    assert "already finished its 1 epochs; nothing to resume" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "5"], "argument --resume: cannot be combined with --epochs"),
    (["--lr", "0.1", "--seed", "3"], "cannot be combined with --lr, --seed"),
    (["--model", "mlp"], "cannot be combined with --model"),
])
def test_resume_rejects_settings_that_would_change_the_run(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(tmp_path)] + extra)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_resume_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert f"cannot resume: '{tmp_path / 'nope'}' is not a run directory" in \
        capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "has no checkpoint.safetensors" in capsys.readouterr().err

    (tmp_path / "foreign").mkdir()
    dn.save({"model": {}, "epoch": 1}, tmp_path / "foreign" / "checkpoint.safetensors")
    assert main(["train", "--resume", str(tmp_path / "foreign")]) == 2
    assert "it lacks config, step, optimizer, scheduler, rng_state, history" in \
        capsys.readouterr().err

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint.safetensors").write_bytes(b"\x10" + bytes(30))
    assert main(["train", "--resume", str(tmp_path / "broken")]) == 1
    assert "is not a safetensors checkpoint" in capsys.readouterr().err
