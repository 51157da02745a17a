"""Activation functions and the softmax family (notes 000 on activations, 003 on softmax).

Each backward reuses the forward output where the derivative can be written in it:
sigmoid' = y (1 - y), tanh' = 1 - y^2, relu' = [y > 0].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ..backend import get_default_dtype
from ._util import check_tensor, normalize_dim


class ReluFn(Function):
    """y = max(x, 0).   dL/dx = g * [x > 0] (the subgradient at 0 is taken as 0, as PyTorch)."""

    def forward(self, x):
        y = np.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * (y > 0)


class SigmoidFn(Function):
    """y = 1 / (1 + e^-x).   dy/dx = y (1 - y).

    Computed as e^x / (1 + e^x) for negative x so that e^-x never overflows.
    """

    def forward(self, x):
        if x.dtype.kind != "f":  # integers: the default float dtype, as PyTorch
            x = x.astype(get_default_dtype())
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * y * (1 - y)


class TanhFn(Function):
    """y = tanh x.   dy/dx = 1 - y^2."""

    def forward(self, x):
        if x.dtype.kind != "f":  # integers: the default float dtype, as PyTorch
            x = x.astype(get_default_dtype())
        y = np.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y * (1 - y * y)


class SoftmaxFn(Function):
    """y_i = e^{x_i} / sum_j e^{x_j} along ``dim``.

    Forward subtracts max_j x_j first: the result is unchanged (the factor e^{-max} cancels) and no
    exponent exceeds 0, so nothing overflows.
    Backward: dy_i/dx_k = y_i (delta_ik - y_k), hence
        dL/dx_k = sum_i g_i y_i (delta_ik - y_k) = y_k (g_k - sum_i g_i y_i).
    """

    def __init__(self, dim: int | None):
        self.dim = dim

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.dim, keepdims=True, initial=-np.inf))  # initial: empty ok
        y = e / e.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return y * (grad_y - (grad_y * y).sum(axis=self.dim, keepdims=True))


class LogSoftmaxFn(Function):
    """y_i = x_i - log sum_j e^{x_j} = x_i - m - log sum_j e^{x_j - m}, with m = max_j x_j.

    Backward: dy_i/dx_k = delta_ik - softmax_k, hence dL/dx_k = g_k - softmax_k * sum_i g_i,
    with softmax = e^y.
    """

    def __init__(self, dim: int | None):
        self.dim = dim

    def forward(self, x):
        shifted = x - x.max(axis=self.dim, keepdims=True, initial=-np.inf)
        y = shifted - np.log(np.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, grad_y):
        (y,) = self.saved
        return grad_y - np.exp(y) * grad_y.sum(axis=self.dim, keepdims=True)


def relu(input: Any, inplace: bool = False) -> Any:
    """max(x, 0). With ``inplace=True`` the result is written into ``input``, which is returned."""
    check_tensor(input, "input", "relu")
    if not inplace:
        return ReluFn()(input)
    if input._tracked():  # in the graph: recorded out of place, then ``input`` is rebound to it
        return input._inplace_via(ReluFn())
    input._ufunc_(np.maximum, 0)
    return input


def sigmoid(input: Any) -> Any:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    check_tensor(input, "input", "sigmoid")
    return SigmoidFn()(input)


def tanh(input: Any) -> Any:
    """The hyperbolic tangent."""
    check_tensor(input, "input", "tanh")
    return TanhFn()(input)


def _softmax_input(input: Any, dim: int | None, dtype: Any, op: str) -> tuple[Any, int | None]:
    check_tensor(input, "input", op)
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:  # PyTorch's legacy implicit choice, with its warning turned into a rule
        dim = 0 if input.ndim in (0, 1, 3) else 1
    d = normalize_dim(dim, input.ndim, op)
    return input, (d if input.ndim else None)  # axis None: a 0-d tensor is its own "row"


def softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """e^x / sum e^x along ``dim`` (max-shifted, so large inputs do not overflow)."""
    input, d = _softmax_input(input, dim, dtype, "softmax")
    return SoftmaxFn(d)(input)


def log_softmax(input: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """x - logsumexp(x) along ``dim``, computed stably."""
    input, d = _softmax_input(input, dim, dtype, "log_softmax")
    return LogSoftmaxFn(d)(input)


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (NumPy has none; SciPy comes with scikit-learn)."""
    from scipy.special import erf  # imported on first use: scipy.special is slow to import

    return erf(x)


_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = 0.044715


class GeluFn(Function):
    """GELU, x weighted by the probability that a standard normal is below x (Hendrycks 2016).

    Exact ("none"):  y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2 the normal CDF.
        dy/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2/2) / sqrt(2 pi)   (product rule, Phi' = phi)
    Tanh approximation ("tanh"):  u = sqrt(2/pi) (x + 0.044715 x^3),  t = tanh u,
        y = x (1 + t) / 2
        dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
    (tanh' = 1 - tanh^2, chain rule through u). Used by Transformer feed-forward blocks.
    Torch: torch.nn.functional.gelu.
    """

    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def forward(self, x):
        if self.approximate == "tanh":
            inner = x * (1 + _GELU_CUBIC * x * x) * x.dtype.type(_SQRT_2_OVER_PI)
            t = np.tanh(inner)
            self.save_for_backward(x, t)
            return 0.5 * x * (1 + t)
        cdf = (0.5 * (1 + _erf(x * x.dtype.type(np.sqrt(0.5))))).astype(x.dtype, copy=False)
        self.save_for_backward(x, cdf)
        return x * cdf

    def backward(self, grad_y):
        x, aux = self.saved
        if self.approximate == "tanh":
            t = aux
            d_inner = x.dtype.type(_SQRT_2_OVER_PI) * (1 + 3 * _GELU_CUBIC * x * x)
            return grad_y * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner)
        pdf = np.exp(-0.5 * x * x) * x.dtype.type(1 / np.sqrt(2 * np.pi))
        return grad_y * (aux + x * pdf)


def gelu(input: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit x * Phi(x), as ``torch.nn.functional.gelu``.

    Args:
        input: a floating tensor.
        approximate: ``'none'`` (exact, with erf) or ``'tanh'`` (the tanh approximation).

    Raises:
        RuntimeError: ``approximate`` is neither 'none' nor 'tanh'.

    Math: :class:`GeluFn`.
    """
    check_tensor(input, "input", "gelu")
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh, got "
                           f"approximate={approximate!r}.")
    if input.dtype.kind != "f":
        raise TypeError(f"gelu(): expected a floating point input, got {input.dtype}")
    return GeluFn(approximate)(input)


# -- the ReLU family and the smooth activations (notes 000 Q8/Q9, 002 activation table, 004 Q17) --
#
# Every op below is one fused node: the forward saves what the derivative needs (a mask, an
# exponential, the sigmoid) and the backward is one elementwise expression. At the kinks (x = 0 for
# the ReLU family, the corners of the hard functions) the derivative is a choice; each docstring
# states PyTorch's choice, which the tests check.

_TORCH_DTYPE_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char",
                      "uint8": "Byte", "bool": "Bool"}


def _check_float(input: Any, op: str, kernel: str) -> None:
    """A Tensor with a floating dtype, else PyTorch's errors (its CPU kernels are float-only)."""
    check_tensor(input, "input", op)
    if input.dtype.kind != "f":
        name = _TORCH_DTYPE_NAMES.get(input.dtype.name, input.dtype.name)
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')


def _check_number(value: Any, name: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{op}(): argument '{name}' must be a number, not {type(value).__name__}")
    return float(value)


def _apply(fn: Function, input: Any, inplace: bool) -> Any:
    """``fn(input)``, or with ``inplace=True`` the result written into ``input`` (as ``relu``).

    In the graph the update is recorded out of place and ``input`` is rebound to it, so the
    values that earlier nodes saved are never overwritten.
    """
    if not inplace:
        return fn(input)
    if input._tracked():
        return input._inplace_via(fn)
    input._check_writeable()
    np.copyto(input.data, fn(input).data)
    input._version += 1
    return input


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: 0.5 (1 + tanh(x/2)) is the same function."""
    return 0.5 * (1 + np.tanh(0.5 * x))


class LeakyReluFn(Function):
    """y = x for x > 0, a x otherwise (a = negative_slope; Maas et al. 2013, notes 000 Q9).

    dy/dx = 1 for x > 0 and a for x <= 0: PyTorch takes the left slope a at x = 0.
    """

    def __init__(self, negative_slope: float):
        self.negative_slope = negative_slope

    def forward(self, x):
        positive = x > 0
        self.save_for_backward(positive)
        return np.where(positive, x, x * self.negative_slope)

    def backward(self, grad_y):
        (positive,) = self.saved
        return np.where(positive, grad_y, grad_y * self.negative_slope)


class PreluFn(Function):
    """y = x for x > 0, a_c x otherwise, with a learned slope a per channel c (He et al. 2015).

    ``weight`` holds C slopes (one per channel, dim 1 of the input) or one shared slope.
        dL/dx   = g          for x > 0,   a_c g  for x <= 0
        dL/da_c = sum over every position of channel c of  g x [x <= 0]
    (at x = 0 the slope a is used for dL/dx, and x [x <= 0] = 0 there anyway, as PyTorch).
    """

    def forward(self, x, weight):
        c = weight.size
        shape = (1, c) + (1,) * (x.ndim - 2) if c > 1 else ()  # broadcast over dim 1 only
        slope = weight.astype(x.dtype, copy=False).reshape(shape)
        positive = x > 0
        self.save_for_backward(x, positive, slope)
        self.weight_shape = weight.shape
        return np.where(positive, x, x * slope)

    def backward(self, grad_y):
        x, positive, slope = self.saved
        grad_x = grad_weight = None
        if self.needs_input_grad[0]:
            grad_x = np.where(positive, grad_y, grad_y * slope)
        if self.needs_input_grad[1]:
            contribution = np.where(positive, 0, grad_y * x)
            axes = tuple(a for a in range(x.ndim) if a != 1) if slope.ndim else None
            grad_weight = contribution.sum(axis=axes).reshape(self.weight_shape)
        return grad_x, grad_weight


class RreluFn(Function):
    """Randomised leaky ReLU (Xu et al. 2015, notes 000 Q9): y = x for x > 0, r x otherwise.

    Training: r ~ U(lower, upper), drawn independently for every element from the global
    generator (``deepnotes.manual_seed``). Evaluation: r = (lower + upper) / 2, the mean of that
    distribution, which makes it a leaky ReLU (see :func:`rrelu`).
    dL/dx = g for x > 0 and r g for x <= 0 (the same r as in the forward; at x = 0 the drawn r,
    as PyTorch). ``self.noise`` keeps the slopes used (1 where x > 0), as PyTorch's ``noise``.
    """

    def __init__(self, lower: float, upper: float, generator: np.random.Generator):
        self.lower, self.upper, self.generator = lower, upper, generator

    def forward(self, x):
        r = self.generator.uniform(self.lower, self.upper, size=x.shape).astype(x.dtype)
        self.noise = np.where(x > 0, np.ones((), x.dtype), r)
        return x * self.noise

    def backward(self, grad_y):
        return grad_y * self.noise


class EluFn(Function):
    """The ELU family in PyTorch's parametrisation (Clevert et al. 2016; notes 000 Q9):

        y = s x                              for x > 0
        y = s alpha (e^{c x} - 1)            for x <= 0
        dy/dx = s  (x > 0),   s alpha c e^{c x}  (x <= 0; PyTorch takes this side at x = 0)

    ELU: s = 1, c = 1.  SELU (Klambauer et al. 2017): s = 1.0507..., alpha = 1.6733..., c = 1, the
    constants that make zero mean / unit variance a fixed point.  CELU (Barron 2017): s = 1,
    c = 1 / alpha, which keeps the curve differentiable at 0 for every alpha.
    """

    def __init__(self, alpha: float, scale: float = 1.0, input_scale: float = 1.0):
        self.alpha, self.scale, self.input_scale = alpha, scale, input_scale

    def forward(self, x):
        positive = x > 0
        exp_term = np.exp(np.where(positive, 0, x) * self.input_scale)   # e^{c x}, 1 where x > 0
        negative = (self.scale * self.alpha) * (exp_term - 1)
        self.save_for_backward(positive, exp_term)
        return np.where(positive, x * self.scale, negative).astype(x.dtype, copy=False)

    def backward(self, grad_y):
        positive, exp_term = self.saved
        negative_slope = (self.scale * self.alpha * self.input_scale) * exp_term
        return np.where(positive, grad_y * self.scale, grad_y * negative_slope)


class SoftplusFn(Function):
    """y = log(1 + e^{beta x}) / beta, and y = x where beta x > threshold (PyTorch's cut-off).

    dy/dx = sigmoid(beta x), and 1 where beta x > threshold. Evaluated as
    logaddexp(0, beta x) / beta, which never overflows (the naive e^{beta x} would above ~709).
    """

    def __init__(self, beta: float, threshold: float):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        z = x * self.beta
        linear = z > self.threshold
        self.save_for_backward(z, linear)
        return np.where(linear, x, np.logaddexp(0, z) / self.beta).astype(x.dtype, copy=False)

    def backward(self, grad_y):
        z, linear = self.saved
        return np.where(linear, grad_y, grad_y * _sigmoid(z))


class MishFn(Function):
    """Mish (Misra 2019): y = x tanh(softplus(x)), softplus(x) = log(1 + e^x).

    With t = tanh(softplus(x)) and softplus' = sigmoid:
        dy/dx = t + x (1 - t^2) sigmoid(x)
    One node instead of the four a composite would record.
    """

    def forward(self, x):
        t = np.tanh(np.logaddexp(0, x))
        self.save_for_backward(x, t)
        return x * t

    def backward(self, grad_y):
        x, t = self.saved
        return grad_y * (t + x * (1 - t * t) * _sigmoid(x))


class SiluFn(Function):
    """SiLU / swish (Ramachandran et al. 2017): y = x sigmoid(x) = x s.

    dy/dx = s + x s (1 - s) = s (1 + x (1 - s)).
    """

    def forward(self, x):
        s = _sigmoid(x)
        self.save_for_backward(x, s)
        return x * s

    def backward(self, grad_y):
        x, s = self.saved
        return grad_y * s * (1 + x * (1 - s))


class HardtanhFn(Function):
    """y = clamp(x, min_val, max_val).

    dy/dx = 1 for min_val < x < max_val and 0 outside, including both corners (PyTorch's choice).
    ReLU6 is hardtanh(0, 6) (Howard et al. 2017).
    """

    def __init__(self, min_val: float, max_val: float):
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        inside = (x > self.min_val) & (x < self.max_val)
        self.save_for_backward(inside)
        y = np.clip(x, self.min_val, self.max_val)
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_y):
        (inside,) = self.saved
        return grad_y * inside


class HardswishFn(Function):
    """Hard swish (Howard et al. 2019, MobileNetV3): y = x relu6(x + 3) / 6.

        y = 0 (x <= -3),   x (x + 3) / 6 (-3 < x < 3),   x (x >= 3)
        dy/dx = 0 (x <= -3),   x/3 + 1/2 (-3 < x < 3),   1 (x >= 3)   (PyTorch's corners)
    """

    def forward(self, x):
        self.save_for_backward(x)
        return x * np.clip(x + 3, 0, 6) / 6

    def backward(self, grad_y):
        (x,) = self.saved
        slope = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1))
        return grad_y * slope.astype(grad_y.dtype, copy=False)


class HardsigmoidFn(Function):
    """Hard sigmoid: y = relu6(x + 3) / 6, a piecewise-linear sigmoid.

    dy/dx = 1/6 for -3 < x < 3 and 0 outside, corners included (PyTorch; its float64 kernel uses
    the float32 constant 1/6, a 3e-8 relative difference the tests allow).
    """

    def forward(self, x):
        inside = (x > -3) & (x < 3)
        self.save_for_backward(inside)
        return np.clip(x + 3, 0, 6) / 6

    def backward(self, grad_y):
        (inside,) = self.saved
        return grad_y * inside / 6


class SoftsignFn(Function):
    """y = x / (1 + |x|).   dy/dx = 1 / (1 + |x|)^2 (smooth at 0, where it is 1)."""

    def forward(self, x):
        denominator = 1 + np.abs(x)
        self.save_for_backward(denominator)
        return x / denominator

    def backward(self, grad_y):
        (denominator,) = self.saved
        return grad_y / (denominator * denominator)


class LogsigmoidFn(Function):
    """y = log sigmoid(x) = -softplus(-x) = min(x, 0) - log(1 + e^{-|x|}) (overflow-free form).

    dy/dx = 1 - sigmoid(x) = sigmoid(-x).
    """

    def forward(self, x):
        self.save_for_backward(x)
        return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)

    def backward(self, grad_y):
        (x,) = self.saved
        return grad_y * _sigmoid(-x)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
    """x for x > 0, ``negative_slope * x`` otherwise. Math: :class:`LeakyReluFn`."""
    _check_float(input, "leaky_relu", "leaky_relu_cpu")
    slope = _check_number(negative_slope, "negative_slope", "leaky_relu")
    return _apply(LeakyReluFn(slope), input, inplace)


def prelu(input: Any, weight: Any) -> Any:
    """Leaky ReLU with learned slopes ``weight``: one per channel (dim 1) or one shared.

    Args:
        input: (N, C, *) tensor (or any shape with a single shared slope).
        weight: 1-D tensor of C slopes, or one slope (1 element or 0-d).

    Raises:
        RuntimeError: ``weight`` is not 0-D/1-D, or its size is neither 1 nor the number of
            channels (a 0-D or 1-D input counts as one channel, as in PyTorch).

    Math: :class:`PreluFn`.
    """
    _check_float(input, "prelu", "prelu_cpu")
    check_tensor(weight, "weight", "prelu")
    if weight.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                           f"ndim = {weight.ndim}")
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.numel() != 1 and weight.numel() != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter "
                           f"numbers = {weight.numel()} and channel size = {channels}.")
    return PreluFn()(input, weight)


def rrelu(input: Any, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Any:
    """Randomised leaky ReLU: slope r ~ U(lower, upper) per element in training, the mean
    (lower + upper) / 2 in evaluation (an ordinary leaky ReLU). Math: :class:`RreluFn`.

    The random slopes come from ``deepnotes.random.default_generator()``, so
    ``deepnotes.manual_seed`` makes them reproducible.
    """
    from ..random import default_generator

    _check_float(input, "rrelu", "rrelu_with_noise_cpu")
    lower = _check_number(lower, "lower", "rrelu")
    upper = _check_number(upper, "upper", "rrelu")
    if lower > upper:
        raise RuntimeError(f"Lower bound should be less than or equal to the upper bound, got "
                           f"lower={lower} and upper={upper}")
    if not training:
        return _apply(LeakyReluFn((lower + upper) / 2), input, inplace)
    return _apply(RreluFn(lower, upper, default_generator()), input, inplace)


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Any:
    """x for x > 0, ``alpha * (e^x - 1)`` otherwise. Math: :class:`EluFn`."""
    _check_float(input, "elu", "elu_cpu")
    return _apply(EluFn(_check_number(alpha, "alpha", "elu")), input, inplace)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Any, inplace: bool = False) -> Any:
    """``scale * elu(x, alpha)`` with the self-normalising constants (alpha = 1.6733, scale =
    1.0507, Klambauer et al. 2017). Math: :class:`EluFn`."""
    _check_float(input, "selu", "elu_cpu")
    return _apply(EluFn(SELU_ALPHA, SELU_SCALE), input, inplace)


def celu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Any:
    """x for x > 0, ``alpha * (e^{x/alpha} - 1)`` otherwise. Math: :class:`EluFn`.

    Raises:
        RuntimeError: alpha == 0 (PyTorch's "ZeroDivisionError" message).
    """
    _check_float(input, "celu", "elu_cpu")
    alpha = _check_number(alpha, "alpha", "celu")
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _apply(EluFn(alpha, 1.0, 1.0 / alpha), input, inplace)


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """log(1 + e^{beta x}) / beta, linear where beta x > threshold. Math: :class:`SoftplusFn`."""
    _check_float(input, "softplus", "softplus_cpu")
    beta = _check_number(beta, "beta", "softplus")
    threshold = _check_number(threshold, "threshold", "softplus")
    return SoftplusFn(beta, threshold)(input)


def mish(input: Any, inplace: bool = False) -> Any:
    """x tanh(softplus(x)). Math: :class:`MishFn`."""
    _check_float(input, "mish", "mish_cpu")
    return _apply(MishFn(), input, inplace)


def silu(input: Any, inplace: bool = False) -> Any:
    """x sigmoid(x) (also called swish). Math: :class:`SiluFn`."""
    _check_float(input, "silu", "silu_cpu")
    return _apply(SiluFn(), input, inplace)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Any:
    """clamp(x, min_val, max_val). Math: :class:`HardtanhFn`.

    Raises:
        ValueError: min_val > max_val.
    """
    check_tensor(input, "input", "hardtanh")
    min_val = _check_number(min_val, "min_val", "hardtanh")
    max_val = _check_number(max_val, "max_val", "hardtanh")
    if min_val > max_val:
        raise ValueError(f"min_val cannot be greater than max_val, got min_val={min_val} and "
                         f"max_val={max_val}")
    return _apply(HardtanhFn(min_val, max_val), input, inplace)


def relu6(input: Any, inplace: bool = False) -> Any:
    """min(max(x, 0), 6) = hardtanh(x, 0, 6). Math: :class:`HardtanhFn`."""
    check_tensor(input, "input", "relu6")
    return _apply(HardtanhFn(0.0, 6.0), input, inplace)


def hardswish(input: Any, inplace: bool = False) -> Any:
    """x relu6(x + 3) / 6. Math: :class:`HardswishFn`."""
    _check_float(input, "hardswish", "hardswish_cpu")
    return _apply(HardswishFn(), input, inplace)


def hardsigmoid(input: Any, inplace: bool = False) -> Any:
    """relu6(x + 3) / 6. Math: :class:`HardsigmoidFn`."""
    _check_float(input, "hardsigmoid", "hardsigmoid_cpu")
    return _apply(HardsigmoidFn(), input, inplace)


def softsign(input: Any) -> Any:
    """x / (1 + |x|); an integer input gives a tensor of the default float dtype, as PyTorch.
    Math: :class:`SoftsignFn`."""
    from ..backend import get_default_dtype

    check_tensor(input, "input", "softsign")
    if input.dtype.kind != "f":
        input = input.to(get_default_dtype())
    return SoftsignFn()(input)


def logsigmoid(input: Any) -> Any:
    """log(1 / (1 + e^-x)), computed without overflow. Math: :class:`LogsigmoidFn`."""
    _check_float(input, "logsigmoid", "log_sigmoid_cpu")
    return LogsigmoidFn()(input)


def gumbel_softmax(logits: Any, tau: float = 1.0, hard: bool = False,
                   eps: float = 1e-10, dim: int = -1) -> Any:
    """A Gumbel-softmax (concrete) sample, as ``torch.nn.functional.gumbel_softmax``.

    Gumbel-max: argmax_i (logits_i + g_i) with g_i = -log(E_i), E_i ~ Exp(1) i.i.d., is a sample
    of the categorical distribution softmax(logits). Replacing the argmax by a softmax with
    temperature tau gives a differentiable relaxation (notes 004, SNAS/GDAS):

        y_soft = softmax((logits + g) / tau)          (-> one-hot as tau -> 0)

    ``hard=True``: the value is the one-hot y_hard of argmax y_soft, the gradient that of y_soft
    (straight-through estimator): y = y_hard - stop_grad(y_soft) + y_soft.
    ``eps`` is unused (deprecated in PyTorch too). The noise is drawn from
    ``deepnotes.random.default_generator()``. A composite of primitives (softmax, detach):
    the backward is that of softmax, d y_i / d l_j = y_i (delta_ij - y_j) / tau.
    """
    from ..random import default_generator
    from ..tensor import Tensor

    check_tensor(logits, "logits", "gumbel_softmax")
    if not tau > 0:
        raise ValueError(f"gumbel_softmax(): tau must be positive, got {tau}")
    if not -logits.ndim <= dim < max(logits.ndim, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of "
                         f"[{-logits.ndim}, {logits.ndim - 1}], but got {dim})")
    gumbels = -np.log(default_generator().exponential(size=logits.shape))  # ~ Gumbel(0, 1)
    y_soft = softmax((logits + Tensor._wrap(gumbels.astype(logits.data.dtype))) / tau, dim=dim)
    if not hard:
        return y_soft
    index = np.argmax(y_soft.data, axis=dim)
    y_hard = np.zeros_like(y_soft.data)
    np.put_along_axis(y_hard, np.expand_dims(index, dim), 1.0, axis=dim)
    return Tensor._wrap(y_hard) - y_soft.detach() + y_soft
