"""The backend: devices, moving arrays, the GPU module, default device, seeding."""
import os
import subprocess
import sys
import types

import numpy
import pytest
from helpers import host, leaf

import minidl
from minidl import backend


@pytest.fixture
def no_gpu_module():
    backend.set_gpu_module(None)
    yield
    backend.set_gpu_module(None)


def test_device_parsing():
    assert backend.device("cpu") == "cpu"
    assert backend.device("cuda") == backend.device("cuda:0") == "cuda:0"
    assert str(backend.device("CUDA:1")) == "cuda:1"
    assert backend.device("cuda:1") != "cuda:0"
    with pytest.raises(ValueError, match=r"unknown device 'tpu': expected 'cpu', 'cuda' or 'cuda:N'"):
        backend.device("tpu")
    with pytest.raises(TypeError, match="device must be a string"):
        backend.device(3)


def test_missing_cupy_gives_clear_error(monkeypatch, no_gpu_module):
    monkeypatch.setitem(sys.modules, "cupy", None)          # import cupy -> ImportError
    assert not backend.gpu_available()
    assert "CuPy is not installed" in backend.gpu_unavailable_reason()
    with pytest.raises(RuntimeError, match=r"'cuda:0' was requested but CuPy is not installed.*"
                                           r"pip install \"minidl\[gpu\]\""):
        minidl.tensor([1.0], device="cuda")
    assert minidl.tensor([1.0]).device == "cpu"


def test_cupy_without_driver_gives_clear_error(monkeypatch, no_gpu_module):
    broken = types.ModuleType("cupy")
    broken.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "cupy", broken)
    assert not backend.gpu_available()
    with pytest.raises(RuntimeError, match=r"CuPy is installed but cannot be used: no CUDA device"):
        backend.set_default_device("cuda")


def test_cupy_raising_cuda_error_is_reported(monkeypatch, no_gpu_module):
    broken = types.ModuleType("cupy")

    def is_available():
        raise RuntimeError("CUDARuntimeError: cudaErrorInsufficientDriver")
    broken.is_available = is_available
    monkeypatch.setitem(sys.modules, "cupy", broken)
    assert not backend.gpu_available()
    assert "cudaErrorInsufficientDriver" in backend.gpu_unavailable_reason()


def test_moving_between_host_and_device_counts_copies(fake_gpu):
    x = minidl.tensor(numpy.arange(3.0), device="cuda")
    assert fake_gpu.transfers == {"to_device": 1, "to_host": 0}
    assert backend.get_array_module(x.data) is fake_gpu.fake_cupy
    assert x.device == "cuda:0"
    back = x.to("cpu")
    assert isinstance(back.data, numpy.ndarray)
    assert fake_gpu.transfers == {"to_device": 1, "to_host": 1}
    assert x.to("cuda:0") is x                      # already there: no copy
    assert x.to("cuda:1").device == "cuda:1"
    with pytest.raises(RuntimeError, match=r"'cuda:5' was requested but only 2 CUDA device"):
        x.to("cuda:5")


def test_device_ops_never_touch_the_host(fake_gpu):
    x = minidl.tensor(numpy.linspace(-1, 1, 12).reshape(3, 4), device="cuda", requires_grad=True)
    fake_gpu.reset_transfers()
    loss = ((x @ x.T).softmax(axis=1).log() * 2.0 + x.max(axis=1, keepdims=True)).sum()
    loss.backward()
    assert fake_gpu.transfers == {"to_device": 0, "to_host": 0}
    assert backend.device_of(x.grad) == "cuda:0"


def test_fake_device_refuses_numpy_on_device_data(fake_gpu):
    x = minidl.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(TypeError, match="does not support ufuncs|numpy.exp"):
        numpy.exp(x.data)
    with pytest.raises(TypeError, match="implicit conversion"):
        numpy.asarray(x.data)
    with pytest.raises(TypeError, match="mix host and device"):
        x.data + numpy.ones(2)


def test_op_on_two_devices_names_both(device):
    if device == "cpu":
        from fake_cupy import fake_cupy
        backend.set_gpu_module(fake_cupy)
    a = leaf([1.0], "cpu")
    b = leaf([1.0], "cuda")
    with pytest.raises(ValueError, match=r"different devices, cpu and cuda:0"):
        a + b
    c = leaf([1.0], "cuda:1")
    with pytest.raises(ValueError, match=r"different devices, cuda:0 and cuda:1"):
        b * c


def test_default_device_setting_and_environment(monkeypatch, fake_gpu):
    assert backend.get_default_device() == "cpu"
    monkeypatch.setenv("MINIDL_DEVICE", "cuda:1")
    assert backend.get_default_device() == "cuda:1"
    assert minidl.tensor([1.0]).device == "cuda:1"
    backend.set_default_device("cpu")
    assert minidl.tensor([1.0]).device == "cpu"
    backend.set_default_device(None)
    assert backend.get_default_device() == "cuda:1"


def test_manual_seed_makes_device_random_reproducible(device):
    minidl.manual_seed(7)
    first = host(backend.random_uniform((4,), "float32", device))
    minidl.manual_seed(7)
    second = host(backend.random_uniform((4,), "float32", device))
    numpy.testing.assert_array_equal(first, second)
    assert first.dtype == numpy.float32 and ((0 <= first) & (first < 1)).all()


def test_to_is_differentiable_across_devices(fake_gpu):
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x.to("cuda") * 3.0).to("cpu").sum()
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert isinstance(x.grad, numpy.ndarray)


def test_ops_on_the_second_device_create_arrays_there(fake_gpu):
    x = minidl.tensor(numpy.arange(6.0).reshape(2, 3), device="cuda:1", requires_grad=True)
    y = (x[:, [0, 2]] * 2.0).sum() + x.sum(axis=0).max()
    y.backward()
    assert y.device == "cuda:1" and backend.device_of(x.grad) == "cuda:1"
    numpy.testing.assert_array_equal(host(x.grad), [[2, 0, 3], [2, 0, 3]])


@pytest.mark.parametrize("setting, kept", [(None, True), ("keep", True), ("system", False)])
def test_host_allocator_keeps_memory_unless_told_not_to(setting, kept):
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_HOST_ALLOCATOR"}
    if setting is not None:
        env["MINIDL_HOST_ALLOCATOR"] = setting
    code = "from minidl import backend; print(backend.host_memory_kept)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == str(kept), result.stderr


def test_kept_host_memory_is_never_trimmed(monkeypatch):
    """Large blocks come from the heap, and the heap is never trimmed: a trim threshold of
    1 GiB still handed the freed top back to the kernel every other step at batch 128."""
    calls = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            calls.append((parameter, value))
            return 1

    monkeypatch.delenv("MINIDL_HOST_ALLOCATOR", raising=False)
    monkeypatch.setattr(backend.ctypes, "CDLL", lambda name: FakeLibc())
    assert backend._keep_host_memory()
    assert calls == [(-4, 0), (-1, -1)]        # M_MMAP_MAX = 0; M_TRIM_THRESHOLD = -1: never


def test_unknown_host_allocator_setting_is_named():
    env = dict(os.environ, MINIDL_HOST_ALLOCATOR="fast")
    result = subprocess.run([sys.executable, "-c", "import minidl"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "MINIDL_HOST_ALLOCATOR must be 'keep'" in result.stderr and "'fast'" in result.stderr
