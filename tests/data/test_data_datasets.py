"""load(), dataset_info() and the shipped digits sample."""
import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl.data
from minidl.data import DATASETS, DataError, dataset_info, load, write_idx


@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000)])
def test_digits(split, n):
    images, labels = load("digits", split=split)
    assert images.shape == (n, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [n // 10] * 10)
    assert images.min() == 0.0 and images.max() == 1.0
    # real digits, not noise: mostly background, and the classes differ on average
    assert 0.05 < images.mean() < 0.25
    means = np.stack([images[labels == c].mean(axis=0).ravel() for c in range(10)])
    assert np.corrcoef(means)[0, 1] < 0.8


def test_digits_splits_are_disjoint():
    train, _ = load("digits", split="train")
    test, _ = load("digits", split="test")
    seen = {image.tobytes() for image in train}
    assert sum(image.tobytes() in seen for image in test) == 0


def test_digits_ignores_root(tmp_path):
    images, _ = load("digits", root=tmp_path, split="test")
    assert len(images) == 1000 and list(tmp_path.iterdir()) == []


def test_digits_files_and_notice():
    folder = Path(minidl.data.__file__).parent / "digits"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["NOTICE", "test-images-idx3-ubyte.gz", "test-labels-idx1-ubyte.gz",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert "CC BY-SA 3.0" in (folder / "NOTICE").read_text()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000


@pytest.mark.parametrize("name, channels, size, classes", [
    ("digits", 1, 28, 10), ("mnist", 1, 28, 10), ("cifar10", 3, 32, 10),
    ("cifar100", 3, 32, 100), ("svhn", 3, 32, 10)])
def test_dataset_info(name, channels, size, classes):
    info = dataset_info(name)
    assert (info["channels"], info["image_size"], info["num_classes"]) == (channels, size, classes)
    assert name in DATASETS


def test_unknown_name():
    with pytest.raises(DataError, match=r"unknown data set 'imagenet'; choose one of \('digits', "):
        load("imagenet")
    with pytest.raises(DataError, match=r"unknown data set 'cifar'"):
        dataset_info("cifar")


def test_unknown_split():
    with pytest.raises(DataError, match=r"digits has splits \('train', 'test'\), not 'valid'"):
        load("digits", split="valid")


def test_mnist_from_root(tmp_path, make_mnist):
    arrays = make_mnist(tmp_path / "mnist", n=9)
    images, labels = load("mnist", root=tmp_path, split="train")
    np.testing.assert_allclose(images[:, 0] * 255, arrays["train"][0], atol=1e-4)
    np.testing.assert_array_equal(labels, arrays["train"][1])


def test_root_defaults_to_cache_dir(tmp_path, make_mnist, monkeypatch):
    make_mnist(tmp_path / "mnist", n=2)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    assert load("mnist", split="test")[0].shape == (2, 1, 28, 28)


def test_labels_out_of_range(tmp_path, make_mnist):
    make_mnist(tmp_path / "mnist", n=3)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.array([1, 12, 3], np.uint8))
    with pytest.raises(DataError, match=r"mnist train in .*mnist: labels range over \[1, 12\], "
                                        r"expected \[0, 9\]"):
        load("mnist", root=tmp_path)


def test_data_layer_imports_nothing_above_numpy():
    """minidl.data must not depend on autograd, nn or anything built on them."""
    allowed = {"numpy", "tqdm", "PIL"}
    for path in Path(minidl.data.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            elif isinstance(node, ast.ImportFrom):  # siblings, ..progress, ..fileio, ..arguments
                assert node.level == 1 or node.module in ("progress", "fileio", "_arguments"), (
                    path, node.module)
                continue
            else:
                continue
            assert roots <= allowed | set(sys.stdlib_module_names), (path, roots)


def test_a_split_without_images_is_an_error_at_load(tmp_path, make_mnist):
    make_mnist(tmp_path / "mnist", n=0)
    with pytest.raises(DataError, match=r"mnist test in .*mnist holds no images"):
        load("mnist", root=tmp_path, split="test")
