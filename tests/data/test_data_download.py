"""Downloads from a loopback HTTP server: MD5 check, mirror fallback, atomic writes."""
import functools
import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from minidl.data import DataError, cache_dir, download_file, load
from minidl.data.download import MD5, MIRRORS, VERIFIED, verify_file

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files; under /cut/ it promises the whole file but sends half, then hangs up."""

    requested = None  # set per server: the list of paths asked for

    def do_GET(self):
        self.requested.append(self.path)
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = Path(self.translate_path(self.path.replace("/cut/", "/mirror/"))).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch, make_mnist):
    """A loopback server whose /mirror/ holds fake MNIST files; yields (base URL, requests)."""
    www = tmp_path / "www"
    arrays = make_mnist(www / "mirror", n=7)
    requested = []
    handler = functools.partial(type("H", (Handler,), {"requested": requested}),
                                directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # never send loopback traffic to a proxy
    monkeypatch.setattr("minidl.data.download.TIMEOUT", 5)
    monkeypatch.setitem(MD5, "mnist", {
        name: hashlib.md5((www / "mirror" / name).read_bytes()).hexdigest()
        for name in MNIST_FILES})
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested, arrays
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_verify_and_load(server, tmp_path, monkeypatch, capsys):
    url, requested, arrays = server
    monkeypatch.setitem(MIRRORS, "mnist", [f"{url}/mirror/"])
    images, labels = load("mnist", root=tmp_path / "cache", split="test", download=True)
    np.testing.assert_allclose(images[:, 0] * 255, arrays["test"][0], atol=1e-4)
    np.testing.assert_array_equal(labels, arrays["test"][1])
    folder = tmp_path / "cache" / "mnist"
    # the two files, and the record that they were verified (no temporary file left)
    assert sorted(p.name for p in folder.iterdir()) == sorted(MNIST_FILES[2:] + [VERIFIED])
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar
    # a second load reads the cached files without asking the server again
    count = len(requested)
    load("mnist", root=tmp_path / "cache", split="test", download=True)
    assert len(requested) == count


def test_mirror_fallback(server, tmp_path, monkeypatch):
    url, requested, _ = server
    monkeypatch.setitem(MIRRORS, "mnist", [f"{url}/missing/", f"{url}/mirror/"])
    path = download_file("mnist", "train-labels-idx1-ubyte.gz", tmp_path)
    assert path == tmp_path / "train-labels-idx1-ubyte.gz"
    assert requested == ["/missing/train-labels-idx1-ubyte.gz",
                         "/mirror/train-labels-idx1-ubyte.gz"]
    assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_downloaded_file_gets_the_usual_permissions(server, tmp_path, monkeypatch):
    url, _, _ = server
    monkeypatch.setitem(MIRRORS, "mnist", [f"{url}/mirror/"])
    old = os.umask(0o022)
    try:
        path = download_file("mnist", "train-labels-idx1-ubyte.gz", tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644        # readable by others, as a cache is


def test_wrong_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    url, _, _ = server
    monkeypatch.setitem(MIRRORS, "mnist", [f"{url}/mirror/"])
    actual = MD5["mnist"]["train-labels-idx1-ubyte.gz"]
    monkeypatch.setitem(MD5["mnist"], "train-labels-idx1-ubyte.gz", "0" * 32)
    with pytest.raises(DataError, match=rf"could not download train-labels-idx1-ubyte\.gz(.|\n)*"
                                        rf"MD5 mismatch for train-labels-idx1-ubyte\.gz: "
                                        rf"expected 0{{32}}, got {actual}"):
        download_file("mnist", "train-labels-idx1-ubyte.gz", tmp_path / "d", show_progress=False)
    assert list((tmp_path / "d").iterdir()) == []


def test_every_mirror_failing_is_reported(server, tmp_path, monkeypatch):
    url, requested, _ = server
    monkeypatch.setitem(MIRRORS, "mnist", [f"{url}/missing/", f"{url}/cut/"])
    with pytest.raises(DataError, match=r"(?s)/missing/train-images-idx3-ubyte\.gz: HTTP Error "
                                        r"404.*/cut/train-images-idx3-ubyte\.gz: connection closed "
                                        r"after \d+ of \d+ bytes"):
        download_file("mnist", "train-images-idx3-ubyte.gz", tmp_path / "d", show_progress=False)
    assert len(requested) == 2
    assert list((tmp_path / "d").iterdir()) == []  # the half-received file is gone


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    folder = re.escape(str(tmp_path / "cifar10"))
    message = (rf"cifar10: cifar-10-python\.tar\.gz not found in {folder}\n"
               r"Download with\n    minidl train --model min --dataset cifar10 --download\n"
               r"or in Python\n    minidl\.data\.load\(\"cifar10\", download=True\)\n"
               r"or fetch by hand \(each file from any one of its URLs\)\n"
               r"    https://www\.cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz\n"
               rf"and place it in {folder}/$")
    with pytest.raises(DataError, match=message):
        load("cifar10")


def test_missing_files_message_names_a_custom_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "default"))
    root = tmp_path / "mine"
    escaped = re.escape(str(root))
    with pytest.raises(DataError, match=rf"\n    MINIDL_DATA={escaped} minidl train --model min "
                                        rf"--dataset svhn --download\n(.|\n)*"
                                        rf"minidl\.data\.load\(\"svhn\", root=\"{escaped}\", "
                                        rf"download=True\)\n(.|\n)*"
                                        rf"ufldl\.stanford\.edu/housenumbers/test_32x32\.mat"):
        load("svhn", root=root, split="test")


def test_missing_mnist_lists_every_file_and_mirror(tmp_path, make_mnist):
    make_mnist(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    assert load("mnist", root=tmp_path, split="train")[0].shape == (12, 1, 28, 28)  # unzipped
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match=r"mnist: t10k-images-idx3-ubyte\.gz, "
                                        r"t10k-labels-idx1-ubyte\.gz not found(.|\n)*"
                                        r"ossci-datasets.*/t10k-images-idx3-ubyte\.gz\n"
                                        r".*yann\.lecun\.com/exdb/mnist/t10k-images(.|\n)*"
                                        r"yann\.lecun\.com/exdb/mnist/t10k-labels(.|\n)*"
                                        r"and place them in"):
        load("mnist", root=tmp_path, split="test")


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "data"))
    assert cache_dir() == tmp_path / "data"
    monkeypatch.delenv("MINIDL_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "minidl"


def test_tables_agree():
    assert set(MIRRORS) == set(MD5)
    for files in MD5.values():
        for md5 in files.values():
            assert len(md5) == 32 and int(md5, 16) >= 0


def _published(monkeypatch, folder, names):
    """Make the current contents of ``names`` in ``folder`` the "published" MNIST files."""
    monkeypatch.setitem(MD5, "mnist", {
        name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in names})


def test_a_damaged_local_file_is_refused_at_load(tmp_path, monkeypatch, make_mnist):
    folder = tmp_path / "mnist"
    make_mnist(folder, n=5)
    _published(monkeypatch, folder, MNIST_FILES)
    load("mnist", root=tmp_path, split="test")
    damaged = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(damaged.read_bytes())
    data[-9] ^= 1                       # one bit in the compressed labels
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: MD5 \w+ differs from the "
                                        r"published \w+; the file is damaged"):
        load("mnist", root=tmp_path, split="test")


def test_verification_is_remembered_by_size_and_mtime(tmp_path, monkeypatch, make_mnist):
    folder = tmp_path / "mnist"
    make_mnist(folder, n=5)
    _published(monkeypatch, folder, MNIST_FILES)
    target = folder / MNIST_FILES[0]
    reads = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        if str(path) == str(target):
            reads.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    verify_file("mnist", target)
    verify_file("mnist", target)          # remembered: the file is not hashed again
    assert len(reads) == 1
    os.utime(target, ns=(0, 0))           # another version of the file: checked again
    verify_file("mnist", target)
    assert len(reads) == 2


def test_names_without_a_published_md5_are_not_checked(tmp_path):
    (tmp_path / "mine.gz").write_bytes(b"anything")
    verify_file("mnist", tmp_path / "mine.gz")          # no DataError, nothing recorded
    assert not (tmp_path / VERIFIED).exists()
