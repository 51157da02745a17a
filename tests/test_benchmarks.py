"""The performance tooling of issue 7: thread control, the malloc opt-out, and benchmarks/ (the
timing order, the generated docs block and chart, and that both frameworks run the same models).
No timing is asserted anywhere: the machine is shared and its speed varies."""

import platform
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes._malloc import keep_freed_memory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench  # noqa: E402
import models  # noqa: E402


def test_set_num_threads_round_trip():
    before = dn.get_num_threads()
    try:
        dn.set_num_threads(1)
        assert dn.get_num_threads() == 1
    finally:
        dn.set_num_threads(before)
    assert dn.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects(bad):
    with pytest.raises(ValueError, match="positive int"):
        dn.set_num_threads(bad)


def test_malloc_opt_out(monkeypatch):
    monkeypatch.setenv("DEEPNOTES_MALLOPT", "0")
    assert keep_freed_memory() is False


def test_malloc_keeps_freed_blocks(monkeypatch):
    """A 40 MiB array freed and allocated again reuses the same pages: no page faults (glibc's
    defaults would unmap it and fault its pages in again: 532 faults here, with huge pages)."""
    monkeypatch.delenv("DEEPNOTES_MALLOPT", raising=False)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert keep_freed_memory() is False
        return
    assert keep_freed_memory() is True
    size = 10 * 2**20                                  # float32 elements: 40 MiB
    np.ones(size, np.float32)                          # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(size, np.float32)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 16


def test_time_pair_alternates_rounds():
    calls = []
    ours = lambda: calls.append("dn")           # noqa: E731
    theirs = lambda: calls.append("torch")      # noqa: E731
    med = bench.time_pair(ours, theirs, repeat=4, warmup=1)
    # per block: 1 warm-up + repeat/2 timed; blocks dn, torch | torch, dn
    assert calls == ["dn"] * 3 + ["torch"] * 6 + ["dn"] * 3
    assert set(med) == {"ours", "theirs", "ours_cpu", "theirs_cpu"}
    assert all(v >= 0 for v in med.values())


def _rows():
    return [{"workload": "conv", "description": "c", "deepnotes_ms": 3.0, "torch_ms": 2.0,
             "ratio": 1.5, "target": 1.5, "cpu_ratio": 1.4},
            {"workload": "mlp_step", "description": "m", "deepnotes_ms": 2.0, "torch_ms": 1.0,
             "ratio": 2.0, "target": 1.3, "cpu_ratio": 1.9}]


def test_markdown_table_marks_targets():
    lines = bench.markdown_table(_rows()).splitlines()
    assert len(lines) == 4
    assert lines[2].split("|")[7].strip() == "yes"          # 1.5 <= 1.5
    assert lines[3].split("|")[7].strip() == "no"           # 2.0 > 1.3


def test_write_docs_replaces_only_its_block(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("intro\n<!-- bench.py --threads 2: begin -->\nold\n"
                   "<!-- bench.py --threads 2: end -->\nafter\n")
    for _ in range(2):                                       # idempotent
        bench.write_docs(bench.markdown_table(_rows()), ["machine line"], _rows(), 2, doc)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "old" not in text
    assert text.count("machine line") == 1 and "performance-threads2.png" in text
    assert (tmp_path / "performance-threads2.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="threads 1"):
        bench.write_docs("", [], _rows(), 1, doc)


@pytest.mark.parametrize("build, shape", [(models.lenet5, (3, 1, 28, 28)),
                                          (models.resnet18_cifar, (2, 3, 32, 32)),
                                          (models.mlp, (3, 784))])
def test_benchmark_models_are_the_same_in_both(build, shape):
    dn.manual_seed(0)
    ours, theirs = build(dn.nn), build(torch.nn)
    models.copy_weights(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    got = ours(dn.tensor(x))
    assert got.dtype == dn.float32
    np.testing.assert_allclose(got.data, expected, rtol=1e-4, atol=1e-4)
