"""PC-DARTS: partial channel connections and edge normalisation (notes 004, P-DARTS/PC-DARTS).

Partial channels: on each edge only 1/K of the channels go through the mixed operation; the
other (K-1)/K bypass it unchanged (max-pooled at stride 2 to match the size), then a channel
shuffle with K groups mixes the two parts so that different channels get searched on the next
edge (ShuffleNet's shuffle, ``F.channel_shuffle``):

    x = [x_a, x_b],  x_a = x[:, :C/K],  x_b = x[:, C/K:]
    f(x) = channel_shuffle(cat([sum_o softmax(alpha)_o * o(x_a),  pool_s(x_b)]), K)

The mixed op thus costs 1/K of the memory and compute, which allows larger batches, and it
makes the parameter-free ops' advantage smaller (notes 004: their outputs are more consistent
early in the search, so DARTS favours them; sampling channels adds noise to every op alike).

Edge normalisation: since only a random-ish part of the channels is searched, the choice of
*edges* would fluctuate; each edge (j -> i) gets its own weight beta, normalised with a softmax
over the inputs of node i,

    x_i = sum_{j < i} softmax_j(beta_{., i}) * f_{j,i}(x_j)

and at derivation an edge is ranked by softmax(beta) times its op weights (genotype.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor
from .search_space import PRIMITIVES, MixedOp, SearchNetwork

__all__ = ["PartialMixedOp", "PCDartsNetwork", "node_softmax"]


class PartialMixedOp(nn.Module):
    """The mixed op on the first C/K channels, the rest passed through; then channel shuffle."""

    def __init__(self, c: int, stride: int, k: int = 4, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        if k < 1 or c % k:
            raise ValueError(f"PartialMixedOp: channels ({c}) must be divisible by k ({k})")
        self.k, self.stride = k, stride
        self.mixed = MixedOp(c // k, stride, primitives)
        self.bypass_pool = nn.MaxPool2d(2, 2) if stride == 2 else None

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if self.k == 1:
            return self.mixed(x, weights)
        part = x.shape[1] // self.k
        searched = self.mixed(x[:, :part], weights)        # (N, C/K, H', W')
        rest = x[:, part:]                                  # (N, C - C/K, H, W)
        if self.bypass_pool is not None:
            if rest.shape[2] % 2 or rest.shape[3] % 2:     # odd size: pool like the ops (pad 1)
                rest = F.max_pool2d(rest, 3, 2, 1)
            else:
                rest = self.bypass_pool(rest)
        return F.channel_shuffle(cat([searched, rest], dim=1), self.k)   # (N, C, H', W')


def node_softmax(beta: Tensor, steps: int) -> list[Tensor]:
    """Per-edge weights: softmax of beta over the 2 + i input edges of each node i, as a flat list
    of scalars in edge order."""
    out: list[Tensor] = []
    offset = 0
    for i in range(steps):
        n = 2 + i
        w = F.softmax(beta[offset:offset + n], dim=0)      # (2+i,)
        out.extend(w[j] for j in range(n))
        offset += n
    return out


class PCDartsNetwork(SearchNetwork):
    """The supernet with partial-channel mixed ops (K) and edge-normalisation parameters
    ``betas_normal`` / ``betas_reduce`` (E,), initialised like alpha (1e-3 * N(0, 1))."""

    def __init__(self, *args: Any, k: int = 4, **kwargs: Any):
        from ..random import default_generator

        primitives = tuple(kwargs.get("primitives", PRIMITIVES))

        def mixed_op(c: int, stride: int) -> nn.Module:
            return PartialMixedOp(c, stride, k, primitives)

        super().__init__(*args, mixed_op=mixed_op, **kwargs)
        self.k = k
        e = self.alphas_normal.shape[0]
        rng = default_generator()
        self.betas_normal = nn.Parameter(Tensor._wrap(
            1e-3 * rng.standard_normal(e).astype("float32")))
        self.betas_reduce = nn.Parameter(Tensor._wrap(
            1e-3 * rng.standard_normal(e).astype("float32")))

    def arch_names(self) -> tuple[str, ...]:
        return ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")

    def edge_weights(self, kind: str) -> list[Tensor]:
        return node_softmax(getattr(self, f"betas_{kind}"), self.steps)
