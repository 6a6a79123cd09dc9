"""Window geometry shared by convolution and pooling.

A kernel of (KH, KW) pixels slides with stride (sh, sw) over an NCHW input
padded by (ph, pw) on each side.  These helpers turn the arguments into
pairs, pad, view every window without copying, and list for each kernel
offset which input pixels it reads, so that both im2col and pooling are a
loop over the KH*KW offsets of whole-array operations.
"""
from .. import backend
from ._checks import is_integer

__all__ = ["as_pair", "check_pair", "pool_arguments", "pad", "windows", "kernel_offsets"]


def as_pair(op, name, value):
    """An int or a pair of ints as an (h, w) tuple of Python ints."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(is_integer(v) for v in items):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints (h, w), got {value!r}")
    return int(items[0]), int(items[1])


def check_pair(op, name, value, minimum):
    """``value`` as an (h, w) pair of ints, each at least ``minimum`` (0 or 1), else an error."""
    pair = as_pair(op, name, value)
    if min(pair) < minimum:
        requirement = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {requirement}, got {pair}")
    return pair


def pool_arguments(op, kernel_size, stride, padding):
    """Kernel, stride (default: the kernel) and padding as pairs, checked as PyTorch does.

    Padding may be at most half the kernel, so that no window lies wholly in
    the padding.  The nn pooling layers run the same check at construction.
    """
    kernel = check_pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else check_pair(op, "stride", stride, 1)
    padding = check_pair(op, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be between 0 and half the kernel size "
                         f"(kernel_size // 2 = {(kernel[0] // 2, kernel[1] // 2)}), got {padding}")
    return kernel, stride, padding


def pad(x, padding):
    """``x`` (N, C, H, W) with ``padding = (ph, pw)`` rows and columns of zeros on each side.

    Returns ``x`` itself when there is nothing to pad (no copy).
    """
    if padding == (0, 0):
        return x
    xp = backend.get_array_module(x)
    (ph, pw), (n, c, h, w) = padding, x.shape
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def windows(xpad, kernel, stride, out):
    """View (N, C, OH, OW, KH, KW) of every window of ``xpad``; no data is copied.

    Window (i, j) starts at row ``i * sh`` and column ``j * sw``; stepping along
    an output axis jumps ``s`` pixels, stepping along a kernel axis one pixel.
    """
    xp = backend.get_array_module(xpad)
    sn, sc, sy, sx = xpad.strides
    shape = xpad.shape[:2] + tuple(out) + tuple(kernel)
    strides = (sn, sc, sy * stride[0], sx * stride[1], sy, sx)
    return xp.lib.stride_tricks.as_strided(xpad, shape, strides)


def _offset_ranges(size, kernel, stride, padding, out, dilation=1):
    """Along one axis, for each kernel offset u: (input slice, output slice), or None.

    Offset u of window i reads input position ``i * stride - padding + u * dilation``.
    The windows for which that position exists (is not padding) are
    ``first <= i <= last``; they read every ``stride``-th position from
    ``first * stride - padding + u * dilation`` on.
    """
    ranges = []
    for u in range(kernel):
        reach = u * dilation                                  # how far offset u lies from the start
        first = max(0, -((reach - padding) // stride))        # ceil((padding - reach) / stride)
        last = min(out - 1, (size - 1 + padding - reach) // stride)
        if first > last:
            ranges.append(None)
            continue
        start = first * stride - padding + reach
        ranges.append((slice(start, start + (last - first) * stride + 1, stride),
                       slice(first, last + 1)))
    return ranges


def kernel_offsets(size, kernel, stride, padding, out, dilation=(1, 1)):
    """For each kernel offset (u, v), row-major: ``(u, v, source, target)``.

    ``x[source]`` is the grid of input pixels that offset (u, v) of the
    windows ``y[target]`` reads (an index into (N, C, H, W), resp. (N, C, OH,
    OW) arrays).  Padding is never stored: positions in it are simply left
    out, so a loop over the KH*KW offsets visits every real pixel of every
    window once, each step a whole-array operation.  With ``dilation`` (dh, dw)
    offset (u, v) lies u*dh rows and v*dw columns from the window's corner.
    """
    rows = _offset_ranges(size[0], kernel[0], stride[0], padding[0], out[0], dilation[0])
    cols = _offset_ranges(size[1], kernel[1], stride[1], padding[1], out[1], dilation[1])
    for u, row in enumerate(rows):
        for v, col in enumerate(cols):
            if row is not None and col is not None:
                yield u, v, (Ellipsis, row[0], col[0]), (Ellipsis, row[1], col[1])
