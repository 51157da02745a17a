"""The Tensor class and the factories: dtype rules, conversions, comparisons, seeds."""

import numpy as np
import pytest
import torch

import deepnotes as dn


def torch_dtype(t: torch.Tensor) -> np.dtype:
    return np.dtype(str(t.dtype).replace("torch.", ""))


# -- construction dtypes, compared with torch.tensor ----------------------------------------------

DATA = {
    "python float": 1.5,
    "python int": 3,
    "python bool": True,
    "float list": [1.0, 2.5],
    "int list": [[1, 2], [3, 4]],
    "mixed list": [1, 2.5],
    "bool list": [True, False],
    "empty list": [],
    "numpy float64": np.array([1.0, 2.0]),
    "numpy float32": np.array([1.0], dtype=np.float32),
    "numpy int32": np.array([1, 2], dtype=np.int32),
    "numpy uint8": np.array([1, 2], dtype=np.uint8),
    "numpy float64 scalar": np.float64(2.0),
    "list of numpy float64 scalars": [np.float64(1.0), np.float64(2.0)],
}


@pytest.mark.parametrize("name", DATA)
def test_tensor_dtype_rules_match_torch_tensor(name):
    data = DATA[name]
    ours, theirs = dn.tensor(data), torch.tensor(data)
    assert ours.dtype == torch_dtype(theirs), name
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_from_a_list_of_tensors_matches_torch():
    ours = dn.tensor([dn.tensor(1.0), dn.tensor(2.0)])
    theirs = torch.tensor([torch.tensor(1.0), torch.tensor(2.0)])
    assert ours.dtype == torch_dtype(theirs) and ours.tolist() == theirs.tolist()


def test_tensor_with_explicit_dtype_and_copy_semantics():
    array = np.array([1.0, 2.0])
    t = dn.tensor(array, dtype=dn.float32)
    assert t.dtype == dn.float32
    array[0] = 9.0
    assert dn.tensor(array).tolist() == [9.0, 2.0] and t.tolist() == [1.0, 2.0]
    shared = dn.from_numpy(array)
    array[1] = -1.0
    assert shared.tolist() == [9.0, -1.0]
    assert dn.as_tensor(array).data is array
    assert dn.as_tensor(shared) is shared


def test_tensor_rejects_unsupported_data():
    with pytest.raises(TypeError, match="could not convert"):
        dn.tensor("abc")


def test_default_dtype_can_be_changed_and_restored():
    dn.set_default_dtype(dn.float64)
    try:
        assert dn.tensor(1.5).dtype == dn.float64 and dn.zeros(2).dtype == dn.float64
    finally:
        dn.set_default_dtype(dn.float32)
    assert dn.tensor(1.5).dtype == dn.float32
    with pytest.raises(TypeError):
        dn.set_default_dtype(dn.int64)


# -- requires_grad rules --------------------------------------------------------------------------


def test_requires_grad_on_integer_tensors_raises_like_torch():
    with pytest.raises(RuntimeError, match="floating point"):
        dn.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        dn.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        dn.zeros(2, dtype=dn.int64, requires_grad=True)


def test_requires_grad_flag_of_a_non_leaf_cannot_be_cleared():
    y = dn.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad = False
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None


def test_detach_and_detach_in_place():
    x = dn.ones(2, requires_grad=True)
    y = x * 2
    y.detach_()
    assert y.is_leaf and not y.requires_grad


# -- conversions ----------------------------------------------------------------------------------


def test_numpy_on_a_tensor_requiring_grad_raises_like_torch():
    x = dn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad"):
        x.numpy()
    with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad"):
        torch.ones(2, requires_grad=True).numpy()
    with pytest.raises(RuntimeError):
        np.asarray(x)
    assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_numpy_shares_memory_and_array_protocol_works():
    x = dn.zeros(3)
    x.numpy()[0] = 4.0
    assert x.tolist() == [4.0, 0.0, 0.0]
    assert np.asarray(x).dtype == np.float32 and np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.allclose(x, [4.0, 0.0, 0.0])


def test_item_float_int_bool_index_match_torch():
    for value in [2.5, -3.0]:
        assert dn.tensor(value).item() == torch.tensor(value).item()
        assert dn.tensor([[value]]).item() == torch.tensor([[value]]).item()
    assert isinstance(dn.tensor(3).item(), int) and isinstance(dn.tensor(3.0).item(), float)
    assert float(dn.tensor([1.5])) == 1.5 and int(dn.tensor(7)) == 7
    assert bool(dn.tensor([True])) and [10, 20, 30][dn.tensor(1)] == 20
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        dn.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(dn.ones(2))
    with pytest.raises(TypeError):
        [1, 2][dn.tensor(1.0)]


def test_shape_facts_match_torch():
    ours, theirs = dn.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert ours.shape == tuple(theirs.shape) and ours.size() == tuple(theirs.size())
    assert ours.size(-1) == theirs.size(-1) and ours.dim() == theirs.dim() == ours.ndim
    assert ours.numel() == theirs.numel() and len(ours) == len(theirs)
    with pytest.raises(TypeError):
        len(dn.tensor(1.0))
    with pytest.raises(IndexError):
        ours.size(3)


def test_iteration_and_deepcopy_follow_torch():
    import copy

    rows = list(dn.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(dn.tensor(1.0))
    x = dn.ones(2, requires_grad=True)
    (x * 2).sum().backward()
    y = copy.deepcopy(x)
    assert y.requires_grad and y.grad.tolist() == [2.0, 2.0]
    assert not np.shares_memory(y.data, x.data)
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)


def test_repr_mentions_dtype_and_grad():
    assert repr(dn.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=deepnotes.float64" in repr(dn.tensor([1.0], dtype=dn.float64))
    assert "requires_grad=True" in repr(dn.ones(1, requires_grad=True))
    assert "grad_fn=<MulFn>" in repr(dn.ones(1, requires_grad=True) * 2)


# -- comparisons and logic: non-differentiable bool tensors ---------------------------------------


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparisons_return_bool_tensors_without_grad_as_torch(op):
    a_np, b_np = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    a = dn.tensor(a_np, requires_grad=True)
    ours = eval(f"a {op} b", {"a": a, "b": dn.tensor(b_np)})
    theirs = eval(f"a {op} b", {"a": torch.tensor(a_np), "b": torch.tensor(b_np)})
    assert ours.dtype == np.bool_ and not ours.requires_grad and ours.grad_fn is None
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    scalar = eval(f"a {op} 2.0", {"a": a})
    np.testing.assert_array_equal(scalar.numpy(), eval(f"a {op} 2.0", {"a": a_np}))


def test_named_comparisons_and_logic():
    a, b = dn.tensor([1, 2, 3]), dn.tensor([3, 2, 1])
    assert a.eq(b).tolist() == [False, True, False] and a.ne(b).tolist() == [True, False, True]
    assert a.lt(b).tolist() == [True, False, False] and a.ge(b).tolist() == [False, True, True]
    assert ((a > 1) & (b > 1)).tolist() == [False, True, False]
    assert ((a > 2) | (b > 2)).tolist() == [True, False, True]
    assert (~(a > 1)).tolist() == [True, False, False]
    assert (a > 0).all().item() and not (a > 2).all().item() and (a > 2).any().item()
    assert a.equal(dn.tensor([1, 2, 3])) and not a.equal(b)
    assert dn.tensor([1.0]).allclose(dn.tensor([1.0 + 1e-9]))


# -- factories ------------------------------------------------------------------------------------

FACTORIES = [
    ("zeros", (2, 3), {}),
    ("ones", ((2, 3),), {}),
    ("empty", ([4],), {}),
    ("zeros", (2,), {"dtype": "int64"}),
    ("ones", (3,), {"dtype": "float64"}),
    ("full", ((2, 2), 1.5), {}),
    ("full", ((2,), 7), {}),
    ("full", ((2,), True), {}),
    ("full", ((2,), 2.0), {"dtype": "float64"}),
    ("arange", (5,), {}),
    ("arange", (1, 7, 2), {}),
    ("arange", (0.0, 1.0, 0.25), {}),
    ("arange", (5,), {"dtype": "float32"}),
    ("arange", (10, 0, -3), {}),
    ("eye", (3,), {}),
    ("eye", (2, 4), {"dtype": "float64"}),
    ("linspace", (-1.0, 1.0, 5), {}),
    ("linspace", (0, 10, 11), {"dtype": "float64"}),
    ("randn", (2, 3), {}),
    ("rand", (4,), {"dtype": "float64"}),
    ("randint", (10, (3, 2)), {}),
    ("randint", (2, 5, (4,)), {}),
    ("randperm", (6,), {}),
]


@pytest.mark.parametrize("name, args, kwargs", FACTORIES)
def test_factory_shapes_and_dtypes_match_torch(name, args, kwargs):
    ours = getattr(dn, name)(*args, **{k: getattr(dn, v) for k, v in kwargs.items()})
    theirs = getattr(torch, name)(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
    assert ours.shape == tuple(theirs.shape), name
    assert ours.dtype == torch_dtype(theirs), name
    if name in ("zeros", "ones", "full", "arange", "eye", "linspace"):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "rand_like",
                                  "randn_like"])
@pytest.mark.parametrize("dtype", [None, "float64"])
def test_like_factories_match_torch(name, dtype):
    kwargs = {} if dtype is None else {"dtype": getattr(dn, dtype)}
    torch_kwargs = {} if dtype is None else {"dtype": getattr(torch, dtype)}
    ours = getattr(dn, name)(dn.ones(2, 3, requires_grad=True), **kwargs)
    theirs = getattr(torch, name)(torch.ones(2, 3, requires_grad=True), **torch_kwargs)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == torch_dtype(theirs)
    assert not ours.requires_grad and not theirs.requires_grad


def test_full_like_and_requires_grad_factories():
    ours = dn.full_like(dn.zeros(2, dtype=dn.int64), 3)
    theirs = torch.full_like(torch.zeros(2, dtype=torch.int64), 3)
    assert ours.dtype == torch_dtype(theirs) and ours.tolist() == theirs.tolist()
    assert dn.zeros(2, requires_grad=True).requires_grad and dn.randn(2, requires_grad=True).is_leaf


def test_factory_errors():
    with pytest.raises(RuntimeError, match="negative dimension"):
        dn.zeros(-1)
    with pytest.raises(TypeError):
        dn.ones(2.5)
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        dn.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="step sign"):
        dn.arange(0, 5, -1)
    with pytest.raises(RuntimeError):
        dn.randint(5, 5, (2,))


# -- seeds ----------------------------------------------------------------------------------------


def test_manual_seed_makes_every_random_factory_reproducible():
    def draw():
        return [dn.randn(3).numpy(), dn.rand(2, 2).numpy(), dn.randint(0, 100, (5,)).numpy(),
                dn.randperm(7).numpy(), dn.empty(4).normal_().numpy(),
                dn.empty(3).uniform_(-1, 1).numpy()]

    dn.manual_seed(123)
    first = draw()
    dn.manual_seed(123)
    second = draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    dn.manual_seed(124)
    assert not np.array_equal(draw()[0], first[0])
    assert dn.initial_seed() == 124


def test_generator_reference_stays_valid_across_manual_seed():
    generator = dn.random.default_generator()
    dn.manual_seed(7)
    a = generator.standard_normal(3)
    dn.manual_seed(7)
    np.testing.assert_array_equal(a, dn.random.default_generator().standard_normal(3))


def test_rng_state_round_trip_resumes_the_stream():
    dn.manual_seed(5)
    dn.randn(10)
    state = dn.get_rng_state()
    expected = dn.randn(4).numpy()
    dn.randn(100)
    dn.set_rng_state(state)
    np.testing.assert_array_equal(dn.randn(4).numpy(), expected)


def test_manual_seed_rejects_non_integers():
    with pytest.raises(TypeError):
        dn.manual_seed(1.5)
    dn.manual_seed(-3)  # negative seeds are accepted, as in torch
    assert dn.initial_seed() == -3
    dn.manual_seed(0)


def test_random_fill_of_a_parameter_like_leaf_needs_no_grad():
    w = dn.empty(3, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w.normal_()
    with dn.no_grad():
        w.normal_(0.0, 0.01)
    assert w.is_leaf and w.requires_grad and w.dtype == dn.float32
