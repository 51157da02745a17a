"""deepnotes vs PyTorch (CPU): the workloads of issue 7, same process, same threads, float32.

    python benchmarks/bench.py                      # every workload, 2 threads, print the table
    python benchmarks/bench.py --only conv --repeat 10
    python benchmarks/bench.py --json runs/bench.json --write-docs   # update docs/performance.*

Workloads (the table of issue 7):
    conv         F.conv2d 3x3, stride 1, pad 1, no bias; x (32, 64, 32, 32), w (64, 64, 3, 3);
                 forward + backward of y.sum() (gradients of x and w)
    lenet_step   one SGD step of LeNet-5, batch 128x1x28x28, cross-entropy
    resnet_step  one SGD step of CIFAR ResNet-18 (BN in training mode), batch 16x3x32x32
    lstm         nn.LSTM(64, 128), time-major x (32, 32, 64); forward + backward of out.sum()
    mlp_step     one SGD step of the MLP 784-512-512-10, batch 256

A "step" is zero_grad, forward, cross-entropy, backward, SGD(lr 0.01, momentum 0.9).step(). The
models are built by the same code for both frameworks (benchmarks/models.py) with the same initial
weights and data.

Timing: two rounds per workload, deepnotes first in round 1 and PyTorch first in round 2 (blocks
dn, torch | torch, dn), each block ``--warmup`` untimed runs and then ``--repeat / 2`` timed ones;
the median over both rounds is reported per framework, and the ratio deepnotes / torch (lower is
better). Runs are not interleaved one by one: after a call each framework's worker threads keep
spinning for a moment (OpenBLAS for NumPy, OpenMP for torch) and would steal the cores from the
other side. The GEMM peak (np.matmul and torch.matmul of 2048x2048 float32) is measured in the same
run, so that conv's GFLOP/s can be read as a fraction of what NumPy's BLAS can do here.

Beside the wall time, the process CPU time of every run is recorded (``time.process_time``, all
threads). On a machine shared with other jobs the wall time includes the time the process waited
for a core; with one thread the CPU time does not, so the CPU-time ratio is the steadier one
there (with several threads it also counts the workers' spin-waiting).

``--write-docs`` replaces the block between ``<!-- bench.py --threads N: begin -->`` and its
``end`` marker in docs/performance.md and draws docs/performance-threadsN.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"

# name: (description, target ratio from issue 7)
WORKLOADS = {
    "conv": ("conv2d 3x3 fwd+bwd, 32x64x32x32 -> 64", 1.5),
    "lenet_step": ("LeNet-5 SGD step, batch 128", 2.0),
    "resnet_step": ("CIFAR ResNet-18 SGD step, batch 16", 2.0),
    "lstm": ("LSTM 64->128 fwd+bwd, T=32, N=32", 2.0),
    "mlp_step": ("MLP 784-512-512-10 SGD step, batch 256", 1.3),
}
CONV_SHAPE = (32, 64, 32, 32)        # N, C, H, W of the conv workload (C_out = 64, 3x3)


def set_thread_env(threads: int) -> None:
    """OpenBLAS reads its thread count once, when NumPy is first imported: set it before that."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    # What `import deepnotes` sets when it comes before NumPy (src/deepnotes/_blas_env.py): idle
    # OpenBLAS threads sleep after about 0.4 ms instead of spinning for 0.1 s. PyTorch does not
    # use OpenBLAS, so this changes nothing on its side.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread variables were set", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=20, help="timed runs per framework (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before each block")
    p.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and torch")
    p.add_argument("--only", choices=list(WORKLOADS), action="append",
                   help="run only this workload (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--write-docs", action="store_true",
                   help=f"rewrite the generated table in {DOCS.relative_to(ROOT)} and the chart")
    args = p.parse_args(argv)
    if args.repeat < 2 or args.warmup < 0 or args.threads < 1:
        p.error("--repeat must be >= 2, --threads >= 1, --warmup >= 0")
    return args


# ------------------------------------------------------------------------------------- timing


def time_call(fn: Callable[[], Any], runs: int) -> list[float]:
    """Wall times of ``runs`` calls of ``fn`` in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def time_call_cpu(fn: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall times and process CPU times (all threads) of ``runs`` calls of ``fn``, in ms."""
    wall, cpu = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
    return wall, cpu


def time_pair(ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int,
              warmup: int) -> dict[str, float]:
    """Median wall and CPU milliseconds of ``ours()`` and ``theirs()`` over two rounds in
    alternating order: {"ours", "theirs", "ours_cpu", "theirs_cpu"}."""
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for side in (0, 1, 1, 0):             # round 1: ours, theirs; round 2: theirs, ours
        fn = (ours, theirs)[side]
        time_call(fn, warmup)
        w, c = time_call_cpu(fn, repeat // 2)
        wall[side].extend(w)
        cpu[side].extend(c)
    return {"ours": statistics.median(wall[0]), "theirs": statistics.median(wall[1]),
            "ours_cpu": statistics.median(cpu[0]), "theirs_cpu": statistics.median(cpu[1])}


def gemm_peak(np: Any, torch: Any, size: int = 2048, runs: int = 10) -> tuple[float, float]:
    """GFLOP/s of one float32 (size x size) @ (size x size) product: NumPy's BLAS and torch's."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2 * size ** 3
    out = []
    for fn in (lambda: np.matmul(a, b), lambda: torch.matmul(ta, tb)):
        time_call(fn, 2)
        out.append(flops / statistics.median(time_call(fn, runs)) / 1e6)  # ms -> GFLOP/s
    return out[0], out[1]


def conv_flops() -> int:
    """Forward + both backward GEMMs of the conv workload: 3 x 2*N*L*C_out*K FLOPs."""
    n, c, h, w = CONV_SHAPE
    return 3 * 2 * n * h * w * 64 * c * 9


# ---------------------------------------------------------------------------------- workloads
# Each builder returns (deepnotes_fn, torch_fn): one call = one timed run.


def conv_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(CONV_SHAPE).astype(np.float32)
    w = (rng.standard_normal((64, CONV_SHAPE[1], 3, 3)) * 0.05).astype(np.float32)
    dn_x, dn_w = dn.tensor(x, requires_grad=True), dn.tensor(w, requires_grad=True)
    t_x, t_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)

    def ours() -> None:
        dn_x.grad = dn_w.grad = None
        dn.nn.functional.conv2d(dn_x, dn_w, padding=1).sum().backward()

    def theirs() -> None:
        t_x.grad = t_w.grad = None
        torch.nn.functional.conv2d(t_x, t_w, padding=1).sum().backward()

    return ours, theirs


def sgd_step_workload(np: Any, dn: Any, torch: Any, build: Callable[[Any], Any],
                      x_shape: tuple[int, ...]) -> tuple[Callable, Callable]:
    """One training step of the model ``build(nn)`` on a fixed random batch, in both frameworks."""
    from models import copy_weights

    dn_model, t_model = build(dn.nn), build(torch.nn)
    copy_weights(dn_model, t_model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    y = rng.integers(0, 10, size=x_shape[0])
    dn_x, dn_y, t_x, t_y = dn.tensor(x), dn.tensor(y), torch.tensor(x), torch.tensor(y)
    dn_opt = dn.optim.SGD(dn_model.parameters(), lr=0.01, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9)
    dn_loss, t_loss = dn.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    def ours() -> None:
        dn_opt.zero_grad()
        dn_loss(dn_model(dn_x), dn_y).backward()
        dn_opt.step()

    def theirs() -> None:
        t_opt.zero_grad()
        t_loss(t_model(t_x), t_y).backward()
        t_opt.step()

    return ours, theirs


def lenet_step_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    from models import lenet5

    return sgd_step_workload(np, dn, torch, lenet5, (128, 1, 28, 28))


def resnet_step_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    from models import resnet18_cifar

    return sgd_step_workload(np, dn, torch, resnet18_cifar, (16, 3, 32, 32))


def mlp_step_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    from models import mlp

    return sgd_step_workload(np, dn, torch, mlp, (256, 784))


def lstm_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    from models import copy_weights

    dn_model, t_model = dn.nn.LSTM(64, 128), torch.nn.LSTM(64, 128)
    copy_weights(dn_model, t_model)
    x = np.random.default_rng(2).standard_normal((32, 32, 64)).astype(np.float32)
    dn_x, t_x = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)

    def ours() -> None:
        dn_model.zero_grad()
        dn_x.grad = None
        dn_model(dn_x)[0].sum().backward()

    def theirs() -> None:
        t_model.zero_grad()
        t_x.grad = None
        t_model(t_x)[0].sum().backward()

    return ours, theirs


BUILDERS = {"conv": conv_workload, "lenet_step": lenet_step_workload,
            "resnet_step": resnet_step_workload, "lstm": lstm_workload,
            "mlp_step": mlp_step_workload}


# ------------------------------------------------------------------------------------- report


def load_average() -> str:
    """The 1, 5 and 15-minute load averages ("unknown" where the OS has none)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info(np: Any, torch: Any, dn: Any, threads: int) -> dict[str, Any]:
    """What the figures depend on: CPU, load, library versions, BLAS, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu,
            "cpu_count": os.cpu_count(), "load_average": load_average(), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "deepnotes": dn.__version__, "blas": _blas_info(),
            "dn_threads": dn.get_num_threads(), "torch_threads": torch.get_num_threads()}


def _blas_info() -> str:
    from threadpoolctl import threadpool_info

    libs = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
            if i.get("user_api") == "blas" and "numpy" in str(i.get("filepath", ""))]
    return "; ".join(libs) or "unknown"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workload | what | deepnotes ms | torch ms | ratio | target | met | "
             "CPU-time ratio |",
             "|---|---|---:|---:|---:|---:|:-:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['description']} | {r['deepnotes_ms']:.2f} | "
                     f"{r['torch_ms']:.2f} | {r['ratio']:.2f} | {r['target']:.1f} | "
                     f"{'yes' if r['ratio'] <= r['target'] else 'no'} | "
                     f"{r['cpu_ratio']:.2f} |")
    return "\n".join(lines)


def summary_lines(info: dict[str, Any], peak: dict[str, float], rows: list[dict[str, Any]],
                  repeat: int, warmup: int) -> list[str]:
    lines = [f"Machine: {info['cpu']}, {info['cpu_count']} CPUs visible, load average "
             f"{info['load_average']} at the start and {info['load_average_end']} at the end "
             f"(1, 5, 15 min); Python {info['python']}, NumPy "
             f"{info['numpy']} ({info['blas']}), torch {info['torch']}, deepnotes "
             f"{info['deepnotes']}. {info['threads']} thread(s) for both (BLAS "
             f"{info['dn_threads']}, torch {info['torch_threads']}); float32; median of "
             f"{repeat} runs per framework (two rounds in alternating order, {warmup} warm-up "
             f"runs before each block); {info['date']}.",
             "",
             f"GEMM peak (2048x2048 float32): np.matmul {peak['numpy_gflops']:.0f} GFLOP/s, "
             f"torch.matmul {peak['torch_gflops']:.0f} GFLOP/s."]
    conv = next((r for r in rows if r["workload"] == "conv"), None)
    if conv is not None:
        lines[-1] += (f" conv: deepnotes {conv['deepnotes_gflops']:.0f} GFLOP/s = "
                      f"{conv['fraction_of_numpy_peak']:.0%} of the np.matmul peak, torch "
                      f"{conv['torch_gflops']:.0f} GFLOP/s.")
    return lines


def write_docs(table: str, lines: list[str], rows: list[dict[str, Any]], threads: int,
               docs: Path = DOCS) -> None:
    """Replace the block for ``threads`` in docs/performance.md and redraw its chart."""
    begin = f"<!-- bench.py --threads {threads}: begin -->"
    end = f"<!-- bench.py --threads {threads}: end -->"
    text = docs.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{docs} has no '{begin}' ... '{end}' block to replace")
    chart = f"performance-threads{threads}.png"
    start, stop = text.index(begin) + len(begin), text.index(end)
    block = ("\n" + "\n".join(lines) + "\n\n" + table
             + f"\n\n![deepnotes / PyTorch time ratios, {threads} thread(s)]({chart})\n")
    docs.write_text(text[:start] + block + text[stop:])
    plot_ratios(rows, docs.parent / chart, threads)


def plot_ratios(rows: list[dict[str, Any]], path: Path, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["workload"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=80)
    bars = ax.bar(names, [r["ratio"] for r in rows], color="#4c72b0")
    for i, r in enumerate(rows):      # the target as a short red line over each bar
        ax.hlines(r["target"], i - 0.4, i + 0.4, colors="#c44e52", linewidth=2)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_ylabel("time / PyTorch's")
    ax.set_title(f"deepnotes / PyTorch, {threads} thread(s) (lower is better; red: target)",
                 fontsize=9)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_thread_env(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # models.py beside this file
    import numpy as np
    import torch

    import deepnotes as dn
    import deepnotes.nn  # noqa: F401
    import deepnotes.optim  # noqa: F401

    dn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    dn.manual_seed(0)
    torch.manual_seed(0)

    info = machine_info(np, torch, dn, args.threads)
    numpy_peak, torch_peak = gemm_peak(np, torch)
    peak = {"numpy_gflops": numpy_peak, "torch_gflops": torch_peak}
    rows = []
    for name in args.only or WORKLOADS:
        ours, theirs = BUILDERS[name](np, dn, torch)
        med = time_pair(ours, theirs, args.repeat, args.warmup)
        dn_ms, torch_ms = med["ours"], med["theirs"]
        description, target = WORKLOADS[name]
        row = {"workload": name, "description": description, "deepnotes_ms": dn_ms,
               "torch_ms": torch_ms, "ratio": dn_ms / torch_ms, "target": target,
               "deepnotes_cpu_ms": med["ours_cpu"], "torch_cpu_ms": med["theirs_cpu"],
               "cpu_ratio": med["ours_cpu"] / med["theirs_cpu"]}
        if name == "conv":
            row["deepnotes_gflops"] = conv_flops() / dn_ms / 1e6
            row["torch_gflops"] = conv_flops() / torch_ms / 1e6
            row["fraction_of_numpy_peak"] = row["deepnotes_gflops"] / numpy_peak
        rows.append(row)
        print(f"{name:<12} deepnotes {dn_ms:8.2f} ms  torch {torch_ms:8.2f} ms  "
              f"ratio {dn_ms / torch_ms:5.2f}  CPU-time ratio {row['cpu_ratio']:5.2f}",
              file=sys.stderr, flush=True)

    info["load_average_end"] = load_average()
    table = markdown_table(rows)
    lines = summary_lines(info, peak, rows, args.repeat, args.warmup)
    print("\n".join(lines) + "\n\n" + table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "repeat": args.repeat, "warmup": args.warmup,
                       "gemm_peak": peak, "results": rows}, f, indent=2)
            f.write("\n")
    if args.write_docs:
        write_docs(table, lines, rows, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
