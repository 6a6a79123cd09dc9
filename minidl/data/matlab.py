"""A small reader for MATLAB 5 (v6/v7) .mat files, used when SciPy is absent.

It reads what SVHN's files hold: real numeric matrices, possibly zlib-
compressed, in either byte order. Variables of other classes (cell, struct,
char, sparse) are skipped. v7.3 files are HDF5 and are refused with a clear
error.

Layout: a 128-byte header (text, subsystem offset, version 0x0100, endian
indicator "IM" or "MI"), then data elements, each an 8-byte tag (uint32 type,
uint32 byte count) and its data padded to 8 bytes. A "small" element packs
type and count in 4 bytes (both uint16) and up to 4 data bytes in the other 4.
A miMATRIX element holds sub-elements: array flags, dimensions, name, real
part. A miCOMPRESSED element holds one zlib-compressed element.
"""
import math
import zlib

import numpy as np

from .errors import DataError

MI_MATRIX, MI_COMPRESSED = 14, 15
# miXXX storage types -> dtype (without byte order)
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}
# mxXXX array classes -> dtype; MATLAB may store a class in a smaller miXXX type
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
              14: "i8", 15: "u8"}
_COMPLEX_FLAG = 0x0800


def read_mat(path):
    """Read the numeric variables of a MATLAB 5 .mat file into a dict name -> array."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 128:
        raise DataError(f"{path}: {len(raw)} bytes is too short for the 128-byte MATLAB header")
    order = {b"IM": "<", b"MI": ">"}.get(raw[126:128])
    if order is None:
        raise DataError(f"{path}: not a MATLAB 5 file (no endian indicator at byte 126)")
    version = int.from_bytes(raw[124:126], "little" if order == "<" else "big")
    if version != 0x0100:
        raise DataError(f"{path}: MATLAB file version {version:#06x} is not supported "
                        f"(v7.3 files are HDF5; save with -v7)")
    variables = {}
    # memoryview slices share the file's buffer instead of copying each element
    for mtype, data in _elements(memoryview(raw), 128, order, path):
        if mtype == MI_COMPRESSED:
            try:
                inner = zlib.decompress(data)
            except zlib.error as e:
                raise DataError(f"{path}: corrupt compressed variable ({e})") from e
            first = next(_elements(memoryview(inner), 0, order, path), None)
            if first is None:
                raise DataError(f"{path}: empty compressed variable")
            mtype, data = first
        if mtype == MI_MATRIX:
            name, array = _matrix(data, order, path)
            if array is not None:
                variables[name] = array
    return variables


def _elements(buf, pos, order, path):
    """Yield (type, data bytes) for each data element of `buf` from `pos` on."""
    while pos < len(buf):
        if len(buf) - pos < 8:
            raise DataError(f"{path}: truncated: data element tag at byte {pos} "
                            f"needs 8 bytes, {len(buf) - pos} left")
        mtype, nbytes = np.frombuffer(buf, order + "u4", 2, pos)
        mtype, nbytes = int(mtype), int(nbytes)
        if mtype >> 16:  # small element: count in the upper half, data in the tag
            mtype, nbytes = mtype & 0xFFFF, mtype >> 16
            yield mtype, buf[pos + 4:pos + 4 + nbytes]
            pos += 8
            continue
        start, end = pos + 8, pos + 8 + nbytes
        if end > len(buf):
            raise DataError(f"{path}: truncated: data element at byte {pos} needs "
                            f"{nbytes} bytes, {len(buf) - start} left")
        yield mtype, buf[start:end]
        # compressed elements are not padded; all others end on an 8-byte boundary
        pos = end if mtype == MI_COMPRESSED else start + (nbytes + 7) // 8 * 8


def _numbers(data, dtype, path, what):
    """``data`` read as an array of ``dtype``; a size that is no multiple of it is a DataError."""
    dtype = np.dtype(dtype)
    if len(data) % dtype.itemsize:
        raise DataError(f"{path}: {what} has {len(data)} bytes, not a multiple of "
                        f"{dtype.itemsize} ({dtype.name} values)")
    return np.frombuffer(data, dtype)


def _matrix(data, order, path):
    """Parse a miMATRIX element into (name, array); array is None for non-numeric classes.

    Every size is checked before it is used: a damaged file must give a
    DataError, never a NumPy error or a huge allocation.
    """
    subs = list(_elements(data, 0, order, path))
    if len(subs) < 3:
        raise DataError(f"{path}: malformed matrix element ({len(subs)} sub-elements)")
    flag_words = _numbers(subs[0][1], order + "u4", path, "the array flags")
    if flag_words.size < 1:
        raise DataError(f"{path}: malformed matrix element (no array flags)")
    flags = int(flag_words[0])
    name = bytes(subs[2][1]).decode("ascii", "replace")
    mx_class = flags & 0xFF
    if mx_class not in _MX_DTYPES:
        return name, None
    if flags & _COMPLEX_FLAG:
        raise DataError(f"{path}: variable {name!r} is complex, which is not supported")
    dims = tuple(int(d) for d in _numbers(subs[1][1], order + "i4", path,
                                           f"the dimensions of {name!r}"))
    if len(dims) < 2 or min(dims) < 0:
        raise DataError(f"{path}: variable {name!r} has invalid dimensions {dims}")
    if len(subs) < 4 or subs[3][0] not in _MI_DTYPES:
        raise DataError(f"{path}: variable {name!r} has no readable numeric data")
    values = _numbers(subs[3][1], order + _MI_DTYPES[subs[3][0]], path, f"variable {name!r}")
    if values.size != math.prod(dims):
        raise DataError(f"{path}: variable {name!r} has {values.size} values "
                        f"for dimensions {dims}")
    return name, values.astype(_MX_DTYPES[mx_class]).reshape(dims, order="F")
