"""Atomic saves under SIGKILL: kill a process that rewrites a checkpoint, at random moments, many
times; after every kill the file must load and hold either the old or the new content in full,
and the temporary files of killed writers must not pile up.

Starting a fresh Python for every kill would cost ~0.3 s of imports each, so a small "zygote"
process imports deepnotes once and forks one writer per round on request; the test kills the
writer with SIGKILL (no cleanup of any kind can run), asks the zygote to reap it, and inspects
what is on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np

import deepnotes as dn

ROUNDS = 30
N_FLOATS = 500_000  # 4 MB of float64 per checkpoint: a save takes milliseconds, not microseconds

ZYGOTE = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import deepnotes as dn

    path, n = sys.argv[1], int(sys.argv[2])

    def content(i):
        # The size varies with i too, so old and new files differ in length.
        return {"i": i, "w": np.full(n, float(i)), "tail": np.arange(i % 7 + 1)}

    # Warm up (imports inside save, page cache) and time one save, so that the test can spread
    # its kills over a few save periods however fast or slow this machine is right now.
    scratch = path + ".warmup"
    durations = []
    for _ in range(3):
        start = time.perf_counter()
        dn.save(content(0), scratch)
        durations.append(time.perf_counter() - start)
    os.unlink(scratch)
    os.write(1, f"ready {sorted(durations)[1]}\\n".encode())

    def write_forever(i):
        while True:
            dn.save(content(i), path)
            os.write(1, f"saved {i}\\n".encode())  # one write: lines never interleave
            i += 1

    while True:
        line = sys.stdin.readline()
        if not line:
            break
        command, arg = line.split()
        if command == "start":
            pid = os.fork()
            if pid == 0:
                try:
                    write_forever(int(arg))
                finally:
                    os._exit(1)
            os.write(1, f"pid {pid}\\n".encode())
        elif command == "reap":
            os.waitpid(int(arg), 0)
            os.write(1, b"reaped\\n")
""")


def _check_content(path, i):
    loaded = dn.load(path)
    assert loaded["i"] == i
    assert loaded["w"].shape == (N_FLOATS,) and bool((loaded["w"] == float(i)).all())
    np.testing.assert_array_equal(loaded["tail"], np.arange(i % 7 + 1))


def _temporaries(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_sigkill_at_random_moments_leaves_old_or_new_checkpoint(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    script = tmp_path / "zygote.py"
    script.write_text(ZYGOTE)
    dn.save({"i": 0, "w": np.full(N_FLOATS, 0.0), "tail": np.arange(1)}, path)

    zygote = subprocess.Popen([sys.executable, str(script), str(path), str(N_FLOATS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    watchdog = threading.Timer(60, zygote.kill)  # a hung zygote fails the test, never hangs it
    watchdog.start()
    rng = np.random.default_rng(0)
    word, value = zygote.stdout.readline().decode().split()
    assert word == "ready"
    save_time = float(value)

    def send(command):
        zygote.stdin.write(f"{command}\n".encode())
        zygote.stdin.flush()

    def receive():  # the next line, split into words
        line = zygote.stdout.readline().decode()
        assert line, "the zygote process died"
        return line.split()

    current, writer, killed_mid_write, most_temporaries = 0, None, 0, 0
    try:
        for _ in range(ROUNDS):
            send(f"start {current + 1}")
            saved = []
            while writer is None:  # the writer's first "saved" may come before the zygote's "pid"
                word, value = receive()
                if word == "pid":
                    writer = int(value)
                else:
                    saved.append(int(value))
            # A random moment: during the 1st, 2nd or 3rd save (encoding, writing, renaming).
            threading.Event().wait(rng.uniform(0.0, 3 * save_time))
            os.kill(writer, signal.SIGKILL)
            send(f"reap {writer}")
            while (reply := receive()) != ["reaped"]:
                saved.append(int(reply[1]))  # everything the writer reported before it died

            last_done = saved[-1] if saved else current
            on_disk = dn.load(path)["i"]  # must load: never a torn file
            assert on_disk in (last_done, last_done + 1), (on_disk, last_done)
            _check_content(path, on_disk)

            temporaries = _temporaries(tmp_path)
            if any(f".{writer}." in name for name in temporaries):
                killed_mid_write += 1
            # The next writer's first save removes the temporaries of dead writers, so at most
            # the last two writers' can be there at any time.
            assert len(temporaries) <= 2, temporaries
            most_temporaries = max(most_temporaries, len(temporaries))
            current, writer = on_disk, None
    finally:
        if writer is not None:
            os.kill(writer, signal.SIGKILL)
        watchdog.cancel()
        zygote.stdin.close()
        zygote.kill()
        zygote.wait(timeout=10)

    # About a third of the kills land between mkstemp and os.replace (the rest during encoding
    # or the directory fsync); none at all would mean the test no longer tests a torn write.
    assert killed_mid_write >= 1, f"none of the {ROUNDS} kills hit a write"
    dn.save({"i": -1, "w": np.zeros(N_FLOATS), "tail": np.arange(1)}, path)
    assert _temporaries(tmp_path) == []  # a clean save removes what the killed writers left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors", "zygote.py"]
