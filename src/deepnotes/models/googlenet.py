"""GoogLeNet (Inception v1), Szegedy et al. 2014 (arXiv:1409.4842), in torchvision's form.

The design ideas (notes 000 "Google Inception Net", notes 002 on 1x1 convolutions, notes 004
Q28):

* The Inception module looks at the same input at several scales at once: a 1x1, a 3x3 and a
  "5x5" branch and a 3x3 max pool, whose outputs are **concatenated** along the channels (not
  added: each branch contributes its own channels, and the next layer learns how to mix them).
* 1x1 convolutions do the heavy lifting: they mix channels at each position, and before the
  3x3/5x5 convolutions they *reduce* the channels (e.g. 192 -> 16 before a 5x5 with 32 outputs),
  which is what makes four parallel branches affordable; after the pool they project it.
* No big fully connected layers: global average pooling and one Linear(1024, 1000) replace
  AlexNet's 9216 -> 4096 -> 4096, so GoogLeNet has 12x fewer parameters than AlexNet.
* Auxiliary classifiers on inception4a and inception4d (a 4x4 average pool, 1x1 convolution,
  two linear layers) add their losses (weighted 0.3) during training, to push gradient into
  the middle of a deep network (against vanishing gradients, notes 004 Q28); they are dropped
  at inference.

torchvision's form, kept here so that its weights load: every convolution is Conv2d (no bias)
+ BatchNorm2d(eps=0.001) + ReLU (``BasicConv2d``; BN came after the paper); the pools use
``ceil_mode=True``; the auxiliary heads pool to 4x4 adaptively; and the "5x5" branch
(``branch3``) uses a **3x3** kernel, a long-standing quirk of the reference implementation that
its pretrained weights depend on.

Output in training mode with ``aux_logits=True``: ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)``, a namedtuple (as torchvision's); otherwise just the logits tensor. The training
loss of the paper is ``loss(logits) + 0.3 * (loss(aux_logits1) + loss(aux_logits2))``.

Parameters: 6,624,904 with ``aux_logits=False``, 13,004,888 with the two auxiliary heads
(torchvision's default). Initialisation: convolutions and linear weights truncated normal
(std 0.01, cut at +-2, i.e. not in practice), BN weight 1 and bias 0, linear biases PyTorch's
default.

    stage        output @224    channels (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    conv1..pool2 192x28x28      7x7/2, max pool, 1x1 64, 3x3 192, max pool
    3a, 3b       256, 480 x28   64,96,128,16,32,32 | 128,128,192,32,96,64     then max pool
    4a..4e       512..832 x14   192,96,208,16,48,64 ... 256,160,320,32,128,128 then max pool
    5a, 5b       832, 1024 x7   256,160,320,32,128,128 | 384,192,384,48,128,128
    head         1000           global average pool, dropout 0.2, fc
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary heads (torchvision's order)."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class BasicConv2d(nn.Module):
    """Conv2d (no bias) + BatchNorm2d(eps=0.001) + ReLU; ``kwargs`` go to the Conv2d."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated: C_out = ch1x1 + ch3x3 + ch5x5 + pool_proj.

    Shape: (N, in_channels, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision's "5x5" branch has a 3x3 kernel (see the module docstring)
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return cat(branches, 1)                           # (N, C_out, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive 4x4 average pool, 1x1 conv to 128, fc 2048 -> 1024 ->
    num_classes with ReLU and dropout between."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))              # (N, C, 4, 4)
        x = self.conv(x).flatten(1)                       # (N, 128 * 16)
        x = self.dropout(F.relu(self.fc1(x)))             # (N, 1024)
        return self.fc2(x)                                # (N, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's names (see the module docstring).

    Args:
        num_classes: output size.
        aux_logits: build the two auxiliary classifiers ``aux1``, ``aux2``.
        transform_input: re-normalise input given with ImageNet's mean/std to the (x - 0.5) /
            0.5 scaling of the original weights (torchvision's option).
        init_weights: apply the truncated-normal initialisation.
        dropout: before the fc. dropout_aux: in the auxiliary classifiers.

    Shape: (N, 3, H, W) -> (N, num_classes), H, W >= 15.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, init_weights: bool = True,
                 dropout: float = 0.2, dropout_aux: float = 0.7):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    def _transform_input(self, x: Tensor) -> Tensor:
        if not self.transform_input:
            return x
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        channels = [x[:, c:c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)]
        return cat(channels, 1)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))                   # (N, 64, 56, 56) at 224
        x = self.maxpool2(self.conv3(self.conv2(x)))       # (N, 192, 28, 28)
        x = self.inception3b(self.inception3a(x))          # (N, 480, 28, 28)
        x = self.inception4a(self.maxpool3(x))             # (N, 512, 14, 14)
        with_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))   # (N, 528, 14, 14)
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))             # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))          # (N, 1024, 7, 7)
        x = self.avgpool(x).flatten(1)                     # (N, 1024)
        x = self.fc(self.dropout(x))                       # (N, num_classes)
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet (torchvision's defaults: aux_logits=True, 13,004,888 parameters; 6,624,904
    with ``aux_logits=False``)."""
    return GoogLeNet(**kwargs)
