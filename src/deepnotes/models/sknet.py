"""SKNet, Li et al. 2019 (arXiv:1903.06586): selective kernels, a ResNeXt that picks its receptive
field per channel.

The design idea (notes 004 Q28 "SENet SKNet"; notes 003 "attention"). Neurons in the visual
cortex adapt their receptive field to the stimulus; a convolution layer cannot, its kernel
size is fixed. SKNet replaces the 3x3 convolution of a ResNeXt bottleneck with an SK unit
(``nn.SKConv``) that runs several kernel sizes and lets attention choose between them:

    split   U_m = relu(bn(conv_m(x)))       branch m: 3x3 with dilation m + 1, i.e. a 3x3 and
                                            a "5x5" (dilated 3x3) window, grouped (G = 32)
    fuse    z = relu(bn(fc(avgpool(sum_m U_m))))     global context, squeezed to d channels
    select  a_m = softmax over m of fcs_m(z)        one weight per branch and channel
            V = sum_m a_m * U_m

It is SENet's idea (a gate per channel from global context) turned into a soft *choice*: the
softmax makes the branches compete for each channel, where SE's sigmoid gates are independent.

Blocks: ``SKBottleneck`` = 1x1 conv -> SKConv (M=2, stride here) -> 1x1 conv x4, plus the
shortcut, inside ``ResNet``'s stages. Width of the SK unit: planes * base_width / 64 * groups
(ResNeXt's "32x4d": 128 channels in the first stage).

* ``sknet50``: SKNet-50 of the paper (SK-ResNeXt-50 32x4d, M=2, G=32, r=16, L=32):
  27,479,784 parameters (the paper's table: 27.5M).
* ``sknet_small``: a small SKNet for 32x32 images (CIFAR stem, one block per stage, planes
  16..128, G=4, L=16): 423,802 parameters with 10 classes.

No reference implementation has these exact names, so the tests build the same network in
PyTorch from torchvision's Bottleneck and an SK unit written from the paper, load our weights
into it and compare the logits.
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..tensor import Tensor
from .resnet import ResNet, conv1x1


class SKBottleneck(nn.Module):
    """ResNeXt bottleneck with the grouped 3x3 replaced by a selective-kernel unit.

    Args:
        inplanes: C_in. planes: C_out = 4 * planes. stride: of the SK unit.
        downsample: shortcut projection or None.
        groups, base_width: SK width = planes * base_width / 64 * groups (ResNeXt).
        M, r, L: SKConv's branches, reduction and smallest d.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 32, base_width: int = 4,
                 M: int = 2, r: int = 16, L: int = 32):  # noqa: N803 - the paper's names
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.SKConv(width, width, stride=stride, M=M, G=groups, r=r, L=L)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))          # (N, width, H, W)
        out = self.conv2(out)                             # (N, width, H/s, W/s), split-fuse-select
        return self.bn3(self.conv3(out))                  # (N, 4 planes, H/s, W/s)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


def sknet50(**kwargs: Any) -> ResNet:
    """SKNet-50 (SK-ResNeXt-50 32x4d, M=2, G=32, r=16, L=32), 27,479,784 parameters."""
    kwargs = {"groups": 32, "base_width": 4, "M": 2, "r": 16, "L": 32, **kwargs}
    return ResNet(SKBottleneck, [3, 4, 6, 3], **kwargs)


def sknet_small(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """A small SKNet for 32x32 images: CIFAR stem, one SK block per stage, planes 16..128,
    SK width = planes (G=4, base_width=16), L=16."""
    kwargs = {"stem": "cifar", "widths": (16, 32, 64, 128), "groups": 4, "base_width": 16,
              "M": 2, "r": 16, "L": 16, **kwargs}
    return ResNet(SKBottleneck, [1, 1, 1, 1], num_classes=num_classes, **kwargs)
