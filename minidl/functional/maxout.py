"""Maxout (Goodfellow et al., 2013).

Maxout groups ``pieces`` consecutive channels and keeps the largest of each
group; ``docs/maxout.md`` explains the gradient routing and its use after
batch normalization.
"""
from .. import backend
from ..autograd import Function
from ._axes import normalize_axes
from ._checks import check_number, check_tensor

__all__ = ["maxout"]


class Maxout(Function):
    """y[..., j, ...] = max over p < pieces of x[..., j * pieces + p, ...] along ``axis``.

    The input is viewed as (..., C / pieces, pieces, ...) and reduced over the
    pieces axis.  The gradient is routed: dx = dy at the winning piece of each
    group, 0 at the others.  On a tie only the first winning piece gets dy, so
    the input gradient of each group sums to its output gradient.
    """

    def forward(self, x, pieces, axis):
        xp = backend.get_array_module(x)
        tp = backend.threaded(xp)
        grouped = x.reshape(x.shape[:axis] + (x.shape[axis] // pieces, pieces)
                            + x.shape[axis + 1:])
        # Results are allocated in x's memory layout (a reduction's own result
        # would be C-ordered): a channel-major x from a convolution stays so.
        first_piece = grouped[(slice(None),) * (axis + 1) + (0,)]
        y = grouped.max(axis=axis + 1, out=xp.empty_like(first_piece))
        if not self.needs_input_grad[0]:
            return y                                    # inference: no mask to keep
        # One boolean pass finds every piece equal to its group's maximum; a
        # second pass per piece then keeps only the first winner of each group
        # (argmax along a middle axis would cost a full transposed copy in NumPy).
        winner = tp.equal(grouped, xp.expand_dims(y, axis + 1),
                          out=xp.empty_like(grouped, dtype=bool))
        by_piece = xp.moveaxis(winner, axis + 1, 0)        # a view: edits land in winner
        unclaimed = ~by_piece[0]                           # groups no earlier piece has won
        for p in range(1, pieces):
            tp.logical_and(by_piece[p], unclaimed, out=by_piece[p])
            tp.logical_xor(unclaimed, by_piece[p], out=unclaimed)  # by_piece[p] lies within it
        self.winner, self.axis, self.x_shape = winner, axis, x.shape
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = backend.threaded(xp).multiply(self.winner, xp.expand_dims(gy, self.axis + 1),
                                           out=xp.empty_like(self.winner, dtype=gy.dtype))
        return gx.reshape(self.x_shape)


def maxout(x, pieces, axis=1):
    """Maxout over groups of ``pieces`` consecutive channels along ``axis``.

    Works for (N, C) and (N, C, H, W) input (any rank, in fact); the output
    has C / pieces channels along ``axis``.  ``pieces`` must be a positive
    integer that divides C.
    """
    check_tensor("maxout", "x", x, floating=False)
    if x.ndim == 0:
        raise ValueError("maxout: x must have at least one axis, got a 0-d tensor")
    (axis,) = normalize_axes(axis, x.ndim, "maxout")
    pieces = check_number("maxout", "pieces", pieces, integer=True, low=1)
    channels = x.shape[axis]
    if channels % pieces:
        raise ValueError(f"maxout: pieces={pieces} does not divide the {channels} channels "
                         f"along axis {axis} of x (shape {x.shape})")
    return Maxout.apply(x, pieces, axis)
