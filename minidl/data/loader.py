"""DataLoader: mini-batches of host NumPy arrays, seeded and resumable.

Randomness: the loader owns one numpy.random.Generator. Each epoch, when
iteration starts, it draws the permutation and the seed of that epoch's
augmentation generator. So after `iter(loader)` the generator already holds
the state for the next epoch: `state_dict()` saved with a checkpoint at any
point during epoch k makes a resumed run start epoch k + 1 with the same
order and the same augmentations as the run that was not interrupted.
"""
import queue
import threading

import numpy as np

from .._arguments import check_flag, check_number
from .errors import DataError
from .sampler import draw_epoch
from .tensor_dataset import TensorDataset
from .transforms import check_transform_output


class DataLoader:
    """Iterate over `dataset` in batches of `batch_size`, yielding `(x, y)` batches.

    dataset: a tuple `(images, labels)` of arrays with the same first
        dimension (kept as a `TensorDataset`, so `len(loader.dataset)` is the
        number of samples, as in PyTorch), or any object with `__len__` whose
        `__getitem__` takes an index array and returns a batch `(x, y, ...)`
        (a `TensorDataset` of minidl Tensors gives batches of Tensors).
    shuffle: a new permutation each epoch, drawn from the loader's generator
        (seeded by `seed`; None seeds from the OS).
    drop_last: drop the last batch when it is smaller than `batch_size`.
    prefetch: prepare that many batches ahead in a background thread
        (0: none). The batches are identical to those without prefetching.
    transform: called as `transform(x, rng=rng)` on the first item of each
        batch, with a generator that is seeded per epoch from the loader's.
    sampler: where the order of the samples comes from instead (e.g. a
        `DistributedSampler`, whose shard is then the loader's data set);
        incompatible with `shuffle`. Its state is part of `state_dict()`.
    """

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=None,
                 prefetch=0, transform=None, sampler=None):
        if isinstance(dataset, tuple):
            if len(dataset) != 2 or len(dataset[0]) != len(dataset[1]):
                raise DataError("dataset must be a tuple (images, labels) of equal length, got "
                                f"lengths {[len(a) for a in dataset]}")
            dataset = TensorDataset(*dataset)
        elif not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise DataError(f"dataset must be (images, labels) or have __len__ and "
                            f"__getitem__, got {type(dataset).__name__}")
        batch_size = check_number("DataLoader", "batch_size", batch_size, integer=True, low=1)
        prefetch = check_number("DataLoader", "prefetch", prefetch, integer=True, low=0)
        check_flag("DataLoader", "shuffle", shuffle)
        check_flag("DataLoader", "drop_last", drop_last)
        if seed is not None:
            seed = check_number("DataLoader", "seed", seed, integer=True, low=0)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got "
                            f"{type(transform).__name__}")
        if sampler is not None and shuffle:
            raise DataError("shuffle=True and a sampler both set the order: the sampler "
                            "shuffles (DistributedSampler(shuffle=True)), pass shuffle=False")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.prefetch = prefetch
        self.transform = transform
        self.rng = np.random.default_rng(seed)

    def num_samples(self):
        """The number of samples in the data set."""
        return len(self.dataset)

    def __len__(self):
        """The number of batches in one epoch."""
        n = self.num_samples() if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        # drawn here, not lazily on the first batch, so that state_dict() taken
        # during an epoch already points at the next one
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64)
            aug_seed = self.rng.integers(2**63)
        else:
            order, aug_seed = draw_epoch(self.rng, self.num_samples(), self.shuffle)
        aug_rng = np.random.default_rng(aug_seed)
        batches = self._batches(order[:len(self) * self.batch_size] if self.drop_last else order,
                                aug_rng)
        return _prefetched(batches, self.prefetch) if self.prefetch else batches

    def _batches(self, order, rng):
        for start in range(0, len(order), self.batch_size):
            batch = self.dataset[order[start:start + self.batch_size]]
            if self.transform is not None:
                images = check_transform_output(self.transform,
                                                self.transform(batch[0], rng=rng))
                batch = (images, *batch[1:])
            yield batch

    def state_dict(self):
        """The generator's (and the sampler's) state, to save with a checkpoint."""
        state = {"bit_generator": self.rng.bit_generator.state}
        if self.sampler is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state):
        """Restore a state from `state_dict()`, so the next epoch matches the saved run.

        The whole state is checked first: after a DataError nothing has changed.
        """
        saved = self._checked_state(state)
        if self.sampler is not None and "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])
        self.rng.bit_generator.state = saved

    def _checked_state(self, state):
        """The generator state of `state` (a `state_dict()`), checked; changes nothing."""
        if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), dict):
            raise DataError(f"a DataLoader state is a dict with a 'bit_generator' entry, got "
                            f"{state!r:.200}")
        saved = state["bit_generator"]
        kind = type(self.rng.bit_generator)
        if saved.get("bit_generator") != kind.__name__:
            raise DataError(f"state is for bit generator {saved.get('bit_generator')}, this "
                            f"loader uses {kind.__name__}")
        try:
            kind().state = saved        # a scratch generator: the loader's own stays as it is
        except (TypeError, ValueError, KeyError) as exc:
            raise DataError(f"the loader's bit generator state is malformed: "
                            f"{type(exc).__name__}: {exc}") from None
        if self.sampler is not None and "sampler" in state and hasattr(self.sampler,
                                                                       "_checked_state"):
            self.sampler._checked_state(state["sampler"])
        return saved


_DONE = object()


class _WorkerError:
    def __init__(self, error):
        self.error = error


def _prefetched(batches, depth):
    """Run the generator `batches` in a thread, `depth` items ahead of the consumer.

    The thread stops when the batches run out, when they raise (the error is
    re-raised here), or when the consumer abandons the iteration (this
    generator is closed, e.g. by `break` or garbage collection).
    """
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        # time out now and then to notice a consumer that went away
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for batch in batches:
                if not put(batch):
                    return
        except BaseException as e:  # handed to the consumer, who re-raises it
            put(_WorkerError(e))
        else:
            put(_DONE)
        finally:
            batches.close()

    thread = threading.Thread(target=work, name="minidl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _WorkerError):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
