"""Feature Pyramid Network, Lin et al. 2017 (arXiv:1612.03144): a neck over a ResNet.

The design idea (notes 004 "HyperNet, FPN", "FPN 理解"; notes 000 on add vs concat). A CNN
already computes a pyramid: layer1..layer4 of a ResNet have strides 4, 8, 16, 32. But the fine
levels are semantically weak (few layers deep) and the strong top level is coarse, too coarse
for small objects. FPN gives every level the semantics of the top:

    top-down    P_top = inner(C_top);  P_i = inner_i(C_i) + upsample_nearest(P_{i+1})
    lateral     inner_i: a 1x1 convolution, C_i channels -> out_channels (all levels alike)
    smoothing   out_i = layer_i(P_i): a 3x3 convolution against the aliasing of the upsampling
    extra       "pool": max_pool2d(out_top, 1, stride 2), one more, coarser level (stride 64)

The merge is an **addition** (notes 000: add where the two inputs mean the same thing per
channel, as in ResNet and FPN; concat where they do not, as in DenseNet and U-Net), which is why
all levels are first projected to the same ``out_channels``.

Names and semantics are torchvision's: ``FeaturePyramidNetwork(in_channels_list,
out_channels, extra_blocks=None, norm_layer=None)`` with ``inner_blocks.i.0`` /
``layer_blocks.i.0`` convolutions (initialised He-uniform with a=1, zero bias), taking and
returning an ordered dict of feature maps; ``LastLevelMaxPool``; ``IntermediateLayerGetter``;
``BackboneWithFPN`` (``body`` and ``fpn``, an ``out_channels`` attribute) and
``resnet_fpn_backbone(backbone_name=..., ...)``, whose state_dict keys are torchvision's. Two
differences: the backbone uses trainable BatchNorm2d (torchvision freezes it with
FrozenBatchNorm2d, a BN with fixed statistics, so its keys lack ``num_batches_tracked``), and
there are no pretrained weights.

For the small detector: ``resnet_fpn(depth=18, widths=(16, 32, 64, 128), out_channels=32)``
is a narrow ResNet-18 + FPN that runs cheaply on 64x64 images (levels "0".."3" at 16, 8, 4, 2
pixels and "pool" at 1; about 0.75M parameters); pass ``stem="cifar"`` for strides 1..8
instead of 4..32.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor import Tensor
from .resnet import ResNet, _resnet


def nearest_resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of (N, C, H, W) to (N, C, *size), as
    ``torch.nn.functional.interpolate(x, size=size, mode="nearest")``.

    Output row i reads input row floor(i * H / H_out) (computed in float32, as PyTorch), and
    likewise for columns. An integer upsampling factor is a repeat, done with expand; other
    sizes gather with integer indices (whose backward adds the gradients of repeated reads).
    """
    h_in, w_in = x.shape[-2:]
    h_out, w_out = int(size[0]), int(size[1])

    def source(n_in: int, n_out: int) -> np.ndarray:
        scale = np.float32(n_in / n_out)
        idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
        return np.minimum(idx, n_in - 1)

    rows, cols = source(h_in, h_out), source(w_in, w_out)
    fy, fx = h_out // h_in, w_out // w_in
    if (h_out % h_in == 0 and w_out % w_in == 0 and np.array_equal(rows, np.arange(h_out) // fy)
            and np.array_equal(cols, np.arange(w_out) // fx)):
        n, c = x.shape[:2]
        y = x[:, :, :, None, :, None].expand(n, c, h_in, fy, w_in, fx)   # (N, C, H, fy, W, fx)
        return y.reshape(n, c, h_out, w_out)
    return x[:, :, rows[:, None], cols[None, :]]                          # (N, C, H_out, W_out)


class ExtraFPNBlock(nn.Module):
    """Base class of the extra levels appended after the pyramid: forward(results, x, names)
    -> (results, names), given the FPN outputs, the backbone features and the level names."""

    def forward(self, results: list[Tensor], x: list[Tensor],
                names: list[str]) -> tuple[list[Tensor], list[str]]:
        raise NotImplementedError


class LastLevelMaxPool(ExtraFPNBlock):
    """Adds level "pool": a 1x1 max pool with stride 2 of the coarsest output (subsampling)."""

    def forward(self, results: list[Tensor], x: list[Tensor],
                names: list[str]) -> tuple[list[Tensor], list[str]]:
        names.append("pool")
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return results, names


def _conv_block(in_channels: int, out_channels: int, kernel_size: int,
                norm_layer: Callable[..., nn.Module] | None) -> nn.Sequential:
    """torchvision's Conv2dNormActivation without activation: conv (bias iff no norm) [+ norm]."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2,
                     bias=norm_layer is None)
    return nn.Sequential(conv) if norm_layer is None else nn.Sequential(conv,
                                                                        norm_layer(out_channels))


class FeaturePyramidNetwork(nn.Module):
    """FPN over feature maps given from the finest to the coarsest.

    Args:
        in_channels_list: channels of each input level (finest first).
        out_channels: channels of every output level.
        extra_blocks: an ExtraFPNBlock (e.g. LastLevelMaxPool) or None.
        norm_layer: a normalisation after each convolution (then without bias), or None.

    Shape: an ordered dict {name: (N, C_i, H_i, W_i)} -> {name: (N, out_channels, H_i, W_i)}
    (plus the extra levels), same order and names.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int,
                 extra_blocks: ExtraFPNBlock | None = None,
                 norm_layer: Callable[..., nn.Module] | None = None):
        super().__init__()
        self.inner_blocks = nn.ModuleList()
        self.layer_blocks = nn.ModuleList()
        for in_channels in in_channels_list:
            if in_channels == 0:
                raise ValueError("FeaturePyramidNetwork: in_channels=0 is not supported")
            self.inner_blocks.append(_conv_block(in_channels, out_channels, 1, norm_layer))
            self.layer_blocks.append(_conv_block(out_channels, out_channels, 3, norm_layer))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        if extra_blocks is not None and not isinstance(extra_blocks, ExtraFPNBlock):
            raise TypeError(f"FeaturePyramidNetwork: extra_blocks should be of type "
                            f"ExtraFPNBlock not {type(extra_blocks).__name__}")
        self.extra_blocks = extra_blocks

    def forward(self, x: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
        names = list(x.keys())
        features = list(x.values())
        last_inner = self.inner_blocks[-1](features[-1])            # (N, out, H_top, W_top)
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(features) - 2, -1, -1):
            inner_lateral = self.inner_blocks[idx](features[idx])   # (N, out, H_i, W_i)
            inner_top_down = nearest_resize(last_inner, inner_lateral.shape[-2:])
            last_inner = inner_lateral + inner_top_down              # merge by addition
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, features, names)
        return OrderedDict(zip(names, results, strict=True))


class IntermediateLayerGetter(nn.ModuleDict):
    """The children of ``model`` up to the last one named in ``return_layers``, run in order;
    returns {return_layers[name]: output} for the named ones (torchvision's helper)."""

    def __init__(self, model: nn.Module, return_layers: Mapping[str, str]):
        children = [name for name, _ in model.named_children()]
        if not set(return_layers).issubset(children):
            raise ValueError(f"IntermediateLayerGetter: return_layers {sorted(return_layers)} "
                             f"are not all children of the model ({children})")
        wanted = dict(return_layers)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class BackboneWithFPN(nn.Module):
    """``body`` (an IntermediateLayerGetter over the backbone) followed by ``fpn``.

    Shape: (N, 3, H, W) -> ordered dict of (N, out_channels, H_i, W_i), finest first.
    """

    def __init__(self, backbone: nn.Module, return_layers: Mapping[str, str],
                 in_channels_list: Sequence[int], out_channels: int,
                 extra_blocks: ExtraFPNBlock | None = None,
                 norm_layer: Callable[..., nn.Module] | None = None):
        super().__init__()
        if extra_blocks is None:
            extra_blocks = LastLevelMaxPool()
        self.body = IntermediateLayerGetter(backbone, return_layers)
        self.fpn = FeaturePyramidNetwork(in_channels_list, out_channels, extra_blocks,
                                         norm_layer)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(self.body(x))


def _resnet_fpn_extractor(backbone: ResNet, trainable_layers: int,
                          returned_layers: Sequence[int] | None = None,
                          extra_blocks: ExtraFPNBlock | None = None, out_channels: int = 256,
                          norm_layer: Callable[..., nn.Module] | None = None
                          ) -> BackboneWithFPN:
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers should be in the range [0,5], got {trainable_layers}")
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in backbone.named_parameters():
        if all(not name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
    if returned_layers is None:
        returned_layers = [1, 2, 3, 4]
    if min(returned_layers) <= 0 or max(returned_layers) >= 5:
        raise ValueError(f"Each returned layer should be in the range [1,4]. "
                         f"Got {list(returned_layers)}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    in_channels_list = [backbone.stage_channels[i - 1] for i in returned_layers]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, out_channels,
                           extra_blocks=extra_blocks, norm_layer=norm_layer)


def resnet_fpn_backbone(*, backbone_name: str, weights: Any = None, trainable_layers: int = 3,
                        returned_layers: Sequence[int] | None = None,
                        extra_blocks: ExtraFPNBlock | None = None,
                        out_channels: int = 256, **backbone_kwargs: Any) -> BackboneWithFPN:
    """A torchvision ResNet (``backbone_name`` "resnet18" ... "resnet152") with an FPN on top.

    Args:
        backbone_name: which ResNet. weights: must be None (no pretrained weights here).
        trainable_layers: how many stages, counted from layer4 down to conv1, keep
            ``requires_grad`` (torchvision's default 3: layer2..4); 5 trains everything.
        returned_layers: which of layer1..4 feed the FPN (default all four, named "0".."3").
        extra_blocks: default LastLevelMaxPool (adds "pool"). out_channels: 256.
        **backbone_kwargs: passed to the ResNet (``widths``, ``stem``...).
    """
    if weights is not None:
        raise ValueError("resnet_fpn_backbone: deepnotes has no pretrained weights; "
                         f"weights must be None, got {weights!r}")
    depth = int(backbone_name.removeprefix("resnet")) if backbone_name.startswith("resnet") \
        else -1
    if depth not in (18, 34, 50, 101, 152):
        raise ValueError(f"resnet_fpn_backbone: backbone_name must be resnet18, resnet34, "
                         f"resnet50, resnet101 or resnet152, got {backbone_name!r}")
    backbone = _resnet(depth, **backbone_kwargs)
    return _resnet_fpn_extractor(backbone, trainable_layers, returned_layers, extra_blocks,
                                 out_channels)


def resnet_fpn(depth: int = 18, widths: Sequence[int] = (16, 32, 64, 128),
               out_channels: int = 32, stem: str = "imagenet",
               returned_layers: Sequence[int] | None = None,
               extra_blocks: ExtraFPNBlock | None = None,
               trainable_layers: int = 5) -> BackboneWithFPN:
    """A narrow ResNet + FPN for small images (the small detector's backbone).

    With the defaults (ResNet-18 with widths 16..128, 32 FPN channels) a 64x64 image gives
    levels "0".."3" of 16x16, 8x8, 4x4, 2x2 and "pool" 1x1, all with 32 channels; every layer
    is trainable.
    """
    return resnet_fpn_backbone(backbone_name=f"resnet{depth}", trainable_layers=trainable_layers,
                               returned_layers=returned_layers, extra_blocks=extra_blocks,
                               out_channels=out_channels, widths=tuple(widths), stem=stem)
