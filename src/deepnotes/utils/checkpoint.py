"""Gradient checkpointing: keep fewer activations, recompute them in backward (notes 004 Q29).

Backward needs what forward computed: a BN needs its normalised input, a ReLU its mask, a conv its
im2col columns. Normally every op keeps these until backward reaches it, so the memory of one
training step grows with the sum of all intermediate activations. DenseNet makes this acute
(notes 004 Q29): every layer concatenates *all* earlier feature maps and puts its own BN-ReLU-conv
on the copy, so the concatenations and their normalised copies grow quadratically with depth.

The fix the notes give: throw the concat-BN-ReLU-conv intermediates away after forward and
compute them again just before they are needed in backward. ``checkpoint(function, *args)`` does
that for any function:

    forward:   y = function(*args) under no_grad     nothing inside is recorded or kept;
                                                     the node keeps only args (and the RNG state)
    backward:  restore the RNG state, run function(*args) again with grad on (a small graph
               that lives only while this node's backward runs), back-propagate the incoming
               dL/dy through it: parameters used inside get their .grad as usual, and dL/dargs
               is what this node returns to the outer graph.

Memory: the activations inside ``function`` exist for one segment at a time instead of for the
whole network. Cost: one extra forward of each checkpointed segment (for DenseNet's bottleneck
that is mostly a BN and a 1x1 conv; the notes call the time increase small).

Random ops (dropout) inside ``function`` must draw the same numbers when recomputed, or the
recomputed graph would not be the one that produced y: the state of the one global generator
(``deepnotes.random``) is saved before forward and put back for the recomputation, and the state
the rest of the program expects is restored afterwards (``preserve_rng_state=True``, the default,
as in PyTorch). The gradients are then exactly those of the plain forward.

Two caveats shared with PyTorch's reentrant checkpoint: (1) only the Tensor *arguments* connect
the node to the outer graph, so if none of them requires a gradient nothing is recorded and the
parameters inside get no gradient (a warning says so); (2) modules inside ``function`` run twice
in training mode, so a BatchNorm there updates its running statistics twice per step unless the
caller prevents it (``models.densenet`` does).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd import engine, grad_mode
from ..autograd.function import Function
from ..random import get_rng_state, set_rng_state
from ..tensor import Tensor


class CheckpointFn(Function):
    """y = function(*args) computed without a graph; backward recomputes it with one.

    Forward: ``y = function(*args)`` under ``no_grad``; saves args (raw arrays, no copies) and
    the generator state.
    Backward, given g = dL/dy: with a' = fresh leaf tensors holding args (requires_grad where
    the outer graph needs dL/da), recompute y' = function(*a') with grad on, run the ordinary
    backward from y' with seed g, and return a'.grad. Parameters used by ``function`` are leaves
    of that inner graph, so their ``.grad`` accumulates exactly as without checkpointing.
    """

    def __init__(self, function: Callable[..., Any], is_tensor: tuple[bool, ...],
                 preserve_rng_state: bool = True):
        self.function = function
        self.is_tensor = is_tensor  # which positional args were Tensors (rewrapped as Tensors)
        self.preserve_rng_state = preserve_rng_state

    def _call(self, arrays: tuple[Any, ...], requires: tuple[bool, ...]) -> Any:
        args = []
        for array, tensor, needs in zip(arrays, self.is_tensor, requires):
            if tensor:
                arg = Tensor._wrap(array)
                arg.requires_grad = needs
                args.append(arg)
            else:
                args.append(array)
        return args, self.function(*args)

    def forward(self, *arrays: Any) -> Any:
        self.rng_state = get_rng_state() if self.preserve_rng_state else None
        with grad_mode.no_grad():
            _, output = self._call(arrays, (False,) * len(arrays))
        self.save_for_backward(*arrays)
        if isinstance(output, tuple):
            self.n_outputs = len(output)
            return tuple(_data(o) for o in output)
        self.n_outputs = 0  # a single Tensor, not a tuple
        return _data(output)

    def backward(self, *grad_outputs: Any) -> Any:
        arrays = self.saved
        requires = tuple(bool(n) for n in self.needs_input_grad)
        current_state = None
        if self.rng_state is not None:
            current_state = get_rng_state()
            set_rng_state(self.rng_state)  # dropout draws the masks it drew in forward
        try:
            with grad_mode.enable_grad():
                args, output = self._call(arrays, requires)
        finally:
            if current_state is not None:
                set_rng_state(current_state)
        outputs = output if isinstance(output, tuple) else (output,)
        roots = [(o, g) for o, g in zip(outputs, grad_outputs)
                 if isinstance(o, Tensor) and o.requires_grad]
        for i, (root, grad) in enumerate(roots):
            engine.backward(root, np.asarray(grad, dtype=root.data.dtype),
                            retain_graph=i < len(roots) - 1)  # later roots share the graph
        grads = []
        for arg, tensor, needs in zip(args, self.is_tensor, requires):
            if not (tensor and needs):
                grads.append(None)
            elif arg.grad is None:  # the argument did not influence the output
                grads.append(np.zeros_like(arg.data))
            else:
                grads.append(arg.grad.data)
        return tuple(grads) if len(grads) > 1 else grads[0]


def _data(output: Any) -> np.ndarray:
    if not isinstance(output, Tensor):
        raise TypeError(f"checkpoint: the function must return a Tensor or a tuple of Tensors, "
                        f"got {type(output).__name__}")
    return output.data


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: bool | None = None,
               preserve_rng_state: bool = True, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` without keeping its intermediate activations for backward.

    As ``torch.utils.checkpoint.checkpoint``: the forward runs under ``no_grad``; in backward the
    function runs again with grad on and its gradients flow to ``args`` and to the parameters it
    uses. The result and every gradient equal those of calling ``function`` directly.

    Args:
        function: returns a Tensor or a tuple of Tensors.
        *args: its positional arguments; the Tensors among them connect the result to the graph.
        use_reentrant: accepted for PyTorch compatibility; deepnotes has one mechanism (a node
            whose backward re-enters the engine, PyTorch's reentrant variant) and both values
            give the same results.
        preserve_rng_state: restore the generator state for the recomputation, so random ops
            (dropout) draw the same masks (see the module docstring).
        **kwargs: keyword arguments for ``function`` (held fixed, not differentiated).

    Returns:
        What ``function`` returns.
    """
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got {type(function).__name__}")
    if use_reentrant not in (None, True, False):
        raise TypeError(f"checkpoint: use_reentrant must be a bool or None, got {use_reentrant!r}")
    if kwargs:
        function = functools.partial(function, **kwargs)
    is_tensor = tuple(isinstance(a, Tensor) for a in args)
    if grad_mode.is_grad_enabled() and not any(
            a.requires_grad for a, t in zip(args, is_tensor) if t):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None",
                      stacklevel=2)
    return CheckpointFn(function, is_tensor, preserve_rng_state)(*args)


def checkpoint_sequential(functions: Any, segments: int, input: Any, *,
                          use_reentrant: bool | None = None,
                          preserve_rng_state: bool = True) -> Any:
    """Run a Sequential (or a list of modules/functions) in ``segments`` chunks, checkpointing
    every chunk but the last (whose activations backward needs at once anyway), as
    ``torch.utils.checkpoint.checkpoint_sequential``: memory ~ one chunk's activations plus the
    chunk boundaries.
    """
    functions = list(functions.children() if hasattr(functions, "children") else functions)
    if not isinstance(segments, int) or isinstance(segments, bool) or segments <= 0:
        raise ValueError(f"checkpoint_sequential: segments must be a positive int, "
                         f"got {segments!r}")
    size = max(len(functions) // segments, 1)

    def run(chunk: Iterable[Any]) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for f in chunk:
                x = f(x)
            return x
        return forward

    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(functions[start:end + 1]), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve_rng_state)
    return run(functions[end + 1:])(input)
