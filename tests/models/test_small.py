"""The small models (digits_cnn, mlp, lenet5) against the same architectures built in PyTorch:
parameter counts, state_dict keys and shapes, and float64 logits with copied weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn as tnn

import deepnotes as dn
from deepnotes import models


class TorchDigitsCNN(tnn.Module):
    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 16, 3, padding=1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU(),
            tnn.Conv2d(16, 32, 3, padding=1, bias=False), tnn.BatchNorm2d(32), tnn.ReLU(),
            tnn.MaxPool2d(2), tnn.Conv2d(32, 64, 3, padding=1, bias=False), tnn.BatchNorm2d(64),
            tnn.ReLU(),
            tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
        self.classifier = tnn.Linear(64, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


class TorchMLP(tnn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = tnn.Flatten()
        self.fc1 = tnn.Linear(64, 128)
        self.relu = tnn.ReLU()
        self.fc2 = tnn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


class TorchLeNet5(tnn.Module):
    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2),
                                       tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2))
        self.classifier = tnn.Sequential(tnn.Linear(256, 120), tnn.ReLU(), tnn.Linear(120, 84),
                                         tnn.ReLU(), tnn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


CASES = {
    "digits_cnn": (TorchDigitsCNN, (4, 1, 8, 8), 24058),
    "mlp": (TorchMLP, (4, 1, 8, 8), 9610),
    "lenet5": (TorchLeNet5, (3, 1, 28, 28), 44426),
}


def test_registry():
    assert set(CASES) <= set(models.list_models())
    assert models.list_models() == sorted(models.list_models())
    assert isinstance(models.get_model("mlp", hidden=32).fc1, dn.nn.Linear)
    assert models.get_model("mlp", hidden=32).fc1.weight.shape == (32, 64)
    with pytest.raises(ValueError, match="Unknown model 'resnet999'"):
        models.get_model("resnet999")
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("mlp", models.mlp)


@pytest.mark.parametrize("name", CASES)
def test_matches_the_same_model_in_torch(name):
    torch_cls, x_shape, n_params = CASES[name]
    dn.manual_seed(0)
    ours = models.get_model(name).double()
    theirs = torch_cls().double()
    assert sum(p.numel() for p in ours.parameters()) == n_params
    assert sum(p.numel() for p in theirs.parameters()) == n_params
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in ours_sd:
        assert tuple(ours_sd[key].shape) == tuple(theirs_sd[key].shape), key
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in ours_sd.items()})

    x = np.random.default_rng(0).random(x_shape)
    for train_mode in (True, False):  # BN: batch statistics, then running statistics
        ours.train(train_mode)
        theirs.train(train_mode)
        out = ours(dn.tensor(x))
        expected = theirs(torch.tensor(x)).detach().numpy()
        assert out.shape == (x_shape[0], 10)
        np.testing.assert_allclose(out.data, expected, atol=1e-10, rtol=1e-7)
