"""Activation modules: thin wrappers of the functions in ``ops.activation`` (notes 000 Q8/Q9 on
activations, 002's activation table, 003 on softmax, 004 Q17). Only ``PReLU`` (its slopes) and
``Maxout`` (its affine maps, not in PyTorch) hold parameters."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, factory


class ReLU(Module):
    """max(x, 0), elementwise. ``inplace`` is accepted for PyTorch compatibility."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """1 / (1 + e^-x), elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """tanh x, elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Softmax(Module):
    """e^{x_i} / sum_j e^{x_j} along ``dim``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log softmax along ``dim`` (computed stably as x - logsumexp(x))."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# -- the ReLU family and the smooth activations (notes 000 Q8/Q9, 002 activation table, 004 Q17) --
# Each module stores its hyper-parameters and calls the function of the same name in
# ``nn.functional`` (the math and the derivative live in ``ops.activation``).


def _inplace_str(inplace: bool) -> str:
    return ", inplace=True" if inplace else ""


def _number(value: Any, name: str, layer: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a number, got {value!r}")
    return value


class LeakyReLU(Module):
    """x for x > 0, ``negative_slope * x`` otherwise (Maas et al. 2013; notes 000 Q9).

    Args:
        negative_slope: the slope for x <= 0 (default 0.01).
        inplace: write the result into the input.
    """

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
        super().__init__()
        self.negative_slope = _number(negative_slope, "negative_slope", "LeakyReLU")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}{_inplace_str(self.inplace)}"


class PReLU(Module):
    """Leaky ReLU whose negative slope is learned (He et al. 2015; notes 000 Q9).

    Args:
        num_parameters: 1 (one slope shared by every channel) or C (one per channel, dim 1).
        init: initial value of the slopes (default 0.25).

    Attributes:
        weight: (num_parameters,) the slopes; its gradient is sum of g * x over x <= 0.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        self.num_parameters = check_count(num_parameters, "num_parameters", "PReLU")
        self.init = _number(init, "init", "PReLU")
        self.weight = Parameter(factory((self.num_parameters,), device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """Randomised leaky ReLU (Xu et al. 2015; notes 000 Q9): in training each element's negative
    slope is drawn from U(lower, upper); in evaluation it is the mean (lower + upper) / 2.

    Args:
        lower, upper: bounds of the uniform distribution (defaults 1/8 and 1/3).
        inplace: write the result into the input.
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower = _number(lower, "lower", "RReLU")
        self.upper = _number(upper, "upper", "RReLU")
        if lower > upper:
            raise ValueError(f"RReLU: lower must not exceed upper, got lower={lower} and "
                             f"upper={upper}")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}{_inplace_str(self.inplace)}"


class ELU(Module):
    """x for x > 0, ``alpha * (e^x - 1)`` otherwise (Clevert et al. 2016; notes 000 Q9)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = _number(alpha, "alpha", "ELU")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{_inplace_str(self.inplace)}"


class CELU(Module):
    """x for x > 0, ``alpha * (e^{x/alpha} - 1)`` otherwise (Barron 2017)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = _number(alpha, "alpha", "CELU")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.celu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{_inplace_str(self.inplace)}"


class SELU(Module):
    """scale * elu(x, alpha) with alpha = 1.6733 and scale = 1.0507 (Klambauer et al. 2017)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.selu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """x Phi(x), Phi the standard normal CDF; ``approximate='tanh'`` for the tanh formula."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + e^{beta x}) / beta, a smooth ReLU; linear where beta x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = _number(beta, "beta", "Softplus")
        self.threshold = _number(threshold, "threshold", "Softplus")

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Mish(Module):
    """x tanh(softplus(x)) (Misra 2019)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.mish(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SiLU(Module):
    """x sigmoid(x), also called swish (Ramachandran et al. 2017)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Hardtanh(Module):
    """clamp(x, min_val, max_val); the gradient is 1 strictly inside and 0 outside.

    Raises:
        ValueError: max_val <= min_val (PyTorch asserts the same condition).
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val = _number(min_val, "min_val", type(self).__name__)
        self.max_val = _number(max_val, "max_val", type(self).__name__)
        if not max_val > min_val:
            raise ValueError(f"max_val ({max_val}) must be greater than min_val ({min_val})")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_str(self.inplace)}"


class ReLU6(Hardtanh):
    """min(max(x, 0), 6) (MobileNet): a ReLU whose output is bounded, Hardtanh(0, 6)."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Hardswish(Module):
    """x relu6(x + 3) / 6, a piecewise-quadratic swish (Howard et al. 2019, MobileNetV3)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardswish(input, self.inplace)


class Hardsigmoid(Module):
    """relu6(x + 3) / 6, a piecewise-linear sigmoid (MobileNetV3's squeeze-excite gate)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardsigmoid(input, self.inplace)


class Softsign(Module):
    """x / (1 + |x|), a sigmoid-shaped curve with polynomial (not exponential) tails."""

    def forward(self, input: Tensor) -> Tensor:
        return F.softsign(input)


class LogSigmoid(Module):
    """log(1 / (1 + e^-x)) = -softplus(-x), computed without overflow."""

    def forward(self, input: Tensor) -> Tensor:
        return F.logsigmoid(input)


class Maxout(Module):
    """Maxout unit (Goodfellow et al. 2013; notes 002 activation table): the max of ``pieces``
    affine maps of the input, max(w_1^T x + b_1, ..., w_k^T x + b_k), per output feature.

    Not in PyTorch. One ``linear`` produces all out_features * pieces affine maps, then the max is
    taken over each unit's pieces (its gradient goes to the winning piece only, so every piece
    of every unit gets the rows of the upstream gradient where it won). With pieces = 2 and one
    map fixed at 0 it is a ReLU; with two learned maps it can fit any convex piecewise-linear
    function of two pieces, a "learned activation", at ``pieces`` times the parameters.

    Args:
        in_features: size of each input sample.
        out_features: number of maxout units.
        pieces: k, the number of affine maps per unit.
        bias: learn the b_i.

    Attributes:
        weight: (out_features * pieces, in_features); rows j*k ... j*k + k-1 belong to unit j.
        bias: (out_features * pieces,). Both initialised as ``nn.Linear``'s, U(-1/sqrt(in), ...).

    Shape:
        input (*, in_features) -> output (*, out_features).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        self.in_features = check_count(in_features, "in_features", "Maxout")
        self.out_features = check_count(out_features, "out_features", "Maxout")
        self.pieces = check_count(pieces, "pieces", "Maxout")
        rows = self.out_features * self.pieces
        self.weight = Parameter(factory((rows, self.in_features), device, dtype))
        if bias:
            self.bias = Parameter(factory((rows,), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As ``nn.Linear``: weight and bias U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        z = F.linear(input, self.weight, self.bias)                       # (*, out * pieces)
        z = z.reshape(*z.shape[:-1], self.out_features, self.pieces)      # (*, out, pieces)
        return z.amax(-1)                                                 # (*, out)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pieces={self.pieces}, bias={self.bias is not None}")
