"""Activations: vanishing gradients through sigmoid, dead ReLUs after a too-large learning rate
(notes 000 Q8-Q9, 001 "Relu相比于sigmoid、tanh的优点", 004 Q16-Q17).

Backward through a layer h = f(W a + b) multiplies the gradient by diag(f'(z)) W^T (notes 004
Q16: dF/dW_1 = x f_1' W_2 f_2' W_3 f_3'). sigmoid'(z) = s(1 - s) <= 1/4, so with weights that keep
the forward signal's scale the gradient shrinks by about 4x or more per sigmoid layer; tanh' is 1
at 0, ReLU' is 1 on the active half. A ReLU whose pre-activation is negative for every input
outputs 0 and gets zero gradient: it is dead and cannot recover; a large learning rate pushes
many units there at once (notes 000 Q9).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "mish")


def _layer(name: str) -> Any:
    from deepnotes import nn

    return dict(sigmoid=nn.Sigmoid, tanh=nn.Tanh, relu=nn.ReLU, leaky_relu=nn.LeakyReLU,
                elu=nn.ELU, gelu=nn.GELU, mish=nn.Mish)[name]()


def _gradient_norms(act: str, x: Any, y: Any, depth: int, width: int) -> list[float]:
    """||dL/dW_l|| for the ``depth`` hidden layers of an MLP with LeCun-normal weights
    (Var 1/fan_in, the notes' Xavier) and the activation ``act``, at initialisation."""
    import deepnotes.nn.functional as F
    from deepnotes import nn

    hidden, mods = [], []
    for i in range(depth):
        layer = nn.Linear(x.shape[1] if i == 0 else width, width)
        nn.init.normal_(layer.weight, 0.0, (1.0 / layer.weight.shape[1]) ** 0.5)
        nn.init.zeros_(layer.bias)
        hidden.append(layer)
        mods += [layer, _layer(act)]
    net = nn.Sequential(*mods, nn.Linear(width, 10))
    F.cross_entropy(net(x), y).backward()
    return [float(np.linalg.norm(layer.weight.grad.data)) for layer in hidden]


def _dead_relus(lr: float, epochs: int, train: Any, width: int) -> dict[str, Any]:
    """Train a 64-W-W-10 ReLU MLP with plain SGD at ``lr``; the fraction of hidden units that
    output 0 for every training image afterwards, the loss curve and the test accuracy."""
    import deepnotes as dn
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim
    from deepnotes.data import DataLoader

    net = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                        nn.Linear(width, 10))
    opt = optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        for xb, yb in DataLoader(train, batch_size=32, shuffle=True):
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
    x = train.tensors[0]
    with dn.no_grad():
        h1 = net[1](net[0](x))
        h2 = net[3](net[2](h1))
    dead = [float((h.data.max(axis=0) <= 0).mean()) for h in (h1, h2)]
    return dict(dead=dead, dead_mean=float(np.mean(dead)), losses=losses)


@experiment(
    "activations", title="Activations: vanishing sigmoid gradients and dead ReLUs",
    note="notes 000 Q8-Q9, 004 Q16-Q17, 001 ReLU vs sigmoid/tanh",
    claim="""Sigmoid's derivative is at most 1/4, so in a deep sigmoid net the gradient vanishes
    towards the first layers, while tanh and the ReLU family pass it on. With a too-large learning
    rate many ReLU units die: they output 0 for every input and never recover.""",
    setup="""Gradient flow: MLPs on the digits (64 inputs, 10 hidden layers of width 64, then 10
    classes) with sigmoid, tanh, ReLU, LeakyReLU, ELU, GELU or Mish, weights N(0, 1/fan_in),
    biases 0; the norm of dL/dW per hidden layer for the cross-entropy of 512 (quick: 128)
    training images, at initialisation, averaged over 3 (quick: 1) seeds of weights. Dead ReLUs:
    a 64-128-128-10 ReLU MLP trained with plain SGD (batch 32) for 4 epochs (quick: 1) at
    lr 0.1 and at lr 2.0; a unit is dead if it outputs 0 on all 1,438 training images.""")
def run(ctx: Context) -> Outcome:
    from deepnotes.data import datasets

    train, _ = datasets.digits(flatten=True)
    x, y = train.tensors
    n = ctx.pick(512, 128)
    depth, width = 10, 64
    norms: dict[str, list[float]] = {}
    repeats = ctx.pick(3, 1)
    for act in ctx.progress(ACTIVATIONS, "gradient flow"):
        runs = [_gradient_norms(act, x[:n], y[:n], depth, width) for _ in range(repeats)]
        norms[act] = [float(v) for v in np.exp(np.log(np.array(runs)).mean(axis=0))]
    ratio = {a: v[0] / v[-1] for a, v in norms.items()}  # first / last hidden layer

    epochs = ctx.pick(4, 1)
    lrs = (0.1, 2.0)
    dead = {lr: _dead_relus(lr, epochs, train, 128) for lr in ctx.progress(lrs, "dead ReLUs")}

    fig, ax = ctx.figure(size=(5.5, 3.8))
    layers = np.arange(1, depth + 1)
    for act in ACTIVATIONS:
        ax.semilogy(layers, norms[act], "o-", ms=3, label=act)
    ax.set_xlabel("hidden layer (1 = next to the input)")
    ax.set_ylabel("||dL/dW||")
    ax.set_title("gradient norm per layer at initialisation")
    ax.legend(fontsize=7, ncol=2)
    ctx.save_figure(fig, "gradient_norms", "Gradient norm per layer of 10-layer MLPs: it "
                    "falls geometrically towards the input only with sigmoid.")

    fig, axes = ctx.figure(1, 2, size=(4.2, 3.2))
    ax = axes[0, 0]
    for lr in lrs:
        losses = np.array(dead[lr]["losses"])
        k = max(1, len(losses) // 40)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(smooth, label=f"lr {lr}")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (moving average)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    pos = np.arange(2)
    for i, lr in enumerate(lrs):
        ax.bar(pos + (i - 0.5) * 0.35, dead[lr]["dead"], 0.35, label=f"lr {lr}")
    ax.set_xticks(pos, ["hidden 1", "hidden 2"])
    ax.set_ylabel("fraction of dead ReLUs")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "dead_relus", "A ReLU MLP trained with SGD at lr 0.1 and at lr 2.0: "
                    "the large step kills most hidden units and the loss stalls near ln 10.")

    others = min(ratio[a] for a in ACTIVATIONS if a != "sigmoid")
    small, large = dead[lrs[0]]["dead_mean"], dead[lrs[1]]["dead_mean"]
    checks = [
        Check("sigmoid: the gradient reaching the first layer is < 1e-3 of the last hidden "
              "layer's", f"ratio {fmt(ratio['sigmoid'])}", ratio["sigmoid"] < 1e-3),
        Check("tanh and the ReLU family keep it within 10x",
              "ratios first/last: " + ", ".join(f"{a} {fmt(ratio[a])}" for a in ACTIVATIONS
                                                 if a != "sigmoid"),
              others > 0.1 and max(ratio[a] for a in ACTIVATIONS if a != "sigmoid") < 10),
        Check("a too-large learning rate kills ReLUs (dead fraction > 30 points above the "
              "normal rate's)", f"dead at lr {lrs[0]}: {small:.0%}, at lr {lrs[1]}: {large:.0%}",
              large > small + 0.3),
    ]
    table = Table("Gradient norm, first and last hidden layer",
                  ["activation", "||dL/dW_1||", "||dL/dW_10||", "first / last"],
                  [[a, fmt(norms[a][0]), fmt(norms[a][-1]), fmt(ratio[a])] for a in ACTIVATIONS])
    dead_table = Table("Dead ReLUs", ["lr", "dead hidden 1", "dead hidden 2",
                                      "final loss (mean of last 20 steps)"],
                       [[lr, f"{d['dead'][0]:.0%}", f"{d['dead'][1]:.0%}",
                         fmt(float(np.mean(d["losses"][-20:])))] for lr, d in dead.items()])
    return Outcome(
        results=dict(grad_norms=norms, first_over_last=ratio,
                     dead_relus={str(lr): d for lr, d in dead.items()}),
        checks=checks, tables=[table, dead_table],
        remarks="""The weights are N(0, 1/fan_in) for every activation, so the comparison is
        about the derivative of the activation alone; GELU and Mish start with smaller gradients
        overall (their derivative is about 1/2 near 0) but do not lose them with depth.""")
