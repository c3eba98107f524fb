"""Fake primitives, fake recipes and tiny fake GMOS files for the engine and front-end tests.

The engine tests must not depend on the real primitives: they build engines
with a :class:`PrimitiveTable` of these fakes and a :class:`RecipeBook` that
also holds the fake recipes (the ``fake_env`` fixture of conftest.py), and
pass both to :class:`Reduction` explicitly.
"""
import contextlib
import logging

import numpy as np
from astropy.io import fits

from gmoswidgets.logutils import LOGGER_NAME
from gmoswidgets.primitives.base import Param, Primitive, PrimitiveTable
from gmoswidgets.recipes import RECIPES, Recipe, RecipeStep
from gmoswidgets.reduction import Reduction

SHAPE = (6, 8)


def write_fake(path, obstype="BIAS", obj="Bias", base=100.0, nexts=2):
    """A tiny raw GMOS-N file: PHU and ``nexts`` float32 extensions of SHAPE."""
    phu = fits.PrimaryHDU()
    hdr = phu.header
    hdr["INSTRUME"] = "GMOS-N"
    hdr["OBSERVAT"] = "Gemini-North"
    hdr["TELESCOP"] = "Gemini-North"
    hdr["OBSTYPE"] = obstype
    hdr["OBJECT"] = obj
    hdr["OBSCLASS"] = "dayCal"
    hdr["OBSMODE"] = "IMAGE"
    hdr["DATE-OBS"] = "2017-06-13"
    hdulist = [phu]
    rows, cols = SHAPE
    for i in range(nexts):
        data = (base + 10 * i + np.arange(rows * cols).reshape(SHAPE)).astype(np.float32)
        ext = fits.ImageHDU(data)
        ext.header["EXTNAME"] = "SCI"
        ext.header["EXTVER"] = i + 1
        ext.header["DATASEC"] = f"[1:{cols},1:{rows}]"
        hdulist.append(ext)
    fits.HDUList(hdulist).writeto(path)
    return path


class Calls(dict):
    """Call counter per primitive name."""

    def __missing__(self, key):
        return 0


def _map(frames, func):
    out = []
    for frame in frames:
        new = frame.copy()
        for ext in new:
            ext.data = func(ext.data.astype(np.float32))
        out.append(new)
    return out


def make_fakes(calls):
    """A table of fake primitives counting their calls in ``calls``.

    fakeAdd, fakeScale (may fail, reports progress), fakeCal (subtracts a
    processed bias), fakeStack (mean), fakeStore (marks a processed bias).
    """

    def fakeAdd(frames, ctx, *, value):
        calls["fakeAdd"] += 1
        return _map(frames, lambda d: d + value)

    def fakeScale(frames, ctx, *, factor, fail):
        calls["fakeScale"] += 1
        if fail:
            raise ValueError("fakeScale was told to fail")
        ctx.progress(0.5, "half way")
        return _map(frames, lambda d: d * factor)

    def fakeCal(frames, ctx):
        calls["fakeCal"] += 1
        out = []
        for frame in frames:
            cal, _, _ = ctx.calibration(frame, "processed_bias")
            new = frame.copy()
            for ext, cext in zip(new, cal):
                ext.data = ext.data - cext.data
            out.append(new)
        return out

    def fakeStack(frames, ctx):
        calls["fakeStack"] += 1
        new = frames[0].copy()
        for i, ext in enumerate(new):
            ext.data = np.mean([f[i].data for f in frames], axis=0).astype(np.float32)
        return [new]

    def fakeStore(frames, ctx):
        calls["fakeStore"] += 1
        out = []
        for frame in frames:
            new = frame.copy()
            new.phu["PROCBIAS"] = "2017-06-13T00:00:00"
            out.append(new)
        return out

    return PrimitiveTable([
        Primitive("fakeAdd", fakeAdd, {"value": Param("value", float, 1.0, "Added constant.")},
                  "_added", "Add a constant."),
        Primitive("fakeScale", fakeScale,
                  {"factor": Param("factor", float, 2.0, "Multiplier.", min=0.0),
                   "fail": Param("fail", bool, False, "Raise an error.")},
                  "_scaled", "Multiply by a factor."),
        Primitive("fakeCal", fakeCal, {}, "_calCorrected", "Subtract a processed bias.",
                  ("processed_bias",)),
        Primitive("fakeStack", fakeStack, {}, "_stacked", "Mean of the inputs."),
        Primitive("fakeStore", fakeStore, {}, "_fakebias", "Mark as a processed bias."),
    ])


FAKE_RECIPE = Recipe(
    "fakeBias",
    (RecipeStep("fakeAdd"), RecipeStep("fakeScale", {"factor": 3.0}), RecipeStep("fakeAdd"),
     RecipeStep("fakeStack"), RecipeStep("fakeStore")),
    frozenset({"GMOS", "BIAS"}), frozenset({"PROCESSED"}), doc="Fake bias recipe.")
FAKE_CAL_RECIPE = Recipe(
    "fakeCalibrated", (RecipeStep("fakeCal"), RecipeStep("fakeStack"), RecipeStep("fakeStore")),
    frozenset({"GMOS", "BIAS"}), frozenset({"PROCESSED"}), doc="Uses a processed bias.")
#: The package's recipes plus the fake ones.
FAKE_BOOK = RECIPES.with_recipes(FAKE_RECIPE, FAKE_CAL_RECIPE)


class FakeEnv:
    """Fake biases and a fake flat on disk, the fake primitives and their call counts.

    Attributes: ``calls``, ``primitives``, ``recipes``, ``biases``, ``flat``,
    ``raw`` (their directory) and ``workdir`` (the current directory of the test).
    """

    def __init__(self, tmp_path):
        self.calls = Calls()
        self.primitives = make_fakes(self.calls)
        self.recipes = FAKE_BOOK
        self.raw = tmp_path / "raw"
        self.raw.mkdir()
        self.biases = [write_fake(self.raw / f"N20170613S018{i}.fits", base=100.0 + 7 * i)
                       for i in range(3)]
        self.flat = write_fake(self.raw / "N20170702S0178.fits", obstype="OBJECT",
                               obj="Twilight")
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()

    def reduction(self, files=None, recipe=FAKE_RECIPE, **options) -> Reduction:
        """A :class:`Reduction` of ``files`` (default: the biases) on the fakes."""
        return Reduction(self.biases if files is None else files, recipe,
                         primitives=self.primitives, recipes=self.recipes, **options)


@contextlib.contextmanager
def preserved_logger():
    """Undo what logutils.config (run by the CLI and Reduce) does to the package logger."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield logger
    finally:
        for handler in list(logger.handlers):
            if handler not in saved[0]:
                logger.removeHandler(handler)
                handler.close()
        logger.propagate, logger.level = saved[1], saved[2]


def expected_final(biases, value=1.0, factor=3.0):
    """Per-extension pixels of the fakeBias recipe's output, computed independently."""
    out = []
    for i in range(2):
        stack = [((fits.getdata(b, i + 1).astype(np.float64) + value) * factor + value)
                 for b in biases]
        out.append(np.mean(stack, axis=0))
    return out
