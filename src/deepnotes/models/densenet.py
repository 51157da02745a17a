"""DenseNet, Huang et al. 2017 (arXiv:1608.06993), in torchvision's form (same state_dict keys).

The idea (notes 000 "Densenet", 004 "DenseNet" and Q30): where ResNet *adds* a block's output to
its input, DenseNet *concatenates*. Inside a dense block layer i sees the feature maps of the block
input and of all layers before it, ``x_i = H_i([x_0, x_1, ..., x_{i-1}])``, and contributes only
k new channels (the growth rate), so the width grows linearly, k per layer, instead of
exploding. Concatenation keeps every earlier feature intact for reuse (an addition would mix
them: notes 000 "add = concat followed by a convolution that shares weights across the two
halves"), and every layer has a short path to the loss, which is what lets very deep DenseNets
train. Each H_i is pre-activation BN-ReLU-conv (notes 004): BN-ReLU-1x1 conv to 4k channels (the
bottleneck, "-B"), then BN-ReLU-3x3 conv to k channels; because each layer re-normalises the
concatenation with its own BN, old features are seen through a fresh normalisation each time.
Between blocks a transition (BN-ReLU-1x1 conv halving the channels, "-C" compression 0.5,
then 2x2 average pooling) shrinks the maps; the blocks themselves keep the spatial size.

stage             output @224     densenet121 (k = 32)
conv0, pool0      64 x 56x56      7x7/2 conv, BN, ReLU, 3x3/2 max pool
denseblock1       256 x 56x56     6 layers: 64 + 6*32
transition1       128 x 28x28     BN, ReLU, 1x1 conv, 2x2/2 avg pool
denseblock2       512 x 28x28     12 layers: 128 + 12*32
transition2       256 x 14x14
denseblock3       1024 x 14x14    24 layers: 256 + 24*32
transition3       512 x 7x7
denseblock4       1024 x 7x7      16 layers: 512 + 16*32
norm5, head       1000            BN, ReLU, global avg pool, fc
params: densenet121 7,978,856 | densenet161 28,681,000 | densenet169 14,149,480 |
densenet201 20,013,928

**Memory** (notes 004 Q29). Naively every layer keeps, for backward, the concatenation it built
and the BN and ReLU outputs of that concatenation: O(L^2) channels per block for L layers, the
reason DenseNet was known as a memory hog. ``memory_efficient=True`` runs the concat-BN-ReLU-1x1
conv of each layer through ``deepnotes.utils.checkpoint.checkpoint``: forward keeps only the
layer's inputs (the earlier feature maps, which exist anyway) and backward recomputes the
intermediates just before it needs them, so only one layer's copies exist at a time; the extra
cost is a BN and a 1x1 conv per layer. The gradients are identical. Unlike torchvision, the
recomputation here does not update norm1's running statistics a second time, so a training step
changes the model exactly as it does with ``memory_efficient=False``.

Measured (tracemalloc, float32 densenet121, one training step; tests/models/test_zoo_b.py checks
the direction): memory held by the graph after forward 72.9 -> 44.3 MiB (x0.61) for a batch of 2
at 64x64, 290 -> 176 MiB for a batch of 8 (x0.61); peak of forward + backward 86.3 -> 64.1 MiB
and 295 -> 189 MiB (x0.64; the peak includes 30.4 MiB of parameter gradients). Time +20-25%.
Most of what remains is what this option does not touch: the im2col columns that each 3x3 conv
keeps for its weight gradient (9 x 4k channels per layer, more than any concatenation).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import nn
from ..autograd import is_grad_enabled
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor
from ..utils.checkpoint import checkpoint


@contextmanager
def _frozen_running_stats(norm: nn.Module) -> Iterator[None]:
    """Undo whatever the block inside does to ``norm``'s buffers (running mean/var, count)."""
    saved = [buffer.data.copy() for buffer in norm.buffers()]
    try:
        yield
    finally:
        for buffer, value in zip(norm.buffers(), saved):
            buffer.data[...] = value


class _DenseLayer(nn.Module):
    """H_i: BN-ReLU-1x1 conv (C_in -> bn_size*k), BN-ReLU-3x3 conv (-> k), optional dropout."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float, memory_efficient: bool = False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bn_function(self, *inputs: Tensor) -> Tensor:
        """The bottleneck: concat -> BN -> ReLU -> 1x1 conv, (N, sum C_j, H, W) -> (N, 4k, H, W)."""
        concatenated = cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(concatenated)))

    def _recomputable_bn_function(self, *inputs: Tensor) -> Tensor:
        if is_grad_enabled():  # the recomputation in backward: forward already updated norm1
            with _frozen_running_stats(self.norm1):
                return self.bn_function(*inputs)
        return self.bn_function(*inputs)

    def forward(self, input: Tensor | list[Tensor]) -> Tensor:
        prev_features = [input] if isinstance(input, Tensor) else list(input)
        if self.memory_efficient and is_grad_enabled() and any(
                t.requires_grad for t in prev_features):
            bottleneck = checkpoint(self._recomputable_bn_function, *prev_features)
        else:
            bottleneck = self.bn_function(*prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; layer i takes C_in + i*k channels; output C_in + L*k."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float, memory_efficient: bool = False):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size,
                                drop_rate, memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))  # each layer reads the whole list so far
        return cat(features, 1)


class _Transition(nn.Sequential):
    """BN, ReLU, 1x1 conv (C -> C/2), 2x2/2 average pooling."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                              bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC (torchvision's arguments and attribute names).

    Args:
        growth_rate: k, channels each dense layer adds.
        block_config: number of layers in each of the four dense blocks.
        num_init_features: channels of the stem convolution.
        bn_size: bottleneck width factor (the 1x1 conv outputs bn_size*k channels).
        drop_rate: dropout after each dense layer (0: none).
        num_classes: outputs of the classifier.
        memory_efficient: recompute each layer's concat-BN-ReLU-conv in backward instead of
            keeping it (see the module docstring); same results, less memory, a little slower.
    """

    def __init__(self, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0,
                 num_classes: int = 1000, memory_efficient: bool = False):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3,
                                bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate,
                                memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)                  # (N, C, H/32, W/32)
        out = F.relu(features)
        out = F.adaptive_avg_pool2d(out, (1, 1))     # (N, C, 1, 1)
        return self.classifier(out.flatten(1))       # (N, C) -> (N, num_classes)


def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int,
              **kwargs: Any) -> DenseNet:
    return DenseNet(growth_rate, block_config, num_init_features, **kwargs)


def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16): 7,978,856 parameters."""
    return _densenet(32, (6, 12, 24, 16), 64, **kwargs)


def densenet161(**kwargs: Any) -> DenseNet:
    """DenseNet-161 (k=48, blocks 6-12-36-24, 96 stem channels): 28,681,000 parameters."""
    return _densenet(48, (6, 12, 36, 24), 96, **kwargs)


def densenet169(**kwargs: Any) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32): 14,149,480 parameters."""
    return _densenet(32, (6, 12, 32, 32), 64, **kwargs)


def densenet201(**kwargs: Any) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32): 20,013,928 parameters."""
    return _densenet(32, (6, 12, 48, 32), 64, **kwargs)
