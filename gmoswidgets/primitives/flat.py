"""normalizeFlat and flatCorrect.

Semantics follow DRAGONS' GMOS imaging ``normalizeFlat``
(``gmos/primitives_gmos_image.py``) and ``flatCorrect``
(``core/primitives_preprocess.py``):

* **normalizeFlat** measures one factor on CCD2 (CCD1 and CCD3 are less
  illuminated and would bias it): leaving out a 5% border (at least 20
  pixels) and flagged pixels, it finds the mode of the histogram, then the
  median of the pixels within the mode +/- 3 standard deviations.  Every
  extension is divided by that one factor, so the CCD-to-CCD response
  differences are kept; flagged pixels are then set to 1.0.
* **flatCorrect** divides by the processed flat (clipped to the science
  readout region), propagating VAR and OR-ing DQ.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import dq
from ..errors import FileProblem
from ..frame import Frame
from ..gmos.keywords import FLATIM
from ..validate import check_flat_usable
from ._calib import (DO_CAL_CHOICES, CalibrationMemo, apply_calibration, central_ccd_pixels,
                     each_extension, light_copy, matched_planes)
from .base import Param, StepContext, primitive

__all__ = ["normalizeFlat", "flatCorrect", "flat_level"]

#: Flags for which a normalized flat pixel is set to 1.0 (everything but non-linear).
_RESET_FLAGS = 65535 ^ dq.NON_LINEAR
#: Histogram bins per standard deviation when looking for the mode.
_BINS_PER_SIGMA = 10
#: Half-width, in standard deviations, of the histogram and of the window around the mode.
_HISTOGRAM_SIGMAS, _MODE_WINDOW_SIGMAS = 5.0, 3.0


def flat_level(values: np.ndarray, statistic: str) -> float:
    """The normalization level of flat-field pixel values.

    The mode of the histogram is found first (the standard deviation being
    estimated robustly from the median absolute deviation), then the
    ``statistic`` of the values within the mode +/- 3 standard deviations.

    Parameters
    ----------
    values : numpy.ndarray
        Good pixel values (1-D).
    statistic : {'median', 'mean'}

    Returns
    -------
    float
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no pixel values to measure the flat level on")
    median = np.median(values)
    sigma = 1.4826 * np.median(np.abs(values - median))
    if sigma <= 0:
        return float(median)
    nbins = int(2 * _HISTOGRAM_SIGMAS * _BINS_PER_SIGMA)
    counts, edges = np.histogram(values, bins=nbins,
                                 range=(median - _HISTOGRAM_SIGMAS * sigma,
                                        median + _HISTOGRAM_SIGMAS * sigma))
    counts = np.convolve(counts, np.ones(3) / 3.0, mode="same")    # steady the peak
    peak = int(np.argmax(counts))
    mode = 0.5 * (edges[peak] + edges[peak + 1])
    window = values[np.abs(values - mode) <= _MODE_WINDOW_SIGMAS * sigma]
    return float(np.mean(window) if statistic == "mean" else np.median(window))


@primitive(
    Param("scale", str, "median", "Statistic of the pixels around the histogram mode of CCD2.",
          choices=("median", "mean")),
    suffix="_normalized",
)
def normalizeFlat(frames: list[Frame], ctx: StepContext, *, scale: str) -> list[Frame]:
    """Divide the flat by one level measured on CCD2; flagged pixels become 1.0."""
    out = []
    for frame in frames:
        values = central_ccd_pixels(frame)
        if values.size == 0:
            raise FileProblem(frame.path or frame.filename,
                              "no good pixels on CCD2 to normalize the flat")
        level = flat_level(values, scale)
        if not np.isfinite(level) or level <= 0:
            raise FileProblem(frame.path or frame.filename,
                              f"flat level {level} is not positive; is this a flat field?")
        ctx.log.info("%s: normalization level %.6g from %d CCD2 pixels", frame.filename, level,
                     values.size)
        new = light_copy(frame)
        factor = np.float32(1.0 / level)

        def normalize(index: int, new=new, factor=factor) -> None:
            ext = new.exts[index]
            ext.data = ext.data * factor
            if ext.variance is not None:
                ext.variance = ext.variance * (factor * factor)
            if ext.mask is not None:
                np.copyto(ext.data, 1.0, where=(ext.mask & _RESET_FLAGS) != 0)

        each_extension(normalize, len(new.exts))
        out.append(new)
    return out


class _Response(NamedTuple):
    """What dividing by one flat extension needs, computed once for all the frames of a step."""

    safe: np.ndarray                 # the response, 1 where unusable (float32)
    unusable: np.ndarray | None      # not finite or not positive; None if every pixel is usable
    ratio: np.ndarray | None         # the flat's VAR / safe**2 (None without a VAR)
    squared: np.ndarray              # safe**2


def _response(cal: Frame, number: int, planes) -> _Response:
    response = planes.data
    usable = np.isfinite(response) & (response > 0)
    if not usable.any():
        check_flat_usable(cal, response, number)   # raises: no usable pixel
    safe = np.where(usable, response, np.float32(1)).astype(np.float32, copy=False)
    squared = safe * safe
    ratio = None if planes.variance is None else planes.variance / squared
    return _Response(safe, None if usable.all() else ~usable, ratio, squared)


#: :class:`_Response` of each flat in use, by extension.
_RESPONSES = CalibrationMemo()


def _divide_by_flat(new: Frame, cal: Frame, _index: int) -> None:
    """flatCorrect of one frame (run by ``ctx.map``); the flat's :class:`_Response` is cached.

    The arithmetic is DRAGONS': SCI / flat; VAR / flat**2 + SCI'**2 VAR_flat / flat**2
    (SCI' the divided data); DQ OR-ed; unusable flat pixels give 0 and BAD_PIXEL.
    """
    responses = _RESPONSES.of(cal)
    matched = matched_planes(new, cal, "flat", fill=1.0)

    def divide(index: int) -> None:
        ext, planes = new.exts[index], matched[index]
        key = (index + 1, ext.header.get("DETSEC"), ext.header.get("DATASEC"), ext.data.shape)
        if key not in responses:
            responses[key] = _response(cal, index + 1, planes)
        flat = responses[key]
        data = np.divide(ext.data, flat.safe)
        if flat.unusable is not None:
            np.copyto(data, 0, where=flat.unusable)
        ext.data = data
        if ext.variance is not None:
            variance = np.divide(ext.variance, flat.squared)
            if flat.ratio is not None:
                _add_squared_times(variance, data, flat.ratio)
            if flat.unusable is not None:
                np.copyto(variance, 0, where=flat.unusable)
            ext.variance = variance
        if ext.mask is not None:
            if planes.mask is not None:
                mask = np.bitwise_or(ext.mask, planes.mask, dtype=dq.DTYPE)
            elif flat.unusable is not None:
                mask = ext.mask.astype(dq.DTYPE)     # a copy: the input is not modified
            else:
                mask = ext.mask
            if flat.unusable is not None:
                np.bitwise_or(mask, dq.BAD_PIXEL, out=mask, where=flat.unusable)
            ext.mask = mask.astype(dq.DTYPE, copy=False)

    each_extension(divide, len(new.exts))


#: Rows per block of :func:`_add_squared_times` (its scratch stays in the CPU caches).
_BLOCK_ROWS = 64


def _add_squared_times(out, values, factor):
    """``out += values**2 * factor`` (same bits), block by block without a full-size temporary."""
    scratch = np.empty(values[:_BLOCK_ROWS].shape, values.dtype)     # the dtype of values**2
    for start in range(0, values.shape[0], _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        part = scratch[:values[rows].shape[0]]
        np.multiply(values[rows], values[rows], out=part)
        part *= factor[rows]
        out[rows] += part


@primitive(
    Param("flat", str, None, "Processed flat file; None asks the calibration database.",
          optional=True),
    Param("do_cal", str, "procmode", "'procmode'/'force': divide by the flat (an error if none is "
                                     "found); 'skip': do nothing.", choices=DO_CAL_CHOICES),
    suffix="_flatCorrected", calibrations=("processed_flat",),
)
def flatCorrect(frames: list[Frame], ctx: StepContext, *, flat: str | None,
                do_cal: str) -> list[Frame]:
    """Divide by the processed flat (clipped to the science ROI): VAR propagated, DQ OR-ed."""
    return apply_calibration(frames, ctx, "flatCorrect", "processed_flat", flat, do_cal,
                             _divide_by_flat, FLATIM)


#: The primitives this module defines, for :class:`~.base.PrimitiveTable`.
PRIMITIVES = (normalizeFlat, flatCorrect)
