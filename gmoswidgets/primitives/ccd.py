"""overscanCorrect, biasCorrect, ADUToElectrons: the CCD-level corrections.

Semantics and defaults follow DRAGONS (``core/primitives_ccd.py`` with the
GMOS overrides in ``gmos/primitives_gmos.py`` and ``gmos/parameters_gmos.py``,
``core/primitives_preprocess.py`` for ADUToElectrons):

* **overscanCorrect** = subtractOverscan + trimOverscan.  Each row's level is
  the mean of the serial-overscan columns, leaving out ``nbiascontam``
  columns next to the data and one at the far edge.  GMOS' default
  ``function='none'`` subtracts those per-row means directly; ``poly``,
  ``chebyshev`` and ``spline3`` fit them with sigma rejection.  The data are
  then trimmed to ``DATASEC`` (SCI, VAR and DQ), and the sections and WCS
  reference pixel updated.
* **biasCorrect** subtracts a processed bias (VAR added, DQ OR-ed).
* **ADUToElectrons** multiplies by each amplifier's gain.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.polynomial import Chebyshev, Polynomial

from ..errors import FileProblem
from ..frame import Frame
from ..gmos.keywords import (BIASIM, BUNIT, BUNIT_ELECTRONS, GAIN, NONLINEA, OVERRDNS, OVERRMS,
                             OVERSCAN, OVERSEC, SATLEVEL, TIMESTAMP_KEYWORDS, TRIMMED)
from ..numerics.combine import sorting_network
from ..outputs import mark_history, utc_now
from ..sections import Section
from ._calib import (DO_CAL_CHOICES, CalibrationMemo, apply_calibration, detector_of,
                     each_extension, extension_binning, in_electrons, light_copy, matched_planes,
                     trim_plane)
from .base import Param, StepContext, primitive

__all__ = ["overscanCorrect", "biasCorrect", "ADUToElectrons", "overscan_levels"]

#: Running-median window (rows) used to find deviant overscan rows before a fit.
_RUNNING_MEDIAN_ROWS = 5
#: Unbinned rows at the bottom of Hamamatsu overscans left out of a fit (DRAGONS).
_HAMAMATSU_SKIP_ROWS = 48
#: Default fit order for poly/chebyshev when order=None (DRAGONS' GMOS rule).
_DEFAULT_ORDER_HAMAMATSU, _DEFAULT_ORDER_OTHER = 6, 0


def _used_overscan(biassec: Section, datasec: Section, nbiascontam: int) -> Section:
    """The overscan columns used: ``nbiascontam`` next to the data and 1 at the far edge dropped."""
    if biassec.x1 >= datasec.x2:      # overscan to the right of the data
        x1, x2 = biassec.x1 + nbiascontam, biassec.x2 - 1
    else:                             # overscan to the left
        x1, x2 = biassec.x1 + 1, biassec.x2 - nbiascontam
    if x2 <= x1:
        raise ValueError(f"nbiascontam={nbiascontam} leaves no overscan column in {biassec}")
    return Section(x1, x2, biassec.y1, biassec.y2)


def _fit(rows, values, good, function, order, lsigma, hsigma, niter, grow):
    """Fit ``values(rows)`` with iterative sigma rejection; return the model at every row."""
    good = good.copy()
    for iteration in range(niter + 1):
        x, y = rows[good], values[good]
        if function == "spline3":
            # scipy.interpolate costs ~0.4 s to import: only when a spline is asked for
            from scipy.interpolate import LSQUnivariateSpline
            npieces = max(int(order), 1)
            knots = np.linspace(x[0], x[-1], npieces + 1)[1:-1]
            model = LSQUnivariateSpline(x, y, knots, k=3)(rows)
        else:
            kind = Chebyshev if function == "chebyshev" else Polynomial
            model = kind.fit(x, y, deg=int(order))(rows)
        if iteration == niter:
            break
        resid = values - model
        sigma = np.std(resid[good])
        bad = (resid < -lsigma * sigma) | (resid > hsigma * sigma)
        if grow > 0:
            from scipy.ndimage import binary_dilation   # ~0.2 s to import: only if asked
            bad = binary_dilation(bad, iterations=int(grow))
        new_good = good & ~bad
        if new_good.sum() == good.sum() or new_good.sum() <= order + 1:
            break
        good = new_good
    return model


def _running_median(values: np.ndarray, size: int) -> np.ndarray:
    """Median of each odd ``size`` window, the ends repeated (scipy's ``median_filter``, 'nearest').

    The windows' values are ordered by a sorting network over ``size`` shifted
    copies of the row means (a few whole-array minimum/maximum operations
    instead of a median per row); the middle one is the value :func:`numpy.median`
    picks.  With a NaN (whose windows' median is NaN) numpy's median is used.
    """
    half = size // 2
    padded = np.pad(values, half, mode="edge")
    if np.isnan(values).any():
        return np.median(sliding_window_view(padded, size), axis=-1)
    rows = [padded[k:k + values.size] for k in range(size)]
    for i, j in sorting_network(size):
        rows[i], rows[j] = np.minimum(rows[i], rows[j]), np.maximum(rows[i], rows[j])
    return rows[half]


def overscan_levels(row_means: np.ndarray, *, function: str, order: int | None, lsigma: float,
                    hsigma: float, niter: int, grow: int, row_sigma: float | None = None,
                    skip_rows: int = 0, hamamatsu: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The overscan level to subtract from each row.

    Parameters
    ----------
    row_means : numpy.ndarray
        Mean of the used overscan columns for each row.
    function : {'none', 'poly', 'chebyshev', 'spline3'}
        'none' returns ``row_means`` itself.
    order : int or None
        Polynomial order, or number of spline pieces.  None: 6 (Hamamatsu)
        or 0 for poly/chebyshev; for spline3, rows deviating from a running
        median are replaced by it instead of fitting.
    lsigma, hsigma, niter, grow
        Rejection of rows during the fit.
    row_sigma : float, optional
        Expected noise of one row mean (read noise / sqrt(ncols), ADU); rows
        more than 3 of these from the running median are left out of a fit.
    skip_rows : int
        Rows at the bottom left out of a poly/chebyshev fit.
    hamamatsu : bool
        Whether the detector is a Hamamatsu array (sets the default order).

    Returns
    -------
    model : numpy.ndarray
        Level per row (float64).
    reference : numpy.ndarray
        What the OVERRMS keyword measures the row means against.
    """
    row_means = np.asarray(row_means, dtype=np.float64)
    running = _running_median(row_means, _RUNNING_MEDIAN_ROWS)
    if function == "none":
        return row_means, running
    good = np.ones(row_means.size, bool)
    if row_sigma is not None and row_sigma > 0:
        good &= np.abs(row_means - running) <= 3 * row_sigma
    if function == "spline3" and order is None:
        model = np.where(good, row_means, running)
        return model, model
    if order is None:
        order = _DEFAULT_ORDER_HAMAMATSU if hamamatsu else _DEFAULT_ORDER_OTHER
    if function in ("poly", "chebyshev") and skip_rows:
        good[:skip_rows] = False
    model = _fit(np.arange(row_means.size, dtype=np.float64), row_means, good, function, order,
                 lsigma, hsigma, niter, grow)
    return model, model


@primitive(
    Param("function", str, "none", "Overscan model along rows: 'none' (each row's mean), "
                                   "'poly', 'spline3' or 'chebyshev'.",
          choices=("none", "poly", "spline3", "chebyshev")),
    Param("order", int, None, "Fit order (pieces for spline3); None: 6 for Hamamatsu, 0 otherwise.",
          optional=True, min=0),
    Param("nbiascontam", int, None, "Overscan columns next to the data to ignore; None: 5 for "
                                    "e2vDD, 4 otherwise.", optional=True, min=0),
    Param("lsigma", float, 3.0, "Low rejection threshold (sigma) of the fit.", min=0.0),
    Param("hsigma", float, 3.0, "High rejection threshold (sigma) of the fit.", min=0.0),
    Param("niter", int, 0, "Number of rejection iterations of the fit.", min=0),
    Param("grow", int, 0, "Rows around a rejected row also rejected.", min=0),
    suffix="_overscanCorrected",
)
def overscanCorrect(frames: list[Frame], ctx: StepContext, *, function: str, order: int | None,
                    nbiascontam: int | None, lsigma: float, hsigma: float, niter: int,
                    grow: int) -> list[Frame]:
    """Subtract the serial overscan row by row, then trim every plane to DATASEC."""
    done = [TIMESTAMP_KEYWORDS["overscanCorrect"] in frame.phu for frame in frames]
    for frame in (f for f, skip in zip(frames, done) if skip):
        ctx.log.warning("%s is already overscan-corrected; left unchanged", frame.filename)
    fit = dict(function=function, order=order, lsigma=lsigma, hsigma=hsigma, niter=niter,
               grow=grow)
    corrected = iter(ctx.map(partial(_overscan_frame, nbiascontam=nbiascontam, fit=fit),
                             [f for f, skip in zip(frames, done) if not skip]))
    return [light_copy(frame) if skip else next(corrected) for frame, skip in zip(frames, done)]


def _overscan_frame(frame: Frame, *, nbiascontam: int | None, fit: dict) -> Frame:
    """overscanCorrect of one frame (run by ``ctx.map``): a trimmed, corrected light copy."""
    det = detector_of(frame)
    hamamatsu = det is None or det.name.startswith("Hamamatsu")
    contam = nbiascontam if nbiascontam is not None else (det.nbiascontam if det else 4)
    gains = frame.descriptor("gain")
    noises = frame.descriptor("read_noise")
    new = light_copy(frame)

    def correct(index: int) -> None:
        ext = new.exts[index]
        if "BIASSEC" not in ext.header:
            raise FileProblem(frame.path or frame.filename,
                              f"extension {index + 1} has no BIASSEC: cannot subtract the overscan")
        _correct_extension(ext, frame, index + 1, contam, gains[index], noises[index], hamamatsu,
                           fit)

    each_extension(correct, len(new.exts))
    mark_history(new, "trimOverscan", utc_now())
    return new


def _correct_extension(ext, frame, index, nbiascontam, gain, read_noise, hamamatsu, fit):
    header = ext.header
    datasec = Section.from_string(header["DATASEC"])
    biassec = Section.from_string(header["BIASSEC"])
    try:
        used = _used_overscan(biassec, datasec, nbiascontam)
    except ValueError as exc:
        raise FileProblem(frame.path or frame.filename, f"extension {index}: {exc}") from None
    if not (used.y1 <= datasec.y1 and datasec.y2 <= used.y2):
        raise FileProblem(frame.path or frame.filename,
                          f"extension {index}: BIASSEC {biassec} does not cover the rows of "
                          f"DATASEC {datasec}")
    overscan = ext.data[used.slices].astype(np.float64)
    row_means = overscan.mean(axis=1)
    ncols = overscan.shape[1]
    ybin = extension_binning(header, frame.path or frame.filename)[1]
    model, reference = overscan_levels(
        row_means, row_sigma=read_noise / gain / np.sqrt(ncols),
        skip_rows=_HAMAMATSU_SKIP_ROWS // ybin if hamamatsu else 0, hamamatsu=hamamatsu, **fit)
    level_rows = model[datasec.y1 - used.y1:datasec.y2 - used.y1].astype(np.float32)
    level = float(np.median(model))
    # read noise from the overscan: rms of the per-row standard deviations (first/last rows out)
    row_std = overscan.std(axis=1, ddof=1) if ncols > 1 else np.zeros(overscan.shape[0])
    inner = row_std[1:-1] if row_std.size > 2 else row_std
    rdnoise = float(np.sqrt(np.mean(inner ** 2)) * gain)

    # subtract and trim (SCI, VAR, DQ)
    ext.data = np.subtract(ext.data[datasec.slices], level_rows[:, None], dtype=np.float32)
    ext.variance = trim_plane(ext.variance, datasec.slices)
    ext.mask = trim_plane(ext.mask, datasec.slices)
    ext.objmask = trim_plane(ext.objmask, datasec.slices)

    header[OVERSEC] = (used.to_string(), "Overscan section used")
    header[OVERSCAN] = (level + float(header.get(OVERSCAN, 0.0)), "Overscan level subtracted")
    header[OVERRMS] = (float(np.sqrt(np.mean((row_means - reference) ** 2))),
                       "RMS of the overscan row means about the model")
    header[OVERRDNS] = (rdnoise, "Read noise from the overscan (e-)")
    for key in (SATLEVEL, NONLINEA):
        if key in header:
            header[key] = float(header[key]) - level
    ny, nx = ext.data.shape
    header["DATASEC"] = (Section(0, nx, 0, ny).to_string(), "Data section")
    header.remove("BIASSEC", ignore_missing=True)
    for axis, offset in (("1", datasec.x1), ("2", datasec.y1)):
        if f"CRPIX{axis}" in header:
            header[f"CRPIX{axis}"] = float(header[f"CRPIX{axis}"]) - offset
    header[TRIMMED] = ("yes", "Overscan trimmed")


# -- biasCorrect ----------------------------------------------------------------

#: Whether each bias in use has DQ flags under each extension (a processed bias's DQ is
#: mostly all 0: OR-ing it changes nothing).
_FLAGGED = CalibrationMemo()


def _subtract_bias(new: Frame, cal: Frame, _index: int) -> None:
    """biasCorrect of one frame (run by ``ctx.map``)."""
    flagged = _FLAGGED.of(cal)
    matched = matched_planes(new, cal, "bias")

    def subtract(index: int) -> None:
        ext, planes = new.exts[index], matched[index]
        key = (index, ext.header.get("DETSEC"), ext.header.get("DATASEC"), ext.data.shape)
        if key not in flagged:
            flagged[key] = planes.mask is not None and bool(planes.mask.any())
        _subtract_planes(ext, planes, flagged[key])

    each_extension(subtract, len(new.exts))


def _subtract_planes(ext, planes, flagged: bool) -> None:
    """biasCorrect of one extension with the bias's planes cut to it (``flagged``: its DQ
    has a flag set)."""
    ext.data = ext.data - planes.data
    if ext.variance is not None and planes.variance is not None:
        ext.variance = ext.variance + planes.variance
    if ext.mask is not None and flagged:
        ext.mask = ext.mask | planes.mask
    if OVERSCAN not in planes.header:
        level = float(np.median(planes.data))
        ext.header[OVERSCAN] = (level, "Bias level subtracted")
        for key in (SATLEVEL, NONLINEA):
            if key in ext.header:
                ext.header[key] = float(ext.header[key]) - level


@primitive(
    Param("bias", str, None, "Processed bias file; None asks the calibration database.",
          optional=True),
    Param("do_cal", str, "procmode", "'procmode'/'force': subtract the bias (an error if none is "
                                     "found); 'skip': do nothing.", choices=DO_CAL_CHOICES),
    suffix="_biasCorrected", calibrations=("processed_bias",),
)
def biasCorrect(frames: list[Frame], ctx: StepContext, *, bias: str | None,
                do_cal: str) -> list[Frame]:
    """Subtract the processed bias: SCI minus bias, VAR added, DQ OR-ed."""
    return apply_calibration(frames, ctx, "biasCorrect", "processed_bias", bias, do_cal,
                             _subtract_bias, BIASIM, check_units=True)


# -- ADUToElectrons -------------------------------------------------------------

@primitive(suffix="_ADUToElectrons")
def ADUToElectrons(frames: list[Frame], ctx: StepContext) -> list[Frame]:
    """Convert SCI from ADU to electrons with each amplifier's gain (VAR by gain squared)."""
    out = []
    for frame in frames:
        if in_electrons(frame):
            ctx.log.warning("%s is already in electrons; left unchanged", frame.filename)
            out.append(light_copy(frame))
            continue
        new = light_copy(frame)
        gains = frame.descriptor("gain")
        each_extension(lambda index: _to_electrons(new.exts[index], gains[index]),
                       len(new.exts))
        if BUNIT in new.phu:
            new.phu[BUNIT] = BUNIT_ELECTRONS
        out.append(new)
    return out


def _to_electrons(ext, gain: float) -> None:
    """ADUToElectrons of one extension."""
    g32 = np.float32(gain)
    ext.data = ext.data * g32
    if ext.variance is not None:
        ext.variance = ext.variance * (g32 * g32)
    for key in (SATLEVEL, NONLINEA):
        if key in ext.header:
            ext.header[key] = float(ext.header[key]) * gain
    ext.header[GAIN] = (1.0, "Gain (e-/ADU)")
    ext.header[BUNIT] = (BUNIT_ELECTRONS, "Physical units of the array values")


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (overscanCorrect, biasCorrect, ADUToElectrons)
