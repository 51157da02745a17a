"""Channel-wise dropout (dropout1d/2d/3d), alpha dropout, and the dropout modules.

Random masks cannot equal PyTorch's, so the comparison with PyTorch is on everything else: output
shapes, which axes share one mask entry (found from each framework's output on a ones input),
the warnings and errors for every input rank in training and evaluation, the two values alpha
dropout produces on a zero input and the affine map of the kept values. The rest are the
properties that define the ops (a dropped channel is all zero, a kept one is x / (1 - p), the
gradient is the same mask), with statistical checks 6 standard deviations wide and fixed seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes import nn
from deepnotes.ops.dropout import alpha_dropout_coefficients

FEATURE = ["dropout1d", "dropout2d", "dropout3d"]
SHAPE = (4, 5, 3, 4, 3)


def _run(fn, x, *args):
    """(output or None, (error type, message) or None, warning messages) of ``fn(x, *args)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out, error = fn(x, *args), None
        except Exception as e:  # noqa: BLE001 - compared with torch's exception below
            out, error = None, (type(e), str(e))
    return out, error, [str(w.message) for w in caught]


def _shared_axes(y: np.ndarray) -> list[bool]:
    """For each axis, whether the output is constant along it (one mask entry spans it)."""
    return [bool(np.all(np.ptp(y, axis=k) == 0)) for k in range(y.ndim)]


@pytest.mark.parametrize("name", FEATURE)
@pytest.mark.parametrize("ndim", range(6))
@pytest.mark.parametrize("training", [True, False])
def test_feature_dropout_shapes_masks_warnings_and_errors_as_torch(name, ndim, training):
    shape = SHAPE[:ndim]
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours, our_error, our_warnings = _run(getattr(F, name), dn.ones(shape, dtype=dn.float64),
                                         0.5, training)
    theirs, their_error, their_warnings = _run(getattr(TF, name),
                                               torch.ones(shape, dtype=torch.float64), 0.5,
                                               training)
    assert our_warnings == their_warnings
    assert our_error == their_error
    if ours is not None:
        assert ours.shape == tuple(theirs.shape)
        assert _shared_axes(ours.data) == _shared_axes(theirs.numpy())
        assert set(np.unique(ours.data)) <= ({0.0, 2.0} if training else {1.0})


@st.composite
def feature_case(draw):
    name = draw(st.sampled_from(FEATURE))
    batched = draw(st.booleans())
    spatial = {"dropout1d": 1, "dropout2d": 2, "dropout3d": 3}[name]
    if name == "dropout2d":
        batched = True                                  # dropout2d reads 3-D input as (N, C, L)
    dims = [draw(st.integers(1, 3)) for _ in range(spatial + 1 + batched)]
    return name, tuple(dims), batched, draw(st.floats(0.05, 0.95)), draw(st.integers(0, 2**31))


@given(feature_case())
def test_feature_dropout_zeroes_whole_channels_and_backprops_the_same_mask(case):
    name, shape, batched, p, seed = case
    rng = np.random.default_rng(seed)
    dn.manual_seed(seed)
    x_np = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)   # never 0
    x = dn.tensor(x_np, requires_grad=True)
    y = getattr(F, name)(x, p)
    lead = 2 if batched else 1
    kept = (y.data != 0).reshape(shape[:lead] + (-1,))
    assert np.all(kept.all(axis=-1) | ~kept.any(axis=-1)), "a channel was partly dropped"
    np.testing.assert_allclose(y.data[y.data != 0], x_np[y.data != 0] / (1 - p), rtol=1e-15)
    upstream = rng.standard_normal(shape)
    y.backward(upstream)
    np.testing.assert_allclose(x.grad.data, upstream * (y.data != 0) / (1 - p), rtol=1e-15)


@pytest.mark.parametrize("name, shape", [("dropout1d", (200, 100, 2)),
                                         ("dropout2d", (200, 100, 2, 2)),
                                         ("dropout3d", (100, 200, 1, 2, 2))])
def test_feature_dropout_drops_about_p_of_the_channels(name, shape):
    dn.manual_seed(3)
    p, channels = 0.3, shape[0] * shape[1]
    y = getattr(F, name)(dn.ones(shape), p).data.reshape(channels, -1)
    dropped = int((y[:, 0] == 0).sum())
    assert abs(dropped - p * channels) <= 6 * np.sqrt(channels * p * (1 - p))


def test_feature_dropout_edge_cases():
    x = dn.ones((2, 3, 4), requires_grad=True)
    assert F.dropout1d(x, 0.5, training=False) is x
    assert F.dropout2d(dn.ones((2, 3, 4, 4)), 0.0).data.sum() == 96
    np.testing.assert_array_equal(F.dropout3d(dn.ones((1, 2, 2, 2, 2)), 1.0).data, 0)
    empty = dn.ones((0, 3, 4, 4))
    assert F.dropout2d(empty, 0.5) is empty
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        F.dropout2d(dn.ones((1, 2, 3, 3)), 1.5, training=False)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        TF.dropout2d(torch.ones(1, 2, 3, 3), 1.5, training=False)


def test_feature_dropout_inplace():
    dn.manual_seed(1)
    x = dn.ones((20, 30, 4))
    assert F.dropout1d(x, 0.5, inplace=True) is x
    assert set(np.unique(x.data)) == {0.0, 2.0}
    assert np.all(np.ptp(x.data, axis=2) == 0)
    message = "a leaf Variable that requires grad is being used in an in-place operation."
    with pytest.raises(RuntimeError, match=message):
        F.dropout2d(dn.ones((1, 2, 3, 3), requires_grad=True), 0.5, inplace=True)
    with pytest.raises(RuntimeError, match=message):
        TF.dropout2d(torch.ones(1, 2, 3, 3, requires_grad=True), 0.5, inplace=True)


# -- alpha dropout ---------------------------------------------------------------------------------


def _affine_of(out: np.ndarray, x: np.ndarray, dropped_value: float) -> tuple[float, float]:
    """(a, b) with out = a x + b on the kept elements (least squares; exact for either op)."""
    kept = out != dropped_value
    a, b = np.polyfit(x[kept], out[kept], 1)
    return a, b


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("feature", [False, True])
def test_alpha_dropout_values_match_torch(p, feature):
    """On a zero input both give the same two values (b kept, a*alpha' + b dropped); on any
    input the kept values are the same affine map a x + b."""
    ours_fn, theirs_fn = ((F.feature_alpha_dropout, TF.feature_alpha_dropout) if feature
                          else (F.alpha_dropout, TF.alpha_dropout))
    dn.manual_seed(0)
    torch.manual_seed(0)
    shape = (400, 50, 2)
    ours = np.unique(ours_fn(dn.zeros(shape, dtype=dn.float64), p, True).data)
    theirs = np.unique(theirs_fn(torch.zeros(shape, dtype=torch.float64), p, True).numpy())
    assert ours.size == theirs.size == 2
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)
    x = np.random.default_rng(1).standard_normal(shape)
    dropped = min(ours)                                          # a * alpha' + b < b
    a, b = _affine_of(ours_fn(dn.tensor(x), p, True).data, x, dropped)
    a_t, b_t = _affine_of(theirs_fn(torch.tensor(x), p, True).numpy(), x, dropped)
    np.testing.assert_allclose([a, b], [a_t, b_t], rtol=1e-10)
    np.testing.assert_allclose([a, b], alpha_dropout_coefficients(p), rtol=1e-10)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_keeps_zero_mean_and_unit_variance(p):
    dn.manual_seed(2)
    n = 400_000
    x = np.random.default_rng(2).standard_normal(n)
    y = F.alpha_dropout(dn.tensor(x), p, training=True).data
    assert abs(y.mean()) <= 6 / np.sqrt(n)
    assert abs(y.var() - 1) <= 0.02
    plain = F.dropout(dn.tensor(x), p).data                      # plain dropout inflates it
    assert plain.var() > 1 + 0.5 * p


@given(p=st.floats(0.05, 0.95), feature=st.booleans(), seed=st.integers(0, 2**31))
def test_alpha_dropout_gradient_is_a_times_the_mask(p, feature, seed):
    rng = np.random.default_rng(seed)
    dn.manual_seed(seed)
    x = dn.tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    fn = F.feature_alpha_dropout if feature else F.alpha_dropout
    y = fn(x, p, training=True)
    a, b = alpha_dropout_coefficients(p)
    dropped_value = a * -1.7580993408473766 + b
    kept = ~np.isclose(y.data, dropped_value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y.data[kept], a * x.data[kept] + b, rtol=1e-12)
    if feature:
        per_channel = kept.reshape(12, 5)
        assert np.all(per_channel.all(axis=1) | ~per_channel.any(axis=1))
    upstream = rng.standard_normal((3, 4, 5))
    y.backward(upstream)
    np.testing.assert_allclose(x.grad.data, a * kept * upstream, rtol=1e-12)


def test_alpha_dropout_defaults_and_edge_cases():
    x = dn.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    assert F.alpha_dropout(x, 0.5) is x                          # training=False by default
    assert F.feature_alpha_dropout(x, 0.5) is x
    assert F.alpha_dropout(x, 0.0, training=True) is x
    np.testing.assert_array_equal(F.alpha_dropout(x, 1.0, training=True).data, 0)
    np.testing.assert_array_equal(TF.alpha_dropout(torch.tensor(x.data), 1.0, True).numpy(), 0)
    for fn in (F.feature_alpha_dropout, TF.feature_alpha_dropout):
        with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
            fn((dn if fn is F.feature_alpha_dropout else torch).ones(4), 0.5, True)
    for fn, module in ((F.alpha_dropout, dn), (TF.alpha_dropout, torch)):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            fn(module.ones(4), -0.1, True)


# -- modules ---------------------------------------------------------------------------------------

MODULES = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout"]


@pytest.mark.parametrize("name", MODULES)
def test_dropout_modules_repr_errors_and_eval_as_torch(name):
    assert repr(getattr(nn, name)(0.3, True)) == repr(getattr(torch.nn, name)(0.3, True))
    for make in (getattr(nn, name), getattr(torch.nn, name)):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, "
                                             "but got 2"):
            make(2)
    module = getattr(nn, name)(0.5).eval()
    x = dn.ones((2, 3, 4) if name == "Dropout1d" else (2, 3, 4, 4, 4))
    assert module(x) is x


@pytest.mark.parametrize("name, shape", [("Dropout1d", (20, 30, 4)),
                                         ("Dropout2d", (20, 30, 2, 2)),
                                         ("Dropout3d", (20, 30, 2, 2, 2)),
                                         ("FeatureAlphaDropout", (20, 30, 2, 2))])
def test_channel_dropout_modules_drop_channels_in_training(name, shape):
    dn.manual_seed(4)
    y = getattr(nn, name)(0.5)(dn.ones(shape)).data.reshape(600, -1)
    assert np.all(np.ptp(y, axis=1) == 0)
    assert len(np.unique(y)) == 2


def test_dropout_scale_at_test_is_the_notes_formulation():
    """Classic dropout: no scaling in training, times (1 - p) at test; same mask as inverted."""
    p, x = 0.3, dn.tensor(np.random.default_rng(0).uniform(1, 2, 1000))
    classic, inverted = nn.Dropout(p, scale_at_test=True), nn.Dropout(p)
    assert repr(classic) == "Dropout(p=0.3, inplace=False, scale_at_test=True)"
    dn.manual_seed(5)
    y_classic = classic(x).data
    dn.manual_seed(5)
    y_inverted = inverted(x).data
    np.testing.assert_allclose(y_classic, y_inverted * (1 - p), rtol=1e-15)   # same mask
    assert set(np.round(y_classic / x.data, 12)) == {0.0, 1.0}                # unscaled
    np.testing.assert_allclose(classic.eval()(x).data, (1 - p) * x.data, rtol=1e-15)
    assert inverted.eval()(x) is x
    with pytest.raises(ValueError, match="inplace=True is not supported with scale_at_test"):
        nn.Dropout(p, inplace=True, scale_at_test=True)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_both_dropout_forms_have_the_test_output_as_training_expectation(p):
    """E[train output] = eval output for inverted (= x) and classic (= (1 - p) x) dropout."""
    n, value = 200_000, 3.0
    x = dn.full((n,), value, dtype=dn.float64)
    for module, scale in ((nn.Dropout(p), 1 / (1 - p)), (nn.Dropout(p, scale_at_test=True), 1)):
        dn.manual_seed(9)
        train_mean = module.train()(x).data.mean()
        test_value = module.eval()(x).data[0]
        # a train output is value * scale * Bernoulli(1 - p): std of the mean below
        std_of_mean = value * scale * np.sqrt(p * (1 - p) / n)
        assert abs(train_mean - test_value) <= 6 * std_of_mean, (module, train_mean, test_value)
