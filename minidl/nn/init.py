"""Weight initialization, with PyTorch's names and formulas (``torch.nn.init``).

Each ``*_`` function overwrites ``tensor.data`` in place, keeping its device
and dtype, and returns the tensor.  Random values are drawn on the host, in
float64, from ``generator`` (a ``numpy.random.Generator``) or else from
:func:`minidl.backend.host_rng` (seeded by ``minidl.manual_seed``), then cast
and copied to the tensor's device: the same seed gives the same weights on
every device.

Fans of a weight of shape (out, in, *kernel): ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)``.

Every argument is checked with the functional ops' validators: ``tensor`` must
be a floating minidl Tensor, the numbers (bounds, std, slope, gain, value) real
numbers and not bools (TypeError), in range (ValueError: ``a <= b``, ``std``
and the Xavier ``gain`` >= 0), ``mode`` is ``"fan_in"`` or ``"fan_out"``, and
``generator`` a ``numpy.random.Generator`` or None.
"""
import math

import numpy

from .. import backend
from ..functional._checks import check_number, check_tensor

__all__ = ["calculate_gain", "calculate_fan_in_and_fan_out", "uniform_", "normal_",
           "constant_", "zeros_", "ones_", "kaiming_uniform_", "kaiming_normal_",
           "xavier_uniform_", "xavier_normal_", "orthogonal_"]

_LINEAR_GAINS = ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The factor by which to scale a weight's std to preserve activation variance.

    linear / identity / conv* / sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu with negative slope ``param`` (default 0.01): sqrt(2 / (1 + param**2));
    selu: 3/4.
    """
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_number("calculate_gain", "param", param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_GAINS + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight shaped (out, in) or (out, in, kh, kw, ...)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan_in and fan_out need a weight with at least 2 dimensions "
                         f"(out, in, ...), got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(fn_name, tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn_name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    """Write host ``values`` into ``tensor.data`` in place (cast to its dtype, on its device)."""
    tensor.data[...] = backend.to_device(numpy.asarray(values, dtype=tensor.dtype), tensor.device)
    return tensor


def _rng(fn_name, generator):
    """``generator``, or the seeded host generator when it is None."""
    if generator is None:
        return backend.host_rng()
    if not isinstance(generator, numpy.random.Generator):
        raise TypeError(f"{fn_name}: generator must be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples of U(a, b); ``a <= b`` are real numbers."""
    check_tensor("uniform_", "tensor", tensor)
    a = check_number("uniform_", "a", a)
    b = check_number("uniform_", "b", b, low=a)     # an empty interval is a mistake
    return _fill(tensor, _rng("uniform_", generator).uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples of N(mean, std**2); ``std`` >= 0."""
    check_tensor("normal_", "tensor", tensor)
    mean, std = check_number("normal_", "mean", mean), check_number("normal_", "std", std, low=0)
    return _fill(tensor, _rng("normal_", generator).normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    """Fill with the value ``val``."""
    check_tensor("constant_", "tensor", tensor)
    tensor.data[...] = check_number("constant_", "val", val)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015) uniform: U(-bound, bound), bound = gain * sqrt(3 / fan).

    ``gain = calculate_gain(nonlinearity, a)``; ``fan`` is fan_in or fan_out
    (``mode``).  The defaults give gain sqrt(2), as for relu.  Linear and
    Conv2d layers use ``a=sqrt(5)``, that is bound = 1 / sqrt(fan_in).
    """
    fn_name = "kaiming_uniform_"
    check_tensor(fn_name, "tensor", tensor)
    gain = calculate_gain(nonlinearity, check_number(fn_name, "a", a))
    bound = gain * math.sqrt(3.0 / _fan(fn_name, tensor, mode))
    return _fill(tensor, _rng(fn_name, generator).uniform(-bound, bound, size=tensor.shape))


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015) normal: N(0, std**2), std = gain / sqrt(fan) (see kaiming_uniform_)."""
    fn_name = "kaiming_normal_"
    check_tensor(fn_name, "tensor", tensor)
    gain = calculate_gain(nonlinearity, check_number(fn_name, "a", a))
    std = gain / math.sqrt(_fan(fn_name, tensor, mode))
    return _fill(tensor, _rng(fn_name, generator).normal(0.0, std, size=tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010) uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fn_name = "xavier_uniform_"
    check_tensor(fn_name, "tensor", tensor)
    gain = check_number(fn_name, "gain", gain, low=0)     # the bound or std it scales
    bound = gain * math.sqrt(6.0 / sum(calculate_fan_in_and_fan_out(tensor)))
    return _fill(tensor, _rng(fn_name, generator).uniform(-bound, bound, size=tensor.shape))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010) normal: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fn_name = "xavier_normal_"
    check_tensor(fn_name, "tensor", tensor)
    gain = check_number(fn_name, "gain", gain, low=0)     # the bound or std it scales
    std = gain * math.sqrt(2.0 / sum(calculate_fan_in_and_fan_out(tensor)))
    return _fill(tensor, _rng(fn_name, generator).normal(0.0, std, size=tensor.shape))


def orthogonal_(tensor, gain=1.0, generator=None):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, times ``gain``.

    The weight is viewed as a (rows = out, cols = in * prod(kernel)) matrix W.
    The Q factor of the QR decomposition of a standard normal matrix, with
    each column's sign fixed by the sign of R's diagonal (which makes Q
    uniformly distributed over orthogonal matrices), gives W W^T = I when
    rows <= cols and W^T W = I otherwise.
    """
    check_tensor("orthogonal_", "tensor", tensor)
    gain = check_number("orthogonal_", "gain", gain)
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: needs a tensor with at least 2 dimensions, "
                         f"got shape {tensor.shape}")
    rows, cols = tensor.shape[0], tensor.numel() // tensor.shape[0]
    gaussian = _rng("orthogonal_", generator).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = numpy.linalg.qr(gaussian)
    q = q * numpy.sign(numpy.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
