"""minidl.distributed in one process: the communicator, buckets, DataParallel, SyncBatchNorm, sampler.

The multi-process equivalences run under mpirun in ``tests/test_mpi.py``.  Here a
*mirror* stands in for ``MPI.COMM_WORLD``: ``size`` processes that all hold the
same data, so an all-reduce multiplies by ``size``.  It drives the real
``MPICommunicator`` code (host round trips of device arrays included), and a
model on the mirror must compute what one process computes on ``size`` copies
of the batch.
"""
import sys

import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st

import fake_cupy
import minidl
import minidl.distributed as dist
import minidl.functional as F
from minidl import nn
from minidl.data import DataError, DataLoader, DistributedSampler


class Mirror:
    """mpi4py's buffer API for ``size`` processes holding identical arrays."""

    def __init__(self, size):
        self.size = size

    def Get_rank(self):
        return 0

    def Get_size(self):
        return self.size

    def Allreduce(self, send, receive):
        assert isinstance(send, numpy.ndarray) and send.flags.c_contiguous
        receive[...] = send * self.size

    def Bcast(self, buffer, root=0):
        assert isinstance(buffer, numpy.ndarray)

    def Barrier(self):
        pass


def mirror(size=2):
    return dist.MPICommunicator(Mirror(size))


def small_model(device, dtype="float64"):
    minidl.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.GlobalAvgPool2d(), nn.Linear(4, 3)).to(device, dtype)


# ------------------------------------------------------------------ the communicator

def test_single_process_fallback():
    single = dist.SingleProcess()
    a = numpy.arange(3.0)
    assert single.all_reduce(a) is a and a.tolist() == [0, 1, 2]
    single.barrier()
    with pytest.raises(ValueError, match="root must be 0"):
        single.broadcast(a, root=1)
    assert (single.rank, single.size, single.counts["all_reduce"]) == (0, 1, 1)


def test_outside_mpirun_init_gives_one_process(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dist.comm, "_current", None)
    assert not dist.launched_by_mpi() and not dist.is_initialized()
    assert (dist.rank(), dist.world_size()) == (0, 1)
    assert isinstance(dist.init(), dist.SingleProcess) and dist.is_initialized()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert dist.launched_by_mpi()


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"minidl\[dist\]"):
        dist.MPICommunicator()


def test_device_arrays_go_through_the_host_and_back(fake_gpu):
    comm = mirror(3)
    a = fake_gpu.fake_cupy.asarray(numpy.arange(6.0).reshape(2, 3))
    fake_gpu.reset_transfers()
    comm.all_reduce(a)
    assert fake_gpu.transfers == {"to_device": 1, "to_host": 1}
    comm.broadcast(a)
    assert fake_gpu.transfers == {"to_device": 2, "to_host": 2}
    assert isinstance(a, fake_gpu.DeviceArray)
    assert host(a).tolist() == [[0, 3, 6], [9, 12, 15]]
    assert comm.counts == {"all_reduce": 1, "broadcast": 1, "bytes": 48}


def test_non_contiguous_host_arrays_are_reduced_in_place():
    a = numpy.arange(12.0).reshape(3, 4)
    view = a[:, ::2]
    mirror(2).all_reduce(view)
    assert a[:, 0].tolist() == [0, 8, 16] and a[:, 1].tolist() == [1, 5, 9]


# ------------------------------------------------------------------ buckets and gradients

def test_buckets_run_last_to_first_and_hold_about_bucket_bytes():
    params = [nn.Parameter(numpy.zeros(n)) for n in (10, 20, 30, 40)]      # 80 .. 320 bytes
    buckets = dist.gradient_buckets(params, bucket_bytes=400)
    assert [[p.numel() for p in b] for b in buckets] == [[40, 30], [20, 10]]
    assert [len(b) for b in dist.gradient_buckets(params, 1)] == [1, 1, 1, 1]
    mixed = params[:2] + [nn.Parameter(numpy.zeros(5, "float32"))]
    assert [len(b) for b in dist.gradient_buckets(mixed, 10**6)] == [1, 2]


def test_all_reduce_gradients_averages_one_call_per_bucket(device):
    model = small_model(device)
    x = leaf(numpy.random.default_rng(0).normal(size=(4, 2, 5, 5)), device, False)
    F.cross_entropy(model(x), minidl.tensor(numpy.array([0, 1, 2, 0]), device=device)).backward()
    before = {name: host(p.grad).copy() for name, p in model.named_parameters()}
    comm = mirror(2)
    fake_cupy.reset_transfers()
    dist.all_reduce_gradients(model, bucket_bytes=200, communicator=comm)
    buckets = dist.gradient_buckets(model.parameters(), 200)
    if minidl.backend.get_array_module(x.data) is fake_cupy.fake_cupy:
        assert fake_cupy.transfers == {"to_device": len(buckets), "to_host": len(buckets)}
    assert len(buckets) > 1 and comm.counts["all_reduce"] == len(buckets)
    assert comm.counts["bytes"] == sum(p.data.nbytes for p in model.parameters())
    for name, p in model.named_parameters():
        assert numpy.array_equal(host(p.grad), before[name]), name
        assert p.grad.shape == p.shape


def test_data_parallel_averages_during_backward(device):
    model = small_model(device)
    comm = mirror(2)
    parallel = dist.DataParallel(model, bucket_bytes=200, communicator=comm)
    assert comm.counts["broadcast"] == len(list(model.parameters())) + len(list(model.buffers()))
    x = leaf(numpy.random.default_rng(0).normal(size=(4, 2, 5, 5)), device, False)
    labels = minidl.tensor(numpy.array([0, 1, 2, 0]), device=device)
    reference = small_model(device)
    F.cross_entropy(reference(x), labels).backward()
    F.cross_entropy(parallel(x), labels).backward()
    assert comm.counts["all_reduce"] == len(parallel.buckets) > 1
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert numpy.array_equal(host(p.grad), host(q.grad)), name
    assert parallel.state_dict().keys() == model.state_dict().keys()


def test_data_parallel_names_parameters_that_got_no_gradient(device):
    model = small_model(device)
    parallel = dist.DataParallel(model, bucket_bytes=10**6, communicator=mirror(2))
    x = leaf(numpy.ones((2, 2, 3, 3)), device, False)
    features = parallel.module[:4](x)                 # the last Linear takes no part
    features.sum().backward()
    with pytest.raises(RuntimeError, match=r"no gradient to 4\.bias, 4\.weight"):
        parallel(x)


def test_data_parallel_needs_a_module():
    with pytest.raises(TypeError, match="DataParallel: module must be"):
        dist.DataParallel(lambda x: x)


# ------------------------------------------------------------------ SyncBatchNorm

@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 5)])
def test_sync_batch_norm_on_a_mirror_is_batch_norm_on_the_copies(device, shape):
    """p identical processes of batch N == one process of batch p*N made of p copies."""
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=shape) * 3 + 1e4
    dy = rng.normal(size=shape)
    sync = nn.SyncBatchNorm(shape[1], dtype="float64", communicator=mirror(2)).to(device)
    plain = nn.BatchNorm2d(shape[1], dtype="float64").to(device)
    gamma = minidl.tensor(rng.uniform(0.5, 2, shape[1])).to(device).data
    sync.weight.data[...] = gamma
    plain.weight.data[...] = gamma
    xs, xp = leaf(x, device), leaf(numpy.concatenate([x, x]), device)
    ys = sync(xs)
    yp = F.batch_norm(xp, plain.weight, plain.bias, plain.running_mean, plain.running_var)
    (ys * leaf(dy, device, False)).sum().backward()
    (yp * leaf(numpy.concatenate([dy, dy]), device, False)).sum().backward()
    n = shape[0]
    numpy.testing.assert_allclose(host(ys.data), host(yp.data)[:n], rtol=1e-10, atol=1e-10)
    numpy.testing.assert_allclose(host(xs.grad), host(xp.grad)[:n], rtol=1e-9, atol=1e-12)
    # each process returns its own parameter gradient: the two halves of one process's
    numpy.testing.assert_allclose(2 * host(sync.weight.grad), host(plain.weight.grad), rtol=1e-10)
    numpy.testing.assert_allclose(2 * host(sync.bias.grad), host(plain.bias.grad), rtol=1e-10)
    for name in ("running_mean", "running_var"):
        numpy.testing.assert_allclose(host(getattr(sync, name).data),
                                      host(getattr(plain, name).data), rtol=1e-12)
    assert int(host(sync.num_batches_tracked.data)) == 1


def test_sync_batch_norm_evaluation_communicates_nothing(device):
    comm = mirror(2)
    sync = nn.SyncBatchNorm(3, communicator=comm).to(device)
    sync.running_mean.data[...] = minidl.tensor([1.0, 2.0, 3.0]).to(device).data
    x = leaf(numpy.ones((2, 3, 2, 2), "float32"), device, False)
    y = sync.eval()(x)
    reference = F.batch_norm(x, sync.weight, sync.bias, sync.running_mean, sync.running_var,
                             training=False)
    assert numpy.array_equal(host(y.data), host(reference.data))
    assert comm.counts["all_reduce"] == 0


def test_sync_batch_norm_checks_its_input():
    sync = nn.SyncBatchNorm(3, communicator=mirror(2))
    with pytest.raises(ValueError, match=r"SyncBatchNorm\(num_features=3\)"):
        sync(minidl.tensor(numpy.ones((2, 4), "float32")))
    with pytest.raises(TypeError, match="SyncBatchNorm: weight has dtype float32 but input"):
        sync(minidl.tensor(numpy.ones((2, 3))))
    with pytest.raises(ValueError, match="more than 1 value per channel on each process"):
        sync(minidl.tensor(numpy.ones((1, 3), "float32")))
    with pytest.raises(ValueError, match="must be 2-D or 3-D or 4-D"):
        sync(minidl.tensor(numpy.ones((2, 3, 4, 4, 1), "float32")))


def test_convert_swaps_every_batch_norm_keeping_its_state():
    model = small_model("cpu")
    head = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model = nn.Sequential(model, head)
    model[0][1].running_mean.data[...] = 5.0
    old = {name: t for name, t in model.state_dict().items()}
    weight = model[0][1].weight
    model.eval()
    converted = nn.SyncBatchNorm.convert(model)
    assert converted is model
    assert isinstance(model[0][1], nn.SyncBatchNorm) and isinstance(model[1][1], nn.SyncBatchNorm)
    assert model[0][1].weight is weight and not model[0][1].training
    assert model[0][1].weight.dtype == numpy.float64
    new = model.state_dict()
    assert new.keys() == old.keys()
    assert all(numpy.array_equal(new[k], old[k]) for k in old)
    assert isinstance(nn.SyncBatchNorm.convert(nn.BatchNorm1d(2)), nn.SyncBatchNorm)


def test_update_bn_stats_pools_sync_batch_norm_over_the_processes(device):
    """On a mirror of 2, the statistics are those of every batch taken twice."""
    sync = nn.SyncBatchNorm(3, dtype="float64", communicator=mirror(2)).to(device)
    plain = nn.BatchNorm2d(3, dtype="float64").to(device)
    rng = numpy.random.default_rng(2)
    data = [rng.normal(size=(2, 3, 2, 2)) * 3 + 5 for _ in range(3)]
    nn.utils.update_bn_stats(sync, data)
    nn.utils.update_bn_stats(plain, [numpy.concatenate([x, x]) for x in data])
    for name in ("running_mean", "running_var"):
        numpy.testing.assert_allclose(host(getattr(sync, name)), host(getattr(plain, name)),
                                      rtol=1e-12)


@pytest.mark.parametrize("options", [dict(momentum=None), dict(affine=False),
                                     dict(track_running_stats=False), dict(bias=False)])
def test_sync_batch_norm_options_on_a_mirror(device, options):
    """The options keep their meaning across processes and survive convert."""
    plain = nn.BatchNorm1d(3, dtype="float64", **options).to(device)
    sync = nn.SyncBatchNorm.convert(nn.BatchNorm1d(3, dtype="float64", **options).to(device),
                                    mirror(2))
    assert (sync.momentum, sync.affine, sync.track_running_stats, sync.bias is None) == (
        plain.momentum, plain.affine, plain.track_running_stats, plain.bias is None)
    rng = numpy.random.default_rng(1)
    for _ in range(3):
        x = rng.normal(size=(2, 3, 4)) * 2 + 1
        ys = sync(leaf(x, device, False))
        yp = plain(leaf(numpy.concatenate([x, x]), device, False))
        numpy.testing.assert_allclose(host(ys), host(yp)[:2], rtol=1e-10, atol=1e-12)
    assert sync.state_dict().keys() == plain.state_dict().keys()
    for name, value in plain.state_dict().items():
        numpy.testing.assert_allclose(sync.state_dict()[name], value, rtol=1e-12)


# ------------------------------------------------------------------ DistributedSampler

@given(n=st.integers(1, 60), p=st.integers(1, 5), epoch=st.integers(0, 3),
       drop_last=st.booleans())
def test_shards_are_disjoint_cover_the_data_and_are_equal(n, p, epoch, drop_last):
    if drop_last and n < p:
        return
    shards = [DistributedSampler(n, num_replicas=p, rank=r, seed=7, drop_last=drop_last)
              for r in range(p)]
    parts = [s.indices(epoch) for s in shards]
    assert len({len(part) for part in parts}) == 1 and all(len(s) == len(parts[0]) for s in shards)
    together = numpy.concatenate(parts)
    if drop_last:
        assert len(numpy.unique(together)) == len(together) == n - n % p
    else:
        assert set(together.tolist()) == set(range(n))
        assert len(together) == -(-n // p) * p      # padded by fewer than p repeats


def test_every_process_draws_the_same_permutation_each_epoch():
    a, b = (DistributedSampler(20, num_replicas=2, rank=r, seed=3) for r in range(2))
    first = [list(a), list(b)]
    second = [list(a), list(b)]
    assert sorted(first[0] + first[1]) == list(range(20))
    assert first != second and a.epoch == b.epoch == 2
    a.set_epoch(0)
    assert list(a) == first[0]
    assert list(DistributedSampler(20, 2, 0, shuffle=False)) == list(range(0, 20, 2))


@given(p=st.integers(1, 4), per_process=st.integers(1, 5), steps=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_shards_of_a_global_step_hold_the_single_process_batch(p, per_process, steps, seed):
    """p processes of batch b/p see, step by step, the images one process of batch b sees."""
    batch = p * per_process
    n = batch * steps - (batch // 2)          # a partial last step too, when it divides by p
    n -= n % p
    labels = numpy.arange(n)
    single = DataLoader((labels[:, None], labels), batch, shuffle=True, seed=seed)
    shards = [DataLoader((labels[:, None], labels), per_process,
                         sampler=DistributedSampler(n, p, r, seed=seed)) for r in range(p)]
    for _ in range(3):                        # epochs: the same reshuffle on both sides
        expected = [y for _, y in single]
        per_rank = [[y for _, y in shard] for shard in shards]
        assert len(expected) == len(per_rank[0])
        for step, batch_labels in enumerate(expected):
            together = numpy.concatenate([rank[step] for rank in per_rank])
            assert sorted(together.tolist()) == sorted(batch_labels.tolist())


def test_data_loader_iterates_the_shard_and_resumes_it():
    images, labels = numpy.arange(10.0)[:, None], numpy.arange(10)
    sampler = DistributedSampler(labels, num_replicas=2, rank=1, seed=0)
    loader = DataLoader((images, labels), 2, sampler=sampler)
    assert len(loader) == 3
    state = loader.state_dict()
    epoch0 = numpy.concatenate([y for _, y in loader])
    assert epoch0.tolist() == sampler.indices(0).tolist()
    loader.load_state_dict(state)
    assert numpy.concatenate([y for _, y in loader]).tolist() == epoch0.tolist()
    with pytest.raises(DataError, match="shuffle=True and a sampler"):
        DataLoader((images, labels), 2, shuffle=True, sampler=sampler)


def test_sampler_checks_its_arguments():
    with pytest.raises(DataError, match=r"rank must be in \[0, 1\], got 2"):
        DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(DataError, match="num_replicas must be at least 1"):
        DistributedSampler(10, num_replicas=0, rank=0)
    with pytest.raises(DataError, match="drop_last with 1 samples"):
        DistributedSampler(1, num_replicas=2, rank=0, drop_last=True)
