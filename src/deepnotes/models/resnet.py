"""ResNet, He et al. 2015 (arXiv:1512.03385), its ResNet-vd form and the CIFAR-size variants.

The design idea (notes 000 "ResNet", notes 003 "resnet的结构特点", notes 004 Q28). Stacking more
plain layers makes even the *training* error worse (degradation), although a deeper network
could copy a shallower one and set the extra layers to the identity. A residual block makes
that easy: it computes H(x) = F(x) + x, so its layers only fit the residual F(x) = H(x) - x,
and a block that should do nothing drives F to 0. In the backward pass dH/dx = dF/dx + 1: the
"+1" carries the gradient straight to the early layers, whatever the weights do.

* BasicBlock (resnet18/34): two 3x3 convolutions, expansion 1.
* Bottleneck (resnet50/101/152): 1x1 reduce -> 3x3 -> 1x1 expand (x4). The 1x1 convolutions
  cut the channels the expensive 3x3 sees (notes 002 on 1x1 convolutions); the stride sits on
  the 3x3 ("ResNet v1.5", torchvision's form), not on the first 1x1, which would throw away 3
  of every 4 positions before looking at them.
* Downsampling: the first block of layer2..4 halves H and W with stride 2 and its shortcut
  becomes a strided 1x1 convolution + BN (``downsample``) to match the shape (notes 003:
  stride-2 convolutions instead of pooling).

Stage table (torchvision's ImageNet form, 224x224 input)::

    stage    output       resnet18           resnet50
    conv1    64x112x112   7x7/2 conv, BN, ReLU, 3x3/2 max pool (-> 56x56)
    layer1   56x56        BasicBlock x2      Bottleneck x3 (256 channels out)
    layer2   28x28        BasicBlock x2      Bottleneck x4, first stride 2
    layer3   14x14        BasicBlock x2      Bottleneck x6, first stride 2
    layer4   7x7          BasicBlock x2      Bottleneck x3, first stride 2
    head     1000         global average pool, fc
    params                11,689,512         25,557,032
    (resnet34 21,797,672, resnet101 44,549,160, resnet152 60,192,808)

Attribute names, state_dict keys and initialisation (convolutions He-normal with
mode="fan_out", BN weight 1 and bias 0, fc PyTorch's default) are torchvision's, so a
torchvision state_dict loads unchanged and gives the same logits.

ResNet-vd (notes 003 "ResNet-vd有什么改进之处"; He et al. 2018, "Bag of Tricks", ResNet-C/D):

* ResNet-D, the avg-pool shortcut: a strided 1x1 convolution reads only one position in four,
  so 3/4 of the input never reaches the shortcut. vd averages 2x2 first (AvgPool2d(2, 2,
  ceil_mode=True, count_include_pad=False)) and then applies a stride-1 1x1 convolution: every
  input position contributes. ``downsample`` = Sequential(AvgPool2d or Identity, conv, BN).
* ResNet-C, the deep stem: the 7x7/2 convolution becomes three 3x3 convolutions (32, 32, 64
  channels, the first with stride 2), the same receptive field with fewer multiplies and more
  non-linearity (notes 001 "VGG使用2个3x3卷积核的优势").
* The stride on the 3x3 of the bottleneck (ResNet-B) is already torchvision's form.

The layout follows timm's ``resnet50d`` (``conv1`` a Sequential of 7 modules, ``downsample.1``
the 1x1 convolution): resnet50_vd has 25,576,264 parameters (19,232 more than resnet50, all
in the stem).

CIFAR variants (``resnet18_cifar`` ...): for 32x32 images a 7x7/2 stem and a max pool would
leave 8x8 maps after the stem and 1x1 at layer4; the CIFAR form uses one 3x3/1 convolution and
no max pool, so layer1..4 see 32, 16, 8, 4. resnet18_cifar with 10 classes has 11,173,962
parameters (the usual CIFAR ResNet-18).

Small widths (``widths=(16, 32, 64, 128)``) give a cheap backbone for 64x64 images (used by
``models.fpn.resnet_fpn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import nn
from ..tensor import Tensor


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (the BN after it has the bias)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias: mixes channels at each position."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions.

    Args:
        inplanes: C_in. planes: C_out (expansion 1). stride: of conv1 (and the shortcut).
        downsample: the shortcut's projection when the shape changes, else None (identity).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the residual branch before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))         # (N, planes, H/s, W/s)
        return self.bn2(self.conv2(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)    # H(x) = F(x) + x


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride here) -> 1x1 expand x4, plus the shortcut.

    With C_in = 256 and planes = 64 the three convolutions cost 256*64 + 9*64*64 + 64*256 =
    69,632 weights, against 2 * 9 * 256 * 256 = 1,179,648 for two 3x3 convolutions at full width.

    Args:
        inplanes: C_in. planes: the bottleneck width; C_out = 4 * planes.
        stride: of the 3x3 convolution. downsample: the shortcut projection or None.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the residual branch before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))         # (N, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))       # (N, planes, H/s, W/s)
        return self.bn3(self.conv3(out))                 # (N, 4 planes, H/s, W/s)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


def _stem(stem: str, width: int) -> tuple[nn.Module, nn.Module]:
    """(conv1, maxpool) of the three stems; bn1 and the ReLU after conv1 are shared."""
    if stem == "imagenet":
        return nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False), \
            nn.MaxPool2d(3, stride=2, padding=1)
    if stem == "deep":           # ResNet-C: three 3x3 convolutions, the first with stride 2
        half = width // 2
        return nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, width, 3, padding=1, bias=False),
        ), nn.MaxPool2d(3, stride=2, padding=1)
    if stem == "cifar":          # one 3x3/1 convolution and no max pool, for 32x32 images
        return nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False), nn.Identity()
    raise ValueError(f"ResNet: stem must be 'imagenet', 'deep' or 'cifar', got {stem!r}")


class ResNet(nn.Module):
    """The ResNet trunk: stem, four stages of residual blocks, global average pool, fc.

    Args:
        block: BasicBlock or Bottleneck (or a subclass: SE, SK blocks), with ``expansion``.
        layers: number of blocks in each of the four stages.
        num_classes: size of the fc output.
        zero_init_residual: start the last BN of each residual branch at weight 0, so each
            block starts as the identity (Goyal et al. 2017; torchvision's option).
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool, torchvision), "deep" (ResNet-C, three
            3x3 convolutions) or "cifar" (one 3x3/1 convolution, no max pool).
        avg_down: ResNet-D shortcut, 2x2 average pool before a stride-1 1x1 convolution.
        widths: the block widths ``planes`` of the four stages (64, 128, 256, 512); the stem
            has widths[0] channels.
        **block_kwargs: passed on to every block (e.g. the SE reduction).

    Shape: (N, 3, H, W) -> (N, num_classes) for any H, W the strides leave >= 1 (H >= 1
    for all three stems; 224 -> 7x7 at layer4 for the ImageNet stems, 32 -> 4x4 for "cifar").
    """

    def __init__(self, block: type[nn.Module], layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, stem: str = "imagenet", avg_down: bool = False,
                 widths: Sequence[int] = (64, 128, 256, 512), **block_kwargs: Any):
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"ResNet: layers and widths must have 4 entries, got "
                             f"layers={list(layers)}, widths={list(widths)}")
        self.block_kwargs = block_kwargs
        self.avg_down = avg_down
        self.inplanes = widths[0]
        self.conv1, self.maxpool = _stem(stem, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        self.stage_channels = [w * block.expansion for w in widths]   # outputs of layer1..4

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:     # the last BN of every residual branch (bn3, else bn2)
            for m in self.modules():
                if hasattr(m, "expansion"):
                    last_bn = m.bn3 if hasattr(m, "bn3") else m.bn2
                    nn.init.constant_(last_bn.weight, 0)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        """One stage: the first block changes the shape (with a projection shortcut), the
        others keep it."""
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            if self.avg_down:    # ResNet-D: average 2x2 first, then a stride-1 projection
                pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                        if stride != 1 else nn.Identity())
                downsample = nn.Sequential(pool, conv1x1(self.inplanes, out_planes),
                                           nn.BatchNorm2d(out_planes))
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride),
                                           nn.BatchNorm2d(out_planes))
        stage = [block(self.inplanes, planes, stride, downsample, **self.block_kwargs)]
        self.inplanes = out_planes
        stage += [block(self.inplanes, planes, **self.block_kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward_features(self, x: Tensor) -> Tensor:
        """The trunk without the head: (N, 3, H, W) -> (N, C_4, H/32, W/32) (H/8 for cifar)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer1(x)                                     # (N, 64 e, H/4, W/4)
        x = self.layer2(x)                                     # (N, 128 e, H/8, W/8)
        x = self.layer3(x)                                     # (N, 256 e, H/16, W/16)
        return self.layer4(x)                                  # (N, 512 e, H/32, W/32)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x))             # (N, 512 e, 1, 1)
        return self.fc(x.flatten(1))                           # (N, num_classes)


_DEPTHS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def _resnet(depth: int, **kwargs: Any) -> ResNet:
    block, layers = _DEPTHS[depth]
    return ResNet(block, layers, **kwargs)


def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18, torchvision's layout (11,689,512 parameters)."""
    return _resnet(18, **kwargs)


def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34, torchvision's layout (21,797,672 parameters)."""
    return _resnet(34, **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (v1.5: stride on the 3x3), torchvision's layout (25,557,032 parameters)."""
    return _resnet(50, **kwargs)


def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101, torchvision's layout (44,549,160 parameters)."""
    return _resnet(101, **kwargs)


def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152, torchvision's layout (60,192,808 parameters)."""
    return _resnet(152, **kwargs)


def _resnet_vd(depth: int, **kwargs: Any) -> ResNet:
    return _resnet(depth, stem="deep", avg_down=True, **kwargs)


def resnet18_vd(**kwargs: Any) -> ResNet:
    """ResNet-18-vd: deep 3x3 stem and avg-pool shortcuts (11,708,744 parameters)."""
    return _resnet_vd(18, **kwargs)


def resnet34_vd(**kwargs: Any) -> ResNet:
    """ResNet-34-vd: deep 3x3 stem and avg-pool shortcuts."""
    return _resnet_vd(34, **kwargs)


def resnet50_vd(**kwargs: Any) -> ResNet:
    """ResNet-50-vd (timm's resnet50d layout): 25,576,264 parameters."""
    return _resnet_vd(50, **kwargs)


def resnet101_vd(**kwargs: Any) -> ResNet:
    """ResNet-101-vd: deep 3x3 stem and avg-pool shortcuts."""
    return _resnet_vd(101, **kwargs)


def resnet152_vd(**kwargs: Any) -> ResNet:
    """ResNet-152-vd: deep 3x3 stem and avg-pool shortcuts."""
    return _resnet_vd(152, **kwargs)


def _resnet_cifar(depth: int, num_classes: int = 10, **kwargs: Any) -> ResNet:
    return _resnet(depth, num_classes=num_classes, stem="cifar", **kwargs)


def resnet18_cifar(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """ResNet-18 for 32x32 images: 3x3 stem, no max pool (11,173,962 parameters, 10 classes)."""
    return _resnet_cifar(18, num_classes, **kwargs)


def resnet34_cifar(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """ResNet-34 for 32x32 images (21,282,122 parameters with 10 classes)."""
    return _resnet_cifar(34, num_classes, **kwargs)


def resnet50_cifar(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """ResNet-50 for 32x32 images (23,520,842 parameters with 10 classes)."""
    return _resnet_cifar(50, num_classes, **kwargs)


def resnet101_cifar(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """ResNet-101 for 32x32 images."""
    return _resnet_cifar(101, num_classes, **kwargs)


def resnet152_cifar(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """ResNet-152 for 32x32 images."""
    return _resnet_cifar(152, num_classes, **kwargs)
