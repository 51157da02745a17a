"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``InstanceNorm1d/2d/3d``,
``GroupNorm``, ``LocalResponseNorm`` and the mean-only batch norm of weight normalisation
(``MeanOnlyBatchNorm1d/2d``, not in PyTorch) (notes 000/001 on BN, 000 on LRN, 001 on GN, 004 on
BN/LN/IN/GN/WN). The math (and its backward) lives in ``ops.norm``; these modules own gamma,
beta and the running statistics, and decide which statistics a call uses. Weight normalisation
itself is ``nn.utils.weight_norm``."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ...ops.norm import mean_only_batch_norm
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, factory


def _register_scale_and_shift(module: Module, enabled: bool, bias: bool, shape: Any,
                              device: Any, dtype: Any) -> None:
    """Register the affine scale ``weight`` (gamma) and shift ``bias`` (beta) of a normalisation
    layer, or None in their place, as PyTorch's norm layers do."""
    if enabled:
        module.weight = Parameter(factory(shape, device, dtype))
        if bias:
            module.bias = Parameter(factory(shape, device, dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_scale_and_shift(module: Module) -> None:
    """gamma = 1 and beta = 0: the layer starts as a pure standardisation."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


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
        _register_scale_and_shift(self, affine, bias, (n,), device, dtype)
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
        _reset_scale_and_shift(self)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        counting = (self.training and self.track_running_stats
                    and self.num_batches_tracked is not None)
        if counting and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (float(self.num_batches_tracked.data) + 1)
        # Batch statistics in training, and in evaluation when there are no running ones.
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        keep_running = not self.training or self.track_running_stats
        out = F.batch_norm(input,
                           self.running_mean if keep_running else None,
                           self.running_var if keep_running else None,
                           self.weight, self.bias, use_batch_stats, factor, self.eps)
        if counting:  # counted only once the batch is accepted: a rejected batch changes nothing
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._version += 1
        return out

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
        _register_scale_and_shift(self, elementwise_affine, bias, self.normalized_shape, device,
                                  dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_scale_and_shift(self)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


# -- instance norm, group norm, local response norm, mean-only batch norm ------------------------


class _InstanceNorm(_BatchNorm):
    """Shared by InstanceNorm1d/2d/3d: each sample's channels are standardised over their own
    spatial positions (Ulyanov et al. 2016; notes 004 Q10), as PyTorch's ``_InstanceNorm``.

    Defaults differ from batch norm: ``affine=False`` and ``track_running_stats=False``. With
    running statistics, training updates them (the batch average of the per-instance mean and
    unbiased variance) and evaluation normalises with them; ``num_batches_tracked`` is kept for
    state_dict compatibility but not incremented, and ``momentum=None`` means no update, both as
    in PyTorch. An input without the batch axis is treated as a batch of one.
    """

    _no_batch_dim = 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)

    def _check_input_dim(self, input: Tensor) -> None:
        d = self._no_batch_dim
        if input.ndim not in (d, d + 1):
            raise ValueError(f"expected {d}D or {d + 1}D input (got {input.ndim}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        feature_dim = input.ndim - self._no_batch_dim
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got: "
                                 f"{input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You "
                          "can silence this warning by not passing in num_features, which is not "
                          "used because affine=False", stacklevel=2)
        unbatched = input.ndim == self._no_batch_dim
        x = input.unsqueeze(0) if unbatched else input
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or unbatched (C, L) inputs, per sample and channel.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: weight of the new batch in the running statistics (default 0.1).
        affine: learn a per-channel weight (init 1) and bias (init 0); default False.
        track_running_stats: keep running statistics and use them in evaluation; default False.

    Math: ``ops.norm.InstanceNormFn`` (group norm with one channel per group).
    """

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or unbatched (C, H, W) inputs (style transfer).

    Same arguments as :class:`InstanceNorm1d`.
    """

    _no_batch_dim = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of (N, C, D, H, W) or unbatched (C, D, H, W) inputs.

    Same arguments as :class:`InstanceNorm1d`.
    """

    _no_batch_dim = 4


class GroupNorm(Module):
    """Group normalisation (Wu & He 2018; notes 001 on GN, 004 Q10): the C channels of each
    sample are split into ``num_groups`` groups, each standardised over its channels and
    positions; then a per-channel affine map. No batch statistics, so it works with batch size 1.
    num_groups = 1 is layer norm over (C, *); num_groups = C is instance norm.

    Args:
        num_groups: G, which must divide num_channels.
        num_channels: C.
        eps: added to the variance (default 1e-5).
        affine: learn weight (init 1) and bias (init 0), one per channel.
        bias: with affine, learn the bias too (keyword only).

    Shape:
        input (N, C, *) -> output of the same shape.

    Math: ``ops.norm.GroupNormFn``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True):
        super().__init__()
        self.num_groups = check_count(num_groups, "num_groups", "GroupNorm")
        self.num_channels = check_count(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.eps = eps
        self.affine = affine
        _register_scale_and_shift(self, affine, bias, (num_channels,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_scale_and_shift(self)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet; notes 000 Q5):

        y_c = x_c / (k + alpha / size * sum_{j in window(c)} x_j^2)^beta

    the window being the ``size`` channels c - size//2 ... c + (size-1)//2 (zero beyond the
    edges): strong responses suppress their neighbours in other channels. PyTorch's formula
    (the sum is divided by size), so weights and outputs carry over.

    Args:
        size: number of neighbouring channels in the window.
        alpha: scale (default 1e-4). beta: exponent (default 0.75). k: offset (default 1).

    Shape:
        input (N, C, *) with at least 3 dimensions -> output of the same shape.

    Math: ``ops.norm.LocalResponseNormFn``.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size = check_count(size, "size", "LocalResponseNorm")
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _MeanOnlyBatchNorm(Module):
    """Mean-only batch normalisation (Salimans & Kingma 2016, with weight normalisation; notes
    004 Q10). NOT in PyTorch.

        training:   y = x - mean_batch(x)_c + bias_c,   running_mean updated as in BatchNorm
        evaluation: y = x - running_mean_c + bias_c

    The batch mean is averaged over N and every spatial position, as in batch norm, but nothing
    is divided by the standard deviation: weight normalisation (``nn.utils.weight_norm``) fixes
    the scale of the pre-activations, and the mean is a much less noisy statistic than the
    variance for small batches. ``momentum=None`` gives the cumulative average, as BatchNorm.

    Args:
        num_features: C.
        momentum: weight of the new batch in running_mean (default 0.1), or None.
        bias: learn a per-channel bias (init 0), the beta that re-centres the output.
        track_running_stats: keep running_mean and num_batches_tracked and use them in
            evaluation; without them the batch mean is used in both modes.

    Math: ``ops.norm.MeanOnlyBatchNormFn``.
    """

    def __init__(self, num_features: int, momentum: float | None = 0.1, bias: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        layer = type(self).__name__
        self.num_features = check_count(num_features, "num_features", layer)
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"{layer}: momentum must be a float or None, got {momentum!r}")
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        n = self.num_features
        if bias:
            self.bias = Parameter(factory((n,), device, dtype))
            init.zeros_(self.bias)
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", factory((n,), device, dtype))
            self.running_mean.data[...] = 0
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:  # cumulative moving average
            factor = 1.0 / (float(self.num_batches_tracked.data) + 1)
        use_batch_mean = self.training or self.running_mean is None
        out = mean_only_batch_norm(input, self.running_mean, self.bias, use_batch_mean, factor)
        if counting:  # counted only once the batch is accepted: a rejected batch changes nothing
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._version += 1
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, momentum={self.momentum}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class MeanOnlyBatchNorm1d(_MeanOnlyBatchNorm):
    """Mean-only batch normalisation of (N, C) or (N, C, L) inputs (not in PyTorch).

    See :class:`_MeanOnlyBatchNorm` for the arguments and the rules.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class MeanOnlyBatchNorm2d(_MeanOnlyBatchNorm):
    """Mean-only batch normalisation of (N, C, H, W) inputs (not in PyTorch): subtract each
    channel's batch mean, add a learned bias, no variance division.

    See :class:`_MeanOnlyBatchNorm` for the arguments and the rules.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")
