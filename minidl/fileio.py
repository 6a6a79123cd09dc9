"""Writing files so that a reader never sees a half-written one."""
import os
import re
import tempfile

__all__ = ["atomic_write", "remove_stale_temporaries"]

_SUFFIX = ".tmp"


def _prefix(path):
    return f".{os.path.basename(path)}."


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``.

    The temporary file is ``.NAME.XXXXXXXX.tmp`` in the folder of ``path``.
    If ``write`` raises (or Ctrl-C interrupts it), the temporary file is
    removed and a file already at ``path`` is left as it was.  A process
    killed outright (SIGKILL, a power cut) leaves its temporary file behind,
    and ``path`` as it was: :func:`remove_stale_temporaries` removes it.
    An OSError that names no file (a full disk) is raised again naming ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=_prefix(path), suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(temp, 0o666 & ~_umask())     # mkstemp makes it private; give the usual mode
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        if isinstance(exc, OSError) and exc.filename is None:
            # a failed write (a full disk) names no file: name the one being written
            raise type(exc)(exc.errno, exc.strerror, path) from exc
        raise


def remove_stale_temporaries(path):
    """Remove the temporary files that killed :func:`atomic_write` calls to ``path`` left.

    Only names of the exact form ``atomic_write`` makes for ``path`` are
    touched.  Call it from the one process that writes ``path``: a write
    to the same path in progress elsewhere would lose its temporary file.
    Returns the names removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # mkstemp's random part: 8 characters of [a-z0-9_]
    pattern = re.compile(re.escape(_prefix(path)) + r"[a-z0-9_]{8}" + re.escape(_SUFFIX))
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    removed = [name for name in names if pattern.fullmatch(name)]
    for name in removed:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
    return removed


def _umask():
    mask = os.umask(0)     # the only way to read it is to set it
    os.umask(mask)
    return mask
