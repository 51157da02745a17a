"""VGG, Simonyan & Zisserman 2014 (arXiv:1409.1556): depth from stacks of 3x3 convolutions.

The design idea (notes 000 "VGG", notes 001 "VGG使用2个3x3卷积核的优势", notes 004 Q28): use
only 3x3 convolutions (stride 1, padding 1) and 2x2 max pools, and get depth by stacking them.

* Two stacked 3x3 convolutions see a 5x5 window, three see 7x7, like one larger kernel, but
  with C channels in and out they cost 2 * 9 C^2 = 18 C^2 weights against 25 C^2 for a 5x5
  (ratio 0.72) and 27 C^2 against 49 C^2 for a 7x7 (0.55).
* Each convolution is followed by a ReLU, so the stack is more non-linear than one big layer.
* Every max pool halves H and W and the next stage doubles the channels (64 -> 512), keeping
  the cost per layer roughly constant.

Configurations (numbers: 3x3 convolutions with that many output channels; M: 2x2/2 max pool)::

    vgg11 (A)  64 M 128 M 256 256 M 512 512 M 512 512 M                      132,863,336
    vgg13 (B)  64 64 M 128 128 M 256 256 M 512 512 M 512 512 M               133,047,848
    vgg16 (D)  64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M   138,357,544
    vgg19 (E)  64 64 M 128 128 M 256 x4 M 512 x4 M 512 x4 M                  143,667,240

then AdaptiveAvgPool2d(7x7) and the classifier 25088 -> 4096 -> 4096 -> 1000 (ReLU and
dropout 0.5 after the first two). The first fully connected layer alone holds 102,764,544 of
vgg16's 138,357,544 parameters. The ``_bn`` variants add BatchNorm2d after every convolution
(vgg16_bn: 138,365,992).

Names, state_dict keys (``features.0.weight`` ... ``classifier.6.bias``) and initialisation
are torchvision's: convolutions He-normal with mode="fan_out" and zero bias, BN weight 1 and
bias 0, linear layers N(0, 0.01^2) and zero bias.

CIFAR variants (``vgg16_cifar``...): the same feature stacks (with BN by default) on 32x32
images; five pools leave 512x1x1, so there is no 7x7 pool and one Linear(512, num_classes)
replaces the 120M-parameter classifier (vgg16_cifar with BN and 10 classes: 14,728,266).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import nn
from ..tensor import Tensor

cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
          512, 512, "M"],
}


def make_layers(cfg: Sequence[int | str], batch_norm: bool = False,
                in_channels: int = 3) -> nn.Sequential:
    """The feature stack of a configuration: conv3x3 (+BN) + ReLU for a number, max pool for M."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    """torchvision's VGG initialisation (see the module docstring)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


class VGG(nn.Module):
    """VGG for 224x224 images: ``features``, 7x7 average pool, three-layer ``classifier``.

    Args:
        features: the convolution stack (``make_layers``), ending with 512 channels.
        num_classes: output size. init_weights: apply torchvision's initialisation.
        dropout: dropout probability in the classifier.

    Shape: (N, 3, H, W) -> (N, num_classes), H, W >= 32 (five 2x2 pools).
    """

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)                      # (N, 512, H/32, W/32)
        x = self.avgpool(x)                       # (N, 512, 7, 7)
        return self.classifier(x.flatten(1))      # (N, 25088) -> (N, num_classes)


class VGGCifar(nn.Module):
    """VGG for 32x32 images: ``features`` down to 512x1x1 and one linear ``classifier``.

    Shape: (N, 3, 32, 32) -> (N, num_classes) (any H, W that are multiples of 32 work too:
    the features are averaged over what is left).
    """

    def __init__(self, features: nn.Module, num_classes: int = 10, init_weights: bool = True):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)
        if init_weights:
            _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))        # (N, 512, 1, 1)
        return self.classifier(x.flatten(1))      # (N, num_classes)


def _vgg(cfg: str, batch_norm: bool, **kwargs: Any) -> VGG:
    return VGG(make_layers(cfgs[cfg], batch_norm=batch_norm), **kwargs)


def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (configuration A), 132,863,336 parameters."""
    return _vgg("A", False, **kwargs)


def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 with batch norm."""
    return _vgg("A", True, **kwargs)


def vgg13(**kwargs: Any) -> VGG:
    """VGG-13 (configuration B), 133,047,848 parameters."""
    return _vgg("B", False, **kwargs)


def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13 with batch norm."""
    return _vgg("B", True, **kwargs)


def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (configuration D), 138,357,544 parameters."""
    return _vgg("D", False, **kwargs)


def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with batch norm, 138,365,992 parameters."""
    return _vgg("D", True, **kwargs)


def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (configuration E), 143,667,240 parameters."""
    return _vgg("E", False, **kwargs)


def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 with batch norm."""
    return _vgg("E", True, **kwargs)


def _vgg_cifar(cfg: str, num_classes: int = 10, batch_norm: bool = True,
               **kwargs: Any) -> VGGCifar:
    return VGGCifar(make_layers(cfgs[cfg], batch_norm=batch_norm), num_classes, **kwargs)


def vgg11_cifar(num_classes: int = 10, batch_norm: bool = True, **kwargs: Any) -> VGGCifar:
    """VGG-11 features (with BN by default) and one linear layer, for 32x32 images."""
    return _vgg_cifar("A", num_classes, batch_norm, **kwargs)


def vgg13_cifar(num_classes: int = 10, batch_norm: bool = True, **kwargs: Any) -> VGGCifar:
    """VGG-13 features (with BN by default) and one linear layer, for 32x32 images."""
    return _vgg_cifar("B", num_classes, batch_norm, **kwargs)


def vgg16_cifar(num_classes: int = 10, batch_norm: bool = True, **kwargs: Any) -> VGGCifar:
    """VGG-16 features (with BN by default) and one linear layer, for 32x32 images."""
    return _vgg_cifar("D", num_classes, batch_norm, **kwargs)


def vgg19_cifar(num_classes: int = 10, batch_norm: bool = True, **kwargs: Any) -> VGGCifar:
    """VGG-19 features (with BN by default) and one linear layer, for 32x32 images."""
    return _vgg_cifar("E", num_classes, batch_norm, **kwargs)
