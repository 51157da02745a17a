"""Weight normalisation as ``torch.nn.utils.weight_norm`` (Salimans & Kingma 2016; notes 004 Q10).

A weight w is re-parametrised by a direction v and a length g,

    w = g * v / ||v||          (one norm per slice along ``dim``: per output unit for dim = 0)

so that gradient descent learns the length of each unit's weight vector separately from its
direction. ``weight_norm(module)`` replaces the parameter ``weight`` by two parameters
``weight_g`` (shape of the norm, e.g. (out, 1) for a Linear) and ``weight_v`` (shape of the
weight), initialised so that w is unchanged, and registers a forward pre-hook that recomputes
``module.weight`` (a plain tensor now, a function of g and v) before every forward. State_dict
keys and shapes are PyTorch's (``bias, weight_g, weight_v`` for a Linear).

The recomputation is one fused node, ``ops.norm.WeightNormFn``, whose docstring derives the
gradients: dL/dg = u . G and dL/dv = (g / ||v||) (G - u (u . G)), u = v / ||v||.

As in PyTorch, ``module.weight`` is then a node of the autograd graph, so ``copy.deepcopy`` of
the module raises (only leaves can be deep-copied); copy its ``state_dict`` instead.

PyTorch now recommends ``torch.nn.utils.parametrizations.weight_norm`` (keys
``parametrizations.weight.original0/1``); this is the classic form, which the notes describe.

    layer = weight_norm(nn.Linear(20, 40))      # layer.weight_g: (40, 1), layer.weight_v: (40, 20)
    y = layer(x)                                # weight recomputed from g and v first
    remove_weight_norm(layer)                   # back to one Parameter ``weight``
"""

from __future__ import annotations

from typing import Any

from ...ops.norm import _weight_norm, norm_except_dim
from ..module import Module
from ..parameter import Parameter

__all__ = ["WeightNorm", "remove_weight_norm", "weight_norm"]


class WeightNorm:
    """The forward pre-hook: recomputes ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    def __init__(self, name: str, dim: int):
        self.name = name
        self.dim = dim

    def compute_weight(self, module: Module) -> Any:
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return _weight_norm(v, g, self.dim)

    @staticmethod
    def apply(module: Module, name: str, dim: int | None) -> WeightNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter "
                                   f"{name}")
        if dim is None:
            dim = -1  # PyTorch's encoding of "one norm over the whole tensor"
        weight = getattr(module, name)
        if not isinstance(weight, Parameter):
            raise TypeError(f"weight_norm: '{name}' must be a Parameter of the module, got "
                            f"{type(weight).__name__}")
        if dim != -1 and not -weight.ndim <= dim < weight.ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-weight.ndim}, {weight.ndim - 1}], but got {dim})")
        fn = WeightNorm(name, dim)
        del module._parameters[name]
        # g = ||w|| and v = w reproduce w exactly: g * v / ||v|| = w
        module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, dim).data))
        module.register_parameter(name + "_v", Parameter(weight.data))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module: Module) -> None:
        weight = self.compute_weight(module).detach()
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight.data))

    def __call__(self, module: Module, inputs: Any) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Re-parametrise ``module.<name>`` as g * v / ||v||, as ``torch.nn.utils.weight_norm``.

    Args:
        module: a module holding the parameter (Linear, Conv2d, ...).
        name: the parameter's name (default "weight").
        dim: the axis kept by the norm, i.e. one g per slice along it (default 0: one per output
            unit). None (or -1, PyTorch's encoding of it) takes one norm over the whole tensor.

    Returns:
        The same module, with parameters ``<name>_g`` and ``<name>_v`` in place of ``<name>``.

    Raises:
        RuntimeError: the parameter already has weight normalisation.
        AttributeError: the module has no attribute ``name``.
        IndexError: dim out of range.
    """
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`weight_norm`: ``<name>`` becomes one Parameter again, with the current g v/||v||.

    Raises:
        ValueError: the module has no weight normalisation of ``name``.
    """
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, WeightNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
