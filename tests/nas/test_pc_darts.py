"""PC-DARTS: the partial-channel mixed op (split, bypass, channel shuffle) against a reference
written from the definition, and edge normalisation."""

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes.nas.pc_darts import PartialMixedOp, PCDartsNetwork, node_softmax
from deepnotes.nas.search_space import PRIMITIVES


def _shuffle(y, groups):
    """Channel shuffle from its definition: channel i*(C/g) + j moves to j*g + i."""
    n, c = y.shape[:2]
    out = np.empty_like(y)
    for i in range(groups):
        for j in range(c // groups):
            out[:, j * groups + i] = y[:, i * (c // groups) + j]
    return out


@pytest.mark.parametrize("stride,size", [(1, 6), (2, 6), (2, 5)])
@pytest.mark.parametrize("k", [2, 4])
def test_partial_mixed_op_matches_definition(stride, size, k, rng):
    c = 8
    op = PartialMixedOp(c, stride, k).double()
    x = rng.standard_normal((2, c, size, size))
    w = dn.softmax(dn.tensor(rng.standard_normal(len(PRIMITIVES))), dim=0)
    out = op(dn.tensor(x), w).data
    h = -(-size // stride)
    assert out.shape == (2, c, h, h)
    searched = op.mixed(dn.tensor(x[:, :c // k]), w).data            # the mixed op on C/K channels
    assert op.mixed._ops[4]._modules["op"][0].op[1].in_channels == c // k
    rest = torch.tensor(x[:, c // k:])
    if stride == 2:  # the bypass is max-pooled to the new size (3x3 pad 1 for odd sizes)
        rest = (torch.nn.functional.max_pool2d(rest, 2, 2) if size % 2 == 0
                else torch.nn.functional.max_pool2d(rest, 3, 2, 1))
    expected = _shuffle(np.concatenate([searched, rest.numpy()], axis=1), k)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    if stride == 1:  # input channel C/K (first bypassed one) lands on output channel 1
        np.testing.assert_array_equal(out[:, 1], x[:, c // k])


def test_partial_mixed_op_checks_k():
    with pytest.raises(ValueError, match=r"channels \(6\) must be divisible by k \(4\)"):
        PartialMixedOp(6, 1, 4)


def test_edge_normalisation_is_a_softmax_per_node(rng):
    beta_np = rng.standard_normal(9)
    beta = dn.tensor(beta_np, requires_grad=True)
    weights = node_softmax(beta, steps=3)
    values = np.array([w.item() for w in weights])
    tb = torch.tensor(beta_np, requires_grad=True)
    expected = torch.cat([torch.softmax(tb[0:2], 0), torch.softmax(tb[2:5], 0),
                          torch.softmax(tb[5:9], 0)])
    np.testing.assert_allclose(values, expected.detach().numpy(), rtol=1e-12)
    c = rng.standard_normal(9)
    sum(w * float(ci) for w, ci in zip(weights, c)).backward()
    (expected * torch.tensor(c)).sum().backward()
    np.testing.assert_allclose(beta.grad.data, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_pc_darts_network_has_betas_and_they_learn(rng):
    dn.manual_seed(0)
    net = PCDartsNetwork(c=8, layers=2, steps=2, k=2)
    names = [n for n, _ in net.named_parameters() if n.startswith(("alphas", "betas"))]
    assert sorted(names) == ["alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"]
    assert len(net.arch_parameters()) == 4
    x = dn.tensor(rng.standard_normal((3, 1, 8, 8)).astype(np.float32))
    dn.nn.functional.cross_entropy(net(x), dn.tensor(np.array([0, 1, 2]))).backward()
    assert np.abs(net.betas_normal.grad.data).sum() > 0
    w = net.genotype_weights()
    assert len(w["normal_edges"]) == 5
    np.testing.assert_allclose(sum(w["normal_edges"][:2]), 1.0, rtol=1e-6)
