"""The IDX format of MNIST: a big-endian header, then the raw array.

Header: two zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension. Read as a big-endian int, the first four
bytes are the "magic number": 2049 for MNIST labels (ubyte, 1 dim) and 2051
for MNIST images (ubyte, 3 dims). Files may be gzip-compressed; the reader
looks at the first two bytes (1f 8b), not at the file name.
"""
import gzip
import zlib

import numpy as np

from .errors import DataError

# IDX type code -> big-endian dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path):
    """The contents of `path`, decompressed if it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # a cut download ends mid-stream
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from e


def read_idx(path, magic=None):
    """Read an IDX file (plain or gzip) into a native-endian NumPy array.

    `magic`, when given, is the expected magic number (2049 labels, 2051 images);
    any other raises DataError naming the file and both numbers.
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise DataError(f"{path}: bad magic number {found}, expected {magic} "
                        f"(is this the right IDX file?)")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or code not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (header bytes {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header: expected {header} bytes, found {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[code])
    expected = header + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing data"
        raise DataError(f"{path}: {what}: header {shape} needs {expected} bytes, "
                        f"file holds {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write `array` as an IDX file, gzip-compressed when `path` ends in ".gz".

    The gzip header carries no time stamp, so the same array always gives
    the same bytes.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; "
                        f"use one of {sorted(str(np.dtype(d)) for d in _DTYPES.values())}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
