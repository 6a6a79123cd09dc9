"""Loss modules: ``criterion = nn.CrossEntropyLoss(); loss = criterion(logits, labels)``.

Each calls its function in :mod:`minidl.functional` with the options given at
construction, PyTorch's: ``weight`` (a per-class Tensor, kept as a buffer so
that ``to()`` moves it and ``state_dict`` holds it), ``ignore_index``,
``reduction`` and ``label_smoothing``.  The options are checked when the
module is made, with the functional ops' validators and the module's name.
"""
from ..functional import cross_entropy, mse_loss, nll_loss
from ..functional._checks import check_choice, check_number, check_tensor
from ..functional.loss import REDUCTIONS
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class _Loss(Module):
    """A loss module: keeps ``reduction``, checked."""

    def __init__(self, reduction):
        super().__init__()
        self.reduction = check_choice(type(self).__name__, "reduction", reduction, REDUCTIONS)


class _WeightedLoss(_Loss):
    """A loss over classes: also keeps ``weight`` (a buffer) and ``ignore_index``, checked."""

    def __init__(self, weight, ignore_index, reduction):
        super().__init__(reduction)
        name = type(self).__name__
        if weight is not None:
            check_tensor(name, "weight", weight, 1)
        self.register_buffer("weight", weight)
        self.ignore_index = check_number(name, "ignore_index", ignore_index, integer=True)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits against class labels or probabilities: ``F.cross_entropy``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = check_number(type(self).__name__, "label_smoothing",
                                            label_smoothing, low=0, high=1)

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                             self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities against class labels: ``F.nll_loss``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Squared error over all elements: ``F.mse_loss``."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)
