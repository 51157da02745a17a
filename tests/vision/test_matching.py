"""BoxCoder, Matcher and AnchorGenerator against torchvision's (pure torch) classes; the balanced
sampler and OHEM against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.vision import ops

from .tv_oracle import anchor_utils, det_utils, image_list


def _boxes(rng, n):
    xy = rng.uniform(0, 30, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 20, (n, 2))], 1)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder_matches_torchvision(weights, rng):
    ours, theirs = ops.BoxCoder(weights), det_utils().BoxCoder(weights)
    gt, anchors = _boxes(rng, 7), _boxes(rng, 7)
    enc = ours.encode_single(dn.tensor(gt), dn.tensor(anchors)).numpy()
    np.testing.assert_allclose(enc, theirs.encode_single(torch.tensor(gt), torch.tensor(anchors))
                               .numpy(), rtol=1e-12)
    codes = rng.standard_normal((7, 12)) * 2
    codes[0, 2] = 50.0                                    # dw far above bbox_xform_clip
    dec = ours.decode(dn.tensor(codes), [dn.tensor(anchors[:3]), dn.tensor(anchors[3:])])
    expected = theirs.decode(torch.tensor(codes), [torch.tensor(anchors[:3]),
                                                   torch.tensor(anchors[3:])])
    assert dec.shape == (7, 3, 4)
    np.testing.assert_allclose(dec.numpy(), expected.numpy(), rtol=1e-12)
    # the clamp: a width of exp(log(1000/16)) * w_anchor at most
    width = dec.numpy()[0, 0, 2] - dec.numpy()[0, 0, 0]
    np.testing.assert_allclose(width, (1000 / 16) * (anchors[0, 2] - anchors[0, 0]), rtol=1e-12)
    # decode inverts encode
    back = ours.decode_single(dn.tensor(enc), dn.tensor(anchors)).numpy()
    np.testing.assert_allclose(back, gt, rtol=1e-10)


def test_box_coder_hand_values():
    coder = ops.BoxCoder((10.0, 10.0, 5.0, 5.0))
    # anchor centre (5, 5), size 10; gt centre (7, 5), size 20 x 10
    t = coder.encode_single(dn.tensor([[-3.0, 0.0, 17.0, 10.0]]), dn.tensor([[0.0, 0, 10, 10]]))
    np.testing.assert_allclose(t.numpy(), [[10 * 2 / 10, 0.0, 5 * math.log(2), 0.0]])


def test_box_coder_gradient_flows(rng):
    codes = dn.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    ops.BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(codes, dn.tensor(_boxes(rng, 3))).sum() \
        .backward()
    assert codes.grad is not None and np.all(np.isfinite(codes.grad.numpy()))


@given(seed=st.integers(0, 2**31), m=st.integers(1, 4), n=st.integers(1, 9),
       low=st.sampled_from([0.3, 0.4, 0.5]), high=st.sampled_from([0.5, 0.7]),
       allow=st.booleans())
def test_matcher_matches_torchvision(seed, m, n, low, high, allow):
    rng = np.random.default_rng(seed)
    # quantised qualities: ties and values exactly at the thresholds are common
    q = rng.choice([0.0, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9], size=(m, n))
    ours = ops.Matcher(high, low, allow)(dn.tensor(q))
    theirs = det_utils().Matcher(high, low, allow)(torch.tensor(q))
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_matcher_constants_and_errors():
    assert (ops.Matcher.BELOW_LOW_THRESHOLD, ops.Matcher.BETWEEN_THRESHOLDS) == (-1, -2)
    with pytest.raises(ValueError, match="No ground-truth boxes"):
        ops.Matcher(0.7, 0.3)(dn.zeros(0, 5))
    with pytest.raises(ValueError, match="No proposal boxes"):
        ops.Matcher(0.7, 0.3)(dn.zeros(2, 0))
    with pytest.raises(ValueError, match="low_threshold should be <= high_threshold"):
        ops.Matcher(0.3, 0.7)


@pytest.mark.parametrize("sizes,ratios", [
    (((12, 16), (20, 26)), ((0.5, 1.0, 2.0),) * 2),
    ((32, 64), (1.0, 2.0)),                                  # one size per level, shared ratios
])
def test_anchor_generator_matches_torchvision(sizes, ratios):
    feats = [dn.zeros(2, 4, 8, 8), dn.zeros(2, 4, 4, 4)]
    images = dn.zeros(2, 3, 32, 32)
    ours = ops.AnchorGenerator(sizes, ratios)
    theirs = anchor_utils().AnchorGenerator(sizes, ratios)
    expected = theirs(image_list()(torch.zeros(2, 3, 32, 32), [(32, 32)] * 2),
                      [torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 4, 4)])
    got = ours(images, feats)
    assert len(got) == 2 and ours.num_anchors_per_location() == theirs.num_anchors_per_location()
    np.testing.assert_array_equal(got[1].numpy(), expected[1].numpy())


def test_balanced_sampler_counts_and_sets(rng):
    labels = np.array([1, 0, 0, -1, 2, 0, 0, 0, 3, -1, 0, 1])
    dn.manual_seed(3)
    pos, neg = ops.BalancedPositiveNegativeSampler(6, 0.5)([dn.tensor(labels)])
    p, n = pos[0].numpy(), neg[0].numpy()
    assert p.dtype == np.uint8 and n.dtype == np.uint8
    assert p.sum() == 3 and n.sum() == 3                    # min(4 positives, 3), then 6 - 3
    assert np.all(labels[p == 1] >= 1) and np.all(labels[n == 1] == 0)
    pos_few, neg_few = ops.BalancedPositiveNegativeSampler(20, 0.25)([dn.tensor(labels)])
    assert pos_few[0].numpy().sum() == 4 and neg_few[0].numpy().sum() == 6   # all there is
    dn.manual_seed(3)
    again, _ = ops.BalancedPositiveNegativeSampler(6, 0.5)([dn.tensor(labels)])
    np.testing.assert_array_equal(again[0].numpy(), p)      # seeded by manual_seed


def test_ohem_sample_picks_hardest():
    losses = dn.tensor([0.1, 2.0, 0.5, 2.0, 0.05])
    assert ops.ohem_sample(losses, 3).tolist() == [1, 3, 2]  # ties: lower index first
    assert ops.ohem_sample(losses, 10).tolist() == [1, 3, 2, 0, 4]
    assert ops.ohem_sample(np.zeros(0), 2).tolist() == []
    with pytest.raises(ValueError, match="k should be an int >= 0"):
        ops.ohem_sample(losses, -1)


def test_ohem_sample_removes_near_duplicates_first():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [1, 0, 11, 10]], float)
    losses = np.array([3.0, 2.9, 1.0, 2.0])        # 1 and 3 overlap 0 by IoU 0.9 and 0.82
    assert ops.ohem_sample(losses, 2).tolist() == [0, 1]                   # duplicates win
    assert ops.ohem_sample(losses, 2, boxes=boxes).tolist() == [0, 2]      # one per region
    assert ops.ohem_sample(losses, 9, boxes=boxes, iou_threshold=0.85).tolist() == [0, 3, 2]
    with pytest.raises(ValueError, match=r"boxes should be \(4, 4\)"):
        ops.ohem_sample(losses, 2, boxes=boxes[:3])


@given(n=st.integers(0, 30), k=st.integers(0, 40), threshold=st.sampled_from([0.3, 0.5, 0.7]),
       seed=st.integers(0, 99))
def test_ohem_sample_with_boxes_is_greedy_nms_then_top_k(n, k, threshold, seed):
    """Against the loop reference of greedy NMS (torchvision's compiled nms is not available
    beside this torch build; ops.nms itself is checked against the reference in test_boxes)."""
    from deepnotes.vision.ops.reference import nms_reference

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 40, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 20, (n, 2))], axis=1)
    losses = rng.permutation(n).astype(float) + rng.uniform(0, 0.5, n)    # distinct
    expected = list(nms_reference(boxes, losses, threshold))[:k]
    assert ops.ohem_sample(losses, k, boxes=boxes, iou_threshold=threshold).tolist() == \
        [int(i) for i in expected]
