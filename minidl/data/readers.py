"""Readers for the canonical files of MNIST, CIFAR-10/100 and SVHN.

Each returns `(images, labels)`: images float32 NCHW scaled to [0, 1],
labels int64. Anything wrong with a file raises DataError naming it.
"""
import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .idx import read_idx
from .matlab import read_mat

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy < 1.26 has only the old name
    from numpy.core.multiarray import _reconstruct

IDX_LABELS, IDX_IMAGES = 2049, 2051


def to_float(images):
    """uint8 pixels -> float32 in [0, 1], as every reader returns them."""
    return images.astype(np.float32) / np.float32(255)


def read_mnist(images_path, labels_path):
    """Read an MNIST-style pair of IDX files (ubyte images N x H x W, ubyte labels N)."""
    images = read_idx(images_path, magic=IDX_IMAGES)
    labels = read_idx(labels_path, magic=IDX_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} "
                        f"holds {len(labels)} labels")
    return to_float(images[:, None]), class_labels(labels, labels_path)


def class_labels(values, where, first=0):
    """``values`` as int64 class labels, or a DataError: they must be integral numbers.

    A float label such as 1.7 is a damaged file, not class 1.  ``first`` is
    the smallest label the format allows (SVHN counts from 1); the data set's
    class count is checked by :func:`minidl.data.load`.
    """
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels must be a list of integers, found "
                        f"{values.dtype} of shape {values.shape}")
    if values.dtype.kind == "f":
        fractional = ~np.isfinite(values) | (values != np.round(values))
        if fractional.any():
            bad = int(fractional.argmax())
            raise DataError(f"{where}: label {values[bad]} at index {bad} is not an integer")
    if values.size and values.min() < first:
        bad = int((values < first).argmax())
        raise DataError(f"{where}: label {values[bad]} at index {bad} is below {first}, the "
                        f"smallest label of this format")
    return values.astype(np.int64)


# --- CIFAR ----------------------------------------------------------------------

# CIFAR batches are pickles, and unpickling can run arbitrary code. Dicts,
# lists, bytes, str and int come from pickle opcodes; the only globals
# allowed are those that rebuild a NumPy array, and these builtins.
_ALLOWED = {
    # the module was numpy.core before NumPy 2 and numpy._core since
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 2 pickles (CIFAR's) name the builtins module __builtin__
    **{(module, t.__name__): t for module in ("builtins", "__builtin__")
       for t in (dict, list, bytes, str, int)},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return _ALLOWED[module, name]


def _unpickle(data, where):
    try:
        batch = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same
        raise DataError(f"{where}: not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a dict, found {type(batch).__name__}")
    return batch


# data set -> (folder inside the archive, train batches, test batches, label key)
CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def read_cifar(path, dataset="cifar10", split="train"):
    """Read CIFAR-10 or CIFAR-100 ("python version") from the .tar.gz or its extracted folder.

    `path` is the archive (cifar-10-python.tar.gz, cifar-100-python.tar.gz) or
    the folder it unpacks to (cifar-10-batches-py, cifar-100-python).
    CIFAR-100 labels are the 100 fine labels.
    """
    if dataset not in CIFAR_LAYOUT or split not in ("train", "test"):
        raise DataError(f"{path}: dataset must be 'cifar10' or 'cifar100' and split 'train' "
                        f"or 'test', got {dataset!r}, {split!r}")
    folder, train, test, label_key = CIFAR_LAYOUT[dataset]
    names = train if split == "train" else test
    path = Path(path)
    if path.is_dir():
        raw = {}
        for name in names:
            member = path / name
            if not member.is_file():
                raise DataError(f"{path}: missing {name}; is this the {dataset} python version?")
            raw[name] = member.read_bytes()
    else:
        raw = _read_tar(path, [f"{folder}/{name}" for name in names], dataset)
    images, labels = [], []
    for name, data in raw.items():
        where = f"{path}:{name}"
        batch = _unpickle(data, where)
        for key in (b"data", label_key):
            if key not in batch:
                raise DataError(f"{where}: no {key!r} entry; found {sorted(batch)}")
        x, y = np.asarray(batch[b"data"]), batch[label_key]
        if not isinstance(y, (list, np.ndarray)):
            raise DataError(f"{where}: {label_key!r} must be a list of labels, found "
                            f"{type(y).__name__}")
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
            raise DataError(f"{where}: expected uint8 data (N, 3072) and N labels, "
                            f"found {x.dtype} {x.shape} and {len(y)} labels")
        images.append(x.reshape(-1, 3, 32, 32))  # rows are R, G, B planes of 32 x 32
        labels.append(class_labels(y, where))
    return to_float(np.concatenate(images)), np.concatenate(labels)


def _read_tar(path, members, dataset):
    """The bytes of `members` of a .tar.gz archive, read in one pass over the stream.

    The gzip stream is read to its very end, where gzip keeps the CRC-32 and
    the length of the data: tarfile alone stops at the last member it needs,
    so a flipped bit in the compressed data would load as wrong pixels.
    """
    found = {}
    try:
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if info.name in members and info.isfile():
                    found[info.name] = tar.extractfile(info).read()
            while stream.read(1 << 20):     # to the end: gzip checks CRC and length there
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({e})") from e
    missing = [m for m in members if m not in found]
    if missing:
        raise DataError(f"{path}: no member {missing[0]}; is this the {dataset} "
                        f"python version archive?")
    return {m.rsplit("/", 1)[1]: found[m] for m in members}


# --- SVHN -----------------------------------------------------------------------

def read_svhn(path):
    """Read an SVHN format 2 file (train_32x32.mat, test_32x32.mat, extra_32x32.mat).

    X is (32, 32, 3, N) uint8 and y (N, 1) with labels 1..10, 10 standing for
    the digit 0; the result has labels 0-9.  The built-in MATLAB 5 reader
    parses the file: it validates every header, tag and size before reading,
    whereas SciPy's parser has crashed the process on crafted files.
    """
    variables = read_mat(path)
    if "X" not in variables or "y" not in variables:
        raise DataError(f"{path}: expected variables X and y, found {sorted(variables)}")
    x, y = variables["X"], variables["y"]
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise DataError(f"{path}: expected X (32, 32, 3, N) and y (N, 1), "
                        f"found X {x.shape} and y {y.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 pixels in X, found {x.dtype}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> NCHW
    labels = class_labels(y.reshape(-1), path, first=1)
    if labels.size and labels.max() > 10:
        bad = int((labels > 10).argmax())
        raise DataError(f"{path}: label {labels[bad]} at index {bad} is not a digit 1..10")
    labels[labels == 10] = 0                                  # SVHN writes digit 0 as 10
    return to_float(images), labels
