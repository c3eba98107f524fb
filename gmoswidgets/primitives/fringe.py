"""makeFringeFrame and fringeCorrect (DRAGONS ``core/primitives_image.py`` + GMOS wrappers).

Both work on per-amplifier frames, before mosaicDetectors: the fringe
pattern is fixed to the detector, so the fringe frame has the science
frames' structure.

* makeFringeFrame: at least 3 dithered frames; each frame's background
  level is removed, sources are found and masked (object mask dilated by
  ``dilation`` pixels, as DRAGONS, plus ``seeing_dilation`` times the
  frame's seeing FWHM, so that the masks cover the stars' wings at any
  binning; ORed into DQ as DRAGONS' addObjectMaskToDQ does),
  and the frames are combined with the stacker (mean, varclip 3/3).
* fringeCorrect: only for the detector/filter pairs of the seed's
  "Fringe Correction Tables" (:data:`~gmoswidgets.gmos.lookups.FRINGE_FILTERS`);
  SCI -= x F, VAR += x^2 VAR_F, DQ |= DQ_F, where x is 1, the user's
  ``scale_factor`` or a least-squares fit.  When the frame is itself one
  of the fringe frame's inputs (its name among the fringe frame's
  ``IMCMBnnn``), its noise is partly F's: VAR += (x^2 - 2x) VAR_F instead
  (:func:`corrected_variance`; DRAGONS adds x^2 VAR_F in every case).
"""
from __future__ import annotations

import itertools
import logging
from functools import partial

import numpy as np

from .. import dq
from ..errors import FileProblem, ParameterError
from ..fitstext import from_header_text, to_header_text
from ..frame import Extension, Frame
from ..gmos import lookups
from ..gmos.keywords import COMBINED_INPUT, FRINGEIM, OBSID
from ..numerics.combine import combine_arrays
from ._calib import DO_CAL_CHOICES, CalPlanes, apply_calibration, matched_planes
from ..outputs import original_name
from .base import Param, StepContext, primitive
from .photometry import DETECTION_PARAMS, extension_wcs, find_sources
from .stack import stack_frames, stack_params

__all__ = ["needs_fringe_correction", "fringe_scale", "corrected_variance", "fringe_inputs",
           "fringeCorrect", "makeFringeFrame", "DITHER_MIN_SEPARATION"]

#: makeFringeFrame refuses inputs whose pointings all lie closer than this (arcsec;
#: DRAGONS' ``debug_distance``).
DITHER_MIN_SEPARATION = 5.0
#: Default growth of makeFringeFrame's object masks beyond DRAGONS' fixed ``dilation``, in
#: units of the frame's seeing FWHM: a Moffat (beta ~3) star keeps ~2 % of its light beyond
#: ~2.5 FWHM, and the detection isophote of a 1x1 frame lies near 1.3 FWHM; light left
#: unmasked goes into the fringe frame and is subtracted from every frame.
SEEING_DILATION = 1.5
#: Minimum number of inputs of makeFringeFrame.
MIN_FRINGE_INPUTS = 3
#: Clipping of the least-squares fringe scale: threshold (robust sigmas) and passes.
_SCALE_CLIP_SIGMA = 3.0
_SCALE_CLIP_PASSES = 5
#: Pixels never used to measure the fringe scale (anything but non-linear).
_SCALE_BAD_BITS = 65535 ^ dq.NON_LINEAR


def needs_fringe_correction(frame: Frame) -> tuple[bool, str, str]:
    """Whether the frame's detector and filter need a fringe correction (seed appendix).

    Returns
    -------
    needed : bool
    detector : str
        The ``detector_name`` descriptor.
    filter_name : str
        The ``filter_name`` descriptor.
    """
    detector = frame.descriptor("detector_name")
    filt = frame.descriptor("filter_name")
    return filt in lookups.FRINGE_FILTERS.get(detector, frozenset()), detector, filt


# -- fringeCorrect --------------------------------------------------------------

def fringe_scale(science_exts: list[Extension],
                 fringe_planes: list[CalPlanes]) -> tuple[float, int]:
    """Least-squares scale of a fringe frame in a science frame, over all extensions.

    ``x = sum cov(S, F) / sum var(F)`` (DRAGONS' ``(n sum SF - sum S sum F) /
    (n sum F^2 - (sum F)^2)``, pooled over extensions, each about its own
    mean so that the sky level of every amplifier drops out), using pixels
    that are good in both DQ planes and outside the science OBJMASK; pixels
    off the fit by more than 3 robust sigmas (stars, cosmic rays) are
    rejected and the fit repeated.

    Parameters
    ----------
    science_exts : list of Extension
    fringe_planes : list of CalPlanes
        The fringe frame cut to each science extension.

    Returns
    -------
    scale : float
        NaN if no pixel is usable.
    npix : int
        Number of pixels used in the last pass.
    """
    samples = []
    for ext, planes in zip(science_exts, fringe_planes):
        good = np.isfinite(ext.data) & np.isfinite(planes.data)
        if ext.mask is not None:
            good &= (ext.mask & _SCALE_BAD_BITS) == 0
        if planes.mask is not None:
            good &= (planes.mask & _SCALE_BAD_BITS) == 0
        if ext.objmask is not None:
            good &= ext.objmask == 0
        if good.any():
            samples.append((ext.data[good].astype(np.float64),
                            planes.data[good].astype(np.float64)))
    if not samples:
        return float("nan"), 0
    keeps = [np.ones(s.size, dtype=bool) for s, _ in samples]
    scale = float("nan")
    for _ in range(_SCALE_CLIP_PASSES):
        cov = var = 0.0
        centred = []
        for (s, f), keep in zip(samples, keeps):
            if keep.sum() < 2:
                centred.append(None)
                continue
            sc, fc = s - s[keep].mean(), f - f[keep].mean()
            cov += float(np.dot(sc[keep], fc[keep]))
            var += float(np.dot(fc[keep], fc[keep]))
            centred.append((sc, fc))
        if var <= 0:
            return float("nan"), 0
        scale = cov / var
        resid = [None if c is None else c[0] - scale * c[1] for c in centred]
        pooled = np.concatenate([r[k] for r, k in zip(resid, keeps) if r is not None])
        sigma = 1.4826 * float(np.median(np.abs(pooled - np.median(pooled))))
        if sigma <= 0:
            break
        new_keeps = [k if r is None else np.abs(r) <= _SCALE_CLIP_SIGMA * sigma
                     for r, k in zip(resid, keeps)]
        if all(np.array_equal(a, b) for a, b in zip(new_keeps, keeps)):
            break
        keeps = new_keeps
    return scale, int(sum(k.sum() for k in keeps))


def fringe_inputs(fringe: Frame) -> set[str]:
    """Original file names of the frames a fringe frame was made from (its ``IMCMBnnn``)."""
    names, index = set(), 1
    while COMBINED_INPUT.format(index) in fringe.phu:
        names.add(from_header_text(str(fringe.phu[COMBINED_INPUT.format(index)]).strip()))
        index += 1
    return names


def corrected_variance(variance: np.ndarray, fringe_variance: np.ndarray, scale: float, *,
                       own_input: bool) -> np.ndarray:
    """VAR of ``S - x F``.

    ``VAR_S + x^2 VAR_F - 2 x cov(S, F)``.  F is independent of S
    (``own_input`` False), or S is one of the N_p frames averaged into F
    at a pixel: then ``cov(S, F) = VAR_S / N_p``, which equals ``VAR_F =
    sum(VAR_j) / N_p^2`` when the inputs have similar variances, so VAR
    becomes ``VAR_S + (x^2 - 2x) VAR_F`` (``VAR_S - VAR_F`` at scale 1:
    the leave-one-out variance ``VAR_S (1 - 1/N_p)``).  Where S itself was
    masked in F (its own sources) the covariance is really 0, so there VAR
    is underestimated by ~2x VAR_F, small beside a source's Poisson
    variance.  Clipped at zero.
    """
    x = np.float32(scale)
    if not own_input:
        return variance + (x * x) * fringe_variance
    return np.maximum(variance + (x * x - 2 * x) * fringe_variance, np.float32(0))


def _scale_factors(scale_factor, nframes):
    if scale_factor is None:
        return [None] * nframes
    if len(scale_factor) == 1:
        return list(scale_factor) * nframes
    if len(scale_factor) != nframes:
        raise ParameterError(f"fringeCorrect:scale_factor: {len(scale_factor)} values given for "
                             f"{nframes} frames; give one, or one per frame")
    return list(scale_factor)


def _subtract_fringe(new: Frame, cal: Frame, index: int, *, factors: list,
                     scale: bool | None, log: logging.Logger) -> None:
    """fringeCorrect of one frame (run by ``ctx.map``): scale, then subtract the fringe frame."""
    planes = matched_planes(new, cal, "fringe frame")
    factor = factors[index]
    if factor is None:
        fit = scale if scale is not None else (
            str(cal.phu.get(OBSID, "")).strip() != str(new.phu.get(OBSID, "")).strip())
        if fit:
            factor, npix = fringe_scale(new.exts, planes)
            if not np.isfinite(factor):
                raise FileProblem(new.path or new.filename,
                                  "no good pixels to scale the fringe frame on")
            log.info("%s: fringe scale %.4f (least squares over %d pixels)",
                     new.filename, factor, npix)
        else:
            factor = 1.0
            log.info("%s: fringe frame from the same observation; scale 1", new.filename)
    else:
        log.info("%s: fringe scale %.4f (user)", new.filename, factor)
    own_input = original_name(new) in fringe_inputs(cal)
    if own_input:
        log.info("%s is one of the fringe frame's inputs: its covariance with the fringe frame "
                 "is taken out of VAR", new.filename)
    x = np.float32(factor)
    for ext, plane in zip(new.exts, planes):
        ext.data = ext.data - x * plane.data
        if ext.variance is not None and plane.variance is not None:
            ext.variance = corrected_variance(ext.variance, plane.variance, factor,
                                              own_input=own_input)
        if ext.mask is not None and plane.mask is not None:
            ext.mask = ext.mask | plane.mask


@primitive(
    Param("fringe", str, None, "Processed fringe file; None asks the calibration database.",
          optional=True),
    Param("do_cal", str, "procmode", "'procmode': correct where the detector/filter needs it; "
                                     "'force': correct anyway; 'skip': do nothing.",
          choices=DO_CAL_CHOICES),
    Param("scale", bool, None, "Scale the fringe frame to each image? (None: only when it comes "
                               "from another observation)", optional=True),
    Param("scale_factor", list, None, "Fringe scale factor(s), one or one per image (overrides "
                                      "scale).", optional=True,
          check=lambda factors: None if factors else "give one value, or one per image"),
    suffix="_fringeCorrected", calibrations=("processed_fringe",),
)
def fringeCorrect(frames: list[Frame], ctx: StepContext, *, fringe: str | None, do_cal: str,
                  scale: bool | None, scale_factor: list[float] | None) -> list[Frame]:
    """Subtract a scaled processed fringe frame (only where detector and filter need it)."""
    factors = _scale_factors(scale_factor, len(frames))

    def not_needed(frame):
        needed, detector, filt = needs_fringe_correction(frame)
        return None if needed else f"fringe correction not needed for {detector} {filt}"

    subtract = partial(_subtract_fringe, factors=factors, scale=scale, log=ctx.log)
    return apply_calibration(frames, ctx, "fringeCorrect", "processed_fringe", fringe, do_cal,
                             subtract, FRINGEIM, check_units=True, skip_reason=not_needed)


# -- makeFringeFrame --------------------------------------------------------------

def _pointing(frame):
    """Sky position (a SkyCoord) of the centre of the frame's first extension (WCS, else RA/DEC)."""
    from astropy.coordinates import SkyCoord  # ~0.1 s to import: only when making a fringe frame
    ext = frame.exts[0]
    wcs = extension_wcs(ext.header)
    if wcs is not None:
        ny, nx = ext.shape
        ra, dec = wcs.all_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)[0]
    else:
        ra, dec = frame.descriptor("ra"), frame.descriptor("dec")
    return SkyCoord(ra, dec, unit="deg")


def _well_dithered(frames) -> bool:
    """False when every pair of pointings is closer than :data:`DITHER_MIN_SEPARATION`."""
    points = [_pointing(f) for f in frames]
    return any(a.separation(b).arcsec >= DITHER_MIN_SEPARATION
               for a, b in itertools.combinations(points, 2))


def _background_level(frame) -> float:
    """Median of the good pixels of all extensions (one level per frame)."""
    values = []
    for ext in frame.exts:
        good = np.isfinite(ext.data)
        if ext.mask is not None:
            good &= (ext.mask & _SCALE_BAD_BITS) == 0
        values.append(ext.data[good][::7])
    pooled = np.concatenate(values)
    if pooled.size == 0:
        raise FileProblem(frame.path or frame.filename, "no good pixels to measure the background")
    return float(np.median(pooled))


def _disk(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx ** 2 + yy ** 2 <= radius ** 2


#: Sources whose FWHM sets the seeing of a frame: unflagged, at least this S/N.
_SEEING_MIN_SNR = 20.0


def _seeing_fwhm(tables) -> float:
    """Median FWHM_IMAGE (pixels) of a frame's unflagged bright sources; NaN if none."""
    fwhms = []
    for table in tables:
        if len(table) == 0:
            continue
        flux, err = np.asarray(table["FLUX_AUTO"]), np.asarray(table["FLUXERR_AUTO"])
        good = (np.asarray(table["FLAGS"]) == 0) & (flux > _SEEING_MIN_SNR * err)
        fwhms.append(np.asarray(table["FWHM_IMAGE"])[good])
    fwhms = np.concatenate(fwhms) if fwhms else np.array([])
    fwhms = fwhms[np.isfinite(fwhms)]
    return float(np.median(fwhms)) if fwhms.size else float("nan")


def _object_masks(work, detect, subtract_median_image):
    """OBJMASK of every extension of the background-subtracted ``work`` frames.

    Returns
    -------
    masks : list of list of numpy.ndarray
        Boolean source masks, per frame and extension.
    fwhms : list of float
        Each frame's seeing FWHM in its pixels (:func:`_seeing_fwhm`).
    """
    masks, fwhms = [], []
    medians = None
    if subtract_median_image:
        medians = [combine_arrays([f.exts[i].data for f in work], None,
                                  [f.exts[i].mask for f in work], operation="median",
                                  reject_method="minmax", nlow=0, nhigh=1)[0]
                   for i in range(len(work[0].exts))]
    for frame in work:
        frame_masks, tables = [], []
        for i, ext in enumerate(frame.exts):
            image = ext.data if medians is None else ext.data - medians[i]
            table, segmap = find_sources(image, ext.variance, ext.mask, **detect)
            if medians is None and ext.objmask is not None:
                frame_masks.append(ext.objmask != 0)
            else:
                frame_masks.append(segmap > 0)
            tables.append(table)
        masks.append(frame_masks)
        fwhms.append(_seeing_fwhm(tables))
    return masks, fwhms


_STACK_PARAMS = stack_params(reject_method="varclip", scaling=False)


@primitive(
    Param("subtract_median_image", bool, None, "Find sources after subtracting the median of "
                                               "the inputs? (None: for Gemini-South data)",
          optional=True),
    Param("dilation", float, 2.0, "Radius (pixels) by which the object masks are grown.",
          min=0.0),
    Param("seeing_dilation", float, SEEING_DILATION, "Further growth of the object masks, in "
                                                     "units of each frame's seeing FWHM (0: "
                                                     "DRAGONS' fixed dilation only).", min=0.0),
    *_STACK_PARAMS, *DETECTION_PARAMS,
    suffix="_fringe",
)
def makeFringeFrame(frames: list[Frame], ctx: StepContext, *, subtract_median_image: bool | None,
                    dilation: float, seeing_dilation: float, operation: str,
                    reject_method: str, hsigma: float, lsigma: float, mclip: bool,
                    max_iters: int | None, nlow: int, nhigh: int,
                    separate_ext: bool, apply_dq: bool, memory: float | None, mask: bool,
                    replace_flags: int, set_saturation: bool, detect_minarea: int,
                    detect_thresh: float, analysis_thresh: float, deblend_mincont: float,
                    phot_min_radius: float, back_size: int, back_filtersize: int) -> list[Frame]:
    """Combine dithered science frames, sources masked, into a fringe frame.

    Needs at least 3 frames, all of a detector/filter that needs fringe
    correction, with pointings not all within 5 arcsec of each other;
    otherwise a warning is logged and nothing is returned.
    """
    if len(frames) < MIN_FRINGE_INPUTS:
        ctx.log.warning("makeFringeFrame: fewer than %d frames provided as input; not making a "
                        "fringe frame", MIN_FRINGE_INPUTS)
        return []
    for frame in frames:
        needed, detector, filt = needs_fringe_correction(frame)
        if not needed:
            ctx.log.warning("makeFringeFrame: %s (%s %s) does not need fringe correction; not "
                            "making a fringe frame", frame.filename, detector, filt)
            return []
    if len({f.descriptor("filter_name") for f in frames}) > 1:
        ctx.log.warning("makeFringeFrame: mismatched filters in input; not making a fringe frame")
        return []
    if not _well_dithered(frames):
        ctx.log.warning("makeFringeFrame: insufficient dithering (all pointings within %.0f "
                        "arcsec); not making a fringe frame", DITHER_MIN_SEPARATION)
        return []
    if subtract_median_image is None:
        subtract_median_image = any(f.descriptor("instrument") == "GMOS-S" for f in frames)

    work = []
    for frame in frames:
        copy = frame.copy()
        level = np.float32(_background_level(copy))
        for ext in copy.exts:
            ext.data -= level
            if ext.mask is None:
                ext.mask = np.zeros(ext.shape, dtype=dq.DTYPE)
        ctx.log.info("%s: background level %.1f removed", frame.filename, level)
        work.append(copy)
    ctx.progress(0.1, "makeFringeFrame: finding sources")
    detect = dict(mask=mask, replace_flags=replace_flags, set_saturation=set_saturation,
                  detect_minarea=detect_minarea, detect_thresh=detect_thresh,
                  analysis_thresh=analysis_thresh, deblend_mincont=deblend_mincont,
                  phot_min_radius=phot_min_radius, back_size=back_size,
                  back_filtersize=back_filtersize)
    masks, fwhms = _object_masks(work, detect, subtract_median_image)
    for frame, frame_masks, fwhm in zip(work, masks, fwhms):
        radius = dilation + (seeing_dilation * fwhm if np.isfinite(fwhm) else 0.0)
        ctx.log.info("%s: seeing FWHM %.2f pix; object masks grown by %.1f pix", frame.filename,
                     fwhm, radius)
        structure = _disk(radius) if radius >= 1 else None
        for ext, objects in zip(frame.exts, frame_masks):
            if structure is not None:
                from scipy import ndimage  # ~0.2 s to import: only when making a fringe frame
                objects = ndimage.binary_dilation(objects, structure=structure)
            ext.mask |= objects.astype(dq.DTYPE) * dq.DTYPE(dq.BAD_PIXEL)
            ext.objmask = ext.objcat = None
    ctx.progress(0.3, "makeFringeFrame: stacking")
    out = stack_frames(work, ctx, operation=operation, reject_method=reject_method,
                       separate_ext=separate_ext, hsigma=hsigma, lsigma=lsigma, mclip=mclip,
                       max_iters=max_iters, nlow=nlow, nhigh=nhigh, apply_dq=apply_dq,
                       memory=memory)
    for index, frame in enumerate(frames, start=1):
        out.phu[COMBINED_INPUT.format(index)] = (to_header_text(original_name(frame)),
                                                  "Input of the fringe frame")
    obsids = list(dict.fromkeys(str(f.phu.get(OBSID, "")).strip() for f in frames))
    if len(obsids) > 1:
        out.phu[OBSID] = "+".join(obsids)
    ctx.log.info("makeFringeFrame: fringe frame from %d frames", len(frames))
    return [out]


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (fringeCorrect, makeFringeFrame)
