"""Keep freed memory in the process (glibc only): large NumPy temporaries without page faults.

A training step allocates and frees the same large arrays every time (im2col columns, activations,
gradients: up to tens of MB each). glibc's malloc serves blocks above ``M_MMAP_THRESHOLD`` (at most
32 MB by default) with a fresh ``mmap`` and gives them back with ``munmap`` when freed, and trims
the top of the heap above ``M_TRIM_THRESHOLD`` (128 kB by default, adjusted dynamically). The next
step then touches brand-new pages: one page fault per 4 kB, about 2,600 faults (several ms) per
LeNet-5 step on the benchmark machine. PyTorch avoids this with its own allocator. Here two
``mallopt`` calls raise both thresholds, so that the freed blocks stay in the heap and are reused
(measured effect in docs/performance.md, "glibc malloc").

The price: the process keeps up to ``TRIM_THRESHOLD`` bytes of freed memory instead of returning
them to the OS. Set the environment variable ``DEEPNOTES_MALLOPT=0`` before importing deepnotes to
leave malloc as it is. Nothing happens on other C libraries (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1        # mallopt parameter numbers from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30     # keep up to 1 GiB of freed heap memory
MMAP_THRESHOLD = 1 << 29     # blocks up to 512 MiB come from the (reusable) heap: at 256 MiB
                             # the conv workload's columns at N = 128 (288 MiB) were mmap'ed
                             # anew each step, 12 % slower per sample (docs/performance.md)


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds; True if both ``mallopt`` calls succeeded."""
    if os.environ.get("DEEPNOTES_MALLOPT", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
