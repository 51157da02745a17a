"""MobileNet v1 (Howard et al. 2017, arXiv:1704.04861) and v2 (Sandler et al. 2018,
arXiv:1801.04381); v2 in torchvision's form (same state_dict keys), plus CIFAR-size variants.

**v1: depthwise separable convolution** (notes 001, 003 "depthwise separable conv", 004 Q31).
A k x k convolution C_in -> C_out filters and mixes channels at once: k^2 C_in C_out weights and
H W k^2 C_in C_out multiply-adds. v1 splits it in two: a *depthwise* k x k convolution (groups =
C_in, one filter per channel: spatial filtering only) and a *pointwise* 1x1 convolution (channel
mixing only), each followed by BN and ReLU. Cost: H W (k^2 C_in + C_in C_out), a ratio of
1/C_out + 1/k^2 to the full convolution, so a 3x3 layer is 8-9 times cheaper. Apart from the
first full 3x3 convolution the network is 13 such pairs, global average pooling and one fc layer:

    layer                     output @224       (dw 3x3 + pw 1x1, each with BN, ReLU)
    conv 3x3/2, 32            32 x 112x112
    dw/1, pw 64               64 x 112x112
    dw/2, pw 128              128 x 56x56
    dw/1, pw 128              128 x 56x56
    dw/2, pw 256              256 x 28x28
    dw/1, pw 256              256 x 28x28
    dw/2, pw 512              512 x 14x14
    5 x (dw/1, pw 512)        512 x 14x14
    dw/2, pw 1024             1024 x 7x7
    dw/1, pw 1024             1024 x 7x7       (the paper's table prints s2 here, a known typo:
                                                its own output size 7x7 needs stride 1)
    avg pool, fc              1000

The paper reports 4.2 million parameters and 569 million multiply-adds for "1.0 MobileNet-224";
this module has 4,231,976 parameters (convolutions without bias, BN scale and shift, fc with
bias; the figure Keras' reference implementation lists as its trainable parameters) and
568.7 M multiply-adds (tests/models/test_zoo_b.py counts both). ``width_mult`` (the paper's
alpha) thins every layer.

**v2: inverted residual with linear bottleneck** (notes 004 "MobileNet ShuffleNet"). A ResNet
bottleneck narrows (1x1 reduce), filters (3x3), widens; v2 inverts it: a 1x1 conv *expands* the
narrow block input t = 6 times, the 3x3 depthwise conv filters the wide tensor (depthwise is
cheap, so it can afford many channels), and a 1x1 conv projects back down. The projection has no
ReLU (a "linear bottleneck": ReLU in a narrow space destroys information), and the residual
connects the narrow ends when stride is 1 and the widths match. ReLU6 everywhere else.

    t, c, n, s  (expansion, output channels, repeats, first stride)   output @224
    conv 3x3/2, 32                                                    32 x 112x112
    1, 16, 1, 1                                                       16 x 112x112
    6, 24, 2, 2                                                       24 x 56x56
    6, 32, 3, 2                                                       32 x 28x28
    6, 64, 4, 2                                                       64 x 14x14
    6, 96, 3, 1                                                       96 x 14x14
    6, 160, 3, 2                                                      160 x 7x7
    6, 320, 1, 1                                                      320 x 7x7
    conv 1x1, 1280; avg pool; dropout 0.2; fc                         1000
    mobilenet_v2: 3,504,872 params

**CIFAR variants** (32x32 input): the ImageNet stem and first stage shrink 224 -> 56 before any
real work; on 32x32 that would leave 8x8 after two layers. ``mobilenet_v2_cifar`` makes the stem
conv stride 1 and the 24-channel stage's stride 1 (32 -> 32 -> 16 -> 8 -> 4 at the end);
``mobilenet_v1_cifar`` makes the stem stride 1 (32 -> 2 at the end). Same layers and names as the
ImageNet models, so the parameter counts differ only through ``num_classes`` (default 10).
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..nn import functional as F
from ..tensor import Tensor


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (8: friendly to vector units), never
    going below 90% of ``v`` (torchvision's rule for width multipliers)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """conv (no bias, "same" padding) -> BN -> activation, as torchvision.ops.Conv2dNormActivation
    (a Sequential, so its keys are ``0.weight``, ``1.weight``...)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, activation_layer: Any = nn.ReLU6):
        padding = (kernel_size - 1) // 2
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                            groups=groups, bias=False),
                  nn.BatchNorm2d(out_channels)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)


# -- MobileNet v1 ---------------------------------------------------------------------------------
class DepthwiseSeparable(nn.Sequential):
    """dw 3x3 (groups = C_in) -> BN -> ReLU -> pw 1x1 (C_in -> C_out) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            Conv2dNormActivation(in_channels, in_channels, 3, stride, groups=in_channels,
                                 activation_layer=nn.ReLU),   # depthwise: filters, no mixing
            Conv2dNormActivation(in_channels, out_channels, 1,
                                 activation_layer=nn.ReLU),   # pointwise: mixes, no filtering
        )


#: (output channels, stride) of the 13 depthwise separable blocks of MobileNet v1.
V1_SETTING = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    """MobileNet v1: a 3x3 conv, 13 depthwise separable blocks, average pooling, fc.

    Args:
        num_classes: outputs of the classifier.
        width_mult: alpha, the paper's width multiplier (every channel count times alpha).
        dropout: dropout before the classifier (0: none, as in the paper).
        stem_stride: stride of the first convolution (2 for 224x224 inputs, 1 for CIFAR).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.0,
                 stem_stride: int = 2):
        super().__init__()
        channels = int(32 * width_mult)
        layers: list[nn.Module] = [Conv2dNormActivation(3, channels, 3, stem_stride,
                                                        activation_layer=nn.ReLU)]
        for c, s in V1_SETTING:
            out = int(c * width_mult)
            layers.append(DepthwiseSeparable(channels, out, s))
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes))
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)                           # (N, 1024, H/32, W/32)
        x = F.adaptive_avg_pool2d(x, (1, 1))           # global average pool: (N, 1024, 1, 1)
        return self.classifier(x.flatten(1))           # (N, 1024) -> (N, num_classes)


# -- MobileNet v2 ---------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    """[1x1 expand, BN, ReLU6] -> 3x3 depthwise, BN, ReLU6 -> 1x1 project, BN (linear), + x."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride should be 1 or 2, got {stride}")
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))  # expand
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),  # project: no activation
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


#: t (expansion), c (channels), n (repeats), s (first stride), torchvision's table.
V2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
              [6, 160, 3, 2], [6, 320, 1, 1]]


class MobileNetV2(nn.Module):
    """MobileNet v2 with torchvision's arguments and attribute names.

    Args:
        num_classes: outputs of the classifier.
        width_mult: width multiplier (channel counts rounded to multiples of ``round_nearest``).
        inverted_residual_setting: the t, c, n, s table (default: the paper's).
        round_nearest: channel counts are multiples of this.
        dropout: dropout before the classifier.
        stem_stride: stride of the first convolution (2; 1 in the CIFAR variant).
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: list[list[int]] | None = None,
                 round_nearest: int = 8, dropout: float = 0.2, stem_stride: int = 2):
        super().__init__()
        setting = V2_SETTING if inverted_residual_setting is None else inverted_residual_setting
        if not setting or any(len(row) != 4 for row in setting):
            raise ValueError(f"inverted_residual_setting should be non-empty and a 4-element "
                             f"list, got {setting}")
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=stem_stride)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout),
                                        nn.Linear(self.last_channel, num_classes))
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)                           # (N, 1280, H/32, W/32)
        x = F.adaptive_avg_pool2d(x, (1, 1))           # global average pool: (N, 1280, 1, 1)
        return self.classifier(x.flatten(1))           # (N, 1280) -> (N, num_classes)


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation: He normal (fan_out) convs, BN 1/0, fc N(0, 0.01)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """MobileNet v1 1.0-224: 4,231,976 parameters, 568.7 M multiply-adds at 224x224."""
    return MobileNetV1(**kwargs)


def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNet v2 1.0 (torchvision's ``mobilenet_v2``): 3,504,872 parameters."""
    return MobileNetV2(**kwargs)


def mobilenet_v1_cifar(num_classes: int = 10, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1 for 32x32 inputs: stem stride 1 (final maps 2x2)."""
    return MobileNetV1(num_classes=num_classes, stem_stride=1, **kwargs)


def mobilenet_v2_cifar(num_classes: int = 10, **kwargs: Any) -> MobileNetV2:
    """MobileNet v2 for 32x32 inputs: stem stride 1 and the 24-channel stage's stride 1
    (final maps 4x4)."""
    setting = [list(row) for row in V2_SETTING]
    setting[1][3] = 1  # 6, 24, 2, 2 -> 6, 24, 2, 1
    kwargs.setdefault("inverted_residual_setting", setting)
    return MobileNetV2(num_classes=num_classes, stem_stride=1, **kwargs)
