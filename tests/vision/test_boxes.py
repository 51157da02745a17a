"""Box geometry against torchvision's torch code; NMS / batched NMS / Soft-NMS against loop
references, on random boxes with ties and IoU exactly at the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.vision import ops
from deepnotes.vision.ops.reference import nms_reference, soft_nms_reference
from tests.helpers import check_against_torch

from .tv_oracle import boxes_module


def random_boxes(rng: np.random.Generator, n: int, scale: float = 20.0) -> np.ndarray:
    xy = rng.uniform(0, scale, (n, 2))
    wh = rng.uniform(0.5, scale, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou"])
def test_pairwise_matches_torchvision(name, rng):
    tv = boxes_module()
    b1, b2 = random_boxes(rng, 5), random_boxes(rng, 4)
    b2[0] = b1[0]                                       # identical boxes: IoU 1
    b2[1] = b1[1] + np.array([100, 100, 100, 100])      # disjoint: IoU 0, GIoU < 0
    check_against_torch(getattr(ops, name), getattr(tv, name), (b1, b2))


def test_box_area_matches_torchvision(rng):
    check_against_torch(ops.box_area, boxes_module().box_area, (random_boxes(rng, 6),))


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_area_and_iou_formats_match_torchvision(fmt, rng):
    tv = boxes_module()
    b1 = ops.box_convert(dn.tensor(random_boxes(rng, 5)), "xyxy", fmt).numpy()
    b2 = ops.box_convert(dn.tensor(random_boxes(rng, 3)), "xyxy", fmt).numpy()
    b2[0] = b1[2]                                       # identical: IoU 1
    check_against_torch(ops.box_area, tv.box_area, (b1,), fmt=fmt)
    check_against_torch(ops.box_iou, tv.box_iou, (b1, b2), fmt=fmt)
    # the format only changes the parametrisation: the IoU of the same boxes is the same
    xyxy = [ops.box_convert(dn.tensor(b), fmt, "xyxy") for b in (b1, b2)]
    np.testing.assert_allclose(ops.box_iou(dn.tensor(b1), dn.tensor(b2), fmt=fmt).numpy(),
                               ops.box_iou(*xyxy).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou"])
def test_batched_pairwise_matches_torchvision(name, rng):
    b1 = random_boxes(rng, 2 * 4).reshape(2, 4, 4)     # (B, N, 4)
    b2 = random_boxes(rng, 3).reshape(1, 3, 4)          # (1, M, 4): broadcast over B
    out = check_against_torch(getattr(ops, name), getattr(boxes_module(), name), (b1, b2))
    assert out.shape == (2, 4, 3)
    check_against_torch(ops.box_area, boxes_module().box_area, (b1,))


def test_box_format_and_batch_errors():
    with pytest.raises(ValueError, match=r"fmt should be one of .* got 'cxcywhr'"):
        ops.box_iou(dn.zeros(2, 4), dn.zeros(2, 4), fmt="cxcywhr")
    with pytest.raises(ValueError, match="fmt should be one of"):
        ops.box_area(dn.zeros(2, 4), fmt="yxyx")
    with pytest.raises(ValueError, match="should broadcast"):
        ops.box_iou(dn.zeros(2, 3, 4), dn.zeros(3, 3, 4))
    with pytest.raises(ValueError, match=r"boxes1 should have shape \(\.\.\., N, 4\)"):
        ops.generalized_box_iou(dn.zeros(4), dn.zeros(2, 4))


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_matches_torchvision(in_fmt, out_fmt, rng):
    check_against_torch(ops.box_convert, boxes_module().box_convert, (random_boxes(rng, 5),),
                        in_fmt=in_fmt, out_fmt=out_fmt)


def test_box_iou_hand_values():
    a = dn.tensor([[0.0, 0.0, 4.0, 1.0]])
    b = dn.tensor([[0.0, 0.0, 2.0, 1.0], [2.0, 0.0, 6.0, 1.0], [5.0, 0.0, 6.0, 1.0]])
    # inter 2, union 4 -> 0.5; inter 2, union 6 -> 1/3; disjoint -> 0
    np.testing.assert_allclose(ops.box_iou(a, b).numpy(), [[0.5, 1 / 3, 0.0]])
    # GIoU of the disjoint pair: C = (0,0,6,1), |C| = 6, union 5 -> 0 - 1/6
    np.testing.assert_allclose(ops.generalized_box_iou(a, b).numpy()[0, 2], -1 / 6)


def test_nms_iou_exactly_at_threshold_survives():
    boxes = dn.tensor([[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0]])   # IoU exactly 0.5
    scores = dn.tensor([0.9, 0.8])
    assert ops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert ops.nms(boxes, scores, 0.49).tolist() == [0]


def test_nms_equal_scores_keep_input_order():
    boxes = dn.tensor([[0.0, 0, 1, 1], [10.0, 10, 11, 11], [0.0, 0, 1, 1]])
    scores = dn.tensor([0.5, 0.5, 0.5])
    assert ops.nms(boxes, scores, 0.5).tolist() == [0, 1]   # 2 duplicates 0 and comes later


def test_nms_empty_and_errors():
    assert ops.nms(dn.zeros(0, 4), dn.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="scores should have shape"):
        ops.nms(dn.zeros(3, 4), dn.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"boxes should have shape \(N, 4\)"):
        ops.nms(dn.zeros(3, 5), dn.zeros(3), 0.5)
    with pytest.raises(ValueError, match="method"):
        ops.soft_nms(dn.zeros(1, 4), dn.zeros(1), method="hard")


# Integer corners on a small grid and scores from a few values: many ties in score and
# many IoUs that are exactly 0.5, 1/3, 0.25 ... equal to the thresholds drawn.
@st.composite
def box_sets(draw, max_n=12):
    n = draw(st.integers(1, max_n))
    corners = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 4),
                                      st.integers(1, 4)), min_size=n, max_size=n))
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in corners], dtype=np.float64)
    scores = np.array(draw(st.lists(st.sampled_from([0.2, 0.5, 0.5, 0.7, 0.9]),
                                    min_size=n, max_size=n)))
    labels = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    return boxes, scores, labels


@given(box_sets(), st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 0.7, 1.0]))
def test_nms_matches_reference(data, threshold):
    boxes, scores, _ = data
    keep = ops.nms(dn.tensor(boxes), dn.tensor(scores), threshold)
    assert keep.dtype == np.int64
    assert keep.tolist() == nms_reference(boxes, scores, threshold)


@given(box_sets(), st.sampled_from([0.25, 0.5, 0.7]))
def test_batched_nms_matches_per_class_reference(data, threshold):
    boxes, scores, labels = data
    keep = ops.batched_nms(dn.tensor(boxes), dn.tensor(scores), dn.tensor(labels), threshold)
    expected = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        expected += [int(idx[i]) for i in nms_reference(boxes[idx], scores[idx], threshold)]
    expected.sort(key=lambda i: (-scores[i], i))        # decreasing score, ties by index
    assert keep.tolist() == expected


@given(box_sets(), st.sampled_from(["linear", "gaussian"]), st.sampled_from([0.3, 0.5]),
       st.sampled_from([0.001, 0.3]))
def test_soft_nms_matches_paper_algorithm(data, method, threshold, score_threshold):
    boxes, scores, _ = data
    keep, new_scores = ops.soft_nms(dn.tensor(boxes), dn.tensor(scores), threshold, 0.5,
                                    score_threshold, method)
    ref_keep, ref_scores = soft_nms_reference(boxes, scores, threshold, 0.5, score_threshold,
                                              method)
    assert keep.tolist() == ref_keep
    np.testing.assert_allclose(new_scores.numpy(), ref_scores, rtol=1e-12)


def test_soft_nms_linear_hand_values():
    boxes = dn.tensor([[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0], [10.0, 0, 11, 1]])
    keep, s = ops.soft_nms(boxes, dn.tensor([0.9, 0.8, 0.3]), iou_threshold=0.3)
    # box 1 overlaps box 0 with IoU 0.5 >= 0.3: 0.8 * (1 - 0.5) = 0.4, still above box 2
    assert keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(s.numpy(), [0.9, 0.4, 0.3], rtol=1e-6)


def test_clip_and_remove_small():
    b = dn.tensor([[-2.0, 1.0, 70.0, 30.0], [5.0, 5.0, 5.5, 9.0]])
    np.testing.assert_array_equal(ops.clip_boxes_to_image(b, (32, 64)).numpy(),
                                  [[0, 1, 64, 30], [5, 5, 5.5, 9]])
    assert ops.remove_small_boxes(b, 1.0).tolist() == [0]


def test_float32_iou_dtype():
    b = dn.tensor(np.array([[0, 0, 2, 2]], dtype=np.float32))
    assert ops.box_iou(b, b).dtype == np.float32
    assert torch.float32 == boxes_module().box_iou(torch.zeros(1, 4), torch.ones(1, 4)).dtype
