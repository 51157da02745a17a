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


def _topological_order(root: Function) -> list[Function]:
    """Nodes reachable from ``root``, each before every node that produced one of its inputs.

    An iterative post-order depth-first search (no recursion), reversed: root first.
    """
    order: list[Function] = []
    visited = {id(root)}
    stack: list[tuple[Function, bool]] = [(root, False)]
    append, pop = stack.append, stack.pop
    while stack:
        node, expanded = pop()
        if expanded:
            order.append(node)
            continue
        append((node, True))
        for value in node.inputs:
            parent = getattr(value, "_fn", None)
            if parent is not None and id(parent) not in visited:
                visited.add(id(parent))
                append((parent, False))
    order.reverse()
    return order


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
    order = _topological_order(root_node)
    pending: dict[int, list[Any]] = {id(root_node): [None] * len(root_node._output_meta)}
    pending[id(root_node)][root._index] = grad
    stored: set[int] = set()
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
        input_grads = node.backward(*grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for value, needs, g in zip(node.inputs, node.needs_input_grad, input_grads):
            if not needs or g is None:
                continue
            data = value.data
            if type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.shape != data.shape:
                g = unbroadcast(g, data.shape)
            parent = value._fn
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
            current = slots[value._index]
            slots[value._index] = g if current is None else current + g
        if not retain_graph:
            node.release()


def retain(tensor: Any) -> None:
    """Register ``tensor`` with its node so that hooks and ``retain_grad`` see its gradient."""
    node = tensor._fn
    if node._retained is None:
        node._retained = {}
    node._retained[tensor._index] = weakref.ref(tensor)
