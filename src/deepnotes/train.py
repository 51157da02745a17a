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
from .data import DataLoader, Dataset, Subset, datasets
from .data.transforms import resize
from .io import atomic_write, load, save
from .models import get_model
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor

#: Learning rate used when ``--lr`` is not given, per optimizer.
DEFAULT_LR = {"sgd": 0.05, "adam": 0.003}
OPTIMIZERS = tuple(DEFAULT_LR)
LR_SCHEDULES = ("cosine", "constant")
#: Data sets of ``--data``: the bundled digits, or real files from ``--data-dir`` (data/files.py).
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
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
    distributed: bool = False          # data parallel over mpiexec's ranks (docs/distributed.md)
    image_size: int | None = None      # digits upscaled to this; None: automatic (load_dataset)
    data_dir: str | None = None        # folder of the mnist / fashion-mnist / cifar10 files
    early_stopping: int | None = None  # patience in epochs on the validation loss; None: off
    early_stopping_min_delta: float = 0.0  # a smaller drop of the loss is no improvement
    val_fraction: float = 0.1          # with early_stopping: share of the training set held out

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
        if self.image_size is not None and (not isinstance(self.image_size, int)
                                            or not 8 <= self.image_size <= 1024):
            raise ValueError(f"image_size must be an integer in [8, 1024], got "
                             f"{self.image_size!r}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be a positive integer, got {self.threads}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got '{self.dataset}'")
        if self.dataset != "digits" and self.data_dir is None:
            raise ValueError(f"dataset '{self.dataset}' is read from local files: give their "
                             f"folder with --data-dir (deepnotes never downloads data)")
        if self.early_stopping is not None and (not isinstance(self.early_stopping, int)
                                                or self.early_stopping <= 0):
            raise ValueError(f"early_stopping (the patience) must be a positive integer, got "
                             f"{self.early_stopping!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

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
    val_loss: float | None = None      # with early stopping: on the held-out validation split
    val_acc: float | None = None


@dataclass
class RunResult:
    run_dir: Path
    history: list[EpochResult] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def final_test_acc(self) -> float:
        return self.history[-1].test_acc if self.history else math.nan


class EarlyStopping:
    """Stop training when the held-out loss stops improving (notes 001 "提前终止", 004 Q19).

    After every epoch, ``step(loss, epoch, model)``: the loss improves when it is below
    ``best - min_delta``; after ``patience`` epochs in a row without improvement it says stop.
    With ``restore_best`` it keeps a copy of the weights of the best epoch, and ``restore(model)``
    puts them back, so the run ends with the model from before it started to overfit.

    ``deepnotes train`` monitors the loss on a validation split held out of the training set
    (``--val-fraction``, 10 % by default), never the test set, so the test numbers of a run that
    stopped early are not biased by the choice of the epoch. Its state, the best weights
    included, goes into the checkpoint, so ``--resume`` continues the count exactly.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, restore_best: bool = True):
        if not isinstance(patience, int) or patience <= 0:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        if not 0 <= min_delta < math.inf:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta}")
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best
        self.best = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.best_state: dict[str, Any] | None = None

    def step(self, loss: float, epoch: int, model: Any = None) -> bool:
        """Record epoch ``epoch``'s held-out loss; True when training should stop."""
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(loss), epoch, 0
            if self.restore_best and model is not None:
                from .tensor import Tensor as _Tensor

                self.best_state = {k: _Tensor._wrap(v.data.copy())
                                   for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= self.patience
        return self.stopped

    def restore(self, model: Any) -> bool:
        """Load the best epoch's weights into ``model`` (if kept); True if it did."""
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best,
                "best": None if math.isinf(self.best) else self.best,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "stopped": self.stopped, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.best_epoch, self.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
        self.stopped, self.best_state = bool(state["stopped"]), state.get("best_state")


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
        aux_outputs: list[Any] = []  # GoogLeNet / Inception v3 in training mode: (logits, aux...)
        if isinstance(logits, tuple):
            logits, *aux_outputs = logits
        loss = loss_fn(logits, y)
        for aux in aux_outputs:  # the auxiliary classifiers' losses, weighted 0.3 (GoogLeNet paper)
            if aux is not None:
                loss = loss + 0.3 * loss_fn(aux, y)
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
    validated = [h for h in history if h.val_loss is not None]
    if validated:
        ax_loss.plot([h.epoch for h in validated], [h.val_loss for h in validated], "^-",
                     label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, [100 * h.train_acc for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h.test_acc for h in history], "s-", label="test")
    if validated:
        ax_acc.plot([h.epoch for h in validated], [100 * h.val_acc for h in validated], "^-",
                    label="validation")
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
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time_s",
               "val_loss", "val_acc"]
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(run_dir / "metrics.csv", text.getvalue().encode())


#: Image sizes tried, in order, when ``image_size`` is None, for models whose first convolution
#: takes 1 channel (the digits' own 8x8 first) and for those that take 3 (colour models are made
#: for natural images: the CIFAR size 32x32 first, which the ``*_cifar`` models and the global
#: pooling of most ImageNet models take; then sizes for models that shrink their input more).
AUTO_IMAGE_SIZES = {1: (8, 32), 3: (32, 64, 96, 224)}


class ResizedImages(Dataset):
    """(image, label) samples with the image resized (bilinear, ``data.transforms.resize``) to
    ``size`` x ``size`` and a grey channel repeated to ``channels``, made one sample at a time
    (224x224x3 copies of all 1,797 digits would take a gigabyte)."""

    def __init__(self, dataset: Any, size: int, channels: int):
        self.dataset, self.size, self.channels = dataset, size, channels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self.dataset[index]
        resized = resize(image.data, (self.size, self.size))           # (C_img, S, S)
        if resized.shape[0] != self.channels:                          # grey -> C copies
            resized = np.repeat(resized, self.channels, axis=0)        # (C, S, S)
        return Tensor._wrap(resized), label


def _input_channels(model: Any) -> int:
    """The in_channels of the model's first convolution (1 for a model without one)."""
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            return int(module.in_channels)
    return 1


def _out_features(model: Any) -> int | None:
    """out_features of the model's last Linear layer (None for a model without one)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else None


def _check_gives_class_scores(model: Any, dataset: Any, name: str) -> None:
    """Refuse a model whose output is not (N, classes) scores (e.g. CRNN's (T, N, classes))."""
    x, _ = dataset[0]
    model.eval()
    try:
        with no_grad():
            shape = tuple(model(x.reshape(1, *x.shape)).shape)
    finally:
        model.train()
    if len(shape) != 2 or shape[0] != 1:
        raise ValueError(f"model '{name}' gives outputs of shape {shape} for one image, not "
                         f"(1, classes) class scores: deepnotes train trains classifiers")


def _raw_datasets(config: TrainConfig) -> tuple[Any, Any]:
    """(train, test) of ``config.dataset``: the bundled digits, or the real files in
    ``config.data_dir`` (data/files.py; a ValueError naming the missing files if absent)."""
    if config.dataset == "digits":
        return datasets.digits()
    from .data import files

    loaders = {"mnist": files.mnist, "fashion-mnist": files.fashion_mnist,
               "cifar10": files.cifar10}
    try:
        return loaders[config.dataset](config.data_dir)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err


def validation_split(train_set: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, validation) subsets of ``train_set``: ``round(fraction * n)`` samples (at least
    one, and at least one left to train on) picked by a permutation of its own generator seeded
    with ``seed``, so the split is the same on every run and rank and on resume, and drawing it
    leaves the global random stream (model init, shuffling) as it is without a split."""
    n = len(train_set)
    if n < 2:
        raise ValueError(f"early stopping needs a validation split, but the training set has "
                         f"only {n} sample(s)")
    n_val = min(max(1, round(fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return (Subset(train_set, sorted(order[n_val:].tolist())),
            Subset(train_set, sorted(order[:n_val].tolist())))


def load_dataset(config: TrainConfig, model: Any = None) -> tuple[Any, Any]:
    """The digits (train, test), shaped for ``model`` when one is given.

    Without ``config.image_size`` the first size of :data:`AUTO_IMAGE_SIZES` (for the model's
    number of input channels) that the model accepts is used; with it, that size. Images other
    than 8x8 are upscaled bilinearly, and the grey channel is repeated when the model's first
    convolution takes 3 channels.

    Raises:
        ValueError: the model accepts none of those sizes.
    """
    train_set, test_set = _raw_datasets(config)
    if model is None:
        return train_set, test_set
    if config.dataset != "digits" and config.image_size is None:
        try:  # the files' own images (1x28x28, 3x32x32) when the model takes them as they are
            _check_model_fits(model, train_set, config.model)
            _check_gives_class_scores(model, train_set, config.model)
            return train_set, test_set
        except ValueError:
            pass  # resized below, as the digits are
    channels = _input_channels(model)
    auto = AUTO_IMAGE_SIZES.get(channels, AUTO_IMAGE_SIZES[3])
    sizes = auto if config.image_size is None else (config.image_size,)
    native = tuple(train_set[0][0].shape)                               # (1, 8, 8)
    first_error = None
    for size in sizes:
        if native == (channels, size, size):
            candidate = (train_set, test_set)
        else:
            candidate = (ResizedImages(train_set, size, channels),
                         ResizedImages(test_set, size, channels))
        try:
            _check_model_fits(model, candidate[0], config.model)
        except ValueError as err:
            first_error = first_error or err
            continue
        _check_gives_class_scores(model, candidate[0], config.model)
        return candidate
    others = f" (nor at {', '.join(f'{s}x{s}' for s in sizes[1:])})" if len(sizes) > 1 else ""
    raise ValueError(f"{first_error}{others}; choose an input size with --image-size "
                     f"(the digits are upscaled to it)") from first_error


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
           quiet: bool | None = None, threads: int | None = None,
           distributed: bool | None = None) -> RunResult:
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
        distributed: override the stored setting (a run resumes on any number of ranks).

    Returns:
        The run directory and the whole history (old and new epochs).
    """
    from threadpoolctl import threadpool_limits

    config, checkpoint = load_run_checkpoint(run_dir)
    if quiet is not None:
        config.quiet = quiet
    if threads is not None:
        config.threads = threads
    if distributed is not None:
        config.distributed = distributed
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
    model = get_model(config.model)  # (loading the digits draws no random numbers)
    if _out_features(model) == 1000:  # an ImageNet-size zoo model: rebuilt for the 10 classes
        manual_seed(config.seed)
        model = get_model(config.model, num_classes=10)
    train_set, test_set = load_dataset(config, model)  # shaped for the model, or ValueError
    if getattr(model, "AuxLogits", None) is not None and min(train_set[0][0].shape[-2:]) < 299:
        model.AuxLogits = None  # Inception v3's auxiliary head needs 299x299 images: left out
    val_set = None
    if config.early_stopping is not None:  # the split early stopping watches, never trained on
        train_set, val_set = validation_split(train_set, config.val_fraction, config.seed)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)
    run = None  # --distributed: SyncBN + DDP over the MPI ranks (deepnotes.distributed.training)
    if config.distributed:
        from .distributed.training import DistributedRun

        run = DistributedRun(config, model, train_set, test_set)
        train_loader, test_loader = run.train_loader, run.test_loader
        if run.rank != 0:  # one voice: only rank 0 prints, shows the bar and writes files
            stdout = stderr = _stdio.StringIO()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.effective_lr,
                               config.momentum, config.weight_decay)
    scheduler = None
    if config.lr_schedule == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

    if checkpoint is None:
        run_dir = (make_run_dir(config.out, config.name, config.model) if run is None
                   else run.make_run_dir(make_run_dir, config))  # rank 0 makes it
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
    stopper = None  # --early-stopping: patience on the validation loss, state in the checkpoint
    if config.early_stopping is not None:
        stopper = EarlyStopping(config.early_stopping, config.early_stopping_min_delta)
        val_loader = DataLoader(val_set, batch_size=256)
        if checkpoint is not None and checkpoint.get("early_stopping") is not None:
            stopper.load_state_dict(checkpoint["early_stopping"])
    n_params = count_params(model)
    extra = {"model_params": n_params, "input_shape": list(train_set[0][0].shape),
             "train_samples": len(train_set),
             "test_samples": len(test_set), "started_at": started_at,
             **({} if val_set is None else {"val_samples": len(val_set)}),
             "deepnotes_version": __version__, "numpy_version": np.__version__,
             "python_version": platform.python_version(), "machine": platform.machine()}
    if resumed_at:
        extra["resumed_at"] = resumed_at
    if checkpoint is None:
        say(f"run {run_dir}: {config.model} ({n_params:,} params) on {config.dataset} "
            f"({len(train_set)} train / "
            f"{'' if val_set is None else f'{len(val_set)} validation / '}{len(test_set)} test), "
            f"{config.optimizer} "
            f"lr={config.effective_lr:g} ({config.lr_schedule}), batch {config.batch_size}, "
            f"{config.epochs} epochs, seed {config.seed}")
    elif done >= config.epochs or (stopper is not None and stopper.stopped):
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
        if run is not None:
            run.start_epoch(epoch)  # the same permutation on every rank
        total = len(train_loader) if config.limit_batches is None else \
            min(config.limit_batches, len(train_loader))
        try:
            with tqdm(total=total, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                      file=stderr, leave=False, disable=config.quiet, dynamic_ncols=True) as bar:
                train_loss, train_acc = train_one_epoch(model if run is None else run.net,
                                                        train_loader, loss_fn, optimizer,
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
        if run is not None:  # each rank saw its shards: the numbers of the whole sets
            train_loss, train_acc, test_loss, test_acc = run.reduce_metrics(
                train_loss, train_acc, test_loss, test_acc)
        val_loss = val_acc = None
        if stopper is not None:  # every rank evaluates the whole (small) validation split
            val_loss, val_acc = evaluate(model, val_loader, loss_fn,
                                         limit_batches=config.limit_batches)
        bad = _first_nonfinite(model)
        broken = next((f"the {name} loss is {value}" for name, value in
                       (("test", test_loss), ("validation", val_loss))
                       if value is not None and not math.isfinite(value)), None)
        if bad is not None or broken is not None:
            where = f"'{bad}' holds nan/inf" if bad else broken
            raise diverged(f"after epoch {epoch} (optimizer step {step}) {where}")
        done = epoch
        record = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc, lr,
                             round(time.perf_counter() - epoch_start, 3), val_loss, val_acc)
        result.history.append(record)
        if stopper is not None:
            stopper.step(val_loss, epoch, model)
        result.wall_time_s = earlier_wall_time + time.perf_counter() - started
        if run is None or run.rank == 0:  # --distributed: rank 0 writes the run directory
            save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "epoch": epoch, "step": step,
                  "scheduler": None if scheduler is None else scheduler.state_dict(),
                  "config": asdict(config), "rng_state": get_rng_state(),
                  "history": [asdict(h) for h in result.history],
                  "deepnotes_version": __version__, "started_at": started_at,
                  "resumed_at": resumed_at, "wall_time_s": result.wall_time_s,
                  "early_stopping": None if stopper is None else stopper.state_dict()},
                 checkpoint_path)
            write_metrics(run_dir, config, result, extra)
        validation = ("" if val_loss is None else
                      f"  |  val loss {val_loss:.4f}  acc {val_acc:7.2%}")
        say(f"epoch {epoch:>{width}}/{config.epochs}  train loss {train_loss:.4f}  "
            f"acc {train_acc:7.2%}{validation}  |  test loss {test_loss:.4f}  "
            f"acc {test_acc:7.2%}  ({record.time_s:.1f} s)")
        if stopper is not None and stopper.stopped:
            say(f"early stopping: the validation loss has not improved for {stopper.patience} "
                f"epochs (best {stopper.best:.4f} at epoch {stopper.best_epoch})")
            break

    if run is not None and run.rank != 0:  # rank 0 writes the curves and the final metrics
        return result
    plot_curves(result.history, run_dir / "curves.png",
                title=f"{config.model} on {config.dataset} ({config.optimizer}, "
                      f"lr {config.effective_lr:g}, {config.lr_schedule})")
    if stopper is not None:
        restored = stopper.restore(model)  # the weights of the best epoch
        extra["early_stopping"] = {"patience": stopper.patience, "stopped": stopper.stopped,
                                   "best_epoch": stopper.best_epoch,
                                   "best_val_loss": stopper.best, "restored_best": restored}
    from .metrics.report import write_test_report  # confusion matrix, ROC/PR curves (PNGs)

    extra["test_metrics"] = write_test_report(model, test_set, run_dir,
                                              limit_batches=config.limit_batches)
    result.wall_time_s = earlier_wall_time + time.perf_counter() - started
    write_metrics(run_dir, config, result, extra)
    if stopper is not None and extra["early_stopping"]["restored_best"]:
        # The model now holds the best epoch's weights: report the test accuracy of those.
        summary = (f"final test accuracy {extra['test_metrics']['accuracy']:.2%} (the weights "
                   f"of epoch {stopper.best_epoch}, restored by early stopping; the last "
                   f"epoch's {result.final_test_acc:.2%})")
    else:
        best = max(result.history, key=lambda h: h.test_acc)
        summary = (f"final test accuracy {result.final_test_acc:.2%} (best {best.test_acc:.2%} "
                   f"at epoch {best.epoch})")
    print(f"{summary}, wall time {result.wall_time_s:.1f} s -> {run_dir}", file=stdout,
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
