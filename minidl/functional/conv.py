"""2-D convolution by im2col and one (batched) matrix product; backward by col2im.

A convolution layer in deep learning is a *cross-correlation*: with input
``x`` (N, C, H, W), weight ``w`` (O, C/G, KH, KW) for G groups, stride
``(sh, sw)``, dilation ``(dh, dw)`` and zero padding (``xpad`` is ``x`` with
``pt`` zero rows above, ``pb`` below, ``pl`` zero columns left and ``pr``
right; ``pt = pb = ph`` and ``pl = pr = pw`` unless ``padding="same"`` needs
an odd total),

    y[n, o, i, j] = b[o] + sum_{c', u, v} w[o, c', u, v]
                                         * xpad[n, g*C/G + c', i*sh + u*dh, j*sw + v*dw]

with ``g = o // (O/G)`` the group of output channel o, and

    OH = (H + pt + pb - dh*(KH - 1) - 1) // sh + 1   (likewise OW).

im2col copies every receptive field into one column of a matrix ``col`` of
shape (C*KH*KW, OH*OW*N); its rows come channel by channel, so they split
into G blocks, one per group, and the whole layer is one batched matrix
product ``y[g] = w[g] @ col[g]`` over the groups (one plain product when
G = 1).  The gradients are batched products too: ``dw[g] = dy[g] @ col[g]^T``
and ``dcol[g] = w[g]^T @ dy[g]``; col2im adds every entry of ``dcol`` back
onto the input pixel it was copied from.  See ``docs/convolution.md`` for a
worked example, the derivation of dilation and groups, and the costs.

The window geometry (padding, groups, kernel offsets) lives in
``_window.py``, shared with pooling.
"""
from .. import backend
from ..autograd import Function
from ._checks import check_like, check_tensor
from ._window import check_groups, check_pair, conv_padding, kernel_offsets

__all__ = ["conv2d", "MAX_IM2COL_ELEMENTS"]

# Above this many elements the column matrix (4 bytes each in float32, 8 in
# float64) would take 8 GiB or more; refuse with a clear message instead of
# letting the allocator fail somewhere deep in NumPy or CuPy.
MAX_IM2COL_ELEMENTS = 2 ** 31


# --------------------------------------------------------------------------- im2col / col2im

def _is_pointwise(kernel, stride, padding):
    """A 1x1 kernel, stride 1, no padding: the columns are the pixels themselves.

    ``padding`` is the (before, after) pair of pairs; dilation moves no tap of
    a 1x1 kernel, so it does not matter here.
    """
    return kernel == (1, 1) and stride == (1, 1) and padding == ((0, 0), (0, 0))


def _nchw(memory):
    """A (C, H, W, N) array seen as (N, C, H, W): a view, no copy."""
    return memory.transpose(3, 0, 1, 2)


def _batch_minor(x):
    """(N, C, H, W) ``x`` over (C, H, W, N) memory: ``x`` itself when it lies so, else a copy.

    Convolutions leave their output so (see :class:`Conv2d`), so only a
    network's input (C-ordered NCHW from the data) is copied, once.
    """
    xp = backend.get_array_module(x)
    return _nchw(xp.ascontiguousarray(x.transpose(1, 2, 3, 0)))


def _rows(x):
    """The (C, H*W*N) matrix of batch-minor ``x``: row c holds channel c, pixel by pixel."""
    return _batch_minor(x).transpose(1, 2, 3, 0).reshape(x.shape[1], -1)


def _im2col(x, kernel, stride, padding, dilation, out):
    """The (C*KH*KW, OH*OW*N) column matrix of ``x``: one receptive field per column.

    Rows run over (c, u, v) in the order of the flattened weight, columns over
    (i, j, n), the batch innermost, as activations lie between convolutions.
    This layout makes the forward product and both backward products read
    contiguous (or plainly transposed) operands.  One slice copy per kernel
    offset (u, v) fills ``col[c, u, v, i, j, n] = xpad[n, c, i*sh + u*dh, j*sw
    + v*dw]`` straight from ``x``; with the batch innermost in both, each copy
    moves runs of N (for stride 1, OW*N) neighbouring values at a time.
    Entries that fall in the padding keep the zeros of the fresh matrix, so no
    padded copy of ``x`` is made.
    """
    tp = backend.threaded(backend.get_array_module(x))
    n, c, h, w = x.shape
    col = tp.zeros((c, kernel[0], kernel[1], out[0], out[1], n), dtype=x.dtype)
    x = _batch_minor(x)
    for u, v, source, target in kernel_offsets((h, w), kernel, stride, padding[0], out,
                                               dilation):
        tp.copyto(_nchw(col[:, u, v])[target], x[source])
    return col.reshape(c * kernel[0] * kernel[1], out[0] * out[1] * n)


def _col2im(col, x_shape, kernel, stride, padding, dilation, out):
    """Adjoint of :func:`_im2col`: add each column entry onto the pixel it came from.

    Windows overlap when the stride is smaller than the dilated kernel, so a
    pixel collects the sum of all its copies; entries that came from the
    padding are dropped.  One slice-add per kernel offset does this for all
    windows.  The (N, C, H, W) gradient is returned batch-minor, as a view of
    (C, H, W, N) memory, the layout of the convolution's output (see
    :class:`Conv2d`).
    """
    tp = backend.threaded(backend.get_array_module(col))
    n, c, h, w = x_shape
    col = col.reshape(c, kernel[0], kernel[1], out[0], out[1], n)
    gx = _nchw(tp.zeros((c, h, w, n), dtype=col.dtype))
    for u, v, source, target in kernel_offsets((h, w), kernel, stride, padding[0], out,
                                               dilation):
        pixels = gx[source]
        tp.add(pixels, _nchw(col[:, u, v])[target], out=pixels)
    return gx


# --------------------------------------------------------------------------- conv2d

class Conv2d(Function):
    """y = conv(x, w) + b as the batched product ``Y[g] = W[g] @ col[g]`` over G groups.

    With M = OH*OW*N and K = C/G*KH*KW, ``col`` (C*KH*KW, M) is viewed as
    (G, K, M), ``W = w.reshape(G, O/G, K)`` and dY (dy arranged as (O, M)) as
    (G, O/G, M):

    Forward:   Y = W @ col  (G, O/G, M), read as (O, M);   y = Y + b
    Backward:  dW = dY @ col^T  (G, O/G, K), read as (O, C/G, KH, KW);
               db = sum of dY over n, i, j;   dx = col2im(W^T @ dY), W^T @ dY (G, K, M)

    W is block-diagonal in effect: group g's filters meet only group g's
    rows of ``col``, so no product with the zeros off the blocks is formed.

    Layout: the product gives Y as (O, OH, OW, N), channel-major with the
    batch innermost (cuda-convnet's layout), and the output is that memory seen
    as (N, O, OH, OW) through a transposed view, not copied.  Elementwise ops,
    batch norm, maxout and pooling keep the layout, so the next convolution
    finds its input laid out already: for a 1x1 kernel with stride 1 and no
    padding ``col`` *is* ``x`` seen as (C, H*W*N).  With the batch innermost,
    each window offset of im2col, col2im and pooling moves runs of N
    neighbours rather than of one image row (OW), which took col2im of NIN's
    5x5 layer from 25-26 to 12-15 ms at batch 32.  Backward likewise gets dY in this
    layout and returns dx so.  (Products batched over the samples, ``Y_n = W @
    x_n``, would need no layout at all, but N small products ran up to five
    times slower than one large one with two BLAS threads on a loaded machine;
    see ``docs/convolution.md``.)
    """

    def forward(self, x, w, b, stride, padding, dilation, groups, out):
        n = x.shape[0]
        o, _, kh, kw = w.shape
        self.pointwise = _is_pointwise((kh, kw), stride, padding)
        col = _rows(x) if self.pointwise else _im2col(x, (kh, kw), stride, padding, dilation, out)
        col = col.reshape(groups, -1, col.shape[1])
        wg = w.reshape(groups, o // groups, -1)
        y = (wg @ col).reshape(o, -1)
        if b is not None:
            backend.threaded(backend.get_array_module(y)).add(y, b[:, None], out=y)
        self.x_shape, self.w_shape, self.has_bias = x.shape, w.shape, b is not None
        self.geometry, self.groups = ((kh, kw), stride, padding, dilation, out), groups
        self.wg = wg if self.needs_input_grad[0] else None
        self.col = col if self.needs_input_grad[1] else None
        return _nchw(y.reshape(o, out[0], out[1], n))

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy3 = _rows(gy).reshape(self.groups, gy.shape[1] // self.groups, -1)
        gx = gw = None
        if self.needs_input_grad[0]:
            gcol = (self.wg.transpose(0, 2, 1) @ gy3).reshape(-1, gy3.shape[2])
            if self.pointwise:
                n, c, h, w = self.x_shape
                gx = _nchw(gcol.reshape(c, h, w, n))
            else:
                gx = _col2im(gcol, self.x_shape, *self.geometry)
        if self.needs_input_grad[1]:
            # (col @ dY^T)^T equals dY @ col^T but runs about twice as fast on
            # OpenBLAS: the long OH*OW*N axis is then contiguous in both operands.
            gw = xp.ascontiguousarray((self.col @ gy3.transpose(0, 2, 1)).transpose(0, 2, 1))
            gw = gw.reshape(self.w_shape)
        if not self.has_bias:
            return gx, gw
        gb = gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return gx, gw, gb


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of ``x`` with ``weight`` (O, C/groups, KH, KW), plus ``bias`` (O,).

    ``x`` is (N, C, H, W), or an unbatched (C, H, W), which gives (O, OH, OW)
    as in PyTorch.  ``stride`` and ``dilation`` are an int or an (h, w) pair;
    ``padding`` (zeros) too, or ``"valid"`` (none) or ``"same"`` (the output
    keeps H and W; stride 1 only; an odd total puts the extra row and column
    at the bottom and right).  ``groups`` splits the channels into that many
    blocks, output block g seeing input block g only.  Returns (N, O, OH, OW)
    with ``OH = (H + pt + pb - dh*(KH - 1) - 1) // sh + 1`` (likewise OW), in
    the dtype of ``x``.  Unless the kernel is 1x1 with stride 1 and no
    padding, the computation builds an im2col matrix of ``N*OH*OW*C*KH*KW``
    elements (kept until backward when ``weight`` needs a gradient); above
    :data:`MAX_IM2COL_ELEMENTS` a MemoryError asks for a smaller batch.
    """
    op = "conv2d"
    check_tensor(op, "x", x, (3, 4))
    check_like(op, "weight", check_tensor(op, "weight", weight, 4), x)
    n = x.shape[0] if x.ndim == 4 else 1
    c, h, w = x.shape[-3:]
    o, c_w, kh, kw = weight.shape
    groups = check_groups(op, groups, (f"in_channels (x.shape[{x.ndim - 3}])", c),
                          ("out_channels (weight.shape[0])", o))
    if c != c_w * groups:
        raise ValueError(f"{op}: x has {c} input channels (shape {x.shape}) but weight expects "
                         f"{c_w * groups} (weight.shape[1] = {c_w} per group times groups="
                         f"{groups}, weight shape {weight.shape})")
    if bias is not None:
        check_like(op, "bias", check_tensor(op, "bias", bias, 1), x)
        if bias.shape != (o,):
            raise ValueError(f"{op}: bias must have shape ({o},) (one value per output "
                             f"channel), got {bias.shape}")
    stride = check_pair(op, "stride", stride, 1)
    dilation = check_pair(op, "dilation", dilation, 1)
    padding = before, after = conv_padding(op, padding, (kh, kw), stride, dilation)
    padded = (h + before[0] + after[0], w + before[1] + after[1])
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if span[0] > padded[0] or span[1] > padded[1]:
        dilated = "" if dilation == (1, 1) else f" with dilation {dilation} spans {span} and"
        sides = f"{before} on each side" if before == after else f"{before} before, {after} after"
        raise ValueError(f"{op}: kernel size ({kh}, {kw}){dilated} is larger than the padded "
                         f"input {padded} (input ({h}, {w}) plus padding {sides})")
    out = oh, ow = (padded[0] - span[0]) // stride[0] + 1, (padded[1] - span[1]) // stride[1] + 1
    size = n * oh * ow * c * kh * kw
    if size > MAX_IM2COL_ELEMENTS and not _is_pointwise((kh, kw), stride, padding):
        raise MemoryError(f"{op}: the im2col buffer would hold N*OH*OW*C*KH*KW = {n}*{oh}*{ow}*"
                          f"{c}*{kh}*{kw} = {size} elements ({size * x.dtype.itemsize / 2**30:.1f} "
                          f"GiB), more than the limit of {MAX_IM2COL_ELEMENTS}; use a smaller "
                          f"batch (it scales with N)")
    # PyTorch's unbatched input (C, H, W) is a batch of one, without the batch axis.
    batch = x if x.ndim == 4 else x.reshape(1, c, h, w)
    y = Conv2d.apply(batch, weight, bias, stride, padding, dilation, groups, out)
    return y if x.ndim == 4 else y.reshape(o, oh, ow)
