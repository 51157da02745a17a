"""Train and evaluate ``faster_rcnn_small`` on the ``shapes`` data set (``deepnotes detect``).

A run directory ``OUT/NAME`` holds:
    checkpoint.safetensors   model + optimizer state + iteration + config (dn.save, atomic)
    metrics.json             config, losses every ``log_every`` iterations, final mAPs, time
    predictions.png          test images with predicted boxes (green) and truth (white)
Training: Adam with a linear warm-up and a cosine decay of the learning rate (over ``iters``, or
over ``time_limit`` minutes when that ends first), mini-batches drawn
by ``deepnotes.random`` (seeded), random horizontal flips. BLAS runs on ``threads`` threads (1 by
default: the convolutions are small, and more threads only fight over busy cores).

Measured (``deepnotes detect train --time-limit 15``, defaults otherwise, on the 2-core machine
shared with other jobs, 1-minute load average 6.3 on average): the 3,000 iterations of 8 images
took 699 s (the process got 40 % of a core: 286 s of CPU time), then on the 300 test images
mAP@0.5 (VOC all-point) 0.9985, COCO mAP@[.5:.95] 0.9325 (docs/detection.md).
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ...autograd import no_grad
from ...io import CheckpointError, load, save
from ...random import default_generator, get_rng_state, manual_seed, set_rng_state
from ...tensor import Tensor
from ...threads import set_num_threads
from .faster_rcnn import FasterRCNN, faster_rcnn_small


@dataclass
class DetectConfig:
    """Settings of a ``deepnotes detect train`` run (stored in its checkpoint)."""

    iters: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    ohem: bool = False
    backbone: str = "small"
    train_size: int = 2000
    test_size: int = 300
    seed: int = 0
    threads: int = 1
    time_limit: float | None = None   # minutes; stop training early when reached
    log_every: int = 50
    ckpt_every: int = 500
    out: str = "runs/detect"
    name: str = "shapes"
    quiet: bool = False


def build_model(config: DetectConfig) -> FasterRCNN:
    return faster_rcnn_small(ohem=config.ohem, backbone=config.backbone)


def _batch(dataset: Any, idx: np.ndarray, flip: np.ndarray | None = None
           ) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    images, targets = [], []
    size = dataset.images.shape[-1]
    for j, i in enumerate(idx):
        image, boxes = dataset.images[i], dataset.boxes[i]
        if flip is not None and flip[j]:                      # x -> size - x, x1 <-> x2
            image = image[:, :, ::-1]
            boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], 1)
        images.append(Tensor._wrap(np.ascontiguousarray(image)))
        targets.append({"boxes": Tensor._wrap(boxes.astype(np.float32)),
                        "labels": Tensor._wrap(dataset.labels[i].copy())})
    return images, targets


def predict(model: FasterRCNN, dataset: Any, batch_size: int = 32) -> list[dict[str, Tensor]]:
    """Run ``model`` in eval mode over ``dataset``; one detection dict per image."""
    model.eval()
    out: list[dict[str, Tensor]] = []
    with no_grad():
        for start in range(0, len(dataset), batch_size):
            idx = np.arange(start, min(start + batch_size, len(dataset)))
            out.extend(model(_batch(dataset, idx)[0]))
    return out


def evaluate(model: FasterRCNN, dataset: Any) -> tuple[dict[str, float], list[dict[str, Tensor]]]:
    """mAP@0.5 (VOC all-point), COCO mAP@[.5:.95] and COCO AP50 on ``dataset``."""
    from ...metrics.detection import coco_map, mean_average_precision

    preds = predict(model, dataset)
    targets = [{"boxes": b, "labels": lab} for b, lab in zip(dataset.boxes, dataset.labels)]
    coco = coco_map(preds, targets)
    return {"map_50": mean_average_precision(preds, targets, 0.5, "all_point"),
            "map_50_95": coco["map"], "coco_map_50": coco["map_50"]}, preds


def draw_grid(dataset: Any, preds: list[dict[str, Tensor]], path: str | Path, n: int = 16,
              score_thresh: float = 0.5, dpi: int = 80) -> None:
    """PNG of the first ``n`` images with predicted boxes (green, label:score) and ground truth
    (white, dashed); 4 images per row, about 200 px per image at the default ``dpi``."""
    import matplotlib
    from PIL import Image  # matplotlib's own dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ...data.shapes import CLASSES

    n = min(n, len(dataset))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in zip(range(n), axes.ravel()):
        ax.imshow(dataset.images[i].transpose(1, 2, 0), extent=(0, dataset.images.shape[-1],
                                                                dataset.images.shape[-2], 0))
        for b in dataset.boxes[i]:
            ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                   ec="white", ls="--", lw=1))
        p = preds[i]
        for b, s, lab in zip(p["boxes"].data, p["scores"].data, p["labels"].data):
            if s < score_thresh:
                continue
            ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                   ec="lime", lw=1.5))
            ax.text(b[0], b[1] - 1, f"{CLASSES[lab]} {s:.2f}", color="lime", fontsize=6)
    fig.suptitle(f"faster_rcnn_small on shapes (score >= {score_thresh})", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    buffer.seek(0)
    # a 128-colour palette: the noisy backgrounds barely compress as RGB (4x smaller file)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=128).save(path, format="PNG", optimize=True)


def _lr_at(config: DetectConfig, it: int, elapsed: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` iterations, then cosine decay to 0 at ``iters``, or at
    ``time_limit`` minutes if that comes first (progress = the larger of the two fractions), so
    a run cut short by its time budget still ends at a small learning rate."""
    if it < config.warmup:
        return config.lr * (it + 1) / config.warmup
    progress = (it - config.warmup) / max(config.iters - config.warmup, 1)
    if config.time_limit is not None:
        progress = max(progress, elapsed / (60 * config.time_limit))
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_detector(config: DetectConfig, stdout: TextIO | None = None,
                   stderr: TextIO | None = None, *, resume_from: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Train, checkpoint, evaluate; returns the metrics dict also written to metrics.json.

    ``resume_from`` is a checkpoint written by this function (:func:`resume_detector` loads
    it): training continues after its iteration with the stored weights, optimizer moments,
    random generator, batch order and loss log, so that without ``time_limit`` the weights end
    bit-identical to those of an uninterrupted run. (With ``time_limit`` the learning rate also
    follows the elapsed time, which the checkpoint carries over but which no two runs share.)
    """
    from tqdm import tqdm

    from ... import optim
    from ...data.shapes import shapes

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    set_num_threads(config.threads)
    manual_seed(config.seed)
    run_dir = Path(config.out) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    train_set = shapes(config.train_size, seed=0)
    test_set = shapes(config.test_size, seed=1)
    model = build_model(config)
    optimizer = optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = default_generator()
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    order = rng.permutation(len(train_set))
    cursor = first = 0
    running: dict[str, float] = {}
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        set_rng_state(resume_from["rng_state"])
        order, cursor = np.asarray(resume_from["order"]), int(resume_from["cursor"])
        history, running = list(resume_from["history"]), dict(resume_from["running"])
        first = int(resume_from["iteration"])
        started -= float(resume_from["elapsed_s"])   # the time budget counts the earlier part
    it = first - 1
    bar = tqdm(total=config.iters, initial=first, desc="detect train", unit="it", file=stderr,
               disable=config.quiet)
    model.train()

    def checkpoint(iteration: int) -> None:
        save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
              "iteration": iteration, "config": json.dumps(asdict(config)),
              "rng_state": get_rng_state(), "order": order, "cursor": cursor,
              "history": history, "running": running,
              "elapsed_s": time.perf_counter() - started},
             run_dir / "checkpoint.safetensors")

    for it in range(first, config.iters):
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(train_set)), 0
        idx = order[cursor:cursor + config.batch_size]
        cursor += config.batch_size
        images, targets = _batch(train_set, idx, rng.random(len(idx)) < 0.5)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, it, time.perf_counter() - started)
        losses = model(images, targets)
        total = sum(losses.values(), Tensor._wrap(np.zeros((), dtype=np.float32)))
        if not math.isfinite(float(total.item())):
            bar.close()
            raise FloatingPointError(f"loss became {float(total.item())} at iteration {it}")
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.item())
        bar.update(1)
        bar.set_postfix(loss=f"{float(total.item()):.3f}")
        if (it + 1) % config.log_every == 0:
            entry = {"iteration": it + 1, "time_s": round(time.perf_counter() - started, 1),
                     **{k: round(v / config.log_every, 4) for k, v in running.items()}}
            history.append(entry)
            running = {}
        if (it + 1) % config.ckpt_every == 0:
            checkpoint(it + 1)
        if config.time_limit is not None and time.perf_counter() - started > 60 * config.time_limit:
            break
    bar.close()
    train_time = time.perf_counter() - started
    checkpoint(it + 1)
    scores, preds = evaluate(model, test_set)
    draw_grid(test_set, preds, run_dir / "predictions.png")
    metrics = {"config": asdict(config), "iterations": it + 1, "train_time_s": round(train_time, 1),
               **{k: round(v, 4) for k, v in scores.items()}, "history": history}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"trained {it + 1} iterations in {train_time:.0f} s; test ({config.test_size} images): "
          f"mAP@0.5 {scores['map_50']:.4f}, mAP@[.5:.95] {scores['map_50_95']:.4f}; "
          f"run in {run_dir}", file=stdout, flush=True)
    return metrics


def resume_detector(run_dir: str | Path, stdout: TextIO | None = None,
                    stderr: TextIO | None = None, *, threads: int | None = None,
                    quiet: bool | None = None) -> dict[str, Any]:
    """``deepnotes detect train --resume RUN_DIR``: continue the run in ``run_dir`` after the
    iteration of its checkpoint, with the settings stored there (``threads`` and ``quiet`` may
    be overridden), then evaluate as :func:`train_detector` does.

    Raises:
        CheckpointError: no checkpoint there, or one without what a resume needs (written by
            an older deepnotes, or not by ``deepnotes detect train``).
    """
    path = Path(run_dir) / "checkpoint.safetensors"
    if not path.is_file():
        raise CheckpointError(f"cannot resume: '{run_dir}' has no checkpoint.safetensors")
    state = load(path)
    needed = ("model", "optimizer", "iteration", "config", "rng_state", "order", "cursor",
              "history", "running", "elapsed_s")
    missing = [key for key in needed if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"cannot resume from '{path}': it lacks {', '.join(missing)} "
                              f"(written by an older deepnotes, or not by deepnotes detect train)")
    config = DetectConfig(**json.loads(state["config"]))
    # The run lives where it was found now, whatever out/name it was started with.
    config.out, config.name = str(Path(run_dir).parent), Path(run_dir).name
    if threads is not None:
        config.threads = threads
    if quiet is not None:
        config.quiet = quiet
    return train_detector(config, stdout, stderr, resume_from=state)


def load_run(run_dir: str | Path) -> tuple[FasterRCNN, DetectConfig, int]:
    """The model (eval mode), config and iteration stored in ``run_dir``'s checkpoint; raises
    CheckpointError for a file that is not a ``deepnotes detect`` checkpoint of this model."""
    path = Path(run_dir) / "checkpoint.safetensors"
    state = load(path)
    try:
        config = DetectConfig(**json.loads(state["config"]))
        iteration = int(state["iteration"])
        weights = state["model"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a 'deepnotes detect train' checkpoint "
                              f"({type(err).__name__}: {err})") from None
    model = build_model(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:                     # missing / unexpected keys, wrong shapes
        raise CheckpointError(f"the weights in {path} do not fit faster_rcnn_small("
                              f"backbone={config.backbone!r}): {err}") from None
    model.eval()
    return model, config, iteration


def evaluate_run(run_dir: str | Path, test_size: int | None = None, grid: str | None = None,
                 threads: int = 1, stdout: TextIO | None = None, images: int = 16
                 ) -> dict[str, float]:
    """``deepnotes detect eval``: mAPs of a run's checkpoint on the shapes test split, and a PNG
    grid of the predictions on the first ``images`` test images (default
    ``run_dir/predictions.png``)."""
    from ...data.shapes import shapes

    stdout = stdout or sys.stdout
    set_num_threads(threads)
    model, config, iteration = load_run(run_dir)
    n = test_size or config.test_size
    test_set = shapes(n, seed=1)
    scores, preds = evaluate(model, test_set)
    path = Path(grid) if grid else Path(run_dir) / "predictions.png"
    draw_grid(test_set, preds, path, n=images)
    print(f"{run_dir} (iteration {iteration}), {n} test images:\n"
          f"  mAP@0.5 (VOC all-point)  {scores['map_50']:.4f}\n"
          f"  mAP@[.5:.95] (COCO)      {scores['map_50_95']:.4f}\n"
          f"  AP50 (COCO 101-point)    {scores['coco_map_50']:.4f}\n"
          f"  predictions drawn in {path}", file=stdout, flush=True)
    return scores
