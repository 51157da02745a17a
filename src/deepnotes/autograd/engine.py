"""Reverse-mode differentiation over the graph of ``Function`` nodes.

``backward(root, grad)`` visits the nodes that lead to ``root`` in reverse topological order (an
iterative depth-first search, so deep graphs such as long RNN unrolls do not hit Python's
recursion limit). Each node receives the sum of the gradients flowing into each of its outputs, and
its ``backward`` returns one gradient per input. A gradient for a leaf tensor (one made by the user,
with ``requires_grad=True``) is added to its ``.grad``; for an intermediate tensor it is handed on
to the node that produced it.

Broadcasting: when ``a`` of shape (3, 1) meets ``b`` of shape (4,) in ``a + b``, the output has
shape (3, 4) and every element of ``a`` was used four times. Its gradient is therefore the upstream
gradient summed over the broadcast axes, which is what :func:`unbroadcast` does for every op at
once.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import anomaly_mode
from .function import Function

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched: an array of ``shape``.

    Leading axes that broadcasting prepended are summed away; axes where the input had size 1 are
    summed with ``keepdims``.
    """
    if grad.shape == shape:
        return grad
    if grad.ndim < len(shape):  # a lower-rank gradient (e.g. a scalar) broadcasts over the input
        return np.broadcast_to(grad, shape)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root: Function) -> tuple[list[Function], set[int]]:
    """Nodes reachable from ``root``, each before every node that produced one of its inputs,
    and the ids of the nodes that may have had a saved tensor changed in place since they were
    recorded (an input whose version moved, or an output flagged by ``output_modified``): the
    walk visits every edge anyway, so the version check costs one comparison per edge here.

    An iterative post-order depth-first search (no recursion), reversed: root first.
    """
    order: list[Function] = []
    stale: set[int] = set()
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(root, False)]
    append, pop = stack.append, stack.pop
    while stack:
        node, expanded = pop()
        if expanded:
            order.append(node)
            continue
        # Mark a node when it is expanded, not when it is pushed: a node pushed early (as the
        # input of one consumer) must still be finished after every other consumer that reaches
        # it later (a = f(x); b = g(a); a + b), or it would run before all its gradients arrive.
        if id(node) in visited:
            continue
        visited.add(id(node))
        append((node, True))
        if node._modified_outputs is not None:
            stale.add(id(node))
        for value, edge in zip(node.inputs, node._edges):
            if edge is not None:
                parent = edge[0]
                if value._version != edge[2]:
                    stale.add(id(node))
                if parent is not None and id(parent) not in visited:
                    append((parent, False))
    order.reverse()
    return order, stale


def _run_hooks(tensor: Any, grad: np.ndarray) -> np.ndarray:
    for hook in tensor._hooks or ():
        result = hook(tensor._wrap(grad))
        if result is not None:
            grad = result.data if hasattr(result, "data") else np.asarray(result)
            if grad.shape != tensor.data.shape:
                raise RuntimeError(
                    f"hook returned a gradient of shape {tuple(grad.shape)} for a tensor of shape "
                    f"{tuple(tensor.data.shape)}"
                )
    return grad


def _accumulate_leaf(tensor: Any, grad: np.ndarray, stored: set[int]) -> None:
    """Add ``grad`` to ``tensor.grad``; a new ``.grad`` never shares memory with anything else."""
    if tensor._hooks:
        grad = _run_hooks(tensor, grad)
    if grad.dtype != tensor.data.dtype:
        grad = grad.astype(tensor.data.dtype)
    if tensor.grad is None:
        # The same array may reach two leaves (a + b passes one gradient to both) and broadcast
        # views are read-only: copy in those cases so every .grad owns writable memory.
        if id(grad) in stored or not grad.flags.writeable or grad.base is not None:
            grad = grad.copy()
        stored.add(id(grad))
        tensor.grad = tensor._wrap(grad)
    else:
        tensor.grad.data = tensor.grad.data + grad


def _run_retained(node: Function, grads: list) -> None:
    """Hooks and ``retain_grad`` of the non-leaf tensors this node produced."""
    for index, ref in node._retained.items():
        tensor = ref()
        if tensor is None or tensor._fn is not node or tensor._index != index:
            continue
        grads[index] = _run_hooks(tensor, grads[index])
        if tensor._retains_grad:
            previous = tensor.grad
            value = grads[index].astype(tensor.data.dtype, copy=True)
            tensor.grad = tensor._wrap(value if previous is None else previous.data + value)


def backward(root: Any, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (dL/droot) to every leaf that requires a gradient."""
    if root._fn is None:  # a leaf: the gradient is the seed itself
        _accumulate_leaf(root, grad, set())
        return
    root_node = root._fn
    if root_node._released:
        raise RuntimeError(_FREED_MESSAGE)
    order, stale = _topological_order(root_node)
    pending: dict[int, list[Any]] = {id(root_node): [None] * len(root_node._output_meta)}
    pending[id(root_node)][root._index] = grad
    stored: set[int] = set()
    anomaly = anomaly_mode._enabled
    for node in order:
        if node._released:
            raise RuntimeError(_FREED_MESSAGE)
        grads = pending.pop(id(node), None)
        if grads is None:  # nothing flows into this node (e.g. only its unused output was reached)
            continue
        if len(grads) > 1:  # outputs that received no gradient get zeros
            for index, (shape, dtype) in enumerate(node._output_meta):
                if grads[index] is None:
                    grads[index] = np.zeros(shape, dtype=dtype)
        if node._retained:
            _run_retained(node, grads)
        if stale and id(node) in stale:
            check_versions(node)  # raises if the node saved a tensor that was changed in place
        if anomaly:
            input_grads = _backward_in_anomaly_mode(node, grads)
        else:
            input_grads = node.backward(*grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for value, needs, g, edge in zip(node.inputs, node.needs_input_grad, input_grads,
                                         node._edges):
            if not needs or g is None:
                continue
            data = value.data
            if type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.shape != data.shape:
                g = unbroadcast(g, data.shape)
            parent, index, _, _ = edge
            if parent is None:
                _accumulate_leaf(value, g, stored)
                continue
            if g.dtype != data.dtype:
                g = g.astype(data.dtype)
            slots = pending.get(id(parent))
            if slots is None:
                if parent._released:  # freed by an earlier backward through a shared subgraph
                    raise RuntimeError(_FREED_MESSAGE)
                slots = pending[id(parent)] = [None] * len(parent._output_meta)
            current = slots[index]
            slots[index] = g if current is None else current + g
        if not retain_graph:
            node.release()


_TORCH_TYPE_NAMES = {
    "float16": "HalfTensor", "float32": "FloatTensor", "float64": "DoubleTensor",
    "int8": "CharTensor", "int16": "ShortTensor", "int32": "IntTensor", "int64": "LongTensor",
    "uint8": "ByteTensor", "bool": "BoolTensor",
}


def _describe_saved(tensor: Any, output_of: tuple[Any, int] | None) -> str:
    """'[torch.FloatTensor [3]], which is output 0 of SigmoidFn', as PyTorch words it."""
    data = tensor.data if tensor is not None else None
    kind = "Tensor" if data is None else _TORCH_TYPE_NAMES.get(data.dtype.name, "Tensor")
    shape = "" if data is None else " [" + ", ".join(str(s) for s in data.shape) + "]"
    text = f"[torch.{kind}{shape}]"
    if output_of is not None:
        text += f", which is output {output_of[1]} of {type(output_of[0]).__name__},"
    return text


def check_versions(node: Function) -> None:
    """Refuse to run ``node.backward`` if a tensor it saved was changed in place since.

    PyTorch's version-counter check: every in-place op increments the tensor's ``_version``; the
    node noted each input's version when it was recorded, and an input whose version has moved
    is an error if the node saved its array (or a view of it). Outputs are flagged when they are
    changed, see ``function.output_modified``.
    """
    changed = []
    for value, edge in zip(node.inputs, node._edges):
        if edge is not None and value._version != edge[2] and node._saves(edge[3]):
            output_of = None if value._fn is None else (value._fn, value._index)
            changed.append((value, edge[2], value._version, output_of))
    for ref, expected, output_index in node._modified_outputs or ():
        tensor = ref()
        current = expected + 1 if tensor is None else tensor._version
        changed.append((tensor, expected, current, (node, output_index)))
    for tensor, expected, current, output_of in changed[:1]:
        hint = (f" The op was created at {node.__dict__['_created_at']}"
                if "_created_at" in node.__dict__ else
                " Hint: enable anomaly detection to find the operation that failed to compute "
                "its gradient, with deepnotes.autograd.set_detect_anomaly(True).")
        raise RuntimeError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: {_describe_saved(tensor, output_of)} is at version {current}; "
            f"expected version {expected} instead. {type(node).__name__}.backward needs its "
            f"value from before the change.{hint}"
        )


def _backward_in_anomaly_mode(node: Function, grads: list) -> Any:
    """``node.backward`` with the anomaly checks: nan/inf in the returned gradients raises, and
    any error raised inside backward names the place that created the node."""
    try:
        input_grads = node.backward(*grads)
    except Exception as error:
        site = node.__dict__.get("_created_at")
        if site and not getattr(error, "_deepnotes_site", False):
            error.add_note(f"Error detected in {type(node).__name__}.backward; the op was "
                           f"created at {site}.")
            error._deepnotes_site = True  # type: ignore[attr-defined]
        raise
    if anomaly_mode._check_nan:
        anomaly_mode.check_backward(
            node, input_grads if isinstance(input_grads, tuple) else (input_grads,))
    return input_grads


def retain(tensor: Any) -> None:
    """Register ``tensor`` with its node so that hooks and ``retain_grad`` see its gradient."""
    node = tensor._fn
    if node._retained is None:
        node._retained = {}
    node._retained[tensor._index] = weakref.ref(tensor)
