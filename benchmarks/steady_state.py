"""Time per step stays flat over many steps, and each step's graph is freed (issue 7).

    python benchmarks/steady_state.py [--workload mlp_step] [--steps 1000] [--threads 2]

Runs the deepnotes side of a bench.py workload ``--steps`` times, timing every step, and reports
the median of the first and of the last 100 steps. A graph that is not freed, or a cache that
grows, shows as a rising step time and as growth in the number of live objects: the number of
live deepnotes Tensors and of all objects tracked by the garbage collector are counted (after a
``gc.collect()``) once the warm-up is over and again at the end, together with VmRSS.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

from bench import BUILDERS, set_thread_env
from memory import vm_kib


def live_counts(tensor_cls: type) -> tuple[int, int]:
    """(live Tensors, all gc-tracked objects) after a full collection."""
    gc.collect()
    objects = gc.get_objects()
    return sum(1 for o in objects if isinstance(o, tensor_cls)), len(objects)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="mlp_step", choices=list(BUILDERS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.steps < 200:
        p.error("--steps must be >= 200 (first and last 100 are compared)")
    set_thread_env(args.threads)
    import numpy as np
    import torch

    import deepnotes as dn
    import deepnotes.nn  # noqa: F401
    import deepnotes.optim  # noqa: F401

    dn.set_num_threads(args.threads)
    dn.manual_seed(0)
    ours, _ = BUILDERS[args.workload](np, dn, torch)
    ours()                                   # first step: optimiser state, caches
    tensors0, objects0 = live_counts(dn.Tensor)
    rss0 = vm_kib("VmRSS") / 1024
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        ours()
        times.append((time.perf_counter() - start) * 1e3)
    tensors1, objects1 = live_counts(dn.Tensor)
    rss1 = vm_kib("VmRSS") / 1024
    first, last = statistics.median(times[:100]), statistics.median(times[-100:])
    print(f"{args.workload}, {args.steps} steps, {args.threads} thread(s)")
    print("| | after step 1 | after the last step |")
    print("|---|---:|---:|")
    print(f"| median ms of 100 steps (first / last 100) | {first:.2f} | {last:.2f} |")
    print(f"| live deepnotes Tensors | {tensors0} | {tensors1} |")
    print(f"| gc-tracked objects | {objects0} | {objects1} |")
    print(f"| VmRSS MiB | {rss0:.0f} | {rss1:.0f} |")
    print(f"last/first = {last / first:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
