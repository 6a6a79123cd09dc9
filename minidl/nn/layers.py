"""Layers: thin :class:`Module` wrappers that own parameters and call :mod:`minidl.functional`.

Each layer checks the shape of its input and names itself and the shape it
expected when the input does not fit.  Parameters are initialized on the host
in float32 (or ``dtype``) from ``minidl.backend.host_rng()`` with PyTorch's
default formulas, then moved to the default device
(``minidl.backend.get_default_device()``).
"""
import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..functional import (avg_pool2d, batch_norm, conv2d, dropout, global_avg_pool2d, linear,
                          max_pool2d, maxout, relu)
from ..functional._window import as_pair
from . import init
from .module import Module, Parameter

__all__ = ["Sequential", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "Maxout", "ReLU",
           "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Dropout", "Flatten"]


def _positive_int(value, name, layer):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return value


def _pair(value, name, layer, minimum):
    """An int or a pair of ints (each >= ``minimum``) as a pair; the functional ops' rule."""
    pair = as_pair(layer, name, value)
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return pair


def _float_parameter(shape, dtype, layer):
    """A host Parameter of ``shape`` and floating ``dtype``, to be filled by an initializer."""
    dtype = numpy.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{layer}: dtype must be a floating type, got {dtype}")
    return Parameter(numpy.zeros(shape, dtype=dtype))


def _init_weight_and_bias(weight, bias):
    """PyTorch's default for Linear and Conv2d: weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    The weight bound comes from Kaiming-uniform with a = sqrt(5):
    gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    """
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(bias, -bound, bound)


def _check_image(layer, x):
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = x.shape if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{layer}: expected input of shape (N, C, H, W), got {shape}")


class Sequential(Module):
    """The given modules applied in turn; indexable (``seq[0]``, ``seq[1:]``) and iterable."""

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, "
                                f"not a Module")
            setattr(self, str(i), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"Sequential index {index} is out of range for "
                             f"{len(modules)} module(s)")
        return modules[index]

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features); x: (..., in_features)."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        self.weight = _float_parameter((out_features, in_features), dtype, "Linear")
        self.register_parameter("bias", _float_parameter((out_features,), dtype, "Linear")
                                if bias else None)
        _init_weight_and_bias(self.weight, self.bias)
        self.to(backend.get_default_device())

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear: input must be a minidl Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            got = f"{x.shape[-1]} features in its last axis" if x.ndim else "no axes"
            raise ValueError(f"Linear(in_features={self.in_features}): input has {got}, "
                             f"expected {self.in_features}")
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D cross-correlation of NCHW input with a weight of shape (out, in, kh, kw), plus bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype="float32"):
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        self.weight = _float_parameter((out_channels, in_channels) + self.kernel_size, dtype,
                                       "Conv2d")
        self.register_parameter("bias", _float_parameter((out_channels,), dtype, "Conv2d")
                                if bias else None)
        _init_weight_and_bias(self.weight, self.bias)
        self.to(backend.get_default_device())

    def forward(self, x):
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"Conv2d(in_channels={self.in_channels}): expected input of shape "
                             f"(N, {self.in_channels}, H, W), got {shape}")
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text + ("" if self.bias is not None else ", bias=False")


class _BatchNorm(Module):
    """Batch normalization over the feature axis 1 (see ``minidl.functional.batch_norm``).

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``
    (an int64 count of training batches).  Training normalizes with the batch
    statistics and updates the running ones; evaluation uses the running ones.
    """

    _layout = None     # the expected input shape, "{C}" standing for num_features

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype="float32"):
        super().__init__()
        name = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = eps, momentum
        self.weight = init.ones_(_float_parameter((num_features,), dtype, name))
        self.bias = _float_parameter((num_features,), dtype, name)
        self.register_buffer("running_mean", Tensor(numpy.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_var", Tensor(numpy.ones(num_features, dtype=dtype)))
        self.register_buffer("num_batches_tracked", Tensor(numpy.zeros((), dtype=numpy.int64)))
        self.to(backend.get_default_device())

    def forward(self, x):
        expected = self._layout.format(C=self.num_features)
        if not isinstance(x, Tensor) or x.ndim != expected.count(",") + 1 \
                or x.shape[1] != self.num_features:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}(num_features={self.num_features}): "
                             f"expected input of shape {expected}, got {shape}")
        y = batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                       training=self.training, momentum=self.momentum, eps=self.eps)
        if self.training:
            self.num_batches_tracked.data += 1
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) input: statistics per feature over the batch."""

    _layout = "(N, {C})"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input: statistics per channel over N, H and W."""

    _layout = "(N, {C}, H, W)"


class Maxout(Module):
    """Maxout along ``axis``: output channel j = max of input channels [j*pieces, (j+1)*pieces)."""

    def __init__(self, pieces, axis=1):
        super().__init__()
        self.pieces = _positive_int(pieces, "pieces", "Maxout")
        self.axis = axis

    def forward(self, x):
        name = f"Maxout(pieces={self.pieces}, axis={self.axis})"
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"{name}: input of shape {x.shape} has no axis {self.axis}")
        if x.shape[self.axis] % self.pieces:
            raise ValueError(f"{name}: input has {x.shape[self.axis]} channels along axis "
                             f"{self.axis}, expected a multiple of {self.pieces}")
        return maxout(x, self.pieces, axis=self.axis)

    def extra_repr(self):
        return f"pieces={self.pieces}, axis={self.axis}"


class ReLU(Module):
    """y = max(x, 0), elementwise."""

    def forward(self, x):
        return relu(x)


class _Pool2d(Module):
    _pool = None     # the functional op, a staticmethod set by subclasses

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        _check_image(f"{type(self).__name__}(kernel_size={self.kernel_size})", x)
        return self._pool(x, self.kernel_size, stride=self.stride, padding=self.padding,
                          ceil_mode=self.ceil_mode)

    def extra_repr(self):
        stride = self.kernel_size if self.stride is None else self.stride
        return (f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2d(_Pool2d):
    """Max over each window of NCHW input (padding counts as -inf); stride defaults to kernel."""

    _pool = staticmethod(max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean over each window of NCHW input.  ``stride`` defaults to the kernel."""

    _pool = staticmethod(avg_pool2d)


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        _check_image("GlobalAvgPool2d", x)
        return global_avg_pool2d(x)


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1 / (1 - p).

    In evaluation (``eval()``) it returns its input unchanged.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Join the axes from ``start_dim`` on into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        if not -x.ndim <= self.start_dim < x.ndim:
            raise ValueError(f"Flatten(start_dim={self.start_dim}): input of shape {x.shape} "
                             f"has no axis {self.start_dim}")
        return x.reshape(x.shape[:self.start_dim % x.ndim] + (-1,))

    def extra_repr(self):
        return f"start_dim={self.start_dim}"
