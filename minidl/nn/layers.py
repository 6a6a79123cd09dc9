"""Layers: thin :class:`Module` wrappers that own parameters and call :mod:`minidl.functional`.

Every argument is checked at construction with the functional ops' validators
(``minidl.functional._checks`` and ``_window``), so a bad one fails where it is
written, not at the first forward pass, with the same wording as the ops and
the layer's class name as the owner: ``"MaxPool2d: kernel_size must be
positive, got (0, 0)"``.  A wrong type raises TypeError, a value out of range
ValueError.  Each layer states the input rank it expects (``input_ndim``) and
checks its input against it in ``forward``.

Parameters are initialized on the host in float32 (or ``dtype``) from
``minidl.backend.host_rng()`` with PyTorch's default formulas, then moved to
the default device (``minidl.backend.get_default_device()``).
"""
import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..functional import (avg_pool2d, batch_norm, conv2d, dropout, flatten, global_avg_pool2d,
                          linear, max_pool2d, maxout, relu)
from ..functional._checks import check_flag, check_float_dtype, check_number, check_tensor
from ..functional._window import check_groups, check_pair, conv_padding, pool_arguments
from . import init
from .module import Module, Parameter

__all__ = ["Sequential", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "Maxout", "ReLU",
           "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Dropout", "Flatten"]


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


class _Layer(Module):
    """A layer: knows the input it expects and checks it, naming itself, in ``forward``."""

    input_ndim = None        # the expected input rank: an int, a tuple of ranks, None for any
    input_floating = True    # whether the input must be floating point (as the op requires)

    def _check_input(self, x):
        """``x`` if it is a Tensor of ``input_ndim`` axes (floating if required), else an error."""
        return check_tensor(type(self).__name__, "input", x, self.input_ndim,
                            self.input_floating)

    def _check_channels(self, x, name, expected, axis=1):
        """Axis ``axis`` of ``x`` must have ``expected`` entries, the layer's argument ``name``."""
        if x.shape[axis] != expected:
            raise ValueError(f"{type(self).__name__}({name}={expected}): input has "
                             f"{x.shape[axis]} channels in axis {axis} (shape {x.shape}), "
                             f"expected {expected}")


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


class Linear(_Layer):
    """y = x W^T + b, with W of shape (out_features, in_features); x: (..., in_features).

    Checks: the sizes are positive ints, ``bias`` is a bool, ``dtype`` floating.
    """

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        name = type(self).__name__
        self.in_features = check_number(name, "in_features", in_features, integer=True, low=1)
        self.out_features = check_number(name, "out_features", out_features, integer=True, low=1)
        check_flag(name, "bias", bias)
        dtype = check_float_dtype(name, "dtype", dtype)
        self.weight = Parameter(numpy.zeros((self.out_features, self.in_features), dtype))
        self.register_parameter("bias", Parameter(numpy.zeros(self.out_features, dtype))
                                if bias else None)
        self.reset_parameters()
        self.to(backend.get_default_device())

    def reset_parameters(self):
        """Draw the weight and bias again with PyTorch's default (see ``_init_weight_and_bias``)."""
        _init_weight_and_bias(self.weight, self.bias)

    def forward(self, x):
        x = self._check_input(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            got = f"{x.shape[-1]} features in its last axis" if x.ndim else "no axes"
            raise ValueError(f"{type(self).__name__}(in_features={self.in_features}): input has "
                             f"{got}, expected {self.in_features}")
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(_Layer):
    """2-D cross-correlation of (N, C, H, W) or (C, H, W) input, plus bias (``F.conv2d``).

    The weight has shape (out_channels, in_channels / groups, kh, kw); it and
    the bias start as PyTorch's do, from fan_in = in_channels / groups * kh * kw.

    Checks (the rules of ``F.conv2d``): the channel counts are positive ints
    divisible by ``groups``; ``kernel_size``, ``stride`` and ``dilation``
    positive and ``padding`` non-negative ints or (h, w) pairs, or padding
    ``"same"`` (stride 1 only) or ``"valid"``; ``bias`` a bool, ``dtype``
    floating.
    """

    input_ndim = (3, 4)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype="float32"):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_number(name, "in_channels", in_channels, integer=True, low=1)
        self.out_channels = check_number(name, "out_channels", out_channels, integer=True, low=1)
        self.kernel_size = check_pair(name, "kernel_size", kernel_size, 1)
        self.stride = check_pair(name, "stride", stride, 1)
        self.dilation = check_pair(name, "dilation", dilation, 1)
        pair, _ = conv_padding(name, padding, self.kernel_size, self.stride, self.dilation)
        self.padding = padding if isinstance(padding, str) else pair     # kept as PyTorch does
        self.groups = check_groups(name, groups, ("in_channels", self.in_channels),
                                   ("out_channels", self.out_channels))
        check_flag(name, "bias", bias)
        dtype = check_float_dtype(name, "dtype", dtype)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(numpy.zeros(shape, dtype))
        self.register_parameter("bias", Parameter(numpy.zeros(self.out_channels, dtype))
                                if bias else None)
        self.reset_parameters()
        self.to(backend.get_default_device())

    def reset_parameters(self):
        """Draw the weight and bias again with PyTorch's default (see ``_init_weight_and_bias``)."""
        _init_weight_and_bias(self.weight, self.bias)

    def forward(self, x):
        x = self._check_input(x)
        self._check_channels(x, "in_channels", self.in_channels, axis=x.ndim - 3)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def extra_repr(self):
        """PyTorch's text: the options that differ from their defaults are shown."""
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class _BatchNorm(_Layer):
    """Batch normalization over the feature axis 1 (see ``minidl.functional.batch_norm``).

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros), both None
    when ``affine`` is false (``bias`` alone with ``bias=False``); buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``
    (an int64 count of training batches), all None when ``track_running_stats``
    is false.  Training normalizes with the batch statistics and updates the
    running ones; evaluation uses the running ones, or the batch's when there
    are none.  After the t-th training batch,

        running = (1 - a) * running + a * batch statistic,
        a = momentum, or a = 1 / t when momentum is None,

    so momentum None makes the running statistics the plain (cumulative)
    average of the t batch statistics, as in PyTorch.

    Checks: ``num_features`` is a positive int, ``eps`` a real number > 0,
    ``momentum`` None or a real number in [0, 1], ``affine``,
    ``track_running_stats`` and ``bias`` bools, ``dtype`` floating.
    """

    # state dicts saved before num_batches_tracked existed lack it: loading keeps the count
    _optional_state = frozenset({"num_batches_tracked"})

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype="float32", *, bias=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_number(name, "num_features", num_features, integer=True, low=1)
        self.eps = check_number(name, "eps", eps, low=0, low_open=True)
        self.momentum = (None if momentum is None else
                         check_number(name, "momentum", momentum, low=0, high=1))
        self.affine = check_flag(name, "affine", affine)
        self.track_running_stats = check_flag(name, "track_running_stats", track_running_stats)
        check_flag(name, "bias", bias)
        dtype = check_float_dtype(name, "dtype", dtype)
        features = numpy.zeros(self.num_features, dtype)
        self.register_parameter("weight", Parameter(features.copy()) if affine else None)
        self.register_parameter("bias", Parameter(features.copy()) if affine and bias else None)
        for buffer, value in (("running_mean", features), ("running_var", features),
                              ("num_batches_tracked", numpy.zeros((), dtype=numpy.int64))):
            self.register_buffer(buffer, Tensor(value.copy()) if track_running_stats else None)
        self.reset_parameters()
        self.to(backend.get_default_device())

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches tracked (nothing without the buffers)."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        """The running statistics reset, and gamma 1, beta 0 (where the layer has them)."""
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def _average_factor(self):
        """The weight ``a`` of this batch's statistics in the running ones (class docstring).

        momentum None needs the batch count on the host: one device sync per step.
        """
        if self.momentum is not None:
            return self.momentum
        if not (self.training and self.track_running_stats):
            return 0.0      # nothing is updated
        return 1.0 / (int(self.num_batches_tracked.data) + 1)

    def forward(self, x):
        """As in PyTorch: the batch statistics normalize in training and wherever the
        running ones are absent; the running ones are updated in training only, and
        only with ``track_running_stats``."""
        self._check_channels(self._check_input(x), "num_features", self.num_features)
        tracking = self.training and self.track_running_stats
        stats = ((self.running_mean, self.running_var) if tracking or not self.training
                 else (None, None))
        y = self._batch_norm(x, *stats, training=self.training or self.running_mean is None,
                             momentum=self._average_factor())
        if tracking:
            self.num_batches_tracked.data += 1
        return y

    def _batch_norm(self, x, running_mean, running_var, training, momentum):
        """The op itself (``SyncBatchNorm`` takes its statistics over all processes)."""
        return batch_norm(x, self.weight, self.bias, running_mean, running_var,
                          training=training, momentum=momentum, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) input: statistics per feature over N (and L)."""

    input_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input: statistics per channel over N, H and W."""

    input_ndim = 4


class Maxout(_Layer):
    """Maxout along ``axis``: output channel j = max of input channels [j*pieces, (j+1)*pieces).

    Checks: ``pieces`` is a positive int, ``axis`` an int (that the input must have).
    """

    input_floating = False     # F.maxout takes integer tensors too

    def __init__(self, pieces, axis=1):
        super().__init__()
        self.pieces = check_number(type(self).__name__, "pieces", pieces, integer=True, low=1)
        self.axis = check_number(type(self).__name__, "axis", axis, integer=True)

    def forward(self, x):
        x = self._check_input(x)
        name = f"{type(self).__name__}(pieces={self.pieces}, axis={self.axis})"
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"{name}: input of shape {x.shape} has no axis {self.axis}")
        if x.shape[self.axis] % self.pieces:
            raise ValueError(f"{name}: input has {x.shape[self.axis]} channels along axis "
                             f"{self.axis}, expected a multiple of {self.pieces}")
        return maxout(x, self.pieces, axis=self.axis)

    def extra_repr(self):
        return f"pieces={self.pieces}, axis={self.axis}"


class ReLU(_Layer):
    """y = max(x, 0), elementwise."""

    input_floating = False     # F.relu takes integer tensors too

    def forward(self, x):
        return relu(self._check_input(x))


class _Pool2d(_Layer):
    """Pooling of NCHW (or unbatched CHW) input; the arguments are kept as given, as in PyTorch.

    Checks (the rule of the functional ops): ``kernel_size`` and ``stride``
    (None: the kernel) are positive ints or (h, w) pairs, ``padding`` is
    between 0 and half the kernel, ``ceil_mode`` is a bool.
    """

    input_ndim = (3, 4)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        pool_arguments(name, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = check_flag(name, "ceil_mode", ceil_mode)

    def extra_repr(self):
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over each window of NCHW input (padding counts as -inf); stride defaults to kernel.

    ``dilation`` spaces the window's taps (a positive int or pair);
    ``return_indices`` makes the layer return ``(output, indices)`` as
    ``F.max_pool2d`` does.  PyTorch's argument order: ``return_indices``
    comes before ``ceil_mode`` here, after it in ``F.max_pool2d``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        name = type(self).__name__
        check_pair(name, "dilation", dilation, 1)
        self.dilation = dilation
        self.return_indices = check_flag(name, "return_indices", return_indices)

    def forward(self, x):
        return max_pool2d(self._check_input(x), self.kernel_size, self.stride, self.padding,
                          self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self):
        text = f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        return text + (", return_indices=True" if self.return_indices else "")


class AvgPool2d(_Pool2d):
    """Mean over each window of NCHW input.  ``stride`` defaults to the kernel.

    ``count_include_pad`` (a bool) and ``divisor_override`` (None or a
    positive int) choose the divisor as in ``F.avg_pool2d``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        name = type(self).__name__
        self.count_include_pad = check_flag(name, "count_include_pad", count_include_pad)
        if divisor_override is not None:
            check_number(name, "divisor_override", divisor_override, integer=True, low=1)
        self.divisor_override = divisor_override

    def forward(self, x):
        return avg_pool2d(self._check_input(x), self.kernel_size, self.stride, self.padding,
                          self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        text = f"{super().extra_repr()}, ceil_mode={self.ceil_mode}"
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        if self.divisor_override is not None:
            text += f", divisor_override={self.divisor_override}"
        return text


class GlobalAvgPool2d(_Layer):
    """Mean over H and W: (N, C, H, W) -> (N, C), or unbatched (C, H, W) -> (C,)."""

    input_ndim = (3, 4)

    def forward(self, x):
        return global_avg_pool2d(self._check_input(x))


class Dropout(_Layer):
    """In training, zero each element with probability p and scale the rest by 1 / (1 - p).

    In evaluation (``eval()``) it returns its input unchanged.  Checks: ``p``
    is a real number in [0, 1) (1 would zero everything and divide by 0).
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = check_number(type(self).__name__, "p", p, low=0, high=1, high_open=True)

    def forward(self, x):
        return dropout(self._check_input(x), self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(_Layer):
    """Join the axes ``start_dim`` to ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default.

    Checks: ``start_dim`` and ``end_dim`` are ints (axes the input must have).
    """

    input_floating = False     # a reshape works on any dtype

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        name = type(self).__name__
        self.start_dim = check_number(name, "start_dim", start_dim, integer=True)
        self.end_dim = check_number(name, "end_dim", end_dim, integer=True)

    def forward(self, x):
        return flatten(self._check_input(x), self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
