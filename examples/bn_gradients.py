"""Batch-norm backward three ways: they agree, and the closed form is the fastest.

    python examples/bn_gradients.py [--shape 64 32 8 8]

1. autograd: batch norm written with elementary minidl ops (mean, subtraction,
   sqrt, ...); the engine chains their hand-written backward functions;
2. the paper: Ioffe & Szegedy's step-by-step chain rule (dxhat, dvar, dmu, dx),
   written out in NumPy;
3. the closed form minidl uses (``minidl/functional/normalization.py``):
   dx = gamma * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat)).

docs/batch_norm.md derives 3 from 2.
"""
import argparse
import time

import numpy

import minidl
import minidl.functional as F
from minidl.tables import format_table

EPS = 1e-5


def bn_by_autograd(x, gamma, beta):
    """Batch norm from elementary ops; autograd differentiates it."""
    axes = (0, 2, 3)
    mu = x.mean(axis=axes, keepdims=True)
    centered = x - mu
    var = (centered * centered).mean(axis=axes, keepdims=True)
    xhat = centered / (var + EPS).sqrt()
    return xhat * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


def bn_backward_paper(x, gamma, dy):
    """The chain rule of Ioffe & Szegedy (2015), Section 3, one step at a time."""
    axes = (0, 2, 3)
    m = x.size // x.shape[1]
    g = gamma.reshape(1, -1, 1, 1)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mu) / numpy.sqrt(var + EPS)
    dxhat = dy * g
    dvar = (dxhat * (x - mu)).sum(axis=axes, keepdims=True) * -0.5 * (var + EPS) ** -1.5
    dmu = (-dxhat / numpy.sqrt(var + EPS)).sum(axis=axes, keepdims=True) \
        + dvar * (-2 * (x - mu)).sum(axis=axes, keepdims=True) / m
    dx = dxhat / numpy.sqrt(var + EPS) + dvar * 2 * (x - mu) / m + dmu / m
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def main(argv=None):
    parser = argparse.ArgumentParser(description="Batch-norm backward three ways")
    parser.add_argument("--shape", type=int, nargs=4, default=[64, 32, 8, 8], metavar=("N", "C", "H", "W"))
    args = parser.parse_args(argv)
    rng = numpy.random.default_rng(0)
    x_np = rng.standard_normal(args.shape) * 3 + 1
    gamma_np, beta_np = rng.uniform(0.5, 2, args.shape[1]), rng.standard_normal(args.shape[1])
    dy = rng.standard_normal(args.shape)

    def run(forward):
        x = minidl.tensor(x_np, requires_grad=True)
        gamma, beta = minidl.tensor(gamma_np, requires_grad=True), minidl.tensor(beta_np, requires_grad=True)
        forward(x, gamma, beta).backward(dy)
        return x.grad, gamma.grad, beta.grad

    results = {}
    results["autograd of elementary ops"] = timed(lambda: run(bn_by_autograd))
    results["paper's chain rule (NumPy)"] = timed(lambda: bn_backward_paper(x_np, gamma_np, dy))
    results["closed form (F.batch_norm)"] = timed(lambda: run(lambda x, g, b: F.batch_norm(x, g, b)))

    reference = results["closed form (F.batch_norm)"][0]
    print(f"batch norm on x of shape {tuple(args.shape)}, float64")
    rows = [(name, f"{seconds * 1e3:.2f}", f"{numpy.abs(dx - reference[0]).max():.2e}",
             f"{numpy.abs(dgamma - reference[1]).max():.2e}")
            for name, ((dx, dgamma, _), seconds) in results.items()]
    print(format_table(("method", "time (ms)", "max |dx - closed|", "max |dgamma - closed|"),
                       rows, align="<>>>"))
    worst = max(numpy.abs(r[0][0] - reference[0]).max() for r in results.values())
    print(f"\nall three agree to {worst:.1e}")
    return results


if __name__ == "__main__":
    main()
