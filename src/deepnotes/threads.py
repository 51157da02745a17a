"""How many threads the BLAS library behind NumPy may use (``deepnotes.set_num_threads``), and how
the large convolutions use them.

Almost all of the time of a training step is spent in BLAS GEMMs, so this is the knob that matters,
and it must match PyTorch's ``torch.set_num_threads`` when the two are compared.

:func:`map_chunks` is the one place where deepnotes itself starts threads. A large convolution is
computed in chunks of the batch (ops/conv.py); each chunk is an im2col copy followed by a GEMM. With
T BLAS threads, running the chunks on T Python threads, each with a one-thread GEMM, is faster
than running them one after the other with a T-thread GEMM: the copy (memory-bound, single-threaded
in NumPy) of one chunk overlaps the GEMM of another, instead of leaving T - 1 cores idle while it
runs (about 25 % off the conv workload with 2 threads, docs/performance.md). NumPy releases the GIL
in both. The results do not depend on the thread count: the chunks are fixed by the shapes, and
whatever is summed over chunks is summed in chunk order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController, threadpool_limits

_limiter: threadpool_limits | None = None
_blas: list[Any] | None = None            # threadpoolctl controllers of the loaded BLAS libraries
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()            # held while a map_chunks region runs in parallel

T = TypeVar("T")

# Whether map_chunks may run chunks on parallel Python threads (None: decide on first use).
PARALLEL_CHUNKS: bool | None = None


def _blas_controllers() -> list[Any]:
    global _blas
    if _blas is None:
        import numpy  # noqa: F401  (its BLAS must be loaded before it can be found)
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas


def set_num_threads(n: int) -> None:
    """Let BLAS (OpenBLAS/MKL, whichever NumPy uses) run on ``n`` threads."""
    global _limiter
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    _limiter = threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The number of threads the BLAS library may use now (the largest across loaded libraries)."""
    return max((c.num_threads for c in _blas_controllers()), default=1)


def map_chunks(fn: Callable[[int, int], T], chunks: Sequence[tuple[int, int]]) -> list[T]:
    """``[fn(start, stop) for start, stop in chunks]``, on the BLAS threads when there are several.

    With T = :func:`get_num_threads` > 1 and more than one chunk, the calls run on a pool of T
    Python threads while BLAS is limited to one thread each (restored afterwards). ``fn`` must only
    write to its own part of shared outputs. A call made while another parallel region runs (from
    another thread) runs its chunks one after the other instead of oversubscribing the cores.
    """
    workers = get_num_threads() if len(chunks) > 1 and _parallel_chunks() else 1
    if workers <= 1 or not _pool_lock.acquire(blocking=False):
        return [fn(start, stop) for start, stop in chunks]
    try:
        controllers = _blas_controllers()
        saved = [c.num_threads for c in controllers]
        for c in controllers:
            c.set_num_threads(1)
        try:
            return list(_executor(workers).map(lambda chunk: fn(*chunk), chunks))
        finally:
            for c, n in zip(controllers, saved):
                c.set_num_threads(n)
    finally:
        _pool_lock.release()


def _parallel_chunks() -> bool:
    """Parallel chunks pay off only when the BLAS threads do not spin-wait long after a call: an
    OpenBLAS worker that spins for 0.1 s after each multi-threaded GEMM of a small layer takes a
    core from the chunks (measured: a ResNet-18 step 1.53x -> 1.80x PyTorch's time with
    parallel chunks under OpenBLAS's default spin, while the conv workload alone went 1.80x ->
    1.35x). So: OpenBLAS, with a short OPENBLAS_THREAD_TIMEOUT (deepnotes._blas_env)."""
    global PARALLEL_CHUNKS
    if PARALLEL_CHUNKS is None:
        from . import _blas_env
        controllers = _blas_controllers()
        PARALLEL_CHUNKS = (bool(controllers) and _blas_env.SHORT_SPIN
                           and all(c.internal_api == "openblas" for c in controllers))
    return PARALLEL_CHUNKS


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_workers
    if _pool is None or _pool_workers != workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="deepnotes-chunk")
        _pool_workers = workers
    return _pool


def _forget_pool_after_fork() -> None:
    # A forked child has none of the parent's threads: start a fresh pool and lock when needed.
    global _pool, _pool_workers, _pool_lock
    _pool, _pool_workers, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)
