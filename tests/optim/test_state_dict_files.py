"""Every optimiser and every scheduler: state_dict() -> deepnotes.save -> a file -> deepnotes.load
-> load_state_dict() into fresh objects, and training resumes bit-identically (tolerance 0)."""

from __future__ import annotations

import numpy as np
import pytest

import deepnotes as dn
from deepnotes import optim
from deepnotes.optim import lr_scheduler as L  # noqa: N812
from tests.optim.test_optim import _data, _loss

HALF = 5

OPTIMIZERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "SGD_ema": lambda p: optim.SGD(p, lr=0.1, momentum=0.8, ema_momentum=True),
    "Adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "AdamW": lambda p: optim.AdamW(p, lr=0.01),
    "Adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "RMSprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "Adadelta": lambda p: optim.Adadelta(p, weight_decay=0.01),
    "Adamax": lambda p: optim.Adamax(p, lr=0.01),
    "NAdam": lambda p: optim.NAdam(p, lr=0.01, decoupled_weight_decay=True, weight_decay=0.1),
    "LBFGS": lambda p: optim.LBFGS(p, max_iter=3, history_size=4),
    "LBFGS_wolfe": lambda p: optim.LBFGS(p, max_iter=3, line_search_fn="strong_wolfe"),
    "Newton": lambda p: optim.Newton(p, damping=0.1),
}


class _Problem:
    """W, b (and a parameter without gradient) on the least-squares-plus-quartic loss."""

    def __init__(self, values=None):
        d = _data()
        values = values or {k: d[k] for k in ("W", "b", "unused")}
        self.params = [dn.tensor(values[k].copy(), requires_grad=True)
                       for k in ("W", "b", "unused")]
        self.X, self.Y = dn.tensor(d["X"]), dn.tensor(d["Y"])

    def values(self):
        return {k: p.data.copy() for k, p in zip(("W", "b", "unused"), self.params)}

    def train(self, opt, steps, sched=None, metric=False):
        lrs = []
        for _ in range(steps):
            def closure():
                opt.zero_grad()
                loss = _loss(self.params[0], self.params[1], self.X, self.Y)
                loss.backward()
                return loss
            if isinstance(opt, optim.LBFGS | optim.Newton):
                loss = opt.step(closure)
            else:
                loss = closure()
                opt.step()
            if sched is not None:
                sched.step(float(loss)) if metric else sched.step()
                lrs.append(list(sched.get_last_lr()))
        return lrs


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_resumes_bit_identically_from_a_file(name, tmp_path):
    make = OPTIMIZERS[name]
    straight = _Problem()
    straight.train(make(straight.params), 2 * HALF)

    first = _Problem()
    opt = make(first.params)
    first.train(opt, HALF)
    path = tmp_path / "checkpoint.safetensors"
    dn.save({"params": first.values(), "optimizer": opt.state_dict()}, path)
    del first, opt

    checkpoint = dn.load(path)
    resumed = _Problem({k: np.asarray(v) for k, v in checkpoint["params"].items()})
    opt = make(resumed.params)
    opt.load_state_dict(checkpoint["optimizer"])
    assert opt.state_dict()["param_groups"] == checkpoint["optimizer"]["param_groups"]
    resumed.train(opt, HALF)
    for ours, theirs in zip(resumed.values().values(), straight.values().values()):
        np.testing.assert_array_equal(ours, theirs)
    assert len(opt.state) > 0


SCHEDULERS = {
    "StepLR": lambda o: L.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda o: L.MultiStepLR(o, [2, 6, 6, 8], 0.5),
    "ConstantLR": lambda o: L.ConstantLR(o, 0.5, 7),
    "LinearLR": lambda o: L.LinearLR(o, 0.1, 1.0, 8),
    "ExponentialLR": lambda o: L.ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, 4, 0.001),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(o, 2, 2, 0.001),
    "LambdaLR": lambda o: L.LambdaLR(o, lambda epoch: 0.9**epoch),
    "OneCycleLR": lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=2 * HALF + 1),
    "OneCycleLR_3_linear": lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=2 * HALF + 1,
                                                  three_phase=True, anneal_strategy="linear"),
    "SequentialLR": lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.2, total_iters=3),
                                                 L.CosineAnnealingLR(o, 4),
                                                 L.MultiStepLR(o, [1, 2])], milestones=[3, 6]),
    "ReduceLROnPlateau": lambda o: L.ReduceLROnPlateau(o, mode="max", patience=1, cooldown=1,
                                                       factor=0.5),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_resumes_bit_identically_from_a_file(name, tmp_path):
    make = SCHEDULERS[name]
    metric = name == "ReduceLROnPlateau"     # maximising the loss: the lr drops

    def make_optimizer(params):
        return optim.SGD(params, lr=0.05, momentum=0.9)

    straight = _Problem()
    opt = make_optimizer(straight.params)
    straight_lrs = straight.train(opt, 2 * HALF, make(opt), metric)

    first = _Problem()
    opt = make_optimizer(first.params)
    sched = make(opt)
    first_lrs = first.train(opt, HALF, sched, metric)
    path = tmp_path / "checkpoint.safetensors"
    dn.save({"params": first.values(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict()}, path)

    checkpoint = dn.load(path)
    resumed = _Problem({k: np.asarray(v) for k, v in checkpoint["params"].items()})
    opt = make_optimizer(resumed.params)
    sched = make(opt)                        # constructed first, then both states loaded
    opt.load_state_dict(checkpoint["optimizer"])
    sched.load_state_dict(checkpoint["scheduler"])
    resumed_lrs = resumed.train(opt, HALF, sched, metric)
    assert first_lrs + resumed_lrs == straight_lrs
    assert len({lr[0] for lr in straight_lrs}) > 1           # the schedule did change the lr
    for ours, theirs in zip(resumed.values().values(), straight.values().values()):
        np.testing.assert_array_equal(ours, theirs)
