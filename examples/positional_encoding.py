"""Sinusoidal positional encoding, and why a Transformer needs it (notes 003 "transformer").

    python examples/positional_encoding.py [--out positional_encoding.png]

1. Plots the table pe[pos, dim] of ``nn.PositionalEncoding`` (sin on even dims, cos on odd ones,
   frequencies falling geometrically with the dimension) and the dot products pe[i] . pe[j],
   which depend only on |i - j|: the encoding carries relative position.
2. Shows numerically that a Transformer encoder without it is permutation-equivariant
   (shuffling the tokens shuffles the outputs the same way), and that adding it breaks this.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import deepnotes as dn  # noqa: E402
import deepnotes.nn as nn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="positional_encoding.png")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--length", type=int, default=100)
    args = parser.parse_args()

    pe = nn.PositionalEncoding(args.d_model, max_len=args.length, dtype=dn.float64).pe.numpy()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    image = ax0.imshow(pe.T, aspect="auto", cmap="RdBu", origin="lower")
    ax0.set(title="pe[pos, dim]", xlabel="position", ylabel="dimension")
    fig.colorbar(image, ax=ax0)
    similarity = ax1.imshow(pe @ pe.T, cmap="viridis", origin="lower")
    ax1.set(title="pe[i] . pe[j] (depends on |i - j|)", xlabel="j", ylabel="i")
    fig.colorbar(similarity, ax=ax1)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")

    dn.manual_seed(0)
    rng = np.random.default_rng(0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0), 2)
    encoder.double().eval()
    positions = nn.PositionalEncoding(16, max_len=64, dtype=dn.float64)
    x = rng.standard_normal((10, 1, 16))                     # (L, N, E)
    perm = rng.permutation(10)
    with dn.no_grad():
        plain = encoder(dn.tensor(x)).numpy()
        plain_perm = encoder(dn.tensor(x[perm])).numpy()
        pos = encoder(positions(dn.tensor(x))).numpy()
        pos_perm = encoder(positions(dn.tensor(x[perm]))).numpy()
    print(f"without PE: max |f(Px) - P f(x)| = {np.abs(plain_perm - plain[perm]).max():.2e}")
    print(f"with PE:    max |f(Px) - P f(x)| = {np.abs(pos_perm - pos[perm]).max():.2e}")


if __name__ == "__main__":
    main()
