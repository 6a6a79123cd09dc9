"""Maxout (Goodfellow et al., 2013) and inverted dropout.

Maxout groups ``pieces`` consecutive channels and keeps the largest of each
group; ``docs/maxout.md`` explains the gradient routing and its use after
batch normalization.  Dropout lives here too because maxout networks were
trained with it.
"""
import numbers

from .. import backend
from ..autograd import Function, Tensor, is_grad_enabled
from .math import _normalize_axes

__all__ = ["maxout", "dropout"]


class Maxout(Function):
    """y[..., j, ...] = max over p < pieces of x[..., j * pieces + p, ...] along ``axis``.

    The input is viewed as (..., C / pieces, pieces, ...) and reduced over the
    pieces axis.  The gradient is routed: dx = dy at the winning piece of each
    group, 0 at the others.  On a tie only the first winning piece gets dy, so
    the input gradient of each group sums to its output gradient.
    """

    def forward(self, x, pieces, axis):
        xp = backend.get_array_module(x)
        grouped = x.reshape(x.shape[:axis] + (x.shape[axis] // pieces, pieces)
                            + x.shape[axis + 1:])
        y = grouped.max(axis=axis + 1)
        if not (is_grad_enabled() and self.needs_input_grad[0]):
            return y                                    # inference: no mask to keep
        # One boolean pass finds every piece equal to its group's maximum; the
        # loop then clears the ties after the first (argmax along a middle axis
        # would cost a full transposed copy in NumPy).
        winner = grouped == xp.expand_dims(y, axis + 1)
        by_piece = xp.moveaxis(winner, axis + 1, 0)        # a view: edits land in winner
        for p in range(1, pieces):
            by_piece[p] &= ~by_piece[:p].any(axis=0)
        self.winner, self.axis, self.in_shape = winner, axis, x.shape
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = self.winner * xp.expand_dims(gy, self.axis + 1)
        return gx.reshape(self.in_shape)


def maxout(x, pieces, axis=1):
    """Maxout over groups of ``pieces`` consecutive channels along ``axis``.

    Works for (N, C) and (N, C, H, W) input (any rank, in fact); the output
    has C / pieces channels along ``axis``.  ``pieces`` must be a positive
    integer that divides C.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"maxout: x must be a minidl Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError("maxout: x must have at least one axis, got a 0-d tensor")
    (axis,) = _normalize_axes(axis, x.ndim, "maxout")
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive integer, got {pieces!r}")
    channels = x.shape[axis]
    if channels % pieces:
        raise ValueError(f"maxout: pieces={pieces} does not divide the {channels} channels "
                         f"along axis {axis} of x (shape {x.shape})")
    return Maxout.apply(x, int(pieces), axis)


class Dropout(Function):
    """Inverted dropout: y = x * mask, mask = keep / (1 - p), keep ~ Bernoulli(1 - p).

    Scaling the kept units by 1 / (1 - p) makes E[y] = x, so evaluation needs
    no rescaling.  dx = dy * mask, with the mask of the forward pass.
    """

    def forward(self, x, p):
        keep = backend.random_uniform(x.shape, x.dtype, backend.device_of(x)) >= p
        self.mask = keep.astype(x.dtype)
        self.mask *= 1 / (1 - p)
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p).

    The mask is drawn with ``minidl.backend.random_uniform``, so
    ``minidl.manual_seed`` makes it reproducible.  When not training, or with
    ``p == 0``, ``x`` itself is returned.  ``p`` must be in [0, 1).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"dropout: x must be a minidl Tensor, got {type(x).__name__}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"dropout: p must be a number in [0, 1), got {p!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: x must be floating point, got dtype {x.dtype}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, float(p))
