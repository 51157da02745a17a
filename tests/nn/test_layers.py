"""Every layer against its torch.nn counterpart with copied weights: forward, input and parameter
gradients in float64, float32 forward, state_dict keys, repr, default initialisation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def check_layer(ours, theirs, *inputs, atol=1e-10, rtol=1e-7, float32_atol=1e-5, grad=True):
    """Copy torch's weights into ours, then compare forward, the gradient of every float input and
    every parameter (random upstream gradient) in float64, and the forward in float32."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    ours.double()
    theirs.double()
    _copy_weights(ours, theirs)

    def make(lib, dtype, requires_grad):
        out = []
        for a in inputs:
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                a = a.astype(dtype)
                out.append(dn.tensor(a, requires_grad=requires_grad) if lib == "dn"
                           else torch.tensor(a, requires_grad=requires_grad))
            else:
                out.append(dn.tensor(a) if lib == "dn" else torch.tensor(a))
        return out

    ours_in, theirs_in = make("dn", np.float64, grad), make("torch", np.float64, grad)
    y, expected = ours(*ours_in), theirs(*theirs_in)
    ys = y if isinstance(y, tuple) else (y,)
    expected_s = expected if isinstance(expected, tuple) else (expected,)
    for a, b in zip(ys, expected_s):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=atol, rtol=rtol)
    if grad:
        upstream = np.random.default_rng(7).standard_normal(ys[0].shape)
        (ys[0] * dn.tensor(upstream)).sum().backward()
        (expected_s[0] * torch.tensor(upstream)).sum().backward()
        for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
            if b.requires_grad:
                np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=atol, rtol=rtol,
                                           err_msg=f"gradient of input {i}")
        theirs_params = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.data, theirs_params[name].grad.numpy(), atol=atol,
                                       rtol=rtol, err_msg=f"gradient of {name}")
    ours.float()
    theirs.float()
    y32 = ours(*make("dn", np.float32, False))
    expected32 = theirs(*make("torch", np.float32, False))
    y32 = y32[0] if isinstance(y32, tuple) else y32
    expected32 = expected32[0] if isinstance(expected32, tuple) else expected32
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, expected32.detach().numpy(), atol=float32_atol, rtol=1e-4)
    return y


def both(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


def _rng(seed=0):
    return np.random.default_rng(seed)


# -- Linear ---------------------------------------------------------------------------------------

@given(st.integers(1, 6), st.integers(1, 6), st.lists(st.integers(1, 3), max_size=2),
       st.booleans())
def test_linear(in_features, out_features, lead, bias):
    ours, theirs = both("Linear", in_features, out_features, bias=bias)
    x = _rng().standard_normal((*lead, in_features))
    check_layer(ours, theirs, x)


def _assert_uniform_bound(w: np.ndarray, bound: float) -> None:
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound / math.sqrt(3)


def test_default_init_statistics_match_torch_formula():
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = both("Linear", 1000, 500)
    bound = 1 / math.sqrt(1000)                           # kaiming_uniform_(a=sqrt(5))
    _assert_uniform_bound(ours.weight.data, bound)
    _assert_uniform_bound(theirs.weight.detach().numpy(), bound)
    assert np.abs(ours.bias.data).max() <= bound
    assert abs(ours.weight.data.std() - theirs.weight.detach().numpy().std()) < 0.01 * bound
    conv, tconv = both("Conv2d", 64, 128, 3, groups=2)
    bound = 1 / math.sqrt(32 * 9)                         # fan_in = C_in / groups * kH * kW
    _assert_uniform_bound(conv.weight.data, bound)
    _assert_uniform_bound(tconv.weight.detach().numpy(), bound)
    assert np.abs(conv.bias.data).max() <= bound
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.data == 1) and np.all(bn.bias.data == 0)
    assert np.all(bn.running_mean.data == 0) and np.all(bn.running_var.data == 1)
    assert ours.weight.dtype == np.float32
    assert nn.Linear(2, 3, dtype=dn.float64).weight.dtype == np.float64


def test_init_draws_from_the_global_generator():
    dn.manual_seed(11)
    a = nn.Linear(4, 3)
    dn.manual_seed(11)
    b = nn.Linear(4, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, nn.Linear(4, 3).weight.data)


# -- Conv2d ---------------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"])))
    stride = 1 if padding == "same" else draw(st.integers(1, 3))
    size = [dilation * (k - 1) + 1 + draw(st.integers(0, 4)) for k in kernel]
    bias = draw(st.booleans())
    return dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=bias, size=size)


@given(conv_cases())
def test_conv2d(case):
    ours, theirs = both("Conv2d", case["c_in"], case["c_out"], case["kernel"],
                        stride=case["stride"], padding=case["padding"],
                        dilation=case["dilation"], groups=case["groups"], bias=case["bias"])
    x = _rng().standard_normal((2, case["c_in"], *case["size"]))
    check_layer(ours, theirs, x)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=(3, 1), stride=2,
                                                              padding=1, groups=2),
                                    dict(kernel_size=3, padding="same", dilation=2, bias=False)])
def test_conv2d_repr_and_attributes(kwargs):
    ours, theirs = both("Conv2d", 4, 4, **kwargs)
    assert repr(ours) == repr(theirs)
    for name in ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"):
        assert getattr(ours, name) == getattr(theirs, name)


# -- pooling --------------------------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    kernel = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    padding = draw(st.integers(0, min(kh, kw) // 2))
    ceil_mode = draw(st.booleans())
    size = (draw(st.integers(max(kh, 2), 8)), draw(st.integers(max(kw, 2), 8)))
    return kernel, stride, padding, ceil_mode, size


@given(pool_cases(), st.integers(1, 2))
def test_max_pool2d(case, dilation):
    kernel, stride, padding, ceil_mode, size = case
    k = max(kernel) if isinstance(kernel, tuple) else kernel
    size = tuple(s + (dilation - 1) * (k - 1) for s in size)
    ours, theirs = both("MaxPool2d", kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    check_layer(ours, theirs, _rng().standard_normal((2, 3, *size)))


def test_max_pool2d_return_indices():
    ours, theirs = both("MaxPool2d", 2, return_indices=True)
    x = _rng().standard_normal((2, 3, 6, 6))
    (y, idx), (ty, tidx) = ours(dn.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_array_equal(idx.data, tidx.numpy())
    np.testing.assert_allclose(y.data, ty.numpy())


@given(pool_cases(), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d(case, count_include_pad, divisor_override):
    kernel, stride, padding, ceil_mode, size = case
    ours, theirs = both("AvgPool2d", kernel, stride, padding, ceil_mode, count_include_pad,
                        divisor_override)
    check_layer(ours, theirs, _rng().standard_normal((2, 3, *size)))


@given(st.sampled_from([1, 2, 3, (2, 3), (None, 2), (4, None)]), st.integers(3, 7),
       st.integers(3, 7))
def test_adaptive_avg_pool2d(output_size, h, w):
    ours, theirs = both("AdaptiveAvgPool2d", output_size)
    check_layer(ours, theirs, _rng().standard_normal((2, 3, h, w)))


@pytest.mark.parametrize("output_size", [1, (2, 3), (None, 2)])
def test_adaptive_max_pool2d(output_size):
    ours, theirs = both("AdaptiveMaxPool2d", output_size)
    check_layer(ours, theirs, _rng().standard_normal((2, 3, 5, 7)))
    ours, theirs = both("AdaptiveMaxPool2d", output_size, return_indices=True)
    x = _rng().standard_normal((2, 3, 5, 7))
    np.testing.assert_array_equal(ours(dn.tensor(x))[1].data, theirs(torch.tensor(x))[1].numpy())


# -- shape and activation layers ------------------------------------------------------------------

@pytest.mark.parametrize("name,args,shape", [
    ("Flatten", (), (2, 3, 4, 5)),
    ("Flatten", (0, 2), (2, 3, 4, 5)),
    ("Flatten", (-3, -2), (2, 3, 4, 5)),
    ("Identity", (3, "anything"), (2, 3)),
    ("ReLU", (), (4, 5)),
    ("Sigmoid", (), (4, 5)),
    ("Tanh", (), (4, 5)),
    ("Softmax", (1,), (4, 5)),
    ("Softmax", (-1,), (2, 3, 4)),
    ("LogSoftmax", (0,), (4, 5)),
    ("LogSoftmax", (2,), (2, 3, 4)),
])
def test_parameter_free_layers(name, args, shape):
    ours, theirs = both(name, *args)
    check_layer(ours, theirs, _rng().standard_normal(shape))


def test_relu_inplace_on_an_intermediate_tensor():
    x = _rng().standard_normal((4, 5))
    ours_x, theirs_x = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = both("ReLU", inplace=True)
    assert repr(ours) == repr(theirs) == "ReLU(inplace=True)"
    y, expected = ours(ours_x * 2), theirs(theirs_x * 2)
    np.testing.assert_allclose(y.data, expected.detach().numpy())
    y.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(ours_x.grad.data, theirs_x.grad.numpy())


def test_dropout_train_and_eval():
    layer = nn.Dropout(0.3)
    assert repr(layer) == repr(torch.nn.Dropout(0.3))
    x = dn.tensor(_rng().standard_normal((200, 100)) + 5.0, dtype=dn.float64)
    dn.manual_seed(0)
    y = layer(x).data
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01                 # 20,000 draws: 3 sigma = 0.01
    np.testing.assert_allclose(y[kept], x.data[kept] / 0.7, rtol=1e-14)
    layer.eval()
    assert layer(x) is x or np.array_equal(layer(x).data, x.data)
    assert np.array_equal(nn.Dropout(0.0)(x).data, x.data)
    assert not nn.Dropout(1.0)(x).data.any()


# -- normalisation --------------------------------------------------------------------------------

@given(st.sampled_from(["BatchNorm1d-2", "BatchNorm1d-3", "BatchNorm2d"]),
       st.one_of(st.none(), st.floats(0.0, 1.0)), st.booleans(), st.booleans(),
       st.integers(1, 4), st.sampled_from([1e-5, 1e-3]))
def test_batch_norm_running_stats_over_steps(kind, momentum, affine, track, steps, eps):
    name, dims = (kind.split("-")[0], int(kind.split("-")[1])) if "-" in kind else (kind, 4)
    shape = {2: (6, 3), 3: (4, 3, 5), 4: (3, 3, 4, 5)}[dims]
    ours, theirs = both(name, 3, eps=eps, momentum=momentum, affine=affine,
                        track_running_stats=track)
    ours.double()
    theirs.double()
    if affine:                                            # non-trivial gamma and beta
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
    _copy_weights(ours, theirs)
    rng = _rng(steps)
    for _ in range(steps):
        x = rng.standard_normal(shape) * 3 + 1
        np.testing.assert_allclose(ours(dn.tensor(x)).data,
                                   theirs(torch.tensor(x)).detach().numpy(), atol=1e-10)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].data, value.numpy(), rtol=1e-12,
                                   atol=1e-14, err_msg=key)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(dn.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               atol=1e-10)


@pytest.mark.parametrize("name,shape", [("BatchNorm1d", (5, 4)), ("BatchNorm1d", (3, 4, 6)),
                                        ("BatchNorm2d", (3, 4, 5, 2))])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(name, shape, training):
    ours, theirs = both(name, 4)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
        theirs.running_mean.uniform_(-1, 1)
        theirs.running_var.uniform_(0.5, 2)
    ours.train(training)
    theirs.train(training)
    check_layer(ours, theirs, _rng().standard_normal(shape) * 2 + 1)


def test_batch_norm_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    rng = _rng()
    batches = [rng.standard_normal((8, 2)) * (i + 1) for i in range(5)]
    for x in batches:
        bn(dn.tensor(x))
    np.testing.assert_allclose(bn.running_mean.data, np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data,
                               np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 5


def test_batch_norm_bias_false_and_input_checks():
    ours, theirs = both("BatchNorm2d", 3, bias=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) and ours.bias is None
    assert repr(ours) == repr(theirs)
    for layer, bad, message in ((nn.BatchNorm1d(3), (2, 3, 4, 4), "expected 2D or 3D input "
                                 "(got 4D input)"),
                                (nn.BatchNorm2d(3), (2, 3), "expected 4D input (got 2D input)")):
        with pytest.raises(ValueError) as info:
            layer(dn.zeros(*bad))
        assert str(info.value) == message
        with pytest.raises(ValueError) as theirs_info:
            getattr(torch.nn, type(layer).__name__)(3)(torch.zeros(*bad))
        assert str(theirs_info.value) == message


@given(st.sampled_from([(4,), (3, 4), 4]), st.booleans(), st.booleans())
def test_layer_norm(normalized_shape, affine, bias):
    ours, theirs = both("LayerNorm", normalized_shape, elementwise_affine=affine, bias=bias)
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            if theirs.bias is not None:
                theirs.bias.uniform_(-1, 1)
    check_layer(ours, theirs, _rng().standard_normal((2, 3, 4)))


# -- losses ---------------------------------------------------------------------------------------

@given(st.sampled_from(["mean", "sum", "none"]), st.booleans(), st.sampled_from([-100, 1]),
       st.sampled_from([0.0, 0.2]), st.booleans())
def test_cross_entropy_loss(reduction, weighted, ignore_index, label_smoothing, spatial):
    rng = _rng()
    weight = rng.uniform(0.5, 2, 4) if weighted else None
    kwargs = dict(reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)
    ours = nn.CrossEntropyLoss(None if weight is None else dn.tensor(weight), **kwargs)
    theirs = torch.nn.CrossEntropyLoss(None if weight is None else torch.tensor(weight), **kwargs)
    shape, target_shape = ((3, 4, 2, 2), (3, 2, 2)) if spatial else ((6, 4), (6,))
    target = rng.integers(0, 4, size=target_shape)
    target.flat[0] = 0                                   # never all ignored
    check_layer(ours, theirs, rng.standard_normal(shape), target)


@given(st.sampled_from(["mean", "sum", "none"]), st.booleans())
def test_nll_loss(reduction, weighted):
    rng = _rng()
    weight = rng.uniform(0.5, 2, 5) if weighted else None
    ours = nn.NLLLoss(None if weight is None else dn.tensor(weight), reduction=reduction)
    theirs = torch.nn.NLLLoss(None if weight is None else torch.tensor(weight),
                              reduction=reduction)
    check_layer(ours, theirs, rng.standard_normal((6, 5)), rng.integers(0, 5, size=6))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    rng = _rng()
    ours, theirs = both("MSELoss", reduction=reduction)
    check_layer(ours, theirs, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


@pytest.mark.parametrize("name,kwargs", [
    ("L1Loss", {}), ("L1Loss", {"reduction": "sum"}), ("SmoothL1Loss", {"beta": 0.5}),
    ("SmoothL1Loss", {"reduction": "none"}), ("HuberLoss", {"delta": 0.7}),
    ("HuberLoss", {"reduction": "sum"}),
])
def test_regression_losses(name, kwargs):
    rng = _rng()
    ours, theirs = both(name, **kwargs)
    check_layer(ours, theirs, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_losses(reduction, weighted):
    rng = _rng()
    logits, target = rng.standard_normal((5, 3)), rng.uniform(0, 1, (5, 3))
    weight = rng.uniform(0.5, 2, 3) if weighted else None
    pos_weight = rng.uniform(0.5, 2, 3) if weighted else None
    ours = nn.BCELoss(None if weight is None else dn.tensor(weight), reduction=reduction)
    theirs = torch.nn.BCELoss(None if weight is None else torch.tensor(weight),
                              reduction=reduction)
    check_layer(ours, theirs, 1 / (1 + np.exp(-logits)), target)
    ours = nn.BCEWithLogitsLoss(None if weight is None else dn.tensor(weight),
                                reduction=reduction,
                                pos_weight=None if pos_weight is None else dn.tensor(pos_weight))
    theirs = torch.nn.BCEWithLogitsLoss(
        None if weight is None else torch.tensor(weight), reduction=reduction,
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    check_layer(ours, theirs, logits, target)


def test_loss_weight_is_a_buffer_and_legacy_arguments():
    ours = nn.CrossEntropyLoss(dn.tensor([1.0, 2.0]))
    theirs = torch.nn.CrossEntropyLoss(torch.tensor([1.0, 2.0]))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    with pytest.warns(UserWarning):
        legacy = torch.nn.MSELoss(size_average=False).reduction
    assert nn.MSELoss(size_average=False).reduction == legacy == "sum"
    assert nn.NLLLoss(reduce=False).reduction == "none"


# -- state_dict keys and repr for every layer -----------------------------------------------------

LAYER_CONFIGS = [
    ("Linear", (3, 2), {}), ("Linear", (3, 2), {"bias": False}),
    ("Conv2d", (2, 4, 3), {"stride": 2, "bias": False}),
    ("MaxPool2d", (3,), {"stride": 1, "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", ((2, 3),), {}), ("AdaptiveAvgPool2d", ((5, 7),), {}),
    ("BatchNorm1d", (4,), {"momentum": None}),
    ("BatchNorm2d", (4,), {"affine": False, "track_running_stats": False}),
    ("LayerNorm", ((2, 3),), {"eps": 1e-3}), ("Dropout", (0.1,), {}), ("Flatten", (), {}),
    ("Softmax", (), {}), ("LogSoftmax", (1,), {}), ("ReLU", (), {}), ("Identity", (), {}),
    ("CrossEntropyLoss", (), {}), ("NLLLoss", (), {}), ("MSELoss", (), {}),
    ("AdaptiveMaxPool2d", (3,), {}), ("L1Loss", (), {}), ("SmoothL1Loss", (), {"beta": 2.0}),
    ("HuberLoss", (), {}), ("BCELoss", (), {}), ("BCEWithLogitsLoss", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", LAYER_CONFIGS)
def test_keys_shapes_and_repr_match_torch(name, args, kwargs):
    ours, theirs = both(name, *args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())


# -- constructor validation -----------------------------------------------------------------------

VALIDATION = [
    (lambda: nn.Linear(0, 3), ValueError, "in_features must be a positive integer, got "
     "in_features=0"),
    (lambda: nn.Linear(3, -1), ValueError, "out_features must be a positive integer"),
    (lambda: nn.Linear(2.5, 3), TypeError, "in_features must be an int"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError, "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, "groups must be a positive integer"),
    (lambda: nn.Conv2d(4, 4, 0), ValueError, "kernel_size must be positive"),
    (lambda: nn.Conv2d(4, 4, (3, 0)), ValueError, "kernel_size must be positive"),
    (lambda: nn.Conv2d(4, 4, 3, stride=0), ValueError, "stride must be positive"),
    (lambda: nn.Conv2d(4, 4, 3, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: nn.Conv2d(4, 4, 3, padding="full"), ValueError,
     "Invalid padding string 'full', should be one of {'same', 'valid'}"),
    (lambda: nn.Conv2d(4, 4, 3, padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="reflect"), NotImplementedError,
     "only padding_mode='zeros'"),
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be positive"),
    (lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride must be positive"),
    (lambda: nn.AdaptiveAvgPool2d(0), ValueError, "output_size must be positive"),
    (lambda: nn.Dropout(1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    (lambda: nn.Dropout(-0.1), ValueError, "dropout probability has to be between 0 and 1"),
    (lambda: nn.BatchNorm2d(0), ValueError, "num_features must be a positive integer"),
    (lambda: nn.BatchNorm1d(3, momentum="x"), TypeError, "momentum must be a float or None"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError,
     "avg is not a valid value for reduction"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=2.0), ValueError,
     "label_smoothing must be between 0.0 and 1.0. Got: 2.0"),
    (lambda: nn.Linear(2, 2, device="cuda"), RuntimeError, "CPU only"),
]


@pytest.mark.parametrize("case", range(len(VALIDATION)))
def test_constructor_validation(case):
    build, error, message = VALIDATION[case]
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)
