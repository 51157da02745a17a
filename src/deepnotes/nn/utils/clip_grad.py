"""Gradient clipping, as ``torch.nn.utils.clip_grad``: ``clip_grad_norm_``, ``clip_grad_value_``,
``get_total_norm``, ``clip_grads_with_norm_``.

Exploding gradients (notes 002/006: a product of many Jacobians with norms above 1 grows
exponentially with depth or sequence length) make one SGD step jump far out of the region where
the loss was small. Clipping bounds the step:

* by norm -- treat all gradients g_1 ... g_k as one long vector and measure its p-norm::

      n_i   = ||g_i||_p                     (each gradient's own norm)
      total = ||(n_1, ..., n_k)||_p          (= ||concat(g_1, ..., g_k)||_p for finite p)
      g_i  <- g_i * min(max_norm / (total + 1e-6), 1)

  The direction of the update is kept, only its length shrinks. p = inf uses max |g|.
* by value -- clamp every component to [-clip_value, clip_value] (changes the direction).

Typical use, between ``backward()`` and ``step()``::

    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()

Gradients are scaled in place (every alias of ``p.grad`` sees it), outside autograd.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable

import numpy as np

from ...backend import get_default_dtype
from ...tensor import Tensor

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_",
           "get_total_norm"]


def _as_list(tensors: Tensor | Iterable[Tensor], name: str) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        return [tensors]
    if not isinstance(tensors, Iterable):
        raise TypeError(f"{name} must be a Tensor or an iterable of Tensors, got "
                        f"{type(tensors).__name__}")
    result = list(tensors)
    for i, t in enumerate(result):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must contain Tensors, got {type(t).__name__} at index {i}")
    return result


def _vector_norm(x: np.ndarray, p: float) -> np.ndarray:
    """``torch.linalg.vector_norm(x, p)`` of a flattened array, in x's dtype.

    p = inf: max |x|;  p = -inf: min |x|;  p = 0: number of non-zeros;  else (sum |x|^p)^(1/p).
    """
    a = np.abs(x.reshape(-1))
    if p == np.inf:
        return a.max() if a.size else np.zeros((), x.dtype)
    if p == -np.inf:
        return a.min() if a.size else np.full((), np.inf, x.dtype)
    if p == 0:
        return np.asarray(np.count_nonzero(a), dtype=x.dtype)
    if p == 1:
        return a.sum()
    if p == 2:
        return np.sqrt(np.dot(a, a))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return (a ** x.dtype.type(p)).sum() ** x.dtype.type(1 / p)


def get_total_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """The p-norm of ``tensors`` viewed as one concatenated vector (``torch.nn.utils``).

    Computed as the norm of the vector of per-tensor norms, which equals the norm of the
    concatenation for every p (for p = 0 it counts the tensors that have a non-zero, as PyTorch).

    Args:
        tensors: a Tensor or an iterable of Tensors (e.g. the gradients).
        norm_type: p of the p-norm; ``float("inf")`` or ``"inf"`` for the max-norm.
        error_if_nonfinite: raise a RuntimeError if the total norm is nan or +-inf.
        foreach: accepted for PyTorch compatibility (no effect).

    Returns:
        A 0-d Tensor (float32 ``0.0`` when ``tensors`` is empty, as PyTorch).
    """
    tensors = _as_list(tensors, "tensors")
    norm_type = float(norm_type)
    if not tensors:
        return Tensor._wrap(np.zeros((), dtype=get_default_dtype()))
    dtype = np.result_type(*(t.data.dtype for t in tensors))
    if dtype.kind != "f":
        raise RuntimeError(f"get_total_norm: expected floating-point tensors, got dtype {dtype}")
    norms = np.stack([_vector_norm(t.data, norm_type).astype(dtype) for t in tensors])  # (k,)
    total = np.asarray(_vector_norm(norms, norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite, so it cannot be clipped. To disable this error and scale the gradients "
            f"by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor._wrap(total)


def clip_grads_with_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                          total_norm: Tensor, foreach: bool | None = None) -> None:
    """Scale every ``p.grad`` in place by ``min(max_norm / (total_norm + 1e-6), 1)``.

    The multiplication happens even when the factor is 1 (a no-op), and with a nan/inf
    ``total_norm`` the gradients become nan, as in PyTorch.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is scaled.
        max_norm: the largest allowed total norm.
        total_norm: the precomputed total norm (e.g. from :func:`get_total_norm`).
        foreach: accepted for PyTorch compatibility (no effect).
    """
    parameters = _as_list(parameters, "parameters")
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    if not grads:
        return
    total = total_norm.data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.minimum(total.dtype.type(max_norm) / (total + total.dtype.type(1e-6)), 1.0)
    for g in grads:
        factor = coef.astype(g.data.dtype)  # as torch's mul_: the grad keeps its dtype
        if g.data.flags.writeable:
            np.multiply(g.data, factor, out=g.data)
        else:  # e.g. a read-only view set by the user: replace it
            g.data = g.data * factor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Rescale the gradients so that their total ``norm_type``-norm is at most ``max_norm``.

    ``total = ||(||g_1||_p, ..., ||g_k||_p)||_p`` over the parameters that have a ``.grad``, then
    ``g_i <- g_i * min(max_norm / (total + 1e-6), 1)`` in place (see the module docstring).

    Args:
        parameters: a Tensor or an iterable of Tensors (``model.parameters()``).
        max_norm: the largest allowed total norm.
        norm_type: p of the p-norm; ``float("inf")`` or ``"inf"`` for the max-norm. Default 2.
        error_if_nonfinite: raise a RuntimeError (and leave the gradients alone) if the total
            norm is nan or +-inf. Default False: the gradients are scaled by the non-finite norm.
        foreach: accepted for PyTorch compatibility (no effect).

    Returns:
        The total norm of the gradients before clipping, a 0-d Tensor.

    Example:
        >>> loss.backward()
        >>> nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> optimizer.step()
    """
    is_generator = isinstance(parameters, types.GeneratorType)
    parameters = _as_list(parameters, "parameters")
    if is_generator and not parameters:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      stacklevel=2)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters: Tensor | Iterable[Tensor], max_norm: float,
                   norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (a FutureWarning, as in PyTorch)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`torch.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient component to ``[-clip_value, clip_value]``, in place.

    Parameters without a gradient are skipped (with none at all it does nothing, where
    torch 2.13 raises an internal error).

    Args:
        parameters: a Tensor or an iterable of Tensors (``model.parameters()``).
        clip_value: the largest allowed absolute value of a gradient component.
        foreach: accepted for PyTorch compatibility (no effect).
    """
    parameters = _as_list(parameters, "parameters")
    clip_value = float(clip_value)
    for p in parameters:
        g = p.grad
        if g is None:
            continue
        low, high = np.asarray(-clip_value).astype(g.data.dtype), \
            np.asarray(clip_value).astype(g.data.dtype)
        if g.data.flags.writeable:
            np.clip(g.data, low, high, out=g.data)
        else:
            g.data = np.clip(g.data, low, high)
