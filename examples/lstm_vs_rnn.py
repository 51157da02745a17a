"""LSTM vs plain RNN on a long-range memory task, and the vanishing gradient (notes 002 Q6,
003 "RNN相关", 004 Q40).

    python examples/lstm_vs_rnn.py [--seq-len 40] [--steps 200] [--out lstm_vs_rnn.png]

The task: T steps of input with K + 1 channels. Step 1 carries the class (one-hot in the first K
channels) and a marker (1 in the last channel); steps 2..T carry Gaussian noise N(0, 1) in the
class channels and no marker. The label is the class of step 1, so the network must keep one
piece of information across T steps of distractors. Each model reads the sequence and classifies
from its last hidden state h_T with a linear layer; same hidden size, optimiser and data.

Why the plain RNN struggles: dL/dh_1 = dL/dh_T prod_{t=2..T} diag(tanh'(a_t)) W_hh, a product of
T - 1 Jacobians whose norm is typically below 1, so the signal that should teach the network to
keep the first step shrinks geometrically with T. In the LSTM the cell carries the memory
additively, c_t = f_t c_{t-1} + i_t g_t, so dL/dc_{t-1} = f_t dL/dc_t: with forget gates near 1
the gradient reaches step 1 almost unchanged (notes 003: keep the forget gate near 1).

Three models are trained: a tanh RNN, an LSTM with PyTorch's default initialisation (forget gates
start at sigm(0) = 0.5, so its cell path also forgets at 0.5 per step: 0.5^40 ~ 1e-12), and the
same LSTM with its forget-gate bias raised by ``--forget-bias`` (4 by default: f = sigm(4) ~ 0.98,
and 0.98^40 ~ 0.5), the usual remedy. Gradients are clipped to norm ``--clip`` (the cure for the
exploding gradients that the LSTM does not prevent). The script prints the test accuracies
(chance = 1/K) and plots ||dL/dh_t|| against t for each model, trained (solid) and at
initialisation (dashed). To look at dL/dh_t, the layer's weights are loaded into the matching
cell (``nn.LSTMCell``/``nn.RNNCell``: same parameter layout) and the sequence is unrolled step
by step with ``retain_grad`` on every h_t.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import deepnotes as dn  # noqa: E402
import deepnotes.nn as nn  # noqa: E402
import deepnotes.nn.functional as F  # noqa: E402


def make_batch(rng: np.random.Generator, n: int, seq_len: int, classes: int
               ) -> tuple[dn.Tensor, dn.Tensor]:
    """(x (T, N, K + 1), y (N,)): the class and a marker at step 1, noise afterwards."""
    labels = rng.integers(0, classes, size=n)
    x = np.zeros((seq_len, n, classes + 1), dtype=np.float32)
    x[1:, :, :classes] = rng.standard_normal((seq_len - 1, n, classes))
    x[0, :, :classes] = np.eye(classes, dtype=np.float32)[labels]
    x[0, :, classes] = 1.0
    return dn.tensor(x), dn.tensor(labels)


class Classifier(nn.Module):
    """A one-layer recurrent network read out from its last hidden state."""

    def __init__(self, kind: str, classes: int, hidden: int, forget_bias: float = 0.0):
        super().__init__()
        if kind == "rnn":
            self.rnn = nn.RNN(classes + 1, hidden)
        else:
            self.rnn = nn.LSTM(classes + 1, hidden)
            with dn.no_grad():  # rows H..2H of the biases belong to the forget gate
                self.rnn.bias_ih_l0[hidden:2 * hidden] += forget_bias
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: dn.Tensor) -> dn.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[-1])                                     # (N, K) from h_T


def accuracy(model: Classifier, x: dn.Tensor, y: dn.Tensor) -> float:
    with dn.no_grad():
        return float((model(x).argmax(1) == y).float().mean().item())


def clip_gradient_norm(parameters: Any, max_norm: float) -> None:
    """Rescale all gradients together so that their joint L2 norm is at most ``max_norm``: the
    standard cure for the exploding gradients that the LSTM's additive cell path does not prevent
    (notes 002 Q6)."""
    grads = [p.grad.data for p in parameters if p.grad is not None]
    norm = float(np.sqrt(sum(float((g * g).sum()) for g in grads)))
    if norm > max_norm:
        for g in grads:
            g *= max_norm / norm


def train(kind: str, forget_bias: float, args: argparse.Namespace
          ) -> tuple[Classifier, Classifier, list[float]]:
    """Returns (initial copy, trained model, loss curve)."""
    dn.manual_seed(args.seed)
    model = Classifier(kind, args.classes, args.hidden, forget_bias)
    initial = Classifier(kind, args.classes, args.hidden)
    initial.load_state_dict(model.state_dict())
    optimizer = dn.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    losses = []
    for _ in range(args.steps):
        x, y = make_batch(rng, args.batch, args.seq_len, args.classes)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if args.clip:
            clip_gradient_norm(model.parameters(), args.clip)
        optimizer.step()
        losses.append(loss.item())
    return initial, model, losses


def hidden_gradient_norms(model: Classifier, x: dn.Tensor, y: dn.Tensor) -> np.ndarray:
    """||dL/dh_t|| (averaged over the batch) for t = 1..T, by unrolling the matching cell."""
    layer = model.rnn
    is_lstm = isinstance(layer, nn.LSTM)
    cell = nn.LSTMCell(layer.input_size, layer.hidden_size) if is_lstm else nn.RNNCell(
        layer.input_size, layer.hidden_size)
    cell.load_state_dict({name: getattr(layer, name + "_l0") for name in
                          ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    hiddens = []
    state = None
    for t in range(x.shape[0]):
        state = cell(x[t], state)
        h = state[0] if is_lstm else state
        h.retain_grad()
        hiddens.append(h)
    loss = F.cross_entropy(model.head(hiddens[-1]), y)
    loss.backward()
    return np.array([np.linalg.norm(h.grad.numpy(), axis=1).mean() for h in hiddens])


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=40)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--forget-bias", type=float, default=4.0)
    parser.add_argument("--clip", type=float, default=1.0,
                        help="clip the gradient norm to this (0: no clipping)")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lstm_vs_rnn.png")
    args = parser.parse_args(argv)

    models = {"RNN (tanh)": ("rnn", 0.0, "tab:red"),
              "LSTM, default init": ("lstm", 0.0, "tab:gray"),
              f"LSTM, forget bias {args.forget_bias:g}": ("lstm", args.forget_bias, "tab:blue")}
    test_x, test_y = make_batch(np.random.default_rng(12345), args.test_size, args.seq_len,
                                args.classes)
    results, curves = {}, {}
    for name, (kind, forget_bias, _) in models.items():
        start = time.perf_counter()
        initial, model, losses = train(kind, forget_bias, args)
        results[name] = accuracy(model, test_x, test_y)
        curves[name] = (hidden_gradient_norms(initial, test_x, test_y),
                        hidden_gradient_norms(model, test_x, test_y), losses)
        trained = curves[name][1]
        print(f"{name:<24} test accuracy {results[name]:.3f} (chance {1 / args.classes:.3f}), "
              f"final loss {np.mean(losses[-20:]):.3f}, ||dL/dh_1|| / ||dL/dh_T|| = "
              f"{trained[0] / trained[-1]:.1e}, {time.perf_counter() - start:.1f} s")

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = np.arange(1, args.seq_len + 1)
    for name, (_, _, color) in models.items():
        at_init, trained, losses = curves[name]
        ax0.semilogy(steps, trained, color=color, label=f"{name}, trained")
        ax0.semilogy(steps, at_init, color=color, linestyle="--", label=f"{name}, at init")
        ax1.plot(losses, color=color, label=name)
    ax0.set(xlabel="time step t", ylabel="mean ||dL/dh_t||",
            title=f"gradient reaching h_t (loss read at t = {args.seq_len})")
    ax0.legend(fontsize=7)
    ax1.set(xlabel="training step", ylabel="cross-entropy",
            title=f"training loss (T = {args.seq_len})")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    plt.close(fig)
    print(f"saved {args.out}")
    return results


if __name__ == "__main__":
    main()
