"""``deepnotes summary MODEL --input C,H,W [--batch-size N] [--json]``.

Builds the registered model ``MODEL`` (``deepnotes.models.get_model``), runs
``analysis.summary`` on it and prints the table (or, with ``--json``, the data). Nothing heavy is
imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys

from ..cli import _positive_int

DESCRIPTION = """\
Print one row per layer of a model from the zoo: output shape, parameters,
multiply-accumulates (MACs; FLOPs = 2 x MACs for conv/linear), receptive field
(size, jump, start in input pixels, propagated along the recorded graph, so
ResNet/Inception/DenseNet branches are handled) and activation memory, with
totals at the bottom. One forward pass on zeros in eval mode."""

EPILOG = """\
examples:
  deepnotes summary resnet18 --input 3,224,224
  deepnotes summary lenet5 --input 1,32,32 --json
  deepnotes summary digits_cnn --input 1,8,8 --batch-size 64"""


def _input_size(text: str) -> tuple[int, ...]:
    """'3,224,224' -> (3, 224, 224); every entry a positive int."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers like 3,224,224, got '{text}'") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers like 3,224,224, got '{text}'")
    return sizes


def _model_name(text: str) -> str:
    from ..models import list_models

    if text not in list_models():
        raise argparse.ArgumentTypeError(f"unknown model '{text}'; available: "
                                         f"{', '.join(list_models())}")
    return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``summary`` on the top-level parser's subparsers."""
    p = subparsers.add_parser(
        "summary", help="per-layer table of shapes, parameters, MACs/FLOPs, receptive fields",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=_model_name, metavar="MODEL",
                   help="a registered model name (see deepnotes.models.list_models())")
    p.add_argument("--input", type=_input_size, required=True, metavar="C,H,W",
                   help="input size without the batch dimension, channels first")
    p.add_argument("--batch-size", type=_positive_int, default=1, metavar="N",
                   help="batch size N (MACs and activation memory scale with it; default 1)")
    p.add_argument("--json", action="store_true", help="print the rows and totals as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..models import get_model
    from .summary import summary

    try:
        model = get_model(args.model)
        result = summary(model, args.input, batch_size=args.batch_size)
    except (ValueError, RuntimeError, TypeError, IndexError) as err:
        print(f"deepnotes summary: error: {args.model} does not run on input "
              f"{','.join(map(str, args.input))}: {err}", file=sys.stderr)
        return 2
    result.model = args.model
    print(result.to_json() if args.json else result)
    return 0
