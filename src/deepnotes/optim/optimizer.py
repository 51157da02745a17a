"""``Optimizer``: parameter groups, per-parameter state, and PyTorch's state_dict format.

An optimiser holds ``param_groups``, a list of dicts each with its own ``"params"`` and options
(``lr``, ``momentum``...), and ``state``, a dict from parameter to its per-parameter buffers
(momentum, Adam's moments). ``step()`` updates each parameter in place through ``p.data`` with
NumPy: an update is not part of any graph, so no autograd is involved (and it is fast).
"""

from __future__ import annotations

import numbers
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from copy import deepcopy
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor


class _RequiredParameter:
    """Singleton for a default that every parameter group must give explicitly."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def check_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")


def check_lr(lr: Any) -> None:
    """PyTorch's check (``Invalid learning rate: -0.1``), NaN rejected as well."""
    check_number(lr, "lr")
    if not lr >= 0.0:  # also catches NaN
        raise ValueError(f"Invalid learning rate: {lr} (expected lr >= 0)")


def check_non_negative(value: Any, what: str) -> None:
    """``Invalid momentum value: -1`` / ``Invalid weight_decay value: -1`` / ``Invalid epsilon
    value: -1``, NaN rejected as well."""
    check_number(value, what)
    if not value >= 0.0:
        raise ValueError(f"Invalid {what} value: {value} (expected {what} >= 0)")


class Optimizer:
    """Base class of the optimisers (as ``torch.optim.Optimizer``).

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs (``model.named_parameters()``)
            or of dicts, each dict a parameter group with ``"params"`` and optional per-group
            options that override ``defaults``.
        defaults: the default options of every group.

    Example::

        opt = optim.SGD([{"params": model.features.parameters()},
                         {"params": model.classifier.parameters(), "lr": 1e-2}],
                        lr=1e-3, momentum=0.9)
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. unfreezing layers later)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names
        param_group["params"] = params
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + type(param).__name__)
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error", stacklevel=3)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if seen & set(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (default, cheaper) or to zeros.

        With None, a parameter that gets no gradient in the next backward is skipped by ``step``
        (a zero gradient would still move it through momentum or weight decay).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. ``closure`` re-evaluates the loss (it runs
        with gradients enabled) and its value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p, {})
                self._update(p, p.grad.data, state, group)
                if state:  # an optimiser without buffers (plain SGD) keeps no state, as PyTorch
                    self.state[p] = state
                p._version += 1
        return loss

    def _update(self, param: Tensor, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        """Update ``param.data`` in place from its gradient; subclasses implement the rule."""
        raise NotImplementedError

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state in PyTorch's format.

        ``{"state": {index: {"momentum_buffer": Tensor, ...}}, "param_groups": [{"lr": ...,
        "params": [index, ...]}, ...]}``: parameters are numbered in group order, so the dict holds
        no reference to the model's tensors. State values are the live tensors (no copy).
        """
        mapping: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                mapping.setdefault(id(p), len(mapping))
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (ours, or one with NumPy arrays or torch
        tensors as values). Floating-point state is copied and cast to its parameter's dtype;
        ``step`` counters are kept as they are. Group options (lr...) come from the saved groups.
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups: "
                             f"{len(saved_groups)} in the state dict, {len(groups)} in the "
                             "optimizer")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = {saved: p for g, s in zip(groups, saved_groups)
                  for saved, p in zip(s["params"], g["params"])}
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if isinstance(key, str) and key.isdigit() and int(key) in id_map:
                key = int(key)  # keys that went through JSON
            if key in id_map:
                param = id_map[key]
                state[param] = {name: _cast_state(param, name, v) for name, v in value.items()}
            else:
                state[key] = value
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state = state
        self.param_groups = saved_groups

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    text += f"    {key}: {group[key]}\n"
        return text + ")"


# 0-d bookkeeping kept in the step counters' dtype (``scalar_dtype``), not the parameter's: the
# step count, and NAdam's running product of momenta. (PyTorch casts ``mu_product`` to the
# parameter's dtype on load, so its NAdam does not resume bit-identically; ours does.)
_SCALAR_STATE = ("step", "mu_product")


def _cast_state(param: Tensor, name: str, value: Any) -> Any:
    """A private copy of one state entry as a deepnotes Tensor; floating state (but not the
    scalar bookkeeping of ``_SCALAR_STATE``) takes the parameter's dtype."""
    if isinstance(value, Tensor):
        array = value.data
    elif isinstance(value, np.ndarray) or (hasattr(value, "__array__") and hasattr(value, "shape")):
        array = np.asarray(value)
    elif name == "step" and isinstance(value, numbers.Real):
        array = np.asarray(float(value), dtype=np.float32)
    else:
        return deepcopy(value)
    if name not in _SCALAR_STATE and array.dtype.kind == "f":
        array = array.astype(param.data.dtype)
    return Tensor._wrap(np.array(array, copy=True))


def check_betas(betas: Any) -> tuple[float, float]:
    """A pair (beta1, beta2), each in [0, 1): ``Invalid beta parameter at index 1: 1.0``."""
    betas = tuple(betas)
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas}")
    for index, beta in enumerate(betas):
        check_number(beta, f"betas[{index}]")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta} (expected a "
                             "value in [0, 1))")
    return betas


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start <- start + weight * (end - start), in place, rounded as PyTorch's ``lerp_``.

    The exponential moving average m <- beta m + (1 - beta) g is ``lerp_(m, g, 1 - beta)``.
    PyTorch evaluates it from whichever end is nearer, ``end - (end - start) * (1 - weight)``
    when weight >= 0.5, which is more accurate there; doing the same keeps us bit-close to it.
    """
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def scalar_dtype() -> np.dtype:
    """dtype of the ``step`` counters: float64 under a float64 default dtype, else float32
    (PyTorch's rule)."""
    from .. import backend

    return np.dtype(np.float64) if backend.get_default_dtype() == np.float64 \
        else np.dtype(np.float32)

