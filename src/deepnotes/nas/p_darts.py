"""P-DARTS' two remedies against the collapse onto skip connections (notes 004, P-DARTS).

DARTS tends to end with cells full of skip connections: a parameter-free identity gives a
consistent signal early in the search and so gathers weight, then stays ahead of convolutions
that would be better once trained (notes 004, "为什么 DARTS 无法直接在 ImageNet 上搜索").

1. **Operation-level dropout after the skip connection**, with a rate that decays over the
   search: early on the identity path is often cut, so the learnable ops get a chance; at the
   end the rate is (near) 0 and the search sees the real architecture.
   The rate here decays exponentially, p(epoch) = p0 * exp(-decay * epoch), as in P-DARTS.

2. **A cap M on the skip connections of the derived normal cell** (M = 2 in the paper): while
   the genotype has more than M skips, the skip of the edge where it is weakest is removed from
   the candidates (its weight set to 0) and the genotype derived again.

P-DARTS' third idea, growing the depth of the search network in stages while pruning the
candidate list, is not implemented here (the 8x8 digits allow only a few cells anyway).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor import Tensor
from .genotype import Genotype, derive_genotype
from .search_space import PRIMITIVES, MixedOp, SearchNetwork

__all__ = ["SkipDropMixedOp", "PDartsNetwork", "derive_with_max_skip", "skip_drop_rate"]


def skip_drop_rate(epoch: int, p0: float = 0.3, decay: float = 0.2) -> float:
    """p0 * exp(-decay * epoch): P-DARTS' decaying dropout rate on the skip connections."""
    return p0 * math.exp(-decay * epoch)


class SkipDropMixedOp(MixedOp):
    """MixedOp with dropout of rate ``drop_prob`` on the output of the identity skip connection
    (inverted dropout, F.dropout, in training mode only)."""

    def __init__(self, c: int, stride: int, primitives: Sequence[str] = PRIMITIVES):
        super().__init__(c, stride, primitives)
        self.drop_prob = 0.0

    def apply_op(self, index: int, op: nn.Module, x: Tensor) -> Tensor:
        out = op(x)
        if (self.primitives[index] == "skip_connect" and isinstance(op, nn.Identity)
                and self.drop_prob > 0 and self.training):
            out = F.dropout(out, self.drop_prob, training=True)
        return out


class PDartsNetwork(SearchNetwork):
    """The DARTS supernet with skip dropout; ``set_drop_prob(p)`` sets the rate of every edge."""

    def __init__(self, *args: Any, **kwargs: Any):
        primitives = tuple(kwargs.get("primitives", PRIMITIVES))

        def mixed_op(c: int, stride: int) -> MixedOp:
            return SkipDropMixedOp(c, stride, primitives)

        super().__init__(*args, mixed_op=mixed_op, **kwargs)

    def set_drop_prob(self, p: float) -> None:
        if not 0 <= p < 1:
            raise ValueError(f"set_drop_prob: p must be in [0, 1), got {p}")
        for m in self.modules():
            if isinstance(m, SkipDropMixedOp):
                m.drop_prob = p


def derive_with_max_skip(weights_normal: Any, weights_reduce: Any, steps: int,
                         max_skip: int = 2, multiplier: int | None = None,
                         primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """derive_genotype, then while the normal cell has more than ``max_skip`` skip connections,
    zero the skip weight of the selected skip edge where that weight is smallest and derive
    again (P-DARTS' constraint; the reduction cell is left alone, as in the paper)."""
    if max_skip < 0:
        raise ValueError(f"derive_with_max_skip: max_skip must be >= 0, got {max_skip}")
    primitives = tuple(primitives)
    skip = primitives.index("skip_connect")
    w = np.array(weights_normal, dtype=np.float64)
    genotype = derive_genotype(w, weights_reduce, steps, multiplier, primitives)
    while genotype.count("skip_connect") > max_skip:
        # the edges (in the weight matrix) of the chosen skips
        chosen, offset = [], 0
        for i in range(steps):
            for op, j in genotype.normal[2 * i:2 * i + 2]:
                if op == "skip_connect":
                    chosen.append(offset + j)
            offset += 2 + i
        weakest = min(chosen, key=lambda e: (w[e, skip], e))
        w[weakest, skip] = -np.inf
        genotype = derive_genotype(w, weights_reduce, steps, multiplier, primitives)
    return genotype
