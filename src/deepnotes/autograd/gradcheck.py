"""Finite-difference checks of analytic gradients.

For a scalar function L(x), the central difference

    dL/dx_i  ~=  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

has error O(eps^2). In float64 with eps = 1e-6 it agrees with a correct analytic gradient to about
1e-8 relative, which is how every op without a PyTorch counterpart is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def numerical_grad(
    func: Callable[..., Any], inputs: Sequence[np.ndarray], index: int, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of ``sum(func(*inputs) * 1)`` with respect to ``inputs[index]``.

    ``func`` takes and returns ndarrays (or anything ``np.asarray`` accepts); ``inputs`` are
    float64.
    """
    arrays = [np.array(a, dtype=np.float64, copy=True) for a in inputs]
    target = arrays[index]
    grad = np.zeros_like(target)
    flat, flat_grad = target.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = float(np.sum(np.asarray(func(*arrays))))
        flat[i] = original - eps
        minus = float(np.sum(np.asarray(func(*arrays))))
        flat[i] = original
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(
    func: Callable[..., Any],
    *inputs: np.ndarray,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Compare autograd's gradients of ``func`` with central differences; raise on a mismatch.

    ``func`` takes Tensors and returns a Tensor. A random upstream gradient ``w`` (fixed by
    ``seed``) is used, i.e. the checked scalar is ``sum(func(*inputs) * w)``, so that errors cannot
    cancel out
    the way they can under a plain sum. Returns True when every input's gradient matches.
    """
    from ..tensor import Tensor

    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    out = func(*tensors)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(weights)).sum().backward()

    def scalar(*arrays: np.ndarray) -> float:
        result = func(*[Tensor(a) for a in arrays])
        return float(np.sum(result.data * weights))

    for i, t in enumerate(tensors):
        expected = numerical_grad(scalar, [x.data for x in tensors], i, eps)
        actual = np.zeros_like(t.data) if t.grad is None else t.grad.data
        if not np.allclose(actual, expected, atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(actual - expected)))
            raise AssertionError(
                f"gradcheck: gradient of input {i} (shape {t.shape}) differs from finite "
                f"differences by up to {worst:.3e} (atol={atol}, rtol={rtol})"
            )
    return True
