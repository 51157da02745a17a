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


# -- hostile and foreign files: validated before anything is allocated ---------------------------
def _craft(path, header, data=b"", header_len=None):
    """Write a safetensors-shaped file from a header (dict or raw bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", length) + raw + data)
    return path


def _load_with_peak_memory(path):
    """dn.load(path) -> (exception, peak bytes traced by tracemalloc, NumPy's arrays included)."""
    import tracemalloc

    tracemalloc.start()
    try:
        dn.load(path)
    except dn_io.CheckpointError as err:
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError(f"{path} loaded without an error")


F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}

HOSTILE = {
    # case: (header, data, header_len override, expected message)
    "header_length_2_60": ({"w": F32_4}, bytes(16), 2**60, "header length field says 1152921"),
    "header_length_past_end": ({"w": F32_4}, bytes(16), 10**6, "has only"),
    "100_GB_tensor": ({"w": {"dtype": "F32", "shape": [25 * 10**9],
                             "data_offsets": [0, 10**11]}}, bytes(16), None,
                      "at bytes [0, 100000000000) of the data section, which has only 16 bytes"),
    "shape_disagrees_with_offsets": ({"w": {"dtype": "F32", "shape": [10**9, 10**9],
                                            "data_offsets": [0, 16]}}, bytes(16), None,
                                     "which needs 4000000000000000000 bytes"),
    "overlap": ({"a": F32_4, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}},
                bytes(16), None, "overlapping tensors: 'b' starts at byte 8, inside 'a'"),
    "gap": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, bytes(16), None,
            "8 unindexed bytes before tensor 'a'"),
    "trailing_bytes": ({"w": F32_4}, bytes(20), None, "4 bytes after the last tensor"),
    "unknown_dtype": ({"w": {"dtype": "F33", "shape": [4], "data_offsets": [0, 16]}},
                      bytes(16), None, "tensor 'w' of dtype 'F33'; expected one of BOOL, U8"),
    "bfloat16": ({"w": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, bytes(16),
                 None, "dtype 'BF16'; expected one of"),
    "dtype_not_a_string": ({"w": {"dtype": 7, "shape": [4], "data_offsets": [0, 16]}},
                           bytes(16), None, "dtype 7"),
    "negative_shape": ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}},
                       bytes(16), None, "shape [-4]; expected a list of non-negative"),
    "float_shape": ({"w": {"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]}},
                    bytes(16), None, "expected a list of non-negative integers"),
    "reversed_offsets": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}},
                         bytes(16), None, "data_offsets [16, 0]; expected [begin, end]"),
    "missing_field": ({"w": {"dtype": "F32", "shape": [4]}}, bytes(16), None,
                      "corrupt header entry for tensor 'w'"),
    "header_is_a_list": (b"[1, 2]", b"", None, "does not start with '{'"),
    "header_not_json": (b"{not json", b"", None, "header is not valid JSON"),
    "header_not_utf8": (b"{\xff\xfe}", b"", None, "header is not valid JSON"),
    "duplicate_tensor_name": (b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, '
                              b'"w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}',
                              bytes(2), None, "duplicate key 'w'"),
    "metadata_not_strings": ({"__metadata__": {"format": 1}}, b"", None,
                             "__metadata__ must map strings to strings"),
    "deeply_nested_structure": ({"__metadata__": {"format": "deepnotes", "version": "1",
                                                  "deepnotes": "[" * 100_000 + "]" * 100_000}},
                                b"", None, "corrupt structure header"),
    "future_format_version": ({"__metadata__": {"format": "deepnotes", "version": "99",
                                                "deepnotes": "{}"}}, b"", None,
                              "format version '99'; this deepnotes reads version '1'"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_headers_give_a_clear_error_and_allocate_nothing_big(tmp_path, case):
    header, data, header_len, message = HOSTILE[case]
    path = _craft(tmp_path / f"{case}.safetensors", header, data, header_len)
    err, peak = _load_with_peak_memory(path)
    assert f"'{path}'" in str(err)  # names the file
    assert message in str(err)
    assert peak < 5 * 2**20, f"loading {case} allocated {peak / 2**20:.1f} MiB"
    if case not in ("deeply_nested_structure", "future_format_version"):  # container-level
        with pytest.raises(dn_io.CheckpointError, match="deepnotes.load"):
            dn_io.read_metadata(path)


def test_a_checkpoint_whose_header_claims_huge_tensors_is_rejected_before_reading_data(
        tmp_path, monkeypatch):
    """Only the header is read: no tensor buffer is made when the header is inconsistent."""
    path = tmp_path / "big.safetensors"
    dn.save({"w": dn.ones(8)}, path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["w"]["shape"] = [2**40]  # 4 TiB of float32
    _craft(path, header, raw[8 + n:])
    made = []
    real_empty = np.empty

    def spy(*args, **kwargs):
        made.append(args)
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(dn_io.np, "empty", spy)
    with pytest.raises(dn_io.CheckpointError, match="which needs 4398046511104 bytes"):
        dn.load(path)
    assert made == []


@pytest.mark.parametrize("kind", ["torch_zip", "pickle", "npy", "text", "directory"])
def test_foreign_files_are_refused_with_a_clear_error(tmp_path, kind):
    import pickle

    path = tmp_path / f"model.{kind}"
    if kind == "torch_zip":
        torch.save({"w": torch.ones(2)}, path)
        message = "zip archive, like the files torch.save writes"
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"w": [1, 2]}))
        message = "is a Python pickle; deepnotes never unpickles"
    elif kind == "npy":
        np.save(path, np.ones(3))  # the name already ends in .npy
        message = "NumPy .npy file"
    elif kind == "text":
        path.write_text("epoch,loss\n1,0.5\n" * 10)
        message = "header length field says"
    else:
        path.mkdir()
        with pytest.raises(IsADirectoryError, match="is a directory, not a checkpoint"):
            dn.load(path)
        return
    with pytest.raises(dn_io.CheckpointError, match=message) as info:
        dn.load(path)
    assert str(path) in str(info.value)


def test_unsupported_dtype_from_torch_is_named(tmp_path):
    path = tmp_path / "bf16.safetensors"
    torch_save_file({"w": torch.ones(3, dtype=torch.bfloat16)}, str(path))
    with pytest.raises(dn_io.CheckpointError, match=r"tensor 'w' of dtype 'BF16'.*bfloat16"):
        dn.load(path)


def test_every_dtype_written_by_safetensors_reads_back_exactly(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    arrays = {str(dt): (rng.standard_normal((2, 3)) * 100).astype(dt)
              for dt in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")}
    arrays["bool"] = np.array([[True, False, True]])
    arrays["empty"] = np.zeros((0, 3), dtype=np.float32)
    arrays["scalar"] = np.array(7, dtype=np.int64)
    save_file(arrays, str(tmp_path / "all.safetensors"))
    loaded = dn.load(tmp_path / "all.safetensors")
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name].data, array)
        assert loaded[name].data.flags.writeable


def test_big_ints_are_json_safe_strings_and_come_back_exactly(tmp_path):
    obj = {"state": 2**127 + 12345, "neg": -(2**60), "edge": 2**53, "small": 7}
    path = tmp_path / "ints.safetensors"
    dn.save(obj, path)
    assert dn.load(path) == obj
    structure = json.loads(dn_io.read_metadata(path)["deepnotes"])
    assert structure == {"state": {"$int": str(2**127 + 12345)}, "neg": {"$int": str(-(2**60))},
                         "edge": 2**53, "small": 7}


def test_metadata_names_the_library_version_and_reads_without_tensors(tmp_path):
    path = tmp_path / "m.safetensors"
    dn.save({"epoch": 3, "w": dn.ones(2)}, path)
    metadata = dn_io.read_metadata(path)
    assert metadata["format"] == "deepnotes" and metadata["version"] == dn_io.FORMAT_VERSION
    assert metadata["library"] == f"deepnotes {dn.__version__}"
    assert json.loads(metadata["deepnotes"]) == {"epoch": 3, "w": {"$tensor": "w"}}


def test_temporaries_of_dead_writers_are_removed_by_the_next_save(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    path = tmp_path / "ckpt.safetensors"
    stale = tmp_path / f".ckpt.safetensors.{dead_pid}.abc123.tmp"
    alive = tmp_path / f".ckpt.safetensors.{os.getppid()}.def456.tmp"  # our parent: alive
    other = tmp_path / f".other.safetensors.{dead_pid}.ghi789.tmp"     # another file's
    for p in (stale, alive, other):
        p.write_bytes(b"half a checkpoint")
    dn.save({"epoch": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ckpt.safetensors", alive.name, other.name])
    assert dn.load(path) == {"epoch": 1}
