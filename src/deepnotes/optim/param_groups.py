"""Norm penalties on the weights only: optimiser parameter groups and explicit L1/L2 terms.

Notes 001 ("深度学习中的正则化", parameter norm penalties): penalise the weights, not the biases. A
weight sets how two units interact, so shrinking it controls the capacity of the model; a bias
acts on one unit only, needs little data to fit, and penalising it can cause underfitting. The
same goes for the scale and shift (gamma, beta) of normalisation layers: shrinking gamma towards
0 does not make the function simpler, it fights the normalisation. So the usual recipe is

    decay:     every parameter except the ones below         (conv / linear / embedding weights)
    no decay:  parameters named ``bias``, and every parameter of a normalisation layer
               (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, ...: a class name containing "Norm")

:func:`param_groups` builds the two optimiser groups for this rule, with the decay applied by the
optimiser (``weight_decay``: for SGD the L2 penalty (lambda/2)||w||^2 added to the loss, whose
gradient lambda*w is added to the gradient; for AdamW the decoupled form).
:func:`l2_penalty` and :func:`l1_penalty` are the same penalties as explicit loss terms; L1
(lambda * sum |w|) drives weights to exactly 0, giving sparse solutions (notes 001).

Example::

    opt = optim.SGD(optim.param_groups(model, weight_decay=5e-4), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(x), y) + optim.l1_penalty(model, 1e-5)
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from ..creation import tensor
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor

NO_DECAY = ("bias", "norm")
"""The default exemptions: parameters named ``bias`` and all parameters of normalisation layers."""


def _is_norm_layer(module: Module) -> bool:
    return "Norm" in type(module).__name__


def _check_rules(no_decay: Any) -> tuple[Any, ...]:
    if isinstance(no_decay, str | type):
        no_decay = (no_decay,)
    rules = tuple(no_decay)
    for rule in rules:
        if not (isinstance(rule, str) or (isinstance(rule, type) and issubclass(rule, Module))):
            raise TypeError(f"no_decay entries must be parameter names (str), 'norm', or Module "
                            f"classes, got {rule!r}")
    return rules


def _exempt(name: str, owner: Module, rules: tuple[Any, ...]) -> bool:
    for rule in rules:
        if rule == "norm" and _is_norm_layer(owner):
            return True
        if isinstance(rule, str) and rule == name:
            return True
        if isinstance(rule, type) and isinstance(owner, rule):
            return True
    return False


def split_decay(model: Module, no_decay: Iterable[Any] = NO_DECAY
                ) -> tuple[list[tuple[str, Parameter]], list[tuple[str, Parameter]]]:
    """Split ``model.named_parameters()`` into (decayed, exempt) lists of (name, parameter).

    Args:
        model: the module whose parameters are split (shared parameters appear once, under the
            first name, as in ``named_parameters``).
        no_decay: the exemption rules; a parameter is exempt when any rule matches:
            a string other than ``"norm"`` matches the parameter's own name (the last part of
            its dotted name, e.g. ``"bias"``, ``"pos_embedding"``); ``"norm"`` matches every
            parameter owned by a module whose class name contains ``Norm``; a Module subclass
            matches every parameter owned by an instance of it (e.g. ``nn.PReLU``).

    Raises:
        TypeError: ``model`` is not a Module or a rule is neither a string nor a Module class.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a Module, got {type(model).__name__}")
    rules = _check_rules(no_decay)
    decay: list[tuple[str, Parameter]] = []
    exempt: list[tuple[str, Parameter]] = []
    for full_name, param in model.named_parameters():
        owner_name, _, name = full_name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        (exempt if _exempt(name, owner, rules) else decay).append((full_name, param))
    return decay, exempt


def _check_decay(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    if not value >= 0.0:  # also catches NaN
        raise ValueError(f"Invalid {name} value: {value}")
    return float(value)


def param_groups(model: Module, weight_decay: float, no_decay: Iterable[Any] = NO_DECAY,
                 **options: Any) -> list[dict[str, Any]]:
    """Two optimiser parameter groups: decayed weights, and the exempt biases and norm parameters.

    Args:
        model: the module to optimise.
        weight_decay: the decay of the first group; the second gets 0.
        no_decay: the exemption rules of :func:`split_decay` (default: ``("bias", "norm")``).
        **options: other per-group options copied into both groups (e.g. ``lr``).

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay, **options},
        {"params": exempt, "weight_decay": 0.0, **options}]``, always both (a group may be empty),
        in ``named_parameters`` order; pass it to any optimiser, e.g.
        ``optim.AdamW(param_groups(model, 0.05), lr=1e-3)``.

    Raises:
        ValueError: a negative ``weight_decay``.
        TypeError: as :func:`split_decay`.
    """
    weight_decay = _check_decay(weight_decay, "weight_decay")
    decay, exempt = split_decay(model, no_decay)
    return [
        {"params": [p for _, p in decay], "weight_decay": weight_decay, **options},
        {"params": [p for _, p in exempt], "weight_decay": 0.0, **options},
    ]


def _penalty(model: Module, no_decay: Iterable[Any], term: Any) -> Tensor:
    decay, _ = split_decay(model, no_decay)
    total: Tensor | None = None
    for _, param in decay:
        value = term(param)
        total = value if total is None else total + value
    if total is None:
        return tensor(0.0)
    return total


def l1_penalty(model: Module, alpha: float = 1.0, no_decay: Iterable[Any] = NO_DECAY) -> Tensor:
    """alpha * sum |w| over the decayed weights of :func:`split_decay`: an L1 loss term.

    Its gradient alpha * sign(w) (0 at w = 0, as ``torch.abs``) pulls every weight towards 0 by
    the same amount whatever its size, so small weights reach exactly 0: sparse solutions
    (notes 001). Add it to the loss; optimisers have no L1 option.

    Raises:
        ValueError: a negative ``alpha``.
    """
    alpha = _check_decay(alpha, "alpha")
    return _penalty(model, no_decay, lambda w: w.abs().sum()) * alpha


def l2_penalty(model: Module, alpha: float = 1.0, no_decay: Iterable[Any] = NO_DECAY) -> Tensor:
    """(alpha / 2) * sum w^2 over the decayed weights: the explicit form of weight decay.

    Its gradient alpha * w is exactly what ``weight_decay=alpha`` adds to the gradient in SGD, so
    ``loss + l2_penalty(model, a)`` with plain groups trains as ``param_groups(model, a)`` does
    (not so for Adam, whose adaptive step rescales it, nor AdamW, which decouples it).

    Raises:
        ValueError: a negative ``alpha``.
    """
    alpha = _check_decay(alpha, "alpha")
    return _penalty(model, no_decay, lambda w: (w * w).sum()) * (alpha / 2)
