"""Elementary differentiable arithmetic, reductions and shape operations.

Each op is a :class:`~minidl.autograd.Function` whose ``forward`` and
``backward`` stand side by side; the docstring states the derivative.
Broadcasting is NumPy's: a binary op's backward returns the output-shaped
gradient and the engine sums it back to each operand's shape.
"""
import numpy

from .. import backend
from ..autograd import Function, Tensor, sum_to_shape

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "matmul", "exp", "log", "sqrt",
           "sum", "mean", "max", "reshape", "transpose", "getitem", "concatenate", "stack",
           "to", "lt", "le", "gt", "ge", "eq", "ne", "argmax"]


def _as_tensor(value, like):
    """An operand as a Tensor; a Python number takes ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool)):
        xp = backend.get_array_module(like.data)
        if like.dtype.kind == "f" or (like.dtype.kind in "iu" and isinstance(value, int)):
            dtype = like.dtype
        else:       # a float with an integer tensor, or any number with a boolean one
            dtype = numpy.float32 if isinstance(value, float) else numpy.int64
        with backend.on_device(like.device):
            return Tensor(xp.full((), value, dtype=dtype))
    return Tensor(value)


def _binary_operands(op_name, a, b):
    """Both operands as tensors of one dtype whose shapes broadcast (else a clear error)."""
    if not isinstance(a, Tensor):
        a = _as_tensor(a, b)
    b = _as_tensor(b, a)
    if a.dtype != b.dtype:
        raise TypeError(f"{op_name}: operands have different dtypes, {a.dtype} and {b.dtype}; "
                        f"convert one explicitly with .to(dtype=...)")
    try:
        numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op_name}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         f"together") from None
    return a, b


# --------------------------------------------------------------------------- arithmetic

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
    return Add.apply(*_binary_operands("add", a, b))


def sub(a, b):
    return Sub.apply(*_binary_operands("sub", a, b))


def mul(a, b):
    return Mul.apply(*_binary_operands("mul", a, b))


def _require_float(op_name, *tensors):
    """Ops whose result is fractional refuse integer input instead of promoting it."""
    for t in tensors:
        if t.dtype.kind != "f":
            raise TypeError(f"{op_name}: needs a floating-point tensor, got dtype {t.dtype}; "
                            f"convert it with .to(dtype='float32')")


def div(a, b):
    a, b = _binary_operands("div", a, b)
    _require_float("div", a)
    return Div.apply(a, b)


def pow(a, b):
    return Pow.apply(*_binary_operands("pow", a, b))


def neg(x):
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
    """Matrix product with NumPy's rules; shapes are checked before computing."""
    a = _as_tensor(a, b) if not isinstance(a, Tensor) else a
    b = _as_tensor(b, a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis, got shapes "
                         f"{a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"{a.shape[-1]} (last axis of a) != {inner_b} (contracted axis of b)")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: operands have different dtypes, {a.dtype} and {b.dtype}")
    return MatMul.apply(a, b)


# --------------------------------------------------------------------------- elementwise

class Exp(Function):
    """y = exp(x);  dx = dy * y."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.exp(x)
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
    _require_float("exp", x)
    return Exp.apply(x)


def log(x):
    _require_float("log", x)
    return Log.apply(x)


def sqrt(x):
    _require_float("sqrt", x)
    return Sqrt.apply(x)


# --------------------------------------------------------------------------- reductions

def _normalize_axes(axis, ndim, op_name):
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op_name}: axis {a} is out of range for a tensor with {ndim} axes")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op_name}: repeated axis in {axis}")
    return tuple(sorted(out))


def _expand_reduced(g, in_shape, axes):
    """Broadcast a reduction's output gradient back over the reduced axes."""
    xp = backend.get_array_module(g)
    kept = tuple(1 if i in axes else n for i, n in enumerate(in_shape))
    return xp.broadcast_to(g.reshape(kept), in_shape)


class Sum(Function):
    """y = sum of x over ``axes``;  dx = dy copied along the summed axes."""

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, gy):
        return _expand_reduced(gy, self.in_shape, self.axes)


class Mean(Function):
    """y = mean of x over ``axes`` (m elements each);  dx = dy / m along them."""

    def forward(self, x, axes, keepdims):
        self.in_shape, self.axes = x.shape, axes
        self.count = int(numpy.prod([x.shape[a] for a in axes]))
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, gy):
        return _expand_reduced(gy / self.count, self.in_shape, self.axes)


class Max(Function):
    """y = max of x over ``axes``;  dx = dy at the first maximum of each group, 0 elsewhere.

    Routing to one winner (not to every tie) keeps the gradient's sum equal to dy.
    """

    def forward(self, x, axes, keepdims):
        xp = backend.get_array_module(x)
        self.in_shape, self.axes = x.shape, axes
        y = x.max(axis=axes, keepdims=True)
        is_max = x == y
        # Flatten the reduced axes last, so "first" means first in C order.
        kept = [i for i in range(x.ndim) if i not in axes]
        order = kept + list(axes)
        flat = is_max.transpose(order).reshape([x.shape[i] for i in kept] + [-1])
        first = flat & (xp.cumsum(flat, axis=-1) == 1)
        self.mask = first.reshape([x.shape[i] for i in order]).transpose(_inverse(order))
        return y if keepdims else y.reshape([x.shape[i] for i in kept])

    def backward(self, gy):
        return _expand_reduced(gy, self.in_shape, self.axes) * self.mask


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, _normalize_axes(axis, x.ndim, "sum"), keepdims)


def mean(x, axis=None, keepdims=False):
    _require_float("mean", x)
    return Mean.apply(x, _normalize_axes(axis, x.ndim, "mean"), keepdims)


def max(x, axis=None, keepdims=False):
    axes = _normalize_axes(axis, x.ndim, "max")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce an empty axis of a tensor with shape {x.shape}")
    return Max.apply(x, axes, keepdims)


def argmax(x, axis=None):
    """Index of the (first) maximum, as a non-differentiable int64 tensor."""
    return Tensor(x.data.argmax(axis=axis).astype("int64", copy=False))


# --------------------------------------------------------------------------- shapes

class Reshape(Function):
    """y = x viewed with a new shape;  dx = dy viewed with x's shape."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


def _inverse(permutation):
    """The permutation that undoes ``permutation`` (a tuple, as device arrays need)."""
    return tuple(int(i) for i in numpy.argsort(permutation))


class Transpose(Function):
    """y = x with axes permuted by ``axes``;  dx = dy permuted by the inverse."""

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(_inverse(self.axes))


def reshape(x, *shape):
    """``x.reshape(2, -1)`` or ``x.reshape((2, -1))``; sizes must agree."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    known = int(numpy.prod([n for n in shape if n != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and known != x.size) or \
            (-1 in shape and (known == 0 or x.size % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}")
    return Reshape.apply(x, shape)


def transpose(x, *axes):
    """Reverse the axes, or permute them: ``x.transpose(0, 2, 1)``."""
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = axes or tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of a tensor with shape {x.shape}")
    return Transpose.apply(x, tuple(a % x.ndim for a in axes))


def _is_basic_index(index):
    """True when ``index`` uses only ints, slices, None and Ellipsis (no repeated elements)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class GetItem(Function):
    """y = x[index];  dx = zeros with dy scattered back to the indexed places.

    An advanced index may pick an element twice; ``add.at`` then adds both
    contributions (a plain assignment would keep only one).
    """

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy
        else:
            xp.add.at(gx, self.index, gy)
        return gx


def getitem(x, index):
    """``x[index]`` with NumPy's indexing rules; Tensor indices are used by their data."""
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(i.data if isinstance(i, Tensor) else i for i in items)
    for i in items:
        if hasattr(i, "dtype") and backend.device_of(i) != x.device:
            raise ValueError(f"getitem: the index is on {backend.device_of(i)} but the tensor is "
                             f"on {x.device}")
    return GetItem.apply(x, items if isinstance(index, tuple) else items[0])


class Concatenate(Function):
    """y = inputs joined along ``axis``;  each input's gradient is its slice of dy."""

    def forward(self, *xs, axis):
        xp = backend.get_array_module(xs[0])
        self.axis = axis
        self.bounds = numpy.cumsum([x.shape[axis] for x in xs])[:-1].tolist()
        return xp.concatenate(xs, axis=axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return tuple(xp.split(gy, self.bounds, axis=self.axis))


class Stack(Function):
    """y = inputs stacked along a new ``axis``;  each input's gradient is dy indexed there."""

    def forward(self, *xs, axis):
        xp = backend.get_array_module(xs[0])
        self.axis = axis
        return xp.stack(xs, axis=axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return tuple(xp.moveaxis(gy, self.axis, 0))


def _nonempty(op_name, tensors):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op_name}: needs at least one tensor")
    return tensors


def _check_joinable(op_name, tensors, axis=None):
    """Tensors to join need one rank and equal sizes on every axis but ``axis``."""
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        same = t.ndim == first.ndim and all(
            n == m for k, (n, m) in enumerate(zip(first.shape, t.shape)) if k != axis)
        if not same:
            where = "" if axis is None else f" (they may differ only along axis {axis})"
            raise ValueError(f"{op_name}: tensor 0 has shape {first.shape} but tensor {i} has "
                             f"shape {t.shape}{where}")


def concatenate(tensors, axis=0):
    """Join tensors along an existing ``axis``; their other axes must agree."""
    tensors = _nonempty("concatenate", tensors)
    (axis,) = _normalize_axes(axis, tensors[0].ndim, "concatenate")
    _check_joinable("concatenate", tensors, axis)
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new ``axis``."""
    tensors = _nonempty("stack", tensors)
    _check_joinable("stack", tensors)
    (axis,) = _normalize_axes(axis, tensors[0].ndim + 1, "stack")
    return Stack.apply(*tensors, axis=axis)


class To(Function):
    """y = x on another device and/or dtype;  dx = dy moved and cast back."""

    def forward(self, x, device, dtype):
        self.device, self.dtype = backend.device_of(x), x.dtype
        y = backend.to_device(x, device)
        return y if dtype is None else y.astype(dtype, copy=False)

    def backward(self, gy):
        return backend.to_device(gy, self.device).astype(self.dtype, copy=False)


def to(x, device=None, dtype=None):
    """``x`` on ``device`` with ``dtype`` (each unchanged when None); differentiable."""
    target = backend.device(device) if device is not None else x.device
    if target == x.device and (dtype is None or numpy.dtype(dtype) == x.dtype):
        return x
    return To.apply(x, target, dtype)


# --------------------------------------------------------------------------- comparisons

def _comparison(name, ufunc_name):
    def compare(a, b):
        a, b = _binary_operands(name, a, b)
        xp = backend.get_array_module(a.data)
        return Tensor(getattr(xp, ufunc_name)(a.data, b.data))
    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{ufunc_name}`` as a boolean tensor (not differentiable)."
    return compare


lt = _comparison("lt", "less")
le = _comparison("le", "less_equal")
gt = _comparison("gt", "greater")
ge = _comparison("ge", "greater_equal")
eq = _comparison("eq", "equal")
ne = _comparison("ne", "not_equal")
