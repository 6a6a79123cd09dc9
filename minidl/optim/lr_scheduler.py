r"""Learning-rate schedules: PyTorch's names and meanings, computed in closed form.

A scheduler sets ``group["lr"]`` of every parameter group of an optimizer as a
function of a counter ``last_epoch`` and of the group's ``initial_lr`` (its
learning rate when the first scheduler was attached, saved in the group).
Building a scheduler sets the rates for epoch 0; each ``step()`` advances the
counter by one and sets the rates for the new value.  Call ``step()`` once per
epoch, after the epoch's optimizer steps, or once per iteration: an "epoch" is
simply one call.  For a base rate :math:`\eta_0` at step :math:`t`:

* ``StepLR``:             :math:`\eta_0 \gamma^{\lfloor t / s \rfloor}`
* ``MultiStepLR``:        :math:`\eta_0 \gamma^{k}`, :math:`k` = number of milestones :math:`\le t`
* ``CosineAnnealingLR``:  :math:`\eta_{min} + (\eta_0 - \eta_{min}) (1 + \cos(\pi t / T_{max})) / 2`
  (it reaches :math:`\eta_{min}` at :math:`t = T_{max}` and, as in PyTorch, rises again after)
* ``LinearWarmup``:       :math:`\eta_0 (f + (1 - f) \min(t, w) / w)`, from :math:`f \eta_0` to
  :math:`\eta_0` in :math:`w` steps, then constant (PyTorch's ``LinearLR`` with ``end_factor=1``)
* ``SequentialLR``:       one schedule after another, each from its own step 0 at its milestone.

Warm-up followed by cosine decay over ``epochs`` epochs in all::

    warmup = LinearWarmup(opt, warmup_steps=5, start_factor=0.1)
    cosine = CosineAnnealingLR(opt, T_max=epochs - 5)
    schedule = SequentialLR(opt, [warmup, cosine], milestones=[5])

Every rate is computed from :math:`\eta_0` and :math:`t` alone, never by
multiplying the previous rate, so ``state_dict()`` / ``load_state_dict()`` resume
a run exactly.  One scheduler drives an optimizer (schedules do not multiply
each other as PyTorch's chained ones do); combine them with ``SequentialLR``.

Hyper-parameters are checked at construction with the functional ops'
``check_number``, naming the scheduler (TypeError for a wrong type or a bool,
ValueError out of range, NaN included): ``step_size``, ``T_max`` and
``warmup_steps`` are ints >= 1, milestones ints (>= 0; >= 1 for
``SequentialLR``), ``gamma`` > 0, ``eta_min`` >= 0, ``start_factor`` in (0, 1].
"""
import bisect
import copy
import math

from ..functional._checks import check_number, is_real
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearWarmup",
           "SequentialLR"]


class LRScheduler:
    """Base class: a subclass sets its hyper-parameters, then calls this ``__init__``,
    and writes ``_lr(base_lr, epoch)``."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be a minidl.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, epoch):
        """The learning rate of every group at step ``epoch`` (changes nothing)."""
        return [self._lr(base_lr, epoch) for base_lr in self.base_lrs]

    def _lr(self, base_lr, epoch):
        raise NotImplementedError

    def step(self):
        """Advance one epoch (or iteration) and set the optimizer's learning rates."""
        self.last_epoch += 1
        self._set_lrs(self.lr_at(self.last_epoch))

    def get_last_lr(self):
        """The learning rates the last ``step()`` (or construction) set, one per group."""
        return list(self._last_lr)

    def _set_lrs(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def state_dict(self):
        """Everything but the optimizer, as plain picklable data."""
        return copy.deepcopy({key: value for key, value in vars(self).items()
                              if key != "optimizer"})

    def load_state_dict(self, state_dict):
        """Restore a state saved by ``state_dict()`` of the same kind of scheduler.

        The optimizer's learning rates are set to the restored ``get_last_lr()``.
        The whole state is checked first (keys, the kind of every value, one
        rate per parameter group): after a ValueError nothing has changed.
        """
        self._check_state_dict(state_dict)
        self.__dict__.update(copy.deepcopy(state_dict))
        self._set_lrs(self._last_lr)

    def _check_state_dict(self, state_dict):
        own = self.state_dict()
        if not isinstance(state_dict, dict) or set(state_dict) != set(own):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"this is not a {type(self).__name__} state dict: expected the keys "
                             f"{sorted(own)}, got {got}")
        for key, value in state_dict.items():
            if _kind(value) != _kind(own[key]):
                raise ValueError(f"{type(self).__name__} state dict: {key!r} is {value!r}, "
                                 f"expected a {_kind(own[key])} like {own[key]!r}")
        groups = len(self.optimizer.param_groups)
        for key, what in (("base_lrs", "base"), ("_last_lr", "last")):
            rates = state_dict[key]
            if len(rates) != groups or _kind(*rates) != "number":
                raise ValueError(f"the state dict has {len(rates)} {what} learning rate(s) "
                                 f"but the optimizer has {groups} parameter group(s): "
                                 f"{rates!r:.100}")


def _kind(*values):
    """What a state value is, for comparing a saved state with a scheduler's own."""
    kinds = {"number" if is_real(v) else type(v).__name__ for v in values}
    return kinds.pop() if len(kinds) == 1 else "mixture"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = check_number("StepLR", "step_size", step_size, integer=True, low=1)
        self.gamma = check_number("StepLR", "gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each of the ``milestones`` (step numbers)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        self.milestones = sorted(check_number("MultiStepLR", "each milestone", m, integer=True,
                                              low=0) for m in milestones)
        self.gamma = check_number("MultiStepLR", "gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` steps (no restarts)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = check_number("CosineAnnealingLR", "T_max", T_max, integer=True, low=1)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min, low=0)
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine


class LinearWarmup(LRScheduler):
    """Raise the rate linearly from ``start_factor`` times the base rate to it in ``warmup_steps``.

    After ``warmup_steps`` steps the rate stays at the base rate; follow it
    with another schedule through :class:`SequentialLR`.
    """

    def __init__(self, optimizer, warmup_steps, start_factor=1 / 3):
        self.warmup_steps = check_number("LinearWarmup", "warmup_steps", warmup_steps,
                                         integer=True, low=1)
        self.start_factor = check_number("LinearWarmup", "start_factor", start_factor, low=0,
                                         high=1, low_open=True)
        super().__init__(optimizer)

    def _lr(self, base_lr, epoch):
        progress = min(epoch, self.warmup_steps) / self.warmup_steps
        return base_lr * (self.start_factor + (1 - self.start_factor) * progress)


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` from its step 0, ...

    The schedulers must be built on the same optimizer.  ``SequentialLR`` then
    drives the optimizer alone: do not call the schedulers' own ``step()``.
    Its state dict holds theirs.
    """

    def __init__(self, optimizer, schedulers, milestones):
        self.schedulers = list(schedulers)
        self.milestones = [check_number("SequentialLR", "each milestone", m, integer=True, low=1)
                           for m in milestones]
        if len(self.milestones) != len(self.schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(self.schedulers)} scheduler(s) need "
                             f"{len(self.schedulers) - 1} milestone(s), got {len(self.milestones)}")
        if any(a >= b for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"SequentialLR: milestones must increase, got {self.milestones}")
        for scheduler in self.schedulers:
            if not isinstance(scheduler, LRScheduler) or scheduler.optimizer is not optimizer:
                raise ValueError("SequentialLR: every scheduler must be an LRScheduler built on "
                                 "the optimizer passed to SequentialLR")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        index = bisect.bisect_right(self.milestones, epoch)
        start = self.milestones[index - 1] if index else 0
        return self.schedulers[index].lr_at(epoch - start)

    def state_dict(self):
        state = copy.deepcopy({key: value for key, value in vars(self).items()
                               if key not in ("optimizer", "schedulers")})
        state["schedulers"] = [scheduler.state_dict() for scheduler in self.schedulers]
        return state

    def _check_state_dict(self, state_dict):
        super()._check_state_dict(state_dict)
        children = state_dict["schedulers"]
        if len(children) != len(self.schedulers):
            raise ValueError(f"the state dict is for a SequentialLR of {len(children)} "
                             f"scheduler(s), this one has {len(self.schedulers)}")
        for scheduler, child in zip(self.schedulers, children):
            scheduler._check_state_dict(child)

    def load_state_dict(self, state_dict):
        self._check_state_dict(state_dict)      # every child's too, before any is changed
        for scheduler, child in zip(self.schedulers, state_dict["schedulers"]):
            scheduler.load_state_dict(child)
        own = {key: value for key, value in state_dict.items() if key != "schedulers"}
        self.__dict__.update(copy.deepcopy(own))
        self._set_lrs(self._last_lr)
