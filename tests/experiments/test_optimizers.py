"""The optimizers experiment (notes 004 Q20-Q21) on a quick run."""

from .conftest import check_files


def test_momentum_and_adam_beat_sgd_on_the_ill_conditioned_quadratic(quick):
    q = quick("optimizers").results["steps_quadratic"]
    assert q["momentum"] < 0.8 * q["SGD"] and q["Adam"] < 0.8 * q["SGD"]   # inf: never reached
    assert q["momentum"] < 150 and q["Adam"] < 150


def test_newton_and_lbfgs(quick):
    r = quick("optimizers").results
    assert r["newton_quadratic_after_one_step"] < 1e-12
    assert r["steps_rosenbrock"]["Newton"] <= 10
    assert r["steps_rosenbrock"]["L-BFGS"] <= 50
    check_files(quick("optimizers").out, figures=2)
