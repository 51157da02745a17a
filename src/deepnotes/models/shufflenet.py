"""ShuffleNet v1 (Zhang et al. 2017, arXiv:1707.01083) and v2 (Ma et al. 2018,
arXiv:1807.11164); v2 in torchvision's form (same state_dict keys).

**v1: grouped 1x1 convolutions + channel shuffle** (notes 004 "MobileNet ShuffleNet"). In a
MobileNet-style block the cheap depthwise 3x3 leaves the 1x1 (pointwise) convolutions with almost
all of the cost (C_in*C_out per pixel). ShuffleNet makes them *grouped* 1x1 convolutions (g groups:
g times cheaper), which lets the same budget pay for wider layers. But stacked group convolutions
never let information cross between groups, so after the first grouped 1x1 the channels are
shuffled (``F.channel_shuffle``: view as a (g, C/g) grid and transpose), and each group of the next
grouped convolution sees channels from every group (notes 004: "否则信息不流通").

    unit, stride 1:  x -> 1x1 GConv (C -> C/4), BN, ReLU -> shuffle -> 3x3 DWConv, BN
                       -> 1x1 GConv (C/4 -> C), BN -> + x -> ReLU
    unit, stride 2:  the 3x3 DWConv has stride 2, the last GConv gives C_out - C_in channels,
                     and the shortcut is a 3x3/2 average pool *concatenated* (cheap widening)

    stage       output @224     g = 3 (paper Table 1, "ShuffleNet 1x")
    conv1       24 x 112x112    3x3/2 conv, BN, ReLU
    maxpool     24 x 56x56      3x3/2
    stage2      240 x 28x28     1 unit stride 2 + 3 units (no grouping in the very first 1x1:
                                24 input channels are too few)
    stage3      480 x 14x14     1 + 7
    stage4      960 x 7x7       1 + 3
    head        1000            global avg pool, fc
    output channels per g: 1: 144/288/576, 2: 200/400/800, 3: 240/480/960, 4: 272/544/1088,
    8: 384/768/1536, so that every g costs about the same. Multiply-adds at 224x224 counted on
    this module: 143.1 / 140.8 / 137.5 / 134.3 / 138.4 M for g = 1 / 2 / 3 / 4 / 8, against the
    paper's 143 / 140 / 137 / 133 / 137 MFLOPs (Table 1). Parameters (the paper gives none):
    1,531,936 / 1,733,848 / 1,865,728 / 1,968,344 / 2,434,768.

The paper puts the shuffle right after the first grouped 1x1 (as here); some implementations put
it after the depthwise conv instead, which is the same network up to a permutation of the
depthwise filters, since a depthwise conv acts on each channel alone.

**v2: channel split** (Ma et al.'s four guidelines: equal input/output widths minimise memory
access, grouped convolutions cost memory access, fragmentation hurts parallelism, element-wise
ops are not free). A stride-1 unit splits the channels in two halves: one passes through
untouched, the other goes through 1x1 conv, BN, ReLU, 3x3 depthwise, BN, 1x1 conv, BN, ReLU (plain
1x1 convolutions, equal widths); the halves are *concatenated* (no addition) and shuffled with
2 groups so the next unit's split mixes them. A stride-2 unit feeds the whole input to two
branches (the first: 3x3/2 depthwise, BN, 1x1, BN, ReLU) and doubles the width.

    stage       output @224     x0_5 / x1_0 / x1_5 / x2_0
    conv1       24 x 112x112    3x3/2 conv, BN, ReLU; then 3x3/2 max pool
    stage2      28x28           48 / 116 / 176 / 244   (4 units, the first with stride 2)
    stage3      14x14           96 / 232 / 352 / 488   (8 units)
    stage4      7x7             192 / 464 / 704 / 976  (4 units)
    conv5       7x7             1024 / 1024 / 1024 / 2048 (1x1 conv, BN, ReLU)
    head        1000            global avg pool, fc
    params: x0_5 1,366,792 | x1_0 2,278,604 | x1_5 3,503,624 | x2_0 7,393,996
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor

# -- ShuffleNet v1 --------------------------------------------------------------------------------
#: Output channels of stages 2, 3, 4 for each number of groups (paper Table 1, 1x).
V1_STAGE_OUT_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                         4: (272, 544, 1088), 8: (384, 768, 1536)}


class ShuffleUnit(nn.Module):
    """One ShuffleNet v1 unit (see the module docstring for both forms).

    Args:
        inp, oup: input and output channels.
        stride: 1 (residual addition; needs inp == oup) or 2 (average-pool shortcut, concat).
        groups: g of the two grouped 1x1 convolutions.
        first_group: whether the first 1x1 is grouped (False for the first unit of stage 2).
    """

    def __init__(self, inp: int, oup: int, stride: int, groups: int, first_group: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit: stride should be 1 or 2, got {stride}")
        if stride == 1 and inp != oup:
            raise ValueError(f"ShuffleUnit: a stride-1 unit needs inp == oup, got {inp} and {oup}")
        self.stride = stride
        self.groups = groups
        mid = oup // 4                                    # the bottleneck: a quarter of the output
        branch_out = oup - inp if stride == 2 else oup   # stride 2: concat fills up to oup
        first_groups = groups if first_group else 1
        self.gconv1 = nn.Conv2d(inp, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.dwconv = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.gconv2 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.gconv1(x)))
        if self.groups > 1:
            out = F.channel_shuffle(out, self.groups)  # let the next GConv see every group
        out = self.bn2(self.dwconv(out))               # no ReLU after the depthwise conv
        out = self.bn3(self.gconv2(out))
        if self.shortcut is None:
            return F.relu(out + x)
        return F.relu(cat([self.shortcut(x), out], 1))  # (N, inp + oup - inp, H/2, W/2)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 (1x).

    Args:
        groups: g in {1, 2, 3, 4, 8} (the channel widths follow the paper's Table 1).
        num_classes: outputs of the classifier.
        stages_repeats: units per stage (the paper's 4, 8, 4).
    """

    def __init__(self, groups: int = 3, num_classes: int = 1000,
                 stages_repeats: tuple[int, int, int] = (4, 8, 4)):
        super().__init__()
        if groups not in V1_STAGE_OUT_CHANNELS:
            raise ValueError(f"ShuffleNetV1: groups must be one of "
                             f"{sorted(V1_STAGE_OUT_CHANNELS)}, got {groups}")
        if len(stages_repeats) != 3 or any(r < 1 for r in stages_repeats):
            raise ValueError(f"ShuffleNetV1: stages_repeats must be 3 positive ints, "
                             f"got {stages_repeats}")
        self.groups = groups
        self.conv1 = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = 24
        for i, (repeats, oup) in enumerate(zip(stages_repeats, V1_STAGE_OUT_CHANNELS[groups])):
            units = [ShuffleUnit(inp, oup, 2, groups, first_group=i > 0)]
            units += [ShuffleUnit(oup, oup, 1, groups) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            inp = oup
        self.fc = nn.Linear(inp, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))                  # (N, 24, H/4, W/4)
        x = self.stage4(self.stage3(self.stage2(x)))     # (N, C4, H/32, W/32)
        x = F.adaptive_avg_pool2d(x, (1, 1))             # (N, C4, 1, 1)
        return self.fc(x.flatten(1))


# -- ShuffleNet v2 --------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    """One ShuffleNet v2 unit, torchvision's names (``branch1``, ``branch2``)."""

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        if not 1 <= stride <= 3:
            raise ValueError(f"illegal stride value: {stride}")
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features * 2:
            raise ValueError(f"Invalid combination of stride {stride}, inp {inp} and oup {oup} "
                             f"values. If stride == 1 then inp should be equal to oup // 2 << 1.")
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),       # depthwise
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()  # identity half of the split
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, 1, 0,
                      bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch_features, branch_features, 3, stride, 1, groups=branch_features,
                      bias=False),                                               # depthwise
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            half = x.shape[1] // 2
            x1, x2 = x[:, :half], x[:, half:]                 # channel split
            out = cat([x1, self.branch2(x2)], 1)
        else:
            out = cat([self.branch1(x), self.branch2(x)], 1)  # (N, 2 * oup/2, H/s, W/s)
        return F.channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNet v2 with torchvision's arguments and attribute names.

    Args:
        stages_repeats: units in stages 2, 3, 4.
        stages_out_channels: channels of conv1, stages 2-4 and conv5.
        num_classes: outputs of the classifier.
    """

    def __init__(self, stages_repeats: list[int], stages_out_channels: list[int],
                 num_classes: int = 1000):
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError("expected stages_repeats as list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise ValueError("expected stages_out_channels as list of 5 positive ints")
        self._stage_out_channels = list(stages_out_channels)
        output_channels = stages_out_channels[0]
        self.conv1 = nn.Sequential(nn.Conv2d(3, output_channels, 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(output_channels), nn.ReLU(inplace=True))
        input_channels = output_channels
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (repeats, output_channels) in enumerate(zip(stages_repeats,
                                                           stages_out_channels[1:4])):
            units = [InvertedResidual(input_channels, output_channels, 2)]
            units += [InvertedResidual(output_channels, output_channels, 1)
                      for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            input_channels = output_channels
        output_channels = stages_out_channels[-1]
        self.conv5 = nn.Sequential(nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
                                   nn.BatchNorm2d(output_channels), nn.ReLU(inplace=True))
        self.fc = nn.Linear(output_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))                   # (N, 24, H/4, W/4)
        x = self.stage4(self.stage3(self.stage2(x)))      # (N, C4, H/32, W/32)
        x = self.conv5(x)
        x = x.mean((2, 3))                                # global average pool: (N, C5)
        return self.fc(x)


def shufflenet_v1(groups: int = 3, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x with g groups (default 3, the paper's main model)."""
    return ShuffleNetV1(groups, **kwargs)


def shufflenet_v2_x0_5(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 0.5x: 1,366,792 parameters."""
    return ShuffleNetV2([4, 8, 4], [24, 48, 96, 192, 1024], **kwargs)


def shufflenet_v2_x1_0(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1.0x: 2,278,604 parameters."""
    return ShuffleNetV2([4, 8, 4], [24, 116, 232, 464, 1024], **kwargs)


def shufflenet_v2_x1_5(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1.5x: 3,503,624 parameters."""
    return ShuffleNetV2([4, 8, 4], [24, 176, 352, 704, 1024], **kwargs)


def shufflenet_v2_x2_0(**kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 2.0x: 7,393,996 parameters."""
    return ShuffleNetV2([4, 8, 4], [24, 244, 488, 976, 2048], **kwargs)
