"""Channel attention: the squeeze-and-excitation block (SENet) and selective kernels (SKNet).

Notes 003 "attention" (SE models the dependencies between channels and recalibrates each one) and
notes 004 "SENet SKNet":

SE (Hu et al., CVPR 2018). Squeeze: global average pooling turns each channel's H x W map into one
number s_c. Excitation: FC-ReLU-FC-Sigmoid (1x1 convolutions here) maps s to gates in (0, 1), one
per channel, like the gates of an RNN. Scale: each channel of the input is multiplied by its gate.

    s = avgpool(x)                       (N, C, 1, 1)
    g = sigmoid(fc2(relu(fc1(s))))       (N, C, 1, 1), fc1: C -> C_sq, fc2: C_sq -> C
    y = g * x                            (N, C, H, W)

SK (Li et al., CVPR 2019). Split: M branches convolve x with different receptive fields (3x3
kernels with dilation 1, 2, ...). Fuse: the branch outputs are summed, pooled and squeezed to a
compact z. Select: M fully connected maps of z give M scores per channel, a softmax across the
branches turns them into weights that sum to 1, and the output is the weighted sum of the branches:

    U_m = relu(bn(conv_m(x)))                      m = 1..M, (N, C, H, W)
    s   = avgpool(sum_m U_m),  z = relu(bn(fc(s))) (N, d, 1, 1), d = max(C / r, L)
    a_m = softmax_m(fcs_m(z))                      (N, C, 1, 1), sum_m a_m = 1 per channel
    V   = sum_m a_m * U_m                          (N, C, H, W)

Both are composites of ops that have their own derivations (conv2d, pooling, batch norm, softmax),
so their gradients come from autograd; the tests check them with finite differences.
"""

from __future__ import annotations

from collections.abc import Callable

from ...ops.shape import stack
from ...tensor import Tensor
from ..containers import ModuleList, Sequential
from ..module import Module
from ._common import check_count
from .activation import ReLU, Sigmoid
from .conv import Conv2d
from .norm import BatchNorm2d
from .pool import AdaptiveAvgPool2d


class SqueezeExcitation(Module):
    """The SE block, with torchvision's names (``torchvision.ops.SqueezeExcitation``).

    Args:
        input_channels: C, channels of the input (and output).
        squeeze_channels: C_sq, the bottleneck width (C / 16 in the paper).
        activation: Module class used after fc1 (default ReLU).
        scale_activation: Module class that turns the scores into gates (default Sigmoid).

    Submodules: avgpool (AdaptiveAvgPool2d(1)), fc1 (Conv2d C -> C_sq, 1x1), fc2 (Conv2d
    C_sq -> C, 1x1), activation, scale_activation.

    Shape: (N, C, H, W) -> (N, C, H, W). Parameters: 2 C C_sq + C_sq + C.
    """

    def __init__(self, input_channels: int, squeeze_channels: int,
                 activation: Callable[..., Module] = ReLU,
                 scale_activation: Callable[..., Module] = Sigmoid):
        super().__init__()
        input_channels = check_count(input_channels, "input_channels", "SqueezeExcitation")
        squeeze_channels = check_count(squeeze_channels, "squeeze_channels", "SqueezeExcitation")
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: Tensor) -> Tensor:
        scale = self.avgpool(input)                                      # (N, C, 1, 1) squeeze
        scale = self.fc1(scale)                                          # (N, C_sq, 1, 1)
        scale = self.activation(scale)
        scale = self.fc2(scale)                                          # (N, C, 1, 1)
        return self.scale_activation(scale)                              # excitation gates

    def forward(self, input: Tensor) -> Tensor:
        return self._scale(input) * input                                # (N, C, H, W)


class SKConv(Module):
    """Selective kernel convolution (SKNet): M branches mixed by per-channel softmax attention.

    Args:
        in_channels: C_in.
        out_channels: C (default C_in).
        stride: stride of every branch's convolution.
        M: number of branches; branch m (0-based) is a 3x3 convolution with dilation m + 1 and
            padding m + 1, i.e. a (2m + 3) x (2m + 3) receptive field (the paper's 5x5 branch is
            the dilated 3x3).
        G: groups of the branch convolutions (32 in the paper; must divide C_in and C).
        r: reduction ratio for z; d = max(C // r, L).
        L: the smallest allowed d (32 in the paper).

    Submodules: convs (ModuleList of M Sequential(Conv2d, BatchNorm2d, ReLU)), avgpool, fc
    (Sequential(1x1 Conv2d C -> d without bias, BatchNorm2d, ReLU)), fcs (M 1x1 Conv2d d -> C
    without bias, the paper's A, B, ... matrices).

    Shape: (N, C_in, H, W) -> (N, C, H_out, W_out), H_out = (H - 1) // stride + 1.
    No PyTorch counterpart: gradients are checked numerically.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, stride: int = 1,
                 M: int = 2, G: int = 32, r: int = 16, L: int = 32):  # noqa: N803 - paper names
        super().__init__()
        in_channels = check_count(in_channels, "in_channels", "SKConv")
        out_channels = in_channels if out_channels is None else check_count(
            out_channels, "out_channels", "SKConv")
        self.M = check_count(M, "M", "SKConv")
        self.G = check_count(G, "G", "SKConv")
        self.r = check_count(r, "r", "SKConv")
        self.L = check_count(L, "L", "SKConv")
        if in_channels % self.G or out_channels % self.G:
            raise ValueError(f"SKConv: G must divide in_channels and out_channels, got G={self.G}"
                             f", in_channels={in_channels}, out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        d = max(out_channels // self.r, self.L)
        self.convs = ModuleList([
            Sequential(Conv2d(in_channels, out_channels, 3, stride=stride, padding=m + 1,
                              dilation=m + 1, groups=self.G, bias=False),
                       BatchNorm2d(out_channels), ReLU())
            for m in range(self.M)
        ])
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc = Sequential(Conv2d(out_channels, d, 1, bias=False), BatchNorm2d(d), ReLU())
        self.fcs = ModuleList([Conv2d(d, out_channels, 1, bias=False) for _ in range(self.M)])

    def forward(self, x: Tensor) -> Tensor:
        branches = stack([conv(x) for conv in self.convs], 1)           # (N, M, C, H, W) split
        fused = branches.sum(dim=1)                                      # (N, C, H, W) fuse
        z = self.fc(self.avgpool(fused))                                 # (N, d, 1, 1)
        scores = stack([fc(z) for fc in self.fcs], 1)                    # (N, M, C, 1, 1)
        attention = scores.softmax(dim=1)                                # softmax over branches
        return (branches * attention).sum(dim=1)                         # (N, C, H, W) select

    def extra_repr(self) -> str:
        return f"M={self.M}, G={self.G}, r={self.r}, L={self.L}"
