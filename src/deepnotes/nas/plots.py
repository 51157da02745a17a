"""Figures of a search: the architecture weights per epoch (heat maps) and the derived cells."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .genotype import Genotype

__all__ = ["draw_genotype", "plot_alpha_history"]


def _edge_labels(steps: int) -> list[str]:
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)]
    return [f"{names[j]}->{i}" for i in range(steps) for j in range(2 + i)]


def plot_alpha_history(history: Sequence[dict[str, np.ndarray]], primitives: Sequence[str],
                       steps: int, path: str | Path, title: str = "",
                       max_columns: int = 6) -> None:
    """One heat map per recorded epoch and cell type: rows = edges (j -> node i), columns =
    operations, colour = the operation weight on that edge (softmax(alpha)). At most
    ``max_columns`` epochs are shown, evenly spaced, always with the first and the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(history)
    if n == 0:
        raise ValueError("plot_alpha_history: empty history")
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, max_columns))})
    fig, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks) + 1.5, 7.5),
                             squeeze=False, constrained_layout=True)
    vmax = max(float(np.max(history[i][k])) for i in picks for k in ("normal", "reduce"))
    vmin = min(float(np.min(history[i][k])) for i in picks for k in ("normal", "reduce"))
    image = None
    for col, i in enumerate(picks):
        for row, kind in enumerate(("normal", "reduce")):
            ax = axes[row][col]
            image = ax.imshow(history[i][kind], vmin=vmin, vmax=vmax, cmap="viridis",
                              aspect="auto")
            ax.set_title(f"{kind}, epoch {history[i].get('epoch', i)}", fontsize=8)
            ax.set_xticks(range(len(primitives)))
            ax.set_xticklabels(primitives, rotation=90, fontsize=6)
            ax.set_yticks(range(len(_edge_labels(steps))))
            ax.set_yticklabels(_edge_labels(steps) if col == 0 else [], fontsize=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="operation weight softmax(alpha)")
    fig.suptitle(title or "architecture weights per epoch")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_cell(ax: object, edges: Sequence[tuple[str, int]], concat: Sequence[int],
               title: str) -> None:
    steps = len(edges) // 2
    pos = {0: (0.0, 1.6), 1: (0.0, -0.6)}
    for i in range(steps):
        pos[2 + i] = (1.8 * (1 + i), 0.5 + (0.55 if i % 2 else -0.55))
    out = (1.8 * (steps + 1), 0.5)
    names = {0: "c_{k-2}", 1: "c_{k-1}"} | {2 + i: str(i) for i in range(steps)}
    for k, (op, j) in enumerate(edges):
        target = 2 + k // 2
        (x0, y0), (x1, y1) = pos[j], pos[target]
        # bend edges that pass other nodes away from them: from c_{k-2} (top) upwards, from
        # c_{k-1} (bottom) downwards, between intermediate nodes more the longer they are
        far = target > j + 1 if j >= 2 else target > 2
        if j == 0:
            rad = -0.3 if far else -0.1
        elif j == 1:
            rad = 0.3 if far else 0.1
        else:
            rad = 0.3 if far else 0.1
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.3",
                                "connectionstyle": f"arc3,rad={rad}",
                                "shrinkA": 14, "shrinkB": 14})
        # a point of matplotlib's arc3 curve (a quadratic Bezier whose control point is the
        # chord midpoint + rad * (dy, -dx)), at t = 0.45 / 0.55 for the node's two edges
        cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
        t = 0.55 if k % 2 else 0.45
        mx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t ** 2 * x1
        my = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t ** 2 * y1
        ax.text(mx, my, op, fontsize=7, ha="center", va="center", color="darkred",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    for s in concat:
        (x0, y0) = pos[s]
        ax.annotate("", xy=out, xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.7", "linestyle": "--",
                                "shrinkA": 14, "shrinkB": 14})
    for node, (x, y) in pos.items():
        colour = "lightgreen" if node < 2 else "lightblue"
        ax.text(x, y, names[node], ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": colour, "ec": "k"})
    ax.text(*out, "c_{k}", ha="center", va="center", fontsize=9,
            bbox={"boxstyle": "round,pad=0.4", "fc": "khaki", "ec": "k"})
    ax.set_xlim(-0.7, out[0] + 0.7)
    ax.set_ylim(-1.4, 2.4)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)


def draw_genotype(genotype: Genotype, path: str | Path, title: str = "") -> None:
    """The normal and the reduction cell as graphs: input nodes c_{k-2}, c_{k-1} (green),
    intermediate nodes (blue), output c_{k} (concatenation, dashed), edges labelled with their
    operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 2.4 * genotype.steps + 4
    fig, axes = plt.subplots(2, 1, figsize=(width, 6.5), constrained_layout=True)
    _draw_cell(axes[0], genotype.normal, genotype.normal_concat, "normal cell")
    _draw_cell(axes[1], genotype.reduce, genotype.reduce_concat, "reduction cell")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
