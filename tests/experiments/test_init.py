"""The init experiment (notes 004 Q1-Q2): the claims' directions with margins, on a quick run."""

from .conftest import check_files


def test_small_init_collapses_and_large_init_saturates(quick):
    r = quick("init").results
    assert r["collapse_ratio"] < 1e-3                 # 10 tanh layers, N(0, 0.01): std < 1e-3
    assert r["saturated_large"] > 0.5                 # N(0, 1): most |tanh| > 0.99
    assert r["saturated_xavier"] < 0.05


def test_xavier_keeps_tanh_and_he_keeps_relu(quick):
    r = quick("init").results
    assert 1 / 3.5 < r["xavier_tanh_ratio"] < 3.5     # layer 1 vs layer 10 std
    assert r["he_relu_ratio"] < 2
    assert r["xavier_relu_ratio"] > 10                # Xavier lets a ReLU net shrink
    deep = r["deep"]
    assert deep["tanh/zeros"]["act_std"][-1] == 0.0


def test_zero_and_constant_init_keep_units_identical(quick):
    sym = quick("init").results["symmetry"]
    assert max(sym["zeros"]["spread"]) < 1e-5 and max(sym["constant"]["spread"]) < 1e-5
    assert min(sym["xavier"]["spread"]) > 0.1
    assert sym["zeros"]["test_acc"] < 0.2 < 0.6 < sym["xavier"]["test_acc"]


def test_files_and_verdict(quick):
    run = quick("init")
    check_files(run.out, figures=5)
    assert run.json["verdict"] == "confirmed"
    assert all(c["passed"] for c in run.json["checks"])
