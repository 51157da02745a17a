"""``deepnotes.autograd.detect_anomaly``: the first op whose forward output or backward gradient
holds nan/inf raises, naming the op and the line that created it."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes.autograd import anomaly_mode

HERE = "test_anomaly.py"


def line_of(marker: str) -> int:
    """The line number of the first source line of this file that contains ``marker``."""
    lines = Path(__file__).read_text().splitlines()
    return 1 + next(i for i, line in enumerate(lines) if marker in line and "line_of" not in line)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def test_off_by_default_and_the_values_flow_on_as_in_torch():
    assert not dn.autograd.is_anomaly_enabled()
    x = dn.tensor([1.0, 0.0], requires_grad=True)
    y = x.log()
    y.sum().backward()
    xt = torch.tensor([1.0, 0.0], requires_grad=True)
    yt = xt.log()
    yt.sum().backward()
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_forward_inf_names_the_op_and_the_line_that_created_it():
    x = dn.tensor([1.0, 0.0, 2.0], requires_grad=True)
    with dn.autograd.detect_anomaly():
        with pytest.raises(RuntimeError) as error:
            x.log()  # forward-site
    message = str(error.value)
    assert "Function 'LogFn' returned -inf values in its forward output" in message
    assert "1 of 3 values not finite; its inputs were finite" in message
    assert f"{HERE}:{line_of('# forward-site')}" in message and "x.log()" in message


def test_forward_nan_of_zero_over_zero():
    x = dn.zeros(2, requires_grad=True)
    with dn.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="'DivFn' returned nan"):
        x / x


def test_backward_inf_names_the_op_and_its_creation_site():
    x = dn.tensor([4.0, 0.0], requires_grad=True)
    with dn.autograd.detect_anomaly():
        y = x.sqrt()  # backward-site  (sqrt(0) = 0 is fine; its derivative 1/(2*0) is not)
        with pytest.raises(RuntimeError) as error:
            y.sum().backward()
    message = str(error.value)
    assert "Function 'SqrtFn' returned inf values in its 0th output" in message
    assert "during backward" in message
    assert f"{HERE}:{line_of('# backward-site')}" in message
    assert x.grad is None  # the bad gradient never reached the leaf


def test_backward_nan_matches_torchs_detection():
    # torch's anomaly mode raises on the same op for a nan gradient: 0 * inf in pow's backward.
    x = dn.tensor([0.0, 1.0], requires_grad=True)
    xt = torch.tensor([0.0, 1.0], requires_grad=True)
    with dn.autograd.detect_anomaly():
        y = x ** 0.5
        with pytest.raises(RuntimeError, match="'PowFn' returned nan values in its 0th output"):
            (y * 0).sum().backward()
    with torch.autograd.detect_anomaly(), pytest.raises(RuntimeError,
                                                        match="'PowBackward0' returned nan"):
        yt = xt ** 0.5
        (yt * 0).sum().backward()


def test_an_input_that_already_holds_nan_is_reported_as_such():
    x = dn.tensor([np.nan, 1.0])
    with dn.autograd.detect_anomaly(), pytest.raises(RuntimeError) as error:
        x * 2
    assert "an input already held nan/inf" in str(error.value)


def test_the_site_of_an_op_inside_a_layer_names_the_user_line_and_the_layer():
    layer = dn.nn.Linear(2, 2)
    with dn.no_grad():
        layer.weight[0, 0] = float("inf")
    x = dn.ones(1, 2)
    with dn.autograd.detect_anomaly(), pytest.raises(RuntimeError) as error:
        layer(x)  # layer-site
    message = str(error.value)
    assert "'LinearFn' returned inf values" in message
    assert f"{HERE}:{line_of('# layer-site')}" in message
    assert "linear.py" in message and "in forward" in message


def test_only_the_first_bad_op_raises_and_good_programs_run_unchanged():
    x = dn.tensor([0.5, 2.0], requires_grad=True)
    with dn.autograd.detect_anomaly():
        loss = (x.exp() * x.tanh()).sum()
        loss.backward()
    xt = torch.tensor([0.5, 2.0], requires_grad=True)
    (xt.exp() * xt.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_integer_outputs_are_not_checked():
    x = dn.tensor([[1.0, 3.0], [2.0, 0.5]], requires_grad=True)
    with dn.autograd.detect_anomaly():
        values, indices = x.max(dim=1)
        values.sum().backward()
    assert indices.tolist() == [1, 0]


def test_check_nan_false_records_sites_without_checking_values():
    x = dn.tensor([0.0], requires_grad=True)
    with dn.autograd.detect_anomaly(check_nan=False):
        assert dn.autograd.is_anomaly_enabled()
        assert not dn.autograd.is_anomaly_check_nan_enabled()
        y = x.log()  # no error
        assert HERE in y.grad_fn.__dict__["_created_at"]
    assert np.isneginf(y.data).all()


def test_the_mode_is_restored_after_the_block_even_on_error():
    with pytest.raises(RuntimeError), dn.autograd.detect_anomaly():
        with dn.autograd.detect_anomaly(check_nan=False):
            assert not dn.autograd.is_anomaly_check_nan_enabled()
        assert dn.autograd.is_anomaly_check_nan_enabled()
        dn.zeros(1, requires_grad=True).log()
    assert not dn.autograd.is_anomaly_enabled()


def test_decorator_and_set_detect_anomaly():
    @dn.autograd.detect_anomaly()
    def step(x):
        assert dn.autograd.is_anomaly_enabled()
        return x.log()

    with pytest.raises(RuntimeError, match="LogFn"):
        step(dn.zeros(1))
    assert not dn.autograd.is_anomaly_enabled()
    dn.autograd.set_detect_anomaly(True)
    try:
        assert dn.autograd.is_anomaly_enabled()
    finally:
        dn.autograd.set_detect_anomaly(False)
    assert not dn.autograd.is_anomaly_enabled()
    with dn.autograd.set_detect_anomaly(True):
        assert dn.autograd.is_anomaly_enabled()
    assert not dn.autograd.is_anomaly_enabled()


def test_no_creation_site_is_recorded_when_off():
    y = dn.ones(2, requires_grad=True) * 2
    assert "_created_at" not in y.grad_fn.__dict__
    assert anomaly_mode._enabled is False


def test_errors_raised_inside_backward_carry_the_creation_site():
    class Broken(dn.autograd.Function):
        def forward(self, x):
            return x * 1

        def backward(self, grad):
            raise ValueError("broken backward")

    x = dn.ones(2, requires_grad=True)
    with dn.autograd.detect_anomaly():
        y = Broken()(x)  # broken-site
        with pytest.raises(ValueError, match="broken backward") as error:
            y.sum().backward()
    notes = "\n".join(getattr(error.value, "__notes__", []))
    assert f"{HERE}:{line_of('# broken-site')}" in notes and "Broken.backward" in notes
