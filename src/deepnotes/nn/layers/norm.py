"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm`` (notes 000/001 on BN,
004 on BN/LN/IN/GN). The math (and its backward) lives in ``ops.norm``; these modules own gamma,
beta and the running statistics, and decide which statistics a call uses."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, factory


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d: y = (x - mean) / sqrt(var + eps) * weight + bias per channel.

    Training: mean and (biased) variance come from the batch, over every axis but the channel
    axis; the running estimates are then updated in place,

        running = (1 - momentum) * running + momentum * batch_statistic

    with the *unbiased* batch variance in running_var, and ``num_batches_tracked`` += 1. With
    ``momentum=None`` the factor is 1 / num_batches_tracked, which makes the running values the
    plain (cumulative) average of all batch statistics seen so far.
    Evaluation: the running estimates replace the batch statistics (unless
    ``track_running_stats=False``, in which case batch statistics are always used).

    Note the convention: PyTorch's momentum is the weight of the *new* batch (0.1); the EMA
    "decay" of other frameworks (and the moving-average form of the notes) is 1 - momentum (0.9).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True):
        super().__init__()
        layer = type(self).__name__
        self.num_features = check_count(num_features, "num_features", layer)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or eps <= 0:
            raise ValueError(f"{layer}: eps must be a positive number, got eps={eps!r}")
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"{layer}: momentum must be a float or None, got {momentum!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        n = self.num_features
        if affine:
            self.weight = Parameter(factory((n,), device, dtype))
            if bias:
                self.bias = Parameter(factory((n,), device, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", factory((n,), device, dtype))
            self.register_buffer("running_var", factory((n,), device, dtype))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Running statistics reset; weight (gamma) = 1 and bias (beta) = 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._version += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        # Batch statistics in training, and in evaluation when there are no running ones.
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        keep_running = not self.training or self.track_running_stats
        return F.batch_norm(input,
                            self.running_mean if keep_running else None,
                            self.running_var if keep_running else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        # Checkpoints from before num_batches_tracked existed load as PyTorch loads them: the
        # counter keeps its current value instead of being reported missing.
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C (Ioffe & Szegedy 2015).

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: weight of the new batch in the running statistics (default 0.1); None for a
            cumulative average.
        affine: learn weight (gamma, init 1) and bias (beta, init 0).
        track_running_stats: keep running_mean, running_var and num_batches_tracked buffers.
        bias: with affine, learn beta too (keyword only).

    See ``_BatchNorm`` for the update rules and ``ops.norm.BatchNormFn`` for the math.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel C, statistics over N, H and W.

    Same arguments as :class:`BatchNorm1d`.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` of each sample (Ba et al. 2016).

    y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per sample (no batch dependence,
    the same in training and evaluation; notes 004 on BN vs LN).

    Args:
        normalized_shape: int or tuple, the trailing dims to normalise over.
        eps: added to the variance.
        elementwise_affine: learn weight (init 1) and bias (init 0) of that shape.
        bias: with elementwise_affine, learn the bias too.
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(
            check_count(s, "normalized_shape", "LayerNorm") for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(factory(self.normalized_shape, device, dtype))
            if bias:
                self.bias = Parameter(factory(self.normalized_shape, device, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
