"""``convert_fc_to_conv`` (notes 000, "converted ConvNet"): on a larger image, the score at each
map position equals the original network on the crop at that position (exact for unpadded
convolutions); at the size it was traced at, the 1x1 map equals the original logits."""

from __future__ import annotations

import numpy as np
import pytest

import deepnotes as dn
import deepnotes.nn as nn
from deepnotes.analysis import convert_fc_to_conv
from deepnotes.models import get_model


class _SmallVGG(nn.Module):
    """VGG's shape in miniature, with valid (unpadded) convolutions: features, an adaptive
    pool to the map the classifier expects, flatten, Linear-ReLU-Dropout-Linear."""

    def __init__(self, pool: bool = True):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 6, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3)) if pool else nn.Identity()
        self.classifier = nn.Sequential(nn.Linear(6 * 3 * 3, 16), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@pytest.mark.parametrize("pool", [True, False])
def test_score_map_equals_the_network_on_each_crop(pool, rng):
    model = _SmallVGG(pool).double().eval()
    converted = convert_fc_to_conv(model, (3, 18, 18)).eval()
    assert isinstance(converted.classifier[0], nn.Conv2d)
    assert converted.classifier[0].weight.shape == (16, 6, 3, 3)
    assert converted.classifier[3].weight.shape == (5, 16, 1, 1)
    x = dn.tensor(rng.standard_normal((2, 3, 30, 34)))
    scores = converted(x).data
    jump = 4                                    # two 2x2 poolings
    assert scores.shape == (2, 5, (30 - 18) // jump + 1, (34 - 18) // jump + 1)
    for i in range(scores.shape[2]):
        for j in range(scores.shape[3]):
            crop = x[:, :, i * jump:i * jump + 18, j * jump:j * jump + 18]
            np.testing.assert_allclose(scores[:, :, i, j], model(crop).data, rtol=0, atol=1e-12)
    # the original model is untouched
    assert isinstance(model.classifier[0], nn.Linear)
    assert model(x[:, :, :18, :18]).shape == (2, 5)


def test_adaptive_pool_that_downsamples_becomes_a_fixed_pool(rng):
    # traced at 22: features give 4x4 and the adaptive pool makes 2x2 (a 2x2 / stride-2 average)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.Conv2d(3, 3, 3),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 4)).double()
    model.eval()
    converted = convert_fc_to_conv(model, (2, 14, 14)).eval()
    assert isinstance(converted[3], nn.AvgPool2d) and isinstance(converted[4], nn.Identity)
    x = dn.tensor(rng.standard_normal((1, 2, 22, 22)))
    scores = converted(x).data
    jump = 2 * 2                                # pooling 2, then the fixed 2x2 average
    assert scores.shape == (1, 4, 3, 3)
    for i in range(3):
        for j in range(3):
            crop = x[:, :, i * jump:i * jump + 14, j * jump:j * jump + 14]
            np.testing.assert_allclose(scores[:, :, i, j], model(crop).data, atol=1e-12)


def test_zoo_alexnet_converted():
    # torchvision's AlexNet: the 6x6x256 map feeds Linear(9216, 4096) -> Conv2d(256, 4096, 6)
    # (notes 000: "If the input of FC layer is 7*7*512, then set the size of filter to be 7").
    dn.manual_seed(0)
    model = get_model("alexnet", num_classes=7).eval()
    converted = convert_fc_to_conv(model, (3, 224, 224)).eval()
    assert converted.classifier[1].weight.shape == (4096, 256, 6, 6)
    assert converted.classifier[4].weight.shape == (4096, 4096, 1, 1)
    assert converted.classifier[6].weight.shape == (7, 4096, 1, 1)
    x = dn.randn(1, 3, 224, 224)
    with dn.no_grad():
        np.testing.assert_allclose(converted(x).data[:, :, 0, 0], model(x).data, rtol=1e-4,
                                   atol=1e-5)
        # a 256x256 image: features 7x7, so a 2x2 map of class scores (jump 32 pixels)
        big = converted(dn.randn(1, 3, 256, 256))
    assert big.shape == (1, 7, 2, 2)


def test_zoo_cifar_vgg_converted():
    # vgg11_cifar: five 2x2 poolings take 32x32 to a 1x1x512 map read by Linear(512, 10);
    # it becomes a 1x1 convolution and a 64x96 image gives a 2x3 map (jump 32)
    dn.manual_seed(0)
    model = get_model("vgg11_cifar").eval()
    converted = convert_fc_to_conv(model, (3, 32, 32)).eval()
    assert converted.classifier.weight.shape == (10, 512, 1, 1)
    x = dn.randn(2, 3, 32, 32)
    with dn.no_grad():
        np.testing.assert_allclose(converted(x).data[:, :, 0, 0], model(x).data, atol=1e-5)
        assert converted(dn.randn(1, 3, 64, 96)).shape == (1, 10, 2, 3)


def test_models_that_cannot_be_converted():
    with pytest.raises(ValueError, match="no Linear layer"):
        convert_fc_to_conv(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 5, 5))
    with pytest.raises(ValueError, match="not element-wise"):
        convert_fc_to_conv(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4),
                                         nn.BatchNorm1d(4)), (1, 5, 5))
    with pytest.raises(ValueError, match="no fixed pooling"):
        convert_fc_to_conv(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2),
                                         nn.Flatten(), nn.Linear(8, 4)), (1, 7, 7))
    with pytest.raises(ValueError, match=r"input_size must be \(C, H, W\)"):
        convert_fc_to_conv(nn.Sequential(nn.Linear(3, 2)), (3,))
