r"""Optimizers and learning-rate schedules, with PyTorch's names and update rules.

For a parameter :math:`p` with gradient :math:`\nabla` (its ``.grad``) and learning
rate :math:`\eta`:

* :class:`SGD`: :math:`g = \nabla + \lambda p`; momentum buffer :math:`b = \mu b + (1 - \tau) g`
  (:math:`b = g` at first); :math:`p \leftarrow p - \eta\, b`, or
  :math:`p - \eta (g + \mu b)` with Nesterov momentum.
* :class:`Adam`: :math:`g = \nabla + \lambda p`; :math:`m = \beta_1 m + (1 - \beta_1) g`,
  :math:`v = \beta_2 v + (1 - \beta_2) g^2`;
  :math:`p \leftarrow p - \eta \hat m / (\sqrt{\hat v} + \epsilon)` with bias-corrected
  :math:`\hat m = m / (1 - \beta_1^t)`, :math:`\hat v = v / (1 - \beta_2^t)`.
* :class:`AdamW`: Adam on :math:`\nabla` after the decoupled decay
  :math:`p \leftarrow (1 - \eta\lambda) p`.

Typical use, without weight decay on biases and batch-norm parameters::

    opt = SGD(weight_decay_groups(model.named_parameters(), 5e-4), lr=0.1, momentum=0.9)
    schedule = CosineAnnealingLR(opt, T_max=epochs)
    for epoch in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        schedule.step()

Checkpoints: save ``opt.state_dict()`` and ``schedule.state_dict()`` (picklable,
host arrays) with the model; restore them with ``load_state_dict`` into
objects built the same way, and the run continues exactly.
"""
from .adam import Adam, AdamW
from .lr_scheduler import (CosineAnnealingLR, LinearWarmup, LRScheduler, MultiStepLR,
                           SequentialLR, StepLR)
from .optimizer import Optimizer, weight_decay_groups
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "weight_decay_groups", "LRScheduler", "StepLR",
           "MultiStepLR", "CosineAnnealingLR", "LinearWarmup", "SequentialLR"]
