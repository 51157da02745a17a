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
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
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
        raise ValueError(f"{reduction} is not a valid value for reduction")
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
                        float_hint: str = "") -> None:
    """Validate a class-index target against input (C,), (N, C) or (N, C, d1, ...)."""
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
    labels = target.data
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= classes))
    if bad.any():
        raise IndexError(f"Target {int(labels[bad].flat[0])} is out of bounds.")


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
    if weight is not None:
        _check_class_weight(weight, classes, "cross_entropy")
    if input.ndim > 0 and tuple(target.shape) == tuple(input.shape):
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
    _check_class_target(input, target, ignore_index, "cross_entropy", hint)
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
    _check_class_target(input, target, ignore_index, "nll_loss")
    classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None:
        _check_class_weight(weight, classes, "nll_loss")
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
        raise RuntimeError("all elements of input should be between 0 and 1")
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
