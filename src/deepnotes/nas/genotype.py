"""Genotypes: the discrete cells a search ends with, and the network retrained from scratch.

Notes 004 (DARTS' drawbacks, 3.): the final architecture is read off the continuous weights by
a fixed rule, *not* by the search objective: every intermediate node keeps the two input edges
whose strongest non-'none' operation weighs most, and on each of them that operation. The
'none' weight is left out of the ranking (otherwise the zero op, which often collects weight,
would pick edges that then carry nothing).

A genotype is stored as JSON:

    {"normal": [["sep_conv_3x3", 1], ["skip_connect", 0], ...],   2 per node, node by node
     "normal_concat": [2, 3, 4], "reduce": [...], "reduce_concat": [2, 3, 4]}

where an input index j is 0 = c_{k-2}, 1 = c_{k-1}, j >= 2 = intermediate node j-2, and the
concat lists name the states (2 + node) concatenated into the cell's output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..ops.shape import cat
from ..tensor import Tensor
from .search_space import PRIMITIVES, FactorizedReduce, ReLUConvBN, make_op, reduction_layers

__all__ = ["Genotype", "derive_genotype", "NetworkFromGenotype", "random_genotype"]


def dump_json(d: dict[str, Any]) -> str:
    """A flat dict as JSON with one key per line and each value on that line."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}"


@dataclass(frozen=True)
class Genotype:
    """The two discrete cells: per cell type a list of (operation, input index), two per node."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for kind in ("normal", "reduce"):
            edges = getattr(self, kind)
            if len(edges) % 2:
                raise ValueError(f"Genotype.{kind}: expected 2 edges per node, got {len(edges)}")
            for k, (op, j) in enumerate(edges):
                if op not in PRIMITIVES or op == "none":
                    raise ValueError(f"Genotype.{kind}[{k}]: unknown operation '{op}'")
                if not 0 <= j < 2 + k // 2:
                    raise ValueError(f"Genotype.{kind}[{k}]: input {j} out of range "
                                     f"0..{1 + k // 2} for node {k // 2}")

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def to_dict(self) -> dict[str, Any]:
        return {"normal": [[op, j] for op, j in self.normal],
                "normal_concat": list(self.normal_concat),
                "reduce": [[op, j] for op, j in self.reduce],
                "reduce_concat": list(self.reduce_concat)}

    def to_json(self, **extra: Any) -> str:
        """JSON text, one key per line (``extra``: more keys, e.g. the search's settings)."""
        return dump_json({**self.to_dict(), **extra})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Genotype:
        missing = {"normal", "normal_concat", "reduce", "reduce_concat"} - set(d)
        if missing:
            raise ValueError(f"Genotype: missing keys {sorted(missing)}")
        return cls(tuple((str(op), int(j)) for op, j in d["normal"]),
                   tuple(int(i) for i in d["normal_concat"]),
                   tuple((str(op), int(j)) for op, j in d["reduce"]),
                   tuple(int(i) for i in d["reduce_concat"]))

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("genotype", data))

    def count(self, op: str, kind: str = "normal") -> int:
        return sum(1 for o, _ in getattr(self, kind) if o == op)


def _parse_cell(weights: np.ndarray, steps: int, primitives: Sequence[str],
                edge_weights: Sequence[float] | None) -> list[tuple[str, int]]:
    """Top-2 input edges per node by their strongest non-'none' weight (times the edge's own
    weight, if given: PC-DARTS), and on each edge that operation."""
    none = primitives.index("none") if "none" in primitives else -1
    gene: list[tuple[str, int]] = []
    offset = 0
    for i in range(steps):
        n_in = 2 + i
        w = np.array(weights[offset:offset + n_in], dtype=np.float64)      # (2+i, num_ops)
        if edge_weights is not None:
            w = w * np.asarray(edge_weights[offset:offset + n_in])[:, None]
        if none >= 0:
            w[:, none] = -np.inf
        strength = w.max(axis=1)                                           # (2+i,)
        # stable order: strongest first, ties to the lower input index
        edges = sorted(range(n_in), key=lambda j: (-strength[j], j))[:2]
        for j in edges:
            gene.append((primitives[int(np.argmax(w[j]))], j))
        offset += n_in
    return gene


def derive_genotype(weights_normal: Any, weights_reduce: Any, steps: int,
                    multiplier: int | None = None, primitives: Sequence[str] = PRIMITIVES,
                    edge_weights_normal: Sequence[float] | None = None,
                    edge_weights_reduce: Sequence[float] | None = None) -> Genotype:
    """The genotype of (E, num_ops) operation weights (softmax(alpha) or alpha: the ranking is
    the same within an edge, but between edges DARTS ranks the softmax weights).

    Each intermediate node keeps its two input edges with the largest max_{o != none} w[e, o]
    and the argmax operation on each; the output concatenates the last ``multiplier`` nodes.
    """
    primitives = tuple(primitives)
    multiplier = steps if multiplier is None else multiplier
    wn, wr = np.asarray(weights_normal), np.asarray(weights_reduce)
    e = sum(2 + i for i in range(steps))
    for name, w in (("weights_normal", wn), ("weights_reduce", wr)):
        if w.shape != (e, len(primitives)):
            raise ValueError(f"derive_genotype: {name} must have shape ({e}, {len(primitives)}) "
                             f"for {steps} steps, got {w.shape}")
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(tuple(_parse_cell(wn, steps, primitives, edge_weights_normal)), concat,
                    tuple(_parse_cell(wr, steps, primitives, edge_weights_reduce)), concat)


def random_genotype(steps: int, rng: np.random.Generator, multiplier: int | None = None,
                    primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """A uniformly random cell pair of the same shape: per node two distinct inputs and a
    non-'none' operation on each (the baseline a search has to beat)."""
    ops = [p for p in primitives if p != "none"]
    multiplier = steps if multiplier is None else multiplier

    def cell() -> tuple[tuple[str, int], ...]:
        gene = []
        for i in range(steps):
            for j in sorted(rng.choice(2 + i, size=2, replace=False)):
                gene.append((ops[int(rng.integers(len(ops)))], int(j)))
        return tuple(gene)

    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(cell(), concat, cell(), concat)


class FixedCell(nn.Module):
    """A discrete cell: node i = op_a(h_a) + op_b(h_b) with the genotype's two (op, input) pairs;
    output = concatenation of the states in ``concat``."""

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        edges = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.preprocess0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                            else ReLUConvBN(c_prev_prev, c, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.indices = [j for _, j in edges]
        self._ops = nn.ModuleList([
            make_op(op, c, 2 if reduction and j < 2 else 1, affine=True, pool_bn=False)
            for op, j in edges])

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self._ops) // 2):
            a, b = 2 * i, 2 * i + 1
            states.append(self._ops[a](states[self.indices[a]])
                          + self._ops[b](states[self.indices[b]]))
        return cat([states[i] for i in self.concat], dim=1)   # (N, len(concat)*C, H', W')


class NetworkFromGenotype(nn.Module):
    """The network to retrain from scratch: the search network's layout (stem, ``layers`` cells
    with the same reduction positions, pooling, classifier) with fixed cells."""

    def __init__(self, genotype: Genotype, c: int = 8, num_classes: int = 10, layers: int = 3,
                 stem_multiplier: int = 2, in_channels: int = 1):
        super().__init__()
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cell = FixedCell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, len(cell.concat) * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        out = self.global_pooling(s1)
        return self.classifier(out.reshape(out.shape[0], -1))   # (N, num_classes)
