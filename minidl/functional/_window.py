"""Window geometry shared by convolution and pooling.

A kernel of (KH, KW) pixels slides with stride (sh, sw) over an NCHW input
padded by (ph, pw) on each side (a convolution may pad the bottom and right
by one more); with dilation (dh, dw) its taps lie dh rows and dw columns
apart.  These helpers turn the arguments into pairs and list for each kernel
offset which input pixels it reads, so that im2col, col2im and pooling are a
loop over the KH*KW offsets of whole-array operations, none of which needs a
padded copy of the input.
"""
from ._checks import check_number, is_integer

__all__ = ["as_pair", "check_pair", "pool_arguments", "conv_padding", "check_groups",
           "kernel_offsets"]


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


def conv_padding(op, padding, kernel, stride, dilation):
    """A convolution's zero padding as two pairs: (top, left) before, (bottom, right) after.

    An int or an (h, w) pair pads both sides alike; ``"valid"`` pads nothing;
    ``"same"`` pads ``dilation * (kernel - 1)`` in total, so that the output
    keeps the input's size, and puts the odd pixel of an odd total after (at
    the bottom or right), as PyTorch does; it needs stride 1, which alone
    keeps the size.
    """
    if not isinstance(padding, str):
        pair = check_pair(op, "padding", padding, 0)
        return pair, pair
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be 'same', 'valid', an int or a pair of ints "
                         f"(h, w), got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got stride "
                         f"{stride}; give the padding as numbers instead")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    before = (total[0] // 2, total[1] // 2)
    return before, (total[0] - before[0], total[1] - before[1])


def check_groups(op, groups, *channels):
    """``groups`` as an int >= 1 dividing each channel count, given as (name, count) pairs."""
    groups = check_number(op, "groups", groups, integer=True, low=1)
    for name, count in channels:
        if count % groups:
            raise ValueError(f"{op}: {name} must be divisible by groups={groups}, got {count}")
    return groups


def _offset_ranges(size, kernel, stride, padding, out, dilation):
    """Along one axis, for each kernel offset u: (input slice, output slice), or None.

    Offset u of window i reads input position ``i * stride - padding + u * dilation``.
    The windows for which that position exists (is not padding) are
    ``first <= i <= last``; they read every ``stride``-th position from
    ``first * stride - padding + u * dilation`` on.
    """
    ranges = []
    for u in range(kernel):
        tap = u * dilation
        first = max(0, -((tap - padding) // stride))            # ceil((padding - tap) / stride)
        last = min(out - 1, (size - 1 + padding - tap) // stride)
        if first > last:
            ranges.append(None)
            continue
        start = first * stride - padding + tap
        ranges.append((slice(start, start + (last - first) * stride + 1, stride),
                       slice(first, last + 1)))
    return ranges


def kernel_offsets(size, kernel, stride, padding, out, dilation=(1, 1)):
    """For each kernel offset (u, v), row-major: ``(u, v, source, target)``.

    ``x[source]`` is the grid of input pixels that offset (u, v) of the
    windows ``y[target]`` reads (an index into the last two axes of any
    (..., H, W), resp. (..., OH, OW) array).  Padding is never stored: positions in it are simply left
    out, so a loop over the KH*KW offsets visits every real pixel of every
    window once, each step a whole-array operation.  ``padding`` is the
    (top, left) one: the bottom and right padding only shape ``out``.
    """
    rows = _offset_ranges(size[0], kernel[0], stride[0], padding[0], out[0], dilation[0])
    cols = _offset_ranges(size[1], kernel[1], stride[1], padding[1], out[1], dilation[1])
    for u, row in enumerate(rows):
        for v, col in enumerate(cols):
            if row is not None and col is not None:
                yield u, v, (Ellipsis, row[0], col[0]), (Ellipsis, row[1], col[1])
