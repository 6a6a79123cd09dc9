"""Elementwise comparisons (< <= > >= == !=): boolean tensors, not differentiable.

The operands follow the arithmetic ops' rules (one dtype, broadcastable
shapes, a number takes the tensor's dtype); the result has no gradient.
"""
from .. import backend
from ..autograd import Tensor
from ._operands import binary_operands

__all__ = ["lt", "le", "gt", "ge", "eq", "ne"]


def _comparison(name, ufunc_name, symbol):
    def compare(a, b):
        a, b = binary_operands(name, a, b, boolean=True)
        xp = backend.get_array_module(a.data)
        return Tensor(getattr(xp, ufunc_name)(a.data, b.data))
    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = (f"``a {symbol} b`` elementwise with broadcasting, as a boolean tensor "
                       f"(not differentiable).")
    return compare


lt = _comparison("lt", "less", "<")
le = _comparison("le", "less_equal", "<=")
gt = _comparison("gt", "greater", ">")
ge = _comparison("ge", "greater_equal", ">=")
eq = _comparison("eq", "equal", "==")
ne = _comparison("ne", "not_equal", "!=")
