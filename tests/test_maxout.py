"""Maxout: forward against NumPy, gradient routing, ties, errors."""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import gradcheck
from minidl.functional.maxout import maxout


def distinct(shape, seed):
    """Values with no ties (gaps of 0.05), so maxout is differentiable at every point."""
    size = int(numpy.prod(shape))
    return (numpy.random.default_rng(seed).permutation(size) * 0.05 - size * 0.025).reshape(shape)


def reference(x, pieces, axis):
    grouped = x.reshape(x.shape[:axis] + (x.shape[axis] // pieces, pieces) + x.shape[axis + 1:])
    return grouped.max(axis=axis + 1)


@given(pieces=st.integers(1, 4), groups=st.integers(1, 3), rank4=st.booleans(),
       n=st.integers(1, 3), hw=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       seed=st.integers(0, 2**16))
def test_forward_and_gradient(device, pieces, groups, rank4, n, hw, seed):
    shape = (n, pieces * groups) + (hw if rank4 else ())
    x_np = distinct(shape, seed)
    x = leaf(x_np, device)
    y = maxout(x, pieces)
    assert y.shape == (n, groups) + shape[2:]
    numpy.testing.assert_array_equal(host(y), reference(x_np, pieces, 1))
    assert gradcheck(lambda t: maxout(t, pieces), [x])


@pytest.mark.parametrize("axis", [-1, 2, 0])
def test_other_axes(device, axis):
    x_np = distinct((4, 3, 6), 1)
    x = leaf(x_np, device)
    y = maxout(x, 2, axis=axis)
    numpy.testing.assert_array_equal(host(y), reference(x_np, 2, axis % 3))
    assert gradcheck(lambda t: maxout(t, 2, axis=axis), [x])


def test_gradient_is_routed_to_the_winner(device):
    x = leaf(numpy.array([[1.0, 3.0, -2.0, -5.0, 4.0, 0.5]]), device)
    y = maxout(x, 3)
    numpy.testing.assert_array_equal(host(y), [[3.0, 4.0]])
    y.backward(minidl.tensor(numpy.array([[10.0, 20.0]]), device=device))
    numpy.testing.assert_array_equal(host(x.grad), [[0, 10.0, 0, 0, 20.0, 0]])


@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_ties_go_to_the_first_piece(device, pieces):
    groups = {                                       # values of each group's pieces, first winner
        0: ([0.0] * pieces, 0),                                    # all tied
        1: ([-1.0] * (pieces - 2) + [1.0, 1.0], pieces - 2),       # the last two tied
        2: ([-3.0] + [2.0] * (pieces - 1), 1),                     # all but the first tied
    }
    x_np = numpy.concatenate([values for values, _ in groups.values()])
    x_np = numpy.broadcast_to(x_np[None, :, None, None], (2, 3 * pieces, 2, 2))
    x = leaf(x_np, device)
    dy = numpy.random.default_rng(0).uniform(1, 2, (2, 3, 2, 2))
    maxout(x, pieces).backward(minidl.tensor(dy, device=device))
    grad = host(x.grad).reshape(2, 3, pieces, 2, 2)
    for group, (_, winner) in groups.items():
        for piece in range(pieces):
            expected = dy[:, group] if piece == winner else 0
            numpy.testing.assert_array_equal(grad[:, group, piece], expected)
    numpy.testing.assert_array_equal(grad.sum(axis=2), dy)


def test_float32_stays_float32(device):
    x = leaf(distinct((2, 4, 3, 3), 2).astype(numpy.float32), device)
    y = maxout(x, 2)
    y.backward(minidl.tensor(numpy.ones(y.shape, numpy.float32), device=device))
    assert host(y).dtype == numpy.float32 and host(x.grad).dtype == numpy.float32


def test_invalid_arguments(device):
    x = leaf(numpy.ones((2, 6, 2, 2)), device)
    cases = [
        (r"pieces=4 does not divide the 6 channels along axis 1 of x \(shape \(2, 6, 2, 2\)\)",
         lambda: maxout(x, 4)),
        (r"pieces must be >= 1, got 0", lambda: maxout(x, 0)),
        (r"axis 4 is out of range for a tensor with 4 axes", lambda: maxout(x, 2, axis=4)),
        (r"x must have at least one axis", lambda: maxout(leaf(numpy.array(1.0), device), 1)),
    ]
    for message, call in cases:
        with pytest.raises(ValueError, match=message):
            call()
    for pieces in (2.0, True, "2"):
        with pytest.raises(TypeError, match=rf"maxout: pieces must be an integer, got {pieces!r}"):
            maxout(x, pieces)
    with pytest.raises(TypeError, match=r"x must be a minidl Tensor, got ndarray"):
        maxout(numpy.ones((2, 6)), 2)


@pytest.mark.parametrize("shape", [(3, 6), (2, 6, 3, 2)])
def test_matches_torch(device, shape):
    torch = pytest.importorskip("torch")
    pieces = 3
    x_np = distinct(shape, 3)
    dy = numpy.random.default_rng(1).standard_normal((shape[0], shape[1] // pieces) + shape[2:])
    x, t_x = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y = maxout(x, pieces)
    t_y = t_x.view(shape[0], shape[1] // pieces, pieces, *shape[2:]).max(2).values
    y.backward(minidl.tensor(dy, device=device))
    t_y.backward(torch.tensor(dy))
    numpy.testing.assert_allclose(host(y), t_y.detach().numpy(), rtol=1e-7)
    numpy.testing.assert_allclose(host(x.grad), t_x.grad.numpy(), rtol=1e-7)


def test_inference_matches_training_forward(device):
    x_np = distinct((2, 6, 2, 2), 4)
    with minidl.no_grad():
        y = maxout(leaf(x_np, device), 2)
    numpy.testing.assert_array_equal(host(y), host(maxout(leaf(x_np, device), 2)))
    assert not y.requires_grad


@given(pieces=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_many_ties_route_each_group_to_its_first_maximum(device, pieces, seed):
    # Values from {0, 1, 2} tie often; NumPy's argmax names the first maximum.
    x_np = numpy.random.default_rng(seed).integers(0, 3, (3, 2 * pieces, 2)).astype(float)
    x = leaf(x_np, device)
    dy = numpy.random.default_rng(seed + 1).uniform(1, 2, (3, 2, 2))
    maxout(x, pieces).backward(minidl.tensor(dy, device=device))
    first = reference(x_np, pieces, 1)[:, :, None] == x_np.reshape(3, 2, pieces, 2)
    first &= numpy.arange(pieces)[:, None] == first.argmax(axis=2)[:, :, None]
    numpy.testing.assert_array_equal(host(x.grad), (first * dy[:, :, None]).reshape(x_np.shape))
