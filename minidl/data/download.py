"""Where data files come from, where they go, and how they are fetched safely.

One table says, per data set, the mirrors to try in order and the MD5 of
every file. A download streams to a temporary file in the target folder,
checks the MD5, and only then renames it into place (os.replace is atomic),
so a file under its final name is always complete and verified.
"""
import hashlib
import http.client
import json
import os
import urllib.request
from pathlib import Path

from ..fileio import atomic_write
from ..progress import progress
from .errors import DataError

# data set -> base URLs, tried in order (tests point these at a local server)
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "cifar100": ["https://www.cs.toronto.edu/~kriz/"],
    "svhn": ["http://ufldl.stanford.edu/housenumbers/"],
}

# data set -> file name -> MD5 of the file
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
    },
}

TIMEOUT = 60          # seconds without data before a mirror counts as dead
CHUNK = 1 << 20
# In each data set folder: file name -> [size, mtime_ns, MD5] of the files already verified.
VERIFIED = ".minidl-verified.json"


def cache_dir():
    """The data root: $MINIDL_DATA, else ~/.cache/minidl. Data set NAME lives in <root>/NAME/."""
    return Path(os.environ.get("MINIDL_DATA") or Path.home() / ".cache" / "minidl")


def urls(dataset, filename):
    """The URLs of one file, one per mirror, in the order they are tried."""
    return [base + filename for base in MIRRORS[dataset]]


def download_file(dataset, filename, folder, show_progress=True):
    """Fetch `filename` of `dataset` into `folder`, trying each mirror in turn.

    Returns the path of the verified file. Raises DataError listing what went
    wrong on every mirror (HTTP error, dropped connection, MD5 mismatch) when
    none delivers the file; nothing is left behind then.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    expected = MD5[dataset][filename]
    failures = []
    for url in urls(dataset, filename):
        try:
            _fetch(url, target, expected, show_progress)
            _remember_verified(target, expected)
            return target
        except (OSError, http.client.HTTPException, DataError) as e:
            failures.append(f"  {url}: {e}")
    raise DataError(f"could not download {filename} into {folder}:\n" + "\n".join(failures))


def _fetch(url, target, expected_md5, show_progress):
    """Stream ``url`` into ``target`` through a temporary file, renamed only once verified."""
    def write(out):
        md5 = hashlib.md5()
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            size = response.headers.get("Content-Length")
            size = int(size) if size else None
            received = 0
            with progress(total=size, desc=target.name, unit="B", unit_scale=True,
                          disable=not show_progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if size is not None and received != size:  # read() just stops when the server hangs up
            raise DataError(f"connection closed after {received} of {size} bytes")
        actual = md5.hexdigest()
        if actual != expected_md5:
            raise DataError(f"MD5 mismatch for {target.name}: expected {expected_md5}, "
                            f"got {actual}")
    atomic_write(target, write)


def verify_file(dataset, path):
    """Check a file under a published name against its published MD5; DataError if it differs.

    Files already verified at their current size and modification time are
    not read again (the record is kept in ``VERIFIED`` beside them), so the
    check costs one pass over the file once, not at every load.  A file name
    without a published MD5 (an unzipped copy, say) is not checked.
    """
    path = Path(path)
    expected = MD5.get(dataset, {}).get(path.name)
    if expected is None or _verified(path) == _record(path, expected):
        return
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            md5.update(chunk)
    if md5.hexdigest() != expected:
        raise DataError(f"{path}: MD5 {md5.hexdigest()} differs from the published {expected}; "
                        f"the file is damaged or not the original: delete it and download it "
                        f"again (--download)")
    _remember_verified(path, expected)


def _record(path, md5):
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, md5]


def _verified(path):
    """The verification record of ``path``, or None (no record, or an unreadable one)."""
    try:
        records = json.loads((path.parent / VERIFIED).read_text())
        return records.get(path.name) if isinstance(records, dict) else None
    except (OSError, ValueError):
        return None


def _remember_verified(path, md5):
    """Record that ``path`` matched ``md5``; a folder we cannot write just means checking again."""
    records_path = path.parent / VERIFIED
    try:
        records = json.loads(records_path.read_text())
    except (OSError, ValueError):
        records = {}
    if not isinstance(records, dict):
        records = {}
    records[path.name] = _record(path, md5)
    try:
        atomic_write(records_path, lambda f: f.write(json.dumps(records).encode()))
    except OSError:
        pass
