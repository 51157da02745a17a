"""Channel attention: SqueezeExcitation against an explicit torch version with the same weights,
SKConv against an explicit torch version, and both against finite differences (float64)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn as nn
from deepnotes.autograd.gradcheck import gradcheck, numerical_grad
from tests.nn.module_oracle import compare_float32_forward, compare_with_torch_module

TF = torch.nn.functional


class TorchSqueezeExcitation(torch.nn.Module):
    """torchvision.ops.SqueezeExcitation written out (torchvision.ops does not load here)."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = torch.nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = torch.nn.ReLU()
        self.scale_activation = torch.nn.Sigmoid()

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)                    # squeeze
        gates = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))  # excitation
        return gates * x


class TorchSKConv(torch.nn.Module):
    """SKNet's selective kernel convolution written from the paper, with our submodule names."""

    def __init__(self, c_in, c_out, stride, m, g, r, low):
        super().__init__()
        d = max(c_out // r, low)
        self.convs = torch.nn.ModuleList([
            torch.nn.Sequential(torch.nn.Conv2d(c_in, c_out, 3, stride, padding=i + 1,
                                                dilation=i + 1, groups=g, bias=False),
                                torch.nn.BatchNorm2d(c_out), torch.nn.ReLU())
            for i in range(m)])
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Sequential(torch.nn.Conv2d(c_out, d, 1, bias=False),
                                      torch.nn.BatchNorm2d(d), torch.nn.ReLU())
        self.fcs = torch.nn.ModuleList([torch.nn.Conv2d(d, c_out, 1, bias=False)
                                        for _ in range(m)])

    def forward(self, x):
        u = [conv(x) for conv in self.convs]
        z = self.fc(self.avgpool(sum(u)))
        a = torch.softmax(torch.stack([fc(z) for fc in self.fcs]), dim=0)  # over branches
        return sum(a[i] * u[i] for i in range(len(u)))


@given(n=st.integers(1, 3), c=st.integers(1, 6), c_sq=st.integers(1, 4), h=st.integers(1, 5),
       w=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_squeeze_excitation_matches_torch(n, c, c_sq, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    torch.manual_seed(seed % 1000)
    compare_with_torch_module(nn.SqueezeExcitation(c, c_sq), TorchSqueezeExcitation(c, c_sq),
                              (x,))
    compare_float32_forward(nn.SqueezeExcitation(c, c_sq), TorchSqueezeExcitation(c, c_sq), (x,))


def test_squeeze_excitation_names_and_parameter_count():
    se = nn.SqueezeExcitation(16, 4)
    assert list(se.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [name for name, _ in se.named_children()] == [
        "avgpool", "fc1", "fc2", "activation", "scale_activation"]
    assert sum(p.numel() for p in se.parameters()) == 2 * 16 * 4 + 4 + 16
    custom = nn.SqueezeExcitation(4, 2, activation=nn.Tanh, scale_activation=nn.Tanh)
    assert isinstance(custom.activation, nn.Tanh) and isinstance(custom.scale_activation, nn.Tanh)


def _check_module_gradients(module, x: np.ndarray) -> None:
    """Finite differences (float64) for the input and for every parameter of ``module``."""
    module.double()
    gradcheck(lambda t: module(t), x)
    params = dict(module.named_parameters())
    weights = np.random.default_rng(1).standard_normal(module(dn.tensor(x)).shape)
    module.zero_grad()
    (module(dn.tensor(x)) * dn.tensor(weights)).sum().backward()
    for name, param in params.items():
        original = param.data.copy()

        def scalar(value, param=param):
            param.data = value
            return float((module(dn.tensor(x)).detach().numpy() * weights).sum())

        expected = numerical_grad(scalar, [original], 0)
        param.data = original
        np.testing.assert_allclose(param.grad.numpy(), expected, atol=1e-6, rtol=1e-5,
                                   err_msg=f"gradient of {name}")


def test_squeeze_excitation_gradients_numerically(rng):
    _check_module_gradients(nn.SqueezeExcitation(4, 2), rng.standard_normal((2, 4, 3, 3)))


SK_CASES = {
    "two_branches": dict(c_in=4, c_out=4, stride=1, M=2, G=2, r=2, L=2, hw=(5, 5)),
    "three_branches_strided": dict(c_in=2, c_out=4, stride=2, M=3, G=1, r=4, L=3, hw=(6, 7)),
    "depthwise": dict(c_in=4, c_out=4, stride=1, M=2, G=4, r=1, L=1, hw=(4, 4)),
    "one_branch": dict(c_in=3, c_out=3, stride=1, M=1, G=1, r=1, L=2, hw=(4, 3)),
}


@pytest.mark.parametrize("name", SK_CASES)
def test_skconv_matches_torch_version_of_the_paper(name, rng):
    kw = dict(SK_CASES[name])
    hw = kw.pop("hw")
    x = rng.standard_normal((2, kw["c_in"], *hw))
    ours = nn.SKConv(kw["c_in"], kw["c_out"], kw["stride"], kw["M"], kw["G"], kw["r"], kw["L"])
    theirs = TorchSKConv(*kw.values())
    compare_with_torch_module(ours, theirs, (x,))
    ours.eval()
    theirs.eval()                               # running statistics, as after training
    compare_with_torch_module(ours, theirs, (x,))


def test_skconv_gradients_numerically(rng):
    sk = nn.SKConv(2, 4, stride=1, M=2, G=2, r=2, L=2)
    _check_module_gradients(sk, rng.standard_normal((2, 2, 4, 4)))


def test_skconv_selects_with_weights_that_sum_to_one(rng):
    """The softmax runs across the branches: the output lies between the branch outputs, and
    with one branch the block is that branch."""
    sk = nn.SKConv(3, 3, M=2, G=1, r=1, L=2).double()
    x = dn.tensor(rng.standard_normal((2, 3, 5, 5)))
    out = sk(x).detach().numpy()
    branches = np.stack([conv(x).detach().numpy() for conv in sk.convs])
    assert (out >= branches.min(0) - 1e-12).all() and (out <= branches.max(0) + 1e-12).all()
    single = nn.SKConv(3, 3, M=1, G=1, r=1, L=2).double()
    np.testing.assert_allclose(single(x).detach().numpy(), single.convs[0](x).detach().numpy(),
                               atol=1e-12)
    assert sk(x).shape == (2, 3, 5, 5)
    assert nn.SKConv(3, 6, stride=2, G=3, r=2, L=2)(dn.randn(2, 3, 7, 7)).shape == (2, 6, 4, 4)


def test_skconv_argument_errors():
    with pytest.raises(ValueError, match="G must divide"):
        nn.SKConv(4, 6, G=4)
    with pytest.raises(ValueError, match="M must be a positive integer"):
        nn.SKConv(4, 4, M=0, G=1)
