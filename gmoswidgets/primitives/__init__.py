"""Primitives: the steps recipes are made of, with DRAGONS' names.

:func:`default_table` is the table of every primitive the package defines,
built from the modules listed there (each lists its own in ``PRIMITIVES``).
"""
from functools import lru_cache

from .base import (GENERIC_PARAMS, Param, Primitive, PrimitiveTable, StepContext, get_primitive,
                   primitive)

__all__ = ["GENERIC_PARAMS", "Param", "Primitive", "PrimitiveTable", "StepContext",
           "default_table", "get_primitive", "primitive"]


@lru_cache(maxsize=None)
def default_table() -> PrimitiveTable:
    """The table of every primitive of the package (modules imported on first use)."""
    from . import (ccd, crs, flat, fringe, mosaic, photometry, register, resample, stack,
                   standardize, store)
    return PrimitiveTable.from_modules(standardize, ccd, stack, flat, store, mosaic, resample, crs,
                                       photometry, register, fringe)
