"""``summary(model, input_size)``: one row per layer with shapes, parameters, cost, receptive field.

One forward pass in eval mode on a zero input that requires a gradient, so that every op is
recorded in the autograd graph (parameters are set not to require one for the pass, which keeps
convolutions from saving their im2col columns). Forward hooks (``Module.register_forward_hook``)
on every leaf module record its output; afterwards ``graph_rf.propagate`` walks the recorded
graph from the outputs to the input and gives each layer's output its receptive field. Residual
additions, concatenations and other functional ops need no row of their own: they appear in the
graph, where a merge takes the widest branch (notes 000 Q3).

Counting conventions (say which when comparing figures):

* **MACs** are the multiply-accumulates of the weight products: convolutions (any groups,
  transposed, locally connected), Linear, the projections and the two matmuls of multi-head
  attention, the gate matrices of RNN/LSTM/GRU. That is what published "GMACs" / torchvision's
  ``_ops`` figures count (ResNet-18 at 224: 1.814 G; torchvision 0.28,
  ``ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]``; the "1.82 GMac" that ptflops prints adds
  batch norm, ReLU, pooling and the residual adds). One MAC per weight per output position
  (conv), per input position (transposed conv), per row (Linear); ``torch.utils.flop_counter``
  reports exactly 2 x these MACs on the same layers (tests/analysis/test_summary.py).
* **FLOPs** = 2 x MACs for those layers (a multiply and an add each; see ``formulas``), plus a
  nominal count for the others: 1 per output element for activations, 2 for normalisation layers
  (the eval-mode affine map y = a x + b), k - 1 comparisons (max) or k additions (average) per
  output for a pooling window of k elements, 0 for dropout, flatten, identity. Functional ops
  between layers (residual adds, concatenations) are not counted.
* **Activation memory** of a row is the bytes of its output tensor(s) for the whole batch: what
  the forward pass keeps if nothing is freed. Parameter memory is that of the unique parameters.
* ``count_nonzero=True`` counts the non-zero weights and the MACs with them (a pruned model:
  MACs = positions x non-zero weights, what a sparse kernel would do).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import grad_mode
from ..nn.module import Module
from ..tensor import Tensor
from . import graph_rf
from .formulas import _neat

__all__ = ["ModelSummary", "count_params", "output_shapes", "summary"]


def _tensors(value: Any) -> list[Tensor]:
    """The tensors in a (nested) output: a Tensor, tuple/list/namedtuple, dict, PackedSequence."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    data = getattr(value, "data", None)
    return [data] if isinstance(data, Tensor) else []


def _is_leaf(module: Module) -> bool:
    return not any(True for _ in module.children())


def _param_arrays(module: Module) -> list[tuple[str, Tensor]]:
    """The module's own parameters; a pruned one (name_orig + name_mask) as its masked value."""
    out = []
    for name, param in module._parameters.items():
        if param is None:
            continue
        base = name[:-5] if name.endswith("_orig") else None
        if base is not None and base + "_mask" in module._buffers:
            value = module.__dict__.get(base)
            out.append((base, value if isinstance(value, Tensor) else param))
        else:
            out.append((name, param))
    return out


def _weight_count(module: Module, names: Sequence[str], nonzero: bool) -> int:
    arrays = dict(_param_arrays(module))
    total = 0
    for name in names:
        value = arrays.get(name)
        if value is None:
            value = module.__dict__.get(name)
        if isinstance(value, Tensor):
            total += int(np.count_nonzero(value.data)) if nonzero else value.data.size
    return total


def _macs(module: Module, inputs: tuple, outputs: list[Tensor], nonzero: bool) -> int:
    """Multiply-accumulates of one call (see the module docstring)."""
    from ..nn import layers as L  # noqa: N812
    from ..nn.layers.conv import _ConvNd

    first = inputs[0] if inputs else None
    in_shape = tuple(first.shape) if isinstance(first, Tensor) else None
    if not outputs:
        return 0
    out_shape = tuple(outputs[0].shape)
    if isinstance(module, _ConvNd):
        nd = module._nd
        weights = _weight_count(module, ["weight"], nonzero)
        batch = math.prod(out_shape[:-nd - 1])          # N (1 for an unbatched input)
        if module._transposed:                          # each input position uses every weight
            return batch * math.prod(in_shape[-nd:]) * weights if in_shape else 0
        return batch * math.prod(out_shape[-nd:]) * weights
    if isinstance(module, L.LocallyConnected2d):
        return math.prod(out_shape[:-3]) * _weight_count(module, ["weight"], nonzero)
    if isinstance(module, L.Linear):
        return math.prod(out_shape[:-1]) * _weight_count(module, ["weight"], nonzero)
    if isinstance(module, L.MultiheadAttention):
        query, key = inputs[0], inputs[1] if len(inputs) > 1 else inputs[0]
        batched = query.ndim == 3
        n = (query.shape[0] if module.batch_first else query.shape[1]) if batched else 1
        tgt = query.shape[1 if module.batch_first and batched else 0]
        src = key.shape[1 if module.batch_first and batched else 0]
        e = module.embed_dim
        projections = n * (tgt * e * e + src * module.kdim * e + src * module.vdim * e
                           + tgt * e * e)                     # q, k, v and output projections
        return projections + n * 2 * tgt * src * e            # Q K^T and A V over all heads
    if isinstance(module, (L.RNN, L.LSTM, L.GRU)) or type(module).__name__.endswith("Cell"):
        names = [name for name, _ in _param_arrays(module) if name.startswith("weight_")]
        if first is None:
            return 0
        data = first if isinstance(first, Tensor) else getattr(first, "data", None)
        if not isinstance(data, Tensor):
            return 0
        rows = math.prod(data.shape[:-1])                # time steps x batch (packed: rows)
        return rows * _weight_count(module, names, nonzero)
    return 0


def _other_flops(module: Module, inputs: tuple, outputs: list[Tensor]) -> int:
    """The nominal FLOPs of layers without weight products (see the module docstring)."""
    from ..nn import layers as L  # noqa: N812
    from ..nn.layers import activation, norm

    numel = sum(t.data.size for t in outputs)
    if isinstance(module, (L.MaxPool1d, L.MaxPool2d, L.MaxPool3d)):
        return numel * (math.prod(_ntuple(module.kernel_size, outputs[0].ndim - 2)) - 1)
    if isinstance(module, (L.AvgPool1d, L.AvgPool2d, L.AvgPool3d)):
        return numel * math.prod(_ntuple(module.kernel_size, outputs[0].ndim - 2))
    name = type(module).__name__
    if name.startswith("Adaptive") and inputs and isinstance(inputs[0], Tensor):
        return inputs[0].data.size
    if type(module).__module__ == norm.__name__:
        return 2 * numel
    if type(module).__module__ == activation.__name__:
        return numel
    return 0


def _ntuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


@dataclass
class ModelSummary:
    """What :func:`summary` returns: ``rows`` (one dict per layer call), ``totals`` (a dict),
    the input description; ``str(s)`` is the aligned table, ``s.to_json()`` the data."""

    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    model: str = ""
    count_nonzero: bool = False
    conventions: dict[str, str] = field(default_factory=lambda: {
        "macs": "multiply-accumulates of weight products (conv, linear, attention, RNN gates)",
        "flops": "2 * MACs for those layers + nominal element-wise counts for the others",
        "receptive_field": "size, jump, start per spatial axis in input pixels "
                           "(first pixel centre at 0.5)",
        "activation_bytes": "bytes of each layer's output for the whole batch",
    })

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_size": list(self.input_size),
                "batch_size": self.batch_size, "dtype": self.dtype,
                "count_nonzero": self.count_nonzero, "conventions": self.conventions,
                "rows": self.rows, "totals": self.totals}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        def shape(s: Any) -> str:
            if s and isinstance(s[0], list):
                return " ".join(shape(x) for x in s)
            return "[" + ", ".join(str(v) for v in s) + "]"

        def per_axis(values: Any) -> str:
            if values is None:
                return "-"
            if len(set(values)) == 1:
                return str(values[0])
            return "x".join(str(v) for v in values)

        header = ["Layer", "Type", "Output shape", "Params", "MACs", "FLOPs", "RF", "Jump",
                  "Start", "Act. bytes"]
        table = [header]
        for row in self.rows:
            params = f"{row['params']:,}"
            if self.count_nonzero:
                params += f" ({row['nonzero_params']:,} nz)"
            table.append([row["name"] or "(model)", row["type"], shape(row["output_shape"]),
                          params, f"{row['macs']:,}", f"{row['flops']:,}",
                          per_axis(row["rf_size"]),
                          per_axis(row["rf_jump"]), per_axis(row["rf_start"]),
                          f"{row['activation_bytes']:,}"])
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        right = {3, 4, 5, 6, 7, 8, 9}

        def line(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(header))
        t = self.totals
        out = [f"{self.model or 'model'}: input {[self.batch_size, *self.input_size]} "
               f"{self.dtype}", rule, line(header), rule]
        out += [line(r) for r in table[1:]]
        out += [rule,
                f"Total params:          {t['params']:,}",
                f"Trainable params:      {t['trainable_params']:,}",
                f"Non-trainable params:  {t['non_trainable_params']:,}"]
        if self.count_nonzero:
            out.append(f"Non-zero params:       {t['nonzero_params']:,}")
        out += [f"MACs:                  {t['macs']:,} ({t['macs'] / 1e9:.3f} G)",
                f"FLOPs:                 {t['flops']:,} ({t['flops'] / 1e9:.3f} G; "
                "2 x MACs of conv/linear + element-wise)",
                f"Activation memory:     {t['activation_bytes']:,} bytes "
                f"({t['activation_bytes'] / 2**20:.2f} MiB)",
                f"Params memory:         {t['params_bytes']:,} bytes "
                f"({t['params_bytes'] / 2**20:.2f} MiB)",
                f"Input memory:          {t['input_bytes']:,} bytes", rule]
        return "\n".join(out)

    __repr__ = __str__


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, int) or not isinstance(input_size, (tuple, list)):
        raise TypeError(f"summary: input_size must be a tuple of ints like (3, 224, 224) "
                        f"(channels first, no batch dimension), got {input_size!r}")
    sizes = tuple(input_size)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                        for s in sizes):
        raise ValueError(f"summary: input_size must be positive ints like (3, 224, 224), "
                         f"got {input_size!r}")
    return tuple(int(s) for s in sizes)


def summary(model: Module, input_size: Sequence[int], *, batch_size: int = 1,
            dtype: Any = None, count_nonzero: bool = False) -> ModelSummary:
    """Run ``model`` once on zeros of shape (batch_size, *input_size) and describe every layer.

    Args:
        model: a Module (it is put in eval mode for the pass and restored afterwards).
        input_size: the input without the batch dimension, channels first: (C, H, W) for an
            image model (the spatial axes are the receptive field's axes), (C, L) for 1-D.
        batch_size: N (MACs, FLOPs and activation memory scale with it).
        dtype: the input's dtype (default: that of the model's parameters, else the default
            dtype, float32).
        count_nonzero: also count non-zero parameters, and count MACs with non-zero weights only
            (for pruned models; see ``analysis.prune``).

    Returns:
        a :class:`ModelSummary`. Each row: ``name`` (dotted module path; one row per call, a
        module called twice has two rows and its parameters on the first), ``type``,
        ``output_shape``, ``params``, ``trainable_params``, ``non_trainable_params``
        (+ ``nonzero_params``), ``macs``, ``flops``, ``rf_size``/``rf_jump``/``rf_start`` (one entry
        per spatial axis; None when the output does not depend on the input),
        ``activation_bytes``. ``totals``: ``params`` (every unique parameter of the model, used in
        the pass or not), ``trainable_params``, ``non_trainable_params``, ``macs``, ``flops``,
        ``activation_bytes``, ``params_bytes``, ``buffers_bytes``, ``input_bytes``.
    """
    from .. import backend
    from ..creation import zeros

    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a deepnotes.nn.Module, got "
                        f"{type(model).__name__}")
    sizes = _check_input_size(input_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    if dtype is None:   # the parameters' dtype (a .double() model gets float64 input)
        floats = [p.data.dtype for p in model.parameters() if p.data.dtype.kind == "f"]
        dtype = floats[0] if floats else backend.get_default_dtype()
    dtype = np.dtype(dtype)
    image = sizes[1:]

    records: list[dict[str, Any]] = []
    handles = []
    named = list(model.named_modules())
    reported = {id(m) for _, m in named if _is_leaf(m) or any(
        p is not None for p in m._parameters.values())}

    def make_hook(name: str) -> Any:
        def hook(module: Module, args: tuple, output: Any) -> None:
            outs = _tensors(output)
            records.append({"name": name, "module": module, "args": args, "outputs": outs,
                            "keys": [(t._fn, t._index) for t in outs],
                            "arrays": [t.data for t in outs]})
        return hook

    for name, module in named:
        if id(module) in reported:
            handles.append(module.register_forward_hook(make_hook(name)))

    training = {id(m): m.training for _, m in named}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    x = zeros((batch_size, *sizes), dtype=dtype)
    if dtype.kind == "f":          # recorded in the graph from the input on (token ids: not)
        x.requires_grad = True
    try:
        model.eval()
        for p in params:
            p.requires_grad = False
        with grad_mode.enable_grad():
            # a copy, so that a model may change its input in place (ReLU(inplace=True))
            output = model(x.clone())
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(params, flags):
            p.requires_grad = flag
        for _, m in named:
            m.training = training[id(m)]

    starts = [key for r in records for key in r["keys"]]
    starts += [(t._fn, t._index) for t in _tensors(output)]
    fields = graph_rf.propagate(starts, x.data, image)
    start_rf = graph_rf.input_rf(image)

    rows = []
    seen_params: set[int] = set()
    for r in records:
        module, outs = r["module"], r["outputs"]
        own = [p for p in module._parameters.values() if p is not None and id(p) not in
               seen_params]
        seen_params.update(id(p) for p in own)
        trainable = sum(p.data.size for p in own if p.requires_grad)
        n_params = sum(p.data.size for p in own)
        macs = _macs(module, r["args"], outs, count_nonzero)
        flops = 2 * macs + _other_flops(module, r["args"], outs)
        rf = None
        if r["keys"]:
            fn, index = r["keys"][0]
            if fn is None:
                rf = start_rf if r["arrays"][0] is x.data else None
            else:
                rf = fields.get((id(fn), index))
        shapes = [list(a.shape) for a in r["arrays"]]
        row = {"name": r["name"], "type": type(module).__name__,
               "output_shape": shapes[0] if len(shapes) == 1 else shapes,
               "params": n_params, "trainable_params": trainable,
               "non_trainable_params": n_params - trainable}
        if count_nonzero:
            row["nonzero_params"] = (_weight_count(module, [n for n, _ in
                                                            _param_arrays(module)], True)
                                     if own else 0)
        row.update({"macs": macs, "flops": flops,
                    "rf_size": None if rf is None else [_neat(a[0]) for a in rf],
                    "rf_jump": None if rf is None else [_neat(a[1]) for a in rf],
                    "rf_start": None if rf is None else [_neat(a[2]) for a in rf],
                    "activation_bytes": int(sum(a.nbytes for a in r["arrays"]))})
        rows.append(row)

    unique = list(model.parameters())  # parameters() already skips duplicates
    totals = {
        "params": sum(p.data.size for p in unique),
        "trainable_params": sum(p.data.size for p in unique if p.requires_grad),
        "non_trainable_params": sum(p.data.size for p in unique if not p.requires_grad),
    }
    if count_nonzero:
        totals["nonzero_params"] = sum(
            _weight_count(m, [n for n, _ in _param_arrays(m)], True) for m in model.modules())
    totals.update({
        "macs": sum(r["macs"] for r in rows),
        "flops": sum(r["flops"] for r in rows),
        "activation_bytes": sum(r["activation_bytes"] for r in rows),
        "params_bytes": sum(p.data.nbytes for p in unique),
        "buffers_bytes": sum(b.data.nbytes for b in model.buffers()),
        "input_bytes": int(x.data.nbytes),
    })
    return ModelSummary(rows=rows, totals=totals, input_size=sizes, batch_size=int(batch_size),
                        dtype=str(dtype), model=type(model).__name__,
                        count_nonzero=bool(count_nonzero))


def count_params(model: Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (each shared parameter once), as
    ``sum(p.numel() for p in model.parameters())``; only those with requires_grad if asked."""
    return sum(p.data.size for p in model.parameters() if p.requires_grad or not trainable_only)


def output_shapes(model: Module, input_size: Sequence[int], *,
                  batch_size: int = 1) -> dict[str, list[int] | list[list[int]]]:
    """``{layer name: output shape}`` from one :func:`summary` pass (the last call of a layer
    called several times)."""
    return {row["name"]: row["output_shape"]
            for row in summary(model, input_size, batch_size=batch_size).rows}
