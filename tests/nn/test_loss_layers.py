"""Every loss module against its torch.nn counterpart: forward and gradients, reductions (the
deprecated size_average/reduce pair included), class-weight buffers, state_dict keys, repr."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes import nn
from tests.helpers import check_against_torch


def _data(rng):
    """Inputs per loss: (ours args, torch args) share the arrays; float arrays get gradients."""
    x, t = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    labels = rng.integers(0, 5, 4)
    probs = rng.uniform(0.05, 0.95, (4, 5))
    pm1 = rng.choice([-1.0, 1.0], 4)
    log_probs = rng.standard_normal((7, 2, 4))
    log_probs = log_probs - np.log(np.exp(log_probs).sum(2, keepdims=True))
    ctc = (log_probs, np.array([[1, 2, 2], [3, 1, 1]]), np.array([7, 6]), np.array([3, 2]))
    return {
        "CrossEntropyLoss": (x, labels),
        "NLLLoss": (x, labels),
        "MSELoss": (x, t),
        "L1Loss": (x, t),
        "SmoothL1Loss": (x, t),
        "HuberLoss": (x, t),
        "BCELoss": (probs, rng.uniform(0, 1, (4, 5))),
        "BCEWithLogitsLoss": (x, rng.uniform(0, 1, (4, 5))),
        "KLDivLoss": (x - 2, probs),
        "MarginRankingLoss": (x[:, 0], t[:, 0], pm1),
        "HingeEmbeddingLoss": (np.abs(x), rng.choice([-1, 1], (4, 5))),
        "MultiMarginLoss": (x, labels),
        "SoftMarginLoss": (x, rng.choice([-1, 1], (4, 5))),
        "CosineEmbeddingLoss": (x, t, rng.choice([-1, 1], 4)),
        "PoissonNLLLoss": (x, rng.poisson(1.5, (4, 5)).astype(np.float64)),
        "CTCLoss": ctc,
    }


# (class name, constructor keyword arguments); weights are float64 arrays turned into tensors
MODULE_CASES = [
    ("CrossEntropyLoss", dict(label_smoothing=0.1)),
    ("CrossEntropyLoss", dict(weight=np.linspace(0.5, 2, 5), ignore_index=2)),
    ("NLLLoss", dict(weight=np.linspace(0.5, 2, 5))),
    ("MSELoss", dict()),
    ("L1Loss", dict(reduction="sum")),
    ("SmoothL1Loss", dict(beta=0.5)),
    ("HuberLoss", dict(delta=0.7, reduction="none")),
    ("BCELoss", dict(weight=np.linspace(0.5, 2, 5))),
    ("BCEWithLogitsLoss", dict(pos_weight=np.linspace(0.5, 3, 5))),
    ("KLDivLoss", dict(reduction="batchmean")),
    ("KLDivLoss", dict(reduction="sum", log_target=False)),
    ("MarginRankingLoss", dict(margin=0.3)),
    ("HingeEmbeddingLoss", dict(margin=2.0, reduction="sum")),
    ("MultiMarginLoss", dict(p=2, margin=0.5)),
    ("MultiMarginLoss", dict(weight=np.linspace(0.5, 2, 5), reduction="none")),
    ("SoftMarginLoss", dict()),
    ("CosineEmbeddingLoss", dict(margin=0.2, reduction="none")),
    ("PoissonNLLLoss", dict(full=True)),
    ("PoissonNLLLoss", dict(log_input=False, eps=0.1, reduction="sum")),
    ("CTCLoss", dict(blank=0, reduction="mean", zero_infinity=True)),
    ("CTCLoss", dict(reduction="none")),
]


def _build(name, kwargs):
    def convert(make):
        return {k: make(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}

    return getattr(nn, name)(**convert(dn.tensor)), getattr(torch.nn, name)(**convert(
        torch.tensor))


@pytest.mark.parametrize("name, kwargs", MODULE_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(MODULE_CASES)])
def test_loss_module_matches_torch(name, kwargs, rng):
    ours, theirs = _build(name, kwargs)
    inputs = _data(rng)[name]
    if name == "PoissonNLLLoss" and not kwargs.get("log_input", True):
        inputs = (np.abs(inputs[0]) + 0.1, inputs[1])
    weighted = any(isinstance(v, np.ndarray) for v in kwargs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_against_torch(ours, theirs, inputs, float32=not weighted)   # buffers are float64


ALL_LOSSES = sorted({name for name, _ in MODULE_CASES})
LEGACY = [n for n in ALL_LOSSES if n not in ("HuberLoss", "CTCLoss")]


@pytest.mark.parametrize("name", LEGACY)
def test_deprecated_size_average_and_reduce_map_to_torchs_reduction(name):
    for size_average, reduce in itertools.product([None, True, False], repeat=2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = getattr(nn, name)(size_average=size_average, reduce=reduce)
            theirs = getattr(torch.nn, name)(size_average=size_average, reduce=reduce)
        assert ours.reduction == theirs.reduction, (size_average, reduce)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_state_dict_keys_and_repr_match_torch(name):
    kwargs = {}
    if name in ("CrossEntropyLoss", "NLLLoss", "BCELoss", "MultiMarginLoss"):
        kwargs["weight"] = np.ones(5)
    if name == "BCEWithLogitsLoss":
        kwargs["pos_weight"] = np.ones(5)
    ours, theirs = _build(name, kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def test_loss_module_constructor_errors():
    for make in (nn.MultiMarginLoss, torch.nn.MultiMarginLoss):
        with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
            make(p=3)
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor, got 2D"):
        nn.MultiMarginLoss(weight=dn.ones(2, 3))
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor, got 2D"):
        torch.nn.MultiMarginLoss(weight=torch.ones(2, 3))
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        nn.KLDivLoss(reduction="bad")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"


def test_kl_div_loss_mean_warns_like_torch(rng):
    x, t = rng.standard_normal((2, 3)), rng.uniform(0.1, 1, (2, 3))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        nn.KLDivLoss()(dn.tensor(x), dn.tensor(t))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        torch.nn.KLDivLoss()(torch.tensor(x), torch.tensor(t))
