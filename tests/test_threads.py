"""minidl's threaded elementwise passes (``backend.threaded``) give NumPy's results, bit for bit.

Each test cuts every pass into blocks (the size threshold set to 0, three
threads on any machine) and compares with plain NumPy, or with the same op
run on one thread; values, dtype and memory layout must all agree.
"""
import os
import re
import subprocess
import sys

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fake_cupy
import minidl
import minidl.functional as F
from minidl import backend
from helpers import host, leaf

tp = backend.threaded(numpy)


@pytest.fixture
def blocks(monkeypatch):
    """Every pass of three or more elements cut into blocks, on three threads."""
    monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
    before = backend.get_num_threads()
    backend.set_num_threads(3)
    yield
    backend.set_num_threads(before)


def _layout(draw, shape):
    """A float64 array of ``shape`` in a drawn memory layout (axes permuted, maybe strided)."""
    order = draw(st.permutations(range(len(shape))))
    step = draw(st.sampled_from([1, 2]))
    stored = tuple(shape[d] * (step if k == 0 else 1) for k, d in enumerate(order))
    values = numpy.random.default_rng(draw(st.integers(0, 2 ** 16))).standard_normal(stored)
    values = values[::step] if step > 1 else values
    return values.transpose(numpy.argsort(order))


@st.composite
def operands(draw):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    a = _layout(draw, shape)
    # b broadcasts: some axes of a's shape set to 1, maybe fewer leading axes
    b_shape = tuple(1 if draw(st.booleans()) else s for s in shape)
    b = _layout(draw, b_shape)[(0,) * draw(st.integers(0, len(shape) - 1))]
    return a, b


@given(pair=operands(), name=st.sampled_from(["add", "multiply", "maximum", "greater", "equal"]))
def test_a_threaded_ufunc_equals_numpys(blocks, pair, name):
    a, b = pair
    expected = getattr(numpy, name)(a, b)
    got = getattr(tp, name)(a, b)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert numpy.array_equal(got, expected)
    assert got.strides == numpy.empty_like(a, dtype=got.dtype).strides      # a's layout


@given(pair=operands())
def test_in_place_passes_and_masked_copies_equal_numpys(blocks, pair):
    a, b = pair
    expected, got = a.copy(), a.copy()
    numpy.add(expected, b, out=expected)
    assert tp.add(got, b, out=got) is got
    assert numpy.array_equal(got, expected)
    mask = a > 0
    expected, got = numpy.zeros_like(a), numpy.zeros_like(a)
    numpy.copyto(expected, b, where=mask)
    tp.copyto(got, b, where=mask)
    assert numpy.array_equal(got, expected)


def test_python_scalars_keep_numpys_promotion(blocks):
    small = numpy.arange(12, dtype=numpy.int8).reshape(3, 4)
    assert tp.maximum(small, 0).dtype == numpy.int8
    assert tp.multiply(small.astype(numpy.float32), 0.5).dtype == numpy.float32


def test_an_error_in_a_block_is_raised_as_numpy_raises_it(blocks):
    counts = numpy.zeros((4, 5), dtype=numpy.int64)
    with pytest.raises(TypeError) as numpys:
        numpy.add(counts, 0.5, out=counts)
    with pytest.raises(type(numpys.value), match=re.escape(str(numpys.value))):
        tp.add(counts, 0.5, out=counts)


def test_an_error_in_a_worker_block_follows_the_callers_errstate(blocks):
    x = numpy.ones((6, 4))
    x[5] = 1e308                            # overflows in the last block only, on a worker
    with numpy.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        tp.multiply(x, 10.0)
    with numpy.errstate(over="ignore"):
        assert numpy.isinf(tp.multiply(x, 10.0)[5]).all()


def test_calls_that_cannot_be_cut_exactly_are_one_call(blocks):
    v = numpy.arange(40.0)
    expected = v.copy()
    numpy.add(expected[1:], expected[:-1], out=expected[1:])   # NumPy buffers the overlap
    tp.add(v[1:], v[:-1], out=v[1:])
    assert numpy.array_equal(v, expected)
    assert tp.matmul(numpy.ones((4, 5)), numpy.ones((5, 3))).shape == (4, 3)   # a gufunc
    assert tp.add.reduce(numpy.arange(5)) == 10
    assert tp.add(numpy.ones((3, 4)), 1, order="F").flags.f_contiguous
    out = numpy.empty((3, 4))
    assert tp.add(numpy.ones((3, 4)), 1, out) is out                # positional out


def test_a_gpu_module_is_returned_as_it_is():
    assert backend.threaded(fake_cupy.fake_cupy) is fake_cupy.fake_cupy
    assert tp.sum is numpy.sum                          # not a ufunc: NumPy's own


def test_thread_count_is_checked_and_read_from_omp_num_threads():
    with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
        backend.set_num_threads(0)
    code = "from minidl import backend; print(backend.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "5"


@pytest.mark.parametrize("preset, expected", [(None, "4"), ("30", "30")])
def test_openblas_idle_threads_sleep_at_once_unless_the_user_says(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    # What the variable holds when NumPy starts loading (and with it OpenBLAS).
    code = ("import os, sys\n"
            "seen = []\n"
            "sys.addaudithook(lambda event, args: seen.append(os.environ.get("
            "'OPENBLAS_THREAD_TIMEOUT')) if event == 'import' and args[0] == 'numpy' else None)\n"
            "import minidl\n"
            "print(seen[0])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == expected


# ---------------------------------------------------------------------------- the ops


def _forward_backward(op, x, batch_minor):
    """op(x) and d sum(op(x) * r) / dx, as arrays, for a fixed random r.

    With ``batch_minor`` the op gets x as a transposed view of (C, H, W, N)
    memory, the layout convolutions leave (``minidl.tensor`` itself copies
    to C order).
    """
    if batch_minor:
        t = leaf(numpy.ascontiguousarray(x.transpose(1, 2, 3, 0)), "cpu")
        y = op(F.permute(t, 3, 0, 1, 2))
    else:
        t = leaf(x, "cpu")
        y = op(t)
    r = numpy.random.default_rng(1).standard_normal(y.shape)
    (y * minidl.tensor(r)).sum().backward()
    gx = host(t.grad)
    return host(y), gx.transpose(3, 0, 1, 2) if batch_minor else gx


def _one_call_and_blocks(op, x, batch_minor):
    """The op with NumPy's plain calls (one thread), then with every pass cut into 3 blocks."""
    threads, minimum = backend.get_num_threads(), backend.PARALLEL_MIN_ELEMENTS
    try:
        backend.set_num_threads(1)
        minidl.manual_seed(0)
        expected = _forward_backward(op, x, batch_minor)
        backend.set_num_threads(3)
        backend.PARALLEL_MIN_ELEMENTS = 0
        minidl.manual_seed(0)
        got = _forward_backward(op, x, batch_minor)
    finally:
        backend.set_num_threads(threads)
        backend.PARALLEL_MIN_ELEMENTS = minimum
    return expected, got


@st.composite
def images(draw):
    n, c, h, w = (draw(st.integers(1, 3)), draw(st.integers(1, 5)),
                  draw(st.integers(3, 8)), draw(st.integers(3, 8)))
    x = numpy.random.default_rng(draw(st.integers(0, 2 ** 16))).standard_normal((n, c, h, w))
    if draw(st.booleans()):
        x = numpy.round(x)                                   # ties in max pooling and maxout
    return x


OPS = {
    "relu": lambda geometry: F.relu,
    "max_pool2d": lambda g: lambda t: F.max_pool2d(t, g["kernel"], g["stride"], g["padding"],
                                                   dilation=g["dilation"]),
    "avg_pool2d": lambda g: lambda t: F.avg_pool2d(t, g["kernel"], g["stride"], g["padding"]),
    "conv2d": lambda g: lambda t: F.conv2d(
        t, minidl.tensor(numpy.random.default_rng(2).standard_normal(
            (4, t.shape[1], g["kernel"], g["kernel"])), requires_grad=True),
        minidl.tensor(numpy.arange(4.0)), g["stride"], g["padding"], g["dilation"]),
    "maxout": lambda g: lambda t: F.maxout(t[:, :t.shape[1] // 2 * 2], 2) if t.shape[1] > 1
    else F.maxout(t, 1),
    "dropout": lambda g: lambda t: F.dropout(t, 0.5),
}


@given(x=images(), name=st.sampled_from(sorted(OPS)), kernel=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), dilation=st.integers(1, 2),
       batch_minor=st.booleans())
def test_ops_on_threads_equal_the_ops_on_one(x, name, kernel, stride, padding, dilation,
                                             batch_minor):
    if padding > kernel // 2:
        padding = 0                                      # pooling allows at most half the kernel
    if (kernel - 1) * dilation + 1 > min(x.shape[2:]) + 2 * padding:
        dilation = 1
    op = OPS[name](dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation))
    (y1, g1), (y3, g3) = _one_call_and_blocks(op, x, batch_minor)
    assert numpy.array_equal(y3, y1) and numpy.array_equal(g3, g1)
    assert y3.strides == y1.strides and g3.strides == g1.strides
