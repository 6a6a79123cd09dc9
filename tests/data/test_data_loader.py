"""DataLoader: batching, seeded and resumable shuffling, prefetching."""
import re
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.data import DataError, DataLoader, TensorDataset
from minidl.data.transforms import Compose, RandomHorizontalFlip


def dataset(n=10):
    images = np.arange(n * 2 * 2 * 2, dtype=np.float32).reshape(n, 2, 2, 2)
    return images, np.arange(n, dtype=np.int64)


def epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "minidl-prefetch"]


@pytest.mark.parametrize("drop_last, sizes", [(False, [3, 3, 3, 1]), (True, [3, 3, 3])])
def test_batch_count_and_sizes(drop_last, sizes):
    loader = DataLoader(dataset(10), batch_size=3, drop_last=drop_last)
    batches = epoch(loader)
    assert len(loader) == len(sizes)
    assert [len(y) for _, y in batches] == sizes
    assert all(x.shape[1:] == (2, 2, 2) and x.dtype == np.float32 for x, _ in batches)
    np.testing.assert_array_equal(batches[1][1], [3, 4, 5])  # no shuffle: in order
    np.testing.assert_array_equal(batches[1][0], dataset()[0][3:6])


@given(n=st.integers(1, 60), batch_size=st.integers(1, 20), drop_last=st.booleans(),
       seed=st.integers(0, 2**32))
def test_every_sample_once_per_epoch(n, batch_size, drop_last, seed):
    loader = DataLoader(dataset(n), batch_size, shuffle=True, drop_last=drop_last, seed=seed)
    for _ in range(2):
        seen = np.concatenate([y for _, y in loader] or [np.zeros(0, np.int64)])
        if drop_last:
            assert len(seen) == n // batch_size * batch_size
            assert len(np.unique(seen)) == len(seen)
        else:
            np.testing.assert_array_equal(np.sort(seen), np.arange(n))
        assert len(loader) == -(-len(seen) // batch_size)


def test_images_stay_with_their_labels():
    images, labels = dataset(17)
    for x, y in DataLoader((images, labels), 5, shuffle=True, seed=3):
        np.testing.assert_array_equal(x, images[y])


def test_same_seed_same_order_and_epochs_differ():
    a = DataLoader(dataset(50), 8, shuffle=True, seed=7)
    b = DataLoader(dataset(50), 8, shuffle=True, seed=7)
    first_a, first_b = epoch(a), epoch(b)
    assert all(np.array_equal(ya, yb) for (_, ya), (_, yb) in zip(first_a, first_b, strict=True))
    second = np.concatenate([y for _, y in epoch(a)])
    assert not np.array_equal(np.concatenate([y for _, y in first_a]), second)
    other = np.concatenate([y for _, y in DataLoader(dataset(50), 8, shuffle=True, seed=8)])
    assert not np.array_equal(np.concatenate([y for _, y in first_a]), other)


@pytest.mark.parametrize("saved_after_batches", [None, 0, 2])
def test_state_dict_resumes_next_epoch(saved_after_batches):
    """A checkpoint taken during (or after) epoch 1 replays epoch 2: order and augmentation."""
    def make(seed):
        return DataLoader(dataset(30), 4, shuffle=True, seed=seed,
                          transform=RandomHorizontalFlip(0.5))
    run = make(0)
    it = iter(run)
    for _ in range(saved_after_batches or 0):
        next(it)
    state = run.state_dict()
    if saved_after_batches is None:
        list(it)
        state = run.state_dict()
    expected = epoch(run)

    resumed = make(12345)
    resumed.load_state_dict(state)
    got = epoch(resumed)
    assert len(got) == len(expected)
    for (xg, yg), (xe, ye) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(yg, ye)
        np.testing.assert_array_equal(xg, xe)


def test_state_dict_is_a_copy():
    loader = DataLoader(dataset(), 3, shuffle=True, seed=1)
    state = loader.state_dict()
    order = np.concatenate([y for _, y in loader])
    loader.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate([y for _, y in loader]), order)


def test_load_state_dict_refuses_other_generator():
    state = {"bit_generator": np.random.Generator(np.random.MT19937(0)).bit_generator.state}
    with pytest.raises(DataError, match=r"state is for bit generator MT19937, this loader uses "
                                        r"PCG64"):
        DataLoader(dataset(), 3).load_state_dict(state)


def test_transform_gets_batches_and_a_generator():
    calls = []

    def transform(x, rng=None):
        calls.append((x.shape, type(rng)))
        return x * 2

    batches = epoch(DataLoader(dataset(5), 2, transform=transform))
    generator = np.random.Generator
    assert calls == [((2, 2, 2, 2), generator)] * 2 + [((1, 2, 2, 2), generator)]
    np.testing.assert_array_equal(batches[0][0], dataset(5)[0][:2] * 2)


@pytest.mark.parametrize("prefetch", [1, 3])
def test_prefetch_gives_identical_batches(prefetch):
    kwargs = dict(batch_size=7, shuffle=True, seed=5, transform=RandomHorizontalFlip(0.5))
    plain = DataLoader(dataset(40), **kwargs)
    ahead = DataLoader(dataset(40), prefetch=prefetch, **kwargs)
    for _ in range(2):
        for (xp, yp), (xa, ya) in zip(epoch(plain), epoch(ahead), strict=True):
            np.testing.assert_array_equal(yp, ya)
            np.testing.assert_array_equal(xp, xa)
    assert prefetch_threads() == []


class Exploding:
    """A dataset object (index-array __getitem__) that fails on samples >= 6."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index.max() >= 6:
            raise RuntimeError(f"cannot read sample {index.max()}")
        return dataset()[0][index], dataset()[1][index]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_dataset_errors_reach_the_consumer(prefetch):
    loader = DataLoader(Exploding(), 3, prefetch=prefetch)
    seen = []
    with pytest.raises(RuntimeError, match=r"cannot read sample 8"):
        for _, y in loader:
            seen.append(y)
    assert [list(y) for y in seen] == [[0, 1, 2], [3, 4, 5]]
    assert prefetch_threads() == []


def test_abandoned_iteration_stops_the_thread():
    loader = DataLoader(dataset(100), 2, prefetch=1)  # the worker soon blocks on a full queue
    for _ in loader:
        break
    assert prefetch_threads() == []
    it = iter(loader)
    next(it)
    assert len(prefetch_threads()) == 1
    it.close()
    assert prefetch_threads() == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset=(np.zeros(3), np.zeros(4)), batch_size=2),
     r"dataset must be a tuple \(images, labels\) of equal length, got lengths \[3, 4\]"),
    (dict(dataset=5, batch_size=2), r"dataset must be \(images, labels\) or have __len__"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        DataLoader(**kwargs)


def test_len_of_the_dataset_is_the_number_of_samples():
    loader = DataLoader(dataset(10), batch_size=3)
    assert isinstance(loader.dataset, TensorDataset)
    assert len(loader.dataset) == 10 and len(loader) == 4
    images, labels = loader.dataset.tensors
    assert images.shape == (10, 2, 2, 2) and labels.shape == (10,)


def test_tensor_dataset_of_tensors_gives_batches_of_tensors():
    images, labels = dataset(5)
    data = TensorDataset(minidl.tensor(images), minidl.tensor(labels), minidl.tensor(labels * 2))
    batches = list(DataLoader(data, batch_size=2))
    assert [len(b) for b in batches] == [3, 3, 3]
    x, y, z = batches[-1]
    assert isinstance(x, minidl.Tensor) and x.shape == (1, 2, 2, 2)
    assert y.tolist() == [4] and z.tolist() == [8]


def test_tensor_dataset_needs_equal_lengths():
    with pytest.raises(DataError, match=r"same first dimension, got lengths \[3, 4\]"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(DataError, match="at least one array"):
        TensorDataset()


# every value that is not an integer in range, for each integer or flag argument
BAD_ARGUMENTS = [
    ("batch_size", 2.7, TypeError, "an integer"), ("batch_size", 2.0, TypeError, "an integer"),
    ("batch_size", True, TypeError, "an integer"), ("batch_size", "8", TypeError, "an integer"),
    ("batch_size", None, TypeError, "an integer"), ("batch_size", np.float32(4), TypeError,
                                                    "an integer"),
    ("batch_size", 0, ValueError, ">= 1"), ("batch_size", -3, ValueError, ">= 1"),
    ("prefetch", -1, ValueError, ">= 0"), ("prefetch", 1.5, TypeError, "an integer"),
    ("prefetch", False, TypeError, "an integer"), ("prefetch", "2", TypeError, "an integer"),
    ("seed", -1, ValueError, ">= 0"), ("seed", 0.5, TypeError, "an integer"),
    ("seed", "7", TypeError, "an integer"), ("seed", True, TypeError, "an integer"),
    ("shuffle", 1, TypeError, "True or False"), ("shuffle", "yes", TypeError, "True or False"),
    ("drop_last", 0, TypeError, "True or False"), ("drop_last", None, TypeError,
                                                   "True or False"),
    ("transform", "flip", TypeError, "callable"),
]


@pytest.mark.parametrize("name, value, error, expected", BAD_ARGUMENTS)
def test_a_bad_argument_is_an_error_naming_it(name, value, error, expected):
    arguments = {"batch_size": 2, name: value}
    with pytest.raises(error, match=rf"DataLoader: {name} must be (a |an )?.*{expected}"):
        DataLoader(dataset(), **arguments)


@given(batch_size=st.integers(1, 12), prefetch=st.integers(0, 3), seed=st.integers(0, 2 ** 40))
def test_integer_arguments_in_range_are_accepted(batch_size, prefetch, seed):
    loader = DataLoader(dataset(), np.int64(batch_size), prefetch=prefetch, seed=seed)
    assert loader.batch_size == batch_size and type(loader.batch_size) is int
    assert sum(len(y) for _, y in loader) == 10


def forgets_to_return(batch, rng=None):
    batch * 2


def returns_a_list(batch, rng=None):
    return list(batch)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("transform, name, returned", [
    (forgets_to_return, "forgets_to_return", "NoneType"),
    (returns_a_list, "returns_a_list", "list"),
    (lambda batch, rng=None: 3, "<lambda>", "int"),
    (Compose([RandomHorizontalFlip(), forgets_to_return]), "forgets_to_return", "NoneType"),
    (Compose([forgets_to_return, RandomHorizontalFlip()]), "forgets_to_return", "NoneType"),
])
def test_a_transform_that_returns_no_array_is_named(prefetch, transform, name, returned):
    loader = DataLoader(dataset(), 4, transform=transform, prefetch=prefetch)
    with pytest.raises(TypeError, match=rf"transform {re.escape(name)} returned {returned}, "
                                        rf"not an array of images"):
        next(iter(loader))


@pytest.mark.parametrize("state, message", [
    (None, "a DataLoader state is a dict"), ({"bit_generator": 5}, "a DataLoader state is a dict"),
    ({"bit_generator": {"bit_generator": "PCG64", "state": 1}}, "bit generator state is malformed"),
    ({"bit_generator": {"bit_generator": "PCG64"}}, "bit generator state is malformed"),
])
def test_a_malformed_loader_state_changes_nothing(state, message):
    loader = DataLoader(dataset(), 2, shuffle=True, seed=3)
    before = loader.state_dict()
    with pytest.raises(DataError, match=message):
        loader.load_state_dict(state)
    assert loader.state_dict() == before
