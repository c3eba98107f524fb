"""Recipes: named, ordered lists of primitives, chosen by the inputs' tags.

The sequences follow DRAGONS' GMOS imaging recipes in sq mode
(``geminidr/gmos/recipes/sq/``; see ``shared/reference/dragons-gmos-imaging.md``
section 1.0), with one addition: the science recipes run ``detectSources`` on
the stack, so that the ``_stack`` file carries its own OBJCAT (source table).  A recipe step may fix parameter values (``stackFrames(zero=True)``
in the science recipe); :data:`Step.fixed` records them so that a user
override of such a value is seen and reported, never silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RecipeError

__all__ = ["RecipeStep", "Recipe", "RECIPES", "recipes_for", "default_recipe", "get_recipe"]


@dataclass(frozen=True)
class RecipeStep:
    """One primitive call in a recipe, with the values the recipe fixes."""

    primitive: str
    fixed: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.fixed:
            return self.primitive
        args = ", ".join(f"{k}={v!r}" for k, v in self.fixed.items())
        return f"{self.primitive}({args})"


@dataclass(frozen=True)
class Recipe:
    """A named recipe that applies to inputs having all ``tags`` and none of ``blocked``."""

    name: str
    steps: tuple
    tags: frozenset
    blocked: frozenset = frozenset()
    default: bool = False
    doc: str = ""

    def applies_to(self, tags) -> bool:
        """True if a file with these tags can be reduced with this recipe."""
        tags = set(tags)
        return self.tags <= tags and not (self.blocked & tags)


def _steps(*items) -> tuple:
    return tuple(RecipeStep(i) if isinstance(i, str) else RecipeStep(i[0], dict(i[1])) for i in items)


_CALIB_START = (("prepare", {"require_wcs": False}), ("addDQ", {"add_illum_mask": False}),
                ("addVAR", {"read_noise": True}), "overscanCorrect")
_SCIENCE_START = ("prepare", "addDQ", ("addVAR", {"read_noise": True}), "overscanCorrect",
                  "biasCorrect", "ADUToElectrons", ("addVAR", {"poisson_noise": True}))

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("makeProcessedBias", _steps(*_CALIB_START, "stackBiases", "storeProcessedBias"),
           frozenset({"GMOS", "BIAS"}), frozenset({"PROCESSED"}), default=True,
           doc="Overscan-correct the raw biases and stack them into a master bias (_bias)."),
    Recipe("makeProcessedFlat",
           _steps(("prepare", {"require_wcs": False}), "addDQ", ("addVAR", {"read_noise": True}),
                  "overscanCorrect", "biasCorrect", "ADUToElectrons",
                  ("addVAR", {"poisson_noise": True}), "stackFlats", "normalizeFlat",
                  "storeProcessedFlat"),
           frozenset({"GMOS", "IMAGE", "FLAT"}), frozenset({"PROCESSED"}), default=True,
           doc="Bias-correct, scale and combine twilight flats, then normalize (_flat)."),
    Recipe("reduce",
           _steps(*_SCIENCE_START, "flatCorrect", "fringeCorrect", "QECorrect", "mosaicDetectors",
                  "detectSources", "adjustWCSToReference", "resampleToCommonFrame",
                  "flagCosmicRaysByStacking", "scaleCountsToReference",
                  ("stackFrames", {"zero": True}), "detectSources", "storeProcessedScience"),
           frozenset({"GMOS", "IMAGE"}), frozenset({"CAL", "PROCESSED", "THRUSLIT"}), default=True,
           doc="Calibrate, mosaic, align and stack dithered science images (_stack, electrons)."),
    Recipe("makeProcessedFringe",
           _steps(*_SCIENCE_START, "flatCorrect", "makeFringeFrame", "storeProcessedFringe"),
           frozenset({"GMOS", "IMAGE"}), frozenset({"CAL", "PROCESSED"}),
           doc="Build a fringe frame from dithered science images (_fringe)."),
    Recipe("alignAndStack",
           _steps("detectSources", "adjustWCSToReference", "resampleToCommonFrame",
                  "scaleCountsToReference", ("stackFrames", {"zero": True}), "detectSources",
                  "storeProcessedScience"),
           frozenset({"GMOS", "IMAGE"}), frozenset({"CAL"}),
           doc="Align and stack already-reduced images, e.g. several _stack files."),
)}


def recipes_for(tags) -> list:
    """Every recipe that applies to a file with these tags, the default first."""
    matches = [r for r in RECIPES.values() if r.applies_to(tags)]
    return sorted(matches, key=lambda r: not r.default)


def default_recipe(tags) -> Recipe:
    """The default recipe for a file with these tags.

    Raises
    ------
    RecipeError
        If no recipe applies.
    """
    for recipe in recipes_for(tags):
        if recipe.default:
            return recipe
    if "PROCESSED_SCIENCE" in set(tags):
        return RECIPES["alignAndStack"]
    raise RecipeError("no recipe applies to files with tags " + " ".join(sorted(tags))
                      + "; give one with -r (known recipes: " + ", ".join(RECIPES) + ")")


def get_recipe(name: str) -> Recipe:
    """A recipe by name (RecipeError listing the known ones if unknown)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(f"unknown recipe {name!r}; known recipes: " + ", ".join(RECIPES)) from None
