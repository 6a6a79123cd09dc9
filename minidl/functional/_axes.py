"""Axis arguments shared by reductions, shape ops, activations and maxout."""
import numpy

from ._checks import is_integer

__all__ = ["normalize_axes", "inverse_permutation", "memory_order", "numpy_alias",
           "sizes_argument"]


def normalize_axes(axis, ndim, op):
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if not is_integer(a):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} axes")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def inverse_permutation(permutation):
    """The permutation that undoes ``permutation`` (a tuple, as device arrays need)."""
    return tuple(int(i) for i in numpy.argsort(permutation))


def memory_order(array):
    """The axes of ``array`` from the outermost in memory (largest stride) to the innermost.

    Ties (a length-1 axis may have any stride, a broadcast one has 0) keep
    their order.
    """
    return tuple(sorted(range(array.ndim), key=lambda d: -abs(array.strides[d])))


def numpy_alias(op, name, value, alias, alias_value):
    """PyTorch's keyword ``name`` or NumPy's ``alias`` for it (``dim``/``axis``), not both.

    Both default to None; the one given wins.  Passing both is a TypeError,
    since which one was meant cannot be guessed.
    """
    if alias_value is None:
        return value
    if value is not None:
        raise TypeError(f"{op}: got both {name}={value!r} and its NumPy alias "
                        f"{alias}={alias_value!r}; pass only one")
    return alias_value


def sizes_argument(args):
    """The sizes of ``f(2, 3)`` or ``f((2, 3))`` (reshape, permute, zeros) as one tuple."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
