"""Regularisation: L1 makes weights sparse, L2 only small; smooth L1 is robust to outliers; label
smoothing keeps logits small (notes 004 Q23/Q26, 001 "深度学习中的正则化").

* L1 adds lambda sign(w) to the gradient: a constant pull whatever the size of w, so weights the
  data does not need are driven to 0. L2 adds lambda w: a pull proportional to w that fades as w
  shrinks, so weights become small but rarely 0 (notes 004 Q26).
* The L2 loss's gradient (y_hat - y) grows with the residual, so a few far outliers dominate the
  fit; L1's gradient sign(y_hat - y) is bounded, and smooth L1 is L2 near 0 and L1 beyond 1
  (notes 004 Q23: "L1 loss is less sensitive to outliers").
* Label smoothing trains towards (1 - eps) on the true class and eps/K elsewhere; the optimum of
  that target has finite logit gaps, log((1 - eps + eps/K) / (eps/K)), instead of infinite ones,
  which keeps the network from chasing exact probabilities (notes 001, noise on the outputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt


def _penalised_logreg(kind: str, lam: float, steps: int, data: Any) -> dict[str, Any]:
    """Softmax regression 64 -> 10 on the digits, full-batch SGD lr 0.5, with an L1 or L2
    penalty on the weights (optim.l1_penalty / l2_penalty; the bias is not penalised)."""
    import deepnotes as dn
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim

    (x, y), (xt, yt) = data
    model = nn.Linear(64, 10)
    opt = optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        if kind == "L1":
            loss = loss + optim.l1_penalty(model, lam)
        elif kind == "L2":
            loss = loss + optim.l2_penalty(model, lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = model.weight.data
    with dn.no_grad():
        acc = float((model(xt).data.argmax(1) == yt.data).mean())
    return dict(weights=w.reshape(-1).copy(), near_zero=float((np.abs(w) < 1e-2).mean()),
                l2_norm=float(np.linalg.norm(w)), max_abs=float(np.abs(w).max()), test_acc=acc)


def _robust_fit(loss_name: str, x: Any, y: Any, steps: int) -> tuple[float, float]:
    """Fit y = a x + b with Adam (lr 0.1, full batch) under the given loss; returns (a, b)."""
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim

    fn = {"L2 (MSE)": F.mse_loss, "L1": F.l1_loss, "smooth L1": F.smooth_l1_loss}[loss_name]
    model = nn.Linear(1, 1)
    opt = optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(model.weight.data.item()), float(model.bias.data.item())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: sum over confidence bins of (bin size / N) |accuracy - mean confidence|."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def _smoothing_run(eps: float, steps: int, data: Any) -> dict[str, Any]:
    """A 64-128-10 ReLU MLP trained with cross-entropy (label_smoothing eps), Adam lr 0.01,
    full batch; logit gap, confidence, calibration and accuracy on the test split."""
    import deepnotes as dn
    import deepnotes.nn.functional as F
    from deepnotes import nn, optim

    (x, y), (xt, yt) = data
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(net(x), y, label_smoothing=eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with dn.no_grad():
        logits = net(xt).data
    top = np.sort(logits, axis=1)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = yt.data
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, 11)
    reliability = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        reliability.append([float(conf[inside].mean()) if inside.any() else None,
                            float(correct[inside].mean()) if inside.any() else None,
                            int(inside.sum())])
    return dict(logit_gap=float((top[:, -1] - top[:, :-1].mean(axis=1)).mean()),
                logit_norm=float(np.linalg.norm(logits, axis=1).mean()),
                confidence=float(conf.mean()), test_acc=float(correct.mean()),
                ece=expected_calibration_error(probs, labels), reliability=reliability,
                nll=float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean()))


@experiment(
    "regularization", title="L1 vs L2, robust losses, label smoothing",
    note="notes 004 Q23/Q26, 001 深度学习中的正则化",
    claim="""An L1 penalty makes weights sparse while L2 only makes them small; smooth L1 (like L1)
    is robust to outliers where L2 is pulled away; label smoothing keeps the logits small without
    hurting accuracy, and keeps the network from being over-confident (better calibrated).""",
    setup="""L1 vs L2: softmax regression on the digits (64 -> 10), full-batch SGD lr 0.5 for 300
    steps (quick: 100), no penalty, L1 (lambda 3e-3) or L2 (lambda 3e-2) on the weights; a weight
    counts as zero below 0.01 in absolute value. Robust regression: 200 points y = 2x + 1 + N(0,
    0.3^2) with x in [-3, 3], 10% of them moved up by 15-30; a line fitted with Adam (lr 0.1, 500
    steps; quick: 200) under MSE, L1 and smooth L1. Label smoothing: a 64-128-10 ReLU MLP, Adam
    lr 0.01, full batch, 300 steps (quick: 60), eps 0 vs 0.1; on the test split the mean gap
    between the top logit and the mean of the others, the mean confidence (top softmax
    probability) against the accuracy, the expected calibration error (15 bins) and the
    accuracy.""")
def run(ctx: Context) -> Outcome:
    import deepnotes as dn
    from deepnotes.data import datasets

    train, test = datasets.digits(flatten=True)
    data = (train.tensors, test.tensors)
    steps = ctx.pick(300, 100)
    pens = {"none": ("none", 0.0), "L1": ("L1", 3e-3), "L2": ("L2", 3e-2)}
    weights = {name: _penalised_logreg(kind, lam, steps, data)
               for name, (kind, lam) in ctx.progress(list(pens.items()), "penalties")}

    rng = dn.random.default_generator()
    n = 200
    xs = rng.uniform(-3, 3, n)
    ys = 2 * xs + 1 + 0.3 * rng.standard_normal(n)
    outliers = rng.choice(n, n // 10, replace=False)
    ys[outliers] += rng.uniform(15, 30, len(outliers))
    x = dn.tensor(xs[:, None].astype(np.float32))
    y = dn.tensor(ys[:, None].astype(np.float32))
    fits = {name: _robust_fit(name, x, y, ctx.pick(500, 200))
            for name in ctx.progress(("L2 (MSE)", "L1", "smooth L1"), "robust losses")}
    fit_error = {k: float(np.hypot(a - 2, b - 1)) for k, (a, b) in fits.items()}

    ls_steps = ctx.pick(300, 60)
    smooth = {eps: _smoothing_run(eps, ls_steps, data)
              for eps in ctx.progress((0.0, 0.1), "label smoothing")}

    fig, ax = ctx.figure(size=(5.2, 3.4))
    bins = np.linspace(-1.5, 1.5, 61)
    for name, color in (("none", "C7"), ("L2", "C0"), ("L1", "C3")):
        ax.hist(weights[name]["weights"], bins=bins, histtype="step", lw=1.4, color=color,
                label=f"{name}: {weights[name]['near_zero']:.0%} |w| < 0.01")
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title("softmax regression on the digits")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "weights", "Weight histograms without penalty, with L2 and with L1: "
                    "L1 piles the weights up at 0.")

    fig, ax = ctx.figure(size=(5.2, 3.4))
    ax.scatter(xs, ys, s=6, color="gray", label="data (10% outliers)")
    grid = np.linspace(-3, 3, 10)
    ax.plot(grid, 2 * grid + 1, "k--", lw=1, label="truth y = 2x + 1")
    for i, (name, (a, b)) in enumerate(fits.items()):
        ax.plot(grid, a * grid + b, color=f"C{i}", label=f"{name}: {a:.2f}x + {b:.2f}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "robust_regression", "Lines fitted under L2, L1 and smooth L1 losses "
                    "to data with outliers.")

    fig, axes = ctx.figure(1, 2, size=(3.8, 3.4))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for eps, color in ((0.0, "C0"), (0.1, "C1")):
        pts = [(c, a) for c, a, k in smooth[eps]["reliability"] if k]
        ax.plot(*zip(*pts, strict=True), "o-", color=color, ms=3,
                label=f"eps {eps} (ECE {smooth[eps]['ece']:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability (test)")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.bar([0, 1], [smooth[0.0]["logit_gap"], smooth[0.1]["logit_gap"]], color=["C0", "C1"])
    ax.set_xticks([0, 1], ["no smoothing", "eps 0.1"])
    ax.set_ylabel("top logit - mean of the others")
    ctx.save_figure(fig, "label_smoothing", "Label smoothing: calibration (reliability diagram) "
                    "and logit gap on the test split.")

    s0, s1 = smooth[0.0], smooth[0.1]
    checks = [
        Check("L1 makes weights sparse, L2 only small",
              f"|w| < 0.01: L1 {weights['L1']['near_zero']:.0%}, L2 "
              f"{weights['L2']['near_zero']:.0%}, none {weights['none']['near_zero']:.0%}; "
              f"||W||: L2 {fmt(weights['L2']['l2_norm'])} vs none "
              f"{fmt(weights['none']['l2_norm'])}",
              weights["L1"]["near_zero"] > 2 * weights["L2"]["near_zero"]
              and weights["L1"]["near_zero"] > 0.2
              and weights["L2"]["l2_norm"] < weights["none"]["l2_norm"]),
        Check("smooth L1 and L1 fits stay near the truth, the L2 fit is pulled by the outliers",
              "distance of (slope, intercept) from (2, 1): " + ", ".join(
                  f"{k} {fmt(v)}" for k, v in fit_error.items()),
              max(fit_error["smooth L1"], fit_error["L1"]) < 0.3 * fit_error["L2 (MSE)"]),
        Check("label smoothing keeps the logits small (gap < 0.7x) at about the same accuracy "
              "(within 2 points)",
              f"logit gap {fmt(s1['logit_gap'])} vs {fmt(s0['logit_gap'])}; accuracy "
              f"{s1['test_acc']:.1%} vs {s0['test_acc']:.1%}",
              s1["logit_gap"] < 0.7 * s0["logit_gap"]
              and s1["test_acc"] > s0["test_acc"] - 0.02),
        Check("label smoothing prevents over-confidence: without it the mean test confidence "
              "exceeds the accuracy, with it it does not",
              f"confidence - accuracy: {s0['confidence'] - s0['test_acc']:+.3f} without, "
              f"{s1['confidence'] - s1['test_acc']:+.3f} with",
              s0["confidence"] > s0["test_acc"] and s1["confidence"] <= s1["test_acc"]),
        Check("label smoothing improves calibration (a lower expected calibration error)",
              f"ECE {fmt(s1['ece'])} with vs {fmt(s0['ece'])} without",
              s1["ece"] < s0["ece"]),
    ]
    table = Table("Label smoothing on the test split",
                  ["", "logit gap", "mean confidence", "ECE", "NLL", "accuracy"],
                  [[f"eps {eps}", fmt(s["logit_gap"]), fmt(s["confidence"]), fmt(s["ece"]),
                    fmt(s["nll"]), f"{s['test_acc']:.1%}"] for eps, s in smooth.items()])
    pen_table = Table("Penalties", ["penalty", "|w| < 0.01", "||W||", "max |w|", "test acc"],
                      [[k, f"{v['near_zero']:.0%}", fmt(v["l2_norm"]), fmt(v["max_abs"]),
                        f"{v['test_acc']:.1%}"] for k, v in weights.items()])
    calibrated = "better" if s1["ece"] < s0["ece"] else "not better"
    return Outcome(
        results=dict(penalties={k: {m: v for m, v in w.items() if m != "weights"}
                                for k, w in weights.items()},
                     robust_fits={k: dict(slope=a, intercept=b, error=fit_error[k])
                                  for k, (a, b) in fits.items()},
                     label_smoothing={str(k): v for k, v in smooth.items()}),
        checks=checks, tables=[pen_table, table],
        remarks=f"""Plain (sub)gradient descent on an L1 penalty does not produce exact zeros:
        the weights the data does not need dither around 0 with an amplitude of about lr x
        lambda; a proximal step (soft thresholding) would set them exactly to 0. Calibration with
        label smoothing is {calibrated} here (ECE {fmt(s1['ece'])} vs {fmt(s0['ece'])}): the
        network without smoothing is only a little over-confident on the digits (confidence
        {fmt(s0['confidence'])} at accuracy {s0['test_acc']:.1%}), and smoothing overshoots
        into under-confidence (mean confidence {fmt(s1['confidence'])} at accuracy
        {s1['test_acc']:.1%}), which ECE counts as miscalibration too. Label smoothing does
        stop over-confidence, as the notes say; that it also calibrates better needs a baseline
        that is clearly over-confident, which this small problem does not give.""")
