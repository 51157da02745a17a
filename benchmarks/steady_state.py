"""Time per step stays flat over many steps, and each step's graph is freed (issue 7).

    python benchmarks/steady_state.py [--workload lenet_step] [--steps 1000] [--threads 1]

Runs the deepnotes side of a bench.py workload ``--steps`` times, timing every step, and reports
the median wall time and process CPU time of every block of 100 steps. A graph that is not freed,
or a cache that grows, shows as a rising step time and as growth in the number of live objects:
the number of live deepnotes Tensors and of all objects tracked by the garbage collector are
counted (after a ``gc.collect()``) once the warm-up is over and again at the end, with VmRSS.
CPU time (``time.process_time``) is reported beside wall time because on a shared machine the
wall time of a block moves with the other processes' load; with one thread the CPU time of a
step is the work it does, whatever the load.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from pathlib import Path

from bench import BUILDERS, set_thread_env
from memory import vm_kib


def live_counts(tensor_cls: type) -> tuple[int, int]:
    """(live Tensors, all gc-tracked objects) after a full collection."""
    gc.collect()
    objects = gc.get_objects()
    with warnings.catch_warnings():      # isinstance on some torch objects warns (deprecations)
        warnings.simplefilter("ignore")
        return sum(1 for o in objects if isinstance(o, tensor_cls)), len(objects)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="lenet_step", choices=list(BUILDERS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
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
    wall, cpu = [], []
    for _ in range(args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        ours()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    tensors1, objects1 = live_counts(dn.Tensor)
    rss1 = vm_kib("VmRSS") / 1024
    print(f"{args.workload}, {args.steps} steps, {args.threads} thread(s)")
    print("| steps | median wall ms | median CPU ms |")
    print("|---|---:|---:|")
    for block in range(0, args.steps, 100):
        print(f"| {block + 1}-{min(block + 100, args.steps)} | "
              f"{statistics.median(wall[block:block + 100]):.2f} | "
              f"{statistics.median(cpu[block:block + 100]):.2f} |")
    print()
    print("| | after step 1 | after the last step |")
    print("|---|---:|---:|")
    print(f"| live deepnotes Tensors | {tensors0} | {tensors1} |")
    print(f"| gc-tracked objects | {objects0} | {objects1} |")
    print(f"| VmRSS MiB | {rss0:.0f} | {rss1:.0f} |")
    ratio_wall = statistics.median(wall[-100:]) / statistics.median(wall[:100])
    ratio_cpu = statistics.median(cpu[-100:]) / statistics.median(cpu[:100])
    print(f"last / first 100 steps: wall {ratio_wall:.2f}, CPU {ratio_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
