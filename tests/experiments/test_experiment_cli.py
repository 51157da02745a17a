"""`deepnotes experiment list | run | gallery`, the registry and the report writer."""

from __future__ import annotations

import json

import pytest

from deepnotes.cli import main
from deepnotes.experiments import (
    Check,
    Outcome,
    get_experiment,
    list_experiments,
    registry,
)
from deepnotes.experiments.base import Table, fmt, md_cell

ISSUE_EXPERIMENTS = ["init", "activations", "batchnorm", "dropout", "optimizers",
                     "receptive-field", "checkerboard", "regularization", "efficient-convs",
                     "bn-transfer"]


def test_registry_lists_the_issue_experiments_first():
    names = list_experiments()
    assert names[:10] == ISSUE_EXPERIMENTS
    for name in names:
        exp = get_experiment(name)
        assert exp.claim and exp.note.startswith("notes") and exp.setup and callable(exp.run)
    assert set(registry()) == set(names)
    with pytest.raises(KeyError, match="unknown experiment 'nope'.*init"):
        get_experiment("nope")


def test_list_prints_claims_and_notes(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    for name in ISSUE_EXPERIMENTS:
        assert f"\n{name} " in "\n" + out
    assert "claim:" in out and "notes 004 Q12" in out


def test_run_writes_results_report_and_figures_then_gallery(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "run", "efficient-convs", "--quick", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "efficient-convs: " in printed and "checks, " in printed   # the timing check may vary
    run_dir = out / "efficient-convs"
    data = json.loads((run_dir / "results.json").read_text())
    assert data["name"] == "efficient-convs" and data["quick"] is True and data["seed"] == 0
    assert data["verdict"] in ("confirmed", "partly confirmed") and len(data["checks"]) == 3
    assert data["checks"][0]["passed"] and data["checks"][1]["passed"]     # counts, MAC ratio
    assert data["results"]["layers"]["standard 3x3, 16->32"]["params"] == 4608
    report = (run_dir / "report.md").read_text()
    for part in ("**Claim** (notes 004 Q31", f"**Verdict: {data['verdict']}**", "## Setup",
                 "## Checks",
                 "## Numbers", "![", "costs.png"):
        assert part in report
    assert (run_dir / "costs.png").read_bytes()[:4] == b"\x89PNG"

    page = tmp_path / "docs" / "experiments.md"
    page.parent.mkdir()
    assert main(["experiment", "gallery", str(out), str(page)]) == 0
    text = page.read_text()
    assert "| [`efficient-convs`](#efficient-convs) | notes 004 Q31" in text
    assert "](../exp/efficient-convs/costs.png)" in text          # relative to the page
    assert "(quick run)" in text
    assert "*Remarks.* Times are for deepnotes'" in text           # the report's remarks too
    # a check that fails is listed at the top of the page
    data["checks"][0]["passed"] = False
    (run_dir / "results.json").write_text(json.dumps(data))
    assert main(["experiment", "gallery", str(out), str(page)]) == 0
    text = page.read_text()
    assert "**What did not reproduce**" in text
    assert f"- `efficient-convs`: {data['checks'][0]['claim']} -- measured:" in text


def test_seed_makes_a_run_reproducible(tmp_path):
    def numbers(seed: int, out: str) -> dict:
        assert main(["experiment", "run", "receptive-field", "--quick", "--seed", str(seed),
                     "--out", str(tmp_path / out), "--quiet"]) == 0
        data = json.loads((tmp_path / out / "receptive-field" / "results.json").read_text())
        assert data["seed"] == seed and data["quick"] is True
        report = (tmp_path / out / "receptive-field" / "report.md").read_text()
        assert f"`deepnotes experiment run receptive-field --seed {seed} --quick`" in report
        return data["results"]

    first, again, other = numbers(1, "a"), numbers(1, "b"), numbers(2, "c")
    assert first == again
    assert first != other


def test_bad_names_and_empty_gallery(tmp_path, capsys):
    assert main(["experiment", "run", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert main(["experiment", "gallery", str(tmp_path), str(tmp_path / "g.md")]) == 2
    assert "no NAME/results.json" in capsys.readouterr().err
    assert main(["experiment"]) == 2                       # no action: help on stderr
    with pytest.raises(SystemExit):
        main(["experiment", "run", "init", "--seed", "x"])


def test_verdicts_and_markdown_helpers():
    def outcome(*passed: bool) -> Outcome:
        return Outcome(results={}, checks=[Check("c", "m", p) for p in passed])

    assert outcome(True, True).verdict == "confirmed"
    assert outcome(True, False).verdict == "partly confirmed"
    assert outcome(False, False).verdict == "not confirmed"
    assert md_cell("|w| < 1\n x") == "\\|w\\| < 1 x"
    assert fmt(0.000123) == "1.23e-04" and fmt(12.345) == "12.3" and fmt(0) == "0"
    table = Table("t", ["a", "|b|"], [[1.5, "x|y"]]).markdown()
    assert "| a | \\|b\\| |" in table and "| 1.5 | x\\|y |" in table
