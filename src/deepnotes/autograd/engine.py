"""Reverse-mode differentiation over the graph of ``Function`` nodes.

``backward(root, grad)`` visits the nodes that lead to ``root`` in reverse topological order (an
iterative depth-first search, so deep graphs such as long RNN unrolls do not hit Python's recursion
limit). Each node receives the sum of the gradients flowing into each of its outputs, and its
``backward`` returns one gradient per input. A gradient for a leaf tensor (one made by the user, with
``requires_grad=True``) is added to its ``.grad``; for an intermediate tensor it is handed on to the
node that produced it.

Broadcasting: when ``a`` of shape (3, 1) meets ``b`` of shape (4,) in ``a + b``, the output has
shape (3, 4) and every element of ``a`` was used four times. Its gradient is therefore the upstream
gradient summed over the broadcast axes, which is what :func:`unbroadcast` does for every op at once.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .function import Function


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving an array of ``shape``.

    Leading axes that broadcasting prepended are summed away; axes where the input had size 1 are
    summed with ``keepdims``.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root: Function) -> list[Function]:
    """Nodes reachable from ``root``, each after every node that consumes its outputs, root first."""
    order: list[Function] = []
    visited = {id(root)}
    stack: list[tuple[Function, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        stack.append((node, True))
        for value in node.inputs:
            parent = getattr(value, "_fn", None)
            if parent is not None and id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, False))
    order.reverse()
    return order


def _run_hooks(tensor: Any, grad: np.ndarray) -> np.ndarray:
    for hook in tensor._hooks or ():
        result = hook(tensor._wrap(grad))
        if result is not None:
            grad = result.data if hasattr(result, "data") else np.asarray(result)
    return grad


def _accumulate_leaf(tensor: Any, grad: np.ndarray, stored: set[int]) -> None:
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


def backward(root: Any, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (dL/droot) to every leaf that requires a gradient."""
    if root._fn is None:  # a leaf: the gradient is the seed itself
        _accumulate_leaf(root, grad, set())
        return
    order = _topological_order(root._fn)
    pending: dict[int, list[Any]] = {id(root._fn): [None] * len(root._fn._output_meta)}
    pending[id(root._fn)][root._index] = grad
    stored: set[int] = set()
    for node in order:
        if node._released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the graph "
                "are freed when you call .backward(). Specify retain_graph=True if you need to "
                "backward through the graph a second time."
            )
        grads = pending.pop(id(node), None)
        if grads is None:
            continue
        for index, (shape, dtype) in enumerate(node._output_meta):
            if grads[index] is None:
                grads[index] = np.zeros(shape, dtype=dtype)
        if node._retained:
            for index, ref in node._retained.items():
                tensor = ref()
                if tensor is not None:
                    grads[index] = _run_hooks(tensor, grads[index])
                    if tensor._retains_grad:
                        previous = tensor.grad
                        value = grads[index].copy()
                        tensor.grad = tensor._wrap(value if previous is None else previous.data + value)
        input_grads = node.backward(*grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for value, needs, g in zip(node.inputs, node.needs_input_grad, input_grads):
            if not needs or g is None:
                continue
            g = np.asarray(g)
            if g.shape != value.data.shape:
                g = unbroadcast(g, value.data.shape)
            parent = value._fn
            if parent is None:
                _accumulate_leaf(value, g, stored)
            else:
                slots = pending.setdefault(id(parent), [None] * len(parent._output_meta))
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
