"""The shared argument checks (minidl/functional/_checks.py, _window.py): one wording everywhere."""
import math

import numpy
import pytest

import minidl
from minidl.functional._checks import (check_flag, check_float_dtype, check_like, check_number,
                                       check_tensor)
from minidl.functional._window import check_pair, pool_arguments


@pytest.mark.parametrize("value, kwargs, error, message", [
    (True, {}, TypeError, "op: v must be a real number, got True"),
    ("1", {}, TypeError, "op: v must be a real number, got '1'"),
    (1.5, {"integer": True}, TypeError, "op: v must be an integer, got 1.5"),
    (math.nan, {}, ValueError, "op: v must be a number, not NaN, got nan"),
    (math.nan, {"low": 0}, ValueError, r"op: v must be >= 0, got nan"),
    (0, {"low": 0, "low_open": True}, ValueError, r"op: v must be > 0, got 0"),
    (1, {"low": 0, "high": 1, "high_open": True}, ValueError, r"op: v must be in \[0, 1\), got 1"),
    (2, {"high": 1}, ValueError, r"op: v must be <= 1, got 2"),
])
def test_check_number_refuses(value, kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        check_number("op", "v", value, **kwargs)


def test_check_number_returns_python_numbers():
    assert type(check_number("op", "v", numpy.int64(3), integer=True, low=1)) is int
    assert check_number("op", "v", 1, low=0, high=1) == 1.0
    assert check_number("op", "v", math.inf, low=0) == math.inf


def test_check_tensor_and_check_like():
    ints = minidl.tensor([1, 2])
    with pytest.raises(TypeError, match="^op: x must be a minidl Tensor, got list$"):
        check_tensor("op", "x", [1.0])
    with pytest.raises(ValueError, match=r"^op: x must be 2-D or 4-D, got shape \(2,\)$"):
        check_tensor("op", "x", ints, (2, 4), floating=False)
    with pytest.raises(TypeError, match="^op: x must be a floating-point tensor, got dtype int64"):
        check_tensor("op", "x", ints)
    assert check_tensor("op", "x", ints, floating=False) is ints
    with pytest.raises(TypeError, match="^op: x must be a numeric tensor, got dtype bool"):
        check_tensor("op", "x", ints > 1, floating=False)
    assert check_tensor("op", "x", ints > 1, floating=False, boolean=True).dtype == bool
    with pytest.raises(TypeError, match="^op: w has dtype float64 but x has dtype float32"):
        check_like("op", "w", minidl.tensor(numpy.ones(2)), minidl.tensor([1.0, 2.0]))


def test_flags_dtypes_and_pairs():
    with pytest.raises(TypeError, match="^op: f must be True or False, got 1$"):
        check_flag("op", "f", 1)
    assert check_float_dtype("op", "dtype", "float64") == numpy.float64
    with pytest.raises(TypeError, match="^op: dtype must be a floating-point dtype, got None$"):
        check_float_dtype("op", "dtype", None)
    assert check_pair("op", "stride", 2, 1) == (2, 2)
    with pytest.raises(ValueError, match=r"^op: stride must be positive, got \(0, 1\)$"):
        check_pair("op", "stride", (0, 1), 1)
    with pytest.raises(TypeError, match=r"^op: padding must be an int or a pair of ints"):
        check_pair("op", "padding", (1, 2, 3), 0)
    assert pool_arguments("op", 3, None, 1) == ((3, 3), (3, 3), (1, 1))
    with pytest.raises(ValueError, match=r"^op: padding must be between 0 and half the kernel"):
        pool_arguments("op", 3, 1, 2)
