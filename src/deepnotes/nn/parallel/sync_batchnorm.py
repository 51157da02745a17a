"""``SyncBatchNorm``: batch norm with the statistics of the *global* batch (notes 004 Q11).

With data parallelism each rank sees B/p samples. Plain batch norm on each rank normalises with
the mean and variance of that small local batch: the effective batch of BN shrinks p times,
the statistics get noisier, and the result is no longer the model that one process with the whole
batch would train (notes 004 Q11: "multi-GPU training shrinks the mini-batch"). SyncBatchNorm
communicates so that every rank normalises with the statistics of all B samples.

Forward, per channel c, with rank r holding m_r values and m = sum_r m_r:

    mu     = (sum_r S1_r) / m                   S1_r = sum of rank r's values         (all-reduce)
    var    = (sum_r Q_r) / m                    Q_r = sum over rank r of (x - mu)^2   (all-reduce)
    x_hat  = (x - mu) / sqrt(var + eps),  y = gamma x_hat + beta

The textbook single round all-reduces the sum S1, the sum of squares S2 and the count m and takes
var = S2/m - mu^2; that difference of two large numbers loses every digit in float32 when
|mu| >> sigma (a ReLU output, an image with mean 120). So the count and S1 travel in a first
all-reduce (C + 1 numbers), and the *centred* sum of squares in a second one (C numbers): two
tiny messages, and the variance is the two-pass one that single-process BatchNorm computes.

Backward. On one process (ops.norm.BatchNormFn), with g = dL/dy,

    dL/dx = (gamma / sigma) (g - mean(g) - x_hat mean(g x_hat))

where the means run over all m values of the channel. Under data parallelism rank r back-props
its own loss L_r; the total upstream gradient of L_total = sum_r L_r is rank r's g on rank r's
values, so the two means are global sums divided by m:

    sum_g = sum_r sum(g_r),  sum_gx = sum_r sum(g_r x_hat_r)        (one all-reduce, 2C numbers)
    dL/dx_r = (gamma / sigma) (g_r - sum_g / m - x_hat_r sum_gx / m)

This is d(sum_r L_r)/dx_r = p dL/dx_r for L = mean over ranks; DDP divides the parameter
gradients by p when it averages them, which completes the chain rule. dL/dgamma = sum(g x_hat)
and dL/dbeta = sum(g) stay *local* sums: DDP averages them like every other parameter gradient.

Running statistics: as BatchNorm with the global batch, running_var from the unbiased global
variance var * m / (m - 1). Every rank computes the same update, so the buffers stay equal.
Outside training, or without an initialised process group of two or more ranks, SyncBatchNorm is
exactly BatchNorm (same code path). PyTorch's SyncBatchNorm refuses to run on the CPU; this one is
CPU-first and takes any (N, C, *) input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import distributed as dist
from ...autograd import Function
from ...ops.norm import BatchNormFn
from ...tensor import Tensor
from ..layers.norm import BatchNorm1d, BatchNorm2d, _BatchNorm, _InstanceNorm
from ..module import Module


class SyncBatchNormFn(Function):
    """Training-mode batch norm over the global batch of all ranks (see the module docstring).

    x (N_r, C, *) -> y (N_r, C, *); statistics per channel over every rank's N_r and * values.
    """

    def __init__(self, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                 momentum: float, eps: float):
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps = momentum, eps

    def forward(self, x, weight=None, bias=None):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, math.prod(x.shape[2:]))                    # (N_r, C, L)
        self.x_shape = x.shape
        first = np.empty(c + 1, dtype=np.float64)                       # [S1 (C,), m_r]
        first[:c] = x3.sum(axis=(0, 2))
        first[c] = x3.shape[0] * x3.shape[2]
        dist.all_reduce(Tensor._wrap(first))
        m = int(round(first[c]))
        if m <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {m} "
                             f"over all ranks (local input size {tuple(x.shape)})")
        mean = (first[:c] / m).astype(x.dtype)                          # (C,)
        centred = x3 - mean[:, None]                                    # (N_r, C, L)
        second = np.einsum("ncl,ncl->c", centred, centred).astype(np.float64)  # (C,) Q_r
        dist.all_reduce(Tensor._wrap(second))
        var = (second / m).astype(x.dtype)                              # (C,) biased, global
        inv_std = 1.0 / np.sqrt(var + self.eps)                         # (C,)
        x_hat = centred * inv_std[:, None]                              # (N_r, C, L)
        BatchNormFn._update_running(self, mean, var, m)   # the same rule, with the global batch
        y = x_hat
        if weight is not None:
            y = y * weight.astype(x.dtype, copy=False)[:, None]
        if bias is not None:
            y = y + bias.astype(x.dtype, copy=False)[:, None]
        self.save_for_backward(x_hat, inv_std, weight)
        self.m = m
        return (y.copy() if y is x_hat else y).reshape(x.shape)

    def backward(self, grad_y):
        x_hat, inv_std, weight = self.saved
        g = grad_y.reshape(x_hat.shape)                                 # (N_r, C, L)
        c = x_hat.shape[1]
        local_beta = g.sum(axis=(0, 2))                                 # (C,) local sum(g)
        local_gamma = np.einsum("ncl,ncl->c", g, x_hat)                 # (C,) local sum(g x_hat)
        needs = self.needs_input_grad
        grad_x = None
        if needs[0]:
            sums = np.concatenate([local_beta, local_gamma]).astype(np.float64)  # (2C,)
            dist.all_reduce(Tensor._wrap(sums))
            mean_g = (sums[:c] / self.m).astype(g.dtype)                # (C,)
            mean_g_xhat = (sums[c:] / self.m).astype(g.dtype)           # (C,)
            scale = inv_std if weight is None else inv_std * weight     # (C,) gamma / sigma
            grad_x = (g - mean_g[:, None] - x_hat * mean_g_xhat[:, None]) * scale[:, None]
            grad_x = grad_x.reshape(self.x_shape)
        wants_gamma = len(needs) > 1 and needs[1]
        wants_beta = len(needs) > 2 and needs[2]
        return grad_x, (local_gamma if wants_gamma else None), (local_beta if wants_beta else None)


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch over all ranks.

    As ``torch.nn.SyncBatchNorm`` (but CPU-first). Same arguments and state_dict keys as
    ``BatchNorm1d/2d``; any (N, C, *) input. See the module docstring for the math.

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats: as BatchNorm.
        process_group: None (the default group).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None, device: Any = None, dtype: Any = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        if process_group is not None:
            dist.get_world_size(process_group)  # only the default group exists
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    def forward(self, input: Tensor) -> Tensor:
        synced = (self.training and dist.is_initialized() and dist.get_world_size() > 1)
        if not synced:
            return super().forward(input)  # exactly BatchNorm
        self._check_input_dim(input)
        if not isinstance(input, Tensor) or input.dtype.kind != "f":
            raise TypeError(f"SyncBatchNorm: expected a floating point Tensor, got "
                            f"{getattr(input, 'dtype', type(input).__name__)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected input with {self.num_features} channels "
                             f"(dim 1), got input of shape {tuple(input.shape)}")
        counting = self.track_running_stats and self.num_batches_tracked is not None
        factor = 0.0 if self.momentum is None else self.momentum
        if counting and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (float(self.num_batches_tracked.data) + 1)
        rm = self.running_mean.data if self.track_running_stats else None
        rv = self.running_var.data if self.track_running_stats else None
        out = SyncBatchNormFn(rm, rv, float(factor), float(self.eps))(input, self.weight,
                                                                       self.bias)
        if counting:
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._version += 1
        return out

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """Replace every BatchNorm1d/2d in ``module`` by a SyncBatchNorm sharing its parameters
        and buffers (the same Tensor objects: an optimiser built before keeps working).

        Returns the converted module (``module`` itself, changed in place, unless ``module`` is a
        BatchNorm layer itself).
        """
        if isinstance(module, BatchNorm1d | BatchNorm2d) and not isinstance(module, _InstanceNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                converted.register_parameter(name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                converted.register_buffer(name, getattr(module, name))
            converted.train(module.training)
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                new = cls.convert_sync_batchnorm(child, process_group)
                if new is not child:
                    module._modules[name] = new
        return module
