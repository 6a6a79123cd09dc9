"""Checkpoint files: nested state (dicts, lists, numbers, NumPy arrays) in an ``.npz``.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files).  The
structure of the state (dicts, lists, tuples, strings, numbers) is stored as
JSON in the entry ``__header__``; every array is an entry of its own, named in
the JSON by a marker ``{"__ndarray__": "a3"}``.  Loading uses
``numpy.load(allow_pickle=False)`` and ``json``: reading a checkpoint can never
run code, whoever wrote the file.

Writes are atomic: the file is written under a temporary name in the target
folder, flushed to disk, then renamed over the old one with ``os.replace``.
An error or Ctrl-C in the middle leaves the previous file whole and no
temporary file behind.  A killed process (SIGKILL, a power cut) cannot clean
up: its temporary file stays, and the next save to the same path removes it.

Every file that is not a whole checkpoint (truncated, a flipped byte, a
plain ``.npy``, a header of the wrong form) is a :class:`CheckpointError`
naming the file and what is wrong; nothing else escapes :func:`load_checkpoint`.

    save_checkpoint("run/checkpoint.npz", {"model": model.state_dict(), "epoch": 3})
    state = load_checkpoint("run/checkpoint.npz")

``minidl.save(obj, path)`` and ``minidl.load(path)`` are the same with
PyTorch's names and argument order: ``mdl.save(model.state_dict(), "w.npz")``,
``model.load_state_dict(mdl.load("w.npz"))``.
"""
import contextlib
import json
import os

import numpy

from .autograd import Tensor
from .fileio import atomic_write, remove_stale_temporaries

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "save", "load", "naming"]

FORMAT = "minidl-checkpoint"
VERSION = 1
_HEADER = "__header__"
# markers for what JSON cannot hold as it is; a marker is a dict with exactly one of these keys
_ARRAY, _SCALAR, _TUPLE, _ITEMS = "__ndarray__", "__npscalar__", "__tuple__", "__items__"
_MARKERS = (_ARRAY, _SCALAR, _TUPLE, _ITEMS)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, or holds the wrong content."""


@contextlib.contextmanager
def naming(path):
    """Put ``path`` in front of a CheckpointError raised inside that does not name it yet.

    For checks of a state already read (``with naming(path): check(state)``):
    the message then says which file is wrong.
    """
    try:
        yield
    except CheckpointError as exc:
        if os.fspath(path) in str(exc):
            raise
        raise CheckpointError(f"{os.fspath(path)}: {exc}") from None


def save_checkpoint(path, state):
    """Write ``state`` to ``path`` atomically.

    ``state`` is nested dicts, lists and tuples of numbers, strings, None,
    NumPy arrays and Tensors.  Dict keys may be strings or ints (optimizer
    state is keyed by parameter index).  A Tensor is stored as its data (a
    host NumPy array; it loads as one).  Other arrays must be host NumPy
    arrays: copy device arrays to the host first (``state_dict()`` methods
    already do).  Temporary files that a killed earlier save to ``path`` left
    are removed first.
    """
    arrays = {}
    header = {"format": FORMAT, "version": VERSION, "state": _encode(state, arrays, "state")}
    arrays[_HEADER] = numpy.frombuffer(json.dumps(header).encode(), dtype=numpy.uint8)
    remove_stale_temporaries(path)
    atomic_write(path, lambda f: _write(f, arrays))


def _write(f, arrays):
    numpy.savez(f, **arrays)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint` (CheckpointError names a bad file)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    header, arrays = _read(path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minidl checkpoint (its header has no "
                              f"format {FORMAT!r})")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {header.get('version')!r}; "
                              f"this minidl reads version {VERSION}")
    if "state" not in header:
        raise CheckpointError(f"{path} is corrupt: its header has no 'state' entry")
    try:
        return _decode(header["state"], arrays, path)
    except RecursionError:
        raise CheckpointError(f"{path} is corrupt: its header is nested too deeply") from None


def _read(path):
    """``(header, arrays)`` of the archive at ``path``: the parsed JSON and the other entries."""
    try:
        archive = numpy.load(path, allow_pickle=False)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} is a single .npy array, not a minidl checkpoint (an "
                              f".npz archive)")
    try:
        with archive:
            if _HEADER not in archive.files:
                raise CheckpointError(f"{path} is not a minidl checkpoint (it has no "
                                      f"{_HEADER} entry)")
            header = json.loads(archive[_HEADER].tobytes().decode())
            return header, {name: archive[name] for name in archive.files if name != _HEADER}
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"{path} is corrupt: its header is nested too deeply") from None
    except Exception as exc:
        # zipfile, the .npy reader and json each have their own errors for a damaged file
        # (BadZipFile, EOFError, ValueError, NotImplementedError for a flipped compression
        # method, RuntimeError for a flipped encryption flag, ...): all mean the same here
        raise _unreadable(path, exc) from None


def _unreadable(path, exc):
    # a file that is not an archive at all, numpy takes for a pickle and advises
    # allow_pickle=: advice a checkpoint must never follow
    detail = "not an .npz archive" if "allow_pickle" in str(exc) else f"{type(exc).__name__}: {exc}"
    return CheckpointError(f"{path} is not a readable minidl checkpoint (truncated or "
                           f"corrupt?): {detail}")


def save(obj, path):
    """``save_checkpoint(path, obj)`` with ``torch.save``'s argument order.

    For state dicts and nested dicts/lists of arrays, Tensors and numbers;
    never pickled, written atomically.
    """
    save_checkpoint(path, obj)


def load(path):
    """``load_checkpoint(path)``: what :func:`save` wrote, Tensors coming back as NumPy arrays."""
    return load_checkpoint(path)


def _encode(value, arrays, where):
    """JSON-ready form of ``value``; arrays go to ``arrays`` under fresh names."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if isinstance(value, numpy.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"save_checkpoint: {where} is an object array, which cannot be "
                            f"stored without pickle")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, numpy.generic):
        name = f"a{len(arrays)}"
        arrays[name] = numpy.asarray(value)
        return {_SCALAR: name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        items = [(k, _encode(v, arrays, f"{where}[{k!r}]")) for k, v in value.items()]
        plain = all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _MARKERS)
        if plain:
            return dict(items)
        for k, _ in items:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save_checkpoint: {where} has a key {k!r}; keys must be "
                                f"strings or ints")
        return {_ITEMS: [[k, v] for k, v in items]}
    raise TypeError(f"save_checkpoint: {where} is a {type(value).__name__}, which a checkpoint "
                    f"cannot hold (use dicts, lists, tuples, numbers, strings, None and NumPy "
                    f"arrays)")


def _decode(value, arrays, path):
    """The value that :func:`_encode` made ``value`` from; CheckpointError for a malformed one."""
    if isinstance(value, list):
        return [_decode(v, arrays, path) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key in (_ARRAY, _SCALAR):
            if not isinstance(inner, str) or inner not in arrays:
                raise CheckpointError(f"{path} is corrupt: its header names an array {inner!r} "
                                      f"that the file does not hold")
            return arrays[inner] if key == _ARRAY else arrays[inner][()]
        if key in (_TUPLE, _ITEMS) and not isinstance(inner, list):
            raise CheckpointError(f"{path} is corrupt: its header has a {key} marker of "
                                  f"{type(inner).__name__}, not a list")
        if key == _TUPLE:
            return tuple(_decode(v, arrays, path) for v in inner)
        if key == _ITEMS:
            if not all(isinstance(item, list) and len(item) == 2
                       and isinstance(item[0], (str, int)) for item in inner):
                raise CheckpointError(f"{path} is corrupt: its header has a {key} marker "
                                      f"that is not a list of [key, value] pairs")
            return {k: _decode(v, arrays, path) for k, v in inner}
    return {k: _decode(v, arrays, path) for k, v in value.items()}
