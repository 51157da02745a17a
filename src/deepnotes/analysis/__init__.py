"""Analysis tools: the notes' formulas (output sizes, receptive fields, parameters, MACs/FLOPs),
``summary`` (per-layer table along the recorded graph), ``convert_fc_to_conv`` (fully
convolutional networks), magnitude pruning (``prune``; the ``torch.nn.utils.prune``-like
functions in ``pruning``) and numerical gradient checks (``gradcheck``)."""

from . import pruning
from .convert import convert_fc_to_conv
from .formulas import (
    ReceptiveField,
    conv_flops,
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    depthwise_separable_macs,
    depthwise_separable_params,
    linear_macs,
    linear_params,
    receptive_field,
    separable_cost_ratio,
)
from .gradcheck import gradcheck
from .pruning import (
    PruneReport,
    custom_from_mask,
    global_unstructured,
    is_pruned,
    l1_unstructured,
    ln_structured,
    prune,
    random_unstructured,
)
from .summary import ModelSummary, count_params, output_shapes, summary

__all__ = [
    "ModelSummary",
    "PruneReport",
    "ReceptiveField",
    "conv_flops",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "conv_transpose_output_size",
    "count_params",
    "convert_fc_to_conv",
    "custom_from_mask",
    "depthwise_separable_macs",
    "depthwise_separable_params",
    "global_unstructured",
    "gradcheck",
    "is_pruned",
    "l1_unstructured",
    "linear_macs",
    "linear_params",
    "ln_structured",
    "output_shapes",
    "prune",
    "random_unstructured",
    "pruning",
    "receptive_field",
    "separable_cost_ratio",
    "summary",
]
