"""The MPI side of tests/distributed: run as ``mpiexec -n 2 python -m tests.distributed.workers
CASE [CASE ...]``. Every case runs on every rank; rank 0 prints one line ``RESULT <json>`` per
case with what the pytest side asserts. Cases are grouped into few launches because each launch
pays the imports (about a second per rank)."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np

import deepnotes as dn
import deepnotes.distributed as dist
import deepnotes.nn.functional as F
from deepnotes import nn
from deepnotes.nn.parallel import (
    ColumnParallelLinear,
    DistributedDataParallel,
    RowParallelLinear,
    sharded_cross_entropy,
)


def report(case: str, **values: object) -> None:
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps({"case": case, **values}), flush=True)


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y), initial=0.0)) for x, y in zip(a, b, strict=True))


def differs_across_ranks(array: np.ndarray) -> bool:
    pieces = [dn.zeros(*array.shape, dtype=array.dtype) for _ in range(dist.get_world_size())]
    dist.all_gather(pieces, dn.tensor(array))
    return any(not np.array_equal(pieces[0].data, p.data) for p in pieces[1:])


# -- data parallel --------------------------------------------------------------------------------
def bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 8),
                         nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 5))


def state(model: nn.Module) -> list[np.ndarray]:
    return [v.data.astype(np.float64) for v in model.state_dict().values()]


def sgd_steps(model: nn.Module, batches: list, rank: int, world: int) -> None:
    opt = dn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:
        per = len(x) // world
        part = slice(rank * per, (rank + 1) * per)
        loss = F.cross_entropy(model(dn.tensor(x[part])), dn.tensor(y[part]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def case_ddp_syncbn() -> None:
    """2 ranks x half batch, SyncBN + DDP == 1 process x whole batch after 5 SGD steps."""
    rank, world = dist.get_rank(), dist.get_world_size()
    data = np.random.default_rng(7)
    batches = [(data.standard_normal((8, 3, 6, 6)) * 2 + 0.5, data.integers(0, 5, 8))
               for _ in range(5)]
    dn.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    base = bn_net().double()
    # the reference: rank 0's initial weights, one process, the whole batch, plain BatchNorm
    initial = [t.data.copy() for t in base.state_dict().values()]
    dist.broadcast_object_list(holder := [[a.tolist() for a in initial]], src=0)
    reference = copy.deepcopy(base)
    for t, value in zip(reference.state_dict().values(), holder[0], strict=True):
        t.data[...] = np.asarray(value, dtype=t.data.dtype)
    sgd_steps(reference, batches, 0, 1)

    synced = DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(base)),
                                     bucket_cap_mb=0.0005)  # several buckets
    sgd_steps(synced, batches, rank, world)
    plain = DistributedDataParallel(copy.deepcopy(base))
    sgd_steps(plain, batches, rank, world)
    kinds = sorted({type(m).__name__ for m in synced.modules()})
    # float32 with |mean| >> std: E[x^2] - E[x]^2 would cancel to noise; the two-pass variance
    # matches single-process BatchNorm (float64 reference of the same float32 values)
    x32 = (300 + 0.01 * data.standard_normal((8, 3, 4, 4))).astype(np.float32)
    bn32 = nn.SyncBatchNorm(3)
    y32 = bn32(dn.tensor(x32[rank * 4:rank * 4 + 4])).data
    y64 = nn.BatchNorm2d(3).double()(dn.tensor(x32.astype(np.float64))).data[rank * 4:rank * 4 + 4]
    float32_diff = float(np.abs(y32 - y64).max())
    sync_diff = max_diff(state(synced.module), state(reference))
    plain_diff = max_diff(state(plain.module), state(reference))
    ranks_differ = differs_across_ranks(np.concatenate([a.ravel() for a in state(synced.module)]))
    # overlap: when backward reaches the input (before the first layer's weight gradient), the
    # buckets of the later layers have already started their all-reduce
    x = dn.tensor(batches[0][0][rank * 4:rank * 4 + 4], requires_grad=True)
    started = []
    x.register_hook(lambda grad: started.append(synced._next_bucket))
    F.cross_entropy(synced(x), dn.tensor(batches[0][1][rank * 4:rank * 4 + 4])).backward()
    report("ddp_syncbn", world=world, buckets=len(synced._buckets), kinds=kinds,
           float32_diff=float32_diff, sync_diff=sync_diff, plain_diff=plain_diff,
           ranks_differ=ranks_differ, started_before_input_grad=started)


class Tied(nn.Module):
    """A layer used twice (two gradient contributions) and one never used."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.shared = nn.Linear(6, 6)
        self.unused = nn.Linear(6, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = dn.tanh(self.shared(dn.tanh(self.inp(x))))
        return self.out(dn.tanh(self.shared(h)))


def grads(model: nn.Module) -> list[np.ndarray]:
    return [np.zeros_like(p.data) if p.grad is None else p.grad.data.copy()
            for p in model.parameters()]


def case_ddp_no_sync() -> None:
    """no_sync accumulation, a weight used twice and an unused one; overlap bookkeeping."""
    rank = dist.get_rank()
    dn.manual_seed(3)
    base = Tied().double()
    data = np.random.default_rng(11)
    x, y = data.standard_normal((8, 4)), data.integers(0, 3, 8)
    reference = copy.deepcopy(base)
    F.cross_entropy(reference(dn.tensor(x)), dn.tensor(y)).backward()

    model = DistributedDataParallel(copy.deepcopy(base), bucket_cap_mb=0.0002)
    mine = slice(rank * 4, rank * 4 + 4)
    xs, ys = x[mine], y[mine]
    with model.no_sync():  # first micro-batch: local only
        (F.cross_entropy(model(dn.tensor(xs[:2])), dn.tensor(ys[:2])) / 2).backward()
    local_differs = differs_across_ranks(model.module.inp.weight.grad.data)
    (F.cross_entropy(model(dn.tensor(xs[2:])), dn.tensor(ys[2:])) / 2).backward()
    accumulated = max_diff(grads(model.module), grads(reference))
    # a second, plain iteration: a fresh reduction, same gradients as the reference's
    model.zero_grad()
    reference.zero_grad()
    F.cross_entropy(reference(dn.tensor(x)), dn.tensor(y)).backward()
    F.cross_entropy(model(dn.tensor(xs)), dn.tensor(ys)).backward()
    plain = max_diff(grads(model.module), grads(reference))
    # a forward whose backward is skipped, then a normal step: allowed (nothing was started)
    model(dn.tensor(xs))
    model.zero_grad()
    F.cross_entropy(model(dn.tensor(xs)), dn.tensor(ys)).backward()
    after_skip = max_diff(grads(model.module), grads(reference))
    # backward through the module alone (not through DDP's forward) communicates nothing
    model.module.inp(dn.tensor(xs)).sum().backward()
    # a backward that completes the first bucket only: the next forward must say so
    model(dn.tensor(xs))
    model.module.out.weight.sum().backward()  # leaf backwards: the last layer's gradients
    model.module.out.bias.sum().backward()    # (bucket 0 starts its all-reduce)
    try:
        model(dn.tensor(xs))
        incomplete = ""
    except RuntimeError as err:
        incomplete = str(err)
    model.zero_grad()
    F.cross_entropy(model(dn.tensor(xs)), dn.tensor(ys)).backward()  # usable again afterwards
    recovered = max_diff(grads(model.module), grads(reference))
    report("ddp_no_sync", buckets=len(model._buckets), local_differs=local_differs,
           accumulated_diff=accumulated, plain_diff=plain, after_skip_diff=after_skip,
           incomplete_error=incomplete, recovered_diff=recovered)


# -- model parallel --------------------------------------------------------------------------------
def case_model_parallel() -> None:
    """Column/row parallel linear + sharded cross-entropy == unsplit Linear + cross_entropy."""
    data = np.random.default_rng(5)
    x_np, y_np = data.standard_normal((6, 8)), data.integers(0, 6, 6)
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}

    # (a) the notes' huge classifier: ColumnParallelLinear + sharded CE, logits never gathered
    dn.manual_seed(1)
    head = ColumnParallelLinear(8, 6, gather_output=False, dtype=dn.float64)
    dn.manual_seed(1)
    ref_head = nn.Linear(8, 6, dtype=dn.float64)
    x, x_ref = dn.tensor(x_np, requires_grad=True), dn.tensor(x_np, requires_grad=True)
    loss = sharded_cross_entropy(head(x), dn.tensor(y_np))
    ref_loss = F.cross_entropy(ref_head(x_ref), dn.tensor(y_np))
    loss.backward()
    ref_loss.backward()
    k = 6 // world
    rows = slice(rank * k, (rank + 1) * k)
    results["classifier"] = max(
        abs(loss.item() - ref_loss.item()),
        max_diff([x.grad.data, head.weight.grad.data, head.bias.grad.data,
                  head.weight.data],
                 [x_ref.grad.data, ref_head.weight.grad.data[rows], ref_head.bias.grad.data[rows],
                  ref_head.weight.data[rows]]))
    for reduction in ("sum", "none"):
        ours = sharded_cross_entropy(head(dn.tensor(x_np)), dn.tensor(y_np), reduction=reduction)
        theirs = F.cross_entropy(ref_head(dn.tensor(x_np)), dn.tensor(y_np), reduction=reduction)
        results[f"reduction_{reduction}"] = max_diff([ours.data], [theirs.data])
    # class weights, an ignored target and label smoothing, each rank holding 6 / world classes
    weight = np.linspace(0.5, 2.0, 6)
    y_ignored = y_np.copy()
    y_ignored[0] = -100
    x, x_ref = dn.tensor(x_np, requires_grad=True), dn.tensor(x_np, requires_grad=True)
    options = dict(ignore_index=-100, label_smoothing=0.2)
    loss = sharded_cross_entropy(head(x), dn.tensor(y_ignored), weight=weight, **options)
    ref_loss = F.cross_entropy(ref_head(x_ref), dn.tensor(y_ignored), weight=dn.tensor(weight),
                               **options)
    head.zero_grad()
    ref_head.zero_grad()
    loss.backward()
    ref_loss.backward()
    results["options"] = max(
        abs(loss.item() - ref_loss.item()),
        max_diff([x.grad.data, head.weight.grad.data, head.bias.grad.data],
                 [x_ref.grad.data, ref_head.weight.grad.data[rows],
                  ref_head.bias.grad.data[rows]]))

    # (b) Megatron MLP: column (no gather) -> tanh -> row (parallel input) -> row (full input)
    #     -> column (gathered) -> cross_entropy
    dn.manual_seed(2)
    layers = [ColumnParallelLinear(8, 4, gather_output=False, dtype=dn.float64),
              RowParallelLinear(4, 6, input_is_parallel=True, dtype=dn.float64),
              RowParallelLinear(6, 4, dtype=dn.float64),
              ColumnParallelLinear(4, 6, gather_output=True, dtype=dn.float64)]
    dn.manual_seed(2)
    ref_layers = [nn.Linear(8, 4, dtype=dn.float64), nn.Linear(4, 6, dtype=dn.float64),
                  nn.Linear(6, 4, dtype=dn.float64), nn.Linear(4, 6, dtype=dn.float64)]

    def run(stack: list, inp: dn.Tensor) -> dn.Tensor:
        h = dn.tanh(stack[1](dn.tanh(stack[0](inp))))
        return stack[3](dn.tanh(stack[2](h)))

    x, x_ref = dn.tensor(x_np, requires_grad=True), dn.tensor(x_np, requires_grad=True)
    out, ref_out = run(layers, x), run(ref_layers, x_ref)
    F.cross_entropy(out, dn.tensor(y_np)).backward()
    F.cross_entropy(ref_out, dn.tensor(y_np)).backward()
    blocks = [  # (ours, the matching block of the reference)
        (layers[0].weight, ref_layers[0].weight, (slice(rank * 2, rank * 2 + 2),)),
        (layers[0].bias, ref_layers[0].bias, (slice(rank * 2, rank * 2 + 2),)),
        (layers[1].weight, ref_layers[1].weight, (slice(None), slice(rank * 2, rank * 2 + 2))),
        (layers[1].bias, ref_layers[1].bias, (slice(None),)),
        (layers[2].weight, ref_layers[2].weight, (slice(None), slice(rank * 3, rank * 3 + 3))),
        (layers[2].bias, ref_layers[2].bias, (slice(None),)),
        (layers[3].weight, ref_layers[3].weight, (slice(rank * 3, rank * 3 + 3),)),
        (layers[3].bias, ref_layers[3].bias, (slice(rank * 3, rank * 3 + 3),)),
    ]
    results["mlp_forward"] = max_diff([out.data], [ref_out.data])
    results["mlp_grad_x"] = max_diff([x.grad.data], [x_ref.grad.data])
    results["mlp_weights"] = max_diff([p.data for p, _, _ in blocks],
                                      [r.data[s] for _, r, s in blocks])
    results["mlp_grads"] = max_diff([p.grad.data for p, _, _ in blocks],
                                    [r.grad.data[s] for _, r, s in blocks])
    results["shard_shapes"] = [list(layers[0].weight.shape), list(layers[1].weight.shape)]
    report("model_parallel", **results)


# -- collectives ----------------------------------------------------------------------------------
def inputs(k: int, size: int, dtype: str) -> np.ndarray:
    """Rank k's input (every rank can build every rank's, to know the expected result)."""
    data = np.random.default_rng(1000 * k + size)
    if dtype == "int64":
        return data.integers(-50, 50, size, dtype=np.int64)
    return data.standard_normal(size).astype(dtype)


def case_collectives() -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    failures: list[str] = []
    checked = 0

    def check(name: str, got: np.ndarray, want: np.ndarray) -> None:
        nonlocal checked
        checked += 1
        exact = got.dtype.kind == "i"
        ok = got.dtype == want.dtype and got.shape == want.shape and (
            np.array_equal(got, want) if exact else np.allclose(got, want, rtol=1e-5, atol=1e-6))
        if not ok:
            failures.append(f"{name}: got {got.ravel()[:4]} ({got.dtype}, {got.shape}), want "
                            f"{want.ravel()[:4]} ({want.dtype}, {want.shape})")

    sizes = [0, 1, 7, 1000, 2**19]  # up to 4 MB (float64, int64) and 2 MB (float32)
    ops = {dist.ReduceOp.SUM: lambda a: np.sum(a, axis=0),
           dist.ReduceOp.MAX: lambda a: np.max(a, axis=0),
           dist.ReduceOp.MIN: lambda a: np.min(a, axis=0),
           dist.ReduceOp.PRODUCT: lambda a: np.prod(a, axis=0),
           dist.ReduceOp.AVG: lambda a: np.sum(a, axis=0) / world}
    for dtype in ("float32", "float64", "int64"):
        for size in sizes:
            every = np.stack([inputs(k, size, dtype) for k in range(world)])  # (p, size)
            for op, expected in ops.items():
                if op is dist.ReduceOp.AVG and dtype == "int64":
                    continue
                t = dn.tensor(inputs(rank, size, dtype))
                alias = t.data
                dist.all_reduce(t, op)
                check(f"all_reduce {op.name} {dtype} {size}", t.data,
                      expected(every).astype(dtype))
                if t.data is not alias:
                    failures.append(f"all_reduce {op.name} {dtype} {size}: not in place")
            t = dn.tensor(inputs(rank, size, dtype))
            dist.broadcast(t, src=world - 1)
            check(f"broadcast {dtype} {size}", t.data, every[-1])
            pieces = [dn.tensor(np.zeros(size, dtype)) for _ in range(world)]
            dist.all_gather(pieces, dn.tensor(inputs(rank, size, dtype)))
            for k in range(world):
                check(f"all_gather {dtype} {size}[{k}]", pieces[k].data, every[k])
            out = dn.tensor(np.zeros(size, dtype))
            # rank k's list item r is inputs(k, size) + r: rank r gets sum_k inputs(k) + p r
            dist.reduce_scatter(out, [dn.tensor(inputs(rank, size, dtype) + r)
                                      for r in range(world)])
            check(f"reduce_scatter {dtype} {size}", out.data,
                  (every.sum(axis=0) + world * rank).astype(dtype))
            big = dn.tensor(np.zeros(world * size, dtype))
            dist.all_gather_into_tensor(big, dn.tensor(inputs(rank, size, dtype)))
            check(f"all_gather_into_tensor {dtype} {size}", big.data, every.reshape(-1))
            part = dn.tensor(np.zeros(size // world if size >= world else 0, dtype))
            whole = np.concatenate([inputs(rank, size, dtype)[:world * part.shape[0]]])
            dist.reduce_scatter_tensor(part, dn.tensor(whole))
            n = part.shape[0]
            check(f"reduce_scatter_tensor {dtype} {size}", part.data,
                  every[:, rank * n:(rank + 1) * n].sum(axis=0).astype(dtype))
    # a non-contiguous view: reduced through a copy and written back into the view
    base = np.arange(24, dtype=np.float64).reshape(4, 6) * (rank + 1)
    view = dn.Tensor._wrap(base[:, ::2])
    dist.all_reduce(view)
    check("all_reduce view", base[:, ::2],
          np.arange(24.0).reshape(4, 6)[:, ::2] * sum(range(1, world + 1)))
    check("all_reduce view leaves the rest", base[:, 1::2],
          np.arange(24.0).reshape(4, 6)[:, 1::2] * (rank + 1))
    # non-blocking
    t = dn.tensor(inputs(rank, 1000, "float64"))
    work = dist.all_reduce(t, dist.ReduceOp.AVG, async_op=True)
    work.wait()
    check("all_reduce async AVG", t.data,
          np.mean([inputs(k, 1000, "float64") for k in range(world)], axis=0))
    t = dn.tensor(np.full(3, float(rank)))
    dist.reduce(t, dst=0)
    check("reduce", t.data, np.full(3, float(sum(range(world)) if rank == 0 else rank)))
    dist.barrier()
    errors = []
    for call in (lambda: dist.all_reduce(np.zeros(3)),
                 lambda: dist.broadcast(dn.zeros(3), src=world),
                 lambda: dist.all_reduce(dn.tensor([1, 2]), dist.ReduceOp.AVG),
                 lambda: dist.all_gather([dn.zeros(3)], dn.zeros(3))):
        try:
            call()
            errors.append("no error")
        except (TypeError, ValueError) as err:
            errors.append(str(err))
    report("collectives", world=world, checked=checked, failures=failures[:10], errors=errors)


def case_raise() -> None:
    """Rank 1 raises while rank 0 waits in an all-reduce: both must end, with a message."""
    if dist.get_rank() == 1:
        raise ValueError("boom from rank 1")
    dist.all_reduce(dn.ones(3))
    print("rank 0 passed the all-reduce", flush=True)  # must never be printed


CASES = {"ddp_syncbn": case_ddp_syncbn, "ddp_no_sync": case_ddp_no_sync,
         "model_parallel": case_model_parallel, "collectives": case_collectives,
         "raise": case_raise}


def main(names: list[str]) -> None:
    dist.init_process_group("mpi")
    for name in names:
        CASES[name]()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
