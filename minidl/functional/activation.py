"""Activation functions: tanh, sigmoid, relu, softmax, log_softmax.

Each is a :class:`~minidl.autograd.Function` with its derivative in the docstring.
"""
from .. import backend
from ..autograd import Function
from .math import _normalize_axes

__all__ = ["tanh", "sigmoid", "relu", "softmax", "log_softmax"]


class Tanh(Function):
    """y = tanh(x);  dx = dy * (1 - y**2)."""

    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y).

    With e = exp(-|x|) <= 1: y = 1 / (1 + e) for x >= 0 and e / (1 + e) for
    x < 0, so exp never overflows and the far negative tail keeps its digits.
    """

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(-abs(x))
        self.y = xp.where(x >= 0, 1, e) / (1 + e)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class ReLU(Function):
    """y = max(x, 0);  dx = dy where x > 0, else 0 (the derivative at 0 is taken as 0)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.positive = x > 0
        return xp.where(self.positive, x, 0).astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * self.positive


class Softmax(Function):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x);  dx = y * (dy - sum(dy * y)).

    Subtracting the maximum changes nothing mathematically and keeps exp finite.
    """

    def forward(self, x, axis):
        xp = backend.get_array_module(x)
        self.axis = axis
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.y = e / e.sum(axis=axis, keepdims=True)
        return self.y

    def backward(self, gy):
        return self.y * (gy - (gy * self.y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - max x - log sum exp(x - max x);  dx = dy - softmax(x) * sum(dy)."""

    def forward(self, x, axis):
        xp = backend.get_array_module(x)
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def softmax(x, axis=-1):
    (axis,) = _normalize_axes(axis, x.ndim, "softmax")
    return Softmax.apply(x, axis)


def log_softmax(x, axis=-1):
    (axis,) = _normalize_axes(axis, x.ndim, "log_softmax")
    return LogSoftmax.apply(x, axis)
