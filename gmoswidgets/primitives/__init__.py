"""Primitives: the steps recipes are made of, with DRAGONS' names.

Importing :func:`load_all` registers every primitive module.
"""
import importlib

from .base import PRIMITIVES, GENERIC_PARAMS, Param, StepContext, get_primitive, primitive

__all__ = ["PRIMITIVES", "GENERIC_PARAMS", "Param", "StepContext", "get_primitive", "primitive",
           "load_all"]

#: Modules that define primitives, imported on first use.
_MODULES = ("standardize", "ccd", "stack", "flat", "store", "mosaic", "resample", "crs",
            "photometry", "register", "fringe")
_loaded = False


def load_all() -> None:
    """Import every primitive module so that :data:`PRIMITIVES` is complete."""
    global _loaded
    if _loaded:
        return
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
    _loaded = True
