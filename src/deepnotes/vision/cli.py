"""``deepnotes detect train`` and ``deepnotes detect eval``: the small Faster R-CNN on shapes.

Registered in ``deepnotes.cli.build_parser`` by ``add_parser``; nothing heavy is imported here
at module level (the framework loads when a command runs).
"""

from __future__ import annotations

import argparse
import sys

from ..cli import _positive_float, _positive_int

DETECT_DESCRIPTION = """\
Object detection on the offline "shapes" data set (coloured squares, circles and
triangles on noisy 64x64 backgrounds, drawn deterministically; nothing is
downloaded) with faster_rcnn_small: a small ResNet + FPN backbone, an RPN and a
RoI Align head (deepnotes.models.detection)."""

TRAIN_DESCRIPTION = """\
Train faster_rcnn_small on shapes (train split: seed 0) and evaluate it on the
test split (seed 1). Writes into OUT/NAME/:
  checkpoint.safetensors  model + optimizer + iteration + config + random state
                          and batch order (every --ckpt-every iterations and
                          at the end; atomic); --resume continues from it
  metrics.json            losses every 50 iterations, mAPs, training time
  predictions.png         test images with predicted boxes"""

TRAIN_EPILOG = """\
examples:
  deepnotes detect train                        # about 5 min of CPU; 12 min on a busy machine
  deepnotes detect train --iters 200 --name quick
  deepnotes detect train --ohem --time-limit 15
  deepnotes detect train --resume runs/detect/shapes   # after Ctrl-C or a crash"""

EVAL_DESCRIPTION = """\
Evaluate the checkpoint of a run on the shapes test split: prints mAP@0.5 (PASCAL
VOC all-point), COCO mAP@[.5:.95] and COCO AP50, and draws a PNG grid of test
images with the predicted boxes (green) and the ground truth (white, dashed)."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``detect`` with its ``train`` and ``eval`` subcommands."""
    detect = subparsers.add_parser("detect", help="train / evaluate a small Faster R-CNN on the "
                                   "shapes detection data set", description=DETECT_DESCRIPTION,
                                   formatter_class=_Formatter)
    sub = detect.add_subparsers(dest="detect_command", title="commands", metavar="COMMAND")
    detect.set_defaults(func=lambda args: (detect.print_help(sys.stderr), 2)[1])

    t = sub.add_parser("train", help="train faster_rcnn_small on shapes",
                       description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG,
                       formatter_class=_Formatter)
    t.add_argument("--iters", type=_positive_int, default=3000, help="training iterations")
    t.add_argument("--batch-size", type=_positive_int, default=8, help="images per iteration")
    t.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="peak Adam learning rate (warm-up, then cosine decay)")
    t.add_argument("--ohem", action="store_true",
                   help="online hard example mining in the RoI head instead of random sampling")
    t.add_argument("--backbone", choices=["small", "resnet18_fpn"], default="small",
                   help="small: one BasicBlock per stage + FPN (fast); resnet18_fpn: the zoo's "
                        "narrow ResNet-18 + FPN (models.fpn.resnet_fpn, ~15%% slower)")
    t.add_argument("--train-size", type=_positive_int, default=2000, help="training images")
    t.add_argument("--test-size", type=_positive_int, default=300, help="test images")
    t.add_argument("--seed", type=int, default=0, help="seed of init, batches and flips")
    t.add_argument("--threads", type=_positive_int, default=1, help="BLAS threads")
    t.add_argument("--time-limit", type=_positive_float, default=None, metavar="MIN",
                   help="stop training after MIN minutes (then evaluate)")
    t.add_argument("--ckpt-every", type=_positive_int, default=500, metavar="N",
                   help="write the checkpoint every N iterations")
    t.add_argument("--out", default="runs/detect", help="parent of the run directories")
    t.add_argument("--name", default="shapes", help="run directory name")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR after the iteration of its checkpoint, "
                        "with the settings stored there (only --threads and --quiet may be "
                        "given with it); without --time-limit the result equals an "
                        "uninterrupted run")
    t.set_defaults(func=_run_train, train_parser=t)

    e = sub.add_parser("eval", help="mAP of a run's checkpoint and a PNG of its predictions",
                       description=EVAL_DESCRIPTION, formatter_class=_Formatter)
    e.add_argument("run_dir", metavar="RUN_DIR", help="e.g. runs/detect/shapes")
    e.add_argument("--test-size", type=_positive_int, default=None,
                   help="test images (default: the run's)")
    e.add_argument("--grid", default=None, metavar="PNG",
                   help="where to draw the predictions (default: RUN_DIR/predictions.png)")
    e.add_argument("--images", type=_positive_int, default=16, metavar="N",
                   help="test images drawn in the PNG grid (4 per row)")
    e.add_argument("--threads", type=_positive_int, default=1, help="BLAS threads")
    e.set_defaults(func=_run_eval)


def _run_train(args: argparse.Namespace) -> int:
    from functools import partial

    from ..io import CheckpointError
    from ..models.detection.engine import DetectConfig, resume_detector, train_detector

    if args.resume is not None:
        parser = args.train_parser
        defaults = vars(parser.parse_args([]))            # every option of detect train
        clashing = [f"--{name.replace('_', '-')}" for name, default in defaults.items()
                    if name not in ("resume", "threads", "quiet", "func", "train_parser")
                    and getattr(args, name) != default]
        if clashing:
            parser.error(f"argument --resume: cannot be combined with {', '.join(clashing)} (a "
                         f"resumed run keeps the settings stored in its checkpoint; only "
                         f"--threads and --quiet may be given)")
        run = partial(resume_detector, args.resume, threads=args.threads,
                      quiet=args.quiet or None)
    else:
        name = args.name
        if not name or "/" in name or name in (".", ".."):
            print(f"deepnotes detect train: error: --name should be a plain directory name, "
                  f"got '{name}'", file=sys.stderr)
            return 2
        config = DetectConfig(iters=args.iters, batch_size=args.batch_size, lr=args.lr,
                              ohem=args.ohem, backbone=args.backbone,
                              train_size=args.train_size, test_size=args.test_size,
                              seed=args.seed, threads=args.threads, time_limit=args.time_limit,
                              ckpt_every=args.ckpt_every, out=args.out, name=name,
                              quiet=args.quiet)
        run = partial(train_detector, config)
    try:
        run()
    except CheckpointError as err:                      # --resume: no usable checkpoint
        print(f"deepnotes detect train: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"deepnotes detect train: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..io import CheckpointError
    from ..models.detection.engine import evaluate_run

    if not (Path(args.run_dir) / "checkpoint.safetensors").is_file():
        print(f"deepnotes detect eval: error: no checkpoint.safetensors in '{args.run_dir}'",
              file=sys.stderr)
        return 2
    try:
        evaluate_run(args.run_dir, args.test_size, args.grid, args.threads,
                     images=args.images)
    except CheckpointError as err:
        print(f"deepnotes detect eval: error: {err}", file=sys.stderr)
        return 1
    return 0
