"""nn.BatchNorm1d / BatchNorm2d options against PyTorch, their state, and precise BN.

The layers' options (momentum None, affine, track_running_stats, bias, (N, C, L)
input) are compared with PyTorch in float64 over several training steps:
outputs, every gradient, the running statistics and the batch count.
``minidl.nn.utils.update_bn_stats`` is checked against statistics computed
here from the features themselves.
"""
import numpy
import pytest
from helpers import host, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.functional as F
from minidl import nn
from minidl.nn.utils import update_bn_stats


@st.composite
def layer_cases(draw):
    """(layer name, input shape that can train, constructor options)."""
    channels = draw(st.integers(1, 4))
    if draw(st.booleans()):
        n, h = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        name, shape = "BatchNorm2d", (n, channels, h, draw(st.integers(2, 3)))
    elif draw(st.booleans()):
        name, shape = "BatchNorm1d", (draw(st.integers(2, 6)), channels)
    else:
        n = draw(st.integers(1, 3))
        name, shape = "BatchNorm1d", (n, channels, draw(st.integers(2 if n == 1 else 1, 5)))
    options = {"momentum": draw(st.one_of(st.none(), st.floats(0, 1))),
               "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans()),
               "bias": draw(st.booleans())}
    return name, shape, options


def assert_close(ours, theirs):
    numpy.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-7, atol=1e-10)


@settings(max_examples=15)
@given(case=layer_cases(), seed=st.integers(0, 2**16))
def test_layers_match_torch_over_several_steps(device, case, seed):
    torch = pytest.importorskip("torch")
    name, shape, options = case
    ours = getattr(nn, name)(shape[1], dtype="float64", **options).to(device)
    theirs = getattr(torch.nn, name)(shape[1], dtype=torch.float64, **options)
    assert repr(ours) == repr(theirs)
    rng = numpy.random.default_rng(seed)
    pairs = [(p, t) for p, t in ((ours.weight, theirs.weight), (ours.bias, theirs.bias))
             if t is not None]
    for p, t in pairs:
        value = rng.uniform(0.5, 2, shape[1])
        p.data[...] = minidl.tensor(value).to(device).data
        t.data[...] = torch.tensor(value)
    for step in range(4):
        training = step < 3
        ours.train(training)
        theirs.train(training)
        x_np = rng.normal(size=shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
        dy = rng.normal(size=shape)
        x, t_x = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
        y, t_y = ours(x), theirs(t_x)
        y.backward(minidl.tensor(dy, device=device))
        t_y.backward(torch.tensor(dy))
        assert_close(y, t_y)
        assert_close(x.grad, t_x.grad)
        for p, t in pairs:
            assert_close(p.grad, t.grad)
        state, t_state = ours.state_dict(), theirs.state_dict()
        assert list(state) == list(t_state)
        for key, value in state.items():
            numpy.testing.assert_allclose(value, t_state[key].numpy(), rtol=1e-7, atol=1e-12)
            assert value.dtype == t_state[key].numpy().dtype


def test_momentum_none_is_the_plain_average_of_the_batch_statistics(device):
    bn = nn.BatchNorm1d(3, momentum=None, dtype="float64").to(device)
    rng = numpy.random.default_rng(0)
    batches = [rng.normal(size=(4, 3, 5)) * (1 + i) + i for i in range(4)]
    for x in batches:
        bn(leaf(x, device, False))
    numpy.testing.assert_allclose(host(bn.running_mean),
                                  numpy.mean([x.mean((0, 2)) for x in batches], 0), rtol=1e-12)
    numpy.testing.assert_allclose(host(bn.running_var),
                                  numpy.mean([x.var((0, 2), ddof=1) for x in batches], 0),
                                  rtol=1e-12)
    assert int(host(bn.num_batches_tracked)) == 4
    bn.eval()(leaf(batches[0], device, False))
    assert int(host(bn.num_batches_tracked)) == 4      # evaluation counts nothing


def test_options_decide_parameters_and_buffers():
    plain = nn.BatchNorm2d(3)
    assert [n for n, _ in plain.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in plain.named_buffers()] == ["running_mean", "running_var",
                                                      "num_batches_tracked"]
    bare = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert (bare.weight, bare.bias, bare.running_mean, bare.num_batches_tracked) == (None,) * 4
    assert bare.state_dict() == {} and list(bare.parameters()) == []
    assert nn.BatchNorm1d(3, bias=False).bias is None


def test_without_running_statistics_evaluation_uses_the_batch(device):
    x_np = numpy.random.default_rng(1).normal(size=(5, 2, 3)) * 2 + 3
    bn = nn.BatchNorm1d(2, track_running_stats=False, dtype="float64").to(device).eval()
    expected = F.batch_norm(leaf(x_np, device, False), None, None)
    numpy.testing.assert_allclose(host(bn(leaf(x_np, device, False))), host(expected),
                                  rtol=1e-12)


def test_reset_running_stats_and_reset_parameters(device):
    bn = nn.BatchNorm2d(2).to(device)
    bn.weight.data[...] = 3
    bn.bias.data[...] = -1
    bn(leaf(numpy.random.default_rng(2).normal(size=(2, 2, 3, 3)).astype("float32") + 5, device))
    assert not numpy.allclose(host(bn.running_mean), 0)
    bn.reset_running_stats()
    numpy.testing.assert_array_equal(host(bn.running_mean), 0)
    numpy.testing.assert_array_equal(host(bn.running_var), 1)
    assert int(host(bn.num_batches_tracked)) == 0
    numpy.testing.assert_array_equal(host(bn.weight), 3)     # the parameters stay
    bn.reset_parameters()
    numpy.testing.assert_array_equal(host(bn.weight), 1)
    numpy.testing.assert_array_equal(host(bn.bias), 0)
    assert host(bn.running_mean).dtype == numpy.float32


def test_a_state_dict_saved_before_num_batches_tracked_still_loads():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    old["1.running_mean"] = numpy.full(3, 2.0, numpy.float32)
    fresh = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    fresh[1].num_batches_tracked.data[...] = 5
    assert fresh.load_state_dict(old) == ([], [])
    numpy.testing.assert_array_equal(host(fresh[1].running_mean), 2.0)
    assert int(host(fresh[1].num_batches_tracked)) == 5      # kept, as PyTorch keeps it
    del old["1.running_var"]
    with pytest.raises(ValueError, match=r"missing key\(s\): '1.running_var'$"):
        fresh.load_state_dict(old)


@pytest.mark.parametrize("options", [dict(affine=False), dict(track_running_stats=False),
                                     dict(momentum=None), dict(bias=False)])
def test_options_cross_to_torch_and_back(options):
    torch = pytest.importorskip("torch")
    from minidl.interop import from_torch, to_torch
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, **options))
    exported = to_torch(model)
    back = from_torch(exported)[1]
    exported = exported[1]
    assert isinstance(exported, torch.nn.BatchNorm1d)
    assert repr(exported) == repr(model[1]) == repr(back)     # every option in the repr


# ------------------------------------------------------------------ update_bn_stats

def bn_model(device):
    minidl.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=None), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * 4 * 4, 4), nn.BatchNorm1d(4),
                         nn.Linear(4, 2)).to(device, "float64")


def image_batches(sizes, seed=0):
    rng = numpy.random.default_rng(seed)
    return [(rng.normal(size=(n, 1, 6, 6)) * 2 + 1, rng.integers(0, 2, n)) for n in sizes]


def features(model, batches, device):
    """The inputs of the two batch norms, batch by batch, computed here in training mode."""
    first, second = [], []
    with minidl.no_grad():
        for images, _ in batches:
            h = model[0](leaf(images, device, False))
            first.append(host(h))
            h = F.batch_norm(h, model[1].weight, model[1].bias)     # the batch's statistics
            second.append(host(model[4](model[3](model[2](h)))))
    return numpy.concatenate(first), numpy.concatenate(second)


@pytest.mark.parametrize("batches", [2, 3, 100])
def test_update_bn_stats_sets_the_exact_statistics_of_the_features(device, batches):
    model = bn_model(device)
    model.eval()
    model[5].train()            # a mixed mode, to see that each module's flag comes back
    data = image_batches([6, 6, 4])
    weights = {n: host(p).copy() for n, p in model.named_parameters()}
    assert update_bn_stats(model, data, batches=batches) == min(batches, 3)
    first, second = features(model, data[:batches], device)
    for bn, x, axes in ((model[1], first, (0, 2, 3)), (model[5], second, (0,))):
        numpy.testing.assert_allclose(host(bn.running_mean), x.mean(axes), rtol=1e-10)
        numpy.testing.assert_allclose(host(bn.running_var), x.var(axes, ddof=1), rtol=1e-10)
        assert int(host(bn.num_batches_tracked)) == min(batches, 3)
    for name, p in model.named_parameters():
        numpy.testing.assert_array_equal(host(p), weights[name])
        assert p.grad is None
    assert [m.training for m in model.modules()] == [m is model[5] for m in model.modules()]
    assert (model[1].momentum, model[5].momentum) == (None, 0.1)
    assert not any(m._forward_hooks for m in model.modules())


def test_update_bn_stats_takes_tensors_and_bare_inputs(device):
    model, other = bn_model(device), bn_model(device)
    data = image_batches([5, 5])
    update_bn_stats(model, data)
    update_bn_stats(other, [leaf(images, device, False) for images, _ in data])
    for a, b in zip(model.buffers(), other.buffers()):
        numpy.testing.assert_array_equal(host(a), host(b))


def test_a_model_without_batch_norm_is_left_alone():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).eval()
    before = model.state_dict()

    def unreadable():
        raise AssertionError("the loader was read")
        yield

    assert update_bn_stats(model, unreadable()) == 0
    assert all(numpy.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not model.training


def test_update_bn_stats_checks_its_arguments():
    model = bn_model("cpu")
    with pytest.raises(ValueError, match=r"^update_bn_stats: batches must be >= 1, got 0$"):
        update_bn_stats(model, image_batches([4]), batches=0)
    with pytest.raises(ValueError, match="update_bn_stats: the loader yielded no batches"):
        update_bn_stats(model, [])
    assert model[1].momentum is None and model.training      # restored after the error too


def test_update_bn_stats_merges_batches_without_cancellation():
    """Features near 1e8 with unit spread: sum(x**2) - n * mean**2 would lose every digit."""
    bn = nn.BatchNorm1d(2, dtype="float64")
    rng = numpy.random.default_rng(3)
    data = [rng.normal(size=(8, 2)) + 1e8 for _ in range(5)]
    update_bn_stats(bn, data)
    pooled = numpy.concatenate(data)
    numpy.testing.assert_allclose(host(bn.running_var), pooled.var(0, ddof=1), rtol=1e-6)
    numpy.testing.assert_allclose(host(bn.running_mean), pooled.mean(0), rtol=1e-14)
