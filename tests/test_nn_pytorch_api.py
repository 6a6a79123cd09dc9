"""PyTorch's nn idioms: ModuleList/ModuleDict/Identity, loss modules, apply, requires_grad_,
zero_grad(set_to_none=), gradient clipping (against torch.nn.utils) and the ndarray error."""
import numpy
import pytest
from helpers import host, leaf

import minidl
import minidl.nn as nn


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 4), nn.ReLU()])
        self.layers.append(nn.Linear(4, 2))
        self.heads = nn.ModuleDict({"a": nn.Identity(), "b": nn.Linear(2, 2)})

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.heads["b"](self.heads["a"](x))


def test_containers_register_their_modules():
    model = Tower()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                     "heads.b.weight", "heads.b.bias"]
    assert len(model.layers) == 3 and isinstance(model.layers[-1], nn.Linear)
    assert len(model.layers[1:]) == 2 and list(model.heads) == ["a", "b"] and "b" in model.heads
    model.layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in model.layers] == ["Identity", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in model.named_children()] == ["layers", "heads"]
    assert [n for n, _ in model.named_modules()][:3] == ["", "layers", "layers.0"]
    assert model(minidl.randn(5, 3)).shape == (5, 2)
    with pytest.raises(TypeError, match="ModuleList: item 0 is a int, not a Module"):
        nn.ModuleList([1])


def test_apply_requires_grad_and_zero_grad():
    model = Tower()
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen[-1] == "Tower" and seen.count("Linear") == 3
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    model(minidl.randn(2, 3)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(model.parameters(), grads))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_a_module_given_an_ndarray_names_minidl_tensor():
    with pytest.raises(TypeError, match=r"Linear: input must be a minidl Tensor, got ndarray "
                                        r"\(from numpy\); wrap the array with minidl.tensor"):
        nn.Linear(3, 1)(numpy.zeros((2, 3)))


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "MSELoss"])
def test_loss_modules_match_torch(device, name):
    rng = numpy.random.default_rng(0)
    x_np = rng.standard_normal((4, 5))
    if name == "MSELoss":
        target_np = rng.standard_normal((4, 5))
        target, torch_target = leaf(target_np, device, False), torch.tensor(target_np)
    else:
        target_np = numpy.array([1, 0, 4, 4])
        target, torch_target = minidl.tensor(target_np, device=device), torch.tensor(target_np)
    x, x_t = leaf(x_np, device), torch.tensor(x_np, requires_grad=True)
    if name == "NLLLoss":
        ours = getattr(nn, name)()(x.log_softmax(dim=1), target)
        theirs = getattr(torch.nn, name)()(x_t.log_softmax(dim=1), torch_target)
    else:
        ours, theirs = getattr(nn, name)()(x, target), getattr(torch.nn, name)()(x_t, torch_target)
    numpy.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    ours.backward()
    theirs.backward()
    numpy.testing.assert_allclose(host(x.grad), x_t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0),
                                                 (0.2, float("inf"))])
def test_clip_grad_norm_matches_torch(device, max_norm, norm_type):
    rng = numpy.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in [(3, 4), (4,), (2, 2)]]
    ours = [leaf(numpy.zeros(g.shape), device) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = minidl.tensor(g, device=device).data
        q.grad = torch.tensor(g)
    ours.append(leaf(numpy.zeros(2), device))                  # no grad: skipped
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    numpy.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, q in zip(ours, theirs):
        numpy.testing.assert_allclose(host(p.grad), q.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_nonfinite_and_clip_grad_value(device):
    p = leaf(numpy.zeros(3), device)
    p.grad = minidl.tensor(numpy.array([1.0, numpy.nan, -3.0]), device=device).data
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    p.grad = minidl.tensor(numpy.array([1.0, 0.25, -3.0]), device=device).data
    nn.utils.clip_grad_value_([p], 0.5)
    assert host(p.grad).tolist() == [0.5, 0.25, -0.5]
    with pytest.raises(ValueError, match="clip_grad_norm_: norm_type must be > 0"):
        nn.utils.clip_grad_norm_(p, 1.0, norm_type=0)
