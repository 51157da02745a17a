"""Peak resident memory added by the resnet_step loop: deepnotes vs PyTorch (issue 7: <= 1.5x).

    python benchmarks/memory.py [--steps 3] [--threads 2]

Each framework runs in its own child process (``--child dn`` / ``--child torch``), so that one's
allocations cannot hide in the other's freed memory. The child builds the model, the batch and the
optimiser, then resets the kernel's high-water mark (writing 5 to /proc/self/clear_refs sets VmHWM
to the current VmRSS) and runs ``--steps`` SGD steps; "added" is VmHWM after the loop minus VmRSS
before it. tracemalloc would miss NumPy's and torch's buffers allocated in C; VmHWM counts every
resident page. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def vm_kib(field: str) -> int:
    """A field of /proc/self/status in KiB, e.g. 'VmRSS' or 'VmHWM'."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1])


def child(framework: str, steps: int, threads: int) -> dict[str, float]:
    from bench import set_thread_env

    set_thread_env(threads)
    import numpy as np
    from models import resnet18_cifar

    if framework == "dn":              # the torch child never imports deepnotes, and vice versa
        import deepnotes as lib
        import deepnotes.nn  # noqa: F401
        import deepnotes.optim  # noqa: F401
    else:
        import torch as lib
    lib.set_num_threads(threads)
    lib.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=16)
    model = resnet18_cifar(lib.nn)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = lib.nn.CrossEntropyLoss()
    x, y = lib.tensor(x), lib.tensor(y)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                    # VmHWM := VmRSS
    before = vm_kib("VmRSS")
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return {"rss_before_mib": before / 1024, "peak_mib": vm_kib("VmHWM") / 1024,
            "added_mib": (vm_kib("VmHWM") - before) / 1024}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", choices=("dn", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.threads)))
        return 0
    results = {}
    for framework in ("dn", "torch"):
        out = subprocess.run([sys.executable, __file__, "--child", framework, "--steps",
                              str(args.steps), "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True).stdout
        results[framework] = json.loads(out.strip().splitlines()[-1])
    ratio = results["dn"]["added_mib"] / results["torch"]["added_mib"]
    print(f"resnet_step, batch 16, {args.steps} steps, peak RSS added by the loop (MiB):")
    print("| framework | RSS before loop | peak during loop | added |")
    print("|---|---:|---:|---:|")
    for name, label in (("dn", "deepnotes"), ("torch", "PyTorch")):
        r = results[name]
        print(f"| {label} | {r['rss_before_mib']:.0f} | {r['peak_mib']:.0f} | "
              f"{r['added_mib']:.0f} |")
    print(f"ratio deepnotes / PyTorch: {ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
