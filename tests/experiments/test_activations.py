"""The activations experiment (notes 000 Q8-Q9, 004 Q16-Q17) on a quick run."""

from .conftest import check_files


def test_sigmoid_gradient_vanishes_others_do_not(quick):
    ratio = quick("activations").results["first_over_last"]
    assert ratio["sigmoid"] < 1e-3
    for name in ("tanh", "relu", "leaky_relu", "elu", "gelu", "mish"):
        assert 0.1 < ratio[name] < 10, name


def test_large_learning_rate_kills_relus(quick):
    dead = quick("activations").results["dead_relus"]
    assert dead["2.0"]["dead_mean"] > dead["0.1"]["dead_mean"] + 0.3


def test_files(quick):
    run = quick("activations")
    check_files(run.out, figures=2)
    assert run.json["verdict"] == "confirmed"
