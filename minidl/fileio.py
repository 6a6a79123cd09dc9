"""Writing files so that a reader never sees a half-written one."""
import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``.

    If ``write`` raises (or the process is interrupted), the temporary file is
    removed and a file already at ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(temp, 0o666 & ~_umask())     # mkstemp makes it private; give the usual mode
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _umask():
    mask = os.umask(0)     # the only way to read it is to set it
    os.umask(mask)
    return mask
