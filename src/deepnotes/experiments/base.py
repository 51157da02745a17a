"""The machinery shared by every experiment: the record, the run context, the outcome, the report.

An experiment is a function ``run(ctx) -> Outcome`` registered with :func:`experiment`. The runner
(:func:`run_experiment`) seeds ``deepnotes.random``, gives the function a :class:`Context`, then
writes what the function returned into ``ctx.out_dir``:

* ``results.json`` -- the measured numbers (``Outcome.results``) plus the metadata: name, claim,
  note, setup, the checks with their verdicts, the figures, seed, quick flag, wall time;
* ``report.md`` -- the claim, the setup, the checks (what was measured, whether it holds), the
  tables, the figures and the overall verdict;
* the PNG figures the function saved with :meth:`Context.save_figure`.

The overall verdict is ``confirmed`` when every check holds, ``not confirmed`` when none does and
``partly confirmed`` in between; each check states the numbers that decide it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: The issue's experiments come first in listings and galleries, in this order; any other
#: registered experiment follows in alphabetical order.
PREFERRED_ORDER = ("init", "activations", "batchnorm", "dropout", "optimizers", "receptive-field",
                   "checkerboard", "regularization", "efficient-convs", "bn-transfer")


@dataclass
class Check:
    """One claim, tested: what is claimed, what was measured (the deciding numbers), and whether
    the measurement supports the claim."""

    claim: str
    measured: str
    passed: bool


@dataclass
class Table:
    """A small table for the report: a title, the column names and the rows (already formatted
    or plain numbers)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]

    def markdown(self) -> str:
        def cell(value: Any) -> str:
            if isinstance(value, float | np.floating):
                return fmt(float(value))
            return md_cell(str(value))

        lines = [f"**{self.title}**", "", "| " + " | ".join(map(md_cell, self.columns)) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Outcome:
    """What an experiment returns.

    Attributes:
        results: the measured numbers (nested dicts/lists of numbers and strings), written to
            ``results.json`` under ``"results"``; tests read them.
        checks: the claims tested, each with its deciding numbers and verdict.
        tables: tables for the report.
        remarks: free text for the report (e.g. why a claim does not reproduce here).
    """

    results: dict[str, Any]
    checks: list[Check]
    tables: list[Table] = field(default_factory=list)
    remarks: str = ""

    @property
    def verdict(self) -> str:
        passed = sum(c.passed for c in self.checks)
        if passed == len(self.checks):
            return "confirmed"
        return "not confirmed" if passed == 0 else "partly confirmed"


@dataclass
class Context:
    """What an experiment's ``run`` receives.

    Attributes:
        out_dir: where figures go (created by the runner).
        quick: run a small version (seconds) instead of the full one (<= ~2 minutes on 2 cores).
        seed: the seed given to ``deepnotes.manual_seed`` before ``run`` is called.
        quiet: no progress bars.
    """

    out_dir: Path
    quick: bool = False
    seed: int = 0
    quiet: bool = False
    figures: list[tuple[str, str]] = field(default_factory=list)

    def pick(self, full: T, quick: T) -> T:
        """``quick`` in quick mode, ``full`` otherwise (sizes, step counts, sweeps)."""
        return quick if self.quick else full

    def progress(self, iterable: Iterable[T], desc: str = "", total: int | None = None
                 ) -> Iterator[T]:
        """A tqdm progress bar over ``iterable``; silent when quiet or when stderr is no tty."""
        import sys

        from tqdm import tqdm

        disable = self.quiet or not sys.stderr.isatty()
        return iter(tqdm(iterable, desc=desc, total=total, disable=disable, leave=False))

    def figure(self, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (5.0, 3.6),
               **kwargs: Any) -> tuple[Any, Any]:
        """A new matplotlib figure (Agg backend) with ``nrows x ncols`` axes; ``size`` is the size
        of one panel in inches."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                                 squeeze=False, **kwargs)
        return fig, (axes[0, 0] if nrows == ncols == 1 else axes)

    def save_figure(self, fig: Any, name: str, caption: str) -> Path:
        """Save ``fig`` as ``out_dir/name.png`` (80 dpi, 256-colour palette), close it and list
        it in the report."""
        import io

        import matplotlib.pyplot as plt
        from PIL import Image

        path = self.out_dir / f"{name}.png"
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=80, format="png")
        plt.close(fig)
        buffer.seek(0)
        # a 256-colour palette keeps the committed figures small (a few tens of KB each)
        image = Image.open(buffer).convert("RGB").quantize(colors=256,
                                                           method=Image.Quantize.FASTOCTREE)
        image.save(path, format="PNG", optimize=True)
        self.figures.append((path.name, caption))
        return path


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: the claim it tests, the note it comes from, how it is set up,
    and the function that runs it."""

    name: str
    title: str
    claim: str
    note: str
    setup: str
    run: Callable[[Context], Outcome]
    module: str = ""


_REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, *, title: str, claim: str, note: str, setup: str
               ) -> Callable[[Callable[[Context], Outcome]], Experiment]:
    """Decorator that registers ``run(ctx) -> Outcome`` as the experiment ``name``.

    ``claim`` is the statement of the notes being tested, ``note`` where it comes from
    ("notes 004 Q1-Q2"), ``setup`` a paragraph on how it is tested (both full and quick sizes).
    """

    def register(run: Callable[[Context], Outcome]) -> Experiment:
        if name in _REGISTRY and _REGISTRY[name].module != run.__module__:
            raise ValueError(f"experiment '{name}' is registered twice: by "
                             f"{_REGISTRY[name].module} and by {run.__module__}")
        record = Experiment(name=name, title=title, claim=" ".join(claim.split()), note=note,
                            setup=" ".join(setup.split()), run=run, module=run.__module__)
        _REGISTRY[name] = record
        return record

    return register


def registry() -> dict[str, Experiment]:
    """The registered experiments (after the package has imported its modules)."""
    return _REGISTRY


# ----------------------------------------------------------------------------------------------
# formatting and writing

def md_cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def fmt(value: float, digits: int = 3) -> str:
    """A number for a report: 3 significant digits, scientific notation when very small/large."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    value = float(value)
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        text = f"{value:.{digits}g}"
    else:
        text = f"{value:.{digits - 1}e}"
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else str(value)  # JSON has no nan/inf
    return value


def write_report(exp: Experiment, ctx: Context, outcome: Outcome, wall_s: float) -> None:
    """Write ``results.json`` and ``report.md`` into ``ctx.out_dir``."""
    from .. import __version__

    checks = [dict(claim=c.claim, measured=c.measured, passed=bool(c.passed))
              for c in outcome.checks]
    meta = dict(name=exp.name, title=exp.title, claim=exp.claim, note=exp.note, setup=exp.setup,
                verdict=outcome.verdict, checks=checks,
                remarks=" ".join(outcome.remarks.split()),
                figures=[dict(file=f, caption=c) for f, c in ctx.figures],
                seed=ctx.seed, quick=ctx.quick, wall_time_s=round(wall_s, 2),
                deepnotes_version=__version__)
    payload = dict(meta, results=outcome.results)
    (ctx.out_dir / "results.json").write_text(json.dumps(_jsonable(payload), indent=1) + "\n")

    mode = " --quick" if ctx.quick else ""
    lines = [f"# Experiment `{exp.name}`: {exp.title}", "",
             f"**Claim** ({exp.note}): {exp.claim}", "",
             f"**Verdict: {outcome.verdict}** "
             f"({sum(c.passed for c in outcome.checks)} of {len(outcome.checks)} checks hold)", "",
             "## Setup", "", exp.setup, "",
             "## Checks", "", "| claim | measured | holds |", "|---|---|---|"]
    lines += [f"| {md_cell(c.claim)} | {md_cell(c.measured)} | {'yes' if c.passed else '**no**'} |"
              for c in outcome.checks]
    lines.append("")
    if outcome.remarks:
        lines += ["## Remarks", "", " ".join(outcome.remarks.split()), ""]
    if outcome.tables:
        lines += ["## Numbers", ""]
        for table in outcome.tables:
            lines += [table.markdown(), ""]
    if ctx.figures:
        lines += ["## Figures", ""]
        for file, caption in ctx.figures:
            lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    lines += ["---", f"`deepnotes experiment run {exp.name} --seed {ctx.seed}{mode}`: "
              f"{wall_s:.1f} s, deepnotes {__version__}. All numbers are in `results.json`.", ""]
    (ctx.out_dir / "report.md").write_text("\n".join(lines))


def run_experiment(exp: Experiment, out_dir: str | Path, quick: bool = False, seed: int = 0,
                   quiet: bool = False, threads: int | None = 1) -> Outcome:
    """Run ``exp`` with ``deepnotes.manual_seed(seed)`` and write its figures, ``results.json``
    and ``report.md`` into ``out_dir`` (created if needed). ``threads`` caps NumPy's BLAS threads
    for the run (1 by default: the matrices are small); None leaves the setting alone."""
    from threadpoolctl import threadpool_limits

    from ..random import manual_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out_dir=out, quick=quick, seed=seed, quiet=quiet)
    manual_seed(seed)
    start = time.perf_counter()
    if threads is None:
        outcome = exp.run(ctx)
    else:
        with threadpool_limits(limits=threads, user_api="blas"):
            outcome = exp.run(ctx)
    write_report(exp, ctx, outcome, time.perf_counter() - start)
    return outcome
