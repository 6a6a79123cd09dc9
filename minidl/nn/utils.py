"""Gradient clipping, as ``torch.nn.utils``, and precise batch-norm statistics.

``clip_grad_norm_`` and ``clip_grad_value_`` change the ``.grad`` arrays in
place and skip parameters without one.  Nothing is read back to the host (no
GPU sync) unless ``error_if_nonfinite`` asks for a check.

``update_bn_stats`` re-estimates every batch norm's running statistics with
the model's current weights ("precise BN", docs/batch_norm.md).
"""
import itertools
import math

import numpy

from .. import backend
from ..autograd import Tensor, no_grad
from ..functional._batch_norm import channel_dot, channel_sum, per_channel
from ..functional._checks import check_flag, check_number
from .layers import BatchNorm1d, BatchNorm2d
from .sync_batchnorm import SyncBatchNorm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "update_bn_stats"]


def _grads(parameters):
    """The gradient arrays of a Tensor or an iterable of Tensors (None skipped)."""
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients joined into one
    vector (``inf``: the largest absolute value).  When it exceeds
    ``max_norm`` every gradient is multiplied by ``max_norm / (total + 1e-6)``.
    Returns the total norm before clipping, as a 0-d Tensor.  With
    ``error_if_nonfinite`` a NaN or infinite total norm raises RuntimeError
    (and the gradients are left alone).  The gradients must share one device.
    """
    op = "clip_grad_norm_"
    max_norm = check_number(op, "max_norm", max_norm, low=0)
    norm_type = check_number(op, "norm_type", norm_type, low=0, low_open=True)
    check_flag(op, "error_if_nonfinite", error_if_nonfinite)
    grads = _grads(parameters)
    if not grads:
        return Tensor(numpy.zeros((), dtype=numpy.float32))
    xp = backend.get_array_module(grads[0])
    with backend.device_context(grads[0]):
        if math.isinf(norm_type):
            total = xp.stack([abs(g).max() for g in grads]).max()
        else:
            total = xp.stack([(abs(g) ** norm_type).sum() for g in grads]).sum() ** (1 / norm_type)
        if error_if_nonfinite and not bool(xp.isfinite(total)):
            raise RuntimeError(f"{op}: the total norm of order {norm_type} of the gradients is "
                               f"{float(total)}, so they cannot be clipped; pass "
                               f"error_if_nonfinite=False to clip anyway")
        scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g *= scale.astype(g.dtype)
    return Tensor(total)


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient element into [-clip_value, clip_value], in place."""
    clip_value = check_number("clip_grad_value_", "clip_value", clip_value, low=0)
    for g in _grads(parameters):
        xp = backend.get_array_module(g)
        with backend.device_context(g):
            xp.clip(g, -clip_value, clip_value, out=g)


class _Moments:
    """Per-channel count, mean and sum of squared deviations of every batch seen so far.

    Batch b (m values per channel, mean mu_b, squared deviations S_b) merges
    into the totals (n, mu, S) by Chan, Golub & LeVeque's pairwise rule,

        d = mu_b - mu,   n' = n + m,   mu' = mu + d * m / n',
        S' = S + S_b + d**2 * n * m / n',

    which is exact and, unlike sum(x**2) - n * mu**2, loses no digits when
    the mean is large against the spread.
    """

    def __init__(self):
        self.count, self.mean, self.squares = 0, None, None

    def add(self, x):
        m = x.size // x.shape[1]
        mean = channel_sum(x) / m
        centered = x - per_channel(mean, x.ndim)
        squares = channel_dot(centered, centered)
        if self.count == 0:
            self.count, self.mean, self.squares = m, mean, squares
            return
        total = self.count + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / total)
        self.squares = self.squares + squares + delta * delta * (self.count * m / total)
        self.count = total

    def merge_over(self, communicator):
        """The totals of every process together, on every process: the same rule summed,
        n = sum n_p, mu = sum n_p mu_p / n, S = sum (S_p + n_p (mu_p - mu)**2)."""
        xp = backend.get_array_module(self.mean)
        channels = len(self.mean)
        # float64: a count of more than 2**24 values is not exact in float32
        totals = xp.empty(channels + 1, dtype=xp.float64)
        totals[:channels] = self.mean * self.count
        totals[channels] = self.count
        communicator.all_reduce(totals)
        mean = (totals[:channels] / totals[channels]).astype(self.mean.dtype)
        delta = self.mean - mean
        self.squares = communicator.all_reduce(self.squares + delta * delta * self.count)
        self.count, self.mean = int(totals[channels]), mean


def update_bn_stats(model, loader, batches=200):
    """Set every batch norm's running mean and variance to those of its input over ``batches``.

    "Precise BN": the running statistics of training are an exponential
    average over past batches, taken while the weights were still moving, so
    they lag the final weights.  This runs ``batches`` batches of ``loader``
    (the first items of each batch are the model's input; fewer batches when
    the loader has fewer) through ``model`` in training mode without a
    gradient, collects each batch-norm layer's input x, and sets, per channel
    over all M values of those batches,

        running_mean = sum(x) / M,   running_var = sum((x - running_mean)**2) / (M - 1),

    the exact mean and unbiased variance, every batch weighted by its size
    (not a momentum average); ``num_batches_tracked`` becomes the number of
    batches.  The weights are untouched; each layer's momentum and every
    module's training flag are restored.  Dropout is active during the
    passes, as in training.  Layers without running statistics
    (``track_running_stats=False``) are skipped, and a model without batch
    norm is left alone (the loader is not read).  Returns the number of
    batches used (0 without batch norm).  A ``SyncBatchNorm`` pools its
    statistics over all processes, so every process gets the same.
    """
    batches = check_number("update_bn_stats", "batches", batches, integer=True, low=1)
    norms = [m for m in model.modules()
             if isinstance(m, (BatchNorm1d, BatchNorm2d)) and m.running_mean is not None]
    if not norms:
        return 0
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else norms[0].running_mean.device
    moments = [_Moments() for _ in norms]
    handles = [m.register_forward_hook(lambda module, inputs, output, acc=acc:
                                       acc.add(inputs[0].data))
               for m, acc in zip(norms, moments)]
    modes = [(m, m.training) for m in model.modules()]
    momenta = [m.momentum for m in norms]
    seen = 0
    try:
        for m in norms:
            m.momentum = 0.0    # the layers' own update would blend in the old statistics
        model.train()
        with no_grad():
            for batch in itertools.islice(loader, batches):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x if isinstance(x, Tensor) else Tensor(backend.to_device(x, device)))
                seen += 1
    finally:
        for handle in handles:
            handle.remove()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for m, flag in modes:
            m.training = flag
    if not seen:
        raise ValueError("update_bn_stats: the loader yielded no batches")
    for m, acc in zip(norms, moments):
        if isinstance(m, SyncBatchNorm):
            acc.merge_over(m.active_communicator())
        m.running_mean.data[...] = acc.mean
        m.running_var.data[...] = acc.squares / (acc.count - 1)
        m.num_batches_tracked.data[...] = seen
    return seen
