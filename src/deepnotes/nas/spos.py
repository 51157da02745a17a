"""Single-path one-shot NAS (SPOS; Guo et al. 2019, arXiv:1904.00420) with evolutionary search.

The idea (notes 004, "NAS 前沿工作": One-shot AS, SPOS, "什么是 One Shot NAS"):

* Early NAS optimised the architecture and the weights *together*: sample an architecture, train
  its weights, update the controller from its accuracy, repeat. One-shot NAS **decouples** the two:
  first train one *supernet* whose weights are shared by every architecture of the search space,
  then search over architectures that simply *inherit* those weights, with no training per
  candidate; only the winner is retrained from scratch.
* The key question of one-shot NAS is whether the shared weights rank sub-networks fairly, i.e.
  how to keep the operations from *coupling* during supernet training (One-shot AS needed
  op-level dropout for that). DARTS-like methods train a weighted sum of all operations, whose
  weights co-adapt. SPOS instead trains **one single path per step**, drawn **uniformly**: each
  choice block takes one random choice, so every choice is trained equally often and must work
  with whatever its neighbours happen to be, and only the weights on the path get gradients
  (which also limits weight decay to the part in use, as One-shot AS recommends). One path in
  memory at a time is also what makes it cheap.
* The search is then a plain black-box optimisation of validation accuracy with inherited
  weights. SPOS uses an evolutionary algorithm: a population, the top-k as parents, mutation
  (each gene redrawn with a probability) and crossover (each gene from either parent), with
  candidates that break a FLOPs limit rejected, so the constraint costs nothing to enforce.
* Batch-norm statistics of the supernet are a mixture over all paths; before evaluating a
  candidate its BN running statistics are **recalibrated** on a few training batches through
  that path alone (:func:`recalibrate_bn`).

Search space here (the 8x8 digits, a deliberately tiny version of SPOS's ShuffleNet space):
MobileNet-v2-style inverted residual blocks (1x1 expand, k x k depthwise, 1x1 linear project,
residual when the shape allows) with kernel k in {3, 5, 7} and expansion e in {3, 6}, plus
"skip" (identity) in the blocks that keep the shape:

    stem     3x3 conv 1 -> 8, BN, ReLU                    8 x 8
    block 0  choice, 8 -> 8,   stride 1 (7 choices)       8 x 8
    block 1  choice, 8 -> 16,  stride 2 (6 choices)       4 x 4
    block 2  choice, 16 -> 16, stride 1 (7 choices)       4 x 4
    block 3  choice, 16 -> 32, stride 2 (6 choices)       2 x 2
    block 4  choice, 32 -> 32, stride 1 (7 choices)       2 x 2
    head     global average pool, linear 32 -> 10         7^3 * 6^2 = 12,348 architectures

Cost: MACs (multiply-accumulates of the conv/linear weights, the convention of
``deepnotes.analysis.summary``) from an exact per-choice formula (:func:`block_macs`); FLOPs =
2 x MACs. The tests check the formula against ``analysis.summary`` for networks built from the
choices.

Entry point: :func:`search` (used by ``deepnotes nas search --method spos``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..nn.layers.norm import _BatchNorm
from ..random import default_generator, manual_seed
from ..tensor import Tensor

__all__ = [
    "BUDGETS", "CHOICES", "Arch", "BlockSpec", "ChildNet", "ChoiceBlock", "EvolutionResult",
    "MBBlock", "SearchSpace", "Supernet", "block_macs",
    "crossover", "digits_splits", "evolution_search", "make_choice", "mutate", "recalibrate_bn",
    "sample_constrained", "search",
]

# -- choices and the search space -----------------------------------------------------------------

#: Every choice a block may take: name -> (kernel size, expansion ratio); "skip" is the identity.
CHOICES: dict[str, tuple[int, int] | None] = {
    "k3e3": (3, 3), "k3e6": (3, 6), "k5e3": (5, 3), "k5e6": (5, 6), "k7e3": (7, 3),
    "k7e6": (7, 6), "skip": None,
}

#: An architecture: one choice name per choice block.
Arch = tuple[str, ...]


@dataclass(frozen=True)
class BlockSpec:
    """One choice block's place in the network: channels in/out, stride, input size (square)."""

    c_in: int
    c_out: int
    stride: int
    size: int

    @property
    def size_out(self) -> int:
        """Output side: (size + 2 * (k // 2) - k) // stride + 1 = (size - 1) // stride + 1 for an
        odd k, the same for every choice (so the choices of a block are interchangeable)."""
        return (self.size - 1) // self.stride + 1

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed choices: all inverted residuals, plus "skip" where the shape is kept."""
        keeps_shape = self.stride == 1 and self.c_in == self.c_out
        return tuple(name for name in CHOICES if name != "skip" or keeps_shape)


def block_macs(spec: BlockSpec, choice: str) -> int:
    """Exact MACs of one choice on one image (the weight products; BN/ReLU/add not counted).

    With hidden = e * C_in, H x H in and H' x H' out (H' = (H - 1) // s + 1):
        expand 1x1      H^2  * C_in * hidden
        depthwise kxk   H'^2 * hidden * k^2          (one k x k filter per channel)
        project 1x1     H'^2 * hidden * C_out
    and 0 for "skip".
    """
    if choice not in spec.choices:
        raise ValueError(f"block_macs: choice must be one of {spec.choices}, got {choice!r}")
    if CHOICES[choice] is None:
        return 0
    kernel, expansion = CHOICES[choice]
    hidden = spec.c_in * expansion
    h, h_out = spec.size, spec.size_out
    return (h * h * spec.c_in * hidden + h_out * h_out * hidden * kernel * kernel
            + h_out * h_out * hidden * spec.c_out)


@dataclass(frozen=True)
class SearchSpace:
    """The layer table of the supernet (see the module docstring) and the operations on
    architectures: uniform sampling, validity, MACs."""

    stem_channels: int = 8
    blocks: tuple[tuple[int, int], ...] = ((8, 1), (16, 2), (16, 1), (32, 2), (32, 1))
    image_size: int = 8
    in_channels: int = 1
    num_classes: int = 10

    @cached_property
    def specs(self) -> list[BlockSpec]:
        out, c_in, size = [], self.stem_channels, self.image_size
        for c_out, stride in self.blocks:
            out.append(BlockSpec(c_in, c_out, stride, size))
            c_in, size = c_out, out[-1].size_out
        return out

    @cached_property
    def _macs_table(self) -> list[dict[str, int]]:
        return [{c: block_macs(s, c) for c in s.choices} for s in self.specs]

    def __len__(self) -> int:
        return len(self.blocks)

    def size(self) -> int:
        """Number of architectures: the product of the choices per block."""
        return math.prod(len(s.choices) for s in self.specs)

    def is_valid(self, arch: Sequence[str]) -> bool:
        """One allowed choice per block."""
        return (isinstance(arch, tuple) and len(arch) == len(self)
                and all(c in s.choices for c, s in zip(arch, self.specs)))

    def check(self, arch: Sequence[str]) -> Arch:
        """``arch`` as a tuple, or a ValueError naming what is wrong."""
        arch = tuple(arch)
        if len(arch) != len(self):
            raise ValueError(f"architecture must have {len(self)} choices (one per block), "
                             f"got {len(arch)}: {arch}")
        for i, (c, s) in enumerate(zip(arch, self.specs)):
            if c not in s.choices:
                raise ValueError(f"block {i}: choice must be one of {s.choices}, got {c!r}")
        return arch

    def sample(self, rng: np.random.Generator | None = None) -> Arch:
        """Uniform single-path sampling: each block's choice drawn uniformly and independently
        (from ``deepnotes.random`` unless a generator is given)."""
        rng = default_generator() if rng is None else rng
        return tuple(s.choices[int(rng.integers(len(s.choices)))] for s in self.specs)

    def macs(self, arch: Sequence[str]) -> int:
        """MACs of the whole network on one image: stem + chosen blocks + classifier."""
        arch = self.check(arch)
        stem = self.image_size ** 2 * self.in_channels * self.stem_channels * 9   # 3x3 conv
        head = self.blocks[-1][0] * self.num_classes                             # linear
        return stem + sum(table[c] for table, c in zip(self._macs_table, arch)) + head

    def macs_range(self) -> tuple[int, int]:
        """Smallest and largest MACs over the space (the blocks add up independently)."""
        fixed = self.macs(tuple(s.choices[0] for s in self.specs)) - sum(
            block_macs(s, s.choices[0]) for s in self.specs)
        lo = fixed + sum(min(block_macs(s, c) for c in s.choices) for s in self.specs)
        hi = fixed + sum(max(block_macs(s, c) for c in s.choices) for s in self.specs)
        return lo, hi


# -- modules --------------------------------------------------------------------------------------

class MBBlock(nn.Module):
    """MobileNet-v2 inverted residual with a k x k depthwise conv (notes 003 MobileNet):
    1x1 expand to e*C_in, BN, ReLU6 -> k x k depthwise (stride s), BN, ReLU6 -> 1x1 project
    to C_out, BN (linear bottleneck) -> + x when s = 1 and C_in = C_out."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel_size: int, expand_ratio: int):
        super().__init__()
        hidden = c_in * expand_ratio
        self.use_res_connect = stride == 1 and c_in == c_out
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden,
                      bias=False),                  # depthwise: ops.conv.DepthwiseConv2dFn
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


def make_choice(spec: BlockSpec, choice: str) -> nn.Module:
    """The module of one choice: an :class:`MBBlock` or ``nn.Identity`` for "skip"."""
    if CHOICES[choice] is None:
        return nn.Identity()
    kernel, expansion = CHOICES[choice]
    return MBBlock(spec.c_in, spec.c_out, spec.stride, kernel, expansion)


class ChoiceBlock(nn.Module):
    """All the choices of one block side by side (``choices.<name>``); ``forward(x, choice)``
    runs the one chosen: a single path, so only its weights see the batch and get gradients."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        self.choices = nn.ModuleDict({name: make_choice(spec, name) for name in spec.choices})

    def forward(self, x: Tensor, choice: str) -> Tensor:
        if choice not in self.choices:
            raise ValueError(f"ChoiceBlock: choice must be one of {self.spec.choices}, "
                             f"got {choice!r}")
        return self.choices[choice](x)


class _Net(nn.Module):
    """Stem and classifier shared by the supernet and the stand-alone child network."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.stem = nn.Sequential(
            nn.Conv2d(space.in_channels, space.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(space.stem_channels), nn.ReLU())
        self.classifier = nn.Linear(space.blocks[-1][0], space.num_classes)

    def head(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, (1, 1))      # global average pool: (N, C, 1, 1)
        return self.classifier(x.flatten(1))      # (N, C) -> (N, num_classes)


class Supernet(_Net):
    """The one-shot supernet: stem, one :class:`ChoiceBlock` per block, classifier.

    ``forward(x, arch)`` runs the single path ``arch`` (one choice per block). Weights are shared
    by every architecture: those of a block's choice are the same whichever choices the other
    blocks take.
    """

    def __init__(self, space: SearchSpace | None = None):
        super().__init__(space or SearchSpace())
        self.blocks = nn.ModuleList([ChoiceBlock(s) for s in self.space.specs])

    def forward(self, x: Tensor, arch: Sequence[str]) -> Tensor:
        arch = self.space.check(arch)
        x = self.stem(x)                          # (N, C_stem, H, W)
        for block, choice in zip(self.blocks, arch):
            x = block(x, choice)
        return self.head(x)

    def path_modules(self, arch: Sequence[str]) -> list[nn.Module]:
        """The modules a forward pass through ``arch`` uses."""
        arch = self.space.check(arch)
        return [self.stem, *(b.choices[c] for b, c in zip(self.blocks, arch)), self.classifier]

    def child_state_dict(self, arch: Sequence[str]) -> dict[str, Any]:
        """The state dict of :class:`ChildNet` ``(space, arch)`` holding the inherited weights:
        ``blocks.i.choices.<choice>.rest`` -> ``blocks.i.rest``, stem and classifier unchanged."""
        arch = self.space.check(arch)
        out = {}
        for key, value in self.state_dict().items():
            if not key.startswith("blocks."):
                out[key] = value
                continue
            _, i, _, choice, rest = key.split(".", 4)
            if arch[int(i)] == choice:
                out[f"blocks.{i}.{rest}"] = value
        return out

    def child(self, arch: Sequence[str]) -> ChildNet:
        """A stand-alone network of ``arch`` with (copies of) the inherited weights."""
        net = ChildNet(arch, self.space)
        net.load_state_dict({k: np.array(v.data) for k, v in self.child_state_dict(arch).items()})
        return net


class ChildNet(_Net):
    """One architecture as an ordinary network (stem, the chosen blocks, classifier), built
    from the choices alone: what is retrained from scratch after the search."""

    def __init__(self, arch: Sequence[str], space: SearchSpace | None = None):
        super().__init__(space or SearchSpace())
        self.arch = self.space.check(arch)
        self.blocks = nn.ModuleList([make_choice(s, c)
                                     for s, c in zip(self.space.specs, self.arch)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


# -- batch-norm recalibration ---------------------------------------------------------------------

def recalibrate_bn(supernet: Supernet, arch: Sequence[str], batches: Sequence[Any]) -> None:
    """Recompute the BN running statistics of the path ``arch`` from ``batches`` (images).

    The supernet's running statistics average over all the paths trained, so they do not fit
    any one of them. For every BN layer: reset (mean 0, var 1, count 0), set ``momentum=None``
    (PyTorch's cumulative average: after B batches running = (1/B) sum_b statistic_b, with the
    unbiased variance), run the batches through the path in training mode without gradients,
    restore the momentum. Leaves the supernet in eval mode.
    """
    bns = [m for m in supernet.modules() if isinstance(m, _BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    supernet.train()
    with no_grad():
        for x in batches:
            supernet(x, arch)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    supernet.eval()


# -- evolution ------------------------------------------------------------------------------------

def mutate(space: SearchSpace, arch: Sequence[str], prob: float,
           rng: np.random.Generator | None = None) -> Arch:
    """Each block's choice redrawn uniformly (among its allowed choices) with probability
    ``prob``; the result is always a valid architecture (it may equal the parent)."""
    rng = default_generator() if rng is None else rng
    arch = space.check(arch)
    return tuple(s.choices[int(rng.integers(len(s.choices)))] if rng.random() < prob else c
                 for s, c in zip(space.specs, arch))


def crossover(space: SearchSpace, a: Sequence[str], b: Sequence[str],
              rng: np.random.Generator | None = None) -> Arch:
    """Uniform crossover: each block's choice from parent ``a`` or ``b`` with probability 1/2.
    Both parents are valid and choice sets are per block, so the child is valid."""
    rng = default_generator() if rng is None else rng
    a, b = space.check(a), space.check(b)
    return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))


def _constrained(make: Callable[[], Arch], space: SearchSpace, max_macs: int, seen: set,
                 tries: int = 50) -> Arch | None:
    """Draw with ``make`` until an architecture within ``max_macs`` that is not in ``seen``."""
    for _ in range(tries):
        arch = make()
        if arch not in seen and space.macs(arch) <= max_macs:
            return arch
    return None


def sample_constrained(space: SearchSpace, max_macs: int, rng: np.random.Generator | None = None,
                       tries: int = 10_000) -> Arch:
    """A uniform draw from the architectures within ``max_macs`` (rejection sampling)."""
    rng = default_generator() if rng is None else rng
    lo, hi = space.macs_range()
    if max_macs < lo:
        raise ValueError(f"max_macs must be at least the smallest architecture's {lo:,} MACs, "
                         f"got {max_macs:,}")
    for _ in range(tries):
        arch = space.sample(rng)
        if space.macs(arch) <= max_macs:
            return arch
    raise RuntimeError(f"no architecture within {max_macs:,} MACs in {tries} draws")


def _offspring(space: SearchSpace, parents: list[Arch], mutation: bool, prob: float,
               rng: np.random.Generator) -> Arch:
    """A mutation of one random parent, or a crossover of two."""
    def pick() -> Arch:
        return parents[int(rng.integers(len(parents)))]

    return mutate(space, pick(), prob, rng) if mutation else crossover(space, pick(), pick(), rng)


@dataclass
class EvolutionResult:
    """What :func:`evolution_search` found: the best architecture and its fitness, every
    evaluated candidate (``evaluated``: arch -> fitness), and per generation the population
    with its fitness and MACs (``generations``: list of dicts)."""

    best: Arch
    best_fitness: float
    evaluated: dict[Arch, float]
    generations: list[dict[str, Any]] = field(default_factory=list)


def evolution_search(space: SearchSpace, fitness: Callable[[Arch], float], max_macs: int, *,
                     population: int = 16, generations: int = 6, topk: int = 5,
                     mutation_prob: float = 0.2, rng: np.random.Generator | None = None,
                     progress: Callable[[int, dict], None] | None = None) -> EvolutionResult:
    """SPOS's evolutionary search under a MACs limit.

    Generation 0 is ``population`` uniform draws within the limit. Each generation is
    evaluated (``fitness``, cached: a candidate is never evaluated twice), the ``topk`` best of
    all candidates so far become the parents, and the next population is half mutations of a
    random parent (:func:`mutate`), half crossovers of two random parents (:func:`crossover`),
    topped up with random draws when too few new candidates can be made. A candidate over the
    limit is rejected and redrawn, so every evaluated candidate satisfies the constraint.
    """
    rng = default_generator() if rng is None else rng
    if population < 2 or topk < 1 or generations < 1:
        raise ValueError(f"need population >= 2, topk >= 1, generations >= 1; got "
                         f"population={population}, topk={topk}, generations={generations}")
    if not 0 <= mutation_prob <= 1:
        raise ValueError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
    evaluated: dict[Arch, float] = {}
    pop = []
    while len(pop) < population:
        arch = _constrained(lambda: space.sample(rng), space, max_macs, set(pop))
        pop.append(arch if arch is not None else sample_constrained(space, max_macs, rng))
    history = []
    for gen in range(generations):
        for arch in pop:
            if arch not in evaluated:
                assert space.macs(arch) <= max_macs
                evaluated[arch] = float(fitness(arch))
        scores = [evaluated[a] for a in pop]
        record = {"generation": gen, "population": [list(a) for a in pop], "fitness": scores,
                  "macs": [space.macs(a) for a in pop], "best": max(scores),
                  "mean": float(np.mean(scores)), "best_so_far": max(evaluated.values())}
        history.append(record)
        if progress is not None:
            progress(gen, record)
        if gen == generations - 1:
            break
        parents = sorted(evaluated, key=evaluated.__getitem__, reverse=True)[:topk]
        seen = set(evaluated)
        new: list[Arch] = []
        for k in range(population):
            arch = _constrained(partial(_offspring, space, parents, k < population // 2,
                                        mutation_prob, rng), space, max_macs, seen)
            if arch is None:                                    # stuck: explore instead
                arch = _constrained(lambda: space.sample(rng), space, max_macs, seen, 200)
            if arch is None:                                    # (almost) everything evaluated
                arch = sample_constrained(space, max_macs, rng)
            seen.add(arch)
            new.append(arch)
        pop = new
    best = max(evaluated, key=evaluated.__getitem__)
    return EvolutionResult(best, evaluated[best], evaluated, history)


# -- data, training and evaluation ----------------------------------------------------------------

@dataclass
class Splits:
    """The digits as arrays: train (supernet and retraining), val (fitness of the search),
    test (only for the final comparison). Images (N, 1, 8, 8) float32, labels (N,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_splits(val_size: float = 0.2) -> Splits:
    """Deterministic stratified splits of the bundled digits: ``digits()``'s test set (359) as
    test, and its train set (1,438) split again into train (1,150) and val (288) with seed 1."""
    from ..data.datasets import digits, stratified_split

    train, test = digits()
    x, y = (t.data for t in train.tensors)
    train_idx, val_idx = stratified_split(y, val_size, seed=1)
    x_test, y_test = (t.data for t in test.tensors)
    return Splits(x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one shuffled epoch in batches (the last one may be short)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def accuracy(model: Callable[[Tensor], Tensor], x: np.ndarray, y: np.ndarray,
             batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (already in eval mode) on arrays, without gradients."""
    correct = 0
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor._wrap(x[start:start + batch_size])).data   # (B, classes)
            correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    return correct / len(x)


def train_steps(model: nn.Module, forward: Callable[[Tensor], Tensor], data: Splits, *,
                epochs: int, batch_size: int, lr: float, weight_decay: float,
                max_steps: int | None = None, on_step: Callable[[float], None] | None = None
                ) -> list[float]:
    """SGD (momentum 0.9, Nesterov) with a cosine schedule over ``epochs`` epochs of the train
    split; ``forward(x)`` gives the logits (for the supernet it samples a new path each call).
    Parameters that a step does not use get no gradient and are left alone by SGD. Returns the
    loss of every step."""
    from ..optim import SGD
    from ..optim.lr_scheduler import CosineAnnealingLR

    rng = default_generator()
    steps_per_epoch = math.ceil(len(data.x_train) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps,
                                                                   epochs * steps_per_epoch)
    opt = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    sched = CosineAnnealingLR(opt, T_max=total)
    losses: list[float] = []
    model.train()
    while len(losses) < total:
        for idx in _batches(len(data.x_train), batch_size, rng):
            x, y = Tensor._wrap(data.x_train[idx]), Tensor._wrap(data.y_train[idx])
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.item()))
            if on_step is not None:
                on_step(losses[-1])
            if len(losses) == total:
                break
    model.eval()
    return losses


# -- the whole pipeline ---------------------------------------------------------------------------

#: Settings per budget. "tiny" runs in seconds (tests); "small" in a few minutes on 2 cores.
BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": dict(supernet_epochs=1, supernet_max_steps=6, batch_size=64, population=4,
                 generations=2, topk=2, recalib_batches=1, retrain_epochs=1,
                 retrain_max_steps=4, seeds=1, random_archs=2),
    "small": dict(supernet_epochs=40, supernet_max_steps=None, batch_size=64, population=16,
                  generations=8, topk=5, recalib_batches=4, retrain_epochs=20,
                  retrain_max_steps=None, seeds=3, random_archs=5),
}
#: The MACs limit: this fraction of the way from the cheapest to the most expensive architecture.
MACS_LIMIT_FRACTION = 0.5
MUTATION_PROB = 0.2
SUPERNET_LR, RETRAIN_LR, WEIGHT_DECAY = 0.1, 0.1, 4e-5


def _summary_stats(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n": len(v), "values": [float(a) for a in v]}


def _kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a: (concordant - discordant pairs) / all pairs; ties count as neither."""
    n = len(a)
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
            for i in range(n) for j in range(i + 1, n))
    return float(s / (n * (n - 1) / 2)) if n > 1 else float("nan")


def _verdict(searched: dict[str, Any], random: dict[str, Any]) -> tuple[str, str]:
    """Compare mean test accuracies with a two-standard-error band (Welch's standard error)."""
    diff = searched["mean"] - random["mean"]
    se = math.sqrt(searched["std"] ** 2 / searched["n"] + random["std"] ** 2 / random["n"])
    numbers = (f"searched {searched['mean']:.2%} ± {searched['std']:.2%} (n={searched['n']}) vs "
               f"random {random['mean']:.2%} ± {random['std']:.2%} (n={random['n']}): "
               f"difference {diff:+.2%}, standard error {se:.2%}")
    if searched["n"] < 2 or random["n"] < 2:
        return "undecided", numbers + "; too few runs to tell"
    if diff > 2 * se:
        return "search beat random", numbers + "; the difference exceeds two standard errors"
    if diff < -2 * se:
        return "random beat search", numbers + "; the difference exceeds two standard errors"
    return ("no clear difference", numbers + "; within two standard errors: on this problem the "
            "search did not measurably beat random architectures of the same cost")


def _plot(history: list[dict[str, Any]], max_macs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = [h["generation"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(gens, [h["best"] for h in history], "o-", label="best of population")
    ax1.plot(gens, [h["mean"] for h in history], "s--", label="mean of population")
    ax1.plot(gens, [h["best_so_far"] for h in history], ":", label="best so far")
    ax1.set(xlabel="generation", ylabel="val accuracy (inherited weights)",
            title="SPOS evolution")
    ax1.legend()
    for h in history:
        ax2.scatter([h["generation"]] * len(h["macs"]), [2 * m / 1e3 for m in h["macs"]],
                    s=14, alpha=0.6, color="C0")
    ax2.axhline(2 * max_macs / 1e3, color="C3", ls="--", label="FLOPs limit")
    ax2.set(xlabel="generation", ylabel="kFLOPs per image (2 x MACs)",
            title="FLOPs of the population")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(result: dict[str, Any], history: list[dict[str, Any]]) -> str:
    r = result
    lines = [
        "# SPOS: single-path one-shot supernet + evolutionary search (digits 8x8)", "",
        f"Budget `{r['budget']}`, seed {r['seed']}, wall time {r['wall_s']:.1f} s.", "",
        "Search space: stem 3x3 conv 1->8, five choice blocks (8->8 s1, 8->16 s2, 16->16 s1, "
        "16->32 s2, 32->32 s1), each an inverted residual with kernel 3/5/7 and expansion 3/6, "
        f"or skip where the shape is kept; {r['space_size']:,} architectures, "
        f"{2 * r['macs_range'][0]:,}-{2 * r['macs_range'][1]:,} FLOPs per image "
        f"(2 x MACs). FLOPs limit: {2 * r['max_macs']:,} "
        f"({MACS_LIMIT_FRACTION:.0%} of the way from the cheapest to the most expensive).", "",
        "## 1. Supernet training (uniform single-path sampling)", "",
        f"{r['supernet']['steps']} SGD steps, one uniformly drawn path per step; loss "
        f"{r['supernet']['first_loss']:.3f} (first step) -> {r['supernet']['last_loss']:.3f} "
        "(mean of the last 10).", "",
        "## 2. Evolutionary search (inherited weights, BN recalibrated per candidate)", "",
        f"Population {r['config']['population']}, {r['config']['generations']} generations, "
        f"top-{r['config']['topk']} parents, mutation probability {MUTATION_PROB}, "
        f"{r['evaluated']} distinct candidates evaluated on the val split "
        f"after recalibrating BN on {r['config']['recalib_batches']} training batch(es).", "",
        "| generation | best val acc | mean val acc | best so far | FLOPs min-max |",
        "|---|---|---|---|---|",
    ]
    for h in history:
        lines.append(f"| {h['generation']} | {h['best']:.2%} | {h['mean']:.2%} | "
                     f"{h['best_so_far']:.2%} | {2 * min(h['macs']):,}-{2 * max(h['macs']):,} |")
    s, rnd = r["retrain"]["searched"], r["retrain"]["random"]
    lines += [
        "", f"Chosen: `{' '.join(r['architecture'])}`, {r['flops']:,} FLOPs, val accuracy with "
        f"inherited weights {r['val_acc']:.2%}, first reached in generation "
        f"{r['found_in_generation']} (generation 0 is random).", "",
        "![evolution](evolution.png)", "",
        "## 3. Retraining from scratch: searched vs random (same FLOPs limit)", "",
        f"{r['config']['retrain_epochs']} epoch(s) each. The searched architecture with "
        f"{s['test']['n']} seed(s); {rnd['test']['n']} random architectures drawn uniformly "
        "under the same limit, one seed each.", "",
        "| architecture | FLOPs | inherited val acc | retrained val acc | test acc |",
        "|---|---|---|---|---|",
    ]
    for i, run in enumerate(s["runs"]):
        lines.append(f"| searched (seed {i}) `{' '.join(r['architecture'])}` | {r['flops']:,} | "
                     f"{r['val_acc']:.2%} | {run['val']:.2%} | {run['test']:.2%} |")
    for run in rnd["runs"]:
        lines.append(f"| random `{' '.join(run['arch'])}` | {run['flops']:,} | "
                     f"{run['inherited_val']:.2%} | {run['val']:.2%} | {run['test']:.2%} |")
    lines += [
        "", f"**Verdict: {r['verdict']}.** {r['verdict_detail']}.", "",
        f"Kendall's tau between inherited-weight and retrained val accuracy over these "
        f"architectures: {r['kendall_tau']:.2f} (1 = the supernet ranks them exactly as "
        "training from scratch does; the ranking quality is what one-shot NAS rests on).", "",
        "The val split chose the architecture, so its retrained val accuracy is biased upwards; "
        "the test split, never used before this table, is the fair comparison. The random "
        "spread mixes the architecture and the seed.", "",
    ]
    if r["verdict"] != "search beat random":
        lines += [f"Test accuracy spread: {s['test']['std']:.2%} between seeds of the searched "
                  f"architecture, {rnd['test']['std']:.2%} between random ones. The search "
                  "showed no advantage over random architectures of the same cost in this run; "
                  "what it shows is the machinery (weight sharing, uniform sampling, BN "
                  "recalibration, evolution under a FLOPs limit).", ""]
    return "\n".join(lines)


def search(budget: str = "tiny", seed: int = 0, out: Path | None = None,
           progress: bool = True) -> dict:
    """Run SPOS end to end on the digits and write ``architecture.json``, ``evolution.png`` and
    ``report.md`` into ``out`` (if given).

    1. Train the supernet with uniform single-path sampling (one random choice per block and
       step, drawn from ``deepnotes.random``).
    2. Evolutionary search under the FLOPs limit; each candidate's fitness is its val accuracy
       with the inherited weights after :func:`recalibrate_bn` on a few fixed training batches.
    3. Retrain the best candidate from scratch (several seeds) and random candidates under the
       same limit, and compare their test accuracies honestly (:func:`_verdict`).

    Args:
        budget: "tiny" (seconds; for tests) or "small" (a few minutes on 2 cores).
        seed: seeds ``deepnotes.random`` at the start (and, offset, for each retraining).
        out: output folder (created); nothing is written when None.
        progress: show tqdm progress bars on stderr.

    Returns:
        A dict with the chosen ``architecture``, its ``macs``, ``flops`` and ``val_acc``
        (inherited weights), the retraining comparison, the verdict and the output ``files``.
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    cfg = BUDGETS[budget]
    start = time.perf_counter()
    manual_seed(seed)
    rng = default_generator()
    space = SearchSpace()
    data = digits_splits()
    lo, hi = space.macs_range()
    max_macs = int(lo + MACS_LIMIT_FRACTION * (hi - lo))

    def bar(total: int, desc: str) -> Any:
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, disable=not progress, leave=False)

    # 1. supernet training: a fresh uniform path for every batch.
    supernet = Supernet(space)
    steps = cfg["supernet_epochs"] * math.ceil(len(data.x_train) / cfg["batch_size"])
    steps = steps if cfg["supernet_max_steps"] is None else min(steps, cfg["supernet_max_steps"])
    with bar(steps, "spos supernet") as pbar:
        losses = train_steps(supernet, lambda x: supernet(x, space.sample(rng)), data,
                             epochs=cfg["supernet_epochs"], batch_size=cfg["batch_size"],
                             lr=SUPERNET_LR, weight_decay=WEIGHT_DECAY,
                             max_steps=cfg["supernet_max_steps"],
                             on_step=lambda loss: (pbar.update(1),
                                                   pbar.set_postfix(loss=f"{loss:.3f}")))

    # 2. evolution; the BN batches are fixed so that every candidate is judged alike.
    b = cfg["batch_size"]
    calib = [Tensor._wrap(data.x_train[i * b:(i + 1) * b]) for i in range(cfg["recalib_batches"])]

    def fitness(arch: Arch) -> float:
        recalibrate_bn(supernet, arch, calib)
        return accuracy(lambda x: supernet(x, arch), data.x_val, data.y_val)

    with bar(cfg["generations"], "spos evolution") as pbar:
        evo = evolution_search(space, fitness, max_macs, population=cfg["population"],
                               generations=cfg["generations"], topk=cfg["topk"],
                               mutation_prob=MUTATION_PROB, rng=rng,
                               progress=lambda g, rec: (pbar.update(1), pbar.set_postfix(
                                   best=f"{rec['best_so_far']:.3f}")))
    best = evo.best

    # 3. retrain from scratch: the searched architecture over seeds, random ones under the limit.
    randoms = [sample_constrained(space, max_macs, rng) for _ in range(cfg["random_archs"])]
    inherited = [evo.evaluated[a] if a in evo.evaluated else fitness(a) for a in randoms]

    def retrain(arch: Arch, run_seed: int) -> dict[str, float]:
        manual_seed(run_seed)
        net = ChildNet(arch, space)
        train_steps(net, net, data, epochs=cfg["retrain_epochs"], batch_size=cfg["batch_size"],
                    lr=RETRAIN_LR, weight_decay=WEIGHT_DECAY, max_steps=cfg["retrain_max_steps"],
                    on_step=lambda loss: None)
        return {"val": accuracy(net, data.x_val, data.y_val),
                "test": accuracy(net, data.x_test, data.y_test)}

    runs_s, runs_r = [], []
    with bar(cfg["seeds"] + len(randoms), "spos retrain") as pbar:
        for i in range(cfg["seeds"]):
            runs_s.append(retrain(best, 1000 * (seed + 1) + i))
            pbar.update(1)
        for i, arch in enumerate(randoms):
            run = retrain(arch, 1000 * (seed + 1) + 500 + i)
            runs_r.append({"arch": list(arch), "flops": 2 * space.macs(arch),
                           "inherited_val": inherited[i], **run})
            pbar.update(1)
    searched = {"runs": runs_s, "test": _summary_stats([r["test"] for r in runs_s]),
                "val": _summary_stats([r["val"] for r in runs_s])}
    random_ = {"runs": runs_r, "test": _summary_stats([r["test"] for r in runs_r]),
               "val": _summary_stats([r["val"] for r in runs_r])}
    verdict, detail = _verdict(searched["test"], random_["test"])
    tau = _kendall_tau([evo.best_fitness] + inherited,
                       [searched["val"]["mean"]] + [r["val"] for r in runs_r])

    result: dict[str, Any] = {
        "method": "spos", "budget": budget, "seed": seed, "architecture": list(best),
        "macs": space.macs(best), "flops": 2 * space.macs(best), "val_acc": evo.best_fitness,
        "max_macs": max_macs, "max_flops": 2 * max_macs, "macs_range": [lo, hi],
        "space_size": space.size(), "config": dict(cfg),
        "supernet": {"steps": len(losses), "first_loss": losses[0],
                     "last_loss": float(np.mean(losses[-10:]))},
        "evaluated": len(evo.evaluated),
        "found_in_generation": next(h["generation"] for h in evo.generations
                                    if h["best_so_far"] == evo.best_fitness),
        "generations": [{k: h[k] for k in ("generation", "best", "mean", "best_so_far")}
                        for h in evo.generations],
        "retrain": {"searched": searched, "random": random_},
        "verdict": verdict, "verdict_detail": detail, "kendall_tau": tau, "files": {},
    }
    result["wall_s"] = time.perf_counter() - start
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"architecture": out / "architecture.json", "plot": out / "evolution.png",
                 "report": out / "report.md"}
        _plot(evo.generations, max_macs, files["plot"])
        arch_json = {"method": "spos", "architecture": list(best),
                     "blocks": [{"c_in": s.c_in, "c_out": s.c_out, "stride": s.stride,
                                 "choice": c, "kernel_size": (CHOICES[c] or (None, None))[0],
                                 "expand_ratio": (CHOICES[c] or (None, None))[1]}
                                for s, c in zip(space.specs, best)],
                     "macs": result["macs"], "flops": result["flops"],
                     "max_flops": result["max_flops"], "val_acc": result["val_acc"],
                     "budget": budget, "seed": seed}
        files["architecture"].write_text(json.dumps(arch_json, indent=2) + "\n")
        files["report"].write_text(_report(result, evo.generations))
        result["files"] = {k: str(v) for k, v in files.items()}
    return result
