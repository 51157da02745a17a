"""Profile the deepnotes side of one bench.py workload with pyinstrument.

    python benchmarks/profile_step.py resnet_step [--steps 5] [--threads 2] [--html out.html]

Prints pyinstrument's call tree (time per function, inclusive) after ``--warmup`` untimed steps,
and a flat list of the functions with the most *self* time, which is where optimisation pays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import BUILDERS, set_thread_env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=list(BUILDERS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--html", help="also write pyinstrument's HTML report here")
    args = p.parse_args(argv)
    set_thread_env(args.threads)
    import numpy as np
    import torch
    from pyinstrument import Profiler

    import deepnotes as dn
    import deepnotes.nn  # noqa: F401
    import deepnotes.optim  # noqa: F401

    dn.set_num_threads(args.threads)
    dn.manual_seed(0)
    ours, _ = BUILDERS[args.workload](np, dn, torch)
    for _ in range(args.warmup):
        ours()
    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(args.steps):
            ours()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(flat_self_times(profiler.last_session.root_frame(), profiler.last_session.duration))
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    return 0


def flat_self_times(root, total: float, top: int = 25) -> str:
    """Self time per (function, file:line), summed over the whole call tree, largest first."""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        owner = frame.parent if frame.function == "[self]" and frame.parent else frame
        key = f"{owner.function} ({Path(owner.file_path or '?').name}:{owner.line_no})"
        if not frame.children:       # a leaf's time is all its own
            totals[key] = totals.get(key, 0.0) + frame.time
        stack.extend(frame.children)
    lines = [f"self time, top {top} (total {total:.3f} s):"]
    for key, t in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {t:7.3f} s  {t / total:5.1%}  {key}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
