"""Theoretical vs effective receptive field (notes 000 Q3, 001 dilated conv and VGG 3x3 stacks,
003 "感受野计算").

The theoretical receptive field follows the recursion r_{l+1} = r_l + (k_eff - 1) s_1...s_l with
k_eff = d (k - 1) + 1 (``deepnotes.analysis.receptive_field``): every input pixel outside it has
zero influence on the output unit. Inside it the influence is far from uniform: the number of
paths from an input pixel to the output through L layers of k x k kernels is an L-fold convolution
of the kernel's footprint, which tends to a Gaussian whose width grows like sqrt(L) while the
receptive field grows like L (Luo et al. 2016, "effective receptive field"). The effective
receptive field is measured from d y_center / d x, the input gradient of one output unit: its
mean square over random weights and inputs says how much each input pixel contributes to the
output's variance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment


def _stack(specs: list[tuple[int, int, int, int, str]], channels: int, positive: bool,
           relu: bool) -> Any:
    """Conv (k, stride, padding, dilation, "conv") and average-pool (k, stride, 0, 1, "pool")
    layers; weights uniform in [0.1, 1] (``positive``, no cancellation) or He normal."""
    from deepnotes import nn

    mods: list[Any] = []
    c_in = 1
    for k, s, p, d, kind in specs:
        if kind == "pool":
            mods.append(nn.AvgPool2d(k, s, p))
            continue
        conv = nn.Conv2d(c_in, channels, k, stride=s, padding=p, dilation=d, bias=False)
        if positive:
            nn.init.uniform_(conv.weight, 0.1, 1.0)
        else:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        mods.append(conv)
        if relu:
            mods.append(nn.ReLU())
        c_in = channels
    return nn.Sequential(*mods)


def input_gradient(specs: list[tuple[int, int, int, int, str]], size: int, channels: int,
                   positive: bool, relu: bool) -> np.ndarray:
    """|d y / d x| (size x size) for the output unit at the centre of the output map, summed
    over the output channels."""
    import deepnotes as dn

    net = _stack(specs, channels, positive, relu)
    x = dn.randn(1, 1, size, size, requires_grad=True)
    y = net(x)
    h, w = y.shape[2], y.shape[3]
    y[0, :, h // 2, w // 2].sum().backward()
    return np.abs(x.grad.data[0, 0])


def support_side(grad: np.ndarray) -> int:
    """Side of the bounding box of the nonzero gradient (the measured receptive field)."""
    rows = np.flatnonzero(grad.max(axis=1) > 0)
    cols = np.flatnonzero(grad.max(axis=0) > 0)
    return int(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def mass_side(grad: np.ndarray, fraction: float = 0.95) -> int:
    """Side of the smallest square around the centre pixel (where the centre output unit's
    field is centred, with 'same' padding) that holds ``fraction`` of the gradient's total mass
    (the effective receptive field)."""
    total = grad.sum()
    cy, cx = grad.shape[0] // 2, grad.shape[1] // 2
    for half in range(max(grad.shape)):
        window = grad[max(cy - half, 0):cy + half + 1, max(cx - half, 0):cx + half + 1]
        if window.sum() >= fraction * total:
            return 2 * half + 1
    return max(grad.shape)


def _theory(specs: list[tuple[int, int, int, int, str]]) -> int:
    from deepnotes.analysis import receptive_field

    return int(receptive_field([(k, s, p, d) for k, s, p, d, _ in specs])[-1].size)


def plain(depth: int) -> list[tuple[int, int, int, int, str]]:
    return [(3, 1, 1, 1, "conv")] * depth


def dilated(dilations: tuple[int, ...]) -> list[tuple[int, int, int, int, str]]:
    return [(3, 1, d, d, "conv") for d in dilations]


#: The notes' worked example (notes 000 Q3), with average pooling: RF 11, 19, 51, 67, 99.
NOTES_EXAMPLE = [(11, 4, 0, 1, "conv"), (3, 2, 0, 1, "pool"), (5, 1, 2, 1, "conv"),
                 (3, 2, 0, 1, "pool"), (3, 1, 1, 1, "conv")]


@experiment(
    "receptive-field", title="Theoretical vs effective receptive field",
    note="notes 000 Q3, 001 dilated conv / VGG 3x3 stacks, 003 感受野计算",
    claim="""The receptive field from the recursion r_{l+1} = r_l + (k - 1) j_l is exactly the
    region of the input that can influence an output unit, but the effective receptive field
    (where the influence actually is) is smaller, and the more so the deeper the stack.""",
    setup="""Stacks of 3x3 convolutions (stride 1, 'same' padding, 8 channels) of depth 2, 4, 8,
    16 (quick: 2, 4, 8), a dilated stack (dilations 1, 2, 4, 8) and the notes' worked example
    (conv 11/4, pool 3/2, conv 5/1 pad 2, pool 3/2, conv 3/1 pad 1, average pooling, on 227x227).
    Theory: deepnotes.analysis.receptive_field. Measured support: the bounding box of the nonzero
    input gradient of the centre output unit, with positive weights and no activation (no
    cancellation). Effective RF: He-normal weights with ReLU, (dy/dx)^2 averaged over 64 (quick: 4)
    random networks and inputs on a 64x64 input (the share of each input pixel in the output's
    variance); its size is the side of the smallest square around the centre holding 95% of
    it.""")
def run(ctx: Context) -> Outcome:
    depths = ctx.pick((2, 4, 8, 16), (2, 4, 8))
    repeats = ctx.pick(64, 4)
    size, channels = 64, 8
    stacks = {f"plain {d}": plain(d) for d in depths}
    stacks["dilated 1-2-4-8"] = dilated((1, 2, 4, 8))
    rows, results, maps = [], {}, {}
    for name, specs in ctx.progress(list(stacks.items()), "stacks"):
        theory = _theory(specs)
        support = support_side(input_gradient(specs, size, channels, True, False))
        grads = np.mean([input_gradient(specs, size, channels, False, True) ** 2
                         for _ in range(repeats)], axis=0)              # E[(dy/dx)^2]
        erf = mass_side(grads)
        maps[name] = grads
        results[name] = dict(theoretical=theory, measured_support=support, erf_95=erf,
                             erf_over_rf=erf / theory)
        rows.append([name, theory, support, erf, f"{erf / theory:.2f}"])
    notes_theory = _theory(NOTES_EXAMPLE)
    notes_support = support_side(input_gradient(NOTES_EXAMPLE, 227, 2, True, False))
    layers_theory = [int(r.size) for r in __import__(
        "deepnotes.analysis", fromlist=["receptive_field"]).receptive_field(
        [(k, s, p, d) for k, s, p, d, _ in NOTES_EXAMPLE])]
    results["notes example"] = dict(theoretical=notes_theory, measured_support=notes_support,
                                    per_layer=layers_theory)
    rows.append(["notes' example (227x227)", notes_theory, notes_support, "-", "-"])

    shown = [f"plain {depths[-1]}", "dilated 1-2-4-8"]
    fig, axes = ctx.figure(1, 3, size=(3.4, 3.2))
    for col, name in enumerate(shown):
        ax = axes[0, col]
        g = maps[name]
        im = ax.imshow(g / g.max(), cmap="viridis", extent=(-size / 2, size / 2, size / 2,
                                                             -size / 2))
        half = results[name]["theoretical"] / 2
        ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
            (-half, -half), 2 * half, 2 * half, fill=False, ec="w", ls="--", lw=1,
            label="theoretical RF"))
        ax.set_title(f"{name}: RF {results[name]['theoretical']}", fontsize=9)
        ax.set_xlabel("input x (pixels from centre)")
        ax.set_ylabel("input y")
        ax.legend(fontsize=6, loc="lower left")
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[0, 2]
    centre = size // 2
    for name in stacks:
        profile = maps[name].sum(axis=0)                     # marginal over the rows
        ax.plot(np.arange(size) - centre, profile / profile.max(), label=name)
    ax.set_xlabel("input x (pixels from centre)")
    ax.set_ylabel("(dy/dx)^2 summed over y (max 1)")
    ax.legend(fontsize=6)
    ctx.save_figure(fig, "effective_rf", "Mean (dy/dx)^2 of the centre output unit (the effective "
                    "receptive field) with the theoretical receptive field as a dashed square, "
                    "and the profiles along x of all stacks.")

    fig, ax = ctx.figure(size=(4.6, 3.4))
    th = [results[f"plain {d}"]["theoretical"] for d in depths]
    ef = [results[f"plain {d}"]["erf_95"] for d in depths]
    ax.plot(depths, th, "o-", label="theoretical RF (2L + 1)")
    ax.plot(depths, ef, "s-", label="effective RF (95% of (dy/dx)^2)")
    ax.plot(depths, [ef[0] * np.sqrt(d / depths[0]) for d in depths], ":", color="gray",
            label="~ sqrt(depth)")
    ax.set_xlabel("depth (3x3 conv layers)")
    ax.set_ylabel("side in input pixels")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "rf_vs_depth", "Theoretical and effective receptive field of plain 3x3 "
                    "stacks against depth.")

    exact = all(results[n]["measured_support"] == results[n]["theoretical"] for n in stacks)
    exact = exact and notes_support == notes_theory == 99
    deepest = results[f"plain {depths[-1]}"]["erf_over_rf"]
    shallow = results[f"plain {depths[0]}"]["erf_over_rf"]
    dil = results["dilated 1-2-4-8"]["erf_over_rf"]
    checks = [
        Check("the theoretical RF is exactly the region that influences the output (measured "
              "support == formula; the notes' example gives 99)",
              "; ".join(f"{n}: {results[n]['theoretical']} vs {results[n]['measured_support']}"
                        for n in [*stacks, "notes example"]), exact),
        Check("the effective RF is smaller than the theoretical one (deepest plain stack: "
              "below 3/4 of it)", f"ERF/RF: deepest plain stack {deepest:.2f}, dilated {dil:.2f}",
              deepest < 0.75 and dil < 1.0),
        Check("the ERF/RF ratio falls with depth", f"ERF/RF at depth {depths[0]}: "
              f"{shallow:.2f}, at depth {depths[-1]}: {deepest:.2f}", deepest < shallow),
    ]
    table = Table("Receptive fields (side in input pixels)",
                  ["stack", "theoretical", "measured support", "effective (95%)", "ERF / RF"],
                  rows)
    return Outcome(results=results, checks=checks, tables=[table],
                   remarks="""The notes' example per layer, from the formula: """
                   + ", ".join(map(str, layers_theory)) + """. Max pooling would route each
                   gradient to one arg-max and make the measured support depend on the input;
                   average pooling spreads it (notes 000 Q2), so the support is the full
                   field.""")
