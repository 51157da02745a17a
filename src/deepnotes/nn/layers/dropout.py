"""Dropout layers (notes 000 Q7, 001, 003 "dropout的原理" and "conv上的dropout方式").

``Dropout`` (inverted dropout, as PyTorch, or the notes' classic form with ``scale_at_test=True``),
``Dropout1d/2d/3d`` (whole channels), ``AlphaDropout`` and ``FeatureAlphaDropout`` (for SELU
networks). The math lives in ``ops.dropout``.
"""

from __future__ import annotations

import numbers

from ...tensor import Tensor
from .. import functional as F
from ..module import Module


def _check_p(p: object, cls: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{cls}: p must be a float, got {type(p).__name__}")
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


class Dropout(Module):
    """Zero each element with probability ``p`` in training.

    By default this is inverted dropout, as ``torch.nn.Dropout``: kept elements are scaled by
    1/(1-p) in training and evaluation mode (``model.eval()``) is the identity. With
    ``scale_at_test=True`` it is the classic formulation of the notes (000 Q7, 003): no scaling
    in training, a multiplication by (1 - p) in evaluation. Both give the same expected output in
    training as in evaluation (E[m x / (1-p)] = x and E[m x] = (1-p) x); a network trained with
    one form has weights 1/(1-p) times those of the other. ``scale_at_test`` is not in PyTorch.
    Masks come from ``deepnotes.random.default_generator()``.

    Args:
        p: probability of zeroing an element, in [0, 1] (default 0.5).
        inplace: see ``ops.dropout.dropout`` (not available with ``scale_at_test``).
        scale_at_test: use the classic form (scale by 1 - p at test time) instead.

    Raises:
        ValueError: p outside [0, 1], or ``inplace`` together with ``scale_at_test``.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, scale_at_test: bool = False):
        super().__init__()
        self.p = _check_p(p, "Dropout")
        if inplace and scale_at_test:
            raise ValueError("Dropout: inplace=True is not supported with scale_at_test=True")
        self.inplace = inplace
        self.scale_at_test = scale_at_test

    def forward(self, input: Tensor) -> Tensor:
        if self.scale_at_test:
            return F.dropout_scale_at_test(input, self.p, self.training)
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        extra = ", scale_at_test=True" if self.scale_at_test else ""
        return f"p={self.p}, inplace={self.inplace}{extra}"


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = _check_p(p, type(self).__name__)
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) in training, scaling the rest by 1/(1-p).

    As ``torch.nn.Dropout1d``; see ``ops.dropout.dropout1d``.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) in training, scaling the rest by 1/(1-p).

    Dropping single pixels barely regularises a convolution, since neighbouring pixels are
    correlated; dropping whole feature maps does (the notes' open question 003 "conv上的dropout
    方式"). As ``torch.nn.Dropout2d``, warnings for other ranks included; see
    ``ops.dropout.dropout2d``.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) in training (``nn.Dropout3d``)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Alpha dropout for self-normalising (SELU) networks, as ``torch.nn.AlphaDropout``.

    Dropped elements become SELU's saturation value and an affine correction keeps mean 0 and
    variance 1; see ``ops.dropout.AlphaDropoutFn``. The identity in evaluation mode.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels, as ``torch.nn.FeatureAlphaDropout``."""

    def forward(self, input: Tensor) -> Tensor:
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace)
