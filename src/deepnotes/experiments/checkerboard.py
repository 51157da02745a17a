"""Checkerboard artefacts of stride-2 transposed convolutions (notes 004 Q38, 003 "反卷积设置不当，
容易让输出的feature map呈棋盘状", 001 "如何理解转置卷积").

A transposed convolution with stride s pastes a copy of the kernel, scaled by each input pixel,
every s output pixels. With kernel size k, output pixel o receives a contribution from the input
pixels i with 0 <= o + p - s i < k: about k / s of them. When k is divisible by s every output
pixel gets exactly k/s contributions per axis; when it is not (k = 3, s = 2) the pixels of one
parity get 2 and the others 1, so a constant input already gives a 1-2-4 pattern of period 2:
the checkerboard. Upsampling first (nearest neighbour) and then convolving with stride 1 gives
every output pixel the same number of taps (the notes' remedy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt

METHODS = ("transposed k3 s2", "transposed k4 s2", "resize + conv k3")


class _ResizeConv:
    """Nearest-neighbour 2x upsampling (a broadcast and a reshape) followed by a 3x3 conv."""

    def __init__(self) -> None:
        from deepnotes import nn

        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def parameters(self) -> Any:
        return self.conv.parameters()

    @property
    def weight(self) -> Any:
        return self.conv.weight

    @property
    def bias(self) -> Any:
        return self.conv.bias

    def __call__(self, x: Any) -> Any:
        n, c, h, w = x.shape
        up = x.reshape(n, c, h, 1, w, 1).expand(n, c, h, 2, w, 2)   # (N, C, H, 2, W, 2)
        return self.conv(up.reshape(n, c, 2 * h, 2 * w))             # (N, C, 2H, 2W)


def make(method: str) -> Any:
    """An upsampler 8x8 -> 16x16 with one input and one output channel."""
    from deepnotes import nn

    if method == "transposed k3 s2":
        return nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1)
    if method == "transposed k4 s2":
        return nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1)
    return _ResizeConv()


def artefact(image: np.ndarray, border: int = 2) -> float:
    """Checkerboard amplitude of an output map: the means of the four 2x2 phases of its
    interior, (max - min) / |mean| (0 for a map without a period-2 pattern)."""
    inner = image[border:-border, border:-border]
    phases = np.array([inner[a::2, b::2].mean() for a in (0, 1) for b in (0, 1)])
    return float((phases.max() - phases.min()) / max(abs(phases.mean()), 1e-12))


def _response(layer: Any, x: Any) -> np.ndarray:
    import deepnotes as dn

    with dn.no_grad():
        return layer(x).data[0, 0]


def _targets(images: np.ndarray) -> np.ndarray:
    """Smooth 16x16 versions of 8x8 images: nearest 2x upsampling then a 3x3 box blur."""
    up = images.repeat(2, axis=-2).repeat(2, axis=-1)                   # (N, 1, 16, 16)
    padded = np.pad(up, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    out = sum(padded[..., i:i + 16, j:j + 16] for i in range(3) for j in range(3)) / 9.0
    return out.astype(np.float32)


@experiment(
    "checkerboard", title="Checkerboard artefacts of transposed convolutions",
    note="notes 004 Q38, 003 反卷积, 001 转置卷积",
    claim="""A stride-2 transposed convolution whose kernel size is not divisible by the stride
    (3) overlaps unevenly and prints a checkerboard even on a constant input; kernel 4 overlaps
    evenly; upsampling then convolving avoids the pattern.""",
    setup="""Three 1-channel upsamplers 8x8 -> 16x16: ConvTranspose2d k3 s2 (padding 1, output
    padding 1), ConvTranspose2d k4 s2 (padding 1), and nearest 2x upsampling + Conv2d k3. The
    artefact of an output is (max - min) / mean of the means of its four 2x2 phases, inside a
    2-pixel border. Measured on a constant input with an all-ones kernel, averaged over 200
    (quick: 50) kernels with uniform(0, 1) weights, and after training each upsampler from
    PyTorch's default init with Adam (lr 0.01, 100 steps; quick: 20) to map the digits to smooth
    16x16 versions of themselves (nearest upsampling + 3x3 box blur).""")
def run(ctx: Context) -> Outcome:
    import deepnotes as dn
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim
    from deepnotes.data import datasets

    const = dn.ones(1, 1, 8, 8)
    ones_out, random_amp, random_example, trained_const, trained_digit, losses = ({}, {}, {},
                                                                                 {}, {}, {})
    draws = ctx.pick(200, 50)
    steps = ctx.pick(100, 20)
    train, _ = datasets.digits()
    x = train.tensors[0][:256]
    target = dn.tensor(_targets(x.data))
    for method in ctx.progress(METHODS, "upsamplers"):
        layer = make(method)
        nn.init.ones_(layer.weight)
        nn.init.zeros_(layer.bias)
        ones_out[method] = _response(layer, const)
        amps = []
        for i in range(draws):
            nn.init.uniform_(layer.weight, 0.0, 1.0)
            out = _response(layer, const)
            amps.append(artefact(out))
            if i == 0:
                random_example[method] = out
        random_amp[method] = float(np.mean(amps))
        layer = make(method)                                            # default init
        opt = optim.Adam(layer.parameters(), lr=0.01)
        curve = []
        for _ in range(steps):
            loss = F.mse_loss(layer(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(float(loss.item()))
        losses[method] = curve
        trained_const[method] = _response(layer, const)
        trained_digit[method] = _response(layer, x[:1])

    amp = {name: {"ones kernel": artefact(ones_out[name]),
                  "uniform kernels (mean)": random_amp[name],
                  "trained": artefact(trained_const[name])} for name in METHODS}

    columns = [("constant input,\nones kernel", ones_out), ("constant input,\nuniform kernel",
                                                            random_example),
               (f"constant input,\nafter {steps} steps", trained_const),
               (f"a digit,\nafter {steps} steps", trained_digit)]
    fig, axes = ctx.figure(3, 4, size=(2.3, 2.3))
    for row, method in enumerate(METHODS):
        for col, (title, maps) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(maps[method], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
            if col == 0:
                ax.set_ylabel(method, fontsize=8)
    ctx.save_figure(fig, "outputs", "Outputs of the three upsamplers (rows) on a constant input "
                    "with all-ones and random positive kernels, and after a few training steps "
                    "(the last column: a digit).")

    fig, ax = ctx.figure(size=(5.6, 3.2))
    keys = list(amp[METHODS[0]])
    pos = np.arange(len(keys))
    for i, method in enumerate(METHODS):
        ax.bar(pos + (i - 1) * 0.27, [max(amp[method][k], 1e-4) for k in keys], 0.27,
               label=method)
    ax.set_yscale("log")
    ax.set_xticks(pos, keys, fontsize=8)
    ax.set_ylabel("checkerboard amplitude")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "amplitude", "Checkerboard amplitude (max - min of the 2x2 phase "
                    "means, over their mean; 1e-4 marks 0) of the constant input's output.")

    k3, k4, rc = (amp[m] for m in METHODS)
    checks = [
        Check("kernel 3, stride 2: a constant input gives the uneven-overlap pattern; kernel 4 "
              "and resize-conv give a flat output (all-ones kernel)",
              f"amplitude k3 {fmt(k3['ones kernel'])}, k4 {fmt(k4['ones kernel'])}, resize-conv "
              f"{fmt(rc['ones kernel'])}",
              k3["ones kernel"] > 0.5 and k4["ones kernel"] < 1e-6 and rc["ones kernel"] < 1e-6),
        Check("with random positive kernels k3 is the worst, resize-conv has none",
              f"mean amplitude k3 {fmt(k3['uniform kernels (mean)'])}, k4 "
              f"{fmt(k4['uniform kernels (mean)'])}, resize-conv "
              f"{fmt(rc['uniform kernels (mean)'])}",
              k3["uniform kernels (mean)"] > 2 * k4["uniform kernels (mean)"]
              and rc["uniform kernels (mean)"] < 1e-5),
        Check(f"after {steps} training steps the transposed convs still show the pattern, "
              "resize-conv does not",
              f"amplitude k3 {fmt(k3['trained'])}, k4 {fmt(k4['trained'])}, resize-conv "
              f"{fmt(rc['trained'])}",
              min(k3["trained"], k4["trained"]) > 10 * max(rc["trained"], 1e-6)),
    ]
    table = Table("Checkerboard amplitude of the output for a constant input",
                  ["upsampler", *keys, "final training loss"],
                  [[m, *(fmt(amp[m][k]) for k in keys), fmt(losses[m][-1])] for m in METHODS])
    return Outcome(
        results=dict(amplitude=amp, final_loss={m: c[-1] for m, c in losses.items()},
                     ones_kernel_outputs={m: ones_out[m].tolist() for m in METHODS}),
        checks=checks, tables=[table],
        remarks="""Kernel 4 with stride 2 overlaps evenly, but each output parity still sums
        different kernel taps (w0 + w2 vs w1 + w3 per axis), so a trained or random k4 kernel can
        print a checkerboard too unless its taps balance; only resize-then-convolve is free of it
        by construction (every output pixel sees the same taps of a constant map).""")
