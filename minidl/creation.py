"""Tensors made from nothing, as PyTorch makes them: zeros, ones, randn, arange, *_like.

Each takes PyTorch's keywords ``dtype`` (default float32; ``arange`` of ints
gives int64), ``device`` (default: the default device) and ``requires_grad``.
Sizes are given as ``zeros(2, 3)`` or ``zeros((2, 3))``.  ``randn`` draws from
the generators that :func:`minidl.manual_seed` seeds, on the device itself.
"""
import numpy

from . import backend
from .autograd import Tensor, tensor
from .functional._axes import sizes_argument

__all__ = ["zeros", "ones", "zeros_like", "ones_like", "randn", "arange", "float32", "float64",
           "int64"]

# PyTorch's dtype names, for ``dtype=minidl.float64`` and ``model.to(dtype=minidl.float64)``.
float32, float64, int64 = numpy.dtype("float32"), numpy.dtype("float64"), numpy.dtype("int64")


def _device(device):
    return backend.device(device) if device is not None else backend.get_default_device()


def _full(size, value, dtype, device, requires_grad):
    host = numpy.full(sizes_argument(size), value, dtype=numpy.dtype(dtype or "float32"))
    return tensor(host, requires_grad=requires_grad, device=_device(device))


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros of shape ``size``."""
    return _full(size, 0, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones of shape ``size``."""
    return _full(size, 1, dtype, device, requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    """Zeros with the shape of ``x`` and, unless given, its dtype and device."""
    return _full(x.shape, 0, dtype or x.dtype, device or x.device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    """Ones with the shape of ``x`` and, unless given, its dtype and device."""
    return _full(x.shape, 1, dtype or x.dtype, device or x.device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal samples of shape ``size`` (a floating ``dtype``), seeded by manual_seed."""
    dtype = numpy.dtype(dtype or "float32")
    if dtype.kind != "f":
        raise TypeError(f"randn: dtype must be a floating type, got {dtype}")
    array = backend.random_normal(sizes_argument(size), dtype, _device(device))
    return Tensor(array, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Evenly spaced values in [start, end) (``arange(end)`` starts at 0), as ``torch.arange``.

    The dtype defaults to int64 when every bound is an int, else float32.
    """
    start, end = (0, start) if end is None else (start, end)
    if dtype is None:
        dtype = "int64" if all(isinstance(v, int) for v in (start, end, step)) else "float32"
    host = numpy.arange(start, end, step, dtype=numpy.dtype(dtype))
    return tensor(host, requires_grad=requires_grad, device=_device(device))
