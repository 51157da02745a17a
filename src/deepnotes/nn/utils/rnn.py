"""Variable-length sequences in PyTorch's packed layout (``torch.nn.utils.rnn``).

A batch of sequences of different lengths, padded to (T, N, *), wastes work on the padding and,
worse, lets the padding flow into the final hidden state. Packing keeps only the real steps:
sort the sequences by length (longest first) and store, time step after time step, the rows of
the sequences that are still running:

    lengths 3, 2, 1 (sorted)   padded (T=3, N=3)        packed data (S=6 rows)   batch_sizes
                               t=0: a0 b0 c0            a0 b0 c0                 3
                               t=1: a1 b1 --            a1 b1                    2
                               t=2: a2 -- --            a2                       1

``nn.RNN``/``nn.LSTM``/``nn.GRU`` accept a ``PackedSequence`` and then advance only the first
``batch_sizes[t]`` sequences at step t, so each sequence's final state is the one after its own
last step (and a reverse direction starts at each sequence's own end). The outputs equal
PyTorch's for the same packed input.

``sorted_indices`` maps sorted position -> original batch index (None when the input was already
sorted, ``enforce_sorted=True``); ``unsorted_indices`` is its inverse. The RNN modules permute h0
with ``sorted_indices`` and h_n back with ``unsorted_indices``, as PyTorch does.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ops._util import check_tensor
from ...ops.rnn import PackRowsFn, UnpackRowsFn
from ...ops.shape import cat
from ...tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]

_PackedSequenceBase = namedtuple(
    "_PackedSequenceBase", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"]
)


def _int_array(values: Any) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.data
    elif hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64)


def _as_index_tensor(values: np.ndarray) -> Tensor:
    return Tensor._wrap(np.ascontiguousarray(values, dtype=np.int64))


class PackedSequence(_PackedSequenceBase):
    """The packed rows of a batch of sequences (a named tuple, as PyTorch's).

    Attributes:
        data: (S, *) the rows of all steps, step after step (S = sum of the lengths).
        batch_sizes: int64 (T,), how many sequences are still running at each step (non-increasing).
        sorted_indices: int64 (N,) or None, the original batch index of each sorted position.
        unsorted_indices: int64 (N,) or None, the inverse permutation.

    Build it with :func:`pack_padded_sequence` or :func:`pack_sequence` rather than by hand.
    """

    def __new__(cls, data: Tensor, batch_sizes: Any = None, sorted_indices: Any = None,
                unsorted_indices: Any = None) -> PackedSequence:
        if batch_sizes is None:
            raise TypeError("PackedSequence(): batch_sizes is required")
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _as_index_tensor(_int_array(batch_sizes))
        if sorted_indices is not None and not isinstance(sorted_indices, Tensor):
            sorted_indices = _as_index_tensor(_int_array(sorted_indices))
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _as_index_tensor(np.argsort(sorted_indices.data))
        elif unsorted_indices is not None and not isinstance(unsorted_indices, Tensor):
            unsorted_indices = _as_index_tensor(_int_array(unsorted_indices))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    @property
    def is_cuda(self) -> bool:
        return False

    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """The same sequence with ``data.to(...)`` (dtype casts; indices stay int64)."""
        return type(self)(self.data.to(*args, **kwargs), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    def double(self) -> PackedSequence:
        return self.to(np.float64)

    def float(self) -> PackedSequence:
        return self.to(np.float32)


def _batch_sizes(sorted_lengths: np.ndarray) -> np.ndarray:
    """batch_sizes[t] = number of sequences longer than t (lengths sorted, longest first)."""
    steps = np.arange(sorted_lengths[0])
    return (sorted_lengths[None, :] > steps[:, None]).sum(axis=1).astype(np.int64)   # (T,)


def _packed_positions(batch_sizes: np.ndarray, order: np.ndarray, steps: int, batch_first: bool,
                      batch: int) -> np.ndarray:
    """For every packed row (step t, sorted position j < batch_sizes[t]), its row in the padded
    array flattened to (T*N, *) (or (N*T, *) when batch_first), where the original batch index is
    order[j]."""
    t = np.repeat(np.arange(len(batch_sizes)), batch_sizes)                     # (S,) step
    j = np.concatenate([np.arange(size) for size in batch_sizes])               # (S,) position
    b = order[j]                                                                # (S,) batch index
    return b * steps + t if batch_first else t * batch + b


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, N, *) (or (N, T, *) with ``batch_first``) of sequences.

    Args:
        input: the padded batch; rows past a sequence's length are ignored.
        lengths: the length of each sequence (list, array or 1-D int64 tensor), each >= 1.
        batch_first: the input is (N, T, *).
        enforce_sorted: require ``lengths`` sorted longest first; with False the sequences are
            sorted here (stably) and ``sorted_indices`` records the order.

    Returns:
        A :class:`PackedSequence`; its ``data`` is differentiable with respect to ``input``.
    """
    check_tensor(input, "input", "pack_padded_sequence")
    lengths = _int_array(lengths)
    if lengths.ndim != 1:
        raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got "
                           f"{lengths.ndim}D tensor")
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: expected input of at least 2 dimensions "
                         f"(T, N, *), got {input.ndim}D")
    steps, batch = (input.shape[1], input.shape[0]) if batch_first else input.shape[:2]
    if len(lengths) != batch:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{len(lengths)} (batch_size={batch})")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is "
                "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
                "pack_sequence to sidestep this requirement if you do not need ONNX exportability."
            )
        order, sorted_indices = np.arange(batch), None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = order
    sorted_lengths = lengths[order]
    if sorted_lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element "
                           "in 'lengths' that is <= 0")
    if sorted_lengths[0] > steps:
        raise RuntimeError(f"pack_padded_sequence: a length ({sorted_lengths[0]}) exceeds the "
                           f"padded sequence length {steps}")
    batch_sizes = _batch_sizes(sorted_lengths)
    index = _packed_positions(batch_sizes, order, steps, batch_first, batch)
    rows = input.reshape(steps * batch, *input.shape[2:])                        # (T*N, *)
    data = PackRowsFn(index)(rows)                                               # (S, *)
    return PackedSequence(data, batch_sizes, sorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`pack_padded_sequence`: (padded (T, N, *), lengths (N,) int64).

    The batch comes back in its original order. ``total_length`` pads to that many steps (at least
    the longest length), e.g. to undo packing of a batch whose longest sequence is shorter than T.
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence(): sequence must be a PackedSequence, got "
                        f"{type(sequence).__name__}")
    data = sequence.data
    batch_sizes = _int_array(sequence.batch_sizes)
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {steps}")
        steps = total_length
    order = (np.arange(batch) if sequence.sorted_indices is None
             else _int_array(sequence.sorted_indices))
    index = _packed_positions(batch_sizes, order, steps, batch_first, batch)
    padded = UnpackRowsFn(index, steps * batch, padding_value)(data)            # (T*N, *)
    shape = (batch, steps) if batch_first else (steps, batch)
    sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    lengths = np.empty(batch, dtype=np.int64)
    lengths[order] = sorted_lengths
    return padded.reshape(*shape, *data.shape[1:]), _as_index_tensor(lengths)


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> Tensor:
    """Stack sequences of shapes (L_i, *) into one (T, N, *) tensor (T = max L_i), padding each.

    ``padding_side="left"`` puts the padding before each sequence instead of after it.
    """
    if isinstance(sequences, Tensor):
        sequences = list(sequences)
    if not isinstance(sequences, list | tuple) or len(sequences) == 0:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    for i, seq in enumerate(sequences):
        check_tensor(seq, f"sequences[{i}]", "pad_sequence")
        if seq.ndim < 1 or seq.shape[1:] != sequences[0].shape[1:]:
            raise RuntimeError(f"pad_sequence: sequences[{i}] has shape {tuple(seq.shape)}, "
                               f"expected (L, {', '.join(map(str, sequences[0].shape[1:]))})")
    lengths = np.array([seq.shape[0] for seq in sequences], dtype=np.int64)
    steps, batch = int(lengths.max()), len(sequences)
    b = np.repeat(np.arange(batch), lengths)                                    # (S,) sequence
    t = np.concatenate([np.arange(n) for n in lengths])                         # (S,) step
    if padding_side == "left":
        t = t + (steps - lengths)[b]
    index = b * steps + t if batch_first else t * batch + b
    rows = cat(list(sequences), 0) if batch > 1 else sequences[0]               # (S, *)
    padded = UnpackRowsFn(index, steps * batch, padding_value)(rows)            # (T*N, *)
    shape = (batch, steps) if batch_first else (steps, batch)
    return padded.reshape(*shape, *sequences[0].shape[1:])


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *) directly (pad, then pack)."""
    lengths = [seq.shape[0] for seq in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths: Any,
                   batch_first: bool = False) -> list[Tensor]:
    """The list of sequences padded_sequences[:L_i, i] (the inverse of :func:`pad_sequence`)."""
    lengths = _int_array(lengths)
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[i, :int(n)] for i, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The list of sequences of a PackedSequence (the inverse of :func:`pack_sequence`)."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
