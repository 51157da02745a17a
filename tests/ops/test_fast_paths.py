"""The hot-path variants of issue 7 against PyTorch: columns rebuilt in backward, dx of a stride-1
convolution as a convolution (when that is the smaller GEMM) or by col2im, and float32 staying
float32 through a training step."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes as dn
import deepnotes.nn.functional as F
from deepnotes.ops import conv as conv_ops
from tests.helpers import check_against_torch

# (op, torch name, x shape, w shape, kwargs): stride 1 with dx by convolution (C_out <= C_in with
# 'same' padding) or by col2im (more output channels, or no padding), and strided (col2im)
CASES = [
    (F.conv2d, "conv2d", (2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1)),
    (F.conv2d, "conv2d", (2, 4, 7, 6), (4, 4, 3, 3), dict(padding=1)),
    (F.conv2d, "conv2d", (2, 2, 9, 8), (5, 2, 3, 3), {}),
    (F.conv2d, "conv2d", (2, 3, 9, 8), (4, 3, 3, 2), dict(padding=(2, 0), dilation=(2, 1))),
    (F.conv2d, "conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dict(stride=2, padding=1)),
    (F.conv2d, "conv2d", (2, 4, 6, 6), (4, 2, 3, 3), dict(padding=1, groups=2)),
    (F.conv2d, "conv2d", (2, 6, 5, 5), (3, 6, 1, 1), {}),
    (F.conv2d, "conv2d", (3, 7, 7), (4, 3, 3, 3), dict(padding=1)),          # unbatched
    (F.conv1d, "conv1d", (2, 3, 11), (4, 3, 4), dict(padding="same", dilation=2)),
    (F.conv3d, "conv3d", (1, 2, 5, 5, 4), (3, 2, 3, 3, 2), dict(padding=(1, 1, 0))),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("keep_bytes, chunk_bytes", [(0, 1), (0, 2**30), (2**30, 2**30)],
                         ids=["one-sample-chunks", "one-chunk-rebuilt", "kept"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_paths_match_torch(case, keep_bytes, chunk_bytes, rng, monkeypatch):
    monkeypatch.setattr(conv_ops, "COLUMNS_KEPT_BYTES", keep_bytes)
    monkeypatch.setattr(conv_ops, "COLUMNS_CHUNK_BYTES", chunk_bytes)
    op, name, x_shape, w_shape, kw = CASES[case]
    inputs = (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
              rng.standard_normal(w_shape[0]))
    check_against_torch(op, name, inputs, **kw)


@pytest.mark.parametrize("n, bytes_per_sample, keep, chunk, expected", [
    (5, 10, 50, 20, [(0, 5)]),                             # fits: one chunk, columns kept
    (5, 10, 49, 20, [(0, 2), (2, 4), (4, 5)]),             # two samples per chunk, the last short
    (3, 100, 0, 20, [(0, 1), (1, 2), (2, 3)]),             # a sample above the chunk size: one each
    (0, 10, 0, 20, [(0, 0)]),                              # an empty batch is one empty chunk
])
def test_batch_chunks(n, bytes_per_sample, keep, chunk, expected, monkeypatch):
    monkeypatch.setattr(conv_ops, "COLUMNS_KEPT_BYTES", keep)
    monkeypatch.setattr(conv_ops, "COLUMNS_CHUNK_BYTES", chunk)
    assert conv_ops.batch_chunks(n, bytes_per_sample) == expected


@settings(deadline=None)
@given(n=st.integers(1, 5), c_in=st.integers(1, 4), c_out=st.integers(1, 4),
       groups=st.sampled_from([1, 2]), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 2), size=st.integers(3, 7), samples_per_chunk=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 99))
def test_chunked_conv_matches_torch(n, c_in, c_out, groups, k, stride, padding, size,
                                    samples_per_chunk, bias, seed):
    """Chunks of any size (the last one shorter), on 2 threads: forward and grads equal torch's."""
    rng = np.random.default_rng(seed)
    c_in, c_out = c_in * groups, c_out * groups
    inputs = [rng.standard_normal((n, c_in, size, size + 1)),
              rng.standard_normal((c_out, c_in // groups, k, k))]
    if bias:
        inputs.append(rng.standard_normal(c_out))
    per_sample = 8 * c_in * k * k * math.prod(
        (m + 2 * padding - k) // stride + 1 for m in (size, size + 1))
    previous = dn.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_ops, "COLUMNS_KEPT_BYTES", 0)
        patch.setattr(conv_ops, "COLUMNS_CHUNK_BYTES", per_sample * samples_per_chunk)
        patch.setattr(dn.threads, "PARALLEL_CHUNKS", True)
        dn.set_num_threads(2)
        try:
            check_against_torch(F.conv2d, "conv2d", tuple(inputs), stride=stride,
                                padding=padding, groups=groups)
        finally:
            dn.set_num_threads(previous)


def test_chunked_conv_does_not_depend_on_the_thread_count(rng, monkeypatch):
    monkeypatch.setattr(conv_ops, "COLUMNS_KEPT_BYTES", 0)
    monkeypatch.setattr(conv_ops, "COLUMNS_CHUNK_BYTES", 1)
    monkeypatch.setattr(dn.threads, "PARALLEL_CHUNKS", True)
    x = rng.standard_normal((6, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    previous = dn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            dn.set_num_threads(threads)
            xt, wt = dn.tensor(x, requires_grad=True), dn.tensor(w, requires_grad=True)
            y = F.conv2d(xt, wt, padding=1)
            (y * y).sum().backward()
            results.append((y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    finally:
        dn.set_num_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)                  # bit for bit


# (x shape, w shape, kwargs, dx by convolution?): the columns of g (C_out*k*k, N*L_in) against
# col2im's (C_in*k*k, N*L_out)
PATHS = [
    ((2, 4, 6, 6), (4, 4, 3, 3), dict(padding=1), True),        # equal: ResNet's 3x3 layers
    ((2, 6, 5, 5), (3, 6, 1, 1), {}, True),                      # fewer output channels
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(padding=1), False),       # more output channels
    ((2, 6, 12, 12), (16, 6, 5, 5), {}, False),                  # LeNet-5's conv2: 6x larger
    ((2, 4, 8, 8), (4, 4, 3, 3), dict(stride=2, padding=1), False),  # strided: col2im only
]


@pytest.mark.parametrize("case", PATHS)
def test_dx_path_choice(case, rng):
    x_shape, w_shape, kw, by_convolution = case
    x = dn.tensor(rng.standard_normal(x_shape), requires_grad=True)
    y = F.conv2d(x, dn.tensor(rng.standard_normal(w_shape), requires_grad=True), **kw)
    assert y._fn._dx_by_convolution(w_shape[0]) is by_convolution


def test_stride_one_path_matches_col2im(rng):
    x = dn.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = dn.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    node = y._fn
    assert node._stride_one()
    g = rng.standard_normal(y.shape)
    by_conv = node._grad_input_by_convolution(g, node._flipped_rows(w.data.reshape(4, -1)))
    cols = w.data.reshape(4, -1).T @ g.transpose(1, 0, 2, 3).reshape(4, -1)
    by_col2im = conv_ops.col2im(cols, x.shape, (3, 3), 1, ((1, 1), (1, 1)))
    np.testing.assert_allclose(by_conv, by_col2im, atol=1e-12)


def _float32_step_grads():
    rng = np.random.default_rng(0)
    x = dn.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), requires_grad=True)
    conv = dn.nn.Conv2d(3, 4, 3, padding=1)
    bn, fc = dn.nn.BatchNorm2d(4), dn.nn.Linear(4 * 4 * 4, 5)
    h = F.max_pool2d(F.relu(bn(conv(x))), 2)                     # (4, 4, 4, 4)
    h = F.layer_norm(h * 0.5 + 1, (4, 4)) - 2.0 / 3.0            # Python scalars
    logits = fc(h.flatten(1))
    loss = F.cross_entropy(logits, dn.tensor(np.array([0, 1, 2, 3]))) + logits.mean() ** 2
    outputs = [h, logits, loss, F.softmax(logits, 1), logits.sigmoid(), logits.tanh()]
    loss.backward()
    params = [x, *conv.parameters(), *bn.parameters(), *fc.parameters()]
    return outputs, params


def test_float32_stays_float32():
    outputs, params = _float32_step_grads()
    assert [o.dtype for o in outputs] == [dn.float32] * len(outputs)
    assert [p.grad.dtype for p in params] == [dn.float32] * len(params)
    opt = dn.optim.SGD(params[1:], lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt.step()
    assert all(p.dtype == dn.float32 for p in params)
    assert all(s["momentum_buffer"].dtype == dn.float32 for s in opt.state.values())


def test_float32_lstm():
    lstm = dn.nn.LSTM(3, 4)
    x = dn.tensor(np.ones((5, 2, 3), np.float32), requires_grad=True)
    out, (h, c) = lstm(x)
    out.sum().backward()
    assert {out.dtype, h.dtype, c.dtype, x.grad.dtype} == {dn.float32}
    assert all(p.grad.dtype == dn.float32 for p in lstm.parameters())


@settings(deadline=None)
@given(k=st.tuples(st.integers(1, 5), st.integers(1, 5)), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), padding=st.integers(0, 2), size=st.integers(1, 9),
       c=st.integers(2, 5), n=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 99))
def test_depthwise_shift_and_add_matches_torch(k, stride, dilation, padding, size, c, n, bias,
                                               seed):
    rng = np.random.default_rng(seed)
    if size + 2 * padding < dilation * (max(k) - 1) + 1:
        return                                    # no output: the error path is tested elsewhere
    inputs = [rng.standard_normal((n, c, size, size + 1)), rng.standard_normal((c, 1, *k))]
    if bias:
        inputs.append(rng.standard_normal(c))
    check_against_torch(F.conv2d, "conv2d", tuple(inputs), stride=stride, padding=padding,
                        dilation=dilation, groups=c)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_depthwise_uses_shift_and_add_with_same_padding_and_only_for_depthwise(rng):
    x = dn.tensor(rng.standard_normal((2, 4, 6, 5)), requires_grad=True)
    w = dn.tensor(rng.standard_normal((4, 1, 4, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding="same", dilation=(1, 2), groups=4)     # uneven padding (1, 2)
    assert isinstance(y.grad_fn, conv_ops.DepthwiseConv2dFn)
    check_against_torch(F.conv2d, "conv2d", (x.data, w.data), padding="same", dilation=(1, 2),
                        groups=4)
    multiplier = dn.tensor(rng.standard_normal((8, 1, 3, 3)))        # C_out = 2 C_in: im2col
    assert isinstance(F.conv2d(x, multiplier, groups=4).grad_fn, conv_ops.ConvNdFn)
