"""`load(name)`: one entry point for every data set, local files first.

Files of data set NAME live in <root>/NAME/ (root: `cache_dir()` unless
given). The "digits" sample ships inside the package and needs no download.
"""
import os
from pathlib import Path

from .download import cache_dir, download_file, urls, verify_file
from .errors import DataError
from .readers import CIFAR_LAYOUT, read_cifar, read_mnist, read_svhn

DATASETS = ("digits", "mnist", "cifar10", "cifar100", "svhn")

_INFO = {
    "digits": dict(channels=1, image_size=28, num_classes=10, splits=("train", "test")),
    "mnist": dict(channels=1, image_size=28, num_classes=10, splits=("train", "test")),
    "cifar10": dict(channels=3, image_size=32, num_classes=10, splits=("train", "test")),
    "cifar100": dict(channels=3, image_size=32, num_classes=100, splits=("train", "test")),
    "svhn": dict(channels=3, image_size=32, num_classes=10, splits=("train", "test", "extra")),
}

DIGITS_DIR = Path(__file__).parent / "digits"

# IDX file pairs (images, labels) per split
_IDX_FILES = {
    "digits": {s: (f"{s}-images-idx3-ubyte.gz", f"{s}-labels-idx1-ubyte.gz")
               for s in ("train", "test")},
    "mnist": {s: (f"{p}-images-idx3-ubyte.gz", f"{p}-labels-idx1-ubyte.gz")
              for s, p in (("train", "train"), ("test", "t10k"))},
}
_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def dataset_info(name):
    """Channels, image size (square), number of classes and splits of data set `name`."""
    _check_name(name)
    return dict(_INFO[name])


def load(name, root=None, split="train", download=False):
    """Load a split of a data set as `(images, labels)` host arrays.

    images: float32 (N, C, H, W) in [0, 1]; labels: int64 (N,).
    Missing files are fetched when `download` is true; otherwise DataError
    says how to get them.  Files under their published names are checked
    against the published MD5 (once per file version, see `verify_file`).
    """
    _check_name(name)
    splits = _INFO[name]["splits"]
    if split not in splits:
        raise DataError(f"{name} has splits {splits}, not {split!r}")
    if name == "digits":
        folder = DIGITS_DIR
    else:
        folder = Path(root if root is not None else cache_dir()) / name
    images, labels = _read(name, folder, split, download)
    if len(labels) == 0:
        raise DataError(f"{name} {split} in {folder} holds no images")
    num_classes = _INFO[name]["num_classes"]
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{name} {split} in {folder}: labels range over "
                        f"[{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]")
    return images, labels


def _check_name(name):
    if name not in _INFO:
        raise DataError(f"unknown data set {name!r}; choose one of {DATASETS}")


def _read(name, folder, split, fetch):
    if name == "digits":  # shipped with the package: nothing to fetch
        return read_mnist(*(folder / f for f in _IDX_FILES[name][split]))
    if name in _IDX_FILES:
        return read_mnist(*_ensure(name, folder, _IDX_FILES[name][split], fetch))
    if name in _ARCHIVES:
        extracted = folder / CIFAR_LAYOUT[name][0]
        if extracted.is_dir():
            return read_cifar(extracted, name, split)
        return read_cifar(*_ensure(name, folder, [_ARCHIVES[name]], fetch), name, split)
    return read_svhn(*_ensure(name, folder, [f"{split}_32x32.mat"], fetch))


def _ensure(name, folder, files, fetch):
    """The paths of `files` in `folder`, downloading the missing ones when `fetch` is true.

    A gzip file may also be there unzipped (without ".gz"). Without `fetch`,
    missing files raise DataError telling how to get them.
    """
    def local(f):
        return next((folder / c for c in (f, f.removesuffix(".gz")) if (folder / c).is_file()),
                    None)

    missing = [f for f in files if local(f) is None]
    if missing and not fetch:
        by_hand = "\n".join(f"    {url}" for f in missing for url in urls(name, f))
        # spell out a root other than the default, so the commands can be pasted as they are
        default = folder.parent == cache_dir()
        env = "" if default else f"MINIDL_DATA={folder.parent} "
        root = "" if default else f", root=\"{folder.parent}\""
        raise DataError(
            f"{name}: {', '.join(missing)} not found in {folder}\n"
            f"Download with\n"
            f"    {env}minidl train --model min --dataset {name} --download\n"
            f"or in Python\n"
            f"    minidl.data.load(\"{name}\"{root}, download=True)\n"
            f"or fetch by hand (each file from any one of its URLs)\n{by_hand}\n"
            f"and place {'it' if len(missing) == 1 else 'them'} in {folder}{os.sep}")
    for f in missing:
        download_file(name, f, folder)
    paths = [local(f) for f in files]
    for path in paths:
        verify_file(name, path)
    return paths
