"""The array backend: the only module in minidl that knows NumPy from CuPy.

Every array minidl computes with is either a ``numpy.ndarray`` (device
``"cpu"``) or an array of the *GPU module*, normally CuPy (device ``"cuda:N"``).
Code above this module asks for the array module of its data with
:func:`get_array_module` and never names NumPy or CuPy itself, so one code
path serves both.

The GPU module is found lazily: ``cupy`` is imported the first time a GPU is
asked for.  Tests plug in a stand-in with :func:`set_gpu_module` (see
``tests/fake_cupy.py``): it exposes the CuPy API over host memory and refuses
to be mixed with NumPy arrays, so device code paths are exercised on machines
without a GPU.
"""
import contextlib
import ctypes
import ctypes.util
import os

import numpy

__all__ = [
    "Device", "device", "get_array_module", "device_of", "to_device", "to_numpy",
    "gpu_available", "gpu_unavailable_reason", "get_default_device",
    "set_default_device", "set_gpu_module", "on_device", "device_context", "synchronize",
    "manual_seed",
    "host_rng", "random_uniform", "random_normal", "host_memory_kept",
]

_GPU_EXTRA_HINT = ('install a CuPy build for your CUDA version: pip install "minidl[gpu]" '
                   '(CUDA 12) or pip install "minidl[gpu-cuda13]" (CUDA 13)')


class Device:
    """Where an array lives: ``Device("cpu")`` or ``Device("cuda", index)``.

    Compares equal to its string form, so ``x.device == "cpu"`` reads as it should.
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device type must be 'cpu' or 'cuda', got {type!r}")
        self.type = type
        self.index = None if type == "cpu" else (index or 0)

    def __str__(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self):
        return f"device({str(self)!r})"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


# --------------------------------------------------------------------------- GPU module

_gpu = None            # the GPU array module once loaded (cupy, or a test stand-in)
_gpu_error = None      # why no GPU can be used, once that is known


def set_gpu_module(module):
    """Use ``module`` (CuPy's API) as the GPU array module; ``None`` forgets it.

    Meant for tests, which plug in a host-memory stand-in for CuPy.  Device
    random generators are reset because they belong to the old module.
    """
    global _gpu, _gpu_error
    _gpu, _gpu_error = module, None
    _device_rngs.clear()


def _load_gpu():
    """Return the GPU module, importing CuPy on first use; ``None`` if unusable."""
    global _gpu, _gpu_error
    if _gpu is not None or _gpu_error is not None:
        return _gpu
    try:
        import cupy
    except ImportError as exc:
        _gpu_error = f"CuPy is not installed ({exc}); {_GPU_EXTRA_HINT}"
        return None
    try:
        usable = cupy.is_available()
    except Exception as exc:  # a broken CUDA install raises from inside cupy
        usable, why = False, str(exc)
    else:
        why = "no CUDA device or driver was found (cupy.is_available() is False)"
    if not usable:
        _gpu_error = f"CuPy is installed but cannot be used: {why}"
        return None
    _gpu = cupy
    return _gpu


def gpu_available():
    """True when a CUDA device can be used through CuPy (or a test stand-in)."""
    return _load_gpu() is not None


def gpu_unavailable_reason():
    """Why :func:`gpu_available` is False (``None`` when a GPU is available)."""
    _load_gpu()
    return None if _gpu is not None else _gpu_error


def _require_gpu(index):
    gpu = _load_gpu()
    if gpu is None:
        raise RuntimeError(f"device 'cuda:{index}' was requested but {_gpu_error}")
    count = gpu.cuda.runtime.getDeviceCount()
    if index >= count:
        raise RuntimeError(f"device 'cuda:{index}' was requested but only {count} "
                           f"CUDA device(s) exist (cuda:0 .. cuda:{count - 1})")
    return gpu


# --------------------------------------------------------------------------- devices

def device(spec):
    """Parse ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`Device` into a Device."""
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, index = spec.strip().lower().partition(":")
    if kind == "cpu" and not index:
        return Device("cpu")
    if kind == "cuda" and (not index or index.isdigit()):
        return Device("cuda", int(index) if index else 0)
    raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")


_default_device = None


def get_default_device():
    """The device new tensors go to: ``set_default_device``, else ``MINIDL_DEVICE``, else cpu."""
    if _default_device is not None:
        return _default_device
    return device(os.environ.get("MINIDL_DEVICE", "cpu"))


def set_default_device(spec):
    """Make ``spec`` the default device (``None`` returns to ``MINIDL_DEVICE`` / cpu)."""
    global _default_device
    if spec is None:
        _default_device = None
        return
    dev = device(spec)
    if dev.type == "cuda":
        _require_gpu(dev.index)
    _default_device = dev


def _is_gpu_array(array):
    return _gpu is not None and isinstance(array, _gpu.ndarray)


def get_array_module(array):
    """``numpy`` for host arrays, the GPU module (CuPy) for device arrays."""
    return _gpu if _is_gpu_array(array) else numpy


def device_of(array):
    """The :class:`Device` an array lives on."""
    if _is_gpu_array(array):
        return Device("cuda", array.device.id)
    return Device("cpu")


def to_device(array, spec):
    """Return ``array`` on device ``spec``, copying only when it is elsewhere."""
    dev = device(spec)
    if dev.type == "cpu":
        return to_numpy(array)
    gpu = _require_gpu(dev.index)
    if _is_gpu_array(array) and array.device.id == dev.index:
        return array
    with gpu.cuda.Device(dev.index):
        return gpu.asarray(array)   # host -> device, or device -> device


def to_numpy(array):
    """Return a host ``numpy.ndarray`` (copies device memory to the host)."""
    if _is_gpu_array(array):
        return _gpu.asnumpy(array)
    return numpy.asarray(array)


@contextlib.contextmanager
def on_device(spec):
    """Context in which new GPU arrays are created on device ``spec`` (no-op for cpu)."""
    dev = device(spec)
    if dev.type == "cpu":
        yield
    else:
        with _require_gpu(dev.index).cuda.Device(dev.index):
            yield


def synchronize(spec):
    """Wait until the device has finished its queued work (for timing; no-op on cpu)."""
    dev = device(spec)
    if dev.type == "cuda":
        _require_gpu(dev.index).cuda.Device(dev.index).synchronize()


def device_context(array):
    """Context that makes ``array``'s GPU current, so new arrays go beside it.

    CuPy allocates on the *current* device; ops on data living on ``cuda:1``
    must run with ``cuda:1`` current.  For host arrays it does nothing.
    """
    if _is_gpu_array(array):
        return _gpu.cuda.Device(array.device.id)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- host allocator

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4         # mallopt parameters, from glibc's malloc.h


def _keep_host_memory():
    """Make glibc's malloc reuse freed host memory instead of handing it back to the kernel.

    By default glibc serves every allocation above 32 MiB (all of a training
    step's activations) with a fresh ``mmap`` and unmaps it when freed, so each
    step page-faults all its activation memory in again, zero-filled by the
    kernel.  With mmap off (``M_MMAP_MAX = 0``) and up to 1 GiB of freed heap
    kept (``M_TRIM_THRESHOLD``), the next step reuses those pages: the MIN
    step at batch 128 ran 1.8x faster at the same peak resident size
    (``benchmarks/README.md``).  Called once, when this module loads, it
    applies the setting unless ``MINIDL_HOST_ALLOCATOR=system`` asks for
    glibc's own; it affects the whole process, and does nothing without
    glibc.  Returns whether the setting was applied.
    """
    mode = os.environ.get("MINIDL_HOST_ALLOCATOR", "keep")
    if mode not in ("keep", "system"):
        raise ValueError(f"MINIDL_HOST_ALLOCATOR must be 'keep' (reuse freed host memory, the "
                         f"default) or 'system' (glibc's own settings), got {mode!r}")
    if mode == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):     # no C library by that name, or not glibc
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 30))


host_memory_kept = _keep_host_memory()


# --------------------------------------------------------------------------- randomness

_host_rng = numpy.random.default_rng()
_device_rngs = {}


def manual_seed(seed):
    """Seed every random generator minidl uses (host and devices)."""
    global _host_rng
    _host_rng = numpy.random.default_rng(seed)
    _device_rngs.clear()


def host_rng():
    """The global host ``numpy.random.Generator`` (initialization, shuffling)."""
    return _host_rng


def _device_rng(gpu, index):
    """The generator of GPU ``index``, seeded from the host generator on first use."""
    rng = _device_rngs.get(index)
    if rng is None:
        rng = _device_rngs[index] = gpu.random.RandomState(int(_host_rng.integers(2**31)))
    return rng


def _random(spec, draw):
    """``draw(generator)`` with the generator of device ``spec``, on that device.

    Device generators are seeded from the host generator the first time a
    device is used after :func:`manual_seed`, so runs stay reproducible.
    """
    dev = device(spec)
    if dev.type == "cpu":
        return draw(_host_rng)
    gpu = _require_gpu(dev.index)
    with gpu.cuda.Device(dev.index):
        return draw(_device_rng(gpu, dev.index))


def random_uniform(shape, dtype, spec):
    """Uniform [0, 1) samples of ``dtype`` made directly on device ``spec``."""
    # NumPy's Generator calls it random(), CuPy's RandomState random_sample()
    return _random(spec, lambda g: (g.random if g is _host_rng else g.random_sample)(
        shape, dtype=numpy.dtype(dtype)))


def random_normal(shape, dtype, spec):
    """Standard normal samples of floating ``dtype`` made directly on device ``spec``."""
    return _random(spec, lambda g: g.standard_normal(shape, dtype=numpy.dtype(dtype)))
