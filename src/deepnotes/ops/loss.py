"""Loss functions (notes 004 Q22-Q25: L1/L2/smooth L1, BCE, cross-entropy and KL; 003 softmax).

Every loss maps (input, target) to per-element losses l_i and then applies ``reduction``:

    'none'  the l_i themselves      dL/dl_i = g_i
    'sum'   sum_i l_i               dL/dl_i = g
    'mean'  sum_i l_i / D           dL/dl_i = g / D

with D the number of elements, except for class-index cross-entropy / NLL with a class ``weight``,
where D = sum of the weights of the non-ignored targets (PyTorch's convention: a weighted mean).
:func:`_reduce` and :func:`_upstream` hold these two rules for every loss below.

The headline op is :class:`CrossEntropyFn`, softmax and negative log-likelihood fused into one node,
whose gradient is the famous dL/dz = softmax(z) - onehot(y)
(docs/derivations/softmax_cross_entropy.md).
Fusing is both faster and more stable than softmax -> log -> pick: no probability is ever rounded to
0 and then logged.

Also here: regression losses (MSE, L1, smooth L1, Huber), binary cross-entropy, KL divergence
(:func:`kl_div`, 'batchmean'), margin/hinge losses (ranking, hinge embedding, multi-class SVM,
soft margin, cosine embedding), Poisson NLL, and CTC (:class:`CtcLossFn`, the forward-backward
algorithm; docs/derivations/ctc.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, unbroadcast
from ..autograd.grad_mode import is_grad_enabled
from ._util import check_tensor

_REDUCTIONS = ("none", "mean", "sum")

_TORCH_DTYPE_NAMES = {
    "float16": "Half", "float32": "Float", "float64": "Double", "int8": "Char", "int16": "Short",
    "int32": "Int", "int64": "Long", "uint8": "Byte", "bool": "Bool",
}


def _dtype_name(dtype: np.dtype) -> str:
    return _TORCH_DTYPE_NAMES.get(np.dtype(dtype).name, str(dtype))


def _check_reduction(reduction: Any) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction (expected one of "
                         "'none', 'mean', 'sum')")
    return reduction


def _reduce(loss: np.ndarray, reduction: str, denominator: Any = None) -> np.ndarray:
    """Apply ``reduction`` to per-element losses; 'mean' divides by ``denominator`` (default: size).

    A mean over nothing is 0/0 = nan, as in PyTorch.
    """
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total)
    if denominator is None:
        denominator = loss.size
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / loss.dtype.type(denominator))


def _upstream(grad: np.ndarray, shape: tuple[int, ...], reduction: str,
              denominator: Any = None) -> np.ndarray:
    """dL/dl_i for per-element losses of ``shape`` from the gradient of the reduced loss."""
    if reduction == "none":
        return grad
    if reduction == "mean":
        size = int(np.prod(shape)) if denominator is None else denominator
        grad = grad / grad.dtype.type(size) if size else np.zeros_like(grad)
    return np.broadcast_to(grad, shape)


def _check_pair(input: Any, target: Any, op: str) -> None:
    check_tensor(input, "input", op)
    check_tensor(target, "target", op)


def _check_no_weight_grad(value: Any, name: str, fn_name: str) -> None:
    if value is not None and value.requires_grad and is_grad_enabled():
        raise RuntimeError(f"The function '{fn_name}' is not differentiable with respect to "
                           f"argument '{name}'. This input cannot have requires_grad True.")


def _warn_if_broadcast(input: Any, target: Any) -> None:
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({tuple(target.shape)}) that is different to the input size "
            f"({tuple(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=4,
        )
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise RuntimeError(
                f"The size of input {tuple(input.shape)} and of target {tuple(target.shape)} are "
                "not broadcastable"
            ) from None


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _class_view(weight: np.ndarray, ndim: int) -> np.ndarray:
    """A (C,) class weight shaped (1, C, 1, ...) to broadcast against (N, C, d1, ...)."""
    return weight.reshape((1, -1) + (1,) * (ndim - 2))


# -- class-index targets: cross-entropy and NLL ----------------------------------------------------


class _ClassIndexLoss(Function):
    """Shared bookkeeping for losses with class-index targets over input (N, C, d1, ...).

    An unbatched (C,) input with a 0-D target is handled as N = 1 and the batch axis is dropped
    again from the result and from the input gradient.
    """

    def __init__(self, ignore_index: int, reduction: str):
        self.ignore_index, self.reduction = ignore_index, reduction

    def _batched(self, x: np.ndarray, target: np.ndarray):
        self.x_shape = x.shape
        self.unbatched = x.ndim == 1
        if self.unbatched:
            x, target = x[None], target.reshape(1)                       # (1, C), (1,)
        valid = target != self.ignore_index                              # (N, *)
        index = np.where(valid, target, 0)[:, None]                      # (N, 1, *)
        return x, valid, index

    def _weights_of_targets(self, valid: np.ndarray, index: np.ndarray, weight, dtype):
        """w[y_i] for every position, 0 where the target is ignored; (N, *)."""
        if weight is None:
            return valid.astype(dtype)
        return np.where(valid, weight.astype(dtype, copy=False)[index[:, 0]], 0).astype(dtype)

    def _finish(self, loss: np.ndarray, total_weight: Any) -> np.ndarray:
        out = _reduce(loss, self.reduction, total_weight)
        return out.reshape(()) if self.unbatched else out

    def _coefficients(self, grad: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """dL/dl_i per position (N, *), zero where the target is ignored."""
        if self.unbatched:
            grad = grad.reshape((1,) * (valid.ndim if self.reduction == "none" else 0))
        coef = _upstream(grad, valid.shape, self.reduction, self.total_weight)
        return coef * valid


class CrossEntropyFn(_ClassIndexLoss):
    """Softmax cross-entropy with class-index targets, fused: input z (N, C, *), target y (N, *).

    With p = softmax(z) over C, eps = label_smoothing and class weights w (all 1 when absent), each
    non-ignored position i has the smoothed, weighted target distribution
        q_ic = (1 - eps) * w_{y_i} * [c = y_i] + (eps / C) * w_c
    and loss l_i = -sum_c q_ic log p_ic; ignored positions have l_i = 0. With eps = 0 and no weight
    this is l_i = -log p_{i, y_i}.  'mean' divides by D = sum_i w_{y_i} over non-ignored i.

    Backward (docs/derivations/softmax_cross_entropy.md): d(-log p_ic)/dz_ik = p_ik - [k = c], so
        dL/dz_ik = g_i * (s_i * p_ik - q_ik),
        s_i = sum_c q_ic = (1 - eps) w_{y_i} + (eps / C) sum_c w_c
    which for eps = 0 and no weight is the familiar g_i * (softmax(z_i) - onehot(y_i)).
    Torch: torch.nn.functional.cross_entropy (class indices).
    """

    def __init__(self, ignore_index: int, reduction: str, label_smoothing: float):
        super().__init__(ignore_index, reduction)
        self.label_smoothing = label_smoothing

    def forward(self, z, target, weight=None):
        z, valid, index = self._batched(z, target)
        c, eps = z.shape[1], self.label_smoothing
        log_p = _log_softmax(z, axis=1)                                  # (N, C, *)
        w_y = self._weights_of_targets(valid, index, weight, z.dtype)    # (N, *)
        picked = np.take_along_axis(log_p, index, axis=1)[:, 0]          # (N, *) log p_{i, y_i}
        loss = -(1 - eps) * w_y * picked if eps else -w_y * picked
        if eps:
            w_c = 1 if weight is None else _class_view(weight.astype(z.dtype), z.ndim)
            smooth = -(log_p * w_c).sum(axis=1)                          # (N, *)
            loss = loss + (eps / c) * np.where(valid, smooth, 0)
        self.total_weight = w_y.sum()
        self.save_for_backward(log_p, index, valid, w_y, weight)
        return self._finish(loss, self.total_weight)

    def backward(self, grad_loss):
        log_p, index, valid, w_y, weight = self.saved
        c, eps = log_p.shape[1], self.label_smoothing
        coef = self._coefficients(grad_loss, valid)                      # (N, *)
        w_sum = c if weight is None else weight.sum()
        s = (1 - eps) * w_y + (eps / c) * w_sum                          # (N, *) sum_c q_ic
        grad_z = np.exp(log_p) * (coef * s)[:, None]                     # (N, C, *) g_i s_i p_ik
        at_target = np.take_along_axis(grad_z, index, axis=1)            # (N, 1, *)
        at_target -= ((1 - eps) * coef * w_y)[:, None]
        np.put_along_axis(grad_z, index, at_target, axis=1)
        if eps:
            w_c = 1 if weight is None else _class_view(weight.astype(log_p.dtype), log_p.ndim)
            grad_z -= (eps / c) * coef[:, None] * w_c
        return grad_z.reshape(self.x_shape), None, None


class NllLossFn(_ClassIndexLoss):
    """Negative log-likelihood: input x (N, C, *) of log-probabilities, target y (N, *).

        l_i = -w_{y_i} * x_{i, y_i}   (0 where y_i == ignore_index); 'mean' divides by sum_i w_{y_i}
    Backward: l_i touches one entry per position, so dL/dx is zero except
        dL/dx_{i, y_i} = -g_i * w_{y_i}
    Torch: torch.nn.functional.nll_loss.
    """

    def forward(self, x, target, weight=None):
        x, valid, index = self._batched(x, target)
        w_y = self._weights_of_targets(valid, index, weight, x.dtype)    # (N, *)
        loss = -w_y * np.take_along_axis(x, index, axis=1)[:, 0]         # (N, *)
        self.total_weight = w_y.sum()
        self.save_for_backward(index, valid, w_y)
        self.batched_shape = x.shape
        return self._finish(loss, self.total_weight)

    def backward(self, grad_loss):
        index, valid, w_y = self.saved
        coef = self._coefficients(grad_loss, valid)                      # (N, *)
        grad_x = backend.array_module(w_y).zeros(self.batched_shape, dtype=w_y.dtype)
        np.put_along_axis(grad_x, index, (-coef * w_y)[:, None], axis=1)
        return grad_x.reshape(self.x_shape), None, None


class CrossEntropyProbFn(Function):
    """Softmax cross-entropy with class-probability targets: z and t both (N, C, *) (or (C,)).

    With p = softmax(z) over C, t' = (1 - eps) t + eps / C (label smoothing) and class weights w:
        l_i = -sum_c w_c t'_ic log p_ic,      'mean' divides by the number of positions N*d1*...
    Backward, with S_i = sum_c w_c t'_ic:
        dL/dz_ik = g_i * (S_i p_ik - w_k t'_ik)    (= g_i (p_ik - t_ik) for a distribution t, no w)
        dL/dt_ik = -g_i * (1 - eps) * w_k * log p_ik
        dL/dw_k  = -sum_i g_i t'_ik log p_ik
    Torch: torch.nn.functional.cross_entropy (probabilities).
    """

    def __init__(self, reduction: str, label_smoothing: float):
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, z, target, weight=None):
        self.x_shape = z.shape
        if z.ndim == 1:
            z, target = z[None], target[None]                            # (1, C)
        c, eps = z.shape[1], self.label_smoothing
        log_p = _log_softmax(z, axis=1)                                  # (N, C, *)
        smoothed = target * (1 - eps) + eps / c if eps else target       # (N, C, *)
        w_c = None if weight is None else _class_view(weight, z.ndim)
        weighted = smoothed if w_c is None else smoothed * w_c           # (N, C, *)
        loss = -(log_p * weighted).sum(axis=1)                           # (N, *)
        self.save_for_backward(log_p, smoothed, weighted, w_c)
        out = _reduce(loss, self.reduction)
        return out.reshape(()) if len(self.x_shape) == 1 else out

    def backward(self, grad_loss):
        log_p, smoothed, weighted, w_c = self.saved
        needs = self.needs_input_grad
        loss_shape = log_p.shape[:1] + log_p.shape[2:]
        if len(self.x_shape) == 1 and self.reduction == "none":
            grad_loss = grad_loss.reshape(1)
        coef = _upstream(grad_loss, loss_shape, self.reduction)[:, None]  # (N, 1, *)
        grad_z = grad_t = grad_w = None
        if needs[0]:
            grad_z = coef * (np.exp(log_p) * weighted.sum(axis=1, keepdims=True) - weighted)
            grad_z = grad_z.reshape(self.x_shape)
        if needs[1]:
            grad_t = -(1 - self.label_smoothing) * coef * log_p
            if w_c is not None:
                grad_t = grad_t * w_c
            grad_t = grad_t.reshape(self.x_shape)
        if len(needs) > 2 and needs[2]:
            axes = (0,) + tuple(range(2, log_p.ndim))
            grad_w = -(coef * smoothed * log_p).sum(axis=axes)           # (C,)
        return grad_z, grad_t, grad_w


def _check_class_weight(weight: Any, classes: int, op: str) -> None:
    check_tensor(weight, "weight", op)
    if weight.ndim != 1 or weight.shape[0] != classes:
        raise RuntimeError(f"weight tensor should be defined either for all {classes} classes or "
                           f"no classes but got weight tensor of shape: {list(weight.shape)}")


def _check_ignore_index(ignore_index: Any, op: str) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer):
        raise TypeError(f"{op}(): argument 'ignore_index' must be int, not "
                        f"{type(ignore_index).__name__}")
    return int(ignore_index)


def _check_class_target(input: Any, target: Any, ignore_index: int, op: str,
                        float_hint: str = "", weight: Any = None) -> None:
    """Validate a class-index target against input (C,), (N, C) or (N, C, d1, ...), and the
    class ``weight``, in PyTorch's order: shapes, then the weight, then the index range."""
    if input.ndim == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}(): expected a floating point input, got {input.dtype}")
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{_dtype_name(target.dtype)}{float_hint}")
    if input.ndim == 1:
        if target.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if target.ndim == 1 and target.shape[0] != 1:
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: "
                             f"{target.shape[0]}")
    else:
        target_batch = target.shape[0] if target.ndim else 0
        if target_batch != input.shape[0]:
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                             f"batch_size ({target_batch}).")
        if input.ndim == 2 and target.ndim != 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        expected = (input.shape[0],) + tuple(input.shape[2:])
        if tuple(target.shape) != expected:
            raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None:
        _check_class_weight(weight, classes, op)
    labels = target.data
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise IndexError(f"Target {int(labels[bad].flat[0])} is out of bounds. Expected class "
                         f"indices in [0, {classes}) (input has {classes} classes) or "
                         f"ignore_index={ignore_index}.")


def _check_label_smoothing(label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float):
        raise TypeError(f"cross_entropy(): argument 'label_smoothing' must be float, not "
                        f"{type(label_smoothing).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return float(label_smoothing)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    Two kinds of target, told apart as PyTorch does (same shape as ``input`` -> probabilities):

    * class indices: integer ``target`` of shape (N,) for input (N, C), (N, d1, ...) for input
      (N, C, d1, ...), or () for an unbatched input (C,). Positions equal to ``ignore_index``
      contribute nothing, and 'mean' divides by the summed ``weight`` of the other targets.
    * class probabilities: floating ``target`` of the input's shape; 'mean' divides by the number
      of positions (N * d1 * ...); ``ignore_index`` must stay negative (unsupported, as in PyTorch).

    Args:
        input: logits (C,), (N, C) or (N, C, d1, ...).
        target: class indices or class probabilities, see above. Any integer dtype is accepted for
            indices (PyTorch takes only int64 and uint8); floats are read as probabilities.
        weight: optional (C,) rescaling weight per class. It receives no gradient with class-index
            targets (PyTorch raises if it requires grad); with probability targets it does.
        ignore_index: a target value that is skipped (class indices only).
        reduction: 'none' | 'mean' | 'sum'.
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) * onehot + eps / C. PyTorch
            silently accepts a negative eps; it is rejected here.

    Returns:
        The reduced loss (a 0-D tensor), or per-position losses of the target's shape for 'none'.

    Raises:
        IndexError: a class index outside [0, C) that is not ``ignore_index`` ("Target 7 is out of
            bounds.").
        ValueError: batch sizes differ ("Expected input batch_size (4) to match target batch_size
            (3)."), or ``reduction`` is not one of the three strings.
        RuntimeError: a float target whose shape is not the input's, a target of the wrong shape,
            ``weight`` not of length C, ``label_smoothing`` outside [0, 1].

    Math: :class:`CrossEntropyFn` and :class:`CrossEntropyProbFn`; derivation in
    docs/derivations/softmax_cross_entropy.md. Notes 003 (softmax, log-softmax), 004 Q22, Q24.
    """
    _check_pair(input, target, "cross_entropy")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index, "cross_entropy")
    eps = _check_label_smoothing(label_smoothing)
    classes = input.shape[0] if input.ndim == 1 else (input.shape[1] if input.ndim else 0)
    if input.ndim > 0 and tuple(target.shape) == tuple(input.shape):
        if weight is not None:
            _check_class_weight(weight, classes, "cross_entropy")
        if input.dtype.kind != "f":
            raise TypeError(f"cross_entropy(): expected a floating point input, got {input.dtype}")
        if target.dtype.kind != "f":
            raise RuntimeError(f"Expected floating point type for target with class "
                               f"probabilities, got {_dtype_name(target.dtype)}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        return CrossEntropyProbFn(reduction, eps)(input, target, weight)
    hint = ""
    if target.dtype.kind == "f":
        hint = (f" (a floating target is read as class probabilities only when its shape equals "
                f"the input's {tuple(input.shape)}; got target of shape {tuple(target.shape)})")
    _check_class_target(input, target, ignore_index, "cross_entropy", hint, weight)
    _check_no_weight_grad(weight, "weight", "nll_loss_forward")
    return CrossEntropyFn(ignore_index, reduction, eps)(input, target, weight)


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean"):
    """Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

    ``input`` holds log-probabilities (usually from ``log_softmax``) of shape (C,), (N, C) or
    (N, C, d1, ...); ``target`` holds class indices of shape (), (N,) or (N, d1, ...). The loss of a
    position is -weight[y] * input[y]; ignored positions give 0, and 'mean' divides by the summed
    weights of the non-ignored targets. ``weight`` receives no gradient, as in PyTorch.

    Raises: as :func:`cross_entropy` with class indices.
    """
    _check_pair(input, target, "nll_loss")
    _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index, "nll_loss")
    _check_class_target(input, target, ignore_index, "nll_loss", weight=weight)
    _check_no_weight_grad(weight, "weight", "nll_loss_forward")
    return NllLossFn(ignore_index, reduction)(input, target, weight)


# -- regression losses -----------------------------------------------------------------------------


class _PairwiseLoss(Function):
    """l = f(d) elementwise with d = input - target (broadcast); dL/dinput = f'(d) g = -dL/dtarget.

    Subclasses give ``_loss(d)`` and ``_slope(d)`` = f'(d); the engine sums the gradients back to
    the input's and the target's shapes if they were broadcast.
    """

    def __init__(self, reduction: str):
        self.reduction = reduction

    def _loss(self, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _slope(self, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x, target):
        d = x - target
        self.save_for_backward(d)
        return _reduce(self._loss(d), self.reduction)

    def backward(self, grad_loss):
        (d,) = self.saved
        grad_d = self._slope(d) * _upstream(grad_loss, d.shape, self.reduction)
        needs = self.needs_input_grad
        return (grad_d if needs[0] else None), (-grad_d if needs[1] else None)


class MseLossFn(_PairwiseLoss):
    """l = (x - t)^2.   dl/dx = 2 (x - t) = -dl/dt.  Notes 004 Q23 (L2)."""

    def _loss(self, d):
        return d * d

    def _slope(self, d):
        return 2 * d


class L1LossFn(_PairwiseLoss):
    """l = |x - t|.   dl/dx = sign(x - t) (0 at 0, as PyTorch) = -dl/dt.  Notes 004 Q23 (L1)."""

    def _loss(self, d):
        return np.abs(d)

    def _slope(self, d):
        return np.sign(d)


class SmoothL1LossFn(_PairwiseLoss):
    """Smooth L1 (Fast R-CNN; notes 004 Q23): quadratic near 0, linear beyond beta.

        l = 0.5 d^2 / beta  if |d| < beta,   |d| - 0.5 beta  otherwise;   beta = 0 gives L1.
        dl/dd = d / beta    if |d| < beta,   sign(d)         otherwise   (continuous at |d| = beta)
    """

    def __init__(self, reduction: str, beta: float):
        super().__init__(reduction)
        self.beta = beta

    def _loss(self, d):
        a = np.abs(d)
        if self.beta == 0:
            return a
        return np.where(a < self.beta, 0.5 * d * d / self.beta, a - 0.5 * self.beta)

    def _slope(self, d):
        if self.beta == 0:
            return np.sign(d)
        return np.where(np.abs(d) < self.beta, d / self.beta, np.sign(d))


class HuberLossFn(_PairwiseLoss):
    """Huber loss = delta * smooth_l1(beta=delta):

        l = 0.5 d^2  if |d| < delta,   delta (|d| - 0.5 delta)  otherwise
        dl/dd = d    if |d| < delta,   delta sign(d)            otherwise
    """

    def __init__(self, reduction: str, delta: float):
        super().__init__(reduction)
        self.delta = delta

    def _loss(self, d):
        a = np.abs(d)
        return np.where(a < self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))

    def _slope(self, d):
        return np.where(np.abs(d) < self.delta, d, self.delta * np.sign(d))


def _pairwise(fn: _PairwiseLoss, input: Any, target: Any, op: str):
    _check_pair(input, target, op)
    _check_reduction(fn.reduction)
    _warn_if_broadcast(input, target)
    return fn(input, target)


def mse_loss(input: Any, target: Any, reduction: str = "mean"):
    """Mean squared error (x - t)^2, as ``torch.nn.functional.mse_loss``.

    Shapes that differ but broadcast are broadcast with PyTorch's UserWarning ("Using a target size
    ... This will likely lead to incorrect results due to broadcasting"); shapes that do not
    broadcast raise RuntimeError. The target receives a gradient too. PyTorch's optional
    per-element ``weight`` argument is not supported.
    """
    return _pairwise(MseLossFn(reduction), input, target, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean"):
    """Mean absolute error |x - t|, as ``torch.nn.functional.l1_loss`` (broadcasts as mse_loss)."""
    return _pairwise(L1LossFn(reduction), input, target, "l1_loss")


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0):
    """Smooth L1, as ``torch.nn.functional.smooth_l1_loss``; see :class:`SmoothL1LossFn`.

    Raises:
        RuntimeError: beta < 0 ("smooth_l1_loss does not support negative values for beta.").
    """
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    return _pairwise(SmoothL1LossFn(reduction, float(beta)), input, target, "smooth_l1_loss")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0):
    """Huber loss, as ``torch.nn.functional.huber_loss``; see :class:`HuberLossFn`.

    Raises:
        RuntimeError: delta <= 0 ("huber_loss does not support non-positive values for delta.").
    """
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    return _pairwise(HuberLossFn(reduction, float(delta)), input, target, "huber_loss")


# -- binary cross-entropy --------------------------------------------------------------------------


class BinaryCrossEntropyFn(Function):
    """BCE on probabilities x in [0, 1] (notes 004 Q22):

        l = -w (t log x + (1 - t) log(1 - x)),   each log clamped to >= -100 as PyTorch (so that
                                                  x = 0 or 1 gives a finite loss)
    Backward:
        dl/dx = w (x - t) / (x (1 - x))     (denominator clamped to >= 1e-12, as PyTorch)
        dl/dt = w (log(1 - x) - log x) = -w logit(x)
    """

    def __init__(self, reduction: str):
        self.reduction = reduction

    def forward(self, x, target, weight=None):
        with np.errstate(divide="ignore"):  # log 0 = -inf, clamped just below
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        loss = (target - 1) * log_1mx - target * log_x
        if weight is not None:
            loss = loss * weight
        self.save_for_backward(x, target, weight)
        return _reduce(loss, self.reduction)

    def backward(self, grad_loss):
        x, target, weight = self.saved
        needs = self.needs_input_grad
        coef = _upstream(grad_loss, x.shape, self.reduction)
        if weight is not None:
            coef = coef * weight
        grad_x = grad_t = None
        if needs[0]:
            grad_x = coef * (x - target) / np.maximum(x * (1 - x), 1e-12)
        if needs[1]:
            with np.errstate(divide="ignore"):
                grad_t = coef * (np.log1p(-x) - np.log(x))
        return grad_x, grad_t, None


class BinaryCrossEntropyWithLogitsFn(Function):
    """BCE on logits x, with sigma the sigmoid, optional weight w and positive-class weight pw:

        l = -w (pw t log sigma(x) + (1 - t) log(1 - sigma(x)))
          = w ((1 - t) x + (1 + (pw - 1) t) softplus(-x))        (log sigma(x) = -softplus(-x))
    softplus(-x) = log(1 + e^-x) is evaluated as logaddexp(0, -x), which never overflows.
    Backward (d softplus(-x)/dx = sigma(x) - 1):
        dl/dx = w ((1 + (pw - 1) t) sigma(x) - pw t)     (= w (sigma(x) - t) without pw)
        dl/dt = w ((pw - 1) softplus(-x) - x)
    """

    def __init__(self, reduction: str):
        self.reduction = reduction

    def forward(self, x, target, weight=None, pos_weight=None):
        softplus_neg = np.logaddexp(0, -x)                               # log(1 + e^-x)
        if pos_weight is None:
            loss = (1 - target) * x + softplus_neg
        else:
            loss = (1 - target) * x + (1 + (pos_weight - 1) * target) * softplus_neg
        if weight is not None:
            loss = loss * weight
        self.save_for_backward(x, target, weight, pos_weight, softplus_neg)
        return _reduce(loss, self.reduction)

    def backward(self, grad_loss):
        x, target, weight, pos_weight, softplus_neg = self.saved
        needs = self.needs_input_grad
        coef = _upstream(grad_loss, x.shape, self.reduction)
        if weight is not None:
            coef = coef * weight
        grad_x = grad_t = None
        if needs[0]:
            sig = 0.5 * (1 + np.tanh(0.5 * x))                           # sigmoid, overflow-free
            if pos_weight is None:
                grad_x = coef * (sig - target)
            else:
                grad_x = coef * ((1 + (pos_weight - 1) * target) * sig - pos_weight * target)
        if needs[1]:
            if pos_weight is None:
                grad_t = -coef * x
            else:
                grad_t = coef * ((pos_weight - 1) * softplus_neg - x)
        return grad_x, grad_t, None, None


def _check_broadcasts_to(value: Any, name: str, shape: tuple[int, ...], op: str) -> None:
    check_tensor(value, name, op)
    try:
        ok = np.broadcast_shapes(tuple(value.shape), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise RuntimeError(f"{op}(): {name} of shape {tuple(value.shape)} cannot be broadcast to "
                           f"the input's shape {shape}")


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean"):
    """Binary cross-entropy on probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    Args:
        input: probabilities in [0, 1], any shape.
        target: same shape as input (values in [0, 1]); it receives a gradient, as in PyTorch.
        weight: optional rescaling weight broadcastable to the input's shape (no gradient).
        reduction: 'none' | 'mean' | 'sum'.

    Raises:
        ValueError: target shape differs from the input's.
        RuntimeError: an input element outside [0, 1] ("all elements of input should be between 0
            and 1"), a weight that does not broadcast to the input or that requires grad.

    Math: :class:`BinaryCrossEntropyFn`.
    """
    _check_pair(input, target, "binary_cross_entropy")
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the "
                         f"input size ({tuple(input.shape)}) is deprecated. Please ensure they "
                         "have the same size.")
    if not np.all((input.data >= 0) & (input.data <= 1)):
        outside = input.data[~((input.data >= 0) & (input.data <= 1))]
        raise RuntimeError("all elements of input should be between 0 and 1, but got "
                           f"{outside.size} outside [0, 1], e.g. {outside.flat[0].item()!r}")
    if weight is not None:
        _check_broadcasts_to(weight, "weight", tuple(input.shape), "binary_cross_entropy")
        _check_no_weight_grad(weight, "weight", "binary_cross_entropy")
    return BinaryCrossEntropyFn(reduction)(input, target, weight)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None):
    """Sigmoid + binary cross-entropy fused, as ``F.binary_cross_entropy_with_logits``.

    Args:
        input: logits, any shape.
        target: same shape as input; it receives a gradient, as in PyTorch.
        weight: optional weight broadcastable to the input (no gradient).
        reduction: 'none' | 'mean' | 'sum'.
        pos_weight: optional weight of the positive term, broadcast along the last (class) axis,
            e.g. shape (C,) for input (N, C) (no gradient).

    Raises:
        ValueError: target shape differs from the input's ("Target size (...) must be the same as
            input size (...)").
        RuntimeError: weight or pos_weight that does not broadcast to the input or requires grad.

    Math: :class:`BinaryCrossEntropyWithLogitsFn`.
    """
    op = "binary_cross_entropy_with_logits"
    _check_pair(input, target, op)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)})")
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            _check_broadcasts_to(value, name, tuple(input.shape), op)
            _check_no_weight_grad(value, name, op)
    return BinaryCrossEntropyWithLogitsFn(reduction)(input, target, weight, pos_weight)


# -- shared checks of the losses below -------------------------------------------------------------


def _legacy_reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's deprecated (size_average, reduce) pair, which overrides ``reduction`` when given.

    None counts as True: reduce=False -> 'none'; else size_average -> 'mean', otherwise 'sum'.
    """
    if size_average is None and reduce is None:
        return reduction
    if reduce is not None and not reduce:
        return "none"
    return "sum" if size_average is not None and not size_average else "mean"


def _check_floating(value: Any, name: str, op: str) -> None:
    if value.dtype.kind != "f":
        raise TypeError(f"{op}(): expected a floating point {name}, got {value.dtype}")


def _broadcast_shape(op: str, **named: Any) -> tuple[int, ...]:
    """The broadcast shape of the named tensors, or RuntimeError naming every shape."""
    try:
        return tuple(np.broadcast_shapes(*(tuple(t.shape) for t in named.values())))
    except ValueError:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in named.items())
        raise RuntimeError(f"{op}(): the shapes of {shapes} are not broadcastable") from None


def _as_dtype_of(array: np.ndarray, like: np.ndarray) -> np.ndarray:
    """An integer target promoted to the input's floating dtype (PyTorch's type promotion)."""
    return array if array.dtype.kind == "f" else array.astype(like.dtype)


# -- KL divergence ---------------------------------------------------------------------------------


class KlDivFn(Function):
    """Pointwise KL divergence of log-probabilities x from a target distribution t (notes 004 Q24).

    Summed over a distribution's support, KL(t || q) = sum t (log t - log q), with x = log q:

        log_target=False:   l = t log t - t x       (t log t := 0 at t = 0, xlogy)
        log_target=True:    l = e^t (t - x)         (t holds log-probabilities)
    Only the second term depends on x: it is the cross-entropy, and the first the (negative)
    entropy of the target, a constant in training (notes 004 Q24). Backward:
        dl/dx = -t                  (resp. -e^t)
        dl/dt = log t + 1 - x       (resp. e^t (t - x + 1))
    At t = 0 PyTorch's dl/dt is nan (0/0 inside xlogy's backward); it is reproduced here.
    'batchmean' divides the sum by the batch size x.shape[0]: the true KL of each sample, averaged.
    Torch: torch.nn.functional.kl_div.
    """

    def __init__(self, reduction: str, log_target: bool):
        self.reduction, self.log_target = reduction, log_target

    def forward(self, x, target):
        target = _as_dtype_of(target, x)
        if self.log_target:
            loss = np.exp(target) * (target - x)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                t_log_t = np.where(target == 0, 0, target * np.log(target))
            loss = t_log_t - target * x
        self.save_for_backward(x, target)
        if self.reduction == "batchmean":
            total = loss.sum()
            return np.asarray(total / total.dtype.type(x.shape[0]) if x.ndim else total)
        return _reduce(loss, self.reduction)

    def _upstream(self, grad, shape):
        if self.reduction != "batchmean":
            return _upstream(grad, shape, self.reduction)
        batch = self.saved[0].shape[0] if self.saved[0].ndim else 1
        return np.broadcast_to(grad / grad.dtype.type(batch), shape)

    def backward(self, grad_loss):
        x, target = self.saved
        needs = self.needs_input_grad
        coef = self._upstream(grad_loss, np.broadcast_shapes(x.shape, target.shape))
        grad_x = grad_t = None
        if self.log_target:
            p = np.exp(target)
            if needs[0]:
                grad_x = -coef * p
            if needs[1]:
                grad_t = coef * p * (target - x + 1)
        else:
            if needs[0]:
                grad_x = -coef * target
            if needs[1]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    slope = np.where(target == 0, np.nan, np.log(target) + 1 - x)
                grad_t = coef * slope
        return grad_x, grad_t


def kl_div(input: Any, target: Any, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False):
    """Kullback-Leibler divergence loss, as ``torch.nn.functional.kl_div``.

    ``input`` holds log-probabilities log q; ``target`` probabilities t (or log-probabilities with
    ``log_target=True``). The pointwise loss is t (log t - log q) (:class:`KlDivFn`), and input
    and target broadcast.

    Args:
        input: log-probabilities, any shape, usually (N, C) from ``log_softmax``.
        target: probabilities (or log-probabilities), broadcastable with ``input``.
        size_average, reduce: deprecated, as PyTorch (they override ``reduction``).
        reduction: 'none' | 'batchmean' (sum / N: the mathematical KL per sample) | 'sum' |
            'mean' (sum / number of elements, with PyTorch's warning that this is not the KL).
        log_target: whether ``target`` is in log space.

    Raises:
        RuntimeError: integer input or target ("kl_div: Integral inputs not supported."), shapes
            that do not broadcast.
        ValueError: an unknown ``reduction``.
    """
    _check_pair(input, target, "kl_div")
    legacy = size_average is not None or reduce is not None
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean" and not legacy:
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            stacklevel=2,
        )
    if input.dtype.kind != "f" or target.dtype.kind != "f":
        raise RuntimeError("kl_div: Integral inputs not supported.")
    _broadcast_shape("kl_div", input=input, target=target)
    return KlDivFn(reduction, bool(log_target))(input, target)


# -- margin and hinge losses (SVM-style; notes 004 on losses) ------------------------------------


class MarginRankingFn(Function):
    """Ranking hinge: l = max(0, -y (x1 - x2) + margin), y = +1 if x1 should rank higher, -1 if x2.

    With z = -y (x1 - x2) + margin and a = [z >= 0] (PyTorch's clamp passes the gradient at 0):
        dl/dx1 = -y a,   dl/dx2 = y a,   dl/dy = -(x1 - x2) a
    Torch: torch.nn.functional.margin_ranking_loss.
    """

    def __init__(self, margin: float, reduction: str):
        self.margin, self.reduction = margin, reduction

    def forward(self, x1, x2, y):
        y = _as_dtype_of(y, x1)
        diff = x1 - x2
        z = -y * diff + self.margin
        self.save_for_backward(diff, y, z >= 0)
        return _reduce(np.maximum(z, 0), self.reduction)

    def backward(self, grad_loss):
        diff, y, active = self.saved
        coef = _upstream(grad_loss, active.shape, self.reduction) * active
        needs = self.needs_input_grad
        grad_x1 = -coef * y if needs[0] else None
        grad_x2 = coef * y if needs[1] else None
        grad_y = -coef * diff if needs[2] else None
        return grad_x1, grad_x2, grad_y


def margin_ranking_loss(input1: Any, input2: Any, target: Any, margin: float = 0,
                        size_average: bool | None = None, reduce: bool | None = None,
                        reduction: str = "mean"):
    """max(0, -y (x1 - x2) + margin), as ``torch.nn.functional.margin_ranking_loss``.

    Args:
        input1, input2: scores of the same number of dimensions, broadcastable.
        target: y, +1 where ``input1`` should be ranked higher, -1 where ``input2``; it receives
            a gradient, as in PyTorch.
        margin: the required gap.
        reduction: 'none' | 'mean' | 'sum' (size_average/reduce deprecated, as PyTorch).

    Raises:
        RuntimeError: inputs with different numbers of dimensions, or shapes that do not
            broadcast.
    """
    op = "margin_ranking_loss"
    for name, value in (("input1", input1), ("input2", input2), ("target", target)):
        check_tensor(value, name, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension "
                           f"but got sizes: input1: {tuple(input1.shape)}, input2: "
                           f"{tuple(input2.shape)}, target: {tuple(target.shape)}")
    _check_floating(input1, "input1", op)
    _check_floating(input2, "input2", op)
    _broadcast_shape(op, input1=input1, input2=input2, target=target)
    return MarginRankingFn(float(margin), reduction)(input1, input2, target)


class HingeEmbeddingFn(Function):
    """Hinge embedding loss for a distance x and a label y in {1, -1}:

        l = x                     where y = 1   (pull similar pairs together)
        l = max(0, margin - x)    where y = -1  (push dissimilar pairs beyond the margin)
    PyTorch adds both terms for any other y; so does this. Backward, a = [margin - x >= 0]:
        dl/dx = [y != -1] - [y != 1] a;   y receives no gradient (it only selects).
    Torch: torch.nn.functional.hinge_embedding_loss.
    """

    def __init__(self, margin: float, reduction: str):
        self.margin, self.reduction = margin, reduction

    def forward(self, x, y):
        y = _as_dtype_of(y, x)
        zero = x.dtype.type(0)
        gap = self.margin - x
        loss = np.where(y != 1, np.maximum(gap, 0), zero) + np.where(y != -1, x, zero)
        self.save_for_backward(y != -1, (y != 1) & (gap >= 0))
        return _reduce(loss, self.reduction)

    def backward(self, grad_loss):
        pull, push = self.saved
        coef = _upstream(grad_loss, np.broadcast_shapes(pull.shape, push.shape), self.reduction)
        slope = pull.astype(coef.dtype) - push
        return coef * slope, None


def hinge_embedding_loss(input: Any, target: Any, margin: float = 1.0,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean"):
    """Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

    ``input`` is usually a distance between two embeddings and ``target`` y is 1 (similar) or -1
    (dissimilar); see :class:`HingeEmbeddingFn`. Input and target broadcast; the target gets no
    gradient.
    """
    op = "hinge_embedding_loss"
    _check_pair(input, target, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    _check_floating(input, "input", op)
    _broadcast_shape(op, input=input, target=target)
    return HingeEmbeddingFn(float(margin), reduction)(input, target)


class SoftMarginFn(Function):
    """Two-class logistic loss on a margin y x, y in {1, -1}:

        l = log(1 + e^{-y x}) = softplus(-y x),   evaluated as logaddexp(0, -y x)
        dl/dx = -y sigmoid(-y x)
    PyTorch evaluates log1p(exp(-y x)), which overflows to inf for -y x above ~89 (float32) or
    ~710 (float64); the value here stays finite and is otherwise the same. 'mean' divides by the
    number of elements of the input. Torch: torch.nn.functional.soft_margin_loss.
    """

    def __init__(self, reduction: str):
        self.reduction = reduction

    def forward(self, x, y):
        y = _as_dtype_of(y, x)
        margin = -y * x
        self.save_for_backward(y, margin)
        return _reduce(np.logaddexp(0, margin), self.reduction)                # (x.shape)

    def backward(self, grad_loss):
        y, margin = self.saved
        sig = 0.5 * (1 + np.tanh(0.5 * margin))                          # sigmoid(-y x)
        return -_upstream(grad_loss, margin.shape, self.reduction) * y * sig, None


def soft_margin_loss(input: Any, target: Any, size_average: bool | None = None,
                     reduce: bool | None = None, reduction: str = "mean"):
    """log(1 + exp(-y x)), as ``torch.nn.functional.soft_margin_loss`` (:class:`SoftMarginFn`).

    Raises:
        RuntimeError: a target that does not broadcast to the input's shape, or a target that
            requires grad (PyTorch does not differentiate this loss with respect to the target).
    """
    op = "soft_margin_loss"
    _check_pair(input, target, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    _check_floating(input, "input", op)
    if _broadcast_shape(op, input=input, target=target) != tuple(input.shape):
        raise RuntimeError(f"{op}(): a target of shape {tuple(target.shape)} does not broadcast "
                           f"to the input's shape {tuple(input.shape)}")
    _check_no_weight_grad(target, "target", op)
    return SoftMarginFn(reduction)(input, target)


class MultiMarginFn(Function):
    """Multi-class hinge loss (Weston-Watkins / Crammer-Singer style SVM), input x (N, C):

        l_n = w[y_n] / C * sum_{i != y_n} max(0, margin - x[n, y_n] + x[n, i])^p,   p in {1, 2}
    'mean' divides by N (not by the weights). Backward, with z_i = margin - x[n, y_n] + x[n, i]
    and h'_i = [z_i > 0] (p = 1) or 2 z_i [z_i > 0] (p = 2), c_n = g_n w[y_n] / C:
        dL/dx[n, i]   = c_n h'_i                      (i != y_n)
        dL/dx[n, y_n] = -c_n sum_{i != y_n} h'_i
    Torch: torch.nn.functional.multi_margin_loss.
    """

    def __init__(self, p: int, margin: float, reduction: str):
        self.p, self.margin, self.reduction = p, margin, reduction

    def forward(self, x, target, weight=None):
        self.x_shape, self.target_shape = x.shape, target.shape
        x = x.reshape(-1, x.shape[-1] if x.ndim else 1)                  # (N, C)
        n, c = x.shape
        index = target.reshape(n, 1).astype(np.intp)                     # (N, 1)
        z = self.margin - np.take_along_axis(x, index, axis=1) + x       # (N, C)
        np.put_along_axis(z, index, 0, axis=1)                           # skip i = y_n
        hinge = np.maximum(z, 0)
        terms = hinge if self.p == 1 else hinge * hinge
        if weight is None:
            scale = np.full((n,), 1 / c, x.dtype)                        # (N,) 1 / C
        else:
            scale = weight.astype(x.dtype)[index[:, 0]] / c              # (N,) w[y_n] / C
        loss = terms.sum(axis=1) * scale                                 # (N,)
        self.save_for_backward(z, index, scale)
        out = _reduce(loss, self.reduction)
        return out.reshape(self.target_shape) if self.reduction == "none" else out

    def backward(self, grad_loss):
        z, index, scale = self.saved
        coef = _upstream(grad_loss.reshape(-1), scale.shape, self.reduction) * scale    # (N,)
        slope = (z > 0).astype(z.dtype) if self.p == 1 else 2 * np.maximum(z, 0)         # (N, C)
        grad_x = slope * coef[:, None]
        np.put_along_axis(grad_x, index, -grad_x.sum(axis=1, keepdims=True), axis=1)
        return grad_x.reshape(self.x_shape), None, None


def multi_margin_loss(input: Any, target: Any, p: int = 1, margin: float = 1.0,
                      weight: Any = None, size_average: bool | None = None,
                      reduce: bool | None = None, reduction: str = "mean"):
    """Multi-class margin (hinge) loss, as ``torch.nn.functional.multi_margin_loss``.

    Args:
        input: scores (N, C), or (C,) for one sample.
        target: class indices (N,) (or () / (1,) for one sample), integers in [0, C).
        p: 1 or 2, the power of the hinge.
        margin: the required gap between the target's score and every other.
        weight: optional (C,) weight of each target class (no gradient).
        reduction: 'none' (shape of ``target``) | 'mean' (over N) | 'sum'.

    Raises:
        ValueError: p not 1 or 2, a weight that is not 1-D.
        RuntimeError: a target of the wrong size or out of range ("target out of range"), an
            input that is not a non-empty vector or matrix, a weight of the wrong length or that
            requires grad.

    Math: :class:`MultiMarginFn`.
    """
    op = "multi_margin_loss"
    _check_pair(input, target, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None:
        check_tensor(weight, "weight", op)
        if weight.ndim != 1:
            raise ValueError("weight must be one-dimensional")
    _check_floating(input, "input", op)
    if input.ndim > 2 or (input.ndim == 2 and input.shape[1] == 0) or (
            input.ndim < 2 and input.numel() == 0):
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch "
                           f"size, but got: {list(input.shape)}")
    n = input.shape[0] if input.ndim == 2 else 1
    classes = input.shape[-1] if input.ndim else 1
    if target.ndim > 1 or target.numel() != n:
        raise RuntimeError(f"multi_margin_loss: target tensor should be 1-D with size equal to "
                           f"the number of input samples (batch size). Expected target size "
                           f"[{n}], but got {list(target.shape)}. Input has shape "
                           f"{list(input.shape)}.")
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {_dtype_name(target.dtype)}")
    if np.any((target.data < 0) | (target.data >= classes)):
        raise RuntimeError("target out of range")
    if weight is not None:
        if weight.shape[0] != classes:
            raise RuntimeError(f"inconsistent weight size, expected {classes} but got "
                               f"{list(weight.shape)}")
        _check_no_weight_grad(weight, "weight", op)
    return MultiMarginFn(p, float(margin), reduction)(input, target, weight)


class CosineEmbeddingFn(Function):
    """Cosine embedding loss on pairs x1, x2 (N, D) with labels y in {1, -1}:

        cos = <x1, x2> / sqrt(m1 m2),   m_k = |x_k|^2 + 1e-12     (PyTorch's epsilon)
        l = 1 - cos               where y = 1    (similar: align the pair)
        l = max(0, cos - margin)  where y = -1   (dissimilar: push the cosine below the margin)
    Backward, with u = dl/dcos = -[y = 1] + [y = -1][cos - margin >= 0] and d = sqrt(m1 m2):
        dcos/dx1 = x2 / d - cos x1 / m1,    dcos/dx2 = x1 / d - cos x2 / m2
    (d(m1 m2)^-1/2 / dx1 = -x1 / (m1 d)). y gets no gradient. As PyTorch, m_k is computed from
    x_k itself, before x1 and x2 are broadcast against each other.
    Torch: torch.nn.functional.cosine_embedding_loss.
    """

    _EPS = 1e-12

    def __init__(self, margin: float, reduction: str):
        self.margin, self.reduction = margin, reduction

    def forward(self, x1, x2, y):
        y = _as_dtype_of(y, x1)
        dot = (x1 * x2).sum(axis=-1)                                     # (N,)
        m1 = (x1 * x1).sum(axis=-1) + self._EPS                          # (N,) or (1,)
        m2 = (x2 * x2).sum(axis=-1) + self._EPS
        denom = np.sqrt(m1 * m2)
        cos = dot / denom
        zero = cos.dtype.type(0)
        loss = np.where(y == 1, 1 - cos, zero) + np.where(y == -1, np.maximum(cos - self.margin,
                                                                              0), zero)
        self.save_for_backward(x1, x2, y, cos, m1, m2, denom)
        return _reduce(loss, self.reduction)

    def backward(self, grad_loss):
        x1, x2, y, cos, m1, m2, denom = self.saved
        shape = np.broadcast_shapes(cos.shape, y.shape)
        coef = _upstream(grad_loss, shape, self.reduction)
        slope = np.where(y == -1, (cos - self.margin >= 0).astype(cos.dtype), 0) - (y == 1)
        grad_cos = unbroadcast(coef * slope, cos.shape)[..., None]       # (N, 1)
        pair_shape = np.broadcast_shapes(x1.shape, x2.shape)             # (N, D)
        grad_m = grad_cos * cos[..., None]                               # (N, 1) dL/dcos * cos
        grads = []
        for k, (x, other, m) in enumerate(((x1, x2, m1), (x2, x1, m2))):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            via_dot = np.broadcast_to(grad_cos * other / denom[..., None], pair_shape)
            via_norm = unbroadcast(grad_m, x.shape[:-1] + (1,)) * x / m[..., None]
            grads.append(unbroadcast(via_dot, x.shape) - via_norm)
        return grads[0], grads[1], None


def cosine_embedding_loss(input1: Any, input2: Any, target: Any, margin: float = 0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean"):
    """Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

    Args:
        input1, input2: (N, D) with target (N,), or (D,) with a 0-D target; they broadcast.
        target: y, 1 for similar pairs and -1 for dissimilar ones (other values give 0).
        margin: in [-1, 1]; dissimilar pairs are penalised when their cosine exceeds it.
        reduction: 'none' | 'mean' | 'sum'.

    Raises:
        RuntimeError: a target that is not 0-D or 1-D, inputs of the wrong rank for the target,
            shapes that do not broadcast.

    Math: :class:`CosineEmbeddingFn`.
    """
    op = "cosine_embedding_loss"
    for name, value in (("input1", input1), ("input2", input2), ("target", target)):
        check_tensor(value, name, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    if target.ndim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    rank = target.ndim + 1
    if input1.ndim != rank or input2.ndim != rank:
        raise RuntimeError(f"{target.ndim}D target tensor expects {rank}D input tensors, but "
                           f"found inputs with sizes {list(input1.shape)} and "
                           f"{list(input2.shape)}.")
    _check_floating(input1, "input1", op)
    _check_floating(input2, "input2", op)
    pair_shape = _broadcast_shape(op, input1=input1, input2=input2)
    try:
        np.broadcast_shapes(pair_shape[:-1], tuple(target.shape))
    except ValueError:
        raise RuntimeError(f"{op}(): the target's shape {tuple(target.shape)} does not "
                           f"broadcast with the {pair_shape[:-1]} pairs") from None
    return CosineEmbeddingFn(float(margin), reduction)(input1, input2, target)


class PoissonNllFn(Function):
    """Negative log-likelihood of a Poisson target t with rate lambda (dropping log t!):

        log_input=True  (x = log lambda):  l = e^x - t x,               dl/dx = e^x - t
        log_input=False (x = lambda):      l = x - t log(x + eps),      dl/dx = 1 - t / (x + eps)
    dl/dt = -x, resp. -log(x + eps). ``full`` adds Stirling's approximation of log t!,
        t log t - t + 0.5 log(2 pi t)   where t > 1 (0 elsewhere),  d/dt = log t + 1 / (2 t)
    PyTorch's dl/dt with ``full`` is nan where t <= 0 (0 * log 0 in the masked term's backward);
    that is reproduced. Torch: torch.nn.functional.poisson_nll_loss.
    """

    def __init__(self, log_input: bool, full: bool, eps: float, reduction: str):
        self.log_input, self.full, self.eps, self.reduction = log_input, full, eps, reduction

    def forward(self, x, target):
        target = _as_dtype_of(target, x)
        if self.log_input:
            loss = np.exp(x) - target * x
        else:
            loss = x - target * np.log(x + self.eps)
        if self.full:
            big = target > 1
            safe_t = np.where(big, target, 1)
            stirling = safe_t * np.log(safe_t) - safe_t + 0.5 * np.log(2 * np.pi * safe_t)
            loss = loss + np.where(big, stirling, 0)
        self.save_for_backward(x, target)
        return _reduce(loss, self.reduction)

    def backward(self, grad_loss):
        x, target = self.saved
        needs = self.needs_input_grad
        coef = _upstream(grad_loss, np.broadcast_shapes(x.shape, target.shape), self.reduction)
        grad_x = grad_t = None
        if needs[0]:
            grad_x = coef * (np.exp(x) - target if self.log_input
                             else 1 - target / (x + self.eps))
        if needs[1]:
            slope = -x if self.log_input else -np.log(x + self.eps)
            if self.full:
                safe_t = np.where(target > 1, target, 1)
                stirling = np.where(target > 1, np.log(safe_t) + 0.5 / safe_t, 0)
                slope = slope + np.where(target <= 0, np.nan, stirling)
            grad_t = coef * slope
        return grad_x, grad_t


def poisson_nll_loss(input: Any, target: Any, log_input: bool = True, full: bool = False,
                     size_average: bool | None = None, eps: float = 1e-8,
                     reduce: bool | None = None, reduction: str = "mean"):
    """Poisson negative log-likelihood, as ``torch.nn.functional.poisson_nll_loss``.

    Args:
        input: the log-rate (``log_input=True``) or the rate, any shape.
        target: counts, broadcastable with ``input``; it receives a gradient, as in PyTorch.
        log_input: whether ``input`` is log lambda.
        full: add the Stirling term of log(t!) (constant in the input).
        eps: added to lambda before the log when ``log_input=False``.
        reduction: 'none' | 'mean' | 'sum'.

    Math: :class:`PoissonNllFn`.
    """
    op = "poisson_nll_loss"
    _check_pair(input, target, op)
    reduction = _check_reduction(_legacy_reduction(size_average, reduce, reduction))
    _check_floating(input, "input", op)
    _broadcast_shape(op, input=input, target=target)
    return PoissonNllFn(bool(log_input), bool(full), float(eps), reduction)(input, target)


# -- CTC (connectionist temporal classification; the loss of CRNN text recognition, notes 003) ----


def _logsumexp3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """log(e^a + e^b + e^c) elementwise, shifted by the max; -inf where all three are -inf."""
    m = np.maximum(np.maximum(a, b), c)
    m = np.where(m == -np.inf, 0, m)                        # all -inf: log(0) = -inf, not nan
    with np.errstate(divide="ignore"):
        return m + np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m))


def _extended_labels(targets: np.ndarray, target_lengths: np.ndarray, blank: int):
    """The blank-interleaved label sequences l' = (blank, l1, blank, l2, ..., lS, blank).

    Args: targets (N, S_max) padded, target_lengths (N,).
    Returns:
        ext (N, L) with L = 2 S_max + 1 (padding positions hold the blank),
        valid (N, L): s < 2 S_n + 1,
        skip (N, L): the transition s-2 -> s is allowed, i.e. l'_s != l'_{s-2} (a label that
            differs from the previous label; never for a blank, whose l'_{s-2} is a blank too).
    """
    n, s_max = targets.shape
    ext = np.full((n, 2 * s_max + 1), blank, dtype=np.int64)            # (N, L)
    ext[:, 1::2] = targets
    valid = np.arange(2 * s_max + 1) < (2 * target_lengths + 1)[:, None]
    ext[~valid] = blank
    skip = np.zeros(ext.shape, dtype=bool)
    skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
    return ext, valid, skip


class CtcLossFn(Function):
    """CTC loss by the forward-backward (alpha-beta) algorithm in log space (Graves et al. 2006).

    Inputs: log_probs lp (T, N, C) (log_softmax outputs, though any values are accepted, as in
    PyTorch); per sample n a target l of length S, an input length T_n and l' = the label
    sequence with blanks interleaved, of length L = 2S + 1. A path pi (one class per frame)
    maps to l when removing repeats and then blanks gives l; the loss is -log p(l | x) with
    p(l | x) = sum_pi prod_t y_t(pi_t), y = exp(lp).

    Forward variables (log alpha_t(s) = log of the mass of path prefixes ending at l'_s at t):
        alpha_0(0) = lp_0(blank),  alpha_0(1) = lp_0(l_1)
        alpha_t(s) = lp_t(l'_s) + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1),
                                            alpha_{t-1}(s-2) if l'_s != l'_{s-2})
        -loss = log p = logsumexp(alpha_{T-1}(L-1), alpha_{T-1}(L-2))
    Backward variables beta_t(s) run the same recursion from the end (s+1, s+2, from
    beta_{T-1}(L-1) = lp_{T-1}(blank) and beta_{T-1}(L-2) = lp_{T-1}(l_S)). Both include
    lp_t(l'_s), so alpha_t(s) + beta_t(s) - lp_t(l'_s) is the log mass of all paths through s at
    t and gamma_t(s) = exp(alpha_t(s) + beta_t(s) - lp_t(l'_s) + loss) is the posterior of being
    there. Then d(loss)/d lp_t(c) = -sum_{s: l'_s = c} gamma_t(s).

    PyTorch returns that gradient plus exp(lp_t(c)), i.e. the gradient the loss would have with
    respect to the logits z if lp = log_softmax(z): the extra term sums to 1 per frame and
    vanishes through log_softmax's backward (which subtracts softmax * the sum over c). So, as
    PyTorch, with g_n the upstream gradient of sample n:
        dL/dlp_t(n, c) = g_n (exp(lp_t(n, c)) - sum_{s: l'_s = c} gamma_t(n, s))   for t < T_n
                       = 0                                                        for t >= T_n
    An impossible alignment (T_n too short for l) has loss inf and, as in PyTorch, a nan
    gradient, unless ``zero_infinity`` replaces both by 0. Derivation: docs/derivations/ctc.md.
    Torch: torch.nn.functional.ctc_loss.
    """

    def __init__(self, targets: np.ndarray, input_lengths: np.ndarray,
                 target_lengths: np.ndarray, blank: int, reduction: str, zero_infinity: bool,
                 unbatched: bool):
        self.targets, self.blank = targets, blank
        self.input_lengths, self.target_lengths = input_lengths, target_lengths
        self.reduction, self.zero_infinity, self.unbatched = reduction, zero_infinity, unbatched

    def forward(self, log_probs):
        lp = log_probs[:, None] if self.unbatched else log_probs          # (T, N, C)
        t_max, n, _ = lp.shape
        t_len, s_len = self.input_lengths, self.target_lengths            # (N,), (N,)
        ext, valid, skip = _extended_labels(self.targets, s_len, self.blank)   # (N, L)
        lp_ext = np.take_along_axis(lp, np.broadcast_to(ext, (t_max,) + ext.shape), axis=2)
        lp_ext = np.where(valid, lp_ext, -np.inf)                          # (T, N, L) lp_t(l'_s)
        alpha = self._alpha(lp_ext, skip)
        rows = np.arange(n)
        last = alpha[np.maximum(t_len - 1, 0), rows]                      # (N, L) alpha_{T_n-1}
        end_blank = last[rows, 2 * s_len]
        end_label = np.where(s_len > 0, last[rows, np.maximum(2 * s_len - 1, 0)], -np.inf)
        log_p = np.logaddexp(end_blank, end_label)                        # (N,)
        log_p = np.where(t_len > 0, log_p, np.where(s_len == 0, 0, -np.inf))  # empty input
        nll = (-log_p).astype(lp.dtype)
        self.save_for_backward(lp, lp_ext, ext, skip, alpha, nll)
        losses = np.where(nll == np.inf, 0, nll) if self.zero_infinity else nll
        if self.reduction == "none":
            return losses.reshape(()) if self.unbatched else losses
        if self.reduction == "sum":
            return np.asarray(losses.sum())
        return np.asarray((losses / self._length_divisor(lp.dtype)).mean())

    def _length_divisor(self, dtype) -> np.ndarray:
        """'mean' divides each loss by its target length (at least 1), then averages over N."""
        return np.maximum(self.target_lengths, 1).astype(dtype)

    @staticmethod
    def _alpha(lp_ext: np.ndarray, skip: np.ndarray) -> np.ndarray:
        """log alpha (T, N, L), one vectorised step over the batch per frame."""
        t_max, n, width = lp_ext.shape
        alpha = np.full(lp_ext.shape, -np.inf, dtype=lp_ext.dtype)
        alpha[0, :, :2] = lp_ext[0, :, :2]                                # start: blank or l_1
        prev = np.full((n, width + 2), -np.inf, dtype=lp_ext.dtype)      # alpha_{t-1}, 2 pads
        for t in range(1, t_max):
            prev[:, 2:] = alpha[t - 1]
            stay, step = prev[:, 2:], prev[:, 1:-1]                       # from s, from s-1
            jump = np.where(skip, prev[:, :-2], -np.inf)                  # from s-2
            alpha[t] = lp_ext[t] + _logsumexp3(stay, step, jump)
        return alpha

    def _beta(self, lp_ext: np.ndarray, skip: np.ndarray) -> np.ndarray:
        """log beta (T, N, L); beta_t = -inf for t >= T_n, started at t = T_n - 1 per sample."""
        t_max, n, width = lp_ext.shape
        s_len = self.target_lengths
        positions = np.arange(width)
        ends = (positions == 2 * s_len[:, None]) | (positions == 2 * s_len[:, None] - 1)
        skip_ahead = np.zeros_like(skip)
        skip_ahead[:, :-2] = skip[:, 2:]                                  # s -> s+2 allowed
        beta = np.full(lp_ext.shape, -np.inf, dtype=lp_ext.dtype)
        nxt = np.full((n, width + 2), -np.inf, dtype=lp_ext.dtype)       # beta_{t+1}, 2 pads
        for t in range(t_max - 1, -1, -1):
            stay, step = nxt[:, :-2], nxt[:, 1:-1]                        # from s, from s+1
            jump = np.where(skip_ahead, nxt[:, 2:], -np.inf)              # from s+2
            beta[t] = lp_ext[t] + _logsumexp3(stay, step, jump)
            start = (t == self.input_lengths - 1)[:, None] & ends         # (N, L)
            beta[t][start] = lp_ext[t][start]
            nxt[:, :-2] = beta[t]
        return beta

    def backward(self, grad_loss):
        lp, lp_ext, ext, skip, alpha, nll = self.saved
        t_max, n, c = lp.shape
        beta = self._beta(lp_ext, skip)
        reachable = (alpha > -np.inf) & (beta > -np.inf)                  # (T, N, L)
        with np.errstate(invalid="ignore", over="ignore"):
            log_gamma = alpha + beta - lp_ext + nll[:, None]
        gamma = np.where(reachable, np.exp(np.where(reachable, log_gamma, 0)), 0)
        # scatter-add gamma_t(n, s) into class l'_s: a bincount over flat (t, n, class) indices
        flat = (np.arange(t_max)[:, None, None] * n + np.arange(n)[:, None]) * c + ext
        occupancy = np.bincount(flat.ravel(), weights=gamma.ravel(), minlength=t_max * n * c)
        grad = np.exp(lp) - occupancy.reshape(t_max, n, c).astype(lp.dtype)   # (T, N, C)
        impossible = nll == np.inf                                        # (N,)
        grad[:, impossible] = 0 if self.zero_infinity else np.nan
        grad[np.arange(t_max)[:, None] >= self.input_lengths] = 0         # frames past T_n
        if self.reduction == "none":
            coef = grad_loss.reshape(n)
        elif self.reduction == "sum":
            coef = np.broadcast_to(grad_loss, (n,))
        else:
            coef = grad_loss / (n * self._length_divisor(lp.dtype))
        grad *= coef[:, None]
        return grad[:, 0] if self.unbatched else grad


def _ctc_lengths(value: Any, name: str) -> np.ndarray:
    """input_lengths / target_lengths as an int64 vector (from a Tensor, ints, or one int)."""
    from ..tensor import Tensor

    if isinstance(value, Tensor):
        if value.dtype.kind not in "iu":
            raise RuntimeError(f"{name} must be integral")
        return value.data.astype(np.int64).reshape(-1)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return np.array([value], dtype=np.int64)
    if isinstance(value, tuple | list) and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value):
        return np.array(value, dtype=np.int64).reshape(-1)
    raise TypeError(f"ctc_loss(): argument '{name}' must be a Tensor of integers or a tuple of "
                    f"ints, not {type(value).__name__}")


def _ctc_padded_targets(targets: Any, target_lengths: np.ndarray, n: int) -> np.ndarray:
    """Targets as a padded (N, S_max) int64 array, from the padded or the concatenated layout."""
    labels = targets.data
    labels = labels.astype(np.int64) if labels.dtype.kind != "f" else np.trunc(labels).astype(
        np.int64)
    s_max = int(target_lengths.max(initial=0))
    where = "for argument #2 'targets' (while checking arguments for ctc_loss)"
    if labels.ndim == 2:
        if labels.shape[0] != n:
            raise RuntimeError(f"Expected tensor to have size {n} at dimension 0, but got size "
                               f"{labels.shape[0]} {where}")
        if labels.shape[1] < s_max:
            raise RuntimeError(f"Expected tensor to have size at least {s_max} at dimension 1, "
                               f"but got size {labels.shape[1]} {where}")
        padded = labels[:, :s_max]                                        # (N, S_max)
    elif labels.ndim == 1:
        total = int(target_lengths.sum())
        if labels.shape[0] != total:
            raise RuntimeError(f"Expected tensor to have size {total} at dimension 0, but got "
                               f"size {labels.shape[0]} {where}")
        padded = np.zeros((n, s_max), dtype=np.int64)
        used = np.arange(s_max) < target_lengths[:, None]                 # (N, S_max)
        padded[used] = labels                                             # row-major = concat
    else:
        raise RuntimeError(f"Expected 1 to 2 dimensions, but got {labels.ndim}-dimensional "
                           f"tensor {where}")
    return padded


def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
    """Connectionist temporal classification loss, as ``torch.nn.functional.ctc_loss``.

    The loss of a sequence model whose T output frames must spell a shorter label sequence
    without a given alignment (CRNN text recognition, speech): -log of the total probability of
    every frame-level path that collapses to the target (:class:`CtcLossFn`).

    Args:
        log_probs: (T, N, C) log-probabilities per frame (``log_softmax`` over C), or (T, C)
            for one unbatched sequence.
        targets: class indices, either padded (N, S) (row n uses its first target_lengths[n]
            entries) or all targets concatenated (sum(target_lengths),). Integers in [0, C);
            a float tensor is truncated to integers, as PyTorch.
        input_lengths: (N,) frames used per sample, each <= T (a Tensor or a tuple of ints).
        target_lengths: (N,) target length per sample.
        blank: the blank class, in [0, C).
        reduction: 'none' (N losses) | 'sum' | 'mean' (each loss divided by its target length,
            then the mean over the batch, as PyTorch).
        zero_infinity: replace infinite losses (impossible alignments: the input is too short
            for the target and its repeats) and their gradients by zero.

    Returns:
        The reduced loss, or (N,) losses for 'none' (a 0-D loss for unbatched input).

    Raises:
        RuntimeError: a log_probs that is not 2-D/3-D or is empty, blank outside [0, C), lengths
            of the wrong count or out of range, targets of the wrong size, or target labels
            outside [0, C) or equal to ``blank`` (deviation: PyTorch does not check these; it
            reads out of bounds, or returns a loss with a gradient that is wrong at the last
            frame, since its backward assumes the last label is not the blank).
        ValueError: an unknown ``reduction``.

    Deviation: a plain int is accepted as the length of an unbatched sequence.
    """
    op = "ctc_loss"
    check_tensor(log_probs, "log_probs", op)
    check_tensor(targets, "targets", op)
    reduction = _check_reduction(reduction)
    if log_probs.ndim not in (2, 3):
        raise RuntimeError(f"Expected 3-dimensional tensor (T, N, C), or 2-dimensional (T, C) "
                           f"unbatched, but got {log_probs.ndim}-dimensional tensor for argument "
                           f"#1 'log_probs' (while checking arguments for ctc_loss)")
    if log_probs.dtype.kind != "f":
        raise NotImplementedError(f"\"ctc_loss\" not implemented for "
                                  f"'{_dtype_name(log_probs.dtype)}'")
    if log_probs.numel() == 0:
        raise RuntimeError("log_probs tensor must not be empty")
    unbatched = log_probs.ndim == 2
    t_max, classes = log_probs.shape[0], log_probs.shape[-1]
    n = 1 if unbatched else log_probs.shape[1]
    if isinstance(blank, bool) or not isinstance(blank, int | np.integer):
        raise TypeError(f"ctc_loss(): argument 'blank' must be int, not {type(blank).__name__}")
    if not 0 <= blank < classes:
        raise RuntimeError("blank must be in label range")
    input_lengths = _ctc_lengths(input_lengths, "input_lengths")
    target_lengths = _ctc_lengths(target_lengths, "target_lengths")
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.shape[0] != n:
            raise RuntimeError(f"{name} must be of size batch_size")
    where = "(while checking arguments for ctc_loss)"
    if (input_lengths > t_max).any():
        raise RuntimeError(f"Expected input_lengths to have value at most {t_max}, but got "
                           f"value {int(input_lengths.max())} {where}")
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if (lengths < 0).any():
            raise RuntimeError(f"Expected {name} to have value at least 0, but got value "
                               f"{int(lengths.min())} {where}")
    padded = _ctc_padded_targets(targets, target_lengths, n)
    used = padded[np.arange(padded.shape[1]) < target_lengths[:, None]]
    if ((used < 0) | (used >= classes)).any():
        bad = used[(used < 0) | (used >= classes)][0]
        raise RuntimeError(f"ctc_loss(): target labels must be in [0, {classes}) (the classes "
                           f"of log_probs), but got {int(bad)}")
    if (used == blank).any():
        raise RuntimeError(f"ctc_loss(): the targets contain the blank label {blank}; a target "
                           f"label cannot be blank")
    fn = CtcLossFn(padded, input_lengths, target_lengths, int(blank), reduction,
                   bool(zero_infinity), unbatched)
    return fn(log_probs)
