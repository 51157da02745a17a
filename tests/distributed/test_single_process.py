"""deepnotes.distributed in one process: lazy MPI import, the process-group errors, and
SyncBatchNorm == BatchNorm (PyTorch's) when there is nothing to synchronise."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.distributed as dist
from deepnotes import nn
from deepnotes.nn.parallel import (
    ColumnParallelLinear,
    DistributedDataParallel,
    RowParallelLinear,
    SyncBatchNormFn,
    sharded_cross_entropy,
)

from .launch import ROOT


def test_importing_deepnotes_does_not_load_mpi():
    code = ("import sys, deepnotes as dn; assert 'mpi4py' not in sys.modules; "
            "dn.nn.SyncBatchNorm(3); dn.distributed.is_initialized(); "
            "import deepnotes.nn.parallel; assert 'mpi4py' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_calls_before_init_process_group_say_so():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, lambda: dist.all_reduce(dn.ones(2)),
                 lambda: DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            call()


@pytest.fixture
def world_of_one():
    """An initialised process group of one rank (MPI's singleton start, no mpiexec)."""
    dist.init_process_group("mpi")
    yield
    dist.destroy_process_group()


def test_init_process_group_arguments(world_of_one):
    assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "mpi")
    with pytest.raises(RuntimeError, match="twice"):
        dist.init_process_group("mpi")
    dist.destroy_process_group()
    with pytest.raises(ValueError, match="backend='mpi', got backend='nccl'"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="world_size=3 but MPI started this process with "
                                         "world_size=1"):
        dist.init_process_group("mpi", world_size=3)
    dist.init_process_group("mpi", world_size=1, rank=0)


def compare_with_torch_batchnorm(forward, module, x: np.ndarray, rng, steps=2):
    """Training steps of ``forward`` (ours) and torch's BatchNorm2d: output, input and parameter
    gradients, running statistics; then one evaluation step."""
    theirs = torch.nn.BatchNorm2d(module.num_features, momentum=module.momentum).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.standard_normal(module.num_features)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(module.num_features)))
    module.weight.data[...] = theirs.weight.detach().numpy()
    module.bias.data[...] = theirs.bias.detach().numpy()
    for _ in range(steps):
        grad = rng.standard_normal(x.shape)
        xt = torch.tensor(x, requires_grad=True)
        xo = dn.tensor(x, requires_grad=True)
        yt, yo = theirs(xt), forward(xo)
        yt.backward(torch.tensor(grad))
        yo.backward(dn.tensor(grad))
        np.testing.assert_allclose(yo.data, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(module.weight.grad.data, theirs.weight.grad.numpy(),
                                   atol=1e-12)
        np.testing.assert_allclose(module.bias.grad.data, theirs.bias.grad.numpy(), atol=1e-12)
        module.zero_grad()
        theirs.zero_grad()
        x = x * 1.5 + 0.3
    np.testing.assert_allclose(module.running_mean.data, theirs.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(module.running_var.data, theirs.running_var.numpy(), atol=1e-12)
    assert int(module.num_batches_tracked.data) == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_syncbn_without_process_group_is_torch_batchnorm(momentum, rng):
    bn = nn.SyncBatchNorm(3, momentum=momentum).double()
    compare_with_torch_batchnorm(bn, bn, rng.standard_normal((4, 3, 5, 5)) * 2 + 1, rng)
    bn.eval()
    theirs = torch.nn.BatchNorm2d(3).double()
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in bn.state_dict().items()})
    theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(bn(dn.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               atol=1e-12)


def test_syncbn_function_at_world_one_is_torch_batchnorm(world_of_one, rng):
    """The synchronised code path itself (all-reduces over a world of one) against torch."""
    bn = nn.SyncBatchNorm(3).double()

    def forward(x):
        return SyncBatchNormFn(bn.running_mean.data, bn.running_var.data, 0.1, bn.eps)(
            x, bn.weight, bn.bias)

    def counted(x):
        bn.num_batches_tracked.data += 1
        return forward(x)

    compare_with_torch_batchnorm(counted, bn, rng.standard_normal((4, 3, 2, 3)) - 2, rng)


def test_convert_sync_batchnorm_shares_parameters_and_keys():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.InstanceNorm2d(4),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4 * 6 * 6, affine=False)))
    model[1].running_mean.data[...] = 7
    before = {k: v for k, v in model.state_dict(keep_vars=True).items()}
    params = list(model.parameters())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert [type(m).__name__ for m in model.modules()].count("SyncBatchNorm") == 2
    assert type(model[2]).__name__ == "InstanceNorm2d"     # instance norm is not batch norm
    after = model.state_dict(keep_vars=True)
    assert list(after) == list(before)
    assert all(after[k] is before[k] for k in before)      # the same tensors, not copies
    assert list(model.parameters()) == params and all(
        a is b for a, b in zip(model.parameters(), params, strict=True))
    single = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3).eval())
    assert isinstance(single, nn.SyncBatchNorm) and not single.training
    with pytest.raises(ValueError, match="expected at least 2D input"):
        nn.SyncBatchNorm(3)(dn.ones(3))


def test_parallel_layers_at_world_one_equal_linear(world_of_one, rng):
    x = rng.standard_normal((5, 4))
    y = dn.tensor(rng.integers(0, 6, 5))
    for make in (lambda: ColumnParallelLinear(4, 6, gather_output=False, dtype=dn.float64),
                 lambda: RowParallelLinear(4, 6, dtype=dn.float64)):
        dn.manual_seed(9)
        ours = make()
        dn.manual_seed(9)
        ref = nn.Linear(4, 6, dtype=dn.float64)
        loss = sharded_cross_entropy(ours(dn.tensor(x)), y)
        expected = dn.nn.functional.cross_entropy(ref(dn.tensor(x)), y)
        assert abs(loss.item() - expected.item()) < 1e-12
    with pytest.raises(IndexError, match="Target 6 is out of bounds"):
        sharded_cross_entropy(dn.zeros(2, 6, dtype=dn.float64), dn.tensor([0, 6]))
    model = DistributedDataParallel(copy.deepcopy(ref))
    assert list(model.state_dict()) == ["module.weight", "module.bias"]
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number"):
        DistributedDataParallel(ref, bucket_cap_mb=0)


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 6), classes=st.integers(1, 6), use_weight=st.booleans(),
       ignored=st.integers(0, 3), smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 99))
def test_sharded_cross_entropy_options_match_torch(n, classes, use_weight, ignored, smoothing,
                                                   reduction, seed):
    """weight, ignore_index and label_smoothing at world size one, against torch (loss, grad)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes))
    target = rng.integers(0, classes, n)
    target[rng.permutation(n)[:min(ignored, n - 1)]] = -1          # some ignored, one counted
    weight = rng.uniform(0.2, 2.0, classes) if use_weight else None
    dist.init_process_group("mpi")
    try:
        ours_x = dn.tensor(logits, requires_grad=True)
        ours = sharded_cross_entropy(ours_x, dn.tensor(target), weight=weight, ignore_index=-1,
                                     reduction=reduction, label_smoothing=smoothing)
        ours.sum().backward()
    finally:
        dist.destroy_process_group()
    torch_x = torch.tensor(logits, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(
        torch_x, torch.tensor(target), weight=None if weight is None else torch.tensor(weight),
        ignore_index=-1, reduction=reduction, label_smoothing=smoothing)
    theirs.sum().backward()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_x.grad.data, torch_x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_sharded_cross_entropy_option_errors(world_of_one):
    logits = dn.zeros(2, 3, dtype=dn.float64)
    with pytest.raises(ValueError, match=r"weight must hold one value per class, shape \(3,\)"):
        sharded_cross_entropy(logits, dn.tensor([0, 1]), weight=np.ones(4))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        sharded_cross_entropy(logits, dn.tensor([0, 1]), label_smoothing=1.5)
    assert sharded_cross_entropy(logits, dn.tensor([-100, 2]), reduction="none").data[0] == 0
