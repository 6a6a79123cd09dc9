"""Batch normalization (Ioffe & Szegedy, 2015) with a closed-form backward pass.

Statistics are per feature over N for (N, C) input, over N and L for (N, C, L)
and per channel over N, H, W for (N, C, H, W) input: a channel's sums run
over every axis but 1, in whatever memory layout the input has (the helpers
of ``_batch_norm.py``, shared with ``nn.SyncBatchNorm``).  The derivation of
the backward pass is in ``docs/batch_norm.md``.
"""
import math

from .. import backend
from ..autograd import Function, Tensor
from ._batch_norm import (channel_blocks, channel_dot, channel_sum, input_grad,
                          per_channel, scale_and_shift, update_running)
from ._checks import check_flag, check_like, check_number, check_tensor

__all__ = ["batch_norm"]


class BatchNormTrain(Function):
    """Batch normalization with the batch's own statistics (training mode).

    Per channel, over its m values (N for (N, C), N*L for (N, C, L), N*H*W for
    (N, C, H, W)):

        mu = sum(x) / m,   var = sum((x - mu)**2) / m   (biased),
        invstd = 1 / sqrt(var + eps),   xhat = (x - mu) * invstd,
        y = gamma * xhat + beta.

    Backward, in closed form (docs/batch_norm.md derives it):

        dbeta = sum(dy),   dgamma = sum(dy * xhat),
        dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma).

    The two channel sums are computed once and serve dgamma, dbeta and dx.
    Each channel is independent, so both passes run over blocks of channels
    (``channel_blocks``): the several passes over a block then stay in cache.
    ``running_mean`` / ``running_var`` (arrays or None) are updated in place:
    running = (1 - momentum) * running + momentum * batch statistic, the
    variance taken unbiased, var * m / (m - 1).  ``gamma`` / ``beta`` may be
    None, meaning a scale of 1 / a shift of 0 (and no gradient for them).
    """

    def forward(self, x, gamma, beta, running_mean, running_var, momentum, eps):
        xp = backend.get_array_module(x)
        m = x.size // x.shape[1]
        xhat, y = xp.empty_like(x), xp.empty_like(x)          # xhat: the one saved array
        mean, var, invstd = xp.empty((3, x.shape[1]), dtype=x.dtype)
        for c in channel_blocks(x):                # each pass then re-reads cache, not memory
            xc, xhatc = x[:, c], xhat[:, c]
            mean[c] = channel_sum(xc) / m
            xp.subtract(xc, per_channel(mean[c], x.ndim), out=xhatc)
            var[c] = channel_dot(xhatc, xhatc) / m
            invstd[c] = 1 / xp.sqrt(var[c] + eps)
            xhatc *= per_channel(invstd[c], x.ndim)
            scale_and_shift(xhatc, _block(gamma, c), _block(beta, c), out=y[:, c])
        update_running(running_mean, running_var, mean, var, m, momentum)
        self.xhat, self.invstd, self.gamma, self.has_beta = xhat, invstd, gamma, beta is not None
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        xhat = self.xhat
        m = xhat.size // xhat.shape[1]
        dbeta, dgamma = xp.empty((2, xhat.shape[1]), dtype=xhat.dtype)
        gx = xp.empty_like(xhat) if self.needs_input_grad[0] else None
        scale = self.invstd if self.gamma is None else self.gamma * self.invstd
        for c in channel_blocks(xhat):
            gyc, xhatc = gy[:, c], xhat[:, c]
            dbeta[c] = channel_sum(gyc)
            dgamma[c] = channel_dot(gyc, xhatc)
            if gx is not None:
                input_grad(gyc, xhatc, scale[c], dbeta[c], dgamma[c], m, out=gx[:, c])
        grads = [gx]
        if self.gamma is not None:
            grads.append(dgamma)
        if self.has_beta:
            grads.append(dbeta)
        return tuple(grads)


def _block(vector, channels):
    """``vector[channels]``, or None for an absent gamma / beta."""
    return None if vector is None else vector[channels]


class BatchNormEval(Function):
    """Batch normalization with fixed (running) statistics (evaluation mode).

    A per-channel affine map: with invstd = 1 / sqrt(running_var + eps),

        y = gamma * (x - running_mean) * invstd + beta = a * x + b,
        a = gamma * invstd,   b = beta - running_mean * a;

        dx = a * dy,   dgamma = sum(dy * xhat),   dbeta = sum(dy),
        xhat = (x - running_mean) * invstd.

    The statistics are copied, so a later update of the running buffers does
    not change this op's backward.
    """

    def forward(self, x, gamma, beta, running_mean, running_var, eps):
        xp = backend.get_array_module(x)
        invstd = 1 / xp.sqrt(running_var + eps)
        scale = invstd if gamma is None else gamma * invstd
        shift = -running_mean * scale if beta is None else beta - running_mean * scale
        self.x, self.mean, self.invstd, self.scale = x, running_mean.copy(), invstd, scale
        self.gamma, self.has_beta = gamma, beta is not None
        y = x * per_channel(scale, x.ndim)
        y += per_channel(shift, x.ndim)
        return y

    def backward(self, gy):
        ndim = gy.ndim
        grads = [gy * per_channel(self.scale, ndim) if self.needs_input_grad[0] else None]
        if self.gamma is not None:
            xhat = (self.x - per_channel(self.mean, ndim)) * per_channel(self.invstd, ndim)
            grads.append(channel_dot(gy, xhat))
        if self.has_beta:
            grads.append(channel_sum(gy))
        return tuple(grads)


def _check_channel_vector(name, value, x, channels):
    if not isinstance(value, Tensor):
        raise TypeError(f"batch_norm: {name} must be a minidl Tensor of shape ({channels},) or "
                        f"None, got {type(value).__name__}")
    if value.shape != (channels,):
        raise ValueError(f"batch_norm: {name} must have shape ({channels},) for x of shape "
                         f"{x.shape} ({channels} channels), got shape {value.shape}")
    check_like("batch_norm", name, value, x)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True,
               momentum=0.1, eps=1e-5):
    """Batch normalization of ``x`` (N, C), (N, C, L) or (N, C, H, W), per channel (axis 1).

    ``gamma`` and ``beta`` are (C,) tensors, or None for a scale of 1 / a shift
    of 0.  ``running_mean`` and ``running_var`` are (C,) tensors (buffers, no
    gradient), both or neither.  In training mode the batch statistics
    normalize ``x`` and, when given, the running buffers are updated in place
    (their ``.data``): ``running = (1 - momentum) * running + momentum * stat``,
    with the unbiased batch variance; this happens under ``no_grad`` too, as in
    PyTorch.  In evaluation mode (``training=False``) the running statistics
    normalize ``x`` and are required.  Training needs more than one value per
    channel (N * L > 1, N * H * W > 1).
    """
    check_tensor("batch_norm", "x", x, (2, 3, 4))
    channels = x.shape[1]
    buffers = {"gamma": gamma, "beta": beta, "running_mean": running_mean,
               "running_var": running_var}
    for name, value in buffers.items():
        if value is not None:
            _check_channel_vector(name, value, x, channels)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    training = check_flag("batch_norm", "training", training)
    momentum = check_number("batch_norm", "momentum", momentum, low=0, high=1)
    eps = check_number("batch_norm", "eps", eps, low=0, low_open=True)
    if training:
        if x.shape[0] * math.prod(x.shape[2:]) <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input size {x.shape}")
        mean_data = None if running_mean is None else running_mean.data
        var_data = None if running_var is None else running_var.data
        return BatchNormTrain.apply(x, gamma, beta, mean_data, var_data, momentum, eps)
    if running_mean is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and "
                         "running_var")
    return BatchNormEval.apply(x, gamma, beta, running_mean.data, running_var.data, eps)
