"""nn.RNN / LSTM / GRU, the cells and nn.utils.rnn against PyTorch with the same weights.

Every comparison loads torch's state_dict into ours and checks, in float64, the output, the final
states and the gradients of the input, of h0/c0 and of every parameter, for shapes and options
drawn by hypothesis (layers, directions, bias, batch_first, proj_size, unbatched and packed input).
"""

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import nn
from deepnotes.nn.utils import rnn as U

TU = torch.nn.utils.rnn
ATOL, RTOL = 1e-10, 1e-7
KINDS = ["RNN_tanh", "RNN_relu", "LSTM", "GRU"]


def build(kind, input_size, options, dtype=torch.float64):
    """The same layer in both frameworks, our weights loaded from torch's state_dict."""
    options = dict(options)
    name = kind.split("_")[0]
    if kind == "RNN_relu":
        options["nonlinearity"] = "relu"
    theirs = getattr(torch.nn, name)(input_size, **options).to(dtype)
    ours = getattr(nn, name)(input_size, **options).to(np.float64 if dtype == torch.float64
                                                         else np.float32)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


@st.composite
def configs(draw, kind):
    hidden = draw(st.integers(1, 5))
    options = dict(hidden_size=hidden, num_layers=draw(st.integers(1, 3)),
                   bias=draw(st.booleans()), batch_first=draw(st.booleans()),
                   bidirectional=draw(st.booleans()))
    if kind == "LSTM" and hidden > 1 and draw(st.booleans()):
        options["proj_size"] = draw(st.integers(1, hidden - 1))
    layout = draw(st.sampled_from(["padded", "unbatched", "packed_sorted", "packed_unsorted"]))
    steps, batch = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    lengths[draw(st.integers(0, batch - 1))] = steps  # the longest fills the padded length
    return dict(options=options, input_size=draw(st.integers(1, 4)), layout=layout, steps=steps,
                batch=batch, lengths=lengths, with_hx=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def run_both(kind, cfg, dtype=np.float64):
    """Forward both layers on the same data; returns (ours, theirs) lists of tensors:
    [input, *states_in] and [output (padded), *states_out]."""
    ours_mod, theirs_mod = build(kind, cfg["input_size"], cfg["options"],
                                 torch.float64 if dtype == np.float64 else torch.float32)
    opt = cfg["options"]
    rng = np.random.default_rng(cfg["seed"])
    batch_first, layout = opt["batch_first"], cfg["layout"]
    steps, batch, feat = cfg["steps"], cfg["batch"], cfg["input_size"]
    if layout == "unbatched":
        shape = (steps, feat)
    else:
        shape = (batch, steps, feat) if batch_first else (steps, batch, feat)
    x = rng.standard_normal(shape).astype(dtype)
    layers = opt["num_layers"] * (2 if opt["bidirectional"] else 1)
    hidden = opt["hidden_size"]
    sizes = [opt.get("proj_size") or hidden] + ([hidden] if kind == "LSTM" else [])
    states = [rng.standard_normal((layers, s) if layout == "unbatched" else (layers, batch, s))
              .astype(dtype) for s in sizes]
    grad = dtype == np.float64
    ours_in = [dn.tensor(a, requires_grad=grad) for a in [x] + states]
    theirs_in = [torch.tensor(a, requires_grad=grad) for a in [x] + states]

    def call(module, inputs, lib, utils):
        data = inputs[0]
        if layout.startswith("packed"):
            lengths = cfg["lengths"]
            if layout == "packed_sorted":  # sorted longest first: the rows must follow suit
                order = np.argsort([-n for n in lengths], kind="stable")
                lengths = [lengths[i] for i in order]
                index = lib.tensor(order)
                data = data[index] if batch_first else data[:, index]
            data = utils.pack_padded_sequence(data, lib.tensor(lengths), batch_first,
                                              enforce_sorted=layout == "packed_sorted")
        hx = None
        if cfg["with_hx"]:
            hx = tuple(inputs[1:]) if kind == "LSTM" else inputs[1]
        output, final = module(data, hx)
        if layout.startswith("packed"):
            output = utils.pad_packed_sequence(output, batch_first)[0]
        return [output, *(final if kind == "LSTM" else [final])]

    return (ours_in, call(ours_mod, ours_in, dn, U), ours_mod,
            theirs_in, call(theirs_mod, theirs_in, torch, TU), theirs_mod)


def assert_close(actual, expected, what, atol=ATOL, rtol=RTOL):
    expected = expected.detach().numpy()
    assert tuple(actual.shape) == expected.shape, f"{what}: {actual.shape} vs {expected.shape}"
    np.testing.assert_allclose(actual.detach().numpy(), expected, atol=atol, rtol=rtol,
                               err_msg=what)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_layers_match_torch_outputs_states_and_all_gradients(kind, data):
    cfg = data.draw(configs("LSTM" if kind == "LSTM" else kind))
    ours_in, ours_out, ours_mod, theirs_in, theirs_out, theirs_mod = run_both(kind, cfg)
    for k, (o, t) in enumerate(zip(ours_out, theirs_out)):
        assert_close(o, t, f"output {k}")
    rng = np.random.default_rng(7)
    ours_loss, theirs_loss = 0, 0
    for o, t in zip(ours_out, theirs_out):
        upstream = rng.standard_normal(tuple(t.shape))
        ours_loss = ours_loss + (o * dn.tensor(upstream)).sum()
        theirs_loss = theirs_loss + (t * torch.tensor(upstream)).sum()
    ours_loss.backward()
    theirs_loss.backward()
    names = ["input", "h0", "c0"]
    for k, (o, t) in enumerate(zip(ours_in, theirs_in)):
        if k == 0 or cfg["with_hx"]:
            assert_close(o.grad, t.grad, f"gradient of {names[k]}")
    ours_params = dict(ours_mod.named_parameters())
    for name, t in theirs_mod.named_parameters():
        assert_close(ours_params[name].grad, t.grad, f"gradient of {name}")


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_layers_match_torch_in_float32(kind, data):
    cfg = data.draw(configs(kind))
    _, ours_out, ours_mod, _, theirs_out, _ = run_both(kind, cfg, np.float32)
    for k, (o, t) in enumerate(zip(ours_out, theirs_out)):
        assert o.dtype == np.float32
        assert_close(o, t, f"float32 output {k}", atol=1e-5, rtol=1e-4)


CONFIGS = [
    ("RNN", dict(hidden_size=6)),
    ("RNN", dict(hidden_size=6, num_layers=3, nonlinearity="relu", bias=False)),
    ("LSTM", dict(hidden_size=6, num_layers=2, bidirectional=True)),
    ("LSTM", dict(hidden_size=6, num_layers=2, bidirectional=True, proj_size=3)),
    ("GRU", dict(hidden_size=6, num_layers=2, batch_first=True, dropout=0.2)),
]


@pytest.mark.parametrize("name,options", CONFIGS)
def test_parameters_state_dict_and_repr_equal_torch(name, options):
    ours, theirs = getattr(nn, name)(5, **options), getattr(torch.nn, name)(5, **options)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)
    assert [[tuple(p.shape) for p in ws] for ws in ours.all_weights] == [
        [tuple(p.shape) for p in ws] for ws in theirs.all_weights]


@pytest.mark.parametrize("name,options", CONFIGS)
def test_init_is_uniform_in_plus_minus_one_over_sqrt_hidden_from_the_global_generator(name,
                                                                                      options):
    dn.manual_seed(3)
    first = {k: v.numpy().copy() for k, v in getattr(nn, name)(5, **options).state_dict().items()}
    dn.manual_seed(3)
    again = getattr(nn, name)(5, **options).state_dict()
    bound = 1 / np.sqrt(options["hidden_size"])
    for key, value in first.items():
        np.testing.assert_array_equal(value, again[key].numpy())
        assert np.abs(value).max() <= bound
        assert value.dtype == np.float32


def test_init_distribution_has_uniform_variance():
    dn.manual_seed(0)
    weights = nn.LSTM(64, 100).weight_hh_l0.detach().numpy()
    bound = 1 / np.sqrt(100)
    assert abs(weights.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert abs(weights.mean()) < 0.01 * bound


@pytest.mark.parametrize("cell,options", [("RNNCell", {}), ("RNNCell", dict(nonlinearity="relu")),
                                          ("LSTMCell", {}), ("GRUCell", dict(bias=False))])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
def test_cells_match_torch(cell, options, batched, with_hx, rng):
    theirs = getattr(torch.nn, cell)(4, 3, **options).double()
    ours = getattr(nn, cell)(4, 3, **options).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    lead = (2,) if batched else ()
    arrays = [rng.standard_normal(lead + (4,))]
    if with_hx:
        arrays += [rng.standard_normal(lead + (3,)) for _ in range(2 if cell == "LSTMCell" else 1)]
    ours_in = [dn.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]

    def call(module, inputs):
        hx = None
        if with_hx:
            hx = tuple(inputs[1:]) if cell == "LSTMCell" else inputs[1]
        out = module(inputs[0], hx)
        return list(out) if isinstance(out, tuple) else [out]

    ours_out, theirs_out = call(ours, ours_in), call(theirs, theirs_in)
    upstream = [rng.standard_normal(tuple(t.shape)) for t in theirs_out]
    for o, t in zip(ours_out, theirs_out):
        assert_close(o, t, "cell output")
    sum((o * dn.tensor(u)).sum() for o, u in zip(ours_out, upstream)).backward()
    sum((t * torch.tensor(u)).sum() for t, u in zip(theirs_out, upstream)).backward()
    for o, t in zip(ours_in, theirs_in):
        assert_close(o.grad, t.grad, "cell input gradient")
    ours_params = dict(ours.named_parameters())
    for name, t in theirs.named_parameters():
        assert_close(ours_params[name].grad, t.grad, f"gradient of {name}")


# -- dropout between layers ----------------------------------------------------------------------
def test_dropout_one_in_training_zeroes_the_input_of_upper_layers_as_torch(rng):
    # With p = 1 every unit is dropped, so the result is deterministic and comparable.
    ours, theirs = build("GRU", 3, dict(hidden_size=4, num_layers=3, dropout=1.0))
    x = rng.standard_normal((5, 2, 3))
    out, h_n = ours(dn.tensor(x))
    t_out, t_h_n = theirs(torch.tensor(x))
    assert_close(out, t_out, "output")
    assert_close(h_n, t_h_n, "h_n")


def test_dropout_is_only_active_in_training_mode(rng):
    ours, theirs = build("LSTM", 3, dict(hidden_size=4, num_layers=2, dropout=0.5))
    x = rng.standard_normal((6, 2, 3))
    ours.eval()
    theirs.eval()
    assert_close(ours(dn.tensor(x))[0], theirs(torch.tensor(x))[0], "eval output")
    ours.train()
    dn.manual_seed(1)
    first = ours(dn.tensor(x))[0].detach().numpy()
    dn.manual_seed(1)
    again = ours(dn.tensor(x))[0].detach().numpy()
    np.testing.assert_array_equal(first, again)  # masks come from the global generator
    assert not np.allclose(first, theirs(torch.tensor(x))[0].detach().numpy())


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(3, 4, num_layers=2, dropout=0.5)


# -- errors --------------------------------------------------------------------------------------
ERROR_CASES = {
    "input_4d": lambda m: m.LSTM(3, 4)(m_t(m, (2, 3, 4, 5))),
    "input_size": lambda m: m.LSTM(3, 4)(m_t(m, (4, 2, 4))),
    "hidden_shape": lambda m: m.GRU(3, 4)(m_t(m, (4, 2, 3)), m_t(m, (1, 3, 4))),
    "lstm_c_shape": lambda m: m.LSTM(3, 4)(m_t(m, (5, 2, 3)), (m_t(m, (1, 2, 4)),
                                                               m_t(m, (1, 2, 3)))),
    "unbatched_hx_3d": lambda m: m.GRU(3, 4)(m_t(m, (5, 3)), m_t(m, (1, 1, 4))),
    "batched_hx_2d": lambda m: m.GRU(3, 4)(m_t(m, (5, 2, 3)), m_t(m, (2, 4))),
    "dtype": lambda m: m.GRU(3, 4)(m_t(m, (4, 2, 3), "float64")),
    "nonlinearity": lambda m: m.RNN(3, 4, nonlinearity="sigmoid"),
    "proj_too_big": lambda m: m.LSTM(3, 4, proj_size=4),
    "proj_negative": lambda m: m.LSTM(3, 4, proj_size=-1),
    "hidden_zero": lambda m: m.LSTM(3, 0),
    "layers_zero": lambda m: m.LSTM(3, 4, num_layers=0),
    "dropout_range": lambda m: m.LSTM(3, 4, dropout=2),
    "input_size_float": lambda m: m.LSTM(3.0, 4),
    "cell_input_size": lambda m: m.LSTMCell(3, 4)(m_t(m, (2, 5))),
    "cell_batch": lambda m: m.LSTMCell(3, 4)(m_t(m, (2, 3)), (m_t(m, (3, 4)), m_t(m, (3, 4)))),
    "cell_hidden_size": lambda m: m.RNNCell(3, 4)(m_t(m, (2, 3)), m_t(m, (2, 5))),
    "cell_input_3d": lambda m: m.GRUCell(3, 4)(m_t(m, (2, 2, 3))),
    "cell_hx_3d": lambda m: m.GRUCell(3, 4)(m_t(m, (2, 3)), m_t(m, (2, 2, 4))),
    "empty_sequence": lambda m: m.GRU(3, 4)(m_t(m, (0, 2, 3))),
}


def m_t(m, shape, dtype="float32"):
    """A random tensor of the framework whose nn namespace is ``m``."""
    lib = dn if m is nn else torch
    return lib.tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_have_torch_types_and_messages(case):
    with pytest.raises(Exception) as theirs:
        ERROR_CASES[case](torch.nn)
    # torch names dtypes "torch.float64"; ours are NumPy's "float64".
    message = str(theirs.value).replace("torch.", "")
    with pytest.raises(type(theirs.value), match=re.escape(message)):
        ERROR_CASES[case](nn)


# -- graph size ----------------------------------------------------------------------------------
def count_nodes(tensor):
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(getattr(v, "grad_fn", None) for v in node.inputs)
    return len(seen)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_graph_size_does_not_grow_with_sequence_length(name):
    module = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True)
    sizes = []
    for steps in (2, 50):
        out, _ = module(dn.randn(steps, 2, 3, requires_grad=True))
        sizes.append(count_nodes(out))
    assert sizes[0] == sizes[1] < 12


# -- nn.utils.rnn ----------------------------------------------------------------------------------
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 5), batch=st.integers(1, 4),
       batch_first=st.booleans(), enforce_sorted=st.booleans(), data=st.data())
def test_pack_padded_sequence_fields_match_torch(seed, steps, batch, batch_first, enforce_sorted,
                                                 data):
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    x = np.random.default_rng(seed).standard_normal((batch, steps, 2) if batch_first
                                                    else (steps, batch, 2))
    ours = U.pack_padded_sequence(dn.tensor(x), lengths, batch_first, enforce_sorted)
    theirs = TU.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first,
                                     enforce_sorted)
    np.testing.assert_array_equal(ours.data.numpy(), theirs.data.numpy())  # no grad: plain
    np.testing.assert_array_equal(ours.batch_sizes.numpy(), theirs.batch_sizes.numpy())
    for field in ("sorted_indices", "unsorted_indices"):
        o, t = getattr(ours, field), getattr(theirs, field)
        assert (o is None) == (t is None)
        if t is not None:
            np.testing.assert_array_equal(o.numpy(), t.numpy())
    total = steps + data.draw(st.integers(0, 2))
    padded, out_lengths = U.pad_packed_sequence(ours, batch_first, 1.5, total)
    t_padded, t_lengths = TU.pad_packed_sequence(theirs, batch_first, 1.5, total)
    np.testing.assert_array_equal(padded.numpy(), t_padded.numpy())
    np.testing.assert_array_equal(out_lengths.numpy(), t_lengths.numpy())
    assert out_lengths.dtype == np.int64


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_and_pack_sequence_match_torch(batch_first, padding_side, rng):
    arrays = [rng.standard_normal((n, 2, 3)) for n in (2, 4, 1)]
    ours = [dn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    padded = U.pad_sequence(ours, batch_first, -1.0, padding_side)
    t_padded = TU.pad_sequence(theirs, batch_first, -1.0, padding_side)
    assert_close(padded, t_padded, "pad_sequence")
    upstream = rng.standard_normal(tuple(t_padded.shape))
    (padded * dn.tensor(upstream)).sum().backward()
    (t_padded * torch.tensor(upstream)).sum().backward()
    for o, t in zip(ours, theirs):
        assert_close(o.grad, t.grad, "pad_sequence gradient")
    packed = U.pack_sequence(ours, enforce_sorted=False)
    t_packed = TU.pack_sequence(theirs, enforce_sorted=False)
    assert_close(packed.data, t_packed.data, "pack_sequence data")
    for o, t in zip(U.unpack_sequence(packed), TU.unpack_sequence(t_packed)):
        assert_close(o, t, "unpack_sequence")


@pytest.mark.parametrize("call", [
    lambda u, lib: u.pack_padded_sequence(lib.zeros(3, 2, 1), [2, 3]),
    lambda u, lib: u.pack_padded_sequence(lib.zeros(3, 2, 1), [2, 0], enforce_sorted=False),
    lambda u, lib: u.pack_padded_sequence(lib.zeros(3, 2, 1), [3, 2, 1]),
    lambda u, lib: u.pad_packed_sequence(u.pack_padded_sequence(lib.zeros(3, 2, 1), [3, 2]),
                                         total_length=2),
])
def test_packing_errors_match_torch(call):
    with pytest.raises(Exception) as theirs:
        call(TU, torch)
    with pytest.raises(type(theirs.value), match=re.escape(str(theirs.value))):
        call(U, dn)


def test_packed_lstm_final_state_is_the_state_after_each_sequences_own_last_step(rng):
    # Independent of torch: running each sequence alone gives the packed batch's h_n and c_n.
    lstm = nn.LSTM(3, 4, bidirectional=True).double()
    lengths = [2, 5, 3]
    x = rng.standard_normal((5, 3, 3))
    packed = U.pack_padded_sequence(dn.tensor(x), lengths, enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed)
    padded, _ = U.pad_packed_sequence(out)
    for b, n in enumerate(lengths):
        alone, (h_b, c_b) = lstm(dn.tensor(x[:n, b]))
        padded_b = padded.detach().numpy()[:, b]
        np.testing.assert_allclose(padded_b[:n], alone.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(h_n.detach().numpy()[:, b], h_b.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(c_n.detach().numpy()[:, b], c_b.detach().numpy(), atol=1e-12)
        assert np.all(padded_b[n:] == 0)


# -- the example ---------------------------------------------------------------------------------
def test_lstm_vs_rnn_example_runs_and_writes_its_plot(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "lstm_vs_rnn.py"
    spec = importlib.util.spec_from_file_location("lstm_vs_rnn_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "plot.png"
    results = example.main(["--seq-len", "6", "--steps", "3", "--hidden", "4", "--batch", "8",
                            "--test-size", "50", "--out", str(out)])
    assert out.stat().st_size > 0
    assert len(results) == 3 and all(0 <= acc <= 1 for acc in results.values())
    assert "test accuracy" in capsys.readouterr().out
