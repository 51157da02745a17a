"""Checkpoints without pickle: ``deepnotes.save(obj, path)`` and ``deepnotes.load(path)``.

``torch.save`` pickles, and unpickling a file can run any code. Here a checkpoint is ONE safetensors
file: the arrays are stored as raw little-endian bytes, and the structure around them (nested dicts,
lists, numbers, strings, which key holds which tensor) is a JSON document in the file header's
``__metadata__["deepnotes"]``. Loading parses JSON and copies bytes; it never executes code.

File layout (the safetensors format)::

    8 bytes        little-endian u64: length H of the header
    H bytes        JSON header: {"__metadata__": {"format": "deepnotes", "version": "1",
                                                  "deepnotes": "<structure JSON>"},
                                 "model/conv1.weight": {"dtype": "F32", "shape": [...],
                                                        "data_offsets": [begin, end]}, ...}
    rest           the tensors' bytes

Tensor names are the path of keys that leads to them (``model/conv1.weight``,
``optimizer/state/0/exp_avg``), so other safetensors tools show readable names. The structure JSON
encodes each value as itself (str, int, float, bool, None, lists), except:

    {"$tensor": name}      a deepnotes Tensor          {"$ndarray": name}   a numpy.ndarray
    {"$scalar": name}      a NumPy scalar (np.float32(1.5)...), stored as a 0-d array
    {"$tuple": [...]}      a tuple
    {"$dict": [[k, v], ...]}  a dict whose keys are not all plain strings (int keys of an
                           optimizer's state stay ints) or that has a key starting with "$"

A dict with only plain string keys is written as a JSON object. Writes are atomic: the bytes go to a
temporary file in the target directory, which is flushed, fsync'ed and renamed over the target with
``os.replace``, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .tensor import Tensor

FORMAT_VERSION = "1"

# Dtypes that safetensors stores (bfloat16 and complex have no NumPy/safetensors pair here).
_SUPPORTED_KINDS = "biuf"


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
        if obj is None or isinstance(obj, bool | int | str):
            return obj
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
            if value not in arrays:
                raise CheckpointError(f"deepnotes.load: {path}: the structure refers to tensor "
                                      f"{value!r}, which the file does not contain")
            array = arrays[value]
            if tag == "$tensor":
                return Tensor._wrap(array)
            return array if tag == "$ndarray" else array[()]
        if tag == "$tuple":
            return tuple(_decode(v, arrays, path) for v in value)
        if tag == "$float":
            return float(value)
        if tag == "$dict":
            return {k: _decode(v, arrays, path) for k, v in value}
    if any(k.startswith("$") for k in node):
        raise CheckpointError(f"deepnotes.load: {path}: unknown tag in structure: {sorted(node)}")
    return {k: _decode(v, arrays, path) for k, v in node.items()}


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

    if not isinstance(f, str | os.PathLike):
        raise TypeError(f"deepnotes.save: f must be a str or os.PathLike path, "
                        f"got {type(f).__name__}")
    encoder = _Encoder()
    structure = encoder.encode(obj, "")
    metadata = {"format": "deepnotes", "version": FORMAT_VERSION,
                "deepnotes": json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    payload = st_save(encoder.arrays, metadata=metadata)
    atomic_write(Path(f), payload)


def _file_mode() -> int:
    """0o666 minus the process umask: the permissions a plain ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, fsync it, then rename it over
    ``path``. On any error the temporary file is removed and ``path`` is left untouched."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
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


def load(f: str | os.PathLike[str], map_location: Any = None) -> Any:
    """Load what :func:`save` wrote (Tensors come back as deepnotes Tensors, dtypes kept).

    A plain safetensors file without deepnotes metadata (e.g. written by
    ``safetensors.torch.save_file``) loads as a flat ``{name: Tensor}`` dict.

    Args:
        f: the file path.
        map_location: accepted for PyTorch compatibility; only the CPU exists here.

    Raises:
        FileNotFoundError: if ``f`` does not exist.
        CheckpointError: (a RuntimeError) if the file is corrupt, truncated or not a checkpoint.
    """
    from safetensors import SafetensorError, safe_open

    if not isinstance(f, str | os.PathLike):
        raise TypeError(f"deepnotes.load: f must be a str or os.PathLike path, "
                        f"got {type(f).__name__}")
    path = Path(f)
    if not path.exists():
        raise FileNotFoundError(f"deepnotes.load: no such file: '{path}'")
    try:
        with safe_open(str(path), framework="numpy") as st:
            metadata = st.metadata() or {}
            arrays = {name: st.get_tensor(name) for name in st.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"deepnotes.load: '{path}' is not a valid safetensors checkpoint (corrupt or "
            f"truncated?): {err}"
        ) from err
    if metadata.get("format") != "deepnotes":
        return {name: Tensor._wrap(array) for name, array in arrays.items()}
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"deepnotes.load: '{path}' has checkpoint format version "
                              f"{metadata.get('version')!r}; this deepnotes reads version "
                              f"{FORMAT_VERSION!r}")
    try:
        structure = json.loads(metadata["deepnotes"])
        return _decode(structure, arrays, path)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"deepnotes.load: '{path}' has a corrupt structure header: "
                              f"{err}") from err
