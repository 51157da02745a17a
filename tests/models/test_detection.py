"""faster_rcnn_small: training returns the four losses and a few steps lower them, eval returns
torchvision-style detections, OHEM runs; the shapes data set is deterministic and its boxes are
exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import deepnotes as dn
from deepnotes.data.shapes import collate_detection, shapes
from deepnotes.models.detection import faster_rcnn_small
from deepnotes.models.detection.roi_heads import fastrcnn_loss


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The detector's matrices are small: more BLAS threads only contend for busy cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


LOSSES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}


def _batch(ds, idx):
    return collate_detection([ds[i] for i in idx])


def _total(losses):
    return sum(float(v.item()) for v in losses.values())


@pytest.mark.parametrize("ohem", [False, True])
def test_train_steps_lower_the_loss(ohem):
    dn.manual_seed(0)
    ds = shapes(4, seed=5)
    model = faster_rcnn_small(ohem=ohem)
    images, targets = _batch(ds, range(4))
    opt = dn.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    first = None
    for _ in range(6):
        losses = model(images, targets)
        assert set(losses) == LOSSES
        assert all(np.isfinite(v.item()) and v.shape == () for v in losses.values())
        first = _total(losses) if first is None else first
        opt.zero_grad()
        sum(losses.values(), dn.tensor(0.0)).backward()
        opt.step()
    model.eval()
    model.train()
    with dn.no_grad():
        last = _total(model(images, targets))
    assert last < 0.8 * first


def test_every_parameter_gets_a_gradient():
    dn.manual_seed(1)
    ds = shapes(2, seed=3)
    model = faster_rcnn_small()
    model.train()
    sum(model(*_batch(ds, range(2))).values(), dn.tensor(0.0)).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_zoo_backbone_trains():
    dn.manual_seed(2)
    model = faster_rcnn_small(backbone="resnet18_fpn")
    model.train()
    losses = model(*_batch(shapes(2, seed=4), range(2)))
    assert set(losses) == LOSSES
    sum(losses.values(), dn.tensor(0.0)).backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    with pytest.raises(ValueError, match="backbone should be"):
        faster_rcnn_small(backbone="vgg")


def test_eval_returns_detections_per_image():
    dn.manual_seed(0)
    model = faster_rcnn_small()
    model.eval()
    images = dn.tensor(shapes(3, seed=2).images)          # a batch tensor works as a list does
    with dn.no_grad():
        out = model(images)
    assert len(out) == 3
    for det in out:
        assert set(det) == {"boxes", "labels", "scores"}
        d = len(det["scores"])
        assert det["boxes"].shape == (d, 4) and det["labels"].shape == (d,)
        assert det["labels"].dtype == np.int64 and d <= 100
        if d:
            b = det["boxes"].numpy()
            assert b.min() >= 0 and b.max() <= 64 and np.all(det["labels"].numpy() >= 1)
            assert np.all(np.diff(det["scores"].numpy()) <= 0)   # sorted by score


def test_bad_inputs_raise():
    model = faster_rcnn_small()
    model.train()
    ds = shapes(1)
    image, target = ds[0]
    with pytest.raises(ValueError, match="targets should be passed"):
        model([image])
    with pytest.raises(ValueError, match="non-positive width"):
        model([image], [{"boxes": dn.tensor([[5.0, 5, 5, 9]]), "labels": dn.tensor([1])}])
    with pytest.raises(ValueError, match="one size"):
        model([image, dn.zeros(3, 32, 32)], [target, target])


def test_backbone_levels_and_parameter_count():
    model = faster_rcnn_small()
    levels = model.backbone(dn.zeros(2, 3, 64, 64))
    assert {k: v.shape for k, v in levels.items()} == {
        "0": (2, 32, 16, 16), "1": (2, 32, 8, 8), "2": (2, 32, 4, 4)}     # strides 4, 8, 16
    assert "backbone.fpn.inner_blocks.0.0.weight" in model.state_dict()   # the zoo's FPN keys

    def count(module):
        return sum(p.numel() for p in module.parameters())

    # by hand, widths (16, 32, 64), 32 FPN channels, 6 anchors, 4 classes, 128-wide head:
    # stem 3*16*9 + 2*16; block 16->16: 2*(16*16*9 + 32) + 16*16 + 32; 16->32: 16*32*9 +
    # 32*32*9 + 3*64 + 16*32; 32->64: 32*64*9 + 64*64*9 + 3*128 + 32*64
    body = 464 + 4960 + 14528 + 57728
    fpn = (16 + 32 + 64) * 32 + 3 * 32 + 3 * (32 * 32 * 9 + 32)           # 1x1 laterals, 3x3
    rpn = (32 * 32 * 9 + 32) + (32 * 6 + 6) + (32 * 24 + 24)
    head = (32 * 49 * 128 + 128) + (128 * 128 + 128) + (128 * 4 + 4) + (128 * 16 + 16)
    assert (count(model.backbone), count(model.rpn), count(model.roi_heads)) == (
        body + fpn, rpn, head)
    assert count(model) == 339_266 == body + fpn + rpn + head


def test_fastrcnn_loss_definition(rng):
    logits = rng.standard_normal((4, 3))
    deltas = rng.standard_normal((4, 12))
    labels = np.array([0, 2, 1, 0])
    targets = rng.standard_normal((4, 4))
    cls, box = fastrcnn_loss(dn.tensor(logits), dn.tensor(deltas), labels, targets)
    expected_cls = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    d = deltas.reshape(4, 3, 4)
    fg = [1, 2]
    expected_box = torch.nn.functional.smooth_l1_loss(
        torch.tensor(d[fg, labels[fg]]), torch.tensor(targets[fg]), beta=1 / 9,
        reduction="sum") / 4                                   # / all sampled RoIs
    np.testing.assert_allclose(cls.item(), expected_cls.item(), rtol=1e-12)
    np.testing.assert_allclose(box.item(), expected_box.item(), rtol=1e-12)


def test_shapes_dataset_is_deterministic_and_exact():
    a, b = shapes(6, seed=7), shapes(3, seed=7)
    np.testing.assert_array_equal(a.images[:3], b.images)      # a prefix does not depend on n
    assert not np.array_equal(a.images, shapes(6, seed=8).images)
    assert dn.data.datasets.shapes is shapes
    image, target = a[0]
    assert image.shape == (3, 64, 64) and image.dtype == np.float32
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64
    for boxes, labels in zip(a.boxes, a.labels):
        assert 1 <= len(boxes) <= 3 and set(labels) <= {1, 2, 3}
        assert boxes.min() >= 0 and boxes.max() <= 64
        assert np.all(boxes[:, 2] - boxes[:, 0] >= 12) and np.all(boxes[:, 2] - boxes[:, 0] <= 28)
    # a square fills its box exactly: every pixel inside has the same colour (up to noise)
    sq = [(img, box) for img, bx, lb in zip(a.images, a.boxes, a.labels)
          for box, lab in zip(bx, lb) if lab == 1]
    if sq:
        img, (x1, y1, x2, y2) = sq[0]
        patch = img[:, int(y1) + 1:int(y2) - 1, int(x1) + 1:int(x2) - 1]
        assert patch.reshape(3, -1).std(axis=1).max() < 0.1
    with pytest.raises(ValueError, match="min_size <= max_size"):
        shapes(2, min_size=30, max_size=20)


@pytest.mark.parametrize("nms_thresh", [0.7, None])
def test_ohem_head_removes_near_duplicate_rois_before_choosing(nms_thresh, monkeypatch):
    """With OHEM the head hands each image's RoIs and losses to ohem_sample, which runs NMS at
    0.7 first (the paper's rule); ohem_nms_thresh=None chooses by loss alone."""
    from deepnotes.models.detection import roi_heads

    calls = []
    real = roi_heads.ohem_sample

    def recording(losses, k, **kwargs):
        calls.append((len(losses), kwargs))
        return real(losses, k, **kwargs)

    monkeypatch.setattr(roi_heads, "ohem_sample", recording)
    dn.manual_seed(0)
    model = faster_rcnn_small(ohem=True)
    model.roi_heads.ohem_nms_thresh = nms_thresh
    images, targets = _batch(shapes(2, seed=5), range(2))
    model.train()
    model(images, targets)
    assert len(calls) == 2                                   # one call per image
    for n, kwargs in calls:
        if nms_thresh is None:
            assert kwargs == {}
        else:
            assert kwargs["iou_threshold"] == 0.7 and kwargs["boxes"].shape == (n, 4)
