"""Start-up: a command imports only what it uses (each check in a fresh interpreter)."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gmoswidgets.primitives import MODULES, Primitive, default_table
from gmoswidgets.registry import NamedTable

#: Modules that cost 0.1-0.5 s to import each and that the cheap commands must not load.
HEAVY = ("numpy", "astropy", "astropy.io.fits", "astropy.table", "astropy.units", "scipy",
         "numba", "sep")
#: What only the science recipe needs.
SCIENCE_ONLY = ("scipy", "scipy.ndimage", "scipy.spatial", "astropy.coordinates", "astropy.wcs",
                "sep", "numba", "gmoswidgets.primitives.crs", "gmoswidgets.primitives.mosaic",
                "gmoswidgets.primitives.resample", "gmoswidgets.primitives.photometry",
                "gmoswidgets.primitives.register", "gmoswidgets.primitives.fringe")


def loaded_after(code: str, names) -> list:
    """Which of ``names`` are in ``sys.modules`` after running ``code`` in a new interpreter."""
    script = textwrap.dedent(code) + f"\nimport sys; print([n for n in {list(names)!r} " \
                                     "if n in sys.modules])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return eval(done.stdout.strip().splitlines()[-1])  # the list of names printed last


def test_package_and_caldb_import_no_numerical_library():
    assert loaded_after("import gmoswidgets", HEAVY) == []
    assert loaded_after("import gmoswidgets.cli.caldb", HEAVY) == []
    assert loaded_after("import gmoswidgets.caldb, gmoswidgets.cli.dataselect",
                        ("astropy.table", "scipy", "numba")) == []


def test_package_still_exports_the_frame_api():
    # astropy.io.fits is imported when a file is read or written, not with the data model
    assert loaded_after("from gmoswidgets import Frame, HeaderSet, read_frame, read_headers",
                        ("astropy.io.fits",)) == []
    import gmoswidgets
    from gmoswidgets.frame import Frame
    assert gmoswidgets.Frame is Frame
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        gmoswidgets.Nothing  # noqa: B018


def test_reduce_command_imports_astropy_after_starting_the_checksums():
    # `reduce --help` and the argument checks need no astropy; the inputs' checksums
    # (gmoswidgets.checksums) run on a thread while the reduction's modules are imported
    assert loaded_after("import gmoswidgets.cli.reduce",
                        ("astropy", "astropy.io.fits", "astropy.table", "scipy")) == []


@pytest.mark.parametrize("recipe", ["makeProcessedBias", "makeProcessedFlat"])
def test_calibration_recipes_do_not_import_the_science_modules(recipe):
    code = f"""
        from gmoswidgets.primitives import default_table
        from gmoswidgets.recipes import RECIPES
        from gmoswidgets.steps import build_steps
        steps = build_steps(RECIPES.get({recipe!r}), default_table())
        assert steps and all(step.definition.params is not None for step in steps)
        """
    assert loaded_after(code, SCIENCE_ONLY) == []


def test_module_index_lists_each_modules_primitives_in_order():
    from importlib import import_module
    for module, names in MODULES.items():
        defined = import_module(f"gmoswidgets.primitives.{module}").PRIMITIVES
        assert tuple(p.name for p in defined) == names, module
    table = default_table()
    assert list(table) == [name for names in MODULES.values() for name in names]
    assert all(isinstance(table[name], Primitive) for name in table)


class _Item:
    def __init__(self, name):
        self.name = name


class _Table(NamedTable):
    kind = "widget"
    item_type = _Item


def test_lazy_table_makes_each_item_once_on_first_access():
    made = []

    def make(name):
        made.append(name)
        return _Item(name)

    table = _Table.lazy(["a", "b"], make)
    assert list(table) == ["a", "b"] and len(table) == 2 and "a" in table and "c" not in table
    assert made == []
    assert table.get("a") is table["a"] and made == ["a"]
    with pytest.raises(KeyError):
        table["c"]  # noqa: B018
    with pytest.raises(Exception, match="unknown widget 'c'; valid widgets are: a, b"):
        table.get("c")
    with pytest.raises(TypeError, match="not a _Item"):
        _Table.lazy(["x"], lambda name: name)["x"]  # noqa: B018
    with pytest.raises(ValueError, match="made for 'x' is named 'y'"):
        _Table.lazy(["x"], lambda name: _Item("y"))["x"]  # noqa: B018
    with pytest.raises(ValueError, match="same name"):
        _Table.lazy(["x", "x"], make)


def test_running_median_equals_scipys_median_filter():
    """The overscan's running median without scipy: the values of the scipy call it replaced."""
    from scipy.ndimage import median_filter
    from gmoswidgets.primitives.ccd import _RUNNING_MEDIAN_ROWS, _running_median
    rng = np.random.default_rng(7)
    for n in (1, 2, 4, 5, 9, 1152, 2304):
        for values in (rng.normal(1000, 5, n), np.round(rng.normal(1000, 5, n))):
            expected = median_filter(values, size=_RUNNING_MEDIAN_ROWS, mode="nearest")
            assert np.array_equal(_running_median(values, _RUNNING_MEDIAN_ROWS), expected)


def test_command_from_the_shell_freezes_the_garbage_before_exit():
    code = """
        import gc, sys
        from gmoswidgets.cli import showrecipes
        assert showrecipes.main(["--help"]) == 0 and gc.get_freeze_count() == 0  # a call
        sys.argv = ["showrecipes", "--help"]
        assert showrecipes.main() == 0 and gc.get_freeze_count() > 0       # from the shell
        """
    assert loaded_after(code, ()) == []


def test_caldb_add_and_dataselect_read_headers_without_astropy(tmp_path, tutorial4):
    from gmoswidgets.caldb.testing import write_calibration
    bias = write_calibration(tmp_path / "N20170613S0180_bias.fits", "bias")
    code = f"""
        from gmoswidgets.cli import caldb, dataselect
        assert caldb.main(["-d", {str(tmp_path)!r}, "init"]) == 0
        assert caldb.main(["-d", {str(tmp_path)!r}, "add", {str(bias)!r}]) == 0
        assert dataselect.main(["--tags", "BIAS", "--expr", "detector_x_bin==4",
                                *{[str(p) for p in tutorial4.bias[:3] + tutorial4.flat[:2]]!r},
                                "-o", {str(tmp_path / "list.txt")!r}]) == 0
        """
    assert loaded_after(code, HEAVY) == []
    assert (tmp_path / "list.txt").read_text().split() == [str(p) for p in tutorial4.bias[:3]]


@pytest.mark.slow
def test_calibration_reductions_write_their_tables_without_astropy_table(tmp_path, tutorial4,
                                                                         monkeypatch):
    """HISTORY / PROVENANCE are built, written and read back as FITS_rec (astropy.table ~0.1 s)."""
    config = tmp_path / "rsys.cfg"
    config.write_text(f"[calibs]\nstandalone = True\ndatabase_dir = {tmp_path}\n")
    monkeypatch.setenv("GMOSWIDGETS_CONFIG", str(config))
    bias = tmp_path / f"{tutorial4.bias[0].stem}_bias.fits"
    code = f"""
        import os
        os.chdir({str(tmp_path)!r})
        from gmoswidgets.cli import caldb, reduce
        assert caldb.main(["init"]) == 0
        assert reduce.main([*{[str(p) for p in tutorial4.bias]!r}, "--no-progress"]) == 0
        assert reduce.main([*{[str(p) for p in tutorial4.flat]!r}, "--no-progress",
                            "--user_cal", "processed_bias:{bias}"]) == 0
        """
    assert loaded_after(code, ("astropy.table", "yaml")) == []
    from astropy.io import fits
    with fits.open(tmp_path / f"{tutorial4.flat[0].stem}_flat.fits") as hdulist:
        history = hdulist["HISTORY"].data
        assert list(history["primitive"])[-1] == "storeProcessedFlat"
        names = set(hdulist["PROVENANCE"].data["filename"])
    assert {p.name for p in tutorial4.flat} | {bias.name} <= names


def test_start_up_pauses_the_collector_then_freezes_only_from_the_shell():
    import gc
    from gmoswidgets.cli.common import start_up
    frozen = gc.get_freeze_count()
    with start_up(False):
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    code = """
        import gc, sys
        from gmoswidgets.cli.common import start_up
        with start_up(True):
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= 1000
        """
    assert loaded_after(code, ()) == []


def test_reduce_from_the_shell_runs_its_steps_with_the_collector_on(tmp_path, tutorial4,
                                                                    monkeypatch):
    config = tmp_path / "rsys.cfg"
    config.write_text(f"[calibs]\nstandalone = True\ndatabase_dir = {tmp_path}\n")
    monkeypatch.setenv("GMOSWIDGETS_CONFIG", str(config))
    code = f"""
        import gc, os, sys
        os.chdir({str(tmp_path)!r})
        from gmoswidgets.cli import caldb, reduce
        from gmoswidgets.reduction import Reduction
        assert caldb.main(["init"]) == 0
        seen = []
        run_all = Reduction.run_all
        Reduction.run_all = lambda self: seen.append((gc.isenabled(), gc.get_freeze_count())) \\
            or run_all(self)
        sys.argv = ["reduce", *{[str(p) for p in tutorial4.bias[:3]]!r}, "--no-progress"]
        assert reduce.main() == 0
        assert seen[0][0] and seen[0][1] > 50_000, seen   # the imports' objects frozen
        """
    assert loaded_after(code, ()) == []
