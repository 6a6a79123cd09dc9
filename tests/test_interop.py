"""Weights across frameworks and files: minidl.interop.to_torch/from_torch, minidl.save/load.

A zoo model trained a few steps in minidl gives the same logits as its torch
export, and a torch model trained a few steps gives the same logits after
import (float64, atol 1e-10), for NIN, NIN + BN and the maxout models.
"""
import sys

import numpy
import pytest

import minidl
import minidl.nn as nn
from minidl import interop

MODELS = ["nin-small", "nin-bn-small", "maxout-nin-small", "mim-small", "min-small"]


def batch(seed):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal((6, 1, 28, 28)), rng.integers(0, 10, 6)


def test_save_and_load_a_state_dict(tmp_path):
    minidl.manual_seed(0)
    model = minidl.models.create("nin-bn-small", "digits").eval()
    x = minidl.tensor(batch(0)[0].astype("float32"))
    expected = model(x).numpy()
    path = tmp_path / "weights.npz"
    minidl.save({"model": model.state_dict(), "extra": minidl.ones(2)}, path)
    state = minidl.load(path)
    assert state["extra"].tolist() == [1.0, 1.0]       # a Tensor comes back as its array
    minidl.manual_seed(1)
    other = minidl.models.create("nin-bn-small", "digits").eval()
    other.load_state_dict(state["model"])
    numpy.testing.assert_array_equal(other(x).numpy(), expected)


def test_interop_without_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r'pip install "minidl\[interop\]"'):
        interop.to_torch(nn.ReLU())


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", MODELS)
def test_a_model_trained_in_minidl_gives_the_same_logits_in_torch(name):
    minidl.manual_seed(0)
    model = minidl.models.create(name, "digits").to(dtype="float64")
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        x, y = batch(step)
        loss = nn.CrossEntropyLoss()(model(minidl.tensor(x)), minidl.tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    exported = interop.to_torch(model)
    assert not exported.training and next(exported.parameters()).dtype == torch.float64
    x, _ = batch(10)
    with torch.no_grad():
        theirs = exported(torch.tensor(x)).numpy()
    numpy.testing.assert_allclose(model(minidl.tensor(x)).numpy(), theirs, rtol=0, atol=1e-10)
    assert list(exported.state_dict()) == list(model.state_dict())


@pytest.mark.parametrize("name", MODELS)
def test_a_model_trained_in_torch_gives_the_same_logits_in_minidl(name):
    minidl.manual_seed(0)
    torch.manual_seed(0)
    module = interop.to_torch(minidl.models.create(name, "digits")).double()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        x, y = batch(step)
        loss = torch.nn.functional.cross_entropy(module(torch.tensor(x)), torch.tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    imported = interop.from_torch(module)
    assert not imported.training and next(imported.parameters()).dtype == numpy.float64
    x, _ = batch(10)
    with torch.no_grad():
        theirs = module(torch.tensor(x)).numpy()
    numpy.testing.assert_allclose(imported(minidl.tensor(x)).numpy(), theirs, rtol=0, atol=1e-10)
    into = minidl.models.create(name, "digits").to(dtype="float64").eval()
    interop.from_torch(module.state_dict(), into)
    numpy.testing.assert_allclose(into(minidl.tensor(x)).numpy(), theirs, rtol=0, atol=1e-10)


def test_round_trip_of_the_standard_layers():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, eps=1e-3, momentum=0.2),
                          nn.ReLU(), nn.Dropout(0.1), nn.Identity(), nn.Maxout(2),
                          nn.Linear(4, 3, bias=False)).to(dtype="float64")
    x = minidl.tensor(numpy.random.default_rng(0).standard_normal((5, 6)))
    model(x)                                      # training mode: running statistics move
    model.eval()
    back = interop.from_torch(interop.to_torch(model))
    assert repr(back).replace("Sequential", "") == repr(model).replace("Sequential", "")
    numpy.testing.assert_array_equal(back(x).numpy(), model(x).numpy())


def conv_options_model():
    """Convolutions with every option minidl shares with torch, one setting per layer."""
    return nn.Sequential(nn.Conv2d(4, 6, 3, stride=(2, 1), padding=(1, 2), dilation=(2, 1),
                                   groups=2),
                         nn.Conv2d(6, 6, (2, 3), padding="same", dilation=2, groups=3,
                                   bias=False),
                         nn.Conv2d(6, 4, 1, padding="valid")).to(dtype="float64")


def test_conv_options_carry_over_to_torch_and_back():
    minidl.manual_seed(0)
    model = conv_options_model()
    exported = interop.to_torch(model)
    for ours, theirs in zip(model, exported):
        for option in ("stride", "padding", "dilation", "groups"):
            assert getattr(theirs, option) == getattr(ours, option), option
    x = numpy.random.default_rng(0).standard_normal((2, 4, 7, 6))
    with torch.no_grad():
        theirs = exported(torch.tensor(x)).numpy()
    numpy.testing.assert_allclose(model(minidl.tensor(x)).numpy(), theirs, rtol=1e-10, atol=1e-12)
    back = interop.from_torch(exported)
    assert repr(back) == repr(model)
    x = minidl.tensor(x)
    numpy.testing.assert_array_equal(back(x).numpy(), model(x).numpy())


def test_conv_options_of_a_torch_module_are_imported():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding="same", dilation=(1, 2),
                                                 groups=4)).double()
    imported = interop.from_torch(module)
    layer = imported[0]
    assert (layer.padding, layer.dilation, layer.groups) == ("same", (1, 2), 4)
    assert layer.weight.shape == (8, 1, 3, 3)
    x = numpy.random.default_rng(1).standard_normal((3, 4, 5, 5))
    with torch.no_grad():
        theirs = module(torch.tensor(x)).numpy()
    numpy.testing.assert_allclose(imported(minidl.tensor(x)).numpy(), theirs, rtol=1e-10,
                                  atol=1e-12)


def test_unsupported_layers_are_named():
    with pytest.raises(TypeError, match="from_torch: no minidl layer for torch's Tanh"):
        interop.from_torch(torch.nn.Sequential(torch.nn.Tanh()))
    with pytest.raises(ValueError, match="from_torch: Conv2d with padding_mode='reflect' has no "
                                         "minidl equivalent"):
        interop.from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="from_torch: a state dict needs the model"):
        interop.from_torch({})

    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="to_torch: no torch layer for Custom"):
        interop.to_torch(Custom())
