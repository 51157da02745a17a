"""The training loop behind ``deepnotes train``: seeded, checkpointed, with metrics and curves.

One epoch is the classic loop (notes 001/002 on training and convergence checks)::

    for x, y in loader:                 # shuffled mini-batches, a new order each epoch
        loss = cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()                 # dL/dw for every parameter
        optimizer.step()                # w <- w - lr * update(dL/dw)

then one step of the lr schedule (by default cosine annealing, lr_e = lr/2 (1 + cos(pi e / E)),
which lets the last epochs settle instead of bouncing around a minimum), then an evaluation pass
on the held-out test set with ``model.eval()`` (BN uses its running statistics, dropout is off)
under ``no_grad``. Watching train and test loss side by side is the
basic convergence/overfitting check: both falling is learning; train falling while test rises is
overfitting.

A run writes into ``<out>/<name>/``:

* ``checkpoint.safetensors`` -- ``{"model", "optimizer", "scheduler", "epoch", "step", "config",
  "rng_state", "history", "deepnotes_version", ...}`` (state dicts in PyTorch's format; every
  plain value, the optimiser's hyper-parameters in ``optimizer.param_groups`` included, is JSON in
  the file header), rewritten atomically after every epoch with ``deepnotes.save``, so an
  interrupted run keeps its last finished epoch;
* ``metrics.json`` and ``metrics.csv`` -- per-epoch numbers, the config, final accuracy, wall time;
* ``curves.png`` -- loss and accuracy per epoch, train vs test.

**Exact resume** (:func:`resume`, ``deepnotes train --resume runs/NAME``): the checkpoint holds
everything the rest of the run depends on -- weights and BN statistics, the optimiser's moments
and step counts, the schedule's position, and the state of the one global random generator at
the end of the epoch (the generator that shuffles every epoch and draws every dropout mask). A
resumed run rebuilds the model and loaders from the stored config, loads all of that, and goes on
with the next epoch: its weights and per-epoch metrics are bit-identical to those of a run that
was never interrupted.

**Guards**: a nan/inf loss (or nan/inf weights after an epoch) stops the run with
:class:`TrainingDiverged` before anything is saved, so the checkpoint of the last good epoch
stays intact; ``grad_clip`` rescales the gradients with ``nn.utils.clip_grad_norm_`` before each
step (notes 002 on exploding gradients).
"""

from __future__ import annotations

import csv
import io as _stdio
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import nn, optim
from .autograd import no_grad
from .data import DataLoader, datasets
from .io import atomic_write, load, save
from .models import get_model
from .random import get_rng_state, manual_seed, set_rng_state

#: Learning rate used when ``--lr`` is not given, per optimizer.
DEFAULT_LR = {"sgd": 0.05, "adam": 0.003}
OPTIMIZERS = tuple(DEFAULT_LR)
LR_SCHEDULES = ("cosine", "constant")
#: The checkpoint's file name inside a run directory.
CHECKPOINT_NAME = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """The loss (or a weight) became nan or inf; the run stopped and kept its last checkpoint.

    ``batch`` (1-based) and ``loss`` say where, when a batch's loss was the first sign.
    """

    def __init__(self, message: str, *, batch: int | None = None, loss: float | None = None):
        super().__init__(message)
        self.batch, self.loss = batch, loss


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in the checkpoint and in metrics.json)."""

    model: str = "digits_cnn"
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None            # None: DEFAULT_LR[optimizer]
    optimizer: str = "adam"
    momentum: float = 0.9              # SGD only
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"        # cosine: anneal lr to 0 over the epochs; constant
    seed: int = 0
    threads: int | None = 1            # BLAS threads; None leaves NumPy's setting alone
    out: str = "runs"
    name: str | None = None            # None: "<model>-<YYYYmmdd-HHMMSS>", made unique
    quiet: bool = False
    limit_batches: int | None = None   # cap on batches per epoch (smoke tests)
    dataset: str = "digits"
    grad_clip: float | None = None     # max total 2-norm of the gradients (clip_grad_norm_)

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got '{self.optimizer}'")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.limit_batches is not None and self.limit_batches <= 0:
            raise ValueError(f"limit_batches must be a positive integer, got {self.limit_batches}")
        if self.lr is not None and not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a positive finite number, got {self.grad_clip}")
        if not (0 <= self.weight_decay < math.inf and 0 <= self.momentum < math.inf):
            raise ValueError(f"weight_decay and momentum must be finite and >= 0, got "
                             f"{self.weight_decay} and {self.momentum}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, "
                             f"got '{self.lr_schedule}'")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be a positive integer, got {self.threads}")
        if self.dataset != "digits":
            raise ValueError(f"dataset must be 'digits' (the only offline dataset so far), "
                             f"got '{self.dataset}'")

    @property
    def effective_lr(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    time_s: float


@dataclass
class RunResult:
    run_dir: Path
    history: list[EpochResult] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def final_test_acc(self) -> float:
        return self.history[-1].test_acc if self.history else math.nan


# -- pieces --------------------------------------------------------------------------------------
def make_run_dir(out: str | Path, name: str | None, model: str) -> Path:
    """``out/name``; without a name, ``out/<model>-<timestamp>`` with ``-1``, ``-2``... appended if
    that exists already. An explicit name is used as given (its files are replaced)."""
    out = Path(out)
    if name is not None:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"name must be a plain directory name, got '{name}'")
        run_dir = out / name
    else:
        out.mkdir(parents=True, exist_ok=True)
        base = f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        run_dir, n = out / base, 1
        while True:
            try:
                run_dir.mkdir()  # atomic: two runs started in the same second get different dirs
                return run_dir
            except FileExistsError:
                run_dir, n = out / f"{base}-{n}", n + 1
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def make_optimizer(name: str, params: Any, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> Any:
    """``optim.SGD`` (with momentum) or ``optim.Adam``, with PyTorch's argument names."""
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got '{name}'")


def train_one_epoch(model: Any, loader: DataLoader, loss_fn: Any, optimizer: Any, *,
                    limit_batches: int | None = None, progress: Any = None,
                    grad_clip: float | None = None) -> tuple[float, float]:
    """One pass of SGD steps over ``loader``. Returns (mean loss, accuracy in [0, 1]).

    Raises:
        TrainingDiverged: as soon as a batch's loss is nan or inf, before that batch's update
            (its ``batch`` attribute is the 1-based batch number).
    """
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for i, (x, y) in enumerate(loader):
        if limit_batches is not None and i >= limit_batches:
            break
        logits = model(x)
        loss = loss_fn(logits, y)
        value = loss.item()
        if not math.isfinite(value):  # stepping on it would turn every weight into nan
            raise TrainingDiverged(f"the loss is {value} at batch {i + 1}", batch=i + 1,
                                   loss=value)
        optimizer.zero_grad()
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        n = len(y)
        loss_sum += value * n
        correct += int((logits.data.argmax(axis=1) == y.data).sum())
        seen += n
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.2%}",
                                 refresh=False)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def evaluate(model: Any, loader: DataLoader, loss_fn: Any, *,
             limit_batches: int | None = None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` in eval mode, without building a graph."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with no_grad():
        for i, (x, y) in enumerate(loader):
            if limit_batches is not None and i >= limit_batches:
                break
            logits = model(x)
            n = len(y)
            loss_sum += loss_fn(logits, y).item() * n
            correct += int((logits.data.argmax(axis=1) == y.data).sum())
            seen += n
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def count_params(model: Any) -> int:
    return int(sum(p.data.size for p in model.parameters()))


def plot_curves(history: list[EpochResult], path: str | Path, title: str = "") -> None:
    """Loss and accuracy per epoch (train vs test) side by side, saved as a PNG.

    Uses matplotlib's object-oriented API on an Agg canvas: no display needed, and the global
    pyplot backend of the caller is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [h.epoch for h in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h.train_loss for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h.test_loss for h in history], "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, [100 * h.train_acc for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h.test_acc for h in history], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    buffer = _stdio.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())


def write_metrics(run_dir: Path, config: TrainConfig, result: RunResult, extra: dict[str, Any]
                  ) -> None:
    """metrics.json (everything) and metrics.csv (one row per epoch), both written atomically."""
    history = [asdict(h) for h in result.history]
    best = max(result.history, key=lambda h: h.test_acc, default=None)
    payload = {
        "config": {**asdict(config), "lr": config.effective_lr},
        "epochs": history,
        "final_test_acc": result.final_test_acc if result.history else None,
        "best_test_acc": best.test_acc if best else None,
        "best_epoch": best.epoch if best else None,
        "wall_time_s": round(result.wall_time_s, 3),
        **extra,
    }
    atomic_write(run_dir / "metrics.json", (json.dumps(payload, indent=2) + "\n").encode())
    text = _stdio.StringIO()
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time_s"]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(run_dir / "metrics.csv", text.getvalue().encode())


def load_dataset(config: TrainConfig) -> tuple[Any, Any]:
    return datasets.digits()


# -- the run -------------------------------------------------------------------------------------
def train(config: TrainConfig, stdout: TextIO | None = None, stderr: TextIO | None = None
          ) -> RunResult:
    """Train ``config.model`` on the digits, writing checkpoint, metrics and curves per epoch.

    Args:
        config: the run's settings (see :class:`TrainConfig`).
        stdout: where the per-epoch lines go (default ``sys.stdout``).
        stderr: where the progress bars go (default ``sys.stderr``).

    Returns:
        The run directory and per-epoch history.

    Raises:
        TrainingDiverged: the loss or the weights became nan/inf (the checkpoint of the last
            finished epoch, if any, is kept as it was).
    """
    from threadpoolctl import threadpool_limits

    # BLAS threads for this run only; the caller's setting comes back afterwards.
    with threadpool_limits(limits=config.threads, user_api="blas"):
        return _train(config, stdout or sys.stdout, stderr or sys.stderr)


def load_run_checkpoint(run_dir: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and the checkpoint of the run in ``run_dir`` (for :func:`resume`).

    Raises:
        ValueError: if ``run_dir`` has no checkpoint, or one without what a resume needs.
        CheckpointError: if the checkpoint file is corrupt.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    if not run_dir.is_dir():
        raise ValueError(f"cannot resume: '{run_dir}' is not a run directory")
    if not path.is_file():
        raise ValueError(f"cannot resume: '{run_dir}' has no {CHECKPOINT_NAME} (the run did "
                         f"not finish its first epoch)")
    checkpoint = load(path)
    needed = ("config", "epoch", "step", "model", "optimizer", "scheduler", "rng_state", "history")
    missing = [key for key in needed if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(f"cannot resume from '{path}': it lacks {', '.join(missing)} (written "
                         f"by an older deepnotes, or not by deepnotes train)")
    stored = checkpoint["config"]
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise ValueError(f"cannot resume from '{path}': its config has settings this deepnotes "
                         f"does not know: {', '.join(unknown)}")
    config = TrainConfig(**stored)
    # The run lives where it was found now, whatever out/name it was started with.
    config.out, config.name = str(run_dir.parent), run_dir.name
    return config, checkpoint


def resume(run_dir: str | Path, stdout: TextIO | None = None, stderr: TextIO | None = None, *,
           quiet: bool | None = None, threads: int | None = None) -> RunResult:
    """Continue the run in ``run_dir`` after its last finished epoch, with its stored config.

    Model, optimiser, lr schedule and the global random generator are restored from the
    checkpoint, so shuffling and dropout continue the same random stream: the weights and the
    per-epoch metrics end bit-identical to those of an uninterrupted run. The metrics files get
    the new epochs appended.

    Args:
        run_dir: the run directory (``runs/NAME``) holding ``checkpoint.safetensors``.
        stdout, stderr: as in :func:`train`.
        quiet: override the stored ``quiet`` setting.
        threads: override the stored BLAS thread count (may change the last bits of results).

    Returns:
        The run directory and the whole history (old and new epochs).
    """
    from threadpoolctl import threadpool_limits

    config, checkpoint = load_run_checkpoint(run_dir)
    if quiet is not None:
        config.quiet = quiet
    if threads is not None:
        config.threads = threads
    with threadpool_limits(limits=config.threads, user_api="blas"):
        return _train(config, stdout or sys.stdout, stderr or sys.stderr, checkpoint=checkpoint,
                      run_dir=Path(run_dir))


def _first_nonfinite(model: Any) -> str | None:
    """The name of the first parameter or buffer holding nan/inf, or None."""
    for name, value in model.state_dict().items():
        array = value.data
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return name
    return None


def _train(config: TrainConfig, stdout: TextIO, stderr: TextIO, *,
           checkpoint: dict[str, Any] | None = None, run_dir: Path | None = None) -> RunResult:
    from tqdm import tqdm

    from . import __version__

    started = time.perf_counter()
    now = datetime.now().isoformat(timespec="seconds")

    def say(line: str) -> None:
        if not config.quiet:
            print(line, file=stdout, flush=True)

    manual_seed(config.seed)  # model init and every epoch's shuffle follow from here
    train_set, test_set = load_dataset(config)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)
    model = get_model(config.model)
    _check_model_fits(model, train_set, config.model)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.effective_lr,
                               config.momentum, config.weight_decay)
    scheduler = None
    if config.lr_schedule == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

    if checkpoint is None:
        run_dir = make_run_dir(config.out, config.name, config.model)
        result = RunResult(run_dir)
        done, step, earlier_wall_time = 0, 0, 0.0
        started_at, resumed_at = now, []
    else:
        assert run_dir is not None
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        set_rng_state(checkpoint["rng_state"])  # the stream continues where the epoch left it
        result = RunResult(run_dir, [EpochResult(**h) for h in checkpoint["history"]])
        done, step = checkpoint["epoch"], checkpoint["step"]
        earlier_wall_time = float(checkpoint.get("wall_time_s", 0.0))
        started_at = checkpoint.get("started_at", now)
        resumed_at = [*checkpoint.get("resumed_at", []), now]
    checkpoint_path = run_dir / CHECKPOINT_NAME
    n_params = count_params(model)
    extra = {"model_params": n_params, "train_samples": len(train_set),
             "test_samples": len(test_set), "started_at": started_at,
             "deepnotes_version": __version__, "numpy_version": np.__version__,
             "python_version": platform.python_version(), "machine": platform.machine()}
    if resumed_at:
        extra["resumed_at"] = resumed_at
    if checkpoint is None:
        say(f"run {run_dir}: {config.model} ({n_params:,} params) on {config.dataset} "
            f"({len(train_set)} train / {len(test_set)} test), {config.optimizer} "
            f"lr={config.effective_lr:g} ({config.lr_schedule}), batch {config.batch_size}, "
            f"{config.epochs} epochs, seed {config.seed}")
    elif done >= config.epochs:
        print(f"run {run_dir} already finished its {config.epochs} epochs; nothing to resume",
              file=stdout, flush=True)
        return result
    else:
        say(f"run {run_dir}: resuming after epoch {done}/{config.epochs} (optimizer step "
            f"{step})")

    def diverged(what: str) -> TrainingDiverged:
        kept = (f"the checkpoint of epoch {done} is kept: {checkpoint_path}" if done else
                "no checkpoint was written (the first epoch did not finish)")
        return TrainingDiverged(f"training diverged: {what}; stopped, {kept}. Try a smaller "
                                f"--lr, or --grad-clip MAX_NORM")

    width = len(str(config.epochs))
    for epoch in range(done + 1, config.epochs + 1):
        epoch_start = time.perf_counter()
        total = len(train_loader) if config.limit_batches is None else \
            min(config.limit_batches, len(train_loader))
        try:
            with tqdm(total=total, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                      file=stderr, leave=False, disable=config.quiet, dynamic_ncols=True) as bar:
                train_loss, train_acc = train_one_epoch(model, train_loader, loss_fn, optimizer,
                                                        limit_batches=config.limit_batches,
                                                        progress=bar, grad_clip=config.grad_clip)
        except TrainingDiverged as err:
            batch = err.batch or 0
            raise diverged(f"the loss became {err.loss} at epoch {epoch}, batch {batch} "
                           f"(optimizer step {step + batch})") from err
        step += total
        lr = optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
        if scheduler is not None:
            scheduler.step()
        test_loss, test_acc = evaluate(model, test_loader, loss_fn,
                                       limit_batches=config.limit_batches)
        bad = _first_nonfinite(model)
        if bad is not None or not math.isfinite(test_loss):
            where = f"'{bad}' holds nan/inf" if bad else f"the test loss is {test_loss}"
            raise diverged(f"after epoch {epoch} (optimizer step {step}) {where}")
        done = epoch
        record = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc, lr,
                             round(time.perf_counter() - epoch_start, 3))
        result.history.append(record)
        result.wall_time_s = earlier_wall_time + time.perf_counter() - started
        save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
              "step": step, "scheduler": None if scheduler is None else scheduler.state_dict(),
              "config": asdict(config), "rng_state": get_rng_state(),
              "history": [asdict(h) for h in result.history], "deepnotes_version": __version__,
              "started_at": started_at, "resumed_at": resumed_at,
              "wall_time_s": result.wall_time_s},
             checkpoint_path)
        write_metrics(run_dir, config, result, extra)
        say(f"epoch {epoch:>{width}}/{config.epochs}  train loss {train_loss:.4f}  "
            f"acc {train_acc:7.2%}  |  test loss {test_loss:.4f}  acc {test_acc:7.2%}  "
            f"({record.time_s:.1f} s)")

    plot_curves(result.history, run_dir / "curves.png",
                title=f"{config.model} on {config.dataset} ({config.optimizer}, "
                      f"lr {config.effective_lr:g}, {config.lr_schedule})")
    result.wall_time_s = earlier_wall_time + time.perf_counter() - started
    write_metrics(run_dir, config, result, extra)
    best = max(result.history, key=lambda h: h.test_acc)
    print(f"final test accuracy {result.final_test_acc:.2%} (best {best.test_acc:.2%} at epoch "
          f"{best.epoch}), wall time {result.wall_time_s:.1f} s -> {run_dir}", file=stdout,
          flush=True)
    return result


def _check_model_fits(model: Any, dataset: Any, name: str) -> None:
    """Fail early, with a clear message, when the model cannot take the dataset's images."""
    x, _ = dataset[0]
    model.eval()
    try:
        with no_grad():
            model(x.reshape(1, *x.shape))
    except Exception as err:  # the layer's own error says which shape did not fit
        raise ValueError(f"model '{name}' does not accept {tuple(x.shape)} inputs of the "
                         f"digits dataset: {err}") from err
    finally:
        model.train()
