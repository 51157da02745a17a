"""GroupNorm, InstanceNorm1d/2d/3d, LocalResponseNorm, nn.utils.weight_norm against torch.nn with
copied weights; MeanOnlyBatchNorm (not in PyTorch) against its formula and numerical gradients;
BatchNorm's track_running_stats=False / affine=False / momentum=None options."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from deepnotes.ops.norm import mean_only_batch_norm
from tests.helpers import check_gradients
from tests.nn.test_layers import _copy_weights, both, check_layer

seeds = st.integers(0, 2**31 - 1)


def _randomise_affine(theirs: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        if getattr(theirs, "weight", None) is not None:
            theirs.weight.uniform_(0.5, 1.5)
        if getattr(theirs, "bias", None) is not None:
            theirs.bias.uniform_(-1, 1)
        if getattr(theirs, "running_mean", None) is not None:
            theirs.running_mean.uniform_(-1, 1)
            theirs.running_var.uniform_(0.5, 2)


# -- GroupNorm ------------------------------------------------------------------------------------


@settings(max_examples=10)  # the module only calls F.group_norm (tests/ops/test_norm_catalogue)
@given(groups=st.integers(1, 3), per_group=st.integers(1, 3), affine=st.booleans(),
       bias=st.booleans(), spatial=st.lists(st.integers(2, 3), max_size=2), seed=seeds)
def test_group_norm_module(groups, per_group, affine, bias, spatial, seed):
    c = groups * per_group
    ours, theirs = both("GroupNorm", groups, c, eps=1e-3, affine=affine, bias=bias)
    _randomise_affine(theirs)
    x = np.random.default_rng(seed).standard_normal((2, c, *spatial, 2)) * 2 + 1
    check_layer(ours, theirs, x)


def test_group_norm_module_defaults_and_errors():
    layer = nn.GroupNorm(2, 6)
    assert np.all(layer.weight.data == 1) and np.all(layer.bias.data == 0)
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups "
                                         r"\(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="num_groups must be a positive integer"):
        nn.GroupNorm(0, 4)


# -- InstanceNorm ---------------------------------------------------------------------------------


INSTANCE_SHAPES = {"InstanceNorm1d": (2, 3, 5), "InstanceNorm2d": (2, 3, 4, 3),
                   "InstanceNorm3d": (2, 3, 2, 3, 2)}


@pytest.mark.parametrize("name", INSTANCE_SHAPES)
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (False, True),
                                          (True, True)])
@pytest.mark.parametrize("training", [True, False])
def test_instance_norm_module(name, affine, track, training):
    ours, theirs = both(name, 3, affine=affine, track_running_stats=track, momentum=0.3)
    _randomise_affine(theirs)
    ours.train(training)
    theirs.train(training)
    x = np.random.default_rng(0).standard_normal(INSTANCE_SHAPES[name]) * 2 + 1
    check_layer(ours, theirs, x)
    for key, value in theirs.state_dict().items():     # running statistics after the calls
        np.testing.assert_allclose(ours.state_dict()[key].data, value.numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=key)   # float32 by now (check_layer)


@pytest.mark.parametrize("name", INSTANCE_SHAPES)
def test_instance_norm_unbatched_input(name):
    ours, theirs = both(name, 3, affine=True)
    _randomise_affine(theirs)
    check_layer(ours, theirs, np.random.default_rng(1).standard_normal(INSTANCE_SHAPES[name][1:]))


def test_instance_norm_running_statistics_over_steps_and_momentum_none():
    for momentum in (0.1, None):
        ours, theirs = both("InstanceNorm2d", 3, track_running_stats=True, momentum=momentum)
        ours.double()
        theirs.double()
        rng = np.random.default_rng(2)
        for _ in range(3):
            x = rng.standard_normal((2, 3, 4, 4)) * 3 + 1
            np.testing.assert_allclose(ours(dn.tensor(x)).data, theirs(torch.tensor(x)).numpy(),
                                       atol=1e-10)
        for key, value in theirs.state_dict().items():  # num_batches_tracked stays 0, as torch
            np.testing.assert_allclose(ours.state_dict()[key].data, value.numpy(), rtol=1e-12,
                                       err_msg=key)


def test_instance_norm_module_checks():
    ours = nn.InstanceNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
        ours(dn.ones(3, 5))
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features "
                                         r"\(3\), but got: 4."):
        nn.InstanceNorm2d(3, affine=True)(dn.ones(2, 4, 5, 5))
    with pytest.warns(UserWarning, match="does not match num_features"):
        ours(dn.tensor(np.random.default_rng(0).standard_normal((2, 4, 5, 5))))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.InstanceNorm1d(3)(dn.ones(2, 3, 5, 5))


# -- LocalResponseNorm ----------------------------------------------------------------------------


@pytest.mark.parametrize("args,shape", [((5,), (2, 7, 4, 4)), ((3, 0.5, 0.5, 2.0), (1, 4, 6)),
                                        ((2, 1e-2, 0.75, 1.0), (2, 3, 2, 2, 2))])
def test_local_response_norm_module(args, shape):
    ours, theirs = both("LocalResponseNorm", *args)
    check_layer(ours, theirs, np.random.default_rng(3).standard_normal(shape) * 3)


def test_local_response_norm_alexnet_setting_suppresses_neighbours():
    """AlexNet: size 5, alpha 1e-4, beta 0.75, k 2. A strong response in channel 1 shrinks the
    channels whose window (c - 2 ... c + 2) contains it, and only those."""
    x = np.ones((1, 7, 1, 1))
    x[0, 1] = 100.0
    y = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(dn.tensor(x)).data[0, :, 0, 0]
    quiet = 1 / (2 + 1e-4 / 5 * 5) ** 0.75                    # five ones in the window
    loud = 1 / (2 + 1e-4 / 5 * (1e4 + 4)) ** 0.75             # 100^2 and four ones
    np.testing.assert_allclose(y[[2, 3]], loud, rtol=1e-6)     # windows holding channel 1
    np.testing.assert_allclose(y[0], 1 / (2 + 1e-4 / 5 * (1e4 + 2)) ** 0.75, rtol=1e-6)  # edge
    np.testing.assert_allclose(y[4], quiet, rtol=1e-6)
    assert y[0] < 0.95 * y[4]


# -- weight_norm ----------------------------------------------------------------------------------


def _torch_weight_norm(module, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)    # the classic form is deprecated in torch
        return torch.nn.utils.weight_norm(module, **kwargs)


@pytest.mark.parametrize("make,shape,dim", [
    (lambda lib: lib.Linear(4, 3), (5, 4), 0),
    (lambda lib: lib.Linear(4, 3), (5, 4), None),
    (lambda lib: lib.Linear(4, 3), (5, 4), 1),
    (lambda lib: lib.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5), 0),
    (lambda lib: lib.Conv2d(2, 3, 3), (1, 2, 4, 4), -2),
])
def test_weight_norm_matches_torch(make, shape, dim):
    ours = nn.utils.weight_norm(make(nn), dim=dim)
    theirs = _torch_weight_norm(make(torch.nn), dim=dim)
    with torch.no_grad():
        theirs.weight_g.mul_(torch.rand_like(theirs.weight_g) + 0.5)   # lengths != ||v||
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    check_layer(ours, theirs, np.random.default_rng(4).standard_normal(shape))
    assert ours.weight_g.shape == tuple(theirs.weight_g.shape)


def test_weight_norm_recomputes_the_weight_before_every_forward():
    layer = nn.utils.weight_norm(nn.Linear(3, 2).double())
    w_before = layer.weight.data.copy()
    np.testing.assert_allclose(np.linalg.norm(w_before, axis=1), layer.weight_g.data[:, 0])
    layer.weight_g.data *= 2.0                       # e.g. an optimiser step on g
    x = dn.tensor(np.eye(3))
    np.testing.assert_allclose(layer(x).data, x.data @ (2 * w_before).T + layer.bias.data,
                               rtol=1e-12)
    np.testing.assert_allclose(layer.weight.data, 2 * w_before, rtol=1e-12)


def test_weight_norm_trains_g_and_v_with_an_optimiser():
    torch.manual_seed(0)
    theirs = _torch_weight_norm(torch.nn.Linear(3, 2).double())
    ours = nn.utils.weight_norm(nn.Linear(3, 2).double())
    _copy_weights(ours, theirs)
    opt = dn.optim.SGD(ours.parameters(), lr=0.5)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    x = np.random.default_rng(5).standard_normal((4, 3))
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        (ours(dn.tensor(x)) ** 2).sum().backward()
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        opt.step()
        topt.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].data, value.numpy(), rtol=1e-10,
                                   err_msg=key)


def test_remove_weight_norm_and_errors():
    layer = nn.utils.weight_norm(nn.Conv2d(2, 3, 3).double())
    layer.weight_g.data *= 3.0
    expected = layer(dn.tensor(np.ones((1, 2, 3, 3)))).data
    assert nn.utils.remove_weight_norm(layer) is layer
    assert list(layer.state_dict()) == ["bias", "weight"]          # as torch
    assert isinstance(layer.weight, nn.Parameter) and not layer._forward_pre_hooks
    np.testing.assert_allclose(layer(dn.tensor(np.ones((1, 2, 3, 3)))).data, expected,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found in Conv2d"):
        nn.utils.remove_weight_norm(layer)
    normed = nn.utils.weight_norm(nn.Linear(2, 3))
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks on the same "
                                           "parameter weight"):
        nn.utils.weight_norm(normed)
    with pytest.raises(AttributeError, match="has no attribute 'foo'"):
        nn.utils.weight_norm(nn.Linear(2, 3), name="foo")
    with pytest.raises(IndexError, match="Dimension out of range"):
        nn.utils.weight_norm(nn.Linear(2, 3), dim=2)
    with pytest.raises(RuntimeError, match="graph leaves"):   # as torch: weight is a graph node
        copy.deepcopy(normed)


# -- MeanOnlyBatchNorm (not in PyTorch) -----------------------------------------------------------


def test_mean_only_batch_norm_module_over_steps():
    layer = nn.MeanOnlyBatchNorm2d(3, momentum=0.2).double()
    layer.bias.data[...] = [0.5, -1.0, 2.0]
    rng = np.random.default_rng(6)
    running = np.zeros(3)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) * 2 + np.array([1.0, 3.0, -2.0])[:, None, None]
        mean = x.mean(axis=(0, 2, 3))
        out = layer(dn.tensor(x)).data
        np.testing.assert_allclose(out, x - mean[:, None, None] + layer.bias.data[:, None, None],
                                   rtol=1e-12, atol=1e-12)
        running = 0.8 * running + 0.2 * mean
    np.testing.assert_allclose(layer.running_mean.data, running, rtol=1e-12)
    assert int(layer.num_batches_tracked.item()) == 3
    layer.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(layer(dn.tensor(x)).data,
                               x - running[:, None, None] + layer.bias.data[:, None, None],
                               rtol=1e-12)


def test_mean_only_batch_norm_momentum_none_and_no_running_stats():
    layer = nn.MeanOnlyBatchNorm1d(2, momentum=None).double()
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((5, 2)) * (i + 1) + i for i in range(4)]
    for x in batches:
        layer(dn.tensor(x))
    np.testing.assert_allclose(layer.running_mean.data, np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-12)
    free = nn.MeanOnlyBatchNorm2d(2, track_running_stats=False, bias=False).eval().double()
    x = rng.standard_normal((3, 2, 2, 2))
    np.testing.assert_allclose(free(dn.tensor(x)).data, x - x.mean(axis=(0, 2, 3))[:, None, None],
                               atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_mean_only_batch_norm_module_gradients_numerically(training):
    layer = nn.MeanOnlyBatchNorm2d(2).double().train(training)
    layer.running_mean.data[...] = [0.3, -0.7]

    def fn(x, bias):
        layer.bias.data = bias.data
        return mean_only_batch_norm(x, layer.running_mean, bias, training)

    check_gradients(fn, np.random.default_rng(8).standard_normal((3, 2, 2, 2)),
                    np.array([0.1, 0.2]))
    x = dn.tensor(np.random.default_rng(9).standard_normal((3, 2, 2, 2)), requires_grad=True)
    layer(x).backward(np.ones((3, 2, 2, 2)))
    # training: the batch mean absorbs any shift, so a constant upstream gradient gives dx = 0
    np.testing.assert_allclose(x.grad.data, 0.0 if training else 1.0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.data, [12.0, 12.0])


def test_mean_only_batch_norm_keys_repr_and_checks():
    layer = nn.MeanOnlyBatchNorm2d(4)
    assert list(layer.state_dict()) == ["bias", "running_mean", "num_batches_tracked"]
    assert repr(layer) == ("MeanOnlyBatchNorm2d(4, momentum=0.1, bias=True, "
                           "track_running_stats=True)")
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        layer(dn.ones(2, 4))
    with pytest.raises(TypeError, match="momentum must be a float or None"):
        nn.MeanOnlyBatchNorm1d(3, momentum="0.1")


# -- BatchNorm options (track_running_stats=False, affine=False, momentum=None) -----------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_without_running_statistics_uses_batch_statistics_in_eval(training, affine):
    ours, theirs = both("BatchNorm2d", 3, affine=affine, track_running_stats=False)
    _randomise_affine(theirs)
    ours.train(training)
    theirs.train(training)
    check_layer(ours, theirs, np.random.default_rng(10).standard_normal((2, 3, 3, 3)) * 2 + 1)
    assert ours.running_mean is None and list(ours.state_dict()) == list(theirs.state_dict())


def test_batch_norm_momentum_none_keys_and_eval_gradients():
    ours, theirs = both("BatchNorm1d", 3, momentum=None, affine=False)
    rng = np.random.default_rng(11)
    ours.double()
    theirs.double()
    for _ in range(4):
        x = rng.standard_normal((5, 3)) * 2
        ours(dn.tensor(x))
        theirs(torch.tensor(x))
    ours.eval()
    theirs.eval()
    check_layer(ours, theirs, rng.standard_normal((4, 3)))
