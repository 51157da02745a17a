"""Dropout: randomly zero units during training (notes 000 Q7, 001, 002 Q3, 003 "dropout的原理").

Each unit is kept with probability q = 1 - p and zeroed otherwise, independently, with a fresh mask
for every call. Training then fits a random thinned sub-network each step, and the full network at
test time acts as an average of these sub-networks (notes 000 Q7). For that average to be right, the
expected value of each unit must be the same at training and at test time. With a mask
m ~ Bernoulli(q):

    E[m * x] = q * x

so one of the two phases has to rescale by q. Two equivalent conventions:

    inverted dropout (PyTorch, :func:`dropout`):   train  y = m * x / q,   test  y = x
    classic dropout (:func:`dropout_scale_at_test`): train y = m * x,       test  y = q * x

Inverted dropout leaves the test-time network untouched, which is why frameworks use it. Derivation:
``docs/derivations/dropout.md``. Masks are drawn from ``deepnotes.random.default_generator()``, so
``deepnotes.manual_seed`` reproduces them; they cannot match PyTorch's masks bit for bit.

Variants below: :func:`dropout1d`/:func:`dropout2d`/:func:`dropout3d` drop whole channels (one
mask entry per feature map, the answer to notes 003 "conv上的dropout方式"), and
:func:`alpha_dropout`/:func:`feature_alpha_dropout` keep the mean and variance of SELU networks.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ..autograd import Function
from ..autograd.grad_mode import is_grad_enabled
from ..random import default_generator
from ._util import check_tensor


def _draw_keep_mask(shape: tuple[int, ...], p: float) -> np.ndarray:
    """A bool mask with each entry True (kept) with probability 1 - p, from the global generator.

    u ~ U[0, 1) and keep = u >= p gives P(keep) = 1 - p exactly, all-True for p = 0 and all-False
    for p = 1. float32 uniforms are half the cost of float64 ones and fine for a probability.
    """
    return default_generator().random(shape, dtype=np.float32) >= p


class DropoutFn(Function):
    """Masked scaling y = x * m * s, with a Bernoulli(1 - p) keep mask m drawn in ``forward``.

    ``scale`` s is 1 / (1 - p) for inverted dropout (0 when p = 1: every unit is dropped) and 1 for
    the training phase of classic dropout. y is linear in x with a diagonal Jacobian m * s, so

        dL/dx = g * m * s

    The mask is kept as bools (1 byte per unit) and the scale as one number.
    """

    def __init__(self, p: float, scale: float):
        self.p, self.scale = p, scale

    def forward(self, x):
        keep = _draw_keep_mask(x.shape, self.p)
        self.save_for_backward(keep)
        y = x * keep
        if self.scale != 1.0:
            y *= x.dtype.type(self.scale)
        return y

    def backward(self, grad_y):
        (keep,) = self.saved
        grad_x = grad_y * keep
        if self.scale != 1.0:
            grad_x *= grad_x.dtype.type(self.scale)
        return grad_x


class ScaleFn(Function):
    """y = s * x for a constant s.   dL/dx = s * g.  (Test phase of classic dropout.)"""

    def __init__(self, scale: float):
        self.scale = scale

    def forward(self, x):
        return x * x.dtype.type(self.scale)

    def backward(self, grad_y):
        return grad_y * grad_y.dtype.type(self.scale)


def _check_dropout_args(input: Any, p: Any, op: str) -> float:
    check_tensor(input, "input", op)
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}(): argument 'p' must be float, not {type(p).__name__}")
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p != p:  # nan passes both comparisons; PyTorch's kernel rejects it with a RuntimeError
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}(): expected a floating point input, got {input.dtype}")
    return float(p)


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Inverted dropout, as ``torch.nn.functional.dropout``.

    In training each element is zeroed with probability ``p`` and the kept ones are multiplied by
    1 / (1 - p), so the expected output equals the input; ``p = 1`` gives zeros. In evaluation
    (``training=False``), and for ``p = 0``, the input itself is returned, as in PyTorch.

    Args:
        input: a floating tensor of any shape.
        p: probability of zeroing an element, in [0, 1].
        training: apply dropout (True) or the identity (False).
        inplace: write the result into ``input`` and return it. As in PyTorch this raises for a
            leaf that requires grad. deepnotes does not rewrite graphs in place, so when autograd
            records the op (input requires grad and grad mode is on) a new tensor is returned and
            ``input`` is left unchanged; use the return value, as you would with PyTorch.

    Raises:
        ValueError: p outside [0, 1] ("dropout probability has to be between 0 and 1, but got 1.5").
        TypeError: a non-float input or p.

    Math: :class:`DropoutFn`; derivation in docs/derivations/dropout.md. Notes 000 Q7, 003.
    """
    p = _check_dropout_args(input, p, "dropout")
    if not training or p == 0.0:
        return input
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    if inplace:
        if input.requires_grad and input.is_leaf and is_grad_enabled():
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )
        if not (input.requires_grad and is_grad_enabled()):
            input.data[...] = DropoutFn(p, scale).forward(input.data)
            input._bump_version()
            return input
    return DropoutFn(p, scale)(input)


def dropout_scale_at_test(input: Any, p: float = 0.5, training: bool = True):
    """Classic dropout (Srivastava et al. 2014; notes 000 Q7): scale at test time. NOT in PyTorch.

    Training: each element is zeroed with probability ``p`` and kept ones are left unscaled, so
    E[y] = (1 - p) * x. Evaluation: y = (1 - p) * x, matching that expectation. The trained network
    is the same function as with inverted :func:`dropout`; only where the factor 1 - p sits differs
    (notes 003: "训练阶段 ... 乘以系数 1/(1-p) ... 测试阶段 ... 需要手动再乘以概率 1-p").

    Args:
        input: a floating tensor of any shape.
        p: probability of zeroing an element, in [0, 1].
        training: draw a mask (True) or scale by 1 - p (False).

    Raises:
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "dropout_scale_at_test")
    if training:
        return DropoutFn(p, 1.0)(input)
    return ScaleFn(1.0 - p)(input)


# -- channel-wise dropout and alpha dropout (notes 003 "conv上的dropout方式") ---------------------


def _mask_shape(shape: tuple[int, ...], lead: int) -> tuple[int, ...]:
    """One mask entry per (sample, channel): the first ``lead`` axes kept, the others set to 1."""
    return tuple(shape[:lead]) + (1,) * (len(shape) - lead)


class FeatureDropoutFn(DropoutFn):
    """Channel-wise inverted dropout (``Dropout1d/2d/3d``): y = x * m * s, m shared by a channel.

    For x (N, C, *) the keep mask m has shape (N, C, 1, ..., 1), m ~ Bernoulli(1 - p), and is
    broadcast over the spatial axes, so a whole feature map is either kept (and scaled by
    s = 1/(1 - p)) or zeroed. Neighbouring pixels of a feature map are strongly correlated, so
    dropping single pixels barely regularises a convolution; dropping whole channels does
    (Tompson et al. 2015). ``lead`` = 1 handles an unbatched (C, *) input with an m of shape
    (C, 1, ..., 1). Backward as :class:`DropoutFn` (m broadcast): dL/dx = g * m * s.
    """

    def __init__(self, p: float, scale: float, lead: int = 2):
        super().__init__(p, scale)
        self.lead = lead

    def forward(self, x):
        keep = _draw_keep_mask(_mask_shape(x.shape, self.lead), self.p)      # (N, C, 1, ...)
        self.save_for_backward(keep)
        y = x * keep
        if self.scale != 1.0:
            y *= x.dtype.type(self.scale)
        return y


# SELU's negative saturation value -lambda*alpha: the limit of selu(x) as x -> -inf.
_SELU_SATURATION = -1.7580993408473766


def alpha_dropout_coefficients(p: float) -> tuple[float, float]:
    """The affine correction (a, b) of alpha dropout for a drop probability p in (0, 1).

    A dropped unit is set to alpha' = -lambda*alpha (SELU's saturation) and every unit is then
    mapped to a * y + b. For inputs of mean 0 and variance 1, keeping mean 0 and variance 1 needs

        E:    (1 - p) * 0 + p * alpha' = -b/a             ->  b = -a * p * alpha'
        Var:  a^2 ((1 - p) + p alpha'^2 - (p alpha')^2)  = 1  ->  a = ((1 - p)(1 + p alpha'^2))^-1/2

    (Klambauer et al. 2017, eq. 9; PyTorch writes b as alpha * a * p with alpha = -alpha'.)
    """
    a = 1.0 / np.sqrt((_SELU_SATURATION**2 * p + 1.0) * (1.0 - p))
    return float(a), float(-a * p * _SELU_SATURATION)


class AlphaDropoutFn(Function):
    """Alpha dropout: y = a * (m * x + (1 - m) * alpha') + b, with m ~ Bernoulli(1 - p).

    Dropping to alpha' (where SELU saturates) instead of 0, then the affine map (a, b) of
    :func:`alpha_dropout_coefficients`, keeps a zero-mean unit-variance input at mean 0 and
    variance 1, the fixed point of a self-normalising (SELU) network; plain dropout would shift
    it. ``lead`` = 0 draws one mask entry per element (``alpha_dropout``), ``lead`` = 2 one per
    (sample, channel) (``feature_alpha_dropout``). y is affine in x with slope a * m, so

        dL/dx = g * a * m
    """

    def __init__(self, p: float, lead: int = 0):
        self.p, self.lead = p, lead
        self.a, self.b = alpha_dropout_coefficients(p)

    def forward(self, x):
        shape = x.shape if self.lead == 0 else _mask_shape(x.shape, self.lead)
        keep = _draw_keep_mask(shape, self.p)                        # x.shape or (N, C, 1, ...)
        self.save_for_backward(keep)
        dtype = x.dtype.type
        y = np.where(keep, x, dtype(_SELU_SATURATION))
        y *= dtype(self.a)
        y += dtype(self.b)
        return y

    def backward(self, grad_y):
        (keep,) = self.saved
        return grad_y * keep * grad_y.dtype.type(self.a)


def _apply_maybe_inplace(fn: Function, input: Any, inplace: bool):
    """Run ``fn`` on ``input``; with ``inplace`` write into ``input`` when no graph is recorded.

    Same rule as :func:`dropout`: a leaf that requires grad raises as in PyTorch, and inside a
    recorded graph a new tensor is returned (deepnotes does not rewrite graphs in place).
    """
    if inplace:
        if input.requires_grad and input.is_leaf and is_grad_enabled():
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )
        if not (input.requires_grad and is_grad_enabled()):
            input.data[...] = fn.forward(input.data)
            input._bump_version()
            return input
    return fn(input)


def _check_feature_dims(ndim: int) -> None:
    if ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")


def _feature_dropout(input: Any, p: float, training: bool, inplace: bool, lead: int):
    """Shared tail of dropout1d/2d/3d once the shape rules have picked ``lead`` (1 or 2)."""
    if not training or p == 0.0 or input.numel() == 0:
        return input
    _check_feature_dims(input.ndim + 2 - lead)       # an unbatched input counts with its batch axis
    if p == 1.0:
        return _apply_maybe_inplace(FeatureDropoutFn(p, 0.0, lead), input, inplace)
    return _apply_maybe_inplace(FeatureDropoutFn(p, 1.0 / (1.0 - p), lead), input, inplace)


def dropout1d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a 1-D signal, as ``torch.nn.functional.dropout1d``.

    Each channel ``input[n, c, :]`` is zeroed with probability ``p`` and otherwise scaled by
    1/(1 - p) (inverted dropout per channel, :class:`FeatureDropoutFn`).

    Args:
        input: (N, C, L), or (C, L) without a batch axis.
        p: probability of zeroing a channel, in [0, 1].
        training: apply dropout (True) or return the input (False).
        inplace: as :func:`dropout`.

    Raises:
        RuntimeError: an input that is not 2-D or 3-D (also in evaluation, as PyTorch).
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "dropout1d")
    if input.ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
            "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, "
            "a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs)."
        )
    return _feature_dropout(input, p, training, inplace, lead=2 if input.ndim == 3 else 1)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a 2-D feature map, as ``torch.nn.functional.dropout2d``.

    Each channel ``input[n, c]`` is zeroed with probability ``p`` and otherwise scaled by
    1/(1 - p). PyTorch's shape rules are kept, warnings included: the input is always read as
    batched (N, C, *). A 3-D input is taken as (N, C, L) (channel-wise 1-D dropout, with
    PyTorch's warning that this will change), other inputs than 3-D/4-D warn that they are
    deprecated, and a 2-D input (N, C) drops single elements.

    Args:
        input: (N, C, H, W) (or see above).
        p: probability of zeroing a channel, in [0, 1].
        training: apply dropout (True) or return the input (False).
        inplace: as :func:`dropout`.

    Raises:
        RuntimeError: a 0-D or 1-D input in training ("Feature dropout requires at least 2
            dimensions in the input").
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "dropout2d")
    if input.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and "
            "will result in an error in a future release. To retain the behavior and silence "
            "this warning, please use dropout instead. Note that dropout2d exists to provide "
            "channel-wise dropout on inputs with 2 spatial dimensions, a channel dimension, and "
            "an optional batch dimension (i.e. 3D or 4D inputs).",
            stacklevel=2,
        )
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    return _feature_dropout(input, p, training, inplace, lead=2)


def dropout3d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of a 3-D volume, as ``torch.nn.functional.dropout3d``.

    Each channel ``input[n, c]`` is zeroed with probability ``p`` and otherwise scaled by
    1/(1 - p). A 5-D input is (N, C, D, H, W); any other is read as unbatched with its first axis
    as the channel axis ((C, D, H, W) for 4-D), and inputs that are not 4-D or 5-D get PyTorch's
    deprecation warning.

    Raises:
        RuntimeError: a 0-D input in training ("Feature dropout requires at least 2 dimensions").
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "dropout3d")
    if input.ndim not in (4, 5):
        warnings.warn(
            f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and "
            "will result in an error in a future release. To retain the behavior and silence "
            "this warning, please use dropout instead. Note that dropout3d exists to provide "
            "channel-wise dropout on inputs with 3 spatial dimensions, a channel dimension, and "
            "an optional batch dimension (i.e. 4D or 5D inputs).",
            stacklevel=2,
        )
    return _feature_dropout(input, p, training, inplace, lead=2 if input.ndim == 5 else 1)


def _alpha_dropout(input: Any, p: float, training: bool, inplace: bool, lead: int):
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if lead:
        _check_feature_dims(input.ndim)
    if p == 1.0:  # PyTorch multiplies by 0 here (not by the limit of the affine map)
        return _apply_maybe_inplace(ScaleFn(0.0), input, inplace)
    return _apply_maybe_inplace(AlphaDropoutFn(p, lead), input, inplace)


def alpha_dropout(input: Any, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Alpha dropout for SELU networks, as ``torch.nn.functional.alpha_dropout``.

    In training each element is set with probability ``p`` to SELU's saturation value
    -lambda*alpha = -1.7581 instead of 0, and the result is mapped to a * y + b so that an input of
    mean 0 and variance 1 keeps that mean and variance (:class:`AlphaDropoutFn`). Note PyTorch's
    default ``training=False`` for this function. ``p = 1`` returns zeros, as PyTorch.

    Args:
        input: a floating tensor of any shape.
        p: probability of dropping an element, in [0, 1].
        training: apply alpha dropout (True) or return the input (False, the default).
        inplace: as :func:`dropout`.

    Raises:
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "alpha_dropout")
    return _alpha_dropout(input, p, training, inplace, lead=0)


def feature_alpha_dropout(input: Any, p: float = 0.5, training: bool = False,
                          inplace: bool = False):
    """Channel-wise alpha dropout, as ``torch.nn.functional.feature_alpha_dropout``.

    As :func:`alpha_dropout`, with one draw per channel of (N, C, *): a dropped channel becomes
    the constant b + a * alpha' everywhere.

    Raises:
        RuntimeError: an input with fewer than 2 dimensions in training.
        ValueError: p outside [0, 1].
    """
    p = _check_dropout_args(input, p, "feature_alpha_dropout")
    return _alpha_dropout(input, p, training, inplace, lead=2)
