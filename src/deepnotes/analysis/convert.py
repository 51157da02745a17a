"""``convert_fc_to_conv``: the "converted ConvNet" of notes 000 (interview question 9).

A fully connected layer that reads a C x H x W feature map flattened is a convolution with C_out
filters of size C x H x W: on that map it has one output position, which equals the Linear's
output (same weights, reshaped (C_out, C*H*W) -> (C_out, C, H, W), in the order torch.flatten
uses). The following Linear layers read a 1 x 1 "map" and become 1 x 1 convolutions. The
converted network takes any larger image and returns a map of class scores, one per window
position: the score vector at position (i, j) is what the original network gives on the crop at
(i*J, j*J) of the size it was built for (J = the total stride of the network), computed once for
all windows instead of once per crop ("This computationally more efficient than iterating a
single convnet over different spatial positions", notes 000). With zero padding inside the
feature extractor, the equality holds only up to border effects: a crop sees zeros where the
large image has neighbouring pixels (exact for valid, unpadded convolutions, and at any image
size for the map position whose window is the whole image when the image has the traced size).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ..nn import layers as L  # noqa: N812
from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["convert_fc_to_conv"]

# Layers that act element by element (or per channel along dim 1), so they work the same on the
# (N, F) vector and on the (N, F, h, w) map the converted network feeds them.
_POINTWISE = (L.Dropout, L.AlphaDropout, L.Identity, L.Flatten, L.ReLU, L.ReLU6, L.LeakyReLU,
              L.ELU, L.SELU, L.CELU, L.GELU, L.Sigmoid, L.Tanh, L.SiLU, L.Mish, L.Hardswish,
              L.Hardsigmoid, L.Hardtanh, L.Softplus, L.Softsign, L.LogSigmoid)


def _set_submodule(root: Module, name: str, module: Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name), attr, module)


def _conv_from_linear(linear: L.Linear, c: int, kernel: tuple[int, int]) -> L.Conv2d:
    """Conv2d(c, out, kernel) holding the Linear's weights reshaped (out, c, kh, kw)."""
    from .. import random as dn_random

    weight = linear.weight.data
    state = dn_random.get_rng_state()   # the conv's own init must not move the global stream
    conv = L.Conv2d(c, linear.out_features, kernel, bias=linear.bias is not None,
                    dtype=weight.dtype)
    dn_random.set_rng_state(state)
    conv.weight.data[...] = weight.reshape(linear.out_features, c, *kernel)  # (out, C, kH, kW)
    if linear.bias is not None:
        conv.bias.data[...] = linear.bias.data
    conv.weight.requires_grad = linear.weight.requires_grad
    return conv


def convert_fc_to_conv(model: Module, input_size: Sequence[int]) -> Module:
    """A copy of ``model`` whose classifier's Linear layers are convolutions (notes 000).

    The model is traced once at ``input_size`` (C, H, W) (the size it was designed for, e.g.
    (3, 224, 224)): the last layer before the flatten gives the feature map C' x H' x W' that the
    first Linear reads. In the copy that Linear becomes ``Conv2d(C', out, (H', W'))``, the next
    Linear layers ``Conv2d(in, out, 1)``, and a pair of hooks hands the layer after the flatten
    the 4-D map instead of the flattened vector, so the model's own ``forward`` runs unchanged.
    An adaptive pooling layer right before the flatten (torchvision's ``avgpool``) is replaced by
    what it does at the traced size: nothing (``Identity``) when its input already has its output
    size, else a fixed pooling with kernel = stride = input/output.

    The copy returns (N, num_classes, h, w) score maps; at the traced size h = w = 1 and the map
    equals the original logits. Run it in eval mode (dropout then acts element-wise either way).

    Raises:
        ValueError: when the model has no Linear layer after a 4-D feature map, or when a layer
            between the flatten and the last Linear is not element-wise (Linear, dropout,
            activations), or the adaptive pooling cannot be expressed as a fixed one.
    """
    from .summary import _check_input_size, _tensors

    if not isinstance(model, Module):
        raise TypeError(f"convert_fc_to_conv: model must be a deepnotes.nn.Module, got "
                        f"{type(model).__name__}")
    sizes = _check_input_size(input_size)
    if len(sizes) != 3:
        raise ValueError(f"convert_fc_to_conv: input_size must be (C, H, W), got {sizes}")
    trace = _trace(model, sizes, _tensors)
    linears = [i for i, r in enumerate(trace) if isinstance(r["module"], L.Linear)]
    if not linears:
        raise ValueError("convert_fc_to_conv: the model has no Linear layer to convert")
    first = linears[0]
    maps = [i for i in range(first) if len(trace[i]["out_shape"]) == 4]
    if not maps:
        raise ValueError("convert_fc_to_conv: no layer before the first Linear "
                         f"('{trace[first]['name']}') outputs a 4-D feature map")
    feat = maps[-1]
    _, c, h, w = trace[feat]["out_shape"]
    linear = trace[first]["module"]
    if linear.in_features != c * h * w:
        raise ValueError(f"convert_fc_to_conv: the first Linear ('{trace[first]['name']}') "
                         f"reads {linear.in_features} features, but the last feature map "
                         f"('{trace[feat]['name']}') has {c}x{h}x{w} = {c * h * w}")
    for r in trace[feat + 1:]:
        module = r["module"]
        ok = isinstance(module, (L.Linear, *_POINTWISE)) or (
            isinstance(module, (L.Softmax, L.LogSoftmax)) and module.dim in (1, -3))
        if not ok:
            raise ValueError(f"convert_fc_to_conv: layer '{r['name']}' "
                             f"({type(module).__name__}) after the flatten is not element-wise; "
                             "only Linear, dropout and activation layers can be converted")

    converted = copy.deepcopy(model)
    feat_name, feat_module = trace[feat]["name"], trace[feat]["module"]
    if isinstance(feat_module, (L.AdaptiveAvgPool2d, L.AdaptiveMaxPool2d)):
        in_h, in_w = trace[feat]["in_shape"][2:]
        if (in_h, in_w) == (h, w):
            replacement: Module = L.Identity()
        elif in_h % h == 0 and in_w % w == 0:
            kernel = (in_h // h, in_w // w)
            pool = L.AvgPool2d if isinstance(feat_module, L.AdaptiveAvgPool2d) else L.MaxPool2d
            replacement = pool(kernel, kernel)
        else:
            raise ValueError(f"convert_fc_to_conv: '{feat_name}' pools {in_h}x{in_w} to "
                             f"{h}x{w}, which no fixed pooling does; trace at an input size "
                             "whose feature map is a multiple of the pooled size")
        _set_submodule(converted, feat_name, replacement)
    channels, kernel_hw = c, (h, w)
    for i in linears:
        name, lin = trace[i]["name"], trace[i]["module"]
        _set_submodule(converted, name, _conv_from_linear(lin, channels, kernel_hw))
        channels, kernel_hw = lin.out_features, (1, 1)

    entry_name = trace[feat + 1]["name"]
    feature = converted.get_submodule(feat_name)
    entry = converted.get_submodule(entry_name)
    if isinstance(entry, L.Flatten):
        _set_submodule(converted, entry_name, L.Identity())
        entry = converted.get_submodule(entry_name)
    held: dict[str, Any] = {}

    def keep_map(module: Module, args: tuple, output: Any) -> None:
        held["map"] = output

    def feed_map(module: Module, args: tuple) -> tuple:
        return (held.pop("map"), *args[1:])

    feature.register_forward_hook(keep_map)
    entry.register_forward_pre_hook(feed_map)
    return converted


def _trace(model: Module, sizes: tuple[int, ...], tensors: Any) -> list[dict[str, Any]]:
    """Leaf modules in call order with their input and output shapes, from one eval pass."""
    from ..autograd import grad_mode
    from ..creation import zeros

    records: list[dict[str, Any]] = []
    handles = []

    def make_hook(name: str) -> Any:
        def hook(module: Module, args: tuple, output: Any) -> None:
            outs = tensors(output)
            first = args[0] if args and isinstance(args[0], Tensor) else None
            records.append({"name": name, "module": module,
                            "in_shape": tuple(first.shape) if first is not None else (),
                            "out_shape": tuple(outs[0].shape) if outs else ()})
        return hook

    named = list(model.named_modules())
    for name, module in named:
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(make_hook(name)))
    training = {id(m): m.training for _, m in named}
    try:
        model.eval()
        with grad_mode.no_grad():
            model(zeros((1, *sizes), dtype=next(iter(model.parameters())).dtype
                        if any(True for _ in model.parameters()) else None))
    finally:
        for handle in handles:
            handle.remove()
        for _, m in named:
            m.training = training[id(m)]
    return records
