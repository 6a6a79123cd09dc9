"""Loss modules: ``criterion = nn.CrossEntropyLoss(); loss = criterion(logits, labels)``.

Each calls its function in :mod:`minidl.functional` and averages over the
batch (PyTorch's default ``reduction="mean"``, the only one offered).
"""
from ..functional import cross_entropy, mse_loss, nll_loss
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class CrossEntropyLoss(Module):
    """Mean cross entropy of logits (N, K) against integer labels (N,): ``F.cross_entropy``."""

    def forward(self, input, target):
        return cross_entropy(input, target)


class NLLLoss(Module):
    """Mean negative log-likelihood of log-probabilities (N, K): ``F.nll_loss``."""

    def forward(self, input, target):
        return nll_loss(input, target)


class MSELoss(Module):
    """Mean squared error over all elements: ``F.mse_loss``."""

    def forward(self, input, target):
        return mse_loss(input, target)
