"""The noise correlation an earlier resampling leaves, for the variance of a second one.

:func:`~gmoswidgets.numerics.interpolate.resample_variance` gives a
resampled pixel ``sum(w_i x_i)`` the variance ``sum(w_i**2 var_i)``, exact
when the input pixels are independent.  A frame resampled twice is not:
``mosaicDetectors`` places CCD1 and CCD3 with sub-pixel shifts, then
``resampleToCommonFrame`` shifts each dithered frame onto the reference,
and the first interpolation has made neighbouring pixels covary.  Along
each axis the two interpolations make one kernel, the convolution
``u = v * w`` of their weights, so the variance is ``V sum(u**2)``, not
``V sum(v**2) sum(w**2)``: with poly3 at (0.5, 0.5) then (0.39, 0.39)
the noise is 1.29x what the second VAR says.

The first resampling writes, in its output header, the interpolant and,
for each input it placed with a sub-pixel map, the input's box and the
affine map from output to input pixels (:func:`record_resampling`).  The
second one reads them back (:func:`prior_resampling`) and multiplies each
pixel's variance from ``resample_variance`` by
``R(f1x, f2x) R(f1y, f2y)``, ``R = sum(u**2) / (sum(v**2) sum(w**2))``,
``f1`` and ``f2`` being the fractional offsets of the two interpolations
there (:func:`correlation_factor`).  The kernels are measured by passing
an impulse through :func:`~gmoswidgets.numerics.interpolate.resample`
itself, so every interpolant is covered as it is implemented.  Maps are
taken as locally translations (GMOS' CCD rotations are < 0.1 degree).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .interpolate import AffineMap, resample

__all__ = ["PriorResampling", "record_resampling", "prior_resampling", "clear_resampling",
           "correlation_factor"]

#: Header keywords: the interpolant of the earlier resampling, and one box + map per input.
INTERPOLANT_KEY = "VARINTRP"
MAP_KEY = "VARMAP{}"
#: Fractional offsets i / n at which the correlation factor is tabulated (the nearest is used;
#: neighbouring entries of the poly3 table differ by < 0.004).
_TABLE_STEPS = 256


@dataclass(frozen=True)
class PriorResampling:
    """Where and how an image was resampled before: its interpolant and, per placed input,
    the box ``(x0, x1, y0, y1)`` (0-based, half-open, image pixels) and the affine map
    ``(m00, m01, m10, m11, o0, o1)`` from image pixels to that input's pixels."""

    interpolant: str
    boxes: tuple
    maps: tuple


def record_resampling(header: fits.Header, interpolant: str, placements) -> None:
    """Write an image's resampling into its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
    interpolant : str
    placements : iterable of (box, AffineMap)
        ``box`` = ``(x0, x1, y0, y1)`` of the output pixels an input covers,
        the map from output pixels to that input's pixels.  Inputs placed by
        whole pixels (no correlation) are left out.
    """
    clear_resampling(header)
    index = 0
    for box, amap in placements:
        fraction = np.asarray(amap.offset) - np.round(amap.offset)
        if np.array_equal(amap.matrix, np.eye(2)) and np.all(np.abs(fraction) < 1e-9):
            continue
        index += 1
        values = [*map(int, box), *np.asarray(amap.matrix, float).ravel(),
                  *np.asarray(amap.offset, float)]
        header[MAP_KEY.format(index)] = (" ".join(f"{v:.10g}" for v in values),
                                         "box x0 x1 y0 y1, map to input pixels")
    if index:
        header[INTERPOLANT_KEY] = (interpolant, "Interpolant of the earlier resampling (VAR)")


def prior_resampling(header: fits.Header) -> PriorResampling | None:
    """The resampling recorded by :func:`record_resampling`, or None."""
    if INTERPOLANT_KEY not in header:
        return None
    boxes, maps, index = [], [], 1
    while MAP_KEY.format(index) in header:
        values = [float(v) for v in str(header[MAP_KEY.format(index)]).split()]
        boxes.append(tuple(int(v) for v in values[:4]))
        maps.append(tuple(values[4:10]))
        index += 1
    return PriorResampling(str(header[INTERPOLANT_KEY]).strip(), tuple(boxes), tuple(maps))


def clear_resampling(header: fits.Header) -> None:
    """Remove a recorded resampling from a header (its correlation has been accounted for)."""
    for key in [k for k in header if k == INTERPOLANT_KEY or
                (k.startswith(MAP_KEY[:-2]) and k[len(MAP_KEY) - 2:].isdigit())]:
        del header[key]


@functools.lru_cache(maxsize=16)
def _kernels(interpolant: str) -> np.ndarray:
    """1-D weights of ``interpolant`` at each tabulated fractional offset (rows).

    Measured as the response of :func:`~gmoswidgets.numerics.interpolate.resample` to an impulse.
    """
    impulse = np.zeros((1, 64), np.float32)
    impulse[0, 32] = 1.0
    return np.array([resample([impulse], AffineMap.translation(f, 0.0), impulse.shape,
                              interpolant)[0][0].astype(np.float64)
                     for f in np.arange(_TABLE_STEPS + 1) / _TABLE_STEPS])


def _autocorrelations(kernels: np.ndarray) -> np.ndarray:
    return np.array([np.correlate(k, k, mode="full") for k in kernels])


@functools.lru_cache(maxsize=16)
def _table(first: str, second: str) -> np.ndarray:
    """``R(f1, f2)`` at fractional offsets ``i / n`` (rows: first resampling, columns: second).

    ``sum((v * w)**2) = sum_k a_v(k) a_w(k)`` over lags k, ``a`` being each kernel's
    autocorrelation (``a(0) = sum of squares``).
    """
    aw, av = _autocorrelations(_kernels(first)), _autocorrelations(_kernels(second))
    centre = aw.shape[1] // 2
    return (aw @ av.T) / np.outer(aw[:, centre], av[:, centre])


def correlation_factor(prior: PriorResampling, amap: AffineMap, out_shape: tuple[int, int],
                       interpolant: str, *, scale: np.ndarray | None = None) -> np.ndarray:
    """Per output pixel, true / independent-input variance of resampling an already resampled image.

    Parameters
    ----------
    prior : PriorResampling
        The earlier resampling of the input.
    amap : AffineMap
        Output (x, y) pixel -> input (x, y) pixel of the second resampling.
    out_shape : tuple of int
    interpolant : str
        The second resampling's interpolant.
    scale : numpy.ndarray, optional
        float32 array of ``out_shape`` (the second resampling's VAR) to multiply in
        place by the factors, instead of returning new factors.

    Returns
    -------
    numpy.ndarray
        float32 factors (1 where the input was placed by whole pixels, or where the
        second map is a whole-pixel shift), or ``scale`` multiplied by them.

    Notes
    -----
    A pixel's earlier fractional offsets are those of the recorded map at the input
    pixel nearest to where the second map puts it (the last recorded box holding that
    pixel); both resamplings' offsets are rounded to the table's steps of 1/256.
    """
    factor = np.ones(out_shape, np.float32) if scale is None else scale
    if factor.shape != tuple(out_shape) or factor.dtype != np.float32:
        raise ValueError(f"scale must be a float32 array of shape {tuple(out_shape)}")
    offset = np.asarray(amap.offset)
    if np.array_equal(amap.matrix, np.eye(2)) and np.all(np.abs(offset - np.round(offset)) < 1e-9):
        return factor
    from .kernels import scale_by_correlation  # numba is loaded only by the stages that resample
    scale_by_correlation(factor, np.asarray(amap.matrix, np.float64),
                         np.asarray(amap.offset, np.float64),
                         np.asarray(prior.boxes, np.int64).reshape(-1, 4),
                         np.asarray(prior.maps, np.float64).reshape(-1, 6),
                         _table(prior.interpolant, interpolant), _TABLE_STEPS)
    return factor
