"""Wrong calls across the public API get a clear error, and nothing is corrupted.

One table of mistakes a learner makes (shapes, hyper-parameters, dtypes, autograd misuse, files,
data loading, the command line). For each case the test checks that deepnotes

* raises the expected exception class, the one PyTorch raises for the same call (the same call is
  run in torch and its exception class compared, unless the case documents why torch differs);
* says what is wrong: the message names the offending argument and holds the expected and the
  actual value (``words``);
* raised the error on purpose: the innermost frame of the traceback is a ``raise`` statement in
  deepnotes, so no raw NumPy error (broadcasting, reshape, index) escapes from inside an op;
* changed nothing: the modules, optimisers and tensors involved have the same parameters,
  gradients, buffers (running statistics, ``num_batches_tracked``), optimiser state and versions
  as before the call.
"""

from __future__ import annotations

import copy
import json
import math
import struct
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as torch_data

import deepnotes as dn
import deepnotes.data as dn_data
from deepnotes import cli

SRC = str(Path(dn.__file__).parent)

# What torch does differently, when it does (documented per case).
TORCH_ACCEPTS = "torch accepts it"


@dataclass
class Case:
    """``setup(lib)`` (lib = deepnotes or torch) returns ``(call, watched)``: the wrong call, and
    the objects that must be unchanged after it."""

    id: str
    setup: Callable[[Any], tuple[Callable[[], Any], list]]
    error: type[BaseException]
    words: tuple[str, ...]
    torch: str | None = "same"  # "same": torch raises the same class; None: no torch twin;
    #                              otherwise a note saying how and why torch differs


def rand(lib: Any, *shape: int, dtype: Any = np.float32, grad: bool = False) -> Any:
    """The same pseudo-random values in both frameworks."""
    array = np.random.default_rng(sum(shape) + len(shape)).standard_normal(shape).astype(dtype)
    return lib.tensor(array, requires_grad=grad)


def data(lib: Any) -> Any:
    return dn_data if lib is dn else torch_data


def F(lib: Any) -> Any:  # noqa: N802 - the F namespace
    return lib.nn.functional


def call(fn: Callable[[], Any], *watched: Any) -> tuple[Callable[[], Any], list]:
    return fn, list(watched)


def trained(lib: Any, module: Any) -> Any:
    """``module`` after one SGD step with momentum, so that grads and optimiser state exist."""
    lib.manual_seed(0)
    opt = lib.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    x = rand(lib, 4, *_input_shape(module))
    out = module(x)
    (out * out).mean().backward()
    opt.step()
    return opt


def _input_shape(module: Any) -> tuple[int, ...]:
    first = next(m for m in module.modules() if hasattr(m, "weight") and m.weight is not None)
    if first.weight.ndim == 4:
        return (first.weight.shape[1] * first.groups, 8, 8)
    return (first.weight.shape[1],) if first.weight.ndim == 2 else (first.weight.shape[0], 6)


# -- cases ----------------------------------------------------------------------------------------


def conv_module_wrong_channels(lib):
    conv = lib.nn.Conv2d(3, 4, 3)
    opt = trained(lib, conv)
    return call(lambda: conv(rand(lib, 2, 5, 7, 7)), conv, opt)


def linear_module_wrong_features(lib):
    layer = lib.nn.Linear(3, 4)
    opt = trained(lib, layer)
    return call(lambda: layer(rand(lib, 2, 5)), layer, opt)


def sequential_mismatch(lib):
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(), lib.nn.Linear(5, 2))
    return call(lambda: model(rand(lib, 2, 3)), model)


def batch_norm_one_value_per_channel(lib):
    bn = lib.nn.BatchNorm2d(3)
    bn(rand(lib, 4, 3, 2, 2))  # running statistics and num_batches_tracked are not fresh
    return call(lambda: bn(rand(lib, 1, 3, 1, 1)), bn)


def batch_norm_functional_one_value(lib):
    mean, var = lib.zeros(3), lib.ones(3)
    return call(lambda: F(lib).batch_norm(rand(lib, 1, 3), mean, var, training=True), mean, var)


def batch_norm_3d_input(lib):
    bn = lib.nn.BatchNorm2d(3)
    return call(lambda: bn(rand(lib, 3, 4, 4)), bn)


def batch_norm_wrong_channels(lib):
    bn = lib.nn.BatchNorm1d(4)
    bn(rand(lib, 5, 4))
    return call(lambda: bn(rand(lib, 5, 3)), bn)


def backward_twice(lib):
    x = rand(lib, 3, grad=True)
    loss = (x.exp() * 2).sum()
    loss.backward()
    return call(lambda: loss.backward(), x)


def inplace_on_saved(lib):
    x = rand(lib, 3, grad=True)
    y = x.sigmoid()
    y.mul_(2)
    return call(lambda: y.sum().backward(), x)


def optimizer_step_before_backward(lib):
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
    opt = trained(lib, model)
    loss = model(rand(lib, 2, 3)).sum()
    opt.zero_grad()
    loss.backward(retain_graph=True)
    opt.step()
    return call(lambda: loss.backward(), opt)


def leaf_inplace(lib):
    x = rand(lib, 3, grad=True)
    return call(lambda: x.add_(1), x)


def state_dict_all_errors(lib):
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Linear(4, 2))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["0.weight"] = lib.ones(4, 3)  # valid: must not be copied when the load fails
    del state["0.bias"]
    state["extra.weight"] = lib.zeros(2)
    state["1.weight"] = lib.zeros(5, 5)
    return call(lambda: model.load_state_dict(state), model)


def state_dict_shape_not_strict(lib):
    model = lib.nn.Linear(3, 4)
    state = {"weight": lib.zeros(4, 4), "bias": lib.zeros(4)}
    return call(lambda: model.load_state_dict(state, strict=False), model)


def optimizer_state_wrong_groups(lib):
    model = lib.nn.Linear(2, 2)
    opt = trained(lib, model)
    state = copy.deepcopy(opt.state_dict())
    state["param_groups"].append(dict(state["param_groups"][0], params=[7]))
    return call(lambda: opt.load_state_dict(state), opt, model)


def checkpoint_file(kind: str) -> Callable[[Any], tuple]:
    def setup(lib):
        directory = Path(_tmp_dir())
        path = directory / f"{kind}.safetensors"
        dn.save({"weight": dn.ones(10, 10)}, path)
        raw = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(raw[:-37])
        elif kind == "not_a_checkpoint":
            path.write_text("epoch,loss\n1,0.5\n")
        elif kind == "pickle":
            torch.save({"weight": torch.ones(3)}, path)
        elif kind in ("bf16", "wrong_dtype_size"):
            length = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + length])
            header["weight"]["dtype"] = "BF16" if kind == "bf16" else "F64"
            text = json.dumps(header).encode()
            path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])
        model = dn.nn.Linear(10, 10)
        return call(lambda: model.load_state_dict(dn.load(path)), model)

    return setup


_TMP: list[str] = []


def _tmp_dir() -> str:
    return _TMP[-1]


@pytest.fixture(autouse=True)
def tmp_dir_for_cases(tmp_path):
    _TMP.append(str(tmp_path))
    yield
    _TMP.pop()


CASES = [
    # -- convolution and pooling --------------------------------------------------------------
    Case("conv2d_input_channels",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 2, 5, 7, 7), rand(lib, 4, 3, 3, 3))),
         RuntimeError, ("weight of size [4, 3, 3, 3]", "to have 3 channels", "got 5 channels")),
    Case("conv2d_grouped_input_channels",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 7, 7), rand(lib, 4, 2, 3, 3),
                                                groups=2)),
         RuntimeError, ("groups=2", "to have 4 channels", "got 3 channels")),
    Case("Conv2d_module_input_channels", conv_module_wrong_channels,
         RuntimeError, ("to have 3 channels", "got 5 channels")),
    Case("conv2d_kernel_larger_than_input",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 2, 2), rand(lib, 4, 3, 3, 3))),
         RuntimeError, ("padded input size per channel: (2 x 2)", "Kernel size: (3 x 3)")),
    Case("conv2d_kernel_larger_than_padded_input",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 1, 1), rand(lib, 4, 3, 5, 5),
                                                padding=1)),
         RuntimeError, ("(3 x 3)", "(5 x 5)", "Kernel size can't be greater")),
    Case("conv2d_stride_zero",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 5, 5), rand(lib, 4, 3, 3, 3),
                                                stride=0)),
         RuntimeError, ("non-positive stride", "stride=[0, 0]")),
    Case("conv2d_stride_negative",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 5, 5), rand(lib, 4, 3, 3, 3),
                                                stride=(-1, 1))),
         RuntimeError, ("non-positive stride", "stride=[-1, 1]")),
    Case("conv2d_padding_negative",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 5, 5), rand(lib, 4, 3, 3, 3),
                                                padding=-1)),
         RuntimeError, ("negative padding", "padding=[-1, -1]")),
    Case("conv2d_weight_not_divisible_by_groups",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 4, 7, 7), rand(lib, 3, 2, 3, 3),
                                                groups=2)),
         RuntimeError, ("groups=2", "divisible by 2", "[3, 2, 3, 3]")),
    Case("Conv2d_groups_not_dividing_in_channels",
         lambda lib: call(lambda: lib.nn.Conv2d(3, 4, 3, groups=2)),
         ValueError, ("in_channels must be divisible by groups", "in_channels=3", "groups=2")),
    Case("Conv2d_groups_not_dividing_out_channels",
         lambda lib: call(lambda: lib.nn.Conv2d(4, 3, 3, groups=2)),
         ValueError, ("out_channels must be divisible by groups", "out_channels=3", "groups=2")),
    Case("Conv2d_stride_zero",
         lambda lib: call(lambda: lib.nn.Conv2d(3, 4, 3, stride=0)),
         ValueError, ("stride", "positive", "stride=0"),
         torch="torch builds the layer and raises RuntimeError only in forward"),
    Case("Conv2d_negative_in_channels",
         lambda lib: call(lambda: lib.nn.Conv2d(-3, 4, 3)),
         ValueError, ("in_channels", "positive", "in_channels=-3"),
         torch="torch fails later, creating the weight: RuntimeError 'negative dimension'"),
    Case("conv2d_2d_input",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 5, 5), rand(lib, 4, 3, 3, 3))),
         RuntimeError, ("3D (unbatched) or 4D (batched) input", "[5, 5]")),
    Case("conv2d_5d_input",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 1, 3, 5, 5),
                                                rand(lib, 4, 3, 3, 3))),
         RuntimeError, ("3D (unbatched) or 4D (batched) input", "[1, 1, 3, 5, 5]")),
    Case("conv2d_bias_size",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 5, 5), rand(lib, 4, 3, 3, 3),
                                                rand(lib, 3))),
         RuntimeError, ("bias", "4 elements", "bias of size [3]")),
    Case("conv2d_dtype_mismatch",
         lambda lib: call(lambda: F(lib).conv2d(rand(lib, 1, 3, 5, 5),
                                                rand(lib, 4, 3, 3, 3, dtype=np.float64))),
         RuntimeError, ("Input type (float32)", "weight type (float64)")),
    Case("max_pool2d_padding_over_half_kernel",
         lambda lib: call(lambda: F(lib).max_pool2d(rand(lib, 1, 1, 5, 5), 3, padding=2)),
         RuntimeError, ("pad should be at most half", "pad=2", "kernel_size=3")),
    Case("avg_pool2d_padding_over_half_kernel",
         lambda lib: call(lambda: F(lib).avg_pool2d(rand(lib, 1, 1, 5, 5), 3, padding=2)),
         RuntimeError, ("pad should be at most half", "pad=2", "kernel_size=3")),
    Case("max_pool2d_stride_zero",
         lambda lib: call(lambda: F(lib).max_pool2d(rand(lib, 1, 1, 5, 5), 3, stride=0)),
         RuntimeError, ("stride should be greater than zero", "dH: 0")),
    Case("avg_pool2d_stride_negative",
         lambda lib: call(lambda: F(lib).avg_pool2d(rand(lib, 1, 1, 5, 5), 2, stride=-1)),
         RuntimeError, ("stride should be greater than zero", "dH: -1")),
    Case("max_pool2d_output_too_small",
         lambda lib: call(lambda: F(lib).max_pool2d(rand(lib, 1, 1, 3, 3), 5)),
         RuntimeError, ("Given input size: (1x3x3)", "Calculated output size: (1x0x0)")),
    Case("max_pool2d_2d_input",
         lambda lib: call(lambda: F(lib).max_pool2d(rand(lib, 4, 4), 2)),
         RuntimeError, ("3D or 4D", "[4, 4]")),
    Case("MaxPool2d_kernel_zero",
         lambda lib: call(lambda: lib.nn.MaxPool2d(0)),
         ValueError, ("kernel_size", "positive", "kernel_size=0"),
         torch="torch builds the layer and raises RuntimeError only in forward"),
    Case("adaptive_avg_pool2d_negative_size",
         lambda lib: call(lambda: F(lib).adaptive_avg_pool2d(rand(lib, 1, 1, 5, 5), -1)),
         RuntimeError, ("output_size", "greater than or equal to 0", "{-1, -1}")),
    # -- linear algebra -----------------------------------------------------------------------
    Case("linear_in_features",
         lambda lib: call(lambda: F(lib).linear(rand(lib, 2, 5), rand(lib, 4, 3))),
         RuntimeError, ("(2x5 and 3x4)", "in_features=3", "(2, 5)"),),
    Case("Linear_module_in_features", linear_module_wrong_features,
         RuntimeError, ("(2x5 and 3x4)", "in_features=3")),
    Case("Sequential_layer_mismatch", sequential_mismatch,
         RuntimeError, ("(2x4 and 5x2)", "in_features=5", "(2, 4)")),
    Case("linear_bias_shape",
         lambda lib: call(lambda: F(lib).linear(rand(lib, 2, 3), rand(lib, 4, 3), rand(lib, 5))),
         RuntimeError, ("bias of shape (5,)", "output shape (2, 4)", "(out_features,) = (4,)")),
    Case("Linear_negative_features",
         lambda lib: call(lambda: lib.nn.Linear(-1, 4)),
         ValueError, ("in_features", "positive", "in_features=-1"),
         torch="torch fails later, creating the weight: RuntimeError 'negative dimension'"),
    Case("matmul_inner_dimensions",
         lambda lib: call(lambda: rand(lib, 2, 3) @ rand(lib, 4, 5)),
         RuntimeError, ("(2x3 and 4x5)",)),
    Case("matmul_batch_dimensions",
         lambda lib: call(lambda: rand(lib, 2, 2, 3) @ rand(lib, 3, 3, 5)),
         RuntimeError, ("(2,)", "(3,)", "batch dimensions")),
    Case("matmul_vector_lengths",
         lambda lib: call(lambda: lib.matmul(rand(lib, 3), rand(lib, 4))),
         RuntimeError, ("1x3", "4x1")),
    # -- dropout ------------------------------------------------------------------------------
    Case("dropout_p_negative",
         lambda lib: call(lambda: F(lib).dropout(rand(lib, 3), -0.1)),
         ValueError, ("dropout probability", "between 0 and 1", "-0.1")),
    Case("dropout_p_above_one",
         lambda lib: call(lambda: F(lib).dropout(rand(lib, 3), 1.5)),
         ValueError, ("dropout probability", "between 0 and 1", "1.5")),
    Case("dropout_p_nan",
         lambda lib: call(lambda: F(lib).dropout(rand(lib, 3), math.nan)),
         RuntimeError, ("dropout probability", "between 0 and 1", "nan")),
    Case("Dropout_module_p_above_one",
         lambda lib: call(lambda: lib.nn.Dropout(p=1.5)),
         ValueError, ("dropout probability", "between 0 and 1", "1.5")),
    # -- optimisers ---------------------------------------------------------------------------
    Case("SGD_lr_negative",
         lambda lib: call(lambda: lib.optim.SGD([rand(lib, 3, grad=True)], lr=-0.1)),
         ValueError, ("learning rate", "-0.1", ">= 0")),
    Case("SGD_lr_nan",
         lambda lib: call(lambda: lib.optim.SGD([rand(lib, 3, grad=True)], lr=math.nan)),
         ValueError, ("learning rate", "nan", ">= 0"),
         torch=TORCH_ACCEPTS + " for SGD (its Adam rejects nan); deepnotes rejects it everywhere"),
    Case("Adam_lr_nan",
         lambda lib: call(lambda: lib.optim.Adam([rand(lib, 3, grad=True)], lr=math.nan)),
         ValueError, ("learning rate", "nan", ">= 0")),
    Case("Adam_beta1_one",
         lambda lib: call(lambda: lib.optim.Adam([rand(lib, 3, grad=True)], betas=(1.0, 0.9))),
         ValueError, ("beta parameter at index 0", "1.0", "[0, 1)")),
    Case("AdamW_beta2_negative",
         lambda lib: call(lambda: lib.optim.AdamW([rand(lib, 3, grad=True)],
                                                  betas=(0.9, -0.1))),
         ValueError, ("beta parameter at index 1", "-0.1", "[0, 1)")),
    Case("Adam_eps_negative",
         lambda lib: call(lambda: lib.optim.Adam([rand(lib, 3, grad=True)], eps=-1e-8)),
         ValueError, ("epsilon", "-1e-08", ">= 0")),
    Case("SGD_nesterov_with_dampening",
         lambda lib: call(lambda: lib.optim.SGD([rand(lib, 3, grad=True)], lr=0.1, momentum=0.9,
                                                dampening=0.1, nesterov=True)),
         ValueError, ("Nesterov", "zero dampening", "dampening=0.1")),
    Case("SGD_nesterov_without_momentum",
         lambda lib: call(lambda: lib.optim.SGD([rand(lib, 3, grad=True)], lr=0.1,
                                                nesterov=True)),
         ValueError, ("Nesterov", "momentum > 0", "momentum=0")),
    Case("SGD_momentum_negative",
         lambda lib: call(lambda: lib.optim.SGD([rand(lib, 3, grad=True)], lr=0.1,
                                                momentum=-0.5)),
         ValueError, ("momentum", "-0.5", ">= 0")),
    Case("optimizer_state_dict_group_count", optimizer_state_wrong_groups,
         ValueError, ("number of parameter groups", "2 in the state dict", "1 in the optimizer")),
    # -- autograd -----------------------------------------------------------------------------
    Case("integer_tensor_requires_grad",
         lambda lib: call(lambda: lib.tensor([1, 2, 3], requires_grad=True)),
         RuntimeError, ("floating point", "int64")),
    Case("integer_tensor_requires_grad_",
         lambda lib: call(lambda: lib.zeros(3, dtype=lib.int64).requires_grad_()),
         RuntimeError, ("floating point", "int64")),
    Case("backward_non_scalar",
         lambda lib: call(lambda: (rand(lib, 2, 3, grad=True) * 2).backward()),
         RuntimeError, ("scalar outputs", "1 element", "(2, 3)", "6 elements")),
    Case("backward_twice", backward_twice,
         RuntimeError, ("backward through the graph a second time", "retain_graph=True")),
    Case("inplace_change_of_saved_tensor", inplace_on_saved,
         RuntimeError, ("modified by an inplace operation", "output 0 of SigmoidFn",
                        "at version 1; expected version 0")),
    Case("optimizer_step_before_backward", optimizer_step_before_backward,
         RuntimeError, ("modified by an inplace operation", "[torch.FloatTensor [2, 4]]",
                        "is at version", "expected version")),
    Case("backward_gradient_shape",
         lambda lib: call(lambda: (rand(lib, 3, grad=True) * 2).backward(rand(lib, 2))),
         RuntimeError, ("grad_output[0] has a shape of", "(2,)", "(3,)")),
    Case("inplace_on_leaf_requiring_grad", leaf_inplace,
         RuntimeError, ("leaf Variable that requires grad", "in-place operation")),
    Case("add_shapes_not_broadcastable",
         lambda lib: call(lambda: rand(lib, 2, 3, grad=True) + rand(lib, 2, 4)),
         RuntimeError, ("size of tensor a (3)", "size of tensor b (4)", "dimension 1")),
    Case("where_shapes_not_broadcastable",
         lambda lib: call(lambda: lib.where(rand(lib, 3) > 0, rand(lib, 3), rand(lib, 4))),
         RuntimeError, ("size of tensor a (3)", "size of tensor b (4)", "dimension 0")),
    Case("reshape_wrong_size",
         lambda lib: call(lambda: rand(lib, 2, 3).reshape(4, 4)),
         RuntimeError, ("shape '[4, 4]'", "size 6")),
    Case("cat_sizes",
         lambda lib: call(lambda: lib.cat([rand(lib, 2, 3), rand(lib, 3, 4)], dim=1)),
         RuntimeError, ("Expected size 2", "got size 3", "dimension 1")),
    Case("dim_out_of_range",
         lambda lib: call(lambda: rand(lib, 2, 3).sum(2)),
         IndexError, ("range of [-2, 1]", "got 2")),
    Case("index_out_of_range",
         lambda lib: call(lambda: rand(lib, 3, 2)[:, 4]),
         IndexError, ("index 4", "dimension 1", "size 2")),
    Case("ragged_nested_list",
         lambda lib: call(lambda: lib.tensor([[1.0, 2.0], [3.0]])),
         ValueError, ("sequence of length 2", "dim 1", "got 1")),
    # -- losses -------------------------------------------------------------------------------
    Case("cross_entropy_target_out_of_range",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3),
                                                       lib.tensor([0, 1, 5, 2]))),
         IndexError, ("Target 5 is out of bounds", "[0, 3)")),
    Case("cross_entropy_negative_target",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3),
                                                       lib.tensor([0, 1, -2, 2]))),
         IndexError, ("Target -2 is out of bounds", "[0, 3)", "ignore_index=-100")),
    Case("CrossEntropyLoss_target_out_of_range",
         lambda lib: call(lambda: lib.nn.CrossEntropyLoss()(rand(lib, 4, 3),
                                                            lib.tensor([0, 1, 2, 3]))),
         IndexError, ("Target 3 is out of bounds", "[0, 3)")),
    Case("cross_entropy_float_class_targets",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3),
                                                       lib.tensor([0.0, 1.0, 1.0, 2.0]))),
         RuntimeError, ("target dtype", "Long", "Float")),
    Case("cross_entropy_batch_sizes",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3), lib.tensor([0, 1, 1]))),
         ValueError, ("input batch_size (4)", "target batch_size (3)")),
    Case("cross_entropy_reduction",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3), lib.tensor([0, 1, 1, 0]),
                                                       reduction="avg")),
         ValueError, ("avg is not a valid value for reduction", "'mean'")),
    Case("cross_entropy_class_weight_size",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 4, 3), lib.tensor([0, 1, 1, 0]),
                                                       weight=rand(lib, 4))),
         RuntimeError, ("all 3 classes", "shape: [4]")),
    Case("cross_entropy_spatial_target_size",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 2, 3, 4),
                                                       lib.zeros(2, 5, dtype=lib.int64))),
         RuntimeError, ("Expected target size [2, 4]", "got [2, 5]")),
    Case("nll_loss_target_out_of_range",
         lambda lib: call(lambda: F(lib).nll_loss(rand(lib, 4, 3), lib.tensor([0, 1, 3, 2]))),
         IndexError, ("Target 3 is out of bounds", "[0, 3)")),
    Case("mse_loss_shapes",
         lambda lib: call(lambda: F(lib).mse_loss(rand(lib, 2, 3), rand(lib, 2, 4))),
         RuntimeError, ("(2, 3)", "(2, 4)")),
    Case("binary_cross_entropy_target_size",
         lambda lib: call(lambda: F(lib).binary_cross_entropy(rand(lib, 2, 3).sigmoid(),
                                                              rand(lib, 3).sigmoid())),
         ValueError, ("target size", "(3,)", "(2, 3)")),
    Case("binary_cross_entropy_input_range",
         lambda lib: call(lambda: F(lib).binary_cross_entropy(lib.tensor([0.5, 5.0]),
                                                              lib.tensor([1.0, 0.0]))),
         RuntimeError, ("between 0 and 1", "5.0")),
    Case("label_smoothing_above_one",
         lambda lib: call(lambda: F(lib).cross_entropy(rand(lib, 2, 3), lib.tensor([0, 1]),
                                                       label_smoothing=1.5)),
         RuntimeError, ("label_smoothing", "between 0.0 and 1.0", "1.5")),
    # -- normalisation and empty batches ------------------------------------------------------
    Case("BatchNorm2d_one_value_per_channel", batch_norm_one_value_per_channel,
         ValueError, ("more than 1 value per channel", "(1, 3, 1, 1)")),
    Case("batch_norm_one_value_per_channel", batch_norm_functional_one_value,
         ValueError, ("more than 1 value per channel", "(1, 3)")),
    Case("BatchNorm2d_3d_input", batch_norm_3d_input,
         ValueError, ("expected 4D input", "got 3D input")),
    Case("BatchNorm1d_channels", batch_norm_wrong_channels,
         RuntimeError, ("running_mean", "3 elements", "not 4")),
    Case("layer_norm_shape",
         lambda lib: call(lambda: F(lib).layer_norm(rand(lib, 2, 5), (4,))),
         RuntimeError, ("normalized_shape=[4]", "[*, 4]", "[2, 5]")),
    Case("max_of_an_empty_batch",
         lambda lib: call(lambda: rand(lib, 0, 3).max()),
         RuntimeError, ("numel() == 0", "'dim'")),
    Case("max_pool2d_empty_width",
         lambda lib: call(lambda: F(lib).max_pool2d(rand(lib, 1, 1, 4, 0), 2)),
         RuntimeError, ("3D or 4D", "[1, 1, 4, 0]")),
    Case("cat_of_nothing",
         lambda lib: call(lambda: lib.cat([])),
         ValueError, ("cat()", "non-empty list")),
    Case("DataLoader_empty_dataset_shuffled",
         lambda lib: call(lambda: data(lib).DataLoader(data(lib).TensorDataset(rand(lib, 0, 2)),
                                                       shuffle=True)),
         ValueError, ("num_samples", "positive integer", "num_samples=0")),
    # -- state dicts and checkpoint files -----------------------------------------------------
    Case("load_state_dict_all_errors_at_once", state_dict_all_errors,
         RuntimeError, ('Missing key(s) in state_dict: "0.bias"',
                        'Unexpected key(s) in state_dict: "extra.weight"',
                        "size mismatch for 1.weight", "(5, 5)", "(2, 4)")),
    Case("load_state_dict_shape_not_strict", state_dict_shape_not_strict,
         RuntimeError, ("size mismatch for weight", "(4, 4)", "(4, 3)")),
    Case("checkpoint_truncated", checkpoint_file("truncated"),
         dn.io.CheckpointError, ("truncated", "[0, 400)", "363 bytes"), torch=None),
    Case("checkpoint_not_a_checkpoint", checkpoint_file("not_a_checkpoint"),
         dn.io.CheckpointError, ("not a valid safetensors checkpoint", "header length"),
         torch=None),
    Case("checkpoint_pickle_from_torch_save", checkpoint_file("pickle"),
         dn.io.CheckpointError, ("zip archive", "never unpickles"), torch=None),
    Case("checkpoint_unsupported_dtype", checkpoint_file("bf16"),
         dn.io.CheckpointError, ("dtype 'BF16'", "expected one of", "F32"), torch=None),
    Case("checkpoint_dtype_size_mismatch", checkpoint_file("wrong_dtype_size"),
         dn.io.CheckpointError, ("dtype F64", "needs 800 bytes", "span 400 bytes"), torch=None),
    # -- data, models ---------------------------------------------------------------------------
    Case("DataLoader_batch_size_zero",
         lambda lib: call(lambda: data(lib).DataLoader(data(lib).TensorDataset(rand(lib, 4, 2)),
                                                       batch_size=0)),
         ValueError, ("batch_size should be a positive integer", "batch_size=0")),
    Case("DataLoader_batch_size_negative",
         lambda lib: call(lambda: data(lib).DataLoader(data(lib).TensorDataset(rand(lib, 4, 2)),
                                                       batch_size=-3)),
         ValueError, ("batch_size should be a positive integer", "batch_size=-3")),
    Case("DataLoader_num_workers_negative",
         lambda lib: call(lambda: data(lib).DataLoader(data(lib).TensorDataset(rand(lib, 4, 2)),
                                                       num_workers=-1)),
         ValueError, ("num_workers", "non-negative", "num_workers=-1")),
    Case("TensorDataset_sizes",
         lambda lib: call(lambda: data(lib).TensorDataset(rand(lib, 4, 2), rand(lib, 3))),
         AssertionError, ("Size mismatch between tensors", "[4, 3]")),
    Case("TensorDataset_index",
         lambda lib: call(lambda: data(lib).TensorDataset(rand(lib, 4, 2))[7]),
         IndexError, ("index 7", "dimension 0", "size 4")),
    Case("get_model_unknown_name",
         lambda lib: call(lambda: dn.models.get_model("resnet_999")),
         ValueError, ("'resnet_999'", "digits_cnn", "lenet5", "mlp"), torch=None),
]


def test_the_table_has_at_least_40_distinct_cases():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


# -- the checks -----------------------------------------------------------------------------------


def snapshot(obj: Any) -> Any:
    """Everything about ``obj`` that a failed call must not change, as comparable values."""
    if isinstance(obj, dn.nn.Module):
        state = {k: (v.data.copy(), v._version) for k, v in obj.state_dict().items()}
        grads = {k: None if p.grad is None else p.grad.data.copy()
                 for k, p in obj.named_parameters()}
        return ("module", state, grads, obj.training)
    if isinstance(obj, dn.optim.Optimizer):
        state = obj.state_dict()
        arrays = {(i, k): (v.data.copy() if isinstance(v, dn.Tensor) else copy.deepcopy(v))
                  for i, entry in state["state"].items() for k, v in entry.items()}
        groups = [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]
        params = [p.data.copy() for g in obj.param_groups for p in g["params"]]
        return ("optimizer", arrays, groups, params)
    if isinstance(obj, dn.Tensor):
        grad = None if obj.grad is None else obj.grad.data.copy()
        return ("tensor", obj.data.copy(), grad, obj._version, obj.requires_grad, obj.grad_fn)
    raise TypeError(f"cannot snapshot {type(obj).__name__}")


def assert_same(before: Any, after: Any, where: str = "") -> None:
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray) and before.shape == after.shape, where
        assert np.array_equal(before, after, equal_nan=before.dtype.kind == "f"), where
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for key in before:
            assert_same(before[key], after[key], f"{where}/{key}")
    elif isinstance(before, tuple | list):
        assert len(before) == len(after), where
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
    else:
        assert before is after or before == after, f"{where}: {before!r} -> {after!r}"


def raised_on_purpose(error: BaseException) -> bool:
    """The innermost frame is a ``raise`` statement in deepnotes' own source."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return frame.filename.startswith(SRC) and (frame.line or "").lstrip().startswith("raise")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wrong_call_raises_a_clear_error_and_changes_nothing(case: Case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        action, watched = case.setup(dn)
        before = [snapshot(obj) for obj in watched]
        with pytest.raises(case.error) as caught:
            action()
    message = str(caught.value)
    missing = [w for w in case.words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"
    assert raised_on_purpose(caught.value), (
        f"not raised by a deepnotes check: {traceback.format_exception(caught.value)[-2:]}")
    for obj, old in zip(watched, before):
        assert_same(old, snapshot(obj), f"{case.id}: {type(obj).__name__} changed")
    if case.torch == "same":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch_action, _ = case.setup(torch)
            with pytest.raises(Exception) as theirs:
                torch_action()
        assert isinstance(theirs.value, case.error), (
            f"torch raises {type(theirs.value).__name__}: {theirs.value}")


DOCUMENTED = [c for c in CASES if c.torch not in ("same", None)]


@pytest.mark.parametrize("case", DOCUMENTED, ids=[c.id for c in DOCUMENTED])
def test_documented_differences_from_torch_are_real(case: Case):
    """Where a case says torch behaves differently, check that torch indeed does not raise the
    same error at the same call (so the note cannot go stale)."""
    torch_action, _ = case.setup(torch)
    try:
        torch_action()
    except Exception as error:  # noqa: BLE001 - any other class is the documented difference
        assert not isinstance(error, case.error), "torch now raises the same class: use 'same'"


# -- the command line -----------------------------------------------------------------------------

CLI_CASES = {
    "epochs_zero": (["--epochs", "0"], ("--epochs", "positive integer", "got 0")),
    "batch_size_zero": (["--batch-size", "0"], ("--batch-size", "positive integer", "got 0")),
    "lr_negative": (["--lr", "-1"], ("--lr", "positive", "got -1.0")),
    "lr_nan": (["--lr", "nan"], ("--lr", "finite", "got nan")),
    "momentum_negative": (["--momentum", "-0.5"], ("--momentum", ">= 0", "got -0.5")),
    "grad_clip_zero": (["--grad-clip", "0"], ("--grad-clip", "positive", "got 0.0")),
    "threads_text": (["--threads", "many"], ("--threads", "positive integer", "'many'")),
    "unknown_model": (["--model", "resnet_999"], ("--model", "'resnet_999'", "digits_cnn")),
    "unknown_optimizer": (["--optimizer", "adamax_9"], ("--optimizer", "'adamax_9'", "sgd")),
}


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_flag_out_of_range_is_a_usage_error(name, capsys, tmp_path):
    argv, words = CLI_CASES[name]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    missing = [w for w in words if w not in err]
    assert not missing, f"usage error lacks {missing}: {err!r}"
    assert not list(tmp_path.iterdir())  # nothing was written


# -- what must NOT be an error --------------------------------------------------------------------


def test_limits_that_are_allowed_as_in_torch():
    x = dn.ones(2, 3)
    assert dn.nn.functional.dropout(x, 1.0).tolist() == [[0.0] * 3] * 2  # p = 1 allowed
    assert dn.nn.functional.dropout(x, 0.0) is x
    bn = dn.nn.BatchNorm2d(3)
    out = bn(dn.ones(0, 3, 4, 4))  # an empty batch: empty output, statistics untouched
    assert out.shape == (0, 3, 4, 4) and bn.running_mean.tolist() == [0.0] * 3
    assert dn.nn.functional.conv2d(dn.ones(1, 3, 3, 3), dn.ones(2, 3, 3, 3)).shape == (1, 2, 1, 1)
    assert dn.nn.functional.max_pool2d(dn.ones(1, 1, 5, 5), 3, padding=1).shape == (1, 1, 2, 2)
    assert dn.optim.SGD([dn.ones(1, requires_grad=True)], lr=0.0).param_groups[0]["lr"] == 0.0
