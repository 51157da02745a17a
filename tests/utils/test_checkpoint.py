"""deepnotes.utils.checkpoint: recomputing in backward gives exactly the gradients of the plain
forward (also with dropout inside, thanks to the restored generator state), matches
torch.utils.checkpoint, and keeps the rest of the program's random stream untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import nn
from deepnotes.utils.checkpoint import checkpoint, checkpoint_sequential


def _block(p: float = 0.0) -> nn.Module:
    dn.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(p),
                         nn.Linear(8, 5))


def _run(model, x, use_checkpoint, seed=11, **kwargs):
    """Loss, parameter gradients and input gradient of one forward/backward."""
    model.zero_grad()
    x = dn.tensor(x.astype(np.float32), requires_grad=True)
    dn.manual_seed(seed)
    y = checkpoint(model, x, **kwargs) if use_checkpoint else model(x)
    loss = (y * y).sum()
    loss.backward()
    return (y.data.copy(), [p.grad.data.copy() for p in model.parameters()], x.grad.data.copy())


@given(n=st.integers(2, 6), p=st.sampled_from([0.0, 0.3, 0.7]))
def test_gradients_equal_the_plain_ones_exactly(n, p):
    model = _block(p)
    x = np.random.default_rng(n).standard_normal((n, 6))
    y0, grads0, gx0 = _run(model, x, False)
    y1, grads1, gx1 = _run(model, x, True)
    np.testing.assert_array_equal(y0, y1)
    for g0, g1 in zip(grads0, grads1):
        np.testing.assert_array_equal(g0, g1)
    np.testing.assert_array_equal(gx0, gx1)


def test_without_preserved_rng_state_dropout_masks_differ():
    model = _block(0.5)
    x = np.random.default_rng(0).standard_normal((4, 6))
    _, grads0, _ = _run(model, x, False)
    _, grads1, _ = _run(model, x, True, preserve_rng_state=False)
    assert not all(np.array_equal(a, b) for a, b in zip(grads0, grads1))


def test_random_stream_after_backward_is_that_of_the_plain_run():
    model = _block(0.5)
    x = np.random.default_rng(0).standard_normal((4, 6))
    _run(model, x, False)
    after_plain = dn.rand(3).data
    _run(model, x, True)
    np.testing.assert_array_equal(dn.rand(3).data, after_plain)


def test_matches_torch_with_several_inputs_and_outputs(rng):
    """f(a, b, scale) = (tanh(a @ w) * b * scale, sigmoid(a).sum(1)): gradients of a, b, w
    against torch's autograd (torch.utils.checkpoint gives the same by construction; importing
    it costs seconds, as it pulls in torch._dynamo)."""
    a, b, w = (rng.standard_normal(s) for s in ((3, 4), (3, 5), (4, 5)))
    ga, gb = rng.standard_normal((3, 5)), rng.standard_normal(3)

    def ours_f(x, y, scale, weight):
        return (x.matmul(weight).tanh() * y * scale, x.sigmoid().sum(1))

    def torch_f(x, y, scale, weight):
        return (torch.tanh(x @ weight) * y * scale, torch.sigmoid(x).sum(1))

    ours = [dn.tensor(v, requires_grad=True) for v in (a, b, w)]
    out = checkpoint(ours_f, ours[0], ours[1], 2.5, weight=ours[2])
    ((out[0] * dn.tensor(ga)).sum() + (out[1] * dn.tensor(gb)).sum()).backward()
    theirs = [torch.tensor(v, requires_grad=True) for v in (a, b, w)]
    t_out = torch_f(theirs[0], theirs[1], 2.5, theirs[2])
    ((t_out[0] * torch.tensor(ga)).sum() + (t_out[1] * torch.tensor(gb)).sum()).backward()
    for o, t in zip(out, t_out):
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_checkpoint_keeps_no_intermediate_in_the_graph():
    """The graph after forward holds one node for the whole function, whose saved arrays are
    exactly the inputs (no intermediate activation)."""
    model = _block()
    x = dn.randn(4, 6, requires_grad=True)
    y = checkpoint(model, x)
    node = y.grad_fn
    assert type(node).__name__ == "CheckpointFn"
    assert len(node.saved) == 1 and node.saved[0] is x.data
    assert node.inputs == (x,)  # parameters are reached only inside, during backward


def test_checkpoint_sequential_equals_plain(rng):
    dn.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(5, 5), nn.ReLU())])
    x = rng.standard_normal((3, 5)).astype(np.float32)

    def run(fn):
        model.zero_grad()
        xt = dn.tensor(x, requires_grad=True)
        fn(xt).sum().backward()
        return [p.grad.data.copy() for p in model.parameters()] + [xt.grad.data]

    for a, b in zip(run(model), run(lambda t: checkpoint_sequential(model, 3, t))):
        np.testing.assert_array_equal(a, b)


def test_no_grad_mode_records_nothing_and_inputs_without_grad_warn():
    model = _block()
    with dn.no_grad():
        y = checkpoint(model, dn.randn(2, 6))
    assert y.grad_fn is None and not y.requires_grad
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        y = checkpoint(model, dn.randn(2, 6))
    assert not y.requires_grad  # as torch's reentrant checkpoint: parameters get no gradient


def test_bad_arguments_are_clear_errors():
    x = dn.randn(2, 3, requires_grad=True)
    with pytest.raises(TypeError, match="function must be callable, got int"):
        checkpoint(3, x)
    with pytest.raises(TypeError, match="must return a Tensor or a tuple of Tensors, got list"):
        checkpoint(lambda t: [t], x)
    with pytest.raises(ValueError, match="segments must be a positive int, got 0"):
        checkpoint_sequential(nn.Sequential(nn.ReLU()), 0, x)
