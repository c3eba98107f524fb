"""QECorrect and mosaicDetectors: from one extension per amplifier to one image.

Semantics follow DRAGONS (``gmos/primitives_gmos_image.py`` for QECorrect,
``core/primitives_visualize.py`` and ``gempy/library/transform.py`` for
mosaicDetectors; see ``shared/reference/dragons-gmos-imaging.md`` 1.2):

* **QECorrect** (Hamamatsu only, before the mosaic) brings CCD1 and CCD3 to
  the sky level of CCD2: the twilight flat and the night sky differ in
  colour, so flat-fielding leaves CCD-to-CCD offsets.  CCD1 is multiplied by
  ``bg2 / bg1`` and CCD3 by ``bg2 / bg3``; with ``common=True`` one pair of
  factors, averaged over all inputs, is used.
* **mosaicDetectors** tiles the amplifiers of each CCD by their ``CCDSEC``,
  places the three CCDs with the detector geometry
  (:mod:`gmoswidgets.gmos.geometry`) and resamples them onto one image.  The
  central CCD is only translated (by whole pixels for a standard readout, so
  its pixels are copied exactly); CCD1 and CCD3 are interpolated (their VAR
  through the squared weights of the interpolant).  Chip gaps
  and pixels with no detector get ``SCI = 0`` and DQ ``no_data``.  The
  output WCS is the central CCD's, carried to mosaic pixels.
"""
from __future__ import annotations

import logging
import math
from functools import partial

import numpy as np

from .. import dq as dqbits
from ..frame import Extension, Frame
from ..gmos import geometry
from ..gmos.keywords import GAIN, NONLINEA, QEFACTOR, RDNOISE, SATLEVEL, TIMESTAMP_KEYWORDS
from ..numerics.covariance import record_resampling
from ..numerics.interpolate import (DQ_THRESHOLD, INTERPOLANTS, AffineMap, integer_shift,
                                    output_bounds, remap_wcs_header, resample_planes)
from ..numerics.stats import clipped_median
from ..sections import Section
from ._calib import light_copy
from .base import Param, StepContext, primitive

__all__ = ["QECorrect", "mosaicDetectors", "ccd_background", "mosaic_frame"]

#: Most pixels used to measure one CCD's background (a regular subsample).
_BACKGROUND_SAMPLES = 200_000
#: Fewest good pixels for a background measurement.
_MIN_BACKGROUND_SAMPLES = 100
#: Extension keywords that describe one amplifier and are dropped from a mosaic.
_PER_AMP_KEYWORDS = ("AMPNAME", "CCDNAME", "CCDSEC", "BIASSEC", "OVERSEC", QEFACTOR)


def ccd_background(frame: Frame, group: geometry.CCDGroup) -> tuple[float | None, int]:
    """Sky level of one CCD: sigma-clipped median of its good pixels.

    Parameters
    ----------
    frame : Frame
    group : gmoswidgets.gmos.geometry.CCDGroup

    Returns
    -------
    level : float or None
        None when fewer than 100 good pixels are available.
    nsamples : int
        Number of pixels the level was measured from.
    """
    samples = []
    for index in group.ext_indices:
        ext = frame.exts[index]
        good = ext.data if ext.mask is None else ext.data[ext.mask == 0]
        samples.append(np.ravel(good))
    values = np.concatenate(samples) if samples else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size > _BACKGROUND_SAMPLES:
        values = values[::math.ceil(values.size / _BACKGROUND_SAMPLES)]
    if values.size < _MIN_BACKGROUND_SAMPLES:
        return None, int(values.size)
    return clipped_median(values, sigma=3.0, maxiters=10), int(values.size)


def _qe_factors(frame: Frame, *, log):
    """``((f1, n1), (f3, n3))`` for one frame, or None if it cannot be measured."""
    groups = geometry.ccd_groups(frame)
    levels = [ccd_background(frame, g) for g in groups]
    if any(level is None or level <= 0 for level, _ in levels):
        log.warning("QECorrect: cannot measure a positive background on every CCD of %s; it is "
                    "not corrected", frame.filename)
        return None
    (bg1, n1), (bg2, _), (bg3, n3) = levels
    log.info("QECorrect: %s backgrounds %.2f, %.2f, %.2f", frame.filename, bg1, bg2, bg3)
    return (bg2 / bg1, n1), (bg2 / bg3, n3)


def _qe_eligible(frame: Frame, log) -> bool:
    if len(frame.exts) == 1:
        log.warning("QECorrect: %s has a single extension (run QECorrect before "
                    "mosaicDetectors); nothing to do", frame.filename)
        return False
    if geometry.detector_of(frame).name not in ("Hamamatsu-N", "Hamamatsu-S"):
        log.info("QECorrect: %s is not Hamamatsu data; nothing to do", frame.filename)
        return False
    if TIMESTAMP_KEYWORDS["QECorrect"] in frame.phu:
        log.warning("QECorrect: %s has already been QE-corrected", frame.filename)
        return False
    ccds = {g.ccd for g in geometry.ccd_groups(frame)}
    if ccds != {0, 1, 2}:
        log.warning("QECorrect: %s does not include all three CCDs; nothing to do", frame.filename)
        return False
    return True


def _apply_qe(job: tuple[Frame, float, float]) -> Frame:
    """``(frame, f1, f3)`` -> the frame with CCD1 multiplied by f1 and CCD3 by f3."""
    frame, f1, f3 = job
    new = light_copy(frame)
    for group in geometry.ccd_groups(frame):
        factor = {0: f1, 2: f3}.get(group.ccd, 1.0)
        if factor == 1.0:
            continue
        for index in group.ext_indices:
            ext = new.exts[index]
            ext.header[QEFACTOR] = (factor, "QECorrect factor applied")
            ext.data = ext.data * np.float32(factor)
            if ext.variance is not None:
                ext.variance = ext.variance * np.float32(factor ** 2)
    return new


def _measure_qe(frames: list[Frame], ctx: StepContext, *, common: bool,
                factors: list[float] | None) -> list[tuple[float, float] | None]:
    """QECorrect's measurement over all its inputs: per frame, ``(f1, f3)`` or None (left as
    it is).  Reads the headers, and with ``factors`` None each CCD's good pixels."""
    eligible = [_qe_eligible(frame, ctx.log) for frame in frames]
    if factors is not None:
        chosen = {i: tuple(factors) for i, ok in enumerate(eligible) if ok}
    else:
        todo = [i for i, ok in enumerate(eligible) if ok]
        found = ctx.map(partial(_qe_factors, log=ctx.log), [frames[i] for i in todo])
        measured = {i: m for i, m in zip(todo, found) if m is not None}
        if common and measured:
            (f1s, n1s), (f3s, n3s) = (zip(*pair) for pair in zip(*measured.values()))
            mean = (float(np.average(f1s, weights=n1s)), float(np.average(f3s, weights=n3s)))
            chosen = {i: mean for i in measured}
        else:
            chosen = {i: (m[0][0], m[1][0]) for i, m in measured.items()}
    for i, (f1, f3) in sorted(chosen.items()):
        ctx.log.info("QECorrect: %s CCD1 x %.4f, CCD3 x %.4f", frames[i].filename, f1, f3)
    return [chosen.get(i) for i in range(len(frames))]


@primitive(
    Param("common", bool, True, "Use one pair of factors for all inputs (sample-weighted mean)."),
    Param("factors", list, None, "Factors [f1, f3] for CCD1 and CCD3 instead of measuring them "
          "(1,1 disables the correction).", optional=True,
          check=lambda factors: None if len(factors) == 2 else
          f"needs two values [f1, f3], got {len(factors)}"),
    suffix="_bgAdjusted",
    measure=_measure_qe,
)
def QECorrect(frames: list[Frame], ctx: StepContext, *, measured: list, common: bool,
              factors: list[float] | None) -> list[Frame]:
    """Match the sky level of CCD1 and CCD3 to CCD2 (Hamamatsu, before mosaicDetectors).

    The factors are measured over all the inputs first (:func:`_measure_qe`,
    the primitive's ``measure``), then applied frame by frame: the engine may
    apply them a few frames at a time, chained with mosaicDetectors.

    Parameters
    ----------
    frames : list of Frame
        Flat-fielded frames, one extension per amplifier (or per CCD).
    ctx : StepContext
    measured : list
        Per frame, ``(f1, f3)`` to apply or None (the measurement's).
    common : bool
        Average the measured factors over all inputs, weighted by the
        number of background samples.
    factors : list of float, optional
        ``[f1, f3]``: multiply CCD1 by f1 and CCD3 by f3 without measuring.

    Returns
    -------
    list of Frame
    """
    todo = [i for i, pair in enumerate(measured) if pair is not None]
    corrected = dict(zip(todo, ctx.map(_apply_qe, [(frames[i], *measured[i]) for i in todo])))
    return [corrected.get(i, frame) for i, frame in enumerate(frames)]


# -- mosaicDetectors ---------------------------------------------------------------

def _mosaic_header(frame: Frame, ref_index: int, ref_group, origin, out_shape, xbin, ybin):
    """Header of the mosaic: the reference amplifier's, with sections, noise and WCS updated."""
    ref = frame.exts[ref_index]
    header = ref.header.copy()
    for key in _PER_AMP_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)
    header["DATASEC"] = Section(0, out_shape[1], 0, out_shape[0]).to_string()
    detsecs = [Section.from_string(ext.header["DETSEC"]) for ext in frame.exts]
    header["DETSEC"] = Section(min(s.x1 for s in detsecs), max(s.x2 for s in detsecs),
                               min(s.y1 for s in detsecs), max(s.y2 for s in detsecs)).to_string()
    for key, combine in ((RDNOISE, np.mean), (GAIN, np.mean), (SATLEVEL, min), (NONLINEA, min)):
        values = [float(ext.header[key]) for ext in frame.exts if key in ext.header]
        if len(values) == len(frame.exts):
            header[key] = float(combine(values))
    if "CRPIX1" in header and "CRPIX2" in header:
        # mosaic pixel -> mosaic coordinates -> CCD coordinates -> reference amplifier pixel
        datasec = Section.from_string(ref.header["DATASEC"])
        ccdsec = Section.from_string(ref.header["CCDSEC"])
        to_amp = (AffineMap.translation(*origin)
                  .then(geometry.ccd_to_mosaic(frame, ref_group.ccd).inverse())
                  .then(AffineMap.translation(datasec.x1 - ccdsec.x1 / xbin,
                                              datasec.y1 - ccdsec.y1 / ybin)))
        remap_wcs_header(header, to_amp)
    return header


def _paste_parts(parts: dict, to_tile: AffineMap, box_shape, out) -> None:
    """Copy each extension's pieces (:func:`~gmoswidgets.gmos.geometry.tile_parts`) of a CCD
    placed by whole pixels into the mosaic windows ``out`` (SCI, VAR, DQ; None: not made),
    as resampling its tile would (an extension without DQ gives DQ 0)."""
    data = parts["data"]
    variance = parts.get("variance") if out[1] is not None else None
    masks = parts.get("mask") if out[2] is not None else None
    for k, ((x0, y0), part) in enumerate(data):
        to_part = to_tile.then(AffineMap.translation(-x0, -y0))
        mask = None
        if out[2] is not None:
            mask = masks[k][1] if masks is not None else np.zeros(part.shape, dqbits.DTYPE)
        resample_planes(part, None if variance is None else variance[k][1], mask, to_part,
                        box_shape, out=out)


def mosaic_frame(frame: Frame, *, interpolant: str, sci_only: bool,
                 log: logging.Logger | None = None) -> Frame:
    """Mosaic one frame's amplifiers into a single extension.

    Parameters
    ----------
    frame : Frame
        One extension per amplifier or per CCD, trimmed to the data.
    interpolant : str
        See :data:`gmoswidgets.numerics.interpolate.INTERPOLANTS`.
    sci_only : bool
        Build only the SCI plane.
    log : logging.Logger, optional

    Returns
    -------
    Frame
        A new frame with one extension.
    """
    groups = geometry.ccd_groups(frame)
    xbin, ybin = geometry.binning_of(frame)
    planes = ("data",) if sci_only else ("data", "variance", "mask")
    shapes = [geometry.tile_shape(group, xbin, ybin) for group in groups]
    to_mosaic = [AffineMap.translation(*geometry.tile_origin(group, xbin, ybin))
                 .then(geometry.ccd_to_mosaic(frame, group.ccd)) for group in groups]
    origin, out_shape = output_bounds(list(zip(to_mosaic, shapes)))
    sci = np.zeros(out_shape, dtype=np.float32)
    var = (None if sci_only or geometry.tile_parts(frame, groups[0], "variance") is None
           else np.zeros(out_shape, np.float32))
    mask = None if sci_only else np.full(out_shape, dqbits.NO_DATA, dtype=dqbits.DTYPE)
    placements = []
    buffers = {}    # one tile per plane, reused by the CCDs that are interpolated
    for group, amap, shape in zip(groups, to_mosaic, shapes):
        # The tile's bounding box in the output, and the map from that box to tile pixels.
        to_output = amap.then(AffineMap.translation(-origin[0], -origin[1]))
        (bx, by), bshape = output_bounds([(to_output, shape)])
        by0, bx0 = max(by, 0), max(bx, 0)
        by1, bx1 = min(by + bshape[0], out_shape[0]), min(bx + bshape[1], out_shape[1])
        box = (slice(by0, by1), slice(bx0, bx1))
        box_shape = (by1 - by0, bx1 - bx0)
        to_tile = AffineMap.translation(bx0 + origin[0], by0 + origin[1]).then(amap.inverse())
        placements.append(((bx0, bx1, by0, by1),
                           AffineMap.translation(*origin).then(amap.inverse())))
        out = (sci[box], None if var is None else var[box], None if mask is None else mask[box])
        parts = {plane: geometry.tile_parts(frame, group, plane) for plane in planes}
        if integer_shift(to_tile) is not None and all(
                parts[plane] is None or geometry.parts_cover(parts[plane], shape)
                for plane in planes):
            # whole pixels: each extension copied straight to the mosaic (no tile)
            _paste_parts(parts, to_tile, box_shape, out)
            continue
        tile = geometry.tile_planes(frame, group, planes, buffers=buffers, parts=parts)
        buffers.update((plane, array) for plane, array in tile.items() if array is not None)
        tile_mask = None
        if mask is not None:  # gaps are flagged no_data even if the input had no DQ
            tile_mask = tile["mask"] if tile["mask"] is not None else np.zeros(shape, dqbits.DTYPE)
        resample_planes(tile["data"], None if var is None else tile["variance"], tile_mask,
                        to_tile, box_shape, interpolant, threshold=DQ_THRESHOLD, out=out)
    ref_index = geometry.reference_extension(frame, groups)
    ref_group = next(g for g in groups if ref_index in g.ext_indices)
    header = _mosaic_header(frame, ref_index, ref_group, origin, out_shape, xbin, ybin)
    if var is not None:     # for the VAR of a later resampling (numerics.covariance)
        record_resampling(header, interpolant, placements)
    if log is not None and any(ext.objcat is not None or ext.objmask is not None
                               for ext in frame.exts):
        log.warning("mosaicDetectors: %s: OBJCAT/OBJMASK of the amplifiers are not carried to "
                    "the mosaic", frame.filename)
    new = light_copy(frame)
    new.exts = [Extension(sci, header, var, mask)]
    return new


@primitive(
    Param("interpolant", str, "poly3", "Interpolation used to place the CCDs.",
          choices=INTERPOLANTS),
    Param("sci_only", bool, False, "Mosaic only the SCI planes (VAR and DQ are dropped)."),
    suffix="_mosaic",
)
def mosaicDetectors(frames: list[Frame], ctx: StepContext, *, interpolant: str,
                    sci_only: bool) -> list[Frame]:
    """Tile the amplifiers and place the CCDs into one mosaic image.

    Parameters
    ----------
    frames : list of Frame
        One extension per amplifier (or per CCD), trimmed to the data.
    ctx : StepContext
    interpolant : str
        Interpolant for CCD1 and CCD3 (CCD2 is shifted by whole pixels).
    sci_only : bool
        Mosaic only the SCI planes.

    Returns
    -------
    list of Frame
        One single-extension frame per input.
    """
    single = [i for i, frame in enumerate(frames) if len(frame.exts) == 1]
    for i in single:
        ctx.log.info("mosaicDetectors: %s has a single extension; nothing to do",
                     frames[i].filename)
    todo = [frame for i, frame in enumerate(frames) if i not in single]
    mosaics = iter(ctx.map(partial(mosaic_frame, interpolant=interpolant, sci_only=sci_only,
                                   log=ctx.log), todo))
    return [frame if i in single else next(mosaics) for i, frame in enumerate(frames)]


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (QECorrect, mosaicDetectors)
