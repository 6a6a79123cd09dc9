"""Test set-up: every test that takes ``device`` runs once per available backend.

* ``numpy``: device "cpu", always.
* ``fake_gpu``: device "cuda" backed by ``tests/fake_cupy.py``, always: it runs the
  GPU code path on the host and fails on any mixing of host and device arrays.
* ``cupy``: device "cuda" on a real GPU, skipped (with the reason) when CuPy or a
  CUDA device is missing.
"""
import os
import signal
import sys

# One BLAS thread: on a busy 2-core machine two threads fight each other (runs get up to
# 10x slower), and a fixed thread count keeps float results identical from run to run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

import fake_cupy  # noqa: E402
import minidl  # noqa: E402
from minidl import backend  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["numpy", "fake_gpu", "cupy"]


def _use_backend(name):
    if name == "numpy":
        backend.set_gpu_module(None)
        return "cpu"
    if name == "fake_gpu":
        backend.set_gpu_module(fake_cupy.fake_cupy)
        fake_cupy.reset_transfers()
        return "cuda"
    backend.set_gpu_module(None)
    if not backend.gpu_available():
        pytest.skip(f"real-GPU backend not available: {backend.gpu_unavailable_reason()}")
    return "cuda"


@pytest.fixture(params=BACKENDS)
def device(request):
    """The device string for one backend; the backend is reset afterwards."""
    dev = _use_backend(request.param)
    minidl.manual_seed(0)
    yield dev
    backend.set_gpu_module(None)
    backend.set_default_device(None)


@pytest.fixture(autouse=True)
def no_published_checksums(monkeypatch):
    """Test data sets are small fakes under the published file names, so the published MD5s
    cannot match them: every test starts with an empty checksum table, and the tests of the
    checksum rules (tests/data/test_data_download.py) fill in the MD5s of their own files."""
    from minidl.data import download
    for dataset in download.MD5:
        monkeypatch.setitem(download.MD5, dataset, {})


@pytest.fixture
def fake_gpu():
    """The fake CuPy module plugged in as the GPU backend (for transfer-count tests)."""
    backend.set_gpu_module(fake_cupy.fake_cupy)
    fake_cupy.reset_transfers()
    yield fake_cupy
    backend.set_gpu_module(None)
    backend.set_default_device(None)


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """SIGINT raises KeyboardInterrupt, as in an interactive run, in every test.

    A background job of a shell without job control starts with SIGINT ignored
    (and Python then keeps it ignored); the Ctrl-C tests raise SIGINT themselves.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def no_tqdm(monkeypatch):
    """Hide tqdm so that minidl.progress falls back to its plain bar.

    Both names go: once any test has imported `tqdm.auto`, a cached submodule would
    still satisfy `from tqdm.auto import tqdm` with only `tqdm` blocked.
    """
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def loaded_splits(monkeypatch):
    """The splits ``minidl.recipes`` reads, in order: a spy on its data loading."""
    from minidl import recipes
    splits, load = [], recipes.load_dataset

    def spy(name, root=None, split="train", download=False):
        splits.append(split)
        return load(name, root=root, split=split, download=download)

    monkeypatch.setattr(recipes, "load_dataset", spy)
    return splits


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)
