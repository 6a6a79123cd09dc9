"""minidl.nn.init: formulas, statistics on large tensors, in-place semantics, seeding."""
import math
import re

import numpy
import pytest

import minidl
from helpers import host
from minidl.nn import Conv2d, Linear, init


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from one seed, so the statistical checks are deterministic."""
    minidl.manual_seed(0)


def zeros(shape, dtype="float32", device="cpu"):
    return minidl.tensor(numpy.zeros(shape, dtype=dtype), device=device)


# ------------------------------------------------------------------ gains and fans

@pytest.mark.parametrize("nonlinearity, param, expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0),
    ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)), ("selu", None, 0.75),
    ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", 0, math.sqrt(2)),
])
def test_calculate_gain(nonlinearity, param, expected):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    for name, param in [("tanh", None), ("relu", None), ("leaky_relu", None),
                        ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-12)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'; expected one of "
                                         "linear, .*leaky_relu"):
        init.calculate_gain("swish")
    with pytest.raises(TypeError, match="calculate_gain: param must be a real number, got 'x'"):
        init.calculate_gain("leaky_relu", "x")
    with pytest.raises(TypeError, match="calculate_gain: param must be a real number, got True"):
        init.calculate_gain("leaky_relu", True)


def test_fans_of_2d_and_4d_weights():
    assert init.calculate_fan_in_and_fan_out(zeros((10, 784))) == (784, 10)
    assert init.calculate_fan_in_and_fan_out(zeros((16, 3, 5, 5))) == (75, 400)


def test_fans_of_1d_tensor_are_an_error():
    with pytest.raises(ValueError, match=r"at least 2 dimensions \(out, in, \.\.\.\), "
                                         r"got shape \(5,\)"):
        init.calculate_fan_in_and_fan_out(zeros(5))
    for fn in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_,
               init.xavier_normal_):
        with pytest.raises(ValueError, match=r"got shape \(5,\)"):
            fn(zeros(5))
    with pytest.raises(ValueError, match=r"orthogonal_: needs a tensor with at least 2 "
                                         r"dimensions, got shape \(5,\)"):
        init.orthogonal_(zeros(5))


# ------------------------------------------------------------------ statistics on large tensors
# 262,144 samples in every tensor: the sample std of a normal is within 0.14% (one sigma) of
# the truth, of a uniform within 0.09%; the tolerances below are several sigma wide.

LARGE = (256, 1024)


def assert_uniform(w, bound):
    w = host(w)
    assert numpy.abs(w).max() <= bound
    assert numpy.abs(w).max() > 0.999 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(w.mean()) < 0.01 * w.std()


def assert_normal(w, std):
    w = host(w)
    assert w.std() == pytest.approx(std, rel=0.01)
    assert abs(w.mean()) < 0.01 * std
    assert numpy.abs(w).max() > 3.5 * std     # a normal, not a uniform, tail


def test_kaiming_uniform_statistics():
    assert_uniform(init.kaiming_uniform_(zeros(LARGE)), math.sqrt(2) * math.sqrt(3 / 1024))
    w = init.kaiming_uniform_(zeros((64, 256, 4, 4)), mode="fan_out", nonlinearity="relu")
    assert_uniform(w, math.sqrt(2) * math.sqrt(3 / (64 * 16)))
    w = init.kaiming_uniform_(zeros(LARGE), a=math.sqrt(5))
    assert_uniform(w, 1 / math.sqrt(1024))


def test_kaiming_normal_statistics():
    assert_normal(init.kaiming_normal_(zeros(LARGE), nonlinearity="relu"), math.sqrt(2 / 1024))
    w = init.kaiming_normal_(zeros(LARGE), a=0.2, mode="fan_out")
    assert_normal(w, math.sqrt(2 / 1.04) / math.sqrt(256))


def test_xavier_statistics():
    assert_uniform(init.xavier_uniform_(zeros(LARGE)), math.sqrt(6 / (256 + 1024)))
    assert_normal(init.xavier_normal_(zeros(LARGE), gain=2.0), 2 * math.sqrt(2 / (256 + 1024)))
    w = init.xavier_uniform_(zeros((64, 256, 4, 4)))
    assert_uniform(w, math.sqrt(6 / ((64 + 256) * 16)))


def test_normal_and_uniform_statistics():
    assert_normal(init.normal_(zeros(LARGE), mean=0.0, std=0.05), 0.05)
    w = host(init.normal_(zeros(LARGE), mean=3.0, std=0.5))
    assert w.mean() == pytest.approx(3.0, abs=0.01)
    w = host(init.uniform_(zeros(LARGE), -2.0, 5.0))
    assert w.min() >= -2.0 and w.max() < 5.0
    assert w.mean() == pytest.approx(1.5, abs=0.02)


# ------------------------------------------------------------------ orthogonal

@pytest.mark.parametrize("rows, cols", [(20, 50), (50, 50), (1, 7)])
def test_orthogonal_rows_are_orthonormal(rows, cols):
    w = host(init.orthogonal_(zeros((rows, cols), dtype="float64")))
    numpy.testing.assert_allclose(w @ w.T, numpy.eye(rows), atol=1e-6)


def test_orthogonal_tall_matrix_has_orthonormal_columns_and_gain():
    w = host(init.orthogonal_(zeros((50, 20), dtype="float64"), gain=3.0))
    numpy.testing.assert_allclose(w.T @ w, 9 * numpy.eye(20), atol=1e-6)


def test_orthogonal_4d_weight_in_float32():
    w = init.orthogonal_(zeros((8, 2, 3, 3)))
    assert w.dtype == numpy.float32
    flat = host(w).reshape(8, 18).astype(numpy.float64)
    numpy.testing.assert_allclose(flat @ flat.T, numpy.eye(8), atol=1e-6)


def test_orthogonal_signs_are_uniformly_distributed():
    # Raw Householder QR fixes the sign of R's diagonal, which biases Q's signs (for one row,
    # Q's first entry would always have one sign); the sign correction removes the bias.
    minidl.manual_seed(0)
    firsts = [host(init.orthogonal_(zeros((1, 4), dtype="float64")))[0, 0] for _ in range(200)]
    assert 70 < sum(f > 0 for f in firsts) < 130


# ------------------------------------------------------------------ in place, device, dtype

INITIALIZERS = {
    "uniform_": lambda t: init.uniform_(t, -1, 1),
    "normal_": lambda t: init.normal_(t, 0, 1),
    "constant_": lambda t: init.constant_(t, 0.25),
    "zeros_": init.zeros_,
    "ones_": init.ones_,
    "kaiming_uniform_": init.kaiming_uniform_,
    "kaiming_normal_": init.kaiming_normal_,
    "xavier_uniform_": init.xavier_uniform_,
    "xavier_normal_": init.xavier_normal_,
    "orthogonal_": init.orthogonal_,
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initializers_work_in_place_keeping_device_and_dtype(name, dtype, device):
    t = minidl.tensor(numpy.full((6, 5), 7.0, dtype=dtype), device=device)
    array = t.data
    assert INITIALIZERS[name](t) is t
    assert t.data is array
    assert t.device == device and t.dtype == numpy.dtype(dtype)
    values = host(t)
    assert not (values == 7.0).any()
    assert numpy.isfinite(values).all()


def test_constant_zeros_ones_values():
    t = zeros((2, 3))
    numpy.testing.assert_array_equal(host(init.constant_(t, -1.5)), numpy.full((2, 3), -1.5))
    numpy.testing.assert_array_equal(host(init.ones_(t)), numpy.ones((2, 3)))
    numpy.testing.assert_array_equal(host(init.zeros_(t)), numpy.zeros((2, 3)))


def test_initializers_accept_parameters():
    p = minidl.nn.Parameter(numpy.zeros((4, 3), dtype=numpy.float32))
    assert init.xavier_uniform_(p) is p
    assert p.requires_grad and numpy.abs(host(p)).max() > 0


# ------------------------------------------------------------------ seeding

def test_same_seed_gives_same_weights():
    minidl.manual_seed(3)
    a = host(init.kaiming_normal_(zeros((30, 40))))
    minidl.manual_seed(3)
    b = host(init.kaiming_normal_(zeros((30, 40))))
    minidl.manual_seed(4)
    c = host(init.kaiming_normal_(zeros((30, 40))))
    numpy.testing.assert_array_equal(a, b)
    assert not numpy.allclose(a, c)


def test_same_seed_gives_same_weights_on_every_device(device):
    minidl.manual_seed(11)
    on_host = host(init.orthogonal_(zeros((5, 9))))
    minidl.manual_seed(11)
    on_device = host(init.orthogonal_(zeros((5, 9), device=device)))
    numpy.testing.assert_array_equal(on_host, on_device)


def test_generator_argument_replaces_the_global_generator():
    minidl.manual_seed(0)
    a = host(init.uniform_(zeros((4, 4)), generator=numpy.random.default_rng(5)))
    b = host(init.uniform_(zeros((4, 4)), generator=numpy.random.default_rng(5)))
    numpy.testing.assert_array_equal(a, b)
    # The global generator was not consumed: it still gives its first draw.
    after = minidl.backend.host_rng().random()
    assert after == numpy.random.default_rng(0).random()


def test_layers_are_reproducible_under_manual_seed():
    minidl.manual_seed(21)
    a = Conv2d(3, 4, 3)
    minidl.manual_seed(21)
    b = Conv2d(3, 4, 3)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        numpy.testing.assert_array_equal(host(pa), host(pb), err_msg=name)


# ------------------------------------------------------------------ PyTorch's default init

def test_default_init_bound_is_one_over_sqrt_fan_in():
    # Kaiming-uniform with a = sqrt(5): gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    for fan_in in (1, 75, 784):
        bound = init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3 / fan_in)
        assert bound == pytest.approx(1 / math.sqrt(fan_in), rel=1e-14)


@pytest.mark.parametrize("make, shape, fan_in", [
    (lambda: Linear(30, 20), (20, 30), 30),
    (lambda: Conv2d(3, 8, 5), (8, 3, 5, 5), 75),
    (lambda: Conv2d(2, 6, (3, 1)), (6, 2, 3, 1), 6),
])
def test_default_init_draws_exactly_pytorchs_uniforms(make, shape, fan_in):
    # Weight first, then bias, each U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from host_rng().
    minidl.manual_seed(7)
    layer = make()
    rng = numpy.random.default_rng(7)
    bound = 1 / math.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, size=shape).astype(numpy.float32)
    bias = rng.uniform(-bound, bound, size=shape[:1]).astype(numpy.float32)
    numpy.testing.assert_array_equal(host(layer.weight), weight)
    numpy.testing.assert_array_equal(host(layer.bias), bias)


def test_default_init_spans_the_bound_on_a_large_layer():
    layer = Linear(1024, 256)
    assert_uniform(layer.weight, 1 / math.sqrt(1024))
    b = host(layer.bias)
    assert numpy.abs(b).max() <= 1 / math.sqrt(1024)


# ------------------------------------------------------------------ argument errors

def bad(make, error, message):
    """One bad argument: ``make()`` raises ``error`` with exactly ``message``."""
    return pytest.param(make, error, message, id=message)


BAD_ARGUMENTS = [
    bad(lambda: init.uniform_(numpy.zeros(3)), TypeError,
        "uniform_: tensor must be a minidl Tensor, got ndarray"),
    bad(lambda: init.normal_(minidl.tensor([1, 2, 3])), TypeError,
        "normal_: tensor must be a floating-point tensor, got dtype int64; convert it "
        "explicitly with .to(dtype='float32')"),
    bad(lambda: init.uniform_(zeros(3), 2, 1), ValueError, "uniform_: b must be >= 2.0, got 1"),
    bad(lambda: init.uniform_(zeros(3), "0", 1), TypeError,
        "uniform_: a must be a real number, got '0'"),
    bad(lambda: init.uniform_(zeros(3), 0, True), TypeError,
        "uniform_: b must be a real number, got True"),
    bad(lambda: init.uniform_(zeros(3), 0, float("nan")), ValueError,
        "uniform_: b must be >= 0.0, got nan"),
    bad(lambda: init.uniform_(zeros(3), generator=0), TypeError,
        "uniform_: generator must be a numpy.random.Generator or None, got int"),
    bad(lambda: init.normal_(zeros(3), std=-1), ValueError, "normal_: std must be >= 0, got -1"),
    bad(lambda: init.normal_(zeros(3), std=float("nan")), ValueError,
        "normal_: std must be >= 0, got nan"),
    bad(lambda: init.normal_(zeros(3), mean=None), TypeError,
        "normal_: mean must be a real number, got None"),
    bad(lambda: init.constant_(zeros(3), "1"), TypeError,
        "constant_: val must be a real number, got '1'"),
    bad(lambda: init.constant_(zeros(3), False), TypeError,
        "constant_: val must be a real number, got False"),
    bad(lambda: init.kaiming_normal_(zeros((3, 3)), mode="fan_avg"), ValueError,
        "kaiming_normal_: mode must be 'fan_in' or 'fan_out', got 'fan_avg'"),
    bad(lambda: init.kaiming_uniform_(zeros((3, 3)), a="0"), TypeError,
        "kaiming_uniform_: a must be a real number, got '0'"),
    bad(lambda: init.kaiming_normal_(zeros((3, 3)), generator="seed"), TypeError,
        "kaiming_normal_: generator must be a numpy.random.Generator or None, got str"),
    bad(lambda: init.xavier_uniform_(zeros((3, 3)), gain=True), TypeError,
        "xavier_uniform_: gain must be a real number, got True"),
    bad(lambda: init.xavier_uniform_(zeros((3, 3)), gain=-1.0), ValueError,
        "xavier_uniform_: gain must be >= 0, got -1.0"),
    bad(lambda: init.xavier_normal_(zeros((3, 3)), gain=float("nan")), ValueError,
        "xavier_normal_: gain must be >= 0, got nan"),
    bad(lambda: init.xavier_normal_(zeros((3, 3)), gain="1"), TypeError,
        "xavier_normal_: gain must be a real number, got '1'"),
    bad(lambda: init.orthogonal_(zeros((3, 3)), gain=None), TypeError,
        "orthogonal_: gain must be a real number, got None"),
    bad(lambda: init.orthogonal_([[0.0]]), TypeError,
        "orthogonal_: tensor must be a minidl Tensor, got list"),
]


@pytest.mark.parametrize("make, error, message", BAD_ARGUMENTS)
def test_argument_errors(make, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()
