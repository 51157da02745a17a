"""SE-ResNet, Hu et al. 2018 (arXiv:1709.01507): a ResNet whose blocks recalibrate their channels.

The design idea (notes 000 "SENet", notes 003 "attention", notes 004 Q28 and Q32). A
convolution mixes channels only through its learned weights, the same for every image. The
squeeze-and-excitation block lets the image itself decide which channels matter:

    squeeze     s = global average pool of each channel             (N, C, 1, 1)
    excitation  g = sigmoid(fc2(relu(fc1(s))))                      (N, C, 1, 1), C -> C/16 -> C
    scale       y = g * u                                           (N, C, H, W)

The gates g in (0, 1) work like the gates of an LSTM: one number per channel, computed from
global context, multiplies the whole channel. The block is ``nn.SqueezeExcitation`` (1x1
convolutions with bias as fc1 and fc2, torchvision's names).

Where SE goes (notes 004 Q32): on the residual branch, *before* the addition,

    out = relu(SE(F(x)) + shortcut(x)).

Put after the addition, the sigmoid gates (< 1) would also scale the identity path, and a
stack of such blocks would multiply the gradient on the way to the early layers by many
factors below one, undoing what the shortcut is for (notes 000 "ResNet": dH/dx = dF/dx + 1).

Parameters: se_resnet18 11,778,592 and se_resnet50 28,088,024 (reduction 16): the SE blocks add
2 C^2 / 16 + C / 16 + C per block to resnet18's 11,689,512 and resnet50's 25,557,032. The
keys are ResNet's plus ``layerK.I.se.fc1.weight`` ... (timm's seresnet layout up to the
name of the SE module). Initialisation: ResNet's (the SE convolutions He-normal like every
other convolution, biases PyTorch's default).
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..tensor import Tensor
from .resnet import BasicBlock, Bottleneck, ResNet


def _se(channels: int, reduction: int) -> nn.SqueezeExcitation:
    return nn.SqueezeExcitation(channels, max(1, channels // reduction))


class _SqueezeBeforeAddition:
    """What SE adds to a residual block: an SE module on the residual branch, applied before
    the addition (notes 003 SENet), so the identity path stays untouched.

    Args: as the block, plus reduction: C / C_sq of the SE bottleneck (16).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, reduction: int = 16):
        super().__init__(inplanes, planes, stride, downsample)  # type: ignore[call-arg]
        self.se = _se(planes * self.expansion, reduction)  # type: ignore[attr-defined]

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # type: ignore[attr-defined]
        return self.relu(self.se(self.residual(x)) + identity)  # type: ignore[attr-defined]


class SEBasicBlock(_SqueezeBeforeAddition, BasicBlock):
    """BasicBlock with SE on the residual branch, before the addition."""


class SEBottleneck(_SqueezeBeforeAddition, Bottleneck):
    """Bottleneck with SE on the residual branch (after bn3), before the addition."""


def se_resnet18(reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-18 (11,778,592 parameters); ``kwargs`` as ResNet (num_classes, stem...)."""
    return ResNet(SEBasicBlock, [2, 2, 2, 2], reduction=reduction, **kwargs)


def se_resnet50(reduction: int = 16, **kwargs: Any) -> ResNet:
    """SE-ResNet-50 (28,088,024 parameters); ``kwargs`` as ResNet (num_classes, stem...)."""
    return ResNet(SEBottleneck, [3, 4, 6, 3], reduction=reduction, **kwargs)
