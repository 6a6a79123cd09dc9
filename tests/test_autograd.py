"""The autograd engine: graph recording, traversal, accumulation, no_grad, detach, errors."""
import gc
import weakref

import numpy
import pytest
from helpers import host, leaf

import minidl
import minidl.functional as F
from minidl import Function, gradcheck


def test_reused_tensor_accumulates_gradient(device):
    x = leaf([2.0, -3.0], device)
    y = x * x + x * 3.0 + x          # dy/dx = 2x + 4
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [8.0, -2.0])


def test_diamond_graph_visits_each_node_once(device):
    x = leaf([1.5], device)
    a = x * 2.0
    b = a * a           # a used twice
    c = a + b           # and a third time
    c.sum().backward()  # dc/dx = 2 + 2a * 2 = 2 + 8x
    numpy.testing.assert_allclose(host(x.grad), [2 + 8 * 1.5])


def test_chain_of_100000_ops_does_not_recurse(device):
    x = leaf([1.0], device)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [1.0])
    numpy.testing.assert_array_equal(host(y), [100_001.0])


def test_backward_twice_accumulates_and_zero_grad_resets(device):
    x = leaf([1.0, 2.0], device)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_graph_is_freed_after_backward(device):
    x = leaf(numpy.ones(3), device)
    y = x.exp()
    creator = weakref.ref(y.creator)
    loss = y.sum()
    loss.backward()
    assert y.creator.inputs is None and not hasattr(y.creator, "y")
    with pytest.raises(RuntimeError, match="a second time: the graph was freed"):
        loss.backward()
    del y, loss
    gc.collect()
    assert creator() is None


def test_graph_does_not_keep_activations_alive(device):
    """An intermediate array that no function saved dies with the user's last reference."""
    x = leaf(numpy.ones((4, 3)), device)
    hidden = x + 1.0              # addition saves nothing for backward, and neither does sum
    loss = (hidden.sum(axis=1) * 3.0).sum()
    hidden_data = weakref.ref(hidden.data)
    del hidden
    gc.collect()
    assert hidden_data() is None
    loss.backward()
    numpy.testing.assert_array_equal(host(x.grad), numpy.full((4, 3), 3.0))


def test_retain_graph_allows_a_second_backward(device):
    x = leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    numpy.testing.assert_array_equal(host(x.grad), [4.0, 8.0])


def test_no_grad_records_nothing(device):
    x = leaf([1.0], device)
    with minidl.no_grad():
        y = x * 2.0
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_needs_input_grad_is_all_false_under_no_grad(device):
    """One rule for saving: under no_grad no op is told that a gradient is needed."""
    seen = []

    class Record(minidl.Function):
        def forward(self, a, b):
            seen.append(self.needs_input_grad)
            return a + b

    x, c = leaf([1.0], device), leaf([2.0], device, requires_grad=False)
    Record.apply(x, c)
    with minidl.no_grad():
        Record.apply(x, c)
    assert seen == [(True, False), (False, False)]


def test_detach_cuts_the_graph(device):
    x = leaf([3.0], device)
    y = x * x
    z = y.detach() * x           # d/dx treats y as a constant: dz/dx = y = 9
    z.backward()
    numpy.testing.assert_array_equal(host(x.grad), [9.0])
    assert y.detach().data is y.data


def test_broadcast_gradient_is_summed_to_operand_shape(device):
    x = leaf(numpy.ones((2, 3)), device)
    b = leaf(numpy.ones((3,)), device)
    s = leaf(numpy.ones((2, 1)), device)
    ((x + b) * s).sum().backward()
    numpy.testing.assert_array_equal(host(b.grad), [2.0, 2.0, 2.0])
    numpy.testing.assert_array_equal(host(s.grad), [[6.0], [6.0]])


def test_non_scalar_backward_needs_grad(device):
    x = leaf(numpy.ones((2, 2)), device)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"needs a scalar .* shape \(2, 2\); pass grad="):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the tensor has shape \(2, 2\)"):
        y.backward(numpy.ones(3))
    y.backward(minidl.tensor(numpy.full((2, 2), 0.5), device=device))
    numpy.testing.assert_array_equal(host(x.grad), numpy.ones((2, 2)))


class Cube(Function):
    """y = x**3;  dx = 3 x**2 dy."""

    def forward(self, x):
        self.x = x
        return x * x * x

    def backward(self, gy):
        return 3 * self.x * self.x * gy


class WrongShape(Function):
    def forward(self, x):
        return x.sum(axis=0)

    def backward(self, gy):
        return gy[:1]          # the input gradient must be shaped like x


def test_user_defined_function(device):
    x = leaf([1.0, -2.0, 0.5], device)
    y = Cube.apply(x)
    numpy.testing.assert_array_equal(host(y), [1.0, -8.0, 0.125])
    assert y.creator is not None
    assert gradcheck(Cube.apply, [x])


def test_wrong_gradient_shape_is_reported(device):
    x = leaf(numpy.ones((3, 2)), device)
    with pytest.raises(ValueError, match=r"WrongShape: backward returned a gradient of shape "
                                         r"\(1,\) for an input of shape \(3, 2\)"):
        WrongShape.apply(x).sum().backward()


def test_function_with_non_tensor_arguments_and_partial_grads(device):
    class Scale(Function):
        def forward(self, x, w, factor):
            self.x, self.w, self.factor = x, w, factor
            return x * w * factor

        def backward(self, gy):
            gx = gy * self.w * self.factor if self.needs_input_grad[0] else None
            gw = gy * self.x * self.factor if self.needs_input_grad[1] else None
            return gx, gw

    x = leaf([1.0, 2.0], device, requires_grad=False)
    w = leaf([3.0, 4.0], device)
    Scale.apply(x, w, 10.0).sum().backward()
    assert x.grad is None
    numpy.testing.assert_array_equal(host(w.grad), [10.0, 20.0])


def test_tensor_constructor_dtypes(device):
    assert minidl.tensor(1.5).dtype == numpy.float32
    assert minidl.tensor([1, 2]).dtype == numpy.int64
    assert minidl.tensor(numpy.ones(2)).dtype == numpy.float64
    assert minidl.tensor(numpy.ones(2), dtype="float32").dtype == numpy.float32
    data = numpy.ones(2)
    t = minidl.tensor(data, device=device)
    data[0] = 5.0
    assert host(t)[0] == 1.0          # the tensor owns a copy
    assert t.device == device
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        minidl.tensor([1, 2], requires_grad=True)


def test_item_numpy_and_repr(device):
    t = minidl.tensor(numpy.array([[2.5]]), device=device, requires_grad=True)
    assert t.item() == 2.5
    assert isinstance(t.numpy(), numpy.ndarray)
    assert "requires_grad=True" in repr(t) and "2.5" in repr(t)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element"):
        minidl.tensor(numpy.ones(2)).item()


def test_tensor_methods_match_functional(device):
    x = leaf([[0.5, -1.0]], device)
    numpy.testing.assert_array_equal(host(x.relu()), host(F.relu(x)))
    numpy.testing.assert_array_equal(host(x.softmax(axis=1)), host(F.softmax(x, axis=1)))
    assert x.float().dtype == numpy.float32 and x.float().double().dtype == numpy.float64


def test_post_accumulate_grad_hook_runs_once_per_backward_after_the_sum(device):
    w = leaf(numpy.array([1.0, 2.0]), device)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(host(t.grad).tolist()))
    ((w * w) + w).sum().backward()          # two paths into w: one call, with their sum
    assert seen == [[3.0, 5.0]]
    (w * 2.0).sum().backward()
    assert seen == [[3.0, 5.0], [5.0, 7.0]]
    handle.remove()
    w.sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2.0).register_post_accumulate_grad_hook(print)
