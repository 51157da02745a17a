"""Module, Parameter and containers against torch.nn: naming, state_dict, loading, modes, repr."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import deepnotes as dn
import deepnotes.nn as nn
import deepnotes.nn.functional as F


def _build(lib):
    """The same small architecture in deepnotes (lib=nn) or torch (lib=torch.nn)."""

    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = lib.BatchNorm2d(4)
            self.register_buffer("scale", _tensor(lib, np.full(4, 2.0)))
            self.register_buffer("cache", _tensor(lib, np.zeros(3)), persistent=False)

        def forward(self, x):
            return self.bn(self.conv(x)).relu() * self.scale.reshape(1, 4, 1, 1)

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.features = lib.Sequential(Block(), lib.MaxPool2d(2), lib.Conv2d(4, 6, 1))
            self.heads = lib.ModuleList([lib.Linear(6 * 4 * 4, 5), lib.Linear(5, 3)])
            self.extra = lib.ModuleDict({"norm": lib.BatchNorm1d(3, momentum=None)})
            self.tied = self.heads[1]            # the same module reachable twice
            self.empty = None

        def forward(self, x):
            x = self.features(x).flatten(1)
            x = self.heads[0](x).tanh()
            return self.extra["norm"](self.heads[1](x))

    return Net()


def _tensor(lib, array):
    return torch.tensor(array) if lib is torch.nn else dn.tensor(array)


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.fixture
def nets():
    dn.manual_seed(0)
    torch.manual_seed(0)
    return _build(nn), _build(torch.nn)


def test_names_and_state_dict_keys_match_torch(nets):
    ours, theirs = nets
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert _shapes(ours.state_dict()) == _shapes(theirs.state_dict())
    assert "features.0.cache" not in ours.state_dict()           # non-persistent buffer
    assert "features.0.bn.num_batches_tracked" in ours.state_dict()
    assert ours.state_dict()["features.0.bn.num_batches_tracked"].dtype == np.int64
    no_dup = list(ours.named_parameters(remove_duplicate=False))
    assert [n for n, _ in no_dup] == [n for n, _ in theirs.named_parameters(remove_duplicate=False)]
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert len(list(ours.parameters(recurse=False))) == 0
    assert [n for n, _ in ours.heads.named_parameters(prefix="h")] == \
        [n for n, _ in theirs.heads.named_parameters(prefix="h")]


def test_shared_parameter_counted_once_but_saved_under_each_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)
            self.b = torch.nn.Linear(3, 3)
            self.b.weight = self.a.weight

    ours, theirs = Tied(), TorchTied()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    # re-assigning keeps the position of the key
    ours.a.weight = nn.Parameter(dn.zeros(3, 3))
    assert list(ours.a.state_dict()) == ["weight", "bias"]


def _to_numpy_state(state):
    return {k: v.detach().numpy() for k, v in state.items()}


def test_torch_state_dict_loads_and_gives_the_same_outputs(nets, rng):
    ours, theirs = nets
    theirs.double()
    theirs.train()
    x = rng.standard_normal((5, 3, 8, 8))
    theirs(torch.tensor(x))              # move the running statistics away from 0 and 1
    result = ours.double().load_state_dict(_to_numpy_state(theirs.state_dict()))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert int(ours.features[0].bn.num_batches_tracked.item()) == 1
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        out = ours(dn.tensor(x))
        expected = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    # torch tensors also load directly (anything with __array__)
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items()})


def test_our_state_dict_loads_into_torch(nets, rng):
    ours, theirs = nets
    ours.double().train()
    x = rng.standard_normal((4, 3, 8, 8))
    ours(dn.tensor(x))
    theirs.double().load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                     for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(dn.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_load_state_dict_casts_to_the_model_dtype():
    model = nn.Linear(3, 2)
    model.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})
    assert model.weight.dtype == np.float32 and np.all(model.weight.data == 1)


def _torch_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_strict_errors_list_missing_unexpected_and_size_mismatch():
    ours, theirs = nn.Sequential(nn.Linear(30, 10)), torch.nn.Sequential(torch.nn.Linear(30, 10))
    state = {"0.weight": np.zeros((10, 20)), "1.weight": np.zeros(3)}
    with pytest.raises(RuntimeError) as info:
        ours.load_state_dict(state)
    error = _torch_error(lambda: theirs.load_state_dict({k: torch.tensor(v)
                                                         for k, v in state.items()}))
    assert isinstance(error, RuntimeError)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Sequential:")
    assert 'Missing key(s) in state_dict: "0.bias". ' in message
    assert 'Unexpected key(s) in state_dict: "1.weight". ' in message
    assert ("size mismatch for 0.weight: copying a param with shape (10, 20) from checkpoint, "
            "the shape in current model is (10, 30).") in message
    # the same three complaints as torch, in the same order
    assert [line.split(":")[0] for line in message.split("\n\t")] == \
        [line.split(":")[0] for line in str(error).split("\n\t")]


def test_non_strict_returns_the_keys_like_torch():
    ours, theirs = nn.Sequential(nn.Linear(3, 2)), torch.nn.Sequential(torch.nn.Linear(3, 2))
    state = {"0.weight": np.ones((2, 3)), "x.y": np.zeros(1)}
    result = ours.load_state_dict(state, strict=False)
    expected = theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    assert result.missing_keys == expected.missing_keys == ["0.bias"]
    assert result.unexpected_keys == expected.unexpected_keys == ["x.y"]
    assert np.all(ours[0].weight.data == 1)
    # size mismatches raise even when not strict, as in torch
    with pytest.raises(RuntimeError, match="size mismatch for 0.bias"):
        ours.load_state_dict({"0.bias": np.zeros(5)}, strict=False)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        ours.load_state_dict([1, 2])
    with pytest.raises(RuntimeError, match='While copying the parameter named "0.weight"'):
        ours.load_state_dict({"0.weight": 3, "0.bias": np.zeros(2)})


def test_batchnorm_state_dict_without_num_batches_tracked_loads_strictly():
    bn = nn.BatchNorm2d(3)
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    torch_bn = torch.nn.BatchNorm2d(3)
    assert repr(torch_bn.load_state_dict({k: torch.tensor(v.numpy()) for k, v in state.items()})) \
        == repr(bn.load_state_dict(state)) == "<All keys matched successfully>"


def test_train_eval_propagate(nets):
    ours, _ = nets
    assert ours.training and all(m.training for m in ours.modules())
    assert ours.eval() is ours
    assert not any(m.training for m in ours.modules())
    ours.features.train()
    assert ours.features[0].bn.training and not ours.heads[0].training and not ours.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        ours.train(1)


def test_zero_grad_requires_grad_and_apply(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model(dn.tensor(rng.standard_normal((5, 3)), dtype=dn.float32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited == ["Linear", "ReLU", "Linear", "Sequential"]      # children first, as torch


def test_parameter_basics():
    p = nn.Parameter(dn.zeros(2))
    assert p.requires_grad and p.is_leaf and isinstance(p, dn.Tensor)
    assert repr(p) == "Parameter containing:\n" + repr(dn.zeros(2, requires_grad=True))
    assert repr(p).startswith(repr(torch.nn.Parameter(torch.zeros(2))).split("\n")[0])
    base = dn.ones(3)
    shared = nn.Parameter(base)
    assert shared.data is base.data                                   # no copy, as torch
    (p * 2).sum().backward()
    assert type(p.grad) is dn.Tensor and type(p.detach()) is dn.Tensor
    assert not nn.Parameter(dn.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(dn.tensor([1, 2]))
    assert nn.Parameter().shape == (0,)


REGISTRATION_ERRORS = [
    # (action on a Linear(2, 3), expected exception, message fragment)
    (lambda m, lib: setattr(m, "weight", _tensor(lib, np.zeros((3, 2)))), TypeError,
     "as parameter 'weight'"),
    (lambda m, lib: m.register_buffer("weight", _tensor(lib, np.zeros(1))), KeyError,
     "attribute 'weight' already exists"),
    (lambda m, lib: m.register_buffer("a.b", _tensor(lib, np.zeros(1))), KeyError,
     "buffer name can't contain"),
    (lambda m, lib: m.register_buffer("", _tensor(lib, np.zeros(1))), KeyError,
     "buffer name can't be empty string"),
    (lambda m, lib: m.register_buffer("q", 3), TypeError, "cannot assign 'int' object to buffer"),
    (lambda m, lib: m.register_parameter("q", _tensor(lib, np.zeros(2))), TypeError,
     "object to parameter 'q'"),
    (lambda m, lib: m.register_parameter(3, None), TypeError,
     "parameter name should be a string. Got int"),
    (lambda m, lib: m.add_module("q", 3), TypeError, "int is not a Module subclass"),
    (lambda m, lib: m.add_module("a.b", lib.ReLU()), KeyError,
     "module name can't contain \".\", got: a.b"),
    (lambda m, lib: m.add_module("", lib.ReLU()), KeyError, "module name can't be empty string"),
    (lambda m, lib: m.add_module("weight", lib.ReLU()), KeyError,
     "attribute 'weight' already exists"),
    (lambda m, lib: m.foo, AttributeError, "'Linear' object has no attribute 'foo'"),
    (lambda m, lib: m(), TypeError, ""),
]


@pytest.mark.parametrize("case", range(len(REGISTRATION_ERRORS)))
def test_registration_errors_match_torch(case):
    action, error, fragment = REGISTRATION_ERRORS[case]
    with pytest.raises(error) as theirs:
        action(torch.nn.Linear(2, 3), torch.nn)
    with pytest.raises(error) as ours:
        action(nn.Linear(2, 3), nn)
    assert fragment in str(ours.value.args[0] if ours.value.args else "")
    assert fragment in str(theirs.value.args[0] if theirs.value.args else "")


def test_assignment_rules():
    m = nn.Linear(2, 3)
    m.register_buffer("buf", dn.zeros(1))
    with pytest.raises(TypeError, match="as buffer 'buf'"):
        m.buf = 3
    m.buf = None
    assert m.buf is None and "buf" not in m.state_dict()
    m.sub = nn.ReLU()
    with pytest.raises(TypeError, match="as child module 'sub'"):
        m.sub = 3
    m.bias = None
    assert list(m.state_dict()) == ["weight"] and m.bias is None
    del m.sub
    assert "sub" not in dict(m.named_children())
    m.plain = 5
    assert m.plain == 5 and "plain" in dir(m) and "weight" in dir(m)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(dn.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(dn.zeros(1))


def test_get_submodule_parameter_buffer(nets):
    ours, _ = nets
    assert ours.get_submodule("features.0.bn") is ours.features[0].bn
    assert ours.get_parameter("heads.0.weight") is ours.heads[0].weight
    assert ours.get_buffer("features.0.bn.running_mean") is ours.features[0].bn.running_mean
    with pytest.raises(AttributeError):
        ours.get_submodule("features.9")


def test_forward_hooks(rng):
    model = nn.Linear(3, 2)
    seen = []
    pre = model.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = model.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    out = model(dn.tensor(rng.standard_normal((4, 3)), dtype=dn.float32))
    np.testing.assert_allclose(out.data, np.broadcast_to(model.bias.data, (4, 2)))
    assert seen == [(4, 2)]
    pre.remove()
    post.remove()
    model(dn.zeros(1, 3))
    assert seen == [(4, 2)]


def test_repr_matches_torch(nets):
    ours, theirs = nets
    assert repr(ours) == repr(theirs)
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential())
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())
    for build in (lambda lib: lib.ModuleList([lib.ReLU(), lib.ReLU(), lib.Linear(1, 2),
                                             lib.ReLU()]),
                  lambda lib: lib.ModuleDict({"a": lib.ReLU(), "b": lib.Linear(1, 1)})):
        assert repr(build(nn)) == repr(build(torch.nn))


def test_sequential_behaves_like_torch(rng):
    def build(lib):
        return lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Linear(3, 4), lib.Tanh())

    ours, theirs = build(nn), build(torch.nn)
    assert len(ours) == len(theirs) == 4
    assert type(ours[-1]).__name__ == "Tanh" and isinstance(ours[1:3], nn.Sequential)
    assert list(ours[1:3]._modules) == list(theirs[1:3]._modules) == ["1", "2"]
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    for seq in (ours, theirs):
        with pytest.raises(IndexError, match="index 7 is out of range"):
            seq[7]
        del seq[0]
        seq.append(type(seq[0])())
        seq.insert(1, type(seq[0])())
        seq[0] = type(seq[1])()
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert type(ours.pop(1)).__name__ == type(theirs.pop(1)).__name__
    assert repr(ours) == repr(theirs)
    chain = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    x = dn.tensor(rng.standard_normal((4, 2)), dtype=dn.float32)
    np.testing.assert_allclose(chain(x).data, F.relu(chain[0](x)).data)
    from collections import OrderedDict

    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers += [nn.ReLU()]
    layers.insert(0, nn.Tanh())
    assert len(layers) == 5 and isinstance(layers[0], nn.Tanh)
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2", "3", "4"]
    del layers[0]
    assert list(layers.state_dict())[0] == "0.weight"
    assert isinstance(layers[-1], nn.ReLU) and isinstance(layers[:2], nn.ModuleList)
    heads = nn.ModuleDict({"a": nn.Linear(1, 1)})
    heads["b"] = nn.Linear(1, 2)
    assert "b" in heads and list(heads) == ["a", "b"] and len(heads) == 2
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    heads.pop("a")
    assert list(heads.keys()) == ["b"]
    with pytest.raises(NotImplementedError):
        layers(dn.zeros(1))


def test_to_double_keeps_parameter_objects():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    params = list(model.parameters())
    assert model.to(dn.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in params)
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    model.float()
    assert all(p.dtype == np.float32 for p in params)
    assert model.to("cpu") is model
    with pytest.raises(TypeError, match="floating point"):
        model.to(dn.int64)


def test_deepcopy_is_independent():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    clone = copy.deepcopy(model)
    assert list(clone.state_dict()) == list(model.state_dict())
    assert isinstance(clone[0].weight, nn.Parameter)
    clone[0].weight.data[...] = 7
    assert not np.any(model[0].weight.data == 7)
    for key, value in model.state_dict().items():
        assert value.data is not clone.state_dict()[key].data
