"""SVHN format 2 (.mat): the built-in MATLAB 5 reader, cross-checked with SciPy when installed."""
import struct
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidl.data import DataError, load, read_mat, read_svhn

# --- a minimal MATLAB 5 writer, independent of the reader under test -------------

MI = {"int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6,
      "float32": 7, "float64": 9}
MX = {"float64": 6, "float32": 7, "int8": 8, "uint8": 9, "int16": 10, "uint16": 11,
      "int32": 12, "uint32": 13}
MI_MATRIX, MI_COMPRESSED = 14, 15


def element(mtype, data, order):
    if mtype != MI_MATRIX and len(data) <= 4:  # small element format
        return struct.pack(order + "I", len(data) << 16 | mtype) + data.ljust(4, b"\0")
    return struct.pack(order + "II", mtype, len(data)) + data + bytes(-len(data) % 8)


def matrix(name, array, order, stored=None):
    """A miMATRIX element; `stored` is the storage dtype (MATLAB stores doubles compactly)."""
    array = np.asarray(array)
    stored = np.dtype(stored or array.dtype)
    body = element(MI["uint32"], struct.pack(order + "II", MX[array.dtype.name], 0), order)
    body += element(MI["int32"], struct.pack(f"{order}{array.ndim}i", *array.shape), order)
    body += element(MI["int8"], name.encode(), order)
    values = array.ravel(order="F").astype(stored.newbyteorder(order))
    body += element(MI[stored.name], values.tobytes(), order)
    return element(MI_MATRIX, body, order)


def write_mat(path, variables, compress=False, order="<", version=0x0100):
    """variables: name -> array or (array, storage dtype)."""
    text = b"MATLAB 5.0 MAT-file, written by the minidl tests".ljust(116, b" ")
    out = text + bytes(8) + struct.pack(order + "HH", version, 0x4D49)
    for name, value in variables.items():
        array, stored = value if isinstance(value, tuple) else (value, None)
        data = matrix(name, array, order, stored)
        if compress:  # compressed elements carry no padding
            packed = zlib.compress(data)
            data = struct.pack(order + "II", MI_COMPRESSED, len(packed)) + packed
        out += data
    path.write_bytes(out)


def svhn_arrays(n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.float64)  # 10 is the digit 0
    y[0] = 10
    return x, y


def write_svhn(path, n=5, seed=0, compress=True):
    x, y = svhn_arrays(n, seed)
    write_mat(path, {"X": x, "y": (y, "uint8")}, compress=compress)
    return x, y


# --- the built-in reader ---------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("order", ["<", ">"])
def test_builtin_reader(tmp_path, compress, order):
    x, y = svhn_arrays()
    write_mat(tmp_path / "a.mat", {"X": x, "y": (y, "uint8"), "abc": np.eye(2)},
              compress=compress, order=order)
    got = read_mat(tmp_path / "a.mat")
    assert sorted(got) == ["X", "abc", "y"]
    assert got["X"].dtype == np.uint8 and got["y"].dtype == np.float64
    np.testing.assert_array_equal(got["X"], x)
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got["abc"], np.eye(2))


@given(array=hnp.arrays(st.sampled_from(sorted(MX)), hnp.array_shapes(min_dims=2, max_dims=4,
                                                                     min_side=0, max_side=5)),
       compress=st.booleans(), order=st.sampled_from("<>"))
def test_builtin_reader_round_trip(tmp_path_factory, array, compress, order):
    path = tmp_path_factory.mktemp("mat") / "r.mat"
    write_mat(path, {"v": array}, compress=compress, order=order)
    got = read_mat(path)["v"]
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)


def test_not_a_mat_file(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"<html>" + bytes(200))
    with pytest.raises(DataError, match=r"a\.mat: not a MATLAB 5 file"):
        read_mat(tmp_path / "a.mat")


def test_short_file(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"MATLAB")
    with pytest.raises(DataError, match=r"a\.mat: 6 bytes is too short for the 128-byte"):
        read_mat(tmp_path / "a.mat")


def test_v73_refused(tmp_path):
    write_mat(tmp_path / "a.mat", {"X": np.zeros((2, 2))}, version=0x0200)
    with pytest.raises(DataError, match=r"a\.mat: MATLAB file version 0x0200 is not supported "
                                        r"\(v7\.3 files are HDF5"):
        read_mat(tmp_path / "a.mat")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated(tmp_path, compress):
    write_svhn(tmp_path / "a.mat", compress=compress)
    raw = (tmp_path / "a.mat").read_bytes()
    (tmp_path / "a.mat").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(DataError, match=r"a\.mat: truncated: data element at byte 128 needs "
                                        r"\d+ bytes, \d+ left"):
        read_mat(tmp_path / "a.mat")


def test_corrupt_compressed(tmp_path):
    write_svhn(tmp_path / "a.mat", compress=True)
    raw = bytearray((tmp_path / "a.mat").read_bytes())
    raw[140:160] = bytes(20)
    (tmp_path / "a.mat").write_bytes(raw)
    with pytest.raises(DataError, match=r"a\.mat: corrupt compressed variable"):
        read_mat(tmp_path / "a.mat")


def test_wrong_value_count(tmp_path):
    data = matrix("v", np.zeros((2, 3)), "<")
    data = data.replace(struct.pack("<2i", 2, 3), struct.pack("<2i", 2, 4))
    (tmp_path / "a.mat").write_bytes(bytes(124) + b"\x00\x01IM" + data)
    with pytest.raises(DataError, match=r"a\.mat: variable 'v' has 6 values for dimensions "
                                        r"\(2, 4\)"):
        read_mat(tmp_path / "a.mat")


# --- cross-checks with SciPy ------------------------------------------------------

def test_scipy_reads_the_test_writer(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    x, y = write_svhn(tmp_path / "a.mat", compress=True)
    got = scipy_io.loadmat(tmp_path / "a.mat")
    np.testing.assert_array_equal(got["X"], x)
    np.testing.assert_array_equal(got["y"], y)


@pytest.mark.parametrize("compress", [False, True])
def test_builtin_reads_scipy_files(tmp_path, compress):
    scipy_io = pytest.importorskip("scipy.io")
    x, y = svhn_arrays()
    scipy_io.savemat(tmp_path / "a.mat", {"X": x, "y": y, "note": "text", "cell": [[1, "a"]],
                                          "z": np.arange(6, dtype=np.int16).reshape(2, 3)},
                     do_compression=compress)
    got = read_mat(tmp_path / "a.mat")
    assert sorted(got) == ["X", "y", "z"]  # char and cell variables are skipped
    np.testing.assert_array_equal(got["X"], x)
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got["z"], np.arange(6).reshape(2, 3))


def test_complex_refused(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(tmp_path / "a.mat", {"c": np.array([[1 + 2j]])})
    with pytest.raises(DataError, match=r"a\.mat: variable 'c' is complex"):
        read_mat(tmp_path / "a.mat")


# --- read_svhn and load("svhn") ---------------------------------------------------


def test_svhn_label_out_of_range(tmp_path):
    x, y = svhn_arrays(n=3)
    y[1, 0] = 11
    write_mat(tmp_path / "bad.mat", {"X": x, "y": (y, "uint8")}, compress=True)
    with pytest.raises(DataError, match=r"bad\.mat: label 11 at index 1 is not a digit 1\.\.10"):
        read_svhn(tmp_path / "bad.mat")


def test_empty_compressed_variable(tmp_path):
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    empty = zlib.compress(b"")
    (tmp_path / "e.mat").write_bytes(header + element(15, empty, "<"))
    with pytest.raises(DataError, match=r"e\.mat: empty compressed variable"):
        read_mat(tmp_path / "e.mat")


def test_read_svhn(tmp_path):
    x, y = write_svhn(tmp_path / "train_32x32.mat", n=6)
    images, labels = read_svhn(tmp_path / "train_32x32.mat")
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, y[:, 0] % 10)
    assert labels[0] == 0
    # image n, channel c, row h, column w is X[h, w, c, n]
    np.testing.assert_allclose(images[4, 2, 7, 30] * 255, x[7, 30, 2, 4], atol=1e-4)
    np.testing.assert_allclose(images * 255, x.transpose(3, 2, 0, 1), atol=1e-4)


def test_read_svhn_wrong_shape(tmp_path):
    write_mat(tmp_path / "a.mat", {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=r"a\.mat: expected X \(32, 32, 3, N\) and y \(N, 1\), "
                                        r"found X \(28, 28, 1, 2\) and y \(2, 1\)"):
        read_svhn(tmp_path / "a.mat")


def test_read_svhn_missing_variable(tmp_path):
    write_mat(tmp_path / "a.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataError, match=r"a\.mat: expected variables X and y, found \['X'\]"):
        read_svhn(tmp_path / "a.mat")


def test_read_svhn_garbage(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"<html>Service unavailable</html>" + bytes(200))
    with pytest.raises(DataError, match=r"a\.mat: not a MATLAB"):
        read_svhn(tmp_path / "a.mat")


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_load_svhn(tmp_path, split):
    (tmp_path / "svhn").mkdir()
    x, y = write_svhn(tmp_path / "svhn" / f"{split}_32x32.mat", n=4, seed=3)
    images, labels = load("svhn", root=tmp_path, split=split)
    assert images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(labels, y[:, 0] % 10)


@pytest.mark.parametrize("labels, message", [
    (np.array([[1.0], [2.5], [3.0]]), r"label 2\.5 at index 1 is not an integer"),
    (np.array([[1.0], [np.nan], [3.0]]), r"label nan at index 1 is not an integer"),
    (np.array([[1], [0], [3]], np.uint8), r"label 0 at index 1 is below 1"),
])
def test_svhn_labels_must_be_digits_1_to_10(tmp_path, labels, message):
    x, _ = svhn_arrays(n=3)
    write_mat(tmp_path / "bad.mat", {"X": x, "y": labels})
    with pytest.raises(DataError, match=rf"bad\.mat: {message}"):
        read_svhn(tmp_path / "bad.mat")


def test_scipy_is_never_asked_to_parse(tmp_path, monkeypatch):
    """An untrusted .mat file reaches only the built-in reader, which validates every size."""
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)      # `import scipy.io` would fail
    x, y = write_svhn(tmp_path / "a.mat", n=2)
    np.testing.assert_array_equal(read_svhn(tmp_path / "a.mat")[1], y[:, 0] % 10)


@pytest.mark.parametrize("compress", [False, True])
def test_every_damaged_byte_is_a_data_error_or_a_valid_result(tmp_path, compress):
    """Each byte of a small file, flipped in turn: a DataError or well-formed arrays, never a crash."""
    write_svhn(tmp_path / "a.mat", n=1, compress=compress)
    original = (tmp_path / "a.mat").read_bytes()
    # Uncompressed, the tags sit at both ends and the middle is pixels: every tag byte, a
    # sample of the pixels.  Compressed, any byte may break the stream: all of them.
    offsets = [o for o in range(len(original))
               if compress or o < 300 or o > len(original) - 200 or o % 61 == 0]
    outcomes = set()
    for offset in offsets:
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        (tmp_path / "b.mat").write_bytes(bytes(damaged))
        try:
            images, labels = read_svhn(tmp_path / "b.mat")
        except DataError:
            outcomes.add("DataError")
            continue
        assert images.shape == (1, 3, 32, 32) and labels.shape == (1,)
        assert labels.dtype == np.int64 and 0 <= labels.min() and labels.max() <= 9
        outcomes.add("read")
    assert outcomes == {"DataError", "read"}     # flips in the pixels still read, as they should
