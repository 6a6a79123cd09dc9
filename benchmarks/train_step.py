"""One training step of the CIFAR-10 models, minidl against PyTorch: time, matrix products, memory.

    python benchmarks/train_step.py                        # nin, nin-bn, min, mim; batch 32 and 128
    python benchmarks/train_step.py --models min --batches 128 --repeat 10
    python benchmarks/train_step.py --quick                # tiny models, seconds (the tests use it)

A step is forward + cross-entropy, backward, and an SGD step (momentum 0.9,
weight decay 5e-4) with ``zero_grad``, in float32 and training mode, timed
phase by phase.  The PyTorch model is ``minidl.interop.to_torch`` of the
minidl one (the same layers, widths, pieces, batch-norm placement, pooling and
weights); the two are timed in one process, one step each in turn, after
``--warmup`` steps each.  Every figure is the median over ``--repeat`` steps.

Matrix products: forward hooks record the shape of every convolution and
linear layer's products (forward, and in backward dW and, where the layer's
input needs a gradient, dX); each shape is then timed alone with NumPy.  Their
sum is the step's time in matrix products at NumPy's own rate for those
shapes, "GEMM share" its part of the minidl step, and the GFLOP/s column their
rate, beside NumPy's peak on a large square product.

Peak memory: each framework runs two steps of each model in a child process
of its own (the minidl one never imports torch), which reports its peak
resident set size (VmHWM) and the part of it that the steps added.  The
PyTorch child runs with glibc's own allocator settings
(``MINIDL_HOST_ALLOCATOR=system``), as a PyTorch user has them: minidl's
default setting would raise PyTorch's peak too.  The timed steps of both
share one process and therefore minidl's setting, which makes PyTorch faster
as well.

The benchmark sets its own threads (``--threads``, default 2) for NumPy's BLAS
before NumPy loads, and for PyTorch with ``torch.set_num_threads``; it prints
the BLAS library and the kernel NumPy uses.
"""
import argparse
import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--models", nargs="+", default=None,
                        help="zoo models (default: nin nin-bn min mim, those that exist)")
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--repeat", type=int, default=5, help="timed steps per framework")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes")
    parser.add_argument("--quick", action="store_true",
                        help="small models on 28x28 inputs, batch 4, one step: for the tests")
    parser.add_argument("--memory-child", nargs=3, metavar=("FRAMEWORK", "MODEL", "BATCH"),
                        help=argparse.SUPPRESS)
    return parser


# BLAS reads its thread count once, when NumPy loads it: so before any import of NumPy.
_THREADS = _parser().parse_known_args()[0].threads
os.environ.update({name: str(_THREADS) for name in THREAD_VARIABLES})

import ctypes  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

# minidl before NumPy: it sets OpenBLAS's idle-thread timeout, which BLAS
# reads as NumPy loads it (see minidl.backend).
import minidl  # noqa: E402
import numpy  # noqa: E402

import minidl.functional as F  # noqa: E402
from minidl import models, nn  # noqa: E402
from minidl.data.datasets import dataset_info  # noqa: E402
from minidl.tables import format_table  # noqa: E402

FLAGSHIP = ("nin", "nin-bn", "min", "mim")
QUICK_MODELS = ("nin-small", "min-small")


def blas_description():
    """NumPy's BLAS library, version and the CPU kernel it chose (OpenBLAS tells it)."""
    blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line and ".so" in line}
    for path in paths:
        library = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            corename = getattr(library, symbol, None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                return f"{text}, kernel {corename().decode()}"
    return text


def build(name, dataset, seed=0):
    minidl.manual_seed(seed)
    return models.create(name, dataset)


def batch_of(dataset, batch, seed=0):
    info = dataset_info(dataset)
    rng = numpy.random.default_rng(seed)
    size = 28 if dataset == "digits" else 32
    images = rng.standard_normal((batch, info["channels"], size, size), dtype=numpy.float32)
    labels = rng.integers(0, info["num_classes"], batch)
    return images, labels


class Step:
    """One training step, timed phase by phase: (forward, backward, optimizer) seconds."""

    def __call__(self):
        start = time.perf_counter()
        loss = self.loss()
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad()
        end = time.perf_counter()
        return forward - start, backward - forward, end - backward


class MinidlStep(Step):
    def __init__(self, model, images, labels):
        self.model = model
        self.optimizer = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                          weight_decay=5e-4)
        self.images, self.labels = minidl.tensor(images), minidl.tensor(labels)

    def loss(self):
        return F.cross_entropy(self.model(self.images), self.labels)


class TorchStep(Step):
    """The same step of ``model`` exported to PyTorch (a copy: the same weights)."""

    def __init__(self, model, images, labels):
        import torch
        from minidl import interop
        self.cross_entropy = torch.nn.functional.cross_entropy
        self.model = interop.to_torch(model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                         weight_decay=5e-4)
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)

    def loss(self):
        return self.cross_entropy(self.model(self.images), self.labels)


def time_alternating(steps, repeat, warmup):
    """Median seconds per phase for each step function, one step of each in turn."""
    for _ in range(warmup):
        for step in steps:
            step()
    samples = [[] for _ in steps]
    for _ in range(repeat):
        for step, times in zip(steps, samples):
            times.append(step())
    return [tuple(statistics.median(phase) for phase in zip(*times)) for times in samples]


def gemm_shapes(model, images):
    """(m, k, n) of every matrix product of one training step of ``model`` on ``images``.

    A convolution with weight (O, C, KH, KW) and output (N, O, OH, OW) multiplies
    W (O, K) by col (K, M) with K = C*KH*KW, M = N*OH*OW; backward forms
    dW = dY col^T (K by M by O) and, when its input needs a gradient,
    dcol = W^T dY (K by O by M).  A linear layer (N, in) -> (N, out) likewise.
    The first layer's input (the images) needs no gradient.
    """
    shapes = []

    def record(module, inputs, output):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            o, k = module.weight.shape[0], int(numpy.prod(module.weight.shape[1:]))
            m = output.shape[0] * output.shape[2] * output.shape[3]
            shapes.append((o, k, m))
            shapes.append((k, m, o))
            if x.requires_grad:
                shapes.append((k, o, m))
        elif isinstance(module, nn.Linear):
            o, k = module.weight.shape
            m = x.shape[0]
            shapes.append((m, k, o))
            shapes.append((o, m, k))
            if x.requires_grad:
                shapes.append((m, o, k))

    handles = [module.register_forward_hook(record) for module in model.modules()
               if isinstance(module, (nn.Conv2d, nn.Linear))]
    model(minidl.tensor(images))        # with the graph, so that requires_grad is as in a step
    for handle in handles:
        handle.remove()
    return shapes


def time_gemm(m, k, n, repeat=5):
    """Seconds of one float32 (m, k) @ (k, n) product with NumPy: the fastest of ``repeat``.

    The fastest, not the median: this is NumPy's rate for the shape, which
    other jobs on a shared machine can only slow down.
    """
    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=numpy.float32)
    b = rng.standard_normal((k, n), dtype=numpy.float32)
    out = numpy.empty((m, n), numpy.float32)
    numpy.matmul(a, b, out=out)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        numpy.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_profile(shapes):
    """(seconds, GFLOP/s) of the products alone, each distinct shape timed once."""
    seconds = {shape: time_gemm(*shape) for shape in set(shapes)}
    total = sum(seconds[shape] for shape in shapes)
    flops = sum(2 * m * k * n for m, k, n in shapes)
    return total, flops / total / 1e9


def peak_gflops(size):
    return 2 * size ** 3 / time_gemm(size, size, size) / 1e9


def peak_rss_mib():
    """This process's peak resident set size (VmHWM), in MiB.

    Not ``ru_maxrss``: Linux carries that over from the parent through fork and
    exec, so a child of a process that loaded PyTorch would report PyTorch's size.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


def memory_child(framework, name, batch, dataset):
    """Run in a child: two steps; print peak RSS and what the steps added, in MiB."""
    model = build(name, dataset)
    images, labels = batch_of(dataset, batch)
    step = (MinidlStep if framework == "minidl" else TorchStep)(model, images, labels)
    if framework == "torch":
        del model
    before = peak_rss_mib()
    step()
    step()
    peak = peak_rss_mib()
    print(json.dumps({"peak": peak, "steps": peak - before}))


def measure_memory(framework, name, batch, quick):
    """Peak memory of a child process; PyTorch's runs with glibc's own allocator settings.

    minidl's default allocator setting (``MINIDL_HOST_ALLOCATOR=keep``) raises
    PyTorch's peak too; a PyTorch user has glibc's settings, so they are the
    fair reference for memory.
    """
    command = [sys.executable, __file__, "--threads", str(_THREADS),
               "--memory-child", framework, name, str(batch)] + (["--quick"] if quick else [])
    env = dict(os.environ, MINIDL_HOST_ALLOCATOR="system") if framework == "torch" else None
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.splitlines()[-1])


def torch_or_none(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def run(args):
    """The rows of the speed table and of the products-and-memory table."""
    dataset = "digits" if args.quick else "cifar10"
    torch = torch_or_none(args.threads)
    speed, products = [], []
    for name in args.models:
        for batch in args.batches:
            images, labels = batch_of(dataset, batch)
            model = build(name, dataset)
            steps = [MinidlStep(model, images, labels)]
            if torch is not None:
                steps.append(TorchStep(model, images, labels))
            times = time_alternating(steps, args.repeat, args.warmup)
            ours = sum(times[0])
            row = [name, batch, *(f"{t * 1e3:.3g}" for t in times[0]), f"{batch / ours:.0f}"]
            if torch is not None:
                theirs = sum(times[1])
                row += [*(f"{t * 1e3:.3g}" for t in times[1]), f"{batch / theirs:.0f}",
                        f"{theirs / ours:.2f}"]
            speed.append(row)

            gemm_seconds, gflops = gemm_profile(gemm_shapes(model, images))
            row = [name, batch, f"{gemm_seconds * 1e3:.3g}", f"{gemm_seconds / ours:.0%}",
                   f"{gflops:.0f}"]
            if not args.no_memory:
                mine = measure_memory("minidl", name, batch, args.quick)
                row += [f"{mine['peak']:.0f}", f"{mine['steps']:.0f}"]
                if torch is not None:
                    theirs = measure_memory("torch", name, batch, args.quick)
                    row += [f"{theirs['peak']:.0f}", f"{theirs['steps']:.0f}",
                            f"{mine['peak'] / theirs['peak']:.2f}"]
            products.append(row)
    return speed, products, torch is not None


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.quick:
        args.batches, args.repeat, args.warmup = [4], 1, 1
    if args.memory_child:
        framework, name, batch = args.memory_child
        return memory_child(framework, name, int(batch), "digits" if args.quick else "cifar10")
    available = models.available()
    if args.models is None:
        args.models = [m for m in (QUICK_MODELS if args.quick else FLAGSHIP) if m in available]
    unknown = [m for m in args.models if m not in available]
    if unknown:
        raise SystemExit(f"train_step.py: unknown model(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(available)}")

    peak = peak_gflops(256 if args.quick else 2048)
    load = os.getloadavg()[0]
    print(f"NumPy {numpy.__version__}, {blas_description()}; {args.threads} thread(s) "
          f"(minidl's elementwise passes: {minidl.backend.get_num_threads()}; "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}); "
          f"NumPy's sgemm peak {peak:.0f} GFLOP/s (square product)")
    print(f"float32, training mode, median of {args.repeat} steps after {args.warmup} "
          f"warm-up step(s), alternating; load average {load:.1f} at the start")
    allocator = "keep" if minidl.backend.host_memory_kept else "system"
    print(f"host allocator: MINIDL_HOST_ALLOCATOR={allocator} for the timed steps of both "
          f"frameworks (one process); PyTorch's memory child uses glibc's own settings")
    speed, products, with_torch = run(args)

    header = ["model", "batch", "fwd ms", "bwd ms", "step ms", "img/s"]
    if with_torch:
        header += ["torch fwd", "torch bwd", "torch step", "torch img/s", "minidl/torch"]
    else:
        print("PyTorch is not installed: minidl only")
    print()
    print(format_table(header, speed, align="<" + ">" * (len(header) - 1)))
    header = ["model", "batch", "GEMM ms", "GEMM share", "GEMM GFLOP/s"]
    if not args.no_memory:
        header += ["peak MiB", "step MiB"]
        if with_torch:
            header += ["torch peak MiB", "torch step MiB", "peak minidl/torch"]
    print()
    print(format_table(header, products, align="<" + ">" * (len(header) - 1)))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
