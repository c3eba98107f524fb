"""``showrecipes FILE``: the recipe ``reduce`` would run on a file, as DRAGONS' ``showrecipes``.

::

    $ showrecipes N20170613S0180.fits
    Input file: N20170613S0180.fits
    Input tags: BIAS CAL GEMINI GMOS ...
    Recipe not provided, default recipe (makeProcessedBias) will be used.
    Recipe: makeProcessedBias
    Recipe tags: BIAS GMOS
    Primitives used:
       p.prepare(require_wcs=False)
       ...

``-r NAME`` shows another recipe; ``--all`` lists every recipe that applies.
"""
from __future__ import annotations

import sys

from ..errors import RecipeError
from ..fitsheader import header_values
from ..gmos.tags import tags_of
from ..recipes import default_recipe, get_recipe, recipes_for
from .common import Parser, run

__all__ = ["main", "format_recipe"]

PROG = "showrecipes"


def format_recipe(recipe) -> list:
    """Lines describing a recipe: its name, tags and primitive calls."""
    lines = [f"Recipe: {recipe.name}", f"Recipe tags: {' '.join(sorted(recipe.tags))}"]
    if recipe.blocked:
        lines.append(f"Blocked tags: {' '.join(sorted(recipe.blocked))}")
    if recipe.doc:
        lines.append(recipe.doc)
    lines.append("Primitives used:")
    for step in recipe.steps:
        call = str(step)
        lines.append(f"   p.{call}" + ("" if "(" in call else "()"))
    return lines


def _showrecipes(argv) -> int:
    parser = Parser(prog=PROG, description="Show the recipe(s) that apply to a file.")
    parser.add_argument("file", help="a GMOS FITS file")
    parser.add_argument("-r", "--recipe", help="show this recipe")
    parser.add_argument("--all", action="store_true", help="list every recipe that applies")
    args = parser.parse_args(argv)
    tags = tags_of(header_values(args.file))
    print(f"Input file: {args.file}")
    print(f"Input tags: {' '.join(sorted(tags))}")
    if args.all:
        recipes = recipes_for(tags)
        if not recipes:
            raise RecipeError("no recipe applies to this file")
        print("Recipes available for the input file:")
        for recipe in recipes:
            mark = " (default)" if recipe.default else ""
            print(f"   {recipe.name}{mark}: {recipe.doc}")
        return 0
    if args.recipe:
        recipe = get_recipe(args.recipe)
        if not recipe.applies_to(tags):
            print(f"Warning: recipe {recipe.name} does not apply to files with these tags")
    else:
        recipe = default_recipe(tags)
        print(f"Recipe not provided, default recipe ({recipe.name}) will be used.")
    for line in format_recipe(recipe):
        print(line)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``showrecipes`` command."""
    return run(PROG, _showrecipes, argv)


if __name__ == "__main__":
    sys.exit(main())
