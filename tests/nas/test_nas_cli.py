"""`deepnotes nas search` / `retrain` on the tiny budget write their files; every method runs."""

import json

import pytest

from deepnotes.cli import main
from deepnotes.nas.genotype import Genotype, NetworkFromGenotype
from deepnotes.nas.pipeline import search


def test_cli_search_and_retrain_write_their_files(tmp_path, capsys):
    out = tmp_path / "darts"
    assert main(["nas", "search", "--method", "darts", "--budget", "tiny", "--out", str(out),
                 "--quiet"]) == 0
    for name in ("genotype.json", "alphas.png", "cells.png", "history.json", "report.md"):
        assert (out / name).stat().st_size > 0, name
    genotype = Genotype.load(out / "genotype.json")
    meta = json.loads((out / "genotype.json").read_text())
    assert meta["method"] == "darts" and meta["steps"] == genotype.steps == 2
    NetworkFromGenotype(genotype, c=meta["c"], layers=meta["layers"])
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert "Derived genotype" in (out / "report.md").read_text()
    assert main(["nas", "retrain", str(out / "genotype.json"), "--budget", "tiny", "--quiet",
                 "--seeds", "1", "--random", "1"]) == 0
    result = json.loads((out / "retrain.json").read_text())
    assert len(result["searched"]) == 1 and len(result["random"]) == 1
    assert 0 <= result["searched_mean"] <= 1
    report = (out / "retrain_report.md").read_text()
    assert result["verdict"] in report and "random" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["darts2", "gdas", "snas", "pc-darts", "p-darts"])
def test_every_method_searches_on_the_tiny_budget(method, tmp_path):
    result = search(method, "tiny", seed=1, out=None, progress=False)
    g = Genotype.from_dict(result["genotype"])
    assert g.steps == 2 and result["method"] == method
    if method in ("gdas", "snas"):
        assert result["cost_weight"] == 0.1


def test_cli_errors(tmp_path, capsys):
    assert main(["nas", "retrain", str(tmp_path / "missing.json"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"normal": []}')
    assert main(["nas", "retrain", str(bad), "--quiet"]) == 2
    assert "not a genotype file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nas", "search", "--method", "enas"])


def test_cli_spos_dispatch(tmp_path, monkeypatch, capsys):
    import deepnotes.nas.spos as spos

    calls = []
    monkeypatch.setattr(spos, "search", lambda **kw: calls.append(kw) or {"verdict": "v!"})
    assert main(["nas", "search", "--method", "spos", "--budget", "tiny", "--seed", "3",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert calls == [{"budget": "tiny", "seed": 3, "out": tmp_path, "progress": False}]
    assert "v!" in capsys.readouterr().out


def test_accuracy_with_batch_statistics_leaves_the_model_as_it_was():
    import numpy as np

    import deepnotes as dn
    from deepnotes.nas.pipeline import accuracy
    from deepnotes.nas.search_space import SearchNetwork

    dn.manual_seed(0)
    net = SearchNetwork(c=4, layers=2, steps=2)
    x = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    y = np.arange(20) % 10
    before = [b.data.copy() for b in net.buffers()]
    # with batch statistics the running averages are used by nobody and restored
    logits = net(dn.tensor(x)).data  # training mode = batch statistics (also updates buffers)
    after_forward = [b.data.copy() for b in net.buffers()]
    assert accuracy(net, x, y, batch_size=20, bn_batch_stats=True) == np.mean(
        logits.argmax(1) == y)
    assert all(np.array_equal(b.data, a) for b, a in zip(net.buffers(), after_forward))
    assert net.training and not all(np.array_equal(a, b) for a, b in zip(before, after_forward))
