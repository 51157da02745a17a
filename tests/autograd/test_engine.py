"""The backward engine: accumulation, graph freeing, retain_graph, diamonds, deep chains, hooks,
grad modes and the Function contract."""

import gc
import weakref

import numpy as np
import pytest
import torch

import deepnotes as dn
from deepnotes.autograd import Function, gradcheck, unbroadcast
from tests.helpers import check_gradients


def both(values, requires_grad=True):
    """The same float64 leaf in deepnotes and in torch."""
    array = np.asarray(values, dtype=np.float64)
    return dn.tensor(array, requires_grad=requires_grad), torch.tensor(array,
                                                                       requires_grad=requires_grad)


def assert_same_grad(ours, theirs):
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


# -- accumulation and graph lifetime --------------------------------------------------------------


def test_gradients_accumulate_across_two_backward_calls_as_torch():
    x, xt = both([1.0, -2.0, 3.0])
    for _ in range(2):
        (x * x).sum().backward()
        (xt * xt).sum().backward()
    assert_same_grad(x, xt)
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, -8.0, 12.0])


def test_second_backward_through_a_freed_graph_raises_like_torch():
    x, xt = both([1.0, 2.0])
    y, yt = (x.exp() * 3).sum(), (xt.exp() * 3).sum()
    y.backward()
    yt.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        yt.backward()


def test_retain_graph_allows_a_second_backward_that_accumulates_as_torch():
    x, xt = both([0.5, -1.5])
    y, yt = (x.tanh() * x).sum(), (xt.tanh() * xt).sum()
    y.backward(retain_graph=True)
    yt.backward(retain_graph=True)
    y.backward()
    yt.backward()
    assert_same_grad(x, xt)


def test_backward_frees_saved_arrays():
    x = dn.randn(1000, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    assert len(node.saved) == 1
    y.sum().backward()
    assert node.saved == () and node.inputs == ()


def test_graph_is_released_when_the_output_goes_away():
    x = dn.randn(3, requires_grad=True)
    y = (x * 2).exp()
    node = weakref.ref(y.grad_fn)
    del y
    gc.collect()
    assert node() is None


# -- the root gradient ----------------------------------------------------------------------------


def test_backward_on_a_non_scalar_without_gradient_raises_torchs_error():
    x, xt = both([1.0, 2.0])
    message = "grad can be implicitly created only for scalar outputs"
    with pytest.raises(RuntimeError, match=message):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=message):
        (xt * 2).backward()


def test_backward_on_a_single_element_non_scalar_needs_no_gradient_as_torch():
    x, xt = both([[3.0]])
    (x * x).backward()
    (xt * xt).backward()
    assert_same_grad(x, xt)


def test_backward_with_an_explicit_gradient_matches_torch():
    x, xt = both([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[0.5, -1.0], [2.0, 0.0]])
    (x**2).backward(dn.tensor(g))
    (xt**2).backward(torch.tensor(g))
    assert_same_grad(x, xt)
    (x**3).backward(g)  # an ndarray is accepted too
    (xt**3).backward(torch.tensor(g))
    assert_same_grad(x, xt)


def test_backward_with_a_wrongly_shaped_gradient_raises_like_torch():
    x, xt = both([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(dn.ones(2))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (xt * 2).backward(torch.ones(2, dtype=torch.float64))


def test_backward_on_a_tensor_that_does_not_require_grad_raises_like_torch():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        dn.ones(2).sum().backward()


def test_backward_on_a_leaf_sets_its_grad_to_the_seed():
    x = dn.ones(3, requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    x.backward(seed)
    seed[0] = 100.0  # .grad is a copy, not the caller's array
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])


def test_grad_never_aliases_the_callers_gradient_array():
    x = dn.ones(2, requires_grad=True)
    b = dn.ones(2, requires_grad=True)
    seed = np.ones(2, dtype=np.float32)
    (x + b).backward(seed)
    seed[:] = 7
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1])


# -- graph shapes ---------------------------------------------------------------------------------


def test_diamond_graph_sums_the_gradients_of_both_paths_as_torch():
    def f(x):
        a = x * 3
        b = a.exp()
        c = a.tanh()
        return (b * c + a).sum()

    x, xt = both([0.1, -0.4, 0.3])
    f(x).backward()
    f(xt).backward()
    assert_same_grad(x, xt)


def test_tensor_used_several_times_in_one_op_gets_the_summed_gradient():
    x, xt = both([1.5, -2.0])
    (x * x * x + x / x).sum().backward()
    (xt * xt * xt + xt / xt).sum().backward()
    assert_same_grad(x, xt)


def test_deep_chain_backpropagates_without_recursion_errors():
    x = dn.tensor([0.5], dtype=dn.float64, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**5000], rtol=1e-10)
    del y
    gc.collect()


def test_deep_chain_can_be_dropped_without_recursion_errors():
    x = dn.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(20000):
        y = y + 1.0
    del y  # frees 20000 nested nodes
    gc.collect()


def test_only_the_output_that_was_used_contributes():
    x, xt = both([[1.0, 5.0], [7.0, 2.0]])
    values, _ = x.max(dim=1)
    values_t, _ = xt.max(dim=1)
    values.sum().backward()
    values_t.sum().backward()
    assert_same_grad(x, xt)


def test_broadcast_gradients_are_summed_back_to_the_input_shape():
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 3, 4)), (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 3)), ()), np.array(6.0))
    a, at = both(np.ones((3, 1)))
    b, bt = both(np.ones((4,)))
    (a * b * 2).sum().backward()
    (at * bt * 2).sum().backward()
    assert_same_grad(a, at)
    assert_same_grad(b, bt)


def test_leaf_grads_never_alias_each_other():
    a = dn.ones(3, requires_grad=True)
    b = dn.ones(3, requires_grad=True)
    (a + b).sum().backward()  # AddFn hands the same array to both leaves
    a.grad.data[0] = 100.0
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1, 1])
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable


def test_broadcast_leaf_grads_are_writeable():
    a = dn.ones(1, requires_grad=True)
    (a.expand(4) * 1.0).sum().backward()
    a.grad.data[...] = 0  # must not raise "read-only"
    x = dn.ones(2, 3, requires_grad=True)
    x.sum().backward()  # SumFn's backward is a broadcast view
    x.grad.zero_()
    assert x.grad.numpy().sum() == 0


# -- grad modes -----------------------------------------------------------------------------------


def test_no_grad_context_manager_records_nothing():
    x = dn.ones(2, requires_grad=True)
    with dn.no_grad():
        y = x * 2
        assert not dn.is_grad_enabled()
    assert dn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_as_decorator_with_and_without_parentheses():
    x = dn.ones(2, requires_grad=True)

    @dn.no_grad()
    def f(t):
        return t * 2

    @dn.no_grad
    def g(t):
        return t * 3

    assert not f(x).requires_grad and not g(x).requires_grad
    assert f.__name__ == "f" and dn.is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again():
    x = dn.ones(2, requires_grad=True)
    with dn.no_grad():
        with dn.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad


def test_set_grad_enabled_as_call_and_context_manager_as_torch():
    with dn.set_grad_enabled(False):
        assert not dn.is_grad_enabled()
    assert dn.is_grad_enabled()
    dn.set_grad_enabled(False)
    try:
        assert not dn.is_grad_enabled()
    finally:
        dn.set_grad_enabled(True)
    assert dn.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with dn.no_grad():
            raise ValueError
    assert dn.is_grad_enabled()

    @dn.no_grad()
    def fails():
        raise KeyError

    with pytest.raises(KeyError):
        fails()
    assert dn.is_grad_enabled()


# -- hooks and retain_grad ------------------------------------------------------------------------


def test_retain_grad_on_a_non_leaf_matches_torch():
    x, xt = both([1.0, 2.0])
    y, yt = x * 3, xt * 3
    y.retain_grad()
    yt.retain_grad()
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    assert_same_grad(y, yt)
    assert_same_grad(x, xt)


def test_retain_grad_on_a_leaf_is_a_no_op_as_torch():
    x, xt = both([1.0, 2.0])
    x.retain_grad()
    xt.retain_grad()
    (x * 3).sum().backward()
    (xt * 3).sum().backward()
    assert_same_grad(x, xt)


def test_non_leaf_grad_is_none_without_retain_grad():
    x = dn.ones(2, requires_grad=True)
    y = x * 3
    y.sum().backward()
    assert y.grad is None


def test_register_hook_on_a_non_leaf_sees_and_can_replace_the_gradient_as_torch():
    x, xt = both([1.0, -2.0])
    seen, seen_t = [], []
    y, yt = x * 2, xt * 2
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    yt.register_hook(lambda g: seen_t.append(g.numpy().copy()))
    z, zt = y * 5, yt * 5
    z.register_hook(lambda g: g * 10)
    zt.register_hook(lambda g: g * 10)
    z.sum().backward()
    zt.sum().backward()
    np.testing.assert_array_equal(seen[0], seen_t[0])
    assert_same_grad(x, xt)


def test_register_hook_on_a_leaf_and_remove_it_as_torch():
    x, xt = both([1.0, 2.0])
    handle = x.register_hook(lambda g: g * 2)
    handle_t = xt.register_hook(lambda g: g * 2)
    (x * 3).sum().backward()
    (xt * 3).sum().backward()
    assert_same_grad(x, xt)
    handle.remove()
    handle_t.remove()
    (x * 3).sum().backward()
    (xt * 3).sum().backward()
    assert_same_grad(x, xt)


def test_retain_grad_and_hooks_on_tensors_without_grad_raise():
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        dn.ones(2).retain_grad()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        dn.ones(2).register_hook(lambda g: g)


# -- detach and in-place interplay ----------------------------------------------------------------


def test_detach_shares_data_and_cuts_the_graph():
    x = dn.ones(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.data, y.data)
    (y * d).sum().backward()  # d is a constant: dL/dx = 2 * d
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_in_place_update_of_a_non_leaf_is_differentiated_as_torch():
    def run(x, b):
        y = x * 2
        y += b
        y.add_(y)
        y.sub_(1.0, alpha=3.0)
        y.mul_(2.0)
        y.div_(4.0)
        y.clamp_(min=-1.0)  # last: torch saves y here and refuses later in-place changes
        return y.sum()

    x, xt = both([1.0, -2.0, 0.5])
    b, bt = both([0.3, 0.3, 0.3])
    run(x, b).backward()
    run(xt, bt).backward()
    assert_same_grad(x, xt)
    assert_same_grad(b, bt)


def test_in_place_ops_that_torch_refuses_give_the_out_of_place_gradient():
    # torch raises "modified by an inplace operation" here; deepnotes records the updates out of
    # place, so the result equals torch's out-of-place computation.
    x, xt = both([1.0, -2.0, 0.5])
    y = x * 2
    y.mul_(y)
    y.div_(x)
    y.clamp_(min=-5.0)
    y.sum().backward()
    yt = xt * 2
    yt = yt * yt
    yt = yt / xt
    yt = yt.clamp(min=-5.0)
    yt.sum().backward()
    assert_same_grad(x, xt)


def test_in_place_update_does_not_corrupt_saved_arrays():
    x, xt = both([0.2, 0.7])
    y, yt = x.exp(), xt.exp()
    z, zt = y * 1, yt * 1  # torch would refuse y.add_ (exp saved its output); z is safe in both
    z.add_(1.0)
    zt.add_(1.0)
    (z * y).sum().backward()
    (zt * yt).sum().backward()
    assert_same_grad(x, xt)


def test_in_place_op_on_a_leaf_requiring_grad_raises_like_torch():
    x, xt = both([1.0])
    for op in [lambda t: t.add_(1), lambda t: t.mul_(2), lambda t: t.zero_(),
               lambda t: t.fill_(3.0), lambda t: t.copy_(t * 0), lambda t: t.clamp_(0, 1)]:
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op(x)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op(xt)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x[0] = 1.0


def test_in_place_op_on_a_leaf_under_no_grad_updates_the_value():
    x = dn.ones(2, requires_grad=True)
    with dn.no_grad():
        x.mul_(3)
        x[0] = 5.0
    assert x.is_leaf and x.requires_grad and x.tolist() == [5.0, 3.0]


def test_in_place_ops_on_plain_tensors_write_into_the_same_memory():
    x = dn.zeros(3)
    array = x.numpy()
    x.add_(1).mul_(4).sub_(dn.ones(3), alpha=2).div_(2).clamp_(max=0.5)
    np.testing.assert_array_equal(array, [0.5, 0.5, 0.5])
    assert x._version == 5


def test_in_place_casting_rules_match_torch():
    x = dn.ones(2, dtype=dn.int64)
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.add_(1.5)
    with pytest.raises(RuntimeError):
        torch.ones(2, dtype=torch.int64).add_(1.5)
    y = dn.ones(2)
    y.add_(dn.ones(2, dtype=dn.float64))  # float64 -> float32 is allowed
    assert y.dtype == dn.float32 and y.tolist() == [2.0, 2.0]


def test_in_place_on_an_expanded_tensor_raises_like_torch():
    x = dn.ones(1).expand(3)
    with pytest.raises(RuntimeError, match="single memory location"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="single memory location"):
        torch.ones(1).expand(3).add_(1)


def test_copy_into_a_buffer_carries_the_gradient_as_torch():
    w, wt = both([[1.0, 2.0, 3.0]])
    buf, buf_t = dn.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64)
    buf.copy_(w * 2)
    buf_t.copy_(wt * 2)
    (buf * dn.tensor([[1.0], [3.0]])).sum().backward()
    (buf_t * torch.tensor([[1.0], [3.0]])).sum().backward()
    assert_same_grad(w, wt)


# -- Function contract ----------------------------------------------------------------------------


class ScaleAndShiftFn(Function):
    """y = a * x + c, with c a non-tensor argument (its gradient is None)."""

    def __init__(self, a):
        self.a = a

    def forward(self, x, c):
        return self.a * x + c

    def backward(self, grad_y):
        return self.a * grad_y, None


class SplitFn(Function):
    """Two outputs: x[:k] * 2 and x[k:] ** 2."""

    def __init__(self, k):
        self.k = k

    def forward(self, x):
        self.save_for_backward(x)
        return x[: self.k] * 2, x[self.k:] ** 2

    def backward(self, grad_first, grad_second):
        (x,) = self.saved
        return np.concatenate([grad_first * 2, grad_second * 2 * x[self.k:]])


def test_custom_function_with_a_non_tensor_argument():
    x = dn.ones(3, requires_grad=True)
    y = ScaleAndShiftFn(4.0)(x, 1.0)
    assert isinstance(y.grad_fn, ScaleAndShiftFn) and y.grad_fn.needs_input_grad == (True, False)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_custom_function_with_two_outputs_fills_zeros_for_the_unused_one():
    x = dn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    first, second = SplitFn(1)(x)
    second.sum().backward()  # first got no gradient: the engine passes zeros
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 4.0, 6.0])
    check_gradients(lambda t: SplitFn(2)(t)[1] * 3 + SplitFn(2)(t)[0].sum(), np.array([1., 2., 3.]))


def test_a_lower_rank_gradient_from_backward_is_broadcast_to_the_input():
    class SumTimesTwoFn(Function):
        def forward(self, x):
            return np.sum(x) * 2

        def backward(self, grad_y):
            return grad_y * 2.0  # a 0-d gradient for a (2, 3) input

    x = dn.ones(2, 3, requires_grad=True)
    SumTimesTwoFn()(x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    x.grad.zero_()  # writeable although it came from a broadcast


def test_integer_outputs_never_require_grad():
    x = dn.tensor([[1.0, 5.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.requires_grad and not indices.requires_grad


def test_gradcheck_passes_for_correct_gradients_and_fails_for_wrong_ones():
    class WrongExpFn(Function):
        def forward(self, x):
            return np.exp(x)

        def backward(self, grad_y):
            return grad_y  # wrong: misses the factor e^x

    x = np.array([0.3, -0.2])
    assert gradcheck(lambda t: (t * t).tanh(), x)
    with pytest.raises(AssertionError, match="differs from finite differences"):
        gradcheck(lambda t: WrongExpFn()(t), x)


def test_double_backward_and_inputs_are_rejected_explicitly():
    y = (dn.ones(2, requires_grad=True) * 2).sum()
    with pytest.raises(NotImplementedError):
        y.backward(create_graph=True)
    with pytest.raises(NotImplementedError):
        y.backward(inputs=[y])


def test_a_node_reached_twice_is_visited_once_and_after_all_its_consumers():
    """a feeds both b = 3a and the sum a + b: a's node must run after both consumers, exactly once
    (a regression: marking nodes as visited when pushed rather than when expanded broke this)."""
    x = dn.tensor(np.array([1.0, -2.0]), requires_grad=True)
    tx = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    a, ta = x * 2, tx * 2
    ((a + a * 3).sum()).backward()
    ((ta + ta * 3).sum()).backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
