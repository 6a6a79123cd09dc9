"""DistributedSampler: each process's shard of a data set, reshuffled the same way everywhere.

Every process draws the same permutation of all n indices, pads it by
wrapping around to a multiple of the number of processes p, and keeps every
p-th index starting at its rank.  So the shards are disjoint apart from the
padding, cover the data set, and have the same length: every process runs
the same number of steps, and none waits in a collective for one that has
already stopped.

The permutation is the one a single-process ``DataLoader(shuffle=True,
seed=seed)`` visits in that epoch (:func:`epoch_orders`).  So with a global
batch b (b / p per process) the p shards of global step j together hold
exactly the images of step j of the single-process run: with
``SyncBatchNorm``, and without augmentation or dropout (whose random draws
each process makes for its own part of the batch), the p processes train
the model that one process trains.
"""
import numpy as np

from .._arguments import is_integer
from .errors import DataError

__all__ = ["DistributedSampler", "epoch_orders", "draw_epoch"]


def draw_epoch(rng, n, shuffle):
    """One epoch's draws from a loader's generator ``rng``: ``(order, augmentation seed)``.

    The order of n samples (a permutation when ``shuffle``, else 0..n-1) and the
    seed of that epoch's augmentation generator.  :class:`~minidl.data.DataLoader`
    draws exactly this once per epoch, which is what lets :func:`epoch_orders`
    replay it.
    """
    order = rng.permutation(n) if shuffle else np.arange(n)
    return order, rng.integers(2**63)


def epoch_orders(seed, n):
    """The orders in which ``DataLoader(..., shuffle=True, seed=seed)`` of n samples
    visits them in epochs 0, 1, 2, ...: its generator, replayed (an endless iterator)."""
    rng = np.random.default_rng(seed)
    while True:
        yield draw_epoch(rng, n, shuffle=True)[0]


class DistributedSampler:
    """Iterate over this process's indices of a data set of ``len(dataset)`` samples.

    dataset: an int (the number of samples), a tuple ``(images, labels)``, or
        anything with ``__len__``.
    num_replicas, rank: the number of processes and this one's index, e.g.
        ``minidl.distributed.world_size()`` and ``rank()``; unlike PyTorch there
        is no default, so that this layer stays free of the communicator.
    shuffle: a new permutation each epoch, the same on every process and the
        same as a single-process ``DataLoader(shuffle=True, seed=seed)``'s.
    drop_last: drop the tail that does not divide evenly instead of padding.

    Each ``iter()`` uses the current epoch and then advances it, so a loop
    over epochs reshuffles by itself; ``set_epoch(e)`` sets it as in PyTorch,
    and ``state_dict()`` carries it into a checkpoint.
    """

    def __init__(self, dataset, num_replicas, rank, shuffle=True, seed=0, drop_last=False):
        if isinstance(dataset, int):
            self.n = dataset
        elif isinstance(dataset, tuple):
            self.n = len(dataset[0])
        else:
            self.n = len(dataset)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        if self.num_replicas < 1:
            raise DataError(f"num_replicas must be at least 1, got {self.num_replicas}")
        if not 0 <= self.rank < self.num_replicas:
            raise DataError(f"rank must be in [0, {self.num_replicas - 1}], got {self.rank}")
        if drop_last and self.n < self.num_replicas:
            raise DataError(f"drop_last with {self.n} samples leaves nothing for "
                            f"{self.num_replicas} processes")
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        self._orders, self._next_epoch = None, 0       # the replay of epoch_orders so far

    def __len__(self):
        """The number of indices each process gets per epoch (the same on all)."""
        if self.drop_last:
            return self.n // self.num_replicas
        return -(-self.n // self.num_replicas)

    def indices(self, epoch):
        """This process's indices for ``epoch``, as an int64 array."""
        order = self._shuffled(epoch) if self.shuffle else np.arange(self.n)
        total = len(self) * self.num_replicas
        if total > self.n:      # pad by wrapping around (again if p > n)
            order = np.resize(order, total)
        return order[self.rank:total:self.num_replicas]

    def _shuffled(self, epoch):
        """Epoch ``epoch``'s permutation: the replay goes on from the last epoch asked for,
        and starts again only for an earlier one (after ``set_epoch`` or a resume)."""
        if self._orders is None or self._next_epoch > epoch:
            self._orders, self._next_epoch = epoch_orders(self.seed, self.n), 0
        for _ in range(epoch - self._next_epoch):
            next(self._orders)
        self._next_epoch = epoch + 1
        return next(self._orders)

    def __iter__(self):
        order = self.indices(self.epoch)
        self.epoch += 1
        return iter(order)

    def set_epoch(self, epoch):
        """Use ``epoch``'s permutation at the next ``iter()``."""
        self.epoch = int(epoch)

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = self._checked_state(state)

    def _checked_state(self, state):
        """The epoch of a saved ``state_dict()``; DataError for a malformed one."""
        epoch = state.get("epoch") if isinstance(state, dict) else None
        if not is_integer(epoch) or epoch < 0:
            raise DataError(f"a DistributedSampler state is {{'epoch': N}} with an integer "
                            f"N >= 0, got {state!r:.200}")
        return int(epoch)
