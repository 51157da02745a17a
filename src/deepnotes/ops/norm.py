"""Normalisation layers as fused ops: batch norm and layer norm (notes 000 Q6, 001, 004 Q6-Q10).

Both standardise x with a mean and a variance and then apply a learned affine map,

    x_hat = (x - mu) / sigma,    sigma = sqrt(var + eps),    y = gamma * x_hat + beta,

and differ only in the axes the statistics are taken over (notes 004 Q10):

    batch norm   per channel, over N and every spatial axis      (N, C, *)  ->  mu, var: (C,)
    layer norm   per sample, over the trailing normalized_shape   (*, D...)  ->  mu, var: (*,)

The backward of a standardisation is derived once in ``docs/derivations/batch_norm.md``. Writing
g_hat = dL/dx_hat = g * gamma and mean(.) for the average over the m elements sharing one mu/sigma:

    dL/dx = (1/sigma) * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))

The two subtracted terms are the paths through mu and through sigma: shifting every x in a group by
the same amount changes nothing (so the gradient has zero mean), and scaling them all changes
nothing either when eps = 0 (so the gradient is orthogonal to x_hat).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from ._util import check_tensor


class BatchNormFn(Function):
    """Batch normalisation over (N, C, *): statistics per channel C over N and all spatial axes.

    With x viewed as (N, C, L) (L = product of the spatial sizes, 1 for (N, C) input) and the
    m = N*L values of channel c:

    Training (batch statistics; the biased variance normalises):
        mu_c = mean(x_c),  var_c = mean((x_c - mu_c)^2),  x_hat = (x - mu_c) / sqrt(var_c + eps)
        y = gamma_c * x_hat + beta_c
        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased)
      Backward, with g = dL/dy and sigma_c = sqrt(var_c + eps) (docs/derivations/batch_norm.md):
        dL/dx     = (gamma_c / sigma_c) * (g - mean(g) - x_hat * mean(g * x_hat))
        dL/dgamma = sum(g * x_hat),   dL/dbeta = sum(g)          (sums over N and L)

    Evaluation (running statistics, constants here):
        y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
        dL/dx = g * gamma / sqrt(running_var + eps)    (a per-channel scale), dgamma, dbeta as above

    The running statistics are arrays passed to ``__init__`` and updated in place in ``forward``;
    they never receive a gradient. Torch: torch.nn.functional.batch_norm. Notes 000 Q6, 004 Q9.
    """

    def __init__(self, running_mean: np.ndarray | None, running_var: np.ndarray | None,
                 training: bool, momentum: float, eps: float):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, weight=None, bias=None):
        xp = backend.array_module(x)
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, math.prod(x.shape[2:]))                     # (N, C, L)
        self.x_shape = x.shape
        if self.training:
            m = x3.shape[0] * x3.shape[2]
            mean = x3.mean(axis=(0, 2)) if m else xp.zeros(c, x.dtype)   # (C,)
            centred = x3 - mean[:, None]                                 # (N, C, L)
            var = np.einsum("ncl,ncl->c", centred, centred) / max(m, 1)  # (C,) biased
            inv_std = 1.0 / np.sqrt(var + self.eps)                      # (C,)
            x_hat = centred * inv_std[:, None]                           # (N, C, L)
            self._update_running(mean, var, m)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
            inv_std = 1.0 / np.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
            x_hat = (x3 - mean[:, None]) * inv_std[:, None]              # (N, C, L)
        y = x_hat
        if weight is not None:
            y = y * weight.astype(x.dtype, copy=False)[:, None]
        if bias is not None:
            y = y + bias.astype(x.dtype, copy=False)[:, None]
        self.save_for_backward(x_hat, inv_std, weight)
        # without an affine map y would be x_hat itself: copy it so that editing the output in
        # place cannot corrupt what backward reads
        return (y.copy() if y is x_hat else y).reshape(x.shape)

    def _update_running(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        if m == 0:  # an empty batch carries no statistics; PyTorch leaves the buffers alone
            return
        momentum = self.momentum
        if self.running_mean is not None:
            self.running_mean[...] = (1 - momentum) * self.running_mean + momentum * mean
        if self.running_var is not None:
            unbiased = var * (m / (m - 1))
            self.running_var[...] = (1 - momentum) * self.running_var + momentum * unbiased

    def backward(self, grad_y):
        x_hat, inv_std, weight = self.saved
        g = grad_y.reshape(x_hat.shape)                                  # (N, C, L)
        needs = self.needs_input_grad
        wants_gamma = len(needs) > 1 and needs[1]
        wants_beta = len(needs) > 2 and needs[2]
        # the two parameter gradients double as the sums the training-mode dL/dx needs
        use_sums = needs[0] and self.training
        grad_beta = g.sum(axis=(0, 2)) if use_sums or wants_beta else None         # (C,)
        grad_gamma = (np.einsum("ncl,ncl->c", g, x_hat)                            # (C,)
                      if use_sums or wants_gamma else None)
        grad_x = None
        if needs[0]:
            scale = inv_std if weight is None else inv_std * weight      # (C,) gamma / sigma
            if self.training:
                m = g.shape[0] * g.shape[2]
                mean_g = grad_beta / max(m, 1)                           # (C,)
                mean_g_xhat = grad_gamma / max(m, 1)                     # (C,)
                grad_x = (g - mean_g[:, None] - x_hat * mean_g_xhat[:, None]) * scale[:, None]
            else:
                grad_x = g * scale[:, None]
            grad_x = grad_x.reshape(self.x_shape)
        return grad_x, (grad_gamma if wants_gamma else None), (grad_beta if wants_beta else None)


def _check_channel_vector(value: Any, name: str, channels: int) -> None:
    check_tensor(value, name, "batch_norm")
    if value.numel() != channels:
        raise RuntimeError(f"{name} should contain {channels} elements not {value.numel()}")


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5):
    """Batch normalisation, as ``torch.nn.functional.batch_norm``.

    Args:
        input: (N, C), (N, C, L), (N, C, H, W) or any (N, C, *) floating tensor.
        running_mean, running_var: (C,) tensors or None. In training they are updated IN PLACE
            (``(1 - momentum) * running + momentum * batch``, the variance unbiased) when given;
            in evaluation they are required and used instead of the batch statistics.
        weight, bias: optional (C,) gamma and beta.
        training: use the batch statistics (and update the running ones).
        momentum: weight of the new batch in the running average. It must be a float here, as in
            PyTorch's functional form; ``momentum=None`` (a cumulative average) is handled by
            ``nn.BatchNorm*``, which passes ``1 / num_batches_tracked``.
        eps: added to the variance before the square root.

    Returns:
        A tensor of the input's shape.

    Raises:
        ValueError: training with one value per channel (N * H * W == 1), or eps <= 0 in training.
        RuntimeError: a (C,) argument with the wrong number of elements, missing running
            statistics in evaluation, or only one of them given.
        TypeError: momentum that is not a number, or arguments that are not tensors.

    Math: see :class:`BatchNormFn`; derivation in docs/derivations/batch_norm.md.
    """
    check_tensor(input, "input", "batch_norm")
    if input.ndim < 2:
        raise ValueError(f"batch_norm(): expected input of shape (N, C, *) with at least 2 "
                         f"dimensions, got {input.ndim}-D input of shape {tuple(input.shape)}")
    if input.dtype.kind != "f":
        raise TypeError(f"batch_norm(): expected a floating point input, got {input.dtype}")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float | np.floating):
        raise TypeError(f"batch_norm(): argument 'momentum' must be float, not "
                        f"{type(momentum).__name__} (nn.BatchNorm with momentum=None passes "
                        "1 / num_batches_tracked)")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _check_channel_vector(value, name, channels)
    if (running_mean is None) != (running_var is None):
        raise RuntimeError("running_mean and running_var must either both be None or neither be "
                           "None")
    if training:
        values_per_channel = input.numel() // max(channels, 1)
        if values_per_channel == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {tuple(input.shape)}")
        if eps <= 0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif running_mean is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    rm = None if running_mean is None else running_mean.data.reshape(-1)
    rv = None if running_var is None else running_var.data.reshape(-1)
    fn = BatchNormFn(rm, rv, bool(training), float(momentum), float(eps))
    out = fn(input, weight, bias)
    if training and running_mean is not None and input.numel() > 0:
        running_mean._version += 1
        running_var._version += 1
    return out


def _standardize_rows(x2: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, M) -> x_hat (R, M) with each row at mean 0 and (biased) variance 1, and 1/sigma (R,)."""
    mean = x2.mean(axis=1, keepdims=True)                                # (R, 1)
    centred = x2 - mean                                                  # (R, M)
    var = np.einsum("rm,rm->r", centred, centred) / x2.shape[1]          # (R,)
    inv_std = 1.0 / np.sqrt(var + eps)                                   # (R,)
    return centred * inv_std[:, None], inv_std


def _standardize_rows_backward(grad_hat: np.ndarray, x_hat: np.ndarray,
                               inv_std: np.ndarray) -> np.ndarray:
    """dL/dx from dL/dx_hat for row-wise standardisation (the formula in the module docstring)."""
    mean_g = grad_hat.mean(axis=1, keepdims=True)                        # (R, 1)
    mean_gx = np.einsum("rm,rm->r", grad_hat, x_hat)[:, None] / x_hat.shape[1]  # (R, 1)
    return (grad_hat - mean_g - x_hat * mean_gx) * inv_std[:, None]      # (R, M)


class LayerNormFn(Function):
    """Layer normalisation over the trailing D = prod(normalized_shape) elements of each sample.

    With x viewed as rows (R, D), mu and var per row (biased), x_hat = (x - mu) / sqrt(var + eps):
        y = gamma * x_hat + beta,          gamma, beta: normalized_shape (elementwise, not per row)
    Backward, with g = dL/dy and g_hat = g * gamma (docs/derivations/batch_norm.md, same algebra
    with the statistics taken along a row instead of down a channel):
        dL/dx     = (1/sigma) * (g_hat - mean_row(g_hat) - x_hat * mean_row(g_hat * x_hat))
        dL/dgamma = sum over rows of g * x_hat,     dL/dbeta = sum over rows of g
    No running statistics: training and evaluation compute the same thing (notes 004 Q10).
    Torch: torch.nn.functional.layer_norm.
    """

    def __init__(self, normalized_shape: tuple[int, ...], eps: float):
        self.normalized_shape, self.eps = normalized_shape, eps
        self.size = math.prod(normalized_shape)

    def forward(self, x, weight=None, bias=None):
        x2 = x.reshape(-1, self.size)                                    # (R, D)
        x_hat, inv_std = _standardize_rows(x2, self.eps)                 # (R, D), (R,)
        y = x_hat
        if weight is not None:
            y = y * weight.astype(x.dtype, copy=False).reshape(-1)
        if bias is not None:
            y = y + bias.astype(x.dtype, copy=False).reshape(-1)
        self.save_for_backward(x_hat, inv_std, weight)
        self.x_shape = x.shape
        return (y.copy() if y is x_hat else y).reshape(x.shape)

    def backward(self, grad_y):
        x_hat, inv_std, weight = self.saved
        needs = self.needs_input_grad
        g = grad_y.reshape(-1, self.size)                                # (R, D)
        grad_x = grad_weight = grad_bias = None
        if needs[0]:
            grad_hat = g if weight is None else g * weight.reshape(-1)   # (R, D)
            grad_x = _standardize_rows_backward(grad_hat, x_hat, inv_std).reshape(self.x_shape)
        if len(needs) > 1 and needs[1]:
            grad_weight = np.einsum("rd,rd->d", g, x_hat).reshape(self.normalized_shape)
        if len(needs) > 2 and needs[2]:
            grad_bias = g.sum(axis=0).reshape(self.normalized_shape)
        return grad_x, grad_weight, grad_bias


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5):
    """Layer normalisation, as ``torch.nn.functional.layer_norm``.

    Args:
        input: (*, *normalized_shape) floating tensor.
        normalized_shape: the trailing shape to normalise over (an int is taken as a 1-tuple, as
            ``nn.LayerNorm`` does).
        weight, bias: optional tensors of shape ``normalized_shape``.
        eps: added to the variance before the square root.

    Raises:
        RuntimeError: the input's trailing shape, the weight or the bias does not match
            ``normalized_shape``, or ``normalized_shape`` is empty.

    Math: see :class:`LayerNormFn`.
    """
    check_tensor(input, "input", "layer_norm")
    if isinstance(normalized_shape, int | np.integer) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    if not isinstance(normalized_shape, tuple | list) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) for s in normalized_shape
    ):
        raise TypeError(f"layer_norm(): argument 'normalized_shape' must be tuple of ints, got "
                        f"{normalized_shape!r}")
    shape = tuple(int(s) for s in normalized_shape)
    if not shape:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., "
                           "containing at least one element, but got normalized_shape = []")
    if input.dtype.kind != "f":
        raise TypeError(f"layer_norm(): expected a floating point input, got {input.dtype}")
    k = len(shape)
    if input.ndim < k or tuple(input.shape[-k:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(input.shape)}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            check_tensor(value, name, "layer_norm")
            if tuple(value.shape) != shape:
                raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                                   f"got {name} of shape {list(value.shape)} and normalized_shape "
                                   f"= {list(shape)}")
    return LayerNormFn(shape, float(eps))(input, weight, bias)
