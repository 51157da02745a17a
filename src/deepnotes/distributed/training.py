"""What ``deepnotes train --distributed`` adds to the training loop of ``deepnotes.train``.

Run as ``mpiexec -n N deepnotes train --distributed ...``. Every rank builds the same model from
the same seed; then:

* BatchNorm layers become SyncBatchNorm and the model is wrapped in DistributedDataParallel, so a
  step on N ranks is the step that one process would take on the whole batch;
* ``--batch-size`` stays the *global* batch: each rank takes batch_size / N samples per step from
  its :class:`DistributedSampler` shard (the same permutation on every rank, seeded with
  seed + epoch), and the union of the ranks' step-k batches is the single-process step-k batch;
* the test set is split into N interleaved shards, each rank evaluates its own, and the metrics
  are reduced (weighted by the shard sizes) so every rank reports the whole test set's numbers;
* only rank 0 prints, shows the progress bar and writes the run directory (checkpoint, metrics,
  curves); the checkpoint holds the unwrapped model's state_dict (plain BatchNorm keys), so a
  run resumes on any number of ranks, or in a single process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import DataLoader, DistributedSampler, Subset
from ..tensor import Tensor
from . import collectives as C
from . import process_group as pg


class DistributedRun:
    """The distributed pieces of one training run (built by ``train._train``).

    Attributes:
        rank, world_size: this process and the number of processes.
        net: the model wrapped in DistributedDataParallel (what trains).
        train_loader, test_loader: this rank's shards.
    """

    def __init__(self, config: Any, model: Any, train_set: Any, test_set: Any):
        from ..nn import SyncBatchNorm
        from ..nn.parallel import DistributedDataParallel

        if not pg.is_initialized():
            pg.init_process_group("mpi")
        self.rank, self.world_size = pg.get_rank(), pg.get_world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} must divide by the number of ranks "
                             f"{self.world_size} (--batch-size is the global batch, split "
                             "evenly across the ranks)")
        self.limit_batches = config.limit_batches
        per_rank = config.batch_size // self.world_size
        self.sampler = DistributedSampler(train_set, self.world_size, self.rank, shuffle=True,
                                          seed=config.seed)
        self.train_loader = DataLoader(train_set, batch_size=per_rank, sampler=self.sampler)
        shard = Subset(test_set, list(range(self.rank, len(test_set), self.world_size)))
        self.test_batch = 256
        self.test_loader = DataLoader(shard, batch_size=self.test_batch)
        if SyncBatchNorm.convert_sync_batchnorm(model) is not model:
            raise ValueError("deepnotes train --distributed: the model is a single BatchNorm "
                             "layer; wrap it in a container")
        self.net = DistributedDataParallel(model)

    def start_epoch(self, epoch: int) -> None:
        """Every rank shuffles with the same permutation (seed + epoch)."""
        self.sampler.set_epoch(epoch)

    def make_run_dir(self, make: Any, config: Any) -> Path:
        """Rank 0 creates the run directory; every rank gets its path."""
        holder = [str(make(config.out, config.name, config.model)) if self.rank == 0 else None]
        C.broadcast_object_list(holder, src=0)
        return Path(holder[0])

    def reduce_metrics(self, train_loss: float, train_acc: float, test_loss: float,
                       test_acc: float) -> tuple[float, float, float, float]:
        """The four numbers over all ranks' samples (each rank's mean weighted by its count)."""
        n_train = len(self.sampler)
        n_test = len(self.test_loader.dataset)
        if self.limit_batches is not None:
            n_train = min(n_train, self.limit_batches * self.train_loader.batch_size)
            n_test = min(n_test, self.limit_batches * self.test_batch)
        sums = np.array([train_loss * n_train, train_acc * n_train, n_train,
                         test_loss * n_test, test_acc * n_test, n_test], dtype=np.float64)
        C.all_reduce(Tensor._wrap(sums))
        return (sums[0] / max(sums[2], 1), sums[1] / max(sums[2], 1),
                sums[3] / max(sums[5], 1), sums[4] / max(sums[5], 1))
