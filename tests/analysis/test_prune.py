"""Magnitude pruning: masks equal ``torch.nn.utils.prune``'s on the same weights, pruned weights
stay zero through optimiser steps (the same trajectory as PyTorch's), exact amounts, the
state_dict layout, and the parameter/MAC counts that drop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
import deepnotes.nn.functional as F
from deepnotes.analysis import PruneReport, prune, pruning, summary


def _pair(rng, shape=(6, 4, 3, 3)):
    """A deepnotes Conv2d and a torch Conv2d with the same float64 weights."""
    ours = nn.Conv2d(shape[1], shape[0], shape[2:]).double()
    theirs = torch.nn.Conv2d(shape[1], shape[0], shape[2:]).double()
    w, b = rng.standard_normal(shape), rng.standard_normal(shape[0])
    ours.weight.data[...], ours.bias.data[...] = w, b
    theirs.weight.data, theirs.bias.data = torch.tensor(w), torch.tensor(b)
    return ours, theirs


@settings(deadline=None)
@given(first=st.floats(0, 1), second=st.one_of(st.floats(0, 1), st.integers(0, 20)),
       seed=st.integers(0, 2**16))
def test_l1_unstructured_masks_equal_torch_also_when_repeated(first, second, seed):
    ours, theirs = _pair(np.random.default_rng(seed))
    pruning.l1_unstructured(ours, "weight", first)
    torch_prune.l1_unstructured(theirs, "weight", first)
    np.testing.assert_array_equal(ours.weight_mask.data, theirs.weight_mask.numpy())
    remaining = int(ours.weight_mask.data.sum())
    if isinstance(second, int) and second > remaining:
        with pytest.raises(ValueError, match="should be smaller than the number of parameters"):
            pruning.l1_unstructured(ours, "weight", second)
        return
    pruning.l1_unstructured(ours, "weight", second)     # amount of the *remaining* entries
    torch_prune.l1_unstructured(theirs, "weight", second)
    np.testing.assert_array_equal(ours.weight_mask.data, theirs.weight_mask.numpy())
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())


@pytest.mark.parametrize("amount", [0.0, 0.25, 0.5, 1.0, 3])
def test_amount_is_exact(amount, rng):
    layer = nn.Linear(10, 8)
    pruning.l1_unstructured(layer, "weight", amount)
    expected = amount if isinstance(amount, int) else round(amount * 80)
    assert int((layer.weight.data == 0).sum()) == expected
    # the zeros are the smallest magnitudes
    kept = np.abs(layer.weight_orig.data[layer.weight_mask.data == 1])
    gone = np.abs(layer.weight_orig.data[layer.weight_mask.data == 0])
    assert gone.size == 0 or kept.size == 0 or gone.max() <= kept.min()


def test_global_unstructured_equals_torch(rng):
    (c1, t1), (c2, t2) = _pair(rng), _pair(rng, (3, 6, 1, 1))
    pruning.l1_unstructured(c1, "weight", 0.2)               # an existing mask is respected
    torch_prune.l1_unstructured(t1, "weight", 0.2)
    pruning.global_unstructured([(c1, "weight"), (c2, "weight"), (c2, "bias")], "l1",
                                amount=0.6)
    torch_prune.global_unstructured([(t1, "weight"), (t2, "weight"), (t2, "bias")],
                                    pruning_method=torch_prune.L1Unstructured, amount=0.6)
    for ours, theirs in [(c1.weight_mask, t1.weight_mask), (c2.weight_mask, t2.weight_mask),
                         (c2.bias_mask, t2.bias_mask)]:
        np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("n, dim", [(2, 0), (1, 1), (float("inf"), 0), (float("-inf"), 2), (3, -1)])
def test_ln_structured_equals_torch_also_when_repeated(n, dim, rng):
    ours, theirs = _pair(rng)
    for amount in (0.34, 1):
        pruning.ln_structured(ours, "weight", amount, n=n, dim=dim)
        torch_prune.ln_structured(theirs, "weight", amount, n=n, dim=dim)
        np.testing.assert_array_equal(ours.weight_mask.data, theirs.weight_mask.numpy())


def test_state_dict_layout_and_remove_as_torch(rng):
    ours, theirs = _pair(rng)
    pruning.l1_unstructured(ours, "weight", 0.5)
    torch_prune.l1_unstructured(theirs, "weight", 0.5)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias", "weight_orig",
                                                                     "weight_mask"]
    assert [n for n, _ in ours.named_parameters()] == ["bias", "weight_orig"]
    assert pruning.is_pruned(ours) and not isinstance(ours.weight, nn.Parameter)
    # PyTorch's pruned checkpoint loads into ours and gives the same output
    other, _ = _pair(rng)
    pruning.l1_unstructured(other, "weight", 0.1)
    other.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 4, 7, 7))
    np.testing.assert_allclose(other(dn.tensor(x)).data,
                               theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)
    pruning.remove(ours, "weight")
    torch_prune.remove(theirs, "weight")
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias", "weight"]
    assert isinstance(ours.weight, nn.Parameter) and not pruning.is_pruned(ours)
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())
    with pytest.raises(ValueError, match="has to be pruned before"):
        pruning.remove(ours, "weight")


def test_pruned_weights_stay_zero_through_training_as_in_torch(rng):
    # SGD with momentum and weight decay: weight_orig's pruned entries move (decay, momentum),
    # but the weight the layer uses is orig * mask, so they stay exactly zero, and the whole
    # trajectory is PyTorch's.
    ours, theirs = _pair(rng)
    pruning.l1_unstructured(ours, "weight", 0.6)
    torch_prune.l1_unstructured(theirs, "weight", 0.6)
    opt = dn.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    # PyTorch's SGD rule written out on the torch side (torch.optim's first import costs
    # seconds; dn.optim.SGD itself is checked against torch.optim.SGD in tests/optim):
    # buf = 0.9 buf + (g + 0.01 w), w -= 0.1 buf
    buffers = {}

    def torch_step():
        with torch.no_grad():
            for name, p in theirs.named_parameters():
                d = p.grad + 0.01 * p
                buffers[name] = d.clone() if name not in buffers else 0.9 * buffers[name] + d
                p -= 0.1 * buffers[name]
    pruned = ours.weight_mask.data == 0
    for _ in range(4):
        x, target = rng.standard_normal((3, 4, 5, 5)), rng.standard_normal((3, 6, 3, 3))
        loss = F.mse_loss(ours(dn.tensor(x)), dn.tensor(target))
        opt.zero_grad()
        loss.backward()
        assert np.all(ours.weight_orig.grad.data[pruned] == 0)     # no gradient through the mask
        opt.step()
        tloss = torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(target))
        theirs.zero_grad()
        tloss.backward()
        torch_step()
        out = ours(dn.tensor(x))                                     # the pre-hook re-masks
        assert np.all(ours.weight.data[pruned] == 0)
    np.testing.assert_allclose(ours.weight_orig.data, theirs.weight_orig.detach().numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(out.data, theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)


def test_random_unstructured_is_seeded_and_exact():
    masks = []
    for _ in range(2):
        dn.manual_seed(3)
        layer = nn.Linear(7, 9)
        pruning.random_unstructured(layer, "weight", 0.3)
        masks.append(layer.weight_mask.data.copy())
    np.testing.assert_array_equal(*masks)
    assert int((masks[0] == 0).sum()) == round(0.3 * 63)


def _net():
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


def test_prune_reports_the_counts_that_drop():
    dn.manual_seed(0)
    model = _net()
    dense = summary(model, (2, 8, 8))
    report = prune(model, 0.7, input_size=(2, 8, 8))
    assert isinstance(report, PruneReport)
    weights = 4 * 2 * 9 + 6 * 4 * 9 + 5 * 96
    assert report.pruned_tensors == ["0.weight", "3.weight", "6.weight"]
    assert report.params == dense.totals["params"]
    assert report.nonzero_before == sum(int(np.count_nonzero(p.data))
                                        for p in model.parameters())   # BN's beta starts at 0
    assert report.nonzero_before - report.nonzero_after == round(0.7 * weights)
    # MACs with non-zero weights: positions x surviving weights, layer by layer
    counted = summary(model, (2, 8, 8), count_nonzero=True)
    positions = {"0": 36, "3": 16, "6": 1}
    by_name = {r["name"]: r for r in counted.rows}
    for name, n_pos in positions.items():
        nnz = int(np.count_nonzero(model.get_submodule(name).weight.data))
        assert by_name[name]["macs"] == n_pos * nnz
        assert by_name[name]["nonzero_params"] == nnz + int(np.count_nonzero(
            model.get_submodule(name).bias.data))
    assert report.macs_before == dense.totals["macs"]
    assert report.macs_after == counted.totals["macs"] < report.macs_before
    assert report.flops_after < report.flops_before
    assert counted.totals["nonzero_params"] == report.nonzero_after
    assert report.sparsity == pytest.approx(1 - report.nonzero_after / report.params)


def test_prune_per_layer_and_structured():
    dn.manual_seed(1)
    model = _net()
    prune(model, 0.5, scope="layer")
    for name, size in [("0", 72), ("3", 216), ("6", 480)]:
        assert int((model.get_submodule(name).weight.data == 0).sum()) == size // 2
    dn.manual_seed(1)
    model = _net()
    prune(model, 0.5, scope="layer", method="ln_structured")
    w = model[0].weight.data
    assert sorted((np.abs(w).reshape(4, -1).sum(1) == 0).tolist()) == [False, False, True, True]


def test_bad_arguments():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"amount=1.5 should either be a float in the range"):
        pruning.l1_unstructured(layer, "weight", 1.5)
    with pytest.raises(ValueError, match="non-negative integer"):
        pruning.l1_unstructured(layer, "weight", -1)
    with pytest.raises(TypeError, match="Invalid type for amount"):
        pruning.l1_unstructured(layer, "weight", "half")
    with pytest.raises(ValueError, match="amount=7 should be smaller than the number of "
                                         "parameters to prune=6"):
        pruning.l1_unstructured(layer, "weight", 7)
    with pytest.raises(AttributeError, match="no tensor of that name"):
        pruning.l1_unstructured(layer, "kernel", 0.5)
    with pytest.raises(ValueError, match="scope must be 'global' or 'layer'"):
        prune(_net(), 0.5, scope="all")
    with pytest.raises(ValueError, match="method must be"):
        prune(_net(), 0.5, method="l3")
    with pytest.raises(ValueError, match="has no 'weight' tensor"):
        prune(nn.Sequential(nn.ReLU()), 0.5)
