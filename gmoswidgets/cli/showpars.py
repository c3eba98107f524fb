"""``showpars FILE PRIMITIVE``: the parameters of a primitive, as DRAGONS' ``showpars``.

::

    $ showpars N20170614S0201.fits stackFrames
    Dataset tagged as GEMINI GMOS IMAGE ...
    Settable parameters on 'stackFrames':
    ========================================
     Name               Default        Type            Description
     operation          'mean'         one of ...      Averaging operation ...

The list comes from the primitive's one parameter declaration, plus the
generic ``skip_primitive`` and ``write_outputs``.  Values that the file's
default recipe fixes are shown below the table.
"""
from __future__ import annotations

import sys

from ..errors import RecipeError
from ..fitsheader import header_values
from ..gmos.tags import tags_of
from ..primitives.base import get_primitive
from ..recipes import default_recipe
from .common import Parser, run

__all__ = ["main", "format_parameters"]

PROG = "showpars"


def _allowed(param) -> str:
    text = param.describe_type()
    if param.min is not None or param.max is not None:
        low = "" if param.min is None else f"{param.min} <= "
        high = "" if param.max is None else f" <= {param.max}"
        text += f", {low}value{high}"
    return text


def format_parameters(prim) -> list:
    """Lines of the parameter table of a registered primitive.

    One line per parameter (name, default, description), then its allowed
    values (type, choices, range) on an indented line.
    """
    params = prim.all_params()
    width = max(len(name) for name in params) + 1
    indent = " " * (width + 20)
    lines = [f"Settable parameters on '{prim.name}':", "=" * 40,
             f" {'Name':<{width}} {'Default':<16}  Description"]
    for name, param in params.items():
        lines.append(f" {name:<{width}} {param.default!r:<16}  {param.doc}")
        lines.append(f"{indent}({_allowed(param)})")
    return lines


def _showpars(argv) -> int:
    parser = Parser(prog=PROG, description="Show the parameters of a primitive for a file.")
    parser.add_argument("file", help="a GMOS FITS file")
    parser.add_argument("primitive", help="a primitive name, e.g. stackFrames")
    args = parser.parse_args(argv)
    headers = header_values(args.file)
    tags = tags_of(headers)
    prim = get_primitive(args.primitive)
    print("Dataset tagged as " + " ".join(sorted(tags)))
    for line in format_parameters(prim):
        print(line)
    try:
        recipe = default_recipe(tags)
    except RecipeError:
        return 0
    for step in recipe.steps:
        if step.primitive == prim.name and step.fixed:
            print(f"Recipe {recipe.name} sets: {step}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``showpars`` command."""
    return run(PROG, _showpars, argv)


if __name__ == "__main__":
    sys.exit(main())
