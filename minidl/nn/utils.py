"""Gradient clipping, as ``torch.nn.utils``: ``clip_grad_norm_`` and ``clip_grad_value_``.

Both change the ``.grad`` arrays in place and skip parameters without one.
Nothing is read back to the host (no GPU sync) unless ``error_if_nonfinite``
asks for a check.
"""
import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..functional._checks import check_flag, check_number

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    """The gradient arrays of a Tensor or an iterable of Tensors (None skipped)."""
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients joined into one
    vector (``inf``: the largest absolute value).  When it exceeds
    ``max_norm`` every gradient is multiplied by ``max_norm / (total + 1e-6)``.
    Returns the total norm before clipping, as a 0-d Tensor.  With
    ``error_if_nonfinite`` a NaN or infinite total norm raises RuntimeError
    (and the gradients are left alone).  The gradients must share one device.
    """
    op = "clip_grad_norm_"
    max_norm = check_number(op, "max_norm", max_norm, low=0)
    norm_type = check_number(op, "norm_type", norm_type, low=0, low_open=True)
    check_flag(op, "error_if_nonfinite", error_if_nonfinite)
    grads = _grads(parameters)
    if not grads:
        return Tensor(numpy.zeros((), dtype=numpy.float32))
    xp = backend.get_array_module(grads[0])
    with backend.device_context(grads[0]):
        if math.isinf(norm_type):
            total = xp.stack([abs(g).max() for g in grads]).max()
        else:
            total = xp.stack([(abs(g) ** norm_type).sum() for g in grads]).sum() ** (1 / norm_type)
        if error_if_nonfinite and not bool(xp.isfinite(total)):
            raise RuntimeError(f"{op}: the total norm of order {norm_type} of the gradients is "
                               f"{float(total)}, so they cannot be clipped; pass "
                               f"error_if_nonfinite=False to clip anyway")
        scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g *= scale.astype(g.dtype)
    return Tensor(total)


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient element into [-clip_value, clip_value], in place."""
    clip_value = check_number("clip_grad_value_", "clip_value", clip_value, low=0)
    for g in _grads(parameters):
        xp = backend.get_array_module(g)
        with backend.device_context(g):
            xp.clip(g, -clip_value, clip_value, out=g)
