"""Forward + backward time of the NIN/MIN layers, minidl vs PyTorch (when installed).

    python benchmarks/layers.py                 # CPU, float32
    python benchmarks/layers.py --device cuda   # GPU (CuPy vs PyTorch CUDA)

Each row is the median of ``--repeat`` timed runs after one warm-up run; the
ratio is minidl's time over PyTorch's (below 1: minidl is faster).
"""
import argparse
import statistics
import time

import numpy

import minidl
import minidl.functional as F
from minidl import backend
from minidl.tables import format_table

CASES = {
    "conv2d 5x5 96->192": dict(x=(128, 96, 16, 16), w=(192, 96, 5, 5)),
    "batch_norm train": dict(x=(128, 192, 32, 32)),
    "maxout pieces=2": dict(x=(128, 384, 32, 32)),
    "max_pool2d 3x3/2 ceil": dict(x=(128, 192, 32, 32)),
}


def minidl_case(name, shapes, device):
    rng = numpy.random.default_rng(0)

    def make(shape, requires_grad=True):
        return minidl.tensor(rng.standard_normal(shape, dtype=numpy.float32),
                             requires_grad=requires_grad, device=device)
    x = make(shapes["x"])
    if name.startswith("conv2d"):
        w, b = make(shapes["w"]), make(shapes["w"][:1])
        return lambda: F.conv2d(x, w, b, padding=2)
    if name.startswith("batch_norm"):
        c = shapes["x"][1]
        gamma, beta = make((c,)), make((c,))
        mean = minidl.tensor(numpy.zeros(c, numpy.float32), device=device)
        var = minidl.tensor(numpy.ones(c, numpy.float32), device=device)
        return lambda: F.batch_norm(x, gamma, beta, mean, var, training=True)
    if name.startswith("maxout"):
        return lambda: F.maxout(x, 2)
    return lambda: F.max_pool2d(x, 3, 2, ceil_mode=True)


def torch_case(name, shapes, device):
    import torch
    import torch.nn.functional as tF

    def make(shape):
        return torch.randn(*shape, device=device, requires_grad=True)
    x = make(shapes["x"])
    if name.startswith("conv2d"):
        w, b = make(shapes["w"]), make(shapes["w"][:1])
        return lambda: tF.conv2d(x, w, b, padding=2)
    if name.startswith("batch_norm"):
        c = shapes["x"][1]
        gamma, beta = make((c,)), make((c,))
        mean, var = torch.zeros(c, device=device), torch.ones(c, device=device)
        return lambda: tF.batch_norm(x, mean, var, gamma, beta, training=True)
    if name.startswith("maxout"):
        n, c, h, w_ = shapes["x"]
        return lambda: x.view(n, c // 2, 2, h, w_).max(2).values
    return lambda: tF.max_pool2d(x, 3, 2, ceil_mode=True)


def time_step(forward, backward, sync, repeat):
    """Median seconds of forward + backward with a fixed upstream gradient."""
    times = []
    for i in range(repeat + 1):
        sync()
        start = time.perf_counter()
        backward(forward())
        sync()
        if i:                      # the first run warms caches and allocators
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch CPU threads (default: its own choice)")
    args = parser.parse_args(argv)

    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    print(f"device {args.device}, float32, median of {args.repeat} runs (ms, forward + backward)")
    rows = []
    for name, shapes in CASES.items():
        forward = minidl_case(name, shapes, args.device)
        grad = forward().data.copy()
        ours = time_step(forward, lambda y: y.backward(grad),
                         lambda: backend.synchronize(args.device), args.repeat)
        theirs = ratio = ""
        if torch is not None:
            tdev = "cuda" if args.device.startswith("cuda") else "cpu"
            tforward = torch_case(name, shapes, tdev)
            tgrad = torch.randn_like(tforward())
            sync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
            t = time_step(tforward, lambda y: y.backward(tgrad), sync, args.repeat)
            theirs, ratio = f"{t * 1e3:.1f}", f"{ours / t:.2f}"
        rows.append((name, "x".join(map(str, shapes["x"])), f"{ours * 1e3:.1f}", theirs, ratio))
    print(format_table(("layer", "shape", "minidl", "pytorch", "ratio"), rows, align="<<>>>"))


if __name__ == "__main__":
    main()
