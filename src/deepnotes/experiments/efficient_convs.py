"""Parameters, FLOPs and time of standard, bottleneck, grouped and depthwise-separable convolutions
(notes 004 Q31, 001 "分组卷积" and "深度可分离卷积", 002 Q15 on 1x1 convolutions).

A k x k convolution C_in -> C_out has C_out C_in k^2 weights and does that many multiply-adds per
output position. Splitting the channels into g groups divides both by g. A depthwise-separable
convolution (a k x k conv per channel, then a 1x1 conv) costs C_in k^2 + C_in C_out, a ratio of
1/C_out + 1/k^2 of the standard one (notes 004 Q31; the notes' own parameter formula
"C_in C_out + K^2" drops the factor C_in of the depthwise part, their worked example 656 = 16*9 +
16*32 does not). A 1x1 bottleneck to fewer channels before a large kernel cuts the cost of the
large kernel (notes 002 Q15: 819,200 -> 417,792 weights). Fewer FLOPs do not mean proportionally
less time: small per-group matrix products and memory traffic dominate (notes 001: "实际速度与理论
速度差距较大").

Counts come from ``deepnotes.analysis`` (conv_params, conv_macs, depthwise_separable_*) and are
checked against the parameters the modules actually hold.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt


def _variants() -> dict[str, dict[str, Any]]:
    """name -> (family, builder, formula params, formula MACs per output position)."""
    from deepnotes import analysis as A
    from deepnotes import nn

    return {
        "standard 3x3, 16->32": dict(
            family="16->32, 3x3 (notes 001)",
            build=lambda: nn.Conv2d(16, 32, 3, padding=1, bias=False),
            params=A.conv_params(16, 32, 3, bias=False),
            macs=A.conv_macs(16, 32, 3, 1)),
        "grouped 3x3 (g=4), 16->32": dict(
            family="16->32, 3x3 (notes 001)",
            build=lambda: nn.Conv2d(16, 32, 3, padding=1, groups=4, bias=False),
            params=A.conv_params(16, 32, 3, groups=4, bias=False),
            macs=A.conv_macs(16, 32, 3, 1, groups=4)),
        "depthwise-separable 3x3, 16->32": dict(
            family="16->32, 3x3 (notes 001)",
            build=lambda: nn.DepthwiseSeparableConv2d(16, 32, 3, padding=1, bias=False),
            params=A.depthwise_separable_params(16, 32, 3),
            macs=A.depthwise_separable_macs(16, 32, 3, 1)),
        "standard 5x5, 128->256": dict(
            family="128->256, 5x5 (notes 002 Q15)",
            build=lambda: nn.Conv2d(128, 256, 5, padding=2, bias=False),
            params=A.conv_params(128, 256, 5, bias=False),
            macs=A.conv_macs(128, 256, 5, 1)),
        "1x1 bottleneck to 64, then 5x5": dict(
            family="128->256, 5x5 (notes 002 Q15)",
            build=lambda: nn.Sequential(nn.Conv2d(128, 64, 1, bias=False),
                                        nn.Conv2d(64, 256, 5, padding=2, bias=False)),
            params=A.conv_params(128, 64, 1, bias=False) + A.conv_params(64, 256, 5, bias=False),
            macs=A.conv_macs(128, 64, 1, 1) + A.conv_macs(64, 256, 5, 1)),
        "grouped 5x5 (g=4), 128->256": dict(
            family="128->256, 5x5 (notes 002 Q15)",
            build=lambda: nn.Conv2d(128, 256, 5, padding=2, groups=4, bias=False),
            params=A.conv_params(128, 256, 5, groups=4, bias=False),
            macs=A.conv_macs(128, 256, 5, 1, groups=4)),
        "depthwise-separable 5x5, 128->256": dict(
            family="128->256, 5x5 (notes 002 Q15)",
            build=lambda: nn.DepthwiseSeparableConv2d(128, 256, 5, padding=2, bias=False),
            params=A.depthwise_separable_params(128, 256, 5),
            macs=A.depthwise_separable_macs(128, 256, 5, 1)),
    }


def _time(module: Any, x: Any, repeats: int) -> tuple[float, float]:
    """Median seconds of a forward pass and of forward + backward."""
    module(x).sum().backward()                      # warm-up: first-call allocations
    forward, both = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        y = module(x)
        mid = time.perf_counter()
        y.sum().backward()
        end = time.perf_counter()
        forward.append(mid - start)
        both.append(end - start)
    return float(np.median(forward)), float(np.median(both))


@experiment(
    "efficient-convs", title="Parameters, FLOPs and time of efficient convolutions",
    note="notes 004 Q31, 001 grouped / depthwise-separable conv, 002 Q15",
    claim="""A depthwise-separable 3x3 conv 16 -> 32 has 656 weights instead of 4,608, and costs
    1/C_out + 1/k^2 of the standard conv's multiply-adds; a 1x1 bottleneck to 64 channels before a
    5x5 conv 128 -> 256 cuts 819,200 weights to 417,792; groups divide the cost by g. The measured
    speed-up is smaller than the reduction in FLOPs.""",
    setup="""Each layer without bias, built from deepnotes.nn (Conv2d with groups,
    DepthwiseSeparableConv2d, a 1x1 + 5x5 Sequential). Parameters: counted from the module and
    from deepnotes.analysis; MACs per output position from deepnotes.analysis.conv_macs (FLOPs =
    2 x MACs), and for the notes' 100x100 map. Time: median of 5 (quick: 2) forward and
    forward + backward passes on a batch of 8 (quick: 2) maps of 32x32 (16-channel family) and of
    16x16 (128-channel family; quick: 8x8), one BLAS thread.""")
def run(ctx: Context) -> Outcome:
    import deepnotes as dn
    from deepnotes.analysis import separable_cost_ratio

    variants = _variants()
    repeats, batch = ctx.pick(5, 2), ctx.pick(8, 2)
    rows, results = [], {}
    for name, v in ctx.progress(list(variants.items()), "layers"):
        module = v["build"]()
        counted = sum(p.numel() for p in module.parameters())
        small = name.endswith("16->32")
        size = 32 if small else ctx.pick(16, 8)
        channels = 16 if small else 128
        x = dn.randn(batch, channels, size, size)
        fwd, both = _time(module, x, repeats)
        results[name] = dict(family=v["family"], params=counted, params_formula=v["params"],
                             macs_per_position=v["macs"], macs_100x100=v["macs"] * 100 * 100,
                             forward_s=fwd, forward_backward_s=both, map_size=size)
    for name, r in results.items():
        ref = "standard 3x3, 16->32" if r["family"].startswith("16") else "standard 5x5, 128->256"
        base = results[ref]
        r["param_ratio"] = r["params"] / base["params"]
        r["mac_ratio"] = r["macs_per_position"] / base["macs_per_position"]
        r["time_ratio"] = r["forward_backward_s"] / base["forward_backward_s"]
        rows.append([name, f"{r['params']:,}", f"{r['macs_100x100']:,}",
                     f"{r['mac_ratio']:.3f}", f"{1e3 * r['forward_s']:.1f}",
                     f"{1e3 * r['forward_backward_s']:.1f}", f"{r['time_ratio']:.2f}"])

    fig, axes = ctx.figure(1, 2, size=(4.8, 3.6), sharey=True)
    for col, family in enumerate(sorted({r["family"] for r in results.values()})):
        ax = axes[0, col]
        names = [n for n, r in results.items() if r["family"] == family]
        pos = np.arange(len(names))
        for i, (key, label) in enumerate((("param_ratio", "parameters"),
                                          ("mac_ratio", "multiply-adds"),
                                          ("time_ratio", "measured time (fwd+bwd)"))):
            ax.bar(pos + (i - 1) * 0.27, [results[n][key] for n in names], 0.27, label=label)
        ax.set_yscale("log")
        ax.set_xticks(pos, [n.split(",")[0].replace(" (", "\n(").replace(", then", "\nthen")
                            for n in names], fontsize=7)
        ax.set_ylabel("relative to the standard conv")
        ax.set_title(family, fontsize=9)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "costs", "Parameters, multiply-adds and measured time relative to the "
                    "standard convolution of each family (log scale).")

    sep = results["depthwise-separable 3x3, 16->32"]
    std = results["standard 3x3, 16->32"]
    bott = results["1x1 bottleneck to 64, then 5x5"]
    big = results["standard 5x5, 128->256"]
    exact_ratio = float(separable_cost_ratio(32, 3))
    counts_match = all(r["params"] == r["params_formula"] for r in results.values())
    sep_big = results["depthwise-separable 5x5, 128->256"]
    checks = [
        Check("the notes' counts: 4,608 vs 656 (16->32, 3x3) and 819,200 vs 417,792 "
              "(128->256, 5x5 with a 1x1 bottleneck), in the modules and in the formulas",
              f"modules: {std['params']:,} / {sep['params']:,} and {big['params']:,} / "
              f"{bott['params']:,}; formulas agree: {counts_match}",
              (std["params"], sep["params"], big["params"], bott["params"])
              == (4608, 656, 819200, 417792) and counts_match),
        Check("depthwise-separable MACs / standard MACs = 1/C_out + 1/k^2",
              f"{fmt(sep['mac_ratio'])} vs 1/32 + 1/9 = {fmt(exact_ratio)}",
              abs(sep["mac_ratio"] - exact_ratio) < 1e-12),
        Check("the measured speed-up of depthwise-separable convs is smaller than their FLOP "
              "reduction",
              f"16->32: time x{sep['time_ratio']:.2f} for MACs x{sep['mac_ratio']:.3f}; "
              f"128->256: time x{sep_big['time_ratio']:.2f} for MACs "
              f"x{sep_big['mac_ratio']:.3f}",
              sep["time_ratio"] > sep["mac_ratio"] and sep_big["time_ratio"]
              > sep_big["mac_ratio"]),
    ]
    table = Table("Costs (no bias; MACs for one 100x100 map; time on the map sizes of the setup)",
                  ["layer", "params", "MACs at 100x100", "MAC ratio", "forward ms",
                   "fwd+bwd ms", "time ratio"], rows)
    return Outcome(
        results=dict(layers=results, separable_ratio_formula=exact_ratio),
        checks=checks, tables=[table],
        remarks="""Times are for deepnotes' im2col + GEMM convolution on one CPU thread and vary
        with the machine's load; the test of this experiment checks the counts, not the times.
        A grouped or depthwise convolution runs as a batch of small matrix products (one per
        group), which keeps BLAS far from its peak, and im2col still copies k^2 values per input
        pixel, so the time falls much less than the multiply-adds.""")
