"""Layers point one way: no kernel module imports a front end or a widget library.

The kernel is everything in ``gmoswidgets/`` except the front ends ``cli/``,
``widgets/`` and ``dashboard/``.  Imports are read with :mod:`ast` (also those
inside functions), relative ones resolved against the module's package.  One
exception: the package's module ``__getattr__`` (PEP 562) may forward the
widget classes, so that ``from gmoswidgets import ReductionApp`` works while
``import gmoswidgets`` loads no widget library (test_widgets checks that).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gmoswidgets"
FRONT_ENDS = ("cli", "widgets", "dashboard")
FORBIDDEN = ("gmoswidgets.widgets", "gmoswidgets.cli", "gmoswidgets.dashboard", "ipywidgets",
             "bqplot", "ipyaladin", "voila", "IPython.display", "PIL")


def kernel_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] not in FRONT_ENDS:
            yield path


def _lazy_forwarding(tree):
    """Nodes inside a module-level ``def __getattr__`` (the lazy attribute hook)."""
    return {id(node) for top in tree.body
            if isinstance(top, ast.FunctionDef) and top.name == "__getattr__"
            for node in ast.walk(top)}


def imported_names(source, package, allow_lazy=False):
    """Every module name ``source`` imports, absolute; ``from a import b`` gives a and a.b.

    ``package`` is the dotted name of the package the module lives in;
    ``allow_lazy`` skips imports in a module-level ``__getattr__``.
    """
    parts = package.split(".")
    tree = ast.parse(source)
    skip = _lazy_forwarding(tree) if allow_lazy else set()
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def forbidden(names):
    return sorted(n for n in names if any(n == bad or n.startswith(bad + ".") for bad in FORBIDDEN))


@pytest.mark.parametrize("path", list(kernel_modules()),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_kernel_module_imports_no_front_end(path):
    package = ".".join(["gmoswidgets", *path.relative_to(PACKAGE).parent.parts])
    facade = path == PACKAGE / "__init__.py"
    bad = forbidden(imported_names(path.read_text(), package, allow_lazy=facade))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {', '.join(bad)}"


def test_the_check_sees_relative_and_nested_imports():
    source = ("from .. import cli\nimport PIL.Image\nfrom ..frame import Frame\n"
              "def f():\n    from ..widgets import preview\n    from IPython import display\n")
    assert forbidden(imported_names(source, "gmoswidgets.primitives")) == [
        "IPython.display", "PIL.Image", "gmoswidgets.cli", "gmoswidgets.widgets",
        "gmoswidgets.widgets.preview"]
    lazy = "def __getattr__(name):\n    from . import widgets\n"
    assert forbidden(imported_names(lazy, "gmoswidgets", allow_lazy=True)) == []
    assert forbidden(imported_names(lazy, "gmoswidgets")) == ["gmoswidgets.widgets"]
    assert not forbidden(imported_names("from ..widgetsx import a\nimport PILLOW\n",
                                        "gmoswidgets.primitives"))
