"""SNAS / GDAS: sample the operation of each edge with the Gumbel-softmax (notes 004, SNAS/GDAS).

SNAS: instead of DARTS' deterministic softmax mixture, every edge carries a *sample* of a
categorical distribution p_alpha over the operations, relaxed to be differentiable:

    z = gumbel_softmax(alpha, tau)  = softmax((alpha + g) / tau),   g_i = -log(-log U_i)

As tau -> 0 the sample becomes one-hot, so the searched network converges to a discrete one
(temperature annealing, GDAS: tau from 10 down to 0.1 over the search).

GDAS: take the hard one-hot z (``hard=True``) in the forward pass and the soft sample's gradient
in the backward (straight-through estimator), and evaluate only the sampled operation on each
edge: one op per edge instead of eight, which is where GDAS' speed comes from. The gradient
reaches alpha through the sampled op's weight only (z_k = 1 in value, d z_k / d alpha of the
soft sample), which is the estimator of GDAS' code in spirit (it adds the unsampled z_i, whose
value is 0, to the output only to route a gradient to them).

Cost-aware search (SNAS' resource constraint; notes 004 "如何在 Gradient based NAS 中加入 latency
优化"): the expected cost of the sampled cell is linear in the probabilities,

    E_{z ~ p_alpha}[cost(z)] = sum_{edges, ops} cost_op * prob_op,     prob = softmax(alpha)

so ``(cost_op * prob_op).sum()`` times a weight lambda is added to the architecture loss;
cost_op is the operation's FLOPs at the shape it sees in the network
(``deepnotes.analysis.summary``), summed over the cells of each type and normalised so that the
most expensive cell pair costs 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..nn import functional as F
from ..tensor import Tensor
from .search_space import PRIMITIVES, MixedOp, SearchNetwork, make_op

__all__ = ["GumbelMixedOp", "GumbelNetwork", "cost_loss", "gumbel_softmax", "op_costs",
           "tau_schedule"]

gumbel_softmax = F.gumbel_softmax


def tau_schedule(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS' linear annealing: tau_max at epoch 0 down to tau_min at the last epoch."""
    if epochs <= 1:
        return tau_min
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


class GumbelMixedOp(MixedOp):
    """MixedOp that skips operations whose weight is exactly 0 in value (the unsampled ones of a
    hard one-hot sample): sum_{o: z_o != 0} z_o * o(x). With soft samples (SNAS) every weight
    is non-zero and this is the plain mixed op."""

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if weights.shape != (len(self.primitives),):
            raise ValueError(f"GumbelMixedOp: weights must have shape ({len(self.primitives)},), "
                             f"got {tuple(weights.shape)}")
        out = None
        active = np.flatnonzero(weights.data)
        for i in active:
            if self.primitives[i] == "none":
                continue
            term = weights[int(i)] * self._ops[int(i)](x)
            out = term if out is None else out + term
        if out is None:  # the sample chose 'none': zeros of the output shape
            zero = self._ops[self.primitives.index("none")] if "none" in self.primitives \
                else make_op("none", x.shape[1], self.stride)
            return zero(x)
        return out


class GumbelNetwork(SearchNetwork):
    """The supernet with Gumbel-softmax operation weights: one sample per edge per forward
    (shared by the cells of a type), hard (GDAS) or soft (SNAS), at temperature ``tau``.
    In eval mode there is no noise: GDAS runs the argmax operation of every edge (one-hot of
    alpha, the path it has trained), SNAS the softmax(alpha) mixture."""

    def __init__(self, *args: Any, hard: bool = True, tau: float = 10.0, **kwargs: Any):
        primitives = tuple(kwargs.get("primitives", PRIMITIVES))

        def mixed_op(c: int, stride: int) -> MixedOp:
            return GumbelMixedOp(c, stride, primitives)

        super().__init__(*args, mixed_op=mixed_op, **kwargs)
        self.hard, self.tau = hard, tau

    def op_weights(self, kind: str) -> Tensor:
        alpha = getattr(self, f"alphas_{kind}")
        if not self.training:
            soft = F.softmax(alpha, dim=-1)
            if not self.hard:
                return soft
            one_hot = np.eye(alpha.shape[-1], dtype=soft.data.dtype)[soft.data.argmax(-1)]
            return Tensor._wrap(one_hot) - soft.detach() + soft     # (E, num_ops)
        return F.gumbel_softmax(alpha, tau=self.tau, hard=self.hard, dim=-1)


def _cell_input_sizes(net: SearchNetwork, image_size: int) -> list[int]:
    """Spatial size of each cell's (preprocessed) inputs: halved after every reduction cell."""
    sizes, h = [], image_size
    for cell in net.cells:
        sizes.append(h)
        if cell.reduction:
            h = (h + 1) // 2
    return sizes


def op_costs(net: SearchNetwork, image_size: int = 8) -> dict[str, np.ndarray]:
    """FLOPs of every candidate op on every edge, summed over the cells of each type:
    {'normal': (E, num_ops), 'reduce': (E, num_ops)} (batch 1; 'none' and the identity cost 0).

    Each op is built alone at the channels and size it sees in the network and measured with
    ``deepnotes.analysis.summary`` (2 x MACs for convolutions + nominal counts for BN, ReLU,
    pooling; see its docstring).
    """
    from ..analysis import summary

    cache: dict[tuple[str, int, int, int], float] = {}

    def flops(name: str, c: int, h: int, stride: int) -> float:
        key = (name, c, h, stride)
        if key not in cache:
            op = make_op(name, c, stride, affine=False)
            cache[key] = 0.0 if name == "none" else float(summary(op, (c, h, h)).totals["flops"])
        return cache[key]

    e = sum(2 + i for i in range(net.steps))
    out = {k: np.zeros((e, len(net.primitives))) for k in ("normal", "reduce")}
    for cell, h in zip(net.cells, _cell_input_sizes(net, image_size)):
        kind = "reduce" if cell.reduction else "normal"
        c = cell.preprocess1.op[1].out_channels
        for edge, mixed in enumerate(cell._ops):
            size = h if mixed.stride == 2 or not cell.reduction else (h + 1) // 2
            for k, name in enumerate(net.primitives):
                out[kind][edge, k] += flops(name, c, size, mixed.stride)
    return out


def normalised_costs(costs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Divide by the cost of the most expensive cells (the max op on every edge), so that the
    cost term lies in [0, 1]."""
    total = sum(float(c.max(axis=1).sum()) for c in costs.values())
    return {k: c / total for k, c in costs.items()}


def cost_loss(net: SearchNetwork, costs: dict[str, np.ndarray],
              kinds: Sequence[str] = ("normal", "reduce")) -> Tensor:
    """(cost_op * prob_op).sum() over the edges and ops of both cell types, prob = softmax(alpha):
    the expected cost of a cell pair sampled from p_alpha (differentiable in alpha)."""
    total = None
    for kind in kinds:
        prob = F.softmax(getattr(net, f"alphas_{kind}"), dim=-1)      # (E, num_ops)
        cost = Tensor._wrap(costs[kind].astype(prob.data.dtype))
        term = (cost * prob).sum()
        total = term if total is None else total + term
    return total
