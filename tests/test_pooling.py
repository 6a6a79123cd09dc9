"""Pooling: forward and max-pool routing against loop references, gradients by gradcheck."""
import math

import numpy
import pytest
from helpers import host, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import gradcheck
from minidl.functional.pooling import avg_pool2d, global_avg_pool2d, max_pool2d


def pooled_size(size, k, s, p, ceil_mode):
    """Output length as Caffe/PyTorch define it (written independently of minidl)."""
    out = (math.ceil if ceil_mode else math.floor)((size + 2 * p - k) / s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def reference_pool(x, kernel, stride, padding, ceil_mode, kind):
    """Pooled values and, for max, dx for dy = 1 routed to each window's first maximum.

    Window (i, j) covers rows [i*sh - ph, i*sh - ph + KH) of the zero-padded
    input, clipped to the rows that exist; the average divides by the part of
    the window inside the padded input (zero padding counts).
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n_, c_, h, w = x.shape
    oh, ow = pooled_size(h, kh, sh, ph, ceil_mode), pooled_size(w, kw, sw, pw, ceil_mode)
    y, dx = numpy.zeros((n_, c_, oh, ow)), numpy.zeros(x.shape)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    top, left = i * sh - ph, j * sw - pw
                    r0, r1 = max(top, 0), min(top + kh, h)
                    c0, c1 = max(left, 0), min(left + kw, w)
                    patch = x[n, c, r0:r1, c0:c1]
                    if kind == "max":
                        y[n, c, i, j] = patch.max()
                        r, q = numpy.unravel_index(numpy.argmax(patch), patch.shape)
                        dx[n, c, r0 + r, c0 + q] += 1
                    else:
                        count = (min(top + kh, h + ph) - top) * (min(left + kw, w + pw) - left)
                        y[n, c, i, j] = patch.sum() / count
    return y, dx


@st.composite
def pool_cases(draw, max_side=8):
    """(x shape, kernel, stride or None, padding, ceil_mode) that PyTorch would accept."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(max(1, kernel[d] - 2 * padding[d]), max_side)) for d in (0, 1))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, padding, draw(st.booleans())


def distinct(shape, seed):
    """Values without ties, at least 0.05 apart, negative and positive."""
    size = int(numpy.prod(shape))
    return (numpy.random.default_rng(seed).permutation(size) * 0.05 - size * 0.04).reshape(shape)


@pytest.mark.parametrize("kind, pool", [("max", max_pool2d), ("avg", avg_pool2d)])
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_forward_matches_loops(device, kind, pool, case, seed):
    shape, kernel, stride, padding, ceil_mode = case
    x = numpy.random.default_rng(seed).uniform(-3, 1, shape)
    y = pool(leaf(x, device), kernel, stride, padding, ceil_mode=ceil_mode)
    expected, _ = reference_pool(x, kernel, stride or kernel, padding, ceil_mode, kind)
    numpy.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-14)


@given(case=pool_cases(), seed=st.integers(0, 2**16), integers=st.booleans())
def test_max_pool_gradient_goes_to_first_maximum(device, case, seed, integers):
    # Few distinct integer values make ties common; the loop reference picks
    # the first maximum in row-major order, as max_pool2d must.
    shape, kernel, stride, padding, ceil_mode = case
    rng = numpy.random.default_rng(seed)
    x = rng.integers(-3, 0, shape).astype(float) if integers else rng.uniform(-1, 1, shape)
    xt = leaf(x, device)
    y = max_pool2d(xt, kernel, stride, padding, ceil_mode=ceil_mode)
    y.backward(minidl.tensor(numpy.ones(y.shape), device=device))
    _, expected = reference_pool(x, kernel, stride or kernel, padding, ceil_mode, "max")
    numpy.testing.assert_array_equal(host(xt.grad), expected)
    assert host(xt.grad).sum() == y.numel()             # each window sends its 1 exactly once


@given(case=pool_cases(max_side=6), seed=st.integers(0, 2**16))
def test_gradcheck(device, case, seed):
    shape, kernel, stride, padding, ceil_mode = case
    x = leaf(distinct(shape, seed), device)
    for pool in (max_pool2d, avg_pool2d):
        assert gradcheck(lambda x: pool(x, kernel, stride, padding, ceil_mode=ceil_mode), [x])


@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5),
                       st.integers(1, 5)), seed=st.integers(0, 2**16))
def test_global_avg_pool(device, shape, seed):
    x_np = numpy.random.default_rng(seed).uniform(-1, 1, shape)
    x = leaf(x_np, device)
    y = global_avg_pool2d(x)
    assert y.shape == shape[:2]
    numpy.testing.assert_allclose(host(y), x_np.mean(axis=(2, 3)), rtol=1e-12)
    assert gradcheck(global_avg_pool2d, [x])


def test_max_pool_pads_with_minus_infinity(device):
    x_np = -1 - numpy.arange(16.0).reshape(1, 1, 4, 4)     # all negative, largest top-left
    x = leaf(x_np, device)
    y = max_pool2d(x, 3, 2, padding=1, ceil_mode=True)
    # Windows cover rows (and columns) {0, 1}, {1, 2, 3} and {3} (plus padding); each
    # maximum is the window's top-left real pixel, never the zero a 0-padding would give.
    first = numpy.array([0, 1, 3])
    numpy.testing.assert_array_equal(host(y)[0, 0], x_np[0, 0][numpy.ix_(first, first)])
    y.sum().backward()
    expected = numpy.zeros((4, 4))
    expected[numpy.ix_(first, first)] = 1
    numpy.testing.assert_array_equal(host(x.grad)[0, 0], expected)


def test_window_of_minus_infinity_routes_to_its_first_real_pixel(device):
    x = leaf(numpy.full((1, 1, 3, 3), -numpy.inf), device)
    y = max_pool2d(x, 3, 2, padding=1)                # windows start at rows/columns -1 and 1
    assert numpy.all(host(y) == -numpy.inf)
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad)[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_kernel_with_more_than_256_offsets(device):
    # 17 * 17 = 289 offsets do not fit the uint8 winner index of smaller kernels.
    x_np = distinct((1, 2, 18, 17), 5)
    x = leaf(x_np, device)
    y = max_pool2d(x, 17, stride=1)
    y.backward(minidl.tensor(numpy.ones(y.shape), device=device))
    expected, dx = reference_pool(x_np, (17, 17), (1, 1), (0, 0), False, "max")
    numpy.testing.assert_array_equal(host(y), expected)
    numpy.testing.assert_array_equal(host(x.grad), dx)


def test_ties_route_to_first_element_of_each_window(device):
    x = leaf(numpy.full((1, 1, 4, 4), -2.0), device)
    y = max_pool2d(x, 3, stride=1)                    # overlapping windows, all values tied
    gy = numpy.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y.backward(minidl.tensor(gy, device=device))
    expected = numpy.zeros((4, 4))
    expected[:2, :2] = gy[0, 0]                       # window (i, j) starts at pixel (i, j)
    numpy.testing.assert_array_equal(host(x.grad)[0, 0], expected)
    assert host(x.grad).sum() == gy.sum()


def test_overlapping_windows_accumulate(device):
    x_np = numpy.zeros((1, 1, 3, 3))
    x_np[0, 0, 1, 1] = 5.0                            # the maximum of all four 2x2 windows
    x = leaf(x_np, device)
    max_pool2d(x, 2, stride=1).sum().backward()
    assert host(x.grad)[0, 0, 1, 1] == 4
    x = leaf(x_np, device)
    avg_pool2d(x, 2, stride=1).sum().backward()
    # Each window passes 1/4 to each of its pixels; pixel (r, c) lies in this many windows:
    numpy.testing.assert_allclose(host(x.grad)[0, 0] * 4, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_nin_pooling_takes_32_to_16_with_ceil_mode(device, pool):
    x = leaf(numpy.zeros((1, 2, 32, 32), dtype=numpy.float32), device)
    assert pool(x, 3, 2, ceil_mode=True).shape == (1, 2, 16, 16)
    assert pool(x, 3, 2).shape == (1, 2, 15, 15)


def test_ceil_mode_drops_a_window_that_would_start_in_the_padding(device):
    # 5 + 2*1 - 2 = 5 over stride 2 rounds up to 3, +1 = 4 windows, but the
    # fourth would start at row 3*2 - 1 = 5 = H, inside the right padding.
    x = leaf(numpy.ones((1, 1, 5, 5)), device)
    assert max_pool2d(x, 2, 2, padding=1, ceil_mode=True).shape == (1, 1, 3, 3)


def test_avg_pool_divisor_rule(device):
    # H = W = 4, kernel 3, stride 2, padding 1, ceil_mode: windows start at -1, 1, 3.
    # The first counts its zero padding row (2 real rows of 3); the last, rows 3..5,
    # is clipped at H + p = 5 to rows 3..4 (1 real row of 2 counted).
    x = leaf(numpy.ones((1, 1, 4, 4)), device)
    y = host(avg_pool2d(x, 3, 2, padding=1, ceil_mode=True))[0, 0]
    rows = numpy.array([2 / 3, 1.0, 1 / 2])            # real rows / counted rows per window
    numpy.testing.assert_allclose(y, numpy.outer(rows, rows))


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d, global_avg_pool2d])
def test_float32_stays_float32(device, pool):
    x = leaf(numpy.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(numpy.float32),
             device)
    y = pool(x) if pool is global_avg_pool2d else pool(x, 2, ceil_mode=True)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == numpy.float32


ERRORS = [
    (lambda x: max_pool2d(x[0, 0], 2), ValueError,
     r"max_pool2d: input must be 3-D or 4-D, got shape \(6, 6\)"),
    (lambda x: avg_pool2d(x.numpy(), 2), TypeError, r"avg_pool2d: input must be a minidl Tensor"),
    (lambda x: max_pool2d(x > 0, 2), TypeError,
     r"input must be a floating-point tensor, got dtype bool"),
    (lambda x: max_pool2d(x, 0), ValueError, r"kernel_size must be positive, got \(0, 0\)"),
    (lambda x: avg_pool2d(x, (2, -1)), ValueError, r"kernel_size must be positive, got \(2, -1\)"),
    (lambda x: max_pool2d(x, 2.0), TypeError, r"kernel_size must be an int or a pair of ints"),
    (lambda x: max_pool2d(x, 2, stride=0), ValueError, r"stride must be positive, got \(0, 0\)"),
    (lambda x: max_pool2d(x, 3, padding=2), ValueError,
     r"padding must be between 0 and half the kernel size \(kernel_size // 2 = \(1, 1\)\), "
     r"got \(2, 2\)"),
    (lambda x: avg_pool2d(x, 3, padding=(0, -1)), ValueError, r"padding must be non-negative, got \(0, -1\)"),
    (lambda x: max_pool2d(x, 7), ValueError,
     r"max_pool2d: kernel_size \(7, 7\) is larger than the padded input \(6, 6\) \(input "
     r"\(6, 6\) plus padding \(0, 0\)"),
    (lambda x: avg_pool2d(x, (9, 2), padding=(1, 0)), ValueError,
     r"avg_pool2d: kernel_size \(9, 2\) is larger than the padded input \(8, 6\)"),
    (lambda x: max_pool2d(x, 2, ceil_mode=1), TypeError, r"ceil_mode must be True or False, got 1"),
    (lambda x: global_avg_pool2d(x[0, 0]), ValueError,
     r"global_avg_pool2d: input must be 3-D or 4-D"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_errors_name_the_argument(device, call, error, message):
    x = leaf(numpy.ones((2, 3, 6, 6)), device)
    with pytest.raises(error, match=message):
        call(x)


@settings(max_examples=15)
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_matches_torch_forward_and_gradients(case, seed):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, ceil_mode = case
    x = distinct(shape, seed)
    for ours, theirs in ((max_pool2d, torch.nn.functional.max_pool2d),
                         (avg_pool2d, torch.nn.functional.avg_pool2d)):
        xt, tx = leaf(x, "cpu"), torch.tensor(x, requires_grad=True)
        y = ours(xt, kernel, stride, padding, ceil_mode=ceil_mode)
        ty = theirs(tx, kernel, stride, padding, ceil_mode=ceil_mode)
        g = numpy.random.default_rng(seed).standard_normal(y.shape)
        y.backward(g)
        ty.backward(torch.tensor(g))
        numpy.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-7, atol=1e-12)
        numpy.testing.assert_allclose(host(xt.grad), tx.grad.numpy(), rtol=1e-7, atol=1e-12)
