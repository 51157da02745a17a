"""Neural-network building blocks with PyTorch's API: ``Module``, ``Parameter``, containers, layers,
``functional`` (the F namespace) and ``init``.

    import deepnotes.nn as nn
    import deepnotes.nn.functional as F

    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    model.state_dict().keys()   # the same keys as the same model in PyTorch
"""

from . import functional, init, utils
from .containers import ModuleDict, ModuleList, Sequential
from .layers import (
    CELU,
    ELU,
    GELU,
    SELU,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    CrossEntropyLoss,
    DepthwiseSeparableConv2d,
    Dropout,
    Flatten,
    GroupNorm,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    HuberLoss,
    Identity,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    L1Loss,
    LayerNorm,
    LeakyReLU,
    Linear,
    LocallyConnected2d,
    LocalResponseNorm,
    LogSigmoid,
    LogSoftmax,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    Maxout,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    MaxUnpool1d,
    MaxUnpool2d,
    MaxUnpool3d,
    MeanOnlyBatchNorm1d,
    MeanOnlyBatchNorm2d,
    Mish,
    MSELoss,
    MultiheadAttention,
    NLLLoss,
    PositionalEncoding,
    PReLU,
    ReLU,
    ReLU6,
    RReLU,
    Sigmoid,
    SiLU,
    SKConv,
    SmoothL1Loss,
    Softmax,
    Softplus,
    Softsign,
    SpatialPyramidPooling,
    SqueezeExcitation,
    Tanh,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from .layers.dropout import AlphaDropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from .layers.loss import (
    CosineEmbeddingLoss,
    CTCLoss,
    HingeEmbeddingLoss,
    KLDivLoss,
    MarginRankingLoss,
    MultiMarginLoss,
    PoissonNLLLoss,
    SoftMarginLoss,
)
from .layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .layers.shuffle import ChannelShuffle
from .module import Module
from .parameter import Parameter

# isort: split
# DDP, SyncBatchNorm, model parallel (MPI is imported only by init_process_group)
from . import parallel  # noqa: E402
from .parallel.sync_batchnorm import SyncBatchNorm  # noqa: E402
