"""optim.param_groups / split_decay / l1_penalty / l2_penalty (weight decay on weights only).

The reference is PyTorch with the same model and the groups written out by hand from the rule
(decay conv/linear weights; no decay for biases and BatchNorm/LayerNorm parameters): the same
20-step trajectories with SGD and AdamW, and the same penalty values and gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes import nn, optim

# the model below: 0 Conv2d (no bias: BatchNorm follows), 1 BatchNorm2d, 2 ReLU, 3 Flatten,
# 4 Linear, 5 LayerNorm, 6 Linear
DECAYED = ["0.weight", "4.weight", "6.weight"]
EXEMPT = ["1.weight", "1.bias", "4.bias", "5.weight", "5.bias", "6.bias"]


def _models(seed: int = 0):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, bias=False), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(48, 8), torch.nn.LayerNorm(8),
        torch.nn.Linear(8, 3)).double()
    ours = nn.Sequential(
        nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(48, 8), nn.LayerNorm(8), nn.Linear(8, 3)).double()
    ours.load_state_dict({k: dn.tensor(v.detach().numpy().copy())
                          for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """torch's thread pool only slows these tiny float64 models down (a lot on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _torch_groups(model, weight_decay, **options):
    params = dict(model.named_parameters())
    return [{"params": [params[n] for n in DECAYED], "weight_decay": weight_decay, **options},
            {"params": [params[n] for n in EXEMPT], "weight_decay": 0.0, **options}]


def _batch(seed: int):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 1, 6, 6)), rng.integers(0, 3, 6)


def test_split_decay_exempts_biases_and_norm_parameters():
    ours, _ = _models()
    decay, exempt = optim.split_decay(ours)
    assert [n for n, _ in decay] == DECAYED
    assert sorted(n for n, _ in exempt) == sorted(EXEMPT)
    groups = optim.param_groups(ours, 0.1, lr=0.5)
    params = dict(ours.named_parameters())
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [g["lr"] for g in groups] == [0.5, 0.5]
    assert groups[0]["params"] == [params[n] for n in DECAYED]
    assert {id(p) for p in groups[1]["params"]} == {id(params[n]) for n in EXEMPT}


@given(weight_decay=st.floats(1e-4, 0.5), momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans(), seed=st.integers(0, 2**16))
def test_sgd_with_param_groups_matches_torch(weight_decay, momentum, nesterov, seed):
    nesterov = nesterov and momentum > 0
    ours, theirs = _models(seed)
    opt = optim.SGD(optim.param_groups(ours, weight_decay), lr=0.05, momentum=momentum,
                    nesterov=nesterov)
    opt_t = torch.optim.SGD(_torch_groups(theirs, weight_decay), lr=0.05, momentum=momentum,
                            nesterov=nesterov)
    _train_and_compare(ours, theirs, opt, opt_t, seed, steps=20)


def test_adamw_with_param_groups_matches_torch():
    ours, theirs = _models(1)
    opt = optim.AdamW(optim.param_groups(ours, 0.05), lr=1e-2)
    opt_t = torch.optim.AdamW(_torch_groups(theirs, 0.05), lr=1e-2)
    _train_and_compare(ours, theirs, opt, opt_t, seed=1, steps=20)


def _train_and_compare(ours, theirs, opt, opt_t, seed, steps):
    for step in range(steps):
        x, y = _batch(seed + step)
        opt.zero_grad()
        F.cross_entropy(ours(dn.tensor(x)), dn.tensor(y)).backward()
        opt.step()
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        opt_t.step()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours.get_parameter(name).data, p.detach().numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalties_match_torch_values_and_gradients(kind):
    ours, theirs = _models(2)
    alpha = 0.3
    penalty = (optim.l1_penalty if kind == "l1" else optim.l2_penalty)(ours, alpha)
    params = dict(theirs.named_parameters())
    if kind == "l1":
        expected = alpha * sum(params[n].abs().sum() for n in DECAYED)
    else:
        expected = alpha / 2 * sum((params[n] ** 2).sum() for n in DECAYED)
    np.testing.assert_allclose(penalty.data, expected.item(), rtol=1e-12)
    penalty.backward()
    expected.backward()
    for name, p in params.items():
        ours_grad = ours.get_parameter(name).grad
        actual = np.zeros(p.shape) if ours_grad is None else ours_grad.data
        wanted = np.zeros(p.shape) if p.grad is None else p.grad.numpy()
        np.testing.assert_allclose(actual, wanted, rtol=1e-12, err_msg=name)


def test_l2_penalty_equals_sgd_weight_decay():
    """loss + (a/2)||w||^2 with plain SGD trains exactly as SGD with weight_decay=a on w."""
    a = 0.2
    (decayed, _), (penalised, _) = _models(3), _models(3)
    opt_decay = optim.SGD(optim.param_groups(decayed, a), lr=0.05, momentum=0.9)
    opt_penalty = optim.SGD(penalised.parameters(), lr=0.05, momentum=0.9)
    for step in range(10):
        x, y = _batch(step)
        opt_decay.zero_grad()
        F.cross_entropy(decayed(dn.tensor(x)), dn.tensor(y)).backward()
        opt_decay.step()
        opt_penalty.zero_grad()
        (F.cross_entropy(penalised(dn.tensor(x)), dn.tensor(y))
         + optim.l2_penalty(penalised, a)).backward()
        opt_penalty.step()
    for (name, p), (_, q) in zip(decayed.named_parameters(), penalised.named_parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14, err_msg=name)


def test_l1_penalty_gradient_is_the_sign_and_zero_at_zero():
    layer = nn.Linear(3, 1, bias=False).double()
    layer.weight.data[...] = [[-2.0, 0.0, 0.5]]
    optim.l1_penalty(layer, 0.1).backward()
    np.testing.assert_array_equal(layer.weight.grad.data, [[-0.1, 0.0, 0.1]])


def test_custom_rules_and_errors():
    ours, _ = _models()
    decay, exempt = optim.split_decay(ours, no_decay="bias")             # norm weights decay
    assert [n for n, _ in decay] == ["0.weight", "1.weight", "4.weight", "5.weight", "6.weight"]
    decay, _ = optim.split_decay(ours, no_decay=("norm", nn.Linear))
    assert [n for n, _ in decay] == ["0.weight"]
    decay, exempt = optim.split_decay(ours, no_decay=())
    assert exempt == [] and len(decay) == 9
    shared = nn.Linear(2, 2)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in optim.split_decay(twice)[0]] == ["0.weight"]   # shared: listed once
    assert optim.l1_penalty(nn.Sequential(nn.ReLU())).data == 0.0
    with pytest.raises(ValueError, match="Invalid weight_decay value: -0.1"):
        optim.param_groups(ours, -0.1)
    with pytest.raises(ValueError, match="Invalid alpha value: -1"):
        optim.l1_penalty(ours, -1)
    with pytest.raises(TypeError, match="no_decay entries must be"):
        optim.split_decay(ours, no_decay=(3,))
    with pytest.raises(TypeError, match="model must be a Module"):
        optim.param_groups([dn.ones(2)], 0.1)
