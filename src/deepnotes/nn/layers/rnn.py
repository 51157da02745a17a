"""Recurrent layers with PyTorch's API: ``RNN``, ``LSTM``, ``GRU`` and the single-step cells
``RNNCell``, ``LSTMCell``, ``GRUCell`` (notes 001 "RNN原理"/"LSTM原理", 002 Q6, 004 Q39-Q41).

Parameter names, shapes, gate order and state_dict keys are PyTorch's, so a torch state_dict loads
as is and gives the same outputs and gradients. The math and the backward pass (BPTT) live in
``ops.rnn``: every layer and direction is one fused graph node (``LSTMLayerFn``...), not one node
per gate per time step.

Sequences may be padded tensors (T, N, I) / (N, T, I) with ``batch_first``, unbatched (T, I), or
``nn.utils.rnn.PackedSequence`` for variable lengths (PyTorch's packed sequences; no separate
``lengths`` argument).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from ...ops import rnn as R
from ...ops._util import check_tensor
from ...ops.shape import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from ._common import factory, is_int

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_int(value: Any, name: str) -> int:
    if not is_int(value):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    return int(value)


class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: parameters, argument checks, the layer loop.

    For layer l and direction d (suffix ``_reverse`` for d = 1) the parameters are

        weight_ih_l{l}  (G*H, I_l)     I_0 = input_size, I_l = D*H_out for l > 0
        weight_hh_l{l}  (G*H, H_out)
        bias_ih_l{l}, bias_hh_l{l}  (G*H,)          when bias=True
        weight_hr_l{l}  (proj_size, H)              LSTM with proj_size > 0

    with G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n), D = 2 if bidirectional else 1 and
    H_out = proj_size or hidden_size. All are initialised U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's
    default) from the global generator.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Number)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        input_size = _check_int(input_size, "input_size")
        hidden_size = _check_int(hidden_size, "hidden_size")
        num_layers = _check_int(num_layers, "num_layers")
        proj_size = _check_int(proj_size, "proj_size")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if mode != "LSTM" and proj_size:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        out_size = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input),
                          "weight_hh": (gate_size, out_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = []
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(factory(shape, device, dtype)))
                    names.append(name + suffix)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """A no-op kept for compatibility (PyTorch compacts the weights for cuDNN here)."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction, in PyTorch's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _layer_weights(self, k: int) -> tuple[Any, Any, Any, Any, Any]:
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of layer-direction k; missing ones are None."""
        names = self._all_weights[k]
        params = self._parameters
        suffix = names[0][len("weight_ih"):]
        get = params.get
        return (params[names[0]], params[names[1]], get("bias_ih" + suffix),
                get("bias_hh" + suffix), get("weight_hr" + suffix))

    # -- forward ----------------------------------------------------------------------------------
    def _prepare_input(self, input: Any) -> tuple[Any, tuple[int, ...], bool]:
        """(rows (S, I), batch_sizes, batched) in the packed layout the fused ops use."""
        if isinstance(input, PackedSequence):
            rows = input.data
            batch_sizes = tuple(int(b) for b in input.batch_sizes.data)
            batched = True
        else:
            check_tensor(input, "input", type(self).__name__)
            if input.ndim not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                                 f"{input.ndim}D instead")
            batched = input.ndim == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)                     # (N, T, I) -> (T, N, I)
            steps, batch = x.shape[:2]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            rows = x.reshape(steps * batch, x.shape[2])   # (T*N, I), time-major
            batch_sizes = (batch,) * steps
        if rows.ndim != 2 or rows.shape[1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {rows.shape[-1]}")
        weight_dtype = self.weight_ih_l0.dtype
        if rows.dtype != weight_dtype:
            raise ValueError(f"RNN input dtype ({rows.dtype}) does not match "
                             f"weight dtype ({weight_dtype}). Convert input: "
                             f"input.to({weight_dtype}), or convert model: model.to({rows.dtype})")
        return rows, batch_sizes, batched

    def _initial_state(self, hx: Any, batch: int, size: int, batched: bool,
                       sorted_indices: Any, what: str) -> Any:
        """h0 (or c0) as (L*D, N, size): a zeros array when not given, else the checked tensor
        (unbatched: unsqueezed; packed: rows permuted into the sorted order)."""
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, size)
        dtype = self.weight_ih_l0.dtype
        if hx is None:
            return np.zeros(expected, dtype=dtype)
        check_tensor(hx, "hx", type(self).__name__)
        if not batched:
            if hx.ndim != 2:
                raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                   f"{hx.ndim}-D tensor")
            hx = hx.unsqueeze(1)
        elif hx.ndim != 3:
            raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                               f"{hx.ndim}-D tensor")
        if tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {list(hx.shape)}")
        if hx.dtype != dtype:
            raise RuntimeError(f"Expected {what} dtype {dtype}, got {hx.dtype}")
        if sorted_indices is not None:
            hx = hx[:, sorted_indices.data]
        return hx

    def _run(self, input: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        """The layer loop shared by the three modules.

        ``states`` holds h0 (and c0 for the LSTM) as given by the user (or None). Returns the output
        (a tensor or PackedSequence in the input's layout) and the final states (L*D, N, *).
        """
        rows, batch_sizes, batched = self._prepare_input(input)
        packed = isinstance(input, PackedSequence)
        sorted_indices = input.sorted_indices if packed else None
        batch = batch_sizes[0]
        sizes = [self.proj_size or self.hidden_size, self.hidden_size]
        names = ["hidden[0]", "hidden[1]"] if self.mode == "LSTM" else ["hidden"]
        states = [self._initial_state(s, batch, sizes[i], batched, sorted_indices, names[i])
                  for i, s in enumerate(states)]
        directions = 2 if self.bidirectional else 1
        finals: list[list[Any]] = [[] for _ in states]
        layer_input = rows
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_weights(k)
                reverse = direction == 1
                if self.mode == "LSTM":
                    out, h_n, c_n = R.lstm_layer(layer_input, batch_sizes, states[0][k],
                                                 states[1][k], w_ih, w_hh, b_ih, b_hh, w_hr,
                                                 reverse=reverse)
                    finals[1].append(c_n)
                elif self.mode == "GRU":
                    out, h_n = R.gru_layer(layer_input, batch_sizes, states[0][k], w_ih, w_hh,
                                           b_ih, b_hh, reverse=reverse)
                else:
                    nonlinearity = "tanh" if self.mode == "RNN_TANH" else "relu"
                    out, h_n = R.rnn_layer(layer_input, batch_sizes, states[0][k], w_ih, w_hh,
                                           b_ih, b_hh, nonlinearity, reverse=reverse)
                finals[0].append(h_n)
                outputs.append(out)
            layer_input = outputs[0] if directions == 1 else cat(outputs, 1)   # (S, D*H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        final_states = [stack(f) for f in finals]                            # (L*D, N, *)
        if packed:
            output = PackedSequence(layer_input, input.batch_sizes, input.sorted_indices,
                                    input.unsorted_indices)
            if input.unsorted_indices is not None:
                final_states = [s[:, input.unsorted_indices.data] for s in final_states]
            return output, final_states
        steps = len(batch_sizes)
        output = layer_input.reshape(steps, batch, layer_input.shape[1])     # (T, N, D*H_out)
        if not batched:
            return output.squeeze(1), [s.squeeze(1) for s in final_states]
        if self.batch_first:
            output = output.transpose(0, 1)                                  # (N, T, D*H_out)
        return output, final_states

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu.

    Args:
        input_size: features of x_t (I).
        hidden_size: features of h_t (H).
        num_layers: stacked layers; layer l > 0 reads the outputs of layer l - 1.
        nonlinearity: 'tanh' (default) or 'relu'.
        bias: learn b_ih and b_hh (default True).
        batch_first: input and output are (N, T, *) instead of (T, N, *) (h0/h_n are not affected).
        dropout: dropout on the outputs of every layer but the last, in training mode.
        bidirectional: add a second direction that reads the sequence backwards; outputs are
            concatenated along the feature axis.

    Shape:
        input (T, N, I), (N, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
        h0 (D*L, N, H) or (D*L, H) unbatched, zeros when omitted.
        Returns output (T, N, D*H) (or packed) and h_n (D*L, N, H).

    Math: ``ops.rnn.RNNLayerFn`` (BPTT and why the gradient vanishes: a product of T Jacobians).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        output, (h_n,) = self._run(input, [hx])
        return output, h_n


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's formulation:

        i = sigm(W_ii x + b_ii + W_hi h + b_hi)     f = sigm(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)     o = sigm(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g                          h' = o * tanh(c')

    stacked in the weights as rows (i, f, g, o). With ``proj_size`` P > 0, h' = W_hr (o * tanh c')
    has P features (LSTMP, Sak et al. 2014) and W_hh is (4H, P). The additive cell path
    c' = f * c + ... is what keeps gradients alive over long spans (notes 002 Q6, 004 Q40;
    examples/lstm_vs_rnn.py).

    Args: as :class:`RNN` (no nonlinearity), plus ``proj_size`` (default 0: no projection).

    Shape:
        input as RNN; hx = (h0 (D*L, N, H_out), c0 (D*L, N, H)), zeros when omitted.
        Returns output (T, N, D*H_out) and (h_n, c_n).

    Math: ``ops.rnn.LSTMLayerFn``; derivation in docs/derivations/lstm_gru.md.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)

    def forward(self, input: Any, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Any, tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
        output, (h_n, c_n) = self._run(input, [None, None] if hx is None else list(hx))
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's formulation:

        r = sigm(W_ir x + b_ir + W_hr h + b_hr)     z = sigm(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    stacked in the weights as rows (r, z, n). The reset gate multiplies W_hn h + b_hn (bias
    included), as PyTorch does. z interpolates between keeping h and writing n: the GRU merges the
    LSTM's input and forget gates into one and has no separate cell (notes 004 Q41).

    Args, Shape: as :class:`RNN` (no nonlinearity). Math: ``ops.rnn.GRULayerFn``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)

    def forward(self, input: Any, hx: Tensor | None = None) -> tuple[Any, Tensor]:
        output, (h_n,) = self._run(input, [hx])
        return output, h_n


# -- cells ---------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """One time step: parameters weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H,),
    all U(-1/sqrt(H), 1/sqrt(H)). Input (N, I) or (I,) unbatched; the state likewise."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        self.input_size = _check_int(input_size, "input_size")
        self.hidden_size = _check_int(hidden_size, "hidden_size")
        if self.hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        self.bias = bool(bias)
        gate_size = num_chunks * self.hidden_size
        self.weight_ih = Parameter(factory((gate_size, self.input_size), device, dtype))
        self.weight_hh = Parameter(factory((gate_size, self.hidden_size), device, dtype))
        if bias:
            self.bias_ih = Parameter(factory((gate_size,), device, dtype))
            self.bias_hh = Parameter(factory((gate_size,), device, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _prepare(self, input: Any, states: list[Any]) -> tuple[Any, list[Any], bool]:
        """Check shapes and dtypes; unbatched (I,) input becomes (1, I). Missing states: zeros."""
        name = type(self).__name__
        check_tensor(input, "input", name)
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        for k, state in enumerate(states):
            if state is not None:
                check_tensor(state, "hx", name)
                if state.ndim not in (1, 2):
                    which = "hidden" if len(states) == 1 else f"hx[{k}]"
                    raise ValueError(f"{name}: Expected {which} to be 1D or 2D, got "
                                     f"{state.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} "
                               f"expected {self.input_size}")
        dtype = self.weight_ih.dtype
        if input.dtype != dtype:
            raise RuntimeError(f"{name}: expected input of dtype {dtype}, got {input.dtype}")
        prepared = []
        for k, state in enumerate(states):
            if state is None:
                prepared.append(np.zeros((input.shape[0], self.hidden_size), dtype=dtype))
                continue
            if state.ndim != (2 if batched else 1):
                raise RuntimeError(f"{name}: input is {2 if batched else 1}-D but hx is "
                                   f"{state.ndim}-D")
            if not batched:
                state = state.unsqueeze(0)
            if state.shape[0] != input.shape[0]:
                raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match hidden{k} "
                                   f"batch size {state.shape[0]}")
            if state.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got "
                                   f"{state.shape[1]}, expected {self.hidden_size}")
            if state.dtype != dtype:
                raise RuntimeError(f"{name}: expected hx of dtype {dtype}, got {state.dtype}")
            prepared.append(state)
        return input, prepared, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu (one step of :class:`RNN`).

    Shape: input (N, I) or (I,), hx (N, H) or (H,) (zeros when omitted) -> h' (N, H) or (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, [hx])
        _, h_new = R.rnn_layer(x, (x.shape[0],), h, self.weight_ih, self.weight_hh,
                               self.bias_ih, self.bias_hh, self.nonlinearity)
        return h_new if batched else h_new.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: (h', c') from x and (h, c); gates (i, f, g, o) as :class:`LSTM`.

    Shape: input (N, I) or (I,), hx = (h, c) each (N, H) or (H,) (zeros when omitted).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise RuntimeError("LSTMCell: hx must be a tuple (h_0, c_0) of two tensors")
        x, (h, c), batched = self._prepare(input, [None, None] if hx is None else list(hx))
        _, h_new, c_new = R.lstm_layer(x, (x.shape[0],), h, c, self.weight_ih, self.weight_hh,
                                       self.bias_ih, self.bias_hh)
        if not batched:
            return h_new.squeeze(0), c_new.squeeze(0)
        return h_new, c_new


class GRUCell(RNNCellBase):
    """One GRU step: h' from x and h; gates (r, z, n) as :class:`GRU`.

    Shape: input (N, I) or (I,), hx (N, H) or (H,) (zeros when omitted) -> h' (N, H) or (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, [hx])
        _, h_new = R.gru_layer(x, (x.shape[0],), h, self.weight_ih, self.weight_hh,
                               self.bias_ih, self.bias_hh)
        return h_new if batched else h_new.squeeze(0)
