"""minidl.models: shapes, parameter counts, layer structure, initialization, gradients, errors."""
import re
from pathlib import Path

import numpy
import pytest

import minidl
from helpers import host
from minidl.autograd import no_grad
from minidl.gradcheck import gradcheck
from minidl.models.initialization import GAUSSIAN_STD, SCHEMES, initialize
from minidl.models.nin import MIM, MIN, NIN
from minidl.models.zoo import available, create, default_init, list_models
from minidl.nn.layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, GlobalAvgPool2d,
                              MaxPool2d, Maxout, ReLU)

MODELS = ("nin", "nin-bn", "maxout-nin", "mim", "min",
          "nin-small", "nin-bn-small", "maxout-nin-small", "mim-small", "min-small")
DATASETS = ("digits", "mnist", "cifar10", "cifar100", "svhn")
INPUT = {"digits": (1, 28, 10), "mnist": (1, 28, 10), "cifar10": (3, 32, 10),
         "cifar100": (3, 32, 100), "svhn": (3, 32, 10)}     # channels, image size, classes

# The layer tables, written out here independently of minidl.models:
# per block (spatial conv, 1x1, 1x1) units, "C" standing for the classes.
TABLE = {
    ("cifar", "full"): ((192, 160, 96), (192, 192, 192), (192, 192, "C")),
    ("mnist", "full"): ((96, 64, 48), (128, 96, 48), (128, 96, "C")),
    ("svhn", "full"): ((128, 96, 64), (320, 256, 128), (384, 256, "C")),
    ("cifar", "small"): ((48, 40, 24), (48, 48, 48), (48, 48, "C")),
    ("mnist", "small"): ((24, 16, 12), (32, 24, 12), (32, 24, "C")),
    ("svhn", "small"): ((32, 24, 16), (80, 64, 32), (96, 64, "C")),
}


def variant(name):
    """(family "nin" / "mim" / "min", uses batch norm, width scale) of a model name."""
    family = "mim" if name.startswith(("mim", "maxout")) else name.split("-")[0]
    batch_norm = name.startswith(("mim", "min")) or "-bn" in name
    return family, batch_norm, "small" if name.endswith("-small") else "full"


def expected_parameters(name, dataset, pieces=None):
    """Sum over the layer table: conv weights, plus BN (gamma, beta) or a bias per channel.

    Maxout: every convolution of MIM, the 1x1 ones of MIN compute units * pieces
    channels (pieces: 2 for MIM, 5 for MIN unless given).
    """
    family, batch_norm, scale = variant(name)
    pieces = pieces or {"mim": 2, "min": 5}.get(family, 1)
    channels, _, classes = INPUT[dataset]
    data = {"digits": "mnist", "mnist": "mnist", "svhn": "svhn"}.get(dataset, "cifar")
    total = 0
    for kernel, block in zip((5, 5, 3), TABLE[data, scale]):
        for position, units in enumerate(block):
            units = classes if units == "C" else units
            k = kernel if position == 0 else 1
            maxout = family == "mim" or (family == "min" and position > 0)
            outputs = units * pieces if maxout else units
            total += channels * outputs * k * k + (2 * outputs if batch_norm else outputs)
            channels = units
    return total


def layers(model):
    """The model's leaf layers in forward order."""
    return [m for m in model.modules() if not list(m.children())]


def images(shape, dtype="float32", device="cpu", requires_grad=False, seed=0):
    data = numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return minidl.tensor(data, requires_grad=requires_grad, device=device)


# ------------------------------------------------------------------ the zoo

def test_available_lists_every_model_with_a_one_line_description():
    models = available()
    assert tuple(models) == MODELS
    assert all(isinstance(d, str) and d and "\n" not in d for d in models.values())
    assert "Lin" in models["nin"] and "1312.4400" in models["nin"]
    assert "Liao & Carneiro" in models["mim"] and "1508.00330" in models["mim"]
    assert "Chang & Chen" in models["min"] and "1511.02583" in models["min"]
    assert "Liao" not in models["min"] and "Chang" not in models["mim"]
    assert list_models() == models


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_matches_the_layer_table(name, dataset):
    model = create(name, dataset)
    assert model.num_parameters() == expected_parameters(name, dataset)
    assert isinstance(model, {"nin": NIN, "mim": MIM, "min": MIN}[variant(name)[0]])


def test_parameter_counts_of_the_paper_models():
    # NIN for CIFAR-10 as in the authors' Caffe model (all convolutions with bias).
    assert create("nin", "cifar10").num_parameters() == 966_986
    assert create("min", "cifar10").num_parameters() == 1_609_508
    assert create("min", "cifar10", pieces=2).num_parameters() == \
        expected_parameters("min", "cifar10", pieces=2)
    assert create("mim", "cifar10", pieces=3).num_parameters() == \
        expected_parameters("mim", "cifar10", pieces=3)


def test_the_docs_table_gives_the_parameter_counts_of_the_code():
    text = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` +\|.*\| ([\d,]+) \| ([\d,]+) \|$", text, re.M)
    assert sorted(name for name, *_ in rows) == sorted(MODELS)
    for name, cifar10, digits in rows:
        assert int(cifar10.replace(",", "")) == create(name, "cifar10").num_parameters(), name
        assert int(digits.replace(",", "")) == create(name, "digits").num_parameters(), name


def test_digits_and_mnist_build_the_same_model():
    a, b = create("min", "digits"), create("min", "mnist")
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


# ------------------------------------------------------------------ shapes

@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("name", MODELS)
def test_output_shape_in_training_and_evaluation(name, dataset):
    channels, _, classes = INPUT[dataset]
    model = create(name, dataset)
    x = images((2, channels, 8, 8))          # fully convolutional: 8 -> 4 -> 2 -> 1
    with no_grad():
        for mode in (True, False):
            y = model.train(mode)(x)
            assert y.shape == (2, classes) and y.dtype == numpy.float32
            assert numpy.isfinite(host(y)).all()


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
@pytest.mark.parametrize("name", ["nin-small", "min-small"])
def test_ceil_mode_pooling_halves_the_image_size(name, dataset):
    channels, size, classes = INPUT[dataset]
    model = create(name, dataset).eval()
    with no_grad():
        h1 = model.block1(images((1, channels, size, size)))
        h2 = model.block2(h1)
        y = model.block3(h2)
    half = -(-size // 2)                       # 32 -> 16 -> 8, 28 -> 14 -> 7
    assert h1.shape[2:] == (half, half) and h2.shape[2:] == (-(-half // 2),) * 2
    assert y.shape == (1, classes)


def test_evaluation_is_deterministic_and_training_uses_dropout():
    model = create("min-small", "digits")
    x = images((2, 1, 8, 8))
    with no_grad():
        train_a, train_b = host(model(x)), host(model(x))
        model.eval()
        eval_a, eval_b = host(model(x)), host(model(x))
    assert not numpy.array_equal(train_a, train_b)
    numpy.testing.assert_array_equal(eval_a, eval_b)


def test_min_small_forward_and_backward_on_each_device(device):
    model = create("min-small", "digits").to(device)
    x = images((2, 1, 12, 12), device=device)
    y = model(x)
    assert y.shape == (2, 10) and y.device == device
    y.sum().backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.shape
        assert minidl.backend.device_of(p.grad) == device
    with no_grad():
        assert model.eval()(x).shape == (2, 10)


# ------------------------------------------------------------------ structure

def pools(model):
    return [(type(m), m.kernel_size, m.stride, m.ceil_mode) for m in layers(model)
            if isinstance(m, (MaxPool2d, AvgPool2d))]


@pytest.mark.parametrize("name", ["min", "min-small"])
def test_min_puts_batch_norm_over_units_times_pieces_before_every_maxout(name):
    for pieces in (5, 3):
        model = create(name, "cifar10", pieces=pieces)
        seq = layers(model)
        maxouts = [i for i, m in enumerate(seq) if isinstance(m, Maxout)]
        assert len(maxouts) == 6 and not any(isinstance(m, ReLU) for m in seq)
        for i in maxouts:
            conv, bn, maxout = seq[i - 2:i + 1]
            assert isinstance(conv, Conv2d) and conv.kernel_size == (1, 1)
            assert isinstance(bn, BatchNorm2d)
            assert bn.num_features == conv.out_channels and maxout.pieces == pieces
            assert conv.out_channels % pieces == 0 and conv.bias is None
        # every convolution, the spatial ones included, is followed by batch norm
        assert all(isinstance(seq[i + 1], BatchNorm2d)
                   for i, m in enumerate(seq) if isinstance(m, Conv2d))
        assert pools(model) == [(AvgPool2d, 3, 2, True)] * 2
    assert seq[-4].out_channels == 10 * 3 and isinstance(seq[-1], GlobalAvgPool2d)


@pytest.mark.parametrize("name", ["mim", "mim-small"])
def test_mim_puts_batch_norm_before_a_maxout_after_every_convolution(name):
    assert create(name, "cifar10").pieces == 2
    for pieces in (2, 3):
        seq = layers(create(name, "cifar10", pieces=pieces))
        convs = [i for i, m in enumerate(seq) if isinstance(m, Conv2d)]
        assert len(convs) == 9 and not any(isinstance(m, ReLU) for m in seq)
        assert [seq[i].kernel_size[0] for i in convs] == [5, 1, 1, 5, 1, 1, 3, 1, 1]
        for i in convs:
            conv, bn, maxout = seq[i:i + 3]
            assert isinstance(bn, BatchNorm2d) and bn.num_features == conv.out_channels
            assert isinstance(maxout, Maxout) and maxout.pieces == pieces
            assert conv.out_channels % pieces == 0 and conv.bias is None
        assert sum(isinstance(m, Maxout) for m in seq) == 9
        assert pools(create(name, "cifar10")) == [(MaxPool2d, 3, 2, True)] * 2
        assert [m.p for m in seq if isinstance(m, Dropout)] == [0.5, 0.5]
    assert seq[-4].out_channels == 10 * 3 and isinstance(seq[-1], GlobalAvgPool2d)


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_maxout_nin_is_mim_without_batch_norm(dataset):
    seq = layers(create("maxout-nin", dataset))
    assert not any(isinstance(m, BatchNorm2d) for m in seq)
    maxouts = [i for i, m in enumerate(seq) if isinstance(m, Maxout)]
    assert len(maxouts) == 9
    assert all(isinstance(seq[i - 1], Conv2d) and seq[i - 1].bias is not None for i in maxouts)
    mim = layers(create("mim", dataset))
    assert [type(m) for m in mim if not isinstance(m, BatchNorm2d)] == [type(m) for m in seq]
    assert [m.weight.shape for m in mim if isinstance(m, Conv2d)] == \
        [m.weight.shape for m in seq if isinstance(m, Conv2d)]


def test_nin_bn_has_batch_norm_before_every_relu():
    seq = layers(create("nin-bn", "cifar10"))
    relus = [i for i, m in enumerate(seq) if isinstance(m, ReLU)]
    assert len(relus) == 9
    for i in relus:
        conv, bn = seq[i - 2:i]
        assert isinstance(conv, Conv2d) and conv.bias is None
        assert isinstance(bn, BatchNorm2d) and bn.num_features == conv.out_channels


def test_nin_is_conv_relu_with_max_then_average_pooling():
    seq = layers(create("nin", "cifar10"))
    convs = [m for m in seq if isinstance(m, Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs] == [
        (192, 5, 2), (160, 1, 0), (96, 1, 0), (192, 5, 2), (192, 1, 0), (192, 1, 0),
        (192, 3, 1), (192, 1, 0), (10, 1, 0)]
    assert all(c.bias is not None for c in convs)
    assert all(isinstance(seq[seq.index(c) + 1], ReLU) for c in convs)
    assert not any(isinstance(m, (BatchNorm2d, Maxout)) for m in seq)
    assert pools(create("nin", "cifar10")) == [(MaxPool2d, 3, 2, True), (AvgPool2d, 3, 2, True)]
    assert [m.p for m in seq if isinstance(m, Dropout)] == [0.5, 0.5]


def test_overrides_change_classes_channels_and_dropout():
    model = create("nin-small", "cifar10", num_classes=7, in_channels=2, dropout=0.25)
    with no_grad():
        assert model(images((2, 2, 8, 8))).shape == (2, 7)
    assert [m.p for m in layers(model) if isinstance(m, Dropout)] == [0.25, 0.25]
    assert not any(isinstance(m, Dropout) for m in layers(create("min", "svhn", dropout=0)))
    numpy_ints = create("min-small", "digits", num_classes=numpy.int64(4), pieces=numpy.int32(2))
    assert numpy_ints.config["num_classes"] == 4 and type(numpy_ints.config["pieces"]) is int
    with no_grad():
        assert numpy_ints(images((2, 1, 8, 8))).shape == (2, 4)


def test_config_rebuilds_the_same_architecture():
    model = create("min-small", "svhn", pieces=3, dropout=0.0)
    assert model.config == {"name": "min-small", "dataset": "svhn", "pieces": 3, "dropout": 0.0}
    again = create(**model.config)
    assert [(n, p.shape) for n, p in again.named_parameters()] == \
        [(n, p.shape) for n, p in model.named_parameters()]


def test_print_shows_the_blocks_and_the_parameter_count():
    model = create("min-small", "digits")
    text = repr(model)
    assert text.startswith("MIN(\n  pieces=5, batch_norm=True\n  (block1): Sequential(")
    assert "(block3): Sequential(" in text and "Maxout(pieces=5, axis=1)" in text
    assert "Conv2d(24, 80, kernel_size=(1, 1)" in text and "BatchNorm2d(80," in text
    assert text.endswith(f"(parameters: {expected_parameters('min-small', 'digits'):,})")


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name):
    minidl.manual_seed(0)
    model = create(name, "cifar10")
    y = model(images((2, 3, 8, 8)))
    (y * images(y.shape, seed=1)).sum().backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None and numpy.any(host(p.grad) != 0), param_name


@pytest.mark.parametrize("name", ["min-small", "mim-small"])
def test_gradcheck_of_a_tiny_maxout_model_with_respect_to_the_input(name):
    # 2 pieces and no dropout, in float64, batch statistics in train mode
    model = create(name, "digits", pieces=2, dropout=0).to(dtype="float64")
    x = images((2, 1, 8, 8), dtype="float64", requires_grad=True)
    assert gradcheck(model, [x])


# ------------------------------------------------------------------ errors

def test_create_rejects_unknown_names_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; available models: nin, "
                                         r"nin-bn, maxout-nin, mim, min, nin-small, .*min-small"):
        create("resnet", "digits")
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; choose one of digits, "
                                         r"mnist, cifar10, cifar100, svhn"):
        create("min", "imagenet")
    with pytest.raises(ValueError, match=r"unknown override\(s\) 'pieces' for model 'nin'; "
                                         r"valid overrides: num_classes, in_channels, dropout, "
                                         r"init$"):
        create("nin", "digits", pieces=3)
    with pytest.raises(ValueError, match=r"unknown override\(s\) 'classes', 'width' for model "
                                         r"'min'; valid overrides: num_classes, in_channels, "
                                         r"dropout, init, pieces$"):
        create("min", "digits", width=2, classes=3)


@pytest.mark.parametrize("override, error, message", [
    ({"dropout": 1.0}, ValueError, r"create: dropout must be in \[0, 1\), got 1.0"),
    ({"dropout": -0.1}, ValueError, r"create: dropout must be in \[0, 1\), got -0.1"),
    ({"dropout": "0.5"}, TypeError, r"create: dropout must be a real number, got '0.5'"),
    ({"num_classes": 0}, ValueError, r"create: num_classes must be >= 1, got 0"),
    ({"in_channels": 2.5}, TypeError, r"create: in_channels must be an integer, got 2.5"),
    ({"pieces": True}, TypeError, r"create: pieces must be an integer, got True"),
    ({"init": "xavier"}, ValueError, r"create: init must be one of default, gaussian, "
                                     r"orthogonal, kaiming, got 'xavier'"),
])
def test_create_rejects_bad_override_values(override, error, message):
    with pytest.raises(error, match=message):
        create("min-small", "digits", **override)


# ------------------------------------------------------------------ initialization

def convs(model):
    return [m for m in layers(model) if isinstance(m, Conv2d)]


def test_each_model_defaults_to_the_initialization_of_its_source():
    assert {name: default_init(name) for name in MODELS} == {
        "nin": "gaussian", "nin-bn": "gaussian", "maxout-nin": "kaiming", "mim": "kaiming",
        "min": "orthogonal", "nin-small": "kaiming", "nin-bn-small": "gaussian",
        "maxout-nin-small": "kaiming", "mim-small": "kaiming", "min-small": "orthogonal"}
    for name in ("nin-small", "min-small"):
        minidl.manual_seed(3)
        implicit = create(name, "digits")
        minidl.manual_seed(3)
        explicit = create(name, "digits", init=default_init(name))
        for a, b in zip(implicit.parameters(), explicit.parameters()):
            numpy.testing.assert_array_equal(host(a), host(b))


def test_gaussian_init_draws_every_convolution_with_the_nin_caffe_std():
    minidl.manual_seed(0)
    model = create("nin", "cifar10", init="gaussian")
    for conv in convs(model):
        w = host(conv.weight)
        assert abs(w.std() - GAUSSIAN_STD) < 0.1 * GAUSSIAN_STD and abs(w.mean()) < 0.01
        assert not host(conv.bias).any()


@pytest.mark.parametrize("name", ["min-small", "nin-small"])
def test_orthogonal_init_gives_orthonormal_rows_or_columns(name):
    model = create(name, "cifar10", init="orthogonal")
    for conv in convs(model):
        w = host(conv.weight).reshape(conv.out_channels, -1).astype(numpy.float64)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        numpy.testing.assert_allclose(gram, numpy.eye(len(gram)), atol=1e-5)


@pytest.mark.parametrize("name, gain", [("nin", 2 ** 0.5), ("mim", 1.0), ("min", 1.0)])
def test_kaiming_init_has_std_gain_over_sqrt_fan_in(name, gain):
    # sqrt(2) before a ReLU, 1 before a maxout: the second moment of the signal is kept
    minidl.manual_seed(0)
    for conv in convs(create(name, "cifar10", init="kaiming")):
        w = host(conv.weight)
        expected = gain / (w[0].size ** 0.5)
        assert abs(w.std() - expected) < 0.1 * expected, conv
        if conv.bias is not None:
            assert not host(conv.bias).any()


def test_default_init_is_pytorchs_uniform_and_every_scheme_keeps_batch_norm_at_one_and_zero():
    for scheme in SCHEMES:
        minidl.manual_seed(0)
        model = create("mim-small", "cifar10", init=scheme)
        for m in layers(model):
            if isinstance(m, BatchNorm2d):
                assert (host(m.weight) == 1).all() and not host(m.bias).any()
    for conv in convs(create("nin-small", "cifar10", init="default")):
        w, bound = host(conv.weight), 1 / host(conv.weight)[0].size ** 0.5
        assert numpy.abs(w).max() <= bound and abs(w.std() - bound / 3 ** 0.5) < 0.15 * bound
        assert numpy.abs(host(conv.bias)).max() <= bound and host(conv.bias).any()


def test_kaiming_keeps_the_signal_of_small_models_that_the_caffe_gaussian_loses():
    # why nin-small does not take NIN's Gaussian: its logits all but vanish at initialization
    x = images((8, 1, 28, 28))
    spread = {}
    for scheme in ("gaussian", "kaiming"):
        minidl.manual_seed(0)
        with no_grad():
            spread[scheme] = host(create("nin-small", "digits", init=scheme, dropout=0)(x)).std()
    assert spread["gaussian"] < 1e-3 < 0.1 < spread["kaiming"] < 10


def test_initialize_rejects_an_unknown_scheme_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"initialize: scheme must be one of default, gaussian, "
                                         r"orthogonal, kaiming, got 'he'"):
        initialize(create("nin-small", "digits"), "he")


@pytest.mark.parametrize("name", ["nin-small", "mim-small", "min-small"])
@pytest.mark.parametrize("scheme, torch_init", [
    ("kaiming", lambda torch, w, nonlinearity: torch.nn.init.kaiming_normal_(
        w, nonlinearity=nonlinearity)),
    ("gaussian", lambda torch, w, _: torch.nn.init.normal_(w, 0.0, GAUSSIAN_STD)),
    ("orthogonal", lambda torch, w, _: torch.nn.init.orthogonal_(w)),
])
def test_each_scheme_draws_what_torch_nn_init_draws_for_the_same_layer(name, scheme, torch_init):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    minidl.manual_seed(0)
    model = create(name, "cifar10", init=scheme)
    for conv in convs(model):
        reference = torch_init(torch, torch.empty(conv.weight.shape, dtype=torch.float64),
                               model.nonlinearity).numpy()
        ours = host(conv.weight).astype(numpy.float64)
        assert abs(ours.std() - reference.std()) < 0.1 * reference.std(), conv
        # the same shape of distribution, not only its spread: the share beyond 2 std
        # (4.6% for a Gaussian, 0 for a uniform of that std)
        beyond = [numpy.mean(abs(a) > 2 * a.std()) for a in (ours, reference)]
        assert abs(beyond[0] - beyond[1]) < 0.02, (conv, beyond)
        flat, torch_flat = ours.reshape(len(ours), -1), reference.reshape(len(reference), -1)
        assert numpy.allclose(sorted(numpy.linalg.svd(flat, compute_uv=False))[-1],
                              sorted(numpy.linalg.svd(torch_flat, compute_uv=False))[-1],
                              rtol=0.25), conv
