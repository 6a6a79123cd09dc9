"""Reductions over axes: sum, mean, max (differentiable) and argmax (not).

``dim`` is None (all axes), an int or a tuple; ``keepdim`` keeps the
reduced axes with size 1 (PyTorch's names; NumPy's ``axis=`` and
``keepdims=`` are accepted as aliases).  Every backward broadcasts the
output gradient back over the reduced axes.
"""
import collections

import numpy

from .. import backend
from ..autograd import Function, Tensor
from ._axes import inverse_permutation, normalize_axes, numpy_alias
from ._checks import check_flag, check_tensor

__all__ = ["sum", "mean", "max", "argmax", "MaxResult"]

MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])
MaxResult.__doc__ = "What ``max(x, dim)`` returns, as PyTorch does: ``(values, indices)``."


def _expand_reduced(g, x_shape, axes):
    """Broadcast a reduction's output gradient back over the reduced axes."""
    xp = backend.get_array_module(g)
    kept = tuple(1 if i in axes else n for i, n in enumerate(x_shape))
    return xp.broadcast_to(g.reshape(kept), x_shape)


class Sum(Function):
    """y = sum of x over ``axes``;  dx = dy copied along the summed axes."""

    def forward(self, x, axes, keepdims):
        self.x_shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, gy):
        return _expand_reduced(gy, self.x_shape, self.axes)


class Mean(Function):
    """y = mean of x over ``axes`` (m elements each);  dx = dy / m along them."""

    def forward(self, x, axes, keepdims):
        self.x_shape, self.axes = x.shape, axes
        self.count = int(numpy.prod([x.shape[a] for a in axes]))
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, gy):
        return _expand_reduced(gy / self.count, self.x_shape, self.axes)


class Max(Function):
    """y = max of x over ``axes``;  dx = dy at the first maximum of each group, 0 elsewhere.

    Routing to one winner (not to every tie) keeps the gradient's sum equal to dy.
    """

    def forward(self, x, axes, keepdims):
        xp = backend.get_array_module(x)
        self.x_shape, self.axes = x.shape, axes
        y = x.max(axis=axes, keepdims=True)
        kept = [i for i in range(x.ndim) if i not in axes]
        if self.needs_input_grad[0]:
            # Flatten the reduced axes last, so "first" means first in C order.
            order = kept + list(axes)
            flat = (x == y).transpose(order).reshape([x.shape[i] for i in kept] + [-1])
            first = flat & (xp.cumsum(flat, axis=-1) == 1)
            self.mask = first.reshape([x.shape[i] for i in order]).transpose(
                inverse_permutation(order))
        return y if keepdims else y.reshape([x.shape[i] for i in kept])

    def backward(self, gy):
        return _expand_reduced(gy, self.x_shape, self.axes) * self.mask


def _keepdim(op, keepdim, keepdims):
    """The keepdim flag (default False) from either spelling."""
    keepdim = numpy_alias(op, "keepdim", keepdim, "keepdims", keepdims)
    return False if keepdim is None else check_flag(op, "keepdim", keepdim)


def _dims(op, x, dim, keepdim, axis, keepdims):
    """The reduced axes (a sorted tuple) and the keepdim flag, from either spelling."""
    dim = numpy_alias(op, "dim", dim, "axis", axis)
    return normalize_axes(dim, x.ndim, op), _keepdim(op, keepdim, keepdims)


def sum(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """Sum over ``dim`` (see :class:`Sum`); a boolean tensor sums to int64, as in NumPy.

    ``keepdim`` (default False) keeps the summed axes with size 1.
    """
    check_tensor("sum", "x", x, floating=False, boolean=True)
    return Sum.apply(x, *_dims("sum", x, dim, keepdim, axis, keepdims))


def mean(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """Mean over ``dim`` (see :class:`Mean`); floating point only."""
    check_tensor("mean", "x", x)
    return Mean.apply(x, *_dims("mean", x, dim, keepdim, axis, keepdims))


def max(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """Maximum (see :class:`Max`); the gradient goes to the first maximum.

    PyTorch's meaning: ``max(x)`` is the maximum of all elements, and
    ``max(x, dim)`` (one int) returns a :class:`MaxResult` ``(values, indices)``.
    NumPy's ``max(x, axis=...)`` (an int or a tuple) returns the values only.
    """
    check_tensor("max", "x", x, floating=False, boolean=True, half=True)
    axes, keepdim = _dims("max", x, dim, keepdim, axis, keepdims)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce an empty axis of a tensor with shape {x.shape}")
    values = Max.apply(x, axes, keepdim)
    if dim is None:
        return values
    if len(axes) != 1:
        raise TypeError(f"max: dim must be one int, got {dim!r} (max(x, dim) returns values "
                        f"and indices along one axis; use axis= to reduce several)")
    return MaxResult(values, argmax(x, axes[0], keepdim))


def argmax(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """Index of the (first) maximum along ``dim`` (flattened when None), as an int64 tensor.

    Not differentiable: an index has no gradient.
    """
    check_tensor("argmax", "x", x, floating=False, boolean=True, half=True)
    dim = numpy_alias("argmax", "dim", dim, "axis", axis)
    keepdim = _keepdim("argmax", keepdim, keepdims)
    if dim is not None:
        (dim,) = normalize_axes(dim, x.ndim, "argmax")
    return Tensor(x.data.argmax(axis=dim, keepdims=keepdim).astype("int64", copy=False))
