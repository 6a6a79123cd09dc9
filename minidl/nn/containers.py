"""Containers that hold submodules without a forward of their own, and ``Identity``.

``ModuleList`` and ``ModuleDict`` register what they hold, so its parameters
are found, saved and moved with the model; the model's ``forward`` decides
how to use them (as in PyTorch).  Names are the list positions ("0", "1", ...)
or the dictionary keys.
"""
from .module import Module

__all__ = ["ModuleList", "ModuleDict", "Identity"]


def _checked_module(owner, where, module):
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: {where} is a {type(module).__name__}, not a Module")
    return module


class ModuleList(Module):
    """A list of modules: ``append``, ``extend``, ``insert``, indexing, ``len``, iteration."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def _renumber(self, modules):
        self._modules.clear()
        for i, module in enumerate(modules):
            self._modules[str(i)] = _checked_module("ModuleList", f"item {i}", module)

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        return self.insert(len(self), module)

    def extend(self, modules):
        """Add every module of the iterable ``modules`` at the end; returns self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Insert ``module`` before position ``index``; returns self."""
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)
        return self

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]

    def __setitem__(self, index, module):
        modules = list(self._modules.values())
        modules[index] = module
        self._renumber(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules by name (a string without '.'), in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        self.update(modules or {})

    def update(self, modules):
        """Add the (name, module) pairs of a dict or an iterable of pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for name, module in pairs:
            self[name] = module

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        setattr(self, name, _checked_module("ModuleDict", repr(name), module))

    def __delitem__(self, name):
        delattr(self, name)

    def __contains__(self, name):
        return name in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class Identity(Module):
    """Returns its input unchanged; any constructor arguments are ignored (as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
