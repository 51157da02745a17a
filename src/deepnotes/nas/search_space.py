"""DARTS' cell search space: the candidate operations, ``MixedOp``, ``Cell`` and ``SearchNetwork``.

Notes 004 ("NAS 前沿工作", DARTS): as in NASNet the network is a stack of cells that share their
structure, a *normal* cell that keeps the spatial size and a *reduction* cell that halves it.
A cell is a small DAG: two input nodes (the outputs of the previous two cells, ``c_{k-2}`` and
``c_{k-1}``), N intermediate nodes and one output node (the concatenation of the last
``multiplier`` intermediate nodes). Intermediate node i sums one transformed copy of every
earlier node:

    x_i = sum_{j < i} o^{(j,i)}(x_j)

DARTS relaxes the discrete choice of o^{(j,i)} among the candidate operations O to a softmax
over architecture parameters alpha^{(j,i)} (one vector per edge, shared by all cells of a type):

    mixed(x) = sum_{o in O} softmax(alpha)_o * o(x)                      (MixedOp)

so that the validation loss is differentiable in alpha. After the search each node keeps its
two strongest input edges and on each the strongest operation other than 'none'
(``genotype.derive_genotype``).

The operations (DARTS' list, written here from the paper's description):
    none           the zero map (stride s: zeros of the strided size)
    skip_connect   identity; at stride 2 a FactorizedReduce (two 1x1 stride-2 convs on
                   offset pixel grids, concatenated, then BN)
    sep_conv_kxk   (ReLU, depthwise kxk, pointwise 1x1, BN) twice; stride on the first only
    dil_conv_kxk   ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN
    max/avg_pool   3x3 pooling (average without the padded zeros), in search followed by an
                   affine-free BN as in DARTS, so that their scale matches the convolutions'
Every operation maps (N, C, H, W) to (N, C, ceil(H/s), ceil(W/s)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor

__all__ = ["OPS", "PRIMITIVES", "Cell", "DilConv", "FactorizedReduce", "MixedOp", "ReLUConvBN",
           "SearchNetwork", "SepConv", "Zero", "make_op", "num_edges", "reduction_layers"]

#: The candidate operations, in DARTS' order (index = column of the alpha matrices).
PRIMITIVES: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                               "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: node i has 2 + i inputs, so
    sum_{i<N} (2 + i) = 2N + N(N-1)/2 (14 for DARTS' N = 4)."""
    return sum(2 + i for i in range(steps))


class Zero(nn.Module):
    """The 'none' operation: zeros of the output shape (the strided input times 0)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x * 0.0
        return x[:, :, ::self.stride, ::self.stride] * 0.0  # (N, C, ceil(H/s), ceil(W/s))


class ReLUConvBN(nn.Module):
    """ReLU -> conv (no bias) -> BN: the preprocessing of a cell's inputs (1x1) and the stem."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise kxk conv (dilation d, groups = C_in) -> pointwise 1x1 -> BN.

    A dilated kxk kernel sees (d(k-1)+1)^2 pixels with k^2 weights (notes 001, dilated conv);
    padding d(k-1)/2 keeps the size at stride 1.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two depthwise-separable blocks (notes 001/004: k^2*C + C*C' weights instead of
    k^2*C*C'); the stride applies to the first block only."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve H and W without losing every other pixel: ReLU, then two 1x1 stride-2 convs, one on
    the even grid x[:, :, 0::2, 0::2] and one on the odd grid x[:, :, 1::2, 1::2], each giving
    C_out/2 channels, concatenated and batch-normalised."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce: c_out must be even, got {c_out}")
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        a = self.conv_1(x)                         # (N, C_out/2, ceil(H/2), ceil(W/2))
        b = self.conv_2(x[:, :, 1:, 1:])           # (N, C_out/2, ceil((H-1)/2), ...)
        if b.shape[2:] != a.shape[2:]:             # odd H: the odd grid is one row shorter
            b = F.pad(b, (0, a.shape[3] - b.shape[3], 0, a.shape[2] - b.shape[2]))
        return self.bn(cat([a, b], dim=1))         # (N, C_out, ceil(H/2), ceil(W/2))


def _pool(kind: str, c: int, stride: int, affine: bool, bn_after: bool) -> nn.Module:
    pool = (nn.MaxPool2d(3, stride=stride, padding=1) if kind == "max"
            else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if bn_after else pool


#: name -> factory(C, stride, affine) of a module mapping (N, C, H, W) -> (N, C, H/s, W/s).
#: Pools get the affine-free BN of the search (``pool_bn``); the retraining network builds them
#: with ``pool_bn=False`` through :func:`make_op`.
OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: _pool("max", c, stride, affine, True),
    "avg_pool_3x3": lambda c, stride, affine: _pool("avg", c, stride, affine, True),
    "skip_connect": lambda c, stride, affine: (nn.Identity() if stride == 1
                                               else FactorizedReduce(c, c, affine)),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
}


def make_op(name: str, c: int, stride: int, affine: bool = True, pool_bn: bool = True
            ) -> nn.Module:
    """One operation of :data:`OPS` by name (``pool_bn=False``: a bare pool, for retraining)."""
    if name not in OPS:
        raise ValueError(f"unknown operation '{name}'; expected one of {', '.join(OPS)}")
    if name.endswith("pool_3x3") and not pool_bn:
        return _pool(name[:3], c, stride, affine, False)
    return OPS[name](c, stride, affine)


class MixedOp(nn.Module):
    """sum_o w_o * o(x) over the candidate operations (DARTS' continuous relaxation).

    ``weights``: a (len(primitives),) tensor, e.g. softmax(alpha) of this edge. The 'none'
    operation is not evaluated: its output is 0, so its term w_none * 0 adds nothing to the value
    and nothing to any gradient (d/dw_none of w_none * 0 = 0); its weight still takes part in the
    softmax, which is how it competes with the others.
    """

    def __init__(self, c: int, stride: int, primitives: Sequence[str] = PRIMITIVES,
                 affine: bool = False):
        super().__init__()
        self.primitives = tuple(primitives)
        self.stride = stride
        self._ops = nn.ModuleList([make_op(p, c, stride, affine) for p in self.primitives])

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if weights.shape != (len(self.primitives),):
            raise ValueError(f"MixedOp: weights must have shape ({len(self.primitives)},), got "
                             f"{tuple(weights.shape)}")
        out = None
        for i, (name, op) in enumerate(zip(self.primitives, self._ops)):
            if name == "none":
                continue
            term = weights[i] * self.apply_op(i, op, x)
            out = term if out is None else out + term
        if out is None:  # only 'none' in the list
            return self._ops[0](x)
        return out

    def apply_op(self, index: int, op: nn.Module, x: Tensor) -> Tensor:
        """Hook for subclasses (P-DARTS adds dropout after the skip connection)."""
        return op(x)


class Cell(nn.Module):
    """A searchable cell: preprocess the two inputs to C channels, then N intermediate nodes.

    Edges are numbered node by node: node i's inputs j = 0 .. i+1 (0 = c_{k-2}, 1 = c_{k-1},
    j >= 2 = intermediate node j-2) are edges offset_i + j with offset_i = sum_{m<i} (2 + m).
    In a reduction cell the edges leaving the two input nodes have stride 2.
    Output: concatenation of the last ``multiplier`` nodes, (N, multiplier*C, H', W').
    """

    def __init__(self, steps: int, multiplier: int, c_prev_prev: int, c_prev: int, c: int,
                 reduction: bool, reduction_prev: bool,
                 mixed_op: Callable[[int, int], nn.Module] = MixedOp):
        super().__init__()
        self.steps, self.multiplier, self.reduction = steps, multiplier, reduction
        self.preprocess0 = (FactorizedReduce(c_prev_prev, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_prev_prev, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self._ops.append(mixed_op(c, stride))

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor,
                edge_weights: Sequence[Tensor] | None = None) -> Tensor:
        """``weights``: (E, num_ops) operation weights; ``edge_weights``: optional per-edge
        scalars (PC-DARTS' edge normalisation) multiplying each mixed op's output."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = None
            for j, h in enumerate(states):
                term = self._ops[offset + j](h, weights[offset + j])
                if edge_weights is not None:
                    term = edge_weights[offset + j] * term
                node = term if node is None else node + term
            offset += len(states)
            states.append(node)
        return cat(states[-self.multiplier:], dim=1)   # (N, multiplier*C, H', W')


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: DARTS' layers//3 and 2*layers//3 (one in the middle for
    fewer than 4 cells, as the 8x8 digits cannot be halved many times)."""
    if layers < 4:
        return (layers // 2,) if layers >= 2 else ()
    return (layers // 3, 2 * layers // 3)


class SearchNetwork(nn.Module):
    """The supernet of the search: stem (3x3 conv + BN), ``layers`` cells, global average pool,
    linear classifier. Architecture parameters ``alphas_normal`` and ``alphas_reduce``
    (E, num_ops), shared by every cell of their type, initialised to 1e-3 * N(0, 1) as DARTS.

    ``weights()`` are the network weights w, ``arch_parameters()`` the architecture parameters
    (the two groups of the bi-level problem); subclasses change how alpha becomes the operation
    weights (:meth:`op_weights`: softmax here, Gumbel samples in GDAS) and may add per-edge
    weights (:meth:`edge_weights`: PC-DARTS).
    """

    def __init__(self, c: int = 8, num_classes: int = 10, layers: int = 3, steps: int = 3,
                 multiplier: int | None = None, stem_multiplier: int = 2, in_channels: int = 1,
                 primitives: Sequence[str] = PRIMITIVES,
                 mixed_op: Callable[[int, int], nn.Module] | None = None):
        super().__init__()
        from ..random import default_generator

        multiplier = steps if multiplier is None else multiplier
        self.c, self.num_classes, self.layers = c, num_classes, layers
        self.steps, self.multiplier, self.primitives = steps, multiplier, tuple(primitives)
        if mixed_op is None:
            def mixed_op(ch: int, stride: int) -> nn.Module:
                return MixedOp(ch, stride, self.primitives)
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        self.cell_shapes: list[tuple[int, bool]] = []  # (C of the cell, reduction)
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            self.cells.append(Cell(steps, multiplier, c_pp, c_p, c_curr, reduction,
                                   reduction_prev, mixed_op))
            self.cell_shapes.append((c_curr, reduction))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        e, k = num_edges(steps), len(self.primitives)
        rng = default_generator()
        self.alphas_normal = nn.Parameter(Tensor._wrap(
            1e-3 * rng.standard_normal((e, k)).astype("float32")))
        self.alphas_reduce = nn.Parameter(Tensor._wrap(
            1e-3 * rng.standard_normal((e, k)).astype("float32")))

    # -- the two parameter groups --------------------------------------------------------
    def arch_names(self) -> tuple[str, ...]:
        return ("alphas_normal", "alphas_reduce")

    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, n) for n in self.arch_names()]

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # -- how alpha becomes weights -----------------------------------------------------------
    def op_weights(self, kind: str) -> Tensor:
        """(E, num_ops) operation weights of the ``kind`` ('normal' / 'reduce') cells."""
        return F.softmax(getattr(self, f"alphas_{kind}"), dim=-1)

    def edge_weights(self, kind: str) -> list[Tensor] | None:
        return None

    def forward(self, x: Tensor) -> Tensor:
        s0 = s1 = self.stem(x)
        cache: dict[str, Any] = {}
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            if kind not in cache:
                cache[kind] = (self.op_weights(kind), self.edge_weights(kind))
            weights, edge_weights = cache[kind]
            s0, s1 = s1, cell(s0, s1, weights, edge_weights)
        out = self.global_pooling(s1)
        return self.classifier(out.reshape(out.shape[0], -1))   # (N, num_classes)

    def genotype_weights(self) -> dict[str, Any]:
        """What :func:`genotype.derive_genotype` ranks: numpy (E, num_ops) weights per cell
        type, and per-edge multipliers where the method has them."""
        from ..autograd import no_grad

        with no_grad():
            out: dict[str, Any] = {}
            for kind in ("normal", "reduce"):
                out[kind] = F.softmax(getattr(self, f"alphas_{kind}"), dim=-1).numpy().copy()
                ew = self.edge_weights(kind)
                out[f"{kind}_edges"] = (None if ew is None
                                        else [float(w.item()) for w in ew])
        return out
