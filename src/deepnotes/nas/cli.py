"""``deepnotes nas search`` and ``deepnotes nas retrain`` (no heavy import at module level)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import _non_negative_float, _positive_int

SEARCH_METHODS = ("darts", "darts2", "gdas", "snas", "pc-darts", "p-darts", "spos")

DESCRIPTION = """\
Neural architecture search on the 8x8 digits (offline), small enough for a CPU.

  deepnotes nas search --method darts|darts2|gdas|snas|pc-darts|p-darts|spos
  deepnotes nas retrain OUT/genotype.json

search writes into --out: genotype.json, alphas.png (operation weights per epoch),
cells.png (the derived cells), history.json and report.md (spos: its own files,
see deepnotes.nas.spos). retrain trains the genotype from scratch over a few seeds
and random cells of the same shape, and writes retrain.json and retrain_report.md
saying whether the search beat random."""

EPILOG = """\
examples:
  deepnotes nas search --method darts --budget small --out runs/nas-darts
  deepnotes nas search --method gdas --cost-weight 0.2 --out runs/nas-gdas
  deepnotes nas retrain runs/nas-darts/genotype.json --budget small"""


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import _Formatter  # "(default: X)" only where there is a real default
    p = subparsers.add_parser("nas", help="neural architecture search (DARTS, GDAS, PC-/P-DARTS, "
                                          "SPOS) on the digits",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="nas_command", title="commands", metavar="COMMAND")
    s = sub.add_parser("search", help="search a cell and write genotype, figures and report",
                       formatter_class=_Formatter)
    s.add_argument("--method", choices=SEARCH_METHODS, default="darts",
                   help="search method (darts2: second-order DARTS)")
    s.add_argument("--dataset", choices=["digits"], default="digits", help="data set")
    s.add_argument("--budget", choices=["tiny", "small"], default="small",
                   help="tiny: seconds (tests); small: a few minutes on 2 cores")
    s.add_argument("--seed", type=int, default=0, help="seed of deepnotes.random")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/nas-METHOD-BUDGET-sSEED)")
    s.add_argument("--cost-weight", type=_non_negative_float, default=None, metavar="LAMBDA",
                   help="weight of the expected-FLOPs term (cost_op * prob_op).sum() in the "
                        "architecture loss (default: 0.1 for gdas/snas, 0 otherwise)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_run_search)
    r = sub.add_parser("retrain", help="train a genotype from scratch and compare with random "
                                       "cells",
                       formatter_class=_Formatter)
    r.add_argument("genotype", metavar="GENOTYPE", help="genotype.json written by nas search")
    r.add_argument("--budget", choices=["tiny", "small"], default="small",
                   help="training length (tiny: seconds)")
    r.add_argument("--seed", type=int, default=0, help="first seed")
    r.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="seeds of the searched genotype (default: 2 tiny, 3 small)")
    r.add_argument("--random", type=_non_negative_int, default=None, metavar="N",
                   help="random genotypes to compare with (default: 2 tiny, 3 small)")
    r.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: the genotype's folder)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_run_retrain)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _run_search(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(
        "runs", f"nas-{args.method}-{args.budget}-s{args.seed}")
    if args.method == "spos":
        if args.cost_weight is not None:
            print("deepnotes nas search: error: --cost-weight does not apply to spos (it has a "
                  "FLOPs limit instead)", file=sys.stderr)
            return 2
        from .spos import search as spos_search

        result = spos_search(budget=args.budget, seed=args.seed, out=out,
                             progress=not args.quiet)
        print(f"spos: done; files in {out}")
        if isinstance(result, dict) and "verdict" in result:
            print(result["verdict"])
        return 0
    from .pipeline import search

    result = search(args.method, args.budget, args.seed, out, progress=not args.quiet,
                    cost_weight=args.cost_weight)
    print(f"{args.method}: {result['wall_s']:.1f} s, supernet val acc "
          f"{result['final_val_acc']:.3f}; files in {out}")
    return 0


def _run_retrain(args: argparse.Namespace) -> int:
    from .pipeline import retrain

    path = Path(args.genotype)
    if not path.is_file():
        print(f"deepnotes nas retrain: error: no such file: {path}", file=sys.stderr)
        return 2
    try:
        result = retrain(path, args.budget, args.seed, Path(args.out) if args.out else None,
                         progress=not args.quiet, seeds=args.seeds, random_archs=args.random)
    except (ValueError, KeyError) as err:
        print(f"deepnotes nas retrain: error: {path} is not a genotype file ({err})",
              file=sys.stderr)
        return 2
    print(f"searched {result['searched_mean']:.4f} +- {result['searched_std']:.4f}"
          + (f", random {result['random_mean']:.4f} +- {result['random_std']:.4f}"
             if result["random_mean"] is not None else ""))
    print(result["verdict"])
    return 0
