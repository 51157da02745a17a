"""MNIST / Fashion-MNIST IDX and CIFAR-10 binary loaders on tiny files written in those formats
(by hand, byte by byte, from the format's definition)."""

import gzip
import struct

import numpy as np
import pytest

from deepnotes.data import cifar10, fashion_mnist, mnist
from deepnotes.data.files import read_idx, write_idx


def idx_bytes(array):
    """IDX written from the spec: 0, 0, type code, ndim, big-endian uint32 dims, big-endian data."""
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[array.dtype.type]
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, n_train=5, n_test=3, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    train, test = mnist(tmp_path)          # the torchvision layout under the given folder
    assert len(train) == 5 and len(test) == 3
    x, y = train[2]
    assert x.shape == (1, 28, 28) and x.data.dtype == np.float32
    np.testing.assert_allclose(x.data[0], arrays["train-images-idx3-ubyte"][2] / 255.0,
                               rtol=1e-6)
    assert int(y.item()) == arrays["train-labels-idx1-ubyte"][2]
    np.testing.assert_array_equal(test.tensors[1].data, arrays["t10k-labels-idx1-ubyte"])


def test_fashion_mnist_and_missing_files_are_named(tmp_path):
    write_mnist(tmp_path / "fm", seed=1)
    train, _ = fashion_mnist(tmp_path / "fm")
    assert len(train) == 5
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as err:
        fashion_mnist(tmp_path / "fm")
    assert "never downloads" in str(err.value) and "train-images" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        mnist(tmp_path / "nothing-here")


def test_idx_round_trip_and_bad_files(tmp_path):
    for array in (np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5,
                  np.linspace(-1, 1, 6, dtype=np.float32)):
        write_idx(tmp_path / "a.idx.gz", array)
        assert (tmp_path / "a.idx.gz").read_bytes()[:2] == b"\x1f\x8b"
        back = read_idx(tmp_path / "a.idx.gz")
        np.testing.assert_array_equal(back, array)
        assert back.dtype == array.dtype
        (tmp_path / "raw.idx").write_bytes(idx_bytes(array))
        np.testing.assert_array_equal(read_idx(tmp_path / "raw.idx"), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="shape"):
        read_idx(tmp_path / "bad")
    (tmp_path / "text").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "text")


def test_cifar10_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, 2, dtype=np.uint8)
        images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
        # one record: label byte, then 1024 red, 1024 green, 1024 blue bytes (row-major)
        data = b"".join(bytes([lab]) + img[0].tobytes() + img[1].tobytes() + img[2].tobytes()
                        for lab, img in zip(labels, images))
        (folder / name).write_bytes(data)
        records[name] = (images, labels)
    train, test = cifar10(tmp_path)
    assert len(train) == 10 and len(test) == 2
    x, y = train[3]                                 # second record of data_batch_2
    images, labels = records["data_batch_2.bin"]
    np.testing.assert_allclose(x.data, images[1] / 255.0, rtol=1e-6)
    assert int(y.item()) == labels[1]
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4.bin"):
        cifar10(tmp_path)


def test_damaged_files_give_clear_errors(tmp_path):
    folder = tmp_path / "cifar"
    folder.mkdir()
    record = bytes([3]) + bytes(3 * 32 * 32)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record * 2)
    (folder / "data_batch_3.bin").write_bytes(record * 2 + b"\x00" * 10)   # cut-off record
    with pytest.raises(ValueError, match="data_batch_3.bin.*3073-byte"):
        cifar10(folder)
    (folder / "data_batch_3.bin").write_bytes(bytes([12]) + bytes(3 * 32 * 32))
    with pytest.raises(ValueError, match="labels must be 0-9, found 12"):
        cifar10(folder)

    arrays = write_mnist(tmp_path / "mnist", n_train=4)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(
        idx_bytes(arrays["train-labels-idx1-ubyte"][:3]))
    with pytest.raises(ValueError, match=r"\(4, 28, 28\) and \(3,\)"):
        mnist(tmp_path / "mnist")
