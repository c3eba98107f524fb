"""Where the sky reaches the detector: DRAGONS' measured illumination masks.

The simulated field is lit exactly where DRAGONS' illumination mask for the
configuration says so (mask value 0) and dark where it says unilluminated
(64): no sky, no stars, no twilight there, as on the sky.  The mask is
chosen with DRAGONS' rule (:meth:`Configuration.illumination_mask`) and
placed on each amplifier through its ``DETSEC``/``CCDSEC``, as DRAGONS does.

Where DRAGONS has no mask (EEV and e2v at 4x4), the field is still
vignetted on the sky: the simulator then uses the mask of the nearest finer
binning that exists (2x2) and calls a binned pixel lit only if every finer
pixel in it is lit.  DRAGONS itself adds no unilluminated flags then.
"""
from __future__ import annotations

import functools

import numpy as np

from .instrument import Configuration, open_mask
from .layout import AmpLayout, Window

__all__ = ["mask_source", "lit_full_frame", "lit_pixels"]


def mask_source(config: Configuration, binning: int) -> tuple[str | None, int]:
    """(DRAGONS mask file, its binning) used to illuminate a data set at ``binning``."""
    for finer in (binning, 2, 1):
        if finer <= binning and binning % finer == 0:
            name = config.illumination_mask(finer)
            if name is not None:
                return name, finer
    return None, binning


@functools.lru_cache(maxsize=2)
def _read_mask(filename: str) -> tuple:
    """(DETSEC windows, boolean 'lit' arrays) of every extension of a mask file."""
    with open_mask(filename) as hdus:
        return tuple((Window.from_string(hdu.header["DETSEC"]), hdu.data == 0) for hdu in hdus[1:])


def lit_full_frame(config: Configuration, layout: AmpLayout) -> np.ndarray:
    """Boolean 'lit' map over the amplifier's full-frame binned grid."""
    name, finer = mask_source(config, layout.xbin)
    shape = layout.full_frame_shape()
    if name is None:
        return np.ones(shape, bool)
    ccd_x0 = layout.ccd * config.ccd_width
    amp_x0 = ccd_x0 + layout.amp_in_ccd * layout.amp_width
    for detsec, lit in _read_mask(name):
        if detsec.x1 <= amp_x0 and amp_x0 + layout.amp_width <= detsec.x2:
            offset = (amp_x0 - detsec.x1) // finer
            part = lit[:, offset:offset + layout.amp_width // finer]
            factor = layout.xbin // finer
            if factor > 1:
                part = part.reshape(shape[0], factor, shape[1], factor).all(axis=(1, 3))
            return part
    raise ValueError(f"{name} has no extension covering {layout.ampname}")


def lit_pixels(config: Configuration, layout: AmpLayout) -> np.ndarray:
    """Boolean 'lit' map over the amplifier's DATASEC (ROI windows included)."""
    iy, ix = layout.full_frame_indices()
    return lit_full_frame(config, layout)[np.ix_(iy, ix)]
