"""Experiments that reproduce the claims of the notes, each with figures, numbers and a verdict.

    deepnotes experiment list
    deepnotes experiment run init [--quick] [--seed 0] [--out runs/experiments]
    deepnotes experiment run all --out docs/experiments
    deepnotes experiment gallery docs/experiments docs/experiments.md

Each experiment is one module of this package that registers itself with the
:func:`~deepnotes.experiments.base.experiment` decorator; every module of the package (except
``base``, ``cli`` and names starting with ``_``) is imported when the registry is first needed,
so adding an experiment is adding a file::

    # src/deepnotes/experiments/my_claim.py
    from .base import Check, Context, Outcome, experiment

    @experiment("my-claim", title="...", claim="what the notes say", note="notes 004 Q12",
                setup="how it is tested (full and --quick sizes)")
    def run(ctx: Context) -> Outcome:
        steps = ctx.pick(full=500, quick=20)            # the full run <= ~2 min, quick seconds
        for step in ctx.progress(range(steps), "training"):   # a progress bar (tty only)
            ...
        fig, ax = ctx.figure()                          # matplotlib (Agg) figure and axes
        ...                                             # label the axes, add a legend
        ctx.save_figure(fig, "curves", "caption for the report")    # curves.png, 80 dpi
        return Outcome(results={"loss": 0.1},           # -> results.json
                       checks=[Check("the claim", "the deciding numbers", passed=True)])

The runner seeds ``deepnotes.random`` with ``--seed`` before calling ``run`` (all randomness must
come from there), caps BLAS at one thread, and writes ``results.json`` and ``report.md`` beside
the figures in ``OUT/NAME/``. The verdict is ``confirmed`` when every check holds, ``partly
confirmed`` or ``not confirmed`` otherwise: a claim that does not reproduce is reported as such.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .base import (
    PREFERRED_ORDER,
    Check,
    Context,
    Experiment,
    Outcome,
    Table,
    experiment,
    registry,
    run_experiment,
)

_NOT_EXPERIMENTS = {"base", "cli"}


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_EXPERIMENTS:
            continue
        importlib.import_module(f"{__name__}.{info.name}")


def list_experiments() -> list[str]:
    """Names of all experiments: the issue's ten in their order, then the others sorted."""
    _import_all()
    names = registry()
    first = [n for n in PREFERRED_ORDER if n in names]
    return first + sorted(n for n in names if n not in PREFERRED_ORDER)


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name`` (a ``KeyError`` naming the known ones otherwise)."""
    names = list_experiments()
    if name not in names:
        raise KeyError(f"unknown experiment '{name}'; available: {', '.join(names)}")
    return registry()[name]


def run(name: str, out: str | Path = "runs/experiments", quick: bool = False, seed: int = 0,
        quiet: bool = False) -> Outcome:
    """Run the experiment ``name`` and write its results into ``out/name/``."""
    exp = get_experiment(name)
    return run_experiment(exp, Path(out) / name, quick=quick, seed=seed, quiet=quiet)


__all__ = ["Check", "Context", "Experiment", "Outcome", "Table", "experiment", "get_experiment",
           "list_experiments", "run", "run_experiment"]
