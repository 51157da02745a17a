"""SPOS: choice blocks, the supernet's single paths, uniform sampling, evolution under a FLOPs
limit, BN recalibration and the end-to-end ``search``."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes.analysis import summary
from deepnotes.nas import spos
from deepnotes.nas.spos import (
    CHOICES,
    ChildNet,
    ChoiceBlock,
    SearchSpace,
    Supernet,
    block_macs,
    crossover,
    evolution_search,
    mutate,
    recalibrate_bn,
)
from deepnotes.nn.layers.norm import _BatchNorm

SPACE = SearchSpace()
ALL_BLOCK_CHOICES = [(i, c) for i, s in enumerate(SPACE.specs) for c in s.choices]


def _images(rng: np.random.Generator, n: int, size: int = 8, c: int = 1) -> dn.Tensor:
    return dn.tensor(rng.standard_normal((n, c, size, size)).astype(np.float32))


def test_space_layout():
    strides = {s.stride for s in SPACE.specs}
    assert strides == {1, 2}
    for s in SPACE.specs:   # skip only where the shape is kept, all six inverted residuals always
        assert ("skip" in s.choices) == (s.stride == 1 and s.c_in == s.c_out)
        assert len(s.choices) == 7 if "skip" in s.choices else len(s.choices) == 6
    assert SPACE.size() == 7 ** 3 * 6 ** 2


@pytest.mark.parametrize("block,choice", ALL_BLOCK_CHOICES)
def test_choice_output_shapes(block, choice, rng):
    spec = SPACE.specs[block]
    x = _images(rng, 3, spec.size, spec.c_in)
    y = ChoiceBlock(spec)(x, choice)
    assert y.shape == (3, spec.c_out, spec.size_out, spec.size_out)
    # odd sizes too: every choice of a block must give the same shape
    other = spos.BlockSpec(spec.c_in, spec.c_out, spec.stride, 5)
    assert ChoiceBlock(other)(_images(rng, 2, 5, spec.c_in), choice).shape == (
        2, spec.c_out, 3 if spec.stride == 2 else 5, 3 if spec.stride == 2 else 5)


def test_choice_block_rejects_a_bad_choice(rng):
    block = ChoiceBlock(SPACE.specs[1])           # stride 2: no skip
    with pytest.raises(ValueError, match="skip"):
        block(_images(rng, 1, 8, 8), "skip")
    with pytest.raises(ValueError, match="must have 5 choices"):
        SPACE.check(("k3e3",))


def _torch_block(block: spos.MBBlock) -> torch.nn.Module:
    """The same inverted residual written in torch, with the block's weights copied in."""
    conv = block.conv
    hidden, c_in = conv[0].weight.shape[:2]
    c_out, k, s = conv[6].weight.shape[0], conv[3].kernel_size[0], conv[3].stride[0]
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(c_in, hidden, 1, bias=False), torch.nn.BatchNorm2d(hidden),
        torch.nn.ReLU6(), torch.nn.Conv2d(hidden, hidden, k, s, k // 2, groups=hidden, bias=False),
        torch.nn.BatchNorm2d(hidden), torch.nn.ReLU6(), torch.nn.Conv2d(hidden, c_out, 1,
                                                                        bias=False),
        torch.nn.BatchNorm2d(c_out)).double()
    seq.load_state_dict({k: torch.tensor(v.data, dtype=torch.float64)
                         for k, v in conv.state_dict().items()})
    return seq


@pytest.mark.parametrize("block,choice", [(0, "k7e6"), (1, "k5e3"), (3, "k3e6"), (4, "k5e6")])
def test_inverted_residual_matches_torch(block, choice, rng):
    spec = SPACE.specs[block]
    ours = spos.make_choice(spec, choice)
    for p in ours.parameters():                   # non-trivial BN affine parameters
        p.data[...] = rng.standard_normal(p.shape)
    theirs = _torch_block(ours)
    x = rng.standard_normal((4, spec.c_in, spec.size, spec.size))
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt)
    if spec.stride == 1 and spec.c_in == spec.c_out:
        expected = xt + expected
    ours.double()
    xd = dn.tensor(x, requires_grad=True)
    y = ours(xd)
    np.testing.assert_allclose(y.data, expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(y.shape)
    (y * dn.tensor(g)).sum().backward()
    (expected * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_path_equals_standalone_network(seed, rng):
    dn.manual_seed(seed)
    supernet = Supernet(SPACE)
    for p in supernet.parameters():               # BN affine away from 1/0 as well
        p.data[...] += 0.1 * rng.standard_normal(p.shape).astype(p.data.dtype)
    for _ in range(2):                            # a few paths through, so running stats differ
        with dn.no_grad():
            supernet(_images(rng, 8), SPACE.sample())
    arch = SPACE.sample()
    child = ChildNet(arch, SPACE)                 # built from the choices alone
    child.load_state_dict({k: np.array(v.data)
                           for k, v in supernet.child_state_dict(arch).items()})
    assert set(child.state_dict()) == set(supernet.child_state_dict(arch))
    x = _images(rng, 6)
    for mode in ("eval", "train"):
        getattr(supernet, mode)()
        getattr(child, mode)()
        np.testing.assert_array_equal(supernet(x, arch).data, child(x).data)
    # and the gradients of the shared weights are the child's
    supernet.zero_grad()
    child.zero_grad()
    y = _images(rng, 6).data[:, 0, 0, 0].astype(np.int64) % 10
    F.cross_entropy(supernet(x, arch), dn.tensor(y)).backward()
    F.cross_entropy(child(x), dn.tensor(y)).backward()
    super_params = dict(supernet.named_parameters())
    for name, p in child.named_parameters():
        key = name
        if name.startswith("blocks."):
            _, i, rest = name.split(".", 2)
            key = f"blocks.{i}.choices.{arch[int(i)]}.{rest}"
        np.testing.assert_allclose(super_params[key].grad.data, p.grad.data, rtol=1e-5,
                                   atol=1e-6)
    # single path: choices off the path got no gradient at all
    for name, p in super_params.items():
        if name.startswith("blocks."):
            i, choice = name.split(".")[1], name.split(".")[3]
            assert (p.grad is None) == (arch[int(i)] != choice), name


def test_uniform_sampling_chi_square():
    dn.manual_seed(123)
    draws = [SPACE.sample() for _ in range(6000)]
    for i, spec in enumerate(SPACE.specs):
        counts = [sum(d[i] == c for d in draws) for c in spec.choices]
        assert chisquare(counts).pvalue > 1e-3, (i, counts)
    # independent across blocks: the joint counts of blocks 0 and 1 are uniform too
    pairs = list(product(SPACE.specs[0].choices, SPACE.specs[1].choices))
    counts = [sum((d[0], d[1]) == p for d in draws) for p in pairs]
    assert chisquare(counts).pvalue > 1e-3
    # the test has power: a sampler that favours one choice a little fails it
    biased = np.array(counts[:7]) + np.array([120, 0, 0, 0, 0, 0, 0])
    assert chisquare(biased).pvalue < 1e-3


def test_supernet_training_samples_a_path_per_step(monkeypatch):
    seen = []
    original = SearchSpace.sample

    def spy(self, rng=None):
        arch = original(self, rng)
        seen.append(arch)
        return arch

    monkeypatch.setattr(SearchSpace, "sample", spy)
    dn.manual_seed(0)
    data = spos.digits_splits()
    net = Supernet(SPACE)
    losses = spos.train_steps(net, lambda x: net(x, SPACE.sample()), data, epochs=1,
                              batch_size=64, lr=0.05, weight_decay=0.0, max_steps=5)
    assert len(losses) == 5 and len(seen) == 5 and len(set(seen)) > 1


archs = st.tuples(*[st.sampled_from(s.choices) for s in SPACE.specs])


@given(a=archs, b=archs, prob=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_mutation_and_crossover_keep_architectures_valid(a, b, prob, seed):
    rng = np.random.default_rng(seed)
    m = mutate(SPACE, a, prob, rng)
    c = crossover(SPACE, a, b, rng)
    assert SPACE.is_valid(m) and SPACE.is_valid(c)
    assert all(ci in (ai, bi) for ci, ai, bi in zip(c, a, b))
    assert mutate(SPACE, a, 0.0, rng) == a


def test_mutation_probability():
    rng = np.random.default_rng(0)
    parent = tuple(s.choices[0] for s in SPACE.specs)
    changed = np.mean([[g != p for g, p in zip(mutate(SPACE, parent, 0.5, rng), parent)]
                       for _ in range(4000)])
    # a gene is redrawn with p = 0.5 and then differs with p = 6/7 or 5/6
    expected = 0.5 * np.mean([1 - 1 / len(s.choices) for s in SPACE.specs])
    assert abs(changed - expected) < 0.02


@pytest.mark.parametrize("arch", [("skip", "k3e3", "skip", "k3e3", "skip"),
                                  ("k7e6",) * 5, ("k5e3", "k7e6", "k3e6", "k5e6", "k7e3")])
def test_macs_formula_equals_analysis_summary(arch):
    net = ChildNet(arch, SPACE)
    assert SPACE.macs(arch) == summary(net, (1, 8, 8)).totals["macs"]


def test_block_macs_every_choice_against_summary():
    for spec in SPACE.specs:
        block = ChoiceBlock(spec)
        for choice in spec.choices:
            counted = summary(block.choices[choice], (spec.c_in, spec.size, spec.size))
            assert block_macs(spec, choice) == counted.totals["macs"], (spec, choice)


def test_macs_range_is_exact():
    lo, hi = SPACE.macs_range()
    assert lo == SPACE.macs(("skip", "k3e3", "skip", "k3e3", "skip"))
    assert hi == SPACE.macs(("k7e6",) * 5)


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_every_evaluated_candidate_respects_the_flops_limit(fraction):
    lo, hi = SPACE.macs_range()
    limit = int(lo + fraction * (hi - lo))
    evaluated = []

    target = ("k3e6", "k3e3", "k5e3", "k3e3", "k3e3")    # within both limits

    def fitness(arch):                             # genes shared with the target, + cost
        evaluated.append(arch)
        return sum(a == t for a, t in zip(arch, target)) + SPACE.macs(arch) / hi

    result = evolution_search(SPACE, fitness, limit, population=8, generations=4, topk=3,
                              mutation_prob=0.3, rng=np.random.default_rng(1))
    assert len(evaluated) == len(set(evaluated)) == len(result.evaluated)    # no re-evaluation
    assert all(SPACE.is_valid(a) and SPACE.macs(a) <= limit for a in evaluated)
    for gen in result.generations:
        assert max(gen["macs"]) <= limit and len(gen["population"]) == 8
    best_so_far = [g["best_so_far"] for g in result.generations]
    assert best_so_far == sorted(best_so_far)
    assert result.best_fitness == max(result.evaluated.values())
    # selection works: the last population is fitter than the first (random) one
    if fraction == 0.3:                            # (the tight limit leaves few candidates)
        assert result.generations[-1]["mean"] > result.generations[0]["mean"]


def test_evolution_rejects_an_impossible_limit():
    lo, _ = SPACE.macs_range()
    with pytest.raises(ValueError, match="at least"):
        evolution_search(SPACE, lambda a: 0.0, lo - 1, population=4, generations=1, topk=2)


def test_bn_recalibration_gives_the_candidates_batch_statistics(rng):
    dn.manual_seed(0)
    supernet = Supernet(SPACE)
    for _ in range(3):                              # mixed statistics from other paths
        with dn.no_grad():
            supernet(_images(rng, 16), SPACE.sample())
    arch = ("k5e6", "k3e3", "skip", "k7e3", "k3e6")
    batches = [_images(rng, 16), _images(rng, 16)]
    # direct computation on the stand-alone network: the inputs of each BN in training mode
    child = ChildNet(arch, SPACE)
    child.load_state_dict({k: np.array(v.data)
                           for k, v in supernet.child_state_dict(arch).items()})
    child.train()
    inputs: dict[str, list[np.ndarray]] = {}
    bn_names = [n for n, m in child.named_modules() if isinstance(m, _BatchNorm)]
    modules = dict(child.named_modules())
    for name in bn_names:
        modules[name].register_forward_hook(
            lambda m, inp, out, name=name: inputs.setdefault(name, []).append(
                np.array(inp[0].data, dtype=np.float64)))
    with dn.no_grad():
        for x in batches:
            child(x)
    recalibrate_bn(supernet, arch, batches)
    assert not supernet.training
    state = supernet.child_state_dict(arch)
    for name in bn_names:
        xs = inputs[name]
        mean = np.mean([x.mean(axis=(0, 2, 3)) for x in xs], axis=0)
        var = np.mean([x.var(axis=(0, 2, 3), ddof=1) for x in xs], axis=0)
        np.testing.assert_allclose(state[name + ".running_mean"].data, mean, rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(state[name + ".running_var"].data, var, rtol=1e-4, atol=1e-5)
        assert int(state[name + ".num_batches_tracked"].data) == 2
    assert all(m.momentum == 0.1 for m in supernet.modules() if isinstance(m, _BatchNorm))


def test_search_tiny_writes_its_files(tmp_path):
    result = spos.search("tiny", seed=0, out=tmp_path, progress=False)
    arch = tuple(result["architecture"])
    assert SPACE.is_valid(arch)
    assert result["flops"] == 2 * SPACE.macs(arch) <= result["max_flops"]
    saved = json.loads((tmp_path / "architecture.json").read_text())
    assert saved["architecture"] == list(arch) and saved["flops"] == result["flops"]
    assert saved["val_acc"] == result["val_acc"]
    assert [b["choice"] for b in saved["blocks"]] == list(arch)
    assert (tmp_path / "evolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "Verdict" in report and " ".join(arch) in report
    assert result["verdict"] in ("search beat random", "random beat search",
                                 "no clear difference", "undecided")
    # reproducible: the same seed gives the same search
    again = spos.search("tiny", seed=0, out=None, progress=False)
    assert again["architecture"] == result["architecture"]
    assert again["val_acc"] == result["val_acc"]


def test_search_rejects_an_unknown_budget():
    with pytest.raises(ValueError, match="budget"):
        spos.search("huge", progress=False)


def test_choice_table():
    assert {CHOICES[c] for c in CHOICES if c != "skip"} == {(k, e) for k in (3, 5, 7)
                                                           for e in (3, 6)}
