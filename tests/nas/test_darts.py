"""DARTS' second-order step: the finite-difference Hessian-vector product and the unrolled
architecture gradient against PyTorch's exact ones (double backward, create_graph=True)."""

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes.nas.darts import finite_difference_hvp, unrolled_arch_grad
from deepnotes.nn import functional as F


def _problem(rng):
    """A tiny two-op 'mixed' model: out = sum_k softmax(alpha)_k * tanh(x @ W_k), MSE loss,
    with separate train and validation batches."""
    return {
        "w": rng.standard_normal((2, 3, 2)) * 0.7,
        "alpha": rng.standard_normal(2) * 0.5,
        "xt": rng.standard_normal((5, 3)), "yt": rng.standard_normal((5, 2)),
        "xv": rng.standard_normal((4, 3)), "yv": rng.standard_normal((4, 2)),
    }


def _ours(p):
    w = dn.tensor(p["w"], requires_grad=True)
    a = dn.tensor(p["alpha"], requires_grad=True)

    def loss(x, y):
        def fn():
            s = F.softmax(a, dim=0)
            out = s[0] * dn.tanh(dn.tensor(x) @ w[0]) + s[1] * dn.tanh(dn.tensor(x) @ w[1])
            return ((out - dn.tensor(y)) ** 2).mean()
        return fn

    return w, a, loss(p["xt"], p["yt"]), loss(p["xv"], p["yv"])


def _torch_loss(w, a, x, y):
    s = torch.softmax(a, 0)
    out = s[0] * torch.tanh(torch.tensor(x) @ w[0]) + s[1] * torch.tanh(torch.tensor(x) @ w[1])
    return ((out - torch.tensor(y)) ** 2).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finite_difference_hvp_matches_exact(seed):
    p = _problem(np.random.default_rng(seed))
    v = np.random.default_rng(seed + 10).standard_normal(p["w"].shape)
    w, a, train_loss, _ = _ours(p)
    ours = finite_difference_hvp(train_loss, [w], [a], [v])[0]
    assert np.array_equal(w.data, p["w"])  # weights restored
    tw = torch.tensor(p["w"], requires_grad=True)
    ta = torch.tensor(p["alpha"], requires_grad=True)
    (g_w,) = torch.autograd.grad(_torch_loss(tw, ta, p["xt"], p["yt"]), tw, create_graph=True)
    (exact,) = torch.autograd.grad((g_w * torch.tensor(v)).sum(), ta)  # d/da (grad_w L . v)
    # DARTS' eps = 0.01 / ||v||: within a few 1e-3 relative (the error is O(eps^2))
    np.testing.assert_allclose(ours, exact.numpy(), rtol=5e-3, atol=1e-9)
    # a 100x smaller eps is 1e4 x closer: the central difference converges to the exact value
    fine = finite_difference_hvp(train_loss, [w], [a], [v], eps_scale=1e-4)[0]
    np.testing.assert_allclose(fine, exact.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_unrolled_arch_grad_matches_exact(seed, weight_decay):
    p = _problem(np.random.default_rng(seed))
    xi = 0.5
    w, a, train_loss, val_loss = _ours(p)
    ours = unrolled_arch_grad(train_loss, val_loss, [w], [a], xi, weight_decay=weight_decay)[0]
    assert np.array_equal(w.data, p["w"])
    # exact: differentiate L_val(w - xi (grad_w L_train + wd w), alpha) through the step
    tw = torch.tensor(p["w"], requires_grad=True)
    ta = torch.tensor(p["alpha"], requires_grad=True)
    (g_w,) = torch.autograd.grad(_torch_loss(tw, ta, p["xt"], p["yt"]), tw, create_graph=True)
    w_prime = tw - xi * (g_w + weight_decay * tw)
    (exact,) = torch.autograd.grad(_torch_loss(w_prime, ta, p["xv"], p["yv"]), ta)
    np.testing.assert_allclose(ours, exact.numpy(), rtol=1e-3, atol=1e-9)
    # the first-order gradient (w' -> w, no Hessian term) is measurably different here
    (first,) = torch.autograd.grad(_torch_loss(tw.detach(), ta, p["xv"], p["yv"]), ta)
    assert np.abs(first.numpy() - exact.numpy()).max() > 1e-3


@pytest.mark.parametrize("second_order", [False, True])
def test_architect_step_moves_only_alpha(second_order, rng):
    from deepnotes.nas.darts import Architect
    from deepnotes.nas.search_space import SearchNetwork
    from deepnotes.optim import SGD

    dn.manual_seed(0)
    net = SearchNetwork(c=4, layers=2, steps=2)
    w_opt = SGD(net.weights(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    arch = Architect(net, second_order=second_order, lr=0.01)
    x = [dn.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32)) for _ in range(2)]
    y = [dn.tensor(rng.integers(0, 10, 4)) for _ in range(2)]
    before_w = [p.data.copy() for p in net.weights()]
    before_b = [b.data.copy() for b in net.buffers()]
    before_a = [a.data.copy() for a in net.arch_parameters()]
    arch.step(x[0], y[0], x[1], y[1], xi=0.1, w_optimizer=w_opt)
    assert all(np.array_equal(p.data, b) for p, b in zip(net.weights(), before_w))
    assert all(p.grad is None for p in (*net.weights(), *net.arch_parameters()))
    if second_order:  # the extra passes' running statistics are rolled back
        assert all(np.array_equal(b.data, s) for b, s in zip(net.buffers(), before_b))
    moved = [np.abs(a.data - b).max() for a, b in zip(net.arch_parameters(), before_a)]
    assert all(m > 1e-4 for m in moved)  # Adam's first step moves every entry by about lr
