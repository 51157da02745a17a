"""The graph node: a ``Function`` subclass per differentiable op.

An op is a subclass with ``forward(self, *arrays)`` and ``backward(self, *grad_outputs)``, both on
raw ndarrays. Calling an *instance* on Tensors runs ``forward`` and, when a gradient is needed,
makes the instance the node that produced the outputs. The instance plays PyTorch's ``ctx``:
hyper-parameters go in ``__init__``, arrays needed by ``backward`` go through ``save_for_backward``
(or plain attributes).

Rules the engine relies on:

* ``backward`` returns one gradient per input to ``forward`` (a tuple when there are several), each
  either an array or ``None`` (no gradient, e.g. for a missing bias or a non-tensor argument).
  A gradient may have a broadcast shape; the engine sums it back to the input's shape.
* ``self.needs_input_grad[i]`` says whether input ``i`` needs a gradient, so ``backward`` can skip
  work nobody asked for (for example ``grad_x`` of the first convolution).
* Outputs of integer or bool dtype (indices, masks) never require gradients.
* ``backward`` must not modify its ``grad_outputs`` in place: the engine may hand the same array
  to several consumers.
* Gradients of gradients (double backward) are out of scope: ``backward`` works on raw arrays.

In-place changes of saved tensors are detected as PyTorch detects them, with a version counter:
every Tensor has ``_version``, which each in-place op increments. A recorded node notes each input
Tensor's version along with the edge to the node that produced it. Before running ``backward``
the engine compares those versions with the inputs' current ones; only if one has moved does it
look whether the node saved that input's array (or a view of it) for backward, and then it
raises instead of computing a gradient from changed values. A node that saved its *output* is
told when that output is changed in place (see :func:`output_modified`). The bookkeeping is one
small tuple per input at record time and one comparison per input before backward.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import anomaly_mode, grad_mode

# deepnotes.tensor imports this module, so the Tensor class is bound here by tensor.py once it
# exists (a module-level name is much cheaper than an import statement inside __call__).
Tensor: Any = None


class Function:
    """Base class of every differentiable op; see the module docstring."""

    # Set by __call__ when the node is recorded in the graph.
    inputs: tuple[Any, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    _edges: Any = ()  # per Tensor input: (producing node or None, output index, version, array)
    saved: tuple[Any, ...] = ()
    _released = False
    _output_meta: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()
    _retained: dict[int, Any] | None = None
    # ((weakref to output, version it had, output index), ...): outputs that this node saved and
    # that were changed in place afterwards (a node must not keep its own outputs alive).
    _modified_outputs: tuple[tuple[Any, int, int], ...] | None = None

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grad_outputs: Any) -> Any:
        raise NotImplementedError

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep ``arrays`` for ``backward`` (in ``self.saved``)."""
        self.saved = arrays

    def _saves(self, array: Any) -> bool:
        """Whether ``array``, or a view of it, is among the arrays saved for backward."""
        return any(s is array or (type(s) is np.ndarray and s.base is array)
                   for s in self.saved)

    def release(self) -> None:
        """Drop what the node keeps alive (inputs, saved arrays, attributes set in forward)."""
        self.__dict__.clear()
        self._released = True

    def __call__(self, *inputs: Any) -> Any:
        tensor_cls = Tensor
        # One pass over the inputs (cheaper than three comprehensions): the raw arrays for
        # forward, which inputs need a gradient, and for each Tensor input its edge: the node
        # that produced it (None for a leaf), which of that node's outputs it is, its version
        # and its array now. The engine routes gradients along these edges, not along the
        # inputs' current ``_fn``: an in-place op moves a tensor to a new node, but this node
        # used its old value (and the version and array tell whether that value changed).
        arrays: list[Any] = []
        needs_list: list[bool] = []
        edges: list[Any] = []
        for v in inputs:
            if isinstance(v, tensor_cls):
                data = v.data
                arrays.append(data)
                needs_list.append(v._requires_grad)
                edges.append((v._fn, v._index, v._version, data))
            else:
                arrays.append(v)
                needs_list.append(False)
                edges.append(None)
        needs = tuple(needs_list)
        record = grad_mode._grad_enabled and True in needs
        if record:
            self.needs_input_grad = needs
            self.inputs = inputs
            self._edges = edges
        anomaly = anomaly_mode._enabled  # off: this flag test is all anomaly mode costs
        if anomaly:
            self._created_at = anomaly_mode.creation_site()
        try:
            output = self.forward(*arrays)
        except ValueError as error:  # a NumPy broadcasting error must not escape raw
            if not str(error).startswith("operands could not be broadcast"):
                raise
            raise broadcast_error(arrays) from None
        if anomaly and anomaly_mode._check_nan:
            anomaly_mode.check_forward(self, arrays,
                                       output if isinstance(output, tuple) else (output,))
        wrap = tensor_cls._wrap
        if not isinstance(output, tuple):
            out = wrap(output)
            if record:
                data = out.data
                self._output_meta = ((data.shape, data.dtype),)
                if data.dtype.kind == "f":
                    out._requires_grad = True
                    out._fn = self
            return out
        outputs = tuple([wrap(o) for o in output])
        if record:
            self._output_meta = tuple([(o.data.shape, o.data.dtype) for o in outputs])
            for index, out in enumerate(outputs):
                if out.data.dtype.kind == "f":
                    out._requires_grad = True
                    out._fn = self
                    out._index = index
        return outputs


def broadcast_error(arrays: list) -> RuntimeError:
    """PyTorch's message for operands whose shapes do not broadcast, naming the first dimension
    (counted from the right, as broadcasting aligns shapes) where two sizes differ."""
    shapes = [a.shape for a in arrays if isinstance(a, np.ndarray) and a.ndim]
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            ndim = max(len(a), len(b))
            for k in range(1, min(len(a), len(b)) + 1):
                if a[-k] != b[-k] and a[-k] != 1 and b[-k] != 1:
                    return RuntimeError(
                        f"The size of tensor a ({a[-k]}) must match the size of tensor b "
                        f"({b[-k]}) at non-singleton dimension {ndim - k}"
                    )
    return RuntimeError(f"shapes {[tuple(s) for s in shapes]} cannot be broadcast together")


def output_modified(node: Function, tensor: Any, old_data: np.ndarray, version: int) -> None:
    """Called when ``tensor``, output of ``node``, is changed in place (its value was ``old_data``
    at ``version``): if ``node`` saved that array for backward, its backward must refuse to run."""
    if not node._released and node._saves(old_data):
        entry = (weakref.ref(tensor), version, tensor._index)
        previous = node._modified_outputs
        node._modified_outputs = (entry,) if previous is None else previous + (entry,)
