"""Compare a deepnotes Module with a torch Module holding the same weights, forward and backward.

``compare_with_torch_module`` copies the torch module's state_dict into ours (float64), runs both on
the same float64 inputs, compares every output, back-propagates one random upstream gradient per
output, and compares the gradient of every input and of every parameter (by name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

import deepnotes as dn


def load_torch_weights(ours: Any, theirs: torch.nn.Module) -> None:
    """Copy ``theirs``' state_dict into ``ours`` by name (strict: the keys must be equal)."""
    state = {k: dn.tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)


def _as_list(result: Any) -> list:
    if isinstance(result, tuple | list):
        return list(result)
    return [result]


def compare_with_torch_module(
    ours: Any,
    theirs: torch.nn.Module,
    inputs: Sequence[Any],
    *,
    call: Callable[[Any, list], Any] | None = None,
    atol: float = 1e-10,
    rtol: float = 1e-7,
    seed: int = 0,
) -> list:
    """Run ``call(module, tensors)`` (default ``module(*tensors)``) in both frameworks and compare.

    ``inputs``: float arrays become float64 tensors that require grad; bool/int arrays become
    constant tensors; anything else (None) passes through. Returns our outputs.
    """
    theirs = theirs.double()
    ours.double()
    load_torch_weights(ours, theirs)
    call = call or (lambda module, args: module(*args))

    def build(make: Callable) -> list:
        return [make(a, a.dtype.kind == "f") if isinstance(a, np.ndarray) else a for a in inputs]

    ours_in = build(lambda a, f: dn.tensor(a, requires_grad=f))
    theirs_in = build(lambda a, f: torch.tensor(a, requires_grad=f))
    ours_out = _as_list(call(ours, ours_in))
    theirs_out = _as_list(call(theirs, theirs_in))
    assert len(ours_out) == len(theirs_out)
    rng = np.random.default_rng(seed)
    ours_total, theirs_total = None, None
    for k, (o, t) in enumerate(zip(ours_out, theirs_out)):
        if t is None:
            assert o is None, f"output {k}: torch returned None, we returned {type(o)}"
            continue
        t_np = t.detach().numpy()
        assert tuple(o.shape) == tuple(t_np.shape), f"output {k}: {o.shape} vs torch {t_np.shape}"
        np.testing.assert_allclose(o.detach().numpy(), t_np, atol=atol, rtol=rtol,
                                   err_msg=f"forward output {k} differs from torch")
        upstream = rng.standard_normal(t_np.shape)
        term_o = (o * dn.tensor(upstream)).sum()
        term_t = (t * torch.tensor(upstream)).sum()
        ours_total = term_o if ours_total is None else ours_total + term_o
        theirs_total = term_t if theirs_total is None else theirs_total + term_t
    ours_total.backward()
    theirs_total.backward()
    for i, (o, t) in enumerate(zip(ours_in, theirs_in)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            actual = np.zeros(t.shape) if o.grad is None else o.grad.numpy()
            np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol,
                                       err_msg=f"gradient of input {i} differs from torch")
    ours_params = dict(ours.named_parameters())
    theirs_params = dict(theirs.named_parameters())
    assert list(ours_params) == list(theirs_params), "parameter names differ from torch"
    for name, t in theirs_params.items():
        o = ours_params[name]
        expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        actual = np.zeros(t.shape) if o.grad is None else o.grad.numpy()
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of parameter {name} differs from torch")
    return ours_out


def compare_float32_forward(ours: Any, theirs: torch.nn.Module, inputs: Sequence[Any], *,
                            call: Callable[[Any, list], Any] | None = None,
                            atol: float = 1e-5) -> None:
    """float32 forward of both modules (same weights) agree to ``atol``."""
    theirs = theirs.float()
    ours.float()
    load_torch_weights(ours, theirs)
    call = call or (lambda module, args: module(*args))

    def build(make: Callable) -> list:
        return [make(a.astype(np.float32) if a.dtype.kind == "f" else a)
                if isinstance(a, np.ndarray) else a for a in inputs]

    with torch.no_grad():
        theirs_out = _as_list(call(theirs, build(torch.tensor)))
    ours_out = _as_list(call(ours, build(dn.tensor)))
    for k, (o, t) in enumerate(zip(ours_out, theirs_out)):
        if t is None:
            continue
        assert o.dtype == np.float32, f"float32 output {k} has dtype {o.dtype}"
        np.testing.assert_allclose(o.detach().numpy(), t.numpy(), atol=atol, rtol=1e-4,
                                   err_msg=f"float32 forward output {k} differs from torch")
