"""Optimisers against torch.optim: parameters after N steps on the same problem (float64),
state_dict format and round trips, parameter groups, validation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import optim

STEPS = 6


def _data():
    rng = np.random.default_rng(0)
    return {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3),
            "X": rng.standard_normal((8, 4)), "Y": rng.standard_normal((8, 3)),
            "unused": rng.standard_normal(2)}


def _loss(W, b, X, Y):  # noqa: N803 - matrix names
    """A small least-squares problem with a quartic term, written once for both libraries."""
    return ((X @ W.T + b - Y) ** 2).mean() + 0.05 * (W**4).sum()


def _run(lib, make_optimizer, steps=STEPS, groups=None):
    """Train W, b (and an 'unused' parameter that never gets a gradient) for ``steps`` steps."""
    d = _data()
    tensor = dn.tensor if lib == "dn" else torch.tensor
    params = {k: tensor(d[k], requires_grad=True) for k in ("W", "b", "unused")}
    X, Y = tensor(d["X"]), tensor(d["Y"])  # noqa: N806
    if groups is None:
        spec = list(params.values())
    else:
        spec = [dict(g, params=[params[name] for name in g["params"]]) for g in groups]
    opt = make_optimizer(lib, spec)
    for _ in range(steps):
        opt.zero_grad()
        _loss(params["W"], params["b"], X, Y).backward()
        opt.step()
    return {k: (v.data if lib == "dn" else v.detach().numpy()) for k, v in params.items()}, opt


def _assert_same(ours, theirs, tol=1e-12):
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=tol, atol=tol, err_msg=name)


def _sgd(**kw):
    return lambda lib, params: (optim.SGD if lib == "dn" else torch.optim.SGD)(params, **kw)


def _adam(cls="Adam", **kw):
    return lambda lib, params: getattr(optim if lib == "dn" else torch.optim, cls)(params, **kw)


@st.composite
def sgd_options(draw):
    nesterov = draw(st.booleans())
    momentum = draw(st.one_of(st.just(0.0), st.floats(0.05, 0.99))) if not nesterov \
        else draw(st.floats(0.05, 0.99))
    dampening = 0.0 if nesterov else draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    return dict(lr=draw(st.floats(1e-3, 0.3)), momentum=momentum, dampening=dampening,
                weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))),
                nesterov=nesterov, maximize=draw(st.booleans()))


@given(sgd_options())
def test_sgd_matches_torch(options):
    ours, opt = _run("dn", _sgd(**options))
    theirs, topt = _run("torch", _sgd(**options))
    _assert_same(ours, theirs)
    assert np.array_equal(ours["unused"], _data()["unused"])          # no gradient: untouched
    assert len(opt.state) == len(topt.state)


@pytest.mark.parametrize("options", [
    dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.9, dampening=0.9), dict(lr=0.05, momentum=0.5, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
])
def test_sgd_table(options):
    _assert_same(_run("dn", _sgd(**options))[0], _run("torch", _sgd(**options))[0])


@st.composite
def adam_options(draw):
    return dict(lr=draw(st.floats(1e-4, 0.1)),
                betas=(draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))),
                eps=draw(st.sampled_from([1e-8, 1e-6, 1e-3])),
                weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))),
                amsgrad=draw(st.booleans()), maximize=draw(st.booleans()))


@given(adam_options(), st.sampled_from(["Adam", "AdamW"]))
def test_adam_matches_torch(options, cls):
    ours, opt = _run("dn", _adam(cls, **options))
    theirs, topt = _run("torch", _adam(cls, **options))
    _assert_same(ours, theirs)
    for (_, s), (_, ts) in zip(sorted(opt.state_dict()["state"].items()),
                               sorted(topt.state_dict()["state"].items())):
        assert sorted(s) == sorted(ts)
        for key in s:
            np.testing.assert_allclose(s[key].data, ts[key].numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("options", [
    dict(), dict(lr=0.01, amsgrad=True), dict(lr=0.01, weight_decay=0.05),
    dict(lr=0.01, betas=(0.3, 0.5), eps=1e-3, maximize=True),
    dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, amsgrad=True),
])
def test_adam_table(options):
    _assert_same(_run("dn", _adam(**options))[0], _run("torch", _adam(**options))[0])


def test_adamw_is_adam_with_decoupled_decay():
    ours = _run("dn", _adam("AdamW", lr=0.01, weight_decay=0.1))[0]
    same = _run("dn", _adam("Adam", lr=0.01, weight_decay=0.1, decoupled_weight_decay=True))[0]
    coupled = _run("dn", _adam("Adam", lr=0.01, weight_decay=0.1))[0]
    _assert_same(ours, same, tol=0)
    assert not np.allclose(ours["W"], coupled["W"])


def test_param_groups_with_their_own_options():
    groups = [{"params": ["W"], "lr": 0.01, "momentum": 0.9},
              {"params": ["b"], "nesterov": True, "momentum": 0.5}]
    ours, opt = _run("dn", _sgd(lr=0.1), groups=groups)
    theirs, topt = _run("torch", _sgd(lr=0.1), groups=groups)
    _assert_same(ours, theirs)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    packed, tpacked = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in packed["param_groups"]] == \
        [g["params"] for g in tpacked["param_groups"]] == [[0], [1]]
    for group, tgroup in zip(packed["param_groups"], tpacked["param_groups"]):
        assert set(group) <= set(tgroup)
        assert all(group[k] == tgroup[k] for k in group)
    assert list(packed["state"]) == list(tpacked["state"]) == [0, 1]
    assert list(packed["state"][0]) == list(tpacked["state"][0]) == ["momentum_buffer"]


@pytest.mark.parametrize("make", [_sgd(lr=0.05, momentum=0.9, nesterov=True),
                                  _adam(lr=0.01, amsgrad=True), _adam("AdamW", lr=0.01)])
def test_state_dict_round_trip_resumes_exactly(make):
    uninterrupted, _ = _run("dn", make, steps=2 * STEPS)
    d = _data()
    params = [dn.tensor(d[k], requires_grad=True) for k in ("W", "b", "unused")]
    X, Y = dn.tensor(d["X"]), dn.tensor(d["Y"])  # noqa: N806

    def train(opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss(params[0], params[1], X, Y).backward()
            opt.step()

    first = make("dn", params)
    train(first, STEPS)
    saved = copy.deepcopy(first.state_dict())
    second = make("dn", params)
    second.load_state_dict(saved)
    assert second.state_dict()["param_groups"] == first.state_dict()["param_groups"]
    train(second, STEPS)
    _assert_same({"W": params[0].data, "b": params[1].data},
                 {"W": uninterrupted["W"], "b": uninterrupted["b"]}, tol=0)


@pytest.mark.parametrize("cls,kw", [("SGD", dict(lr=0.05, momentum=0.9)),
                                    ("Adam", dict(lr=0.01, amsgrad=True))])
def test_a_torch_optimizer_state_loads_and_continues_identically(cls, kw):
    d = _data()
    tparams = [torch.tensor(d[k], requires_grad=True) for k in ("W", "b")]
    topt = getattr(torch.optim, cls)(tparams, **kw)
    tX, tY = torch.tensor(d["X"]), torch.tensor(d["Y"])  # noqa: N806
    for _ in range(3):
        topt.zero_grad()
        _loss(*tparams, tX, tY).backward()
        topt.step()
    state = topt.state_dict()
    converted = {"state": {i: {k: v.numpy().copy() for k, v in s.items()}
                           for i, s in state["state"].items()},
                 "param_groups": state["param_groups"]}
    params = [dn.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tparams]
    opt = getattr(optim, cls)(params, **kw)
    opt.load_state_dict(converted)
    X, Y = dn.tensor(d["X"]), dn.tensor(d["Y"])  # noqa: N806
    for _ in range(3):
        topt.zero_grad()
        _loss(*tparams, tX, tY).backward()
        topt.step()
        opt.zero_grad()
        _loss(*params, X, Y).backward()
        opt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_load_state_dict_casts_state_to_the_parameter_dtype_and_copies():
    w32 = dn.zeros(3, requires_grad=True)
    opt = optim.Adam([w32])
    saved = {"state": {0: {"step": np.array(2.0, dtype=np.float32), "exp_avg": np.ones(3),
                           "exp_avg_sq": np.ones(3)}},
             "param_groups": [dict(opt.param_groups[0], params=[0])]}
    opt.load_state_dict(saved)
    state = opt.state[w32]
    assert state["exp_avg"].dtype == np.float32 and state["step"].dtype == np.float32
    state["exp_avg"].data[...] = 5
    assert saved["state"][0]["exp_avg"][0] == 1
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}]})


def test_zero_grad_closure_and_repr():
    w = dn.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not w.grad.data.any()
    opt.zero_grad()
    assert w.grad is None

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with dn.no_grad():
        loss = opt.step(closure)                         # the closure runs with grad enabled
    assert float(loss.item()) == 5.0
    np.testing.assert_allclose(w.data, [0.8, -1.6])
    assert repr(opt) == repr(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
                             ).replace("    differentiable: False\n", "").replace(
        "    foreach: None\n", "").replace("    fused: None\n", "")


def test_named_parameters_are_accepted():
    import deepnotes.nn as nn

    model = nn.Linear(2, 2)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"] == list(model.parameters())


VALIDATION = [
    (lambda m, p: m.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda m, p: m.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda m, p: m.SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda m, p: m.SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero "
     "dampening"),
    (lambda m, p: m.SGD(p, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda m, p: m.Adam(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda m, p: m.Adam(p, lr=math.nan), "Invalid learning rate: nan"),
    (lambda m, p: m.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda m, p: m.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda m, p: m.Adam(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda m, p: m.AdamW(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda m, p: m.SGD([]), "optimizer got an empty parameter list"),
    (lambda m, p: m.SGD([{"params": p}, {"params": p}]),
     "some parameters appear in more than one parameter group"),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_validation_matches_torch(case):
    action, message = VALIDATION[case]
    with pytest.raises(ValueError) as theirs:
        action(torch.optim, [torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError) as ours:
        action(optim, [dn.zeros(2, requires_grad=True)])
    # deepnotes keeps torch's text and appends the expected value
    assert str(theirs.value) == message and str(ours.value).startswith(message)


def test_validation_beyond_torch():
    w = dn.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        optim.SGD([w], lr=math.nan)                     # torch's SGD lets NaN through
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}])
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2])
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.SGD([w], lr="0.1")


# -- learning-rate schedules ----------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 1 / (1 + epoch))),
]


@pytest.mark.parametrize("name,kw", SCHEDULES)
def test_schedules_match_torch(name, kw):
    def lrs(lib_optim, tensor):
        params = [tensor([1.0], requires_grad=True), tensor([2.0], requires_grad=True)]
        opt = lib_optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
        sched = getattr(lib_optim.lr_scheduler, name)(opt, **kw)
        out = [list(sched.get_last_lr())]
        for _ in range(20):
            opt.step()
            sched.step()
            out.append([g["lr"] for g in opt.param_groups])
        return out, sched

    ours, sched = lrs(optim, dn.tensor)
    theirs, _ = lrs(torch.optim, torch.tensor)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-16)
    assert sched.get_last_lr() == ours[-1]
    assert sched.last_epoch == 20 and "optimizer" not in sched.state_dict()


def test_schedule_state_dict_resume():
    w = dn.zeros(1, requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    state = copy.deepcopy(sched.state_dict())
    opt2 = optim.SGD([w], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    sched2 = optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    for _ in range(3):
        sched.step()
        sched2.step()
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
    with pytest.raises(KeyError, match="initial_lr"):
        optim.lr_scheduler.StepLR(optim.SGD([w]), step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.lr_scheduler.StepLR(object(), step_size=2)


def test_training_a_small_net_matches_torch():
    """nn + optim together: parameters() order, BatchNorm state and the update rule."""
    import deepnotes.nn as nn

    def build(lib):
        return lib.Sequential(lib.Conv2d(1, 3, 3), lib.BatchNorm2d(3), lib.ReLU(),
                              lib.MaxPool2d(2), lib.Flatten(), lib.Linear(12, 4))

    theirs = build(torch.nn).double()
    ours = build(nn).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.standard_normal((6, 1, 6, 6)), rng.integers(0, 4, 6)
        opt.zero_grad()
        nn.CrossEntropyLoss()(ours(dn.tensor(x)), dn.tensor(y)).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.CrossEntropyLoss()(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].data, value.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=key)
