"""Launch ``mpiexec -n N`` from a pytest test, with a timeout, and collect its RESULT lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mpiexec() -> str:
    """The mpiexec that belongs to this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    assert found, "mpiexec not found: pip install -e '.[mpi]' (docs/distributed.md)"
    return found


def environment() -> dict[str, str]:
    """One BLAS thread per rank (2 ranks on 2 cores), and the repo importable."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "src"),
                                                      env.get("PYTHONPATH", "")]))
    return env


def run(args: list[str], n: int = 2, timeout: float = 120, cwd: Path = ROOT
        ) -> subprocess.CompletedProcess:
    """``mpiexec -n n ARGS``; a hang fails the test after ``timeout`` seconds instead of CI's."""
    # MPICH's hydra runs more ranks than cores without a flag (no --oversubscribe needed)
    return subprocess.run([mpiexec(), "-n", str(n), *args], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=timeout)


def results(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    assert proc.returncode == 0, \
        f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            record = json.loads(line[len("RESULT "):])
            found[record.pop("case")] = record
    return found
