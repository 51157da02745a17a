"""Collectives on Tensors, in place, through MPI's buffer interface (no pickling).

Every rank calls the same collective in the same order; each works on ``tensor.data``'s memory
directly (mpi4py hands NumPy's buffer to MPI), so nothing is serialised:

    all_reduce(t, op)          t_r <- op over ranks of t          (every rank gets the result)
    broadcast(t, src)          t_r <- t_src
    all_gather(list, t)        list[k] <- t_k                     (every rank gets every piece)
    reduce_scatter(out, list)  out_r <- op over ranks k of list_k[r]
    reduce(t, dst, op)         t_dst <- op over ranks of t        (other ranks keep theirs)

all_reduce = reduce_scatter followed by all_gather: this is how the ring algorithm moves
2 (p-1)/p x bytes per rank, whatever p (docs/distributed.md). With ``async_op=True`` a collective
starts (MPI's non-blocking ``I...`` call) and returns a :class:`Work` whose ``wait()`` finishes it.
Non-contiguous tensors go through a contiguous copy that is written back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor
from .process_group import _comm, _state


class ReduceOp(enum.Enum):
    """How values from the ranks combine (``torch.distributed.ReduceOp``).

    AVG is SUM divided by the world size (floating tensors only).
    """

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"
    AVG = "avg"

    def __repr__(self) -> str:
        return f"<ReduceOp.{self.name}>"


def _mpi_op(op: Any) -> Any:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a deepnotes.distributed.ReduceOp, got {op!r}")
    MPI = _state.MPI
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


_SUPPORTED = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
              "complex64", "complex128")


def _array(tensor: Any, name: str, who: str) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{who}(): {name} must be a deepnotes Tensor, got "
                        f"{type(tensor).__name__}")
    array = tensor.data
    if array.dtype.name not in _SUPPORTED:
        raise TypeError(f"{who}(): {name} has dtype {array.dtype}, which MPI cannot reduce; "
                        f"expected one of {', '.join(_SUPPORTED)}")
    if not array.flags.writeable:
        raise RuntimeError(f"{who}(): {name} is read-only (a broadcast view?); collectives write "
                           "their result in place, pass a tensor that owns its memory")
    return array


def _check_avg(op: ReduceOp, array: np.ndarray, who: str) -> None:
    if op is ReduceOp.AVG and array.dtype.kind not in "fc":
        raise TypeError(f"{who}(): ReduceOp.AVG needs a floating tensor, got dtype "
                        f"{array.dtype} (use ReduceOp.SUM and divide)")


class Work:
    """A started collective (``async_op=True``): ``wait()`` blocks until it has finished."""

    def __init__(self, request: Any = None, finish: Callable[[], None] | None = None):
        self._request, self._finish, self._done = request, finish, False

    def is_completed(self) -> bool:
        if not self._done and self._request is not None and self._request.Test():
            self._complete()
        return self._done or self._request is None

    def wait(self, timeout: Any = None) -> bool:
        if not self._done:
            if self._request is not None:
                self._request.Wait()
            self._complete()
        return True

    def _complete(self) -> None:
        if not self._done:
            self._done = True
            if self._finish is not None:
                self._finish()


def _run(start: Callable[[], Any], finish: Callable[[], None] | None, async_op: bool
         ) -> Work | None:
    """Blocking (start() returns None) or non-blocking (start() returns an MPI request)."""
    request = start()
    work = Work(request, finish)
    if async_op:
        return work
    work.wait()
    return None


def _contiguous(array: np.ndarray) -> tuple[np.ndarray, Callable[[], None] | None]:
    """A C-contiguous buffer for ``array`` and the write-back that the copy (if any) needs."""
    if array.flags.c_contiguous:
        return array, None
    buffer = np.ascontiguousarray(array)

    def write_back() -> None:
        array[...] = buffer

    return buffer, write_back


def _chain(*steps: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:
        for step in steps:
            if step is not None:
                step()
    return run


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: Any = None,
               async_op: bool = False) -> Work | None:
    """Combine ``tensor`` over all ranks with ``op``; every rank gets the result, in place.

    As ``torch.distributed.all_reduce``. Returns None, or a :class:`Work` with ``async_op``.
    """
    comm = _comm(group)
    array = _array(tensor, "tensor", "all_reduce")
    _check_avg(op, array, "all_reduce")
    mpi_op = _mpi_op(op)
    buffer, write_back = _contiguous(array)
    MPI = _state.MPI
    size = _state.world_size

    def average() -> None:
        if op is ReduceOp.AVG:
            buffer[...] /= size

    if async_op:
        start = lambda: comm.Iallreduce(MPI.IN_PLACE, buffer, op=mpi_op)  # noqa: E731
    else:
        start = lambda: comm.Allreduce(MPI.IN_PLACE, buffer, op=mpi_op)  # noqa: E731
    work = _run(start, _chain(average, write_back), async_op)
    tensor._version += 1
    return work


def broadcast(tensor: Tensor, src: int, group: Any = None, async_op: bool = False
              ) -> Work | None:
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every rank (in place)."""
    comm = _comm(group)
    _check_rank(src, "src", "broadcast")
    array = _array(tensor, "tensor", "broadcast")
    buffer, write_back = _contiguous(array)
    if async_op:
        start = lambda: comm.Ibcast(buffer, root=src)  # noqa: E731
    else:
        start = lambda: comm.Bcast(buffer, root=src)  # noqa: E731
    work = _run(start, write_back, async_op)
    tensor._version += 1
    return work


def reduce(tensor: Tensor, dst: int, op: ReduceOp = ReduceOp.SUM, group: Any = None,
           async_op: bool = False) -> Work | None:
    """Combine ``tensor`` over all ranks into rank ``dst``'s ``tensor``; the others keep theirs."""
    comm = _comm(group)
    _check_rank(dst, "dst", "reduce")
    array = _array(tensor, "tensor", "reduce")
    _check_avg(op, array, "reduce")
    mpi_op = _mpi_op(op)
    buffer, write_back = _contiguous(array)
    MPI = _state.MPI
    root = _state.rank == dst
    send = MPI.IN_PLACE if root else buffer
    receive = buffer if root else None

    def average() -> None:
        if op is ReduceOp.AVG and root:
            buffer[...] /= _state.world_size

    if async_op:
        start = lambda: comm.Ireduce(send, receive, op=mpi_op, root=dst)  # noqa: E731
    else:
        start = lambda: comm.Reduce(send, receive, op=mpi_op, root=dst)  # noqa: E731
    work = _run(start, _chain(average, write_back if root else None), async_op)
    tensor._version += 1
    return work


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: Any = None,
               async_op: bool = False) -> Work | None:
    """Fill ``tensor_list[k]`` with rank k's ``tensor`` on every rank.

    Every rank's ``tensor`` must have the same shape and dtype, and ``tensor_list`` holds
    world_size tensors of that shape and dtype (written in place).
    """
    comm = _comm(group)
    size = _state.world_size
    source = _array(tensor, "tensor", "all_gather")
    outputs = _check_list(tensor_list, "tensor_list", source, size, "all_gather")
    gathered = np.empty((size, *source.shape), dtype=source.dtype)   # (p, *shape)
    send = np.ascontiguousarray(source)

    def scatter_out() -> None:
        for k, out in enumerate(outputs):
            out[...] = gathered[k]
        for t in tensor_list:
            t._version += 1

    if async_op:
        start = lambda: comm.Iallgather(send, gathered)  # noqa: E731
    else:
        start = lambda: comm.Allgather(send, gathered)  # noqa: E731
    return _run(start, scatter_out, async_op)


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group: Any = None,
                           async_op: bool = False) -> Work | None:
    """All ranks' ``input_tensor`` concatenated along dim 0 (or stacked) into ``output_tensor``.

    ``output_tensor`` has shape (p * n, ...) for an input of shape (n, ...), or (p, n, ...).
    """
    comm = _comm(group)
    size = _state.world_size
    source = _array(input_tensor, "input_tensor", "all_gather_into_tensor")
    output = _array(output_tensor, "output_tensor", "all_gather_into_tensor")
    _check_stacked(output, source, size, "output_tensor", "all_gather_into_tensor")
    buffer, write_back = _contiguous(output)
    send = np.ascontiguousarray(source)
    if async_op:
        start = lambda: comm.Iallgather(send, buffer)  # noqa: E731
    else:
        start = lambda: comm.Allgather(send, buffer)  # noqa: E731
    work = _run(start, write_back, async_op)
    output_tensor._version += 1
    return work


def _reduce_scatter_block(comm: Any, send: np.ndarray, target: np.ndarray, op: ReduceOp,
                          async_op: bool) -> Work | None:
    """MPI_Reduce_scatter_block of ``send`` (p blocks) into ``target``, averaged for AVG."""
    size = _state.world_size
    mpi_op = _mpi_op(op)
    buffer, write_back = _contiguous(target)

    def average() -> None:
        if op is ReduceOp.AVG:
            buffer[...] /= size

    if async_op:
        start = lambda: comm.Ireduce_scatter_block(send, buffer, op=mpi_op)  # noqa: E731
    else:
        start = lambda: comm.Reduce_scatter_block(send, buffer, op=mpi_op)  # noqa: E731
    return _run(start, _chain(average, write_back), async_op)


def reduce_scatter(output: Tensor, input_list: list[Tensor], op: ReduceOp = ReduceOp.SUM,
                   group: Any = None, async_op: bool = False) -> Work | None:
    """``output`` on rank r <- op over ranks k of ``input_list[r]`` on rank k.

    ``input_list`` holds world_size tensors of ``output``'s shape and dtype.
    """
    comm = _comm(group)
    size = _state.world_size
    target = _array(output, "output", "reduce_scatter")
    inputs = _check_list(input_list, "input_list", target, size, "reduce_scatter")
    _check_avg(op, target, "reduce_scatter")
    stacked = np.empty((size, *target.shape), dtype=target.dtype)    # (p, *shape)
    for k, piece in enumerate(inputs):
        stacked[k] = piece
    work = _reduce_scatter_block(comm, stacked, target, op, async_op)
    output._version += 1
    return work


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: ReduceOp = ReduceOp.SUM,  # noqa: A002
                          group: Any = None, async_op: bool = False) -> Work | None:
    """``input`` of shape (p * n, ...) (or (p, n, ...)): rank r gets op over ranks of block r."""
    comm = _comm(group)
    size = _state.world_size
    target = _array(output, "output", "reduce_scatter_tensor")
    source = _array(input, "input", "reduce_scatter_tensor")
    _check_stacked(source, target, size, "input", "reduce_scatter_tensor")
    _check_avg(op, target, "reduce_scatter_tensor")
    send = np.ascontiguousarray(source)
    work = _reduce_scatter_block(comm, send, target, op, async_op)
    output._version += 1
    return work


def barrier(group: Any = None, async_op: bool = False, device_ids: Any = None) -> Work | None:
    """Wait until every rank has reached this call."""
    comm = _comm(group)
    if async_op:
        return _run(comm.Ibarrier, None, True)
    comm.Barrier()
    return None


# -- checks ---------------------------------------------------------------------------------------
def _check_rank(value: Any, name: str, who: str) -> None:
    size = _state.world_size
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not 0 <= value < size:
        raise ValueError(f"{who}(): {name} must be a rank in 0..{size - 1}, got {name}={value!r}")


def _check_list(tensors: Sequence[Any], name: str, like: np.ndarray, size: int, who: str
                ) -> list[np.ndarray]:
    if not isinstance(tensors, list | tuple) or len(tensors) != size:
        got = len(tensors) if isinstance(tensors, list | tuple) else type(tensors).__name__
        raise ValueError(f"{who}(): {name} must be a list of world_size={size} tensors, got "
                         f"{got}")
    arrays = [_array(t, f"{name}[{k}]", who) for k, t in enumerate(tensors)]
    for k, array in enumerate(arrays):
        if array.shape != like.shape or array.dtype != like.dtype:
            raise ValueError(f"{who}(): {name}[{k}] has shape {tuple(array.shape)} and dtype "
                             f"{array.dtype}, expected shape {tuple(like.shape)} and dtype "
                             f"{like.dtype}")
    return arrays


def _check_stacked(big: np.ndarray, piece: np.ndarray, size: int, name: str, who: str) -> None:
    concatenated = (piece.shape[0] * size, *piece.shape[1:]) if piece.ndim else (size,)
    stacked = (size, *piece.shape)
    if big.shape not in (concatenated, stacked) or big.dtype != piece.dtype:
        raise ValueError(f"{who}(): {name} must have shape {concatenated} or {stacked} and dtype "
                         f"{piece.dtype}, got shape {tuple(big.shape)} and dtype {big.dtype}")


def broadcast_object_list(object_list: list[Any], src: int = 0, group: Any = None) -> None:
    """Replace ``object_list``'s items on every rank with rank ``src``'s (in place).

    Unlike PyTorch's (which pickles), the objects travel as JSON: str, numbers, bool, None, lists
    and dicts with string keys only; receiving never runs code.
    """
    import json

    comm = _comm(group)
    _check_rank(src, "src", "broadcast_object_list")
    if not isinstance(object_list, list):
        raise TypeError(f"broadcast_object_list(): object_list must be a list, got "
                        f"{type(object_list).__name__}")
    payload = np.frombuffer(json.dumps(object_list).encode(), dtype=np.uint8) \
        if _state.rank == src else np.empty(0, dtype=np.uint8)
    length = np.array([payload.size], dtype=np.int64)
    comm.Bcast(length, root=src)
    buffer = payload.copy() if _state.rank == src else np.empty(int(length[0]), dtype=np.uint8)
    comm.Bcast(buffer, root=src)
    received = json.loads(buffer.tobytes().decode())
    if len(received) != len(object_list):
        raise ValueError(f"broadcast_object_list(): rank {src} sent {len(received)} objects, "
                         f"this rank's list holds {len(object_list)}")
    object_list[:] = received
