"""``Parameter``: a Tensor that a Module registers as one of its learnable weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module (as ``torch.nn.Parameter``).

    Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) registers it, so
    it shows up in ``parameters()``, ``named_parameters()`` and ``state_dict()``. It requires a
    gradient by default. Built from a Tensor it shares that Tensor's memory (no copy).

    Args:
        data: a Tensor or ndarray (an empty float tensor when omitted).
        requires_grad: whether the parameter requires a gradient (default True).

    Gradients, results of ops and ``detach()`` of a Parameter are plain Tensors, as in PyTorch.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            from ..backend import get_default_dtype

            array = np.empty((0,), dtype=get_default_dtype())
        elif isinstance(data, Tensor):
            array = data.data
        elif isinstance(data, np.ndarray):
            array = data
        else:
            raise TypeError(f"Parameter(): data must be a Tensor or an ndarray, got "
                            f"{type(data).__name__}")
        self.data = array
        self.grad = None
        self._fn = None
        self._index = 0
        self._version = 0
        self._hooks = None
        self._retains_grad = False
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array: np.ndarray) -> Tensor:
        # The engine wraps gradients with ``leaf._wrap``: a Parameter's gradient is a plain Tensor.
        return Tensor._wrap(array)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(self.data.copy(), self._requires_grad)
        if self.grad is not None:
            result.grad = Tensor._wrap(self.grad.data.copy())
        memo[id(self)] = result
        return result
