"""Elementary ops against PyTorch as an independent reference (float64, 1e-7 relative).

Skipped where PyTorch is not installed; minidl itself never depends on it.
"""
import numpy
import pytest
from helpers import host, leaf

import minidl
import minidl.functional as F

torch = pytest.importorskip("torch")
LABELS = [4, 0, 2]

CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(2, 3), (3,)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(2, 1, 3), (4, 1)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(2, 3), (2, 1)]),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [(2, 3), (3,)]),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, [(2, 3), (2, 3)]),
    "neg": (lambda a: -a, lambda a: -a, [(4,)]),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "matmul_vec": (lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (3, 4, 2)]),
    "exp": (F.exp, torch.exp, [(3, 2)]),
    "log": (F.log, torch.log, [(3, 2)]),
    "sqrt": (F.sqrt, torch.sqrt, [(3, 2)]),
    "tanh": (F.tanh, torch.tanh, [(3, 2)]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [(3, 2)]),
    "relu": (F.relu, torch.relu, [(3, 2)]),
    "sum": (lambda a: a.sum(axis=(0, 2), keepdims=True),
            lambda a: a.sum(dim=(0, 2), keepdim=True), [(2, 3, 4)]),
    "mean": (lambda a: a.mean(axis=1), lambda a: a.mean(dim=1), [(2, 3, 4)]),
    "max": (lambda a: a.max(axis=1), lambda a: a.max(dim=1).values, [(2, 5)]),
    "reshape": (lambda a: a.reshape(3, -1), lambda a: a.reshape(3, -1), [(2, 3, 2)]),
    "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [(2, 3, 4, 5)]),
    "flatten": (lambda a: a.flatten(1, 2), lambda a: a.flatten(1, 2), [(2, 3, 4, 5)]),
    "squeeze": (lambda a: a.squeeze((0, 2)), lambda a: a.squeeze((0, 2)), [(1, 3, 1, 2)]),
    "unsqueeze": (lambda a: a.unsqueeze(-2), lambda a: a.unsqueeze(-2), [(2, 3)]),
    "view": (lambda a: a.view(-1, 2), lambda a: a.view(-1, 2), [(2, 3, 2)]),
    "clone": (lambda a: a.clone() * a, lambda a: a.clone() * a, [(2, 3)]),
    "mT": (lambda a: a.mT, lambda a: a.mT, [(2, 3, 4)]),
    "sum_dim": (lambda a: a.sum(dim=(0, 2), keepdim=True),
                lambda a: a.sum(dim=(0, 2), keepdim=True), [(2, 3, 4)]),
    "mean_dim": (lambda a: a.mean(-1), lambda a: a.mean(-1), [(2, 3, 4)]),
    "max_dim": (lambda a: a.max(dim=1, keepdim=True).values,
                lambda a: a.max(dim=1, keepdim=True).values, [(2, 5, 3)]),
    "max_all": (lambda a: a.max(), lambda a: a.max(), [(2, 5)]),
    "softmax_dim": (lambda a: a.softmax(dim=0), lambda a: a.softmax(dim=0), [(3, 5)]),
    "log_softmax_dim": (lambda a: F.log_softmax(a, dim=1),
                        lambda a: torch.log_softmax(a, dim=1), [(3, 5)]),
    "cat": (lambda a, b: minidl.cat([a, b], dim=-1), lambda a, b: torch.cat([a, b], dim=-1),
            [(2, 3), (2, 1)]),
    "stack_dim": (lambda a, b: minidl.stack([a, b], dim=2),
                  lambda a, b: torch.stack([a, b], dim=2), [(2, 3), (2, 3)]),
    "nll_loss": (lambda a: F.nll_loss(F.log_softmax(a, dim=1),
                                      minidl.tensor(LABELS, device=a.device)),
                 lambda a: torch.nn.functional.nll_loss(torch.log_softmax(a, dim=1),
                                                        torch.tensor(LABELS)),
                 [(3, 5)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), torch.nn.functional.mse_loss, [(2, 3), (2, 3)]),
    "getitem": (lambda a: a[1:, [0, 2, 2]], lambda a: a[1:, [0, 2, 2]], [(3, 4)]),
    "concatenate": (lambda a, b: F.concatenate([a, b], axis=1),
                    lambda a, b: torch.cat([a, b], dim=1), [(2, 3), (2, 1)]),
    "stack": (lambda a, b: F.stack([a, b], axis=1),
              lambda a, b: torch.stack([a, b], dim=1), [(2, 3), (2, 3)]),
    "softmax": (lambda a: F.softmax(a, axis=1), lambda a: torch.softmax(a, dim=1), [(3, 5)]),
    "log_softmax": (lambda a: F.log_softmax(a, axis=0),
                    lambda a: torch.log_softmax(a, dim=0), [(3, 5)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradients_match_torch(device, name):
    ours, theirs, shapes = CASES[name]
    rng = numpy.random.default_rng(sum(map(ord, name)))
    arrays = [rng.uniform(0.3, 2.0, s) * rng.choice([-1, 1], s) if name not in
              ("log", "sqrt", "pow") else rng.uniform(0.3, 2.0, s) for s in shapes]
    inputs = [leaf(a, device) for a in arrays]
    reference = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*inputs), theirs(*reference)
    numpy.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-7, atol=1e-12)
    upstream = rng.standard_normal(expected.shape)
    out.backward(leaf(upstream, device, requires_grad=False))
    expected.backward(torch.tensor(upstream))
    for mine, ref in zip(inputs, reference):
        numpy.testing.assert_allclose(host(mine.grad), ref.grad.numpy(), rtol=1e-7, atol=1e-12)
