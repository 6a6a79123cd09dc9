"""``SyncBatchNorm``: batch normalization with statistics over the global batch of all processes.

With per-process statistics, p processes of batch b normalize with p
different, noisier estimates than one process of batch p*b, and so train a
different model.  ``SyncBatchNorm`` makes them equal: the forward pass sums
the per-channel statistics over all processes, the backward pass sums the
two per-channel sums the closed-form gradient needs.  ``docs/distributed.md``
derives why those two, and nothing else, must travel.
"""
from .. import backend
from ..autograd import Function
from ..distributed.comm import get_communicator
from ..functional._batch_norm import (channel_dot, channel_sum, input_grad, per_channel,
                                      scale_and_shift, update_running)
from ..functional._checks import check_like
from .layers import BatchNorm1d, BatchNorm2d

__all__ = ["SyncBatchNorm"]


class SyncBatchNormTrain(Function):
    """Batch normalization over the union of every process's batch (training mode).

    Per channel, with M = the sum over processes of their m values:

        forward, all-reduce 1:  [sum(x), m]        -> mu = sum(x) / M
        forward, all-reduce 2:  sum((x - mu)**2)   -> var = sum((x - mu)**2) / M
        xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta.

    This is the two-pass formula of ``batch_norm`` with both sums taken over
    all processes: the squares are of values already shifted by the global
    mean, so no digits cancel, however far apart the shards' means are (the
    one-pass sum(x**2) / M - mu**2 loses them all when |mu| >> std).  Chan's
    combination of per-process (m, mean, M2) would need one collective, but
    an all-gather rather than a sum; the second all-reduce costs only the
    latency of C numbers.

    Backward, with the two global sums (one all-reduce of 2C numbers)

        dbeta = sum over all processes of dy,   dgamma = sum of dy * xhat,
        dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma),

    which is the gradient of the *sum* of all processes' losses.  The
    gradients returned for gamma and beta are this process's own sums:
    averaging parameter gradients over processes (``DataParallel``) then
    yields the gradient of the mean loss for every parameter alike.
    The count M stays a device scalar: no host synchronization.
    """

    def forward(self, x, gamma, beta, running_mean, running_var, momentum, eps, communicator):
        xp = backend.get_array_module(x)
        channels, ndim = x.shape[1], x.ndim
        totals = xp.empty(channels + 1, dtype=x.dtype)
        totals[:channels] = channel_sum(x)
        totals[channels] = x.size // channels
        communicator.all_reduce(totals)
        m = totals[channels]
        mean = totals[:channels] / m
        xhat = x - per_channel(mean, ndim)
        squares = communicator.all_reduce(channel_dot(xhat, xhat))
        var = squares / m
        invstd = 1 / xp.sqrt(var + eps)
        xhat *= per_channel(invstd, ndim)
        update_running(running_mean, running_var, mean, var, m, momentum)
        self.xhat, self.invstd, self.m, self.communicator = xhat, invstd, m, communicator
        self.gamma, self.has_beta = gamma, beta is not None
        return scale_and_shift(xhat, gamma, beta)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        dbeta = channel_sum(gy)
        dgamma = channel_dot(gy, self.xhat)
        grads = [None]
        if self.needs_input_grad[0]:
            sums = self.communicator.all_reduce(xp.concatenate([dbeta, dgamma]))
            channels = len(dbeta)
            scale = self.invstd if self.gamma is None else self.gamma * self.invstd
            grads[0] = input_grad(gy, self.xhat, scale, sums[:channels], sums[channels:], self.m)
        if self.gamma is not None:
            grads.append(dgamma)
        if self.has_beta:
            grads.append(dbeta)
        return tuple(grads)


class SyncBatchNorm(BatchNorm2d):
    """Batch norm of (N, C), (N, C, L) or (N, C, H, W) input with statistics over all processes.

    The same parameters, buffers and arguments as ``BatchNorm2d`` (it is one,
    so code that looks for batch-norm layers finds it).  Training normalizes
    with the mean and biased variance of the global batch (every process's
    batch together, see :class:`SyncBatchNormTrain`) and updates the running
    statistics with the global unbiased variance, identically on every
    process.  Evaluation uses the running statistics and communicates
    nothing.  ``communicator`` defaults to ``minidl.distributed``'s current one
    at each forward; in a single process it is ``BatchNorm2d`` exactly.
    Training needs more than one value per channel on every process.
    """

    input_ndim = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype="float32", communicator=None, *, bias=True):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, dtype=dtype, bias=bias)
        self.communicator = communicator

    def active_communicator(self):
        """The communicator given at construction, else minidl.distributed's current one."""
        return self.communicator or get_communicator()

    def _batch_norm(self, x, running_mean, running_var, training, momentum):
        communicator = self.active_communicator()
        if not (training and self.training) or communicator.size == 1:
            return super()._batch_norm(x, running_mean, running_var, training, momentum)
        if self.weight is not None:
            check_like(type(self).__name__, "weight", self.weight, x, "input")
        if x.numel() // x.shape[1] <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel on each "
                             f"process when training, got input size {x.shape}")
        buffers = [None if b is None else b.data for b in (running_mean, running_var)]
        return SyncBatchNormTrain.apply(x, self.weight, self.bias, *buffers, momentum, self.eps,
                                        communicator)

    @classmethod
    def convert(cls, module, communicator=None):
        """Replace every ``BatchNorm1d`` / ``BatchNorm2d`` in ``module`` by a ``SyncBatchNorm``.

        The new layer takes over the old one's parameters and buffers (the
        same tensors) and its train/eval mode.  Returns ``module`` (or the
        new layer when ``module`` itself is a batch norm), as in PyTorch.
        """
        if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, cls):
            # a layer with neither parameters nor buffers holds no dtype: any will do
            dtype = next((t.dtype for t in (module.weight, module.running_mean)
                          if t is not None), "float32")
            sync = cls(module.num_features, eps=module.eps, momentum=module.momentum,
                       affine=module.affine, track_running_stats=module.track_running_stats,
                       dtype=dtype, communicator=communicator, bias=module.bias is not None)
            for name in ("weight", "bias", "running_mean", "running_var",
                         "num_batches_tracked"):
                setattr(sync, name, getattr(module, name))
            return sync.train(module.training)
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert(child, communicator))
        return module
