"""The bn-transfer experiment (notes 004 Q12) on a quick run."""

from .conftest import check_files


def test_source_statistics_do_not_fit_the_shifted_domain(quick):
    r = quick("bn-transfer").results
    assert r["shift_target"] > 3 * r["shift_source"] and r["shift_target"] > 0.5


def test_the_comparison_is_measured_and_judged_from_its_numbers(quick):
    run = quick("bn-transfer")
    best = run.results["best"]
    assert 0 <= best["keep"] <= 1 and 0 <= best["recompute"] <= 1
    # what the quick run measures on this strong shift: recomputing wins clearly
    assert best["recompute"] > best["keep"] + 0.05
    assert run.json["checks"][1]["passed"] == (best["keep"] > best["recompute"] + 0.01)
    faded = run.results["domains"]["faded"]
    assert run.json["checks"][2]["claim"].startswith("faded:")
    assert run.json["checks"][2]["passed"] == (faded["best"]["keep"]
                                               > faded["best"]["recompute"] + 0.01)
    # the mild shift moves the statistics less than the strong one
    assert run.results["shift_source"] < faded["shift"] < run.results["shift_target"]
    check_files(run.out, figures=1)
