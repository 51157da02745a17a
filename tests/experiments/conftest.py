"""Run an experiment in quick mode once per test module and hand its results to the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepnotes.experiments import get_experiment, run_experiment


class QuickRun:
    """A quick, seed-0 run: ``outcome`` (the Outcome), ``results`` (its measured numbers, as
    Python values), ``json`` (``results.json`` read back) and ``out`` (the directory)."""

    def __init__(self, name: str, out: Path):
        self.out = out
        self.outcome = run_experiment(get_experiment(name), out, quick=True, seed=0, quiet=True)
        self.json = json.loads((out / "results.json").read_text())
        self.results: dict[str, Any] = self.outcome.results


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], QuickRun]:
    """quick(name) runs the experiment once per test module and caches the run."""
    cache: dict[str, QuickRun] = {}

    def get(name: str) -> QuickRun:
        if name not in cache:
            cache[name] = QuickRun(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def check_files(out: Path, figures: int) -> None:
    """results.json, report.md and the figures exist; the PNGs are real and small."""
    assert (out / "results.json").is_file() and (out / "report.md").is_file()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == figures, [p.name for p in pngs]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) < 250_000, (png.name, len(data))
    report = (out / "report.md").read_text()
    for png in pngs:
        assert f"]({png.name})" in report
