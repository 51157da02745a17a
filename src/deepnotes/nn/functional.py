"""The ``F`` namespace: stateless functions with PyTorch's names and signatures.

``import deepnotes.nn.functional as F`` gives ``F.conv2d``, ``F.relu``, ``F.cross_entropy``... as in
``torch.nn.functional``. Nothing is computed here: every name is the lowercase wrapper of an op in
``deepnotes.ops``, where its forward formula and backward derivation live (one op, one place).
The ``nn`` layers hold parameters and call these functions.
"""

from ..ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from ..ops.conv import conv2d
from ..ops.dropout import dropout, dropout_scale_at_test
from ..ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ..ops.matmul import linear
from ..ops.norm import batch_norm, layer_norm
from ..ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from ..ops.shape import pad

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "dropout_scale_at_test",
    "huber_loss",
    "l1_loss",
    "layer_norm",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    "relu",
    "sigmoid",
    "smooth_l1_loss",
    "softmax",
    "tanh",
]
