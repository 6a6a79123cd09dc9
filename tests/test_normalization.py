"""Batch normalization: forward against NumPy, gradients, running statistics, errors."""
from unittest import mock

import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import gradcheck
from minidl.functional import _batch_norm
from minidl.functional.normalization import batch_norm

EPS = 1e-5


@st.composite
def bn_shapes(draw):
    """(N, C) with N >= 2, (N, C, L) with N * L >= 2, or (N, C, H, W) with N * H * W >= 2:
    shapes that can train."""
    rank = draw(st.sampled_from([2, 3, 4]))
    if rank == 2:
        return (draw(st.integers(2, 5)), draw(st.integers(1, 3)))
    if rank == 3:
        n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        return (n, c, draw(st.integers(2 if n == 1 else 1, 4)))
    n, c, h, w = (draw(st.integers(1, 3)) for _ in range(4))
    return (n, c, h, max(w, 3 - n * h))


def spread(shape, seed):
    """Distinct values (gaps >= 0.1) with a per-channel offset and scale: no tiny variances."""
    rng = numpy.random.default_rng(seed)
    size = int(numpy.prod(shape))
    v = (rng.permutation(size) * 0.1 - size * 0.05).reshape(shape)
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    return v * rng.uniform(0.5, 2.0, per_channel) + rng.uniform(-3, 3, per_channel)


def axes_of(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def reference(x, gamma, beta, mean=None, var=None):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta; batch statistics (biased) by default."""
    axes = axes_of(x)
    mean = x.mean(axes) if mean is None else mean
    var = x.var(axes) if var is None else var
    xhat = (x - per_channel(mean, x.ndim)) / numpy.sqrt(per_channel(var, x.ndim) + EPS)
    return per_channel(gamma, x.ndim) * xhat + per_channel(beta, x.ndim)


def parameters(channels, device, seed=7, dtype=numpy.float64):
    rng = numpy.random.default_rng(seed)
    gamma = leaf(rng.uniform(0.5, 2.0, channels).astype(dtype), device)
    beta = leaf(rng.uniform(-1, 1, channels).astype(dtype), device)
    return gamma, beta


def buffers(channels, device, dtype=numpy.float64):
    return (minidl.tensor(numpy.zeros(channels, dtype), device=device),
            minidl.tensor(numpy.ones(channels, dtype), device=device))


@given(shape=bn_shapes(), seed=st.integers(0, 2**16))
def test_training_forward_and_gradients(device, shape, seed):
    x_np = spread(shape, seed)
    x = leaf(x_np, device)
    gamma, beta = parameters(shape[1], device, seed)
    y = batch_norm(x, gamma, beta)
    numpy.testing.assert_allclose(host(y), reference(x_np, host(gamma), host(beta)),
                                  rtol=1e-10, atol=1e-12)
    assert gradcheck(batch_norm, [x, gamma, beta])


@given(shape=bn_shapes(), seed=st.integers(0, 2**16))
def test_one_channel_per_block_and_channel_major_input(device, shape, seed):
    """Blocks of one channel each (on the host), on input in (C, N, ...) memory as
    convolutions leave it: the same values and gradients."""
    x_np = spread(shape, seed)
    channel_major = leaf(numpy.ascontiguousarray(numpy.swapaxes(x_np, 0, 1)), device)
    gamma, beta = parameters(shape[1], device, seed)

    def normalized(x_cn, gamma, beta):
        return batch_norm(x_cn.transpose(0, 1), gamma, beta)

    with mock.patch.object(_batch_norm, "BLOCK_BYTES", 1):
        blocks = _batch_norm.channel_blocks(channel_major.transpose(0, 1).data)
        assert len(blocks) == (shape[1] if device == "cpu" else 1)
        if shape[0] > 1:                 # C-ordered (N, C, ...): a block would be scattered
            assert _batch_norm.channel_blocks(leaf(x_np, device).data) == [slice(0, shape[1])]
        y = normalized(channel_major, gamma, beta)
        numpy.testing.assert_allclose(host(y), reference(x_np, host(gamma), host(beta)),
                                      rtol=1e-10, atol=1e-12)
        assert gradcheck(normalized, [channel_major, gamma, beta])


# Memory axis orders of an (N, C, H, W) array: C-ordered, channel-major, and channel-major
# with the batch innermost, as convolutions leave their output.
LAYOUTS = [(0, 1, 2, 3), (1, 0, 2, 3), (1, 2, 3, 0)]


def laid_out(array, order, device):
    """``array``'s values on ``device``, in memory laid out in the axis order ``order``."""
    memory = minidl.tensor(numpy.ascontiguousarray(array.transpose(order)), device=device).data
    return memory.transpose(tuple(numpy.argsort(order)))


@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 3), w=st.integers(1, 3),
       x_order=st.sampled_from(LAYOUTS), gy_order=st.sampled_from(LAYOUTS),
       seed=st.integers(0, 2**16))
def test_any_memory_layout_of_input_and_gradient(device, n, c, h, w, x_order, gy_order, seed):
    """x and dy each in any of three memory layouts, alike or not: the values and gradients
    of C-ordered arrays (the channel sums pair the same elements of dy and xhat)."""
    shape = (n, c, h, w)
    x_np = spread(shape, seed)
    gy_np = numpy.random.default_rng(seed + 1).standard_normal(shape)
    gamma, beta = parameters(c, device, seed)
    expected = batch_norm(leaf(x_np, device), gamma, beta)
    expected_grads = expected.creator.backward(minidl.tensor(gy_np, device=device).data)
    x = minidl.Tensor(laid_out(x_np, x_order, device), requires_grad=True)
    y = batch_norm(x, gamma, beta)
    grads = y.creator.backward(laid_out(gy_np, gy_order, device))
    numpy.testing.assert_allclose(host(y), host(expected), rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, expected_grads):
        numpy.testing.assert_allclose(host(got), host(want), rtol=1e-10, atol=1e-12)


@given(shape=bn_shapes(), seed=st.integers(0, 2**16))
def test_eval_forward_and_gradients(device, shape, seed):
    x_np = spread(shape, seed)
    x = leaf(x_np, device)
    gamma, beta = parameters(shape[1], device, seed)
    rng = numpy.random.default_rng(seed)
    mean_np, var_np = rng.uniform(-1, 1, shape[1]), rng.uniform(0.5, 2, shape[1])
    mean, var = (minidl.tensor(a, device=device) for a in (mean_np, var_np))
    y = batch_norm(x, gamma, beta, mean, var, training=False)
    numpy.testing.assert_allclose(host(y), reference(x_np, host(gamma), host(beta), mean_np,
                                                     var_np), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda *a: batch_norm(*a, mean, var, training=False), [x, gamma, beta])
    numpy.testing.assert_array_equal(host(mean), mean_np)     # evaluation updates nothing


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", ["none", "gamma", "beta"])
def test_gamma_and_beta_may_be_none(device, training, affine):
    x_np = spread((4, 3, 2, 2), 0)
    x = leaf(x_np, device)
    gamma, beta = parameters(3, device)
    gamma = gamma if affine == "gamma" else None
    beta = beta if affine == "beta" else None
    mean, var = buffers(3, device)
    y = batch_norm(x, gamma, beta, mean, var, training=training)
    ones, zeros = numpy.ones(3), numpy.zeros(3)
    expected = reference(x_np, ones if gamma is None else host(gamma),
                         zeros if beta is None else host(beta),
                         *((None, None) if training else (zeros, ones)))
    numpy.testing.assert_allclose(host(y), expected, rtol=1e-10, atol=1e-12)
    inputs = [t for t in (x, gamma, beta) if t is not None]

    def fn(x, *affine):
        given = iter(affine)
        return batch_norm(x, None if gamma is None else next(given),
                          None if beta is None else next(given), mean, var, training=training)
    assert gradcheck(fn, inputs)


def test_closed_form_matches_the_papers_chain_rule(device):
    """The closed-form dx, dgamma, dbeta equal Ioffe & Szegedy's step-by-step backprop."""
    x_np = spread((5, 3, 2, 3), 1)
    dy = numpy.random.default_rng(2).standard_normal(x_np.shape)
    x = leaf(x_np, device)
    gamma, beta = parameters(3, device)
    batch_norm(x, gamma, beta).backward(minidl.tensor(dy, device=device))

    axes, g = axes_of(x_np), per_channel(host(gamma), 4)
    m = x_np.size // x_np.shape[1]
    mu = x_np.mean(axes, keepdims=True)
    var = ((x_np - mu) ** 2).mean(axes, keepdims=True)
    xhat = (x_np - mu) / numpy.sqrt(var + EPS)
    dxhat = dy * g
    dvar = (dxhat * (x_np - mu)).sum(axes, keepdims=True) * -0.5 * (var + EPS) ** -1.5
    dmu = ((-dxhat / numpy.sqrt(var + EPS)).sum(axes, keepdims=True)
           + dvar * (-2 * (x_np - mu)).sum(axes, keepdims=True) / m)
    dx = dxhat / numpy.sqrt(var + EPS) + dvar * 2 * (x_np - mu) / m + dmu / m
    numpy.testing.assert_allclose(host(x.grad), dx, rtol=1e-9, atol=1e-12)
    numpy.testing.assert_allclose(host(gamma.grad), (dy * xhat).sum(axes), rtol=1e-12)
    numpy.testing.assert_allclose(host(beta.grad), dy.sum(axes), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4), (3, 3, 2, 2)])
def test_running_statistics_follow_the_recurrence(device, shape):
    momentum, steps = 0.3, 4
    mean, var = buffers(shape[1], device)
    gamma, beta = parameters(shape[1], device)
    expected_mean, expected_var = numpy.zeros(shape[1]), numpy.ones(shape[1])
    for step in range(steps):
        x_np = spread(shape, step)
        batch_norm(leaf(x_np, device), gamma, beta, mean, var, momentum=momentum)
        axes = axes_of(x_np)
        expected_mean = (1 - momentum) * expected_mean + momentum * x_np.mean(axes)
        expected_var = (1 - momentum) * expected_var + momentum * x_np.var(axes, ddof=1)
    numpy.testing.assert_allclose(host(mean), expected_mean, rtol=1e-12)
    numpy.testing.assert_allclose(host(var), expected_var, rtol=1e-12)


def test_running_statistics_update_under_no_grad(device):
    mean, var = buffers(2, device)
    x_np = spread((4, 2), 3)
    with minidl.no_grad():
        batch_norm(leaf(x_np, device, requires_grad=False), None, None, mean, var, momentum=1.0)
    numpy.testing.assert_allclose(host(mean), x_np.mean(0), rtol=1e-12)
    numpy.testing.assert_allclose(host(var), x_np.var(0, ddof=1), rtol=1e-12)


def test_train_and_eval_outputs(device):
    """Training normalizes with the batch; evaluation with the running statistics."""
    x_np = spread((8, 3, 2, 2), 4)
    x = leaf(x_np, device)
    gamma, beta = parameters(3, device)
    mean, var = buffers(3, device)
    train = host(batch_norm(x, gamma, beta, mean, var, momentum=1.0))
    evaluation = host(batch_norm(x, gamma, beta, mean, var, training=False))
    numpy.testing.assert_allclose(train, reference(x_np, host(gamma), host(beta)), rtol=1e-10)
    m = x_np.size // 3
    # momentum 1 makes the running statistics the batch's, the variance unbiased.
    unbiased = x_np.var((0, 2, 3)) * m / (m - 1)
    numpy.testing.assert_allclose(evaluation, reference(x_np, host(gamma), host(beta),
                                                        x_np.mean((0, 2, 3)), unbiased),
                                  rtol=1e-10)
    assert not numpy.allclose(train, evaluation)


def test_zero_variance_channel_stays_finite(device):
    x_np = spread((4, 2, 3, 3), 5)
    x_np[:, 1] = 2.5
    x = leaf(x_np, device)
    gamma, beta = parameters(2, device)
    y = batch_norm(x, gamma, beta)
    dy = numpy.random.default_rng(0).standard_normal(x_np.shape)
    y.backward(minidl.tensor(dy, device=device))
    for value in (y, x.grad, gamma.grad, beta.grad):
        assert numpy.isfinite(host(value)).all()
    numpy.testing.assert_allclose(host(y)[:, 1], host(beta)[1], atol=1e-12)
    # xhat = 0 there, so dx = gamma / sqrt(eps) * (dy - mean(dy)): large but finite.
    dy1 = dy[:, 1]
    numpy.testing.assert_allclose(host(x.grad)[:, 1],
                                  host(gamma)[1] / numpy.sqrt(EPS) * (dy1 - dy1.mean()),
                                  rtol=1e-9)
    numpy.testing.assert_allclose(host(gamma.grad)[1], 0, atol=1e-12)


@pytest.mark.parametrize("shape", [(32, 4), (4, 4, 5, 5)])
def test_float32_stays_float32(device, shape):
    x_np = spread(shape, 6)
    x = leaf(x_np.astype(numpy.float32), device)
    gamma, beta = parameters(4, device, dtype=numpy.float32)
    mean, var = buffers(4, device, numpy.float32)
    y = batch_norm(x, gamma, beta, mean, var)
    y.backward(minidl.tensor(numpy.ones(shape, numpy.float32), device=device))
    for value in (y, x.grad, gamma.grad, beta.grad, mean, var):
        assert host(value).dtype == numpy.float32
    numpy.testing.assert_allclose(host(y), reference(x_np, host(gamma).astype(numpy.float64),
                                                     host(beta).astype(numpy.float64)),
                                  rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(host(x.grad), 0, atol=1e-5)     # d(sum y)/dx = 0


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1)])
def test_one_value_per_channel_cannot_train(device, shape):
    x = leaf(numpy.ones(shape), device)
    mean, var = buffers(3, device)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when "
                                         r"training, got input size \(1, 3"):
        batch_norm(x, None, None, mean, var)
    y = batch_norm(x, None, None, mean, var, training=False)     # evaluation is fine
    numpy.testing.assert_allclose(host(y), 1 / numpy.sqrt(1 + EPS))


def test_invalid_arguments(device):
    x = leaf(numpy.ones((4, 3)), device)
    gamma, beta = parameters(3, device)
    mean, var = buffers(3, device)
    cases = [
        (ValueError, r"x must be 2-D or 3-D or 4-D, got shape \(4, 3, 1, 1, 1\)",
         lambda: batch_norm(leaf(numpy.ones((4, 3, 1, 1, 1)), device), gamma, beta)),
        (TypeError, r"x must be a minidl Tensor, got ndarray",
         lambda: batch_norm(numpy.ones((4, 3)), gamma, beta)),
        (TypeError, r"x must be a floating-point tensor, got dtype int64",
         lambda: batch_norm(minidl.tensor(numpy.ones((4, 3), int), device=device), None, None)),
        (ValueError, r"gamma must have shape \(3,\) for x of shape \(4, 3\) \(3 channels\), "
                     r"got shape \(2,\)",
         lambda: batch_norm(x, leaf(numpy.ones(2), device), beta)),
        (ValueError, r"running_var must have shape \(3,\)",
         lambda: batch_norm(x, gamma, beta, mean,
                            minidl.tensor(numpy.ones((3, 1)), device=device))),
        (TypeError, r"beta must be a minidl Tensor of shape \(3,\) or None, got list",
         lambda: batch_norm(x, gamma, [0.0, 0.0, 0.0])),
        (TypeError, r"beta has dtype float32 but x has dtype float64",
         lambda: batch_norm(x, gamma, leaf(numpy.zeros(3, numpy.float32), device))),
        (ValueError, r"pass both running_mean and running_var, or neither",
         lambda: batch_norm(x, gamma, beta, mean)),
        (ValueError, r"momentum must be in \[0, 1\], got 1.5",
         lambda: batch_norm(x, gamma, beta, mean, var, momentum=1.5)),
        (ValueError, r"eps must be > 0, got 0",
         lambda: batch_norm(x, gamma, beta, eps=0)),
        (TypeError, r"eps must be a real number, got True",
         lambda: batch_norm(x, gamma, beta, eps=True)),
        (TypeError, r"momentum must be a real number, got 'a'",
         lambda: batch_norm(x, gamma, beta, mean, var, momentum="a")),
        (TypeError, r"training must be True or False, got None",
         lambda: batch_norm(x, gamma, beta, training=None)),
        (ValueError, r"evaluation \(training=False\) needs running_mean and running_var",
         lambda: batch_norm(x, gamma, beta, training=False)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


def test_parameters_on_another_device(fake_gpu):
    x = leaf(numpy.ones((4, 3)), "cpu")
    gamma = leaf(numpy.ones(3), "cuda")
    with pytest.raises(ValueError, match=r"gamma is on cuda:0 but x is on cpu"):
        batch_norm(x, gamma, None)


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (4, 3, 3, 2)])
def test_matches_torch(device, shape):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    momentum, channels = 0.2, 3
    gamma, beta = parameters(channels, device)
    mean, var = buffers(channels, device)
    t_gamma, t_beta = (torch.tensor(host(p), requires_grad=True) for p in (gamma, beta))
    t_mean, t_var = torch.zeros(channels, dtype=torch.float64), torch.ones(channels,
                                                                          dtype=torch.float64)
    for step in range(3):
        x_np = spread(shape, step)
        dy = numpy.random.default_rng(step).standard_normal(x_np.shape)
        x, t_x = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
        y = batch_norm(x, gamma, beta, mean, var, momentum=momentum)
        t_y = TF.batch_norm(t_x, t_mean, t_var, t_gamma, t_beta, training=True,
                            momentum=momentum, eps=EPS)
        y.backward(minidl.tensor(dy, device=device))
        t_y.backward(torch.tensor(dy))
        for ours, theirs in ((y, t_y), (x.grad, t_x.grad), (gamma.grad, t_gamma.grad),
                             (beta.grad, t_beta.grad), (mean, t_mean), (var, t_var)):
            numpy.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-7,
                                          atol=1e-12)
    x_np = spread((2,) + shape[1:], 9)
    y = batch_norm(leaf(x_np, device), gamma, beta, mean, var, training=False)
    t_y = TF.batch_norm(torch.tensor(x_np), t_mean, t_var, t_gamma, t_beta, training=False,
                        eps=EPS)
    numpy.testing.assert_allclose(host(y), t_y.detach().numpy(), rtol=1e-7, atol=1e-12)
