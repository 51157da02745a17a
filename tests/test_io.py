"""deepnotes.save / deepnotes.load: round trips, atomic writes, corrupt files, no pickle."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file as torch_save_file

import deepnotes as dn
from deepnotes import io as dn_io


def _assert_same(a, b):
    """Exact equality of nested structures, including types, dtypes, shapes and dict key types."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dn.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.data, b.data)
    elif isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        assert [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def _checkpoint(rng):
    return {
        "model": {"conv.weight": dn.from_numpy(rng.standard_normal((4, 1, 3, 3)).astype("f4")),
                  "conv.bias": dn.zeros(4),
                  "bn.num_batches_tracked": dn.tensor(7)},
        "optimizer": {
            "state": {0: {"step": dn.tensor(3.0), "exp_avg": dn.randn(4, 1, 3, 3)},
                      1: {"momentum_buffer": None}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                              "params": [0, 1], "maximize": False, "foreach": None}],
        },
        "epoch": 3,
        "name": "digits_cnn",
        "history": [0.5, 0.25, float("inf"), float("nan")],
        "float64": dn.from_numpy(rng.standard_normal((2, 3))),
        "empty": dn.zeros(0, 5),
        "zero_d": dn.tensor(2.5, dtype=dn.float64),
        "ints": dn.from_numpy(np.arange(-3, 3, dtype=np.int32)),
        "mask": dn.from_numpy(np.array([True, False])),
        "half": dn.from_numpy(np.array([1.5, -2.0], dtype=np.float16)),
        "raw": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "np_scalar": np.float32(0.125),
        "nested": [{"a": (1, "x", None)}, [True, [dn.ones(1)]]],
        "$not_a_tag": 1,
        "mixed_keys": {1: "one", "1": "string one", -2: [3]},
    }


def test_round_trip_keeps_structure_types_dtypes_and_int_keys(tmp_path, rng):
    obj = _checkpoint(rng)
    path = tmp_path / "ckpt.safetensors"
    dn.save(obj, path)
    loaded = dn.load(path)
    _assert_same(obj, loaded)
    assert list(loaded["optimizer"]["state"]) == [0, 1]
    assert loaded["empty"].shape == (0, 5) and loaded["zero_d"].shape == ()
    assert loaded["zero_d"].dtype == np.float64


def test_loaded_tensors_are_writable_and_independent_of_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    dn.save({"w": dn.ones(3)}, path)
    w = dn.load(path)["w"]
    w.data += 1  # an optimizer updates parameters in place
    dn.save({"w": dn.zeros(3)}, path)
    np.testing.assert_array_equal(w.data, [2, 2, 2])


def test_non_contiguous_and_big_endian_arrays_are_stored_by_value(tmp_path):
    transposed = np.arange(6.0).reshape(2, 3).T
    big_endian = np.arange(4, dtype=">i4")
    dn.save({"t": dn.from_numpy(transposed), "b": big_endian}, tmp_path / "x.safetensors")
    loaded = dn.load(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(loaded["t"].data, transposed)
    np.testing.assert_array_equal(loaded["b"], big_endian)


@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.text(max_size=5)
    | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3) | st.integers(-5, 5), children, max_size=3),
    max_leaves=10,
))
def test_round_trip_of_random_plain_structures(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("h") / "obj.safetensors"
    dn.save(obj, path)
    _assert_same(obj, dn.load(path))


def test_file_is_plain_safetensors_with_readable_names(tmp_path):
    path = tmp_path / "m.safetensors"
    dn.save({"model": {"fc.weight": dn.ones(2, 2)}, "optimizer": {"state": {0: {"m": dn.ones(1)}}}},
            path)
    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["model/fc.weight", "optimizer/state/0/m"]
        metadata = f.metadata()
    assert metadata["format"] == "deepnotes"
    json.loads(metadata["deepnotes"])  # the structure is plain JSON
    torch_view = torch.from_numpy(np.asarray(dn.load(path)["model"]["fc.weight"].data))
    assert torch.equal(torch_view, torch.ones(2, 2))


def test_load_of_a_foreign_safetensors_file_gives_a_flat_dict(tmp_path):
    path = tmp_path / "torch.safetensors"
    torch_save_file({"w": torch.arange(4, dtype=torch.float64), "b": torch.zeros(2)}, str(path))
    loaded = dn.load(path)
    assert sorted(loaded) == ["b", "w"]
    assert loaded["w"].dtype == np.float64
    np.testing.assert_array_equal(loaded["w"].data, [0, 1, 2, 3])


def test_tensor_paths_that_collide_get_unique_names(tmp_path):
    obj = {"a/b": dn.ones(1), "a": {"b": dn.zeros(1)}}
    dn.save(obj, tmp_path / "c.safetensors")
    _assert_same(obj, dn.load(tmp_path / "c.safetensors"))


def test_unsupported_values_and_keys_raise_type_error(tmp_path):
    with pytest.raises(TypeError, match="cannot store an object of type object at 'a/0'"):
        dn.save({"a": [object()]}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        dn.save({(1, 2): 3}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dtype complex128"):
        dn.save({"c": np.ones(2, dtype=complex)}, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_failed_write_leaves_the_old_file_intact_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    dn.save({"epoch": 1, "w": dn.ones(3)}, path)
    before = path.read_bytes()

    real_fsync = os.fsync

    def failing_fsync(fd):  # the data is half on its way to disk when the "crash" happens
        raise OSError("disk full")

    monkeypatch.setattr(dn_io.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        dn.save({"epoch": 2, "w": dn.zeros(3)}, path)
    monkeypatch.setattr(dn_io.os, "fsync", real_fsync)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
    assert dn.load(path)["epoch"] == 1


def test_interrupted_write_before_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    dn.save({"epoch": 1}, path)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(dn_io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dn.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert dn.load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_saved_file_has_the_usual_permissions(tmp_path):
    path = tmp_path / "p.safetensors"
    dn.save({"a": 1}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("damage", ["truncated_data", "truncated_header", "garbage", "empty",
                                    "bad_structure", "missing_tensor"])
def test_corrupt_files_give_a_clear_error_naming_the_path(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    dn.save({"w": dn.ones(100), "step": 3}, path)
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    if damage == "truncated_data":
        raw = raw[:-10]
    elif damage == "truncated_header":
        raw = raw[:8 + header_len // 2]
    elif damage == "garbage":
        raw = b"\x00\x01not a checkpoint at all" * 3
    elif damage == "empty":
        raw = b""
    else:
        if damage == "bad_structure":
            header["__metadata__"]["deepnotes"] = "{not json"
        else:
            header["__metadata__"]["deepnotes"] = '{"w": {"$tensor": "nope"}}'
        text = json.dumps(header).encode()
        raw = struct.pack("<Q", len(text)) + text + raw[8 + header_len:]
    path.write_bytes(raw)
    with pytest.raises(dn_io.CheckpointError, match="bad.safetensors"):
        dn.load(path)
    assert issubclass(dn_io.CheckpointError, RuntimeError)


def test_missing_file_and_bad_path_types(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        dn.load(tmp_path / "nothere.safetensors")
    with pytest.raises(TypeError, match="must be a str or os.PathLike"):
        dn.save({}, 3)


def test_no_pickle_is_used(tmp_path, monkeypatch):
    """save/load work with every pickle entry point broken, and the file is exactly
    8-byte length + JSON header + raw tensor bytes (nothing else can hide in it)."""
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("dump", "dumps", "load", "loads", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    path = tmp_path / "np.safetensors"
    obj = {"w": dn.randn(3), 0: {"x": np.ones(2)}}
    dn.save(obj, path)
    _assert_same(obj, dn.load(path))

    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    data_end = max(entry["data_offsets"][1] for key, entry in header.items()
                   if key != "__metadata__")
    assert len(raw) == 8 + header_len + data_end
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
