"""Max, average and global average pooling over NCHW (or unbatched CHW) tensors.

A pooling window of KH x KW taps, spaced by the dilation (dh, dw), moves with
stride (sh, sw) over the input padded by (ph, pw).  It spans
EKH = dh (KH - 1) + 1 rows, and the output height is

    OH = floor((H + 2 ph - EKH) / sh) + 1                   (ceil_mode=False)
    OH = ceil((H + 2 ph - EKH) / sh) + 1, minus 1 if (OH - 1) * sh >= H + ph
                                                             (ceil_mode=True)

and likewise OW.  ``ceil_mode`` (Caffe's rounding, PyTorch's rule for the
correction) keeps a last, partial window that runs past the bottom/right
padding, but never one that would start in that padding: NIN's 3x3 stride-2
pooling takes 32 to 16 pixels (15 without ceil_mode).

Padding is never stored: each of the KH*KW kernel offsets reads only the
input pixels it covers (see :func:`minidl.functional._window.kernel_offsets`),
each step a whole-array operation on the (..., OH, OW) grid; there is no
loop over samples or pixels.  Leaving a padded position out is exactly
padding with -inf for max pooling, and with 0 for the sums of average pooling.
The ops work on the last two axes, so a (C, H, W) input needs no batch axis.
"""
from .. import backend
from ..autograd import Function, Tensor
from ._checks import check_flag, check_number, check_tensor
from ._window import check_pair, kernel_offsets, pool_arguments

__all__ = ["max_pool2d", "avg_pool2d", "global_avg_pool2d"]


def _pooled_size(size, span, stride, padding, ceil_mode):
    """Output length along one axis for a window that spans ``span`` input positions."""
    room = size + 2 * padding - span
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1          # the last window would start inside the right padding
    return out


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate the arguments; return kernel, stride, padding, dilation and output size."""
    check_tensor(op, "input", x, (3, 4))
    kernel, stride, padding = pool_arguments(op, kernel_size, stride, padding)
    dilation = check_pair(op, "dilation", dilation, 1)
    check_flag(op, "ceil_mode", ceil_mode)
    size = x.shape[-2:]
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    span = tuple(dilation[d] * (kernel[d] - 1) + 1 for d in (0, 1))
    if span[0] > padded[0] or span[1] > padded[1]:
        spread = "" if dilation == (1, 1) else f" (spanning {span} with dilation {dilation})"
        raise ValueError(f"{op}: kernel_size {kernel}{spread} is larger than the padded input "
                         f"{padded} (input {tuple(size)} plus padding {padding} on each side)")
    out = tuple(_pooled_size(size[d], span[d], stride[d], padding[d], ceil_mode) for d in (0, 1))
    return kernel, stride, padding, dilation, out


class _Pool2d(Function):
    """What max and average pooling share: the geometry and the scatter of gradients."""

    def _keep_geometry(self, x, kernel, stride, padding, dilation, out):
        self.x_shape, self.kernel, self.stride, self.padding, self.dilation, self.out = (
            x.shape, kernel, stride, padding, dilation, out)
        return backend.get_array_module(x)

    def _offsets(self):
        return kernel_offsets(self.x_shape[-2:], self.kernel, self.stride, self.padding,
                              self.out, self.dilation)

    def _starts(self, xp, d):
        """Where each window starts along axis d (0: rows, 1: columns); negative in the padding."""
        return xp.arange(self.out[d]) * self.stride[d] - self.padding[d]

    def _scatter(self, gy, contribution):
        """dx from ``contribution(u, v)``, the (..., OH, OW) gradient reaching offset (u, v).

        Windows overlap when the stride is smaller than a window's span
        (dilation included); the slice-adds then accumulate every window's
        share in the same pixel.
        """
        tp = backend.threaded(backend.get_array_module(gy))
        gx = tp.zeros_like(gy, shape=self.x_shape)                     # gy's layout
        for u, v, source, target in self._offsets():
            pixels = gx[source]
            tp.add(pixels, contribution(u, v, target), out=pixels)
        return gx


class MaxPool2d(_Pool2d):
    """y[..., i, j] = max of x over window (i, j), padding counting as -inf.

    dx: each window sends dy[..., i, j] to the position of its *first*
    maximum (row-major order inside the window), so ties never duplicate a
    gradient and dx sums to dy; overlapping windows add up in a shared pixel.

    ``indices``, when a list, receives PyTorch's ``return_indices`` array:
    the winner's flat position ``row * W + col`` in its (H, W) input plane,
    as int64 (``forward`` returns one array, the pooled values).
    """

    def forward(self, x, kernel, stride, padding, dilation, out, indices=None):
        xp = self._keep_geometry(x, kernel, stride, padding, dilation, out)
        shape = x.shape[:-2] + out
        best = xp.empty_like(x, shape=shape)           # x's layout (e.g. channel-major)
        best.fill(float("-inf"))
        kw = self.kernel[1]
        index = xp.uint8 if self.kernel[0] * kw <= 256 else xp.int32
        # Start each window's winner at its first real tap (kernel row
        # ceil(-start / dh) for a window starting in the padding, likewise the
        # column), so that a window of -inf values still routes its gradient
        # to a pixel of the input, the one PyTorch names in its indices.
        first = [xp.maximum(-(self._starts(xp, d) // self.dilation[d]), 0) for d in (0, 1)]
        winner = xp.empty_like(best, dtype=index)
        winner[...] = first[0][:, None] * kw + first[1][None, :]
        tp = backend.threaded(xp)
        for u, v, source, target in self._offsets():
            current = best[target]
            # One strided read of the window, then fast contiguous passes.
            window = tp.empty_like(current)
            tp.copyto(window, x[source])
            better = tp.greater(window, current)  # strict: an equal later value loses the tie
            tp.maximum(current, window, out=current)
            # Offsets come in increasing order, so the index of the latest strict
            # improvement is the largest one: max() updates the winner cheaply.
            tp.maximum(winner[target], tp.multiply(better, index(u * kw + v)), out=winner[target])
        self.winner = winner
        if indices is not None:
            indices.append(self._flat_indices(xp, winner))
        return best

    def _flat_indices(self, xp, winner):
        """Winner offsets (u, v) as input positions: (start + u * dh) * W + start + v * dw."""
        kw, (dh, dw) = self.kernel[1], self.dilation
        u, v = xp.divmod(winner.astype(xp.int64), kw)
        rows = self._starts(xp, 0)[:, None] + u * dh
        cols = self._starts(xp, 1)[None, :] + v * dw
        return rows * self.x_shape[-1] + cols

    def backward(self, gy):
        tp, kw = backend.threaded(backend.get_array_module(gy)), self.kernel[1]
        return self._scatter(gy, lambda u, v, t: tp.multiply(gy[t], tp.equal(self.winner[t],
                                                                             u * kw + v)))


class AvgPool2d(_Pool2d):
    """y[..., i, j] = (sum of x over window (i, j)) / d[i, j];  dx = dy / d summed back.

    With hstart = i*sh - ph and hend = min(hstart + KH, H + ph) (the window
    clipped to the padded input), and likewise wstart, wend, the divisor is
    PyTorch's:

    * ``count_include_pad=True``: d = (hend - hstart) * (wend - wstart), the
      window's part inside the padded input: zero padding counts, the part of
      a ceil_mode window beyond the padded input does not;
    * ``count_include_pad=False``: d = (min(hend, H) - max(hstart, 0)) * (same
      for columns), the real pixels only;
    * ``divisor_override``: d is that number for every window.
    """

    def forward(self, x, kernel, stride, padding, out, count_include_pad, divisor_override):
        xp = self._keep_geometry(x, kernel, stride, padding, (1, 1), out)
        tp = backend.threaded(xp)
        total = tp.zeros_like(x, shape=x.shape[:-2] + out)          # x's layout
        for u, v, source, target in self._offsets():
            windows = total[target]
            tp.add(windows, x[source], out=windows)
        if divisor_override is None:
            self.divisor = self._divisor(xp, x.dtype, count_include_pad)
        else:
            self.divisor = xp.asarray(divisor_override, dtype=x.dtype)
        return tp.divide(total, self.divisor, out=total)

    def _divisor(self, xp, dtype, count_include_pad):
        counts = []
        for d in (0, 1):
            size, k, p = self.x_shape[-2 + d], self.kernel[d], self.padding[d]
            start = self._starts(xp, d)
            end = xp.minimum(start + k, size + p)
            if not count_include_pad:
                start, end = xp.maximum(start, 0), xp.minimum(end, size)
            counts.append(end - start)
        return (counts[0][:, None] * counts[1][None, :]).astype(dtype)

    def backward(self, gy):
        share = backend.threaded(backend.get_array_module(gy)).divide(gy, self.divisor)
        return self._scatter(gy, lambda u, v, t: share[t])


class GlobalAvgPool2d(Function):
    """y[..., c] = mean of x[..., c, :, :] over H, W;  dx[..., c, h, w] = dy[..., c] / (H * W)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(-2, -1))

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        h, w = self.x_shape[-2:]
        return xp.broadcast_to((gy / (h * w))[..., None, None], self.x_shape)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over (KH, KW) windows of ``input`` (N, C, H, W) or (C, H, W); padding is -inf.

    ``kernel_size``, ``stride`` (default: ``kernel_size``), ``padding`` and
    ``dilation`` (the spacing of the window's taps) are an int or an (h, w)
    pair; padding may be at most ``kernel_size // 2``.  See the module
    docstring for the output size with ``ceil_mode``.  The gradient goes to
    the first maximum (row-major) of each window.  With ``return_indices``
    the result is ``(output, indices)``, ``indices`` an int64 Tensor of the
    output's shape holding each maximum's flat position ``h * W + w`` in its
    input plane, as PyTorch's (for ``max_unpool2d``); it has no gradient.
    """
    geometry = _geometry("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    if not check_flag("max_pool2d", "return_indices", return_indices):
        return MaxPool2d.apply(input, *geometry)
    indices = []
    output = MaxPool2d.apply(input, *geometry, indices=indices)
    return output, Tensor(indices[0])


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over (KH, KW) windows of ``input`` (N, C, H, W) or (C, H, W), with zero padding.

    ``kernel_size``, ``stride``, ``padding`` and ``ceil_mode`` as for
    :func:`max_pool2d` (there is no dilation, as in PyTorch).  The divisor of
    each window is PyTorch's (see :class:`AvgPool2d`): by default the window's
    part inside the padded input, padding included; with
    ``count_include_pad=False`` only the real pixels it covers; with
    ``divisor_override`` (a positive int) that number.
    """
    op = "avg_pool2d"
    kernel, stride, padding, _, out = _geometry(op, input, kernel_size, stride, padding, 1,
                                                ceil_mode)
    check_flag(op, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = check_number(op, "divisor_override", divisor_override, integer=True,
                                        low=1)
    return AvgPool2d.apply(input, kernel, stride, padding, out, count_include_pad,
                           divisor_override)


def global_avg_pool2d(input):
    """Mean of ``input`` over H and W: (N, C, H, W) -> (N, C), or (C, H, W) -> (C,).

    NIN's classifier; PyTorch spells it ``adaptive_avg_pool2d(x, 1).flatten(1)``.
    """
    check_tensor("global_avg_pool2d", "input", input, (3, 4))
    return GlobalAvgPool2d.apply(input)
