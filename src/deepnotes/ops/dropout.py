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
"""

from __future__ import annotations

import numbers
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
            input._version += 1
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
