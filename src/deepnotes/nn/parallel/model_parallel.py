"""Model parallelism for huge fully connected layers (notes 004 Q33).

The notes' example: a classifier with tens of millions of classes has a weight matrix too big for
one worker, so the matrix is cut into blocks, one per rank, and the ranks compute together. For
y = x W^T + b with W of shape (out, in) there are two ways to cut, and the math decides where the
communication goes (p ranks, rank r holds block r):

**By output features (ColumnParallelLinear; "column" of W^T).** W = [W_0; W_1; ...] (rows of W),
each W_r of shape (out/p, in):

    forward    y_r = x W_r^T + b_r                 every rank needs all of x; y_r is a slice of y
               y   = [y_0, y_1, ...]               all-gather, only if the full y is needed
    backward   dL/dx = sum_r dL/dy_r W_r           each rank has one term: all-reduce
               dL/dW_r = dL/dy_r^T x               local

**By input features (RowParallelLinear; "row" of W^T).** W = [W_0, W_1, ...] (columns of W),
W_r of shape (out, in/p), and x split the same way, x = [x_0, x_1, ...]:

    forward    y = sum_r x_r W_r^T + b             each rank has one term: all-reduce
    backward   dL/dx_r = dL/dy W_r                 dL/dy is the same on every rank: local
               dL/dW_r = dL/dy^T x_r               local

The communication lives in four autograd Functions whose forward and backward are each other's
transposes: copy (identity | all-reduce), reduce (all-reduce | identity), gather (all-gather |
take my slice), scatter (take my slice | all-gather). Column followed by row (the Megatron MLP,
``ColumnParallelLinear(gather_output=False)`` -> activation -> ``RowParallelLinear(
input_is_parallel=True)``) needs one all-reduce forward and one backward.

**Sharded softmax cross-entropy** over classes split like ColumnParallelLinear's outputs, without
ever gathering the (N, C) logits: for sample i with target t_i and logits z_i split into shards,

    M_i = max over ranks of max(z_r,i)                          all-reduce MAX  (N numbers)
    S_i = sum over ranks of sum_c exp(z_r,ic - M_i)             all-reduce SUM  (N numbers)
    T_i = z_i,t_i, taken on the rank that owns class t_i        (same all-reduce, 0 elsewhere)
    loss_i = log S_i + M_i - T_i
    backward: dloss_i/dz_r,ic = exp(z_r,ic - M_i) / S_i - [class c of rank r == t_i]   (local)

Each rank sends O(N) numbers instead of O(N C / p) for a gather. PyTorch's options fit in the same
all-reduce: with class weights w (replicated, each rank uses its slice), label smoothing e and
ignore_index, with lse_i = log S_i + M_i and W = sum_c w_c,
    loss_i = [t_i != ignore] ((1 - e) w_t (lse_i - T_i) + e/C (W lse_i - Z_i)),
    Z_i = sum_c w_c z_ic                                        (one more all-reduce SUM entry)
    dloss_i/dz_ic = [t_i != ignore] ((1 - e) w_t (p_ic - [c == t_i]) + e/C (W p_ic - w_c))
and 'mean' divides the sum by sum_i [t_i != ignore] w_t (PyTorch's weighted mean).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import distributed as dist
from ...autograd import Function
from ...tensor import Tensor
from .. import functional as F
from ..layers.linear import Linear
from ..module import Module
from ..parameter import Parameter


def _world() -> tuple[int, int]:
    """(rank, world size); a process without an initialised group is rank 0 of 1."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(array: np.ndarray, op: Any = None) -> np.ndarray:
    """All-reduce of a fresh contiguous copy (``array`` is left alone)."""
    out = np.ascontiguousarray(array).copy()
    if _world()[1] > 1:
        dist.all_reduce(Tensor._wrap(out), op=op or dist.ReduceOp.SUM)
    return out


def _all_gather_last(array: np.ndarray) -> np.ndarray:
    """Concatenate every rank's ``array`` along the last axis: (*, k) -> (*, p k)."""
    rank, size = _world()
    if size == 1:
        return array.copy()
    pieces = [Tensor._wrap(np.empty_like(array)) for _ in range(size)]
    dist.all_gather(pieces, Tensor._wrap(np.ascontiguousarray(array)))
    return np.concatenate([t.data for t in pieces], axis=-1)


def _my_slice_last(array: np.ndarray) -> np.ndarray:
    """This rank's block of the last axis: (*, p k) -> (*, k)."""
    rank, size = _world()
    k = array.shape[-1] // size
    return np.ascontiguousarray(array[..., rank * k:(rank + 1) * k])


class CopyToParallelRegionFn(Function):
    """Forward: identity (every rank uses all of x). Backward: all-reduce SUM of dL/dx."""

    def forward(self, x):
        return x.copy()

    def backward(self, grad_y):
        return _all_reduce(grad_y)


class ReduceFromParallelRegionFn(Function):
    """Forward: all-reduce SUM of the partial results. Backward: identity (y feeds each term)."""

    def forward(self, x):
        return _all_reduce(x)

    def backward(self, grad_y):
        return grad_y


class GatherFromParallelRegionFn(Function):
    """Forward: all-gather along the last axis. Backward: this rank's slice of dL/dy."""

    def forward(self, x):
        return _all_gather_last(x)

    def backward(self, grad_y):
        return _my_slice_last(grad_y)


class ScatterToParallelRegionFn(Function):
    """Forward: this rank's slice of the last axis. Backward: all-gather of the slices' grads."""

    def forward(self, x):
        return _my_slice_last(x)

    def backward(self, grad_y):
        return _all_gather_last(grad_y)


def copy_to_parallel_region(input: Tensor) -> Tensor:  # noqa: A002
    return CopyToParallelRegionFn()(input)


def reduce_from_parallel_region(input: Tensor) -> Tensor:  # noqa: A002
    return ReduceFromParallelRegionFn()(input)


def gather_from_parallel_region(input: Tensor) -> Tensor:  # noqa: A002
    return GatherFromParallelRegionFn()(input)


def scatter_to_parallel_region(input: Tensor) -> Tensor:  # noqa: A002
    _, size = _world()
    if input.shape[-1] % size:
        raise ValueError(f"scatter_to_parallel_region: the last dimension ({input.shape[-1]}) "
                         f"must divide by the world size {size}")
    return ScatterToParallelRegionFn()(input)


class ShardedCrossEntropyFn(Function):
    """Per-sample softmax cross-entropy of class-sharded logits (see the module docstring).

    logits_shard (N, C/p) holding classes [r C/p, (r+1) C/p), target (N,) global class ids
    -> loss (N,) (0 where the target is ``ignore_index``).
    """

    def __init__(self, class_start: int, classes: int, weight: np.ndarray | None = None,
                 ignore_index: int = -100, label_smoothing: float = 0.0):
        self.class_start, self.classes = class_start, classes
        self.weight, self.ignore_index, self.smoothing = weight, ignore_index, label_smoothing

    def forward(self, logits, target):
        n, k = logits.shape
        valid = target != self.ignore_index                            # (N,)
        weight_target = (np.ones(n, logits.dtype) if self.weight is None
                         else self.weight[np.where(valid, target, 0)].astype(logits.dtype))
        weight_target *= valid                                         # (N,) w_t, 0 if ignored
        local_max = logits.max(axis=1) if k else np.full(n, -np.inf, logits.dtype)  # (N,)
        global_max = _all_reduce(local_max, dist.ReduceOp.MAX)
        exp = np.exp(logits - global_max[:, None])                     # (N, C/p)
        local = target - self.class_start                              # (N,) index in shard
        mine = valid & (local >= 0) & (local < k)                      # (N,) owned here
        picked = np.zeros(n, dtype=logits.dtype)
        rows = np.nonzero(mine)[0]
        picked[rows] = logits[rows, local[rows]]
        shard_weight = (None if self.weight is None else
                        self.weight[self.class_start:self.class_start + k].astype(logits.dtype))
        parts = [exp.sum(axis=1), picked]
        if self.smoothing:
            parts.append(logits.sum(axis=1) if shard_weight is None else logits @ shard_weight)
        sums = _all_reduce(np.concatenate(parts))                      # (2N or 3N,) [S, T, Z]
        sum_exp, target_logit = sums[:n], sums[n:2 * n]
        log_sum = np.log(sum_exp) + global_max                         # (N,) logsumexp
        loss = (1 - self.smoothing) * weight_target * (log_sum - target_logit)
        total_weight = self.classes if self.weight is None else float(self.weight.sum())
        if self.smoothing:
            smooth = total_weight * log_sum - sums[2 * n:]
            loss += self.smoothing / self.classes * np.where(valid, smooth, 0)
        self.save_for_backward(exp / sum_exp[:, None])                 # (N, C/p) softmax shard
        self.rows, self.cols = rows, local[rows]
        self.valid, self.weight_target, self.shard_weight = valid, weight_target, shard_weight
        self.total_weight = total_weight
        return loss

    def backward(self, grad_loss):
        (softmax,) = self.saved
        e = self.smoothing
        grad = softmax * ((1 - e) * self.weight_target)[:, None]      # (N, C/p)
        grad[self.rows, self.cols] -= (1 - e) * self.weight_target[self.rows]
        if e:
            scale = e / self.classes * self.valid                      # (N,)
            grad += scale[:, None] * (self.total_weight * softmax)
            grad -= scale[:, None] * (1 if self.shard_weight is None else self.shard_weight)
        return grad * grad_loss[:, None], None


def sharded_cross_entropy(logits_shard: Tensor, target: Tensor, weight: Any = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy over classes split across ranks, without gathering the logits.

    Args:
        logits_shard: (N, C/p), this rank's block of classes (e.g. the output of
            ``ColumnParallelLinear(..., gather_output=False)``): rank r holds classes
            [r C/p, (r+1) C/p).
        target: (N,) integer class ids in [0, C) or ``ignore_index``, the same on every rank.
        weight: optional (C,) class weights, the whole vector, the same on every rank.
        ignore_index: targets equal to it add nothing to the loss, its mean or the gradient.
        reduction: 'mean' | 'sum' | 'none'.
        label_smoothing: e in [0, 1]: the target distribution is (1 - e) one-hot + e / C.

    Returns:
        The loss, equal on every rank to ``F.cross_entropy(full_logits, target, weight,
        ignore_index=..., reduction=..., label_smoothing=...)``.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not isinstance(logits_shard, Tensor) or logits_shard.ndim != 2 \
            or logits_shard.dtype.kind != "f":
        raise ValueError(f"sharded_cross_entropy: logits_shard must be a floating (N, C/p) "
                         f"Tensor, got {getattr(logits_shard, 'shape', type(logits_shard))}")
    target_array = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target_array.dtype.kind not in "iu" or target_array.shape != logits_shard.shape[:1]:
        raise ValueError(f"sharded_cross_entropy: target must be integer class ids of shape "
                         f"({logits_shard.shape[0]},), got dtype {target_array.dtype} and shape "
                         f"{tuple(target_array.shape)}")
    if not (isinstance(label_smoothing, int | float) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    rank, size = _world()
    k = logits_shard.shape[1]
    classes = k * size
    weight_array = None
    if weight is not None:
        weight_array = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
        if weight_array.shape != (classes,):
            raise ValueError(f"sharded_cross_entropy: weight must hold one value per class, "
                             f"shape ({classes},), got {tuple(weight_array.shape)}")
    counted = target_array[target_array != ignore_index]
    if counted.size and (counted.min() < 0 or counted.max() >= classes):
        bad = counted[(counted < 0) | (counted >= classes)][0]
        raise IndexError(f"Target {bad} is out of bounds (the {size} shards hold {classes} "
                         f"classes).")
    losses = ShardedCrossEntropyFn(rank * k, classes, weight_array, ignore_index,
                                   float(label_smoothing))(logits_shard,
                                                           target_array.astype(np.int64))
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    # PyTorch's mean: over the counted samples, each weighted by its class weight.
    denominator = (counted.size if weight_array is None
                   else float(weight_array[counted].sum()))
    return losses.sum() / denominator


def _split(total: int, name: str, layer: str) -> int:
    _, size = _world()
    if total % size:
        raise ValueError(f"{layer}: {name}={total} must divide by the world size {size}")
    return total // size


class ColumnParallelLinear(Module):
    """y = x W^T + b with W split by output features (rows of W) across the ranks.

    Rank r holds ``weight`` (out/p, in) and ``bias`` (out/p,): output features
    [r out/p, (r+1) out/p). The values are the blocks of the weight that ``nn.Linear(in, out)``
    would draw with the same seed (the full matrix is drawn on every rank and sliced, so seed
    every rank alike), which makes the split model equal to the unsplit one.

    Args:
        in_features, out_features: of the whole layer; out_features must divide by p.
        bias: learn a bias.
        gather_output: all-gather y to (*, out) on every rank; False keeps this rank's
            (*, out/p) block (for a following RowParallelLinear(input_is_parallel=True) or
            :func:`sharded_cross_entropy`).

    Shape: (*, in) -> (*, out) or (*, out/p).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 gather_output: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        rank, _ = _world()
        k = _split(out_features, "out_features", "ColumnParallelLinear")
        master = Linear(in_features, out_features, bias, device, dtype)
        self.in_features, self.out_features = in_features, out_features
        self.gather_output = gather_output
        rows = slice(rank * k, (rank + 1) * k)
        self.weight = Parameter(master.weight.data[rows].copy())       # (out/p, in)
        if bias:
            self.bias = Parameter(master.bias.data[rows].copy())       # (out/p,)
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x = copy_to_parallel_region(input)
        y = F.linear(x, self.weight, self.bias)                        # (*, out/p)
        return gather_from_parallel_region(y) if self.gather_output else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features} "
                f"(this rank: {self.weight.shape[0]}), bias={self.bias is not None}, "
                f"gather_output={self.gather_output}")


class RowParallelLinear(Module):
    """y = x W^T + b with W split by input features (columns of W) across the ranks.

    Rank r holds ``weight`` (out, in/p), the block of input features [r in/p, (r+1) in/p), and
    the whole ``bias`` (out,), added once after the all-reduce. Initial values: the blocks of
    ``nn.Linear(in, out)``'s weight drawn with the same seed.

    Args:
        in_features, out_features: of the whole layer; in_features must divide by p.
        bias: learn a bias.
        input_is_parallel: the input is already this rank's (*, in/p) block (the output of a
            ColumnParallelLinear(gather_output=False)); otherwise the full (*, in) input is
            sliced here.

    Shape: (*, in) or (*, in/p) -> (*, out), the same on every rank.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 input_is_parallel: bool = False, device: Any = None, dtype: Any = None):
        super().__init__()
        rank, _ = _world()
        k = _split(in_features, "in_features", "RowParallelLinear")
        master = Linear(in_features, out_features, bias, device, dtype)
        self.in_features, self.out_features = in_features, out_features
        self.input_is_parallel = input_is_parallel
        cols = slice(rank * k, (rank + 1) * k)
        self.weight = Parameter(master.weight.data[:, cols].copy())    # (out, in/p)
        if bias:
            self.bias = Parameter(master.bias.data.copy())             # (out,)
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x = input if self.input_is_parallel else scatter_to_parallel_region(input)
        partial = F.linear(x, self.weight)                             # (*, out) one term
        y = reduce_from_parallel_region(partial)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features} (this rank: {self.weight.shape[1]}), "
                f"out_features={self.out_features}, bias={self.bias is not None}, "
                f"input_is_parallel={self.input_is_parallel}")


__all__ = ["ColumnParallelLinear", "CopyToParallelRegionFn", "GatherFromParallelRegionFn",
           "ReduceFromParallelRegionFn", "RowParallelLinear", "ScatterToParallelRegionFn",
           "ShardedCrossEntropyFn", "copy_to_parallel_region", "gather_from_parallel_region",
           "reduce_from_parallel_region", "scatter_to_parallel_region",
           "sharded_cross_entropy"]
