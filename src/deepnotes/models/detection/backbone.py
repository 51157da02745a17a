"""A small ResNet + FPN backbone for 64x64 images (notes 004, "HyperNet, FPN" and "FPN 理解").

FPN (Lin et al. 2017): a CNN's deep maps are semantically strong but coarse, its shallow maps
fine but weak. FPN adds a top-down path: start from the deepest map, upsample it 2x (nearest)
and add a 1x1 "lateral" projection of the next shallower map, level by level; a 3x3 conv on each
sum removes the upsampling's aliasing. Every level then has the same channels and strong
semantics, and a detector reads small objects from the fine levels and large ones from the
coarse levels.

    stage     output (64x64 input)   widths=(16, 32, 64)
    stem      16 x 32 x 32           3x3/2 conv, BN, ReLU
    layer1    16 x 16 x 16           BasicBlock, stride 2          -> C2 (stride 4)
    layer2    32 x  8 x  8           BasicBlock, stride 2          -> C3 (stride 8)
    layer3    64 x  4 x  4           BasicBlock, stride 2          -> C4 (stride 16)
    fpn       3 levels of out_channels: P2 16x16, P3 8x8, P4 4x4 (keys "0", "1", "2")

The residual blocks are the zoo's ``models.resnet.BasicBlock`` and the FPN is the zoo's
``models.fpn.FeaturePyramidNetwork`` (torchvision's; checked against it in
tests/models/test_zoo_a.py); only the stage layout, sized for 64x64 images, is defined here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from ... import nn
from ...nn import functional as F
from ...tensor import Tensor
from ..fpn import FeaturePyramidNetwork
from ..resnet import BasicBlock


class SmallResNetFPN(nn.Module):
    """Stem + three strided BasicBlock stages + FPN; ``out_channels`` channels per level."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64), out_channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        c_in = widths[0]
        for width in widths:
            downsample = nn.Sequential(nn.Conv2d(c_in, width, 1, stride=2, bias=False),
                                       nn.BatchNorm2d(width))
            stages.append(BasicBlock(c_in, width, 2, downsample))
            c_in = width
        self.layers = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(list(widths), out_channels)
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))        # (N, w0, H/2, W/2)
        features = OrderedDict()
        for i, layer in enumerate(self.layers):
            x = layer(x)                           # strides 4, 8, 16
            features[str(i)] = x
        return self.fpn(features)                  # {"0": P2, "1": P3, "2": P4}
