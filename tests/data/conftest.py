"""Fixtures shared by the data tests: small MNIST-style files written by hand."""
import gzip
import struct

import numpy as np
import pytest


def write_idx_by_hand(path, array, magic):
    """An IDX file built with struct, independent of minidl's writer; gzip if path ends in .gz."""
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def make_mnist():
    """A function writing fake MNIST files into a folder; returns {split: (images, labels)}.

    Images are uint8 (n, 28, 28), labels uint8 (n,); file names as MNIST's own.
    """
    def make(folder, n=12, gz=True, seed=0):
        rng = np.random.default_rng(seed)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".gz" if gz else ""
        arrays = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            write_idx_by_hand(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, 2051)
            write_idx_by_hand(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, 2049)
            arrays[split] = images, labels
        return arrays
    return make
