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

The residual blocks are the zoo's ``models.resnet.BasicBlock``; the FPN is written here (the
zoo had no FPN when this detector was written).
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import nn
from ...nn import functional as F
from ...tensor import Tensor
from ..resnet import BasicBlock


def upsample_nearest2x(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W), each value copied into a 2x2 block (nearest neighbour).
    Built from expand + reshape, so the backward sums each 2x2 block of the gradient."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class FeaturePyramidNetwork(nn.Module):
    """FPN top-down path with lateral connections (torchvision's names: ``inner_blocks``,
    ``layer_blocks``). forward(list of maps, finest first) -> dict {"0": P_finest, ...}.
    Each map must be exactly twice the size of the next one."""

    def __init__(self, in_channels_list: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList([nn.Conv2d(c, out_channels, 1)
                                           for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                           for _ in in_channels_list])

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        last = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(features) - 2, -1, -1):
            last = self.inner_blocks[i](features[i]) + upsample_nearest2x(last)  # top-down
            results.insert(0, self.layer_blocks[i](last))
        return {str(i): r for i, r in enumerate(results)}


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
        features = []
        for layer in self.layers:
            x = layer(x)                           # strides 4, 8, 16
            features.append(x)
        return self.fpn(features)
