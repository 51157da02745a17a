"""RoI Align and RoI Pooling: the hand-worked 4x4 values of the docstring, the loop references
(torchvision's kernel definitions), torchvision's pure-torch roi_align (forward and gradient),
and numerical gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.vision import ops
from deepnotes.vision.ops.poolers import MultiScaleRoIAlign, take_rows
from deepnotes.vision.ops.reference import roi_align_reference, roi_pool_reference
from tests.helpers import check_against_torch, check_gradients

from .tv_oracle import roi_align_python

MAP = np.arange(16.0).reshape(1, 1, 4, 4)   # x[h, w] = 4h + w


def test_roi_align_worked_example():
    x = dn.tensor(MAP, requires_grad=True)
    box = dn.tensor([[0.0, 0.5, 0.5, 2.5, 2.5]])
    out = ops.roi_align(x, box, 2, 1.0, sampling_ratio=1, aligned=False)
    np.testing.assert_allclose(out.detach().numpy()[0, 0], [[5, 6], [9, 10]])
    out = ops.roi_align(x, box, 2, 1.0, sampling_ratio=1, aligned=True)
    np.testing.assert_allclose(out.detach().numpy()[0, 0], [[2.5, 3.5], [6.5, 7.5]])
    out[0, 0, 0, 0].backward()
    expected = np.zeros((4, 4))
    expected[:2, :2] = 0.25
    np.testing.assert_allclose(x.grad.numpy()[0, 0], expected)


def test_roi_pool_worked_example():
    x = dn.tensor(MAP, requires_grad=True)
    out = ops.roi_pool(x, dn.tensor([[0.0, 0.4, 0.6, 2.6, 2.4]]), 2, 1.0)
    np.testing.assert_allclose(out.detach().numpy()[0, 0], [[5, 7], [9, 11]])
    out.sum().backward()
    expected = np.zeros(16)
    expected[[5, 7, 9, 11]] = 1
    np.testing.assert_allclose(x.grad.numpy().ravel(), expected)


def _rois(rng, k, n_images, extent, low=-2.0):
    xy = rng.uniform(low, extent, (k, 2))
    wh = rng.uniform(0.0, extent / 1.5, (k, 2))          # includes nearly empty boxes
    return np.concatenate([rng.integers(0, n_images, (k, 1)).astype(float), xy, xy + wh], 1)


@given(seed=st.integers(0, 2**31), sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]),
       aligned=st.booleans(), out=st.sampled_from([(1, 1), (2, 2), (3, 2), (2, 4)]),
       scale=st.sampled_from([1.0, 0.5, 0.25]))
def test_roi_align_matches_reference_loops(seed, sampling_ratio, aligned, out, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 5, 6))
    rois = _rois(rng, 4, 2, 7 / scale)                   # some reach beyond the map
    ours = ops.roi_align(dn.tensor(x), dn.tensor(rois), out, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(ours.numpy(),
                               roi_align_reference(x, rois, out, scale, sampling_ratio, aligned),
                               atol=1e-12)


@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_matches_torchvision_python(sampling_ratio, aligned, rng):
    tv_roi_align = roi_align_python()
    x = rng.standard_normal((2, 3, 7, 8))
    xy = rng.uniform(0, 3, (5, 2))
    rois = np.concatenate([rng.integers(0, 2, (5, 1)).astype(float), xy,
                           xy + rng.uniform(0.2, 3.5, (5, 2))], 1)   # inside the map

    def theirs(inp):   # the boxes are constants: neither op differentiates them
        return tv_roi_align(inp, torch.tensor(rois, dtype=inp.dtype), 0.9, 3, 2,
                            sampling_ratio, aligned)

    def ours(inp):
        return ops.roi_align(inp, dn.tensor(rois, dtype=inp.dtype), (3, 2), 0.9,
                             sampling_ratio, aligned)

    check_against_torch(ours, theirs, (x,), names=["input"])


def test_roi_align_gradient_numerically(rng):
    rois = dn.tensor([[0.0, 0.3, 0.7, 4.1, 3.2], [1.0, -0.8, 1.1, 2.5, 5.6],
                      [0.0, 2.0, 2.0, 2.2, 2.1]])

    def fn(x):
        return ops.roi_align(x, rois, (2, 3), 1.0, -1, True)

    check_gradients(fn, rng.standard_normal((2, 2, 5, 5)))


def test_roi_pool_matches_reference_and_gradient(rng):
    for seed in range(6):
        r = np.random.default_rng(seed)
        x = r.standard_normal((2, 3, 6, 7))
        for scale in (1.0, 0.5):
            rois = _rois(r, 5, 2, 8 / scale)
            ours = ops.roi_pool(dn.tensor(x), dn.tensor(rois), (3, 2), scale)
            np.testing.assert_allclose(ours.numpy(), roi_pool_reference(x, rois, (3, 2), scale))
    rois = dn.tensor([[0.0, 0.4, 0.2, 3.7, 4.4], [1.0, 1.5, 0.5, 4.5, 2.5]])
    check_gradients(lambda x: ops.roi_pool(x, rois, 2, 1.0), rng.standard_normal((2, 2, 5, 5)))


def test_roi_pool_rounds_half_away_from_zero():
    # 0.5 rounds to 1 (C round), not to 0 (banker's rounding): the RoI starts at column 1
    x = dn.tensor(MAP)
    out = ops.roi_pool(x, dn.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]), 1, 1.0)
    assert out.item() == 1.0


def test_box_list_equals_roi_tensor(rng):
    x = dn.tensor(rng.standard_normal((2, 2, 6, 6)))
    b0, b1 = dn.tensor([[0.5, 1.0, 4.0, 5.0]]), dn.tensor([[1.0, 1.0, 3.0, 2.5], [0, 0, 6, 6.0]])
    rois = dn.tensor([[0, 0.5, 1.0, 4.0, 5.0], [1, 1.0, 1.0, 3.0, 2.5], [1, 0, 0, 6, 6.0]])
    for fn in (lambda b: ops.roi_align(x, b, 2, 1.0, 2), lambda b: ops.roi_pool(x, b, 2, 1.0),
               lambda b: ops.RoIAlign(2, 1.0, 2)(x, b), lambda b: ops.RoIPool(2, 1.0)(x, b)):
        np.testing.assert_array_equal(fn([b0, b1]).numpy(), fn(rois).numpy())


def test_float32_stays_float32(rng):
    x = dn.tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    rois = dn.tensor(np.array([[0, 0.5, 0.5, 3, 3]], dtype=np.float32))
    assert ops.roi_align(x, rois, 2, 1.0, 2).dtype == np.float32
    assert ops.roi_pool(x, rois, 2, 1.0).dtype == np.float32


def test_bad_boxes_raise():
    x = dn.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"Tensor\[K, 5\]"):
        ops.roi_align(x, dn.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r"batch indices .* \[0, 1\]"):
        ops.roi_align(x, dn.tensor([[2.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] should be Tensor\[L, 4\]"):
        ops.roi_pool(x, [dn.zeros(1, 5)], 2)
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_align(x, dn.zeros(1, 5), 0)
    with pytest.raises(TypeError, match="boxes should be"):
        ops.roi_align(x, np.zeros((1, 5)), 2)


def test_multiscale_roi_align_levels_and_gradient(rng):
    p2 = dn.tensor(rng.standard_normal((1, 2, 16, 16)), requires_grad=True)   # stride 4
    p3 = dn.tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)     # stride 8
    pool = MultiScaleRoIAlign(["0", "1"], 3, 2, canonical_scale=32, canonical_level=4)
    boxes = dn.tensor([[4.0, 4.0, 16.0, 16.0], [10.0, 10.0, 40.0, 40.0], [0, 0, 14.0, 14.0]])
    # sqrt(area) 12 -> floor(4 + log2(12/32)) = 2 -> P2; 30 -> 3 -> P3; 14 -> 2 -> P2
    np.testing.assert_array_equal(pool.map_levels(boxes.data, [1 / 4, 1 / 8]), [0, 1, 0])
    out = pool({"0": p2, "1": p3}, [boxes], [(64, 64)])
    np.testing.assert_allclose(out.detach().numpy()[[0, 2]],
                               ops.roi_align(p2, [boxes[[0, 2]]], 3, 0.25, 2).detach().numpy())
    np.testing.assert_allclose(out.detach().numpy()[1],
                               ops.roi_align(p3, [boxes[[1]]], 3, 0.125, 2).detach().numpy()[0])
    small = dn.tensor([[2.0, 2.0, 14.0, 14.0], [4.0, 4.0, 30.0, 30.0]])       # P2, P3
    check_gradients(lambda a, b: pool({"0": a, "1": b}, [small], [(32, 32)]),
                    rng.standard_normal((1, 1, 8, 8)), rng.standard_normal((1, 1, 4, 4)))


def test_multiscale_roi_align_no_boxes():
    pool = MultiScaleRoIAlign(["0", "1"], 3, 2)
    out = pool({"0": dn.zeros(1, 2, 16, 16), "1": dn.zeros(1, 2, 8, 8)}, [dn.zeros(0, 4)],
               [(64, 64)])
    assert out.shape == (0, 2, 3, 3)


def test_take_rows_gradient(rng):
    check_gradients(lambda x: take_rows(x, np.array([3, 0, 2])), rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match="repeat"):
        take_rows(dn.zeros(3), np.array([0, 0]))


def test_torch_roi_oracle_is_plain_torch():
    # the oracle runs without torchvision's compiled ops
    out = roi_align_python()(torch.ones(1, 1, 4, 4), torch.tensor([[0, 0, 0, 2.0, 2.0]]),
                             1.0, 1, 1, 2, False)
    assert out.item() == 1.0
