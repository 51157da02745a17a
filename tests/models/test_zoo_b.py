"""The second half of the zoo (DenseNet, MobileNet, ShuffleNet, CRNN) and what came with it:
torchvision's parameter counts, state_dict keys/shapes and logits; the published counts and
multiply-adds; channel_shuffle against PyTorch; DenseNet's memory-efficient mode (same gradients,
less memory held); CRNN shapes and a few CTC steps; the registry aliases; ``deepnotes train`` on
upscaled digits."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes import models, nn, optim
from deepnotes.cli import main
from deepnotes.data import Subset, datasets
from deepnotes.models import crnn, densenet, mobilenet, shufflenet
from deepnotes.train import ResizedImages
from tests.helpers import check_against_torch
from tests.models.tv import torchvision_models


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small matrices: one BLAS thread (and one torch thread) is faster, and much faster on a
    busy machine."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(torch_threads)


def n_params(model) -> int:
    return sum(p.data.size for p in model.parameters())


def macs(model, shape) -> int:
    """Multiply-accumulates of the convolutions and linear layers for one input of ``shape``
    (the papers' "FLOPs"/"Mult-Adds" convention): per output element C_in/groups * kh * kw."""
    total = [0]

    def conv_hook(module, inputs, output):
        total[0] += output.data[0].size * module.weight.data[0].size

    def linear_hook(module, inputs, output):
        total[0] += module.weight.data.size

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
               for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    model.eval()
    with dn.no_grad():
        model(dn.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return total[0]


# -- torchvision parity ---------------------------------------------------------------------------
PUBLISHED = {"densenet121": 7_978_856, "mobilenet_v2": 3_504_872,
             "shufflenet_v2_x1_0": 2_278_604}
TORCHVISION_NAMES = ["densenet121", "densenet161", "densenet169", "densenet201", "mobilenet_v2",
                     "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                     "shufflenet_v2_x2_0"]


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_parameters_and_state_dict_equal_torchvision(name):
    ours = models.get(name)
    theirs = getattr(torchvision_models(), name)()
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key, value in theirs_sd.items():
        assert tuple(ours_sd[key].shape) == tuple(value.shape), key
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    if name in PUBLISHED:
        assert n_params(ours) == PUBLISHED[name]


def _randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """torchvision's init leaves BN as the identity and (MobileNet) the fc near zero: give BN
    weights, biases and running statistics and every bias random values, so that loading and
    eval-mode BN are really exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
            elif isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, m.in_features ** -0.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    return module.eval()


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "shufflenet_v2_x0_5"])
def test_torchvision_weights_give_the_same_logits(name):
    theirs = _randomized(getattr(torchvision_models(), name)())
    ours = models.get(name)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    with dn.no_grad():
        logits = ours(dn.tensor(x)).data
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    assert logits.shape == (2, 1000)
    np.testing.assert_allclose(logits, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


# -- published counts without a torchvision model ------------------------------------------------
def test_mobilenet_v1_matches_the_papers_size_and_cost():
    """The paper's comparison table: 1.0 MobileNet-224 has 4.2 M parameters and 569 M
    multiply-adds; 4,231,976 is the exact trainable count of Keras' reference MobileNet (BN scale
    and shift, convolutions without bias)."""
    model = mobilenet.mobilenet_v1()
    assert n_params(model) == 4_231_976
    assert macs(model, (3, 224, 224)) / 1e6 == pytest.approx(569, rel=0.002)


def test_mobilenet_v2_cost_matches_the_paper():
    """Sandler et al. (ImageNet comparison table): MobileNetV2 1.0 costs 300 M multiply-adds."""
    assert macs(mobilenet.mobilenet_v2(), (3, 224, 224)) / 1e6 == pytest.approx(300, rel=0.01)


@pytest.mark.parametrize("groups, mflops", [(1, 143), (3, 137), (8, 137)])
def test_shufflenet_v1_cost_matches_the_papers_table(groups, mflops):
    """Zhang et al. Table 1 (ShuffleNet 1x): the channel widths are chosen so that every number of
    groups costs about the same: 143 / 137 / 137 MFLOPs (multiply-adds) for g = 1 / 3 / 8."""
    model = shufflenet.shufflenet_v1(groups)
    assert macs(model, (3, 224, 224)) / 1e6 == pytest.approx(mflops, rel=0.015)


def test_shufflenet_v2_cost_matches_the_paper():
    """Ma et al. (comparison table): ShuffleNet v2 0.5x costs 41 MFLOPs, 1x 146 MFLOPs."""
    assert macs(shufflenet.shufflenet_v2_x0_5(), (3, 224, 224)) / 1e6 == pytest.approx(41, rel=0.02)
    assert macs(shufflenet.shufflenet_v2_x1_0(), (3, 224, 224)) / 1e6 == pytest.approx(146,
                                                                                      rel=0.02)


# -- forward and backward -------------------------------------------------------------------------
TRAINING_CASES = {
    "mobilenet_v1_cifar": ((2, 3, 32, 32), (2, 10)),
    "mobilenet_v2_cifar": ((2, 3, 32, 32), (2, 10)),
    "shufflenet_v1": ((2, 3, 64, 64), (2, 1000)),
    "shufflenet_v2_x0_5": ((2, 3, 64, 64), (2, 1000)),
}


@pytest.mark.parametrize("name", TRAINING_CASES)
def test_forward_backward_shapes(name):
    in_shape, out_shape = TRAINING_CASES[name]
    dn.manual_seed(0)
    model = models.get(name)
    model.train()
    y = model(dn.randn(*in_shape))
    assert y.shape == out_shape
    (y * y).mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, key
        assert np.isfinite(p.grad.data).all(), key


def test_cifar_variants_keep_more_resolution():
    """The stem stride 1 (and v2's 24-channel stage stride 1): 32x32 ends at 4x4 / 2x2 maps."""
    v2 = mobilenet.mobilenet_v2_cifar()
    v1 = mobilenet.mobilenet_v1_cifar()
    with dn.no_grad():
        assert v2.eval().features(dn.zeros(1, 3, 32, 32)).shape == (1, 1280, 4, 4)
        assert v1.eval().features(dn.zeros(1, 3, 32, 32)).shape == (1, 1024, 2, 2)
        assert mobilenet.mobilenet_v2().eval().features(dn.zeros(1, 3, 32, 32)).shape == \
            (1, 1280, 1, 1)


def test_mobilenet_v2_residuals_only_where_shapes_allow():
    blocks = [m for m in mobilenet.mobilenet_v2().modules()
              if isinstance(m, mobilenet.InvertedResidual)]
    assert len(blocks) == 17
    assert sum(b.use_res_connect for b in blocks) == 10  # n - 1 per stage: 0+1+2+3+2+2+0


# -- DenseNet memory-efficient mode ---------------------------------------------------------------
def _densenet_step(memory_efficient: bool, x: np.ndarray):
    """One training forward/backward; returns the model and the bytes that the graph held after
    forward (tracemalloc sees NumPy's allocations)."""
    dn.manual_seed(0)
    model = densenet.densenet121(memory_efficient=memory_efficient)
    model.train()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = model(dn.tensor(x))
        held = tracemalloc.get_traced_memory()[0] - before
        (y * y).sum().backward()
    finally:
        tracemalloc.stop()
    return model, y.data, held


def test_densenet_memory_efficient_same_gradients_less_memory():
    """Recomputing concat-BN-ReLU-1x1 conv in backward changes nothing but memory: outputs,
    every gradient and the BN running statistics are bitwise equal, and the graph holds much less
    after forward (measured: x0.60 for this input, x0.61 at 64x64; see models/densenet.py)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain, y_plain, held_plain = _densenet_step(False, x)
    efficient, y_efficient, held_efficient = _densenet_step(True, x)
    np.testing.assert_array_equal(y_plain, y_efficient)
    for (key, p), q in zip(plain.named_parameters(), efficient.parameters()):
        np.testing.assert_array_equal(p.grad.data, q.grad.data, err_msg=key)
    for (key, a), b in zip(plain.named_buffers(), efficient.buffers()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=key)  # norm1 updated once
    assert held_efficient < 0.75 * held_plain


# -- channel shuffle ------------------------------------------------------------------------------
@given(n=st.integers(1, 3), groups=st.integers(1, 4), per_group=st.integers(1, 4),
       spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_channel_shuffle_matches_torch(n, groups, per_group, spatial):
    x = np.random.default_rng(groups * 7 + per_group).standard_normal(
        (n, groups * per_group, *spatial))
    check_against_torch(F.channel_shuffle, "channel_shuffle", (x,), groups=groups)


def test_channel_shuffle_module_and_example():
    x = dn.arange(6.0).reshape(1, 6, 1)
    assert F.channel_shuffle(x, 2).data.ravel().tolist() == [0, 3, 1, 4, 2, 5]
    layer = nn.ChannelShuffle(3)
    assert repr(layer) == repr(torch.nn.ChannelShuffle(3)) == "ChannelShuffle(groups=3)"
    np.testing.assert_array_equal(layer(x).data, torch.nn.ChannelShuffle(3)(
        torch.tensor(x.data)).numpy())


@pytest.mark.parametrize("shape, groups", [((2, 5, 3, 3), 2), ((2, 6, 3, 3), 0), ((2, 6), 2),
                                           ((2, 6, 3), -1), ((2, 6, 3), 2.0)])
def test_channel_shuffle_errors_are_torchs(shape, groups):
    with pytest.raises((RuntimeError, TypeError)) as theirs:
        torch.nn.functional.channel_shuffle(torch.zeros(shape), groups)
    with pytest.raises(theirs.type) as ours:
        F.channel_shuffle(dn.zeros(*shape), groups)
    assert str(ours.value) == str(theirs.value)


# -- CRNN ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ppocr, width, frames", [(False, 100, 26), (True, 100, 25),
                                                   (False, 32, 9), (True, 32, 8)])
def test_crnn_shapes(ppocr, width, frames):
    """Classic CRNN: 26 frames for a 32x100 image (the paper's configuration); PP-OCR schedule:
    W/4, the height brought to 1 by the final 2x2 max pool."""
    model = crnn.CRNN(5, channels=(4, 4, 8, 8, 8, 8, 8), hidden_size=6, ppocr=ppocr)
    assert model.sequence_length(width) == frames
    y = model(dn.randn(2, 1, 32, width))
    assert y.shape == (frames, 2, 5)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match=r"expects \(N, C, 32, W\) images, got shape"):
        model(dn.randn(2, 1, 16, width))


def test_crnn_paper_size_keeps_width_resolution():
    """The full-size models: the PP-OCR schedule keeps W/2 columns through the middle stages
    where CRNN has W/4 (+1), and 8 rows through conv4-5 where CRNN has 4."""
    def map_sizes(model):
        sizes = []
        x = dn.zeros(1, 1, 32, 64)
        with dn.no_grad():
            for layer in model.cnn:
                x = layer(x)
                if isinstance(layer, nn.ReLU):
                    sizes.append(tuple(x.shape[2:]))
        return sizes

    assert map_sizes(crnn.crnn()) == [(32, 64), (16, 32), (8, 16), (8, 16), (4, 17), (4, 17),
                                      (1, 17)]
    assert map_sizes(crnn.crnn_ppocr()) == [(32, 64), (16, 32), (8, 32), (8, 32), (8, 32),
                                            (8, 32), (2, 32)]


def _text_task(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """32x32 images holding two symbols side by side; symbol c in {1, 2, 3} is a bright block in
    the c-th third of the height."""
    labels = rng.integers(1, 4, size=(n, 2))
    images = np.zeros((n, 1, 32, 32), np.float32)
    for i, pair in enumerate(labels):
        for j, c in enumerate(pair):
            images[i, 0, (c - 1) * 10:(c - 1) * 10 + 10, j * 16 + 3:j * 16 + 13] = 1.0
    return images + 0.1 * rng.standard_normal(images.shape).astype(np.float32), labels


@pytest.mark.parametrize("ppocr", [False, True])
def test_crnn_ctc_training_reduces_the_loss(ppocr):
    dn.manual_seed(0)
    model = crnn.CRNN(4, channels=(8, 8, 16, 16, 16, 16, 16), hidden_size=16, num_lstm_layers=1,
                      ppocr=ppocr)
    images, labels = _text_task(8, np.random.default_rng(0))
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(12):
        logits = model(dn.tensor(images))                              # (T, N, 4)
        frames = np.full(8, logits.shape[0])
        loss = F.ctc_loss(logits.log_softmax(2), dn.tensor(labels), dn.tensor(frames),
                          dn.tensor(np.full(8, 2)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_ctc_greedy_decode_collapses_repeats_and_blanks():
    path = [0, 2, 2, 0, 2, 1, 1, 0]                            # -> 2, 2, 1
    logits = np.full((len(path), 1, 3), -5.0)
    logits[np.arange(len(path)), 0, path] = 5.0
    assert crnn.ctc_greedy_decode(logits) == [[2, 2, 1]]


# -- registry and training -------------------------------------------------------------------------
def test_registry_aliases():
    names = models.list()
    assert names == models.list_models() == sorted(names)
    for name in ("densenet121", "densenet169", "densenet201", "mobilenet_v1", "mobilenet_v2",
                 "mobilenet_v2_cifar", "shufflenet_v1", "shufflenet_v2_x1_0", "crnn"):
        assert name in names
    model = models.get("mobilenet_v2_cifar", num_classes=3)
    assert model.classifier[1].out_features == 3
    with pytest.raises(ValueError, match="Unknown model 'densenet_999'"):
        models.get("densenet_999")


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3)])
def test_upscaled_digits_match_torch_interpolate(size, channels):
    digits, _ = datasets.digits()
    upscaled = ResizedImages(digits, size, channels)
    assert len(upscaled) == len(digits)
    image, label = upscaled[5]
    original, original_label = digits[5]
    expected = torch.nn.functional.interpolate(torch.tensor(original.data)[None], size=size,
                                               mode="bilinear", align_corners=False)[0]
    assert image.shape == (channels, size, size) and int(label) == int(original_label)
    for c in range(channels):
        np.testing.assert_allclose(image.data[c], expected[0].numpy(), atol=1e-6)


@pytest.fixture
def few_digits(monkeypatch):
    """The first 24 training and 16 test digits only: one epoch of a CIFAR model stays tiny (the
    test pass evaluates a whole batch of 256 otherwise)."""
    digits = datasets.digits

    def few(*args, **kwargs):
        train, test = digits(*args, **kwargs)
        return Subset(train, range(24)), Subset(test, range(16))

    monkeypatch.setattr(datasets, "digits", few)


def test_train_cli_upscales_digits_for_a_cifar_model(tmp_path, capsys, few_digits):
    code = main(["train", "--model", "mobilenet_v2_cifar", "--epochs", "1", "--batch-size", "4",
                 "--limit-batches", "1", "--out", str(tmp_path), "--name", "mb", "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "mb" / "metrics.json").read_text())
    assert metrics["input_shape"] == [3, 32, 32]  # automatic: 8x8 does not fit, 32x32 does
    assert metrics["config"]["image_size"] is None
    # the strides do not change the layers: torchvision's mobilenet_v2 with 10 classes
    reference = torchvision_models().mobilenet_v2(num_classes=10)
    expected = sum(p.numel() for p in reference.parameters())
    assert metrics["model_params"] == expected


def test_train_cli_image_size_option(tmp_path, capsys):
    code = main(["train", "--model", "lenet5", "--image-size", "28", "--epochs", "1",
                 "--limit-batches", "1", "--out", str(tmp_path), "--name", "le", "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "le" / "metrics.json").read_text())
    assert metrics["input_shape"] == [1, 28, 28]  # lenet5's first conv takes 1 channel
    code = main(["train", "--model", "lenet5", "--image-size", "32", "--out", str(tmp_path),
                 "--name", "bad", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not accept (1, 32, 32) inputs" in err and "--image-size" in err


def test_train_cli_refuses_a_model_without_class_scores(tmp_path, capsys):
    code = main(["train", "--model", "crnn", "--out", str(tmp_path), "--name", "ocr", "--quiet"])
    assert code == 2
    assert "gives outputs of shape (9, 1, 37) for one image, not (1, classes)" in \
        capsys.readouterr().err
