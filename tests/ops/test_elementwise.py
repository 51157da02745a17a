"""Elementwise ops and operators against PyTorch: forward, gradients, float32 forward, dtypes."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnotes as dn
from deepnotes.ops import elementwise as E
from tests.helpers import check_against_torch

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


def away_from_zero(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |v| >= 0.5, so that 1/v and v**p are well conditioned."""
    v = normal(seed, shape)
    return np.asarray(np.sign(v) * (np.abs(v) + 0.5) + (v == 0))


def positive(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(np.abs(normal(seed, shape)) + 0.5)


# -- binary operators with broadcasting -----------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, normal),
    "sub": (lambda a, b: a - b, normal),
    "mul": (lambda a, b: a * b, normal),
    "div": (lambda a, b: a / b, away_from_zero),
    "pow": (lambda a, b: a**b, positive),
}


@pytest.mark.parametrize("op", BINARY)
@given(shapes=pairs, seed=seeds)
def test_binary_operator_broadcasting_matches_torch(op, shapes, seed):
    fn, make = BINARY[op]
    a_shape, b_shape = shapes.input_shapes
    a, b = make(seed, a_shape), make(seed + 1, b_shape)
    check_against_torch(fn, fn, (a, b), names=["a", "b"])


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
@given(shapes=pairs, seed=seeds)
def test_named_binary_functions_match_torch(name, shapes, seed):
    a_shape, b_shape = shapes.input_shapes
    a, b = positive(seed, a_shape), positive(seed + 1, b_shape)
    check_against_torch(getattr(dn, name), name, (a, b))


@pytest.mark.parametrize("alpha", [2.0, -0.5])
@pytest.mark.parametrize("name", ["add", "sub"])
def test_add_sub_alpha_match_torch(name, alpha, rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    check_against_torch(getattr(dn, name), name, (a, b), alpha=alpha)


@pytest.mark.parametrize("scalar", [2.0, -3, 0.5])
@pytest.mark.parametrize(
    "expr",
    [
        lambda x, s: x + s,
        lambda x, s: s + x,
        lambda x, s: x - s,
        lambda x, s: s - x,
        lambda x, s: x * s,
        lambda x, s: s * x,
        lambda x, s: x / s,
        lambda x, s: s / x,
    ],
    ids=["x+s", "s+x", "x-s", "s-x", "x*s", "s*x", "x/s", "s/x"],
)
def test_operators_with_python_scalars_match_torch(expr, scalar, rng):
    x = away_from_zero(0, (3, 2))
    check_against_torch(lambda t: expr(t, scalar), lambda t: expr(t, scalar), (x,))


@given(shape=shapes, seed=seeds, exponent=st.sampled_from([2, 3, -1, 0.5, -1.5, 0, 1]))
def test_tensor_pow_scalar_matches_torch(shape, seed, exponent):
    x = positive(seed, shape)
    check_against_torch(lambda t: t**exponent, lambda t: t**exponent, (x,))


@pytest.mark.parametrize("exponent", [2, 3, 0])
def test_pow_integer_exponent_of_negative_and_zero_base_matches_torch(exponent):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    check_against_torch(lambda t: t**exponent, lambda t: t**exponent, (x,))


def test_pow_tensor_exponent_with_zero_base_and_zero_exponent_matches_torch():
    # a = 0 and p = 0: d(a^p)/da is 0 (not 0 * inf), and d(a^p)/dp is 0 (limit of a^p ln a).
    a = np.array([0.0, 0.0, 0.0, 2.0, 1.5])
    p = np.array([0.0, 2.0, 1.0, 0.0, -1.0])
    check_against_torch(lambda x, y: x**y, lambda x, y: x**y, (a, p))


@given(shape=shapes, seed=seeds, base=st.sampled_from([2.0, 0.5, 3, np.e]))
def test_scalar_pow_tensor_matches_torch(shape, seed, base):
    x = normal(seed, shape)
    check_against_torch(lambda t: base**t, lambda t: base**t, (x,))


def test_torch_pow_with_number_base_matches_torch(rng):
    x = rng.standard_normal((2, 3))
    check_against_torch(lambda t: dn.pow(2.0, t), lambda t: torch.pow(2.0, t), (x,))


# -- unary ops ------------------------------------------------------------------------------------

UNARY = {
    "neg": normal,
    "exp": normal,
    "log": positive,
    "sqrt": positive,
    "abs": away_from_zero,
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes, seed=seeds)
def test_unary_function_matches_torch(name, shape, seed):
    x = UNARY[name](seed, shape)
    check_against_torch(getattr(dn, name), name, (x,))


@pytest.mark.parametrize("name", UNARY)
def test_unary_method_matches_torch(name, rng):
    x = UNARY[name](1, (2, 3))
    check_against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), (x,))


def test_neg_and_abs_operators_match_torch(rng):
    x = away_from_zero(3, (4, 2))
    check_against_torch(lambda t: -t, lambda t: -t, (x,))
    check_against_torch(lambda t: abs(t), lambda t: abs(t), (x,))


def test_abs_gradient_at_zero_is_zero_as_torch():
    check_against_torch(dn.abs, "abs", (np.array([-1.0, 0.0, 2.0]),))


# -- clamp ----------------------------------------------------------------------------------------


@given(
    shape=shapes,
    seed=seeds,
    bounds=st.sampled_from([(-0.5, None), (None, 0.3), (-0.5, 0.5), (0.2, 0.2), (1.0, -1.0)]),
)
def test_clamp_matches_torch(shape, seed, bounds):
    lo, hi = bounds
    x = normal(seed, shape)
    check_against_torch(dn.clamp, "clamp", (x,), min=lo, max=hi)


def test_clamp_values_exactly_at_the_bounds_pass_the_gradient_as_torch():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    check_against_torch(dn.clamp, "clamp", (x,), min=-0.5, max=0.5)
    check_against_torch(dn.clamp, "clamp", (x,), min=-0.5)
    check_against_torch(dn.clamp, "clamp", (x,), max=0.5)


def test_clip_alias_and_method_match_torch(rng):
    x = rng.standard_normal((3, 3))
    check_against_torch(dn.clip, "clip", (x,), min=-0.2, max=0.7)
    check_against_torch(lambda t: t.clamp(min=0.1), lambda t: t.clamp(min=0.1), (x,))


@given(shapes=pairs, seed=seeds)
def test_clamp_with_tensor_bounds_matches_torch(shapes, seed):
    x_shape, bound_shape = shapes.input_shapes
    x = normal(seed, x_shape)
    lo = normal(seed + 1, bound_shape) - 0.5
    hi = normal(seed + 2, bound_shape) + 0.5  # sometimes below lo: then hi wins, as torch
    check_against_torch(
        lambda t, a, b: dn.clamp(t, a, b), lambda t, a, b: torch.clamp(t, a, b), (x, lo, hi)
    )
    check_against_torch(lambda t, a: dn.clamp(t, min=a), lambda t, a: torch.clamp(t, min=a),
                        (x, lo))
    check_against_torch(lambda t, b: dn.clamp(t, max=b), lambda t, b: torch.clamp(t, max=b),
                        (x, hi))


def test_clamp_without_bounds_raises_like_torch():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        dn.clamp(dn.ones(2))


# -- maximum / minimum / where --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(shapes=pairs, seed=seeds)
def test_maximum_minimum_with_ties_match_torch(name, shapes, seed):
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(seed)
    # Small integers make ties frequent: tied elements share the gradient (g/2 each), as torch.
    a = np.asarray(rng.integers(-2, 3, a_shape), dtype=np.float64)
    b = np.asarray(rng.integers(-2, 3, b_shape), dtype=np.float64)
    check_against_torch(getattr(dn, name), name, (a, b))


def test_maximum_tie_gives_half_the_gradient_to_each_input():
    a = dn.tensor([1.0, 2.0], requires_grad=True)
    b = dn.tensor([1.0, 0.0], requires_grad=True)
    dn.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0])


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4), seed=seeds)
def test_where_matches_torch(shapes, seed):
    c_shape, a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(seed)
    cond = np.asarray(rng.random(c_shape) > 0.5)
    a, b = normal(seed + 1, a_shape), normal(seed + 2, b_shape)
    check_against_torch(dn.where, "where", (cond, a, b), names=["cond", "input", "other"])


def test_where_with_a_scalar_branch_matches_torch(rng):
    cond, x = rng.random((3, 4)) > 0.5, rng.standard_normal((3, 4))
    check_against_torch(
        lambda c, t: dn.where(c, t, 0.0), lambda c, t: torch.where(c, t, 0.0), (cond, x)
    )
    out = dn.where(dn.tensor(cond), 1.0, 0.0)
    assert out.dtype == torch_dtype_name(torch.where(torch.tensor(cond), 1.0, 0.0))


def test_where_rejects_a_non_bool_condition():
    with pytest.raises(RuntimeError, match="boolean"):
        dn.where(dn.ones(2), dn.ones(2), dn.zeros(2))


# -- dtypes: PyTorch's promotion rules, not NumPy's -----------------------------------------------


def torch_dtype_name(t: torch.Tensor) -> np.dtype:
    return np.dtype(str(t.dtype).replace("torch.", ""))


OPERANDS = {
    "f32": lambda mod: mod.ones(3, dtype=mod.float32),
    "f64": lambda mod: mod.ones(3, dtype=mod.float64),
    "i64": lambda mod: mod.ones(3, dtype=mod.int64),
    "i32": lambda mod: mod.ones(3, dtype=mod.int32),
    "u8": lambda mod: mod.ones(3, dtype=mod.uint8),
    "bool": lambda mod: mod.ones(3, dtype=mod.bool),
    "f64_0d": lambda mod: mod.ones((), dtype=mod.float64),
    "i64_0d": lambda mod: mod.ones((), dtype=mod.int64),
    "int": lambda mod: 2,
    "float": lambda mod: 2.5,
    "np_f64": lambda mod: np.float64(2.5),
}
PAIRS = [
    ("f32", "f64"), ("f32", "i64"), ("i64", "f32"), ("i32", "i64"), ("u8", "i32"), ("bool", "i32"),
    ("bool", "f32"), ("f32", "f64_0d"), ("i64", "f64_0d"), ("i32", "i64_0d"), ("f32", "int"),
    ("f32", "float"), ("i64", "float"), ("i64", "int"), ("bool", "int"), ("bool", "float"),
    ("f32", "np_f64"), ("int", "f32"), ("float", "i64"),
]


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
@pytest.mark.parametrize("left, right", PAIRS)
def test_binary_result_dtype_matches_torch(op, left, right):
    if op == "-" and "bool" in (left, right):  # torch refuses subtraction with a bool operand
        for mod in (dn, torch):
            with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool"):
                eval("a - b", {"a": OPERANDS[left](mod), "b": OPERANDS[right](mod)})
        return
    expr = f"a {op} b"
    ours = eval(expr, {"a": OPERANDS[left](dn), "b": OPERANDS[right](dn)})
    theirs = eval(expr, {"a": OPERANDS[left](torch), "b": OPERANDS[right](torch)})
    assert ours.dtype == torch_dtype_name(theirs), f"{left} {op} {right}"
    np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.double().numpy())


def test_mixed_dtype_gradients_come_back_in_each_inputs_dtype():
    a = dn.ones(3, dtype=dn.float32, requires_grad=True)
    b = dn.ones(3, dtype=dn.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == dn.float32 and b.grad.dtype == dn.float64


def test_integer_pow_and_division_dtypes_match_torch():
    for expr in ["a ** 2", "a ** 2.5", "2 ** a", "a / 2", "a // 2", "a % 2"]:
        ours = eval(expr, {"a": dn.arange(1, 4)})
        theirs = eval(expr, {"a": torch.arange(1, 4)})
        assert ours.dtype == torch_dtype_name(theirs), expr
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_negating_a_bool_tensor_raises_like_torch():
    for mod in (dn, torch):
        with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor"):
            -mod.ones(2, dtype=mod.bool)


def test_unsupported_operand_raises_type_error():
    with pytest.raises(TypeError):
        dn.ones(2) + "a"
    with pytest.raises(TypeError):
        dn.ones(2) * [1.0, 2.0]


def test_functions_reject_non_tensor_input():
    for name in ["exp", "log", "sqrt", "abs", "neg"]:
        with pytest.raises(TypeError, match="must be Tensor"):
            getattr(dn, name)(1.0)


# -- Tensor.to: a differentiable cast -------------------------------------------------------------


@pytest.mark.parametrize("target", ["float32", "float64"])
@pytest.mark.parametrize("source", ["float32", "float64"])
def test_to_dtype_gradient_matches_torch(source, target, rng):
    x = rng.standard_normal((3, 4)).astype(source)
    upstream = rng.standard_normal((3, 4))
    ours = dn.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y_ours = ours.to(getattr(dn, target))
    y_theirs = theirs.to(getattr(torch, target))
    assert y_ours.dtype == torch_dtype_name(y_theirs)
    (y_ours * dn.tensor(upstream, dtype=getattr(dn, target))).sum().backward()
    (y_theirs * torch.tensor(upstream, dtype=getattr(torch, target))).sum().backward()
    assert ours.grad.dtype == torch_dtype_name(theirs.grad)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6)


def test_to_accepts_devices_tensors_and_keywords():
    x = dn.ones(2)
    assert x.to("cpu") is x
    assert x.to("cpu", dn.float64).dtype == dn.float64
    assert x.to(dtype=dn.float64).dtype == dn.float64
    assert x.to(dn.zeros(1, dtype=dn.int64)).dtype == dn.int64
    assert x.to(dn.float32, copy=True) is not x
    with pytest.raises(RuntimeError, match="CPU"):
        x.to("cuda")


def test_float_double_half_long_int_bool_conversions_match_torch():
    x = np.array([-1.5, 0.0, 2.7])
    for method in ["float", "double", "half", "long", "int", "bool"]:
        ours = getattr(dn.tensor(x), method)()
        theirs = getattr(torch.tensor(x), method)()
        assert ours.dtype == torch_dtype_name(theirs), method
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_promote_keeps_float32_for_python_and_numpy_scalars():
    x = dn.ones(3)
    assert E.promote(x, 2.0)[0] is x
    assert (x * np.float64(2.0)).dtype == dn.float32
    assert (x * np.sqrt(2.0)).dtype == dn.float32
