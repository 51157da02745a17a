"""deepnotes.analysis.gradcheck: passes for correct gradients, catches wrong backward passes."""

from __future__ import annotations

import pytest

import deepnotes as dn
import deepnotes.nn.functional as F  # noqa: N812
from deepnotes.analysis import gradcheck
from deepnotes.autograd import Function


class MatmulFn(Function):
    """y = a @ b; backward right (transposes) unless ``forget_transpose``."""

    def __init__(self, forget_transpose: bool = False):
        self.forget_transpose = forget_transpose

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, grad_y):
        a, b = self.saved
        if self.forget_transpose:                 # a classic bug: b instead of b^T
            return grad_y @ b, a.T @ grad_y
        return grad_y @ b.T, a.T @ grad_y


class CubeFn(Function):
    """y = x^3 with a backward of 3 x^2, or (wrongly) 3 x^2 + 1e-3."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset

    def forward(self, x):
        self.save_for_backward(x)
        return x**3

    def backward(self, grad_y):
        (x,) = self.saved
        return grad_y * (3 * x**2 + self.offset)


def test_passes_for_correct_ops(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    assert gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), (x, w))
    assert gradcheck(lambda x: F.log_softmax(x.tanh() * 2, dim=1), rng.standard_normal((3, 5)))
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    assert gradcheck(lambda a, b: MatmulFn()(a, b), [dn.tensor(a), b])     # Tensors accepted
    assert gradcheck(lambda x: CubeFn()(x), rng.standard_normal(7))


def test_fails_for_a_wrong_backward(rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    with pytest.raises(AssertionError, match="gradient of input 0"):
        gradcheck(lambda a, b: MatmulFn(forget_transpose=True)(a, b), (a, b))
    assert gradcheck(lambda a, b: MatmulFn(forget_transpose=True)(a, b), (a, b),
                     raise_exception=False) is False
    x = rng.standard_normal(5)
    with pytest.raises(AssertionError, match="differs from finite differences"):
        gradcheck(lambda x: CubeFn(offset=1e-3)(x), x)     # off by 1e-3 * |upstream|: caught
    # the tolerances are the caller's: a loose enough atol accepts the small error
    assert gradcheck(lambda x: CubeFn(offset=1e-3)(x), x, atol=1e-2)


def test_is_the_autograd_implementation(rng):
    from deepnotes.autograd import gradcheck as autograd_gradcheck

    x = rng.standard_normal((2, 4))
    fn = lambda x: (x * x).sum(dim=1)  # noqa: E731
    assert gradcheck(fn, x) == autograd_gradcheck(fn, x) is True
    assert dn.analysis.gradcheck is gradcheck
