"""Magnitude pruning with masks, as ``torch.nn.utils.prune`` (notes 000, interview question 17:
"at every iteration the coefficients which are becoming zero or close to zero are checked and
removed from being involved in further training").

How the mask stays applied through training (PyTorch's design, with its names): pruning
``module.weight`` replaces the parameter by

* ``weight_orig``: a Parameter holding the original values (what the optimiser updates),
* ``weight_mask``: a buffer of 0/1 (saved in the state_dict, so keys are PyTorch's),
* ``weight``: a plain attribute recomputed as ``weight_orig * weight_mask`` by a forward pre-hook
  before every forward.

Because ``weight`` is a product with the mask in the graph, dL/d weight_orig = mask * dL/dweight:
a pruned entry gets no gradient, and whatever an optimiser does to its ``weight_orig`` value
(momentum, weight decay), the weight the layer uses stays exactly zero. ``remove`` makes it
permanent (``weight`` becomes a Parameter again, with the zeros in it).

Which entries go (the same choices as PyTorch, tested mask for mask against it):

* ``l1_unstructured``: the ``amount`` smallest |w| among the entries not yet pruned;
* ``ln_structured``: whole slices along ``dim`` (output channels for dim=0) with the smallest
  L_n norm;
* ``random_unstructured``: random entries (drawn from ``deepnotes.random``);
* ``global_unstructured``: the smallest |w| over several tensors together (one threshold for the
  whole network, so layers with many small weights lose more);
* ``amount``: a float in [0, 1] (a fraction, rounded as Python's ``round`` of amount * count) or
  an int (that many). Pruning a tensor again prunes ``amount`` of its *remaining* entries.

``prune(model, amount)`` applies one of them to every Conv/Linear weight and reports the
non-zero parameter count and, given an input size, the MACs before and after (counted with
non-zero weights only: what a sparse kernel would compute; a dense kernel does the same work).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor

__all__ = ["PruneReport", "custom_from_mask", "global_unstructured", "is_pruned",
           "l1_unstructured", "ln_structured", "prune", "random_unstructured", "remove"]

_HOOKS = "_prune_hooks"   # {name: RemovableHandle} on a pruned module


def _check_amount(amount: Any) -> None:
    """PyTorch's check: a float in [0, 1] or a non-negative int."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise TypeError(f"Invalid type for amount: {amount!r}. Must be int or float.")
    if (isinstance(amount, (int, np.integer)) and amount < 0) or (
            isinstance(amount, (float, np.floating)) and not 0.0 <= amount <= 1.0):
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a "
                         "non-negative integer")


def _count(amount: Any, size: int) -> int:
    """How many of ``size`` entries to prune (PyTorch's _compute_nparams_toprune)."""
    if isinstance(amount, (int, np.integer)):
        if amount > size:
            raise ValueError(f"amount={amount} should be smaller than the number of parameters "
                             f"to prune={size}")
        return int(amount)
    return round(float(amount) * size)


def is_pruned(module: Module) -> bool:
    """True when some tensor of ``module`` or of a submodule carries a pruning mask."""
    return any(getattr(m, _HOOKS, None) for m in module.modules())


def _current(module: Module, name: str) -> np.ndarray:
    value = getattr(module, name, None)
    if not isinstance(value, Tensor):
        raise AttributeError(f"Parameter '{name}' of module {type(module).__name__} has to be "
                             "pruned, but the module has no tensor of that name")
    return value.data


def _apply_mask(module: Module, name: str, mask: np.ndarray) -> Module:
    """Combine ``mask`` with an existing one and (first time) re-register the parameter as
    name_orig + name_mask + the pre-hook that recomputes ``name`` (PyTorch's layout)."""
    hooks: dict[str, Any] = module.__dict__.setdefault(_HOOKS, {})
    if name in hooks:
        old = module._buffers[name + "_mask"]
        old.data[...] = old.data * mask
        old._version += 1
    else:
        param = module._parameters.get(name)
        if not isinstance(param, Parameter):
            raise AttributeError(f"Parameter '{name}' of module {type(module).__name__} has to "
                                 "be a Parameter to be pruned")
        del module._parameters[name]
        module.register_parameter(name + "_orig", param)
        module.register_buffer(name + "_mask", Tensor(mask.astype(param.data.dtype)))

        def recompute(mod: Module, args: tuple) -> None:
            object.__setattr__(mod, name, mod._parameters[name + "_orig"]
                               * mod._buffers[name + "_mask"])

        hooks[name] = module.register_forward_pre_hook(recompute)
    object.__setattr__(module, name, module._parameters[name + "_orig"]
                       * module._buffers[name + "_mask"])
    return module


def _existing_mask(module: Module, name: str, shape: tuple[int, ...]) -> np.ndarray:
    mask = module._buffers.get(name + "_mask")
    return mask.data.astype(bool) if mask is not None else np.ones(shape, bool)


def _l1_mask(scores: np.ndarray, keep: np.ndarray, amount: Any) -> np.ndarray:
    """Prune ``amount`` of the still-kept entries: those with the smallest |score|."""
    remaining = np.flatnonzero(keep)                                 # flat indices still kept
    k = _count(amount, remaining.size)
    mask = keep.copy()
    if k:
        order = np.argsort(np.abs(scores.reshape(-1)[remaining]), kind="stable")[:k]
        mask.reshape(-1)[remaining[order]] = False
    return mask


def l1_unstructured(module: Module, name: str, amount: Any,
                    importance_scores: Tensor | None = None) -> Module:
    """Zero the ``amount`` entries of ``module.name`` with the smallest |value| (or |score|)
    among those not yet pruned (``torch.nn.utils.prune.l1_unstructured``)."""
    _check_amount(amount)
    data = _current(module, name)
    scores = data if importance_scores is None else np.asarray(
        importance_scores.data if isinstance(importance_scores, Tensor) else importance_scores)
    if scores.shape != data.shape:
        raise ValueError(f"importance_scores should have the same shape as parameter {name} "
                         f"of {module}: expected {data.shape}, got {scores.shape}")
    keep = _existing_mask(module, name, data.shape)
    return _apply_mask(module, name, _l1_mask(scores, keep, amount))


def random_unstructured(module: Module, name: str, amount: Any) -> Module:
    """Zero ``amount`` randomly chosen entries among those not yet pruned (drawn from
    ``deepnotes.random``, so a seeded run prunes the same entries)."""
    from ..random import default_generator

    _check_amount(amount)
    data = _current(module, name)
    keep = _existing_mask(module, name, data.shape)
    scores = default_generator().random(data.shape)
    return _apply_mask(module, name, _l1_mask(scores, keep, amount))


def ln_structured(module: Module, name: str, amount: Any, n: Any, dim: int,
                  importance_scores: Tensor | None = None) -> Module:
    """Zero whole slices along ``dim`` (dim=0: output channels) with the smallest L_n norm
    (``torch.nn.utils.prune.ln_structured``; n = 1, 2, ..., ``inf``, ``-inf`` or ``'fro'``).

    Repeated calls prune ``amount`` of the slices still not fully pruned, as PyTorch does.
    """
    _check_amount(amount)
    data = _current(module, name)
    scores = data if importance_scores is None else np.asarray(
        importance_scores.data if isinstance(importance_scores, Tensor) else importance_scores)
    nd = data.ndim
    if not -nd <= dim < nd:
        raise IndexError(f"dim={dim} is out of range for a tensor of {nd} dimensions")
    dim = dim % nd
    keep = _existing_mask(module, name, data.shape)
    other = tuple(d for d in range(nd) if d != dim)
    alive = np.flatnonzero(keep.any(axis=other))                  # slices not fully pruned
    order = 2 if n == "fro" else n
    norms = np.linalg.norm(np.moveaxis(scores, dim, 0).reshape(scores.shape[dim], -1)[alive],
                           ord=order, axis=1)
    k = _count(amount, alive.size)
    mask = np.zeros(data.shape, bool)
    if alive.size - k:
        # PyTorch keeps the top (count - k) by norm (torch.topk, largest=True).
        kept = alive[np.argsort(-norms, kind="stable")[:alive.size - k]]
        index = [slice(None)] * nd
        index[dim] = kept
        mask[tuple(index)] = True
    return _apply_mask(module, name, mask & keep)


def custom_from_mask(module: Module, name: str, mask: Any) -> Module:
    """Prune with a given 0/1 ``mask`` (combined with an existing one)."""
    data = _current(module, name)
    mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.shape != data.shape:
        raise ValueError(f"mask must have the shape of {name} {data.shape}, got {mask.shape}")
    return _apply_mask(module, name, mask != 0)


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: Any = "l1",
                        importance_scores: dict | None = None, amount: Any = None) -> None:
    """One magnitude threshold over several tensors (``torch.nn.utils.prune
    .global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=...)``).

    The smallest |w| over all of them together go, counting ``amount`` over the entries not yet
    pruned (already pruned ones score 0, as in PyTorch). ``pruning_method`` is ``"l1"`` or
    ``"random"`` (or a class whose name is L1Unstructured / RandomUnstructured).
    """
    from ..random import default_generator

    pairs = list(parameters)
    if not pairs:
        raise ValueError("global_unstructured: parameters must name at least one (module, name)")
    method = getattr(pruning_method, "__name__", pruning_method)
    if method not in ("l1", "random", "L1Unstructured", "RandomUnstructured"):
        raise ValueError(f"global_unstructured: pruning_method must be 'l1' or 'random', got "
                         f"{pruning_method!r}")
    if amount is None:
        raise TypeError("global_unstructured: missing the keyword argument 'amount'")
    _check_amount(amount)
    importance_scores = importance_scores or {}
    scores, keeps, shapes = [], [], []
    for module, name in pairs:
        data = _current(module, name)
        keep = _existing_mask(module, name, data.shape)
        given = importance_scores.get((module, name))
        score = data if given is None else np.asarray(getattr(given, "data", given))
        scores.append((score * keep).reshape(-1))
        keeps.append(keep.reshape(-1))
        shapes.append(data.shape)
    flat_scores, flat_keep = np.concatenate(scores), np.concatenate(keeps)
    if method in ("random", "RandomUnstructured"):
        flat_scores = default_generator().random(flat_scores.shape)
    mask = _l1_mask(flat_scores, flat_keep, amount)
    start = 0
    for (module, name), shape in zip(pairs, shapes):
        size = int(np.prod(shape))
        custom_from_mask(module, name, mask[start:start + size].reshape(shape))
        start += size


def remove(module: Module, name: str) -> Module:
    """Make the pruning permanent: ``name`` becomes a Parameter again (orig * mask), and
    name_orig, name_mask and the hook go (``torch.nn.utils.prune.remove``)."""
    hooks = module.__dict__.get(_HOOKS, {})
    if name not in hooks:
        raise ValueError(f"Parameter '{name}' of module {module} has to be pruned before "
                         "pruning can be removed")
    hooks.pop(name).remove()
    orig = module._parameters.pop(name + "_orig")
    mask = module._buffers.pop(name + "_mask")
    module.__dict__.pop(name, None)
    weight = Parameter(Tensor(orig.data * mask.data), requires_grad=orig.requires_grad)
    module.register_parameter(name, weight)
    return module


@dataclass
class PruneReport:
    """What :func:`prune` changed: parameter counts (all / non-zero) and, given an input size,
    MACs and FLOPs counted with non-zero weights, before and after."""

    params: int
    nonzero_before: int
    nonzero_after: int
    pruned_tensors: list[str]
    macs_before: int | None = None
    macs_after: int | None = None
    flops_before: int | None = None
    flops_after: int | None = None

    @property
    def sparsity(self) -> float:
        """Fraction of the model's parameters that are zero after pruning."""
        return 1 - self.nonzero_after / self.params if self.params else 0.0


def prune(model: Module, amount: Any, *, scope: str = "global", method: str = "l1",
          layer_types: Sequence[type] | None = None, name: str = "weight",
          input_size: Sequence[int] | None = None) -> PruneReport:
    """Magnitude-prune the ``name`` tensor of every Conv/Linear layer of ``model`` in place.

    Args:
        model: the model (its layers get name_orig/name_mask and a pre-hook, as above).
        amount: fraction (float in [0, 1]) or count (int) of entries to zero, over all pruned
            tensors together (``scope="global"``) or in each of them (``scope="layer"``).
        scope: "global" (one threshold for the network) or "layer" (the same fraction per layer).
        method: "l1" (smallest magnitudes), "random", or "ln_structured" (whole output channels
            by L2 norm, per layer).
        layer_types: the layer classes to prune (default: convolutions and Linear).
        name: the tensor to prune in each layer.
        input_size: (C, H, W): also count MACs/FLOPs before and after (with ``summary``).

    Returns:
        a :class:`PruneReport`.
    """
    from ..nn.layers import Linear
    from ..nn.layers.conv import _ConvNd
    from .summary import summary

    if scope not in ("global", "layer"):
        raise ValueError(f"prune: scope must be 'global' or 'layer', got {scope!r}")
    if method not in ("l1", "random", "ln_structured"):
        raise ValueError(f"prune: method must be 'l1', 'random' or 'ln_structured', got "
                         f"{method!r}")
    if method == "ln_structured" and scope == "global":
        raise ValueError("prune: method='ln_structured' prunes channels per layer; use "
                         "scope='layer'")
    _check_amount(amount)
    types = tuple(layer_types) if layer_types is not None else (_ConvNd, Linear)
    targets = [(mod_name, m) for mod_name, m in model.named_modules()
               if isinstance(m, types) and isinstance(getattr(m, name, None), Tensor)]
    if not targets:
        raise ValueError(f"prune: the model has no {name!r} tensor in layers of type "
                         f"{[t.__name__ for t in types]}")

    def nonzero() -> int:
        return sum(int(np.count_nonzero(value.data))
                   for m in model.modules() for _, value in _own_values(m))

    before = nonzero()
    costs = summary(model, input_size, count_nonzero=True).totals if input_size else None
    if scope == "global":
        global_unstructured([(m, name) for _, m in targets], pruning_method=method,
                            amount=amount)
    else:
        for _, m in targets:
            if method == "l1":
                l1_unstructured(m, name, amount)
            elif method == "random":
                random_unstructured(m, name, amount)
            else:
                ln_structured(m, name, amount, n=2, dim=0)
    report = PruneReport(params=sum(p.data.size for p in model.parameters()),
                         nonzero_before=before, nonzero_after=nonzero(),
                         pruned_tensors=[f"{n}.{name}" if n else name for n, _ in targets])
    if costs is not None:
        after = summary(model, input_size, count_nonzero=True).totals
        report.macs_before, report.macs_after = costs["macs"], after["macs"]
        report.flops_before, report.flops_after = costs["flops"], after["flops"]
    return report


def _own_values(module: Module) -> list[tuple[str, Tensor]]:
    """The module's own parameters, a pruned one as its masked value under its plain name."""
    out = []
    for pname, param in module._parameters.items():
        if param is None:
            continue
        if pname.endswith("_orig") and pname[:-5] + "_mask" in module._buffers:
            value = module.__dict__.get(pname[:-5])
            out.append((pname[:-5], value if isinstance(value, Tensor) else param))
        else:
            out.append((pname, param))
    return out
