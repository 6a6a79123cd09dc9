"""Shape operations: reshape, transpose, indexing, concatenate, stack, and moving/casting.

None of them computes anything: each backward puts the output gradient back
where the input's elements came from (a reshape, the inverse permutation, a
scatter into zeros, a split) or casts/moves it back.
"""
import numpy

from .. import backend
from ..autograd import Function, Tensor
from ._axes import inverse_permutation, normalize_axes
from ._checks import check_tensor

__all__ = ["reshape", "transpose", "getitem", "concatenate", "stack", "to"]


class Reshape(Function):
    """y = x viewed with a new shape;  dx = dy viewed with x's shape."""

    def forward(self, x, shape):
        self.x_shape = x.shape
        return x.reshape(shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Transpose(Function):
    """y = x with axes permuted by ``axes``;  dx = dy permuted by the inverse."""

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(inverse_permutation(self.axes))


def reshape(x, *shape):
    """``x.reshape(2, -1)`` or ``x.reshape((2, -1))`` (see :class:`Reshape`); sizes must agree."""
    check_tensor("reshape", "x", x, floating=False, boolean=True)
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    known = int(numpy.prod([n for n in shape if n != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and known != x.size) or \
            (-1 in shape and (known == 0 or x.size % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}")
    return Reshape.apply(x, shape)


def transpose(x, *axes):
    """Reverse the axes, or permute them: ``x.transpose(0, 2, 1)`` (see :class:`Transpose`)."""
    check_tensor("transpose", "x", x, floating=False, boolean=True)
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = axes or tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of a tensor with shape {x.shape}")
    return Transpose.apply(x, tuple(a % x.ndim for a in axes))


def _is_basic_index(index):
    """True when ``index`` uses only ints, slices, None and Ellipsis (no repeated elements)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class GetItem(Function):
    """y = x[index];  dx = zeros with dy scattered back to the indexed places.

    An advanced index may pick an element twice; ``add.at`` then adds both
    contributions (a plain assignment would keep only one).
    """

    def forward(self, x, index):
        self.x_shape, self.index = x.shape, index
        return x[index]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.x_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy
        else:
            xp.add.at(gx, self.index, gy)
        return gx


def getitem(x, index):
    """``x[index]`` with NumPy's indexing rules (see :class:`GetItem`).

    Tensor indices are used by their data and must be on ``x``'s device.
    """
    check_tensor("getitem", "x", x, floating=False, boolean=True)
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(i.data if isinstance(i, Tensor) else i for i in items)
    for i in items:
        if hasattr(i, "dtype") and backend.device_of(i) != x.device:
            raise ValueError(f"getitem: the index is on {backend.device_of(i)} but the tensor is "
                             f"on {x.device}")
    return GetItem.apply(x, items if isinstance(index, tuple) else items[0])


class Concatenate(Function):
    """y = inputs joined along ``axis``;  each input's gradient is its slice of dy."""

    def forward(self, *xs, axis):
        xp = backend.get_array_module(xs[0])
        self.axis = axis
        self.bounds = numpy.cumsum([x.shape[axis] for x in xs])[:-1].tolist()
        return xp.concatenate(xs, axis=axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return tuple(xp.split(gy, self.bounds, axis=self.axis))


class Stack(Function):
    """y = inputs stacked along a new ``axis``;  each input's gradient is dy indexed there."""

    def forward(self, *xs, axis):
        xp = backend.get_array_module(xs[0])
        self.axis = axis
        return xp.stack(xs, axis=axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return tuple(xp.moveaxis(gy, self.axis, 0))


def _tensor_list(op_name, tensors):
    """``tensors`` as a non-empty list of Tensors."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op_name}: needs at least one tensor")
    for i, t in enumerate(tensors):
        check_tensor(op_name, f"tensors[{i}]", t, floating=False, boolean=True)
    return tensors


def _check_joinable(op_name, tensors, axis=None):
    """Tensors to join need one rank and equal sizes on every axis but ``axis``."""
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        same = t.ndim == first.ndim and all(
            n == m for k, (n, m) in enumerate(zip(first.shape, t.shape)) if k != axis)
        if not same:
            where = "" if axis is None else f" (they may differ only along axis {axis})"
            raise ValueError(f"{op_name}: tensor 0 has shape {first.shape} but tensor {i} has "
                             f"shape {t.shape}{where}")


def concatenate(tensors, axis=0):
    """Join tensors along an existing ``axis`` (see :class:`Concatenate`); other axes must agree."""
    tensors = _tensor_list("concatenate", tensors)
    (axis,) = normalize_axes(axis, tensors[0].ndim, "concatenate")
    _check_joinable("concatenate", tensors, axis)
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new ``axis`` (see :class:`Stack`)."""
    tensors = _tensor_list("stack", tensors)
    _check_joinable("stack", tensors)
    (axis,) = normalize_axes(axis, tensors[0].ndim + 1, "stack")
    return Stack.apply(*tensors, axis=axis)


class To(Function):
    """y = x on another device and/or dtype;  dx = dy moved and cast back."""

    def forward(self, x, device, dtype):
        self.device, self.dtype = backend.device_of(x), x.dtype
        y = backend.to_device(x, device)
        return y if dtype is None else y.astype(dtype, copy=False)

    def backward(self, gy):
        return backend.to_device(gy, self.device).astype(self.dtype, copy=False)


def to(x, device=None, dtype=None):
    """``x`` on ``device`` with ``dtype`` (each unchanged when None); differentiable (:class:`To`).

    This is the one explicit conversion: an integer tensor cast to a float
    dtype here is the intended way to promote it.
    """
    check_tensor("to", "x", x, floating=False, boolean=True)
    target = backend.device(device) if device is not None else x.device
    if target == x.device and (dtype is None or numpy.dtype(dtype) == x.dtype):
        return x
    return To.apply(x, target, dtype)
