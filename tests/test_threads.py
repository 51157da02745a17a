"""deepnotes.threads.map_chunks, the one place that starts threads (set_num_threads and
get_num_threads are tested in test_benchmarks.py)."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import deepnotes as dn
from deepnotes import _blas_env, threads


@pytest.fixture
def two_threads(monkeypatch):
    """Two BLAS threads, chunks in parallel (whatever OpenBLAS's spin setting in this process)."""
    monkeypatch.setattr(threads, "PARALLEL_CHUNKS", True)
    previous = dn.get_num_threads()
    dn.set_num_threads(2)
    yield
    dn.set_num_threads(previous)


def test_map_chunks_keeps_chunk_order_and_uses_one_blas_thread_per_worker(two_threads):
    seen = []

    def work(start, stop):
        seen.append((threading.current_thread().name, dn.get_num_threads()))
        return np.arange(start, stop) @ np.ones(stop - start)    # a BLAS call in the worker

    chunks = [(0, 3), (3, 5), (5, 9), (9, 10)]
    assert threads.map_chunks(work, chunks) == [3.0, 7.0, 26.0, 9.0]
    assert {count for _, count in seen} == {1}
    assert all(name.startswith("deepnotes-chunk") for name, _ in seen)
    assert dn.get_num_threads() == 2                             # restored afterwards


def test_map_chunks_runs_in_the_caller_with_one_thread_or_one_chunk(two_threads):
    caller = threading.current_thread().name
    names = threads.map_chunks(lambda a, b: threading.current_thread().name, [(0, 1)])
    assert names == [caller]
    dn.set_num_threads(1)
    names = threads.map_chunks(lambda a, b: threading.current_thread().name, [(0, 1), (1, 2)])
    assert names == [caller, caller]


def test_map_chunks_nested_call_runs_sequentially(two_threads):
    def outer(start, stop):
        inner = threads.map_chunks(lambda a, b: threading.current_thread().name, [(0, 1), (1, 2)])
        return len(set(inner))                    # one thread: the worker running `outer`

    assert threads.map_chunks(outer, [(0, 1), (1, 2)]) == [1, 1]


def test_map_chunks_propagates_errors_and_restores_threads(two_threads):
    def fail(start, stop):
        if start == 1:
            raise RuntimeError("chunk 1 failed")
        return start

    with pytest.raises(RuntimeError, match="chunk 1 failed"):
        threads.map_chunks(fail, [(0, 1), (1, 2), (2, 3)])
    assert dn.get_num_threads() == 2
    assert threads.map_chunks(lambda a, b: a, [(0, 1), (1, 2)]) == [0, 1]   # the pool still works


def test_map_chunks_runs_in_the_caller_when_parallel_chunks_are_off(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "PARALLEL_CHUNKS", False)
    caller = threading.current_thread().name
    names = threads.map_chunks(lambda a, b: threading.current_thread().name, [(0, 1), (1, 2)])
    assert names == [caller, caller]


@pytest.mark.parametrize("value, exponent", [
    (None, 28), ("", 28), ("x", 28), ("0", 28), ("-3", 28), ("2", 4), ("20", 20), ("40", 30),
])
def test_thread_timeout_exponent_reads_like_openblas(value, exponent):
    environ = {} if value is None else {"OPENBLAS_THREAD_TIMEOUT": value}
    assert _blas_env.thread_timeout_exponent(environ) == exponent


def _import_report(code: str, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_THREAD_TIMEOUT", "DEEPNOTES_BLAS_TIMEOUT")}
    environ.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environ, check=True)
    return result.stdout.split()


REPORT = ("import os; from deepnotes import _blas_env; "
          "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), _blas_env.SHORT_SPIN)")


def test_deepnotes_first_sets_a_short_openblas_spin():
    assert _import_report("import deepnotes; " + REPORT) == ["20", "True"]


def test_numpy_first_or_opt_out_leaves_openblas_alone():
    assert _import_report("import numpy, deepnotes; " + REPORT) == ["None", "False"]
    assert _import_report("import deepnotes; " + REPORT,
                          DEEPNOTES_BLAS_TIMEOUT="0") == ["None", "False"]
    assert _import_report("import deepnotes; " + REPORT,
                          OPENBLAS_THREAD_TIMEOUT="26") == ["26", "False"]   # the user's value
