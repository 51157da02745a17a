"""Neural-network building blocks with PyTorch's API: ``Module``, ``Parameter``, containers, layers,
``functional`` (the F namespace) and ``init``.

    import deepnotes.nn as nn
    import deepnotes.nn.functional as F

    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    model.state_dict().keys()   # the same keys as the same model in PyTorch
"""

from . import functional, init
from .containers import ModuleDict, ModuleList, Sequential
from .layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    HuberLoss,
    Identity,
    L1Loss,
    LayerNorm,
    Linear,
    LogSoftmax,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReLU,
    Sigmoid,
    SmoothL1Loss,
    Softmax,
    Tanh,
)
from .module import Module
from .parameter import Parameter
