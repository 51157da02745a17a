"""The search and retraining runs behind ``deepnotes nas search`` / ``deepnotes nas retrain``.

Data (the 8x8 digits, offline): the 1,438 training images are split in two fixed halves, one to
train the weights w and one ("val") to train the architecture alpha, as DARTS splits CIFAR-10's
training set; the 359 test images are only used by ``retrain``.

One search iteration (DARTS' order): an alpha step on a val batch (first or second order,
``darts.Architect``), then an SGD step on w on a train batch (momentum 0.9, weight decay 3e-4,
gradient norm clipped at 5, lr cosine-annealed per epoch). Per method:

    darts     softmax mixture, first-order alpha step
    darts2    the same with the unrolled second-order step (xi = current weight lr)
    gdas      hard Gumbel-softmax samples, one op per edge, tau annealed 10 -> 0.1; the alpha
              loss adds lambda * (cost_op * prob_op).sum() (FLOPs, ``--cost-weight``)
    snas      soft Gumbel-softmax samples (all ops), same annealing and cost term
    pc-darts  partial channels (K = 2) + edge normalisation betas
    p-darts   skip dropout with decaying rate; at most 2 skips in the derived normal cell

Retraining compares the found genotype with random genotypes of the same shape (same cells,
nodes, channels), each trained from scratch on the full training split with the same recipe,
over several seeds, and says whether the search beat random (mean and spread).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .genotype import Genotype, NetworkFromGenotype, derive_genotype, random_genotype

__all__ = ["BUDGETS", "METHODS", "SearchBudget", "retrain", "search"]

METHODS = ("darts", "darts2", "gdas", "snas", "pc-darts", "p-darts")


@dataclass(frozen=True)
class SearchBudget:
    c: int
    layers: int
    steps: int
    batch_size: int
    epochs: int
    batches_per_epoch: int | None      # None: the whole train half
    retrain_epochs: int
    retrain_batches: int | None
    seeds: int                          # retraining seeds of the found genotype
    random_archs: int                   # random genotypes, one seed each
    eval_samples: int | None = None     # supernet val accuracy on the first N (None: all)


BUDGETS = {
    "tiny": SearchBudget(c=8, layers=2, steps=2, batch_size=16, epochs=2, batches_per_epoch=1,
                         retrain_epochs=1, retrain_batches=3, seeds=2, random_archs=2,
                         eval_samples=48),
    "small": SearchBudget(c=8, layers=3, steps=3, batch_size=64, epochs=6, batches_per_epoch=8,
                          retrain_epochs=6, retrain_batches=None, seeds=3, random_archs=3),
}
#: Per-method changes to the small budget: darts2 costs about three times as much per
#: iteration (fewer batches); gdas evaluates one op per edge, so it is about five times cheaper
#: per iteration but trains each op's weights only when sampled (more epochs, whole epochs).
_SMALL_OVERRIDES: dict[str, dict[str, Any]] = {
    "darts2": {"batches_per_epoch": 4},
    "gdas": {"epochs": 12, "batches_per_epoch": None},
}


def _digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ..data import datasets

    train, test = datasets.digits()
    x, y = (t.numpy() for t in train.tensors)
    order = np.random.default_rng(0).permutation(len(x))  # fixed split, independent of --seed
    half = len(x) // 2
    xt, yt = (t.numpy() for t in test.tensors)
    return {"train": (x[order[:half]], y[order[:half]]), "val": (x[order[half:]], y[order[half:]]),
            "full": (x, y), "test": (xt, yt)}


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int, limit: int | None):
    from ..random import default_generator
    from ..tensor import Tensor

    order = default_generator().permutation(len(x))
    n = len(x) // batch_size
    if limit is not None:
        n = min(n, limit)
    for b in range(n):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield Tensor._wrap(x[idx]), Tensor._wrap(y[idx])


def accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256,
             bn_batch_stats: bool = False) -> float:
    """Top-1 accuracy in eval mode. ``bn_batch_stats``: batch norm normalises with the
    statistics of each evaluation batch instead of its running averages (buffers restored
    afterwards). The supernet's weights move fast during a short search and its affine-free
    BN running averages lag behind them, so eval-mode accuracy would understate it."""
    from ..autograd import no_grad
    from ..nn.layers.norm import _BatchNorm
    from ..tensor import Tensor

    was_training = model.training
    model.eval()
    saved = [b.data.copy() for b in model.buffers()] if bn_batch_stats else []
    if bn_batch_stats:
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.train()
    correct = 0
    try:
        with no_grad():
            for i in range(0, len(x), batch_size):
                logits = model(Tensor._wrap(x[i:i + batch_size])).numpy()
                correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    finally:
        for b, a in zip(model.buffers(), saved):
            b.data[...] = a
        model.train(was_training)
    return correct / len(x)


def build_network(method: str, budget: SearchBudget) -> Any:
    from .gdas import GumbelNetwork
    from .p_darts import PDartsNetwork
    from .pc_darts import PCDartsNetwork
    from .search_space import SearchNetwork

    kwargs = {"c": budget.c, "layers": budget.layers, "steps": budget.steps}
    if method in ("darts", "darts2"):
        return SearchNetwork(**kwargs)
    if method in ("gdas", "snas"):
        return GumbelNetwork(hard=method == "gdas", **kwargs)
    if method == "pc-darts":
        return PCDartsNetwork(k=2, **kwargs)
    if method == "p-darts":
        return PDartsNetwork(**kwargs)
    raise ValueError(f"unknown method '{method}'; expected one of {', '.join(METHODS)}")


def _cosine(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def derive(method: str, net: Any, max_skip: int = 2) -> Genotype:
    """The genotype of a search network by its method's rule."""
    from .p_darts import derive_with_max_skip

    w = net.genotype_weights()
    if method == "p-darts":
        return derive_with_max_skip(w["normal"], w["reduce"], net.steps, max_skip,
                                    net.multiplier, net.primitives)
    return derive_genotype(w["normal"], w["reduce"], net.steps, net.multiplier, net.primitives,
                           w["normal_edges"], w["reduce_edges"])


def search(method: str = "darts", budget: str = "tiny", seed: int = 0, out: Path | None = None,
           progress: bool = True, cost_weight: float | None = None,
           lr: float = 0.05, arch_lr: float = 3e-3) -> dict[str, Any]:
    """Run one architecture search on the digits; write genotype.json, alphas.png, cells.png,
    history.json and report.md into ``out`` (when given). Returns a summary dict.

    ``cost_weight``: lambda of the expected-FLOPs term (default 0.1 for gdas/snas, 0 otherwise).
    ``arch_lr``: Adam's lr on alpha (DARTS' 3e-4 is for 50 epochs of CIFAR; a few epochs on the
    digits need a larger one to move alpha at all).
    """
    from tqdm import tqdm

    from .. import manual_seed
    from ..nn import functional as F
    from ..nn.utils import clip_grad_norm_
    from ..optim import SGD
    from .darts import Architect
    from .gdas import cost_loss, normalised_costs, op_costs, tau_schedule
    from .p_darts import skip_drop_rate

    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; expected one of {', '.join(METHODS)}")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget '{budget}'; expected one of {', '.join(BUDGETS)}")
    cfg = BUDGETS[budget]
    if budget == "small":
        cfg = replace(cfg, **_SMALL_OVERRIDES.get(method, {}))
    batches_per_epoch = cfg.batches_per_epoch
    if cost_weight is None:
        cost_weight = 0.1 if method in ("gdas", "snas") else 0.0
    start = time.perf_counter()
    manual_seed(seed)
    data = _digits_splits()
    net = build_network(method, cfg)
    costs = normalised_costs(op_costs(net, image_size=8))
    penalty = (lambda: cost_weight * cost_loss(net, costs)) if cost_weight > 0 else None
    w_opt = SGD(net.weights(), lr=lr, momentum=0.9, weight_decay=3e-4)
    architect = Architect(net, second_order=method == "darts2", lr=arch_lr, penalty=penalty)
    n_batches = len(data["train"][0]) // cfg.batch_size
    if batches_per_epoch is not None:
        n_batches = min(n_batches, batches_per_epoch)
    history: list[dict[str, Any]] = []
    bar = tqdm(total=cfg.epochs * n_batches, desc=f"nas search {method}", unit="step",
               disable=not progress, leave=False)
    for epoch in range(cfg.epochs):
        lr_now = _cosine(lr, 1e-3, epoch, cfg.epochs)
        for group in w_opt.param_groups:
            group["lr"] = lr_now
        if method in ("gdas", "snas"):
            net.tau = tau_schedule(epoch, cfg.epochs)
        if method == "p-darts":
            net.set_drop_prob(skip_drop_rate(epoch))
        net.train()
        losses = []
        val_batches = _batches(*data["val"], cfg.batch_size, None)
        for xt, yt in _batches(*data["train"], cfg.batch_size, n_batches):
            xv, yv = next(val_batches)
            architect.step(xt, yt, xv, yv, xi=lr_now, w_optimizer=w_opt)
            w_opt.zero_grad()
            loss = F.cross_entropy(net(xt), yt)
            loss.backward()
            clip_grad_norm_(net.weights(), 5.0)
            w_opt.step()
            for a in net.arch_parameters():
                a.grad = None
            losses.append(float(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        w = net.genotype_weights()
        record = {"epoch": epoch, "lr": lr_now, "train_loss": float(np.mean(losses)),
                  "val_acc": accuracy(net, *(a[:cfg.eval_samples] for a in data["val"]),
                                      bn_batch_stats=True),
                  "normal": w["normal"], "reduce": w["reduce"],
                  "genotype": derive(method, net).to_dict()}
        if method in ("gdas", "snas"):
            record["tau"] = net.tau
        if method == "p-darts":
            record["skip_drop"] = skip_drop_rate(epoch)
        if cost_weight > 0:
            record["expected_cost"] = float(cost_loss(net, costs).item())
        history.append(record)
    bar.close()
    genotype = derive(method, net)
    wall = time.perf_counter() - start
    result = {"method": method, "budget": budget, "seed": seed, "genotype": genotype.to_dict(),
              "config": asdict(cfg), "cost_weight": cost_weight, "wall_s": wall,
              "search_params": sum(p.numel() for p in net.weights()),
              "final_val_acc": history[-1]["val_acc"], "files": []}
    if out is not None:
        _write_search(Path(out), result, history, genotype, net)
    return result


def _write_search(out: Path, result: dict[str, Any], history: list[dict[str, Any]],
                  genotype: Genotype, net: Any) -> None:
    from .plots import draw_genotype, plot_alpha_history

    out.mkdir(parents=True, exist_ok=True)
    meta = {k: result[k] for k in ("method", "budget", "seed")}
    (out / "genotype.json").write_text(genotype.to_json(
        **meta, c=net.c, layers=net.layers, steps=net.steps) + "\n")
    plain = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in h.items()}
             for h in history]
    (out / "history.json").write_text(json.dumps(plain, indent=1) + "\n")
    title = f"{result['method']} on digits ({result['budget']} budget, seed {result['seed']})"
    plot_alpha_history(history, net.primitives, net.steps, out / "alphas.png", title)
    draw_genotype(genotype, out / "cells.png", title)
    lines = [f"# NAS search: {result['method']}", "",
             f"Budget `{result['budget']}`, seed {result['seed']}, "
             f"{result['wall_s']:.1f} s wall. Search network: C={net.c}, {net.layers} cells, "
             f"{net.steps} intermediate nodes, {result['search_params']} weights.", "",
             "| epoch | lr | train loss | val acc (supernet, BN batch stats) | extra |",
             "|---|---|---|---|---|"]
    for h in history:
        extra = ", ".join(f"{k}={h[k]:.3g}" for k in ("tau", "skip_drop", "expected_cost")
                          if k in h)
        lines.append(f"| {h['epoch']} | {h['lr']:.4f} | {h['train_loss']:.3f} | "
                     f"{h['val_acc']:.3f} | {extra} |")
    lines += ["", "## Derived genotype", "", "```json", genotype.to_json(), "```", "",
              f"Skip connections in the normal cell: {genotype.count('skip_connect')}.", "",
              "Files: `genotype.json` (retrain it with `deepnotes nas retrain genotype.json`), "
              "`alphas.png` (operation weights per epoch), `cells.png` (derived cells), "
              "`history.json` (weights and genotype per epoch).", ""]
    (out / "report.md").write_text("\n".join(lines))
    result["files"] = [str(out / f) for f in ("genotype.json", "history.json", "alphas.png",
                                               "cells.png", "report.md")]


def train_genotype(genotype: Genotype, c: int, layers: int, seed: int, epochs: int,
                   batch_size: int, data: dict[str, Any], limit: int | None = None,
                   progress: Any = None) -> dict[str, Any]:
    """Train NetworkFromGenotype from scratch on the full training split (SGD momentum 0.9,
    lr 0.05 cosine, weight decay 3e-4); return its test accuracy and size."""
    from .. import manual_seed
    from ..nn import functional as F
    from ..nn.utils import clip_grad_norm_
    from ..optim import SGD

    manual_seed(seed)
    net = NetworkFromGenotype(genotype, c=c, layers=layers)
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = _cosine(0.05, 1e-3, epoch, epochs)
        net.train()
        for x, y in _batches(*data["full"], batch_size, limit):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if progress is not None:
                progress.update(1)
    return {"test_acc": accuracy(net, *data["test"]),
            "params": sum(p.numel() for p in net.parameters())}


def _verdict(found: list[float], rand: list[float]) -> str:
    mf, sf = float(np.mean(found)), float(np.std(found))
    mr, sr = float(np.mean(rand)), float(np.std(rand))
    diff = mf - mr
    spread = max(sf, sr)
    if diff > spread and diff > 0:
        return (f"The searched cell beat the random cells: {mf:.4f} vs {mr:.4f} mean test "
                f"accuracy, a gap of {diff:+.4f}, larger than the spread (std {sf:.4f} / "
                f"{sr:.4f}).")
    if diff < -spread:
        return (f"The searched cell did WORSE than the random cells: {mf:.4f} vs {mr:.4f} "
                f"mean test accuracy ({diff:+.4f}, beyond the spread std {sf:.4f} / {sr:.4f}).")
    return (f"The search did not clearly beat random: {mf:.4f} vs {mr:.4f} mean test accuracy "
            f"({diff:+.4f}), within the spread (std {sf:.4f} / {sr:.4f}). On this small problem "
            f"with this budget the difference is not significant.")


def retrain(genotype_path: Path, budget: str = "tiny", seed: int = 0, out: Path | None = None,
            progress: bool = True, seeds: int | None = None,
            random_archs: int | None = None) -> dict[str, Any]:
    """Train the genotype in ``genotype_path`` from scratch over ``seeds`` seeds and
    ``random_archs`` random genotypes of the same shape; write retrain.json and
    retrain_report.md into ``out`` (default: the genotype's folder)."""
    from tqdm import tqdm

    if budget not in BUDGETS:
        raise ValueError(f"unknown budget '{budget}'; expected one of {', '.join(BUDGETS)}")
    cfg = BUDGETS[budget]
    path = Path(genotype_path)
    meta = json.loads(path.read_text())
    genotype = Genotype.from_dict(meta)
    c, layers = int(meta.get("c", cfg.c)), int(meta.get("layers", cfg.layers))
    seeds = cfg.seeds if seeds is None else seeds
    random_archs = cfg.random_archs if random_archs is None else random_archs
    data = _digits_splits()
    per_epoch = len(data["full"][0]) // cfg.batch_size
    if cfg.retrain_batches is not None:
        per_epoch = min(per_epoch, cfg.retrain_batches)
    start = time.perf_counter()
    bar = tqdm(total=(seeds + random_archs) * cfg.retrain_epochs * per_epoch,
               desc="nas retrain", unit="step", disable=not progress, leave=False)
    found = [train_genotype(genotype, c, layers, seed + s, cfg.retrain_epochs, cfg.batch_size,
                            data, cfg.retrain_batches, bar) for s in range(seeds)]
    rng = np.random.default_rng(10_000 + seed)
    randoms = []
    for s in range(random_archs):
        g = random_genotype(genotype.steps, rng, len(genotype.normal_concat))
        r = train_genotype(g, c, layers, seed + s, cfg.retrain_epochs, cfg.batch_size, data,
                           cfg.retrain_batches, bar)
        randoms.append({**r, "genotype": g.to_dict()})
    bar.close()
    fa = [r["test_acc"] for r in found]
    ra = [r["test_acc"] for r in randoms]
    result = {"genotype": genotype.to_dict(), "budget": budget, "seed": seed,
              "searched": found, "random": randoms,
              "searched_mean": float(np.mean(fa)), "searched_std": float(np.std(fa)),
              "random_mean": float(np.mean(ra)) if ra else None,
              "random_std": float(np.std(ra)) if ra else None,
              "verdict": _verdict(fa, ra) if ra else "no random architectures trained",
              "wall_s": time.perf_counter() - start}
    out = path.parent if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrain.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# NAS retrain: searched vs random cells", "",
             f"Genotype `{path}` ({meta.get('method', '?')} search), C={c}, {layers} cells, "
             f"retrained from scratch for {cfg.retrain_epochs} epochs on the 1,438 training "
             f"digits, tested on the 359 test digits (budget `{budget}`, "
             f"{result['wall_s']:.1f} s wall).", "",
             "| network | seed | params | test acc |", "|---|---|---|---|"]
    lines += [f"| searched | {seed + s} | {r['params']} | {r['test_acc']:.4f} |"
              for s, r in enumerate(found)]
    lines += [f"| random #{s} | {seed + s} | {r['params']} | {r['test_acc']:.4f} |"
              for s, r in enumerate(randoms)]
    lines += ["", f"Searched: {result['searched_mean']:.4f} +- {result['searched_std']:.4f}; "
              + (f"random: {result['random_mean']:.4f} +- {result['random_std']:.4f} "
                 "(mean +- std)." if ra else "no random baseline."), "",
              result["verdict"], ""]
    (out / "retrain_report.md").write_text("\n".join(lines))
    result["files"] = [str(out / "retrain.json"), str(out / "retrain_report.md")]
    return result
