"""Recipes: named, ordered lists of primitives, chosen by the inputs' tags.

The sequences follow DRAGONS' GMOS imaging recipes in sq mode
(DRAGONS' ``geminidr/gmos/recipes/sq/``), with one addition: the science
recipes run ``detectSources`` on the stack, so that the ``_stack`` file
carries its own OBJCAT (source table).  A recipe step may fix parameter values
(``stackFrames(zero=True)`` in the science recipe); the engine's
``Step.fixed`` records them so that a user override of such a value is seen
and reported, never silently dropped.

Recipes are looked up in a :class:`RecipeBook`; :data:`RECIPES` is the
package's book, and :func:`get_recipe`, :func:`recipes_for` and
:func:`default_recipe` ask it (or the book they are given).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import RecipeError
from .registry import NamedTable

__all__ = ["RecipeStep", "Recipe", "RecipeBook", "RECIPES", "recipes_for", "default_recipe",
           "get_recipe"]


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

class RecipeBook(NamedTable):
    """A read-only mapping of recipe name to :class:`Recipe`, with the choice by tags.

    ``get(name)`` raises :class:`~gmoswidgets.errors.RecipeError` listing the
    valid names for an unknown one.

    Parameters
    ----------
    recipes : iterable of Recipe
        The recipes; two with the same name are an error.
    fallback : str, optional
        The recipe for processed science (``PROCESSED_SCIENCE`` tags) when no
        default recipe applies.
    """

    kind = "recipe"
    error = RecipeError
    item_type = Recipe

    def __init__(self, recipes: Iterable[Recipe], fallback: str | None = None):
        super().__init__(recipes)
        self.fallback = fallback

    def with_recipes(self, *recipes: Recipe) -> "RecipeBook":
        """A new book with these recipes added."""
        return RecipeBook([*self.values(), *recipes], self.fallback)

    def for_tags(self, tags) -> list[Recipe]:
        """Every recipe that applies to a file with these tags, the default first."""
        matches = [r for r in self.values() if r.applies_to(tags)]
        return sorted(matches, key=lambda r: not r.default)

    def default_for(self, tags) -> Recipe:
        """The default recipe for a file with these tags.

        Raises
        ------
        RecipeError
            If no recipe applies.
        """
        for recipe in self.for_tags(tags):
            if recipe.default:
                return recipe
        if self.fallback and "PROCESSED_SCIENCE" in set(tags):
            return self.get(self.fallback)
        raise RecipeError("no recipe applies to files with tags " + " ".join(sorted(tags))
                          + "; give one with -r (known recipes: " + ", ".join(self) + ")")


#: The package's recipes.
RECIPES = RecipeBook((
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
), fallback="alignAndStack")


def recipes_for(tags, book: RecipeBook | None = None) -> list[Recipe]:
    """Every recipe of ``book`` (default :data:`RECIPES`) that applies to these tags."""
    return (book if book is not None else RECIPES).for_tags(tags)


def default_recipe(tags, book: RecipeBook | None = None) -> Recipe:
    """The default recipe of ``book`` (default :data:`RECIPES`) for these tags.

    Raises
    ------
    RecipeError
        If no recipe applies.
    """
    return (book if book is not None else RECIPES).default_for(tags)


def get_recipe(name: str, book: RecipeBook | None = None) -> Recipe:
    """A recipe of ``book`` (default :data:`RECIPES`) by name; RecipeError lists the valid ones."""
    return (book if book is not None else RECIPES).get(name)
