"""Shape operations: reshape, permute, transpose, indexing, joining, copying, moving/casting.

None of them computes anything: each backward puts the output gradient back
where the input's elements came from (a reshape, the inverse permutation, a
scatter into zeros, a split) or casts/moves it back.  ``flatten``,
``squeeze`` and ``unsqueeze`` are reshapes, ``transpose`` is a permutation.
Axis arguments use PyTorch's names (``dim``); ``transpose(x, d0, d1)``
swaps two axes as in PyTorch, ``permute`` takes a full permutation (what
NumPy's ``transpose`` does).
"""
import numpy

from .. import backend
from ..autograd import Function, Tensor
from ._axes import inverse_permutation, normalize_axes, numpy_alias, sizes_argument
from ._checks import check_number, check_tensor

__all__ = ["reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "getitem",
           "concatenate", "cat", "stack", "clone", "to"]


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
    """``x.reshape(2, -1)`` or ``x.reshape((2, -1))`` (see :class:`Reshape`); sizes must agree.

    One size may be -1: it is inferred from the others.  ``Tensor.view`` is
    the same operation (the result may or may not share ``x``'s memory).
    """
    check_tensor("reshape", "x", x, floating=False, boolean=True, half=True)
    shape = sizes_argument(shape)
    known = int(numpy.prod([n for n in shape if n != -1]))
    size = x.numel()
    if shape.count(-1) > 1 or (-1 not in shape and known != size) or \
            (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({size} elements) into shape {shape}")
    return Reshape.apply(x, shape)


def _one_axis(op, name, dim, ndim):
    """``dim`` (an int in [-ndim, ndim)) as a non-negative axis."""
    (axis,) = normalize_axes(check_number(op, name, dim, integer=True), ndim, op)
    return axis


def flatten(x, start_dim=0, end_dim=-1):
    """Join the axes ``start_dim`` to ``end_dim`` (inclusive) into one (a :class:`Reshape`).

    ``flatten(x)`` is 1-D; ``flatten(x, 1)`` takes (N, C, H, W) to (N, C*H*W).
    A 0-D tensor becomes 1-D, as in PyTorch.
    """
    check_tensor("flatten", "x", x, floating=False, boolean=True, half=True)
    if x.ndim == 0:
        return Reshape.apply(x, (1,))
    start = _one_axis("flatten", "start_dim", start_dim, x.ndim)
    end = _one_axis("flatten", "end_dim", end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a "
                         f"tensor with shape {x.shape}")
    joined = int(numpy.prod(x.shape[start:end + 1]))
    return Reshape.apply(x, x.shape[:start] + (joined,) + x.shape[end + 1:])


def squeeze(x, dim=None):
    """Drop the axes of size 1 (all of them, or those among ``dim``, an int or a tuple).

    As in PyTorch, a named axis whose size is not 1 is kept, not an error.
    A :class:`Reshape`.
    """
    check_tensor("squeeze", "x", x, floating=False, boolean=True, half=True)
    axes = normalize_axes(dim, x.ndim, "squeeze")
    return Reshape.apply(x, tuple(n for i, n in enumerate(x.shape) if n != 1 or i not in axes))


def unsqueeze(x, dim):
    """Insert an axis of size 1 at position ``dim``, in [-ndim - 1, ndim] (a :class:`Reshape`)."""
    check_tensor("unsqueeze", "x", x, floating=False, boolean=True, half=True)
    axis = _one_axis("unsqueeze", "dim", dim, x.ndim + 1)
    return Reshape.apply(x, x.shape[:axis] + (1,) + x.shape[axis:])


def permute(x, *dims):
    """Reorder the axes: ``x.permute(0, 2, 1)`` or ``x.permute((0, 2, 1))`` (:class:`Transpose`).

    ``dims`` must name every axis once (negative axes count from the end).
    This is what NumPy's ``transpose(axes)`` does.
    """
    check_tensor("permute", "x", x, floating=False, boolean=True, half=True)
    dims = sizes_argument(dims)
    axes = tuple(_one_axis("permute", "dims", d, x.ndim) for d in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} axes "
                         f"of a tensor with shape {x.shape}")
    return Transpose.apply(x, axes)


def transpose(x, dim0, dim1):
    """Swap axes ``dim0`` and ``dim1`` (PyTorch's meaning; :class:`Transpose`).

    For a full permutation (NumPy's ``transpose(axes)``) use :func:`permute`.
    """
    check_tensor("transpose", "x", x, floating=False, boolean=True, half=True)
    a = _one_axis("transpose", "dim0", dim0, x.ndim)
    b = _one_axis("transpose", "dim1", dim1, x.ndim)
    axes = list(range(x.ndim))
    axes[a], axes[b] = b, a
    return Transpose.apply(x, tuple(axes))


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
    check_tensor("getitem", "x", x, floating=False, boolean=True, half=True)
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
        check_tensor(op_name, f"tensors[{i}]", t, floating=False, boolean=True, half=True)
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


def concatenate(tensors, dim=None, *, axis=None):
    """Join tensors along an existing axis ``dim`` (default 0; see :class:`Concatenate`).

    The other axes must agree.  ``cat`` is the same function (PyTorch's name).
    """
    tensors = _tensor_list("concatenate", tensors)
    dim = numpy_alias("concatenate", "dim", dim, "axis", axis)
    (dim,) = normalize_axes(0 if dim is None else dim, tensors[0].ndim, "concatenate")
    _check_joinable("concatenate", tensors, dim)
    return Concatenate.apply(*tensors, axis=dim)


cat = concatenate


def stack(tensors, dim=None, *, axis=None):
    """Join same-shaped tensors along a new axis ``dim`` (default 0; see :class:`Stack`)."""
    tensors = _tensor_list("stack", tensors)
    _check_joinable("stack", tensors)
    dim = numpy_alias("stack", "dim", dim, "axis", axis)
    (dim,) = normalize_axes(0 if dim is None else dim, tensors[0].ndim + 1, "stack")
    return Stack.apply(*tensors, axis=dim)


class Clone(Function):
    """y = a copy of x (new memory);  dx = dy."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(x):
    """A copy of ``x`` with its own memory, still in the graph (see :class:`Clone`).

    ``x.detach()`` shares the memory and leaves the graph; ``x.clone()`` copies
    and stays differentiable; ``x.detach().clone()`` is a fresh leaf.
    """
    return Clone.apply(check_tensor("clone", "x", x, floating=False, boolean=True, half=True))


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
    check_tensor("to", "x", x, floating=False, boolean=True, half=True)
    target = backend.device(device) if device is not None else x.device
    if target == x.device and (dtype is None or numpy.dtype(dtype) == x.dtype):
        return x
    return To.apply(x, target, dtype)
