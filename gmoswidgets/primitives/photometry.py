"""detectSources: find sources and measure them, per extension, with ``sep``.

DRAGONS runs the SExtractor binary; here the same work is done by
`sep <https://sep.readthedocs.io>`_ (SExtractor's algorithms as a
library) with DRAGONS' parameter names and defaults
(``core/parameters_photometry.py``).  Each extension gets an ``OBJCAT``
table with SExtractor's column names and an ``OBJMASK`` plane (1 where a
source's segmentation footprint lies).

:func:`find_sources` (detection and measurements) and :func:`object_mask`
(detection only) work on bare arrays, for makeFringeFrame and the
cosmic-ray flagging.
"""
from __future__ import annotations

import logging
import warnings
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import sep
from astropy.io import fits

from .. import dq
from ..executor import map_bands
from ..frame import Frame
from ._calib import light_copy
from .base import Param, StepContext, primitive

if TYPE_CHECKING:  # imported when first used (~0.13 s): a reduction builds its steps without them
    from astropy.table import Table
    from astropy.wcs import WCS

__all__ = ["DETECTION_PARAMS", "MASK_PARAMS", "MASK_DEFAULTS", "OBJCAT_COLUMNS", "detectSources",
           "find_sources", "object_mask", "add_world_columns", "extension_wcs", "world_positions"]

log = logging.getLogger(__name__)

#: detectSources' own parameters (DRAGONS' names and defaults); makeFringeFrame
#: inherits them as DRAGONS' ``_inherit_params`` does.
DETECTION_PARAMS = (
    Param("mask", bool, False, "Replace DQ-flagged pixels (replace_flags) by the image median "
                               "before detection?"),
    Param("replace_flags", int, 249, "DQ bits of the pixels ignored (and replaced when mask=True).",
          min=0, max=65535),
    Param("set_saturation", bool, False, "Flag sources touching saturated pixels (FLAGS 4)?"),
    Param("detect_minarea", int, 8, "Minimum number of connected pixels above threshold.", min=1),
    Param("detect_thresh", float, 2.0, "Detection threshold in standard deviations.", min=0.1),
    Param("analysis_thresh", float, 2.0, "Threshold in standard deviations for ISOAREA_IMAGE.",
          min=0.1),
    Param("deblend_mincont", float, 0.005, "Minimum contrast for deblending (1 disables it).",
          min=0.0, max=1.0),
    Param("phot_min_radius", float, 3.5, "Minimum Kron aperture, in units of A_IMAGE/B_IMAGE.",
          min=0.0),
    Param("back_size", int, 32, "Background mesh size in pixels.", min=4),
    Param("back_filtersize", int, 8, "Background median-filter size, in meshes.", min=1),
)
#: The detection parameters that shape an object mask (the others only affect measurements).
MASK_PARAMS = ("replace_flags", "mask", "detect_minarea", "detect_thresh", "deblend_mincont",
               "back_size", "back_filtersize")
#: Their declared defaults, for an :func:`object_mask` with detectSources' settings.
MASK_DEFAULTS = MappingProxyType({p.name: p.default for p in DETECTION_PARAMS
                                  if p.name in MASK_PARAMS})

#: Kron factor of MAG_AUTO (SExtractor PHOT_AUTOPARAMS first value, as DRAGONS sets it).
KRON_FACTOR = 2.5
#: Radius (units of A/B) within which the Kron radius is measured (SExtractor's 6).
KRON_MEASURE_RADIUS = 6.0
#: MAG_AUTO / MAGERR_AUTO given to sources with a non-positive flux (SExtractor's value).
BAD_MAGNITUDE = 99.0

# SExtractor FLAGS bits.
_FLAG_BIASED = 1
_FLAG_DEBLENDED = 2
_FLAG_SATURATED = 4
_FLAG_TRUNCATED = 8

#: Columns of the OBJCAT table, in order, with their FITS units (fluxes: the data's
#: units, left blank as FITS has no unit for electrons).
OBJCAT_COLUMNS = {
    "NUMBER": "", "X_IMAGE": "pix", "Y_IMAGE": "pix", "XWIN_IMAGE": "pix", "YWIN_IMAGE": "pix",
    "X_WORLD": "deg", "Y_WORLD": "deg", "FLUX_AUTO": "", "FLUXERR_AUTO": "",
    "MAG_AUTO": "mag", "MAGERR_AUTO": "mag", "FLUX_MAX": "", "BACKGROUND": "",
    "A_IMAGE": "pix", "B_IMAGE": "pix", "THETA_IMAGE": "deg", "ELLIPTICITY": "",
    "FWHM_IMAGE": "pix", "FWHM_WORLD": "deg", "FLUX_RADIUS": "pix", "KRON_RADIUS": "",
    "ISOAREA_IMAGE": "pix2", "FLAGS": "", "IMAFLAGS_ISO": "",
}


def extension_wcs(header: fits.Header) -> WCS | None:
    """The celestial FITS WCS of an extension header, or None if it has none.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    astropy.wcs.WCS or None
    """
    if "CTYPE1" not in header or "CTYPE2" not in header:
        return None
    from astropy.wcs import WCS, FITSFixedWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, naxis=2)
    return wcs if wcs.has_celestial else None


def world_positions(header: fits.Header, x_image: np.ndarray,
                    y_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) of 1-based FITS pixel positions through an extension's WCS.

    Returns
    -------
    tuple of numpy.ndarray
        RA and Dec in degrees (NaN when the header has no WCS).
    """
    return _world_positions(extension_wcs(header), x_image, y_image)


def _world_positions(wcs: WCS | None, x_image, y_image) -> tuple[np.ndarray, np.ndarray]:
    """:func:`world_positions` through an extension's WCS (None: NaN)."""
    x_image = np.asarray(x_image, dtype=float)
    if wcs is None:
        nan = np.full(x_image.shape, np.nan)
        return nan, nan.copy()
    ra, dec = wcs.all_pix2world(x_image, np.asarray(y_image, dtype=float), 1)
    return np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)


#: Stand-ins for an absent variance or DQ plane (the kernels take arrays, with a flag).
_NO_FLOAT = np.zeros((0, 0), np.float32)
_NO_MASK = np.zeros((0, 0), np.uint16)


def _kernels():
    """:mod:`.photometry_kernels` and :func:`~gmoswidgets.numerics.background.sky_background`,
    imported on first use (numba: the bias and flat stages, which never detect sources, do
    not load it)."""
    from ..numerics.background import sky_background
    from . import photometry_kernels
    return photometry_kernels, sky_background


def _native_type(dtype) -> np.dtype:
    """``dtype`` in this machine's byte order."""
    return np.dtype(dtype).newbyteorder("=")


def _native(array, dtype=np.float32):
    """A C-contiguous native-byte-order, writable copy/view as sep needs (copied if read-only)."""
    out = np.ascontiguousarray(array, dtype=_native_type(dtype))
    return out if out.flags.writeable else out.copy()


def find_sources(data: np.ndarray, variance: np.ndarray | None = None,
                 dqmask: np.ndarray | None = None, *, replace_flags: int, mask: bool,
                 set_saturation: bool, detect_minarea: int, detect_thresh: float,
                 analysis_thresh: float, deblend_mincont: float, phot_min_radius: float,
                 back_size: int, back_filtersize: int) -> tuple[Table, np.ndarray]:
    """Detect and measure the sources of one image, SExtractor-style.

    Parameters
    ----------
    data : numpy.ndarray
        The image (2-D), e.g. in electrons.
    variance : numpy.ndarray, optional
        Its variance; ``sqrt(variance)`` is the per-pixel noise.  Without it
        the global background rms is used.
    dqmask : numpy.ndarray, optional
        DQ bit mask; pixels with any of ``replace_flags`` set are ignored.
    replace_flags, mask, set_saturation, detect_minarea, detect_thresh, analysis_thresh, \
deblend_mincont, phot_min_radius, back_size, back_filtersize
        As the detectSources parameters (:data:`DETECTION_PARAMS`).

    Returns
    -------
    table : astropy.table.Table
        One row per source, columns :data:`OBJCAT_COLUMNS` (X_WORLD, Y_WORLD
        and FWHM_WORLD are NaN: see :func:`add_world_columns`); positions are
        1-based FITS pixels.
    segmap : numpy.ndarray
        int32 segmentation map: 0 for sky, ``NUMBER`` on each source's pixels.
    """
    found = _detect(data, variance, dqmask, replace_flags, mask, detect_minarea, detect_thresh,
                    deblend_mincont, back_size, back_filtersize)
    if found is None:
        return _empty_table(), np.zeros(np.shape(data), dtype=np.int32)
    objects, segmap, sub, err, bad, sky = found
    if len(objects) == 0:
        return _empty_table(), segmap
    table = _measure(sub, err, bad, objects, segmap, sky, dqmask, phot_min_radius,
                     analysis_thresh, set_saturation)
    return table, segmap


def object_mask(data: np.ndarray, variance: np.ndarray | None = None,
                dqmask: np.ndarray | None = None, *, replace_flags: int, mask: bool,
                detect_minarea: int, detect_thresh: float, deblend_mincont: float,
                back_size: int, back_filtersize: int) -> np.ndarray:
    """Boolean map of the pixels belonging to sources (detection only, no measurements).

    Takes the detection parameters of :func:`find_sources` (:data:`MASK_PARAMS`).
    """
    found = _detect(data, variance, dqmask, replace_flags, mask, detect_minarea, detect_thresh,
                    deblend_mincont, back_size, back_filtersize)
    return np.zeros(np.shape(data), dtype=bool) if found is None else found[1] > 0


def _detect(data, variance, dqmask, replace_flags, mask, detect_minarea, detect_thresh,
            deblend_mincont, back_size, back_filtersize):
    """Background-subtract and extract; None when every pixel is flagged.

    The per-pixel passes and the background's mesh statistics run in bands
    of rows on every core (:func:`~gmoswidgets.executor.map_bands`); sep's
    extraction holds the GIL.

    Returns
    -------
    tuple
        ``(objects, segmap, background-subtracted image, per-pixel error,
        ignored-pixel mask, background model)``.
    """
    kernels, sky_background = _kernels()
    image = _native(data)
    # a copy made here (of read-only or non-native planes) is ours: the subtracted image
    # goes into it (each large array is memory touched for the first time, in a forked child)
    owned = not np.may_share_memory(image, data)
    var = None if variance is None else np.ascontiguousarray(variance, _native_type(np.float32))
    dq = None if dqmask is None else np.ascontiguousarray(dqmask, _native_type(np.uint16))
    var_plane = _NO_FLOAT if var is None else var
    bad = np.empty(image.shape, np.bool_)
    map_bands(lambda first, stop: kernels.bad_pixels(
        image, var_plane, var is not None, _NO_MASK if dq is None else dq, dq is not None,
        int(replace_flags), first, stop, bad), image.shape[0])
    if bad.all():
        return None
    if mask and bad.any():
        image = image if owned else image.copy()
        owned = True
        image[bad] = np.median(image[~bad])
    sky = sky_background(image, bad, mesh_size=back_size, filter_size=back_filtersize)
    rms = np.float32(max(sky.globalrms, np.finfo(np.float32).tiny))
    sub = image if owned else np.empty_like(image)
    err = np.empty_like(image)
    spline = sky.spline()
    map_bands(lambda first, stop: kernels.subtract_background(
        image, *spline, var_plane, var is not None, bad, rms, first, stop, sub, err),
        image.shape[0])
    sep.set_extract_pixstack(max(sep.get_extract_pixstack(), image.size // 4))
    objects, segmap = sep.extract(sub, detect_thresh, err=err, mask=bad, minarea=detect_minarea,
                                  deblend_cont=deblend_mincont, filter_type="conv",
                                  segmentation_map=True)
    return objects, segmap.astype(np.int32, copy=False), sub, err, bad, sky


def _measure(sub, err, bad, objects, segmap, sky, dqmask, phot_min_radius,
             analysis_thresh, set_saturation) -> Table:
    """SExtractor-like measurements of the extracted ``objects`` (``sky``: the
    :class:`~gmoswidgets.numerics.background.SkyBackground`)."""
    x, y = objects["x"], objects["y"]
    # degenerate (e.g. one-column) objects can have NaN or zero shape parameters, and a
    # float32 theta of pi/2 exceeds sep's float64 limit
    a = np.fmax(objects["a"].astype(float), 0.1)
    b = np.fmin(np.fmax(objects["b"].astype(float), 0.1), a)
    theta = np.clip(np.nan_to_num(objects["theta"].astype(float)), -np.pi / 2, np.pi / 2)
    number = np.arange(1, len(objects) + 1)

    kron, kflag = sep.kron_radius(sub, x, y, a, b, theta, KRON_MEASURE_RADIUS, mask=bad,
                                  seg_id=number, segmap=segmap)
    kron = np.where(np.isfinite(kron), kron, 0.0)
    scale = np.maximum(KRON_FACTOR * kron, phot_min_radius)
    flux, fluxerr, aflag = sep.sum_ellipse(sub, x, y, a, b, theta, scale, err=err, mask=bad,
                                           subpix=5, seg_id=number, segmap=segmap)
    rmax = np.maximum(scale * a, 3.0)
    radius, _ = sep.flux_radius(sub, x, y, rmax, 0.5, normflux=np.where(flux > 0, flux, 1.0),
                                mask=bad, subpix=5)
    # Windowed centroids (SExtractor XWIN_IMAGE) with the Gaussian sigma of each source.
    sigma_win = np.clip(np.where(np.isfinite(radius), 2.0 * radius, 2.0) / 2.3548, 0.5, None)
    xwin, ywin, wflag = sep.winpos(sub, x, y, sigma_win, mask=bad)
    # blended sources keep their barycentre: the window would include the neighbour
    wgood = ((wflag == 0) & np.isfinite(xwin) & ((objects["flag"] & sep.OBJ_MERGED) == 0)
             & (np.hypot(xwin - x, ywin - y) < 2.0 * sigma_win))
    xwin = np.where(wgood, xwin, x)
    ywin = np.where(wgood, ywin, y)

    # the pixels of the sources: flat indices, row-major as boolean indexing orders them
    # (np.nonzero of the 2-D mask took 20 ms a frame, flatnonzero 1 ms)
    inseg = np.flatnonzero(segmap > 0)
    ids = segmap.ravel()[inseg]
    values = sub.ravel()[inseg]
    rows, cols = np.divmod(inseg, segmap.shape[1])
    fwhm = _core_fwhm(ids, values, rows, cols, xwin, ywin, objects["peak"])
    # too few pixels above half maximum: Gaussian-equivalent FWHM from the half-light radius
    fwhm = np.where(np.isfinite(fwhm), fwhm, np.where(radius > 0, 2.0 * radius, np.nan))

    positive = flux > 0
    mag = np.full(flux.shape, BAD_MAGNITUDE)
    magerr = np.full(flux.shape, BAD_MAGNITUDE)
    mag[positive] = -2.5 * np.log10(flux[positive])
    magerr[positive] = 2.5 / np.log(10) * fluxerr[positive] / flux[positive]

    flags = np.zeros(len(objects), dtype=np.int16)
    flags[(objects["flag"] & sep.OBJ_MERGED) != 0] |= _FLAG_DEBLENDED
    flags[(objects["flag"] & sep.OBJ_TRUNC) != 0] |= _FLAG_TRUNCATED
    flags[((aflag | kflag) & sep.APER_HASMASKED) != 0] |= _FLAG_BIASED
    flags[((aflag | kflag) & sep.APER_TRUNC) != 0] |= _FLAG_TRUNCATED

    nseg = len(objects) + 1
    isoarea = np.bincount(ids[values > analysis_thresh * err.ravel()[inseg]], minlength=nseg)[1:]
    imaflags = np.zeros(nseg, dtype=np.int64)
    if dqmask is not None:
        dq_in = np.asarray(dqmask)[rows, cols]
        flagged = dq_in != 0
        np.bitwise_or.at(imaflags, ids[flagged], dq_in[flagged].astype(np.int64))
    imaflags = imaflags[1:]
    if set_saturation:
        flags[(imaflags & dq.SATURATED) != 0] |= _FLAG_SATURATED

    iy = np.clip(np.round(y).astype(int), 0, sub.shape[0] - 1)
    ix = np.clip(np.round(x).astype(int), 0, sub.shape[1] - 1)
    columns = {
        "NUMBER": number.astype(np.int32),
        "X_IMAGE": x + 1.0, "Y_IMAGE": y + 1.0, "XWIN_IMAGE": xwin + 1.0, "YWIN_IMAGE": ywin + 1.0,
        "X_WORLD": np.full(len(x), np.nan), "Y_WORLD": np.full(len(x), np.nan),
        "FLUX_AUTO": flux, "FLUXERR_AUTO": fluxerr, "MAG_AUTO": mag, "MAGERR_AUTO": magerr,
        "FLUX_MAX": objects["peak"], "BACKGROUND": sky.back_at(iy, ix).astype(float),
        "A_IMAGE": objects["a"], "B_IMAGE": objects["b"], "THETA_IMAGE": np.degrees(theta),
        "ELLIPTICITY": 1.0 - b / a, "FWHM_IMAGE": fwhm, "FWHM_WORLD": np.full(len(x), np.nan),
        "FLUX_RADIUS": radius, "KRON_RADIUS": kron,
        "ISOAREA_IMAGE": isoarea.astype(np.int32), "FLAGS": flags,
        "IMAFLAGS_ISO": imaflags.astype(np.int32),
    }
    return _table(columns)


def _core_fwhm(ids, values, rows, cols, x, y, peak) -> np.ndarray:
    """FWHM of a circular Gaussian fitted to each source's pixels above half its peak.

    ``ln(value) = c - r^2 / (2 sigma^2)`` is fitted by flux-weighted least
    squares over the pixels of the source's segment brighter than half its
    peak (``r`` from the centroid ``x``, ``y``, 0-based), for all sources at
    once.  Fitting only the core makes the estimate follow the true FWHM
    for Moffat-like profiles too.  NaN where fewer than 3 pixels qualify.

    ``ids``, ``values``, ``rows`` and ``cols`` are the segment number, the
    background-subtracted value and the position of every source pixel.
    """
    values = values.astype(float)
    core = values > 0.5 * np.asarray(peak, float)[ids - 1]
    ids, values, rows, cols = ids[core], values[core], rows[core], cols[core]
    r2 = (cols - x[ids - 1]) ** 2 + (rows - y[ids - 1]) ** 2
    logv = np.log(values)
    size = len(peak) + 1

    def wsum(quantity):
        return np.bincount(ids, weights=values * quantity, minlength=size)[1:]

    s0, s1, s2, sl, s1l = wsum(1.0), wsum(r2), wsum(r2 * r2), wsum(logv), wsum(r2 * logv)
    count = np.bincount(ids, minlength=size)[1:]
    det = s0 * s2 - s1 ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (s0 * s1l - s1 * sl) / det
        fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0)) * np.sqrt(-0.5 / slope)
    return np.where((count >= 3) & (det > 0) & (slope < 0), fwhm, np.nan)


def _table(columns: dict) -> Table:
    from astropy.table import Table
    table = Table(columns)
    for name, unit in OBJCAT_COLUMNS.items():
        if unit:
            table[name].unit = unit
    return table


def _empty_table() -> Table:
    ints = {"NUMBER", "ISOAREA_IMAGE", "FLAGS", "IMAFLAGS_ISO"}
    return _table({name: np.zeros(0, dtype=np.int32 if name in ints else float)
                   for name in OBJCAT_COLUMNS})


def add_world_columns(table: Table, header: fits.Header) -> Table:
    """Fill X_WORLD, Y_WORLD and FWHM_WORLD of an OBJCAT from an extension's WCS.

    Parameters
    ----------
    table : astropy.table.Table
        OBJCAT with X_IMAGE, Y_IMAGE and FWHM_IMAGE; modified in place.
    header : astropy.io.fits.Header
        The extension header holding the WCS.

    Returns
    -------
    astropy.table.Table
        The same table.
    """
    if len(table) == 0:
        return table
    wcs = extension_wcs(header)  # once: making a WCS from a header costs ~5 ms
    ra, dec = _world_positions(wcs, table["X_IMAGE"], table["Y_IMAGE"])
    table["X_WORLD"] = ra
    table["Y_WORLD"] = dec
    if wcs is not None:
        scale = float(np.sqrt(abs(np.linalg.det(wcs.celestial.pixel_scale_matrix))))
        table["FWHM_WORLD"] = np.asarray(table["FWHM_IMAGE"]) * scale
    for name in ("X_WORLD", "Y_WORLD", "FWHM_WORLD"):
        table[name].unit = "deg"
    return table


@primitive(*DETECTION_PARAMS, suffix="_sourcesDetected")
def detectSources(frames: list[Frame], ctx: StepContext, *, mask: bool, replace_flags: int,
                  set_saturation: bool, detect_minarea: int, detect_thresh: float,
                  analysis_thresh: float, deblend_mincont: float, phot_min_radius: float,
                  back_size: int, back_filtersize: int) -> list[Frame]:
    """Find sources in each extension; attach an OBJCAT table and an OBJMASK plane.

    Detection follows SExtractor as DRAGONS configures it: background
    mesh ``back_size`` filtered over ``back_filtersize`` meshes, pixels
    above ``detect_thresh`` x sqrt(VAR) after a 3x3 smoothing, at least
    ``detect_minarea`` connected pixels, deblending at ``deblend_mincont``;
    FLUX_AUTO in a Kron ellipse of 2.5 Kron radii (at least
    ``phot_min_radius``).  Pixels whose DQ has a ``replace_flags`` bit are
    ignored.  FWHM_IMAGE comes from a Gaussian fitted to the pixels above
    half maximum (twice the half-light radius when there are too few).
    """
    options = dict(replace_flags=replace_flags, mask=mask, set_saturation=set_saturation,
                   detect_minarea=detect_minarea, detect_thresh=detect_thresh,
                   analysis_thresh=analysis_thresh, deblend_mincont=deblend_mincont,
                   phot_min_radius=phot_min_radius, back_size=back_size,
                   back_filtersize=back_filtersize)
    # sep's extraction and measurements hold the GIL (half of a frame's time; the background
    # and the per-pixel passes do not, and run in bands of rows where the cores are free):
    # on threads the frames go to forked processes, which read them without a copy and send
    # back only the catalogues and the packed object masks
    _kernels()  # imported here, once, not in each forked process
    found = ctx.map(partial(detect_frame, **options), frames, holds_gil=True)
    outputs = []
    for frame, per_ext in zip(frames, found):
        out = light_copy(frame)  # the pixel planes are shared, not changed
        for index, (ext, (table, packed)) in enumerate(zip(out.exts, per_ext), start=1):
            ext.objcat = table = add_world_columns(table, ext.header)
            ext.objmask = np.unpackbits(packed, count=ext.data.size).reshape(ext.data.shape)
            good = table[table["FLAGS"] == 0] if len(table) else table
            fwhm = np.nanmedian(good["FWHM_IMAGE"]) if len(good) else np.nan
            if np.isfinite(fwhm):
                ctx.log.info("%s extension %d: %d sources, median FWHM %.2f pix",
                             frame.filename, index, len(table), fwhm)
            else:
                ctx.log.info("%s extension %d: %d sources", frame.filename, index, len(table))
        outputs.append(out)
    return outputs


def detect_frame(frame: Frame, **options) -> list[tuple[Table, np.ndarray]]:
    """:func:`detectSources` on one frame: each extension's OBJCAT and packed OBJMASK.

    Only numpy, sep and compiled kernels loaded beforehand run here (it
    may run in a process forked from a multi-threaded one, where little
    else is safe; the kernels make no threads there).

    ``options`` are detectSources' parameters (see :func:`find_sources`).

    Returns
    -------
    list of tuple
        Per extension, the OBJCAT (world columns NaN: see
        :func:`add_world_columns`) and the object mask as
        :func:`numpy.packbits` of the flattened 0/1 plane (1/8 of its size).
    """
    found = []
    for ext in frame.exts:
        table, segmap = find_sources(ext.data, ext.variance, ext.mask, **options)
        found.append((table, np.packbits(segmap > 0, axis=None)))
    return found


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (detectSources,)
