"""``summary``: receptive fields along the recorded graph (against the notes' example, the
formula and the gradient support), MACs against ``torch.utils.flop_counter`` on torchvision's
models and against published figures, parameter and memory counts, the table and the JSON."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import deepnotes as dn
import deepnotes.nn as nn
import deepnotes.nn.functional as F
from deepnotes.analysis import count_params, output_shapes, receptive_field, summary
from deepnotes.models import get_model


def _torchvision_models():
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models

    return torchvision.models


def _note_alexnet() -> nn.Sequential:
    # notes 000 Q3's worked example: [11,4,0], [3,2,0], [5,1,2], [3,2,0], [3,1,1]
    return nn.Sequential(nn.Conv2d(3, 4, 11, 4), nn.ReLU(), nn.MaxPool2d(3, 2),
                         nn.Conv2d(4, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(3, 2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def test_rows_follow_the_worked_example_of_notes_000():
    s = summary(_note_alexnet(), (3, 227, 227))
    by_type = [(r["type"], r["rf_size"][0], r["rf_jump"][0], r["rf_start"][0]) for r in s.rows]
    expected = receptive_field([(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1)])
    convs_pools = [row for row in by_type if row[0] in ("Conv2d", "MaxPool2d")]
    assert [r[1] for r in convs_pools] == [11, 19, 51, 67, 99]
    assert [(r[1], r[2], r[3]) for r in convs_pools] == [tuple(f) for f in expected]
    # ReLU and BN leave the field as it is (notes 000 Q3 "不会改变感受野的情况")
    assert by_type[1][1:] == by_type[0][1:] and by_type[4][1:] == by_type[3][1:]
    # global average pooling: the formula with the whole 13x13 map as kernel
    assert s.rows[9]["rf_size"] == [99 + 12 * 16] * 2
    # output shapes and the MACs of the hand count: positions x weights (formulas module)
    assert s.rows[0]["output_shape"] == [1, 4, 55, 55]
    assert s.rows[0]["macs"] == 55 * 55 * 4 * 3 * 11 * 11
    assert s.rows[3]["macs"] == 27 * 27 * 6 * 4 * 5 * 5
    assert s.rows[-1]["macs"] == 8 * 5
    assert s.totals["macs"] == sum(r["macs"] for r in s.rows)


class _Branchy(nn.Module):
    """A residual block, then an Inception-like concat of a 5x5 and a 3x3 branch, then a 3x3
    stride-2 conv: every merge of notes 000 Q3 (shortcut, concat)."""

    def __init__(self):
        super().__init__()
        self.a1 = nn.Conv2d(2, 3, 3, padding=1)
        self.a2 = nn.Conv2d(3, 3, 3, padding=1)
        self.short = nn.Conv2d(2, 3, 1)
        self.b5 = nn.Conv2d(3, 2, 5, padding=2)
        self.b3 = nn.Conv2d(3, 2, 3, padding=1)
        self.pool = nn.AvgPool2d(2)   # (max pooling would send the gradient to one pixel)
        self.head = nn.Conv2d(4, 2, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.a2(self.a1(x)) + self.short(x)                      # field 5 (widest branch)
        y = dn.cat([self.b5(y), self.b3(y)], 1)                       # field 5 + 4 = 9
        return self.head(self.pool(y))                                # 10, then 10 + 2*2 = 14


def _gradient_support(model, size):
    """The field of the centre output from the definition: the extent of the input pixels that
    its gradient reaches, with positive weights (no cancellation) and no nonlinearity."""
    model = model.double()
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    x = dn.zeros(1, model.a1.in_channels, size, size, dtype=np.float64, requires_grad=True)
    out = model(x)
    i = out.shape[-1] // 2
    out[0, :, i, i].sum().backward()
    rows = np.flatnonzero(np.abs(x.grad.data[0]).sum(axis=(0, 2)))
    return i, rows[0], rows[-1]


def test_fields_along_a_branching_graph_equal_the_gradient_support():
    model = _Branchy()
    s = summary(model, (2, 40, 40))
    rows = {r["name"]: r for r in s.rows}
    assert rows["a2"]["rf_size"] == [5, 5] and rows["short"]["rf_size"] == [1, 1]
    assert rows["b5"]["rf_size"] == [9, 9] and rows["b3"]["rf_size"] == [7, 7]
    assert rows["pool"]["rf_size"] == [10, 10] and rows["pool"]["rf_jump"] == [2, 2]
    head = rows["head"]
    assert head["rf_size"] == [14, 14] and head["rf_jump"] == [4, 4]
    i, lo, hi = _gradient_support(model, 40)
    assert hi - lo + 1 == head["rf_size"][0]
    assert (lo + hi + 1) / 2 == head["rf_start"][0] + i * head["rf_jump"][0]


class _Functional(nn.Module):
    """The functional ops of the zoo's blocks between layers: an SE gate (global mean, broadcast
    product), a ShuffleNet channel shuffle (views and a transpose), an SK-like stack + sum of two
    branches, zero padding and strided slicing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.branch3 = nn.Conv2d(4, 4, 3, padding=1)
        self.branch5 = nn.Conv2d(4, 4, 5, padding=2)
        self.out = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        y = self.conv(x)                                           # 3, jump 1, start 0.5
        y = y * dn.sigmoid(y.mean((2, 3), keepdim=True))          # gate sees all 16 pixels
        n, c, h, w = y.shape
        y = y.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = dn.stack([self.branch3(y), self.branch5(y)], 1).sum(1)  # widest branch: 16 + 4
        y = F.pad(y, (1, 1, 1, 1))[:, :, ::2, ::2]                # start -0.5, jump 2
        return self.out(y)                                         # 20 + 2*2, start -0.5 + 2


def test_fields_through_functional_ops():
    s = summary(_Functional(), (2, 16, 16))
    rows = {r["name"]: r for r in s.rows}
    assert rows["conv"]["rf_size"] == [3, 3]
    assert rows["branch3"]["rf_size"] == [18, 18] and rows["branch3"]["rf_jump"] == [1, 1]
    assert rows["branch5"]["rf_size"] == [20, 20]
    assert rows["out"]["rf_size"] == [24, 24]
    assert rows["out"]["rf_jump"] == [2, 2] and rows["out"]["rf_start"] == [1.5, 1.5]
    assert rows["out"]["output_shape"] == [1, 2, 7, 7]


def test_transposed_and_grouped_convolutions_against_torch():
    # an encoder-decoder: MACs of grouped, depthwise and transposed convolutions as PyTorch's
    # flop counter counts them (transposed: every weight once per *input* position), and the
    # field of the transposed layer: jump back to 1, the widest of its outputs' spans (5).
    ours = nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1, groups=2), nn.Conv2d(8, 8, 3, padding=1,
                                                                        groups=8),
                         nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.Conv2d(4, 6, 1))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, 2, 1, groups=2),
                                 torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                 torch.nn.ConvTranspose2d(8, 4, 4, 2, 1), torch.nn.Conv2d(4, 6, 1))
    s = summary(ours, (4, 12, 10), batch_size=3)
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(3, 4, 12, 10))
    assert 2 * s.totals["macs"] == counter.get_total_flops()
    assert s.rows[2]["macs"] == 3 * 6 * 5 * (8 * 4 * 4 * 4)
    assert [r["rf_size"] for r in s.rows] == [[3, 3], [7, 7], [9, 9], [9, 9]]
    assert [r["rf_jump"] for r in s.rows] == [[2, 2], [2, 2], [1, 1], [1, 1]]


class _Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 5, num_layers=2, bidirectional=True)
        self.attn = nn.MultiheadAttention(10, 2)

    def forward(self, x):                       # x (N, 6, T) -> (T, N, 6)
        seq = x.permute(2, 0, 1)
        out, _ = self.lstm(seq)
        return self.attn(out, out, out)[0]


def test_macs_of_recurrent_and_attention_layers_by_hand():
    s = summary(_Sequence(), (6, 7), batch_size=3)
    rows = {r["name"]: r for r in s.rows}
    t, n, h = 7, 3, 5
    # each gate matrix is used once per step and sample: 4 gates x H x (input + H), per
    # direction; layer 2 reads the 2H outputs of layer 1
    assert rows["lstm"]["macs"] == t * n * 2 * (4 * h * (6 + h) + 4 * h * (2 * h + h))
    e = 10
    # q, k, v, out projections (E x E each per token) + Q K^T and A V (T x T x E per sample)
    assert rows["attn"]["macs"] == n * (4 * t * e * e + 2 * t * t * e)
    # the recurrence and the attention see the whole sequence
    assert rows["lstm"]["rf_size"] == [7] and rows["attn"]["rf_size"] == [7]


def test_macs_equal_torch_flop_counter_on_torchvision_models():
    # torch.utils.flop_counter counts 2 FLOPs per multiply-accumulate of convolutions and
    # matmuls, so on the same architecture our MACs must be exactly half of its total.
    tvm = _torchvision_models()
    for name, size in [("densenet121", 48), ("googlenet", 64), ("inception_v3", 75),
                       ("shufflenet_v2_x1_0", 64)]:
        kwargs = {"aux_logits": False, "init_weights": False} if name in (
            "googlenet", "inception_v3") else {}
        reference = getattr(tvm, name)(**kwargs).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            reference(torch.zeros(2, 3, size, size))
        ours = summary(get_model(name, **({"aux_logits": False} if kwargs else {})),
                       (3, size, size), batch_size=2)
        assert 2 * ours.totals["macs"] == counter.get_total_flops(), name
        assert ours.totals["params"] == sum(p.numel() for p in reference.parameters()), name


def test_published_figures_of_resnet18_and_mobilenet_v2():
    # torchvision 0.28's weight metadata (ResNet18_Weights.IMAGENET1K_V1.meta: "_ops" 1.814
    # GFLOPs, which torchvision counts as multiply-adds, and num_params 11,689,512;
    # MobileNet_V2_Weights.IMAGENET1K_V1: 0.301 and 3,504,872), at 224x224.
    tvm = _torchvision_models()
    for name, weights in [("resnet18", tvm.ResNet18_Weights.IMAGENET1K_V1),
                          ("mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V1)]:
        s = summary(get_model(name), (3, 224, 224))
        assert round(s.totals["macs"] / 1e9, 3) == weights.meta["_ops"], name
        assert s.totals["params"] == weights.meta["num_params"], name
        if name == "resnet18":
            assert s.totals["macs"] == 1_814_073_344
            # the receptive field of ResNet-18's last stage: 435 pixels, jump 32
            last = [r for r in s.rows if r["name"] == "layer4.1.conv2"][0]
            assert last["rf_size"] == [435, 435] and last["rf_jump"] == [32, 32]


def test_known_receptive_fields_of_vgg16_and_alexnet():
    # Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
    # Distill 2019, table of architectures: VGG-16 212 (pool5), AlexNet 195 (pool5).
    # vgg16_cifar has VGG-16's convolutional stack (the field does not depend on the input size).
    s = summary(get_model("vgg16_cifar"), (3, 32, 32))
    pools = [r["rf_size"][0] for r in s.rows if r["type"] == "MaxPool2d"]
    assert pools[-1] == 212
    convs = [r["rf_size"][0] for r in s.rows if r["type"] == "Conv2d"]
    assert convs[-1] == 196
    alex = summary(get_model("alexnet", num_classes=10), (3, 224, 224))
    fields = [r["rf_size"][0] for r in alex.rows if r["type"] in ("Conv2d", "MaxPool2d")]
    assert fields == [11, 19, 51, 67, 99, 131, 163, 195]      # the note's five, then on
    # the classifier sees the whole image (notes 000 Q3: "经过FC层...感受野就是整个输入图像")
    assert alex.rows[-1]["rf_size"] == [224, 224] and alex.rows[-1]["rf_jump"] == [224, 224]


def test_params_trainable_shared_and_memory():
    shared = nn.Linear(6, 6)
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2),
                          nn.Flatten(), nn.Linear(72, 6), shared, nn.ReLU(), shared).double()
    model[1].weight.requires_grad = False
    model.train()
    before = dn.random.get_rng_state()
    s = summary(model, (1, 8, 8), batch_size=3, dtype=np.float64)
    assert dn.random.get_rng_state()["state"] == before["state"]
    # the model is as it was: train mode, requires_grad flags
    assert model.training and model[2].training
    assert not model[1].weight.requires_grad and model[1].bias.requires_grad
    assert s.rows[0]["rf_size"] == [1, 1]                    # in place on the input: allowed
    s.rows.pop(0)
    names = [r["name"] for r in s.rows]
    assert names == ["1", "2", "3", "4", "5", "6", "5"]      # a module called twice: two rows
    assert s.rows[4]["params"] == 42 and s.rows[6]["params"] == 0
    assert s.rows[6]["macs"] == 3 * 36
    assert s.rows[0]["trainable_params"] == 2 and s.rows[0]["non_trainable_params"] == 18
    t = s.totals
    assert t["params"] == sum(p.data.size for p in model.parameters()) == 20 + 4 + 438 + 42
    assert count_params(model) == t["params"] and count_params(model, True) == t["params"] - 18
    assert output_shapes(model, (1, 8, 8), batch_size=3)["3"] == [3, 72]
    assert t["non_trainable_params"] == 18 and t["trainable_params"] == t["params"] - 18
    assert t["params_bytes"] == 8 * t["params"]                  # float64 parameters
    assert t["buffers_bytes"] == 8 * (2 + 2) + 8                 # running mean/var, count
    assert s.rows[0]["activation_bytes"] == 3 * 2 * 6 * 6 * 8    # float64 output, batch 3
    assert t["activation_bytes"] == sum(r["activation_bytes"] for r in s.rows) + 3 * 64 * 8
    assert t["input_bytes"] == 3 * 64 * 8
    # FLOPs: 2 x MACs for conv/linear, 2 per element for BN, 1 per element for ReLU
    assert s.rows[0]["flops"] == 2 * s.rows[0]["macs"]
    assert s.rows[1]["flops"] == 2 * 3 * 72 and s.rows[5]["flops"] == 3 * 6


def test_table_and_json():
    s = summary(_note_alexnet(), (3, 67, 67))
    data = json.loads(s.to_json())
    assert data["rows"] == s.rows and data["totals"] == s.totals
    assert data["input_size"] == [3, 67, 67] and "macs" in data["conventions"]
    text = str(s)
    lines = text.splitlines()
    header = [line for line in lines if line.startswith("Layer")][0]
    assert header.split() == ["Layer", "Type", "Output", "shape", "Params", "MACs", "FLOPs",
                              "RF", "Jump", "Start", "Act.", "bytes"]
    body = lines[lines.index(header) + 2: lines.index(header) + 2 + len(s.rows)]
    # aligned: every row's Params column ends where the header's does
    end = header.index("Params") + len("Params")
    assert all(line[end - 1].isdigit() and line[end] == " " for line in body)
    assert f"Total params:          {s.totals['params']:,}" in text
    assert f"{s.totals['macs']:,}" in text


def test_bad_arguments():
    model = _note_alexnet()
    with pytest.raises(TypeError, match="input_size must be a tuple"):
        summary(model, 227)
    with pytest.raises(ValueError, match=r"input_size must be positive ints.*\(3, 0, 5\)"):
        summary(model, (3, 0, 5))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        summary(model, (3, 227, 227), batch_size=0)
    with pytest.raises(TypeError, match="model must be a deepnotes.nn.Module"):
        summary(torch.nn.Linear(2, 2), (2,))
    # a model that cannot run at that size raises the layer's own error, and is left intact
    with pytest.raises(RuntimeError):
        summary(model, (3, 8, 8))
    assert model.training and all(h == {} for h in (m._forward_hooks for m in model.modules()))
