"""The fused recurrent ops (ops.rnn) against torch's cell functions, finite differences, and the
packed-sequence gather/scatter ops."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes.ops import rnn as R
from tests.helpers import check_against_torch, check_gradients

seeds = st.integers(0, 2**32 - 1)
GATES = {"rnn_tanh_cell": 1, "rnn_relu_cell": 1, "lstm_cell": 4, "gru_cell": 3}


def _lstm_cell(fn):
    """(x, h, c, weights...) -> (h', c'): lstm_cell takes hx as a tuple."""
    return lambda x, h, c, *weights: fn(x, (h, c), *weights)


def cell_inputs(name, seed, n, i, h, bias, scale=1.0):
    rng = np.random.default_rng(seed)
    g = GATES[name] * h
    arrays = [rng.standard_normal((n, i)), rng.standard_normal((n, h))]
    if name == "lstm_cell":
        arrays.append(rng.standard_normal((n, h)))
    arrays += [rng.standard_normal((g, i)) * scale, rng.standard_normal((g, h)) * scale]
    if bias:
        arrays += [rng.standard_normal(g) * scale, rng.standard_normal(g) * scale]
    return arrays


@pytest.mark.parametrize("name", list(GATES))
@given(seed=seeds, n=st.integers(1, 4), i=st.integers(1, 5), h=st.integers(1, 5),
       bias=st.booleans())
def test_cell_ops_match_torch(name, seed, n, i, h, bias):
    ours, theirs = getattr(R, name), getattr(torch, name)
    if name == "lstm_cell":
        ours, theirs = _lstm_cell(ours), _lstm_cell(theirs)
    check_against_torch(ours, theirs, cell_inputs(name, seed, n, i, h, bias))


@pytest.mark.parametrize("name", list(GATES))
def test_cell_ops_saturate_without_overflow_warnings(name):
    # Pre-activations around +-1e4: e^-a overflows float64 for a < -709; sigm must still be 0.
    inputs = cell_inputs(name, 0, 3, 4, 5, True, scale=3e3)
    ours, theirs = getattr(R, name), getattr(torch, name)
    if name == "lstm_cell":
        ours, theirs = _lstm_cell(ours), _lstm_cell(theirs)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = check_against_torch(ours, theirs, inputs, float32=False)
    for o in out if isinstance(out, list) else [out]:
        assert np.isfinite(o.detach().numpy()).all()


LAYERS = {
    "rnn_tanh": (R.rnn_layer, 1, dict(nonlinearity="tanh")),
    "rnn_relu": (R.rnn_layer, 1, dict(nonlinearity="relu")),
    "lstm": (R.lstm_layer, 4, {}),
    "gru": (R.gru_layer, 3, {}),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_ops_pass_finite_differences_on_packed_sequences(name, reverse):
    # Lengths 3, 3, 1: at step 0 and 1 three sequences run, at step 2 only the longest one.
    fn, gates, kw = LAYERS[name]
    batch_sizes, i, h = (3, 2, 1), 2, 3
    rng = np.random.default_rng(1)
    s, n = sum(batch_sizes), batch_sizes[0]
    arrays = [rng.standard_normal((s, i)), rng.standard_normal((n, h))]
    if name == "lstm":
        arrays.append(rng.standard_normal((n, h)))
    arrays += [rng.standard_normal((gates * h, i)), rng.standard_normal((gates * h, h)),
               rng.standard_normal(gates * h), rng.standard_normal(gates * h)]

    for output in range(3 if name == "lstm" else 2):  # out, h_n (and c_n) one at a time
        def f(*tensors, output=output):
            if name == "lstm":
                return fn(tensors[0], batch_sizes, *tensors[1:], reverse=reverse)[output]
            return fn(tensors[0], batch_sizes, *tensors[1:], reverse=reverse, **kw)[output]
        check_gradients(f, *arrays)


def test_lstm_layer_with_projection_passes_finite_differences():
    rng = np.random.default_rng(2)
    batch_sizes, i, h, p = (2, 2, 1), 3, 4, 2
    s, n = sum(batch_sizes), batch_sizes[0]
    arrays = [rng.standard_normal((s, i)), rng.standard_normal((n, p)), rng.standard_normal((n, h)),
              rng.standard_normal((4 * h, i)), rng.standard_normal((4 * h, p)),
              rng.standard_normal(4 * h), rng.standard_normal(4 * h), rng.standard_normal((p, h))]
    for output in range(3):
        check_gradients(lambda x, *rest, output=output: R.lstm_layer(
            x, batch_sizes, *rest[:-1], w_hr=rest[-1], reverse=True)[output], *arrays)


def test_layer_op_is_one_graph_node_for_the_whole_sequence():
    # The fused op records one node for T = 40 steps, not ~10 nodes per step.
    rng = np.random.default_rng(0)
    x = dn.tensor(rng.standard_normal((40 * 2, 3)), requires_grad=True)
    w_ih = dn.tensor(rng.standard_normal((16, 3)), requires_grad=True)
    w_hh = dn.tensor(rng.standard_normal((16, 4)), requires_grad=True)
    zeros = np.zeros((2, 4))
    out, h_n, c_n = R.lstm_layer(x, (2,) * 40, zeros, zeros, w_ih, w_hh)
    assert out.grad_fn is h_n.grad_fn is c_n.grad_fn
    assert isinstance(out.grad_fn, R.LSTMLayerFn)
    assert all(getattr(v, "grad_fn", None) is None for v in out.grad_fn.inputs)


@given(seed=seeds, steps=st.integers(1, 5), batch=st.integers(1, 4), feat=st.integers(1, 3),
       batch_first=st.booleans(), data=st.data())
def test_pack_rows_and_unpack_rows_match_torch_pack_and_pad(seed, steps, batch, feat,
                                                            batch_first, data):
    from deepnotes.nn.utils import rnn as U

    rng = np.random.default_rng(seed)
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    shape = (batch, steps, feat) if batch_first else (steps, batch, feat)
    x = rng.standard_normal(shape)

    def ours(t):
        packed = U.pack_padded_sequence(t, lengths, batch_first, enforce_sorted=False)
        return U.pad_packed_sequence(packed, batch_first, padding_value=-2.0)[0] * 1.0

    def theirs(t):
        packed = torch.nn.utils.rnn.pack_padded_sequence(t, torch.tensor(lengths), batch_first,
                                                         enforce_sorted=False)
        return torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first, padding_value=-2.0)[0]

    check_against_torch(ours, theirs, (x,))
