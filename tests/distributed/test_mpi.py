"""Data parallel, SyncBatchNorm, model parallel and the collectives, under ``mpiexec -n 2``.

The MPI side is tests/distributed/workers.py; one launch runs all the cases that must succeed
(each launch costs about a second of imports per rank), and this file asserts on the numbers
rank 0 reports."""

from __future__ import annotations

import sys

import pytest

from .launch import results, run

CASES = ["ddp_syncbn", "ddp_no_sync", "model_parallel", "collectives"]


@pytest.fixture(scope="module")
def reported() -> dict[str, dict]:
    return results(run([sys.executable, "-m", "tests.distributed.workers", *CASES]))


def test_ddp_with_syncbn_equals_one_process_on_the_whole_batch(reported):
    r = reported["ddp_syncbn"]
    assert r["world"] == 2
    assert r["buckets"] >= 3                       # bucket_cap_mb small enough to split
    # the all-reduce of all buckets but the first layer's started during backward
    assert r["started_before_input_grad"] == [r["buckets"] - 1]
    assert "SyncBatchNorm" in r["kinds"] and "BatchNorm2d" not in r["kinds"]
    assert r["sync_diff"] <= 1e-10                 # params + running stats after 5 SGD steps
    assert not r["ranks_differ"]                   # the replicas stayed identical
    assert r["float32_diff"] < 5e-3                # float32, mean 300, std 0.01: no cancellation


def test_ddp_with_plain_batchnorm_differs(reported):
    """The negative control: per-rank BN statistics are another model, so the test can fail."""
    assert reported["ddp_syncbn"]["plain_diff"] > 1e-3


def test_no_sync_accumulates_locally_then_averages(reported):
    r = reported["ddp_no_sync"]
    assert r["buckets"] >= 2
    assert r["local_differs"]                      # inside no_sync: nothing was communicated
    assert r["accumulated_diff"] <= 1e-12          # 2 micro-batches x 2 ranks == whole batch
    assert r["plain_diff"] <= 1e-12                # shared weight used twice, an unused layer
    assert r["after_skip_diff"] <= 1e-12           # a forward without backward is harmless
    assert "expected to have finished reduction" in r["incomplete_error"]
    assert "inp.weight" in r["incomplete_error"]
    assert r["recovered_diff"] <= 1e-12


def test_model_parallel_linear_and_sharded_cross_entropy_equal_unsplit(reported):
    r = reported["model_parallel"]
    assert r["shard_shapes"] == [[2, 8], [6, 2]]   # column: rows of W; row: columns of W
    for key in ("classifier", "reduction_sum", "reduction_none", "options", "mlp_forward",
                "mlp_grad_x",
                "mlp_weights", "mlp_grads"):
        assert r[key] <= 1e-12, key


def test_collectives_all_sizes_and_dtypes_in_place(reported):
    r = reported["collectives"]
    assert r["failures"] == []
    assert r["checked"] >= 150
    assert "must be a deepnotes Tensor" in r["errors"][0]
    assert "src must be a rank in 0..1, got src=2" in r["errors"][1]
    assert "ReduceOp.AVG needs a floating tensor" in r["errors"][2]
    assert "list of world_size=2 tensors, got 1" in r["errors"][3]


def test_a_rank_raising_ends_every_rank_with_a_message():
    proc = run([sys.executable, "-m", "tests.distributed.workers", "raise"], timeout=60)
    assert proc.returncode != 0
    assert "rank 1 of 2 raised ValueError: boom from rank 1" in proc.stderr
    assert "aborting all 2 ranks" in proc.stderr
    assert "rank 0 passed the all-reduce" not in proc.stdout
