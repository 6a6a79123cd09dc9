"""IDX (MNIST) reading and writing."""
import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidl.data import DataError, read_idx, read_mnist, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


@given(array=hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=4,
                                                                     max_side=6)),
       gz=st.booleans())
def test_write_read_round_trip(tmp_path_factory, array, gz):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz


def test_writer_is_deterministic(tmp_path):
    array = np.arange(600, dtype=np.uint8).reshape(6, 10, 10)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_writer_header_is_mnist_format(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 030104")


def test_writer_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match=r"a\.idx: IDX cannot store dtype uint32"):
        write_idx(tmp_path / "a.idx", np.zeros(3, np.uint32))


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist_files(tmp_path, make_mnist, gz):
    arrays = make_mnist(tmp_path, n=5, gz=gz)
    suffix = ".gz" if gz else ""
    x, y = read_mnist(tmp_path / f"t10k-images-idx3-ubyte{suffix}",
                      tmp_path / f"t10k-labels-idx1-ubyte{suffix}")
    images, labels = arrays["test"]
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_gzip_detected_by_content_not_name(tmp_path, make_mnist):
    make_mnist(tmp_path, n=3, gz=True)
    plain_named = tmp_path / "labels-no-suffix"
    plain_named.write_bytes((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes())
    assert read_idx(plain_named, magic=2049).shape == (3,)


def test_bad_magic_names_file_and_numbers(tmp_path, make_mnist):
    make_mnist(tmp_path, n=3)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: bad magic number 2049, "
                                        r"expected 2051"):
        read_mnist(labels, images)  # swapped


def test_not_idx_at_all(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match=r"page\.html: not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_reports_expected_and_actual_bytes(tmp_path, gz):
    data = bytes.fromhex("00000803 00000002 00000004 00000004") + bytes(32)
    cut = data[:-5]  # 2 x 4 x 4 needs 16 + 32 = 48 bytes
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(DataError, match=r"x(\.gz)?: truncated: header \(2, 4, 4\) needs 48 "
                                        r"bytes, file holds 43"):
        read_idx(path, magic=2051)


def test_truncated_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes.fromhex("00000803 00000002"))
    with pytest.raises(DataError, match=r"x: truncated header: expected 16 bytes, found 8"):
        read_idx(path)


def test_trailing_data(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes.fromhex("00000801 00000002 0102 03"))
    with pytest.raises(DataError, match=r"x: has trailing data: header \(2,\) needs 10 bytes, "
                                        r"file holds 11"):
        read_idx(path)


def test_cut_gzip_stream(tmp_path, make_mnist):
    make_mnist(tmp_path, n=20)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_image_and_label_counts_must_agree(tmp_path, make_mnist):
    make_mnist(tmp_path, n=4)
    labels = tmp_path / "few-labels"
    write_idx(labels, np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"holds 4 images but .*few-labels holds 3 labels"):
        read_mnist(tmp_path / "train-images-idx3-ubyte.gz", labels)
