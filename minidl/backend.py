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
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import math
import os
import threading

# OpenBLAS's idle threads spin for about 2**28 cycles (a tenth of a second)
# after each matrix product before they sleep, taking the cores that
# minidl's threaded elementwise passes (see ``threaded``) need next; 2**4
# cycles lets them sleep at once.  BLAS reads this when NumPy loads it, so it
# only counts when minidl is imported before NumPy; a value already set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy  # noqa: E402  (after the setting above)

__all__ = [
    "Device", "device", "get_array_module", "device_of", "to_device", "to_numpy",
    "gpu_available", "gpu_unavailable_reason", "get_default_device",
    "set_default_device", "set_gpu_module", "on_device", "device_context", "synchronize",
    "manual_seed",
    "host_rng", "random_uniform", "random_normal", "host_memory_kept",
    "threaded", "set_num_threads", "get_num_threads",
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
    kernel.  With mmap off (``M_MMAP_MAX = 0``) and the heap never trimmed
    (``M_TRIM_THRESHOLD = -1``), the next step reuses those pages: the MIN
    step at batch 128 ran 1.8x faster at the same peak resident size.  (A
    trim threshold of 1 GiB still gave the freed top of the heap back every
    other step at batch 128: the NIN-BN step took 1.6 and 2.5 s by turns,
    1.5 s untrimmed; ``benchmarks/README.md``, change 12.)  The process keeps
    its peak heap until it exits.  Called once, when this module loads, it
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
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))


host_memory_kept = _keep_host_memory()


# --------------------------------------------------------------------------- host threads

def _default_threads():
    """OMP_NUM_THREADS when set (as PyTorch reads it), else the cores this process may use."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1                  # None where the count cannot be told


_threads = _default_threads()
_pool = None
_pool_lock = threading.Lock()         # the pool is made, and replaced, by one thread at a time
# Below this many elements (4 MiB of float32) waking another thread costs about
# what it saves: at 2**18 the min-small step on digits (batch 64) ran 8% slower
# than on one thread, at 2**20 as fast or faster (benchmarks/README.md).
PARALLEL_MIN_ELEMENTS = 2 ** 20
# What a blockwise call may pass besides its operands and ``out``.
_BLOCKWISE_KEYWORDS = {"casting", "dtype", "where"}


def set_num_threads(threads):
    """Run minidl's elementwise host passes on up to ``threads`` threads (PyTorch's name)."""
    global _threads, _pool
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads: threads must be a positive int, got {threads!r}")
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown()
        _threads, _pool = threads, None


def get_num_threads():
    """How many threads minidl's elementwise host passes use (see :func:`set_num_threads`)."""
    return _threads


class _Threaded:
    """NumPy, with its elementwise ufuncs and ``copyto`` run over blocks of the output on threads.

    ``threaded(numpy).f(a, b, out=y)`` computes exactly ``numpy.f(a, b,
    out=y)``: the output is cut along its outermost memory axis, each
    operand is broadcast to the output's shape and cut alike, and every
    block is one call of ``f`` under the caller's ``numpy.errstate``, so each
    element comes from the same operation as in one call.  Without ``out``
    the result is allocated in the layout of the first operand of the full
    shape (so a channel-major input gives a channel-major result).  NumPy
    lets go of the interpreter lock inside a pass, so the blocks run at
    once: elementwise work, which NumPy does on one core, uses all of them,
    as PyTorch's does.  Calls this cannot split exactly are one plain call:
    small ones, an operand that overlaps the output other than element for
    element, keywords other than ``dtype``, ``casting`` and ``where``, and
    generalized ufuncs such as ``matmul``.  Everything else is NumPy's own.
    """

    def __getattr__(self, name):
        function = getattr(numpy, name)
        if name == "copyto":
            def blockwise(destination, source, **kwargs):
                if not _splittable(destination, (source,), kwargs):
                    return function(destination, source, **kwargs)
                _run_blocks(function, destination, (destination, source), kwargs)
        elif isinstance(function, numpy.ufunc) and function.nout == 1 and not function.signature:
            blockwise = _BlockwiseUfunc(function)
        else:
            return function
        setattr(self, name, blockwise)          # found without __getattr__ from now on
        return blockwise


class _BlockwiseUfunc:
    """A ufunc whose calls run blockwise (see ``_Threaded``); ``reduce``, ``nin``... are its own."""

    def __init__(self, ufunc):
        self.ufunc = ufunc

    def __getattr__(self, name):
        return getattr(self.ufunc, name)

    def __call__(self, *args, out=None, **kwargs):
        if len(args) == self.ufunc.nin:                   # no positional out
            target = _allocate_result(self.ufunc, args, kwargs) if out is None else out
            if target is not None and _splittable(target, args, kwargs):
                _run_blocks(self.ufunc, target, args, dict(kwargs, out=target))
                return target
        if out is None:
            return self.ufunc(*args, **kwargs)
        return self.ufunc(*args, out=out, **kwargs)


def _splittable(out, operands, kwargs):
    """Whether a call writing ``out`` can run as independent blocks of it, and is worth it.

    Each operand must be an array or a scalar that either shares no memory
    with ``out`` or is ``out``'s very elements (``add(a, b, out=a)``): a
    shifted view would be read by one block while another writes it.
    """
    if not (_threads > 1 and isinstance(out, numpy.ndarray)
            and out.size >= max(2, PARALLEL_MIN_ELEMENTS) and kwargs.keys() <= _BLOCKWISE_KEYWORDS):
        return False
    for value in (*operands, kwargs.get("where")):
        if isinstance(value, numpy.ndarray):
            same = (value.shape == out.shape and value.strides == out.strides
                    and value.__array_interface__["data"][0] == out.__array_interface__["data"][0])
            if not same and numpy.may_share_memory(value, out):
                return False
        elif not (value is None or numpy.isscalar(value)):
            return False                        # a list or other sequence: NumPy's to convert
    return True


def _allocate_result(ufunc, args, kwargs):
    """An uninitialised array for ``ufunc(*args, **kwargs)``; None when small (or no arrays).

    Its dtype is that of the ufunc applied to one element of each operand
    (Python scalars stay Python scalars, so NumPy's promotion is unchanged),
    its layout that of the first operand of the full shape.
    """
    arrays = [a for a in args if isinstance(a, numpy.ndarray)]
    if not arrays or "where" in kwargs:
        return None
    shape = numpy.broadcast_shapes(*(a.shape for a in arrays))
    if math.prod(shape) < PARALLEL_MIN_ELEMENTS:
        return None
    first = [a[(slice(0, 1),) * a.ndim] if isinstance(a, numpy.ndarray) else a for a in args]
    dtype = ufunc(*first, **kwargs).dtype
    like = next((a for a in arrays if a.shape == shape), arrays[0])
    return numpy.empty_like(like, dtype=dtype, shape=shape)


def _run_blocks(function, out, args, kwargs):
    """``function(*args, **kwargs)`` as one call per block of ``out``'s outermost memory axis."""
    global _pool
    axis = max((d for d in range(out.ndim) if out.shape[d] > 1),
               key=lambda d: abs(out.strides[d]))
    size = out.shape[axis]
    edges = [size * k // _threads for k in range(_threads + 1)]
    errors = numpy.geterr()             # errstate is per thread: the workers take the caller's

    def cut(value, block):
        if not isinstance(value, numpy.ndarray) or value.ndim == 0:
            return value
        index = (slice(None),) * axis + (block,)
        return (value if value.shape == out.shape else numpy.broadcast_to(value, out.shape))[index]

    def call(block):
        with numpy.errstate(**errors):
            function(*(cut(a, block) for a in args),
                     **{k: cut(v, block) for k, v in kwargs.items()})

    blocks = [slice(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(_threads - 1,
                                                          thread_name_prefix="minidl")
        pending = [_pool.submit(call, block) for block in blocks[1:]]
    try:
        call(blocks[0])
    finally:
        concurrent.futures.wait(pending)
    for future in pending:
        future.result()


def _forget_pool():
    """A forked child has none of its parent's threads: it starts a pool (and lock) of its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def threaded(xp):
    """The array module whose elementwise passes use every host thread: for NumPy only.

    A GPU module is returned as it is (its kernels are parallel already).
    """
    return _THREADED if xp is numpy else xp


_THREADED = _Threaded()


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
