"""The batch-norm arithmetic shared by ``normalization.batch_norm`` and ``nn.SyncBatchNorm``.

The two differ only in where a channel's sums come from (one process, or
all-reduced over all of them); normalizing, the running-statistics update,
the affine map and the closed-form input gradient are these functions.
Every layout, (N, C), (N, C, L) and (N, C, H, W), is summed as an (R, C, S)
array (a view, or a copy where the memory allows none), so a channel's m =
R*S values are summed over axes 0 and 2: R = 1 for the channel-major memory
that convolutions leave, else R = N.
"""
from .. import backend
from ._axes import memory_order

__all__ = ["BLOCK_BYTES", "channel_blocks", "channel_dot", "channel_sum",
           "per_channel", "update_running", "scale_and_shift", "input_grad"]

# About the size of a core's L2 cache: the passes of one block of channels then
# re-read cache instead of main memory (1 MiB blocks made forward + backward of a
# (32, 800, 32, 32) batch norm 1.25x faster than one block, 1.34x at batch 128).
BLOCK_BYTES = 2 ** 20


def channel_blocks(a):
    """Slices of axis 1 of ``a`` covering about BLOCK_BYTES each (whole channels).

    Batch norm treats each channel on its own, so it may run block by block
    when a block is one contiguous piece of memory: when ``a`` is channel-major,
    as convolutions leave their output.  Otherwise (a C-ordered (N, C, ...)
    array, whose block would be N scattered pieces) and on a GPU (where every
    pass is then a single kernel) one block covers all channels.
    """
    channels = a.shape[1]
    if backend.device_of(a) != "cpu" or _channel_rows(a) is None:
        return [slice(0, channels)]
    step = max(1, BLOCK_BYTES // max(1, a.size // channels * a.itemsize))
    return [slice(start, start + step) for start in range(0, channels, step)]


def _channel_rows(*arrays):
    """The arrays (of one shape) as (C, m) views, channel c in row c; None if any needs a copy.

    That needs channel-major memory, each channel one contiguous run, with the
    other axes in the same order in every array (a convolution's (C, H, W, N)
    output, or a (C, N, ...) array): then position k of row c names the same
    element in all of them.
    """
    others = [d for d in memory_order(arrays[0]) if d != 1]
    rows = [a.transpose(1, *others) for a in arrays]
    if not all(r.flags.c_contiguous for r in rows):
        return None
    return [r.reshape(r.shape[0], -1) for r in rows]


def _grouped(*arrays):
    """The arrays (of one shape) as (R, C, S) arrays, grouped alike; channel c is [:, c, :].

    Channel-major memory gives views with R = 1 and S = m, one contiguous row
    per channel, whatever the batch size; other layouts give (N, C, S), S = 1,
    L or H*W: views with rows of S contiguous values when the array is
    C-ordered, else copies (a broadcast dy, say).
    """
    rows = _channel_rows(*arrays)
    if rows is not None:
        return [r[None] for r in rows]
    return [a.reshape(a.shape[0], a.shape[1], -1) for a in arrays]


def channel_dot(a, b):
    """sum of a * b over every axis but 1, for two arrays of one shape: shape (C,).

    A batched (1, S) @ (S, 1) matrix product over the (R, C, S) views computes
    every (r, c) dot product with BLAS: no full-size temporary, and blocked
    float32 accumulation (more accurate than one running sum over all S terms).
    """
    a, b = _grouped(a, b)
    return (a[:, :, None, :] @ b[:, :, :, None]).sum(axis=(0, 2, 3))


def channel_sum(a):
    """sum of ``a`` over every axis but 1: shape (C,); a matrix-vector product over (R, C, S)."""
    xp = backend.get_array_module(a)
    (a,) = _grouped(a)
    return (a @ xp.ones(a.shape[2], dtype=a.dtype)).sum(axis=0)


def per_channel(v, ndim):
    """A (C,) vector shaped to broadcast along axis 1 of an ndim-D array."""
    return v.reshape(v.shape + (1,) * (ndim - 2))


def update_running(running_mean, running_var, mean, var, m, momentum):
    """running = (1 - momentum) * running + momentum * stat, in place; var taken unbiased.

    ``var`` is the biased variance of m values; the running one gets var * m / (m - 1).
    Nothing happens when the buffers are None.
    """
    if running_mean is None:
        return
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += (momentum * m / (m - 1)) * var


def scale_and_shift(xhat, gamma, beta, out=None):
    """y = gamma * xhat + beta into ``out``, or a fresh array (gamma / beta None: 1 / 0)."""
    xp = backend.get_array_module(xhat)
    y = xp.empty_like(xhat) if out is None else out
    if gamma is not None:
        xp.multiply(xhat, per_channel(gamma, xhat.ndim), out=y)
    else:
        y[...] = xhat
    if beta is not None:
        y += per_channel(beta, xhat.ndim)
    return y


def input_grad(gy, xhat, scale, dbeta, dgamma, m, out=None):
    """dx = scale * (dy - dbeta / m - xhat * dgamma / m), scale = gamma * invstd.

    Built in place in ``out`` (or one fresh array): each full-size temporary
    would cost a pass over memory.  ``dbeta`` and ``dgamma`` are the channel
    sums over all m values the statistics came from.
    """
    xp = backend.get_array_module(gy)
    ndim = gy.ndim
    gx = xp.empty_like(xhat) if out is None else out
    xp.multiply(xhat, per_channel(dgamma / m, ndim), out=gx)
    gx += per_channel(dbeta / m, ndim)
    xp.subtract(gy, gx, out=gx)
    gx *= per_channel(scale, ndim)
    return gx
