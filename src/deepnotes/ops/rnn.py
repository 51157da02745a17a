"""Recurrent layers as fused ops: one graph node per layer and direction, not one per gate per step
(notes 001 "RNN原理"/"LSTM原理", 002 Q6, 003 "RNN相关", 004 Q39-Q41).

A recurrent layer applies the same cell at every time step t = 1..T:

    RNN    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                    act = tanh or relu
    LSTM   (i, f, g, o) = (sigm, sigm, tanh, sigm)(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
           c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)    [then h_t <- W_hr h_t with proj_size]
    GRU    r, z = sigm(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
           n   = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
           h_t = (1 - z) * n + z * h_{t-1}

The gate blocks are stacked in PyTorch's order along the rows of the weights: LSTM (i, f, g, o),
GRU (r, z, n). Recording every elementwise op of every step would build ~10 graph nodes per step.
Instead each ``*LayerFn`` runs the whole sequence in one node:

* the input projection of ALL steps is one GEMM, X (S, I) @ W_ih^T (I, G*H), since it does not
  depend on the recurrence;
* the loop over t does one (N, H) x (H, G*H) GEMM plus the gate math, writing the activations
  into preallocated (S, G*H) arrays that backward reuses;
* backward is backpropagation through time: a reverse loop that carries dL/dh_{t-1} (and
  dL/dc_{t-1}) and writes dL/d(pre-activation) of every step into one (S, G*H) array; then
  dW_ih, dW_hh, the biases and dx are single GEMMs/sums over all steps at once:
      dW_ih = dA^T X,   dW_hh = dA_h^T H_prev,   db = sum_rows dA,   dX = dA W_ih
  where H_prev (S, H) stacks the state each step started from.

Sequences live in PyTorch's *packed* layout: ``x`` is (S, I) with the rows of step t at
``x[offset_t : offset_t + batch_sizes[t]]`` and batch_sizes non-increasing (sequences sorted by
length, longest first), S = sum(batch_sizes). A padded batch (T, N, I) is the special case
batch_sizes = (N,) * T, x = input.reshape(T*N, I). At step t only the first batch_sizes[t]
sequences advance; the others keep their state, so a sequence's final state is the one after its
own last step. Running in reverse (the second direction of a bidirectional layer) walks t from
T-1 down to 0, and a sequence that is not active yet keeps its initial state h0 until its first
(= last in time) step. Derivations: docs/derivations/lstm_gru.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ..backend import array_module
from ._util import check_tensor


def _schedule(batch_sizes: tuple[int, ...], reverse: bool) -> list[tuple[int, int]]:
    """(row offset, active batch size) of every step, in the order the recurrence visits them."""
    steps, start = [], 0
    for size in batch_sizes:
        steps.append((start, size))
        start += size
    return steps[::-1] if reverse else steps


def _sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = 1 / (1 + e^-x) without temporaries.

    For very negative x, e^-x overflows to inf and the result is 1 / inf = 0, which is right; the
    ``errstate`` only silences NumPy's overflow warning.
    """
    xp = array_module(x)
    xp.negative(x, out=out)
    with np.errstate(over="ignore"):
        xp.exp(out, out=out)
    out += 1
    return xp.reciprocal(out, out=out)


def _input_grads(needs: tuple[bool, ...], grad_pre_x: np.ndarray, grad_pre_h: np.ndarray,
                 x: np.ndarray, h_prev_all: np.ndarray, w_ih: np.ndarray) -> list[Any]:
    """dx, dW_ih, dW_hh, db_ih, db_hh from the pre-activation gradients of all steps.

    grad_pre_x (S, G*H) is dL/d(W_ih x_t + b_ih), grad_pre_h (S, G*H) is dL/d(W_hh h_{t-1} + b_hh);
    they differ only for the GRU's n gate (r multiplies the hidden part).
    """
    grads: list[Any] = [None] * 5
    if needs[0]:
        grads[0] = grad_pre_x @ w_ih                      # (S, G*H) @ (G*H, I) -> (S, I)
    if needs[1]:
        grads[1] = grad_pre_x.T @ x                       # (G*H, S) @ (S, I)   -> (G*H, I)
    if needs[2]:
        grads[2] = grad_pre_h.T @ h_prev_all              # (G*H, S) @ (S, H)   -> (G*H, H)
    if needs[3]:
        grads[3] = grad_pre_x.sum(axis=0)                 # (G*H,)
    if needs[4]:
        grads[4] = grad_pre_h.sum(axis=0)                 # (G*H,)
    return grads


class RNNLayerFn(Function):
    """One direction of one Elman RNN layer over a packed sequence.

    x (S, I), h0 (N, H), w_ih (H, I), w_hh (H, H), b_ih, b_hh (H,) -> out (S, H), h_n (N, H)

    Forward:   a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,   h_t = act(a_t)
    Backward:  with dh_t = dL/dh_t = g_out_t + (W_hh^T da_{t+1}) (the second term from step t+1),
               da_t = dh_t * act'(a_t),  act' = 1 - h_t^2 (tanh) or [h_t > 0] (relu)
               dh_{t-1} gets W_hh^T da_t, and dh0 is what is left after step 1.
    Unrolled:  dL/dh_k = sum_t dL/dh_t prod_{j=k+1..t} diag(act'(a_j)) W_hh — a product of T-k
               Jacobians, which is why gradients vanish or explode (notes 003 "RNN相关", 002 Q6).
    """

    def __init__(self, batch_sizes: tuple[int, ...], reverse: bool = False,
                 nonlinearity: str = "tanh"):
        self.batch_sizes, self.reverse, self.nonlinearity = batch_sizes, reverse, nonlinearity

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = array_module(x)
        pre = x @ w_ih.T                                  # (S, I) @ (I, H) -> (S, H)
        if b_ih is not None:
            pre += b_ih + b_hh
        w_hh_t = w_hh.T                                   # (H, H)
        h = h0.copy()                                     # (N, H): the state of every sequence
        out = xp.empty_like(pre)                          # (S, H)
        h_prev_all = xp.empty_like(pre)                   # (S, H): the state each step read
        for start, size in _schedule(self.batch_sizes, self.reverse):
            rows = slice(start, start + size)
            h_prev = h[:size]                             # (B_t, H), the active prefix
            h_prev_all[rows] = h_prev
            a = pre[rows]
            a += h_prev @ w_hh_t                          # (B_t, H) @ (H, H) -> (B_t, H)
            if self.nonlinearity == "tanh":
                xp.tanh(a, out=out[rows])
            else:
                xp.maximum(a, 0, out=out[rows])
            h[:size] = out[rows]
        self.save_for_backward(x, w_ih, w_hh, out, h_prev_all)
        return out, h

    def backward(self, grad_out, grad_h_n):
        x, w_ih, w_hh, out, h_prev_all = self.saved
        xp = array_module(x)
        slope = 1 - out * out if self.nonlinearity == "tanh" else (out > 0).astype(out.dtype)
        grad_pre = xp.empty_like(out)                     # (S, H): dL/da_t of every step
        grad_h = grad_h_n.copy()                          # (N, H): dL/dh carried back in time
        for start, size in reversed(_schedule(self.batch_sizes, self.reverse)):
            rows = slice(start, start + size)
            grad_h_t = grad_h[:size]
            grad_h_t += grad_out[rows]
            xp.multiply(grad_h_t, slope[rows], out=grad_pre[rows])
            grad_h_t[...] = grad_pre[rows] @ w_hh         # (B_t, H) @ (H, H): dL/dh_{t-1}
        grads = _input_grads(self.needs_input_grad[:1] + self.needs_input_grad[2:6], grad_pre,
                             grad_pre, x, h_prev_all, w_ih)
        return grads[0], grad_h, *grads[1:]


class LSTMLayerFn(Function):
    """One direction of one LSTM layer over a packed sequence (optionally with a projection).

    x (S, I), h0 (N, P), c0 (N, H), w_ih (4H, I), w_hh (4H, P), b_ih, b_hh (4H,), w_hr (P, H)
    -> out (S, P), h_n (N, P), c_n (N, H).     P = H without projection (w_hr None).

    Forward, gate blocks (i, f, g, o) as in PyTorch:
        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh            (4H pre-activations)
        i, f, o = sigm(a_i), sigm(a_f), sigm(a_o);   g = tanh(a_g)
        c_t = f * c_{t-1} + i * g;   m_t = o * tanh(c_t);   h_t = m_t  (or W_hr m_t)
    Backward through step t, given dh_t (from out_t, and W_hh^T da_{t+1} from the future) and
    dc_t (from c_{t+1} = f_{t+1} c_t + ...):
        dm   = dh_t                (or W_hr^T dh_t; dW_hr += dh_t m_t^T)
        dc_t += dm * o * (1 - tanh^2 c_t)
        da_o = dm * tanh(c_t) * o (1 - o)      da_i = dc_t * g * i (1 - i)
        da_f = dc_t * c_{t-1} * f (1 - f)      da_g = dc_t * i * (1 - g^2)
        dc_{t-1} = dc_t * f      dh_{t-1} = W_hh^T da_t
    The cell path dc_{t-1} = f * dc_t is elementwise — no matrix, no squashing derivative — so
    with f near 1 the gradient survives many steps (notes 002 Q6, 004 Q40). All the factors that do
    not involve dh/dc (o (1 - tanh^2 c), tanh(c) o (1 - o), ...) are computed for all steps at once
    before the loop; the loop itself is a few multiplies and one GEMM per step.
    """

    def __init__(self, batch_sizes: tuple[int, ...], reverse: bool = False):
        self.batch_sizes, self.reverse = batch_sizes, reverse

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
        xp = array_module(x)
        hid = c0.shape[1]
        g_block = slice(2 * hid, 3 * hid)
        pre = x @ w_ih.T                                  # (S, I) @ (I, 4H) -> (S, 4H)
        if b_ih is not None:
            pre += b_ih + b_hh
        # tanh(a) = 2 sigm(2a) - 1: doubling the g block of the pre-activations (in the input part
        # here and in the columns of W_hh^T) lets one sigmoid pass produce all four gates.
        pre[:, g_block] *= 2
        w_hh_t = w_hh.T.copy()                            # (P, 4H)
        w_hh_t[:, g_block] *= 2
        s = x.shape[0]
        gates = pre                                       # (S, 4H): i, f, g, o, made in place
        c_prev_all = xp.empty((s, hid), dtype=x.dtype)    # (S, H): c_{t-1} of every step
        tanh_c = xp.empty((s, hid), dtype=x.dtype)        # (S, H): tanh(c_t)
        m_all = xp.empty((s, hid), dtype=x.dtype)         # (S, H): o * tanh(c_t)
        out = m_all if w_hr is None else xp.empty((s, w_hr.shape[0]), dtype=x.dtype)  # (S, P)
        h_prev_all = xp.empty_like(out)                   # (S, P)
        h, c = h0.copy(), c0.copy()                       # (N, P), (N, H): the running state
        for start, size in _schedule(self.batch_sizes, self.reverse):
            rows = slice(start, start + size)
            h_prev_all[rows] = h[:size]
            c_prev_all[rows] = c[:size]
            a = pre[rows]
            a += h[:size] @ w_hh_t                        # (B_t, P) @ (P, 4H) -> (B_t, 4H)
            act = _sigmoid(a, out=a)                      # i, f, (g + 1) / 2, o
            g = act[:, g_block]
            g *= 2
            g -= 1                                        # g = tanh(a_g)
            c_t = c[:size]
            c_t *= act[:, hid:2 * hid]                    # f * c_{t-1}
            c_t += act[:, :hid] * g                       # + i * g
            xp.tanh(c_t, out=tanh_c[rows])
            xp.multiply(act[:, 3 * hid:], tanh_c[rows], out=m_all[rows])
            if w_hr is not None:
                out[rows] = m_all[rows] @ w_hr.T          # (B_t, H) @ (H, P) -> (B_t, P)
            h[:size] = out[rows]
        self.save_for_backward(x, w_ih, w_hh, w_hr, gates, c_prev_all, tanh_c, m_all, h_prev_all)
        return out, h, c

    def backward(self, grad_out, grad_h_n, grad_c_n):
        x, w_ih, w_hh, w_hr, gates, c_prev_all, tanh_c, m_all, h_prev_all = self.saved
        xp = array_module(x)
        s, hid = tanh_c.shape
        i, f, g, o = (gates[:, k * hid:(k + 1) * hid] for k in range(4))
        # Step-independent factors, for all steps at once (in place, to allocate little).
        # coef[:, :3] multiplies dc_t (gates i, f, g), coef[:, 3] multiplies dm (gate o); the loop
        # then turns coef into dL/da of every step, in place.
        coef = xp.empty((s, 4, hid), dtype=x.dtype)       # (S, 4, H)
        for k, (gate, other) in enumerate(((i, g), (f, c_prev_all), (None, i), (o, tanh_c))):
            slot = coef[:, k]
            if gate is None:                              # i (1 - g^2)
                xp.multiply(g, g, out=slot)
                xp.subtract(1, slot, out=slot)
            else:                                         # other * gate (1 - gate)
                xp.subtract(1, gate, out=slot)
                slot *= gate
            slot *= other
        dc_from_m = tanh_c * tanh_c                       # (S, H): o (1 - tanh^2 c)
        xp.subtract(1, dc_from_m, out=dc_from_m)
        dc_from_m *= o
        grad_pre = coef                                   # (S, 4, H): dL/da_t, filled below
        grad_h_all = xp.empty_like(h_prev_all) if w_hr is not None else None  # (S, P)
        grad_h, grad_c = grad_h_n.copy(), grad_c_n.copy()  # (N, P), (N, H)
        for start, size in reversed(_schedule(self.batch_sizes, self.reverse)):
            rows = slice(start, start + size)
            grad_h_t, grad_c_t = grad_h[:size], grad_c[:size]
            grad_h_t += grad_out[rows]
            if w_hr is None:
                grad_m = grad_h_t
            else:
                grad_h_all[rows] = grad_h_t
                grad_m = grad_h_t @ w_hr                  # (B_t, P) @ (P, H) -> (B_t, H)
            grad_c_t += grad_m * dc_from_m[rows]
            grad_pre[rows, :3] *= grad_c_t[:, None, :]    # da_i, da_f, da_g
            grad_pre[rows, 3] *= grad_m                   # da_o
            grad_c_t *= f[rows]                           # dL/dc_{t-1}
            grad_h_t[...] = grad_pre[rows].reshape(size, 4 * hid) @ w_hh  # (B_t, P): dL/dh_{t-1}
        grad_pre = grad_pre.reshape(s, 4 * hid)
        grads = _input_grads(self.needs_input_grad[:1] + self.needs_input_grad[3:7], grad_pre,
                             grad_pre, x, h_prev_all, w_ih)
        grad_w_hr = None
        if w_hr is not None and self.needs_input_grad[7]:
            grad_w_hr = grad_h_all.T @ m_all              # (P, S) @ (S, H) -> (P, H)
        return grads[0], grad_h, grad_c, *grads[1:], grad_w_hr


class GRULayerFn(Function):
    """One direction of one GRU layer over a packed sequence.

    x (S, I), h0 (N, H), w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,) -> out (S, H), h_n (N, H)

    Forward, gate blocks (r, z, n) as in PyTorch, with ax_t = W_ih x_t + b_ih and
    u_t = W_hh h_{t-1} + b_hh:
        r = sigm(ax_r + u_r),   z = sigm(ax_z + u_z),   n = tanh(ax_n + r * u_n)
        h_t = (1 - z) * n + z * h_{t-1}
    The reset gate multiplies (W_hn h + b_hn), bias included, as PyTorch (and cuDNN) do; the
    original paper puts r inside: W_hn (r * h).
    Backward, given dh_t:
        da_n = dh_t (1 - z)(1 - n^2)          (the gradient of ax_n; u_n gets da_n * r)
        da_z = dh_t (h_{t-1} - n) z (1 - z)
        da_r = da_n * u_n * r (1 - r)
        dh_{t-1} = dh_t * z + W_hh^T (da_r, da_z, da_n * r)
    Again the factors without dh_t are computed for all steps before the loop.
    """

    def __init__(self, batch_sizes: tuple[int, ...], reverse: bool = False):
        self.batch_sizes, self.reverse = batch_sizes, reverse

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = array_module(x)
        hid = h0.shape[1]
        pre = x @ w_ih.T                                  # (S, I) @ (I, 3H) -> (S, 3H)
        if b_ih is not None:
            pre += b_ih
            pre[:, :2 * hid] += b_hh[:2 * hid]            # r and z see both biases directly
        w_hh_t = w_hh.T                                   # (H, 3H)
        gates = xp.empty_like(pre)                        # (S, 3H): r, z, n of every step
        u_n_all = xp.empty((x.shape[0], hid), dtype=x.dtype)  # (S, H): W_hn h_{t-1} + b_hn
        out = xp.empty_like(u_n_all)                      # (S, H)
        h_prev_all = xp.empty_like(u_n_all)               # (S, H)
        h = h0.copy()                                     # (N, H)
        for start, size in _schedule(self.batch_sizes, self.reverse):
            rows = slice(start, start + size)
            h_prev = h[:size]
            h_prev_all[rows] = h_prev
            u = h_prev @ w_hh_t                           # (B_t, H) @ (H, 3H) -> (B_t, 3H)
            a = pre[rows]
            act = gates[rows]
            a[:, :2 * hid] += u[:, :2 * hid]
            _sigmoid(a[:, :2 * hid], out=act[:, :2 * hid])  # r, z
            u_n = u_n_all[rows]
            xp.add(u[:, 2 * hid:], 0 if b_hh is None else b_hh[2 * hid:], out=u_n)
            n = act[:, 2 * hid:]
            xp.multiply(act[:, :hid], u_n, out=n)         # r * u_n
            n += a[:, 2 * hid:]
            xp.tanh(n, out=n)
            h_t = out[rows]                               # n + z * (h_{t-1} - n)
            xp.subtract(h_prev, n, out=h_t)
            h_t *= act[:, hid:2 * hid]
            h_t += n
            h[:size] = h_t
        self.save_for_backward(x, w_ih, w_hh, gates, u_n_all, h_prev_all)
        return out, h

    def backward(self, grad_out, grad_h_n):
        x, w_ih, w_hh, gates, u_n_all, h_prev_all = self.saved
        xp = array_module(x)
        s, hid = u_n_all.shape
        r, z, n = (gates[:, k * hid:(k + 1) * hid] for k in range(3))
        coef_x = xp.empty((s, 3, hid), dtype=x.dtype)     # (S, 3, H): da_x = dh_t * coef_x
        xp.multiply(1 - z, 1 - n * n, out=coef_x[:, 2])
        xp.multiply(coef_x[:, 2] * u_n_all, r * (1 - r), out=coef_x[:, 0])
        xp.multiply(h_prev_all - n, z * (1 - z), out=coef_x[:, 1])
        coef_h = coef_x.copy()                            # da_h: the n block scaled by r
        coef_h[:, 2] *= r
        grad_pre_x = xp.empty_like(coef_x)                # (S, 3, H)
        grad_pre_h = xp.empty_like(coef_x)                # (S, 3, H)
        grad_h = grad_h_n.copy()                          # (N, H)
        for start, size in reversed(_schedule(self.batch_sizes, self.reverse)):
            rows = slice(start, start + size)
            grad_h_t = grad_h[:size]
            grad_h_t += grad_out[rows]
            xp.multiply(coef_x[rows], grad_h_t[:, None, :], out=grad_pre_x[rows])
            xp.multiply(coef_h[rows], grad_h_t[:, None, :], out=grad_pre_h[rows])
            grad_h_t *= z[rows]
            grad_h_t += grad_pre_h[rows].reshape(size, 3 * hid) @ w_hh  # (B_t, 3H) @ (3H, H)
        grads = _input_grads(self.needs_input_grad[:1] + self.needs_input_grad[2:6],
                             grad_pre_x.reshape(s, 3 * hid), grad_pre_h.reshape(s, 3 * hid),
                             x, h_prev_all, w_ih)
        return grads[0], grad_h, *grads[1:]


class PackRowsFn(Function):
    """y = x[index] for an index that picks each row of x at most once (packing a padded batch).

    dL/dx = g scattered back to the picked rows, zeros elsewhere (no row repeats, so plain
    assignment is exact).
    """

    def __init__(self, index: np.ndarray):
        self.index = index

    def forward(self, x):
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, grad_y):
        grad_x = array_module(grad_y).zeros(self.x_shape, dtype=grad_y.dtype)
        grad_x[self.index] = grad_y
        return grad_x


class UnpackRowsFn(Function):
    """y = an array of ``rows`` rows filled with ``value``, with y[index] = x (padding a packed
    sequence).   dL/dx = g[index]; the padding rows are constants."""

    def __init__(self, index: np.ndarray, rows: int, value: float):
        self.index, self.rows, self.value = index, rows, value

    def forward(self, x):
        y = array_module(x).full((self.rows, *x.shape[1:]), self.value, dtype=x.dtype)
        y[self.index] = x
        return y

    def backward(self, grad_y):
        return grad_y[self.index]


# -- functional wrappers -------------------------------------------------------------------------
def _check_cell(op: str, input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                chunks: int) -> None:
    """Shapes of a single-step cell call; PyTorch-like messages."""
    for name, value in (("input", input), ("hx", hx), ("w_ih", w_ih), ("w_hh", w_hh)):
        check_tensor(value, name, op)
    if input.ndim != 2 or hx.ndim != 2:
        raise RuntimeError(f"{op}: expected 2-D input and hx, got input {input.ndim}-D and hx "
                           f"{hx.ndim}-D")
    gh = w_hh.shape[0]
    if w_ih.shape != (gh, input.shape[1]) or gh % chunks:
        raise RuntimeError(f"{op}: w_ih must have shape ({gh}, {input.shape[1]}), got "
                           f"{tuple(w_ih.shape)}")
    if hx.shape[0] != input.shape[0]:
        raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match hidden0 batch size "
                           f"{hx.shape[0]}")
    if (b_ih is None) != (b_hh is None):
        raise RuntimeError(f"{op}: b_ih and b_hh must be both given or both None")
    for name, bias in (("b_ih", b_ih), ("b_hh", b_hh)):
        if bias is not None and tuple(bias.shape) != (gh,):
            raise RuntimeError(f"{op}: {name} must have shape ({gh},), got {tuple(bias.shape)}")


def rnn_tanh_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                  b_hh: Any = None) -> Any:
    """One step h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (``torch.rnn_tanh_cell``).

    Shape: input (N, I), hx (N, H), w_ih (H, I), w_hh (H, H), b_ih/b_hh (H,) -> (N, H).
    """
    _check_cell("rnn_tanh_cell", input, hx, w_ih, w_hh, b_ih, b_hh, 1)
    return RNNLayerFn((input.shape[0],), False, "tanh")(input, hx, w_ih, w_hh, b_ih, b_hh)[1]


def rnn_relu_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                  b_hh: Any = None) -> Any:
    """One step h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh) (``torch.rnn_relu_cell``)."""
    _check_cell("rnn_relu_cell", input, hx, w_ih, w_hh, b_ih, b_hh, 1)
    return RNNLayerFn((input.shape[0],), False, "relu")(input, hx, w_ih, w_hh, b_ih, b_hh)[1]


def lstm_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
              b_hh: Any = None) -> tuple[Any, Any]:
    """One LSTM step (``torch.lstm_cell``): returns (h', c') for hx = (h, c).

    Shape: input (N, I), h and c (N, H), w_ih (4H, I), w_hh (4H, H), biases (4H,).
    """
    if not isinstance(hx, tuple | list) or len(hx) != 2:
        raise TypeError("lstm_cell(): hx must be a tuple (h, c)")
    _check_cell("lstm_cell", input, hx[0], w_ih, w_hh, b_ih, b_hh, 4)
    _, h, c = LSTMLayerFn((input.shape[0],))(input, hx[0], hx[1], w_ih, w_hh, b_ih, b_hh)
    return h, c


def gru_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
             b_hh: Any = None) -> Any:
    """One GRU step (``torch.gru_cell``). Shape: w_ih (3H, I), w_hh (3H, H), biases (3H,)."""
    _check_cell("gru_cell", input, hx, w_ih, w_hh, b_ih, b_hh, 3)
    return GRULayerFn((input.shape[0],))(input, hx, w_ih, w_hh, b_ih, b_hh)[1]


def rnn_layer(input: Any, batch_sizes: tuple[int, ...], hx: Any, w_ih: Any, w_hh: Any,
              b_ih: Any = None, b_hh: Any = None, nonlinearity: str = "tanh",
              reverse: bool = False) -> tuple[Any, Any]:
    """A whole RNN layer (one direction) over packed rows: returns (out (S, H), h_n (N, H)).

    deepnotes-specific (PyTorch keeps this inside ``torch._VF.rnn_tanh``); ``nn.RNN`` calls it once
    per layer and direction. ``hx`` may be a Tensor or a raw zeros array.
    """
    return RNNLayerFn(tuple(batch_sizes), reverse, nonlinearity)(input, hx, w_ih, w_hh, b_ih, b_hh)


def lstm_layer(input: Any, batch_sizes: tuple[int, ...], hx: Any, cx: Any, w_ih: Any, w_hh: Any,
               b_ih: Any = None, b_hh: Any = None, w_hr: Any = None,
               reverse: bool = False) -> tuple[Any, Any, Any]:
    """A whole LSTM layer (one direction) over packed rows: (out (S, P), h_n (N, P), c_n (N, H))."""
    return LSTMLayerFn(tuple(batch_sizes), reverse)(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr)


def gru_layer(input: Any, batch_sizes: tuple[int, ...], hx: Any, w_ih: Any, w_hh: Any,
              b_ih: Any = None, b_hh: Any = None, reverse: bool = False) -> tuple[Any, Any]:
    """A whole GRU layer (one direction) over packed rows: (out (S, H), h_n (N, H))."""
    return GRULayerFn(tuple(batch_sizes), reverse)(input, hx, w_ih, w_hh, b_ih, b_hh)
