"""``deepnotes.analysis.gradcheck``: the public finite-difference check of an op's gradients.

A thin wrapper, with PyTorch's calling convention (``torch.autograd.gradcheck(fn, inputs)``), over
the one implementation in :mod:`deepnotes.autograd.gradcheck`; see there for the method (central
differences in float64 against a random upstream gradient). It is how ops that PyTorch lacks
(the notes' variants, locally connected layers, ...) are tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..autograd import gradcheck as _autograd_gradcheck
from ..tensor import Tensor


def gradcheck(fn: Callable[..., Tensor], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, *, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the analytic gradients of ``fn`` against central finite differences, in float64.

    With a fixed random upstream gradient w, the checked scalar is L = sum(fn(*inputs) * w);
    for every input x_i and every element j,

        dL/dx_ij (autograd)  ~=  (L(x_ij + eps) - L(x_ij - eps)) / (2 eps),

    within ``atol + rtol * |finite difference|`` (numpy's ``allclose``).

    Args:
        fn: takes Tensors (as many as ``inputs``) and returns a Tensor.
        inputs: one array/Tensor or a sequence of them; they are copied to float64 Tensors
            that require grad.
        eps: the finite-difference step.
        atol, rtol: tolerances.
        seed: seeds the random upstream gradient.
        raise_exception: raise an AssertionError naming the input that fails (default), or
            return False.

    Returns:
        True when every input's gradient matches.

    Example::

        from deepnotes.analysis import gradcheck
        gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x_array, w_array))
    """
    if isinstance(inputs, Tensor | np.ndarray) or not isinstance(inputs, Sequence):
        inputs = (inputs,)
    arrays = [value.data if isinstance(value, Tensor) else np.asarray(value)
              for value in inputs]
    try:
        return _autograd_gradcheck(fn, *arrays, eps=eps, atol=atol, rtol=rtol, seed=seed)
    except AssertionError:
        if raise_exception:
            raise
        return False
