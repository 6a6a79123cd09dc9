"""Differentiable operations, each with a hand-written forward and backward.

``import minidl.functional as F`` gives the PyTorch-like functional API.
Importing this package also attaches the operators (``+``, ``@``, ``x.sum()``,
``x[i]``, ...) to :class:`minidl.Tensor`, as Chainer does for its Variable: the
autograd core stays free of any particular operation.
"""
from ..autograd import Tensor
from .activations import log_softmax, relu, sigmoid, softmax, tanh
from .arithmetic import add, div, exp, log, matmul, mul, neg, pow, sqrt, sub
from .comparisons import eq, ge, gt, le, lt, ne
from .conv import conv2d
from .dropout import dropout
from .linear import linear
from .loss import cross_entropy, mse_loss, nll_loss
from .maxout import maxout
from .normalization import batch_norm
from .pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from .reductions import argmax, max, mean, sum
from .shapes import (cat, clone, concatenate, flatten, getitem, permute, reshape, squeeze, stack,
                     to, transpose, unsqueeze)

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt",
           "sum", "mean", "max", "argmax", "reshape", "flatten", "squeeze", "unsqueeze",
           "permute", "transpose", "getitem", "concatenate", "cat", "stack", "clone", "to",
           "lt", "le", "gt", "ge", "eq", "ne",
           "tanh", "sigmoid", "relu", "softmax", "log_softmax",
           "linear", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm",
           "maxout", "dropout", "cross_entropy", "nll_loss", "mse_loss"]


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _float(self):
    """``self.to(dtype="float32")``."""
    return to(self, dtype="float32")


def _double(self):
    """``self.to(dtype="float64")``."""
    return to(self, dtype="float64")


def _cpu(self):
    """``self.to("cpu")``: the tensor in host memory (itself when it is there already)."""
    return to(self, device="cpu")


def _cuda(self, device="cuda"):
    """``self.to(device)``, by default the first GPU."""
    return to(self, device=device)


def _install_tensor_methods():
    methods = {
        "__add__": add, "__radd__": _reflected(add),
        "__sub__": sub, "__rsub__": _reflected(sub),
        "__mul__": mul, "__rmul__": _reflected(mul),
        "__truediv__": div, "__rtruediv__": _reflected(div),
        "__pow__": pow, "__rpow__": _reflected(pow),
        "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
        "__neg__": neg, "__getitem__": getitem,
        "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge, "__eq__": eq, "__ne__": ne,
        "sum": sum, "mean": mean, "max": max, "argmax": argmax,
        "reshape": reshape, "view": reshape, "flatten": flatten, "squeeze": squeeze,
        "unsqueeze": unsqueeze, "permute": permute, "transpose": transpose, "clone": clone,
        "to": to,
        "exp": exp, "log": log, "sqrt": sqrt, "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
        "softmax": softmax, "log_softmax": log_softmax,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))),
                        doc="The axes reversed (the transpose of a matrix).")
    Tensor.mT = property(lambda self: transpose(self, -2, -1),
                         doc="The last two axes swapped (a batch of matrices transposed).")
    Tensor.__hash__ = object.__hash__     # == is elementwise, identity stays the hash
    Tensor.float, Tensor.double = _float, _double
    Tensor.cpu, Tensor.cuda = _cpu, _cuda


_install_tensor_methods()
