"""In-place changes of saved tensors are detected with PyTorch's version counter.

Every in-place op increments ``tensor._version``; a node that saved a tensor for backward notes
its version and refuses to backward if it moved. Each case runs the same program in torch and
checks that both frameworks raise (or both compute the same gradient).
"""

import numpy as np
import pytest
import torch

import deepnotes as dn

MODIFIED = "modified by an inplace operation"


def both(values, requires_grad=True):
    array = np.asarray(values, dtype=np.float64)
    return (dn.tensor(array, requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


def assert_same_grad(ours, theirs):
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def raises_in_both(program, match=MODIFIED):
    """Run ``program(lib)`` with lib = deepnotes and torch; both must raise RuntimeError."""
    with pytest.raises(RuntimeError, match=match) as ours:
        program(dn)
    with pytest.raises(RuntimeError, match=MODIFIED):
        program(torch)
    return str(ours.value)


# -- the counter itself ---------------------------------------------------------------------------


def test_every_in_place_op_increments_the_version_as_torch():
    for lib in (dn, torch):
        t = lib.zeros(3)
        versions = [t._version]
        t.add_(1)
        versions.append(t._version)
        t.mul_(2)
        versions.append(t._version)
        t[0] = 5.0
        versions.append(t._version)
        t.copy_(lib.ones(3))
        versions.append(t._version)
        t.zero_()
        versions.append(t._version)
        assert versions == [0, 1, 2, 3, 4, 5], lib.__name__


def test_out_of_place_ops_leave_the_version_alone():
    x = dn.ones(3, requires_grad=True)
    y = x * 2
    (y + 1).sum().backward()
    assert x._version == 0 and y._version == 0


# -- detected as torch detects -------------------------------------------------------------------


def test_changing_a_saved_output_in_place_raises_with_torchs_message():
    def program(lib):
        a = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
        b = a.sigmoid()  # sigmoid saves its output
        b.mul_(2)
        b.sum().backward()

    message = raises_in_both(program)
    assert "[torch.FloatTensor [3]], which is output 0 of SigmoidFn, is at version 1; " \
           "expected version 0 instead." in message
    assert "SigmoidFn.backward" in message and "detect_anomaly" in message


def test_changing_a_saved_input_in_place_raises():
    def program(lib):
        a = lib.tensor([0.5, 1.0, 2.0], requires_grad=True)
        b = a.exp()
        c = b.log()  # log saves its input b
        b.add_(1)
        c.sum().backward()

    message = raises_in_both(program)
    assert "which is output 0 of AddFn, is at version 1; expected version 0" in message


def test_changing_a_constant_operand_in_place_after_use_raises():
    # w needs no gradient, so its update is a plain in-place NumPy write: without the check the
    # product's backward would silently read the new w.
    def program(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        w = lib.tensor([3.0, 4.0])
        loss = (x * w).sum()
        w.mul_(10)
        loss.backward()

    message = raises_in_both(program)
    assert "[torch.FloatTensor [2]] is at version 1; expected version 0" in message


def test_two_changes_report_the_current_version():
    def program(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        w = lib.tensor([3.0, 4.0])
        w.add_(1)  # version 1 when saved
        loss = (x * w).sum()
        w.add_(1)
        w.add_(1)
        loss.backward()

    assert "is at version 3; expected version 1 instead" in raises_in_both(program)


def test_optimizer_step_before_backward_raises_for_a_weight_that_was_saved():
    def program(lib):
        lib.manual_seed(0)
        layers = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
        opt = lib.optim.SGD(layers.parameters(), lr=0.1)
        loss = layers(lib.ones(5, 3)).sum()
        loss.backward(retain_graph=True)
        opt.step()  # changes every weight in place
        loss.backward()  # the second Linear saved its weight (its input needs a gradient)

    raises_in_both(program)


def test_optimizer_step_before_backward_raises_for_a_convolution_weight():
    # Conv2dFn saves a reshaped view of the weight; the view is traced to the weight tensor.
    def program(lib):
        lib.manual_seed(0)
        conv = lib.nn.Conv2d(2, 3, 3)
        x = lib.ones(1, 2, 5, 5, requires_grad=True)
        loss = conv(x).sum()
        with lib.no_grad():
            conv.weight.mul_(0.5)
        loss.backward()

    raises_in_both(program)


def test_an_in_place_dropout_of_a_saved_output_under_no_grad_raises():
    def program(lib):
        lib.manual_seed(0)
        x = lib.tensor([0.5, 1.0, -2.0, 3.0], requires_grad=True)
        y = x.sigmoid()
        with lib.no_grad():
            lib.nn.functional.dropout(y, 0.5, training=True, inplace=True)
        y.sum().backward()

    raises_in_both(program)


def test_second_backward_with_retain_graph_sees_a_change_made_in_between():
    def program(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x.tanh()
        loss = (y * y).sum()
        loss.backward(retain_graph=True)
        with lib.no_grad():
            y.mul_(3)
        loss.backward()

    raises_in_both(program)


def test_a_failed_backward_leaves_the_gradients_untouched():
    x = dn.tensor([1.0, 2.0], requires_grad=True)
    w = dn.tensor([3.0, 4.0])
    (x * w).sum().backward()
    loss = (x * w).sum()
    w.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()
    assert x.grad.tolist() == [3.0, 4.0]


# -- no false alarms: changes torch accepts give torch's gradients ---------------------------------


def test_changing_an_operand_that_nothing_saved_is_fine_as_in_torch():
    def run(lib, x, b):
        y = x * 3            # saves only the constant 3
        z = y + b            # saves nothing
        y.add_(1)            # allowed in torch: no node saved y
        w = lib.tensor([2.0, 5.0], dtype=x.dtype)
        p = x * w            # saves w (for x's gradient), not x
        return (z + y + p).sum()

    x, xt = both([1.0, -2.0])
    b, bt = both([0.5, 0.5])
    run(dn, x, b).backward()
    run(torch, xt, bt).backward()
    assert_same_grad(x, xt)
    assert_same_grad(b, bt)


def test_relu_in_place_after_layers_that_do_not_save_their_output():
    def run(lib, x):
        lib.manual_seed(0)
        h = lib.nn.functional.linear(x, lib.ones(4, 3, dtype=x.dtype))
        lib.nn.functional.relu(h, inplace=True)    # linear saved x and W, not its output
        h2 = h * 2 + 1
        lib.nn.functional.relu(h2, inplace=True)   # add saved nothing
        return h2.sum()

    x, xt = both([[1.0, -2.0, 0.5], [-1.0, -1.0, -1.0]])
    run(dn, x).backward()
    run(torch, xt).backward()
    assert_same_grad(x, xt)


def test_a_tensor_used_before_an_in_place_change_keeps_its_old_place_in_the_graph():
    # z consumed y's old value: its gradient must flow through y = x * 2 only, not through the
    # later y.mul_(5) (PyTorch: dL/dx = 3*2 + 5*2 = 16).
    def run(x):
        y = x * 2
        z = y * 3
        y.mul_(5)
        return (z + y).sum()

    x, xt = both([1.0, -0.5])
    run(x).backward()
    run(xt).backward()
    assert_same_grad(x, xt)
    assert x.grad.tolist() == [16.0, 16.0]


def test_a_tensor_overwritten_by_a_constant_after_use_still_passes_its_gradient_back():
    def run(lib, x):
        y = x * 2
        z = y.tanh()  # saves its output z, not y
        y.copy_(lib.zeros(2, dtype=x.dtype))  # y no longer depends on x; z still does
        return (z + y).sum()

    x, xt = both([1.0, 3.0])
    run(dn, x).backward()
    run(torch, xt).backward()
    assert_same_grad(x, xt)


def test_batch_norm_running_statistics_are_not_saved_tensors():
    bn = dn.nn.BatchNorm1d(3)
    x = dn.randn(4, 3, requires_grad=True)
    loss = bn(x).sum()
    bn.running_mean.add_(1)  # buffers are updated in place; backward does not read them
    loss.backward()
    assert x.grad is not None


def test_the_message_names_the_creation_site_in_anomaly_mode():
    a = dn.tensor([0.5, 1.0], requires_grad=True)
    with dn.autograd.detect_anomaly():
        b = a.sigmoid()  # the line the message must point to
        b.mul_(2)
        with pytest.raises(RuntimeError, match=MODIFIED) as error:
            b.sum().backward()
    assert "test_version_counter.py" in str(error.value) and "b = a.sigmoid()" in str(error.value)


def test_float_dtype_names_follow_torch():
    for dtype, name in ((dn.float64, "DoubleTensor"), (dn.float32, "FloatTensor")):
        x = dn.ones(2, 2, dtype=dtype, requires_grad=True)
        y = x.exp()
        y.add_(1)
        with pytest.raises(RuntimeError, match=rf"\[torch\.{name} \[2, 2\]\]"):
            y.sum().backward()
