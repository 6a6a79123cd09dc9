"""Run under ``mpirun -n 2``: the distributed equivalences, every check in one launch.

Each rank knows the whole global batch (the same seed everywhere), so it can
compute the single-process reference itself and compare its shard's results
with it.  Each rank writes ``OUT/rank<r>.json``; ``tests/test_mpi.py`` reads
and asserts on them.  Usage: ``python checks.py OUT``.
"""
import hashlib
import json
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fake_cupy  # noqa: E402
import minidl  # noqa: E402
import minidl.distributed as dist  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl import backend, nn  # noqa: E402
from minidl.data import DataLoader, DistributedSampler  # noqa: E402

comm = dist.init()
rank, size = comm.rank, comm.size
results = {"rank": rank, "size": size}


def relative_error(a, b):
    a, b = numpy.asarray(a), numpy.asarray(b)
    return float(numpy.max(numpy.abs(a - b) / numpy.maximum(numpy.abs(b), 1e-300)))


def shard(a):
    n = len(a) // size
    return a[rank * n:(rank + 1) * n]


def summed(a):
    return comm.all_reduce(numpy.array(a, dtype=numpy.float64))


# -------------------------------------------------- SyncBatchNorm == BatchNorm2d on the global batch
def sync_batch_norm(offsets):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(16, 3, 4, 4)) * rng.uniform(0.5, 2, (1, 3, 1, 1))
    x += numpy.reshape(offsets[0], (1, -1, 1, 1))
    x[8:] += numpy.reshape(offsets[1], (1, -1, 1, 1))      # rank 1's shard apart from rank 0's
    dy = rng.normal(size=x.shape)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.normal(size=3)
    layers = nn.BatchNorm2d(3, dtype="float64"), nn.SyncBatchNorm(3, dtype="float64")
    for layer in layers:
        layer.weight.data[...] = gamma
        layer.bias.data[...] = beta
    inputs = minidl.tensor(x, requires_grad=True), minidl.tensor(shard(x), requires_grad=True)
    outputs = []
    for layer, inp, grad in zip(layers, inputs, (dy, shard(dy))):
        for _ in range(2):                   # two steps: the running stats' recurrence too
            y = layer(inp)
        (y * minidl.tensor(grad)).sum().backward()
        outputs.append(y.data)
    plain, sync = layers
    return {
        "output": relative_error(outputs[1], shard(outputs[0])),
        "input_grad": relative_error(inputs[1].grad, shard(inputs[0].grad)),
        "weight_grad": relative_error(summed(sync.weight.grad), plain.weight.grad),
        "bias_grad": relative_error(summed(sync.bias.grad), plain.bias.grad),
        "running_mean": relative_error(sync.running_mean.data, plain.running_mean.data),
        "running_var": relative_error(sync.running_var.data, plain.running_var.data),
        "batches_tracked": int(sync.num_batches_tracked.data),
    }


def naive_variance_error(offsets):
    """The one-pass formula E[x^2] - E[x]^2 from all-reduced sums, against the two-pass one."""
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(16, 3, 4, 4)) * rng.uniform(0.5, 2, (1, 3, 1, 1))
    x += numpy.reshape(offsets[0], (1, -1, 1, 1))
    x[8:] += numpy.reshape(offsets[1], (1, -1, 1, 1))
    local = shard(x)
    sums = summed([local.sum(axis=(0, 2, 3)), (local ** 2).sum(axis=(0, 2, 3))])
    m = x.size / 3
    naive = sums[1] / m - (sums[0] / m) ** 2
    return relative_error(naive, x.var(axis=(0, 2, 3)))


# Each rank backpropagates the sum of its shard's loss and the reference the sum over
# both shards: SyncBatchNorm's input gradient is the reference's on the shard, its
# parameter gradients sum to the reference's.  The offset batch sits at 1e4 with its
# two shards 5 to 20 standard deviations apart.
OFFSETS = (numpy.array([1e4, -1e4, 3e4]), numpy.array([10.0, -20.0, 5.0]))
results["sync_bn"] = sync_batch_norm((0.0, 0.0))
results["sync_bn_offset"] = sync_batch_norm(OFFSETS)
results["naive_offset_error"] = naive_variance_error(OFFSETS)


# -------------------------------------------------- a DataParallel MIN step == one process
def min_small(seed):
    minidl.manual_seed(seed)
    return minidl.models.create("min-small", "digits", dropout=0).to(dtype="float64")


def sgd_steps(model, images, labels, steps=2):
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(minidl.tensor(images)), minidl.tensor(labels)).backward()
        optimizer.step()
    return [p.data for p in model.parameters()]


rng = numpy.random.default_rng(1)
images = rng.normal(size=(16, 1, 28, 28))
labels = rng.integers(0, 10, 16)
reference = sgd_steps(min_small(0), images, labels)
# a different seed per rank: DataParallel's broadcast must make the replicas equal
parallel = dist.DataParallel(nn.SyncBatchNorm.convert(min_small(rank)), bucket_bytes=2**16)
mine = sgd_steps(parallel, shard(images), shard(labels))
results["data_parallel"] = {
    # absolute: the biases in front of batch norm have zero gradient, so they stay at
    # their initial values plus rounding noise, where a relative error means nothing
    "max_abs_error": max(float(numpy.max(numpy.abs(a - b))) for a, b in zip(mine, reference)),
    "relative_norm_error": float(numpy.sqrt(sum(numpy.sum((a - b) ** 2)
                                                for a, b in zip(mine, reference))
                                            / sum(numpy.sum(b ** 2) for b in reference))),
    "largest_parameter": max(float(numpy.max(numpy.abs(b))) for b in reference),
    "digest": hashlib.sha256(b"".join(a.tobytes() for a in mine)).hexdigest(),
    "buckets": len(parallel.buckets),
}


# -------------------------------------------------- the sampler under MPI
sampler = DistributedSampler(103, dist.world_size(), dist.rank(), seed=5)
loader = DataLoader((numpy.zeros((103, 1)), numpy.arange(103)), 10, sampler=sampler)
results["sampler"] = {"epoch0": [int(i) for _, y in loader for i in y],
                      "epoch1": [int(i) for _, y in loader for i in y],
                      "batches": len(loader)}


# -------------------------------------------------- device arrays through MPI
backend.set_gpu_module(fake_cupy.fake_cupy)
fake_cupy.reset_transfers()
device_array = fake_cupy.fake_cupy.asarray(numpy.arange(4.0) * (rank + 1))
fake_cupy.reset_transfers()
comm.all_reduce(device_array)
results["device"] = {"transfers": dict(fake_cupy.transfers),
                     "is_device_array": isinstance(device_array, fake_cupy.DeviceArray),
                     "values": backend.to_numpy(device_array).tolist()}
backend.set_gpu_module(None)

comm.barrier()
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump(results, f)
