"""The receptive-field experiment (notes 000 Q3) on a quick run."""

from deepnotes.experiments.receptive_field import mass_side, support_side

from .conftest import check_files


def test_measured_support_equals_the_formula(quick):
    r = quick("receptive-field").results
    for name in ("plain 2", "plain 4", "plain 8", "dilated 1-2-4-8"):
        assert r[name]["measured_support"] == r[name]["theoretical"], name
    assert [r[n]["theoretical"] for n in ("plain 2", "plain 4", "plain 8")] == [5, 9, 17]
    assert r["dilated 1-2-4-8"]["theoretical"] == 31
    assert r["notes example"]["per_layer"] == [11, 19, 51, 67, 99]    # notes 000 Q3
    assert r["notes example"]["measured_support"] == 99


def test_effective_field_is_smaller_and_shrinks_with_depth(quick):
    r = quick("receptive-field").results
    assert r["plain 8"]["erf_over_rf"] < 0.75
    assert r["plain 8"]["erf_over_rf"] < r["plain 2"]["erf_over_rf"]
    assert r["dilated 1-2-4-8"]["erf_over_rf"] < 1.0
    check_files(quick("receptive-field").out, figures=2)


def test_measures_on_hand_made_maps():
    import numpy as np

    g = np.zeros((9, 9))
    g[2:7, 3:6] = 1.0                    # a 5 x 3 block: the support's side is 5
    assert support_side(g) == 5
    g = np.zeros((9, 9))
    g[4, 4] = 1.0                        # all mass at the centre: side 1
    assert mass_side(g) == 1
    g[0, 0] = 1.0                        # half the mass in a corner: 95% needs the full map
    assert mass_side(g) == 9
