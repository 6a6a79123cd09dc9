"""Reading images to predict on from files: NumPy ``.npy``, IDX, and pictures (PNG, JPEG).

    images = read_images("digit.png", channels=1)        # (28, 28) uint8
    images = read_images("t10k-images-idx3-ubyte.gz")    # (10000, 28, 28) uint8
    labels = read_array("t10k-labels-idx1-ubyte.gz")      # (10000,) uint8

Arrays come back as the file stores them (no scaling, no reshaping).  A
picture is converted to ``channels`` channels (grey or RGB) and returned as
HxW (one channel) or CxHxW; it is not resized.  Pictures need Pillow, an
optional dependency (``pip install "minidl[image]"``), imported only when a
picture is read.
"""
from pathlib import Path

import numpy as np

from .errors import DataError
from .idx import read_idx

__all__ = ["PICTURE_SUFFIXES", "read_array", "read_picture", "read_images"]

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_array(path):
    """The array in a ``.npy`` file (never unpickled) or an IDX file (plain or gzip)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    if path.suffix.lower() != ".npy":
        return read_idx(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        # numpy's message on an object array advises allow_pickle=: not for files we read
        detail = "it holds Python objects" if "allow_pickle" in str(exc) else exc
        raise DataError(f"{path} is not a readable .npy file: {detail}") from None


def read_picture(path, channels=1):
    """A PNG or JPEG file as uint8 HxW (``channels=1``, grey) or CxHxW (RGB for 3)."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError('reading PNG or JPEG files needs Pillow, which is not installed: '
                          'pip install "minidl[image]"') from exc
    if channels not in (1, 3):
        raise ValueError(f"read_picture: channels must be 1 or 3, got {channels!r}")
    try:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("L" if channels == 1 else "RGB"))
    except OSError as exc:     # missing, truncated, or not a picture (PIL.UnidentifiedImageError)
        raise DataError(f"{path} is not a readable picture: {exc}") from None
    return pixels if channels == 1 else pixels.transpose(2, 0, 1)


def read_images(path, channels=1):
    """:func:`read_picture` for ``.png``/``.jpg``/``.jpeg`` files, else :func:`read_array`."""
    if Path(path).suffix.lower() in PICTURE_SUFFIXES:
        return read_picture(path, channels)
    return read_array(path)
