"""The Tensor: an ndarray plus what autograd needs (``requires_grad``, ``grad``, the producing node).

Operators and methods call the ops in ``deepnotes.ops``; the ops do the math on raw arrays and
record themselves in the graph (see ``autograd.function``). ``tensor.data`` is the raw ndarray.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from . import backend
from .autograd import engine
from .autograd.grad_mode import is_grad_enabled


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Convert user data to an ndarray with PyTorch's dtype rules.

    Python floats (and lists of them) become the default dtype (float32); Python ints become int64;
    NumPy arrays keep their dtype (float64 stays float64, as ``torch.from_numpy``).
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    if isinstance(data, np.ndarray | np.generic):
        return np.array(data)
    arr = np.array(data)
    if arr.dtype == np.float64:
        arr = arr.astype(backend.get_default_dtype())
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "fb":
        raise TypeError(f"tensor(): could not convert data of type {type(data).__name__} "
                        f"(numpy dtype {arr.dtype}) to a tensor")
    return arr


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: array-like (nested lists, scalars, ndarray or Tensor).
        requires_grad: record operations on this tensor so that ``backward`` fills ``.grad``.
        dtype: optional dtype (``deepnotes.float32``...).
    """

    __slots__ = ("data", "grad", "_requires_grad", "_fn", "_index", "_version", "_hooks",
                 "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # make ndarray + Tensor call Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data = _to_array(data, dtype)
        self.grad: Tensor | None = None
        self._fn = None
        self._index = 0
        self._version = 0
        self._hooks: list | None = None
        self._retains_grad = False
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _wrap(cls, array: np.ndarray) -> Tensor:
        """Wrap an ndarray without copying or checking (used by the autograd layer)."""
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t._fn = None
        t._index = 0
        t._version = 0
        t._hooks = None
        t._retains_grad = False
        t._requires_grad = False
        return t

    # -- autograd ---------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":
            raise RuntimeError(
                "Only Tensors of floating point and complex dtype can require gradients, "
                f"got dtype {self.data.dtype}"
            )
        if not value and self._fn is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self._fn is None

    @property
    def grad_fn(self) -> Any:
        return self._fn

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is dL/d(self); it may be omitted only for a single-element tensor (then 1).
        """
        if not self._requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grad = np.ones_like(self.data)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if grad.shape != self.data.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {tuple(grad.shape)} and "
                    f"output[0] has a shape of {tuple(self.data.shape)}."
                )
            grad = grad.astype(self.data.dtype, copy=False)
        engine.backward(self, grad, retain_graph=retain_graph)

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward."""
        if self._fn is None:
            return
        self._retains_grad = True
        engine.retain(self)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> None:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        if self._fn is not None:
            engine.retain(self)

    def detach(self) -> Tensor:
        """A tensor sharing the same data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def detach_(self) -> Tensor:
        self._fn = None
        self._requires_grad = False
        return self

    # -- array facts ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return "cpu"

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.data.shape
        from .ops._util import normalize_dim

        return self.data.shape[normalize_dim(dim, self.data.ndim, "size")]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        if self._requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self.data.size} elements cannot be converted to Scalar"
            )
        return self.data.reshape(()).item()

    def __float__(self) -> float:
        return builtins.float(self.item())

    def __int__(self) -> int:
        return builtins.int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with more than one value is ambiguous (got {self.data.size})"
            )
        return builtins.bool(self.data.reshape(()).item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.data.reshape(()).item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (backend.get_default_dtype(), np.int64, np.bool_):
            extras.append(f"dtype=deepnotes.{self.data.dtype}")
        if self._fn is not None:
            extras.append(f"grad_fn=<{type(self._fn).__name__}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__

    # -- dtype conversion -------------------------------------------------------------------------
    def to(self, dtype: Any = None, *args: Any, **kwargs: Any) -> Tensor:
        """Convert to ``dtype`` (device arguments such as "cpu" are accepted and ignored)."""
        dtype = kwargs.pop("dtype", dtype)
        if isinstance(dtype, str) and dtype.startswith("cpu"):
            dtype = args[0] if args else None
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self
        dtype = np.dtype(dtype)
        if self._requires_grad and dtype.kind == "f":
            from .ops.elementwise import CastFn

            return CastFn(dtype)(self)
        return Tensor._wrap(self.data.astype(dtype))

    def type(self, dtype: Any) -> Tensor:
        return self.to(dtype)

    def float(self) -> Tensor:
        return self.to(backend.float32)

    def double(self) -> Tensor:
        return self.to(backend.float64)

    def half(self) -> Tensor:
        return self.to(backend.float16)

    def long(self) -> Tensor:
        return self.to(backend.int64)

    def int(self) -> Tensor:
        return self.to(backend.int32)

    def bool(self) -> Tensor:
        return self.to(backend.bool_)

    def cpu(self) -> Tensor:
        return self

    def contiguous(self) -> Tensor:
        return self

    def clone(self) -> Tensor:
        from .ops.elementwise import CloneFn

        return CloneFn()(self)

    # -- arithmetic -------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ew.AddFn()(self, _operand(other))

    def __radd__(self, other: Any) -> Tensor:
        return _ew.AddFn()(_operand(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return _ew.SubFn()(self, _operand(other))

    def __rsub__(self, other: Any) -> Tensor:
        return _ew.SubFn()(_operand(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return _ew.MulFn()(self, _operand(other))

    def __rmul__(self, other: Any) -> Tensor:
        return _ew.MulFn()(_operand(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ew.DivFn()(self, _operand(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ew.DivFn()(_operand(other), self)

    def __pow__(self, exponent: Any) -> Tensor:
        return _ew.PowFn()(self, _operand(exponent))

    def __rpow__(self, base: Any) -> Tensor:
        return _ew.PowFn()(_operand(base), self)

    def __matmul__(self, other: Any) -> Tensor:
        return _mm.matmul(self, _as_tensor(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _mm.matmul(_as_tensor(other), self)

    def __neg__(self) -> Tensor:
        return _ew.NegFn()(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ew.AbsFn()(self)

    def __floordiv__(self, other: Any) -> Tensor:
        return Tensor._wrap(np.floor_divide(self.data, _raw(other)))

    def __mod__(self, other: Any) -> Tensor:
        return Tensor._wrap(np.mod(self.data, _raw(other)))

    # -- comparisons and logic: results carry no gradient ------------------------------------------
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data == _raw(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data != _raw(other))

    def __lt__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data >= _raw(other))

    def __and__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data & _raw(other))

    def __or__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data | _raw(other))

    def __xor__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data ^ _raw(other))

    def __invert__(self) -> Tensor:
        return Tensor._wrap(~self.data)

    def eq(self, other: Any) -> Tensor:
        return self == other

    def ne(self, other: Any) -> Tensor:
        return self != other

    def lt(self, other: Any) -> Tensor:
        return self < other

    def le(self, other: Any) -> Tensor:
        return self <= other

    def gt(self, other: Any) -> Tensor:
        return self > other

    def ge(self, other: Any) -> Tensor:
        return self >= other

    def isnan(self) -> Tensor:
        return Tensor._wrap(np.isnan(self.data))

    def isfinite(self) -> Tensor:
        return Tensor._wrap(np.isfinite(self.data))

    def all(self) -> Tensor:
        return Tensor._wrap(np.all(self.data))

    def any(self) -> Tensor:
        return Tensor._wrap(np.any(self.data))

    def equal(self, other: Tensor) -> bool:
        return self.shape == other.shape and builtins.bool(np.array_equal(self.data, other.data))

    def allclose(self, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        return builtins.bool(np.allclose(self.data, _raw(other), rtol=rtol, atol=atol))

    # -- named methods (same names as torch.Tensor) ------------------------------------------------
    def add(self, other: Any, *, alpha: float = 1) -> Tensor:
        return _ew.add(self, _operand(other), alpha=alpha)

    def sub(self, other: Any, *, alpha: float = 1) -> Tensor:
        return _ew.sub(self, _operand(other), alpha=alpha)

    def mul(self, other: Any) -> Tensor:
        return self * other

    def div(self, other: Any) -> Tensor:
        return self / other

    def pow(self, exponent: Any) -> Tensor:
        return self**exponent

    def matmul(self, other: Any) -> Tensor:
        return self @ other

    def neg(self) -> Tensor:
        return -self

    def exp(self) -> Tensor:
        return _ew.ExpFn()(self)

    def log(self) -> Tensor:
        return _ew.LogFn()(self)

    def sqrt(self) -> Tensor:
        return _ew.SqrtFn()(self)

    def abs(self) -> Tensor:
        return _ew.AbsFn()(self)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        return _ew.clamp(self, min, max)

    clip = clamp

    def maximum(self, other: Tensor) -> Tensor:
        return _ew.maximum(self, other)

    def minimum(self, other: Tensor) -> Tensor:
        return _ew.minimum(self, other)

    def relu(self) -> Tensor:
        return _act.relu(self)

    def sigmoid(self) -> Tensor:
        return _act.sigmoid(self)

    def tanh(self) -> Tensor:
        return _act.tanh(self)

    def softmax(self, dim: int) -> Tensor:
        return _act.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return _act.log_softmax(self, dim)

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.mean(self, dim, keepdim)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _red.max(self, dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _red.min(self, dim, keepdim)

    def amax(self, dim: Any = (), keepdim: bool = False) -> Tensor:
        return _red.amax(self, dim, keepdim)

    def amin(self, dim: Any = (), keepdim: bool = False) -> Tensor:
        return _red.amin(self, dim, keepdim)

    def var(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None) -> Tensor:
        return _red.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *,
            correction: float | None = None) -> Tensor:
        return _red.std(self, dim, unbiased, keepdim, correction=correction)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _red.argmax(self, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _red.argmin(self, dim, keepdim)

    def reshape(self, *shape: Any) -> Tensor:
        return _shape.reshape(self, *shape)

    view = reshape

    def view_as(self, other: Tensor) -> Tensor:
        return _shape.reshape(self, *other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return _shape.reshape(self, *other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _shape.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        return _shape.permute(self, *dims)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self if self.ndim < 2 else _shape.transpose(self, 0, 1)

    @property
    def T(self) -> Tensor:  # noqa: N802 - torch name
        return _shape.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:  # noqa: N802 - torch name
        return _shape.transpose(self, -2, -1)

    def squeeze(self, dim: Any = None) -> Tensor:
        return _shape.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return _shape.unsqueeze(self, dim)

    def expand(self, *sizes: Any) -> Tensor:
        return _shape.expand(self, *sizes)

    def expand_as(self, other: Tensor) -> Tensor:
        return _shape.expand(self, *other.shape)

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.GetitemFn(_unwrap_index(index))(self)

    # -- in-place updates (no gradient; they bump the version counter) ------------------------------
    def _check_inplace(self) -> None:
        if self._requires_grad and self._fn is None and is_grad_enabled():
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace()
        self.data[_unwrap_index(index)] = _raw(value)
        self._version += 1

    def _inplace(self, values: np.ndarray) -> Tensor:
        self._check_inplace()
        self.data[...] = values
        self._version += 1
        return self

    def zero_(self) -> Tensor:
        return self._inplace(0)

    def fill_(self, value: float) -> Tensor:
        return self._inplace(value)

    def copy_(self, src: Any) -> Tensor:
        return self._inplace(_raw(src))

    def add_(self, other: Any, *, alpha: float = 1) -> Tensor:
        return self._inplace(self.data + alpha * _raw(other))

    def sub_(self, other: Any, *, alpha: float = 1) -> Tensor:
        return self._inplace(self.data - alpha * _raw(other))

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(self.data * _raw(other))

    def div_(self, other: Any) -> Tensor:
        return self._inplace(self.data / _raw(other))

    def clamp_(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        return self._inplace(np.clip(self.data, min, max))

    def uniform_(self, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
        rng = generator or _random.default_generator()
        return self._inplace(rng.uniform(a, b, size=self.data.shape))

    def normal_(self, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
        rng = generator or _random.default_generator()
        return self._inplace(rng.normal(mean, std, size=self.data.shape))

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)


def _raw(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _operand(value: Any) -> Any:
    """Tensors pass through; Python scalars stay scalars (so float32 stays float32, as in PyTorch)."""
    if isinstance(value, Tensor | builtins.int | builtins.float | builtins.bool):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return value
    raise TypeError(f"unsupported operand type for a Tensor operation: {type(value).__name__}")


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


# The ops import Tensor lazily, so importing them here, after the class exists, is safe.
from . import random as _random  # noqa: E402
from .ops import activation as _act  # noqa: E402
from .ops import elementwise as _ew  # noqa: E402
from .ops import matmul as _mm  # noqa: E402
from .ops import reduce as _red  # noqa: E402
from .ops import shape as _shape  # noqa: E402
