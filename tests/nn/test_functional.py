"""The F namespace re-exports the ops' wrappers under torch.nn.functional's names."""

import torch

import deepnotes.nn.functional as F
from deepnotes.ops import activation, attention, conv, dropout, loss, matmul, norm, pool, shape


def test_every_name_is_the_op_wrapper_and_a_torch_name():
    modules = (activation, attention, conv, dropout, loss, matmul, norm, pool, shape)
    for name in F.__all__:
        fn = getattr(F, name)
        assert any(getattr(m, name, None) is fn for m in modules), name
        if name != "dropout_scale_at_test":          # ours only: classic dropout (notes 000 Q7)
            assert hasattr(torch.nn.functional, name), name
    for name in ("linear", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu",
                 "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "batch_norm",
                 "cross_entropy", "nll_loss", "mse_loss", "pad", "layer_norm"):
        assert name in F.__all__, name
