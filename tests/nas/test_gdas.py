"""SNAS/GDAS: F.gumbel_softmax against torch (exactly, given the same noise, and statistically
against torch's own sampler), temperature annealing, the sampled mixed op, and the cost term
(cost_op * prob_op).sum() with per-op FLOPs from deepnotes.analysis."""

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes.analysis import conv_flops
from deepnotes.nas.gdas import (
    GumbelMixedOp,
    GumbelNetwork,
    cost_loss,
    normalised_costs,
    op_costs,
    tau_schedule,
)
from deepnotes.nas.search_space import PRIMITIVES, SearchNetwork
from deepnotes.nn import functional as F


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("tau,dim", [(1.0, -1), (0.5, 0), (3.0, 1)])
def test_gumbel_softmax_exact_given_the_same_noise(hard, tau, dim, rng):
    logits = rng.standard_normal((4, 5))
    c = rng.standard_normal((4, 5))
    dn.manual_seed(7)
    x = dn.tensor(logits, requires_grad=True)
    y = F.gumbel_softmax(x, tau=tau, hard=hard, dim=dim)
    (y * dn.tensor(c)).sum().backward()
    # the same Gumbel noise, -log(Exp(1)), drawn again from the re-seeded generator
    dn.manual_seed(7)
    g = -np.log(dn.random.default_generator().exponential(size=logits.shape))
    tx = torch.tensor(logits, requires_grad=True)
    soft = torch.softmax((tx + torch.tensor(g)) / tau, dim)
    if hard:
        one_hot = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
        ty = one_hot - soft.detach() + soft  # torch's own straight-through formula
    else:
        ty = soft
    (ty * torch.tensor(c)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if hard:
        assert set(np.unique(y.data)) == {0.0, 1.0} and np.all(y.data.sum(axis=dim) == 1)


def test_gumbel_softmax_statistics_match_torch():
    n, logits = 20000, np.array([1.0, 0.0, -1.0, 0.5])
    base = np.tile(logits, (n, 1))
    dn.manual_seed(0)
    torch.manual_seed(0)
    c = np.array([1.0, -2.0, 0.5, 3.0])
    # hard samples: category frequencies = softmax(logits) (Gumbel-max), for both samplers
    x = dn.tensor(base, requires_grad=True)
    y = F.gumbel_softmax(x, tau=0.7, hard=True)
    (y * dn.tensor(c)).sum().backward()
    tx = torch.tensor(base, requires_grad=True)
    ty = torch.nn.functional.gumbel_softmax(tx, tau=0.7, hard=True)
    (ty * torch.tensor(c)).sum().backward()
    p = np.exp(logits) / np.exp(logits).sum()
    sigma = np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_less(np.abs(y.data.mean(0) - p), 5 * sigma)
    np.testing.assert_array_less(np.abs(y.data.mean(0) - ty.detach().numpy().mean(0)),
                                 5 * np.sqrt(2) * sigma)
    # straight-through gradients: same mean per logit within 5 standard errors
    ours_g, torch_g = x.grad.data, tx.grad.numpy()
    se = np.sqrt(ours_g.var(0) / n + torch_g.var(0) / n)
    np.testing.assert_array_less(np.abs(ours_g.mean(0) - torch_g.mean(0)), 5 * se + 1e-12)
    # soft samples: same mean of every coordinate
    ys = F.gumbel_softmax(dn.tensor(base), tau=2.0).data
    ts = torch.nn.functional.gumbel_softmax(torch.tensor(base), tau=2.0).numpy()
    se = np.sqrt(ys.var(0) / n + ts.var(0) / n)
    np.testing.assert_array_less(np.abs(ys.mean(0) - ts.mean(0)), 5 * se)


def test_gumbel_softmax_checks_arguments():
    with pytest.raises(ValueError, match="tau must be positive, got 0"):
        F.gumbel_softmax(dn.zeros(3), tau=0)
    with pytest.raises(TypeError, match="argument 'logits' must be Tensor"):
        F.gumbel_softmax(np.zeros(3))
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.gumbel_softmax(dn.zeros(3), dim=1)


def test_tau_schedule_is_linear_from_10_to_0_1():
    taus = [tau_schedule(e, 5) for e in range(5)]
    np.testing.assert_allclose(taus, [10.0, 7.525, 5.05, 2.575, 0.1])
    assert tau_schedule(0, 1) == 0.1


def test_gumbel_mixed_op_evaluates_only_the_sampled_op(rng):
    mixed = GumbelMixedOp(4, 1).double()
    x = dn.tensor(rng.standard_normal((2, 4, 5, 5)))
    k = PRIMITIVES.index("sep_conv_3x3")
    logits = dn.tensor(rng.standard_normal(len(PRIMITIVES)), requires_grad=True)
    one_hot = np.eye(len(PRIMITIVES))[k]
    soft = dn.softmax(logits, dim=0)
    w = dn.tensor(one_hot) - soft.detach() + soft   # value one-hot, gradient of soft
    out = mixed(x, w)
    np.testing.assert_allclose(out.data, mixed._ops[k](x).data, rtol=1e-12)
    out.sum().backward()
    for i, op in enumerate(mixed._ops):
        for p in op.parameters():
            assert (p.grad is not None) == (i == k)
    # d out.sum() / d logits = d soft_k / d logits * op_k(x).sum()
    s, f = soft.data, mixed._ops[k](x).data.sum()
    np.testing.assert_allclose(logits.grad.data, f * s[k] * (np.eye(len(s))[k] - s), rtol=1e-9)
    none = np.eye(len(PRIMITIVES))[0]
    assert np.all(mixed(x, dn.tensor(none)).data == 0)


def test_gumbel_network_samples_in_training_softmax_in_eval(rng):
    dn.manual_seed(0)
    net = GumbelNetwork(c=4, layers=2, steps=2, tau=1.0)
    w = net.op_weights("normal").data
    assert np.all(w.sum(axis=1) == 1) and set(np.unique(w)) == {0.0, 1.0}
    net.eval()  # no noise: GDAS takes the argmax op of each edge, SNAS the softmax mixture
    a = net.alphas_normal.data
    np.testing.assert_allclose(net.op_weights("normal").data, np.eye(8)[a.argmax(-1)], atol=1e-7)
    snas = GumbelNetwork(c=4, layers=2, steps=2, hard=False).eval()
    np.testing.assert_allclose(snas.op_weights("reduce").data,
                               dn.softmax(snas.alphas_reduce, dim=-1).data)


def _dil_flops(c, h, k, stride, dilation):
    pad = dilation * (k - 1) // 2
    out = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    return (c * h * h                                            # ReLU on the input
            + conv_flops(c, c, k, out, groups=c) + conv_flops(c, c, 1, out)
            + 2 * c * out * out), out                            # BN: a*x + b


def _sep_flops(c, h, k, stride):
    first, out = _dil_flops(c, h, k, stride, 1)
    return first + _dil_flops(c, out, k, 1, 1)[0]


def test_op_costs_are_the_analysis_flops_of_each_op():
    dn.manual_seed(0)
    net = SearchNetwork(c=8, layers=3, steps=2)  # normal 8ch 8x8, reduce 16ch 8->4, normal 16ch 4x4
    costs = op_costs(net, image_size=8)
    i = PRIMITIVES.index
    # normal cells: every edge stride 1; two cells: (C=8, 8x8) and (C=16, 4x4)
    assert costs["normal"][0, i("sep_conv_3x3")] == (_sep_flops(8, 8, 3, 1)
                                                     + _sep_flops(16, 4, 3, 1))
    assert costs["normal"][3, i("dil_conv_5x5")] == (_dil_flops(8, 8, 5, 1, 2)[0]
                                                     + _dil_flops(16, 4, 5, 1, 2)[0])
    # max pool 3x3 + BN: 8 comparisons and 2 flops per output element
    assert costs["normal"][0, i("max_pool_3x3")] == 10 * 8 * 64 + 10 * 16 * 16
    # reduction cell (C=16, input 8x8): edges from c_{k-2}, c_{k-1} (0, 1, 2, 3) have stride 2,
    # edge 4 (node 0 -> node 1) stride 1 on 4x4
    assert costs["reduce"][1, i("dil_conv_3x3")] == _dil_flops(16, 8, 3, 2, 2)[0]
    assert costs["reduce"][2, i("sep_conv_5x5")] == _sep_flops(16, 8, 5, 2)
    assert costs["reduce"][4, i("sep_conv_5x5")] == _sep_flops(16, 4, 5, 1)
    # FactorizedReduce: ReLU + two 1x1 stride-2 convs to C/2 + BN
    assert costs["reduce"][0, i("skip_connect")] == (16 * 64 + 2 * conv_flops(16, 8, 1, 4)
                                                     + 2 * 16 * 16)
    assert np.all(costs["normal"][:, i("none")] == 0)
    assert np.all(costs["normal"][:, i("skip_connect")] == 0)


def test_cost_loss_value_and_gradient_match_torch(rng):
    dn.manual_seed(0)
    net = SearchNetwork(c=4, layers=2, steps=2)
    costs = normalised_costs(op_costs(net))
    loss = cost_loss(net, costs)
    loss.backward()
    total = 0
    for kind in ("normal", "reduce"):
        a = torch.tensor(getattr(net, f"alphas_{kind}").data.astype(np.float64),
                         requires_grad=True)
        term = (torch.tensor(costs[kind]) * torch.softmax(a, -1)).sum()
        term.backward()
        total += term.item()
        np.testing.assert_allclose(getattr(net, f"alphas_{kind}").grad.data, a.grad.numpy(),
                                   rtol=1e-5, atol=1e-7)
    assert loss.item() == pytest.approx(total, rel=1e-6)
    # normalised: the most expensive choice on every edge costs 1 in all
    assert sum(c.max(axis=1).sum() for c in costs.values()) == pytest.approx(1.0)
