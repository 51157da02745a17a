"""Every PyTorch-equivalent optimiser against torch.optim: the whole 20-step parameter trajectory
in float64 with hypothesis-drawn hyper-parameters, the final state, argument validation; and SGD's
EMA momentum (not in PyTorch) against a direct NumPy loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import optim
from tests.optim.test_optim import _data, _loss, adam_options, sgd_options

STEPS = 20


def _trajectory(lib, name, options, steps=STEPS):
    """Train W, b and an 'unused' parameter (never has a gradient) with ``name``; return the
    parameters after every step, (steps, n), and the optimiser."""
    d = _data()
    tensor = dn.tensor if lib == "dn" else torch.tensor
    params = [tensor(d[k], requires_grad=True) for k in ("W", "b", "unused")]
    X, Y = tensor(d["X"]), tensor(d["Y"])  # noqa: N806
    opt = getattr(optim if lib == "dn" else torch.optim, name)(params, **options)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(params[0], params[1], X, Y).backward()
        opt.step()
        path.append(np.concatenate([(p.data if lib == "dn" else p.detach().numpy()).ravel()
                                    for p in params]))
    return np.stack(path), opt


def _check_same_as_torch(name, options):
    """Tolerance: the first steps agree to ~1e-16, but PyTorch's CPU kernels round with fused
    multiply-adds (NumPy cannot), and near the minimum the adaptive methods take sign-like steps
    lr * m / sqrt(v) whose sensitivity to tiny gradients amplifies those last-bit differences;
    over 150 random draws per optimiser the worst case after 20 steps was 9e-10 (relative to
    |w| + 0.01), so 1e-8 leaves a margin while any real formula error shows up at >= 1e-4."""
    ours, opt = _trajectory("dn", name, options)
    theirs, topt = _trajectory("torch", name, options)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(ours[:, -2:], np.tile(_data()["unused"], (STEPS, 1)))
    state, tstate = opt.state_dict(), topt.state_dict()
    assert list(state["state"]) == list(tstate["state"])       # same parameters have state
    for index, entries in tstate["state"].items():
        assert sorted(state["state"][index]) == sorted(entries)
        for key, value in entries.items():
            np.testing.assert_allclose(state["state"][index][key].data, value.numpy(),
                                       rtol=1e-7, atol=1e-10, err_msg=key)
    for group, tgroup in zip(state["param_groups"], tstate["param_groups"]):
        assert set(group) <= set(tgroup)
        assert all(group[k] == tgroup[k] for k in group if k != "params")


eps_values = st.sampled_from([1e-10, 1e-8, 1e-6, 1e-3])
decay = st.one_of(st.just(0.0), st.floats(0.0, 0.1))
# beta2 >= 0.5 over 20 steps: with beta2 near 0 the step is lr * m / |g| ~ lr * sign(g), whose
# sensitivity to g near 0 amplifies last-bit differences (PyTorch's CPU kernels round with fused
# multiply-adds, which NumPy cannot reproduce) by ~3x per step. test_optim.py covers beta2 in
# [0, 1) over 6 steps.
betas = st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.999))


@given(sgd_options())
def test_sgd_trajectory_matches_torch(options):
    _check_same_as_torch("SGD", options)


@given(adam_options(), betas, st.sampled_from(["Adam", "AdamW"]))
def test_adam_trajectory_matches_torch(options, adam_betas, name):
    _check_same_as_torch(name, dict(options, betas=adam_betas))


@given(st.fixed_dictionaries(dict(
    lr=st.floats(1e-3, 0.5), lr_decay=st.one_of(st.just(0.0), st.floats(0.0, 0.5)),
    weight_decay=decay, initial_accumulator_value=st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
    eps=eps_values, maximize=st.booleans())))
def test_adagrad_matches_torch(options):
    _check_same_as_torch("Adagrad", options)


@given(st.fixed_dictionaries(dict(
    lr=st.floats(1e-4, 0.03), alpha=st.floats(0.5, 0.999), eps=eps_values, weight_decay=decay,
    momentum=st.one_of(st.just(0.0), st.floats(0.0, 0.95)), centered=st.booleans(),
    maximize=st.booleans())))
def test_rmsprop_matches_torch(options):
    _check_same_as_torch("RMSprop", options)


@given(st.fixed_dictionaries(dict(
    lr=st.floats(0.05, 2.0), rho=st.floats(0.0, 1.0), eps=st.sampled_from([1e-6, 1e-4, 1e-2]),
    weight_decay=decay, maximize=st.booleans())))
def test_adadelta_matches_torch(options):
    _check_same_as_torch("Adadelta", options)


@given(st.fixed_dictionaries(dict(
    lr=st.floats(1e-4, 0.1), betas=betas, eps=eps_values, weight_decay=decay,
    maximize=st.booleans())))
def test_adamax_matches_torch(options):
    _check_same_as_torch("Adamax", options)


@given(st.fixed_dictionaries(dict(
    lr=st.floats(1e-4, 0.1), betas=betas, eps=eps_values, weight_decay=decay,
    momentum_decay=st.floats(0.0, 0.1), decoupled_weight_decay=st.booleans(),
    maximize=st.booleans())))
def test_nadam_matches_torch(options):
    _check_same_as_torch("NAdam", options)


TABLE = [
    ("Adagrad", {}), ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.5)),
    ("RMSprop", {}), ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.9, centered=True, weight_decay=0.01)),
    ("Adadelta", {}), ("Adadelta", dict(lr=0.5, rho=0.95, weight_decay=0.1)),
    ("Adamax", {}), ("Adamax", dict(lr=0.02, betas=(0.5, 0.9), maximize=True)),
    ("NAdam", {}), ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.01, momentum_decay=0.05, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,options", TABLE)
def test_table_matches_torch(name, options):
    _check_same_as_torch(name, options)


def test_adagrad_state_exists_from_construction_as_torch():
    w = dn.zeros(3, requires_grad=True)
    opt = optim.Adagrad([w], initial_accumulator_value=0.25)
    topt = torch.optim.Adagrad([torch.zeros(3, requires_grad=True)], initial_accumulator_value=0.25)
    assert sorted(opt.state[w]) == sorted(topt.state_dict()["state"][0]) == ["step", "sum"]
    np.testing.assert_array_equal(opt.state[w]["sum"].data, 0.25)
    late = dn.ones(2, requires_grad=True)
    opt.add_param_group({"params": [late]})                 # state created on its first step
    late.grad = dn.ones(2)
    opt.step()
    assert float(opt.state[late]["step"].data) == 1.0


# -- SGD with the notes' EMA momentum ---------------------------------------------------------

@given(st.floats(1e-3, 0.05), st.floats(0.0, 0.99), decay, st.booleans())
def test_sgd_ema_momentum_is_the_notes_loop(lr, beta, weight_decay, maximize):
    """v = beta v + (1 - beta) g (v_0 = 0), w = w - lr v: a direct NumPy loop with the
    analytic gradient of a least-squares loss, and PyTorch's SGD with lr (1 - beta)."""
    rng = np.random.default_rng(3)
    a, y, w0 = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal(4)

    w = dn.tensor(w0.copy(), requires_grad=True)
    opt = optim.SGD([w], lr=lr, momentum=beta, weight_decay=weight_decay, maximize=maximize,
                    ema_momentum=True)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    topt = torch.optim.SGD([tw], lr=lr * (1 - beta), momentum=beta, weight_decay=weight_decay,
                           maximize=maximize)
    w_ref, v = w0.copy(), np.zeros(4)
    for _ in range(STEPS):
        grad = a.T @ (a @ w_ref - y)                             # of 0.5 |A w - y|^2
        grad = (-grad if maximize else grad) + weight_decay * w_ref
        v = beta * v + (1 - beta) * grad
        w_ref = w_ref - lr * v
        for params, lib_opt, lib in ((w, opt, dn), (tw, topt, torch)):
            lib_opt.zero_grad()
            (0.5 * ((lib.tensor(a) @ params - lib.tensor(y)) ** 2).sum()).backward()
            lib_opt.step()
        np.testing.assert_allclose(w.data, w_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-9, atol=1e-11)
    if beta > 0:                                                 # (momentum 0 keeps no state)
        np.testing.assert_allclose(opt.state[w]["momentum_buffer"].data, v, rtol=1e-10,
                                   atol=1e-12)


def test_sgd_ema_momentum_options():
    w = dn.zeros(2, requires_grad=True)
    assert "ema_momentum" not in optim.SGD([w], momentum=0.9).param_groups[0]   # torch's keys
    assert optim.SGD([w], momentum=0.9, ema_momentum=True).param_groups[0]["ema_momentum"]
    with pytest.raises(ValueError, match="no dampening and no Nesterov"):
        optim.SGD([w], momentum=0.9, nesterov=True, ema_momentum=True)
    with pytest.raises(ValueError, match="no dampening and no Nesterov"):
        optim.SGD([w], momentum=0.9, dampening=0.5, ema_momentum=True)
    with pytest.raises(ValueError, match="momentum in \\[0, 1\\], got 1.5"):
        optim.SGD([w], momentum=1.5, ema_momentum=True)
    plain = optim.SGD([w], lr=0.1, ema_momentum=True)        # momentum 0: plain SGD, no state
    w.grad = dn.ones(2)
    plain.step()
    np.testing.assert_allclose(w.data, [-0.1, -0.1])
    assert len(plain.state) == 0


# -- validation ---------------------------------------------------------------------------------

VALIDATION = [
    (lambda m, p: m.Adagrad(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda m, p: m.Adagrad(p, lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    (lambda m, p: m.Adagrad(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (lambda m, p: m.Adagrad(p, initial_accumulator_value=-0.5),
     "Invalid initial_accumulator_value value: -0.5"),
    (lambda m, p: m.Adagrad(p, eps=-1e-3), "Invalid epsilon value: -0.001"),
    (lambda m, p: m.RMSprop(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.RMSprop(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda m, p: m.RMSprop(p, momentum=-0.9), "Invalid momentum value: -0.9"),
    (lambda m, p: m.RMSprop(p, weight_decay=-0.9), "Invalid weight_decay value: -0.9"),
    (lambda m, p: m.RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
    (lambda m, p: m.Adadelta(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
    (lambda m, p: m.Adadelta(p, rho=-0.1), "Invalid rho value: -0.1"),
    (lambda m, p: m.Adadelta(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda m, p: m.Adadelta(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (lambda m, p: m.Adamax(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.Adamax(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda m, p: m.Adamax(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda m, p: m.Adamax(p, betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (lambda m, p: m.Adamax(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (lambda m, p: m.NAdam(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.NAdam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda m, p: m.NAdam(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (lambda m, p: m.NAdam(p, momentum_decay=-1.0), "Invalid momentum_decay value: -1.0"),
    (lambda m, p: m.LBFGS(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.LBFGS([{"params": p[:1]}, {"params": p[1:]}]),
     "LBFGS doesn't support per-parameter options (parameter groups)"),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_validation_matches_torch(case):
    action, message = VALIDATION[case]
    with pytest.raises(ValueError) as theirs:
        action(torch.optim, [torch.zeros(2, requires_grad=True) for _ in range(2)])
    with pytest.raises(ValueError) as ours:
        action(optim, [dn.zeros(2, requires_grad=True) for _ in range(2)])
    # deepnotes keeps torch's text and appends the expected value
    assert str(theirs.value) == message and str(ours.value).startswith(message)


def test_validation_beyond_torch():
    w = [dn.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        optim.RMSprop(w, lr=math.nan)
    with pytest.raises(TypeError, match="rho must be a real number"):
        optim.Adadelta(w, rho="0.9")
    with pytest.raises(ValueError, match="betas must be a pair"):
        optim.NAdam(w, betas=(0.9,))
