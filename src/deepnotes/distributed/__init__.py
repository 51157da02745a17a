"""``deepnotes.distributed``: PyTorch's ``torch.distributed`` API on MPI (notes 004 Q11, Q33).

Data parallelism (notes 004 Q33): every process (rank) holds a full copy of the model, computes
the gradient on its own shard of the batch, and the gradients are averaged with an all-reduce, so
every rank applies the same update and the copies never drift apart. Model parallelism: a layer
too big for one process (the notes' classifier with tens of millions of classes) is split by
columns or rows across the ranks (``nn.parallel.ColumnParallelLinear``...). Batch norm per rank
sees only the local batch; ``nn.SyncBatchNorm`` all-reduces its statistics (notes 004 Q11).

    mpiexec -n 2 python train.py

    import deepnotes.distributed as dist
    dist.init_process_group("mpi")
    t = dn.tensor([float(dist.get_rank())])
    dist.all_reduce(t)                 # 0 + 1 = 1 on both ranks, in place
    dist.destroy_process_group()

MPI (through mpi4py) does the transport; it is imported by :func:`init_process_group`, never by
``import deepnotes``. How to run on a cluster's own MPI: docs/distributed.md.
"""

from .collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
)
from .process_group import (
    abort,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
)

__all__ = [
    "ReduceOp",
    "Work",
    "abort",
    "all_gather",
    "all_gather_into_tensor",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "group",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_available",
    "reduce",
    "reduce_scatter",
    "reduce_scatter_tensor",
]
