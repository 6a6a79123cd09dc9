"""Operands of the binary ops (arithmetic and comparisons): numbers become tensors."""
import numpy

from .. import backend
from ..autograd import Tensor
from ._checks import check_tensor

__all__ = ["as_tensor_like", "binary_operands"]


def as_tensor_like(value, like):
    """An operand as a Tensor; a Python number takes ``like``'s dtype and device.

    A float with an integer tensor becomes float32 and any number with a
    boolean tensor keeps its own kind, so the dtype check that follows names
    the mismatch instead of truncating the number.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool)):
        xp = backend.get_array_module(like.data)
        if like.dtype.kind == "f" or (like.dtype.kind in "iu" and isinstance(value, int)):
            dtype = like.dtype
        else:
            dtype = numpy.float32 if isinstance(value, float) else numpy.int64
        with backend.on_device(like.device):
            return Tensor(xp.full((), value, dtype=dtype))
    return Tensor(value)


def binary_operands(op, a, b, boolean):
    """Both operands as tensors of one dtype whose shapes broadcast (else a clear error).

    ``boolean``: whether boolean and float16 tensors are allowed (comparisons,
    yes: they are exact; arithmetic, no: ``True - True`` has no meaning a user
    would rely on, and float16 arithmetic is refused as in ``check_tensor``).
    """
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: at least one operand must be a minidl Tensor, got "
                            f"{type(a).__name__} and {type(b).__name__}")
        a = as_tensor_like(a, b)
    b = as_tensor_like(b, a)
    for name, t in (("a", a), ("b", b)):
        check_tensor(op, name, t, floating=False, boolean=boolean, half=boolean)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operands have different dtypes, {a.dtype} and {b.dtype}; "
                        f"convert one explicitly with .to(dtype=...)")
    try:
        numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         f"together") from None
    return a, b
