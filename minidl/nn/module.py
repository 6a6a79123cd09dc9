"""``Module`` and ``Parameter``: the containers that layers and models are built from.

A :class:`Module` finds its state by attribute assignment, as in PyTorch:
``self.weight = Parameter(...)`` registers a parameter, ``self.conv = Conv2d(...)``
a submodule, and ``self.register_buffer("running_mean", t)`` a buffer (state
that is saved and moved with the module but not trained, such as batch-norm
running statistics).  Everything else is an ordinary attribute.

Names are dotted paths from the module they are asked of:
``"features.0.weight"``.  ``state_dict()`` maps those names to host NumPy
copies of every parameter *and* buffer, so a checkpoint restores a model
exactly, evaluation statistics included.
"""
import collections
import collections.abc
import itertools

import numpy

from .. import backend
from ..autograd import RemovableHandle, Tensor, as_array
from ..functional._checks import check_float_dtype

__all__ = ["Module", "Parameter", "RemovableHandle"]


class Parameter(Tensor):
    """A trainable tensor: a :class:`Tensor` that a :class:`Module` registers as a parameter.

    ``data`` is a backend array, a :class:`Tensor` or Python numbers.  Like
    ``torch.nn.Parameter`` it wraps an array or tensor's data without copying,
    on the device where it lives.  Floating data keeps its dtype; anything else
    (Python numbers, integer arrays) becomes float32, since only floating tensors
    can be trained.
    """

    def __init__(self, data, requires_grad=True):
        array = as_array(data)
        if array.dtype.kind != "f":
            array = array.astype("float32")
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _some(names, shown=8):
    """The first ``shown`` names, quoted, and how many more there are (a message stays short)."""
    text = ", ".join(map(repr, names[:shown]))
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


class Module:
    """Base class of layers and models: subclass, assign state in ``__init__``, write ``forward``.

    ``module(x)`` runs ``forward(x)`` and then the forward hooks.  ``training``
    (True after construction) is switched for the whole tree by ``train()`` and
    ``eval()``; layers such as batch norm and dropout read it.
    """

    # names of a module's own state that older state dicts may lack (load keeps their values)
    _optional_state = frozenset()

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dictionaries to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "_forward_hooks", collections.OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        for value in args:
            if isinstance(value, numpy.ndarray) or backend.device_of(value).type == "cuda":
                raise TypeError(f"{type(self).__name__}: input must be a minidl Tensor, got "
                                f"{type(value).__name__} (from {type(value).__module__}); wrap "
                                f"the array with minidl.tensor(array)")
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle.

        ``inputs`` is the tuple of positional arguments.  A hook that returns
        something other than None replaces the output.  ``handle.remove()``
        unregisters it.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration
    def _check_initialized(self, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called: "
                                 f"call super().__init__() first in {type(self).__name__}.__init__")

    def _check_new_name(self, name, kind):
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        self._check_initialized(name)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._check_new_name(name, "submodule")
            self._forget(name)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} of "
                                f"{type(self).__name__}: expected a Parameter or None")
            self._parameters[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            self.register_buffer(name, value)
        else:
            if "_modules" in self.__dict__:
                self._forget(name)
            object.__setattr__(self, name, value)

    def _forget(self, name):
        """Remove ``name`` from every registry and the instance dictionary."""
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: registered state lives in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if any(name in r for r in (self._parameters, self._buffers, self._modules)):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a :class:`Parameter`, or None for an absent one) as ``name``."""
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, "
                            f"got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor):
        """Register ``tensor`` as buffer ``name``: saved in ``state_dict`` and moved by ``to``.

        A buffer is a Tensor that is not trained (``requires_grad`` False), such
        as batch norm's running statistics; None registers an absent buffer.
        """
        self._check_new_name(name, "buffer")
        if tensor is not None:
            if not isinstance(tensor, Tensor) or isinstance(tensor, Parameter):
                raise TypeError(f"register_buffer({name!r}): expected a Tensor (not a Parameter) "
                                f"or None, got {type(tensor).__name__}")
            if tensor.requires_grad:
                raise ValueError(f"register_buffer({name!r}): a buffer must not require grad; "
                                 f"use a Parameter for trainable state")
        self._forget(name)
        self._buffers[name] = tensor

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix="", remove_duplicate=True):
        """(name, module) for this module ("") and every submodule, depth first.

        A module reachable by several paths is listed once, under its first
        name, unless ``remove_duplicate`` is false.
        """
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def _named_members(self, registries, unique):
        """(dotted name, tensor) from each module's ``registries``, module by module."""
        seen = set()
        for prefix, module in self.named_modules(remove_duplicate=unique):
            for registry in registries:
                for name, value in getattr(module, registry).items():
                    if value is None or (unique and id(value) in seen):
                        continue
                    seen.add(id(value))
                    yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self):
        """(dotted name, Parameter) for every parameter; a shared one appears once."""
        return self._named_members(("_parameters",), unique=True)

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        return self._named_members(("_buffers",), unique=True)

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def num_parameters(self):
        """How many numbers the parameters hold (a shared parameter counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ state
    def _state_tensors(self):
        """Name -> tensor for every parameter and buffer, as state_dict lists them."""
        return collections.OrderedDict(self._named_members(("_parameters", "_buffers"),
                                                           unique=False))

    def state_dict(self):
        """An ordered dict: dotted name -> host NumPy copy of each parameter and buffer.

        Parameters come before buffers within each module, modules in
        registration order (PyTorch's keys and order).  The arrays are copies:
        changing them leaves the module alone.
        """
        state = collections.OrderedDict()
        for name, t in self._state_tensors().items():
            array = backend.to_numpy(t.data)
            state[name] = array.copy() if array is t.data else array
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy ``state_dict`` (name -> array or Tensor) into the parameters and buffers.

        Values are copied in place, cast to each tensor's dtype and moved to its
        device.  The load is all or nothing: every name, shape and dtype is
        checked before anything is copied, so after an error the module is as
        it was.  A floating tensor takes floating or integer values, an integer
        one (``num_batches_tracked``) integer values only.  With ``strict``
        missing or unexpected keys are an error; otherwise they are skipped and
        returned as ``(missing_keys, unexpected_keys)``.  Errors are ValueErrors
        (TypeError for a ``state_dict`` that is no mapping) naming the key.
        State a module lists in ``_optional_state`` (batch norm's
        ``num_batches_tracked``, which older state dicts lack) may be missing:
        it keeps its value.
        """
        updates, missing, unexpected = self._checked_state(state_dict, strict)
        for target, value in updates:
            target.data[...] = backend.to_device(value, target.device)
        return missing, unexpected

    def _checked_state(self, state_dict, strict=True):
        """``(updates, missing, unexpected)`` of :meth:`load_state_dict`, changing nothing.

        ``updates`` lists ``(tensor, value)`` pairs ready to copy.
        """
        where = f"load_state_dict into {type(self).__name__}"
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"{where}: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        own = self._state_tensors()
        optional = {f"{prefix}.{name}" if prefix else name
                    for prefix, module in self.named_modules(remove_duplicate=False)
                    for name in module._optional_state}
        missing = [k for k in own if k not in state_dict and k not in optional]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            problems = []
            if missing:
                problems.append("missing key(s): " + _some(missing))
            if unexpected:
                problems.append("unexpected key(s): " + _some(unexpected))
            raise ValueError(f"{where}: " + "; ".join(problems))
        updates = []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else value
            if not hasattr(value, "shape"):
                value = numpy.asarray(value)
            if tuple(value.shape) != target.shape:
                raise ValueError(f"{where}: {name!r} has shape {tuple(value.shape)} in the state "
                                 f"dict, but the model expects {target.shape}")
            accepted = "fiu" if target.dtype.kind == "f" else "iu"
            if value.dtype.kind not in accepted:
                raise ValueError(f"{where}: {name!r} has dtype {value.dtype} in the state dict, "
                                 f"which cannot be copied into its {target.dtype} tensor")
            updates.append((target, value))
        return updates, missing, unexpected

    # ------------------------------------------------------------------ modes, devices, grads
    def train(self, mode=True):
        """Set ``training`` to ``mode`` in this module and every submodule; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: batch norm uses running statistics, dropout is off."""
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move (and/or cast) every parameter, gradient and buffer in place; returns self.

        The Parameter objects stay the same (only their ``data`` and ``grad``
        are replaced), so an optimizer built on them keeps working.  ``dtype``
        applies to floating tensors only: integer buffers such as
        ``num_batches_tracked`` keep their dtype.
        """
        if dtype is not None:
            dtype = check_float_dtype("Module.to", "dtype", dtype)
        target = backend.device(device) if device is not None else None

        def convert(array):
            if target is not None:
                array = backend.to_device(array, target)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype, copy=False)
            return array

        for t in itertools.chain(self.parameters(), self.buffers()):
            t.data = convert(t.data)
            if t.grad is not None:
                t.grad = convert(t.grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient (``backward`` accumulates otherwise).

        To None by default, as in PyTorch; with ``set_to_none=False`` the
        gradient arrays are filled with zeros in place.
        """
        for p in self.parameters():
            p.zero_grad(set_to_none)

    def requires_grad_(self, requires_grad=True):
        """Switch ``requires_grad`` of every parameter (False freezes them); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule, children first, then on self; returns self.

        The usual use is initialization: ``model.apply(init_weights)``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The text inside this module's parentheses in ``repr`` (its settings)."""
        return ""

    def _tree_repr(self):
        lines = [f"({name}): " + child._tree_repr().replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"

    def __repr__(self):
        """A tree of the submodules with their settings, as PyTorch prints it.

        A module with submodules ends with a line ``(parameters: 1,234)``
        giving :meth:`num_parameters`; a single layer prints on one line.
        """
        text = self._tree_repr()
        if self._modules:
            text += f"\n(parameters: {self.num_parameters():,})"
        return text
