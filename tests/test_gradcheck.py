"""The gradient checker: passes right gradients, fails wrong ones with a useful report."""
import numpy
import pytest
from helpers import leaf
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import Function, GradcheckError, gradcheck


class Square(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return 2 * self.x * gy


class SquareWrong(Square):
    """A classic slip: the factor 2 is forgotten."""

    def backward(self, gy):
        return self.x * gy


class MulWrongSecond(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, gy * self.b     # second gradient should be gy * a


def test_correct_function_passes(device):
    assert gradcheck(Square.apply, [leaf([0.5, -1.5, 2.0], device)])


def test_wrong_gradient_is_reported_with_index_and_values(device):
    x = leaf([0.5, -1.5, 2.0], device)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3,\)\) at index \(\d,\): "
                                             r"numeric -?[\d.]+, analytic -?[\d.]+, \|error\|"):
        gradcheck(SquareWrong.apply, [x])


def test_names_the_wrong_input(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 5.0], device)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(2,\)\)"):
        gradcheck(MulWrongSecond.apply, [a, b])


@given(scale=st.floats(1e-3, 1e-2), seed=st.integers(0, 1000))
def test_small_gradient_errors_are_caught(scale, seed):
    """A gradient off by a relative 0.1% .. 1% of a unit-size value must fail."""
    class Off(Square):
        def backward(self, gy):
            return 2 * self.x * gy * (1 + scale) + scale

    x = leaf(numpy.random.default_rng(seed).uniform(0.5, 2.0, 4), "cpu")
    with pytest.raises(GradcheckError):
        gradcheck(Off.apply, [x])


def test_large_inputs_are_sampled(device):
    x = leaf(numpy.linspace(-1, 1, 5000), device)
    calls = []

    def f(t):
        calls.append(1)
        return Square.apply(t)
    assert gradcheck(f, [x], max_elements=50)
    assert len(calls) == 1 + 2 * 50


def test_float32_and_missing_inputs_are_refused():
    with pytest.raises(TypeError, match="input 0 has dtype float32; central differences need float64"):
        gradcheck(Square.apply, [minidl.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(Square.apply, [minidl.tensor(numpy.ones(2))])


def test_nan_gradient_fails(device):
    class NanGrad(Square):
        def backward(self, gy):
            return gy * float("nan")

    with pytest.raises(GradcheckError, match="analytic nan"):
        gradcheck(NanGrad.apply, [leaf([0.5, 1.5], device)])
