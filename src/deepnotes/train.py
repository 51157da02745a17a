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

* ``checkpoint.safetensors`` -- ``{"model", "optimizer", "scheduler", "epoch", "config",
  "rng_state"}`` (state dicts in PyTorch's format), rewritten atomically after every epoch with
  ``deepnotes.save``, so an interrupted run keeps its last finished epoch;
* ``metrics.json`` and ``metrics.csv`` -- per-epoch numbers, the config, final accuracy, wall time;
* ``curves.png`` -- loss and accuracy per epoch, train vs test.
"""

from __future__ import annotations

import csv
import io as _stdio
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import nn, optim
from .autograd import no_grad
from .data import DataLoader, datasets
from .io import atomic_write, save
from .models import get_model
from .random import get_rng_state, manual_seed

#: Learning rate used when ``--lr`` is not given, per optimizer.
DEFAULT_LR = {"sgd": 0.05, "adam": 0.003}
OPTIMIZERS = tuple(DEFAULT_LR)
LR_SCHEDULES = ("cosine", "constant")


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

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got '{self.optimizer}'")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.limit_batches is not None and self.limit_batches <= 0:
            raise ValueError(f"limit_batches must be a positive integer, got {self.limit_batches}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.momentum < 0:
            raise ValueError(f"weight_decay and momentum must be >= 0, got "
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
                    limit_batches: int | None = None, progress: Any = None) -> tuple[float, float]:
    """One pass of SGD steps over ``loader``. Returns (mean loss, accuracy in [0, 1])."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for i, (x, y) in enumerate(loader):
        if limit_batches is not None and i >= limit_batches:
            break
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n = len(y)
        loss_sum += loss.item() * n
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
    """
    from threadpoolctl import threadpool_limits

    # BLAS threads for this run only; the caller's setting comes back afterwards.
    with threadpool_limits(limits=config.threads, user_api="blas"):
        return _train(config, stdout or sys.stdout, stderr or sys.stderr)


def _train(config: TrainConfig, stdout: TextIO, stderr: TextIO) -> RunResult:
    from tqdm import tqdm

    from . import __version__

    started = time.perf_counter()
    started_at = datetime.now().isoformat(timespec="seconds")

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

    run_dir = make_run_dir(config.out, config.name, config.model)
    result = RunResult(run_dir)
    n_params = count_params(model)
    extra = {"model_params": n_params, "train_samples": len(train_set),
             "test_samples": len(test_set), "started_at": started_at,
             "deepnotes_version": __version__, "numpy_version": np.__version__,
             "python_version": platform.python_version(), "machine": platform.machine()}
    say(f"run {run_dir}: {config.model} ({n_params:,} params) on {config.dataset} "
        f"({len(train_set)} train / {len(test_set)} test), {config.optimizer} "
        f"lr={config.effective_lr:g} ({config.lr_schedule}), batch {config.batch_size}, "
        f"{config.epochs} epochs, seed {config.seed}")

    width = len(str(config.epochs))
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        total = len(train_loader) if config.limit_batches is None else \
            min(config.limit_batches, len(train_loader))
        with tqdm(total=total, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                  file=stderr, leave=False, disable=config.quiet, dynamic_ncols=True) as bar:
            train_loss, train_acc = train_one_epoch(model, train_loader, loss_fn, optimizer,
                                                    limit_batches=config.limit_batches,
                                                    progress=bar)
        lr = optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
        if scheduler is not None:
            scheduler.step()
        test_loss, test_acc = evaluate(model, test_loader, loss_fn,
                                       limit_batches=config.limit_batches)
        record = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc, lr,
                             round(time.perf_counter() - epoch_start, 3))
        result.history.append(record)
        save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
              "scheduler": None if scheduler is None else scheduler.state_dict(),
              "config": asdict(config), "rng_state": get_rng_state()},
             run_dir / "checkpoint.safetensors")
        result.wall_time_s = time.perf_counter() - started
        write_metrics(run_dir, config, result, extra)
        say(f"epoch {epoch:>{width}}/{config.epochs}  train loss {train_loss:.4f}  "
            f"acc {train_acc:7.2%}  |  test loss {test_loss:.4f}  acc {test_acc:7.2%}  "
            f"({record.time_s:.1f} s)")

    plot_curves(result.history, run_dir / "curves.png",
                title=f"{config.model} on {config.dataset} ({config.optimizer}, "
                      f"lr {config.effective_lr:g}, {config.lr_schedule})")
    result.wall_time_s = time.perf_counter() - started
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
