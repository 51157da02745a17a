"""Fully connected layers: ``Linear`` (y = x W^T + b) and ``Identity``."""

from __future__ import annotations

import math
from typing import Any

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._common import check_count, factory


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a classifier head).

    Any constructor arguments are accepted and ignored, as in PyTorch.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """Fully connected layer: y = x W^T + b.

    Args:
        in_features: size of each input sample (the last dimension).
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        device: None or "cpu".
        dtype: parameter dtype (default: the default dtype, float32).

    Shape:
        input (*, in_features) -> output (*, out_features).

    Attributes:
        weight: (out_features, in_features), initialised U(-1/sqrt(in), 1/sqrt(in)), which is
            ``init.kaiming_uniform_(w, a=sqrt(5))`` (PyTorch's default): Var(w) = 1/(3 in).
        bias: (out_features,), U(-1/sqrt(in), 1/sqrt(in)).

    Math: see ``ops.matmul.LinearFn`` (dL/dx = g W, dL/dW = g^T x, dL/db = sum g).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        self.in_features = check_count(in_features, "in_features", "Linear")
        self.out_features = check_count(out_features, "out_features", "Linear")
        self.weight = Parameter(factory((self.out_features, self.in_features), device, dtype))
        if bias:
            self.bias = Parameter(factory((self.out_features,), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
