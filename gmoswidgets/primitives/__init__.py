"""Primitives: the steps recipes are made of, with DRAGONS' names.

:func:`default_table` is the table of every primitive the package defines,
in the modules listed in :data:`MODULES` (each lists its own in
``PRIMITIVES``).  A module is imported when one of its primitives is first
looked up: a bias reduction does not import what only the science recipe
needs (scipy.spatial, astropy.coordinates, sep).
"""
from functools import lru_cache
from importlib import import_module

from .base import (GENERIC_PARAMS, Param, Primitive, PrimitiveTable, StepContext, get_primitive,
                   primitive)

__all__ = ["DEFERRED_IMPORTS", "GENERIC_PARAMS", "MODULES", "Param", "Primitive", "PrimitiveTable",
           "StepContext", "default_table", "deferred_imports", "get_primitive", "primitive"]

#: The package's primitive modules and the names in each one's ``PRIMITIVES``, in table order
#: (tests/test_prim_params.py checks them against the modules).
MODULES = {
    "standardize": ("prepare", "addDQ", "addVAR"),
    "ccd": ("overscanCorrect", "biasCorrect", "ADUToElectrons"),
    "stack": ("stackFrames", "stackBiases", "stackFlats"),
    "flat": ("normalizeFlat", "flatCorrect"),
    "store": ("storeProcessedBias", "storeProcessedFlat", "storeProcessedFringe",
              "storeProcessedScience"),
    "mosaic": ("QECorrect", "mosaicDetectors"),
    "resample": ("resampleToCommonFrame",),
    "crs": ("flagCosmicRaysByStacking", "scaleCountsToReference"),
    "photometry": ("detectSources",),
    "register": ("adjustWCSToReference",),
    "fringe": ("fringeCorrect", "makeFringeFrame"),
}
_MODULE_OF = {name: module for module, names in MODULES.items() for name in names}
#: Heavy modules a primitive imports when it runs, not when its module is imported (numba's
#: compiled kernels, scipy.spatial): ``reduce`` imports those of a recipe's steps ahead, on a
#: thread, while the first steps run (:mod:`gmoswidgets.preload`).  A hint only: a module
#: missing here is imported by the step, as it always is.
DEFERRED_IMPORTS = {
    "mosaicDetectors": ("gmoswidgets.numerics.kernels",),
    "resampleToCommonFrame": ("gmoswidgets.numerics.kernels", "astropy.wcs"),
    "detectSources": ("gmoswidgets.primitives.photometry_kernels",
                      "gmoswidgets.numerics.background", "astropy.table", "astropy.wcs"),
    "makeFringeFrame": ("gmoswidgets.primitives.photometry_kernels",
                        "gmoswidgets.numerics.background"),
    "adjustWCSToReference": ("scipy.spatial",),
    "flagCosmicRaysByStacking": ("gmoswidgets.primitives.crs_kernels",),
    "stackFrames": ("gmoswidgets.primitives.crs_kernels", "gmoswidgets.numerics.combine_kernel"),
}


@lru_cache(maxsize=None)
def _module_primitives(module: str) -> dict:
    """The primitives of ``primitives.<module>`` by name (imports it)."""
    prims = {prim.name: prim for prim in import_module(f"{__name__}.{module}").PRIMITIVES}
    if tuple(prims) != MODULES[module]:
        raise RuntimeError(f"primitives.{module} defines {tuple(prims)}; "
                           f"primitives.MODULES lists {MODULES[module]}")
    return prims


def _load(name: str) -> Primitive:
    return _module_primitives(_MODULE_OF[name])[name]


def deferred_imports(primitives) -> tuple:
    """The :data:`DEFERRED_IMPORTS` of ``primitives`` (names, recipe order), each once, in order."""
    return tuple(dict.fromkeys(module for name in primitives
                               for module in DEFERRED_IMPORTS.get(name, ())))


@lru_cache(maxsize=None)
def default_table() -> PrimitiveTable:
    """The table of every primitive of the package (a module is imported on first use)."""
    return PrimitiveTable.lazy(_MODULE_OF, _load)
