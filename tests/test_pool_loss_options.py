"""The PyTorch options of pooling and of the losses, each against PyTorch 2.13 in float64.

Pooling: max_pool2d ``dilation`` and ``return_indices``, avg_pool2d
``count_include_pad`` and ``divisor_override``, unbatched (C, H, W) input.
Losses: ``weight``, ``ignore_index``, ``reduction``, ``label_smoothing`` and
class-probability targets of cross_entropy; nll_loss and mse_loss options.
Forward values and gradients must agree at rtol 1e-7 on every backend.
"""
import re

import numpy
import pytest
from helpers import host, leaf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minidl
from minidl import gradcheck, nn
from minidl import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def agree(ours, theirs, atol=1e-12):
    numpy.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-7, atol=atol)


def backward_both(y, ty, seed):
    """Back-propagate the same random upstream gradient through both outputs."""
    g = numpy.random.default_rng(seed).standard_normal(ty.shape)
    y.backward(minidl.tensor(g, device=y.device))
    ty.backward(torch.tensor(g))


# ------------------------------------------------------------------------------ pooling

@st.composite
def pool_cases(draw, dilated=True):
    """(shape, kernel, stride or None, padding, dilation, ceil_mode) that PyTorch accepts.

    Batched or unbatched; the dilated window must fit the padded input.
    """
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilated else (1, 1)
    size = tuple(draw(st.integers(max(1, dilation[d] * (kernel[d] - 1) + 1 - 2 * padding[d]), 7))
                 for d in (0, 1))
    lead = draw(st.sampled_from([(2, 2), (1, 3), (2,)]))
    return lead + size, kernel, stride, padding, dilation, draw(st.booleans())


def every_window_reads_the_input(shape, kernel, stride, padding, dilation, out):
    """Whether each window has a tap on a real pixel (with dilation some may see only padding)."""
    for d in (0, 1):
        for i in range(out[d]):
            taps = [i * stride[d] - padding[d] + u * dilation[d] for u in range(kernel[d])]
            if not any(0 <= t < shape[-2 + d] for t in taps):
                return False
    return True


def distinct(shape, seed):
    """Values without ties, negative and positive, in a random order."""
    size = int(numpy.prod(shape))
    return (numpy.random.default_rng(seed).permutation(size) * 0.05 - size * 0.03).reshape(shape)


@given(case=pool_cases(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_dilation_and_indices_match_torch(device, case, seed, ties):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    # Few integer values make ties common: both frameworks pick the first maximum.
    x_np = (numpy.random.default_rng(seed).integers(-2, 1, shape).astype(float) if ties
            else distinct(shape, seed))
    x, tx = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y, indices = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                              return_indices=True)
    ty, t_indices = TF.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode,
                                  return_indices=True)
    agree(y, ty)
    assert indices.dtype == numpy.int64 and indices.device == x.device
    assert not indices.requires_grad
    numpy.testing.assert_array_equal(host(indices), t_indices.numpy())
    backward_both(y, ty, seed)
    # A window over padding only outputs -inf; PyTorch then sends its gradient to an
    # index outside the input plane (into the next plane), minidl drops it.
    if every_window_reads_the_input(shape, kernel, stride or kernel, padding, dilation,
                                    y.shape[-2:]):
        agree(x.grad, tx.grad)


def test_a_dilated_window_over_padding_only_is_minus_infinity_without_gradient(device):
    # One column, padding 1, taps 2 apart: the window reads columns -1 and 1, neither real.
    x = leaf(numpy.ones((2, 1, 1)), device)
    y, indices = F.max_pool2d(x, (1, 2), padding=(0, 1), dilation=(1, 2), return_indices=True)
    ty, t_indices = TF.max_pool2d(torch.ones(2, 1, 1), (1, 2), padding=(0, 1), dilation=(1, 2),
                                  return_indices=True)
    agree(y, ty)
    assert numpy.all(host(y) == -numpy.inf)
    numpy.testing.assert_array_equal(host(indices), t_indices.numpy())
    y.sum().backward()
    numpy.testing.assert_array_equal(host(x.grad), numpy.zeros((2, 1, 1)))


@given(case=pool_cases(dilated=False), seed=st.integers(0, 2**16),
       count_include_pad=st.booleans(), divisor=st.one_of(st.none(), st.integers(1, 5)))
def test_avg_pool_divisors_match_torch(device, case, seed, count_include_pad, divisor):
    shape, kernel, stride, padding, _, ceil_mode = case
    x_np = numpy.random.default_rng(seed).uniform(-2, 2, shape)
    x, tx = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y = F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    ty = TF.avg_pool2d(tx, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    agree(y, ty)
    backward_both(y, ty, seed)
    agree(x.grad, tx.grad)


def test_avg_pool_divisors_of_a_ceil_mode_window_over_the_padding(device):
    # 5 columns, kernel 3, stride 2, padding 1, ceil_mode: windows start at -1, 1, 3; the
    # last covers columns 3, 4 and the right padding 5 exactly, the middle one no padding.
    x = leaf(numpy.ones((1, 1, 5)), device)
    for include, expected in ((True, [2 / 3, 1, 2 / 3]), (False, [1, 1, 1])):
        y = F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True, count_include_pad=include)
        numpy.testing.assert_allclose(host(y)[0, 0], expected, rtol=1e-15)
    y = F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True, divisor_override=4)
    numpy.testing.assert_allclose(host(y)[0, 0], [2 / 4, 3 / 4, 2 / 4], rtol=1e-15)


@settings(max_examples=10)
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_dilated_and_unbatched_pooling_pass_gradcheck(device, case, seed):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = leaf(distinct(shape, seed), device)
    out = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode).shape[-2:]
    assume(every_window_reads_the_input(shape, kernel, stride or kernel, padding, dilation, out))
    assert gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode),
                     [x])
    assert gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode, False), [x])


def test_global_avg_pool_of_unbatched_input_matches_torch(device):
    x_np = numpy.random.default_rng(0).standard_normal((3, 4, 5))
    x, tx = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    y, ty = F.global_avg_pool2d(x), TF.adaptive_avg_pool2d(tx, 1).flatten()
    assert y.shape == (3,)
    agree(y, ty)
    backward_both(y, ty, 0)
    agree(x.grad, tx.grad)


def test_pooling_layers_take_the_options_and_match_torch(device):
    x_np = distinct((2, 3, 7, 6), 1)
    layers = [
        (nn.MaxPool2d(3, 2, 1, dilation=2, return_indices=True, ceil_mode=True),
         torch.nn.MaxPool2d(3, 2, 1, dilation=2, return_indices=True, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
        (nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3)),
        (nn.GlobalAvgPool2d(), lambda t: t.mean(dim=(-2, -1))),
    ]
    for ours, theirs in layers:
        for data in (x_np, x_np[0]):                   # batched and unbatched
            y, ty = ours(leaf(data, device)), theirs(torch.tensor(data))
            if isinstance(ty, tuple):
                numpy.testing.assert_array_equal(host(y[1]), ty[1].numpy())
                y, ty = y[0], ty[0]
            agree(y, ty)
    assert repr(layers[0][0]) == ("MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, "
                                  "ceil_mode=True, return_indices=True)")
    assert repr(layers[2][0]) == ("AvgPool2d(kernel_size=2, stride=2, padding=0, "
                                  "ceil_mode=False, divisor_override=3)")


def test_pooling_options_survive_interop():
    from minidl import interop
    model = nn.Sequential(nn.MaxPool2d(3, 1, 1, dilation=(2, 1), ceil_mode=True),
                          nn.AvgPool2d(2, 1, 1, ceil_mode=True, count_include_pad=False,
                                       divisor_override=2))
    exported = interop.to_torch(model)
    assert exported[0].dilation == (2, 1) and exported[1].count_include_pad is False
    assert exported[1].divisor_override == 2
    back = interop.from_torch(exported)
    assert repr(back) == repr(model)
    x = distinct((1, 2, 6, 5), 3)
    numpy.testing.assert_allclose(back(minidl.tensor(x)).numpy(),
                                  exported(torch.tensor(x)).numpy(), rtol=1e-7)


POOL_ERRORS = [
    (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError,
     "max_pool2d: dilation must be positive, got (0, 0)"),
    (lambda x: F.max_pool2d(x, 2, dilation=1.5), TypeError,
     "max_pool2d: dilation must be an int or a pair of ints (h, w), got 1.5"),
    (lambda x: F.max_pool2d(x, 2, return_indices=1), TypeError,
     "max_pool2d: return_indices must be True or False, got 1"),
    (lambda x: F.max_pool2d(x, 3, dilation=(3, 1)), ValueError,
     "max_pool2d: kernel_size (3, 3) (spanning (7, 3) with dilation (3, 1)) is larger than "
     "the padded input (6, 6) (input (6, 6) plus padding (0, 0) on each side)"),
    (lambda x: F.avg_pool2d(x, 2, count_include_pad="no"), TypeError,
     "avg_pool2d: count_include_pad must be True or False, got 'no'"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must be >= 1, got 0"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=2.0), TypeError,
     "avg_pool2d: divisor_override must be an integer, got 2.0"),
    (lambda x: nn.MaxPool2d(2, dilation=(1, 0)), ValueError,
     "MaxPool2d: dilation must be positive, got (1, 0)"),
    (lambda x: nn.MaxPool2d(2, return_indices="yes"), TypeError,
     "MaxPool2d: return_indices must be True or False, got 'yes'"),
    (lambda x: nn.AvgPool2d(2, count_include_pad=0), TypeError,
     "AvgPool2d: count_include_pad must be True or False, got 0"),
    (lambda x: nn.AvgPool2d(2, divisor_override=-1), ValueError,
     "AvgPool2d: divisor_override must be >= 1, got -1"),
    (lambda x: F.avg_pool2d(x[0, 0], 2), ValueError,
     "avg_pool2d: input must be 3-D or 4-D, got shape (6, 6)"),
    (lambda x: nn.MaxPool2d(2)(x[0, 0]), ValueError,
     "MaxPool2d: input must be 3-D or 4-D, got shape (6, 6)"),
]


@pytest.mark.parametrize("call, error, message", POOL_ERRORS,
                         ids=[message for _, _, message in POOL_ERRORS])
def test_bad_pooling_options_are_refused(device, call, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        call(leaf(numpy.ones((2, 3, 6, 6)), device))
