"""Parallel training modules (``torch.nn.parallel`` and Megatron-style model parallelism).

* :class:`DistributedDataParallel` -- data parallelism: gradients averaged by bucketed
  all-reduce, overlapped with backward (notes 004 Q33).
* :class:`SyncBatchNorm` -- batch norm with the global batch's statistics (notes 004 Q11); also
  ``deepnotes.nn.SyncBatchNorm``.
* :class:`ColumnParallelLinear`, :class:`RowParallelLinear`, :func:`sharded_cross_entropy` --
  model parallelism for a huge fully connected classifier (notes 004 Q33).

Nothing here imports MPI: the collectives run through ``deepnotes.distributed``, which loads
mpi4py in ``init_process_group``. Run with ``mpiexec -n N``; docs/distributed.md.
"""

from .distributed import DistributedDataParallel
from .model_parallel import (
    ColumnParallelLinear,
    CopyToParallelRegionFn,
    GatherFromParallelRegionFn,
    ReduceFromParallelRegionFn,
    RowParallelLinear,
    ScatterToParallelRegionFn,
    ShardedCrossEntropyFn,
    copy_to_parallel_region,
    gather_from_parallel_region,
    reduce_from_parallel_region,
    scatter_to_parallel_region,
    sharded_cross_entropy,
)
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormFn

__all__ = [
    "ColumnParallelLinear",
    "CopyToParallelRegionFn",
    "DistributedDataParallel",
    "GatherFromParallelRegionFn",
    "ReduceFromParallelRegionFn",
    "RowParallelLinear",
    "ScatterToParallelRegionFn",
    "ShardedCrossEntropyFn",
    "SyncBatchNorm",
    "SyncBatchNormFn",
    "copy_to_parallel_region",
    "gather_from_parallel_region",
    "reduce_from_parallel_region",
    "scatter_to_parallel_region",
    "sharded_cross_entropy",
]
