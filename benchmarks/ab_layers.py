"""Forward + backward of the MIN layers: this checkout's ops against another checkout's, and PyTorch.

    python benchmarks/ab_layers.py --old /path/to/other/checkout [--batch 32] [--repeat 7]

The other checkout's ``minidl/functional/{conv,maxout,dropout}.py`` (and the
``_window.py`` they import) are loaded beside this checkout's package, so
both versions run in one process on the same arrays, one call of each in
turn (old, new, PyTorch), and every figure is the median over ``--repeat``
rounds, in wall time and in CPU time of the process.  The machine's load
average is printed with the table.
"""
import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
parser.add_argument("--old", required=True, help="root of the checkout to compare against")
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--repeat", type=int, default=7)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
# BLAS reads its thread count once, when NumPy loads it.
os.environ.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy  # noqa: E402

import minidl  # noqa: E402
from minidl.tables import format_table  # noqa: E402


def load_old(name):
    """The other checkout's ``minidl/functional/<name>.py`` as ``minidl.functional._old_<name>``."""
    path = os.path.join(args.old, "minidl", "functional", f"{name}.py")
    source = open(path).read().replace("from ._window import", "from ._old__window import")
    module_name = f"minidl.functional._old_{name}"
    spec = importlib.util.spec_from_loader(module_name, loader=None, origin=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    exec(compile(source, path, "exec"), module.__dict__)
    return module


load_old("_window")
OLD = {name: load_old(name) for name in ("conv", "maxout", "dropout")}
NEW = {name: importlib.import_module(f"minidl.functional.{name}") for name in OLD}

N = args.batch
CASES = {   # name: (op, input shape, extra shapes / arguments); widths of MIN on CIFAR-10
    "conv 1x1 192->800 32x32": ("conv", (N, 192, 32, 32), dict(w=(800, 192, 1, 1), padding=0)),
    "conv 1x1 192->960 16x16": ("conv", (N, 192, 16, 16), dict(w=(960, 192, 1, 1), padding=0)),
    "conv 5x5 96->192 16x16": ("conv", (N, 96, 16, 16), dict(w=(192, 96, 5, 5), padding=2)),
    "conv 3x3 192->192 8x8": ("conv", (N, 192, 8, 8), dict(w=(192, 192, 3, 3), padding=1)),
    "maxout 5 800->160 32x32": ("maxout", (N, 800, 32, 32), dict(pieces=5)),
    "dropout 0.5 96x16x16": ("dropout", (N, 96, 16, 16), dict(p=0.5)),
}


def minidl_call(modules, op, x, extra, rng):
    tensor = minidl.tensor(x, requires_grad=True)
    if op == "conv":
        w = minidl.tensor(rng.standard_normal(extra["w"], dtype=numpy.float32), requires_grad=True)
        b = minidl.tensor(numpy.zeros(extra["w"][0], numpy.float32), requires_grad=True)
        return lambda: modules["conv"].conv2d(tensor, w, b, padding=extra["padding"]).sum().backward()
    if op == "maxout":
        return lambda: modules["maxout"].maxout(tensor, extra["pieces"]).sum().backward()
    return lambda: modules["dropout"].dropout(tensor, extra["p"]).sum().backward()


def torch_call(op, x, extra, rng):
    import torch
    torch.set_num_threads(args.threads)
    tensor = torch.from_numpy(x).requires_grad_()
    if op == "conv":
        w = torch.from_numpy(rng.standard_normal(extra["w"], dtype=numpy.float32)).requires_grad_()
        b = torch.zeros(extra["w"][0], requires_grad=True)
        return lambda: torch.nn.functional.conv2d(tensor, w, b, padding=extra["padding"]).sum().backward()
    if op == "maxout":
        shape = (x.shape[0], x.shape[1] // extra["pieces"], extra["pieces"]) + x.shape[2:]
        return lambda: tensor.reshape(shape).amax(2).sum().backward()
    return lambda: torch.nn.functional.dropout(tensor, extra["p"]).sum().backward()


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


rows = []
for name, (op, shape, extra) in CASES.items():
    x = numpy.random.default_rng(0).standard_normal(shape, dtype=numpy.float32)
    calls = [minidl_call(OLD, op, x, extra, numpy.random.default_rng(1)),
             minidl_call(NEW, op, x, extra, numpy.random.default_rng(1))]
    try:
        calls.append(torch_call(op, x, extra, numpy.random.default_rng(1)))
    except ImportError:
        pass
    for call in calls:                       # warm-up
        call()
    samples = [[] for _ in calls]
    for _ in range(args.repeat):
        for call, times in zip(calls, samples):
            times.append(timed(call))
    wall = [statistics.median(t[0] for t in times) * 1e3 for times in samples]
    cpu = [statistics.median(t[1] for t in times) * 1e3 for times in samples]
    row = [name, f"{wall[0]:.3g}", f"{wall[1]:.3g}", f"{wall[0] / wall[1]:.2f}",
           f"{cpu[0]:.3g}", f"{cpu[1]:.3g}", f"{cpu[0] / cpu[1]:.2f}"]
    if len(calls) == 3:
        row += [f"{wall[2]:.3g}", f"{wall[2] / wall[0]:.2f}", f"{wall[2] / wall[1]:.2f}"]
    rows.append(row)
    print(name, row[1:], flush=True)

header = ["layer (fwd+bwd)", "old ms", "new ms", "old/new", "old cpu ms", "new cpu ms",
          "old/new cpu", "torch ms", "torch/old", "torch/new"]
print(f"\nbatch {N}, {args.threads} threads, median of {args.repeat}; load average "
      f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
print(format_table(header[:len(rows[0])], rows))
