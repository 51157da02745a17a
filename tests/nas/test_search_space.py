"""The DARTS search space: every candidate operation against a PyTorch reference built from the
same weights, shapes at stride 1 and 2, MixedOp = weighted sum, cells and the supernet."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import deepnotes as dn
from deepnotes.nas.search_space import (
    OPS,
    PRIMITIVES,
    Cell,
    MixedOp,
    SearchNetwork,
    make_op,
    num_edges,
    reduction_layers,
)


def _bn(x, params):
    w, b = (params.pop(0), params.pop(0)) if params else (None, None)
    return TF.batch_norm(x, None, None, w, b, training=True)


def _dil(x, params, k, stride, pad, dil, c):
    x = TF.relu(x)
    x = TF.conv2d(x, params.pop(0), None, stride, pad, dil, groups=c)
    x = TF.conv2d(x, params.pop(0))
    return TF.batch_norm(x, None, None, None, None, training=True)


def torch_reference(name, x, params, stride):
    """PyTorch forward of our op with its weights in named_parameters order (affine=False)."""
    c = x.shape[1]
    if name == "none":
        return x[:, :, ::stride, ::stride] * 0.0
    if name.endswith("pool_3x3"):
        y = (TF.max_pool2d(x, 3, stride, 1) if name.startswith("max")
             else TF.avg_pool2d(x, 3, stride, 1, count_include_pad=False))
        return _bn(y, params)
    if name == "skip_connect":
        if stride == 1:
            return x
        x = TF.relu(x)
        a = TF.conv2d(x, params.pop(0), stride=2)
        b = TF.conv2d(x[:, :, 1:, 1:], params.pop(0), stride=2)
        b = TF.pad(b, (0, a.shape[3] - b.shape[3], 0, a.shape[2] - b.shape[2]))
        return _bn(torch.cat([a, b], 1), params)
    k = int(name[-1])
    if name.startswith("sep"):
        x = _dil(x, params, k, stride, k // 2, 1, c)
        return _dil(x, params, k, 1, k // 2, 1, c)
    return _dil(x, params, k, stride, k - 1, 2, c)


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 5])
def test_op_matches_torch_and_shape(name, stride, size, rng):
    c = 4
    op = make_op(name, c, stride, affine=False).double()
    x = rng.standard_normal((3, c, size, size))
    ours = op(dn.tensor(x))
    out = -(-size // stride)  # ceil(size / stride)
    assert tuple(ours.shape) == (3, c, out, out)
    params = [torch.tensor(p.data) for p in op.parameters()]
    theirs = torch_reference(name, torch.tensor(x), params, stride)
    assert not params  # every weight was used by the reference
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-7, atol=1e-9)


def test_ops_dict_is_darts_list():
    assert set(OPS) == set(PRIMITIVES) and len(PRIMITIVES) == 8
    assert num_edges(4) == 14 and num_edges(3) == 9
    assert reduction_layers(8) == (2, 5) and reduction_layers(3) == (1,)
    with pytest.raises(ValueError, match="unknown operation 'conv_7x7'"):
        make_op("conv_7x7", 4, 1)


@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_is_weighted_sum_of_its_ops(stride, rng):
    mixed = MixedOp(4, stride).double()
    x = dn.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    alpha = dn.tensor(rng.standard_normal(len(PRIMITIVES)), requires_grad=True)
    w = dn.softmax(alpha, dim=0)
    out = mixed(x, w)
    expected = sum(float(w.data[i]) * mixed._ops[i](x).data for i in range(len(PRIMITIVES)))
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    # d out.sum() / d w_i = op_i(x).sum(); through the softmax to alpha
    out.sum().backward()
    g_w = np.array([mixed._ops[i](x).data.sum() for i in range(len(PRIMITIVES))])
    s = w.data
    np.testing.assert_allclose(alpha.grad.data, s * (g_w - (s * g_w).sum()), rtol=1e-8,
                               atol=1e-10)
    with pytest.raises(ValueError, match=r"weights must have shape \(8,\)"):
        mixed(x, w[:3])


@pytest.mark.parametrize("reduction,reduction_prev", [(False, False), (True, False),
                                                      (False, True)])
def test_cell_shapes(reduction, reduction_prev, rng):
    steps, mult = 3, 2
    cell = Cell(steps, mult, 6, 10, 4, reduction, reduction_prev)
    h0 = 8 if reduction_prev else 4
    s0 = dn.tensor(rng.standard_normal((2, 6, h0, h0)).astype(np.float32))
    s1 = dn.tensor(rng.standard_normal((2, 10, 4, 4)).astype(np.float32))
    w = dn.softmax(dn.randn(num_edges(steps), len(PRIMITIVES)), dim=-1)
    out = cell(s0, s1, w)
    h = 2 if reduction else 4
    assert tuple(out.shape) == (2, mult * 4, h, h)
    strides = [m.stride for m in cell._ops]
    # edges node by node: node 0 <- (0, 1), node 1 <- (0, 1, 2), node 2 <- (0, 1, 2, 3)
    s = 2 if reduction else 1
    assert strides == [s, s, s, s, 1, s, s, 1, 1]


def test_search_network_groups_and_gradients(rng):
    dn.manual_seed(0)
    net = SearchNetwork(c=4, layers=3, steps=2)
    assert [r for _, r in net.cell_shapes] == [False, True, False]
    arch = {id(p) for p in net.arch_parameters()}
    assert len(arch) == 2 and not arch & {id(p) for p in net.weights()}
    assert len(net.weights()) + 2 == len(list(net.parameters()))
    x = dn.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    logits = net(x)
    assert tuple(logits.shape) == (4, 10)
    dn.nn.functional.cross_entropy(logits, dn.tensor(np.arange(4))).backward()
    for a in net.arch_parameters():
        assert a.grad is not None and np.abs(a.grad.data).sum() > 0
