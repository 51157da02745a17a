"""The model zoo and its registry: ``get_model(name, **kwargs)``, ``list_models()``.

Each entry is a function that builds a fresh model; keyword arguments go to it
(``get_model("mlp", hidden=256)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .small import MLP, DigitsCNN, LeNet5, digits_cnn, lenet5, mlp

_REGISTRY: dict[str, Callable[..., Any]] = {
    "digits_cnn": digits_cnn,
    "lenet5": lenet5,
    "mlp": mlp,
}

# DenseNet, MobileNet, ShuffleNet, CRNN (issue 6, second half of the zoo).
from . import crnn as _crnn, densenet as _densenet  # noqa: E402, I001
from . import mobilenet as _mobilenet, shufflenet as _shufflenet  # noqa: E402
from .crnn import CRNN  # noqa: E402
from .densenet import DenseNet  # noqa: E402
from .mobilenet import MobileNetV1, MobileNetV2  # noqa: E402
from .shufflenet import ShuffleNetV1, ShuffleNetV2  # noqa: E402

_REGISTRY.update({name: getattr(module, name) for module, names in (
    (_densenet, ("densenet121", "densenet161", "densenet169", "densenet201")),
    (_mobilenet, ("mobilenet_v1", "mobilenet_v2", "mobilenet_v1_cifar", "mobilenet_v2_cifar")),
    (_shufflenet, ("shufflenet_v1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
                   "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")),
    (_crnn, ("crnn", "crnn_ppocr")),
) for name in names})

# AlexNet, VGG, GoogLeNet, Inception v3, ResNet, SE-ResNet, SKNet, FPN (issue 6, first half).
from . import alexnet as _alexnet, googlenet as _googlenet  # noqa: E402, I001
from . import inception as _inception, resnet as _resnet, vgg as _vgg  # noqa: E402
from . import fpn as _fpn, senet as _senet, sknet as _sknet  # noqa: E402
from .alexnet import AlexNet, AlexNetPaper  # noqa: E402
from .fpn import BackboneWithFPN, FeaturePyramidNetwork  # noqa: E402
from .googlenet import GoogLeNet, GoogLeNetOutputs  # noqa: E402
from .inception import Inception3, InceptionOutputs  # noqa: E402
from .resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402
from .vgg import VGG, VGGCifar  # noqa: E402

_REGISTRY.update({name: getattr(module, name) for module, names in (
    (_alexnet, ("alexnet", "alexnet_paper")),
    (_vgg, ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
            "vgg11_cifar", "vgg13_cifar", "vgg16_cifar", "vgg19_cifar")),
    (_googlenet, ("googlenet",)),
    (_inception, ("inception_v3",)),
    (_resnet, ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
               "resnet18_vd", "resnet34_vd", "resnet50_vd", "resnet101_vd", "resnet152_vd",
               "resnet18_cifar", "resnet34_cifar", "resnet50_cifar", "resnet101_cifar",
               "resnet152_cifar")),
    (_senet, ("se_resnet18", "se_resnet50")),
    (_sknet, ("sknet50", "sknet_small")),
    (_fpn, ("resnet_fpn",)),
) for name in names})

# Detection (issue 10): the small Faster R-CNN + FPN for the shapes data set.
from . import detection  # noqa: E402

_REGISTRY["faster_rcnn_small"] = detection.faster_rcnn_small


def register_model(name: str, builder: Callable[..., Any]) -> None:
    """Add ``builder`` to the registry under ``name`` (a name may be registered only once)."""
    if name in _REGISTRY:
        raise ValueError(f"a model named '{name}' is already registered")
    _REGISTRY[name] = builder


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` with ``kwargs`` (as ``torchvision.models.get_model``)."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'; available models: "
                         f"{', '.join(list_models())}") from None
    return builder(**kwargs)


__all__ = ["MLP", "DigitsCNN", "LeNet5", "digits_cnn", "get_model", "lenet5", "list_models", "mlp",
           "register_model"]

# ``deepnotes.models.get(name, **kwargs)`` and ``deepnotes.models.list()``: short aliases. They are
# bound last, so nothing in this module may call the builtin ``list`` at run time.
get = get_model
list = list_models  # noqa: A001 - shadows the builtin on purpose (the zoo's ``list()``)
__all__ += ["VGG", "AlexNet", "AlexNetPaper", "BackboneWithFPN", "BasicBlock", "Bottleneck",
            "FeaturePyramidNetwork", "GoogLeNet", "GoogLeNetOutputs", "Inception3",
            "InceptionOutputs", "ResNet", "VGGCifar"]
__all__ += ["CRNN", "DenseNet", "MobileNetV1", "MobileNetV2", "ShuffleNetV1", "ShuffleNetV2"]
