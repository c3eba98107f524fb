"""resampleToCommonFrame: put every image on the pixel grid of a reference.

Semantics follow DRAGONS (``core/primitives_image.py``,
``core/primitives_resample.py``).  The reference is the first input (or the one named by
``reference``).  Each input's pixels are mapped to the reference's through
their FITS WCS (output pixel -> sky -> input pixel), approximated by one
affine map fitted over the output grid, as DRAGONS does with
``force_affine=True``.  The output grid is the reference's own
(``trim_data=True``) or is enlarged to cover every input.

SCI goes through the interpolant and VAR through the squares of its weights
(:func:`~gmoswidgets.numerics.interpolate.resample_variance`: the variance
of each resampled pixel, where DRAGONS interpolates VAR linearly and so
overstates the noise of sub-pixel-shifted data), times the correlation
factor where the input was itself resampled by ``mosaicDetectors``
(:mod:`~gmoswidgets.numerics.covariance`); with ``conserve`` they are
multiplied by the pixel-area ratio (``JFACTOR``) and its square.  DQ is
resampled bit plane by bit plane through the same interpolant (a bit is
set where its contribution exceeds ``dq_threshold``, as DRAGONS does);
output pixels without input are ``no_data``
with ``SCI = VAR = 0``.  The OBJCAT pixel positions and the OBJMASK follow
the data.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from .. import dq as dqbits
from ..errors import GmosError, ParameterError
from ..frame import Extension, Frame
from ..gmos.keywords import AREATYPE, JFACTOR
from ..numerics.covariance import clear_resampling, correlation_factor, prior_resampling
from ..numerics.interpolate import (DQ_THRESHOLD, INTERPOLANTS, AffineMap, copy_wcs_keywords,
                                    fit_affine, output_bounds, remap_wcs_header, resample_flags,
                                    resample_planes)
from ..sections import Section
from ._calib import light_copy
from .base import Param, StepContext, primitive

if TYPE_CHECKING:  # imported when first used: a reduction builds its steps without it
    from astropy.wcs import WCS

__all__ = ["resampleToCommonFrame", "pixel_map", "CLEAN_BITS"]

#: DQ bits replaced by a local median when ``clean_data`` is set.
CLEAN_BITS = dqbits.BAD_PIXEL | dqbits.COSMIC_RAY
#: Box (pixels) of the local median used by ``clean_data``.
_CLEAN_BOX = 5
#: Largest acceptable residual (pixels) of the affine approximation before warning.
_AFFINE_WARN = 0.01


def _wcs(frame: Frame) -> WCS:
    header = frame.exts[0].header
    if "CRPIX1" not in header or ("CD1_1" not in header and "CDELT1" not in header):
        raise GmosError(f"{frame.filename}: no celestial WCS in the SCI header; "
                        "resampleToCommonFrame needs one")
    from astropy.wcs import WCS
    return WCS(header, naxis=2)


def pixel_map(from_wcs: WCS, to_wcs: WCS) -> Callable[[np.ndarray, np.ndarray], tuple]:
    """``func(x, y) -> (x', y')``: 0-based pixels of ``from_wcs`` to those of ``to_wcs``."""
    def func(x, y):
        ra, dec = from_wcs.all_pix2world(x, y, 0)
        return to_wcs.all_world2pix(ra, dec, 0)
    return func


def _reference_index(frames, reference) -> int:
    if reference is None:
        return 0
    stem = reference.removesuffix(".fits")
    for i, frame in enumerate(frames):
        names = {frame.filename, str(frame.phu.get("ORIGNAME", ""))}
        if frame.path is not None:
            names.add(frame.path.name)
        # "N20170614S0201" also names "N20170614S0201_wcsCorrected.fits"
        if any(name == reference or name.removesuffix(".fits") == stem
               or name.startswith(stem + "_") for name in names if name):
            return i
    raise ParameterError(f"resampleToCommonFrame:reference {reference!r} is none of the inputs: "
                         + ", ".join(f.filename for f in frames))


def _clean(ext: Extension) -> np.ndarray:
    """SCI with CLEAN_BITS pixels replaced by a local median (bad neighbours at the global one)."""
    if ext.mask is None or not (ext.mask & CLEAN_BITS).any():
        return ext.data
    bad = (ext.mask & CLEAN_BITS) != 0
    filled = np.where(bad, np.median(ext.data[~bad]), ext.data).astype(np.float32)
    from scipy import ndimage  # ~0.2 s to import: only when cleaning
    local = ndimage.median_filter(filled, size=_CLEAN_BOX, mode="nearest")
    return np.where(bad, local, ext.data).astype(np.float32)


def _transform_objcat(objcat, to_output: AffineMap):
    """OBJCAT with its 1-based pixel positions (X_IMAGE/Y_IMAGE, XWIN_IMAGE/YWIN_IMAGE ...)
    carried to the output grid."""
    if objcat is None:
        return None
    table = objcat.copy()
    for xcol in table.colnames:
        ycol = "Y" + xcol[1:]
        if xcol.startswith("X") and xcol.endswith("_IMAGE") and ycol in table.colnames:
            x, y = to_output(np.asarray(table[xcol], float) - 1, np.asarray(table[ycol], float) - 1)
            table[xcol] = x + 1
            table[ycol] = y + 1
    return table


def _footprint(to_output: AffineMap, shape) -> list:
    """1-based output pixel coordinates of the input's corners."""
    ny, nx = shape
    x, y = to_output(np.array([-0.5, nx - 0.5, nx - 0.5, -0.5]),
                     np.array([-0.5, -0.5, ny - 0.5, ny - 0.5]))
    return list(zip(x + 1, y + 1))


def resample_frame(job: tuple, *, out_shape, ref_header, origin, interpolant, conserve,
                   clean_data, dq_threshold) -> Frame:
    """Resample one ``(frame, map from output to input pixels)`` onto the common grid."""
    frame, to_input = job
    ext = frame.exts[0]
    data = _clean(ext) if clean_data else ext.data
    mask_in = ext.mask if ext.mask is not None else np.zeros(ext.data.shape, dqbits.DTYPE)
    sci, var, mask = resample_planes(data, ext.variance, mask_in, to_input, out_shape, interpolant,
                                     threshold=dq_threshold)
    prior = prior_resampling(ext.header)
    if var is not None and prior is not None:   # the input was resampled before (mosaic)
        correlation_factor(prior, to_input, out_shape, interpolant, scale=var)
    jfactor = to_input.jacobian
    if conserve and jfactor != 1.0:
        sci *= np.float32(jfactor)
        if var is not None:
            var *= np.float32(jfactor ** 2)
    objmask = None
    if ext.objmask is not None:
        objmask = resample_flags(ext.objmask, to_input, out_shape)
    to_output = to_input.inverse()
    header = ext.header.copy()
    clear_resampling(header)
    copy_wcs_keywords(ref_header, header)
    remap_wcs_header(header, AffineMap.translation(*origin))
    header["DATASEC"] = Section(0, out_shape[1], 0, out_shape[0]).to_string()
    header[JFACTOR] = (jfactor, "Pixel-area ratio of the resampling")
    header[AREATYPE] = ("POLYGON", "Footprint of the input in this image")
    for i, (x, y) in enumerate(_footprint(to_output, ext.data.shape), start=1):
        header[f"AREA{i}_1"] = (float(x), f"Footprint vertex {i}, x")
        header[f"AREA{i}_2"] = (float(y), f"Footprint vertex {i}, y")
    new = light_copy(frame)
    objcat = _transform_objcat(ext.objcat, to_output)
    new.exts = [Extension(sci, header, var, mask, objcat, objmask)]
    return new


@primitive(
    Param("interpolant", str, "poly3", "Interpolant used to resample the images.",
          choices=INTERPOLANTS),
    Param("trim_data", bool, False,
          "Keep only the reference's footprint (else cover every input)."),
    Param("clean_data", bool, False, "Replace bad-pixel and cosmic-ray pixels by a local median "
          "before resampling."),
    Param("conserve", bool, True, "Conserve flux (scale by the output/input pixel-area ratio)."),
    Param("reference", str, None, "File name of the reference image (default: the first input).",
          optional=True),
    Param("dq_threshold", float, DQ_THRESHOLD, "Contribution above which a resampled DQ bit "
          "is set.", min=0.0, max=1.0),
    suffix="_align",
)
def resampleToCommonFrame(frames: list[Frame], ctx: StepContext, *, interpolant: str,
                          trim_data: bool, clean_data: bool, conserve: bool, reference: str | None,
                          dq_threshold: float) -> list[Frame]:
    """Resample every image onto the pixel grid of the reference image.

    Parameters
    ----------
    frames : list of Frame
        Single-extension (mosaicked) images with a celestial WCS.
    ctx : StepContext
    interpolant : str
        One of :data:`gmoswidgets.numerics.interpolate.INTERPOLANTS`.
    trim_data : bool
        Output only the reference's footprint instead of the union.
    clean_data : bool
        Replace pixels flagged :data:`CLEAN_BITS` by a local median first.
    conserve : bool
        Conserve flux (multiply by ``JFACTOR``; VAR by its square).
    reference : str, optional
        File name of the reference; the first input by default.
    dq_threshold : float
        Contribution above which a resampled DQ bit is set.

    Returns
    -------
    list of Frame
        One frame per input, all on the same grid and WCS.
    """
    multi = [f.filename for f in frames if len(f.exts) != 1]
    if multi:
        raise GmosError("resampleToCommonFrame needs single-extension images; run "
                        "mosaicDetectors first (" + ", ".join(multi) + ")")
    if not frames:
        return []
    index = _reference_index(frames, reference)
    wcses = [_wcs(frame) for frame in frames]
    ref_wcs, ref_header = wcses[index], frames[index].exts[0].header
    ref_name, ref_shape = frames[index].filename, frames[index].exts[0].data.shape
    # Affine maps from each input's pixels to reference pixels, for the output bounds.
    to_ref = []
    for frame, wcs in zip(frames, wcses):
        amap, _ = fit_affine(pixel_map(wcs, ref_wcs), frame.exts[0].data.shape)
        to_ref.append(amap)
    if trim_data:
        origin, out_shape = (0, 0), ref_shape
    else:
        origin, out_shape = output_bounds(
            [(amap, f.exts[0].data.shape) for amap, f in zip(to_ref, frames)])
    ctx.log.info("resampleToCommonFrame: output grid %s x %s, origin %s in %s's pixels",
                 out_shape[1], out_shape[0], origin, ref_name)
    jobs = []
    for frame, wcs in zip(frames, wcses):
        func = pixel_map(ref_wcs, wcs)
        to_input, residual = fit_affine(lambda x, y, f=func: f(x + origin[0], y + origin[1]),
                                        out_shape)
        if residual > _AFFINE_WARN:
            ctx.log.warning("resampleToCommonFrame: affine approximation for %s is off by up to "
                            "%.3f pixel", frame.filename, residual)
        jobs.append((frame, to_input))
    # the grid is set: each input may go once resampled (only the jobs hold them now)
    del frame
    frames.clear()
    return ctx.map(partial(resample_frame, out_shape=out_shape, ref_header=ref_header,
                           origin=origin, interpolant=interpolant, conserve=conserve,
                           clean_data=clean_data, dq_threshold=dq_threshold), jobs, consume=True)


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (resampleToCommonFrame,)
