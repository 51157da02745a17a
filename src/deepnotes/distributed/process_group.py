"""The default process group on MPI: start-up, rank and size, and what happens when a rank fails.

A *process group* is the set of processes that take part in collectives. deepnotes has one, the
world of ``mpiexec -n N``: MPI starts the N processes, gives each its rank 0..N-1, and moves the
bytes (shared memory on one machine, the cluster's network across machines). Nothing here is a
home-made transport: ``mpi4py`` calls the MPI library, and MPI is imported only when
:func:`init_process_group` runs, so ``import deepnotes`` never loads it.

**Failure of one rank.** Collectives block until every rank has joined. If rank 1 raises while
rank 0 waits in an all-reduce, rank 0 would wait forever. :func:`init_process_group` therefore
installs a ``sys.excepthook`` (with more than one rank): an uncaught exception prints its
traceback with the rank, then a one-line summary, and calls ``MPI_Abort``, which makes ``mpiexec``
end every rank with a non-zero exit status.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

#: Seconds a failing rank waits between writing its message and MPI_Abort (see _say_then_abort).
ABORT_GRACE_SECONDS = 0.5

_NOT_INITIALISED = ("Default process group has not been initialized, please make sure to call "
                    "init_process_group.")


class _State:
    comm: Any = None          # mpi4py.MPI.Comm (a duplicate of COMM_WORLD) or None
    MPI: Any = None           # the mpi4py.MPI module, once loaded
    rank: int = 0
    world_size: int = 1
    previous_excepthook: Any = None


_state = _State()


class _World:
    """``group.WORLD``: the only group deepnotes has (every rank of ``mpiexec``)."""

    def __repr__(self) -> str:
        return "<deepnotes.distributed.group.WORLD>"


class group:  # noqa: N801 - torch.distributed.group
    WORLD = _World()


def is_available() -> bool:
    """True if mpi4py (and with it an MPI library) can be imported."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_available() -> bool:
    return is_available()


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has run (and :func:`destroy_process_group` has not)."""
    return _state.comm is not None


def _load_mpi() -> Any:
    if _state.MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as error:  # pragma: no cover - the mpi extra is installed in dev
            raise RuntimeError(
                "deepnotes.distributed needs mpi4py and an MPI library: pip install -e '.[mpi]' "
                "(or pip install mpi4py mpich); see docs/distributed.md"
            ) from error
        _state.MPI = MPI
    return _state.MPI


def init_process_group(backend: str | None = "mpi", init_method: str | None = None,
                       timeout: Any = None, world_size: int = -1, rank: int = -1,
                       store: Any = None, group_name: str = "", pg_options: Any = None) -> None:
    """Join the default process group: every process started by ``mpiexec -n N``.

    As ``torch.distributed.init_process_group``, with MPI as the only backend: rank and world
    size come from MPI (``mpiexec``), so ``world_size`` and ``rank`` may be left at -1 or must
    agree with MPI's. A plain ``python script.py`` (no mpiexec) is a world of one.

    Args:
        backend: "mpi" (or None, meaning "mpi").
        init_method, store, group_name, pg_options: accepted for PyTorch compatibility; MPI's
            launcher has already connected the processes, so they must be left at their defaults.
        timeout: not supported by MPI collectives (a failing rank aborts the others instead:
            see the module docstring); must be None.
        world_size, rank: -1, or the values MPI assigned.

    Raises:
        RuntimeError: called twice without :func:`destroy_process_group` in between.
        ValueError: another backend, or a world_size/rank that differs from MPI's.
    """
    if is_initialized():
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend is not None and str(backend).lower() != "mpi":
        raise ValueError(f"init_process_group(): deepnotes runs on MPI only, expected "
                         f"backend='mpi', got backend={backend!r}")
    for name, value, default in (("init_method", init_method, None), ("store", store, None),
                                 ("timeout", timeout, None), ("pg_options", pg_options, None)):
        if value is not default:
            raise ValueError(f"init_process_group(): {name} is not used with MPI (mpiexec "
                             f"connects the processes); expected {name}=None, got {value!r}")
    MPI = _load_mpi()
    comm = MPI.COMM_WORLD.Dup()  # our own communicator: user MPI code cannot mix with ours
    for name, value, actual in (("world_size", world_size, comm.Get_size()),
                                ("rank", rank, comm.Get_rank())):
        if value not in (-1, actual):
            comm.Free()
            raise ValueError(f"init_process_group(): {name}={value} but MPI started this process "
                             f"with {name}={actual} (mpiexec -n decides both; leave them at -1)")
    _state.comm, _state.rank, _state.world_size = comm, comm.Get_rank(), comm.Get_size()
    if _state.world_size > 1:
        _state.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_uncaught_exception


def destroy_process_group(group: Any = None) -> None:
    """Leave the default process group (MPI itself is finalised when the process exits)."""
    _check_group(group)
    if _state.comm is None:
        raise ValueError(_NOT_INITIALISED)
    comm = _state.comm
    _state.comm, _state.rank, _state.world_size = None, 0, 1
    if _state.previous_excepthook is not None:
        sys.excepthook = _state.previous_excepthook
        _state.previous_excepthook = None
    comm.Free()


def _check_group(group: Any) -> None:
    if group is not None and not isinstance(group, _World):
        raise ValueError(f"deepnotes.distributed has one process group (group=None or "
                         f"group.WORLD), got group={group!r}")


def _comm(group: Any = None) -> Any:
    _check_group(group)
    if _state.comm is None:
        raise ValueError(_NOT_INITIALISED)
    return _state.comm


def get_rank(group: Any = None) -> int:
    """This process's rank, 0..world_size-1 (rank 0 writes checkpoints and prints)."""
    _comm(group)
    return _state.rank


def get_world_size(group: Any = None) -> int:
    """The number of processes (``mpiexec -n N``)."""
    _comm(group)
    return _state.world_size


def get_backend(group: Any = None) -> str:
    _comm(group)
    return "mpi"


def abort(message: str, exit_code: int = 1) -> None:
    """End every rank via ``MPI_Abort`` after printing ``message`` (with the rank) to stderr.

    For a rank that has to stop while the others may be waiting in a collective (e.g. a loss
    that became nan on this rank's shard only). Does nothing, and returns, outside a process
    group of two or more ranks: the caller then exits in its usual way.
    """
    rank, size = _state.rank, _state.world_size
    if _state.comm is None or size == 1:
        return
    _say_then_abort(f"deepnotes.distributed: rank {rank} of {size}: {message}; aborting all "
                    f"{size} ranks (MPI_Abort)\n", exit_code)


def _say_then_abort(text: str, exit_code: int) -> None:
    """Write ``text`` to stderr in one piece, give mpiexec a moment to forward it, then
    MPI_Abort: the launcher kills every rank at once and drops output still in its pipes (seen in
    CI: the traceback arrived, the message written after it did not)."""
    sys.stderr.write(text)
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_SECONDS)
    try:
        _state.MPI.COMM_WORLD.Abort(exit_code)
    finally:  # Abort does not return; if it ever did, do not linger
        os._exit(exit_code)


def _abort_on_uncaught_exception(exc_type: type, exc: BaseException, tb: Any) -> None:
    rank, size = _state.rank, _state.world_size
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    _say_then_abort(
        "".join(f"[rank {rank}] {line}\n" for line in text.rstrip().split("\n"))
        + f"deepnotes.distributed: rank {rank} of {size} raised {exc_type.__name__}: {exc}\n"
        f"deepnotes.distributed: aborting all {size} ranks (MPI_Abort), so that none waits "
        f"forever in a collective\n", 1)
