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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import grad_mode

# deepnotes.tensor imports this module, so the Tensor class is bound here by tensor.py once it
# exists (a module-level name is much cheaper than an import statement inside __call__).
Tensor: Any = None


class Function:
    """Base class of every differentiable op; see the module docstring."""

    # Set by __call__ when the node is recorded in the graph.
    inputs: tuple[Any, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    saved: tuple[Any, ...] = ()
    _released = False
    _output_meta: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()
    _retained: dict[int, Any] | None = None

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grad_outputs: Any) -> Any:
        raise NotImplementedError

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    def release(self) -> None:
        """Drop what the node keeps alive (inputs, saved arrays, attributes set in forward)."""
        self.__dict__.clear()
        self._released = True

    def __call__(self, *inputs: Any) -> Any:
        tensor_cls = Tensor
        arrays = [v.data if isinstance(v, tensor_cls) else v for v in inputs]
        needs = tuple([isinstance(v, tensor_cls) and v._requires_grad for v in inputs])
        record = grad_mode._grad_enabled and True in needs
        if record:
            self.needs_input_grad = needs
            self.inputs = inputs
        output = self.forward(*arrays)
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
