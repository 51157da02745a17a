"""Learning-rate schedules against torch.optim.lr_scheduler: the lr (and momentum/beta1) of every
parameter group over many steps, get_last_lr(), step(epoch), resumption, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import optim


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]


def _sequence(lib, make, optimizer="SGD", steps=60, metrics=None, epochs=None):
    """[lr of each group, momentum of each group] after construction and after each step."""
    lib_optim = optim if lib == "dn" else torch.optim
    tensor = dn.tensor if lib == "dn" else torch.tensor
    params = [tensor([1.0], requires_grad=True), tensor([2.0], requires_grad=True)]
    extra = dict(momentum=0.9) if optimizer == "SGD" else {}
    opt = getattr(lib_optim, optimizer)([{"params": params[:1]},
                                         {"params": params[1:], "lr": 0.5}], lr=0.1, **extra)
    sched = make(lib_optim.lr_scheduler, opt)
    rows = [list(sched.get_last_lr()) + _momenta(opt)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch warns about step(epoch) and step order
        for i in range(steps):
            opt.step()
            if metrics is not None:
                sched.step(metrics[i])
            elif epochs is not None:
                sched.step(epochs[i])
            else:
                sched.step()
            lrs = [g["lr"] for g in opt.param_groups]
            assert list(sched.get_last_lr()) == lrs
            rows.append(lrs + _momenta(opt))
    return np.array(rows, dtype=float)


def _check(make, **kwargs):
    ours = _sequence("dn", make, **kwargs)
    theirs = _sequence("torch", make, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-16)
    return ours


CASES = {
    "linear_warmup": lambda L, o: L.LinearLR(o, start_factor=0.1, total_iters=7),
    "linear_decay": lambda L, o: L.LinearLR(o, start_factor=0.5, end_factor=0.2, total_iters=4),
    "constant": lambda L, o: L.ConstantLR(o, factor=0.3, total_iters=6),
    "warm_restarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2,
                                                                 eta_min=0.01),
    "warm_restarts_mult1": lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5),
    "one_cycle": lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 0.3], total_steps=60),
    "one_cycle_3_linear": lambda L, o: L.OneCycleLR(
        o, max_lr=1.0, epochs=6, steps_per_epoch=10, three_phase=True,
        anneal_strategy="linear", pct_start=0.25),
    "one_cycle_no_momentum": lambda L, o: L.OneCycleLR(o, max_lr=0.8, total_steps=61,
                                                       cycle_momentum=False, div_factor=5.0),
    "sequential_warmup_cosine": lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.CosineAnnealingLR(o, T_max=10),
            L.StepLR(o, 3, 0.5), L.ExponentialLR(o, 0.9)], milestones=[5, 15, 25]),
    "sequential_mixed": lambda L, o: L.SequentialLR(
        o, [L.ConstantLR(o, 0.5, 3), L.CosineAnnealingWarmRestarts(o, 4),
            L.MultiStepLR(o, [2, 5, 5], 0.1)], milestones=[6, 20]),
    "sequential_one": lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.95)], milestones=[]),
}


@pytest.mark.parametrize("name", CASES)
def test_schedules_match_torch(name):
    _check(CASES[name])


def test_one_cycle_cycles_adam_beta1_as_torch():
    rows = _check(lambda L, o: L.OneCycleLR(o, max_lr=0.5, total_steps=60, base_momentum=0.8,
                                            max_momentum=[0.9, 0.95]), optimizer="Adam")
    assert rows[:, 2].min() == pytest.approx(0.8) and rows[0, 2] == 0.9      # beta1 cycled
    peak = int(np.argmax(rows[:, 0]))
    assert peak == 17 and np.argmin(rows[:, 2]) == peak      # low momentum at the peak lr


@given(st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.integers(1, 30))
def test_linear_and_constant_lr_match_torch(start, end, total):
    _check(lambda L, o: L.LinearLR(o, start_factor=start, end_factor=end, total_iters=total),
           steps=40)
    _check(lambda L, o: L.ConstantLR(o, factor=start, total_iters=total), steps=40)


@given(st.integers(5, 80), st.floats(0.05, 0.95), st.sampled_from(["cos", "linear"]),
       st.booleans(), st.floats(1.5, 50), st.floats(10, 1e4), st.booleans())
def test_one_cycle_matches_torch(total, pct_start, strategy, three_phase, div, final_div,
                                 adam):
    if pct_start * total == 1:                           # torch divides by zero (see below)
        pct_start = 0.3
    _check(lambda L, o: L.OneCycleLR(o, max_lr=[0.9, 2.0], total_steps=total,
                                     pct_start=pct_start, anneal_strategy=strategy,
                                     three_phase=three_phase, div_factor=div,
                                     final_div_factor=final_div),
           optimizer="Adam" if adam else "SGD", steps=total - 1)


@given(st.integers(1, 8), st.integers(1, 3), st.floats(0.0, 0.05))
def test_warm_restarts_match_torch(t_0, t_mult, eta_min):
    _check(lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=t_0, T_mult=t_mult,
                                                      eta_min=eta_min), steps=50)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_with_fractional_epochs_match_torch(t_mult):
    epochs = [e + i / 4 for e in range(12) for i in range(4)]
    _check(lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=t_mult),
           steps=len(epochs), epochs=epochs)


@given(st.sampled_from(["min", "max"]), st.sampled_from(["rel", "abs"]),
       st.floats(0.05, 0.9), st.integers(0, 4), st.floats(0.0, 0.05), st.integers(0, 3),
       st.sampled_from([0.0, 1e-3, [1e-3, 0.02]]), st.integers(0, 1000))
def test_reduce_lr_on_plateau_matches_torch(mode, threshold_mode, factor, patience, threshold,
                                            cooldown, min_lr, seed):
    metrics = 5 + np.cumsum(np.random.default_rng(seed).standard_normal(60)) * 0.05
    rows = _check(lambda L, o: L.ReduceLROnPlateau(
        o, mode=mode, factor=factor, patience=patience, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr),
        metrics=list(metrics))
    assert np.all(np.diff(rows[:, 0]) <= 0)                      # it only ever decreases


def test_reduce_lr_on_plateau_counts_patience_and_cooldown():
    w = dn.zeros(1, requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    lrs = []
    for metric in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0]:
        sched.step(dn.tensor(metric))                            # a 0-d Tensor is accepted
        lrs.append(sched.get_last_lr()[0])
    # best 2.0 at epoch 2; epochs 3, 4, 5 are bad: the third exceeds patience -> 0.5; epoch 6 is
    # cooldown (not counted); 7, 8 bad; 9 improves
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]


CLOSED_FORMS = [
    lambda L, o: L.StepLR(o, 3, 0.5), lambda L, o: L.MultiStepLR(o, [2, 4, 4], 0.3),
    lambda L, o: L.ExponentialLR(o, 0.9), lambda L, o: L.CosineAnnealingLR(o, 7, 0.01),
    lambda L, o: L.LinearLR(o, 0.2, 0.9, 6), lambda L, o: L.ConstantLR(o, 0.4, 5),
]


@pytest.mark.parametrize("case", range(len(CLOSED_FORMS)))
def test_step_with_an_epoch_uses_the_closed_form_as_torch(case):
    _check(CLOSED_FORMS[case], steps=6, epochs=[3, 7, 1, 12, 0, 5])


@pytest.mark.parametrize("name,kw", [("CosineAnnealingLR", dict(T_max=9)),
                                     ("LinearLR", dict(total_iters=6)),
                                     ("StepLR", dict(step_size=2))])
def test_resuming_with_last_epoch_matches_torch(name, kw):
    def make(L, o):
        for group in o.param_groups:
            group["initial_lr"] = group["lr"]
        return getattr(L, name)(o, last_epoch=3, **kw)
    _check(make, steps=12)


@pytest.mark.parametrize("total,pct_start,three_phase", [(10, 0.1, False), (20, 0.05, True),
                                                         (4, 0.25, False)])
def test_one_cycle_rejects_a_warmup_of_length_zero(total, pct_start, three_phase):
    """Where PyTorch divides by zero, we raise a ValueError that says why."""
    w = dn.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="pct_start \\* total_steps must not be 1"):
        optim.lr_scheduler.OneCycleLR(optim.SGD([w], lr=0.1, momentum=0.9), max_lr=1.0,
                                      total_steps=total, pct_start=pct_start,
                                      three_phase=three_phase)
    with pytest.raises(ZeroDivisionError):
        torch.optim.lr_scheduler.OneCycleLR(
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9),
            max_lr=1.0, total_steps=total, pct_start=pct_start, three_phase=three_phase)


def test_one_cycle_past_its_last_step_raises_as_torch():
    for lib_optim, tensor in ((torch.optim, torch.zeros), (optim, dn.zeros)):
        opt = lib_optim.SGD([tensor(1, requires_grad=True)], lr=0.1, momentum=0.9)
        sched = lib_optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(3):
                sched.step()
            with pytest.raises(ValueError, match="Tried to step 4 times. The specified number "
                                                 "of total steps is 3"):
                sched.step()


VALIDATION = [
    (lambda L, o: L.LinearLR(o, start_factor=0.0), ValueError),
    (lambda L, o: L.LinearLR(o, start_factor=1.5), ValueError),
    (lambda L, o: L.LinearLR(o, end_factor=-0.1), ValueError),
    (lambda L, o: L.ConstantLR(o, factor=1.5), ValueError),
    (lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=0), ValueError),
    (lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2.5), ValueError),
    (lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=0), ValueError),
    (lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, eta_min="0"), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, epochs=0, steps_per_epoch=3), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=-1), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1), ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"),
     ValueError),
    (lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 2.0, 3.0], total_steps=10), ValueError),
    (lambda L, o: L.ReduceLROnPlateau(o, factor=1.0), ValueError),
    (lambda L, o: L.ReduceLROnPlateau(o, mode="median"), ValueError),
    (lambda L, o: L.ReduceLROnPlateau(o, threshold_mode="ratio"), ValueError),
    (lambda L, o: L.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError),
    (lambda L, o: L.SequentialLR(o, [], milestones=[]), ValueError),
    (lambda L, o: L.SequentialLR(o, [L.StepLR(o, 2)], milestones=[3]), ValueError),
    (lambda L, o: L.SequentialLR(o, [L.ReduceLROnPlateau(o), L.StepLR(o, 2)], milestones=[3]),
     ValueError),
    (lambda L, o: L.ReduceLROnPlateau(object()), TypeError),
    (lambda L, o: L.OneCycleLR(object(), max_lr=1.0), TypeError),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_validation_matches_torch(case):
    action, error = VALIDATION[case]
    messages = []
    for lib_optim, tensor in ((torch.optim, torch.zeros), (optim, dn.zeros)):
        params = [tensor(1, requires_grad=True), tensor(1, requires_grad=True)]
        opt = lib_optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
        with pytest.raises(error) as caught:
            action(lib_optim.lr_scheduler, opt)
        messages.append(str(caught.value))
    assert messages[1].startswith(messages[0])          # torch's text, maybe + the values


def test_sequential_lr_rejects_a_scheduler_of_another_optimizer():
    w = dn.zeros(1, requires_grad=True)
    first, second = optim.SGD([w], lr=0.1), optim.SGD([w], lr=0.1)
    other = optim.lr_scheduler.StepLR(second, 2)
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        optim.lr_scheduler.SequentialLR(first, [optim.lr_scheduler.StepLR(first, 2), other],
                                        milestones=[3])
