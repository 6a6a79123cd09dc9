"""All-reduce of a MIN gradient buffer and the data-parallel MIN step, on 1 and 2 processes.

    python benchmarks/distributed.py                  # launches itself under mpirun -n 1, -n 2
    python benchmarks/distributed.py --nproc 1 2 4

Per process count: the time of one all-reduce of the float32 gradient buffer
of MIN (CIFAR-10, the full model) and of MIN-small (digits), their bus
bandwidth (bytes / seconds), the latency of an 8-byte all-reduce, and the
time of one training step of MIN-small on digits-shaped input with the
global batch split over the processes (SyncBatchNorm inside DataParallel,
SGD).  Each figure is the median of ``--repeat`` runs after a warm-up.
``docs/distributed.md`` puts these numbers into the ring all-reduce cost model.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy

import minidl
import minidl.distributed as dist
import minidl.functional as F
from minidl import nn
from minidl.tables import format_table

BUFFERS = (("min", "cifar10"), ("min-small", "digits"))


def median_seconds(fn, repeat, communicator):
    fn()
    times = []
    for _ in range(repeat):
        communicator.barrier()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def worker(args):
    communicator = dist.init()
    row = {"processes": communicator.size}
    for name, dataset in BUFFERS:
        count = minidl.models.create(name, dataset).num_parameters()
        flat = numpy.ones(count, numpy.float32)
        seconds = median_seconds(lambda: communicator.all_reduce(flat), args.repeat, communicator)
        row[f"{name} MB"] = flat.nbytes / 1e6
        row[f"{name} all-reduce ms"] = 1e3 * seconds
        row[f"{name} GB/s"] = flat.nbytes / seconds / 1e9 if communicator.size > 1 else None
    tiny = numpy.ones(2, numpy.float32)
    row["8 B all-reduce us"] = 1e6 * median_seconds(lambda: communicator.all_reduce(tiny),
                                                    10 * args.repeat, communicator)
    minidl.manual_seed(0)
    model = dist.DataParallel(nn.SyncBatchNorm.convert(
        minidl.models.create("min-small", "digits")))
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    local = args.batch // communicator.size
    rng = numpy.random.default_rng(communicator.rank)
    x = minidl.tensor(rng.standard_normal((local, 1, 28, 28), dtype=numpy.float32))
    y = minidl.tensor(rng.integers(0, 10, local))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    row["step s"] = median_seconds(step, args.repeat, communicator)
    row["images/s"] = args.batch / row["step s"]
    if communicator.rank == 0:
        print(json.dumps(row), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64, help="global batch of the step")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for n in args.nproc:
        command = dist.mpirun_command(n, [sys.executable, os.path.abspath(__file__), "--worker",
                                          "--batch", str(args.batch),
                                          "--repeat", str(args.repeat)])
        output = subprocess.run(command, capture_output=True, text=True, check=True,
                                env=dist.worker_environment(n)).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))     # what rank 0 printed
    header = ["processes"] + [str(row.pop("processes")) for row in rows]
    table = [[name] + [cell(row[name]) for row in rows] for name in rows[0]]
    print(format_table(header, table, align="<" + ">" * len(rows)))


def cell(value):
    return "-" if value is None else f"{value:.4g}"


if __name__ == "__main__":
    main()
