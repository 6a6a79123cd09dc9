"""The :class:`Optimizer` base class: parameter groups, per-parameter state, checkpoints.

An optimizer holds ``param_groups``, a list of dicts.  Each group has a
``"params"`` list of tensors and every hyper-parameter of the optimizer
(``"lr"``, ``"weight_decay"``, ...), taken from the group itself where the user
gave one and from the constructor's defaults otherwise, as in PyTorch.  So one
model can train with several learning rates, or without weight decay for its
biases and batch-norm parameters (see :func:`weight_decay_groups`).

``step()`` updates, in place, the ``.data`` of every parameter whose ``.grad``
is not ``None``, from the gradient and the parameter's *state* (momentum
buffers, moment estimates).  The state lives on the parameter's device, next
to it: a step copies nothing between host and device.

``state_dict()`` returns plain data that can be pickled: parameters are named
by their position (counting through the groups in order), state arrays are
host NumPy copies.  ``load_state_dict()`` restores it into an optimizer built
the same way over the same (or a restored) model, moving each state array to
its parameter's device and dtype.  Running N steps, or N/2 steps, saving,
loading into a new optimizer and running N/2 more, gives identical parameters.
"""
import numpy

from .. import backend
from ..autograd import Tensor

__all__ = ["Optimizer", "weight_decay_groups"]


class Optimizer:
    """Base class: subclasses set ``state_keys`` and write ``_check_group`` and ``_update``.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], key: value}``
    whose keys override ``defaults`` for that group.
    """

    state_keys = ()        # the names a parameter's state may hold

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of parameter-group dicts, "
                            "got a single Tensor; pass [tensor]")
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_ERROR)
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}        # parameter (Tensor) -> dict of its state
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError("optimizer got an empty parameter list")

    def add_param_group(self, group):
        """Add a group ``{"params": [...], key: value, ...}``; missing keys take the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' entry, got "
                            f"{type(group).__name__}")
        if "params" not in group:
            raise ValueError("a parameter group must have a 'params' entry")
        group = dict(group)
        params = group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_ERROR)
        params = group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer can only optimize minidl Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("an optimizer cannot optimize a non-leaf Tensor (one computed "
                                 "by recorded operations); optimize the leaves it came from")
            if p.dtype.kind != "f":
                raise TypeError(f"only floating-point tensors can be optimized, got dtype "
                                f"{p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or seen.intersection(map(id, params)):
            raise ValueError("a parameter appears more than once in the optimizer's groups; "
                             "each tensor may be in one group, once")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient: to None (PyTorch's default), or to zeros in place.

        None makes the next backward start afresh and lets ``step`` skip the
        parameters that then get no gradient.
        """
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none)

    def step(self):
        """Update every parameter that has a gradient (``.grad`` ``None``: skipped)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.shape != p.shape or p.grad.dtype != p.dtype:
                    raise ValueError(f"a parameter of shape {p.shape} and dtype {p.dtype} has a "
                                     f"gradient of shape {p.grad.shape} and dtype {p.grad.dtype}")
                with backend.on_device(p.device):     # CuPy allocates on the current device
                    self._update(p, p.grad, self.state.setdefault(p, {}), group)

    def _check_group(self, group):
        """Validate the group's hyper-parameters and normalize them in place.

        Subclasses use ``minidl.functional._checks``, naming the optimizer:
        ``"SGD: lr must be >= 0, got -0.1"`` (TypeError for a wrong type or a
        bool, ValueError for a value out of range, NaN included).
        """
        raise NotImplementedError

    def _update(self, p, grad, state, group):
        """Update ``p.data`` in place from ``grad`` (a backend array), ``state`` and ``group``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self):
        """``{"state": {index: {name: value}}, "param_groups": [...]}``, picklable, on the host.

        A group's ``"params"`` lists the indices of its parameters; arrays in the
        state are host NumPy copies, so later steps do not change a saved dict.
        """
        groups, state, index = [], {}, 0
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = list(range(index, index + len(group["params"])))
            groups.append(saved)
            for p in group["params"]:
                if self.state.get(p):
                    state[index] = {key: _to_host(value) for key, value in self.state[p].items()}
                index += 1
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by :meth:`state_dict` of a like optimizer.

        The groups must have the same sizes as this optimizer's, and each state
        array the shape of its parameter; arrays are moved to the parameter's
        device and dtype.  Everything is checked before anything is assigned:
        nothing changes when an error (a ValueError or TypeError) is raised.
        """
        self.param_groups, self.state = self._checked_state(state_dict)

    def _checked_state(self, state_dict):
        """The ``(param_groups, state)`` that :meth:`load_state_dict` assigns, changing nothing."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("an optimizer state dict is a dict with the keys 'state' and "
                             "'param_groups' (as returned by Optimizer.state_dict())")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, list) or not isinstance(saved_state, dict):
            raise ValueError(f"an optimizer state dict has a list of 'param_groups' and a dict "
                             f"'state', got {type(saved_groups).__name__} and "
                             f"{type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"the state dict has {len(saved_groups)} parameter group(s) but "
                             f"this optimizer has {len(self.param_groups)}")
        by_index, groups = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
                raise ValueError(f"parameter group {i} of the state dict is not a dict with a "
                                 f"list of 'params'")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i} has {len(saved['params'])} parameter(s) in "
                                 f"the state dict but {len(group['params'])} in this optimizer")
            missing = sorted(set(group) - set(saved))
            if missing:
                raise ValueError(f"parameter group {i} of the state dict lacks {missing}: was it "
                                 f"saved by a different optimizer than {type(self).__name__}?")
            by_index.update(zip(saved["params"], group["params"]))
            restored = dict(saved, params=group["params"])
            self._check_group(restored)
            groups.append(restored)
        state = {}
        for index, entries in saved_state.items():
            if index not in by_index:
                raise ValueError(f"the state dict has state for parameter {index!r}, which no "
                                 f"parameter group lists")
            if not isinstance(entries, dict):
                raise ValueError(f"state of parameter {index} is a {type(entries).__name__}, "
                                 f"not a dict")
            unknown = sorted(set(entries) - set(self.state_keys))
            if unknown:
                raise ValueError(f"state of parameter {index} has entries {unknown} that "
                                 f"{type(self).__name__} does not use (it keeps "
                                 f"{list(self.state_keys)}): was it saved by another optimizer?")
            p = by_index[index]
            state[p] = {name: _to_parameter(value, p, f"state[{index}][{name!r}]")
                        for name, value in entries.items()}
        return groups, state


_SET_ERROR = ("optimizer parameters must be an ordered collection (a list), not a set: the "
              "order of a set changes between runs, and so would the meaning of a checkpoint")


def _is_array(value):
    return isinstance(value, numpy.ndarray) or backend.device_of(value).type == "cuda"


def _to_host(value):
    """A state value for a state dict: arrays become fresh host copies, numbers stay."""
    if not _is_array(value):
        return value
    host = backend.to_numpy(value)
    return host.copy() if host is value else host


def _to_parameter(value, p, name):
    """A saved state value for parameter ``p``: arrays get its shape check, dtype and device."""
    if not _is_array(value):
        return value
    if value.shape != p.shape:
        raise ValueError(f"{name} has shape {value.shape} but its parameter has shape {p.shape}")
    if value.dtype.kind not in "fiu":
        raise ValueError(f"{name} has dtype {value.dtype}; its parameter is {p.dtype}")
    # astype copies, so the optimizer never shares memory with the caller's state dict
    return backend.to_device(backend.to_numpy(value).astype(p.dtype), p.device)


def weight_decay_groups(parameters, weight_decay):
    """Two parameter groups: weights with ``weight_decay``, 1-D parameters with none.

    ``parameters`` is ``model.parameters()`` or ``model.named_parameters()``
    (``(name, tensor)`` pairs).  Tensors with at most one dimension (biases,
    batch-norm ``gamma`` and ``beta``) go to the second group, with
    ``weight_decay`` 0: decaying them shrinks the scale batch norm learned and
    does not regularize.  Both groups are always returned, in this order, so
    the structure of a checkpoint does not depend on the model::

        opt = SGD(weight_decay_groups(model.named_parameters(), 5e-4), lr=0.1, momentum=0.9)
    """
    decay, no_decay = [], []
    for item in parameters:
        p = item if isinstance(item, Tensor) else item[1]
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
