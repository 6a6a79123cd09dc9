"""CIFAR-10/100 python-version batches: archive, extracted folder, restricted unpickling."""
import os
import pickle

import numpy as np
import pytest
from cifar_files import batch_pickle, make_cifar

from minidl.data import DataError, load, read_cifar

def check(result, expected):
    x, y = result
    data, labels = expected
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (len(data), 3, 32, 32)
    # rows hold the red, green and blue 32 x 32 planes in turn
    np.testing.assert_allclose(x[:, 1, 2, 5] * 255, data[:, 1024 + 2 * 32 + 5], atol=1e-4)
    np.testing.assert_allclose(x.reshape(len(data), -1) * 255, data, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("archive", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_read_archive_and_folder(tmp_path, dataset, archive, split):
    path, arrays = make_cifar(tmp_path, dataset, archive=archive)
    check(read_cifar(path, dataset, split), arrays[split])


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_load_prefers_extracted_folder_then_archive(tmp_path, dataset):
    folder = tmp_path / dataset
    _, from_archive = make_cifar(folder, dataset, archive=True, seed=1)
    check(load(dataset, root=tmp_path, split="test"), from_archive["test"])
    _, extracted = make_cifar(folder, dataset, archive=False, seed=2)
    check(load(dataset, root=tmp_path, split="test"), extracted["test"])


def test_numpy1_pickles_load(tmp_path):
    """Real CIFAR pickles name numpy.core.multiarray, NumPy 2's is numpy._core."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    blob = batch_pickle(data, [3, 4], b"labels")
    old = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert old != blob
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(old)
    check(read_cifar(folder, "cifar10", "test"), (data, [3, 4]))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_arbitrary_globals(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=3))
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR python batch "
                                        r"\(UnpicklingError: refusing to load global "
                                        r"(posix|os|nt)\.system\)"):
        read_cifar(folder, "cifar10", "test")


def test_missing_member_in_archive(tmp_path):
    path, _ = make_cifar(tmp_path, "cifar100")
    with pytest.raises(DataError, match=r"cifar-100-python\.tar\.gz: no member "
                                        r"cifar-10-batches-py/test_batch; is this the cifar10"):
        read_cifar(path, "cifar10", "test")


def test_missing_batch_in_folder(tmp_path):
    folder, _ = make_cifar(tmp_path, "cifar10", archive=False)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py: missing data_batch_3"):
        read_cifar(folder, "cifar10", "train")


def test_truncated_archive(tmp_path):
    path, _ = make_cifar(tmp_path, "cifar10", n=40)
    path.write_bytes(path.read_bytes()[:-20000])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: corrupt or truncated archive"):
        read_cifar(path, "cifar10", "train")


def test_wrong_data_shape(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(
        batch_pickle(np.zeros((2, 1024), np.uint8), [1, 2], b"labels"))
    with pytest.raises(DataError, match=r"test_batch: expected uint8 data \(N, 3072\) and N "
                                        r"labels, found uint8 \(2, 1024\) and 2 labels"):
        read_cifar(folder, "cifar10", "test")


def test_missing_label_key(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(batch_pickle(np.zeros((2, 3072), np.uint8), [1, 2], b"labels"))
    with pytest.raises(DataError, match=r"test: no b'fine_labels' entry"):
        read_cifar(folder, "cifar100", "test")


def test_garbage_pickle(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(b"\x80\x03garbage")
    with pytest.raises(DataError, match=r"cifar-100-python:test: not a CIFAR python batch"):
        read_cifar(folder, "cifar100", "test")


def test_bad_dataset_or_split(tmp_path):
    with pytest.raises(DataError, match=r"dataset must be 'cifar10' or 'cifar100' and split "
                                        r"'train' or 'test', got 'cifar10', 'valid'"):
        read_cifar(tmp_path, "cifar10", "valid")


def test_every_flipped_byte_of_an_archive_is_an_error_or_the_same_data(tmp_path):
    """A bit flip anywhere in a .tar.gz: a DataError, or (in gzip's unchecked header fields,
    such as its time stamp) exactly the original data; never silently different pixels."""
    archive, _ = make_cifar(tmp_path, "cifar10", n=1)
    original = archive.read_bytes()
    expected = read_cifar(archive, "cifar10", "test")
    damaged_path = tmp_path / "damaged.tar.gz"
    # Every byte of gzip's header and trailer (CRC-32, length), a stride through the
    # compressed stream between them: each read costs a few milliseconds.
    offsets = [o for o in range(len(original)) if o < 64 or o >= len(original) - 8 or o % 53 == 0]
    outcomes = set()
    for offset in offsets:
        damaged = bytearray(original)
        damaged[offset] ^= 0x10
        damaged_path.write_bytes(bytes(damaged))
        try:
            images, labels = read_cifar(damaged_path, "cifar10", "test")
        except DataError:
            outcomes.add("error")
            continue
        np.testing.assert_array_equal(images, expected[0])
        np.testing.assert_array_equal(labels, expected[1])
        outcomes.add("same")
    assert outcomes == {"error", "same"}


@pytest.mark.parametrize("labels, message", [
    ([1.7, 2.0, 3.0], r"label 1\.7 at index 0 is not an integer"),
    ([b"a", b"b", b"c"], r"labels must be a list of integers"),
    ([-1, 2, 3], r"label -1 at index 0 is below 0"),
])
def test_cifar_labels_must_be_integers(tmp_path, labels, message):
    data = np.zeros((3, 3072), np.uint8)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": data, b"labels": labels}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match=rf"test_batch: {message}"):
        read_cifar(folder, "cifar10", "test")
