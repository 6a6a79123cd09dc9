"""PyTorch's Tensor idioms: size/dim/numel, view, permute, transpose(d0, d1), flatten, squeeze,
clone, devices, dim=/keepdim= with NumPy aliases, max(dim), and the creation functions.

Gradients of the new shape ops are checked by central differences here and
against PyTorch in tests/test_ops_vs_torch.py.
"""
import numpy
import pytest
from helpers import host, leaf

import minidl
import minidl.functional as F
from minidl import gradcheck


def values(shape, seed=0):
    return numpy.random.default_rng(seed).uniform(-2, 2, shape)


def test_size_dim_numel(device):
    x = leaf(values((2, 3, 4)), device)
    assert x.size() == (2, 3, 4) == x.shape
    assert x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == 3 and x.numel() == 24 and len(x) == 2


def test_view_permute_transpose_flatten_squeeze(device):
    x_np = values((2, 1, 3, 4))
    x = leaf(x_np, device)
    assert x.view(-1, 4).shape == (6, 4) and x.view(24).shape == (24,)
    numpy.testing.assert_array_equal(host(x.permute(3, 0, 2, 1)), x_np.transpose(3, 0, 2, 1))
    numpy.testing.assert_array_equal(host(x.transpose(0, 2)), x_np.swapaxes(0, 2))
    numpy.testing.assert_array_equal(host(x.transpose(-1, 1)), x_np.swapaxes(-1, 1))
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.flatten(1, 2).shape == (2, 3, 4) and x.flatten(0, -2).shape == (6, 4)
    assert x.squeeze().shape == (2, 3, 4) and x.squeeze(1).shape == (2, 3, 4)
    assert x.squeeze(0).shape == (2, 1, 3, 4)          # not of size 1: kept, as in PyTorch
    assert x.unsqueeze(0).shape == (1, 2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 1, 3, 4, 1)
    assert x.mT.shape == (2, 1, 4, 3) and x.T.shape == (4, 3, 1, 2)
    assert F.flatten(minidl.tensor(2.0)).shape == (1,)


def test_shape_op_errors(device):
    x = leaf(values((2, 3)), device)
    with pytest.raises(ValueError, match=r"transpose: axis 2 is out of range"):
        x.transpose(0, 2)
    with pytest.raises(ValueError, match=r"permute: dims \(0,\) are not a permutation"):
        x.permute(0)
    with pytest.raises(ValueError, match="flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)
    with pytest.raises(TypeError, match="unsqueeze: dim must be an integer"):
        x.unsqueeze(1.0)


@pytest.mark.parametrize("op", [
    lambda t: t.permute(2, 0, 1) * t.permute(2, 0, 1),
    lambda t: t.transpose(0, 2) * 3.0,
    lambda t: t.flatten(1) * t.flatten(1),
    lambda t: t.unsqueeze(1).squeeze(1) * t,
    lambda t: t.clone() * t,
    lambda t: t.mT @ t,
    lambda t: minidl.cat([t, t * t], dim=-1),
    lambda t: minidl.stack([t, t * 2.0], dim=1),
])
def test_shape_op_gradients(device, op):
    assert gradcheck(op, [leaf(values((2, 3, 3)), device)])


def test_clone_copies_and_stays_in_the_graph(device):
    x = leaf(values((3,)), device)
    y = x.clone()
    assert y.requires_grad and not y.is_leaf
    y.data[0] = 100.0
    assert host(x)[0] != 100.0
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), numpy.ones(3))


def test_cpu_cuda_float_double(device):
    x = minidl.tensor(values((2,)), device=device)
    assert x.cpu().device == "cpu" and x.float().dtype == numpy.float32
    assert x.float().double().dtype == numpy.float64
    if device == "cuda":
        assert x.cpu().cuda().device == "cuda:0"


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_dim_keepdim_and_numpy_aliases(device, name):
    x_np = values((2, 3, 4))
    x = leaf(x_np, device)
    reference = getattr(numpy, "amax" if name == "max" else name)
    expected = reference(x_np, axis=(0, 2), keepdims=True)
    numpy.testing.assert_allclose(host(getattr(x, name)(axis=(0, 2), keepdims=True)), expected)
    if name != "max":      # max(dim) is PyTorch's (values, indices) along one axis
        numpy.testing.assert_allclose(host(getattr(x, name)(dim=(0, 2), keepdim=True)),
                                      expected)
        numpy.testing.assert_allclose(host(getattr(x, name)(1)), reference(x_np, axis=1))
    with pytest.raises(TypeError, match=rf"{name}: got both dim=1 and its NumPy alias axis=1"):
        getattr(x, name)(dim=1, axis=1)
    with pytest.raises(TypeError, match=rf"{name}: got both keepdim=True and its NumPy alias "
                                        rf"keepdims=True"):
        getattr(x, name)(keepdim=True, keepdims=True)


def test_max_with_dim_returns_values_and_indices(device):
    x_np = numpy.array([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]])
    x = leaf(x_np, device)
    values_, indices = x.max(dim=1)
    assert values_.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]    # first maximum
    result = x.max(0, keepdim=True)
    assert result.values.shape == (1, 3) and result.indices.tolist() == [[1, 0, 0]]
    assert x.max().item() == 7.0 and x.max(axis=1).tolist() == [5.0, 7.0]
    result.values.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), [[0, 1, 1], [1, 0, 0]])
    with pytest.raises(TypeError, match="max: dim must be one int"):
        x.max(dim=(0, 1))


def test_argmax_softmax_and_log_softmax_take_dim(device):
    x_np = values((3, 4))
    x = leaf(x_np, device)
    assert x.argmax(dim=1).tolist() == x_np.argmax(axis=1).tolist()
    assert x.argmax(dim=0, keepdim=True).shape == (1, 4) and x.argmax().shape == ()
    numpy.testing.assert_allclose(host(F.softmax(x, dim=0)), host(F.softmax(x, axis=0)))
    numpy.testing.assert_allclose(host(x.log_softmax(dim=1)), host(x.log_softmax()))
    with pytest.raises(TypeError, match="softmax: got both dim=0 and its NumPy alias axis=1"):
        F.softmax(x, dim=0, axis=1)


def test_creation_functions(device):
    minidl.backend.set_default_device(device)
    z = minidl.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == numpy.float32 and z.device == minidl.backend.device(
        device) and not z.requires_grad and host(z).sum() == 0
    o = minidl.ones((4,), dtype="float64", requires_grad=True)
    assert o.dtype == numpy.float64 and o.requires_grad and host(o).sum() == 4
    assert minidl.zeros_like(o).dtype == numpy.float64 and minidl.ones_like(z).shape == (2, 3)
    assert minidl.arange(5).dtype == numpy.int64 and minidl.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert minidl.arange(1, 2, 0.5).tolist() == [1.0, 1.5]
    assert minidl.arange(1, 2, 0.5).dtype == numpy.float32
    minidl.manual_seed(3)
    a = minidl.randn(2, 3)
    minidl.manual_seed(3)
    assert a.dtype == numpy.float32 and a.device == z.device
    numpy.testing.assert_array_equal(host(a), host(minidl.randn(2, 3)))
    with pytest.raises(TypeError, match="randn: dtype must be a floating type"):
        minidl.randn(2, dtype="int64")
