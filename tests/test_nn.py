"""minidl.nn: Module bookkeeping, state dicts, modes, devices, hooks, printing, and the layers."""
import re

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from helpers import host
from minidl import backend, nn
from minidl.functional import (avg_pool2d, batch_norm, conv2d, dropout, global_avg_pool2d,
                               linear, max_pool2d, maxout, relu)


def small_model():
    """conv-bn-maxout-pool-flatten-linear for (N, 2, 4, 4) input: 111 parameters."""
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Maxout(2),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.head = nn.Linear(2, 5)
        self.scale = 2.0      # a plain attribute, not registered anywhere

    def forward(self, x):
        return self.head(self.features(x).mean(axis=(2, 3))) * self.scale


def image(rng, shape, device="cpu", dtype="float32", requires_grad=False):
    return minidl.tensor(rng.standard_normal(shape).astype(dtype), device=device,
                         requires_grad=requires_grad)


# ------------------------------------------------------------------ registration and naming

def test_nested_parameters_have_dotted_names():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "features.1.weight",
                     "features.1.bias", "head.weight", "head.bias"]
    assert all(a is b for a, (_, b) in zip(net.parameters(), net.named_parameters()))
    assert net.features[0].weight is dict(net.named_parameters())["features.0.weight"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert net.num_parameters() == (2 * 9 + 2) + (2 + 2) + (5 * 2 + 5)
    assert "scale" not in dict(net.named_parameters()) and net.scale == 2.0


def test_buffers_are_registered_and_named():
    net = Net()
    buffers = dict(net.named_buffers())
    assert list(buffers) == ["features.1.running_mean", "features.1.running_var",
                             "features.1.num_batches_tracked"]
    assert all(a is b for a, b in zip(net.buffers(), buffers.values()))
    assert not any(b.requires_grad for b in net.buffers())
    numpy.testing.assert_array_equal(host(buffers["features.1.running_mean"]), [0, 0])
    numpy.testing.assert_array_equal(host(buffers["features.1.running_var"]), [1, 1])
    assert buffers["features.1.num_batches_tracked"].dtype == numpy.int64


def test_children_and_modules():
    net = Net()
    assert list(net.children()) == [net.features, net.head]
    assert [name for name, _ in net.named_modules()] == [
        "", "features", "features.0", "features.1", "head"]
    assert list(net.modules())[0] is net
    assert [type(m).__name__ for m in net.modules()] == [
        "Net", "Sequential", "Conv2d", "BatchNorm2d", "Linear"]


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert model.num_parameters() == 12
    assert len(list(model.modules())) == 3
    assert len(list(model.named_modules(remove_duplicate=False))) == 4
    # state_dict keeps every path to a shared module, as PyTorch's does.
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    other = nn.Linear(3, 3)
    other.weight = shared.weight
    assert nn.Sequential(shared, other).num_parameters() == 9 + 3 + 3


def test_reassignment_updates_the_registries():
    net = Net()
    net.head = nn.ReLU()
    assert [n for n, _ in net.named_parameters()][-1] == "features.1.bias"
    net.head = "gone"
    assert "head" not in dict(net.named_children()) and net.head == "gone"
    layer = nn.Linear(2, 3)
    layer.bias = None
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    del layer.weight
    assert list(layer.parameters()) == []
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weight'"):
        layer.weight


def test_assigning_a_tensor_to_a_parameter_slot_is_an_error():
    layer = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'weight' of Linear: "
                                        "expected a Parameter or None"):
        layer.weight = minidl.tensor(numpy.zeros((3, 2), dtype=numpy.float32))


def test_bias_false_registers_no_bias():
    layer = nn.Linear(4, 2, bias=False)
    assert layer.bias is None
    assert list(layer.state_dict()) == ["weight"]
    assert repr(layer) == "Linear(in_features=4, out_features=2, bias=False)"
    conv = nn.Conv2d(1, 2, 3, bias=False)
    assert conv.bias is None and conv.num_parameters() == 18


def test_assignment_before_init_is_an_error():
    class Forgetful(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"cannot assign 'layer' before Module.__init__\(\) "
                                             r"is called: call super\(\).__init__\(\) first in "
                                             r"Forgetful.__init__"):
        Forgetful()


def test_register_buffer_errors():
    m = nn.Module()
    with pytest.raises(ValueError, match="register_buffer\\('stat'\\): a buffer must not "
                                         "require grad"):
        m.register_buffer("stat", minidl.tensor([1.0], requires_grad=True))
    with pytest.raises(TypeError, match="register_buffer\\('stat'\\): expected a Tensor "
                                        "\\(not a Parameter\\) or None, got ndarray"):
        m.register_buffer("stat", numpy.zeros(2))
    with pytest.raises(ValueError, match="buffer name must be a non-empty string without "
                                         "'.', got 'a.b'"):
        m.register_buffer("a.b", minidl.tensor([1.0]))
    with pytest.raises(TypeError, match="register_parameter\\('w'\\): expected a Parameter or "
                                        "None, got Tensor"):
        m.register_parameter("w", minidl.tensor([1.0]))
    m.register_buffer("stat", minidl.tensor([1.0]))
    m.stat = minidl.tensor([2.0])             # assignment replaces a registered buffer
    assert dict(m.named_buffers())["stat"].item() == 2.0


def test_parameter():
    p = nn.Parameter([1, 2, 3])
    assert p.dtype == numpy.float32 and p.requires_grad and p.is_leaf
    assert nn.Parameter(numpy.zeros(2)).dtype == numpy.float64
    t = minidl.tensor([1.0, 2.0])
    assert nn.Parameter(t).data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2., 3.]")


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


# ------------------------------------------------------------------ state dicts

def test_state_dict_keys_order_and_copies(device):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Linear(2, 3)).to(device)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                           "1.running_var", "1.num_batches_tracked", "2.weight", "2.bias"]
    assert all(type(v) is numpy.ndarray for v in state.values())
    assert state["1.num_batches_tracked"].dtype == numpy.int64
    state["2.weight"][...] = 100.0
    assert host(model[2].weight).max() < 100.0


def test_state_dict_keys_match_pytorch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(2, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


def test_state_dict_round_trip_gives_identical_outputs(device, rng):
    minidl.manual_seed(0)
    source = small_model().to(device)
    x = image(rng, (4, 2, 4, 4), device)
    source(x)                                 # training step: moves the BN running statistics
    minidl.manual_seed(1)
    target = small_model().to(device)
    assert not numpy.array_equal(host(source(x)), host(target(x)))
    target.load_state_dict(source.state_dict())
    for mode in (True, False):
        source.train(mode)
        target.train(mode)
        numpy.testing.assert_array_equal(host(source(x)), host(target(x)))
    assert all(p.device == device for p in target.parameters())
    assert target[1].num_batches_tracked.item() == source[1].num_batches_tracked.item()


def test_load_state_dict_copies_in_place_and_casts():
    model = nn.Linear(2, 2)
    weight = model.weight
    array = weight.data
    model.load_state_dict({"weight": numpy.ones((2, 2)), "bias": minidl.tensor([1.0, 2.0])})
    assert model.weight is weight and weight.data is array
    assert weight.dtype == numpy.float32
    numpy.testing.assert_array_equal(host(model.bias), [1.0, 2.0])


def test_load_state_dict_shape_mismatch_names_the_key():
    model = small_model()
    state = model.state_dict()
    state["0.weight"] = numpy.zeros((4, 2, 5, 5), dtype=numpy.float32)
    state["5.bias"] = numpy.zeros(3, dtype=numpy.float32)
    before = host(model[5].bias).copy()
    with pytest.raises(ValueError, match=re.escape(
            "load_state_dict into Sequential: '0.weight' has shape (4, 2, 5, 5) in the state "
            "dict, but the model expects (4, 2, 3, 3)")):
        model.load_state_dict(state)
    numpy.testing.assert_array_equal(host(model[5].bias), before)   # nothing was copied


def test_load_state_dict_missing_and_unexpected_keys():
    model = small_model()
    state = model.state_dict()
    del state["1.running_var"], state["5.bias"]
    state["extra"] = numpy.zeros(1)
    with pytest.raises(ValueError, match=re.escape(
            "load_state_dict into Sequential: missing key(s): '1.running_var', '5.bias'; "
            "unexpected key(s): 'extra'")):
        model.load_state_dict(state)
    with pytest.raises(ValueError, match=re.escape("unexpected key(s): 'extra'")):
        nn.Linear(1, 1).load_state_dict({"weight": [[1.0]], "bias": [0.0], "extra": 1})


BAD_ENTRIES = {
    "shape": (lambda v: numpy.zeros(v.shape + (2,), v.dtype), r"has shape .* but the model "
                                                               r"expects"),
    "strings": (lambda v: numpy.full(v.shape, "x"), r"has dtype <U1 in the state dict"),
    "complex": (lambda v: numpy.zeros(v.shape, complex), r"has dtype complex128"),
    "objects": (lambda v: numpy.full(v.shape, None, object), r"has dtype object"),
    "a float count": (lambda v: numpy.zeros(v.shape), r"has dtype float64 .* int64 tensor"),
}


@given(position=st.integers(0, 100), kind=st.sampled_from(sorted(BAD_ENTRIES)))
def test_a_load_with_one_bad_entry_anywhere_changes_nothing(device, position, kind):
    model = small_model().to(device)
    before = model.state_dict()
    source = {name: value + 1 if value.dtype.kind == "f" else value
              for name, value in before.items()}
    make, message = BAD_ENTRIES[kind]
    names = [n for n, v in source.items() if (v.dtype.kind == "i") == (kind == "a float count")]
    name = names[position % len(names)]
    source[name] = make(source[name])
    with pytest.raises(ValueError, match=re.escape(repr(name)) + " " + message):
        model.load_state_dict(source)
    after = model.state_dict()
    assert all(numpy.array_equal(after[n], before[n]) for n in before)


def test_load_state_dict_wants_a_mapping():
    with pytest.raises(TypeError, match=r"load_state_dict into Linear: expected a mapping of "
                                        r"names to arrays, got list"):
        nn.Linear(1, 1).load_state_dict([("weight", [[1.0]])])


def test_load_state_dict_non_strict_loads_the_rest():
    model = nn.Linear(2, 2)
    missing, unexpected = model.load_state_dict(
        {"weight": numpy.full((2, 2), 3.0), "other": numpy.zeros(1)}, strict=False)
    assert (missing, unexpected) == (["bias"], ["other"])
    numpy.testing.assert_array_equal(host(model.weight), numpy.full((2, 2), 3.0))


# ------------------------------------------------------------------ train / eval

def test_train_and_eval_switch_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.features.train()
    assert net.features[1].training and not net.training and not net.head.training


def test_batch_norm_uses_batch_stats_in_training_and_running_stats_in_eval(device, rng):
    bn = nn.BatchNorm2d(3).to(device)
    bn.load_state_dict({"weight": [1.0, 2.0, 0.5], "bias": [0.0, 1.0, -1.0],
                        "running_mean": [0.5, -1.0, 2.0], "running_var": [4.0, 0.25, 1.0],
                        "num_batches_tracked": 0})
    x = image(rng, (4, 3, 2, 2), device)
    h = host(x)
    y = host(bn(x))
    xhat = (h - h.mean(axis=(0, 2, 3), keepdims=True)) / numpy.sqrt(
        h.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    gamma, beta = numpy.array([1.0, 2.0, 0.5]), numpy.array([0.0, 1.0, -1.0])
    numpy.testing.assert_allclose(y, gamma[:, None, None] * xhat + beta[:, None, None],
                                  rtol=1e-4, atol=1e-5)
    running_mean = host(bn.running_mean)
    numpy.testing.assert_allclose(running_mean, 0.9 * numpy.array([0.5, -1.0, 2.0])
                                  + 0.1 * h.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1

    bn.eval()
    running_var = host(bn.running_var)
    expected = ((h - running_mean[:, None, None]) / numpy.sqrt(running_var[:, None, None] + 1e-5)
                * gamma[:, None, None] + beta[:, None, None])
    numpy.testing.assert_allclose(host(bn(x)), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_array_equal(host(bn.running_mean), running_mean)   # not updated
    assert bn.num_batches_tracked.item() == 1


def test_dropout_drops_in_training_and_is_identity_in_eval(device):
    layer = nn.Dropout(0.5).to(device)
    x = minidl.tensor(numpy.ones((50, 40), dtype=numpy.float32), device=device)
    y = host(layer(x))
    assert set(numpy.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    layer.eval()
    numpy.testing.assert_array_equal(host(layer(x)), host(x))


# ------------------------------------------------------------------ devices and dtypes

def test_to_device_moves_parameters_grads_and_buffers_keeping_identity(device, rng):
    model = small_model()
    params = list(model.parameters())
    model(image(rng, (2, 2, 4, 4))).sum().backward()
    assert model.to(device) is model
    assert all(a is b for a, b in zip(model.parameters(), params))
    for t in list(model.parameters()) + list(model.buffers()):
        assert t.device == device
    for p in model.parameters():
        assert backend.device_of(p.grad) == device
    y = model(image(rng, (2, 2, 4, 4), device))
    assert y.device == device and y.shape == (2, 3)
    model.to("cpu")
    assert all(t.device == "cpu" for t in model.buffers())


def test_to_dtype_casts_floating_tensors_only():
    model = small_model().to(dtype="float64")
    assert all(p.dtype == numpy.float64 for p in model.parameters())
    assert model[1].running_var.dtype == numpy.float64
    assert model[1].num_batches_tracked.dtype == numpy.int64
    with pytest.raises(TypeError, match="Module.to: dtype must be a floating-point dtype, "
                                        "got int32"):
        model.to(dtype="int32")


def test_layers_are_created_on_the_default_device(device):
    backend.set_default_device(device)
    for layer in (nn.Linear(3, 2), nn.Conv2d(1, 2, 3), nn.BatchNorm1d(4)):
        for t in list(layer.parameters()) + list(layer.buffers()):
            assert t.device == device and t.dtype.kind in "fi"
    assert nn.Linear(3, 2).weight.dtype == numpy.float32
    assert nn.Linear(3, 2, dtype="float64").weight.dtype == numpy.float64


def test_zero_grad_resets_every_gradient(rng):
    model = small_model()
    model(image(rng, (2, 2, 4, 4))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------ hooks

def test_forward_hook_sees_module_inputs_and_output_and_can_be_removed(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    calls = []
    handle = model[1].register_forward_hook(lambda m, inputs, out: calls.append((m, inputs, out)))
    x = image(rng, (2, 3))
    y = model(x)
    assert len(calls) == 1
    module, inputs, out = calls[0]
    assert module is model[1] and out is y
    assert isinstance(inputs, tuple) and len(inputs) == 1
    numpy.testing.assert_array_equal(host(inputs[0]), host(model[0](x)))
    handle.remove()
    model(x)
    assert len(calls) == 1
    handle.remove()                           # removing twice is harmless


def test_forward_hooks_run_in_order_and_may_replace_the_output(rng):
    layer = nn.ReLU()
    order = []
    layer.register_forward_hook(lambda m, i, o: order.append("first"))
    layer.register_forward_hook(lambda m, i, o: o * 0.0)
    layer.register_forward_hook(lambda m, i, o: order.append(float(host(o).sum())))
    y = layer(minidl.tensor([1.0, 2.0]))
    assert order == ["first", 0.0]
    numpy.testing.assert_array_equal(host(y), [0.0, 0.0])


# ------------------------------------------------------------------ printing

def test_repr_is_a_tree_ending_with_the_parameter_count():
    assert repr(small_model()) == (
        "Sequential(\n"
        "  (0): Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (1): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)\n"
        "  (2): Maxout(pieces=2, axis=1)\n"
        "  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
        "  (4): Flatten(start_dim=1, end_dim=-1)\n"
        "  (5): Linear(in_features=8, out_features=3, bias=True)\n"
        ")\n"
        "(parameters: 111)")


def test_repr_of_nested_modules_and_large_counts():
    net = Net()
    net.head = nn.Linear(2000, 500)
    text = repr(net)
    assert text.startswith("Net(\n  (features): Sequential(\n    (0): Conv2d(1, 2, "
                           "kernel_size=(3, 3), stride=(1, 1))\n    (1): BatchNorm2d(2, ")
    assert "\n  )\n  (head): Linear(in_features=2000, out_features=500, bias=True)\n)\n" in text
    assert text.endswith("\n(parameters: 1,000,524)")     # 20 + 4 + 1,000,000 + 500
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.AvgPool2d(3, 2, 1, ceil_mode=True)) == \
        "AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"


# ------------------------------------------------------------------ layers equal functional ops

def test_linear_and_conv_equal_their_functional_ops(device, rng):
    layer = nn.Linear(5, 3).to(device)
    x = image(rng, (4, 5), device)
    numpy.testing.assert_array_equal(host(layer(x)), host(linear(x, layer.weight, layer.bias)))
    conv = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1).to(device)
    x = image(rng, (2, 2, 5, 6), device)
    y = conv(x)
    numpy.testing.assert_array_equal(
        host(y), host(conv2d(x, conv.weight, conv.bias, stride=(2, 1), padding=1)))
    assert y.shape == (2, 3, 3, 7)


@pytest.mark.parametrize("layer_cls, shape", [(nn.BatchNorm1d, (6, 3)),
                                              (nn.BatchNorm2d, (2, 3, 2, 2))])
def test_batch_norm_layers_equal_the_functional_op(layer_cls, shape, device, rng):
    layer = layer_cls(3, eps=1e-3, momentum=0.3).to(device)
    nn.init.uniform_(layer.weight, 0.5, 1.5)
    nn.init.uniform_(layer.bias, -1, 1)
    mean = minidl.tensor(host(layer.running_mean), device=device)
    var = minidl.tensor(host(layer.running_var), device=device)
    x = image(rng, shape, device)
    y = layer(x)
    expected = batch_norm(x, layer.weight, layer.bias, mean, var, training=True, momentum=0.3,
                          eps=1e-3)
    numpy.testing.assert_array_equal(host(y), host(expected))
    numpy.testing.assert_array_equal(host(layer.running_var), host(var))
    layer.eval()
    numpy.testing.assert_array_equal(
        host(layer(x)), host(batch_norm(x, layer.weight, layer.bias, mean, var, training=False,
                                        eps=1e-3)))


def test_parameterless_layers_equal_their_functional_ops(device, rng):
    x = image(rng, (2, 6, 5, 5), device)
    cases = [
        (nn.Maxout(3), lambda x: maxout(x, 3, axis=1)),
        (nn.Maxout(5, axis=3), lambda x: maxout(x, 5, axis=3)),
        (nn.ReLU(), relu),
        (nn.MaxPool2d(3, 2, ceil_mode=True), lambda x: max_pool2d(x, 3, 2, ceil_mode=True)),
        (nn.AvgPool2d(2, padding=1), lambda x: avg_pool2d(x, 2, padding=1)),
        (nn.GlobalAvgPool2d(), global_avg_pool2d),
        (nn.Flatten(), lambda x: x.reshape(2, 150)),
        (nn.Flatten(start_dim=-2), lambda x: x.reshape(2, 6, 25)),
    ]
    for layer, op in cases:
        numpy.testing.assert_array_equal(host(layer(x)), host(op(x)), err_msg=repr(layer))
    minidl.manual_seed(5)
    dropped = nn.Dropout(0.3)(x)
    minidl.manual_seed(5)
    numpy.testing.assert_array_equal(host(dropped), host(dropout(x, 0.3, training=True)))


@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.integers(-4, 3))
def test_flatten_keeps_leading_axes(shape, start_dim):
    x = minidl.tensor(numpy.arange(numpy.prod(shape), dtype=numpy.float32).reshape(shape))
    layer = nn.Flatten(start_dim)
    if not -len(shape) <= start_dim < len(shape):
        with pytest.raises(ValueError, match=re.escape(f"flatten: axis {start_dim} is out of "
                                                       f"range for a tensor with {len(shape)} axes")):
            layer(x)
        return
    y = layer(x)
    kept = tuple(shape[:start_dim % len(shape)])
    assert y.shape == kept + (int(numpy.prod(shape[start_dim % len(shape):])),)
    numpy.testing.assert_array_equal(host(y).ravel(), host(x).ravel())


# ------------------------------------------------------------------ sequential

def test_sequential_is_indexable_and_iterable(rng):
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == layers[1:]
    x = image(rng, (2, 3))
    numpy.testing.assert_array_equal(host(model(x)), host(layers[2](layers[1](layers[0](x)))))
    with pytest.raises(IndexError, match="Sequential index 3 is out of range for 3 module"):
        model[3]
    with pytest.raises(TypeError, match="Sequential: argument 1 is a function, not a Module"):
        nn.Sequential(nn.ReLU(), relu)


# ------------------------------------------------------------------ input validation

def test_linear_rejects_the_wrong_feature_count(rng):
    with pytest.raises(ValueError, match=re.escape(
            "Linear(in_features=784): input has 100 features in its last axis, expected 784")):
        nn.Linear(784, 10)(image(rng, (2, 100)))
    with pytest.raises(ValueError, match=re.escape(
            "Linear(in_features=3): input has no axes, expected 3")):
        nn.Linear(3, 1)(minidl.tensor(1.0))
    with pytest.raises(TypeError, match="Linear: input must be a minidl Tensor, got ndarray"):
        nn.Linear(3, 1)(numpy.zeros(3))


def test_layers_reject_the_wrong_channel_count(rng):
    with pytest.raises(ValueError, match=re.escape(
            "Conv2d(in_channels=3): input has 5 channels in axis 1 (shape (2, 5, 8, 8)), "
            "expected 3")):
        nn.Conv2d(3, 4, 3)(image(rng, (2, 5, 8, 8)))
    with pytest.raises(ValueError, match=re.escape(
            "BatchNorm2d(num_features=4): input has 3 channels in axis 1 (shape (2, 3, 3, 3)), "
            "expected 4")):
        nn.BatchNorm2d(4)(image(rng, (2, 3, 3, 3)))
    with pytest.raises(ValueError, match=re.escape(
            "BatchNorm1d(num_features=4): input has 2 channels in axis 1 (shape (3, 2)), "
            "expected 4")):
        nn.BatchNorm1d(4)(image(rng, (3, 2)))
    with pytest.raises(ValueError, match=re.escape(
            "Maxout(pieces=2, axis=1): input has 5 channels along axis 1, expected a multiple "
            "of 2")):
        nn.Maxout(2)(image(rng, (2, 5, 3, 3)))
    with pytest.raises(ValueError, match=re.escape(
            "Maxout(pieces=2, axis=2): input of shape (2, 4) has no axis 2")):
        nn.Maxout(2, axis=2)(image(rng, (2, 4)))


# Every layer checks its input with the functional ops' check_tensor, naming itself: a
# Tensor (TypeError), of the layer's input_ndim (ValueError), floating where the op needs it.
INPUT_CHECKS = [
    (nn.Linear(3, 2), None, True), (nn.Conv2d(3, 2, 1), (3, 4), True),
    (nn.BatchNorm1d(3), (2, 3), True), (nn.BatchNorm2d(3), 4, True), (nn.Maxout(1), None, False),
    (nn.ReLU(), None, False), (nn.MaxPool2d(2), (3, 4), True), (nn.AvgPool2d(2), (3, 4), True),
    (nn.GlobalAvgPool2d(), (3, 4), True), (nn.Dropout(), None, True), (nn.Flatten(), None, False),
]


@pytest.mark.parametrize("layer, ndim, floating", INPUT_CHECKS,
                         ids=[type(layer).__name__ for layer, _, _ in INPUT_CHECKS])
def test_layers_check_their_input(layer, ndim, floating):
    name = type(layer).__name__
    assert layer.input_ndim == ndim
    with pytest.raises(TypeError, match=f"^{name}: input must be a minidl Tensor, got ndarray"):
        layer(numpy.zeros((2, 3, 4, 4), dtype="float32"))
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        wrong = next(s for s in [(2, 3), (2, 3, 4), (2, 3, 4, 4, 1)] if len(s) not in ranks)
        expected = " or ".join(f"{r}-D" for r in ranks)
        with pytest.raises(ValueError, match=re.escape(f"{name}: input must be {expected}, got "
                                                       f"shape {wrong}")):
            layer(minidl.tensor(numpy.zeros(wrong, dtype="float32")))
    shape = (2, 3) if ndim == (2, 3) else (2, 3, 4, 4)
    integers = minidl.tensor(numpy.zeros(shape, dtype="int64"))
    if floating:
        with pytest.raises(TypeError, match=f"^{name}: input must be a floating-point tensor, "
                                            f"got dtype int64"):
            layer(integers)
    else:
        assert layer(integers).dtype == numpy.int64


def bad(make, error, message):
    """One bad constructor argument: ``make()`` raises ``error`` with exactly ``message``."""
    return pytest.param(make, error, message, id=message)


NAN = float("nan")
BAD_ARGUMENTS = [
    bad(lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be >= 1, got 0"),
    bad(lambda: nn.Linear(2.0, 3), TypeError, "Linear: in_features must be an integer, got 2.0"),
    bad(lambda: nn.Linear(True, 3), TypeError, "Linear: in_features must be an integer, got True"),
    bad(lambda: nn.Linear(2, -1), ValueError, "Linear: out_features must be >= 1, got -1"),
    bad(lambda: nn.Linear(2, "3"), TypeError, "Linear: out_features must be an integer, got '3'"),
    bad(lambda: nn.Linear(2, 3, bias=1), TypeError, "Linear: bias must be True or False, got 1"),
    bad(lambda: nn.Linear(2, 2, dtype="int64"), TypeError,
        "Linear: dtype must be a floating-point dtype, got int64"),
    bad(lambda: nn.Linear(2, 2, dtype="float33"), TypeError,
        "Linear: dtype must be a floating-point dtype, got 'float33'"),
    bad(lambda: nn.Linear(2, 2, dtype=None), TypeError,
        "Linear: dtype must be a floating-point dtype, got None"),
    bad(lambda: nn.Conv2d(0, 2, 3), ValueError, "Conv2d: in_channels must be >= 1, got 0"),
    bad(lambda: nn.Conv2d(1.5, 2, 3), TypeError, "Conv2d: in_channels must be an integer, got 1.5"),
    bad(lambda: nn.Conv2d(1, False, 3), TypeError,
        "Conv2d: out_channels must be an integer, got False"),
    bad(lambda: nn.Conv2d(1, 2, 0), ValueError, "Conv2d: kernel_size must be positive, got (0, 0)"),
    bad(lambda: nn.Conv2d(1, 2, (3,)), TypeError,
        "Conv2d: kernel_size must be an int or a pair of ints (h, w), got (3,)"),
    bad(lambda: nn.Conv2d(1, 2, (3, True)), TypeError,
        "Conv2d: kernel_size must be an int or a pair of ints (h, w), got (3, True)"),
    bad(lambda: nn.Conv2d(1, 2, 3, stride=(1, 0)), ValueError,
        "Conv2d: stride must be positive, got (1, 0)"),
    bad(lambda: nn.Conv2d(1, 2, 3, stride=1.5), TypeError,
        "Conv2d: stride must be an int or a pair of ints (h, w), got 1.5"),
    bad(lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError,
        "Conv2d: padding must be non-negative, got (-1, -1)"),
    bad(lambda: nn.Conv2d(1, 2, 3, padding="1"), ValueError,
        "Conv2d: padding must be 'same', 'valid', an int or a pair of ints (h, w), got '1'"),
    bad(lambda: nn.Conv2d(1, 2, 3, bias=None), TypeError,
        "Conv2d: bias must be True or False, got None"),
    bad(lambda: nn.Conv2d(1, 2, 3, dtype="int32"), TypeError,
        "Conv2d: dtype must be a floating-point dtype, got int32"),
    bad(lambda: nn.Maxout(0), ValueError, "Maxout: pieces must be >= 1, got 0"),
    bad(lambda: nn.Maxout(2.0), TypeError, "Maxout: pieces must be an integer, got 2.0"),
    bad(lambda: nn.Maxout(True), TypeError, "Maxout: pieces must be an integer, got True"),
    bad(lambda: nn.Maxout(2, axis=1.0), TypeError, "Maxout: axis must be an integer, got 1.0"),
    bad(lambda: nn.Maxout(2, axis=None), TypeError, "Maxout: axis must be an integer, got None"),
    bad(lambda: nn.Dropout(1), ValueError, "Dropout: p must be in [0, 1), got 1"),
    bad(lambda: nn.Dropout(1.5), ValueError, "Dropout: p must be in [0, 1), got 1.5"),
    bad(lambda: nn.Dropout(-0.1), ValueError, "Dropout: p must be in [0, 1), got -0.1"),
    bad(lambda: nn.Dropout(NAN), ValueError, "Dropout: p must be in [0, 1), got nan"),
    bad(lambda: nn.Dropout(True), TypeError, "Dropout: p must be a real number, got True"),
    bad(lambda: nn.Dropout("0.5"), TypeError, "Dropout: p must be a real number, got '0.5'"),
    bad(lambda: nn.Flatten(1.0), TypeError, "Flatten: start_dim must be an integer, got 1.0"),
    bad(lambda: nn.Flatten(True), TypeError, "Flatten: start_dim must be an integer, got True"),
]
for norm in (nn.BatchNorm1d, nn.BatchNorm2d):
    name = norm.__name__
    BAD_ARGUMENTS += [
        bad(lambda norm=norm: norm(0), ValueError, f"{name}: num_features must be >= 1, got 0"),
        bad(lambda norm=norm: norm(3.0), TypeError,
            f"{name}: num_features must be an integer, got 3.0"),
        bad(lambda norm=norm: norm(True), TypeError,
            f"{name}: num_features must be an integer, got True"),
        bad(lambda norm=norm: norm(3, eps=0), ValueError, f"{name}: eps must be > 0, got 0"),
        bad(lambda norm=norm: norm(3, eps=-1e-5), ValueError,
            f"{name}: eps must be > 0, got -1e-05"),
        bad(lambda norm=norm: norm(3, eps=NAN), ValueError, f"{name}: eps must be > 0, got nan"),
        bad(lambda norm=norm: norm(3, eps=True), TypeError,
            f"{name}: eps must be a real number, got True"),
        bad(lambda norm=norm: norm(3, eps="a"), TypeError,
            f"{name}: eps must be a real number, got 'a'"),
        bad(lambda norm=norm: norm(3, momentum=2), ValueError,
            f"{name}: momentum must be in [0, 1], got 2"),
        bad(lambda norm=norm: norm(3, momentum=-0.1), ValueError,
            f"{name}: momentum must be in [0, 1], got -0.1"),
        bad(lambda norm=norm: norm(3, momentum=NAN), ValueError,
            f"{name}: momentum must be in [0, 1], got nan"),
        bad(lambda norm=norm: norm(3, momentum="0.1"), TypeError,
            f"{name}: momentum must be a real number, got '0.1'"),
        bad(lambda norm=norm: norm(3, affine=1), TypeError,
            f"{name}: affine must be True or False, got 1"),
        bad(lambda norm=norm: norm(3, track_running_stats=None), TypeError,
            f"{name}: track_running_stats must be True or False, got None"),
        bad(lambda norm=norm: norm(3, momentum=False), TypeError,
            f"{name}: momentum must be a real number, got False"),
        bad(lambda norm=norm: norm(3, dtype="int64"), TypeError,
            f"{name}: dtype must be a floating-point dtype, got int64"),
    ]
for pool in (nn.MaxPool2d, nn.AvgPool2d):
    name = pool.__name__
    BAD_ARGUMENTS += [
        bad(lambda pool=pool: pool(0), ValueError,
            f"{name}: kernel_size must be positive, got (0, 0)"),
        bad(lambda pool=pool: pool((2, -1)), ValueError,
            f"{name}: kernel_size must be positive, got (2, -1)"),
        bad(lambda pool=pool: pool(2.5), TypeError,
            f"{name}: kernel_size must be an int or a pair of ints (h, w), got 2.5"),
        bad(lambda pool=pool: pool(2, stride=0), ValueError,
            f"{name}: stride must be positive, got (0, 0)"),
        bad(lambda pool=pool: pool(2, stride=(1, True)), TypeError,
            f"{name}: stride must be an int or a pair of ints (h, w), got (1, True)"),
        bad(lambda pool=pool: pool(3, padding=2), ValueError,
            f"{name}: padding must be between 0 and half the kernel size "
            f"(kernel_size // 2 = (1, 1)), got (2, 2)"),
        bad(lambda pool=pool: pool((2, 5), padding=(1, 3)), ValueError,
            f"{name}: padding must be between 0 and half the kernel size "
            f"(kernel_size // 2 = (1, 2)), got (1, 3)"),
        bad(lambda pool=pool: pool(3, padding=-1), ValueError,
            f"{name}: padding must be non-negative, got (-1, -1)"),
        bad(lambda pool=pool: pool(3, padding=0.5), TypeError,
            f"{name}: padding must be an int or a pair of ints (h, w), got 0.5"),
        bad(lambda pool=pool: pool(2, ceil_mode=1), TypeError,
            f"{name}: ceil_mode must be True or False, got 1"),
        bad(lambda pool=pool: pool(2, ceil_mode="yes"), TypeError,
            f"{name}: ceil_mode must be True or False, got 'yes'"),
    ]


@pytest.mark.parametrize("make, error, message", BAD_ARGUMENTS)
def test_every_bad_constructor_argument_is_refused(make, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()


def test_functional_ops_refuse_what_the_pooling_layers_refuse(rng):
    """The layers apply the rule of F.max_pool2d at construction, in the same words."""
    x = image(rng, (1, 1, 6, 6))
    for args in [(0,), (3, None, 2), (2, 1, 0, 0)]:
        with pytest.raises((TypeError, ValueError)) as layer_error:
            nn.MaxPool2d(*args)
        with pytest.raises(type(layer_error.value)) as op_error:
            max_pool2d(x, *args)
        assert str(op_error.value).replace("max_pool2d", "MaxPool2d") == str(layer_error.value)


def test_good_constructor_arguments_are_kept():
    linear_layer = nn.Linear(numpy.int64(3), 1, bias=False, dtype=numpy.float64)
    assert (linear_layer.in_features, linear_layer.bias) == (3, None)
    assert type(linear_layer.in_features) is int and linear_layer.weight.dtype == numpy.float64
    conv = nn.Conv2d(1, 2, (3, 1), stride=[2, 1], padding=(1, 0))
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 1), (2, 1), (1, 0))
    for norm in (nn.BatchNorm1d(2, eps=1, momentum=0), nn.BatchNorm2d(2, momentum=1)):
        assert type(norm.eps) is float and type(norm.momentum) is float
    assert nn.BatchNorm1d(2, eps=1, momentum=0).extra_repr() == (
        "2, eps=1.0, momentum=0.0, affine=True, bias=True, track_running_stats=True")
    assert nn.Maxout(1, axis=-1).axis == -1
    pool = nn.MaxPool2d((3, 5), 2, padding=(1, 2), ceil_mode=True)
    assert (pool.kernel_size, pool.stride, pool.padding) == ((3, 5), 2, (1, 2))
    assert nn.AvgPool2d(2).stride is None            # the kernel, as in F.avg_pool2d
    assert nn.Dropout(0).p == 0.0 and nn.Dropout(0.999).p == 0.999
    assert nn.Flatten(-1).start_dim == -1


# ------------------------------------------------------------------ gradients

def test_gradients_reach_every_parameter(device, rng):
    model = small_model().to(device)
    y = model(image(rng, (3, 2, 4, 4), device))
    (y * minidl.tensor(rng.standard_normal(y.shape).astype("float32"), device=device)) \
        .sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert backend.device_of(p.grad) == device and p.grad.shape == p.shape, name
        assert numpy.abs(host(p.grad)).sum() > 0, name


def test_gradcheck_of_a_whole_model_wrt_input_and_parameters(rng):
    minidl.manual_seed(0)
    model = small_model().to(dtype="float64")
    slots = [(m, name) for m in model.modules() for name in m._parameters]
    params = [m._parameters[name] for m, name in slots]
    x = image(rng, (3, 2, 4, 4), dtype="float64", requires_grad=True)

    def run(x, *weights):
        # gradcheck passes its own leaf copies; they stand in for the parameters.
        for (m, name), w in zip(slots, weights):
            m._parameters[name] = w
        return model(x)

    assert len(params) == 6
    assert minidl.gradcheck(run, [x, *params])


def test_flatten_joins_start_dim_to_end_dim():
    x = minidl.tensor(numpy.zeros((2, 3, 4, 5), numpy.float32))
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(0, -2)(x).shape == (24, 5)
    with pytest.raises(TypeError, match="Flatten: end_dim must be an integer, got 1.5"):
        nn.Flatten(1, 1.5)
