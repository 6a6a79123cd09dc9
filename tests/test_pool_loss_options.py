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
    # A window over padding only outputs -inf; PyTorch's backward then writes its gradient
    # at an index outside the input plane (past the end of the last one: it corrupts the
    # heap), minidl drops it.  See the next test.
    if every_window_reads_the_input(shape, kernel, stride or kernel, padding, dilation,
                                    y.shape[-2:]):
        backward_both(y, ty, seed)
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
    # docs/convolution.md's example: 6 columns, kernel 3, stride 2, padding 1, ceil_mode.
    # Windows start at -1, 1, 3, 5; the last covers column 5, the padding column 6 and
    # column 7 beyond the padded input.
    x = leaf(numpy.ones((1, 1, 6)), device)
    sums = numpy.array([2, 3, 3, 1])                   # real pixels per window
    for options, divisors in (({}, [3, 3, 3, 2]), ({"count_include_pad": False}, [2, 3, 3, 1]),
                              ({"divisor_override": 4}, [4, 4, 4, 4])):
        y = F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True, **options)
        ty = TF.avg_pool2d(torch.ones(1, 1, 6, dtype=torch.float64), (1, 3), (1, 2), (0, 1),
                           ceil_mode=True, **options)
        numpy.testing.assert_allclose(host(y)[0, 0], sums / divisors, rtol=1e-15)
        agree(y, ty)


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
                                       divisor_override=2),
                          nn.GlobalAvgPool2d())
    exported = interop.to_torch(model)
    assert exported[0].dilation == (2, 1) and exported[1].count_include_pad is False
    assert exported[1].divisor_override == 2
    back = interop.from_torch(exported)
    assert repr(back) == repr(model)
    for x in (distinct((1, 2, 6, 5), 3), distinct((2, 6, 5), 3)):      # batched, unbatched
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


# ------------------------------------------------------------------------------ losses

REDUCTIONS = ["mean", "sum", "none"]


@st.composite
def class_cases(draw):
    """(input shape, class axis, weights or None, ignore_index, labels, reduction, smoothing).

    Batched (N, C), spatial (N, C, d) or unbatched (C,); some labels are ignored.
    """
    c = draw(st.integers(1, 5))
    shape = draw(st.sampled_from([(3, c), (2, c, 3), (c,)]))
    axis = min(len(shape) - 1, 1)
    label_shape = shape[:axis] + shape[axis + 1:]
    seed = draw(st.integers(0, 2**16))
    rng = numpy.random.default_rng(seed)
    labels = rng.integers(0, c, label_shape)
    ignore_index = draw(st.sampled_from([-100, -1, 0, c - 1]))
    labels = numpy.where(rng.random(label_shape) < 0.3, ignore_index, labels)
    weight = rng.uniform(0.1, 2, c) if draw(st.booleans()) else None
    smoothing = draw(st.sampled_from([0.0, 0.1, 1.0, 0.37]))
    return (shape, weight, ignore_index, labels, draw(st.sampled_from(REDUCTIONS)), smoothing,
            seed)


def both_weights(weight, device):
    if weight is None:
        return None, None
    return leaf(weight, device, requires_grad=False), torch.tensor(weight)


@given(case=class_cases())
def test_cross_entropy_options_match_torch(device, case):
    shape, weight, ignore_index, labels, reduction, smoothing, seed = case
    assume(reduction != "mean" or (labels != ignore_index).any())      # else 0/0, below
    logits_np = numpy.random.default_rng(seed).normal(0, 3, shape)
    x, tx = leaf(logits_np, device), torch.tensor(logits_np, requires_grad=True)
    w, tw = both_weights(weight, device)
    loss = F.cross_entropy(x, minidl.tensor(labels, device=device), w, ignore_index, reduction,
                           smoothing)
    t_loss = TF.cross_entropy(tx, torch.tensor(labels), tw, ignore_index=ignore_index,
                              reduction=reduction, label_smoothing=smoothing)
    assert loss.shape == tuple(t_loss.shape)
    agree(loss, t_loss)
    backward_both(loss, t_loss, seed)
    agree(x.grad, tx.grad)


@given(case=class_cases())
def test_nll_loss_options_match_torch(device, case):
    shape, weight, ignore_index, labels, reduction, _, seed = case
    assume(reduction != "mean" or (labels != ignore_index).any())
    scores = numpy.random.default_rng(seed).normal(-2, 1, shape)
    x, tx = leaf(scores, device), torch.tensor(scores, requires_grad=True)
    w, tw = both_weights(weight, device)
    loss = F.nll_loss(x, minidl.tensor(labels, device=device), w, ignore_index, reduction)
    t_loss = TF.nll_loss(tx, torch.tensor(labels), tw, ignore_index=ignore_index,
                         reduction=reduction)
    agree(loss, t_loss)
    backward_both(loss, t_loss, seed)
    agree(x.grad, tx.grad)


@given(shape=st.sampled_from([(3, 4), (2, 3, 2), (5,)]), seed=st.integers(0, 2**16),
       weighted=st.booleans(), reduction=st.sampled_from(REDUCTIONS),
       smoothing=st.sampled_from([0.0, 0.2, 1.0]))
def test_cross_entropy_probability_targets_match_torch(device, shape, seed, weighted,
                                                       reduction, smoothing):
    rng = numpy.random.default_rng(seed)
    axis = min(len(shape) - 1, 1)
    logits_np = rng.normal(0, 2, shape)
    probs_np = rng.dirichlet(numpy.ones(shape[axis]), shape[:axis] + shape[axis + 1:])
    probs_np = numpy.moveaxis(probs_np, -1, axis)
    weight = rng.uniform(0.1, 2, shape[axis]) if weighted else None
    x, tx = leaf(logits_np, device), torch.tensor(logits_np, requires_grad=True)
    y, ty = leaf(probs_np, device), torch.tensor(probs_np, requires_grad=True)
    w, tw = both_weights(weight, device)
    loss = F.cross_entropy(x, y, w, reduction=reduction, label_smoothing=smoothing)
    t_loss = TF.cross_entropy(tx, ty, tw, reduction=reduction, label_smoothing=smoothing)
    agree(loss, t_loss)
    backward_both(loss, t_loss, seed)
    agree(x.grad, tx.grad)
    agree(y.grad, ty.grad)


@settings(max_examples=10)
@given(case=class_cases())
def test_loss_gradients_pass_gradcheck(device, case):
    shape, weight, ignore_index, labels, reduction, smoothing, seed = case
    assume(reduction != "mean" or (labels != ignore_index).any())
    rng = numpy.random.default_rng(seed)
    x = leaf(rng.normal(0, 2, shape), device)
    w = None if weight is None else leaf(weight, device, requires_grad=False)
    t = minidl.tensor(labels, device=device)
    # A random projection turns "none" into a scalar that still sees every element.
    project = leaf(rng.standard_normal(labels.shape), device, requires_grad=False)

    def scalar(loss):
        return (loss * project).sum() if reduction == "none" else loss

    assert gradcheck(lambda x: scalar(F.cross_entropy(x, t, w, ignore_index, reduction,
                                                      smoothing)), [x])
    assert gradcheck(lambda x: scalar(F.nll_loss(x, t, w, ignore_index, reduction)), [x])
    probs = leaf(rng.dirichlet(numpy.ones(shape[-1]), shape[:-1]), device)
    if len(shape) == 2 and ignore_index < 0:
        assert gradcheck(lambda x, y: F.cross_entropy(x, y, w, reduction="sum",
                                                      label_smoothing=smoothing), [x, probs])


@given(shape=st.sampled_from([(3,), (2, 3), (2, 1, 4)]), seed=st.integers(0, 2**16),
       reduction=st.sampled_from(REDUCTIONS))
def test_mse_loss_reductions_match_torch(device, shape, seed, reduction):
    rng = numpy.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    x, tx = leaf(a, device), torch.tensor(a, requires_grad=True)
    y, ty = leaf(b, device), torch.tensor(b, requires_grad=True)
    loss, t_loss = F.mse_loss(x, y, reduction), TF.mse_loss(tx, ty, reduction=reduction)
    agree(loss, t_loss)
    backward_both(loss, t_loss, seed)
    agree(x.grad, tx.grad)
    agree(y.grad, ty.grad)


def test_mean_over_only_ignored_labels_is_nan_as_in_torch(device):
    logits_np = numpy.random.default_rng(0).standard_normal((2, 3))
    labels = numpy.array([-100, -100])
    t_loss = TF.cross_entropy(torch.tensor(logits_np), torch.tensor(labels))
    with numpy.errstate(invalid="ignore"):
        loss = F.cross_entropy(leaf(logits_np, device), minidl.tensor(labels, device=device))
    assert numpy.isnan(host(loss)) and torch.isnan(t_loss)


def test_label_smoothing_stays_finite_for_huge_logits(device):
    logits_np = numpy.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    x, tx = leaf(logits_np, device), torch.tensor(logits_np, requires_grad=True)
    labels = numpy.array([1, 2])
    loss = F.cross_entropy(x, minidl.tensor(labels, device=device), label_smoothing=0.1)
    t_loss = TF.cross_entropy(tx, torch.tensor(labels), label_smoothing=0.1)
    loss.backward()
    t_loss.backward()
    assert numpy.isfinite(host(loss)) and numpy.isfinite(host(x.grad)).all()
    agree(loss, t_loss)
    agree(x.grad, tx.grad)


def test_loss_modules_take_the_options_and_match_torch(device):
    rng = numpy.random.default_rng(4)
    logits_np, weight = rng.normal(0, 2, (4, 3)), rng.uniform(0.5, 2, 3)
    labels = numpy.array([2, 0, 1, 2])
    modules = [
        (nn.CrossEntropyLoss(minidl.tensor(weight), ignore_index=2, reduction="sum",
                             label_smoothing=0.2),
         torch.nn.CrossEntropyLoss(torch.tensor(weight), ignore_index=2, reduction="sum",
                                   label_smoothing=0.2)),
        (nn.NLLLoss(minidl.tensor(weight), ignore_index=0, reduction="none"),
         torch.nn.NLLLoss(torch.tensor(weight), ignore_index=0, reduction="none")),
    ]
    for ours, theirs in modules:
        ours.to(device)                               # moves the weight buffer too
        assert ours.weight.device == leaf(weight, device).device
        assert sorted(ours.state_dict()) == ["weight"]
        agree(ours(leaf(logits_np, device), minidl.tensor(labels, device=device)),
              theirs(torch.tensor(logits_np), torch.tensor(labels)))
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    agree(nn.MSELoss(reduction="sum")(leaf(a, device), leaf(b, device)),
          torch.nn.MSELoss(reduction="sum")(torch.tensor(a), torch.tensor(b)))
    assert nn.CrossEntropyLoss().state_dict() == {}


def test_options_keep_the_loss_on_the_device(fake_gpu):
    """With check_labels=False no option reads anything back to the host."""
    logits = leaf(numpy.random.default_rng(0).standard_normal((4, 3)), "cuda")
    labels = minidl.tensor(numpy.array([0, 2, -1, 1]), device="cuda")
    weight = minidl.tensor(numpy.array([1.0, 2.0, 0.5]), device="cuda")
    fake_gpu.reset_transfers()
    for reduction in REDUCTIONS:
        loss = F.cross_entropy(logits, labels, weight, -1, reduction, 0.1, check_labels=False)
        loss.sum().backward()
        F.nll_loss(logits, labels, weight, -1, reduction, check_labels=False).sum().backward()
    assert fake_gpu.transfers == {"to_device": 0, "to_host": 0}


def loss_inputs(device):
    logits = leaf(numpy.zeros((3, 4)), device)
    return logits, minidl.tensor(numpy.array([0, 1, 2]), device=device)


LOSS_ERRORS = [
    (lambda x, t: F.cross_entropy(x, t, reduction="avg"), ValueError,
     "cross_entropy: reduction must be one of 'none', 'mean', 'sum', got 'avg'"),
    (lambda x, t: F.nll_loss(x, t, reduction=None), TypeError,
     "nll_loss: reduction must be a string, one of 'none', 'mean', 'sum', got None"),
    (lambda x, t: F.mse_loss(x, x, reduction="Mean"), ValueError,
     "mse_loss: reduction must be one of 'none', 'mean', 'sum', got 'Mean'"),
    (lambda x, t: F.cross_entropy(x, t, label_smoothing=1.5), ValueError,
     "cross_entropy: label_smoothing must be in [0, 1], got 1.5"),
    (lambda x, t: F.cross_entropy(x, t, ignore_index=0.5), TypeError,
     "cross_entropy: ignore_index must be an integer, got 0.5"),
    (lambda x, t: F.cross_entropy(x, t, minidl.tensor(numpy.ones(3), device=x.device)),
     ValueError, "cross_entropy: weight must have shape (4,), one entry per class of input "
                 "(3, 4), got shape (3,)"),
    (lambda x, t: F.nll_loss(x, t, minidl.tensor(numpy.ones(4, "float32"), device=x.device)),
     TypeError, "nll_loss: weight has dtype float32 but input has dtype float64; convert one "
                "explicitly with .to(dtype=...) (minidl never promotes silently)"),
    (lambda x, t: F.cross_entropy(x, t, numpy.ones(4)), TypeError,
     "cross_entropy: weight must be a minidl Tensor, got ndarray"),
    (lambda x, t: F.cross_entropy(x, minidl.tensor(numpy.array([0, 5, 1]), device=x.device),
                                  ignore_index=5), None, None),
    (lambda x, t: F.cross_entropy(x, minidl.tensor(numpy.array([0, 4, 1]), device=x.device),
                                  ignore_index=-1), ValueError,
     "cross_entropy: labels must be in [0, 4) for 4 classes, got 4 at index 1 "
     "(ignore_index=-1 is exempt)"),
    (lambda x, t: F.nll_loss(leaf(numpy.zeros((2, 4, 3)), x.device),
                             minidl.tensor(numpy.array([[0, 1, 2], [3, 9, 0]]), device=x.device)),
     ValueError, "nll_loss: labels must be in [0, 4) for 4 classes, got 9 at index (1, 1) "
                 "(ignore_index=-100 is exempt)"),
    (lambda x, t: F.cross_entropy(x, x, ignore_index=1), ValueError,
     "cross_entropy: ignore_index is not supported with class-probability targets, got 1 "
     "(leave it negative)"),
    (lambda x, t: F.cross_entropy(x, leaf(numpy.zeros(3), x.device)), TypeError,
     "cross_entropy: labels must be an integer tensor or array, got float64 of shape (3,); "
     "class probabilities must be a floating tensor of the input's shape (3, 4)"),
    (lambda x, t: F.cross_entropy(x, x.to(dtype="float32")), TypeError,
     "cross_entropy: target has dtype float32 but input has dtype float64; convert one "
     "explicitly with .to(dtype=...) (minidl never promotes silently)"),
    (lambda x, t: F.cross_entropy(x, t, None, -100, "mean", 0.0, False), TypeError,
     "cross_entropy() takes from 2 to 6 positional arguments but 7 were given"),
    (lambda x, t: F.cross_entropy(x, t, check_labels=0), TypeError,
     "cross_entropy: check_labels must be True or False, got 0"),
    (lambda x, t: F.cross_entropy(x.sum(), t), ValueError,
     "cross_entropy: input must have a class axis (C,), (N, C) or (N, C, d1, ...), got shape ()"),
    (lambda x, t: nn.CrossEntropyLoss(reduction="avg"), ValueError,
     "CrossEntropyLoss: reduction must be one of 'none', 'mean', 'sum', got 'avg'"),
    (lambda x, t: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError,
     "CrossEntropyLoss: label_smoothing must be in [0, 1], got -0.1"),
    (lambda x, t: nn.NLLLoss(weight=[1.0, 2.0]), TypeError,
     "NLLLoss: weight must be a minidl Tensor, got list"),
    (lambda x, t: nn.NLLLoss(ignore_index=True), TypeError,
     "NLLLoss: ignore_index must be an integer, got True"),
    (lambda x, t: nn.MSELoss(reduction="elementwise_mean"), ValueError,
     "MSELoss: reduction must be one of 'none', 'mean', 'sum', got 'elementwise_mean'"),
]


@pytest.mark.parametrize("call, error, message", LOSS_ERRORS,
                         ids=[str(message)[:60] for _, _, message in LOSS_ERRORS])
def test_bad_loss_options_are_refused(device, call, error, message):
    x, t = loss_inputs(device)
    if error is None:                 # an out-of-range label that is ignored is no error
        assert numpy.isfinite(host(call(x, t)))
        return
    with pytest.raises(error, match=None if message is None else f"^{re.escape(message)}$"):
        call(x, t)


def test_nll_loss_reads_only_the_labels_entry(device):
    # log 0 = -inf in another class must not turn the loss into NaN (0 * -inf).
    scores = numpy.array([[-numpy.inf, -0.5, -1.0], [-2.0, -numpy.inf, -0.1]])
    x, tx = leaf(scores, device), torch.tensor(scores, requires_grad=True)
    labels = numpy.array([1, 2])
    loss = F.nll_loss(x, minidl.tensor(labels, device=device), reduction="sum")
    t_loss = TF.nll_loss(tx, torch.tensor(labels), reduction="sum")
    backward_both(loss, t_loss, 0)
    assert numpy.isfinite(host(loss))
    agree(loss, t_loss)
    agree(x.grad, tx.grad)


def test_options_keep_float32(device):
    rng = numpy.random.default_rng(2)
    x = leaf(rng.standard_normal((2, 3, 5, 5)).astype(numpy.float32), device)
    y, indices = F.max_pool2d(x, 2, 1, 1, dilation=2, return_indices=True)
    z = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=None)
    (y.sum() + z.sum() + F.avg_pool2d(x, 2, divisor_override=3).sum()).backward()
    assert y.dtype == z.dtype == x.grad.dtype == numpy.float32 and indices.dtype == numpy.int64
    logits = leaf(rng.standard_normal((4, 3)).astype(numpy.float32), device)
    probs = leaf(numpy.full((4, 3), 1 / 3, numpy.float32), device)
    weight = leaf(numpy.array([1, 2, 3], numpy.float32), device, requires_grad=False)
    labels = minidl.tensor(numpy.array([0, 1, 2, -100]), device=device)
    losses = [F.cross_entropy(logits, labels, weight, label_smoothing=0.1),
              F.cross_entropy(logits, probs, weight, reduction="sum", label_smoothing=0.1),
              F.nll_loss(logits, labels, weight, reduction="none").sum(),
              F.mse_loss(logits, probs, reduction="sum")]
    sum(losses[1:], losses[0]).backward()
    assert all(loss.dtype == numpy.float32 for loss in losses)
    assert logits.grad.dtype == probs.grad.dtype == numpy.float32
