"""Inverted dropout: seeding, scaling, expectation, evaluation, errors."""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from minidl import gradcheck
from minidl.functional.dropout import dropout


def test_same_seed_gives_the_same_mask(device):
    x = leaf(numpy.ones((50, 40)), device)
    minidl.manual_seed(3)
    first = host(dropout(x, 0.5))
    minidl.manual_seed(3)
    again = host(dropout(x, 0.5))
    different = host(dropout(x, 0.5))
    numpy.testing.assert_array_equal(first, again)
    assert not numpy.array_equal(first, different)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_units_are_scaled_and_the_mean_is_preserved(device, p):
    n = 200_000
    x_np = numpy.random.default_rng(0).uniform(1, 2, n)
    y = host(dropout(leaf(x_np, device), p))
    kept = y != 0
    numpy.testing.assert_allclose(y[kept], x_np[kept] / (1 - p), rtol=1e-15)
    # y / x is 0 or 1 / (1 - p), with mean 1 and variance p / (1 - p): its sample mean
    # stays within 5 standard errors of 1 (a false alarm about once in 10**6 runs).
    assert abs((y / x_np).mean() - 1) < 5 * numpy.sqrt(p / (1 - p) / n)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), p=st.floats(0.05, 0.9),
       seed=st.integers(0, 2**16))
def test_backward_uses_the_forward_mask(device, shape, p, seed):
    x = leaf(numpy.random.default_rng(seed).uniform(1, 2, shape), device)
    minidl.manual_seed(seed)
    y = dropout(x, p)
    dy = numpy.random.default_rng(seed + 1).standard_normal(shape)
    y.backward(minidl.tensor(dy, device=device))
    mask = host(y) / host(x)
    numpy.testing.assert_allclose(host(x.grad), dy * mask, rtol=1e-12)
    # Reseeding in every call makes all of gradcheck's forward passes draw one mask.
    assert gradcheck(lambda t: (minidl.manual_seed(seed), dropout(t, p))[1], [x])


def test_identity_when_not_training_or_p_zero(device):
    x = leaf(numpy.random.default_rng(0).standard_normal((3, 4)), device)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


def test_float32_stays_float32(device):
    x = leaf(numpy.ones((10, 10), numpy.float32), device)
    y = dropout(x, 0.3)
    y.backward(minidl.tensor(numpy.ones((10, 10), numpy.float32), device=device))
    assert host(y).dtype == numpy.float32 and host(x.grad).dtype == numpy.float32
    numpy.testing.assert_allclose(numpy.unique(host(y)), [0, 1 / 0.7], rtol=1e-6)


def test_invalid_arguments(device):
    x = leaf(numpy.ones(3), device)
    for p in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got"):
            dropout(x, p)
    for p in ("0.5", True, None):
        with pytest.raises(TypeError, match=r"dropout: p must be a real number, got"):
            dropout(x, p)
    with pytest.raises(TypeError, match=r"dropout: training must be True or False, got 1"):
        dropout(x, 0.5, training=1)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got dtype int64"):
        dropout(minidl.tensor(numpy.ones(3, int), device=device), 0.5)
    with pytest.raises(TypeError, match=r"x must be a minidl Tensor, got list"):
        dropout([1.0, 2.0], 0.5)


def test_scaling_matches_torch(device):
    torch = pytest.importorskip("torch")
    p = 0.3
    x_np = numpy.random.default_rng(0).uniform(1, 2, 1000)
    ours = host(dropout(leaf(x_np, device), p))
    t_x = torch.tensor(x_np, requires_grad=True)
    theirs = torch.nn.functional.dropout(t_x, p, training=True)
    theirs.sum().backward()
    theirs = theirs.detach().numpy()
    # Both drop to 0 and scale the kept units by 1 / (1 - p); torch's gradient is its mask.
    numpy.testing.assert_allclose(ours[ours != 0], x_np[ours != 0] / (1 - p), rtol=1e-15)
    numpy.testing.assert_allclose(theirs[theirs != 0], x_np[theirs != 0] / (1 - p), rtol=1e-15)
    numpy.testing.assert_allclose(t_x.grad.numpy(), theirs / x_np, rtol=1e-15)


def test_backward_keeps_only_the_boolean_mask(device):
    x = leaf(numpy.random.default_rng(0).uniform(1, 2, (20, 30)), device)
    y = dropout(x, 0.4)
    keep = host(y.creator.keep)
    assert keep.dtype == numpy.bool_
    numpy.testing.assert_array_equal(keep, host(y) != 0)
