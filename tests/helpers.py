"""The shared oracle: run an op in deepnotes and in PyTorch on the same arrays and compare.

``check_against_torch`` builds both frameworks' tensors from the same float64 arrays, compares the
forward outputs, then back-propagates one *random* upstream gradient through both and compares the
gradient of every differentiable input, naming the one that differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

import deepnotes as dn
from deepnotes.autograd import gradcheck

torch.set_default_dtype(torch.float32)


def _torch_fn(name_or_fn: str | Callable) -> Callable:
    if callable(name_or_fn):
        return name_or_fn
    for namespace in (torch.nn.functional, torch):
        if hasattr(namespace, name_or_fn):
            return getattr(namespace, name_or_fn)
    raise AttributeError(f"torch has no function {name_or_fn!r}")


def _is_float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _outputs(result: Any) -> list:
    if isinstance(result, tuple | list):
        return list(result)
    return [result]


def check_against_torch(
    ours: Callable,
    theirs: str | Callable,
    inputs: Sequence[Any],
    *,
    atol: float = 1e-10,
    rtol: float = 1e-7,
    grad: bool = True,
    float32: bool = True,
    float32_atol: float = 1e-5,
    names: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Compare ``ours(*inputs, **kwargs)`` with torch's, forward and backward.

    Float ndarrays in ``inputs`` become tensors that require grad (in float64); anything else (ints,
    None, integer arrays such as class targets) passes through unchanged, as tensors when it is an
    array. Returns our output.
    """
    torch_fn = _torch_fn(theirs)
    names = list(names) if names else [f"input {i}" for i in range(len(inputs))]

    def build(convert: Callable, dtype: Any, requires_grad: bool) -> list:
        built = []
        for value in inputs:
            if _is_float_array(value):
                built.append(convert(value.astype(dtype), requires_grad))
            elif isinstance(value, np.ndarray):
                built.append(convert(value, False))
            else:
                built.append(value)
        return built

    ours_in = build(lambda a, rg: dn.tensor(a, requires_grad=rg), np.float64, grad)
    theirs_in = build(lambda a, rg: torch.tensor(a, requires_grad=rg), np.float64, grad)
    ours_out = _outputs(ours(*ours_in, **kwargs))
    theirs_out = _outputs(torch_fn(*theirs_in, **kwargs))
    assert len(ours_out) == len(theirs_out), "different number of outputs"
    for k, (o, t) in enumerate(zip(ours_out, theirs_out)):
        t_np = t.detach().numpy()
        assert tuple(o.shape) == tuple(t_np.shape), (
            f"output {k}: shape {o.shape} vs torch {t_np.shape}"
        )
        np.testing.assert_allclose(o.data, t_np, atol=atol, rtol=rtol,
                                   err_msg=f"forward output {k} differs from torch")

    if grad:
        rng = np.random.default_rng(1234)
        ours_terms, theirs_terms = [], []
        for o, t in zip(ours_out, theirs_out):
            if t.dtype.is_floating_point and t.requires_grad:
                upstream = rng.standard_normal(t.shape)
                ours_terms.append((o * dn.tensor(upstream)).sum())
                theirs_terms.append((t * torch.tensor(upstream)).sum())
        if ours_terms:
            total_ours = ours_terms[0]
            for term in ours_terms[1:]:
                total_ours = total_ours + term
            total_ours.backward()
            sum(theirs_terms).backward()
            for name, o, t in zip(names, ours_in, theirs_in):
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
                    actual = np.zeros(t.shape) if o.grad is None else o.grad.data
                    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol,
                                               err_msg=f"gradient of {name} differs from torch")

    if float32:
        ours32 = _outputs(ours(*build(lambda a, rg: dn.tensor(a), np.float32, False), **kwargs))
        theirs32 = _outputs(torch_fn(*build(lambda a, rg: torch.tensor(a), np.float32, False),
                                     **kwargs))
        for k, (o, t) in enumerate(zip(ours32, theirs32)):
            t_np = t.detach().numpy()
            assert o.dtype == t_np.dtype, (
                f"float32 output {k}: dtype {o.dtype} vs torch {t_np.dtype}"
            )
            np.testing.assert_allclose(o.data, t_np, atol=float32_atol, rtol=1e-4,
                                       err_msg=f"float32 forward output {k} differs from torch")
    return ours_out[0] if len(ours_out) == 1 else ours_out


def check_gradients(fn: Callable, *arrays: np.ndarray, **kwargs: Any) -> None:
    """Finite-difference check of ``fn(*tensors, **kwargs)`` (no torch involved)."""
    gradcheck(lambda *ts: fn(*ts, **kwargs), *arrays)
