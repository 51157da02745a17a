"""Convolution time is linear in the batch size (issue 7): the conv workload for N = 8 ... 128.

    python benchmarks/conv_scaling.py [--sizes 8 16 32 64 128] [--repeat 3] [--threads 2]

For each N, times the deepnotes conv workload (3x3, 64 -> 64 channels, 32x32, forward + backward
of y.sum()) and reports the median ms, ms per sample and GFLOP/s. A least-squares line
t = a + b*N is fitted; the fit is linear when R^2 is close to 1 and ms per sample is flat (no
cache or memory cliff at large N). Everything in this op is proportional to N (im2col copies,
three GEMMs with N*L columns, col2im), so only a fixed per-call overhead ``a`` may break it.
The page faults per call are counted too: a block above glibc's mmap threshold is mapped afresh
(and zeroed by the kernel) on every call, which shows as faults and a higher ms per sample.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

from bench import set_thread_env, time_call_cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    set_thread_env(args.threads)
    import numpy as np

    import deepnotes as dn
    import deepnotes.nn.functional as F

    dn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    w = dn.tensor((rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32),
                  requires_grad=True)
    rows = []
    for n in args.sizes:
        x = dn.tensor(rng.standard_normal((n, 64, 32, 32)).astype(np.float32),
                      requires_grad=True)

        def step(x: dn.Tensor = x) -> None:
            x.grad = w.grad = None
            F.conv2d(x, w, padding=1).sum().backward()

        step()                                       # warm-up
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        wall, cpu = time_call_cpu(step, args.repeat)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.repeat
        ms = statistics.median(wall)
        rows.append((n, ms, statistics.median(cpu), faults, 3 * 2 * n * 1024 * 64 * 576 / ms / 1e6))
    sizes = np.array([r[0] for r in rows], dtype=float)
    times = np.array([r[1] for r in rows])
    slope, intercept = np.polyfit(sizes, times, 1)
    fitted = intercept + slope * sizes
    r2 = 1 - ((times - fitted) ** 2).sum() / ((times - times.mean()) ** 2).sum()
    print(f"conv 3x3 64->64, 32x32, fwd+bwd, {args.threads} thread(s), median of {args.repeat}")
    print("| N | ms | ms per sample | CPU ms per sample | page faults per call | GFLOP/s "
          "| fit ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for (n, ms, cpu_ms, faults, gflops), fit in zip(rows, fitted):
        print(f"| {n} | {ms:.1f} | {ms / n:.2f} | {cpu_ms / n:.2f} | {faults:.0f} | {gflops:.0f} | "
              f"{fit:.1f} |")
    print(f"fit: t = {intercept:.1f} ms + {slope:.2f} ms * N, R^2 = {r2:.4f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
