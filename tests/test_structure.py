"""The layout rules of docs/contributing.md, read off the source with ``ast``.

* A module imports private (underscore) names only from the underscore
  modules made for sharing (``functional/_checks.py``, ``_window.py``, ...).
* A lower layer never imports a higher one.
* Every public op of ``minidl.functional`` has a docstring.
"""
import ast
import os

import pytest

import minidl.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "minidl")

# Bottom to top; a module may import its own layer and the ones below it.
LAYERS = [
    {"backend", "_arguments"},  # _arguments: pure-Python argument checks, imports nothing
    {"autograd"},
    {"functional", "gradcheck", "creation"},
    {"nn", "distributed"},      # nn.SyncBatchNorm uses distributed.comm; DataParallel is a Module
    {"models", "optim", "data", "progress", "fileio", "checkpoint", "diagnostics", "plots",
     "tables", "interop"},
    {"recipes", "train"},
    {"cli", "__main__"},
]


def modules():
    """(dotted name, path) of every module of the package."""
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                yield ".".join(parts), path


def imports(module, path):
    """(imported module, imported name or None) for every import in the file, made absolute."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name


def layer_of(module):
    """The index in LAYERS of a ``minidl.x...`` module, or None outside the package."""
    parts = module.split(".")
    if parts[0] != "minidl" or len(parts) == 1:
        return None
    for index, members in enumerate(LAYERS):
        if parts[1] in members:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in this test")


def is_private(name):
    return name.startswith("_") and not name.startswith("__")


def test_private_names_come_only_from_sharing_modules():
    wrong = []
    for module, path in modules():
        for source, name in imports(module, path):
            if not source.startswith("minidl") or source == module:
                continue
            sharing = is_private(source.rpartition(".")[2])
            if name is not None and is_private(name) and not sharing:
                wrong.append(f"{module} imports {name} from {source}")
    assert not wrong, "\n".join(wrong)


def test_lower_layers_never_import_higher_ones():
    wrong, seen = [], 0
    for module, path in modules():
        own = layer_of(module)
        for source, name in imports(module, path):
            target = source
            if source == "minidl" and name and not name.startswith("__"):
                target = f"minidl.{name}"          # from . import nn
            level = layer_of(target)
            if own is None or level is None:
                continue
            seen += 1
            if level > own:
                wrong.append(f"{module} (layer {own}) imports {target} (layer {level})")
    assert not wrong, "\n".join(wrong)
    assert seen > 50, f"only {seen} imports inside the package found"


def test_layer_of_names_the_layer():
    assert layer_of("minidl.backend") == 0
    assert layer_of("minidl.functional._checks") == 2
    assert layer_of("minidl.cli") == len(LAYERS) - 1
    assert layer_of("numpy") is None


@pytest.mark.parametrize("name", F.__all__)
def test_every_public_op_has_a_docstring(name):
    doc = getattr(F, name).__doc__
    assert doc and len(doc.strip()) > 20, f"F.{name} has no docstring"


def test_the_communicator_knows_only_the_backend():
    """nn.SyncBatchNorm may use distributed.comm only because comm imports nothing above backend."""
    path = os.path.join(PACKAGE, "distributed", "comm.py")
    inside = {source for source, _ in imports("minidl.distributed.comm", path)
              if source.startswith("minidl")}
    assert inside == {"minidl"}, inside
    assert {name for source, name in imports("minidl.distributed.comm", path)
            if source == "minidl"} == {"backend"}
