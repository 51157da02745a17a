"""Inception v3, Szegedy et al. 2015 (arXiv:1512.00567), in torchvision's form.

The design ideas (notes 004 Q28 "Inception v2, v3"; notes 003 on factorised convolutions):

* Factorise big kernels into small ones. A 5x5 convolution becomes two 3x3 (the VGG argument:
  18 instead of 25 weights per channel pair, the same 5x5 window, one more ReLU), the
  ``branch3x3dbl`` of InceptionA.
* Factorise into asymmetric kernels. An n x n convolution becomes a 1 x n followed by an n x 1:
  2n instead of n^2 weights, a 33% saving for 3x3 and 71% for 7x7 (InceptionC's 1x7/7x1
  chains on the 17x17 grid), with the same receptive field. InceptionE puts 1x3 and 3x1 side by
  side instead (the "parallel" factorisation of the notes) and concatenates them, to widen
  the coarsest 8x8 grid.
* Shrink the grid without a representational bottleneck: InceptionB and InceptionD halve H and
  W with a stride-2 convolution branch and a stride-2 max pool branch in parallel, and
  concatenate them, instead of pooling first (loses information) or convolving first at full
  size (expensive).
* BN everywhere (``BasicConv2d``: Conv2d without bias + BatchNorm2d(eps=0.001) + ReLU), and
  an auxiliary classifier on the 17x17 grid that the paper found to act as a regulariser.
* Label smoothing regularisation in the training recipe: the target is (1 - eps) on the true
  class and eps / K on every class (eps = 0.1, K = 1000), which stops the logits from growing
  without bound to reach a one-hot target (over-confidence). In PyTorch and deepnotes that is
  ``nn.CrossEntropyLoss(label_smoothing=0.1)``.

Stage table (299x299 input)::

    stem      Conv2d_1a..4a, two max pools         192x35x35
    Mixed_5b..5d   InceptionA (1x1, 5x5, 3x3dbl, pool)      256, 288, 288 x35x35
    Mixed_6a       InceptionB (grid reduction)               768x17x17
    Mixed_6b..6e   InceptionC (1x7/7x1 chains)               768x17x17   -> AuxLogits
    Mixed_7a       InceptionD (grid reduction)               1280x8x8
    Mixed_7b, 7c   InceptionE (parallel 1x3 | 3x1)           2048x8x8
    head      global average pool, dropout 0.5, fc 2048 -> 1000

Parameters: 27,161,264 with the auxiliary head (torchvision's default and the published
figure), 23,834,568 without. Output in training mode with ``aux_logits=True``:
``InceptionOutputs(logits, aux_logits)``, a namedtuple as torchvision's; otherwise the logits.
The auxiliary head needs the 17x17 grid of a ~299 input (its 5x5/3 average pool and 5x5
convolution; a smaller grid raises a ValueError); the main path works from 75x75 up. With
``AuxLogits`` set to None (what ``deepnotes train`` does on smaller images) the training output
is ``InceptionOutputs(logits, None)``, as torchvision's.

Initialisation as torchvision's: convolution and linear weights truncated normal with std 0.1
(0.001 for AuxLogits.fc), BN weight 1 and bias 0. torchvision marks AuxLogits.conv1 with
std 0.01 too, but on the BasicConv2d wrapper, which the initialisation loop never looks at, so
its convolution gets 0.1; we reproduce that, not the intention.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import nn
from ..nn import functional as F
from ..ops.shape import cat
from ..tensor import Tensor
from .googlenet import BasicConv2d, GoogLeNet


class InceptionOutputs(NamedTuple):
    """What Inception3 returns in training mode with the auxiliary head."""

    logits: Tensor
    aux_logits: Tensor | None


class InceptionA(nn.Module):
    """35x35 module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1; 224 + pool ch."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max pool, concatenated."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """17x17 module with asymmetric factorisation: 7x7 as 1x7 then 7x1 (and twice in the
    double branch); 768 channels out."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            branch7x7dbl = conv(branch7x7dbl)
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = conv(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """8x8 module: 3x3 split into parallel 1x3 and 3x1 whose outputs are concatenated
    (widening the coarsest grid); 2048 channels out."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = cat([self.branch3x3dbl_3a(branch3x3dbl),
                            self.branch3x3dbl_3b(branch3x3dbl)], 1)
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid: 5x5/3 average pool (-> 5x5), 1x1 conv 128, 5x5
    conv 768 (-> 1x1), fc."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.conv1.stddev = 0.01          # on the wrapper: unused, as in torchvision
        self.fc = nn.Linear(768, num_classes)
        self.fc.stddev = 0.001

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or min(x.shape[-2:]) < 17:
            raise ValueError(f"InceptionAux expects (N, C, H, W) with H, W >= 17 (the 17x17 grid "
                             f"of a 299x299 image), got {tuple(x.shape)}; use "
                             f"aux_logits=False for smaller images")
        x = F.avg_pool2d(x, kernel_size=5, stride=3)        # (N, 768, 5, 5)
        x = self.conv1(self.conv0(x))                       # (N, 768, 1, 1)
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)     # (N, 768)
        return self.fc(x)


class Inception3(nn.Module):
    """Inception v3 with torchvision's names (see the module docstring).

    Args:
        num_classes: output size. aux_logits: build ``AuxLogits``.
        transform_input: re-normalise ImageNet-normalised input to (x - 0.5) / 0.5.
        init_weights: apply the truncated-normal initialisation. dropout: before the fc.

    Shape: (N, 3, H, W) -> (N, num_classes), H, W >= 75 (~299 in training with aux_logits).
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = False, init_weights: bool = True, dropout: float = 0.5):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    stddev = float(getattr(m, "stddev", 0.1))
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=stddev, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    _transform_input = GoogLeNet._transform_input   # the same ImageNet-to-[-1, 1] rescaling

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        x = self._transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))   # (N, 64, 147, 147)
        x = self.maxpool1(x)                                                # (N, 64, 73, 73)
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))        # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))                  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)                                                # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))   # (N, 768, 17, 17)
        aux = self.AuxLogits(x) if self.training and self.AuxLogits is not None else None
        x = self.Mixed_7a(x)                                                # (N, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))                                 # (N, 2048, 8, 8)
        x = self.dropout(self.avgpool(x)).flatten(1)                        # (N, 2048)
        x = self.fc(x)                                                      # (N, num_classes)
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


def inception_v3(**kwargs: Any) -> Inception3:
    """Inception v3 (27,161,264 parameters with the auxiliary head, torchvision's default)."""
    return Inception3(**kwargs)
