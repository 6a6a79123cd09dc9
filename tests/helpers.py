"""Small helpers shared by the tests (importable as ``helpers``: conftest puts tests/ on the path)."""
import contextlib
import functools
import http.server
import importlib.util
import os
import subprocess
import sys
import threading

import numpy
import pytest

import minidl
from minidl import backend


def host(array):
    """Any backend array (or Tensor) as a host NumPy array, for comparisons in tests."""
    if isinstance(array, minidl.Tensor):
        array = array.data
    return backend.to_numpy(array)


def leaf(array, device, requires_grad=True):
    """A float64 (or the array's dtype) leaf tensor on ``device`` from host data."""
    return minidl.tensor(numpy.asarray(array), requires_grad=requires_grad, device=device)


@contextlib.contextmanager
def loopback_server(directory):
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def import_script(name):
    """The module ``scripts/{name}.py`` (the scripts folder is not a package)."""
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def build_docs(site):
    """``mkdocs build --strict`` of the repository's docs into ``site``; skips without mkdocs.

    Returns the CompletedProcess (the caller asserts on returncode and output)."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]"')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")    # Material's banner would bury the errors
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(site)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
