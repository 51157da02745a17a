"""``deepnotes summary MODEL --input C,H,W [--batch-size N] [--json]``."""

from __future__ import annotations

import json

import pytest

from deepnotes.analysis import summary
from deepnotes.cli import main
from deepnotes.models import get_model


def test_prints_the_table(capsys):
    assert main(["summary", "digits_cnn", "--input", "1,8,8"]) == 0
    out = capsys.readouterr().out
    expected = summary(get_model("digits_cnn"), (1, 8, 8))
    assert out.startswith("digits_cnn: input [1, 1, 8, 8] float32")
    assert f"Total params:          {expected.totals['params']:,}" in out
    assert f"MACs:                  {expected.totals['macs']:,}" in out
    assert all(row["name"] in out for row in expected.rows)


def test_json_and_batch_size(capsys):
    assert main(["summary", "resnet18_cifar", "--input", "3,32,32", "--json",
                 "--batch-size", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    single = summary(get_model("resnet18_cifar"), (3, 32, 32))
    assert data["model"] == "resnet18_cifar" and data["batch_size"] == 2
    assert data["totals"]["params"] == single.totals["params"]
    assert data["totals"]["macs"] == 2 * single.totals["macs"]
    assert [r["name"] for r in data["rows"]] == [r["name"] for r in single.rows]
    assert data["rows"][0]["output_shape"][0] == 2


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnet7", "--input", "3,32,32"], "unknown model 'resnet7'; available:"),
    (["summary", "mlp", "--input", "3,x"], "expected comma-separated positive integers"),
    (["summary", "mlp", "--input", "0,8"], "expected comma-separated positive integers"),
    (["summary", "mlp"], "the following arguments are required: --input"),
    (["summary", "mlp", "--input", "64", "--batch-size", "0"], "expected a positive integer"),
])
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_model_that_does_not_fit_the_input(capsys):
    assert main(["summary", "lenet5", "--input", "1,4,4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepnotes summary: error: lenet5 does not run on input 1,4,4:")
