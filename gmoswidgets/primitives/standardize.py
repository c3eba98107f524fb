"""prepare, addDQ, addVAR: make raw GMOS frames ready for arithmetic.

Semantics and defaults follow DRAGONS (``core/primitives_standardize.py``,
``core/parameters_standardize.py``, ``gmos/parameters_gmos_image.py``):

* **prepare** checks that a set of inputs can be reduced together, converts
  the pixels to float32 and writes the per-extension ``GAIN``, ``RDNOISE``,
  ``SATLEVEL``, ``NONLINEA`` and ``BUNIT`` keywords from the lookup tables,
  so every later step (and the descriptors) reads them from the header.
* **addDQ** builds the uint16 DQ plane: bad pixels from the static BPM
  (by default the ``processed_bpm`` the calibration service finds) and a
  user BPM, saturated (4) from the per-amplifier saturation level, and, for
  imaging, unilluminated (64) from DRAGONS' illumination masks.  Non-linear
  (2) is never set on GMOS: its non-linear level equals the saturation level.
* **addVAR** adds read noise and/or Poisson noise to the VAR plane; the
  ``VARNOISE`` keyword remembers which, so a component is never added twice.
"""
from __future__ import annotations

import functools
import io
import threading

import numpy as np
from astropy.io import fits

from .. import dq
from ..errors import CalibrationNotFoundError, FileProblem
from ..frame import Extension, Frame, image_pixels, read_frame
from ..gmos import geometry, lookups
from ..gmos.keywords import (BUNIT, BUNIT_ADU, GAIN, GAINSET, NONLINEA, RDNOISE, SATLEVEL,
                             TIMESTAMP_KEYWORDS, VARNOISE)
from ..sections import Section
from ._calib import (constant_plane, detector_of, each_extension, extension_binning,
                     fetch_calibration, in_electrons, light_copy, matched_planes)
from .base import Param, StepContext, primitive

__all__ = ["prepare", "addDQ", "addVAR", "illumination_mask", "illumination_mask_name"]

#: Descriptors that must agree across the inputs of one reduction, with a
#: phrase for the error message.
_SET_CHECKS = (
    ("instrument", "instrument"),
    ("detector_name", "detector"),
    ("detector_x_bin", "x binning"),
    ("detector_y_bin", "y binning"),
    ("detector_roi_setting", "readout region (ROI)"),
    ("read_speed_setting", "read speed"),
    ("gain_setting", "gain setting"),
)
_WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2")


def _is_prepared(frame) -> bool:
    return any("PREPAR" in key for key in frame.phu.keys())


def _check_set(frames) -> None:
    """Raise FileProblem naming the first input that differs from the first frame."""
    first = frames[0]
    reference = {name: first.descriptor(name) for name, _ in _SET_CHECKS}
    for frame in frames[1:]:
        for name, label in _SET_CHECKS:
            value = frame.descriptor(name)
            if value != reference[name]:
                raise FileProblem(frame.path or frame.filename,
                                  f"{label} is {value!r} but {reference[name]!r} in "
                                  f"{first.filename}; reduce files with one {label} together")
        if len(frame.exts) != len(first.exts):
            raise FileProblem(frame.path or frame.filename,
                              f"{len(frame.exts)} extensions but {len(first.exts)} in "
                              f"{first.filename}; reduce files with one readout layout together")


def _check_frame(frame, require_wcs: bool) -> None:
    for index, ext in enumerate(frame.exts, start=1):
        if "DATASEC" not in ext.header:
            raise FileProblem(frame.path or frame.filename, f"extension {index} has no DATASEC")
        if require_wcs and any(key not in ext.header for key in _WCS_KEYS):
            missing = [key for key in _WCS_KEYS if key not in ext.header]
            raise FileProblem(frame.path or frame.filename,
                              f"extension {index} has no valid WCS (missing {', '.join(missing)}); "
                              "use prepare:require_wcs=False for calibrations")


@primitive(
    Param("require_wcs", bool, True, "Require every extension to have a WCS (the calibration "
                                     "recipes pass False)."),
    suffix="_prepared",
)
def prepare(frames: list[Frame], ctx: StepContext, *, require_wcs: bool) -> list[Frame]:
    """Validate the inputs, convert pixels to float32 and standardize the headers."""
    if not frames:
        return []
    _check_set(frames)
    done = [_is_prepared(frame) for frame in frames]
    for frame, skip in zip(frames, done):
        if skip:
            ctx.log.warning("%s has already been prepared; left unchanged", frame.filename)
        else:
            _check_frame(frame, require_wcs)
    prepared = iter(ctx.map(_prepare_frame, [f for f, skip in zip(frames, done) if not skip]))
    return [light_copy(frame) if skip else next(prepared) for frame, skip in zip(frames, done)]


def _prepare_frame(frame: Frame) -> Frame:
    """prepare of one checked frame (run by ``ctx.map``): float32 pixels, standard keywords."""
    gains = frame.descriptor("gain")
    noises = frame.descriptor("read_noise")
    saturation = frame.descriptor("saturation_level")
    nonlinear = frame.descriptor("non_linear_level")
    new = light_copy(frame)
    new.phu[GAINSET] = (frame.descriptor("gain_setting"), "Gain setting of the readout")

    def standardize(index: int) -> None:
        ext = new.exts[index]
        ext.data = ext.data.astype(np.float32, copy=False)
        if ext.variance is not None:
            ext.variance = ext.variance.astype(np.float32, copy=False)
        ext.header[GAIN] = (float(gains[index]), "Gain (e-/ADU)")
        ext.header[RDNOISE] = (float(noises[index]), "Read noise (e-)")
        ext.header[SATLEVEL] = (float(saturation[index]), "Saturation level")
        ext.header[NONLINEA] = (float(nonlinear[index]), "Non-linear level")
        ext.header[BUNIT] = (BUNIT_ADU, "Physical units of the array values")

    each_extension(standardize, len(new.exts))
    return new


# -- addDQ ----------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _illum_mask_frame(name: str) -> Frame:
    """A vendored DRAGONS illumination mask, read once (:func:`~..gmos.lookups.illum_mask_fits`).

    Its SCI extensions are the mask (0 lit, 64 unilluminated), one per amplifier.
    """
    raw = io.BytesIO(lookups.illum_mask_fits(name))
    with fits.open(raw, memmap=False, lazy_load_hdus=False) as hdus:   # its headers: no copy
        exts = [Extension(image_pixels(hdu, raw), hdu.header) for hdu in hdus[1:]]
        frame = Frame(hdus[0].header, exts)
    frame.filename = name
    return frame


def illumination_mask_name(frame: Frame) -> str | None:
    """File name of DRAGONS' illumination mask for a frame, or None (PHU ``NAMPS`` is needed).

    See :func:`gmoswidgets.gmos.lookups.illum_mask_name`.
    """
    det = detector_of(frame)
    try:
        amps_per_ccd = int(frame.phu.get("NAMPS"))
    except (TypeError, ValueError):
        return None
    if det is None:
        return None
    xbin, ybin = geometry.binning_of(frame)
    return lookups.illum_mask_name(det.instrument, det.name, xbin, ybin, amps_per_ccd)


def illumination_mask(frame: Frame) -> list | None:
    """Boolean "unilluminated" plane of each extension, or None, as DRAGONS places its mask.

    The mask is DRAGONS' own (``gmos/dragons/illum``), chosen by
    :func:`illumination_mask_name`.  Each extension gets the mask
    extension whose ``DETSEC`` contains its own, cut at its offset
    (DRAGONS' ``clip_auxiliary_data``) and put in its ``DATASEC``; overscan
    columns are illuminated.  None when DRAGONS has no mask for the
    configuration (binnings such as 1x2, 4x4 EEV/e2vDD, EEV read with 6 amplifiers).
    """
    name = illumination_mask_name(frame)
    if name is None:
        return None
    cuts = matched_planes(frame, _illum_mask_frame(name), f"illumination mask {name}", fill=0)
    return [cut.data != 0 for cut in cuts]


#: :func:`illumination_mask` by mask name and readout layout, shared by the frames of a
#: step (emptied when addDQ ends) and the threads that flag them.
_UNLIT: dict = {}
_UNLIT_LOCK = threading.Lock()


def _unlit_planes(frame: Frame) -> tuple:
    """:func:`illumination_mask` of ``frame``, computed once for the frames of one layout."""
    key = (illumination_mask_name(frame),) + tuple(
        (ext.header.get("DETSEC"), ext.header.get("DATASEC"), ext.header.get("CCDSUM"),
         ext.data.shape) for ext in frame.exts)
    with _UNLIT_LOCK:
        planes = _UNLIT.get(key)
    if planes is None:
        planes = tuple(illumination_mask(frame))
        with _UNLIT_LOCK:
            planes = _UNLIT.setdefault(key, planes)
    return planes


def _rebinned_bpm(bpm: Frame, frame: Frame, path) -> Frame:
    """``bpm`` at the frame's binning: each block of finer pixels ORed (DRAGONS' rule).

    Only the data section of each BPM extension is kept (it becomes the
    whole array); extensions already at the frame's binning are unchanged.

    Raises
    ------
    FileProblem
        If the BPM is coarser than the frame, or its binning does not divide the frame's.
    """
    fx, fy = geometry.binning_of(frame)
    exts = []
    for ext in bpm.exts:
        bx, by = extension_binning(ext.header, path)
        if (bx, by) == (fx, fy):
            exts.append(ext)
            continue
        if fx % bx or fy % by:
            raise FileProblem(path, f"a {bx}x{by} BPM cannot be rebinned to the {fx}x{fy} "
                                    f"binning of {frame.filename}")
        rx, ry = fx // bx, fy // by
        plane = ext.data[Section.from_string(ext.header["DATASEC"]).slices].astype(dq.DTYPE)
        ny, nx = plane.shape[0] // ry, plane.shape[1] // rx
        blocks = plane[:ny * ry, :nx * rx].reshape(ny, ry, nx, rx)
        header = ext.header.copy()
        header["CCDSUM"] = f"{fx} {fy}"
        header["DATASEC"] = Section(0, nx, 0, ny).to_string()
        exts.append(Extension(np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1),
                              header))
    new = Frame(bpm.phu, exts)
    new.filename = bpm.filename
    return new


def _bpm_planes(frame, ctx, static_bpm, user_bpm):
    """The BPM planes (one per extension, or None) to OR into the DQ."""
    sources = []
    if static_bpm == "default":
        try:
            sources.append(fetch_calibration(frame, ctx, "processed_bpm"))
        except CalibrationNotFoundError as exc:
            ctx.log.warning("%s; no static bad pixels flagged", exc)
    elif static_bpm is not None:
        sources.append((read_frame(static_bpm), static_bpm))
    if user_bpm is not None:
        sources.append((read_frame(user_bpm), user_bpm))
    bpms = [None] * len(frame.exts)
    for bpm, path in sources:
        # a BPM's mask is the SCI plane of each extension (DRAGONS' convention)
        bpm = _rebinned_bpm(bpm, frame, path)
        for index, cut in enumerate(matched_planes(frame, bpm, "BPM")):
            values = cut.data.astype(dq.DTYPE)
            bpms[index] = values if bpms[index] is None else bpms[index] | values
        ctx.log.info("%s: bad pixels from %s", frame.filename, path)
    return bpms


@primitive(
    Param("static_bpm", str, "default", "Static BPM file; 'default' asks the calibration service "
                                        "for a processed_bpm (none found: logged, no bad pixels); "
                                        "None: no static BPM.", optional=True),
    Param("user_bpm", str, None, "User BPM file OR-ed with the static one.", optional=True),
    Param("add_illum_mask", bool, True, "Flag pixels outside the illuminated field as "
                                        "unilluminated (64)? (GMOS imaging default True)"),
    suffix="_dqAdded",
)
def addDQ(frames: list[Frame], ctx: StepContext, *, static_bpm: str | None, user_bpm: str | None,
          add_illum_mask: bool) -> list[Frame]:
    """Add the DQ plane: bad pixels (1), saturated (4), unilluminated (64)."""
    done = [all(ext.mask is not None for ext in frame.exts) for frame in frames]
    items = []
    for frame in (f for f, skip in zip(frames, done) if skip):
        ctx.log.warning("%s already has a DQ plane; left unchanged", frame.filename)
    for frame in (f for f, skip in zip(frames, done) if not skip):
        # what needs the calibration service or the log is done here, the pixels by ctx.map
        bpms = _bpm_planes(frame, ctx, static_bpm, user_bpm)
        # DRAGONS adds the mask to imaging (and spectroscopy) frames, never to biases and darks
        wants_illum = add_illum_mask and not {"BIAS", "DARK"} & frame.tags
        if wants_illum and illumination_mask_name(frame) is None:
            wants_illum = False
            ctx.log.warning("%s: DRAGONS has no illumination mask for %s %s binned %s with "
                            "NAMPS = %s; no unilluminated pixels flagged", frame.filename,
                            frame.phu.get("INSTRUME"), frame.descriptor("detector_name"),
                            "x".join(str(b) for b in geometry.binning_of(frame)),
                            frame.phu.get("NAMPS", "(missing)"))
        elif wants_illum:
            _illum_mask_frame(illumination_mask_name(frame))   # read once, before the threads
        items.append((frame, bpms, wants_illum))
    try:
        flagged = iter(ctx.map(_dq_frame, items))
    finally:
        _UNLIT.clear()      # the planes were for this step's frames
    return [light_copy(frame) if skip else next(flagged) for frame, skip in zip(frames, done)]


def _dq_frame(item) -> Frame:
    """addDQ of one frame (run by ``ctx.map``): a light copy with its DQ planes.

    ``item`` is the frame, its BPM planes (or None per extension) and
    whether to flag the unilluminated pixels.
    """
    frame, bpms, wants_illum = item
    new = light_copy(frame)
    illum = _unlit_planes(new) if wants_illum else None
    saturation = new.descriptor("saturation_level")
    nonlinear = new.descriptor("non_linear_level")

    def flag(index: int) -> None:
        ext = new.exts[index]
        data = ext.data
        saturated = data >= saturation[index]
        if not saturated.any():
            saturated = None
        nonlinear_range = None
        if nonlinear[index] < saturation[index]:    # equal on GMOS: no non-linear range
            nonlinear_range = (data >= nonlinear[index]) & (data < saturation[index])
            if not nonlinear_range.any():
                nonlinear_range = None
        if illum is None and bpms[index] is None and saturated is None and nonlinear_range is None:
            ext.mask = constant_plane(0, data.shape, dq.DTYPE)     # nothing to flag
            return
        mask = (np.zeros(data.shape, dtype=dq.DTYPE) if illum is None
                else np.multiply(illum[index], dq.UNILLUMINATED, dtype=dq.DTYPE))
        if bpms[index] is not None:
            mask |= bpms[index]
        if saturated is not None:
            np.bitwise_or(mask, dq.SATURATED, out=mask, where=saturated)
        if nonlinear_range is not None:
            np.bitwise_or(mask, dq.NON_LINEAR, out=mask, where=nonlinear_range)
        ext.mask = mask if mask.any() else constant_plane(0, mask.shape, dq.DTYPE)

    each_extension(flag, len(new.exts))
    return new


# -- addVAR ---------------------------------------------------------------------

_READ, _POISSON = "read", "Poisson"


def _components(frame) -> list:
    text = str(frame.phu.get(VARNOISE, "")).strip()
    return [c.strip() for c in text.split(",") if c.strip()]


def _add_variance(frame, components) -> None:
    """Add the noise ``components`` to every extension's VAR (new arrays; inputs untouched).

    VAR = (VAR + read) + Poisson, each term only if there is one; the sums are
    the same float32 operations as adding each term to a zero plane.
    """
    electrons = in_electrons(frame)
    gains, noises = frame.descriptor("gain"), frame.descriptor("read_noise")

    def add(index: int) -> None:
        ext, g, rn = frame.exts[index], gains[index], noises[index]
        read_var = np.float32(rn ** 2 if electrons else (rn / g) ** 2)
        if ext.variance is None and components == [_READ]:     # a constant: no memory
            ext.variance = constant_plane(read_var, ext.data.shape, np.float32)
            return
        variance = None if ext.variance is None else ext.variance.astype(np.float32, copy=False)
        if _READ in components:
            variance = read_var if variance is None else variance + read_var
        if _POISSON in components:
            poisson = np.maximum(ext.data, 0, dtype=np.float32)
            if not electrons:
                poisson /= np.float32(g)
            if variance is not None:
                poisson += variance
            variance = poisson
        ext.variance = variance

    each_extension(add, len(frame.exts))


@primitive(
    Param("read_noise", bool, False, "Add the read noise to the VAR plane?"),
    Param("poisson_noise", bool, False, "Add the Poisson noise of the data to the VAR plane?"),
    suffix="_varAdded",
)
def addVAR(frames: list[Frame], ctx: StepContext, *, read_noise: bool,
           poisson_noise: bool) -> list[Frame]:
    """Add read noise and/or Poisson noise to the VAR plane (created if absent)."""
    if not (read_noise or poisson_noise):
        ctx.log.warning("addVAR: neither read_noise nor poisson_noise requested; nothing done")
    out = []
    for frame in frames:
        new = light_copy(frame)
        done = _components(frame)
        wanted = [c for c, on in ((_READ, read_noise), (_POISSON, poisson_noise)) if on]
        for component in [c for c in wanted if c in done]:
            ctx.log.warning("%s: %s noise is already in the VAR plane; not added again",
                            frame.filename, component)
        wanted = [c for c in wanted if c not in done]
        if _POISSON in wanted:
            tags = frame.tags
            if "BIAS" in tags:
                ctx.log.warning("%s: adding Poisson noise to a bias", frame.filename)
            elif ("OVERSCAN_SUBTRACTED" not in tags
                  and TIMESTAMP_KEYWORDS["biasCorrect"] not in frame.phu):
                ctx.log.warning("%s: adding Poisson noise to data that are neither overscan- "
                                "nor bias-corrected", frame.filename)
        if wanted:
            _add_variance(new, wanted)
            new.phu[VARNOISE] = (",".join(done + wanted), "Noise components in the VAR plane")
        out.append(new)
    return out


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (prepare, addDQ, addVAR)
