"""Numerical gradient checking: does a backward pass agree with central differences?

For a function ``f`` and a fixed random ``r`` shaped like its output, let
``L(x) = sum(f(x) * r)``.  The analytic gradient is what ``backward(r)``
puts in ``x.grad``; the numeric one is, element by element,

    dL/dx_i  ~=  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),

whose error is O(eps**2) for smooth f.  In float64 with ``eps = 1e-6`` the
difference between the two is about 1e-9 for a correct gradient, so the
default tolerances (``atol=1e-5``, ``rtol=1e-3``) fail a wrong gradient and pass
a right one.  Float32 has too few digits for this test, so inputs must be
float64 (``x.double()``).  At kinks (relu at 0, ties of max) the function is
not differentiable: keep test points away from them.
"""
import numpy

from . import backend
from .autograd import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """A backward pass disagrees with central differences; the message says where."""


def _loss(fn, inputs, weights):
    with no_grad():
        out = fn(*inputs)
    return float(backend.to_numpy((out.data * weights).sum()))


def _elements(shape, max_elements, rng):
    """Multi-indices to check: all, or a seeded random subset of ``max_elements``."""
    size = int(numpy.prod(shape))
    flat = numpy.arange(size)
    if size > max_elements:
        flat = numpy.sort(rng.choice(size, max_elements, replace=False))
    return [numpy.unravel_index(i, shape) for i in flat]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_elements=1000, seed=0):
    """Check ``fn``'s gradients against central differences; True or :class:`GradcheckError`.

    ``fn`` takes the ``inputs`` (tensors; those with ``requires_grad=True`` are
    checked, each must be float64) and returns one tensor.  An element passes
    when ``|numeric - analytic| <= atol + rtol * |numeric|``.  Inputs with more
    than ``max_elements`` elements are checked on a random subset chosen by
    ``seed``.  The error names the input, the worst element's index, both
    values and the error.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; central "
                            f"differences need float64 (use x.double())")
    leaves = [Tensor(x.data.copy(), requires_grad=x.requires_grad) for x in inputs]
    out = fn(*leaves)
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise ValueError("gradcheck: fn must return a Tensor computed from the checked inputs")
    rng = numpy.random.default_rng(seed)
    xp = backend.get_array_module(out.data)
    weights = backend.to_device(rng.standard_normal(out.shape), out.device).astype(out.dtype)
    out.backward(weights)

    for i in checked:
        leaf = leaves[i]
        analytic = backend.to_numpy(leaf.grad if leaf.grad is not None
                                    else xp.zeros(leaf.shape, leaf.dtype))
        worst = None
        for index in _elements(leaf.shape, max_elements, rng):
            original = leaf.data[index].copy()
            leaf.data[index] = original + eps
            plus = _loss(fn, leaves, weights)
            leaf.data[index] = original - eps
            minus = _loss(fn, leaves, weights)
            leaf.data[index] = original
            numeric = (plus - minus) / (2 * eps)
            error = abs(numeric - analytic[index])
            excess = error / (atol + rtol * abs(numeric))
            if not numpy.isfinite(excess):          # a NaN or inf gradient must fail, not hide
                excess = numpy.inf
            if worst is None or excess > worst[0]:
                worst = (excess, index, numeric, analytic[index], error)
        if worst is not None and worst[0] > 1:
            _, index, numeric, value, error = worst
            raise GradcheckError(
                f"gradient check failed for input {i} (shape {leaf.shape}) at index "
                f"{tuple(int(k) for k in index)}: numeric {numeric:.10g}, analytic {value:.10g}, "
                f"|error| {error:.3g} > atol + rtol * |numeric| = "
                f"{atol + rtol * abs(numeric):.3g}")
    return True
