"""Checkpoints without pickle: ``deepnotes.save(obj, path)`` and ``deepnotes.load(path)``.

``torch.save`` pickles, and unpickling a file can run any code. Here a checkpoint is ONE safetensors
file: the arrays are stored as raw little-endian bytes, and the structure around them (nested dicts,
lists, numbers, strings, which key holds which tensor) is a JSON document in the file header's
``__metadata__["deepnotes"]``. Loading parses JSON and copies bytes; it never executes code.

File layout (the safetensors format)::

    8 bytes        little-endian u64: length H of the header
    H bytes        JSON header: {"__metadata__": {"format": "deepnotes", "version": "1",
                                                  "library": "deepnotes 0.1.0",
                                                  "deepnotes": "<structure JSON>"},
                                 "model/conv1.weight": {"dtype": "F32", "shape": [...],
                                                        "data_offsets": [begin, end]}, ...}
    rest           the tensors' bytes, back to back (offsets count from the end of the header)

Tensor names are the path of keys that leads to them (``model/conv1.weight``,
``optimizer/state/0/exp_avg``), so other safetensors tools show readable names. The structure JSON
encodes each value as itself (str, int, float, bool, None, lists), except:

    {"$tensor": name}      a deepnotes Tensor          {"$ndarray": name}   a numpy.ndarray
    {"$scalar": name}      a NumPy scalar (np.float32(1.5)...), stored as a 0-d array
    {"$tuple": [...]}      a tuple
    {"$dict": [[k, v], ...]}  a dict whose keys are not all plain strings (int keys of an
                           optimizer's state stay ints) or that has a key starting with "$"
    {"$float": "nan"}      inf, -inf and nan, which JSON lacks
    {"$int": "123..."}     an int beyond +-2^53, where JSON readers other than Python's would
                           round it (e.g. the 128-bit state of the random generator)

A dict with only plain string keys is written as a JSON object.

**Loading validates before it allocates.** The header is parsed here with ``struct`` and ``json``
(not handed to a library) and checked completely before any tensor memory is allocated: the header
length fits in the file (and under 100 MB), the header is a JSON object, every dtype is one NumPy
can hold, every shape is a list of non-negative ints whose byte size equals its ``data_offsets``
span, and the spans tile the data section exactly (inside the file, no overlaps, no gaps, no
trailing bytes: the last rule of the safetensors spec, which also rules out polyglot files). A
hostile header that claims a 100 GB tensor or a 2^60-byte header therefore gets a clear
:class:`CheckpointError` naming the file, never a giant allocation: the tensor memory a load
allocates is bounded by the size of the file, and the header it parses by 100 MB.

**Writes are atomic**: the bytes go to a temporary file ``.<name>.<pid>.<random>.tmp`` in the
target directory, which is flushed, fsync'ed and renamed over the target with ``os.replace``, so a
crash (even SIGKILL) at any moment leaves either the old file or the new one, never half of one. A
killed writer cannot remove its temporary file; the next write to the same path removes those
whose process is gone, so they do not pile up.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .tensor import Tensor

FORMAT_VERSION = "1"

#: Largest header accepted (the limit of the safetensors library itself).
MAX_HEADER_BYTES = 100_000_000

# Dtypes that safetensors stores (bfloat16 and complex have no NumPy/safetensors pair here).
_SUPPORTED_KINDS = "biuf"

#: safetensors dtype string -> NumPy dtype (little-endian). BF16, F8_* and complex are not here:
#: NumPy cannot hold them.
_ST_DTYPES = {
    "BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}

_JSON_SAFE_INT = 2**53  # integers of larger magnitude lose digits in JavaScript-style readers


class CheckpointError(RuntimeError):
    """A file that is not a valid deepnotes/safetensors checkpoint (corrupt, truncated, foreign)."""


# -- encoding ------------------------------------------------------------------------------------
class _Encoder:
    """Walks an object, collecting arrays into ``self.arrays`` and returning the JSON structure."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _name(self, path: str) -> str:
        name = path or "tensor"
        unique, n = name, 1
        while unique in self.arrays:  # e.g. {"a/b": t, "a": {"b": t}} map to the same path
            unique, n = f"{name}#{n}", n + 1
        return unique

    def _store(self, array: np.ndarray, path: str, what: str) -> str:
        if array.dtype.kind not in _SUPPORTED_KINDS:
            raise TypeError(f"deepnotes.save: cannot store {what} of dtype {array.dtype} at "
                            f"'{path}' (supported: bool, int, uint and float dtypes)")
        name = self._name(path)
        # C-contiguous little-endian memory: safetensors copies raw bytes. (np.asarray, not
        # np.ascontiguousarray, which turns a 0-d array into a 1-d one.)
        self.arrays[name] = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        return name

    def encode(self, obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            return {"$tensor": self._store(obj.data, path, "a Tensor")}
        if isinstance(obj, np.ndarray):
            return {"$ndarray": self._store(obj, path, "an ndarray")}
        if isinstance(obj, np.generic):
            return {"$scalar": self._store(np.asarray(obj), path, "a NumPy scalar")}
        if obj is None or isinstance(obj, bool | str):
            return obj
        if isinstance(obj, int):
            return obj if abs(obj) <= _JSON_SAFE_INT else {"$int": str(obj)}
        if isinstance(obj, float):
            if not math.isfinite(obj):  # JSON has no inf/nan; keep them as strings
                return {"$float": repr(obj)}
            return obj
        if isinstance(obj, list):
            return [self.encode(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, f"{path}/{i}" if path else str(i))
                               for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            for key in obj:
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise TypeError(f"deepnotes.save: dict keys must be str or int, got "
                                    f"{type(key).__name__} key {key!r} at '{path}'")
            items = [(k, self.encode(v, f"{path}/{k}" if path else str(k))) for k, v in obj.items()]
            if all(isinstance(k, str) and not k.startswith("$") for k in obj):
                return dict(items)
            return {"$dict": [[k, v] for k, v in items]}
        raise TypeError(
            f"deepnotes.save: cannot store an object of type {type(obj).__name__} at "
            f"'{path or '<root>'}' (supported: Tensor, ndarray, dict, list, tuple, str, int, "
            f"float, bool, None)"
        )


# -- decoding ------------------------------------------------------------------------------------
def _decode(node: Any, arrays: dict[str, np.ndarray], path: Path) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays, path) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (tag, value), = node.items()
        if tag in ("$tensor", "$ndarray", "$scalar"):
            if not isinstance(value, str) or value not in arrays:
                raise CheckpointError(f"deepnotes.load: '{path}': the structure refers to tensor "
                                      f"{value!r}, which the file does not contain")
            array = arrays[value]
            if tag == "$tensor":
                return Tensor._wrap(array)
            return array if tag == "$ndarray" else array[()]
        if tag == "$tuple" and isinstance(value, list):
            return tuple(_decode(v, arrays, path) for v in value)
        if tag == "$float" and value in ("inf", "-inf", "nan"):
            return float(value)
        if tag == "$int" and isinstance(value, str):
            return int(value)
        if tag == "$dict" and isinstance(value, list):
            return {k: _decode(v, arrays, path) for k, v in value}
    if any(k.startswith("$") for k in node):
        raise CheckpointError(f"deepnotes.load: '{path}': unknown or malformed tag in the "
                              f"structure: {sorted(node)}")
    return {k: _decode(v, arrays, path) for k, v in node.items()}


# -- reading and validating the safetensors container --------------------------------------------
def _fail(path: Path, message: str) -> CheckpointError:
    return CheckpointError(f"deepnotes.load: '{path}' {message}")


def _foreign_format(magic: bytes) -> str | None:
    """Name the format of a file that is clearly not safetensors, from its first bytes."""
    if magic.startswith(b"PK\x03\x04"):
        return ("is a zip archive, like the files torch.save writes (pickles inside); "
                "deepnotes never unpickles. Convert it in PyTorch with "
                "safetensors.torch.save_file(state_dict, path) and load that")
    if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "is a Python pickle; deepnotes never unpickles (loading it could run any code)"
    if magic.startswith(b"\x93NUMPY"):
        return "is a NumPy .npy file, not a checkpoint; read it with numpy.load"
    if magic.startswith(b"\x89HDF"):
        return "is an HDF5 file (Keras?), not a safetensors checkpoint"
    return None


def _json_object_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _read_header(fh: BinaryIO, file_size: int, path: Path
                 ) -> tuple[dict[str, str], list[tuple[str, np.dtype, tuple[int, ...], int, int]],
                            int]:
    """Parse and validate the header; allocate nothing but the header bytes themselves.

    Returns:
        (metadata, entries, data_start): entries are (name, dtype, shape, begin, end) sorted by
        offset, with offsets relative to ``data_start`` = 8 + header length.
    """
    magic = fh.read(8)
    foreign = _foreign_format(magic)
    if foreign is not None:
        raise _fail(path, foreign)
    if file_size < 8:
        raise _fail(path, f"is not a safetensors checkpoint: it has {file_size} bytes, fewer "
                          f"than the 8-byte header length every safetensors file starts with "
                          f"(truncated or empty?)")
    (header_len,) = struct.unpack("<Q", magic)
    if header_len > file_size - 8:
        raise _fail(path, f"is not a valid safetensors checkpoint: its header length field says "
                          f"{header_len} bytes, but the file has only {file_size - 8} bytes after "
                          f"it (truncated, or not a safetensors file)")
    if header_len > MAX_HEADER_BYTES:
        raise _fail(path, f"has a {header_len}-byte header, over the {MAX_HEADER_BYTES}-byte "
                          f"limit of safetensors files")
    raw = fh.read(header_len)
    if len(raw) != header_len:
        raise _fail(path, f"was truncated while reading: expected a {header_len}-byte header, "
                          f"read {len(raw)} bytes")
    if not raw.startswith(b"{"):
        raise _fail(path, "is not a safetensors checkpoint: its header does not start with '{' "
                          "(the header is a JSON object)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_object_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(path, f"is not a valid safetensors checkpoint: its header is not valid JSON "
                          f"(truncated or corrupt?): {err}") from err
    if not isinstance(header, dict):
        raise _fail(path, f"has a header that is a JSON {type(header).__name__}, expected an "
                          f"object")

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(path, "has a corrupt header: __metadata__ must map strings to strings")

    data_size = file_size - 8 - header_len
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise _fail(path, f"has a corrupt header entry for tensor {name!r}: expected "
                              f"{{'dtype', 'shape', 'data_offsets'}}, got {info!r:.200}")
        dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype_name not in _ST_DTYPES:
            raise _fail(path, f"has tensor {name!r} of dtype {dtype_name!r:.50}; expected one of "
                              f"{', '.join(_ST_DTYPES)} (bfloat16, float8 and complex have no "
                              f"NumPy dtype)")
        if (not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise _fail(path, f"has tensor {name!r} with shape {shape!r:.200}; expected a list of "
                              f"non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise _fail(path, f"has tensor {name!r} with data_offsets {offsets!r:.200}; expected "
                              f"[begin, end] with 0 <= begin <= end")
        begin, end = offsets
        dtype = _ST_DTYPES[dtype_name]
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if end - begin != nbytes:
            raise _fail(path, f"has tensor {name!r} of shape {shape} and dtype {dtype_name}, "
                              f"which needs {nbytes} bytes, but its data_offsets [{begin}, {end}] "
                              f"span {end - begin} bytes")
        if end > data_size:
            raise _fail(path, f"has tensor {name!r} at bytes [{begin}, {end}) of the data "
                              f"section, which has only {data_size} bytes (truncated?)")
        entries.append((name, dtype, tuple(shape), begin, end))

    entries.sort(key=lambda e: (e[3], e[4]))
    position, previous = 0, None
    for name, _, _, begin, end in entries:
        if begin < position:
            raise _fail(path, f"has overlapping tensors: {name!r} starts at byte {begin}, inside "
                              f"{previous!r}, which ends at byte {position}")
        if begin > position:
            raise _fail(path, f"has {begin - position} unindexed bytes before tensor {name!r} "
                              f"(at [{position}, {begin}) of the data section); safetensors "
                              f"files have no gaps")
        position, previous = end, name
    if position != data_size:
        raise _fail(path, f"has {data_size - position} bytes after the last tensor that no "
                          f"tensor accounts for (a safetensors file has no trailing data)")
    return metadata, entries, 8 + header_len


def _read_arrays(fh: BinaryIO, entries: list, data_start: int, path: Path
                 ) -> dict[str, np.ndarray]:
    """Read every tensor into its own writable array (the header has been validated)."""
    arrays = {}
    for name, dtype, shape, begin, end in entries:
        buffer = np.empty(end - begin, dtype=np.uint8)
        fh.seek(data_start + begin)
        if fh.readinto(memoryview(buffer)) != end - begin:  # the file shrank under us
            raise _fail(path, f"was truncated while reading tensor {name!r}")
        arrays[name] = buffer.view(dtype).reshape(shape)
    return arrays


# -- public API ----------------------------------------------------------------------------------
def save(obj: Any, f: str | os.PathLike[str]) -> None:
    """Save ``obj`` (a state dict, or nested dicts/lists/tuples of Tensors, ndarrays and plain
    values) to the file ``f``, atomically. Dict keys may be str or int and come back unchanged.

    Args:
        obj: e.g. ``{"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}``.
        f: the file path (conventionally ``*.safetensors``).

    Raises:
        TypeError: for values or keys that cannot be stored without pickle.
    """
    from safetensors.numpy import save as st_save

    from . import __version__

    if not isinstance(f, str | os.PathLike):
        raise TypeError(f"deepnotes.save: f must be a str or os.PathLike path, "
                        f"got {type(f).__name__}")
    encoder = _Encoder()
    structure = encoder.encode(obj, "")
    metadata = {"format": "deepnotes", "version": FORMAT_VERSION,
                "library": f"deepnotes {__version__}",
                "deepnotes": json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    payload = st_save(encoder.arrays, metadata=metadata)
    atomic_write(Path(f), payload)


def _file_mode() -> int:
    """0o666 minus the process umask: the permissions a plain ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _process_is_gone(pid: int) -> bool:
    """True if no process ``pid`` exists (POSIX; elsewhere always False, i.e. keep its files)."""
    if os.name != "posix" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists but belongs to someone else
        return False
    return False


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.<pid>.<random>.tmp`` files beside ``path`` left by writers that died."""
    prefix = f".{path.name}."
    pattern = os.path.join(glob.escape(str(path.parent)), glob.escape(prefix) + "*.tmp")
    for leftover in glob.glob(pattern):
        pid_text = os.path.basename(leftover)[len(prefix):].split(".", 1)[0]
        if pid_text.isdigit() and _process_is_gone(int(pid_text)):
            try:
                os.unlink(leftover)
            except OSError:  # removed by someone else meanwhile, or not ours to remove
                pass


def atomic_write(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename it over
    ``path``. On any error the temporary file is removed and ``path`` is left untouched.
    Temporary files of earlier writers of ``path`` that were killed are removed first."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(directory / path.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _file_mode())  # mkstemp makes it 0600; use what open() would give
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not possible on every platform
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_metadata(f: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, validated but without reading any tensor.

    For a deepnotes checkpoint, ``json.loads(read_metadata(path)["deepnotes"])`` is its
    structure (epoch, config, ... with ``{"$tensor": name}`` in place of the arrays).

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load`.
    """
    path = _check_path(f, "read_metadata")
    with open(path, "rb") as fh:
        metadata, _, _ = _read_header(fh, os.fstat(fh.fileno()).st_size, path)
    return metadata


def _check_path(f: Any, who: str) -> Path:
    if not isinstance(f, str | os.PathLike):
        raise TypeError(f"deepnotes.{who}: f must be a str or os.PathLike path, "
                        f"got {type(f).__name__}")
    path = Path(f)
    if not path.exists():
        raise FileNotFoundError(f"deepnotes.{who}: no such file: '{path}'")
    if path.is_dir():
        raise IsADirectoryError(f"deepnotes.{who}: '{path}' is a directory, not a checkpoint "
                                f"file")
    return path


def load(f: str | os.PathLike[str], map_location: Any = None) -> Any:
    """Load what :func:`save` wrote (Tensors come back as deepnotes Tensors, dtypes kept).

    The header is validated completely before any tensor is allocated (see the module docstring),
    and every array is a fresh writable copy, independent of the file.
    A plain safetensors file without deepnotes metadata (e.g. written by
    ``safetensors.torch.save_file``) loads as a flat ``{name: Tensor}`` dict.

    Args:
        f: the file path.
        map_location: accepted for PyTorch compatibility; only the CPU exists here.

    Raises:
        FileNotFoundError: if ``f`` does not exist.
        CheckpointError: (a RuntimeError) naming the file, if it is corrupt, truncated, foreign
            (a pickle, a zip from ``torch.save``...), or has a hostile or unsupported header.
    """
    path = _check_path(f, "load")
    try:
        with open(path, "rb") as fh:
            metadata, entries, data_start = _read_header(fh, os.fstat(fh.fileno()).st_size, path)
            arrays = _read_arrays(fh, entries, data_start, path)
    except OSError as err:
        raise _fail(path, f"could not be read: {err}") from err
    if metadata.get("format") != "deepnotes":
        return {name: Tensor._wrap(array) for name, array in arrays.items()}
    if metadata.get("version") != FORMAT_VERSION:
        raise _fail(path, f"has checkpoint format version {metadata.get('version')!r}; this "
                          f"deepnotes reads version {FORMAT_VERSION!r}")
    if "deepnotes" not in metadata:
        raise _fail(path, "has a corrupt header: the deepnotes structure is missing")
    try:
        structure = json.loads(metadata["deepnotes"])
        return _decode(structure, arrays, path)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RecursionError) as err:
        raise _fail(path, f"has a corrupt structure header: {err}") from err
