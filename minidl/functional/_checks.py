"""Argument checks shared by the ops, the nn layers, the optimizers and the training loop.

One wording everywhere: ``"<owner>: <name> must be ..., got ..."``, where the
owner is the op (``conv2d``), the layer (``Conv2d``) or the object that
received the argument.  As in PyTorch, an argument of the wrong type raises
TypeError and a value out of range raises ValueError.
"""
import numpy

from .._arguments import check_flag, check_number, is_integer, is_real
from ..autograd import Tensor

__all__ = ["check_tensor", "check_like", "check_number", "check_flag", "check_choice",
           "check_float_dtype", "is_integer", "is_real"]


def check_tensor(op, name, x, ndim=None, floating=True, boolean=False, half=False):
    """``x`` itself, after checking it is a Tensor of ``ndim`` axes and an allowed dtype.

    ``ndim`` is an int, a tuple of allowed ranks, or None for any rank.  With
    ``floating`` an integer or boolean tensor is refused: minidl never
    promotes one silently.  Without it integers pass, and booleans too when
    ``boolean``.  float16 passes only with ``half``, for the ops that move,
    compare or pick elements and so are exact in any dtype: an op that
    computes would round every step to 11 bits and overflow past 65504 (a
    batch-norm sum of 64x32x32 values near 1 does), so it refuses float16.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(x).__name__}")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in ranks:
            expected = " or ".join(f"{r}-D" for r in ranks)
            raise ValueError(f"{op}: {name} must be {expected}, got shape {x.shape}")
    if floating and x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {x.dtype}; "
                        f"convert it explicitly with .to(dtype='float32')")
    if not boolean and x.dtype.kind == "b":
        raise TypeError(f"{op}: {name} must be a numeric tensor, got dtype bool; convert it "
                        f"explicitly with .to(dtype='int64') or .to(dtype='float32')")
    if not half and x.dtype.kind == "f" and x.dtype.itemsize < 4:
        raise TypeError(f"{op}: {name} has dtype {x.dtype}, which minidl stores and moves but "
                        f"does not compute in (sums overflow at 65504); convert it explicitly "
                        f"with .to(dtype='float32')")
    return x


def check_choice(op, name, value, choices):
    """``value`` if it is one of the strings ``choices``, else an error that lists them.

    A value that is not a string raises TypeError, a string not among them ValueError:
    ``"cross_entropy: reduction must be one of 'none', 'mean', 'sum', got 'avg'"``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a string, one of "
                        f"{', '.join(map(repr, choices))}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def check_like(op, name, value, x, x_name="x"):
    """``value`` must have the dtype and the device of ``x`` (never promoted, never moved)."""
    if value.dtype != x.dtype:
        raise TypeError(f"{op}: {name} has dtype {value.dtype} but {x_name} has dtype {x.dtype}; "
                        f"convert one explicitly with .to(dtype=...) (minidl never promotes "
                        f"silently)")
    if value.device != x.device:
        raise ValueError(f"{op}: {name} is on {value.device} but {x_name} is on {x.device}; "
                         f"move one with .to()")
    return value


def check_float_dtype(op, name, value):
    """``value`` (``"float32"``, ``numpy.float64``, ...) as a floating numpy dtype, else TypeError.

    Used for the ``dtype=`` of layers and of ``Module.to``: only floating
    tensors can be trained.  None is refused, although ``numpy.dtype(None)`` is
    float64: a missing dtype is a mistake, not a request for float64.
    """
    try:
        dtype = None if value is None else numpy.dtype(value)
    except TypeError:
        dtype = None          # not a dtype at all
    if dtype is None or dtype.kind != "f":
        got = repr(value) if dtype is None else dtype
        raise TypeError(f"{op}: {name} must be a floating-point dtype, got {got}")
    return dtype
