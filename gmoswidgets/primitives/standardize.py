"""prepare, addDQ, addVAR: make raw GMOS frames ready for arithmetic.

Semantics and defaults follow DRAGONS (``core/primitives_standardize.py``,
``core/parameters_standardize.py``, ``gmos/parameters_gmos_image.py``):

* **prepare** checks that a set of inputs can be reduced together, converts
  the pixels to float32 and writes the per-extension ``GAIN``, ``RDNOISE``,
  ``SATLEVEL``, ``NONLINEA`` and ``BUNIT`` keywords from the lookup tables,
  so every later step (and the descriptors) reads them from the header.
* **addDQ** builds the uint16 DQ plane: bad pixels from a BPM, saturated (4),
  non-linear (2) and, for imaging, unilluminated (64) outside the field.
* **addVAR** adds read noise and/or Poisson noise to the VAR plane; the
  ``VARNOISE`` keyword remembers which, so a component is never added twice.
"""
from __future__ import annotations

import numpy as np

from .. import dq
from ..errors import CalibrationNotFoundError, FileProblem
from ..frame import Frame, read_frame
from ..gmos import geometry, lookups
from ..gmos.keywords import (BUNIT, BUNIT_ADU, GAIN, GAINSET, NONLINEA, RDNOISE, SATLEVEL,
                             TIMESTAMP_KEYWORDS, VARNOISE)
from ..sections import Section
from ._calib import constant_plane, detector_of, in_electrons, light_copy, matched_planes
from .base import Param, StepContext, primitive

__all__ = ["prepare", "addDQ", "addVAR", "illumination_mask"]

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
    out = []
    for frame in frames:
        if _is_prepared(frame):
            ctx.log.warning("%s has already been prepared; left unchanged", frame.filename)
            out.append(light_copy(frame))
            continue
        _check_frame(frame, require_wcs)
        gains = frame.descriptor("gain")
        noises = frame.descriptor("read_noise")
        saturation = frame.descriptor("saturation_level")
        nonlinear = frame.descriptor("non_linear_level")
        new = light_copy(frame)
        new.phu[GAINSET] = (frame.descriptor("gain_setting"), "Gain setting of the readout")
        for ext, g, rn, sat, nonlin in zip(new.exts, gains, noises, saturation, nonlinear):
            ext.data = ext.data.astype(np.float32, copy=False)
            if ext.variance is not None:
                ext.variance = ext.variance.astype(np.float32, copy=False)
            ext.header[GAIN] = (float(g), "Gain (e-/ADU)")
            ext.header[RDNOISE] = (float(rn), "Read noise (e-)")
            ext.header[SATLEVEL] = (float(sat), "Saturation level")
            ext.header[NONLINEA] = (float(nonlin), "Non-linear level")
            ext.header[BUNIT] = (BUNIT_ADU, "Physical units of the array values")
        out.append(new)
    return out


# -- addDQ ----------------------------------------------------------------------

def illumination_mask(frame: Frame) -> list | None:
    """Boolean "unilluminated" mask of each extension's data section, or None.

    Each data pixel is placed in the mosaic with
    :func:`gmoswidgets.gmos.geometry.ccd_to_mosaic` (DRAGONS' CCD shifts and
    rotations) and tested against the illuminated field of
    :data:`gmoswidgets.gmos.lookups.ILLUMINATED_FIELD`, a circle about the
    centre of CCD2 in unbinned pixels.  None when the detector, its field or
    its geometry is unknown.
    """
    det = detector_of(frame)
    field = lookups.ILLUMINATED_FIELD.get(det.name) if det else None
    if field is None:
        return None
    try:
        groups = geometry.ccd_groups(frame)
        to_mosaic = {group.ccd: geometry.ccd_to_mosaic(frame, group.ccd) for group in groups}
    except FileProblem:
        return None
    xbin, ybin = geometry.binning_of(frame)
    # the field centre in binned mosaic (= CCD2) coordinates, whose pixel centres are integers
    cx = (det.ccd_width / xbin - 1) / 2.0 + field.centre[0] / xbin
    cy = (det.ccd_height / ybin - 1) / 2.0 + field.centre[1] / ybin
    masks = [None] * len(frame.exts)
    for group in groups:
        for index in group.ext_indices:
            header = frame.exts[index].header
            ccdsec = Section.from_string(header["CCDSEC"])
            ny, nx = Section.from_string(header["DATASEC"]).shape
            x, y = np.meshgrid(ccdsec.x1 / xbin + np.arange(nx), ccdsec.y1 / ybin + np.arange(ny))
            xm, ym = to_mosaic[group.ccd](x, y)
            masks[index] = ((xm - cx) * xbin) ** 2 + ((ym - cy) * ybin) ** 2 > field.radius ** 2
    return masks


def _bpm_planes(frame, ctx, static_bpm, user_bpm):
    """The BPM planes (one per extension, or None) to OR into the DQ."""
    sources = []
    if static_bpm == "default":
        try:
            bpm, path, _ = ctx.calibration(frame, "processed_bpm")
            sources.append((bpm, path))
        except CalibrationNotFoundError:
            ctx.log.warning("%s: no processed_bpm found; no static bad pixels flagged",
                            frame.filename)
    elif static_bpm is not None:
        sources.append((read_frame(static_bpm), static_bpm))
    if user_bpm is not None:
        sources.append((read_frame(user_bpm), user_bpm))
    bpms = [None] * len(frame.exts)
    for bpm, path in sources:
        for index, cut in enumerate(matched_planes(frame, bpm, "BPM")):
            values = (cut.mask if cut.mask is not None else cut.data).astype(dq.DTYPE)
            bpms[index] = values if bpms[index] is None else bpms[index] | values
        ctx.log.info("%s: bad pixels from %s", frame.filename, path)
    return bpms


@primitive(
    Param("static_bpm", str, None, "Static BPM file; 'default' asks the calibration database for "
                                   "a processed_bpm (None here: none is in caldb by default).",
          optional=True),
    Param("user_bpm", str, None, "User BPM file OR-ed with the static one.", optional=True),
    Param("add_illum_mask", bool, True, "Flag pixels outside the illuminated field as "
                                        "unilluminated (64)? (GMOS imaging default True)"),
    suffix="_dqAdded",
)
def addDQ(frames: list[Frame], ctx: StepContext, *, static_bpm: str | None, user_bpm: str | None,
          add_illum_mask: bool) -> list[Frame]:
    """Add the DQ plane: bad pixels, saturated (4), non-linear (2), unilluminated (64)."""
    out = []
    for frame in frames:
        if all(ext.mask is not None for ext in frame.exts):
            ctx.log.warning("%s already has a DQ plane; left unchanged", frame.filename)
            out.append(light_copy(frame))
            continue
        new = light_copy(frame)
        bpms = _bpm_planes(frame, ctx, static_bpm, user_bpm)
        saturation = new.descriptor("saturation_level")
        nonlinear = new.descriptor("non_linear_level")
        illum = illumination_mask(new) if add_illum_mask else None
        if add_illum_mask and illum is None:
            ctx.log.warning("%s: no illuminated-field model for this detector; "
                            "no unilluminated pixels flagged", frame.filename)
        for index, ext in enumerate(new.exts):
            mask = np.zeros(ext.data.shape, dtype=dq.DTYPE)
            if bpms[index] is not None:
                mask |= bpms[index]
            data = ext.data
            mask[data >= saturation[index]] |= dq.SATURATED
            mask[(data >= nonlinear[index]) & (data < saturation[index])] |= dq.NON_LINEAR
            if illum is not None:
                datasec = Section.from_string(ext.header["DATASEC"])
                mask[datasec.slices][illum[index]] |= dq.UNILLUMINATED
            ext.mask = mask if mask.any() else constant_plane(0, mask.shape, dq.DTYPE)
        out.append(new)
    return out


# -- addVAR ---------------------------------------------------------------------

_READ, _POISSON = "read", "Poisson"


def _components(frame) -> list:
    text = str(frame.phu.get(VARNOISE, "")).strip()
    return [c.strip() for c in text.split(",") if c.strip()]


def _add_variance(frame, components) -> None:
    """Add the noise ``components`` to every extension's VAR (new arrays; inputs untouched)."""
    electrons = in_electrons(frame)
    for ext, g, rn in zip(frame.exts, frame.descriptor("gain"), frame.descriptor("read_noise")):
        read_var = np.float32(rn ** 2 if electrons else (rn / g) ** 2)
        if ext.variance is None and components == [_READ]:     # a constant: no memory
            ext.variance = constant_plane(read_var, ext.data.shape, np.float32)
            continue
        variance = (np.zeros(ext.data.shape, dtype=np.float32) if ext.variance is None
                    else ext.variance.astype(np.float32))
        if _READ in components:
            variance += read_var
        if _POISSON in components:
            poisson = np.maximum(ext.data, 0, dtype=np.float32)
            if not electrons:
                poisson /= np.float32(g)
            variance += poisson
        ext.variance = variance


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
