"""AlexNet, Krizhevsky, Sutskever & Hinton 2012, in torchvision's form and in the paper's form.

The design ideas the notes list (notes 000 "Alexnet"):

1. ReLU instead of sigmoid/tanh: it does not saturate for x > 0, so gradients do not vanish in
   a deeper network, and it trained several times faster.
2. Dropout (p = 0.5) in the two large fully connected layers against over-fitting.
3. Overlapping max pooling: 3x3 windows with stride 2 (stride < kernel), so neighbouring
   windows share a row/column; max instead of average pooling, which blurs.
4. Local response normalisation: each activation is divided by the energy of its neighbours
   across channels, a competition in which strong responses suppress weak ones.
5. Training on two GPUs: the paper splits conv2, conv4, conv5 into two halves that only see
   their own GPU's channels, i.e. ``groups=2`` convolutions.
6. Data augmentation: random 224 crops of 256x256 images and their mirror images, PCA colour
   noise (see ``deepnotes.data``).

torchvision's form (``alexnet()``, the "one weird trick" variant, Krizhevsky 2014): 64, 192,
384, 256, 256 channels, no LRN, no groups, padding 2 in conv1 so 224 works, an adaptive 6x6
average pool before the classifier, dropout *before* each of the first two linear layers::

    features    conv 11x11/4 pad 2 (64)  ReLU  maxpool 3/2     64x55x55 -> 64x27x27
                conv 5x5 pad 2 (192)     ReLU  maxpool 3/2     192x27x27 -> 192x13x13
                conv 3x3 pad 1 (384, 256, 256), ReLU each, maxpool 3/2       256x6x6
    avgpool     AdaptiveAvgPool2d(6x6)                                       256x6x6
    classifier  dropout, 9216->4096, ReLU, dropout, 4096->4096, ReLU, 4096->1000
    params      61,100,840 (same names and init as torchvision: PyTorch's default init)

The paper's form (``alexnet(paper=True)`` or ``alexnet_paper()``), for 227x227 input (the
"224" of the paper only works with 227)::

    conv1   96 11x11/4           ReLU, LRN, maxpool 3/2      96x55x55 -> 96x27x27
    conv2   256 5x5 pad 2, g=2   ReLU, LRN, maxpool 3/2      256x27x27 -> 256x13x13
    conv3   384 3x3 pad 1        ReLU                         384x13x13
    conv4   384 3x3 pad 1, g=2   ReLU                         384x13x13
    conv5   256 3x3 pad 1, g=2   ReLU, maxpool 3/2            256x6x6
    fc6, fc7 4096 (dropout 0.5 before each, as torchvision), fc8 1000
    params  60,965,224

LRN in the paper: b_c = a_c / (k + alpha * sum_{j in window} a_j^2)^beta with k = 2, n = 5,
alpha = 1e-4, beta = 0.75. PyTorch's LocalResponseNorm divides alpha by the window size, so
the paper's layer is ``nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)``. The paper's
initialisation: weights N(0, 0.01^2); biases 1 in conv2, conv4, conv5 and the hidden fully
connected layers fc6, fc7 (so the ReLUs start with positive inputs), 0 in conv1, conv3 and the
output layer fc8 ("the remaining layers").
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..tensor import Tensor


def _classifier(dropout: float, num_classes: int) -> nn.Sequential:
    """The three fully connected layers shared by both forms: 9216 -> 4096 -> 4096 -> classes,
    dropout before the first two (notes 000 Q7)."""
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


class AlexNet(nn.Module):
    """torchvision's AlexNet (see the module docstring).

    Args:
        num_classes: output size. dropout: probability of the two dropout layers.

    Shape: (N, 3, H, W) -> (N, num_classes), H, W >= 63.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(dropout, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)                     # (N, 256, h, w), 6x6 at 224
        x = self.avgpool(x)                      # (N, 256, 6, 6)
        return self.classifier(x.flatten(1))     # (N, 9216) -> (N, num_classes)


class AlexNetPaper(nn.Module):
    """The 2012 paper's AlexNet: LRN, overlapping pooling, grouped conv2/4/5 (the two GPUs).

    Args:
        num_classes: output size. dropout: probability of the two dropout layers.
        groups: 2 for the paper's two-GPU split of conv2, conv4, conv5; 1 for dense layers.
        init_weights: the paper's initialisation (N(0, 0.01^2), biases 1 or 0).

    Shape: (N, 3, H, W) -> (N, num_classes), H, W >= 67; 227 gives 6x6 maps before the
    classifier (the adaptive 6x6 average pool is then the identity and only serves other sizes).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, groups: int = 2,
                 init_weights: bool = True):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(dropout, num_classes)
        if init_weights:
            one_bias = {id(self.features[i]) for i in (4, 10, 12)}
            one_bias |= {id(self.classifier[i]) for i in (1, 4)}   # fc6, fc7; not fc8
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.constant_(m.bias, 1.0 if id(m) in one_bias else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)                     # (N, 256, 6, 6) at 227
        x = self.avgpool(x)                      # (N, 256, 6, 6)
        return self.classifier(x.flatten(1))     # (N, 9216) -> (N, num_classes)


def alexnet(paper: bool = False, **kwargs: Any) -> AlexNet | AlexNetPaper:
    """torchvision's AlexNet (61,100,840 parameters), or the paper's with ``paper=True``."""
    return AlexNetPaper(**kwargs) if paper else AlexNet(**kwargs)


def alexnet_paper(**kwargs: Any) -> AlexNetPaper:
    """The 2012 paper's AlexNet with LRN and grouped convolutions (60,965,224 parameters)."""
    return AlexNetPaper(**kwargs)
