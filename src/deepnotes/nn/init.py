"""Weight initialisation (notes 004 Q1-Q2; notes 002 on initialisation and its failure modes).

Why the scale matters. For one unit a = sum_{i=1}^{n} w_i x_i with independent, zero-mean w and x,

    Var(a) = n * Var(w) * Var(x),

so each layer multiplies the variance of the signal by n * Var(w). Over many layers the signal
vanishes when n * Var(w) < 1 and explodes when it is > 1 (notes 004 Q2: with std 0.01 every tanh
layer's outputs collapse towards 0; with std 1 they saturate at +-1). All-zero weights are worse:
every unit of a layer computes the same thing and receives the same gradient, so they never
become different (the symmetry problem).

* Xavier/Glorot (for tanh/linear units): keep the variance of the forward signal
  (n = fan_in) and of the backward gradient (n = fan_out) both unchanged by choosing
  Var(w) = 2 / (fan_in + fan_out), the compromise between 1/fan_in and 1/fan_out.
* He/Kaiming (for ReLU): ReLU zeroes half of its inputs, which halves the second moment, so
  Var(w) = 2 / fan_in restores Var(out) = Var(in) (notes 004 Q1: "divide Xavier's variance by 2").
  With a general ``gain``: Var(w) = gain^2 / fan.

A uniform distribution U(-b, b) has variance b^2 / 3, so the uniform variants use b = sqrt(3) * std.

fan_in / fan_out of a weight of shape (out, in, *kernel) are in * prod(kernel) and
out * prod(kernel): the number of inputs that feed one output unit, and vice versa.

Every function fills the tensor in place without recording a graph, draws from
``deepnotes.random.default_generator()`` (or the ``generator`` given), and returns the tensor.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..random import default_generator
from ..tensor import Tensor

_LINEAR_FAMILY = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d")


def _check(tensor: Any, fn: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}(): argument 'tensor' must be Tensor, not {type(tensor).__name__}")


def _write(tensor: Tensor, values: Any) -> Tensor:
    """Fill ``tensor`` in place (cast to its dtype); no graph is recorded, as under no_grad."""
    tensor.data[...] = values
    tensor._version += 1
    return tensor


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    return default_generator() if generator is None else generator


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which a nonlinearity shrinks the standard deviation, to undo in the weights.

    ================= ==========================
    nonlinearity      gain
    ================= ==========================
    linear / conv     1
    sigmoid           1
    tanh              5/3
    relu              sqrt(2)
    leaky_relu        sqrt(2 / (1 + slope^2))
    selu              3/4
    ================= ==========================

    ReLU keeps half of a symmetric input, so E[relu(x)^2] = Var(x)/2 and the gain is sqrt(2).

    Args:
        nonlinearity: the name of the function (as in PyTorch).
        param: the negative slope of leaky_relu (default 0.01).
    """
    if nonlinearity in _LINEAR_FAMILY or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, int | float):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel): (in*k, out*k), k = prod(kernel).

    Raises:
        ValueError: for tensors with fewer than 2 dimensions (a bias has no fan).
    """
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: np.random.Generator | None = None) -> Tensor:
    """Fill with samples of U(a, b).

    A float32 tensor is drawn in float32 (a + (b - a) * U[0, 1)), about twice as fast as
    drawing float64 and casting, which matters for VGG's 100M-weight linear layer.
    """
    _check(tensor, "uniform_")
    rng = _rng(generator)
    if tensor.data.dtype == np.float32:
        values = rng.random(tensor.shape, dtype=np.float32)
        values *= np.float32(b - a)
        values += np.float32(a)
        return _write(tensor, values)
    return _write(tensor, rng.uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill with samples of N(mean, std^2) (drawn in float32 for a float32 tensor)."""
    _check(tensor, "normal_")
    rng = _rng(generator)
    if tensor.data.dtype == np.float32:
        values = rng.standard_normal(tensor.shape, dtype=np.float32)
        values *= np.float32(std)
        values += np.float32(mean)
        return _write(tensor, values)
    return _write(tensor, rng.normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: np.random.Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2) conditioned on [a, b] (a and b are absolute bounds, as PyTorch).

    Exact rejection sampling, in one of two ways depending on the mass P = Phi(beta) -
    Phi(alpha) of the interval, alpha = (a - mean) / std and beta = (b - mean) / std:

    * P > 0.3: draw from N(mean, std^2) and redraw the values that fall outside [a, b]; each
      round keeps a share P, so about 1/P rounds are needed.
    * otherwise (a narrow interval, or one out in a tail): draw x uniformly on [a, b] and accept
      it with probability pdf(x) / pdf(x_peak), x_peak = the point of [a, b] nearest the mean.
      Accepted values have density proportional to pdf(x) on [a, b]: exactly the truncated
      normal, and the acceptance rate stays reasonable however little mass the interval holds.

    The truncated distribution has mean  mean + std (phi(alpha) - phi(beta)) / P  and a
    variance below std^2 (tested in tests/nn/test_init.py). Like PyTorch, a warning is issued
    when the mean is more than 2 std outside [a, b].
    """
    _check(tensor, "trunc_normal_")
    if not std > 0:
        raise ValueError(f"trunc_normal_(): expected std > 0, got std={std}")
    if not a < b:
        raise ValueError(f"trunc_normal_(): expected a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))

    rng = _rng(generator)
    shape = tensor.shape
    if cdf(b) - cdf(a) > 0.3:
        values = rng.normal(mean, std, size=shape)
        redraw = (values < a) | (values > b)
        while redraw.any():
            values[redraw] = rng.normal(mean, std, size=int(redraw.sum()))
            redraw = (values < a) | (values > b)
    else:
        peak = min(max(mean, a), b)

        def log_ratio(x: np.ndarray) -> np.ndarray:  # log(pdf(x) / pdf(peak)) <= 0
            return -0.5 * ((x - mean) / std) ** 2 + 0.5 * ((peak - mean) / std) ** 2

        values = rng.uniform(a, b, size=shape)
        redraw = np.log(rng.uniform(size=shape)) > log_ratio(values)
        while redraw.any():
            count = int(redraw.sum())
            candidates = rng.uniform(a, b, size=count)
            accepted = np.log(rng.uniform(size=count)) <= log_ratio(candidates)
            positions = np.flatnonzero(redraw)[accepted]
            values.flat[positions] = candidates[accepted]
            redraw.flat[positions] = False
    return _write(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _check(tensor, "constant_")
    return _write(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1 (BatchNorm's weight)."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0 (biases; never all weights: the symmetry problem of notes 004 Q2)."""
    return constant_(tensor, 0.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal of a rectangle too): a
    Linear layer that starts as the identity on as many inputs as it can."""
    _check(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _write(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a conv weight (out, in/groups, *kernel), 3-, 4- or 5-D, with Dirac deltas.

    Output channel j of each group gets a single 1 at input channel j and the kernel's centre
    (kernel_size // 2 along each axis), for j < min(out_per_group, in): the convolution then
    copies those input channels to its output unchanged (with 'same' padding), the identity
    initialisation of a conv layer, per group when ``groups > 1``.
    """
    _check(tensor, "dirac_")
    if tensor.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported "
                         f"(got {tensor.ndim} dimensions)")
    out_channels, in_channels = tensor.shape[:2]
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"dirac_(): groups must be a positive int, got {groups!r}")
    if out_channels % groups != 0:
        raise ValueError(f"dim 0 must be divisible by groups (got dim 0 = {out_channels}, "
                         f"groups = {groups})")
    out_per_group = out_channels // groups
    k = min(out_per_group, in_channels)
    values = np.zeros(tensor.shape)
    centre = tuple(size // 2 for size in tensor.shape[2:])
    for g in range(groups):
        values[(g * out_per_group + np.arange(k), np.arange(k), *centre)] = 1
    return _write(tensor, values)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01,
            generator: np.random.Generator | None = None) -> Tensor:
    """Martens (2010): N(0, std^2) entries, with ceil(sparsity * rows) of each column set to 0
    (rows chosen at random per column), so each unit sees a few large weights instead of many
    tiny ones."""
    _check(tensor, "sparse_")
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported "
                         f"(got {tensor.ndim} dimensions)")
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    rng = _rng(generator)
    values = rng.normal(0.0, std, size=(rows, cols))
    for col in range(cols):
        values[rng.permutation(rows)[:num_zeros], col] = 0
    return _write(tensor, values)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Tensor:
    """Glorot & Bengio (2010): U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    Var(w) = b^2 / 3 = gain^2 * 2 / (fan_in + fan_out): the harmonic compromise between keeping
    the forward variance (1/fan_in) and the backward variance (1/fan_out).
    """
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Tensor:
    """Glorot & Bengio (2010): N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Tensor:
    """He et al. (2015): U(-b, b) with b = gain * sqrt(3 / fan).

    Var(w) = gain^2 / fan; for ReLU (gain^2 = 2) this is 2 / fan_in, which keeps Var(out) =
    Var(in) because ReLU zeroes half of the signal (notes 004 Q1). ``mode="fan_out"`` preserves
    the variance of the gradients in the backward pass instead. ``a`` is the negative slope of
    leaky_relu. (nn.Linear and nn.Conv2d use a = sqrt(5): b = 1 / sqrt(fan_in).)
    """
    _check(tensor, "kaiming_uniform_")
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Tensor:
    """He et al. (2015): N(0, std^2) with std = gain / sqrt(fan) (2/fan_in variance for ReLU)."""
    _check(tensor, "kaiming_normal_")
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1,
                generator: np.random.Generator | None = None) -> Tensor:
    """Saxe et al. (2013): a (semi-)orthogonal matrix, scaled by ``gain``.

    The tensor is viewed as (rows, cols) = (shape[0], prod(shape[1:])). A Gaussian matrix's QR
    factor Q, with column signs fixed by diag(R) so that Q is uniformly (Haar) distributed, has
    orthonormal columns; it is transposed when rows < cols so that the rows are orthonormal.
    """
    _check(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T                                   # (cols, rows): tall
    q, r = np.linalg.qr(flat)                           # q: tall with orthonormal columns
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T                                         # (rows, cols)
    return _write(tensor, gain * q.reshape(tensor.shape))
