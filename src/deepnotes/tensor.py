"""The Tensor: an ndarray plus what autograd needs (``requires_grad``, ``grad``, the producer).

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
from .autograd import function as _function
from .autograd.grad_mode import is_grad_enabled


def _first_leaf(data: Any) -> Any:
    """The first scalar of a nested list (``[[a, b], [c]] -> a``), or ``data`` itself."""
    while isinstance(data, list | tuple) and data:
        data = data[0]
    return data


def _strip_tensors(data: Any) -> Any:
    """Replace the Tensors inside nested lists by their arrays (``tensor([t1, t2])``)."""
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, list | tuple):
        return [_strip_tensors(item) for item in data]
    return data


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Convert user data to an ndarray with PyTorch's dtype rules.

    Python floats (and lists of them) become the default dtype (float32); Python ints become int64;
    NumPy arrays, NumPy scalars and Tensors keep their dtype (float64 stays float64, as
    ``torch.tensor(np.float64(1.0))``), also inside lists.
    """
    if isinstance(data, Tensor):
        data = data.data
    keep_dtype = isinstance(data, np.ndarray | np.generic)
    if not keep_dtype and isinstance(data, list | tuple):
        leaf = _first_leaf(data)
        if isinstance(leaf, Tensor | np.ndarray | np.generic):
            keep_dtype = True
            data = _strip_tensors(data)
    try:
        if dtype is not None:
            return np.array(data, dtype=np.dtype(dtype))
        arr = np.array(data)
    except ValueError as error:
        if isinstance(data, list | tuple):
            ragged = _ragged_message(data)
            if ragged:
                raise (TypeError if ragged.startswith("not a sequence") else ValueError)(
                    ragged) from None
        raise TypeError(f"tensor(): could not convert data of type {type(data).__name__} to a "
                        f"tensor of dtype {dtype}: {error}") from None
    if keep_dtype:
        return arr
    if arr.dtype == np.float64:
        arr = arr.astype(backend.get_default_dtype())
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "fb":
        raise TypeError(
            f"tensor(): could not convert data of type {type(data).__name__} "
            f"(numpy dtype {arr.dtype}) to a tensor"
        )
    return arr


def _ragged_message(data: Any, dim: int = 0) -> str | None:
    """PyTorch's message for nested lists of uneven lengths ("expected sequence of length 2 at
    dim 1 (got 1)"), or None when the lengths agree."""
    items = [d for d in data if isinstance(d, list | tuple)]
    if not items:
        return None
    if len(items) != len(data):
        return (f"not a sequence: expected the elements at dim {dim} to be all sequences or all "
                f"numbers (got {data!r:.60})")
    length = len(items[0])
    for item in items[1:]:
        if len(item) != length:
            return f"expected sequence of length {length} at dim {dim + 1} (got {len(item)})"
    for item in items:
        message = _ragged_message(item, dim + 1)
        if message:
            return message
    return None


def _unwrap_index(index: Any) -> Any:
    """Tensors inside an index become their arrays (a tuple's items and a list's items too)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) if isinstance(i, Tensor | list) else i for i in index)
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [i.data if isinstance(i, Tensor) else i for i in index]
    return index


def _can_cast(source: np.dtype, target: np.dtype) -> bool:
    """PyTorch's rule for in-place results: no floating -> integer and no number -> bool casts."""
    if source.kind == "f" and target.kind in "iub":
        return False
    return not (source.kind != "b" and target.kind == "b")


class _HookHandle:
    """Returned by ``register_hook``; ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


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

    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            gradient: dL/d(self), of self's shape; may be omitted only for a single-element
                tensor (then 1).
            retain_graph: keep the graph's saved arrays so that backward can run through it again
                (default: free them, as PyTorch).
            create_graph: must be False; gradients of gradients are out of scope.
            inputs: not supported (gradients go to every leaf that requires grad).
        """
        if create_graph:
            raise NotImplementedError(
                "backward(create_graph=True): double backward is not supported"
            )
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...) is not supported")
        if not self._requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "grad can be implicitly created only for scalar outputs: expected a tensor "
                    f"with 1 element, got one of shape {tuple(self.data.shape)} with "
                    f"{self.data.size} elements (reduce it first, e.g. with .sum(), or pass "
                    "gradient=, of the same shape)"
                )
            grad = np.ones_like(self.data)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if grad.shape != self.data.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {tuple(grad.shape)} and "
                    f"output[0] has a shape of {tuple(self.data.shape)}."
                )
            grad = np.array(grad, dtype=self.data.dtype)  # a copy: .grad must not alias `gradient`
        engine.backward(self, grad, retain_graph=builtins.bool(retain_graph))

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward (leaves: no-op)."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._fn is None:
            return
        self._retains_grad = True
        engine.retain(self)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> _HookHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces
        the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        if self._fn is not None:
            engine.retain(self)
        return _HookHandle(self._hooks, hook)

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

    def __iter__(self) -> Any:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __deepcopy__(self, memo: dict) -> Tensor:
        if self._fn is not None:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                "protocol at the moment."
            )
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)._wrap(self.data.copy())
        result._requires_grad = self._requires_grad
        if self.grad is not None:
            result.grad = Tensor._wrap(self.grad.data.copy())
        memo[id(self)] = result
        return result

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared memory, as ``torch.Tensor.numpy``)."""
        if self._requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

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
                "Boolean value of Tensor with more than one value is ambiguous "
                f"(got {self.data.size})"
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
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Convert to a dtype: ``to(dtype)``, ``to(other_tensor)``, ``to("cpu", dtype)``.

        Device arguments ("cpu") are accepted and ignored; deepnotes runs on the CPU. A float ->
        float conversion of a tensor that requires grad is differentiable (the gradient is
        converted back). Returns ``self`` when nothing changes (unless ``copy=True``).
        """
        dtype = kwargs.pop("dtype", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got an unexpected keyword argument {next(iter(kwargs))!r}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) or type(arg).__name__ == "device":
                name = str(arg)
                if not name.startswith("cpu"):
                    raise RuntimeError(f"deepnotes runs on the CPU only, got device {name!r}")
            elif arg is not None:
                dtype = arg
        if dtype is None or np.dtype(dtype) == self.data.dtype:
            return self.clone() if copy else self
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

    # -- arithmetic (operands are promoted to PyTorch's result dtype, see ops.elementwise) ---------
    def __add__(self, other: Any) -> Tensor:
        return _ew.AddFn()(*_ew.promote(self, other))

    def __radd__(self, other: Any) -> Tensor:
        return _ew.AddFn()(*_ew.promote(other, self))

    def __sub__(self, other: Any) -> Tensor:
        return _ew.SubFn()(*_ew.promote_sub(self, other))

    def __rsub__(self, other: Any) -> Tensor:
        return _ew.SubFn()(*_ew.promote_sub(other, self))

    def __mul__(self, other: Any) -> Tensor:
        return _ew.MulFn()(*_ew.promote(self, other))

    def __rmul__(self, other: Any) -> Tensor:
        return _ew.MulFn()(*_ew.promote(other, self))

    def __truediv__(self, other: Any) -> Tensor:
        return _ew.DivFn()(*_ew.promote_div(self, other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ew.DivFn()(*_ew.promote_div(other, self))

    def __pow__(self, exponent: Any) -> Tensor:
        return _ew.PowFn()(*_ew.promote(self, exponent))

    def __rpow__(self, base: Any) -> Tensor:
        return _ew.PowFn()(*_ew.promote(base, self))

    def __matmul__(self, other: Any) -> Tensor:
        return _mm.matmul(self, _as_tensor(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _mm.matmul(_as_tensor(other), self)

    def __neg__(self) -> Tensor:
        return _ew.neg(self)

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
        return _ew.add(self, other, alpha=alpha)

    def sub(self, other: Any, *, alpha: float = 1) -> Tensor:
        return _ew.sub(self, other, alpha=alpha)

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
        return _act.ReluFn()(self)

    def sigmoid(self) -> Tensor:
        return _act.SigmoidFn()(self)

    def tanh(self) -> Tensor:
        return _act.TanhFn()(self)

    def softmax(self, dim: int) -> Tensor:
        return _act.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return _act.log_softmax(self, dim)

    def sum(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
        return _red.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
        return _red.mean(self, dim, keepdim, dtype=dtype)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _red.max(self, dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return _red.min(self, dim, keepdim)

    def logsumexp(self, dim: Any, keepdim: bool = False) -> Tensor:
        return _red.logsumexp(self, dim, keepdim)

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
            raise RuntimeError(
                f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D"
            )
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
        return _shape.getitem(self, _unwrap_index(index))

    # -- in-place updates --------------------------------------------------------------------------
    # Two regimes. When autograd is involved (this tensor requires grad, or another operand
    # requires grad while grad mode is on), the update is computed out of place by the
    # differentiable op and the tensor is rebound to the result: the gradient flows through the
    # update, and arrays that earlier ops saved for backward are never overwritten. Otherwise the
    # ndarray is updated in place, so views and ``.numpy()`` see the change, as in PyTorch.
    # Either way ``_version`` increases.

    def _check_inplace(self) -> None:
        if self._requires_grad and self._fn is None and is_grad_enabled():
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )

    def _tracked(self, *others: Any) -> builtins.bool:
        """Whether an in-place update of self with ``others`` must go through autograd."""
        if self._requires_grad:
            return True
        return is_grad_enabled() and builtins.any(
            isinstance(o, Tensor) and o._requires_grad for o in others
        )

    def _check_writeable(self) -> None:
        if not self.data.flags.writeable:
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers to a "
                "single memory location. Please clone() the tensor before performing the operation."
            )

    def _snapshot(self) -> Tensor:
        """A new Tensor object standing for self's current value and graph position."""
        old = Tensor._wrap(self.data)
        old._fn, old._index, old._requires_grad = self._fn, self._index, self._requires_grad
        return old

    def _inplace_via(self, fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
        """self = fn(self, *args), computed out of place (recorded in the graph when grad mode is
        on) with a snapshot of self as the input, so that the graph has no cycle."""
        self._check_inplace()
        old = self._snapshot()
        args = tuple(old if arg is self else arg for arg in args)  # x.mul_(x)
        return self._rebind(fn(old, *args, **kwargs))

    def _rebind(self, result: Tensor) -> Tensor:
        """Make self hold ``result`` (computed out of place) and, in grad mode, its graph node."""
        self._check_inplace()
        dtype = self.data.dtype
        if result.data.dtype != dtype:
            if not _can_cast(result.data.dtype, dtype):
                raise RuntimeError(
                    f"result type {result.data.dtype} can't be cast to the desired output type "
                    f"{dtype}"
                )
            result = result.to(dtype)
        if result.data.shape != self.data.shape:
            raise RuntimeError(
                f"output with shape {list(self.data.shape)} doesn't match the broadcast shape "
                f"{list(result.data.shape)}"
            )
        old_fn, old_data = self._fn, self.data
        self.data = result.data
        if result._fn is not None:
            self._fn, self._index, self._requires_grad = result._fn, result._index, True
            if self._retains_grad or self._hooks:
                engine.retain(self)
        elif is_grad_enabled() and self._fn is not None:  # overwritten by a constant
            self._fn, self._requires_grad = None, False
        self._version += 1
        if old_fn is not None:  # the node that produced the old value may have saved it
            _function.output_modified(old_fn, self, old_data, self._version - 1)
        return self

    def _bump_version(self) -> None:
        """Count an in-place change made directly to ``self.data`` (PyTorch's version counter),
        and tell the node that produced this tensor, which may have saved the old value."""
        self._version += 1
        if self._fn is not None:
            _function.output_modified(self._fn, self, self.data, self._version - 1)

    def _ufunc_(self, ufunc: np.ufunc, other: Any) -> Tensor:
        """self = ufunc(self, other) in place, with PyTorch's casting rule (no float -> int)."""
        self._check_writeable()
        other = _raw(other)
        try:
            ufunc(self.data, other, out=self.data, casting="same_kind")
        except TypeError:
            raise RuntimeError(
                f"result type {np.result_type(self.data, other)} can't be cast to the desired "
                f"output type {self.data.dtype}"
            ) from None
        except ValueError:
            raise RuntimeError(
                f"output with shape {list(self.data.shape)} doesn't match the broadcast shape "
                f"{list(np.broadcast_shapes(self.data.shape, np.shape(other)))}"
            ) from None
        self._version += 1
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        index = _unwrap_index(index)
        if self._tracked(value):
            self._inplace_via(_shape.setitem, index, value)
            return
        self._check_writeable()
        try:
            self.data[index] = _raw(value)
        except IndexError as error:
            raise IndexError(_shape.torch_index_message(error)) from None
        except ValueError as error:
            raise RuntimeError(f"setitem: {error}") from None
        self._version += 1

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast to self's shape, cast to self's dtype) into self."""
        if self._tracked(src):
            if isinstance(src, Tensor) and src._requires_grad and is_grad_enabled():
                source = src if src.dtype == self.data.dtype else src.to(self.data.dtype)
                return self._inplace_via(
                    lambda old: _ew.CloneFn()(_shape.expand(source, *old.data.shape))
                )
            try:
                values = np.broadcast_to(np.asarray(_raw(src)), self.data.shape)
            except ValueError:
                raise RuntimeError(
                    f"copy_(): the source of shape {list(np.shape(_raw(src)))} cannot be broadcast "
                    f"to the tensor's shape {list(self.data.shape)}"
                ) from None
            return self._rebind(Tensor._wrap(values.astype(self.data.dtype)))
        self._check_writeable()
        try:
            np.copyto(self.data, _raw(src), casting="unsafe")
        except ValueError:
            raise RuntimeError(
                f"copy_(): the source of shape {list(np.shape(_raw(src)))} cannot be broadcast to "
                f"the tensor's shape {list(self.data.shape)}"
            ) from None
        self._version += 1
        return self

    def zero_(self) -> Tensor:
        return self.copy_(0)

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(
                "fill_ only supports 0-dimension value tensor but got tensor with "
                f"{value.ndim} dimensions."
            )
        return self.copy_(value)

    def add_(self, other: Any, *, alpha: float = 1) -> Tensor:
        if self._tracked(other):
            return self._inplace_via(_ew.add, other, alpha=alpha)
        return self._ufunc_(np.add, other if alpha == 1 else _raw(other) * alpha)

    def sub_(self, other: Any, *, alpha: float = 1) -> Tensor:
        if self._tracked(other):
            return self._inplace_via(_ew.sub, other, alpha=alpha)
        return self._ufunc_(np.subtract, other if alpha == 1 else _raw(other) * alpha)

    def mul_(self, other: Any) -> Tensor:
        if self._tracked(other):
            return self._inplace_via(_ew.mul, other)
        return self._ufunc_(np.multiply, other)

    def div_(self, other: Any) -> Tensor:
        if self._tracked(other):
            return self._inplace_via(_ew.div, other)
        return self._ufunc_(np.true_divide, other)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        if self._tracked(min, max):
            return self._inplace_via(_ew.clamp, min, max)
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        if min is not None:
            self._ufunc_(np.maximum, min)
        if max is not None:
            self._ufunc_(np.minimum, max)
        return self

    clip_ = clamp_

    def _random_(self, values: np.ndarray) -> Tensor:
        if self._requires_grad:
            return self._rebind(Tensor._wrap(values.astype(self.data.dtype)))
        self._check_writeable()
        self.data[...] = values
        self._version += 1
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
        """Fill with samples of U[a, b) from the global seeded generator (or ``generator``)."""
        rng = generator or _random.default_generator()
        return self._random_(rng.uniform(a, b, size=self.data.shape))

    def normal_(self, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
        """Fill with samples of N(mean, std^2) from the global seeded generator."""
        rng = generator or _random.default_generator()
        return self._random_(rng.normal(mean, std, size=self.data.shape))

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


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value)


# The ops import Tensor from this module, so they are imported here, after the class exists.
_function.Tensor = Tensor  # Function.__call__ wraps its outputs with Tensor._wrap

from . import random as _random  # noqa: E402
from .ops import activation as _act  # noqa: E402
from .ops import elementwise as _ew  # noqa: E402
from .ops import matmul as _mm  # noqa: E402
from .ops import reduce as _red  # noqa: E402
from .ops import shape as _shape  # noqa: E402
