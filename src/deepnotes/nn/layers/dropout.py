"""``Dropout`` (inverted dropout, as PyTorch; notes 000 Q7, 003). See ``ops.dropout``."""

from __future__ import annotations

import numbers

from ...tensor import Tensor
from .. import functional as F
from ..module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p).

    In evaluation mode (``model.eval()``) it is the identity. Masks come from
    ``deepnotes.random.default_generator()``.

    Args:
        p: probability of zeroing an element, in [0, 1] (default 0.5).
        inplace: see ``ops.dropout.dropout``.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"Dropout: p must be a float, got {type(p).__name__}")
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
