"""conv2d's PyTorch options: padding "same"/"valid", dilation, groups, unbatched input.

Forward and all three gradients against PyTorch (float64, rtol 1e-7) over drawn
geometries; where PyTorch is missing, against references built from plain
convolutions (zero-inserted kernels for dilation, one convolution per group,
explicit zero rows for "same"), and central differences.
"""
import re

import numpy
import pytest
from helpers import host, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
from minidl import gradcheck
from minidl.functional.conv import conv2d


@st.composite
def option_cases(draw, max_side=8):
    """(x shape, w shape, stride, padding, dilation, groups), the dilated kernel fitting."""
    groups = draw(st.integers(1, 3))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid", "pair"]))
    if padding == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    if padding == "same":
        stride, total = (1, 1), (0, 0)      # "same" keeps the size: any input fits
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        total = (0, 0) if padding == "valid" else (2 * padding[0], 2 * padding[1])
    span = [dilation[d] * (kernel[d] - 1) + 1 for d in (0, 1)]
    size = tuple(draw(st.integers(max(1, span[d] - total[d]), max(max_side, span[d])))
                 for d in (0, 1))
    batch = draw(st.sampled_from([(), (1,), (2,)]))             # () is unbatched (C, H, W)
    return batch + (c,) + size, (o, c // groups) + kernel, stride, padding, dilation, groups


def draw_arrays(x_shape, w_shape, seed):
    rng = numpy.random.default_rng(seed)
    return (rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape),
            rng.uniform(-1, 1, w_shape[0]))


# PyTorch warns that it copies the input for "same" with an even kernel: its cost, not ours.
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=40)
@given(case=option_cases(), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_forward_and_gradients_match_torch(device, case, seed, with_bias):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, stride, padding, dilation, groups = case
    arrays = draw_arrays(x_shape, w_shape, seed)[:3 if with_bias else 2]
    ours = [leaf(a, device) for a in arrays]
    y = conv2d(*ours, stride=stride, padding=padding, dilation=dilation, groups=groups)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch.nn.functional.conv2d(*theirs, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups)
    assert y.shape == tuple(ty.shape)
    g = numpy.random.default_rng(seed + 1).standard_normal(y.shape)
    y.backward(minidl.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    for mine, reference in zip([y] + [t.grad for t in ours], [ty] + [t.grad for t in theirs]):
        numpy.testing.assert_allclose(host(mine), reference.detach().numpy(), rtol=1e-7,
                                      atol=1e-12)


def test_gradcheck_grouped_dilated(device):
    x, w, b = draw_arrays((2, 4, 7, 6), (6, 2, 3, 2), 5)
    cases = [dict(padding="same", dilation=2, groups=2),
             dict(stride=(2, 1), padding=(1, 0), dilation=(1, 3), groups=2)]
    for options in cases:
        assert gradcheck(lambda x, w, b: conv2d(x, w, b, **options),
                         [leaf(x, device), leaf(w, device), leaf(b, device)])
    # Each input alone: backward must not rely on what another input's gradient keeps.
    for needs in ((True, False, False), (False, True, False), (False, False, True)):
        inputs = [leaf(a, device, requires_grad=r) for a, r in zip((x, w, b), needs)]
        assert gradcheck(lambda x, w, b: conv2d(x, w, b, **cases[0]), inputs)


def dilated_kernel(w, dilation):
    """``w`` with dilation - 1 zeros between neighbouring taps: the same convolution, undilated."""
    o, c, kh, kw = w.shape
    wide = numpy.zeros((o, c, dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1))
    wide[:, :, ::dilation[0], ::dilation[1]] = w
    return wide


@given(case=option_cases(), seed=st.integers(0, 2**16))
def test_dilation_equals_a_zero_inserted_kernel_and_groups_separate_convolutions(device, case,
                                                                                  seed):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x, w, b = draw_arrays(x_shape, w_shape, seed)
    y = conv2d(leaf(x, device), leaf(w, device), leaf(b, device), stride, padding, dilation,
               groups)
    # Group g: input channels [g*C/G, (g+1)*C/G) with filters [g*O/G, (g+1)*O/G), undilated.
    cg, og, axis = w_shape[1], w_shape[0] // groups, len(x_shape) - 3
    parts = [conv2d(leaf(x.take(range(g * cg, (g + 1) * cg), axis), device),
                    leaf(dilated_kernel(w[g * og:(g + 1) * og], dilation), device),
                    leaf(b[g * og:(g + 1) * og], device), stride, padding)
             for g in range(groups)]
    numpy.testing.assert_allclose(host(y), numpy.concatenate([host(p) for p in parts], axis),
                                  rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**16), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)))
def test_same_keeps_the_size_and_pads_an_odd_pixel_after(device, seed, kernel, dilation):
    x, w, _ = draw_arrays((2, 3, 7, 8), (4, 3) + kernel, seed)
    y = conv2d(leaf(x, device), leaf(w, device), padding="same", dilation=dilation)
    assert y.shape == (2, 4, 7, 8)
    total = [dilation[d] * (kernel[d] - 1) for d in (0, 1)]
    top, left = total[0] // 2, total[1] // 2
    padded = numpy.pad(x, ((0, 0), (0, 0), (top, total[0] - top), (left, total[1] - left)))
    expected = conv2d(leaf(padded, device), leaf(w, device), dilation=dilation)
    numpy.testing.assert_allclose(host(y), host(expected), rtol=1e-12, atol=1e-12)
    valid = conv2d(leaf(x, device), leaf(w, device), padding="valid", dilation=dilation)
    numpy.testing.assert_array_equal(host(valid), host(conv2d(leaf(x, device), leaf(w, device),
                                                              dilation=dilation)))


def test_unbatched_input_is_a_batch_of_one_without_the_batch_axis(device):
    x, w, b = draw_arrays((4, 6, 5), (6, 2, 3, 3), 2)
    xt = leaf(x, device)
    y = conv2d(xt, leaf(w, device), leaf(b, device), padding=1, dilation=(2, 1), groups=2)
    batched = conv2d(leaf(x[None], device), leaf(w, device), leaf(b, device), padding=1,
                     dilation=(2, 1), groups=2)
    assert y.shape == (6, 4, 5)
    numpy.testing.assert_array_equal(host(y), host(batched)[0])
    y.sum().backward()
    assert xt.grad.shape == x.shape


def test_groups_run_as_one_batched_product_and_1x1_skips_im2col(device):
    x, w, b = draw_arrays((2, 6, 4, 5), (9, 2, 1, 1), 4)
    y = conv2d(leaf(x, device), leaf(w, device), leaf(b, device), groups=3, dilation=2)
    assert y.creator.pointwise                       # dilation moves no tap of a 1x1 kernel
    assert y.creator.wg.shape == (3, 3, 2)           # (G, O/G, C/G*KH*KW)
    assert y.creator.col.shape == (3, 2, 2 * 4 * 5)  # (G, C/G*KH*KW, N*OH*OW)
    # "same" pads a 1x1 kernel by nothing, so it keeps the shortcut too.
    assert conv2d(leaf(x, device), leaf(w, device), padding="same", groups=3).creator.pointwise
    per_group = [host(conv2d(leaf(x[:, 2 * g:2 * g + 2], device), leaf(w[3 * g:3 * g + 3], device),
                             leaf(b[3 * g:3 * g + 3], device))) for g in range(3)]
    numpy.testing.assert_allclose(host(y), numpy.concatenate(per_group, 1), rtol=1e-12,
                                  atol=1e-12)


def test_float32_stays_float32(device):
    x, w, b = (a.astype(numpy.float32) for a in draw_arrays((2, 4, 6, 6), (4, 2, 3, 3), 0))
    ours = [leaf(a, device) for a in (x, w, b)]
    y = conv2d(*ours, padding="same", dilation=2, groups=2)
    y.sum().backward()
    assert {y.dtype} | {t.grad.dtype for t in ours} == {numpy.dtype(numpy.float32)}
    expected = conv2d(*(leaf(a.astype(numpy.float64), device) for a in (x, w, b)),
                      padding="same", dilation=2, groups=2)
    numpy.testing.assert_allclose(host(y), host(expected), rtol=1e-4, atol=1e-5)


ERRORS = [
    (dict(groups=0), ValueError, "conv2d: groups must be >= 1, got 0"),
    (dict(groups=1.5), TypeError, "conv2d: groups must be an integer, got 1.5"),
    (dict(groups=3), ValueError,
     "conv2d: in_channels (x.shape[1]) must be divisible by groups=3, got 4"),
    (dict(groups=4), ValueError,
     "conv2d: out_channels (weight.shape[0]) must be divisible by groups=4, got 6"),
    (dict(groups=2), ValueError,
     "conv2d: x has 4 input channels (shape (2, 4, 5, 5)) but weight expects 8 (weight.shape[1] "
     "= 4 per group times groups=2, weight shape (6, 4, 3, 3))"),
    (dict(dilation=0), ValueError, "conv2d: dilation must be positive, got (0, 0)"),
    (dict(dilation=(1, -1)), ValueError, "conv2d: dilation must be positive, got (1, -1)"),
    (dict(dilation=1.5), TypeError,
     "conv2d: dilation must be an int or a pair of ints (h, w), got 1.5"),
    (dict(padding="same", stride=(1, 2)), ValueError,
     "conv2d: padding='same' needs stride 1 (as in PyTorch), got stride (1, 2); give the "
     "padding as numbers instead"),
    (dict(padding="full"), ValueError,
     "conv2d: padding must be 'same', 'valid', an int or a pair of ints (h, w), got 'full'"),
    (dict(dilation=3), ValueError,
     "conv2d: kernel size (3, 3) with dilation (3, 3) spans (7, 7) and is larger than the "
     "padded input (5, 5) (input (5, 5) plus padding (0, 0) on each side)"),
    (dict(dilation=(3, 1), padding=(0, 1)), ValueError,
     "conv2d: kernel size (3, 3) with dilation (3, 1) spans (7, 3) and is larger than the "
     "padded input (5, 7) (input (5, 5) plus padding (0, 1) on each side)"),
]


@pytest.mark.parametrize("options, error, message", ERRORS, ids=[m for _, _, m in ERRORS])
def test_errors_name_the_argument_and_the_expected_value(device, options, error, message):
    x = leaf(numpy.ones((2, 4, 5, 5)), device)
    w = leaf(numpy.ones((6, 4, 3, 3)), device)
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        conv2d(x, w, **options)


def test_unbatched_errors_name_the_channel_axis(device):
    w = leaf(numpy.ones((4, 2, 3, 3)), device)
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: in_channels (x.shape[0]) must be divisible by groups=2, got 3")):
        conv2d(leaf(numpy.ones((3, 5, 5)), device), w, groups=2)
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: x has 3 input channels (shape (3, 5, 5)) but weight expects 2")):
        conv2d(leaf(numpy.ones((3, 5, 5)), device), w)


# ------------------------------------------------------------------ nn.Conv2d

def test_layer_equals_the_functional_op_and_takes_unbatched_input(device, rng):
    layer = nn.Conv2d(4, 6, (3, 2), padding="same", dilation=(1, 2), groups=2,
                      dtype="float64").to(device)
    assert layer.weight.shape == (6, 2, 3, 2)
    x = minidl.tensor(rng.standard_normal((2, 4, 5, 7)), device=device)
    expected = conv2d(x, layer.weight, layer.bias, padding="same", dilation=(1, 2), groups=2)
    numpy.testing.assert_array_equal(host(layer(x)), host(expected))
    # A batch of one is a narrower matrix product, which BLAS may block (and
    # so round) differently: equal to float64 rounding, not bit for bit.
    numpy.testing.assert_allclose(host(layer(x[0])), host(expected)[0], rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match=re.escape(
            "Conv2d(in_channels=4): input has 5 channels in axis 0 (shape (5, 8, 8)), "
            "expected 4")):
        layer(minidl.tensor(numpy.zeros((5, 8, 8)), device=device))


def test_layer_init_uses_fan_in_per_group():
    minidl.manual_seed(0)
    layer = nn.Conv2d(64, 32, 3, groups=8)
    bound = 1 / numpy.sqrt(64 / 8 * 3 * 3)             # fan_in = in_channels / groups * kh * kw
    for values in (host(layer.weight), host(layer.bias)):
        assert numpy.abs(values).max() <= bound
    assert numpy.abs(host(layer.weight)).max() > 0.99 * bound     # 2304 draws fill the range


OPTIONS = [dict(), dict(padding=1), dict(padding="same", dilation=2), dict(padding="valid"),
           dict(stride=(2, 1), dilation=(1, 3), groups=2, bias=False), dict(groups=4)]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_layer_repr_and_shapes_match_torch(options):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Conv2d(4, 8, 3, **options), torch.nn.Conv2d(4, 8, 3, **options)
    assert ours.extra_repr() == theirs.extra_repr()
    assert ours.weight.shape == tuple(theirs.weight.shape)
    for option in ("stride", "padding", "dilation", "groups"):
        assert getattr(ours, option) == getattr(theirs, option)


BAD_LAYERS = [
    (lambda: nn.Conv2d(4, 6, 3, groups=3), ValueError,
     "Conv2d: in_channels must be divisible by groups=3, got 4"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     "Conv2d: out_channels must be divisible by groups=4, got 6"),
    (lambda: nn.Conv2d(4, 6, 3, groups=0), ValueError, "Conv2d: groups must be >= 1, got 0"),
    (lambda: nn.Conv2d(4, 6, 3, groups=True), TypeError,
     "Conv2d: groups must be an integer, got True"),
    (lambda: nn.Conv2d(4, 6, 3, dilation=0), ValueError,
     "Conv2d: dilation must be positive, got (0, 0)"),
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding="same"), ValueError,
     "Conv2d: padding='same' needs stride 1 (as in PyTorch), got stride (2, 2); give the "
     "padding as numbers instead"),
    (lambda: nn.Conv2d(4, 6, 3, padding="Same"), ValueError,
     "Conv2d: padding must be 'same', 'valid', an int or a pair of ints (h, w), got 'Same'"),
]


@pytest.mark.parametrize("make, error, message", BAD_LAYERS, ids=[m for _, _, m in BAD_LAYERS])
def test_layer_arguments_are_checked_at_construction(make, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        make()
