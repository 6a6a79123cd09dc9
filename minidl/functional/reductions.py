"""Reductions over axes: sum, mean, max (differentiable) and argmax (not).

``axis`` is None (all axes), an int or a tuple; ``keepdims`` keeps the
reduced axes with size 1.  Every backward broadcasts the output gradient
back over the reduced axes.
"""
import numpy

from .. import backend
from ..autograd import Function, Tensor
from ._axes import inverse_permutation, normalize_axes
from ._checks import check_flag, check_tensor

__all__ = ["sum", "mean", "max", "argmax"]


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


def _reduction_args(op, x, axis, keepdims, floating):
    check_tensor(op, "x", x, floating=floating, boolean=not floating)
    return normalize_axes(axis, x.ndim, op), check_flag(op, "keepdims", keepdims)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (see :class:`Sum`); a boolean tensor sums to int64, as in NumPy."""
    return Sum.apply(x, *_reduction_args("sum", x, axis, keepdims, floating=False))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (see :class:`Mean`); floating point only."""
    return Mean.apply(x, *_reduction_args("mean", x, axis, keepdims, floating=True))


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (see :class:`Max`); the gradient goes to the first maximum."""
    axes, keepdims = _reduction_args("max", x, axis, keepdims, floating=False)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce an empty axis of a tensor with shape {x.shape}")
    return Max.apply(x, axes, keepdims)


def argmax(x, axis=None):
    """Index of the (first) maximum along ``axis`` (flattened when None), as an int64 tensor.

    Not differentiable: an index has no gradient.
    """
    check_tensor("argmax", "x", x, floating=False, boolean=True)
    if axis is not None:
        (axis,) = normalize_axes(axis, x.ndim, "argmax")
    return Tensor(x.data.argmax(axis=axis).astype("int64", copy=False))
