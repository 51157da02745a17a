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

Group norm (per sample, over groups of C/G channels and the spatial axes) and instance norm (G = C)
reuse that formula row by row. Also here: local response normalisation (AlexNet), the fused
w = g v / ||v|| of weight normalisation, and the mean-only batch norm that goes with it.
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
            centred *= inv_std[:, None]                  # in place: one (N, C, L) array less
            x_hat = centred                                              # (N, C, L)
            self._update_running(mean, var, m)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
            inv_std = 1.0 / np.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
            x_hat = (x3 - mean[:, None]) * inv_std[:, None]              # (N, C, L)
        y = x_hat
        if weight is not None:
            y = y * weight.astype(x.dtype, copy=False)[:, None]
        if bias is not None:  # y += b in place when y is already a fresh array
            b = bias.astype(x.dtype, copy=False)[:, None]
            y = y + b if y is x_hat else np.add(y, b, out=y)
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
                # (g - mean_g - x_hat * mean_g_xhat) * scale, with the per-channel factors
                # folded into (C,) vectors first: two full-size temporaries instead of four
                grad_x = x_hat * (-mean_g_xhat * scale)[:, None]                 # (N, C, L)
                grad_x += g * scale[:, None]
                grad_x -= (mean_g * scale)[:, None]
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
    if training and input.numel() // max(channels, 1) == 1:  # checked first, as in PyTorch
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {tuple(input.shape)}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _check_channel_vector(value, name, channels)
    if (running_mean is None) != (running_var is None):
        raise RuntimeError("running_mean and running_var must either both be None or neither be "
                           "None")
    if training:
        if eps <= 0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif running_mean is None:
        if input.numel():
            raise RuntimeError("running_mean must be defined in evaluation mode")
        training = True  # an empty batch has nothing to normalise; PyTorch returns it as well
    from ..autograd.grad_mode import is_grad_enabled

    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and value.requires_grad and is_grad_enabled() and input.numel():
            raise RuntimeError(f"The function 'native_batch_norm' is not differentiable with "
                               f"respect to argument '{name}'. This input cannot have "
                               "requires_grad True.")
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
        x2 = x.reshape(x.size // max(self.size, 1), self.size)           # (R, D)
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
        g = grad_y.reshape(grad_y.size // max(self.size, 1), self.size)  # (R, D)
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


# -- group norm and instance norm (notes 001 on GN, 004 Q10) ---------------------------------------


class GroupNormFn(Function):
    """Group normalisation (Wu & He 2018): statistics per sample and per group of C/G channels.

    With x viewed as rows (N*G, M), M = C/G * L (L = product of the spatial sizes), mu and var per
    row (biased), x_hat = (x - mu) / sqrt(var + eps), and a per-CHANNEL affine map:
        y[n, c, l] = gamma_c * x_hat[n, c, l] + beta_c
    Backward, with g = dL/dy and g_hat = g * gamma_c, the layer-norm algebra row by row
    (module docstring; docs/derivations/batch_norm.md):
        dL/dx     = (1/sigma) * (g_hat - mean_row(g_hat) - x_hat * mean_row(g_hat * x_hat))
        dL/dgamma = sum over N and L of g * x_hat,      dL/dbeta = sum over N and L of g
    G = 1 is layer norm over (C, *) with per-channel gamma; G = C is instance norm (notes 001).
    Torch: torch.nn.functional.group_norm.
    """

    def __init__(self, num_groups: int, eps: float):
        self.num_groups, self.eps = num_groups, eps

    def forward(self, x, weight=None, bias=None):
        n, c = x.shape[:2]
        spatial = math.prod(x.shape[2:])                                 # L
        m = c // self.num_groups * spatial
        rows = x.reshape(n * self.num_groups, m)                         # (N*G, M), M = C/G*L
        mean = rows.mean(axis=1, keepdims=True)                          # (N*G, 1)
        centred = rows - mean                                            # (N*G, M)
        var = np.einsum("rm,rm->r", centred, centred) / rows.shape[1]    # (N*G,) biased
        inv_std = 1.0 / np.sqrt(var + self.eps)                          # (N*G,)
        x_hat = centred * inv_std[:, None]                               # (N*G, M)
        self._track(mean[:, 0], var, m)
        x_hat3 = x_hat.reshape(n, c, spatial)                            # (N, C, L)
        y = x_hat3
        if weight is not None:
            y = y * weight.astype(x.dtype, copy=False)[:, None]
        if bias is not None:
            y = y + bias.astype(x.dtype, copy=False)[:, None]
        self.save_for_backward(x_hat, inv_std, weight)
        self.x_shape = x.shape
        return (y.copy() if y is x_hat3 else y).reshape(x.shape)

    def _track(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        """Hook for running statistics (instance norm); group norm keeps none."""

    def backward(self, grad_y):
        x_hat, inv_std, weight = self.saved
        needs = self.needs_input_grad
        n, c = self.x_shape[:2]
        spatial = math.prod(self.x_shape[2:])
        g = grad_y.reshape(n, c, spatial)                                # (N, C, L)
        x_hat3 = x_hat.reshape(n, c, spatial)                            # (N, C, L)
        grad_x = grad_weight = grad_bias = None
        if needs[0]:
            grad_hat = g if weight is None else g * weight[:, None]      # (N, C, L)
            grad_x = _standardize_rows_backward(grad_hat.reshape(x_hat.shape), x_hat, inv_std)
            grad_x = grad_x.reshape(self.x_shape)
        if len(needs) > 1 and needs[1]:
            grad_weight = np.einsum("ncl,ncl->c", g, x_hat3)             # (C,)
        if len(needs) > 2 and needs[2]:
            grad_bias = g.sum(axis=(0, 2))                               # (C,)
        return grad_x, grad_weight, grad_bias


class InstanceNormFn(GroupNormFn):
    """Instance normalisation (Ulyanov et al. 2016): group norm with one channel per group, G = C,
    so mu and var are taken per sample AND channel over the spatial axes only (notes 004 Q10).

    Forward and backward are :class:`GroupNormFn`'s. With running statistics (as PyTorch) the
    training forward also updates them in place with the batch average of the per-instance values:
        running_mean <- (1 - momentum) * running_mean + momentum * mean_n(mu[n, c])
        running_var  <- (1 - momentum) * running_var  + momentum * mean_n(var[n, c] * L / (L - 1))
    Torch: torch.nn.functional.instance_norm (with use_input_stats=True).
    """

    def __init__(self, channels: int, eps: float, running_mean: np.ndarray | None,
                 running_var: np.ndarray | None, momentum: float):
        super().__init__(channels, eps)
        self.running_mean, self.running_var, self.momentum = running_mean, running_var, momentum

    def _track(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        if self.running_mean is None or mean.size == 0:
            return
        c, momentum = self.num_groups, self.momentum
        batch_mean = mean.reshape(-1, c).mean(axis=0)                    # (C,)
        batch_var = (var * (m / (m - 1))).reshape(-1, c).mean(axis=0)    # (C,) unbiased
        self.running_mean[...] = (1 - momentum) * self.running_mean + momentum * batch_mean
        self.running_var[...] = (1 - momentum) * self.running_var + momentum * batch_var


def _check_norm_input(input: Any, op: str) -> None:
    check_tensor(input, "input", op)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}(): expected a floating point input, got {input.dtype}")


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5):
    """Group normalisation, as ``torch.nn.functional.group_norm``.

    Args:
        input: (N, C, *) floating tensor.
        num_groups: G, which must divide C.
        weight, bias: optional (C,) gamma and beta (per channel, not per group).
        eps: added to the variance before the square root.

    Raises:
        RuntimeError: fewer than 2 dimensions, C not divisible by G, or a weight/bias whose size
            is not C.
        ValueError: num_groups < 1.

    Math: see :class:`GroupNormFn`.
    """
    _check_norm_input(input, "group_norm")
    if not isinstance(num_groups, int | np.integer) or isinstance(num_groups, bool):
        raise TypeError(f"group_norm(): argument 'num_groups' must be int, not "
                        f"{type(num_groups).__name__}")
    if num_groups < 1:
        raise ValueError(f"group_norm(): num_groups must be a positive integer, got "
                         f"num_groups={num_groups}")
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.ndim}")
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, "
                           f"but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    batch_size = [input.shape[0] * channels // num_groups, num_groups, *input.shape[2:]]
    if batch_size[0] * math.prod(batch_size[2:]) == 1:  # PyTorch's check (batch norm's message)
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{batch_size}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            check_tensor(value, name, "group_norm")
            if value.ndim != 1 or value.numel() != channels:
                raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                                   f"channels in input, but got {name} of shape "
                                   f"{list(value.shape)} and input of shape {list(input.shape)}")
    return GroupNormFn(int(num_groups), float(eps))(input, weight, bias)


def instance_norm(input: Any, running_mean: Any = None, running_var: Any = None,
                  weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5):
    """Instance normalisation, as ``torch.nn.functional.instance_norm``.

    Args:
        input: (N, C, *) floating tensor with more than one spatial element.
        running_mean, running_var: optional (C,) tensors. With ``use_input_stats`` they are updated
            in place (the batch average of the per-instance statistics, unbiased variance); without
            it they are required and normalise every instance (batch norm in evaluation mode).
        weight, bias: optional (C,) gamma and beta.
        use_input_stats: normalise with each instance's own statistics (default) or with the
            running ones.
        momentum: weight of the new batch in the running statistics.
        eps: added to the variance before the square root.

    Raises:
        ValueError: one spatial element (or none) with ``use_input_stats``, or only one of the
            running statistics given.
        RuntimeError: a (C,) argument of the wrong size, or no running statistics without
            ``use_input_stats``.

    Math: see :class:`InstanceNormFn`.
    """
    _check_norm_input(input, "instance_norm")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be "
                         "None")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float | np.floating):
        raise TypeError(f"instance_norm(): argument 'momentum' must be float, not "
                        f"{type(momentum).__name__}")
    if use_input_stats and (input.ndim < 2 or math.prod(input.shape[2:]) <= 1):
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            check_tensor(value, name, "instance_norm")
            if value.numel() != channels:
                raise RuntimeError(f"{name} should contain {channels} elements not "
                                   f"{value.numel()}")
    if not use_input_stats:
        if running_mean is None:
            raise RuntimeError("Expected running_mean and running_var to be defined when "
                               "use_input_stats is false")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    rm = None if running_mean is None else running_mean.data.reshape(-1)
    rv = None if running_var is None else running_var.data.reshape(-1)
    fn = InstanceNormFn(channels, float(eps), rm, rv, float(momentum))
    out = fn(input, weight, bias)
    if running_mean is not None and input.numel() > 0:
        running_mean._version += 1
        running_var._version += 1
    return out


# -- local response normalisation (AlexNet; notes 000 Q5) ------------------------------------------


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """s[:, c] = sum of a[:, j] for c - before <= j <= c + after (zero outside), along axis 1."""
    c = a.shape[1]
    widths = [(0, 0)] * a.ndim
    widths[1] = (before, after)
    padded = np.pad(a, widths)                                           # (N, C+before+after, *)
    total = padded[:, 0:c].copy()
    for offset in range(1, before + after + 1):                          # size-1 shifted adds
        total += padded[:, offset:offset + c]
    return total


class LocalResponseNormFn(Function):
    """Local response normalisation across channels (Krizhevsky et al. 2012), PyTorch's formula.

    With the window W(c) = {c - size//2, ..., c + (size-1)//2} (channels outside count as 0):
        d_c = k + alpha / size * sum_{j in W(c)} x_j^2          (an average over `size` slots)
        y_c = x_c * d_c^(-beta)
    Backward: y_c depends on x_j through x_c itself and through d_c when j is in W(c), i.e. for
    c in W'(j) = {j - (size-1)//2, ..., j + size//2} (the mirrored window):
        dL/dx_j = g_j d_j^(-beta) - (2 alpha beta / size) x_j sum_{c in W'(j)} g_c x_c d_c^(-beta-1)
    Torch: torch.nn.functional.local_response_norm.
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        size = self.size
        d = self.k + (self.alpha / size) * _channel_window_sum(x * x, size // 2, (size - 1) // 2)
        scale = d ** -self.beta                                          # d^(-beta)
        self.save_for_backward(x, d, scale)
        return (x * scale).astype(x.dtype, copy=False)

    def backward(self, grad_y):
        x, d, scale = self.saved
        size = self.size
        inner = grad_y * x * scale / d                                   # g_c x_c d_c^(-beta-1)
        window = _channel_window_sum(inner, (size - 1) // 2, size // 2)
        return grad_y * scale - (2 * self.alpha * self.beta / size) * x * window


def local_response_norm(input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0):
    """Local response normalisation over channels, as ``torch.nn.functional.local_response_norm``.

    Args:
        input: (N, C, *) floating tensor with at least 3 dimensions.
        size: the number of neighbouring channels in the window.
        alpha, beta, k: y = x / (k + alpha * mean_window(x^2))^beta.

    Raises:
        ValueError: fewer than 3 dimensions, or size < 1.

    Math: see :class:`LocalResponseNormFn`.
    """
    _check_norm_input(input, "local_response_norm")
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} "
                         "dimensions)")
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ValueError(f"local_response_norm(): size must be a positive integer, got "
                         f"size={size!r}")
    return LocalResponseNormFn(int(size), float(alpha), float(beta), float(k))(input)


# -- weight normalisation (Salimans & Kingma 2016; notes 004 Q10) ----------------------------------


class WeightNormFn(Function):
    """w = g * v / ||v||: the direction from v, the length from g (Salimans & Kingma 2016).

    ||v|| is taken over every axis but ``dim`` (one norm per output unit for dim = 0), or over the
    whole tensor for dim = -1 (PyTorch's convention, also what ``dim=None`` becomes); g has the
    shape of that norm with the reduced axes kept as 1.
    Backward, with G = dL/dw and s = sum(G * v) over the same axes (u = v / ||v||, w = g u):
        dL/dg = s / ||v||                        (= u . G)
        dL/dv = (g / ||v||) * (G - v * s / ||v||^2)
    (dw_i/dv_k = g (delta_ik / ||v|| - v_i v_k / ||v||^3): the gradient reaching v is G with its
    component along v removed, so a gradient step never changes ||v|| to first order.)
    Torch: torch._weight_norm.
    """

    def __init__(self, dim: int):
        self.dim = dim

    def _axes(self, ndim: int) -> tuple[int, ...]:
        return tuple(a for a in range(ndim) if a != self.dim)

    def forward(self, v, g):
        axes = self._axes(v.ndim)
        norm = np.sqrt((v * v).sum(axis=axes, keepdims=True))           # g's shape, dims kept
        if self.dim == -1:
            norm = norm.reshape(g.shape)                                 # a scalar norm
        self.save_for_backward(v, g, norm)
        return v * (g / norm)

    def backward(self, grad_w):
        v, g, norm = self.saved
        axes = self._axes(v.ndim)
        s = (grad_w * v).sum(axis=axes, keepdims=True)
        if self.dim == -1:
            s = s.reshape(g.shape)
        grad_v = grad_g = None
        if self.needs_input_grad[0]:
            grad_v = (g / norm) * (grad_w - v * (s / (norm * norm)))
        if self.needs_input_grad[1]:
            grad_g = s / norm
        return grad_v, grad_g


def norm_except_dim(v: Any, dim: int) -> Any:
    """The 2-norm of ``v`` over every axis but ``dim`` (kept as size 1), or of the whole tensor
    (0-d) for dim = -1, as ``torch.norm_except_dim(v, 2, dim)``."""
    from ..tensor import Tensor

    data = v.data
    if dim == -1:
        return Tensor._wrap(np.asarray(np.sqrt((data * data).sum()), dtype=data.dtype))
    axes = tuple(a for a in range(data.ndim) if a != dim % data.ndim)
    return Tensor._wrap(np.sqrt((data * data).sum(axis=axes, keepdims=True)))


def _weight_norm(v: Any, g: Any, dim: int = 0):
    """w = g * v / ||v|| with the norm over every axis but ``dim`` (dim = -1: the whole tensor),
    as ``torch._weight_norm``. Used by ``nn.utils.weight_norm``. Math: :class:`WeightNormFn`.

    Raises:
        IndexError: dim out of range.
        RuntimeError: g does not have the shape of the norm.
    """
    check_tensor(v, "v", "_weight_norm")
    check_tensor(g, "g", "_weight_norm")
    if dim != -1:
        if not -v.ndim <= dim < v.ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-v.ndim}, {v.ndim - 1}], but got {dim})")
        dim = dim % v.ndim
        expected = tuple(s if a == dim else 1 for a, s in enumerate(v.shape))
    else:
        expected = ()
    if tuple(g.shape) != expected and g.numel() != math.prod(expected):
        raise RuntimeError(f"_weight_norm: expected g of shape {list(expected)}, got "
                           f"{list(g.shape)}")
    return WeightNormFn(dim)(v, g.reshape(expected) if tuple(g.shape) != expected else g)


# -- mean-only batch norm (Salimans & Kingma 2016; not in PyTorch) ---------------------------------


class MeanOnlyBatchNormFn(Function):
    """Mean-only batch normalisation: y = x - mu_c + beta_c, mu_c the mean of channel c over N and
    every spatial axis. No division by the standard deviation: weight normalisation already
    fixes the scale, and the batch mean is far less noisy than the batch variance (notes 004 Q10).

    Training:   mu = the batch mean (and running_mean <- (1 - momentum) running_mean + momentum mu)
        dL/dx = g - mean_c(g)          (mu_c moves with every x of the channel: dmu/dx = 1/m)
    Evaluation: mu = running_mean, a constant, so dL/dx = g.
    dL/dbeta = sum of g over N and the spatial axes in both modes.
    PyTorch has no such layer; the tests compare with numerical gradients and a torch composite.
    """

    def __init__(self, running_mean: np.ndarray | None, training: bool, momentum: float):
        self.running_mean, self.training, self.momentum = running_mean, training, momentum

    def forward(self, x, bias=None):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, math.prod(x.shape[2:]))                     # (N, C, L)
        if self.training:
            mean = x3.mean(axis=(0, 2))                                  # (C,)
            if self.running_mean is not None and x.size:
                self.running_mean[...] = ((1 - self.momentum) * self.running_mean
                                          + self.momentum * mean)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
        y = x3 - mean[:, None]
        if bias is not None:
            y = y + bias.astype(x.dtype, copy=False)[:, None]
        self.x_shape = x.shape
        return y.reshape(x.shape)

    def backward(self, grad_y):
        n, c = self.x_shape[:2]
        g = grad_y.reshape(n, c, math.prod(self.x_shape[2:]))            # (N, C, L)
        grad_x = grad_bias = None
        if self.needs_input_grad[0]:
            grad_x = g - g.mean(axis=(0, 2))[:, None] if self.training else g
            grad_x = grad_x.reshape(self.x_shape)
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            grad_bias = g.sum(axis=(0, 2))
        return grad_x, grad_bias


def mean_only_batch_norm(input: Any, running_mean: Any, bias: Any = None, training: bool = False,
                         momentum: float = 0.1):
    """Mean-only batch normalisation: x - mean_c + bias_c per channel (not in PyTorch).

    Args:
        input: (N, C, *) floating tensor.
        running_mean: (C,) tensor or None; updated in place in training, used in evaluation.
        bias: optional (C,) beta.
        training: subtract the batch mean (and update ``running_mean``) instead of the running one.
        momentum: weight of the new batch in the running mean.

    Raises:
        ValueError: fewer than 2 dimensions.
        RuntimeError: evaluation without a running mean, or a (C,) argument of the wrong size.

    Math: see :class:`MeanOnlyBatchNormFn`.
    """
    _check_norm_input(input, "mean_only_batch_norm")
    if input.ndim < 2:
        raise ValueError(f"mean_only_batch_norm(): expected input of shape (N, C, *) with at least "
                         f"2 dimensions, got {input.ndim}-D input of shape {tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("bias", bias)):
        if value is not None:
            check_tensor(value, name, "mean_only_batch_norm")
            if value.numel() != channels:
                raise RuntimeError(f"{name} should contain {channels} elements not "
                                   f"{value.numel()}")
    if not training and running_mean is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    rm = None if running_mean is None else running_mean.data.reshape(-1)
    out = MeanOnlyBatchNormFn(rm, bool(training), float(momentum))(input, bias)
    if training and running_mean is not None and input.numel() > 0:
        running_mean._version += 1
    return out
