"""storeProcessedBias / Flat / Fringe / Science: mark a product as processed.

As DRAGONS' ``core/primitives_calibdb.py``: the PHU gets ``PROCMODE`` and
the processed-marker timestamp (``PROCBIAS``, ``PROCFLAT``, ``PROCFRNG``,
``PROCSCI``, which give the PROCESSED tags).  That timestamp is each
primitive's timestamp keyword (:data:`~gmoswidgets.gmos.keywords.TIMESTAMP_KEYWORDS`),
so the engine stamps it as for every primitive; the primitive's suffix
(``_bias``, ``_flat``, ``_fringe``, ``_stack``) names the final file.  The
engine also writes the file and, for calibrations, the copy in
``calibrations/processed_<type>/``.
"""
from __future__ import annotations

from ..frame import Frame
from ..gmos.keywords import BUNIT, PROCMODE
from ._calib import light_copy
from .base import StepContext, primitive

__all__ = ["storeProcessedBias", "storeProcessedFlat", "storeProcessedFringe",
           "storeProcessedScience", "PROCESSING_MODE"]

#: Processing mode written to PROCMODE (science quality: the only mode here).
PROCESSING_MODE = "sq"


def _mark(frames, with_bunit=False):
    out = []
    for frame in frames:
        new = light_copy(frame)
        new.phu[PROCMODE] = (PROCESSING_MODE, "Processing mode (sq, ql or qa)")
        if with_bunit and BUNIT in new.exts[0].header:
            new.phu[BUNIT] = (new.exts[0].header[BUNIT], "Physical units of the array values")
        out.append(new)
    return out


@primitive(suffix="_bias")
def storeProcessedBias(frames: list[Frame], ctx: StepContext) -> list[Frame]:
    """Mark the master bias as a processed calibration (PROCBIAS, PROCMODE)."""
    return _mark(frames)


@primitive(suffix="_flat")
def storeProcessedFlat(frames: list[Frame], ctx: StepContext) -> list[Frame]:
    """Mark the master flat as a processed calibration (PROCFLAT, PROCMODE)."""
    return _mark(frames)


@primitive(suffix="_fringe")
def storeProcessedFringe(frames: list[Frame], ctx: StepContext) -> list[Frame]:
    """Mark the fringe frame as a processed calibration (PROCFRNG, PROCMODE, BUNIT)."""
    return _mark(frames, with_bunit=True)


@primitive(suffix="_stack")
def storeProcessedScience(frames: list[Frame], ctx: StepContext) -> list[Frame]:
    """Mark the final science product as processed (PROCSCI, PROCMODE, BUNIT)."""
    return _mark(frames, with_bunit=True)


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (storeProcessedBias, storeProcessedFlat, storeProcessedFringe, storeProcessedScience)
