"""How many threads the BLAS library behind NumPy may use (``deepnotes.set_num_threads``).

Almost all of the time of a training step is spent in BLAS GEMMs, so this is the knob that matters,
and it must match PyTorch's ``torch.set_num_threads`` when the two are compared.
"""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

_limiter: threadpool_limits | None = None


def set_num_threads(n: int) -> None:
    """Let BLAS (OpenBLAS/MKL, whichever NumPy uses) run on ``n`` threads."""
    global _limiter
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    _limiter = threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The number of threads the BLAS library may use now (the largest across loaded libraries)."""
    blas = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(blas) if blas else 1
