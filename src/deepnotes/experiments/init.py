"""Weight initialisation: symmetry of zero init, vanishing/saturating activations, Xavier and He
(notes 004 Q1-Q2, 002 Q8, 003 "参数初始化").

The notes' variance argument: for a = sum_i w_i x_i over n inputs with independent zero-mean
terms, Var[a] = n Var[w] Var[x]. So each layer multiplies the variance by n Var[w] (times what
the nonlinearity keeps): with Var[w] = 1e-4 and n = 256 that is 0.0256 per layer, and after 10
layers the signal is ~1e-8 of the input; with Var[w] = 1 it is 256 per layer and tanh saturates
at +-1; Xavier (Var[w] = 1/n) makes the factor 1 for a linear/tanh unit near 0, He (2/n) makes it
1 for ReLU, which zeroes half of its input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt

INITS = ("zeros", "N(0,0.01)", "N(0,1)", "xavier", "he")


def _init_linear(layer: Any, scheme: str, constant: float = 0.05) -> None:
    from .. import nn

    nn.init.zeros_(layer.bias)
    w = layer.weight
    if scheme == "zeros":
        nn.init.zeros_(w)
    elif scheme == "constant":
        nn.init.constant_(w, constant)
    elif scheme == "N(0,0.01)":
        nn.init.normal_(w, 0.0, 0.01)
    elif scheme == "N(0,1)":
        nn.init.normal_(w, 0.0, 1.0)
    elif scheme == "xavier":
        nn.init.xavier_normal_(w)                       # Var = 2 / (fan_in + fan_out) = 1/n here
    elif scheme == "he":
        nn.init.kaiming_normal_(w, nonlinearity="relu")  # Var = 2 / fan_in
    else:
        raise ValueError(f"unknown init scheme '{scheme}'")


def _deep_stats(act: str, scheme: str, width: int, depth: int, batch: int) -> dict[str, Any]:
    """Forward a N(0, 1) batch through ``depth`` Linear+act layers initialised with ``scheme``;
    backward a fixed random linear read-out. Per layer: activation std, fraction saturated
    (|tanh| > 0.99), dL/dW std; plus samples of the activations for histograms."""
    import deepnotes as dn
    from deepnotes import nn

    x = dn.randn(batch, width)
    readout = dn.randn(width)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    for layer in layers:
        _init_linear(layer, scheme)
    h, acts = x, []
    for layer in layers:
        h = layer(h)
        h = h.tanh() if act == "tanh" else h.relu()
        acts.append(h)
    loss = (h * readout).sum() / batch
    loss.backward()
    a = [v.data for v in acts]
    return dict(
        input_std=float(x.data.std()),
        act_std=[float(v.std()) for v in a],
        saturated=[float((np.abs(v) > 0.99).mean()) for v in a],
        grad_std=[float(layer.weight.grad.data.std()) for layer in layers],
        samples=[v.reshape(-1)[:4000] for v in a],
    )


def _symmetry_run(scheme: str, steps: int, lr: float) -> dict[str, Any]:
    """Train a 64-32-32-10 tanh MLP on the digits with SGD; per hidden layer, how far the rows
    (hidden units) of the weight matrix are from being identical, and the test accuracy."""
    import deepnotes as dn
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim
    from deepnotes.data import datasets

    train, test = datasets.digits(flatten=True)
    x, y = train.tensors
    xt, yt = test.tensors
    net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                        nn.Linear(32, 10))
    for layer in (net[0], net[2], net[4]):
        _init_linear(layer, scheme)
    opt = optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    spreads = []
    for layer in (net[0], net[2]):
        w = layer.weight.data                                  # (units, inputs)
        scale = max(float(np.abs(w).max()), 1e-30)
        spreads.append(float(np.abs(w - w[:1]).max()) / scale)  # 0 <=> all units identical
    with dn.no_grad():
        acc = float((net(xt).data.argmax(1) == yt.data).mean())
    moved = float(np.abs(net[0].weight.data).max())
    return dict(spread=spreads, test_acc=acc, final_loss=float(loss.item()),
                max_abs_w1=moved)


def _label_histogram(ax: Any, row: int, col: int, title: str, ylabel: str, last_row: bool,
                     xlabel: str) -> None:
    """Titles on the top row, scheme names on the left column, the x label on the bottom row."""
    ax.set_yticks([])
    ax.tick_params(labelsize=6)
    if row == 0:
        ax.set_title(title, fontsize=8)
    if col == 0:
        ax.set_ylabel(ylabel, fontsize=8)
    if last_row:
        ax.set_xlabel(xlabel, fontsize=7)


@experiment(
    "init", title="Initialisation: symmetry, vanishing and saturating activations, Xavier, He",
    note="notes 004 Q1-Q2, 002 Q8, 003 参数初始化",
    claim="""With all weights zero (or equal) every hidden unit of a layer computes and learns the
    same thing. In a deep tanh net, N(0, 0.01) weights make the activations collapse towards 0
    layer by layer, N(0, 1) weights saturate them at +-1, and Xavier keeps their spread; Xavier
    still lets a ReLU net's activations shrink, He keeps them.""",
    setup="""10 Linear layers of width 256 (quick: 128) with tanh or ReLU, biases 0, weights from
    zeros, N(0, 0.01), N(0, 1), Xavier normal (Var 2/(fan_in+fan_out) = 1/n) or He normal
    (Var 2/fan_in); a batch of 1,000 (quick: 128) N(0, 1) inputs; the loss is a fixed random
    linear read-out of the last layer. Per layer: the std of the activations, the fraction with
    |tanh| > 0.99, the std of dL/dW. Symmetry: a 64-32-32-10 tanh MLP trained on the digits
    (full batch, SGD lr 0.1, momentum 0.9, 150 steps; quick: 30) from zero, constant (0.05) and
    Xavier weights; the spread of a layer is max |W_i - W_0| / max |W| over its units i.""")


def run(ctx: Context) -> Outcome:
    width, batch = ctx.pick(256, 128), ctx.pick(1000, 128)
    depth = 10
    stats: dict[str, dict[str, Any]] = {}
    for act in ctx.progress(("tanh", "relu"), "deep nets"):
        for scheme in INITS:
            stats[f"{act}/{scheme}"] = _deep_stats(act, scheme, width, depth, batch)
    steps = ctx.pick(150, 30)
    sym = {s: _symmetry_run(s, steps, 0.1) for s in ctx.progress(("zeros", "constant", "xavier"),
                                                                  "symmetry")}

    layers = np.arange(1, depth + 1)
    fig, axes = ctx.figure(1, 2, size=(4.6, 3.4))
    for col, act in enumerate(("tanh", "relu")):
        ax = axes[0, col]
        for scheme in INITS[1:]:
            ax.semilogy(layers, stats[f"{act}/{scheme}"]["act_std"], "o-", ms=3, label=scheme)
        ax.set_xlabel("layer")
        ax.set_ylabel("std of activations")
        ax.set_title(f"10-layer {act} MLP")
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "activation_std", "Standard deviation of the activations per layer "
                    "(input std 1; zero init gives exactly 0 and is not drawn).")

    fig, axes = ctx.figure(1, 2, size=(4.6, 3.4))
    for col, act in enumerate(("tanh", "relu")):
        ax = axes[0, col]
        for scheme in INITS[1:]:
            g = np.maximum(stats[f"{act}/{scheme}"]["grad_std"], 1e-300)
            ax.semilogy(layers, g, "o-", ms=3, label=scheme)
        ax.set_xlabel("layer")
        ax.set_ylabel("std of dL/dW")
        ax.set_title(f"gradients, {act}")
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "gradient_std", "Standard deviation of the weight gradients per layer.")

    shown = (1, 4, 7, 10)
    fig, axes = ctx.figure(3, len(shown), size=(2.2, 1.6))
    for row, scheme in enumerate(("N(0,0.01)", "N(0,1)", "xavier")):
        for col, layer in enumerate(shown):
            ax = axes[row, col]
            v = stats[f"tanh/{scheme}"]["samples"][layer - 1]
            lim = 1.0 if scheme != "N(0,0.01)" else max(float(np.abs(v).max()), 1e-30)
            ax.hist(v, bins=40, range=(-lim, lim), color=f"C{row}")
            _label_histogram(ax, row, col, f"layer {layer}", scheme, row == 2, "activation")
    ctx.save_figure(fig, "tanh_histograms", "Histograms of the tanh activations at layers 1, 4, "
                    "7, 10: N(0, 0.01) collapses to 0 (note the shrinking x range), N(0, 1) "
                    "piles up at +-1, Xavier stays spread.")

    fig, axes = ctx.figure(2, len(shown), size=(2.2, 1.6))
    for row, scheme in enumerate(("xavier", "he")):
        lim = float(np.percentile(stats[f"relu/{scheme}"]["samples"][0], 99.5))
        for col, layer in enumerate(shown):
            ax = axes[row, col]
            v = stats[f"relu/{scheme}"]["samples"][layer - 1]
            ax.hist(v[v > 0], bins=40, range=(0, lim), color=f"C{row + 3}")
            _label_histogram(ax, row, col, f"layer {layer}", scheme, row == 1, "activation > 0")
    ctx.save_figure(fig, "relu_histograms", "Histograms of the positive ReLU activations at "
                    "layers 1, 4, 7, 10 on the x range of layer 1: with Xavier they crowd "
                    "towards 0, with He they keep their spread.")

    fig, ax = ctx.figure(size=(5.0, 3.2))
    names = list(sym)
    pos = np.arange(len(names))
    for i, layer_name in enumerate(("hidden 1", "hidden 2")):
        ax.bar(pos + (i - 0.5) * 0.35, [max(sym[n]["spread"][i], 1e-12) for n in names], 0.35,
               label=layer_name)
    ax.set_yscale("log")
    ax.set_xticks(pos, [f"{n}\n(test acc {sym[n]['test_acc']:.0%})" for n in names])
    ax.set_ylabel("spread between units")
    ax.set_title(f"after {steps} SGD steps on the digits")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "symmetry", "How different the hidden units of a layer are after "
                    "training (1e-12 marks exactly identical units).")

    t_small, t_large = stats["tanh/N(0,0.01)"], stats["tanh/N(0,1)"]
    t_xav, r_xav, r_he = stats["tanh/xavier"], stats["relu/xavier"], stats["relu/he"]
    collapse = t_small["act_std"][-1] / t_small["input_std"]
    xav_ratio = t_xav["act_std"][0] / t_xav["act_std"][-1]
    xav_vs_input = t_xav["input_std"] / t_xav["act_std"][-1]
    he_ratio = max(r_he["act_std"][0] / r_he["act_std"][-1], r_he["act_std"][-1]
                   / r_he["act_std"][0])
    relu_xav_ratio = r_xav["act_std"][0] / r_xav["act_std"][-1]
    sat_large, sat_xav = np.mean(t_large["saturated"]), np.mean(t_xav["saturated"])
    sym_max = max(max(sym["zeros"]["spread"]), max(sym["constant"]["spread"]))
    checks = [
        Check("zero or constant init: the hidden units of a layer stay identical, random init "
              "breaks the symmetry",
              f"spread after training: zeros {fmt(max(sym['zeros']['spread']))}, constant "
              f"{fmt(max(sym['constant']['spread']))}, Xavier "
              f"{fmt(min(sym['xavier']['spread']))}; test accuracy "
              f"{sym['zeros']['test_acc']:.0%} / {sym['constant']['test_acc']:.0%} / "
              f"{sym['xavier']['test_acc']:.0%}",
              sym_max < 1e-5 and min(sym["xavier"]["spread"]) > 0.1),
        Check("tanh, N(0, 0.01): the activations collapse towards 0 (std at layer 10 < 1e-3 of "
              "the input's)", f"std ratio layer 10 / input = {fmt(collapse)}", collapse < 1e-3),
        Check("tanh, N(0, 1): the units saturate (most |a| > 0.99); Xavier does not",
              f"saturated fraction {sat_large:.0%} vs Xavier {sat_xav:.1%}",
              sat_large > 0.5 and sat_xav < 0.05),
        Check("tanh, Xavier: the std stays within a factor 3 from layer 1 to layer 10",
              f"std {fmt(t_xav['act_std'][0])} -> {fmt(t_xav['act_std'][-1])} (factor "
              f"{fmt(xav_ratio)}; {fmt(xav_vs_input)} below the input's std 1)", xav_ratio < 3),
        Check("ReLU: He keeps the std within a factor 3 over 10 layers; Xavier lets it shrink "
              "by more than 10x",
              f"He factor {fmt(he_ratio)}, Xavier factor {fmt(relu_xav_ratio)}",
              he_ratio < 3 and relu_xav_ratio > 10),
    ]
    rows = []
    for key, s in stats.items():
        act, scheme = key.split("/")
        rows.append([act, scheme, fmt(s["act_std"][0]), fmt(s["act_std"][-1]),
                     f"{np.mean(s['saturated']):.0%}" if act == "tanh" else "-",
                     fmt(s["grad_std"][0]), fmt(s["grad_std"][-1])])
    table = Table("Per-layer statistics (layer 1 and layer 10)",
                  ["act", "init", "act std L1", "act std L10", "saturated", "dL/dW std L1",
                   "dL/dW std L10"], rows)
    sym_table = Table("Symmetry after training", ["init", "spread hidden 1", "spread hidden 2",
                                                  "final train loss", "test accuracy"],
                      [[n, fmt(s["spread"][0]), fmt(s["spread"][1]), fmt(s["final_loss"]),
                        f"{s['test_acc']:.1%}"] for n, s in sym.items()])
    results = {k: {m: v for m, v in s.items() if m != "samples"} for k, s in stats.items()}
    return Outcome(
        results=dict(deep=results, symmetry=sym, width=width, depth=depth, batch=batch,
                     collapse_ratio=collapse, xavier_tanh_ratio=xav_ratio,
                     xavier_tanh_vs_input=xav_vs_input, he_relu_ratio=he_ratio,
                     xavier_relu_ratio=relu_xav_ratio, saturated_large=sat_large,
                     saturated_xavier=sat_xav),
        checks=checks, tables=[table, sym_table],
        remarks="""With zero weights the hidden units are not only identical: their gradients
        are exactly zero (dL/dh = W^T delta = 0), so only the output bias learns. Xavier with
        gain 1 (the notes' Var 1/n) does not hold the tanh std exactly: tanh shrinks its input a
        little at every layer, so the std decays slowly (roughly like 1/sqrt(layer)); this is why
        PyTorch's calculate_gain('tanh') is 5/3. Compared with the input (std 1) instead of the
        first layer, the factor is larger because the first tanh already maps N(0, 1) to a std of
        about 0.63.""")
