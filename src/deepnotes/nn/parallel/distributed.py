"""``DistributedDataParallel``: data parallelism with bucketed gradient all-reduce (notes 004 Q33).

Each rank runs the same model on its own shard of the batch. If rank r's loss is L_r (the mean
over its B/p samples), the loss of the whole batch is L = (1/p) sum_r L_r, so

    dL/dw = (1/p) sum_r dL_r/dw        (the average of the ranks' gradients)

and after one all-reduce every rank holds dL/dw, applies the same optimiser step, and the copies
stay identical. They start identical because the constructor broadcasts rank 0's parameters and
buffers. The notes' parameter server (workers push gradients, a server updates and sends the
model back) is replaced by this all-reduce: no rank is special, and the ring algorithm moves
2 (p-1)/p x (gradient bytes) per rank, whatever p (docs/distributed.md).

**Buckets.** One all-reduce per parameter would pay MPI's latency hundreds of times per step;
one for the whole model could start only after the last gradient. The gradients are therefore
flattened into buckets of about ``bucket_cap_mb`` megabytes, in *reverse* order of
``parameters()`` (roughly the order backward produces them: the last layer first).

**Overlap with backward.** A hook on each parameter runs when backward has its gradient. When
every parameter of a bucket is ready, the bucket's ``Iallreduce`` (non-blocking) starts, while
backward goes on computing the gradients of earlier layers; the hook of the last gradient waits
for all buckets and writes the averaged gradients into ``.grad``. Buckets start in index order
on every rank (a later bucket that is ready early waits for the ones before it), because MPI
requires every rank to issue collectives in the same order. How much really overlaps depends on
the MPI library: MPICH progresses a non-blocking collective only inside MPI calls, so each hook
pokes the outstanding requests with ``MPI_Testall``.

How many gradients to expect: after ``forward``, the graph from the outputs back to the
parameters is walked once, counting for each parameter how many edges lead to it (a weight used
twice receives two gradient contributions). A parameter is ready when its count reaches zero; a
parameter that this forward did not use is ready at once (its local contribution is zero, or
what ``no_sync`` accumulated), so models with unused branches need no extra flag.

**Gradient accumulation.** Inside ``with ddp.no_sync():`` the hooks do nothing and gradients
accumulate locally in ``.grad``; the first backward outside it all-reduces the accumulated sum.
"""

from __future__ import annotations

import contextlib
import numbers
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import distributed as dist
from ...autograd import is_grad_enabled
from ...tensor import Tensor
from ..module import Module

_INCOMPLETE = (
    "DistributedDataParallel: expected to have finished reduction in the prior iteration before "
    "starting a new one. The previous backward did not reach every parameter that the previous "
    "forward used ({missing} never received its gradient), so its gradients were only partly "
    "averaged. Call backward on (a loss that depends on) every output of the forward, or wrap "
    "forward passes that are not followed by backward in no_grad()."
)


class _Bucket:
    """Flat buffer of some parameters' gradients (one dtype), reduced with one Iallreduce."""

    def __init__(self, params: list[Any], dtype: np.dtype):
        self.params = params
        self.offsets: list[int] = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.data.size
        self.buffer = np.zeros(total, dtype=dtype)                     # (sum of numels,)
        self.pending = 0
        self.request: Any = None

    def view(self, i: int) -> np.ndarray:
        p = self.params[i]
        start = self.offsets[i]
        return self.buffer[start:start + p.data.size].reshape(p.data.shape)


class DistributedDataParallel(Module):
    """Wrap ``module`` so that backward averages its gradients over all ranks.

    As ``torch.nn.parallel.DistributedDataParallel`` (CPU, MPI). ``forward`` calls the module;
    ``state_dict`` keys carry the ``module.`` prefix, as PyTorch's.

    Args:
        module: the model (identical architecture on every rank).
        device_ids, output_device: must be None (CPU only).
        dim: must be 0 (the batch dimension).
        broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm running statistics) to every
            rank at the start of each training forward, as PyTorch does.
        init_sync: broadcast rank 0's parameters and buffers at construction.
        process_group: None (the default group).
        bucket_cap_mb: bucket size in megabytes (default 25, PyTorch's).
        find_unused_parameters: accepted for compatibility; unused parameters are always found
            (see the module docstring).
        gradient_as_bucket_view: must be False.

    Example::

        dist.init_process_group("mpi")
        model = DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(net))
        loss = F.cross_entropy(model(x_shard), y_shard)
        loss.backward()                   # .grad = average over ranks
        optimizer.step()
    """

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0, broadcast_buffers: bool = True, init_sync: bool = True,
                 process_group: Any = None, bucket_cap_mb: float | None = None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a deepnotes nn.Module, got "
                            f"{type(module).__name__}")
        for name, value, default in (("device_ids", device_ids, None),
                                     ("output_device", output_device, None),
                                     ("dim", dim, 0),
                                     ("gradient_as_bucket_view", gradient_as_bucket_view, False)):
            if value != default:
                raise ValueError(f"DistributedDataParallel: {name} must be {default!r} on the "
                                 f"CPU, got {name}={value!r}")
        if bucket_cap_mb is None:
            bucket_cap_mb = 25.0
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, numbers.Real) \
                or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                             f"got bucket_cap_mb={bucket_cap_mb!r}")
        dist.get_world_size(process_group)  # raises unless init_process_group() has run
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.require_backward_grad_sync = True
        self._world = dist.get_world_size()
        if init_sync:
            self._sync_state(list(module.parameters()) + self._buffers_to_sync())
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = self._make_buckets()
        self._where: dict[int, tuple[int, int]] = {}      # id(param) -> (bucket, index)
        for b, bucket in enumerate(self._buckets):
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (b, i)
        self._remaining: dict[int, int] = {}                # id(param) -> gradients still due
        self._expecting = False                             # a synced backward is due
        self._next_bucket = 0                               # first bucket not yet started
        self.last_wait_s = 0.0                              # see _finish
        self._handles = [p.register_hook(self._make_hook(p)) for p in self._params]

    # -- setup ------------------------------------------------------------------------------------
    def _buffers_to_sync(self) -> list[Tensor]:
        return [b for b in self.module.buffers() if b.data.dtype.kind in "fiub"]

    def _sync_state(self, tensors: list[Tensor]) -> None:
        """Rank 0's values of ``tensors`` on every rank: one broadcast per dtype (flattened)."""
        if self._world == 1 or not tensors:
            return
        by_dtype: dict[np.dtype, list[Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.data.dtype, []).append(t)
        for group in by_dtype.values():
            flat = Tensor._wrap(np.concatenate([t.data.reshape(-1) for t in group]))  # (total,)
            dist.broadcast(flat, src=0)
            start = 0
            for t in group:
                size = t.data.size
                t.data[...] = flat.data[start:start + size].reshape(t.data.shape)
                start += size

    def _make_buckets(self) -> list[_Bucket]:
        """Parameters in reverse order, cut into buckets of about bucket_cap_mb (one dtype each)."""
        cap = self.bucket_cap_mb * 2**20
        buckets: list[_Bucket] = []
        current: dict[np.dtype, list[Any]] = {}
        sizes: dict[np.dtype, int] = {}
        for p in reversed(self._params):
            dtype = p.data.dtype
            current.setdefault(dtype, []).append(p)
            sizes[dtype] = sizes.get(dtype, 0) + p.data.nbytes
            if sizes[dtype] >= cap:
                buckets.append(_Bucket(current.pop(dtype), dtype))
                sizes[dtype] = 0
        for dtype, params in current.items():
            buckets.append(_Bucket(params, dtype))
        return buckets

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if self._expecting:
            self._abandon_previous_reduction()
        if self.module.training and self.broadcast_buffers and self._world > 1:
            self._sync_state(self._buffers_to_sync())
        output = self.module(*inputs, **kwargs)
        if (self.require_backward_grad_sync and is_grad_enabled() and self._params
                and self._world > 1):
            self._prepare_for_backward(output)
        return output

    def _prepare_for_backward(self, output: Any) -> None:
        """Count the gradient contributions each parameter will receive (see module docstring)."""
        counts = dict.fromkeys(self._where, 0)
        seen: set[int] = set()
        stack = [t._fn for t in _tensors(output) if t._fn is not None]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for value, needs, edge in zip(node.inputs, node.needs_input_grad, node._edges):
                if edge is None or not needs:
                    continue
                parent = edge[0]
                if parent is None:
                    key = id(value)
                    if key in counts:
                        counts[key] += 1
                elif id(parent) not in seen:
                    stack.append(parent)
        for bucket in self._buckets:
            bucket.pending = len(bucket.params)
            bucket.request = None
        self._remaining = counts
        self._next_bucket = 0
        self._expecting = True
        for p in self._params:  # unused here: ready now, with what .grad holds (or zeros)
            if counts[id(p)] == 0:
                b, i = self._where[id(p)]
                self._buckets[b].view(i)[...] = 0 if p.grad is None else p.grad.data
                self._mark_ready(b)
        if self._expecting and self._next_bucket == len(self._buckets):
            self._finish(None)  # nothing in this forward needs a gradient at all

    # -- backward ---------------------------------------------------------------------------------
    def _make_hook(self, param: Any) -> Any:
        def hook(grad: Tensor) -> Tensor | None:
            return self._on_gradient(param, grad)
        return hook

    def _on_gradient(self, param: Any, grad: Tensor) -> Tensor | None:
        if not self._expecting:
            return None  # no_sync, or a forward that did not prepare a reduction
        key = id(param)
        self._remaining[key] -= 1
        if self._remaining[key] > 0:
            return None  # more contributions to this parameter are still to come
        b, i = self._where[key]
        bucket = self._buckets[b]
        local = grad.data if param.grad is None else param.grad.data + grad.data
        bucket.view(i)[...] = local  # the total local gradient (with what no_sync accumulated)
        self._mark_ready(b)
        if self._next_bucket < len(self._buckets):
            self._poke()
            return None
        return self._finish(param)

    def _mark_ready(self, b: int) -> None:
        self._buckets[b].pending -= 1
        while (self._next_bucket < len(self._buckets)
               and self._buckets[self._next_bucket].pending == 0):
            bucket = self._buckets[self._next_bucket]
            bucket.request = dist.all_reduce(Tensor._wrap(bucket.buffer), async_op=True)
            self._next_bucket += 1

    def _poke(self) -> None:
        for bucket in self._buckets[:self._next_bucket]:
            if bucket.request is not None:
                bucket.request.is_completed()

    def _finish(self, current: Any) -> Tensor | None:
        """Wait for every bucket; .grad = bucket / world size. Returns the gradient the engine
        must store for ``current`` (the parameter whose hook is running, not yet accumulated)."""
        result = None
        scale = 1.0 / self._world
        started = time.perf_counter()
        for bucket in self._buckets:
            bucket.request.wait()
            bucket.request = None
        self.last_wait_s = time.perf_counter() - started  # communication not hidden by backward
        for bucket in self._buckets:
            bucket.buffer *= scale
            for i, p in enumerate(bucket.params):
                averaged = bucket.view(i).astype(p.data.dtype, copy=True)
                if p is current:
                    p.grad = None  # the engine stores what the hook returns into an empty .grad
                    result = Tensor._wrap(averaged)
                else:
                    p.grad = Tensor._wrap(averaged)
        self._expecting = False
        return result

    def _abandon_previous_reduction(self) -> None:
        started = self._next_bucket > 0
        missing = [name for name, p in self.module.named_parameters()
                   if self._remaining.get(id(p), 0) > 0]
        self._expecting = False
        if started:
            for bucket in self._buckets[:self._next_bucket]:
                bucket.request.wait()
                bucket.request = None
            raise RuntimeError(_INCOMPLETE.format(missing=", ".join(missing[:5]) or "?"))
        # no gradient arrived at all (a forward without backward): nothing was communicated

    # -- API --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no all-reduce) for the backward passes in this block."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        return f"world_size={self._world}, buckets={len(self._buckets)}"


def _tensors(output: Any) -> Iterator[Tensor]:
    """Every Tensor in a (nested) tuple/list/dict output."""
    if isinstance(output, Tensor):
        yield output
    elif isinstance(output, list | tuple):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _tensors(item)
