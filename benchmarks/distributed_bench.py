"""Data-parallel throughput of the CIFAR ResNet-18 training step, on 1 or N MPI processes.

    python benchmarks/distributed_bench.py                       # 1 process (no DDP)
    mpiexec -n 2 python benchmarks/distributed_bench.py          # 2 processes, DDP + SyncBN

Each rank runs ``--batch`` (default 16) images of 3x32x32 per step through resnet18_cifar
(SGD step included), with 1 BLAS thread per rank. Reported by rank 0:

* step time (median over the measured steps) and throughput = N * batch / step time;
* the all-reduce time per step two ways: the part of the step spent waiting for the gradient
  buckets at the end of backward (what overlap did not hide), and a blocking all-reduce of the
  whole gradient (11.17 M float32 = 44.7 MB) on its own;
* the ring all-reduce cost model: each rank sends and receives 2 (p-1)/p x bytes, so the
  measured time of the lone all-reduce gives an effective bus bandwidth
  2 (p-1)/p x bytes / time, from which the time on more ranks (or across nodes, with the
  network's bandwidth) follows.

Load of the machine matters (the CPU is shared): the script prints the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

import deepnotes as dn  # noqa: E402
import deepnotes.distributed as dist  # noqa: E402
import deepnotes.nn.functional as F  # noqa: E402
from deepnotes.models import get_model  # noqa: E402
from deepnotes.nn.parallel import DistributedDataParallel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="images per rank per step")
    parser.add_argument("--steps", type=int, default=4, help="measured steps")
    parser.add_argument("--warmup", type=int, default=1, help="steps before measuring")
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0)
    parser.add_argument("--local-bn", action="store_true",
                        help="keep per-rank BatchNorm (no SyncBatchNorm all-reduces)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    in_mpi = any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))
    if in_mpi:
        dist.init_process_group("mpi")
    rank = dist.get_rank() if in_mpi else 0
    world = dist.get_world_size() if in_mpi else 1

    dn.manual_seed(0)
    model = get_model("resnet18_cifar")
    n_params = sum(p.data.size for p in model.parameters())
    if world > 1:
        if not args.local_bn:
            model = dn.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    opt = dn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = np.random.default_rng(rank)
    x = dn.tensor(data.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    y = dn.tensor(data.integers(0, 10, args.batch))

    steps, waits = [], []
    for i in range(args.warmup + args.steps):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            steps.append(elapsed)
            waits.append(model.last_wait_s if world > 1 else 0.0)

    lone = []
    if world > 1:  # the whole gradient in one blocking all-reduce
        grad = dn.zeros(n_params, dtype=dn.float32)
        for _ in range(4):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(grad)
            lone.append(time.perf_counter() - start)
    if rank == 0:
        step = statistics.median(steps)
        nbytes = 4 * n_params
        moved = 2 * (world - 1) / world * nbytes
        result = {
            "processes": world, "batch_per_rank": args.batch, "params": n_params,
            "batch_norm": "local" if args.local_bn or world == 1 else "sync",
            "step_s": round(step, 3), "images_per_s": round(world * args.batch / step, 2),
            "bucket_wait_s": round(statistics.median(waits), 4),
            "allreduce_whole_gradient_s": round(statistics.median(lone), 4) if lone else None,
            "gradient_mb": round(nbytes / 2**20, 1),
            "ring_bytes_per_rank_mb": round(moved / 2**20, 1),
            "bus_bandwidth_gb_s": round(moved / statistics.median(lone) / 1e9, 2) if lone
            else None,
            "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        }
        print(json.dumps(result))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=2)
    if in_mpi:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
