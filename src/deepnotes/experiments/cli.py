"""``deepnotes experiment list | run NAME|all | gallery``: the command line of the experiments.

Nothing heavy is imported at module level (``deepnotes --help`` must answer at once).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Experiments that reproduce the claims of the study notes (initialisation,
activations, batch norm, dropout, optimisers, receptive fields, transposed
convolutions, regularisation, efficient convolutions, BN in transfer learning).

  list              print every experiment with the claim it tests and its note
  run NAME|all      run one experiment (or all of them); each writes into
                    OUT/NAME/: PNG figures, results.json (the measured numbers)
                    and report.md (claim, setup, numbers, figures, verdict)
  gallery RUNS MD   write a Markdown gallery of the reports under RUNS

A full run takes at most about 2 minutes per experiment on 2 CPU cores;
--quick runs a small version in seconds (what the tests use)."""

EPILOG = """\
examples:
  deepnotes experiment list
  deepnotes experiment run init --quick
  deepnotes experiment run optimizers --seed 1 --out /tmp/exp
  deepnotes experiment run all --out docs/experiments --quiet
  deepnotes experiment gallery docs/experiments docs/experiments.md"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``deepnotes experiment`` on the top-level subparsers."""
    p = subparsers.add_parser(
        "experiment", help="run the experiments that reproduce the notes' claims",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", title="actions", metavar="ACTION")

    p_list = sub.add_parser("list", help="list the experiments with their claims and notes")
    p_list.set_defaults(func=_run_list)

    p_run = sub.add_parser("run", help="run one experiment, or all")
    p_run.add_argument("name", metavar="NAME", help="an experiment name (see list), or 'all'")
    p_run.add_argument("--quick", action="store_true",
                       help="a small version that runs in seconds")
    p_run.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed of deepnotes.manual_seed (default: 0)")
    p_run.add_argument("--out", default=os.path.join("runs", "experiments"), metavar="DIR",
                       help="parent directory: results go into DIR/NAME/ "
                            "(default: runs/experiments)")
    p_run.add_argument("--quiet", action="store_true",
                       help="no progress bars; print only the verdicts")
    p_run.set_defaults(func=_run_run)

    p_gal = sub.add_parser("gallery", help="write a Markdown gallery of finished runs")
    p_gal.add_argument("runs", metavar="RUNS", help="directory holding NAME/results.json")
    p_gal.add_argument("output", metavar="MD", help="the Markdown file to write")
    p_gal.set_defaults(func=_run_gallery)

    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _run_list(args: argparse.Namespace) -> int:
    import textwrap

    from . import get_experiment, list_experiments

    for name in list_experiments():
        exp = get_experiment(name)
        print(f"{name:<17} {exp.title} ({exp.note})")
        print(textwrap.fill(f"claim: {exp.claim}", width=100, initial_indent=" " * 18,
                            subsequent_indent=" " * 25))
    return 0


def _run_run(args: argparse.Namespace) -> int:
    from . import list_experiments, run

    names = list_experiments()
    if args.name != "all" and args.name not in names:
        print(f"deepnotes experiment: error: unknown experiment '{args.name}'; available: "
              f"{', '.join(names)}, all", file=sys.stderr)
        return 2
    todo = names if args.name == "all" else [args.name]
    for name in todo:
        start = time.perf_counter()
        if not args.quiet:
            print(f"{name}: running{' (quick)' if args.quick else ''} ...", flush=True)
        outcome = run(name, out=args.out, quick=args.quick, seed=args.seed, quiet=args.quiet)
        where = Path(args.out) / name
        print(f"{name}: {outcome.verdict} ({sum(c.passed for c in outcome.checks)}/"
              f"{len(outcome.checks)} checks, {time.perf_counter() - start:.1f} s) -> "
              f"{where / 'report.md'}", flush=True)
        if not args.quiet:
            for check in outcome.checks:
                print(f"  [{'x' if check.passed else ' '}] {check.claim}: {check.measured}")
    return 0


def gallery_markdown(runs: Path, link_prefix: str) -> str:
    """The gallery page for the runs in ``runs`` (each ``NAME/results.json``), with links
    prefixed by ``link_prefix`` (the path from the page to ``runs``)."""
    from . import list_experiments

    found = {p.parent.name: json.loads(p.read_text()) for p in runs.glob("*/results.json")}
    order = [n for n in list_experiments() if n in found] + sorted(
        n for n in found if n not in list_experiments())
    lines = ["# Experiments: the notes' claims, reproduced", "",
             "Each experiment below tests a claim of the study notes with deepnotes' own layers "
             "and optimisers; it was produced by `deepnotes experiment run all --out "
             f"{runs.as_posix()}` and this page by `deepnotes experiment gallery`. Each report "
             "gives the setup, every measured number and the figures; `results.json` beside it "
             "holds the numbers. A claim that does not reproduce is reported as such.", "",
             "| experiment | note | verdict | checks |", "|---|---|---|---|"]
    for name in order:
        r = found[name]
        passed = sum(c["passed"] for c in r["checks"])
        lines.append(f"| [`{name}`](#{name}) | {r['note']} | {r['verdict']} | "
                     f"{passed}/{len(r['checks'])} |")
    lines.append("")
    failed = [(name, c) for name in order for c in found[name]["checks"] if not c["passed"]]
    if failed:
        lines += ["**What did not reproduce** (details and the reasons in each section):", ""]
        lines += [f"- `{name}`: {c['claim']} -- measured: {c['measured']}" for name, c in failed]
        lines.append("")
    for name in order:
        r = found[name]
        base = f"{link_prefix}{name}"
        lines += [f"## {name}", "", f"**{r['title']}** ({r['note']}). *Claim:* {r['claim']}", "",
                  f"**Verdict: {r['verdict']}.** Full report: [{base}/report.md]({base}/report.md)"
                  f"{' (quick run)' if r.get('quick') else ''}, {r['wall_time_s']:.0f} s.", ""]
        lines += [f"- {'✔' if c['passed'] else '✘'} {c['claim']}: {c['measured']}"
                  for c in r["checks"]]
        lines.append("")
        if r.get("remarks"):
            lines += [f"*Remarks.* {r['remarks']}", ""]
        for fig in r["figures"]:
            lines += [f"![{fig['caption']}]({base}/{fig['file']})", "", f"*{fig['caption']}*",
                      ""]
    return "\n".join(lines)


def _run_gallery(args: argparse.Namespace) -> int:
    runs, output = Path(args.runs), Path(args.output)
    if not any(runs.glob("*/results.json")):
        print(f"deepnotes experiment gallery: error: no NAME/results.json under '{runs}'",
              file=sys.stderr)
        return 2
    prefix = os.path.relpath(runs.resolve(), output.resolve().parent).replace(os.sep, "/")
    output.write_text(gallery_markdown(runs, "" if prefix == "." else prefix + "/"))
    print(f"wrote {output}")
    return 0
