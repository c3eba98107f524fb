"""Importing ahead (gmoswidgets.preload) the modules a recipe's later steps import when they run."""
import importlib.util
import os
import sys

import pytest

from gmoswidgets.preload import start_imports
from gmoswidgets.primitives import DEFERRED_IMPORTS, MODULES, deferred_imports
from gmoswidgets.recipes import RECIPES
from test_startup import loaded_after

_PRIMITIVES = {name for names in MODULES.values() for name in names}


def _recipe_primitives(name):
    return [step.primitive for step in RECIPES.get(name).steps]


def test_deferred_imports_name_primitives_and_importable_modules():
    assert set(DEFERRED_IMPORTS) <= _PRIMITIVES
    for modules in DEFERRED_IMPORTS.values():
        for module in modules:
            assert importlib.util.find_spec(module) is not None, module


def test_deferred_modules_are_not_imported_with_their_primitives_module():
    # listed because importing the primitive's module does not load them: the step does
    owners = {name: module for module, names in MODULES.items() for name in names}
    code = "\n".join(f"import gmoswidgets.primitives.{owners[name]}" for name in DEFERRED_IMPORTS)
    deferred = sorted({m for modules in DEFERRED_IMPORTS.values() for m in modules})
    assert loaded_after(code, deferred) == []


def test_calibration_recipes_import_nothing_ahead_the_science_recipe_the_kernels():
    assert deferred_imports(_recipe_primitives("makeProcessedBias")) == ()
    assert deferred_imports(_recipe_primitives("makeProcessedFlat")) == ()
    science = deferred_imports(_recipe_primitives("reduce"))
    assert science[0] == "gmoswidgets.numerics.kernels"      # mosaicDetectors comes first
    assert {"scipy.spatial", "gmoswidgets.primitives.crs_kernels",
            "gmoswidgets.primitives.photometry_kernels"} <= set(science)
    assert len(set(science)) == len(science)


def test_start_imports_imports_on_a_thread_and_ignores_failures(monkeypatch):
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    thread = start_imports(["gmoswidgets.no_such_module", "json.tool", "json.tool"])
    assert thread is not None and thread.daemon and thread.name == "preload"
    thread.join(30)
    assert "json.tool" in sys.modules
    assert start_imports([]) is None


@pytest.mark.parametrize("recipe", ["makeProcessedBias", "reduce"])
def test_reduce_starts_the_recipes_imports(recipe, monkeypatch):
    from gmoswidgets.cli import reduce as cli
    started = []
    monkeypatch.setattr(cli, "start_imports", started.append)
    monkeypatch.setattr(cli, "_reduction", lambda files, args: _FakeReduction(recipe))
    monkeypatch.setattr(cli, "get_executor", lambda scheduler: None)
    monkeypatch.setattr(cli, "check_writable_file", lambda name: None)
    monkeypatch.setattr(cli, "configure_logging", lambda **kw: _NullLog())
    cli._start(["a.fits", "--recipe", recipe])
    assert started == [deferred_imports(_recipe_primitives(recipe))]


class _FakeStep:
    def __init__(self, primitive):
        self.primitive = primitive


class _FakeReduction:
    def __init__(self, recipe):
        self.recipe = RECIPES.get(recipe)
        self.steps = [_FakeStep(name) for name in _recipe_primitives(recipe)]
        self.files = ["a.fits"]


class _NullLog:
    def info(self, *args):
        pass


def test_a_fork_waits_for_the_imports_under_way(tmp_path, monkeypatch):
    # a child forked while a module is being imported must not inherit its held import lock
    (tmp_path / "slow_import_mod.py").write_text("import time\ntime.sleep(0.5)\nVALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_import_mod", raising=False)
    thread = start_imports(["slow_import_mod"])
    pid = os.fork()
    if pid == 0:                                   # the child: the module is complete
        os._exit(0 if sys.modules["slow_import_mod"].VALUE == 1 else 1)
    assert not thread.is_alive()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
