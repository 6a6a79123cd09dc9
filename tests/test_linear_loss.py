"""linear and cross_entropy: forward against NumPy, gradients, stability, errors."""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import gradcheck
from minidl.functional.linear import linear
from minidl.functional.loss import check_label_range, cross_entropy


def values(shape, seed, scale=1.0):
    return numpy.random.default_rng(seed).standard_normal(shape) * scale


# --------------------------------------------------------------------------- linear

@given(lead=st.lists(st.integers(1, 3), max_size=2), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_forward_and_gradients(device, lead, n_in, n_out, with_bias, seed):
    x_np, w_np, b_np = (values(s, seed + i) for i, s in
                        enumerate([tuple(lead) + (n_in,), (n_out, n_in), (n_out,)]))
    x, w = leaf(x_np, device), leaf(w_np, device)
    b = leaf(b_np, device) if with_bias else None
    y = linear(x, w, b)
    assert y.shape == tuple(lead) + (n_out,)
    numpy.testing.assert_allclose(host(y), x_np @ w_np.T + (b_np if with_bias else 0),
                                  rtol=1e-12, atol=1e-12)
    inputs = [x, w] + ([b] if with_bias else [])
    assert gradcheck(lambda *a: linear(*a), inputs)


def test_linear_only_needed_gradients(device):
    x = leaf(values((2, 3), 0), device, requires_grad=False)
    w, b = leaf(values((4, 3), 1), device), leaf(values(4, 2), device)
    linear(x, w, b).backward(minidl.tensor(numpy.ones((2, 4)), device=device))
    assert x.grad is None
    numpy.testing.assert_allclose(host(w.grad), numpy.ones((4, 2)) @ host(x), rtol=1e-12)
    numpy.testing.assert_allclose(host(b.grad), [2.0] * 4)


def test_linear_float32_stays_float32(device):
    x = leaf(values((2, 3), 0).astype(numpy.float32), device)
    w = leaf(values((4, 3), 1).astype(numpy.float32), device)
    b = leaf(values(4, 2).astype(numpy.float32), device)
    y = linear(x, w, b)
    y.backward(minidl.tensor(numpy.ones((2, 4), numpy.float32), device=device))
    for value in (y, x.grad, w.grad, b.grad):
        assert host(value).dtype == numpy.float32


def test_linear_invalid_arguments(device):
    x, w = leaf(values((2, 3), 0), device), leaf(values((4, 3), 1), device)
    cases = [
        (ValueError, r"x must have shape \(\.\.\., 3\) to match weight of shape \(4, 3\), got "
                     r"shape \(2, 5\)", lambda: linear(leaf(values((2, 5), 0), device), w)),
        (ValueError, r"weight must have shape \(out_features, in_features\), got shape \(3,\)",
         lambda: linear(x, leaf(values(3, 0), device))),
        (ValueError, r"bias must have shape \(4,\) to match weight of shape \(4, 3\), got "
                     r"shape \(3,\)", lambda: linear(x, w, leaf(values(3, 0), device))),
        (TypeError, r"weight has dtype float32 but x has dtype float64",
         lambda: linear(x, leaf(values((4, 3), 1).astype(numpy.float32), device))),
        (TypeError, r"x must be a floating-point tensor, got dtype int64",
         lambda: linear(minidl.tensor(numpy.ones((2, 3), int), device=device),
                        minidl.tensor(numpy.ones((4, 3), int), device=device))),
        (TypeError, r"bias must be a minidl Tensor, got list", lambda: linear(x, w, [0.0] * 4)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


def test_linear_matches_torch(device):
    torch = pytest.importorskip("torch")
    x_np, w_np, b_np = values((2, 3, 5), 0), values((4, 5), 1), values(4, 2)
    dy = values((2, 3, 4), 3)
    x, w, b = (leaf(a, device) for a in (x_np, w_np, b_np))
    t_x, t_w, t_b = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = linear(x, w, b)
    t_y = torch.nn.functional.linear(t_x, t_w, t_b)
    y.backward(minidl.tensor(dy, device=device))
    t_y.backward(torch.tensor(dy))
    for ours, theirs in ((y, t_y), (x.grad, t_x.grad), (w.grad, t_w.grad), (b.grad, t_b.grad)):
        numpy.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------------------- cross entropy

def reference_cross_entropy(logits, labels):
    """Mean of log-sum-exp(z) - z[label], in float64, computed stably."""
    logits = logits.astype(numpy.float64)
    top = logits.max(axis=1)
    lse = top + numpy.log(numpy.exp(logits - top[:, None]).sum(axis=1))
    return (lse - logits[numpy.arange(len(labels)), labels]).mean()


def labels_on(device, labels):
    return minidl.tensor(numpy.asarray(labels, numpy.int64), device=device)


@given(n=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_cross_entropy_forward_and_gradient(device, n, k, seed):
    logits_np = values((n, k), seed, scale=3.0)
    labels_np = numpy.random.default_rng(seed).integers(0, k, n)
    logits, labels = leaf(logits_np, device), labels_on(device, labels_np)
    loss = cross_entropy(logits, labels)
    assert loss.shape == ()
    numpy.testing.assert_allclose(host(loss), reference_cross_entropy(logits_np, labels_np),
                                  rtol=1e-12, atol=1e-15)
    assert gradcheck(lambda z: cross_entropy(z, labels), [logits])


def test_cross_entropy_gradient_is_softmax_minus_onehot(device):
    logits_np = values((3, 4), 0)
    labels_np = numpy.array([2, 0, 3])
    logits = leaf(logits_np, device)
    cross_entropy(logits, labels_on(device, labels_np)).backward()
    softmax = numpy.exp(logits_np) / numpy.exp(logits_np).sum(axis=1, keepdims=True)
    numpy.testing.assert_allclose(host(logits.grad),
                                  (softmax - numpy.eye(4)[labels_np]) / 3, rtol=1e-12)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_cross_entropy_is_stable_for_huge_logits(device, dtype):
    logits_np = numpy.array([[1e4, -1e4, 0.0], [1e4, 1e4 - 2.0, -1e4], [-1e4, -1e4, -1e4]],
                            dtype)
    labels_np = numpy.array([1, 1, 2])
    logits = leaf(logits_np, device)
    loss = cross_entropy(logits, labels_on(device, labels_np))
    loss.backward()
    assert host(loss).dtype == dtype and host(logits.grad).dtype == dtype
    # Exact: row 0 loses 2e4, row 1 loses 2 + log(1 + e^-2), row 2 loses log 3.
    expected = reference_cross_entropy(logits_np, labels_np)
    numpy.testing.assert_allclose(expected, (2e4 + 2 + numpy.log1p(numpy.exp(-2)) + numpy.log(3))
                                  / 3, rtol=1e-15)
    numpy.testing.assert_allclose(host(loss), expected, rtol=1e-7 if dtype == numpy.float32
                                  else 1e-15)
    assert numpy.isfinite(host(logits.grad)).all()
    numpy.testing.assert_allclose(host(logits.grad).sum(axis=1), 0, atol=1e-7)


def test_cross_entropy_accepts_int32_arrays(device):
    logits = leaf(values((2, 3), 0), device)
    labels = minidl.tensor(numpy.array([0, 2], numpy.int32), device=device).data
    numpy.testing.assert_allclose(host(cross_entropy(logits, labels)),
                                  reference_cross_entropy(values((2, 3), 0), [0, 2]), rtol=1e-12)


def test_cross_entropy_invalid_arguments(device):
    logits = leaf(values((3, 4), 0), device)
    cases = [
        (TypeError, r"labels must be an integer tensor or array, got float64",
         lambda: cross_entropy(logits, leaf(numpy.zeros(3), device))),
        (TypeError, r"labels must be an integer tensor or array, got list",
         lambda: cross_entropy(logits, [0, 1, 2])),
        (ValueError, r"labels must have shape \(3,\) for input of shape \(3, 4\), got shape "
                     r"\(3, 1\)",
         lambda: cross_entropy(logits, labels_on(device, [[0], [1], [2]]))),
        (ValueError, r"labels must be in \[0, 4\) for 4 classes, got 4 at index 1",
         lambda: cross_entropy(logits, labels_on(device, [0, 4, 1]))),
        (ValueError, r"labels must be in \[0, 4\) for 4 classes, got -1 at index 2",
         lambda: cross_entropy(logits, labels_on(device, [0, 3, -1]))),
        (ValueError, r"labels must have shape \(3, 1\) for input of shape \(3, 4, 1\), got "
                     r"shape \(3,\)",
         lambda: cross_entropy(leaf(values((3, 4, 1), 0), device), labels_on(device, [0, 1, 2]))),
        (TypeError, r"input must be a floating-point tensor, got dtype int64",
         lambda: cross_entropy(labels_on(device, [[0, 1]]), labels_on(device, [0]))),
        (TypeError, r"input must be a minidl Tensor, got ndarray",
         lambda: cross_entropy(values((3, 4), 0), labels_on(device, [0, 1, 2]))),
        (ValueError, r"the batch is empty",
         lambda: cross_entropy(leaf(numpy.zeros((0, 4)), device), labels_on(device, []))),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


def test_cross_entropy_labels_on_another_device(fake_gpu):
    logits = leaf(values((2, 3), 0), "cuda")
    with pytest.raises(ValueError, match=r"labels are on cpu but input is on cuda:0"):
        cross_entropy(logits, numpy.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels are on cuda:1 but input is on cuda:0"):
        cross_entropy(logits, minidl.tensor(numpy.array([0, 1]), device="cuda:1"))


def test_cross_entropy_stays_on_the_device(fake_gpu):
    """Only the one-boolean label range check crosses to the host."""
    logits = leaf(values((4, 3), 0), "cuda")
    labels = minidl.tensor(numpy.array([0, 2, 1, 1]), device="cuda")
    fake_gpu.reset_transfers()
    cross_entropy(logits, labels).backward()
    assert fake_gpu.transfers == {"to_device": 0, "to_host": 1}
    fake_gpu.reset_transfers()
    cross_entropy(logits, labels, check_labels=False).backward()
    assert fake_gpu.transfers == {"to_device": 0, "to_host": 0}


def test_label_range_check_on_host_labels():
    check_label_range(numpy.array([0, 3]), 4)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\) for 4 classes, got 7 "
                                         r"at index 1"):
        check_label_range(numpy.array([0, 7]), 4)


def test_cross_entropy_matches_torch(device):
    torch = pytest.importorskip("torch")
    logits_np, labels_np = values((5, 7), 0, scale=4.0), numpy.array([0, 6, 3, 3, 1])
    logits = leaf(logits_np, device)
    t_logits = torch.tensor(logits_np, requires_grad=True)
    loss = cross_entropy(logits, labels_on(device, labels_np))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.tensor(labels_np))
    loss.backward()
    t_loss.backward()
    numpy.testing.assert_allclose(host(loss), t_loss.item(), rtol=1e-7)
    numpy.testing.assert_allclose(host(logits.grad), t_logits.grad.numpy(), rtol=1e-7,
                                  atol=1e-12)
