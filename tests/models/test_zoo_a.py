"""The first half of the zoo (AlexNet, VGG, GoogLeNet, Inception v3, ResNet, SE-ResNet, SKNet,
FPN) against torchvision's definitions, or against the same network assembled in PyTorch from
torchvision's pieces where torchvision has no such model.

For every ImageNet-size model: parameter count (torchvision's and the published figure), the
state_dict keys in order and their shapes; for one or two models per family (the others differ
only in configuration lists, which the keys pin down) logits in eval mode after loading
torchvision's (randomised) state_dict, and a training-mode forward + backward in which every
parameter gets a gradient. The initialisation scheme is compared statistically (per tensor:
mean, std, kurtosis, or exact constants) for one model per family. ``deepnotes train`` with the
auxiliary outputs of GoogLeNet / Inception v3.

Runtime (~50 s of CPU): our models are built with the random initialisation switched off
(``_skip_init``) when the test loads other weights anyway; torchvision's are built on the meta
device (counts, keys and shapes need no values) and filled with ``torch.randn`` only when their
logits are compared (``_randomise_``), so that the VGGs' 100M-weight layers are not drawn twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import types
from collections import OrderedDict
from unittest import mock

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes import models
from deepnotes import train as train_mod
from deepnotes.cli import main
from deepnotes.data import DataLoader, Subset, datasets
from deepnotes.models import alexnet, fpn, googlenet, inception, resnet, senet, vgg
from deepnotes.nn import init as dn_init
from tests.models.tv import torchvision_models
from tests.nn.test_se import TorchSKConv, TorchSqueezeExcitation

TV = torchvision_models()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The oracle's small convolutions run in one thread: with its default thread pool PyTorch
    took 19 s instead of 0.04 s for SKNet-50's float64 grouped, dilated convolutions on a busy
    2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _skip_init():
    """Build models without drawing random weights (the test loads weights afterwards)."""
    def keep(tensor, *args, **kwargs):
        return tensor
    names = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
             "xavier_uniform_", "xavier_normal_", "constant_")
    with mock.patch.multiple(dn_init, **{name: keep for name in names}):
        yield


def _randomise_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter and buffer with random values that keep activations O(1): He-scaled
    weights, BN statistics and affine parameters near 1/0. Returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.zero_()
            elif name.endswith("running_var") or (t.ndim == 1 and name.endswith("weight")):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif t.ndim >= 2:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) * math.sqrt(2.0 / fan_in))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return model.eval()


def _tv(builder, **kwargs) -> torch.nn.Module:
    """A torchvision model with random weights, built without its (slow) initialisation."""
    with torch.device("meta"):
        model = builder(**kwargs)
    return _randomise_(model.to_empty(device="cpu"))


def _numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _count(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def _check_keys_and_shapes(ours, theirs) -> None:
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key, value in theirs_sd.items():
        assert tuple(ours_sd[key].shape) == tuple(value.shape), key


def _compare_logits(ours, theirs, x: np.ndarray, rtol: float = 1e-4) -> None:
    ours.load_state_dict(_numpy_state(theirs))
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with dn.no_grad():
        got = ours(dn.tensor(x)).data
    assert got.shape == expected.shape
    assert expected.std() > 1e-2                   # the comparison means something
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


def _outputs(result) -> list:
    return list(result) if isinstance(result, tuple) else [result]


def _forward_backward(model, x_shape, n_classes, n_outputs: int = 1) -> None:
    """Training-mode forward on random input; every output (N, classes); every parameter gets a
    finite gradient of its own shape."""
    model.train()
    model.zero_grad()
    x = dn.tensor(np.random.default_rng(1).standard_normal(x_shape).astype(np.float32))
    outs = _outputs(model(x))
    assert len(outs) == n_outputs
    loss = None
    for out in outs:
        assert out.shape == (x_shape[0], n_classes)
        term = (out * out).mean()
        loss = term if loss is None else loss + term
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape, name
        assert np.isfinite(p.grad.data).all(), name
    model.zero_grad()


SAMPLE = 200_000      # entries per tensor for the moments: VGG's fc6 alone has 102,760,448


def _moments(a: np.ndarray) -> tuple[float, float, float]:
    a = a.astype(np.float64)
    mean, std = a.mean(), a.std()
    kurt = ((a - mean) ** 4).mean() / std**4 - 3 if std > 0 else 0.0
    return mean, std, kurt


def _check_init_like(ours, theirs) -> None:
    """Same initialisation scheme: constants equal; random tensors with >= 2000 entries have
    the same mean (within 5 standard errors of the difference), std (within 5%) and kurtosis
    (within 0.3: uniform -1.2, normal 0), so U(-b, b) vs N(0, s) and a wrong fan are both
    caught. The moments use the first SAMPLE entries (the entries are independent draws)."""
    theirs_sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(theirs_sd)
    for key, value in ours.state_dict().items():
        a, b = np.asarray(value.data), theirs_sd[key].numpy()
        if key.endswith("num_batches_tracked"):
            continue
        if b.min() == b.max():
            assert a.min() == a.max() == b.min(), key
            continue
        if b.size < 2000:
            continue
        a, b = a.ravel()[:SAMPLE], b.ravel()[:SAMPLE]
        (m_a, s_a, k_a), (m_b, s_b, k_b) = _moments(a), _moments(b)
        assert abs(m_a - m_b) < 5 * s_b * math.sqrt(2 / b.size), key     # 5 sigma
        assert abs(s_a / s_b - 1) < 0.05, (key, s_a, s_b)
        assert abs(k_a - k_b) < 0.3, (key, k_a, k_b)


# ------------------------------------------------------------- the torchvision-form models
# name -> (our builder kwargs, torchvision builder kwargs, input shape, published count, checks)
# Every model: parameter count (ours == torchvision's == published), state_dict keys in order and
# their shapes. "logits": eval-mode logits after loading torchvision's randomised state_dict;
# "grad": training-mode forward + backward. Within a family the deeper variants differ from the
# checked ones only in their configuration lists, which the keys and shapes already pin down, so
# running every 100M-parameter VGG would only cost time (the VGG feature stacks train in
# test_vgg_cifar_variants; AlexNet's classifier is VGG's).
TORCHVISION_CASES = {
    "alexnet": ({}, {}, (1, 3, 64, 64), 61_100_840, ("logits", "grad")),
    "vgg11": ({}, {}, (1, 3, 32, 32), 132_863_336, ()),
    "vgg11_bn": ({}, {}, (1, 3, 32, 32), 132_868_840, ("logits",)),
    "vgg13": ({}, {}, (1, 3, 32, 32), 133_047_848, ()),
    "vgg13_bn": ({}, {}, (1, 3, 32, 32), 133_053_736, ()),
    "vgg16": ({}, {}, (1, 3, 32, 32), 138_357_544, ("logits",)),
    "vgg16_bn": ({}, {}, (1, 3, 32, 32), 138_365_992, ()),
    "vgg19": ({}, {}, (1, 3, 32, 32), 143_667_240, ()),
    "vgg19_bn": ({}, {}, (1, 3, 32, 32), 143_678_248, ()),
    "googlenet": ({}, {"init_weights": False}, (1, 3, 32, 32), 13_004_888, ("logits", "grad")),
    "googlenet_noaux": ({"aux_logits": False}, {"aux_logits": False, "init_weights": False},
                        (1, 3, 32, 32), 6_624_904, ("logits",)),
    "inception_v3": ({"transform_input": True}, {"init_weights": False, "transform_input": True},
                     (1, 3, 75, 75), 27_161_264, ("logits", "grad")),
    "resnet18": ({}, {}, (1, 3, 32, 32), 11_689_512, ("logits", "grad")),
    "resnet34": ({}, {}, (1, 3, 32, 32), 21_797_672, ()),
    "resnet50": ({}, {}, (1, 3, 32, 32), 25_557_032, ("logits", "grad")),
    "resnet101": ({}, {}, (1, 3, 32, 32), 44_549_160, ()),
    "resnet152": ({}, {}, (1, 3, 32, 32), 60_192_808, ()),
}


def _forward_backward_inception_v3(model, x_shape) -> None:
    """The main path from 75x75 up, without the auxiliary head (it needs the 17x17 grid of a
    299x299 image; test_inception_aux_head_matches_torchvision runs it on that grid)."""
    aux = model.AuxLogits
    model.AuxLogits = None                    # torchvision's forward then returns (logits, None)
    try:
        model.train()
        out = model(dn.tensor(np.random.default_rng(1).standard_normal(x_shape).astype(
            np.float32)))
        assert isinstance(out, inception.InceptionOutputs) and out.aux_logits is None
        (out.logits * out.logits).mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.shape == p.shape, name
            assert np.isfinite(p.grad.data).all(), name
    finally:
        model.AuxLogits = aux
    assert "AuxLogits.fc.weight" in model.state_dict()


@pytest.mark.parametrize("name", list(TORCHVISION_CASES))
def test_model_matches_torchvision(name):
    ours_kwargs, tv_kwargs, x_shape, published, checks = TORCHVISION_CASES[name]
    builder = name.removesuffix("_noaux")
    with _skip_init():
        ours = models.get(builder, **ours_kwargs)
    with torch.device("meta"):                # no weights needed for counts, keys and shapes
        theirs = getattr(TV, builder)(**tv_kwargs)
    assert _count(ours) == _count(theirs) == published
    _check_keys_and_shapes(ours, theirs)
    if "logits" in checks:
        theirs = _randomise_(theirs.to_empty(device="cpu"))
        x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
        _compare_logits(ours, theirs, x)
    if "grad" in checks:
        del theirs
        shape = (2, *x_shape[1:])
        if name == "inception_v3":
            _forward_backward_inception_v3(ours, shape)
        else:
            n_outputs = 3 if name == "googlenet" else 1   # GoogLeNetOutputs(logits, aux2, aux1)
            _forward_backward(ours, shape, 1000, n_outputs)


# ------------------------------------------------------------------------- initialisation
INIT_CASES = {
    "alexnet": ({}, {}),
    "googlenet": ({}, {"init_weights": True}),
    "inception_v3": ({}, {"init_weights": True}),
    "resnet50": ({"zero_init_residual": True}, {"zero_init_residual": True}),
}


@pytest.mark.parametrize("name", INIT_CASES)
def test_initialisation_scheme_matches_torchvision(name):
    ours_kwargs, tv_kwargs = INIT_CASES[name]
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours = models.get(name, **ours_kwargs)
    theirs = getattr(TV, name)(**tv_kwargs)
    _check_init_like(ours, theirs)


def test_vgg_initialisation_matches_torchvision():
    """VGG's scheme (He normal, fan_out, for the convolutions; N(0, 0.01^2) for the linear
    layers; zero biases; BN 1 and 0) through vgg11_cifar, which shares ``_init_weights`` with
    the ImageNet VGGs and is 9M instead of 133M parameters to draw: its feature stack against
    torchvision's vgg11_bn, its one linear layer against torchvision's last."""
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours = models.get("vgg11_cifar")
    theirs = TV.vgg11_bn()
    _check_init_like(ours.features, theirs.features)
    _check_init_like(ours.classifier, theirs.classifier[6])


# ----------------------------------------------------------------- GoogLeNet / Inception v3
def test_googlenet_training_outputs_match_torchvision():
    """In training mode (dropout off) the three outputs, in torchvision's order, match (with
    transform_input=True: the input re-normalised for the original weights); in eval mode only
    the logits come back. float64: batch norm in training mode on the 1x1 grid of a 32x32
    input normalises over two values per channel, which turns float32 rounding into differences
    of ~1e-3 of the logits' scale (PyTorch's own float32 logits are that far from its float64
    ones); in float64 the two agree to ~1e-11."""
    with _skip_init():
        ours = googlenet.googlenet(dropout=0.0, dropout_aux=0.0, transform_input=True)
    theirs = _tv(TV.googlenet, init_weights=False, dropout=0.0, dropout_aux=0.0,
                 transform_input=True)
    ours.load_state_dict(_numpy_state(theirs))    # float32 values, then both cast exactly
    ours.double()
    theirs.double()
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32))
    ours.train()
    theirs.train()
    got = ours(dn.tensor(x))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    assert isinstance(got, googlenet.GoogLeNetOutputs)
    assert got._fields == ("logits", "aux_logits2", "aux_logits1") == expected._fields
    for a, b in zip(got, expected, strict=True):
        b = b.numpy()
        assert b.std() > 0.1
        np.testing.assert_allclose(a.data, b, rtol=0, atol=1e-9 * np.abs(b).max())
    ours.eval()
    assert isinstance(ours(dn.tensor(x)), dn.Tensor)
    ours.aux1 = ours.aux2 = None            # what aux_logits=False builds
    ours.aux_logits = False
    assert isinstance(ours.train()(dn.tensor(x)), dn.Tensor)


def test_inception_aux_head_matches_torchvision():
    """The auxiliary head on the 17x17 grid of a 299 input, eval-mode output and gradients."""
    with _skip_init():
        ours = inception.InceptionAux(768, 10)
    with torch.device("meta"):
        theirs = TV.inception.InceptionAux(768, 10)
    theirs = _randomise_(theirs.to_empty(device="cpu"))
    _check_keys_and_shapes(ours, theirs)
    x = np.random.default_rng(4).standard_normal((2, 768, 17, 17)).astype(np.float32)
    _compare_logits(ours, theirs, x)
    _forward_backward(ours, (2, 768, 17, 17), 10)
    with pytest.raises(ValueError, match=r"H, W >= 17 .* got \(2, 768, 16, 17\)"):
        ours(dn.zeros((2, 768, 16, 17)))


def test_inception_v3_minimum_sizes_and_label_smoothing():
    """75x75 is the smallest input of the main path (torchvision's too); the recipe's label
    smoothing is CrossEntropyLoss(label_smoothing=0.1), equal to PyTorch's."""
    with _skip_init():
        model = inception.inception_v3(aux_logits=False).eval()
    for name, p in model.state_dict().items():      # sane values instead of uninitialised memory
        p.data[...] = 0.01 if not name.endswith("running_var") else 1.0
    with dn.no_grad():
        assert model(dn.zeros((1, 3, 75, 75))).shape == (1, 1000)
        with pytest.raises((ValueError, RuntimeError)):
            model(dn.zeros((1, 3, 74, 74)))
    logits = np.random.default_rng(5).standard_normal((4, 7))
    target = np.array([0, 3, 6, 2])
    ours = dn.nn.CrossEntropyLoss(label_smoothing=0.1)(dn.tensor(logits), dn.tensor(target))
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(torch.from_numpy(logits),
                                                           torch.from_numpy(target))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)


# -------------------------------------------------------------------------- AlexNet (paper)
class TorchAlexNetPaper(torch.nn.Module):
    """The 2012 network in PyTorch, written from the paper's table (keys as ours)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, 4), nn.ReLU(), nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(),
            nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(),
                                        nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def test_alexnet_paper_form():
    """60,965,224 parameters (the paper's layer table with the two-GPU groups: 34,944 + 307,456
    + 885,120 + 663,936 + 442,624 + 37,752,832 + 16,781,312 + 4,097,000); the same logits as the
    network written in PyTorch; the paper's init (weights N(0, 0.01^2); biases 1 in conv2/4/5
    and the hidden fc6/fc7, 0 in the remaining layers)."""
    assert 34_944 + 307_456 + 885_120 + 663_936 + 442_624 + 37_752_832 + 16_781_312 \
        + 4_097_000 == 60_965_224
    dn.manual_seed(0)
    ours = alexnet.alexnet(paper=True)
    assert isinstance(ours, alexnet.AlexNetPaper)
    assert _count(ours) == 60_965_224
    for i, bias in ((0, 0.0), (4, 1.0), (8, 0.0), (10, 1.0), (12, 1.0)):
        assert np.all(ours.features[i].bias.data == bias)
        assert ours.features[i].weight.data.std() == pytest.approx(0.01, rel=0.05)
    for i in (1, 4, 6):
        assert np.all(ours.classifier[i].bias.data == (1.0 if i < 6 else 0.0))
        assert ours.classifier[i].weight.data[:64].std() == pytest.approx(0.01, rel=0.05)
    with torch.device("meta"):
        theirs = TorchAlexNetPaper()
    theirs = _randomise_(theirs.to_empty(device="cpu"))
    _check_keys_and_shapes(ours, theirs)
    x = np.random.default_rng(6).standard_normal((1, 3, 67, 67)).astype(np.float32)
    _compare_logits(ours, theirs, x)
    _forward_backward(ours, (2, 3, 67, 67), 1000)
    with _skip_init():
        assert models.get("alexnet_paper").features[2].k == 2.0


def test_alexnet_paper_lrn_is_the_papers_formula():
    """b_c = a_c / (2 + 1e-4 * sum_{|j - c| <= 2} a_j^2)^0.75, written as a loop (alpha not
    divided by n = 5, unlike PyTorch's layer, hence our alpha = 5e-4)."""
    a = np.random.default_rng(7).standard_normal((2, 9, 3, 4)) * 30
    expected = np.empty_like(a)
    for c in range(9):
        window = a[:, max(0, c - 2):min(9, c + 3)]
        expected[:, c] = a[:, c] / (2 + 1e-4 * (window**2).sum(axis=1)) ** 0.75
    with _skip_init():
        lrn = alexnet.alexnet_paper().features[2]
    np.testing.assert_allclose(lrn(dn.tensor(a)).data, expected, rtol=1e-12)


# ---------------------------------------------------------------------- VGG / ResNet CIFAR
@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_cifar_variants(depth):
    """Same feature stack as torchvision's vgg*_bn (keys, shapes), one Linear(512, 10) head;
    without BN the stack of vgg*; a training step on 32x32 for two of them."""
    for batch_norm, cfg in ((True, f"vgg{depth}_bn"), (False, f"vgg{depth}")):
        with torch.device("meta"):
            theirs = getattr(TV, cfg)()
        with _skip_init():
            ours = models.get(f"vgg{depth}_cifar", batch_norm=batch_norm)
        _check_keys_and_shapes(ours.features, theirs.features)
        n_features = sum(p.numel() for p in theirs.features.parameters())
        assert _count(ours) == n_features + 512 * 10 + 10
    if depth in (11, 16):
        dn.manual_seed(0)
        _forward_backward(models.get(f"vgg{depth}_cifar"), (2, 3, 32, 32), 10)


def test_vgg16_cifar_count_by_hand():
    # conv weights+biases of configuration D: 14,714,688; BN: 2 * 4,224; head 5,130
    assert _count(vgg.vgg16_cifar()) == 14_714_688 + 2 * 4_224 + 5_130 == 14_728_266


def _cifar_count(depth: int) -> int:
    """torchvision's count with the 7x7 stem replaced by a 3x3 one and a 10-class fc."""
    with torch.device("meta"):
        theirs = getattr(TV, f"resnet{depth}")()
    fc_in = theirs.fc.in_features
    return (sum(p.numel() for p in theirs.parameters()) - 3 * 64 * 49 + 3 * 64 * 9
            - (fc_in * 1000 + 1000) + fc_in * 10 + 10)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_cifar_variants(depth):
    """3x3 stride-1 stem, no max pool, 10 classes; a training step for 18 and 50 (the deeper
    ones repeat the same blocks, and their counts pin the repetitions down)."""
    with _skip_init():
        ours = models.get(f"resnet{depth}_cifar")
    assert _count(ours) == _cifar_count(depth)
    assert ours.conv1.kernel_size == (3, 3) and ours.conv1.stride == (1, 1)
    assert isinstance(ours.maxpool, dn.nn.Identity)
    if depth == 18:     # the usual CIFAR ResNet-18 (kuangliu/pytorch-cifar): 11,173,962
        assert _count(ours) == 11_173_962
    if depth in (18, 50):
        for p in ours.parameters():
            p.data[...] = np.random.default_rng(depth).standard_normal(p.shape) * 0.05
        _forward_backward(ours, (2, 3, 8, 8), 10)


def test_resnet_cifar_keeps_32x32_resolution_in_layer1():
    model = resnet.resnet18_cifar().eval()
    with dn.no_grad():
        assert model.forward_features(dn.zeros((1, 3, 32, 32))).shape == (1, 512, 4, 4)


# ------------------------------------------------------------------------------- ResNet-vd
def _torch_resnet_vd(depth: int) -> torch.nn.Module:
    """torchvision's ResNet with the deep stem (ResNet-C) and avg-pool shortcuts (ResNet-D)
    swapped in: the oracle for ResNet-vd."""
    nn = torch.nn
    with torch.device("meta"):
        model = getattr(TV, f"resnet{depth}")()
        model.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False))
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            block = layer[0]
            if block.downsample is None:
                continue
            conv, bn = block.downsample
            stride = conv.stride[0]
            pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                    if stride > 1 else nn.Identity())
            block.downsample = nn.Sequential(
                pool, nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=False), bn)
    return _randomise_(model.to_empty(device="cpu"))


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_vd_matches_torch_oracle(depth):
    """Keys, shapes, logits on an odd size (the ceil_mode average pool) and gradients."""
    with _skip_init():
        ours = models.get(f"resnet{depth}_vd")
    theirs = _torch_resnet_vd(depth)
    _check_keys_and_shapes(ours, theirs)
    # resnet50d: 25,557,032 + deep stem (864 + 64 + 9,216 + 64 + 18,432) - 7x7 stem (9,408)
    published = {18: 11_689_512, 50: 25_557_032}[depth] + 28_640 - 9_408
    assert _count(ours) == _count(theirs) == published
    if depth == 50:
        assert published == 25_576_264                # timm's resnet50d
    size = {18: 45, 50: 33}[depth]          # odd sizes all the way down (33, 17, 9, 5, 3, 2)
    x = np.random.default_rng(8).standard_normal((1, 3, size, size)).astype(np.float32)
    _compare_logits(ours, theirs, x)
    if depth == 18:
        _forward_backward(ours, (2, 3, 32, 32), 1000)


def test_resnet_vd_builders_exist_for_every_depth():
    for depth in (34, 101, 152):
        with _skip_init():
            model = models.get(f"resnet{depth}_vd")
        assert isinstance(model.layer2[0].downsample[0], dn.nn.AvgPool2d)
        assert model.layer2[0].downsample[1].stride == (1, 1)
        assert len(model.conv1) == 7


def test_zero_init_residual_starts_every_block_as_identity():
    model = resnet.resnet18(zero_init_residual=True).eval()
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            assert np.all(block.bn2.weight.data == 0)
    x = dn.tensor(np.abs(np.random.default_rng(9).standard_normal((1, 64, 8, 8))).astype(
        np.float32))
    with dn.no_grad():
        np.testing.assert_allclose(model.layer1(x).data, x.data)    # relu(0 + x) = x for x >= 0


# ------------------------------------------------------------------------------- SE-ResNet
def _se_forward_basic(self, x):
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(self.se(out) + identity)


def _se_forward_bottleneck(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(self.se(out) + identity)


def _torch_se_resnet(depth: int) -> torch.nn.Module:
    """torchvision's ResNet with an SE module on every block's branch, before the addition."""
    with torch.device("meta"):
        model = getattr(TV, f"resnet{depth}")()
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in layer:
                channels = (block.bn3 if hasattr(block, "bn3") else block.bn2).num_features
                block.se = TorchSqueezeExcitation(channels, channels // 16)
                forward = _se_forward_bottleneck if hasattr(block, "bn3") else _se_forward_basic
                block.forward = types.MethodType(forward, block)
    return _randomise_(model.to_empty(device="cpu"))


@pytest.mark.parametrize("depth,published", [(18, 11_778_592), (50, 28_088_024)])
def test_se_resnet_matches_torch_oracle(depth, published):
    """Counts: resnet + sum over blocks of 2 C^2/16 + C/16 + C (timm's seresnet18/50)."""
    with _skip_init():
        ours = models.get(f"se_resnet{depth}")
    theirs = _torch_se_resnet(depth)
    _check_keys_and_shapes(ours, theirs)
    assert _count(ours) == _count(theirs) == published
    size = {18: 32, 50: 24}[depth]
    x = np.random.default_rng(10).standard_normal((1, 3, size, size)).astype(np.float32)
    _compare_logits(ours, theirs, x)
    if depth == 18:
        _forward_backward(ours, (2, 3, 32, 32), 1000)


def test_se_sits_before_the_addition():
    """With the SE gates forced to 0 (fc2 bias -> -inf), a block outputs relu(identity): the
    shortcut is not gated."""
    block = senet.SEBasicBlock(8, 8).eval()
    block.se.fc2.bias.data[...] = -1e4
    x = dn.tensor(np.random.default_rng(11).standard_normal((1, 8, 5, 5)).astype(np.float32))
    with dn.no_grad():
        np.testing.assert_allclose(block(x).data, np.maximum(x.data, 0), atol=1e-6)


# ----------------------------------------------------------------------------------- SKNet
def _sk_forward(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn3(self.conv3(self.conv2(out)))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


def test_sknet50_matches_torch_oracle():
    """SK-ResNeXt-50: torchvision's resnext50_32x4d with every grouped 3x3 (+ its BN) replaced
    by the paper's SK unit; 27,479,784 parameters (the paper: 27.5M). Logits in float64: with
    these random weights every block multiplies a perturbation by ~3 (the activations grow to
    ~1e3), so float32 rounding alone moves the logits by ~1e-3 of their scale in PyTorch too;
    in float64 the two agree to ~1e-12."""
    with _skip_init():
        ours = models.get("sknet50")
    with torch.device("meta"):
        theirs = TV.resnext50_32x4d()
        for layer in (theirs.layer1, theirs.layer2, theirs.layer3, theirs.layer4):
            for block in layer:
                width = block.conv2.in_channels
                block.conv2 = TorchSKConv(width, width, block.conv2.stride[0], 2, 32, 16, 32)
                del block.bn2
                block.forward = types.MethodType(_sk_forward, block)
    _check_keys_and_shapes(ours, theirs)
    assert _count(ours) == _count(theirs) == 27_479_784
    theirs = _randomise_(theirs.to_empty(device="cpu")).double()
    x = np.random.default_rng(12).standard_normal((1, 3, 32, 32))
    for value in ours.state_dict().values():     # defined values before the cast to float64
        value.data[...] = 0
    _compare_logits(ours.double(), theirs, x, rtol=1e-9)


def test_sknet_small_trains_on_32x32():
    dn.manual_seed(0)
    model = models.get("sknet_small")
    assert _count(model) == 423_802
    assert model.layer1[0].conv2.M == 2
    _forward_backward(model, (2, 3, 32, 32), 10)


# ------------------------------------------------------------------------------------- FPN
@pytest.mark.parametrize("sizes", [[(16, 16), (8, 8), (4, 4)], [(15, 13), (7, 7), (3, 4)],
                                   [(9, 11), (5, 6)]])
def test_feature_pyramid_network_matches_torchvision(sizes):
    """torchvision.ops.FeaturePyramidNetwork (pure Python, it loads) as the oracle, on sizes
    that halve and on odd ones (the nearest upsampling is not a plain repeat), float64,
    outputs and the gradients of the inputs and of every parameter."""
    from torchvision.ops import FeaturePyramidNetwork
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    rng = np.random.default_rng(13)
    channels = [int(c) for c in rng.integers(1, 9, len(sizes))]
    theirs = FeaturePyramidNetwork(channels, 6, LastLevelMaxPool()).double()
    for p in theirs.parameters():
        torch.nn.init.normal_(p, 0, 0.5)
    ours = fpn.FeaturePyramidNetwork(channels, 6, fpn.LastLevelMaxPool()).double()
    _check_keys_and_shapes(ours, theirs)
    ours.load_state_dict(_numpy_state(theirs))
    arrays = OrderedDict((f"f{i}", rng.standard_normal((2, c, *s)))
                         for i, (c, s) in enumerate(zip(channels, sizes, strict=True)))
    x_t = OrderedDict((k, torch.tensor(v, requires_grad=True)) for k, v in arrays.items())
    x_o = OrderedDict((k, dn.tensor(v, requires_grad=True)) for k, v in arrays.items())
    out_t, out_o = theirs(x_t), ours(x_o)
    assert list(out_o) == list(out_t) == [*arrays, "pool"]
    weights = {k: rng.standard_normal(tuple(v.shape)) for k, v in out_t.items()}
    loss_t = sum((v * torch.from_numpy(weights[k])).sum() for k, v in out_t.items())
    loss_o = sum((v * dn.tensor(weights[k])).sum() for k, v in out_o.items())
    for k in out_t:
        np.testing.assert_allclose(out_o[k].data, out_t[k].detach().numpy(), atol=1e-10)
    loss_t.backward()
    loss_o.backward()
    for k in arrays:
        np.testing.assert_allclose(x_o[k].grad.data, x_t[k].grad.numpy(), atol=1e-10)
    grads_t = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, grads_t[name].grad.numpy(), atol=1e-9)


@pytest.mark.parametrize("size_in,size_out", [((3, 4), (6, 8)), ((4, 5), (12, 5)),
                                              ((7, 7), (15, 13)), ((6, 10), (4, 3)),
                                              ((5, 3), (5, 3))])
def test_nearest_resize_matches_torch_interpolate(size_in, size_out):
    x = np.random.default_rng(14).standard_normal((1, 2, *size_in))
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size_out,
                                               mode="nearest").numpy()
    np.testing.assert_array_equal(fpn.nearest_resize(dn.tensor(x), size_out).data, expected)


def test_resnet_fpn_backbone_matches_torchvision():
    """Keys and outputs as torchvision's resnet_fpn_backbone (with BatchNorm2d, since ours is
    not frozen), and the same layers frozen for trainable_layers=3."""
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    with _skip_init():
        ours = fpn.resnet_fpn_backbone(backbone_name="resnet18")
    with torch.device("meta"):
        theirs = resnet_fpn_backbone(backbone_name="resnet18", weights=None,
                                     norm_layer=torch.nn.BatchNorm2d)
    theirs = _randomise_(theirs.to_empty(device="cpu"))
    _check_keys_and_shapes(ours, theirs)
    frozen_t = [n for n, p in theirs.named_parameters() if not p.requires_grad]
    frozen_o = [n for n, p in ours.named_parameters() if not p.requires_grad]
    assert frozen_o == frozen_t and frozen_o[0] == "body.conv1.weight"
    assert ours.out_channels == theirs.out_channels == 256
    ours.load_state_dict(_numpy_state(theirs))
    ours.eval()
    x = np.random.default_rng(15).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    with dn.no_grad():
        got = ours(dn.tensor(x))
    assert list(got) == list(expected) == ["0", "1", "2", "3", "pool"]
    for k, v in expected.items():
        v = v.numpy()
        np.testing.assert_allclose(got[k].data, v, rtol=0, atol=1e-4 * np.abs(v).max())


def test_small_resnet_fpn_for_64x64_images():
    dn.manual_seed(0)
    model = models.get("resnet_fpn")
    x = dn.tensor(np.random.default_rng(16).standard_normal((2, 3, 64, 64)).astype(np.float32))
    out = model(x)
    assert {k: v.shape for k, v in out.items()} == {
        "0": (2, 32, 16, 16), "1": (2, 32, 8, 8), "2": (2, 32, 4, 4), "3": (2, 32, 2, 2),
        "pool": (2, 32, 1, 1)}
    sum((v * v).mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    cifar = fpn.resnet_fpn(stem="cifar", returned_layers=[2, 3, 4])
    with dn.no_grad():
        shapes = [v.shape for v in cifar.eval()(x).values()]
    assert shapes == [(2, 32, 32, 32), (2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4)]


# ------------------------------------------------------------------ deepnotes train --model
@pytest.fixture
def four_digits(monkeypatch):
    """Four training and two test digits: one step of an ImageNet-size model stays small."""
    digits = datasets.digits

    def few(*args, **kwargs):
        train, test = digits(*args, **kwargs)
        return Subset(train, range(4)), Subset(test, range(2))

    monkeypatch.setattr(datasets, "digits", few)


def test_train_one_epoch_adds_the_auxiliary_losses_weighted_0_3():
    """GoogLeNet in training mode returns (logits, aux2, aux1); the training loss is
    CE(logits) + 0.3 CE(aux2) + 0.3 CE(aux1) (the paper's weighting). float64 and SGD with
    lr=0 (the loss is taken before the step anyway), dropout drawn from the same seed."""
    with _skip_init():
        model = googlenet.googlenet(num_classes=5)
    rng = np.random.default_rng(17)
    for name, value in model.state_dict().items():
        value.data[...] = 1.0 if name.endswith("running_var") else \
            rng.standard_normal(value.shape) * 0.1
    model.double()
    x = rng.standard_normal((2, 3, 32, 32))
    y = np.array([1, 4])
    loader = DataLoader(dn.data.TensorDataset(dn.tensor(x), dn.tensor(y)), batch_size=2)
    ce = dn.nn.CrossEntropyLoss()
    dn.manual_seed(3)
    outs = model.train()(dn.tensor(x))
    assert isinstance(outs, googlenet.GoogLeNetOutputs)
    terms = [ce(out, dn.tensor(y)).item() for out in outs]
    dn.manual_seed(3)
    loss, _ = train_mod.train_one_epoch(model, loader, ce, dn.optim.SGD(model.parameters(), lr=0))
    assert terms[1] != terms[2]
    assert loss == pytest.approx(terms[0] + 0.3 * (terms[1] + terms[2]), rel=1e-12)


def test_train_cli_trains_inception_v3_on_upscaled_digits(tmp_path, capsys, four_digits):
    """``deepnotes train --model inception_v3``: built with the digits' 10 classes, run on
    75x75 images (its smallest), without the auxiliary head (it needs 299x299) and with the
    (logits, None) training output unpacked."""
    code = main(["train", "--model", "inception_v3", "--image-size", "75", "--epochs", "1",
                 "--batch-size", "2", "--limit-batches", "1", "--out", str(tmp_path), "--name",
                 "v3", "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "v3" / "metrics.json").read_text())
    assert metrics["input_shape"] == [3, 75, 75]
    aux_head = 128 * 768 + 2 * 128 + 768 * 128 * 25 + 2 * 768 + 768 * 10 + 10
    with torch.device("meta"):
        reference = TV.inception_v3(num_classes=10, init_weights=False)
    assert metrics["model_params"] == _count(reference) - aux_head == 21_806_058
    assert math.isfinite(metrics["epochs"][0]["train_loss"])


# -------------------------------------------------------------------------------- registry
def test_registry_has_the_first_half_of_the_zoo():
    names = set(models.list())
    expected = {"alexnet", "alexnet_paper", "googlenet", "inception_v3", "se_resnet18",
                "se_resnet50", "sknet50", "sknet_small", "resnet_fpn"}
    expected |= {f"vgg{d}{s}" for d in (11, 13, 16, 19) for s in ("", "_bn", "_cifar")}
    expected |= {f"resnet{d}{s}" for d in (18, 34, 50, 101, 152) for s in ("", "_vd", "_cifar")}
    assert expected <= names
    assert models.get is models.get_model
