"""The efficient-convs experiment (notes 004 Q31, 001, 002 Q15) on a quick run. Times are
reported, never asserted."""

from .conftest import check_files


def test_parameter_counts_of_the_notes(quick):
    layers = quick("efficient-convs").results["layers"]
    assert layers["standard 3x3, 16->32"]["params"] == 4608
    assert layers["depthwise-separable 3x3, 16->32"]["params"] == 656
    assert layers["standard 5x5, 128->256"]["params"] == 819_200
    assert layers["1x1 bottleneck to 64, then 5x5"]["params"] == 417_792
    assert layers["grouped 5x5 (g=4), 128->256"]["params"] == 819_200 // 4
    for name, r in layers.items():
        assert r["params"] == r["params_formula"], name


def test_mac_ratios(quick):
    layers = quick("efficient-convs").results["layers"]
    assert abs(layers["depthwise-separable 3x3, 16->32"]["mac_ratio"] - (1 / 32 + 1 / 9)) < 1e-12
    assert abs(layers["depthwise-separable 5x5, 128->256"]["mac_ratio"]
               - (1 / 256 + 1 / 25)) < 1e-12
    assert layers["grouped 3x3 (g=4), 16->32"]["mac_ratio"] == 0.25
    assert layers["standard 5x5, 128->256"]["macs_100x100"] == 819_200 * 100 * 100
    assert all(r["forward_s"] > 0 for r in layers.values())
    check_files(quick("efficient-convs").out, figures=1)
