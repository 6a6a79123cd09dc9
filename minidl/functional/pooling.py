"""Max, average and global average pooling over NCHW tensors.

A pooling window of size (KH, KW) moves with stride (sh, sw) over the input
padded by (ph, pw).  The output height is

    OH = floor((H + 2 ph - KH) / sh) + 1                    (ceil_mode=False)
    OH = ceil((H + 2 ph - KH) / sh) + 1, minus 1 if (OH - 1) * sh >= H + ph
                                                             (ceil_mode=True)

and likewise OW.  ``ceil_mode`` (Caffe's rounding, PyTorch's rule for the
correction) keeps a last, partial window that runs past the bottom/right
padding, but never one that would start in that padding: NIN's 3x3 stride-2
pooling takes 32 to 16 pixels (15 without ceil_mode).

Padding is never stored: each of the KH*KW kernel offsets reads only the
input pixels it covers (see :func:`minidl.functional._window.kernel_offsets`),
each step a whole-array operation on the (N, C, OH, OW) grid; there is no
loop over samples or pixels.  Leaving a padded position out is exactly
padding with -inf for max pooling, and with 0 for the sums of average pooling.
"""
from .. import backend
from ..autograd import Function
from ._checks import check_flag, check_tensor
from ._window import kernel_offsets, pool_arguments

__all__ = ["max_pool2d", "avg_pool2d", "global_avg_pool2d"]


def _pooled_size(size, kernel, stride, padding, ceil_mode):
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1          # the last window would start inside the right padding
    return out


def _geometry(op, x, kernel_size, stride, padding, ceil_mode):
    """Validate the arguments; return kernel, stride, padding and output size."""
    check_tensor(op, "x", x, 4)
    kernel, stride, padding = pool_arguments(op, kernel_size, stride, padding)
    check_flag(op, "ceil_mode", ceil_mode)
    size = x.shape[2:]
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{op}: kernel_size {kernel} is larger than the padded input {padded} "
                         f"(input {tuple(size)} plus padding {padding} on each side)")
    out = tuple(_pooled_size(size[d], kernel[d], stride[d], padding[d], ceil_mode)
                for d in (0, 1))
    return kernel, stride, padding, out


class _Pool2d(Function):
    """What max and average pooling share: the geometry and the scatter of gradients."""

    def _keep_geometry(self, x, kernel, stride, padding, out):
        self.x_shape, self.kernel, self.stride, self.padding, self.out = (
            x.shape, kernel, stride, padding, out)
        return backend.get_array_module(x)

    def _offsets(self):
        return kernel_offsets(self.x_shape[2:], self.kernel, self.stride, self.padding, self.out)

    def _scatter(self, gy, contribution):
        """dx from ``contribution(u, v)``, the (N, C, OH, OW) gradient reaching offset (u, v).

        Windows overlap when the stride is smaller than the kernel; the
        slice-adds then accumulate every window's share in the same pixel.
        """
        gx = backend.get_array_module(gy).zeros(self.x_shape, dtype=gy.dtype)
        for u, v, source, target in self._offsets():
            gx[source] += contribution(u, v, target)
        return gx


class MaxPool2d(_Pool2d):
    """y[n, c, i, j] = max of x over window (i, j), padding counting as -inf.

    dx: each window sends dy[n, c, i, j] to the position of its *first*
    maximum (row-major order inside the window), so ties never duplicate a
    gradient and dx sums to dy; overlapping windows add up in a shared pixel.
    """

    def forward(self, x, kernel, stride, padding, out):
        xp = self._keep_geometry(x, kernel, stride, padding, out)
        shape = x.shape[:2] + out
        best = xp.full(shape, float("-inf"), dtype=x.dtype)
        kw = self.kernel[1]
        index = xp.uint8 if self.kernel[0] * kw <= 256 else xp.int32
        # Start each window's winner at its first real pixel (kernel row
        # max(ph - i*sh, 0), likewise the column), so that a window of -inf
        # values still routes its gradient to a pixel of the input.
        first = [xp.maximum(self.padding[d] - xp.arange(self.out[d]) * self.stride[d], 0)
                 for d in (0, 1)]
        winner = xp.empty(shape, dtype=index)
        winner[...] = first[0][:, None] * kw + first[1][None, :]
        for u, v, source, target in self._offsets():
            # One strided read of the window, then two fast contiguous passes.
            window, current = xp.ascontiguousarray(x[source]), best[target]
            better = window > current         # strict: an equal later value loses the tie
            xp.maximum(current, window, out=current)
            # Offsets come in increasing order, so the index of the latest strict
            # improvement is the largest one: max() updates the winner cheaply.
            xp.maximum(winner[target], better * index(u * kw + v), out=winner[target])
        self.winner = winner
        return best

    def backward(self, gy):
        kw = self.kernel[1]
        return self._scatter(gy, lambda u, v, t: gy[t] * (self.winner[t] == u * kw + v))


class AvgPool2d(_Pool2d):
    """y[n, c, i, j] = (sum of x over window (i, j)) / d[i, j];  dx = dy / d summed back.

    Zero padding counts in the divisor (PyTorch's ``count_include_pad=True``),
    but the part of a ceil_mode window beyond the padded input does not:
    d[i, j] = (min(i*sh - ph + KH, H + ph) - (i*sh - ph)) * (same for columns),
    which is KH*KW for every window that lies inside the padded input.
    """

    def forward(self, x, kernel, stride, padding, out):
        xp = self._keep_geometry(x, kernel, stride, padding, out)
        total = xp.zeros(x.shape[:2] + out, dtype=x.dtype)
        for u, v, source, target in self._offsets():
            total[target] += x[source]
        self.divisor = self._divisor(xp, x.dtype)
        return total / self.divisor

    def _divisor(self, xp, dtype):
        counts = []
        for d in (0, 1):
            size, k, s, p = self.x_shape[2 + d], self.kernel[d], self.stride[d], self.padding[d]
            start = xp.arange(self.out[d]) * s - p
            counts.append(xp.minimum(start + k, size + p) - start)
        return (counts[0][:, None] * counts[1][None, :]).astype(dtype)

    def backward(self, gy):
        share = gy / self.divisor
        return self._scatter(gy, lambda u, v, t: share[t])


class GlobalAvgPool2d(Function):
    """y[n, c] = mean of x[n, c] over H, W;  dx[n, c, h, w] = dy[n, c] / (H * W)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        h, w = self.x_shape[2:]
        return xp.broadcast_to((gy / (h * w))[:, :, None, None], self.x_shape)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over (KH, KW) windows of NCHW ``x``; padding is -inf (never wins).

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` are an
    int or an (h, w) pair; padding may be at most ``kernel_size // 2``.  See the
    module docstring for the output size with ``ceil_mode``.  The gradient goes
    to the first maximum (row-major) of each window.
    """
    geometry = _geometry("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return MaxPool2d.apply(x, *geometry)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Mean over (KH, KW) windows of NCHW ``x``, with zero padding.

    Arguments as for :func:`max_pool2d`.  The divisor is the window size
    KH*KW, zero padding included (PyTorch's default ``count_include_pad=True``);
    a ceil_mode window that runs past the padded input is divided by the size
    of its part inside the padded input, as PyTorch does:
    ``(min(hstart + KH, H + ph) - hstart) * (min(wstart + KW, W + pw) - wstart)``
    with ``hstart = i*sh - ph``, ``wstart = j*sw - pw``.
    """
    geometry = _geometry("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d.apply(x, *geometry)


def global_avg_pool2d(x):
    """Mean of NCHW ``x`` over H and W: (N, C, H, W) -> (N, C), as in NIN's classifier."""
    check_tensor("global_avg_pool2d", "x", x, 4)
    return GlobalAvgPool2d.apply(x)
