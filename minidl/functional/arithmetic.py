"""Elementwise arithmetic (+ - * / ** and negation), exp/log/sqrt, and the matrix product.

Each op is a :class:`~minidl.autograd.Function` whose ``forward`` and
``backward`` stand side by side; the docstring states the derivative.
Broadcasting is NumPy's: a binary op's backward returns the output-shaped
gradient and the engine sums it back to each operand's shape.  Integer
tensors stay integer: ``+ - * ** @`` keep their dtype, and the ops whose
result is fractional (``/``, exp, log, sqrt) refuse them; boolean tensors
have no arithmetic (convert them explicitly).
"""
from .. import backend
from ..autograd import Function, Tensor, sum_to_shape
from ._checks import check_like, check_tensor
from ._operands import as_tensor_like, binary_operands

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt"]


class Add(Function):
    """y = a + b;  da = dy, db = dy."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    """y = a - b;  da = dy, db = -dy."""

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy if self.needs_input_grad[1] else None


class Mul(Function):
    """y = a * b;  da = dy * b, db = dy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = gy * self.b if self.needs_input_grad[0] else None
        gb = gy * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  da = dy / b, db = -dy * a / b**2 = -dy * y / b."""

    def forward(self, a, b):
        self.b = b
        self.y = a / b
        return self.y

    def backward(self, gy):
        ga = gy / self.b if self.needs_input_grad[0] else None
        gb = -gy * self.y / self.b if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  dx = -dy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** b;  da = dy * b * a**(b-1), db = dy * y * log(a)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        ga = gy * self.b * self.a ** (self.b - 1) if self.needs_input_grad[0] else None
        gb = gy * self.y * xp.log(self.a) if self.needs_input_grad[1] else None
        return ga, gb


def add(a, b):
    """``a + b`` elementwise with broadcasting (see :class:`Add`); one operand may be a number."""
    return Add.apply(*binary_operands("add", a, b, boolean=False))


def sub(a, b):
    """``a - b`` elementwise with broadcasting (see :class:`Sub`)."""
    return Sub.apply(*binary_operands("sub", a, b, boolean=False))


def mul(a, b):
    """``a * b`` elementwise with broadcasting (see :class:`Mul`)."""
    return Mul.apply(*binary_operands("mul", a, b, boolean=False))


def div(a, b):
    """``a / b`` elementwise with broadcasting (see :class:`Div`); floating point only."""
    a, b = binary_operands("div", a, b, boolean=False)
    check_tensor("div", "a", a)
    return Div.apply(a, b)


def pow(a, b):
    """``a ** b`` elementwise with broadcasting (see :class:`Pow`)."""
    return Pow.apply(*binary_operands("pow", a, b, boolean=False))


def neg(x):
    """``-x`` (see :class:`Neg`)."""
    check_tensor("neg", "x", x, floating=False)
    return Neg.apply(x)


class MatMul(Function):
    """y = a @ b (NumPy's matmul: 1-D, 2-D and batched);  da = dy @ b^T, db = a^T @ dy.

    A 1-D operand is treated as a row (a) or a column (b) vector, and batch
    axes broadcast; the gradients are summed back over broadcast batch axes.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.b.ndim == 1:
            gy = xp.expand_dims(gy, -1)
        if self.a.ndim == 1:
            gy = xp.expand_dims(gy, -2)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to_shape(gy @ xp.swapaxes(b, -1, -2), a.shape, "matmul").reshape(self.a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to_shape(xp.swapaxes(a, -1, -2) @ gy, b.shape, "matmul").reshape(self.b.shape)
        return ga, gb


def matmul(a, b):
    """Matrix product ``a @ b`` with NumPy's rules (see :class:`MatMul`); shapes checked first."""
    a = a if isinstance(a, Tensor) else as_tensor_like(a, b)
    b = as_tensor_like(b, a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis, got shapes "
                         f"{a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"{a.shape[-1]} (last axis of a) != {inner_b} (contracted axis of b)")
    check_tensor("matmul", "a", a, floating=False)
    check_like("matmul", "b", check_tensor("matmul", "b", b, floating=False), a, "a")
    return MatMul.apply(a, b)


class Exp(Function):
    """y = exp(x);  dx = dy * y."""

    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = log(x);  dx = dy / x."""

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = sqrt(x);  dx = dy / (2 y)."""

    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


def exp(x):
    """e ** x elementwise (see :class:`Exp`); floating point only."""
    return Exp.apply(check_tensor("exp", "x", x))


def log(x):
    """Natural logarithm elementwise (see :class:`Log`); floating point only."""
    return Log.apply(check_tensor("log", "x", x))


def sqrt(x):
    """Square root elementwise (see :class:`Sqrt`); floating point only."""
    return Sqrt.apply(check_tensor("sqrt", "x", x))
