"""conv2d: forward against a loop reference, gradients against central differences (float64)."""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from minidl import backend, gradcheck
from minidl.functional import conv
from minidl.functional.conv import conv2d


def reference_conv2d(x, w, b, stride, padding):
    """The definition, one output element at a time."""
    (sh, sw), (ph, pw) = stride, padding
    n_, c_, h, wd = x.shape
    o_, _, kh, kw = w.shape
    xpad = numpy.zeros((n_, c_, h + 2 * ph, wd + 2 * pw))
    xpad[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = numpy.zeros((n_, o_, oh, ow))
    for n in range(n_):
        for o in range(o_):
            for i in range(oh):
                for j in range(ow):
                    patch = xpad[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[n, o, i, j] = (patch * w[o]).sum() + (0.0 if b is None else b[o])
    return y


@st.composite
def conv_cases(draw, max_side=7):
    """(x shape, w shape, stride, padding) with the kernel fitting the padded input."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = tuple(draw(st.integers(max(1, kernel[d] - 2 * padding[d]), max_side)) for d in (0, 1))
    return (n, c) + size, (o, c) + kernel, stride, padding


def draw_arrays(x_shape, w_shape, seed):
    rng = numpy.random.default_rng(seed)
    return (rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape),
            rng.uniform(-1, 1, w_shape[0]))


@given(case=conv_cases(), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_forward_matches_loops(device, case, seed, with_bias):
    x_shape, w_shape, stride, padding = case
    x, w, b = draw_arrays(x_shape, w_shape, seed)
    b = b if with_bias else None
    y = conv2d(leaf(x, device), leaf(w, device), None if b is None else leaf(b, device),
               stride=stride, padding=padding)
    numpy.testing.assert_allclose(host(y), reference_conv2d(x, w, b, stride, padding),
                                  rtol=1e-10, atol=1e-12)


@settings(max_examples=10)
@given(case=conv_cases(max_side=5), seed=st.integers(0, 2**16))
def test_gradcheck_x_weight_bias(device, case, seed):
    x_shape, w_shape, stride, padding = case
    x, w, b = (leaf(a, device) for a in draw_arrays(x_shape, w_shape, seed))
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride, padding), [x, w, b])


def test_gradcheck_each_input_alone_and_without_bias(device):
    x, w, b = draw_arrays((2, 2, 5, 4), (3, 2, 3, 2), 7)
    for needs in ((True, False, False), (False, True, False), (False, False, True)):
        inputs = [leaf(a, device, requires_grad=r) for a, r in zip((x, w, b), needs)]
        assert gradcheck(lambda x, w, b: conv2d(x, w, b, 2, 1), inputs)
    assert gradcheck(lambda x, w: conv2d(x, w, padding=(0, 1)), [leaf(x, device), leaf(w, device)])


def test_backward_skips_gradients_nobody_needs(device):
    x, w, b = draw_arrays((2, 2, 5, 5), (3, 2, 3, 3), 3)
    y = conv2d(leaf(x, device, requires_grad=False), leaf(w, device),
               leaf(b, device, requires_grad=False), padding=1)
    assert y.creator.col is not None and y.creator.wg is None    # only what dW needs is kept
    gx, gw, gb = y.creator.backward(y.data)
    assert gx is None and gb is None and gw.shape == w.shape
    y = conv2d(leaf(x, device), leaf(w, device, requires_grad=False))
    assert y.creator.col is None
    gx, gw = y.creator.backward(y.data)
    assert gw is None and gx.shape == x.shape


@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), c=st.integers(1, 4),
       h=st.integers(1, 5), w=st.integers(1, 5))
def test_pointwise_shortcut_equals_im2col_path(device, monkeypatch, seed, n, c, h, w):
    x, wt, b = draw_arrays((n, c, h, w), (3, c, 1, 1), seed)
    g = numpy.random.default_rng(seed + 1).standard_normal((n, 3, h, w))
    results = []
    for forced in (False, True):
        with monkeypatch.context() as patch:
            if forced:
                patch.setattr(conv, "_is_pointwise", lambda *args: False)
            xt, wtt, bt = leaf(x, device), leaf(wt, device), leaf(b, device)
            y = conv2d(xt, wtt, bt)
            assert y.creator.pointwise is not forced
            y.backward(minidl.tensor(g, device=device))
        results.append([host(t) for t in (y, xt.grad, wtt.grad, bt.grad)])
    for shortcut, im2col in zip(*results):
        numpy.testing.assert_allclose(shortcut, im2col, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(results[0][0], reference_conv2d(x, wt, b, (1, 1), (0, 0)),
                                  rtol=1e-10, atol=1e-12)


def test_overlapping_windows_accumulate_input_gradient(device):
    # With stride 1 a 3x3 kernel of ones sees the centre pixel of a 3x3 input
    # from all 9 windows of the padded input, a corner pixel from 4.
    x = leaf(numpy.zeros((1, 1, 3, 3)), device)
    y = conv2d(x, leaf(numpy.ones((1, 1, 3, 3)), device, requires_grad=False), padding=1)
    y.backward(minidl.tensor(numpy.ones((1, 1, 3, 3)), device=device))
    numpy.testing.assert_array_equal(host(x.grad)[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


@pytest.mark.parametrize("kernel, padding", [(3, 1), (1, 0)])
def test_float32_stays_float32(device, kernel, padding):
    rng = numpy.random.default_rng(0)
    x = leaf(rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32), device)
    w = leaf(rng.standard_normal((4, 3, kernel, kernel)).astype(numpy.float32), device)
    b = leaf(numpy.zeros(4, dtype=numpy.float32), device)
    y = conv2d(x, w, b, padding=padding)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == numpy.float32
    expected = reference_conv2d(host(x), host(w), host(b), (1, 1), (padding, padding))
    numpy.testing.assert_allclose(host(y), expected, rtol=1e-4, atol=1e-5)


def test_output_shape_with_stride_and_asymmetric_padding(device):
    x = leaf(numpy.ones((2, 3, 11, 9)), device)
    w = leaf(numpy.ones((5, 3, 3, 2)), device)
    assert conv2d(x, w, stride=(2, 3), padding=(1, 0)).shape == (2, 5, 6, 3)


def test_im2col_size_limit_names_the_size_and_suggests_a_smaller_batch(device):
    # 8 * 64*64 output pixels * 64 * 33*33 kernel entries = 2.28e9 elements > 2**31.
    x = leaf(numpy.zeros((8, 64, 64, 64), dtype=numpy.float32), device, requires_grad=False)
    w = leaf(numpy.zeros((1, 64, 33, 33), dtype=numpy.float32), device, requires_grad=False)
    with pytest.raises(MemoryError, match=r"im2col buffer would hold N\*OH\*OW\*C\*KH\*KW = "
                                          r"8\*64\*64\*64\*33\*33 = 2283798528 elements "
                                          r"\(8\.5 GiB\).*smaller batch"):
        conv2d(x, w, padding=16)


def test_im2col_limit_is_a_module_setting(device, monkeypatch):
    monkeypatch.setattr(conv, "MAX_IM2COL_ELEMENTS", 100)
    x, w = leaf(numpy.ones((1, 2, 4, 4)), device), leaf(numpy.ones((1, 2, 2, 2)), device)
    with pytest.raises(MemoryError, match=r"= 1\*5\*5\*2\*2\*2 = 200 elements.*limit of 100"):
        conv2d(x, w, padding=1)
    assert conv2d(x, w).shape == (1, 1, 3, 3)          # 72 elements: under the limit


ERRORS = [
    (lambda x, w, b: conv2d(x[0, 0], w), ValueError,
     r"conv2d: x must be 3-D or 4-D, got shape \(5, 5\)"),
    (lambda x, w, b: conv2d(x, w[0]), ValueError, r"weight must be 4-D, got shape \(2, 3, 3\)"),
    (lambda x, w, b: conv2d(x.numpy(), w), TypeError, r"x must be a minidl Tensor, got ndarray"),
    (lambda x, w, b: conv2d(x[:, :1], w), ValueError,
     r"x has 1 input channels .* but weight expects 2 \(weight.shape\[1\]"),
    (lambda x, w, b: conv2d(x, w, b[:2]), ValueError, r"bias must have shape \(4,\).*got \(2,\)"),
    (lambda x, w, b: conv2d(x, w, b.reshape(4, 1)), ValueError, r"bias must be 1-D, got shape"),
    (lambda x, w, b: conv2d(x[:, :, :2, :2], w), ValueError,
     r"kernel size \(3, 3\) is larger than the padded input \(2, 2\) \(input \(2, 2\) plus "
     r"padding \(0, 0\)"),
    (lambda x, w, b: conv2d(x, w, stride=0), ValueError, r"stride must be positive, got \(0, 0\)"),
    (lambda x, w, b: conv2d(x, w, stride=(1, -2)), ValueError, r"stride must be positive"),
    (lambda x, w, b: conv2d(x, w, padding=(-1, 0)), ValueError,
     r"padding must be non-negative, got \(-1, 0\)"),
    (lambda x, w, b: conv2d(x, w, stride=(1, 2, 3)), TypeError,
     r"stride must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)"),
    (lambda x, w, b: conv2d(x, w, padding=1.5), TypeError, r"padding must be an int or a pair"),
    (lambda x, w, b: conv2d(x, w.float()), TypeError,
     r"weight has dtype float32 but x has dtype float64"),
    (lambda x, w, b: conv2d(x, w, b.float()), TypeError,
     r"bias has dtype float32 but x has dtype float64"),
    (lambda x, w, b: conv2d(x > 0, w), TypeError,
     r"x must be a floating-point tensor, got dtype bool"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_errors_name_the_argument(device, call, error, message):
    x = leaf(numpy.ones((2, 2, 5, 5)), device)
    w = leaf(numpy.ones((4, 2, 3, 3)), device)
    b = leaf(numpy.ones(4), device)
    with pytest.raises(error, match=message):
        call(x, w, b)


@settings(max_examples=15)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_matches_torch_forward_and_gradients(case, seed):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, stride, padding = case
    x, w, b = draw_arrays(x_shape, w_shape, seed)
    xt, wt, bt = (leaf(a, "cpu") for a in (x, w, b))
    y = conv2d(xt, wt, bt, stride, padding)
    g = numpy.random.default_rng(seed).standard_normal(y.shape)
    y.backward(g)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    assert tuple(ty.shape) == y.shape
    ty.backward(torch.tensor(g))
    for ours, theirs in ((y, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad)):
        numpy.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-7, atol=1e-12)


def batch_minor(array):
    """True when the (N, C, H, W) array lies in memory as (C, H, W, N), C-ordered."""
    return array.transpose(1, 2, 3, 0).flags.c_contiguous


def test_layers_between_convolutions_keep_the_batch_minor_layout(device):
    """conv -> batch norm -> maxout -> ReLU -> pooling -> dropout -> 1x1 conv: every output
    stays (C, H, W, N) in memory, so the 1x1 convolution takes its input without a copy, and
    so do the input gradients, down to the first convolution's."""
    x, w, _ = draw_arrays((2, 3, 9, 9), (8, 3, 3, 3), 0)      # 9x9, then 4x4 and 3x3
    w2 = numpy.random.default_rng(1).standard_normal((2, 4, 1, 1))
    xt = leaf(x, device)
    spatial = conv2d(xt, leaf(w, device), padding=1)
    normalized = F.batch_norm(spatial, None, None)
    units = F.maxout(normalized, 2)
    rectified = F.relu(units)
    maxpooled = F.max_pool2d(rectified, 3, stride=2, ceil_mode=True)
    averaged = F.avg_pool2d(maxpooled, 2, stride=1)
    dropped = F.dropout(averaged, 0.5)
    out = conv2d(dropped, leaf(w2, device))
    layers = [("conv", spatial), ("batch norm", normalized), ("maxout", units),
              ("relu", rectified), ("max pool", maxpooled), ("avg pool", averaged),
              ("dropout", dropped), ("1x1", out)]
    for name, t in layers:
        assert batch_minor(t.data), name
    assert batch_minor(dropped.creator.keep)          # the mask lies as its input does
    if device == "cpu":
        assert numpy.shares_memory(out.creator.col, dropped.data)    # no copy of the input
    xp = backend.get_array_module(rectified.data)
    for name, t in (("relu", rectified), ("dropout", dropped)):    # a broadcast dy, as from
        spread = xp.broadcast_to(xp.ones((1, 1, 1, 1)), t.shape)     # global pooling, still
        assert batch_minor(t.creator.backward(spread)), name       # gives dx in x's layout
    grad = minidl.ones_like(out).data
    for name, t in reversed(layers):              # each op's input gradient, output to input
        grads = t.creator.backward(grad)
        grad = grads[0] if isinstance(grads, tuple) else grads
        assert batch_minor(grad), name
