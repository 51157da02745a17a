"""The ``deepnotes`` command line.

    deepnotes train [--model digits_cnn] [--epochs 10] [--optimizer adam] ...
    deepnotes --version

Each subcommand registers itself with :func:`_add_train` style functions on the subparsers, and
sets ``func`` to the function that runs it; later subcommands (``summary``, ``experiment``) slot in
the same way. Heavy imports (the framework, matplotlib, scikit-learn) happen only when a command
runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from . import __version__

DESCRIPTION = """\
deepnotes: deep learning from first principles, on NumPy, with PyTorch's API.

Every op is a hand-derived forward/backward checked against PyTorch. These commands
train and inspect models with it on a laptop CPU."""

TRAIN_DESCRIPTION = """\
Train a model on the 8x8 handwritten digits (scikit-learn's bundled copy: 1,797
images, split 80/20 per class with a fixed seed; nothing is downloaded).

Prints train/test loss and accuracy after every epoch, and writes into OUT/NAME/:
  checkpoint.safetensors  model + optimizer state + epoch (no pickle; rewritten
                          atomically every epoch; read it back with deepnotes.load)
  metrics.json            per-epoch numbers, the config, final accuracy, wall time,
                          the test set's precision/recall/F1, ROC AUC and AP per class
  metrics.csv             one row per epoch
  curves.png              loss and accuracy per epoch, train vs test
  confusion_matrix.png    the final model's confusion matrix on the test set
  roc_curves.png, pr_curves.png   one-vs-rest ROC and precision-recall curves

A run that was interrupted (Ctrl-C, a crash, a killed job) continues with
--resume OUT/NAME from its last finished epoch, with the config stored in its
checkpoint; the result is bit-identical to a run that was never interrupted.
If the loss becomes nan or inf the run stops with an error (exit status 1) and
keeps the checkpoint of its last good epoch.

The defaults reach 98-99% test accuracy in about 5 seconds on 2 CPU cores."""

TRAIN_EPILOG = """\
examples:
  deepnotes train
  deepnotes train --model mlp --epochs 30 --optimizer sgd --lr 0.1
  deepnotes train --epochs 5 --seed 1 --out /tmp/runs --name try1 --quiet
  deepnotes train --resume /tmp/runs/try1
  deepnotes train --optimizer sgd --lr 0.5 --grad-clip 1.0
  deepnotes train --model mobilenet_v2_cifar --epochs 3   (digits upscaled to 3x32x32)
  deepnotes train --model lenet5 --image-size 28
  mpiexec -n 2 deepnotes train --distributed   (data parallel on 2 processes)"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions; append "(default: X)" where there is a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False  # (0 == False, so "is")
        if not hidden and action.default != argparse.SUPPRESS and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not 0 < value < math.inf:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got '{text}'") from None
    if not 0 < value < 1:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value}")
    return value


def _model_name(text: str) -> str:
    from .models import list_models

    if text not in list_models():
        raise argparse.ArgumentTypeError(f"unknown model '{text}'; available: "
                                         f"{', '.join(list_models())}")
    return text


class _Given(argparse.Action):
    """A plain store action that also notes which options were given on the command line
    (``--resume`` takes the run's settings from its checkpoint and rejects the others)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given_options = (*namespace.given_options, option_string)


#: Options that may go with --resume (they do not change the run's arithmetic settings).
_RESUME_OPTIONS = ("--threads",)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    # Kept free of heavy imports: the model list and defaults are plain data.
    from .train import DEFAULT_LR, LR_SCHEDULES, TrainConfig

    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a model on the 8x8 digits and save checkpoint, metrics and curves",
        description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG, formatter_class=_Formatter)

    def option(*names: str, **kwargs: object) -> None:  # an option that --resume would reject
        p.add_argument(*names, action=_Given, **kwargs)  # type: ignore[arg-type]

    option("--model", type=_model_name, default=defaults.model, metavar="NAME",
           help="model to train (digits_cnn, mlp, mobilenet_v2_cifar, resnet18...; see "
                "deepnotes.models.list()); models that need larger or 3-channel images get "
                "the digits upscaled (see --image-size)")
    option("--epochs", type=_positive_int, default=defaults.epochs, metavar="N",
           help="passes over the training set")
    option("--batch-size", type=_positive_int, default=defaults.batch_size, metavar="B",
           help="samples per mini-batch")
    option("--optimizer", choices=sorted(DEFAULT_LR), default=defaults.optimizer,
           help="update rule")
    option("--lr", type=_positive_float, default=None, metavar="LR",
           help="learning rate (default: "
                + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    option("--momentum", type=_non_negative_float, default=defaults.momentum, metavar="M",
           help="SGD momentum (ignored by adam)")
    option("--weight-decay", type=_non_negative_float, default=defaults.weight_decay,
           metavar="W", help="L2 penalty coefficient added to the gradient")
    option("--lr-schedule", choices=list(LR_SCHEDULES), default=defaults.lr_schedule,
           help="cosine: anneal the lr to 0 over the epochs (one step per epoch); "
                "constant: keep it")
    option("--seed", type=int, default=defaults.seed, metavar="S",
           help="seed of weight init and shuffling (deepnotes.manual_seed)")
    option("--out", default=defaults.out, metavar="DIR",
           help="parent directory of the run directories")
    option("--name", default=None, metavar="NAME",
           help="run directory name (default: MODEL-YYYYmmdd-HHMMSS, made unique)")
    option("--threads", type=_positive_int, default=defaults.threads, metavar="T",
           help="threads of NumPy's BLAS for this run; digits_cnn's matrices "
                "are small, so more threads save little and slow the run down badly "
                "when the cores are busy with other work")
    option("--limit-batches", type=_positive_int, default=None, metavar="N",
           help="use at most N batches per epoch for training and for testing "
                "(quick smoke runs)")
    option("--image-size", type=_positive_int, default=None, metavar="S",
           help="upscale the 8x8 digits bilinearly to SxS (grey repeated to 3 channels when "
                "the model's first convolution takes 3); default: the digits' own 8x8 for "
                "1-channel models that take it, else the first of 32, 64, 96, 224 that the "
                "model takes (32 for the *_cifar models)")
    option("--grad-clip", type=_positive_float, default=None,
           metavar="MAX_NORM",
           help="rescale the gradients before each step so that their total 2-norm is "
                "at most MAX_NORM (nn.utils.clip_grad_norm_); off by default")
    option("--data", choices=["digits", "mnist", "fashion-mnist", "cifar10"],
           default=defaults.dataset, dest="dataset",
           help="data set: the bundled 8x8 digits, or MNIST / Fashion-MNIST (IDX files, .gz "
                "or not) / CIFAR-10 (binary batches) read from --data-dir; never downloaded")
    option("--data-dir", default=None, metavar="PATH",
           help="folder holding the data files (or torchvision's MNIST/raw, "
                "FashionMNIST/raw, cifar-10-batches-bin below it)")
    option("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
           help="hold out --val-fraction of the training set, stop when the loss on it has not "
                "improved for PATIENCE epochs and keep the weights of the best epoch (the test "
                "set plays no part in the choice); off by default")
    option("--early-stopping-min-delta", type=_non_negative_float,
           default=defaults.early_stopping_min_delta, metavar="DELTA",
           help="with --early-stopping: a drop of the validation loss smaller than DELTA is no "
                "improvement")
    option("--val-fraction", type=_fraction, default=defaults.val_fraction, metavar="F",
           help="with --early-stopping: the share of the training set held out as the "
                "validation split (the same split on every run with the same --seed; "
                "default %(default)s)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (e.g. runs/NAME) after its last finished "
                        "epoch, with the settings stored in its checkpoint (only --threads, "
                        "--quiet and --distributed may be given with it); metrics are appended")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or per-epoch lines; print only the final summary")
    p.add_argument("--distributed", action="store_true",
                   help="data parallel over the ranks of mpiexec -n N (SyncBatchNorm + "
                        "DistributedDataParallel; --batch-size is the global batch; rank 0 "
                        "writes); may go with --resume, on any N (docs/distributed.md)")
    p.set_defaults(func=_run_train, given_options=(), parser=p)


def _stop_other_ranks() -> None:
    """With --distributed the other ranks may be waiting in a collective for this one: end them
    all (MPI_Abort). Nothing happens outside a process group of two or more ranks."""
    from .distributed import abort

    abort("deepnotes train stopped on the error above")


def _run_train(args: argparse.Namespace) -> int:
    from .io import CheckpointError
    from .train import TrainConfig, TrainingDiverged, resume, train

    if args.resume is not None:
        clashing = [o for o in args.given_options if o not in _RESUME_OPTIONS]
        if clashing:
            args.parser.error(f"argument --resume: cannot be combined with "
                              f"{', '.join(dict.fromkeys(clashing))} (a resumed run keeps the "
                              f"settings stored in its checkpoint; only --threads and --quiet "
                              f"may be given)")
    try:
        if args.resume is not None:
            threads = args.threads if "--threads" in args.given_options else None
            resume(args.resume, quiet=args.quiet or None, threads=threads,
                   distributed=args.distributed or None)
        else:
            train(TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                              weight_decay=args.weight_decay, lr_schedule=args.lr_schedule,
                              seed=args.seed, threads=args.threads, out=args.out,
                              name=args.name, quiet=args.quiet,
                              limit_batches=args.limit_batches, grad_clip=args.grad_clip,
                              image_size=args.image_size, distributed=args.distributed,
                              dataset=args.dataset, data_dir=args.data_dir,
                              early_stopping=args.early_stopping,
                              early_stopping_min_delta=args.early_stopping_min_delta,
                              val_fraction=args.val_fraction))
    except ValueError as err:  # bad combination of settings (e.g. a model that does not fit)
        print(f"deepnotes train: error: {err}", file=sys.stderr)
        _stop_other_ranks()
        return 2
    except (TrainingDiverged, CheckpointError) as err:
        print(f"deepnotes train: error: {err}", file=sys.stderr)
        _stop_other_ranks()
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the checkpoint of the last finished epoch is kept (continue "
              "with: deepnotes train --resume OUT/NAME)", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="deepnotes", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepnotes {__version__}")
    subparsers = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _add_train(subparsers)
    # Every other command lives beside the code it drives, in a module with an
    # ``add_parser(subparsers)`` that imports nothing heavy at module level.
    # One line per command, in the order ``deepnotes --help`` lists them:
    from .experiments.cli import add_parser as _add_experiment; _add_experiment(subparsers)  # noqa: E702, I001
    from .analysis.cli import add_parser as _add_summary; _add_summary(subparsers)  # noqa: E702, I001
    from .vision.cli import add_parser as _add_detect; _add_detect(subparsers)  # noqa: E702, I001
    from .nas.cli import add_parser as _add_nas; _add_nas(subparsers)  # noqa: E702, I001
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepnotes`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `deepnotes summary ... | head` closed the pipe: not an error
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
