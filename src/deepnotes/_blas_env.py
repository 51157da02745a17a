"""Let OpenBLAS's idle threads go to sleep soon after a GEMM (set before NumPy loads OpenBLAS).

After every multi-threaded call, OpenBLAS's worker threads busy-wait for the next one for
2**OPENBLAS_THREAD_TIMEOUT CPU cycles (default 2**28, about 0.1 s at 2.5 GHz; measured here: a
2-thread GEMM followed by a 200 ms sleep costs 113 ms of CPU time). While one spins, it holds a
core that the chunks of a large convolution (``deepnotes.threads.map_chunks``), or any other
process, could use. deepnotes sets ``OPENBLAS_THREAD_TIMEOUT=20`` (about 0.4 ms: still hot
across the back-to-back GEMMs of an LSTM or a training step) when it is imported before NumPy and
the variable is not set; OpenBLAS reads it once, when NumPy loads it. When NumPy came first, the
variable is left alone and whatever the user set before is what counts.

``DEEPNOTES_BLAS_TIMEOUT=0`` in the environment leaves OpenBLAS as it is.
"""

from __future__ import annotations

import os
import sys

THREAD_TIMEOUT = 20          # exponent: 2**20 cycles
SHORT_SPIN_EXPONENT = 24     # up to 2**24 cycles (about 7 ms) counts as "goes to sleep soon"

NUMPY_LOADED_FIRST = "numpy" in sys.modules
if not NUMPY_LOADED_FIRST and os.environ.get("DEEPNOTES_BLAS_TIMEOUT", "1") != "0":
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(THREAD_TIMEOUT))


def thread_timeout_exponent(environ: dict[str, str] | None = None) -> int:
    """The exponent OpenBLAS read (28, its default, when unset or unreadable; clamped to 4..30
    as OpenBLAS does)."""
    value = (os.environ if environ is None else environ).get("OPENBLAS_THREAD_TIMEOUT", "")
    try:
        exponent = int(value)
    except ValueError:
        return 28
    return 28 if exponent <= 0 else min(max(exponent, 4), 30)


# Read now, at deepnotes' import: later changes do not reach an OpenBLAS that is already loaded.
SHORT_SPIN = thread_timeout_exponent() <= SHORT_SPIN_EXPONENT
