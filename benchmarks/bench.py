"""deepnotes vs PyTorch (CPU), same process, same thread count, float32.

    python benchmarks/bench.py [--repeat 20] [--warmup 3] [--threads 2] [--json out.json]

Workloads:
    conv2d   F.conv2d 3x3, stride 1, pad 1, no bias; x (32, 64, 32, 32), w (64, 64, 3, 3);
             forward + backward of y.sum() (gradients of x and w)
    lenet5   one SGD step of LeNet-5 (cross-entropy), batch 128x1x28x28
    mlp      one SGD step of an MLP 784-512-512-10 (cross-entropy), batch 256
    lstm     nn.LSTM(64, 128), one layer, time-major x (32, 32, 64) (T, N, input);
             forward + backward of out.sum() (gradients of x and every parameter)

Each workload runs, per framework, ``--warmup`` untimed and ``--repeat`` timed runs, in two blocks
ordered deepnotes, torch, torch, deepnotes; the table shows the median in milliseconds and the
ratio deepnotes / torch (lower is better, 1.0 = as fast as PyTorch).

NumPy's BLAS reads its thread count from the environment when it is first imported, so this
script sets OMP/OPENBLAS/MKL thread variables from ``--threads`` before importing NumPy, and calls
``torch.set_num_threads`` with the same number.
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
from datetime import datetime
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
WORKLOADS = ("conv2d", "lenet5", "mlp", "lstm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=20, help="timed runs per workload (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    p.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and torch")
    p.add_argument("--only", choices=WORKLOADS, action="append",
                   help="run only this workload (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--repeat and --threads must be >= 1, --warmup >= 0")
    return args


def time_pair(ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int,
              warmup: int) -> tuple[float, float]:
    """Median wall times of ``ours()`` and ``theirs()`` in milliseconds.

    Timed in blocks ordered ours, theirs, theirs, ours (ABBA), each block starting with ``warmup``
    untimed runs, so that slow drift of the machine's load affects both sides alike. Runs are not
    interleaved one by one: after a call, each framework's worker threads keep spinning for a
    moment (OpenBLAS for NumPy, OpenMP for torch) and would steal the cores from the other side.
    """
    times: tuple[list[float], list[float]] = ([], [])
    half = max(1, repeat // 2)
    for side in (0, 1, 1, 0):
        fn = (ours, theirs)[side]
        for _ in range(warmup):
            fn()
        for _ in range(half):
            start = time.perf_counter()
            fn()
            times[side].append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


# -- workloads: each returns (deepnotes_fn, torch_fn) built from the same data ------------------
def conv2d_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    dn_x = dn.tensor(x, requires_grad=True)
    dn_w = dn.tensor(w, requires_grad=True)
    t_x = torch.tensor(x, requires_grad=True)
    t_w = torch.tensor(w, requires_grad=True)

    def ours() -> None:
        dn_x.grad = dn_w.grad = None
        dn.nn.functional.conv2d(dn_x, dn_w, padding=1).sum().backward()

    def theirs() -> None:
        t_x.grad = t_w.grad = None
        torch.nn.functional.conv2d(t_x, t_w, padding=1).sum().backward()

    return ours, theirs


def _sgd_step_workload(np: Any, dn: Any, torch: Any, dn_model: Any, t_model: Any,
                       x_shape: tuple[int, ...]) -> tuple[Callable, Callable]:
    # Same weights in both: copy deepnotes' init into torch by state_dict name.
    t_model.load_state_dict({k: torch.from_numpy(np.array(v.data))
                             for k, v in dn_model.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    y = rng.integers(0, 10, size=x_shape[0])
    dn_x, dn_y = dn.tensor(x), dn.tensor(y)
    t_x, t_y = torch.tensor(x), torch.tensor(y)
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


def lenet5_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    from deepnotes.models import lenet5

    tnn = torch.nn

    class TorchLeNet5(tnn.Module):  # same attribute names, so state_dict keys match ours
        def __init__(self) -> None:
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2),
                                           tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2))
            self.classifier = tnn.Sequential(tnn.Linear(256, 120), tnn.ReLU(),
                                             tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x).flatten(1))

    t_model = TorchLeNet5()
    return _sgd_step_workload(np, dn, torch, lenet5(), t_model, (128, 1, 28, 28))


def mlp_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    dnn, tnn = dn.nn, torch.nn
    dn_model = dnn.Sequential(dnn.Linear(784, 512), dnn.ReLU(), dnn.Linear(512, 512), dnn.ReLU(),
                              dnn.Linear(512, 10))
    t_model = tnn.Sequential(tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 512), tnn.ReLU(),
                             tnn.Linear(512, 10))
    return _sgd_step_workload(np, dn, torch, dn_model, t_model, (256, 784))


def lstm_workload(np: Any, dn: Any, torch: Any) -> tuple[Callable, Callable]:
    dn_model, t_model = dn.nn.LSTM(64, 128), torch.nn.LSTM(64, 128)
    t_model.load_state_dict({k: torch.from_numpy(np.array(v.data))
                             for k, v in dn_model.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((32, 32, 64)).astype(np.float32)
    dn_x = dn.tensor(x, requires_grad=True)
    t_x = torch.tensor(x, requires_grad=True)

    def ours() -> None:
        dn_model.zero_grad()
        dn_x.grad = None
        dn_model(dn_x)[0].sum().backward()

    def theirs() -> None:
        t_model.zero_grad()
        t_x.grad = None
        t_model(t_x)[0].sum().backward()

    return ours, theirs


DESCRIPTIONS = {
    "conv2d": "conv2d 3x3 fwd+bwd, 32x64x32x32",
    "lenet5": "LeNet-5 SGD step, batch 128",
    "mlp": "MLP 784-512-512-10 SGD step, batch 256",
    "lstm": "LSTM 64->128 fwd+bwd, T=32, N=32",
}
BUILDERS = {"conv2d": conv2d_workload, "lenet5": lenet5_workload, "mlp": mlp_workload,
            "lstm": lstm_workload}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in THREAD_VARS:  # must precede the first import of numpy
        os.environ[var] = str(args.threads)
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread variables were set", file=sys.stderr)

    import numpy as np
    import torch

    import deepnotes as dn
    import deepnotes.nn  # noqa: F401
    import deepnotes.optim  # noqa: F401

    torch.set_num_threads(args.threads)
    dn.manual_seed(0)
    torch.manual_seed(0)

    blas = _blas_info()
    header = (f"deepnotes {dn.__version__} vs torch {torch.__version__} | numpy {np.__version__} "
              f"({blas}) | {args.threads} thread(s), {os.cpu_count()} CPUs visible | "
              f"float32, median of {args.repeat} after {args.warmup} warm-up")
    print(header)
    rows = []
    for name in args.only or WORKLOADS:
        ours, theirs = BUILDERS[name](np, dn, torch)
        dn_ms, torch_ms = time_pair(ours, theirs, args.repeat, args.warmup)
        rows.append({"workload": name, "description": DESCRIPTIONS[name],
                     "deepnotes_ms": round(dn_ms, 3), "torch_ms": round(torch_ms, 3),
                     "ratio": round(dn_ms / torch_ms, 3)})

    width = max(len(r["description"]) for r in rows)
    print(f"{'workload':<{width}}  {'deepnotes ms':>12}  {'torch ms':>9}  {'ratio':>6}")
    for r in rows:
        print(f"{r['description']:<{width}}  {r['deepnotes_ms']:>12.2f}  {r['torch_ms']:>9.2f}  "
              f"{r['ratio']:>6.2f}")

    if args.json:
        payload = {"date": datetime.now().isoformat(timespec="seconds"), "threads": args.threads,
                   "repeat": args.repeat, "warmup": args.warmup, "numpy": np.__version__,
                   "torch": torch.__version__, "deepnotes": dn.__version__, "blas": blas,
                   "python": platform.python_version(), "cpu_count": os.cpu_count(),
                   "processor": platform.processor() or platform.machine(), "results": rows}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
    return 0


def _blas_info() -> str:
    """NumPy's BLAS library and its thread count, if threadpoolctl (a scikit-learn dep) is here."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS unknown"
    libs = [f"{i.get('internal_api')} {i.get('version')}, {i.get('num_threads')} threads"
            for i in threadpool_info() if i.get("user_api") == "blas"
            and "numpy" in str(i.get("filepath", ""))]
    return "; ".join(libs) or "BLAS unknown"


if __name__ == "__main__":
    sys.exit(main())
