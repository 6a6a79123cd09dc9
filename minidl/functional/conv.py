"""2-D convolution by im2col and one matrix product; backward by col2im.

A convolution layer in deep learning is a *cross-correlation*: with input
``x`` (N, C, H, W), weight ``w`` (O, C, KH, KW), stride ``(sh, sw)`` and zero
padding ``(ph, pw)`` (``xpad`` is ``x`` with ``ph`` zero rows above and below
and ``pw`` zero columns left and right),

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xpad[n, c, i*sh + u, j*sw + v],

    OH = (H + 2 ph - KH) // sh + 1,   OW = (W + 2 pw - KW) // sw + 1.

im2col copies every receptive field into one column of a matrix ``col`` of
shape (C*KH*KW, N*OH*OW); then the whole layer is one matrix product
``y = w.reshape(O, -1) @ col``.  The gradients are matrix products too:
``dw = dy @ col^T`` and ``dcol = w^T @ dy``; col2im adds every entry of
``dcol`` back onto the input pixel it was copied from.  See
``docs/convolution.md`` for a worked example and the costs.

The window geometry (padding, window views, kernel offsets) lives in
``_window.py``, shared with pooling.
"""
from .. import backend
from ..autograd import Function
from ._checks import check_like, check_tensor
from ._window import check_pair, kernel_offsets, pad, windows

__all__ = ["conv2d", "MAX_IM2COL_ELEMENTS"]

# Above this many elements the column matrix (4 bytes each in float32, 8 in
# float64) would take 8 GiB or more; refuse with a clear message instead of
# letting the allocator fail somewhere deep in NumPy or CuPy.
MAX_IM2COL_ELEMENTS = 2 ** 31


# --------------------------------------------------------------------------- im2col / col2im

def _is_pointwise(kernel, stride, padding):
    """A 1x1 kernel, stride 1, no padding: the columns are the pixels themselves."""
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _im2col(x, kernel, stride, padding, out):
    """The (C*KH*KW, N*OH*OW) column matrix of ``x``: one receptive field per column.

    Rows run over (c, u, v) in the order of the flattened weight, columns over
    (n, i, j).  This layout makes the forward product and both backward
    products read contiguous (or plainly transposed) operands, and copying into
    it moves runs of OW neighbouring pixels at a time.
    """
    view = windows(pad(x, padding), kernel, stride, out).transpose(1, 4, 5, 0, 2, 3)
    n, c = x.shape[:2]
    return view.reshape(c * kernel[0] * kernel[1], n * out[0] * out[1])   # the one copy


def _col2im(col, x_shape, kernel, stride, padding, out):
    """Adjoint of :func:`_im2col`: add each column entry onto the pixel it came from.

    Windows overlap when the stride is smaller than the kernel, so a pixel
    collects the sum of all its copies; entries that came from the padding
    are dropped.  One slice-add per kernel offset does this for all windows.
    """
    xp = backend.get_array_module(col)
    n, c, h, w = x_shape
    col = col.reshape(c, kernel[0], kernel[1], n, out[0], out[1])
    # Accumulate channel-major, as col is laid out, and transpose once at the end.
    gx = xp.zeros((c, n, h, w), dtype=col.dtype)
    for u, v, source, target in kernel_offsets((h, w), kernel, stride, padding, out):
        gx[source] += col[:, u, v][target]
    return xp.ascontiguousarray(gx.transpose(1, 0, 2, 3))


# --------------------------------------------------------------------------- conv2d

class Conv2d(Function):
    """y = conv(x, w) + b as ``W @ col`` with ``W = w.reshape(O, C*KH*KW)``.

    Forward:   col = im2col(x)  (C*KH*KW, N*OH*OW);   Y = W @ col + b  (O, N*OH*OW)
    Backward:  dW = dY @ col^T;   db = sum of dY over n, i, j;   dx = col2im(W^T @ dY)

    where dY is dy arranged as (O, N*OH*OW).  A 1x1 kernel with stride 1 and
    no padding needs no im2col: ``col`` is ``x`` with N and C swapped, and
    col2im is the reverse swap.
    """

    def forward(self, x, w, b, stride, padding, out):
        xp = backend.get_array_module(x)
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        self.pointwise = _is_pointwise((kh, kw), stride, padding)
        if self.pointwise:
            col = x.transpose(1, 0, 2, 3).reshape(c, n * h * wd)
        else:
            col = _im2col(x, (kh, kw), stride, padding, out)
        w2 = w.reshape(o, -1)
        y = w2 @ col
        if b is not None:
            y += b[:, None]
        self.x_shape, self.w_shape, self.has_bias = x.shape, w.shape, b is not None
        self.kernel, self.stride, self.padding, self.out = (kh, kw), stride, padding, out
        self.w2 = w2 if self.needs_input_grad[0] else None
        self.col = col if self.needs_input_grad[1] else None
        return xp.ascontiguousarray(y.reshape(o, n, out[0], out[1]).transpose(1, 0, 2, 3))

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy2 = gy.transpose(1, 0, 2, 3).reshape(gy.shape[1], -1)
        gx = gw = None
        if self.needs_input_grad[0]:
            gcol = self.w2.T @ gy2
            if self.pointwise:
                n, c, h, w = self.x_shape
                gx = xp.ascontiguousarray(gcol.reshape(c, n, h, w).transpose(1, 0, 2, 3))
            else:
                gx = _col2im(gcol, self.x_shape, self.kernel, self.stride, self.padding, self.out)
        if self.needs_input_grad[1]:
            # (col @ dY^T)^T equals dY @ col^T but runs about twice as fast on
            # OpenBLAS: the long N*OH*OW axis is then contiguous in both operands.
            gw = xp.ascontiguousarray((self.col @ gy2.T).T).reshape(self.w_shape)
        if not self.has_bias:
            return gx, gw
        gb = gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return gx, gw, gb


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation of NCHW ``x`` with ``weight`` (O, C, KH, KW), plus ``bias`` (O,).

    ``stride`` and ``padding`` (zeros) are an int or an (h, w) pair.  Returns
    (N, O, OH, OW) with ``OH = (H + 2*ph - KH) // sh + 1`` (likewise OW), in
    the dtype of ``x``.  Unless the kernel is 1x1 with stride 1 and no padding,
    the computation builds an im2col matrix of ``N*OH*OW*C*KH*KW`` elements
    (kept until backward when ``weight`` needs a gradient); above
    :data:`MAX_IM2COL_ELEMENTS` a MemoryError asks for a smaller batch.
    """
    op = "conv2d"
    check_tensor(op, "x", x, 4)
    check_like(op, "weight", check_tensor(op, "weight", weight, 4), x)
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w:
        raise ValueError(f"{op}: x has {c} input channels (shape {x.shape}) but weight expects "
                         f"{c_w} (weight.shape[1], weight shape {weight.shape})")
    if bias is not None:
        check_like(op, "bias", check_tensor(op, "bias", bias, 1), x)
        if bias.shape != (o,):
            raise ValueError(f"{op}: bias must have shape ({o},) (one value per output "
                             f"channel), got {bias.shape}")
    stride = check_pair(op, "stride", stride, 1)
    padding = check_pair(op, "padding", padding, 0)
    padded = (h + 2 * padding[0], w + 2 * padding[1])
    if kh > padded[0] or kw > padded[1]:
        raise ValueError(f"{op}: kernel size ({kh}, {kw}) is larger than the padded input "
                         f"{padded} (input ({h}, {w}) plus padding {padding} on each side)")
    out = oh, ow = (padded[0] - kh) // stride[0] + 1, (padded[1] - kw) // stride[1] + 1
    size = n * oh * ow * c * kh * kw
    if size > MAX_IM2COL_ELEMENTS and not _is_pointwise((kh, kw), stride, padding):
        raise MemoryError(f"{op}: the im2col buffer would hold N*OH*OW*C*KH*KW = {n}*{oh}*{ow}*"
                          f"{c}*{kh}*{kw} = {size} elements ({size * x.dtype.itemsize / 2**30:.1f} "
                          f"GiB), more than the limit of {MAX_IM2COL_ELEMENTS}; use a smaller "
                          f"batch (it scales with N)")
    return Conv2d.apply(x, weight, bias, stride, padding, out)
