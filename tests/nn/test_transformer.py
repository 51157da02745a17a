"""TransformerEncoderLayer / TransformerEncoder against torch, PositionalEncoding, and the notes'
claim that a Transformer without positional encoding cannot tell positions apart."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from deepnotes.nn.layers.transformer import generate_square_subsequent_mask
from tests.nn.module_oracle import (
    compare_float32_forward,
    compare_with_torch_module,
    load_torch_weights,
)

ACTIVATIONS = {  # ours, torch's
    "relu": ("relu", "relu"),
    "gelu": ("gelu", "gelu"),
    "tanh_module": (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    "sigmoid_function": (lambda: dn.sigmoid, lambda: torch.sigmoid),
}


def _activation(name: str, which: int):
    value = ACTIVATIONS[name][which]
    return value() if callable(value) else value


@given(data=st.data(), nhead=st.integers(1, 3), head_dim=st.integers(1, 3),
       dim_feedforward=st.integers(1, 6), length=st.integers(1, 4), batch=st.integers(1, 3),
       batch_first=st.booleans(), norm_first=st.booleans(), bias=st.booleans(),
       activation=st.sampled_from(sorted(ACTIVATIONS)), num_layers=st.integers(1, 2),
       final_norm=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_transformer_encoder_matches_torch(data, nhead, head_dim, dim_feedforward, length, batch,
                                           batch_first, norm_first, bias, activation, num_layers,
                                           final_norm, seed):
    rng = np.random.default_rng(seed)
    d_model = nhead * head_dim
    unbatched = data.draw(st.booleans())
    mask_kind = data.draw(st.sampled_from(["none", "bool", "float", "causal", "causal_hint"]))
    padding_kind = data.draw(st.sampled_from(["none", "same"]))
    eps = data.draw(st.sampled_from([1e-5, 1e-3]))
    shape = (length, d_model) if unbatched else (
        (batch, length, d_model) if batch_first else (length, batch, d_model))
    x = rng.standard_normal(shape)
    mask = None
    if mask_kind == "bool":
        mask = rng.random((length, length)) < 0.4
        mask[:, 0] = False                                   # every query keeps one key
    elif mask_kind == "float":
        mask = rng.standard_normal((length, length))
    elif mask_kind.startswith("causal"):
        mask = generate_square_subsequent_mask(length, dtype=np.float64).numpy()
    padding = None
    if padding_kind == "same":
        padding = rng.random((length,) if unbatched else (batch, length)) < 0.4
        padding[..., 0] = False
        if mask is not None and mask.dtype != bool:
            padding = np.where(padding, -np.inf, 0.0)          # same dtype as the mask
    is_causal = True if mask_kind == "causal_hint" else None

    def make(lib, which):
        layer_cls = nn.TransformerEncoderLayer if lib is nn else torch.nn.TransformerEncoderLayer
        encoder_cls = nn.TransformerEncoder if lib is nn else torch.nn.TransformerEncoder
        norm_cls = nn.LayerNorm if lib is nn else torch.nn.LayerNorm
        layer = layer_cls(d_model, nhead, dim_feedforward, dropout=0.0,
                          activation=_activation(activation, which), layer_norm_eps=eps,
                          batch_first=batch_first, norm_first=norm_first, bias=bias)
        kw = {} if lib is nn else dict(enable_nested_tensor=False)
        return encoder_cls(layer, num_layers, norm=norm_cls(d_model) if final_norm else None, **kw)

    def call(module, args):
        src, m, kpm = args
        return module(src, mask=m, src_key_padding_mask=kpm, is_causal=is_causal)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare_with_torch_module(make(nn, 0), make(torch.nn, 1), (x, mask, padding), call=call)
        compare_float32_forward(make(nn, 0), make(torch.nn, 1), (x, mask, padding), call=call)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_alone_matches_torch(norm_first, activation, rng):
    x = rng.standard_normal((3, 5, 8))
    mask = rng.random((5, 5)) < 0.3
    np.fill_diagonal(mask, False)
    padding = rng.random((3, 5)) < 0.3
    padding[:, 0] = False
    kw = dict(dim_feedforward=16, dropout=0.0, activation=activation, batch_first=True,
              norm_first=norm_first)
    compare_with_torch_module(nn.TransformerEncoderLayer(8, 2, **kw),
                              torch.nn.TransformerEncoderLayer(8, 2, **kw), (x, mask, padding))


def test_submodule_names_and_state_dict_move_both_ways(rng):
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2, norm=nn.LayerNorm(8))
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2,
                                         norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert [name for name, _ in ours.layers[0].named_children()] == [
        name for name, _ in theirs.layers[0].named_children()]
    # ours -> torch, then compare in eval mode (dropout 0.1 is off)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((4, 2, 8)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(dn.tensor(x)).detach().numpy(), expected, atol=1e-5)
    # the copies are independent modules
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight


def test_dropout_is_active_in_train_mode_and_off_in_eval(rng):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    load_torch_weights(layer, theirs)
    x = dn.tensor(rng.standard_normal((5, 2, 8)).astype(np.float32))
    a, b = layer(x).detach().numpy(), layer(x).detach().numpy()
    assert not np.allclose(a, b)
    layer.eval()
    theirs.eval()
    c, d = layer(x).detach().numpy(), layer(x).detach().numpy()
    np.testing.assert_array_equal(c, d)
    with torch.no_grad():
        expected = theirs(torch.tensor(x.numpy())).numpy()
    np.testing.assert_allclose(c, expected, atol=1e-5)


def test_square_subsequent_mask_and_causal_detection_match_torch():
    for size in (1, 4):
        ours = generate_square_subsequent_mask(size).numpy()
        theirs = torch.nn.Transformer.generate_square_subsequent_mask(size).numpy()
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == theirs.dtype == np.float32


def test_activation_argument_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not swish"):
        nn.TransformerEncoderLayer(4, 2, activation="swish")
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not swish"):
        torch.nn.TransformerEncoderLayer(4, 2, activation="swish")
    with pytest.raises(TypeError, match="encoder_layer must be a Module"):
        nn.TransformerEncoder("layer", 2)


# -- positional encoding ----------------------------------------------------------------------

def _torch_tutorial_pe(d_model: int, max_len: int) -> np.ndarray:
    """The sinusoidal table written directly from the paper's formula, in torch."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    index = torch.arange(d_model, dtype=torch.float64)
    angle = position / torch.pow(10000.0, (2 * torch.div(index, 2, rounding_mode="floor"))
                                 / d_model)
    return torch.where(index % 2 == 0, torch.sin(angle), torch.cos(angle)).numpy()


@given(d_model=st.integers(1, 9), max_len=st.integers(1, 50), length=st.integers(1, 6),
       batch_first=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_positional_encoding_follows_the_formula(d_model, max_len, length, batch_first, seed):
    length = min(length, max_len)
    module = nn.PositionalEncoding(d_model, max_len, batch_first=batch_first, dtype=dn.float64)
    expected = _torch_tutorial_pe(d_model, max_len)
    np.testing.assert_allclose(module.pe.numpy(), expected, atol=1e-12)
    x = np.random.default_rng(seed).standard_normal(
        (2, length, d_model) if batch_first else (length, 2, d_model))
    out = module(dn.tensor(x)).numpy()
    table = expected[:length]
    np.testing.assert_allclose(out, x + (table[None] if batch_first else table[:, None]),
                               atol=1e-12)


def test_positional_encoding_details(rng):
    module = nn.PositionalEncoding(6, max_len=8, dropout=0.5)
    assert "pe" not in module.state_dict()                    # a fixed table, not model state
    pe = module.pe.numpy()
    assert pe.dtype == np.float32 and pe.shape == (8, 6)
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(pe[3, 0], math.sin(3), rtol=1e-6)
    x = dn.tensor(rng.standard_normal((5, 6)).astype(np.float32), requires_grad=True)
    module.eval()
    np.testing.assert_allclose(module(x).detach().numpy(), x.detach().numpy() + pe[:5],
                               atol=1e-6)
    module(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 1.0)
    module.train()
    assert (module(x).detach().numpy() == 0).mean() > 0.2       # dropout acts in training
    with pytest.raises(RuntimeError, match="exceeds max_len=8"):
        module(dn.zeros(9, 1, 6))
    with pytest.raises(RuntimeError, match="expected input"):
        module(dn.zeros(4, 1, 5))


# -- notes 003: "why can a Transformer not represent positions?" -------------------------------

def test_encoder_without_positions_is_permutation_equivariant(rng):
    """Permuting the tokens permutes the outputs the same way: self-attention and the per-token
    feed-forward network see a set, not a sequence. Adding a positional encoding breaks it."""
    dn.manual_seed(0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2).double()
    positions = nn.PositionalEncoding(8, max_len=16, dtype=dn.float64)
    x = rng.standard_normal((6, 3, 8))                          # (L, N, E)
    perm = rng.permutation(6)
    while (perm == np.arange(6)).all():
        perm = rng.permutation(6)
    out = encoder(dn.tensor(x)).detach().numpy()
    out_permuted = encoder(dn.tensor(x[perm])).detach().numpy()
    np.testing.assert_allclose(out_permuted, out[perm], atol=1e-12)
    with_pe = encoder(positions(dn.tensor(x))).detach().numpy()
    with_pe_permuted = encoder(positions(dn.tensor(x[perm]))).detach().numpy()
    assert np.abs(with_pe_permuted - with_pe[perm]).max() > 1e-2
