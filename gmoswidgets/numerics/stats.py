"""Robust statistics of pixel samples.

:func:`clipped_median` is the median of ``astropy.stats.sigma_clipped_stats``
(median centre, standard-deviation width, clipping until nothing changes or
``maxiters``), computed from one sort of the values: the values kept after any
number of clipping iterations are a contiguous run of the sorted values, so
each iteration's median is read off the run instead of partitioning the data
again (astropy spends most of its time there).  The widths are computed as
astropy computes them (:func:`numpy.nanstd` of the kept values in their
original order, with its operations and roundings, less its copy of the
values and its search for NaNs: there are none), so the result is the same
number.
"""
from __future__ import annotations

import numpy as np

__all__ = ["clipped_median"]


def _run_median(ordered: np.ndarray, start: int, stop: int):
    """The median of the sorted ``ordered[start:stop]`` as :func:`numpy.median` computes it
    (the middle value, or the mean of the two middle values in the array's precision)."""
    count = stop - start
    middle = start + count // 2
    return np.mean(ordered[middle - 1 + count % 2:middle + 1])


def _std(kept: np.ndarray, scratch: np.ndarray):
    """:func:`numpy.nanstd` of the finite floating-point ``kept`` (1-D), the same number.

    The operations of numpy's ``nanvar`` on values without NaN: the mean as a
    sum kept as an array and divided by the (integer) count, the squared
    deviations summed, divided by the count and rounded to the values' type,
    then the square root.  The deviations go to ``scratch`` (at least as long).
    """
    count = np.array([kept.size], np.intp)
    mean = np.sum(kept, keepdims=True)
    np.divide(mean, count, out=mean, casting="unsafe")
    deviations = np.subtract(kept, mean, out=scratch[:kept.size], casting="unsafe")
    np.multiply(deviations, deviations, out=deviations)
    variance = np.sum(deviations)
    variance = variance.dtype.type(variance / count[0])
    return variance.dtype.type(np.sqrt(variance))


def clipped_median(values: np.ndarray, *, sigma: float = 3.0, maxiters: int = 10) -> float:
    """Sigma-clipped median: ``sigma_clipped_stats(values, sigma=sigma, maxiters=maxiters)[1]``.

    Parameters
    ----------
    values : numpy.ndarray
        The sample (any shape; non-finite values are left out, as astropy does;
        integers are taken as float64).
    sigma : float
        Clipping threshold in standard deviations, on both sides.
    maxiters : int
        Most clipping iterations.

    Returns
    -------
    float
        The median of the values kept by the last iteration; NaN without
        finite values.
    """
    values = np.ravel(values)
    if not np.issubdtype(values.dtype, np.inexact):
        values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        return float("nan")
    ordered = np.sort(values)
    kept = values                         # the values kept so far, in their original order
    start, stop = 0, ordered.size         # ... which are ordered[start:stop]
    scratch = np.empty_like(values)
    for _ in range(maxiters):
        centre = _run_median(ordered, start, stop)
        width = _std(kept, scratch)
        low, high = centre - width * sigma, centre + width * sigma
        new_start = max(start, int(np.searchsorted(ordered, low, side="left")))
        new_stop = min(stop, int(np.searchsorted(ordered, high, side="right")))
        if (new_start, new_stop) == (start, stop):
            break
        if new_stop <= new_start:     # nothing left (astropy: NaN)
            return float("nan")
        start, stop = new_start, new_stop
        kept = kept[(kept >= low) & (kept <= high)]
    return float(_run_median(ordered, start, stop))
