"""Data parallelism: one replica of the model per process, gradients averaged after backward.

Every process runs forward and backward on its own shard of the global
batch; averaging the gradients over the p processes then gives every
replica the gradient of the mean loss over the whole batch (the mean of
p equal-sized shard means), so one optimizer step keeps the replicas equal.

Gradients travel in flat *buckets* of about ``bucket_bytes`` (one all-reduce
each, not one per parameter: a call costs a latency however small it is).
Buckets are filled from the last parameter to the first, the order in which
backward produces gradients, so :class:`DataParallel` can start a bucket's
all-reduce as soon as its last gradient has arrived.
"""
import functools
import itertools

from .. import backend
from ..nn.module import Module
from .comm import get_communicator

__all__ = ["BUCKET_BYTES", "gradient_buckets", "all_reduce_gradients", "broadcast_parameters",
           "DataParallel"]

BUCKET_BYTES = 4 * 2**20


def gradient_buckets(parameters, bucket_bytes=BUCKET_BYTES):
    """Lists of parameters, last first, each of one dtype and device, about ``bucket_bytes``.

    A bucket is closed once it holds ``bucket_bytes`` or more, so none is
    empty and a parameter larger than a bucket gets one of its own.
    """
    buckets, size, key = [], 0, None
    for p in reversed(list(parameters)):
        if not buckets or size >= bucket_bytes or (p.dtype, p.device) != key:
            buckets.append([])
            size, key = 0, (p.dtype, p.device)
        buckets[-1].append(p)
        size += p.data.nbytes
    return buckets


def _average_bucket(bucket, communicator):
    """All-reduce one bucket's gradients as one flat array; each ``.grad`` becomes a view of it.

    A parameter without a gradient counts as a zero gradient (and gets the average).
    """
    first = bucket[0].data
    xp = backend.get_array_module(first)
    with backend.device_context(first):
        flat = xp.concatenate([(p.grad if p.grad is not None else xp.zeros_like(p.data))
                               .reshape(-1) for p in bucket])
        communicator.all_reduce(flat)
        # the same division of the same sum on every rank: bit-identical results
        flat /= communicator.size
    offset = 0
    for p in bucket:
        p.grad = flat[offset:offset + p.numel()].reshape(p.shape)
        offset += p.numel()


def all_reduce_gradients(module, bucket_bytes=BUCKET_BYTES, communicator=None):
    """Average the ``.grad`` of every trainable parameter of ``module`` over all processes.

    One all-reduce per bucket of about ``bucket_bytes`` (see :func:`gradient_buckets`);
    afterwards every rank holds the same bits.  Nothing happens in a single process.
    """
    communicator = communicator or get_communicator()
    if communicator.size == 1:
        return
    for bucket in gradient_buckets([p for p in module.parameters() if p.requires_grad],
                                   bucket_bytes):
        _average_bucket(bucket, communicator)


def broadcast_parameters(module, root=0, communicator=None):
    """Copy every parameter and buffer of ``module`` from process ``root`` to all the others."""
    communicator = communicator or get_communicator()
    if communicator.size == 1:
        return
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        communicator.broadcast(tensor.data, root)


class DataParallel(Module):
    """Wrap ``module`` so that ``backward()`` leaves gradients averaged over all processes.

    Like PyTorch's ``DistributedDataParallel``: construction broadcasts the
    parameters and buffers of rank 0, so every replica starts equal; then
    ``model(x)``, ``loss.backward()``, ``optimizer.step()`` as in one process.
    During backward, a hook on every parameter notes its gradient; once a
    bucket's gradients are all there, the bucket is all-reduced, while
    backward continues (in this single-threaded engine the call blocks, but
    it is issued as early as DDP issues it).  Every trainable parameter must
    get a gradient in every backward; the next forward raises an error
    naming those that did not.

    Unlike PyTorch, ``state_dict()`` and ``load_state_dict()`` are the
    wrapped module's (no ``"module."`` prefix), so a checkpoint of a
    distributed run loads into the plain model.
    """

    def __init__(self, module, bucket_bytes=BUCKET_BYTES, communicator=None):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: module must be a minidl nn.Module, got "
                            f"{type(module).__name__}")
        self.module = module
        self.communicator = communicator or get_communicator()
        broadcast_parameters(module, communicator=self.communicator)
        trainable = [p for p in module.parameters() if p.requires_grad]
        self.buckets = gradient_buckets(trainable, bucket_bytes)
        self._arrived = [set() for _ in self.buckets]
        if self.communicator.size > 1:
            for index, bucket in enumerate(self.buckets):
                for p in bucket:
                    p.register_post_accumulate_grad_hook(functools.partial(self._arrive, index))

    def _arrive(self, index, param):
        arrived = self._arrived[index]
        arrived.add(id(param))
        if len(arrived) == len(self.buckets[index]):
            _average_bucket(self.buckets[index], self.communicator)
            arrived.clear()

    def forward(self, *args, **kwargs):
        waiting = [p for bucket, arrived in zip(self.buckets, self._arrived) if arrived
                   for p in bucket if id(p) not in arrived]
        if waiting:
            names = {id(p): name for name, p in self.module.named_parameters()}
            raise RuntimeError("DataParallel: the last backward() gave no gradient to "
                               + ", ".join(names[id(p)] for p in waiting)
                               + "; their buckets were not averaged. Every trainable parameter "
                               "must take part in the loss (or set requires_grad=False)")
        return self.module(*args, **kwargs)

    def state_dict(self):
        return self.module.state_dict()

    def _checked_state(self, state_dict, strict=True):
        return self.module._checked_state(state_dict, strict)    # what load_state_dict copies
