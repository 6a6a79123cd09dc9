"""Elementary ops: forward against NumPy, gradients against central differences (float64)."""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.functional as F
from minidl import gradcheck

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)


def values(shape, seed, low=-2.0, high=2.0):
    return numpy.random.default_rng(seed).uniform(low, high, shape)


def distinct(shape, seed):
    """Values with no ties and gaps of at least 0.01 (max and relu have kinks at ties/0)."""
    size = int(numpy.prod(shape))
    v = numpy.random.default_rng(seed).permutation(size) * 0.05 - size * 0.025 + 0.013
    return v.reshape(shape)


BINARY = {
    "add": (lambda a, b: a + b, numpy.add),
    "sub": (lambda a, b: a - b, numpy.subtract),
    "mul": (lambda a, b: a * b, numpy.multiply),
    "div": (lambda a, b: a / b, numpy.divide),
    "pow": (lambda a, b: a ** b, numpy.power),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=pairs, seed=st.integers(0, 2**16))
def test_binary_ops_broadcast(device, name, shapes, seed):
    op, reference = BINARY[name]
    sa, sb = shapes.input_shapes
    low = 0.5 if name in ("div", "pow") else -2.0        # keep b away from 0, a > 0 for pow
    a_np, b_np = values(sa, seed, low), values(sb, seed + 1, low)
    a, b = leaf(a_np, device), leaf(b_np, device)
    out = op(a, b)
    assert out.shape == shapes.result_shape
    numpy.testing.assert_allclose(host(out), reference(a_np, b_np), rtol=1e-12)
    assert gradcheck(op, [a, b])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_scalar_operand_keeps_dtype(device, name):
    op, reference = BINARY[name]
    x = minidl.tensor(numpy.array([1.5, 2.5], dtype=numpy.float32), device=device)
    for out in (op(x, 2.0), op(2.0, x)):
        assert out.dtype == numpy.float32
    numpy.testing.assert_allclose(host(op(x, 2.0)), reference(host(x), numpy.float32(2.0)))
    numpy.testing.assert_allclose(host(op(3.0, x)), reference(numpy.float32(3.0), host(x)))


UNARY = {
    "neg": (lambda x: -x, numpy.negative, (-2, 2)),
    "exp": (F.exp, numpy.exp, (-2, 2)),
    "log": (F.log, numpy.log, (0.2, 3)),
    "sqrt": (F.sqrt, numpy.sqrt, (0.2, 3)),
    "tanh": (F.tanh, numpy.tanh, (-3, 3)),
    "sigmoid": (F.sigmoid, lambda v: 1 / (1 + numpy.exp(-v)), (-3, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_unary_ops(device, name, shape, seed):
    op, reference, (low, high) = UNARY[name]
    x_np = values(shape, seed, low, high)
    x = leaf(x_np, device)
    numpy.testing.assert_allclose(host(op(x)), reference(x_np), rtol=1e-12, atol=1e-15)
    assert gradcheck(op, [x])


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_relu(device, shape, seed):
    x_np = distinct(shape, seed)
    x = leaf(x_np, device)
    numpy.testing.assert_array_equal(host(F.relu(x)), numpy.maximum(x_np, 0))
    assert gradcheck(F.relu, [x])


def test_relu_keeps_nan_and_routes_no_gradient_to_it(device):
    """PyTorch's relu: NaN stays NaN (a select through x > 0 would hide it as 0)."""
    x = leaf(numpy.array([numpy.nan, -1.0, 0.0, 2.0]), device)
    y = F.relu(x)
    numpy.testing.assert_array_equal(host(y), [numpy.nan, 0.0, 0.0, 2.0])
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [0.0, 0.0, 0.0, 1.0])


def test_sigmoid_is_stable_for_large_inputs(device):
    x = minidl.tensor(numpy.array([-1e4, 0.0, 1e4]), device=device)
    numpy.testing.assert_array_equal(host(F.sigmoid(x)), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)),
                                    ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2))])
def test_matmul(device, shapes):
    sa, sb = shapes
    a_np, b_np = values(sa, 1), values(sb, 2)
    a, b = leaf(a_np, device), leaf(b_np, device)
    numpy.testing.assert_allclose(host(a @ b), a_np @ b_np, rtol=1e-12)
    assert gradcheck(lambda u, v: u @ v, [a, b])


@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4),
       batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), seed=st.integers(0, 99))
def test_matmul_batched_shapes(device, n, k, m, batch, seed):
    a, b = leaf(values(batch + (n, k), seed), device), leaf(values((k, m), seed + 1), device)
    assert (a @ b).shape == batch + (n, m)
    assert gradcheck(lambda u, v: u @ v, [a, b])


def axes_for(shape, draw):
    if not shape:
        return None
    return draw(st.none() | st.integers(-len(shape), len(shape) - 1)
                | st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True).map(tuple))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@given(data=st.data(), shape=shapes, keepdims=st.booleans(), seed=st.integers(0, 2**16))
def test_reductions(device, name, data, shape, keepdims, seed):
    axis = axes_for(shape, data.draw)
    x_np = distinct(shape, seed)
    x = leaf(x_np, device)
    op = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    expected = getattr(numpy, name if name != "max" else "amax")(x_np, axis=axis, keepdims=keepdims)
    numpy.testing.assert_allclose(host(op(x)), expected, rtol=1e-12)
    assert gradcheck(op, [x])


def test_max_routes_tied_gradient_to_first_maximum(device):
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], device)
    x.max(axis=1).sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [[0, 1, 0], [1, 0, 0]])
    y = leaf([[5.0, 1.0], [5.0, 5.0]], device)
    y.max().backward()
    numpy.testing.assert_array_equal(host(y.grad), [[1, 0], [0, 0]])


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), seed=st.integers(0, 2**16))
def test_reshape_and_permute(device, shape, seed):
    x_np = values(shape, seed)
    x = leaf(x_np, device)
    perm = tuple(numpy.random.default_rng(seed).permutation(len(shape)).tolist())
    numpy.testing.assert_array_equal(host(x.permute(perm)), x_np.transpose(perm))
    numpy.testing.assert_array_equal(host(x.T), x_np.T)
    numpy.testing.assert_array_equal(host(x.reshape(-1)), x_np.reshape(-1))
    assert gradcheck(lambda t: t.permute(perm) * t.permute(perm), [x])
    assert gradcheck(lambda t: t.reshape(1, -1) * 2.0, [x])


INDICES = [
    (slice(1, 3),),
    (1,),
    (Ellipsis, 0),
    (slice(None), [0, 2, 2]),       # advanced index with a repeated element
    ([1, 0, 1],),
    (None, slice(None, None, 2)),
]


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_getitem(device, index):
    x_np = values((3, 4), 7)
    x = leaf(x_np, device)
    numpy.testing.assert_array_equal(host(x[index]), x_np[index])
    assert gradcheck(lambda t: t[index] * t[index], [x])


def test_getitem_repeated_index_accumulates(device):
    x = leaf([1.0, 2.0, 3.0], device)
    x[[0, 0, 2]].sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [2.0, 0.0, 1.0])


def test_getitem_with_tensor_index_and_boolean_mask(device):
    x = leaf([1.0, -2.0, 3.0], device)
    picked = x[minidl.tensor([2, 0], device=device)]
    numpy.testing.assert_array_equal(host(picked), [3.0, 1.0])
    positive = x[x > 0.0]
    numpy.testing.assert_array_equal(host(positive), [1.0, 3.0])
    assert gradcheck(lambda t: t[t.detach() > 0.0] ** 2, [x])


@given(sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), axis=st.integers(0, 2),
       seed=st.integers(0, 99))
def test_concatenate_and_stack(device, sizes, axis, seed):
    base = [2, 3, 2]
    parts = []
    for i, n in enumerate(sizes):
        shape = list(base)
        shape[axis] = n
        parts.append(values(shape, seed + i))
    tensors = [leaf(p, device) for p in parts]
    numpy.testing.assert_array_equal(host(F.concatenate(tensors, axis)), numpy.concatenate(parts, axis))
    assert gradcheck(lambda *ts: F.concatenate(ts, axis) ** 2, tensors)
    same = [leaf(values(base, seed + i), device) for i in range(len(sizes))]
    expected = numpy.stack([host(t) for t in same], axis)
    numpy.testing.assert_array_equal(host(F.stack(same, axis)), expected)
    assert gradcheck(lambda *ts: F.stack(ts, axis) ** 2, same)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), data=st.data(),
       seed=st.integers(0, 2**16))
def test_softmax_family(device, name, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x_np = values(shape, seed, -3, 3)
    x = leaf(x_np, device)
    shifted = x_np - x_np.max(axis=axis, keepdims=True)
    log_p = shifted - numpy.log(numpy.exp(shifted).sum(axis=axis, keepdims=True))
    expected = numpy.exp(log_p) if name == "softmax" else log_p
    op = lambda t: getattr(F, name)(t, axis=axis)  # noqa: E731
    numpy.testing.assert_allclose(host(op(x)), expected, rtol=1e-12, atol=1e-15)
    assert gradcheck(op, [x])


def test_softmax_is_stable_for_huge_logits(device):
    x = minidl.tensor(numpy.array([[1e4, 0.0, -1e4]]), device=device)
    numpy.testing.assert_allclose(host(F.softmax(x)), [[1.0, 0.0, 0.0]])
    numpy.testing.assert_allclose(host(F.log_softmax(x)), [[0.0, -1e4, -2e4]])


def test_comparisons_are_not_differentiable(device):
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([3.0, 2.0, 1.0], device)
    results = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}
    expected = {"lt": [1, 0, 0], "le": [1, 1, 0], "gt": [0, 0, 1], "ge": [0, 1, 1],
                "eq": [0, 1, 0], "ne": [1, 0, 1]}
    for name, out in results.items():
        assert not out.requires_grad and out.dtype == numpy.bool_
        numpy.testing.assert_array_equal(host(out), numpy.array(expected[name], dtype=bool), name)


def test_argmax(device):
    x = leaf([[1.0, 5.0, 5.0], [7.0, 0.0, 1.0]], device)
    numpy.testing.assert_array_equal(host(x.argmax(axis=1)), [1, 0])
    assert not x.argmax().requires_grad


# --------------------------------------------------------------------------- shape errors

def test_incompatible_shapes_name_both(device):
    a, b = leaf(numpy.ones((2, 3)), device), leaf(numpy.ones((4,)), device)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4,\) do not match"):
        a @ b
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\).*\(4, -1\)"):
        a.reshape(4, -1)
    with pytest.raises(ValueError, match=r"dims \(0, 0\) are not a permutation"):
        a.permute(0, 0)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a tensor with 2 axes"):
        a.sum(axis=2)
    with pytest.raises(ValueError, match=r"concatenate: tensor 0 has shape \(2, 3\) but tensor 1 "
                                         r"has shape \(4,\)"):
        F.concatenate([a, b])


def test_mixed_float_dtypes_raise(device):
    a = minidl.tensor(numpy.ones(2, dtype=numpy.float32), device=device)
    b = minidl.tensor(numpy.ones(2, dtype=numpy.float64), device=device)
    with pytest.raises(TypeError, match="float32 and float64"):
        a * b
    assert (a.double() * b).dtype == numpy.float64


@pytest.mark.parametrize("name", ["add", "mul", "matmul", "softmax", "sum", "exp"])
def test_float32_in_float32_out(device, name):
    x = minidl.tensor(numpy.ones((2, 2), dtype=numpy.float32), requires_grad=True, device=device)
    out = {"add": lambda: x + x, "mul": lambda: x * 3, "matmul": lambda: x @ x,
           "softmax": lambda: F.softmax(x), "sum": lambda: x.sum(), "exp": lambda: x.exp()}[name]()
    assert out.dtype == numpy.float32
    out.sum().backward()
    assert x.grad.dtype == numpy.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_the_negative_tail(device, dtype):
    x = minidl.tensor(numpy.array([-30.0, -20.0, 20.0], dtype=dtype), device=device)
    expected = 1 / (1 + numpy.exp(-numpy.array([-30.0, -20.0, 20.0])))
    numpy.testing.assert_allclose(host(F.sigmoid(x)), expected, rtol=1e-6)
