"""Compiled per-pixel kernels of :mod:`.crs` (numba): one pass each, no full-size temporaries.

* :func:`stack_median`: the median (NaN last, as :func:`numpy.sort`), the
  number of finite values and the sum of their variances, pixel by pixel,
  of a row chunk of the aligned images (each made by :func:`usable_plane`);
* :func:`select_values`, :func:`indices_above`: the
  values of an image (or of its difference from the median) on the pixels a
  DQ mask and an optional sky mask allow, and the flat indices of those
  above a threshold of ``sqrt(VAR)``;
* :func:`above_at`: the cosmic-ray test of the difference from the median
  at given flat indices;
* :func:`overlap_differences`: the differences of two images on the pixels
  good in both (stackFrames' offsets, :mod:`.stack`).

Every operation is done in the precision and order numpy used in the
code these kernels replace (float32 sums and products; the variance's
``pi/2 / n^2`` in float64, rounded to float32), so the results are
identical.  The kernels release the GIL (the executor runs frames and row
chunks on threads); compiled code is cached on disk (``cache=True``).
Arrays are passed with explicit read-only ``'A'`` signatures, so read-only
(mapped) and writable planes share one compiled version; an absent plane
is a ``(0, 0)`` array with its flag false.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from ..numerics.combine_kernel import apply_network

__all__ = ["stack_median", "usable_plane", "select_values", "indices_above", "above_at",
           "overlap_differences"]

_F32_2D = types.Array(types.float32, 2, "A", readonly=True)
_F32_3D = types.Array(types.float32, 3, "C", readonly=True)
_U16_2D = types.Array(types.uint16, 2, "A", readonly=True)
_BOOL_2D = types.Array(types.boolean, 2, "A", readonly=True)
_U8_2D = types.Array(types.uint8, 2, "A", readonly=True)
_F32_2D_OUT = types.Array(types.float32, 2, "A")
_U8_2D_OUT = types.Array(types.uint8, 2, "A")
_PAIRS = types.Array(types.intp, 2, "C", readonly=True)
#: float32(pi / 2), as numpy rounds the Python float multiplying a float32 array.
_HALF_PI = np.float32(np.pi / 2)


#: Pixels of a row whose values are ordered at once by :func:`stack_median` (its scratch
#: stays in the L1 cache).
_LANES = 256


@njit(types.void(_F32_3D, _F32_3D, types.boolean, _PAIRS, _F32_2D_OUT, _F32_2D_OUT,
                 _U8_2D_OUT), nogil=True, cache=True)
def stack_median(stack, var_stack, has_var, pairs, median, variance, counts):
    """Median, variance of the median and count of the finite values along axis 0.

    ``stack`` is (n, rows, cols) with NaN where an image has no usable pixel;
    the results go to ``median``, ``variance`` (when ``has_var``; ``var_stack``
    then has ``stack``'s shape) and ``counts``, each (rows, cols) (views of
    the whole outputs).  The median is the mean of the two middle finite
    values (NaN if none); the variance ``pi/2 * sum(VAR) / count^2`` (inf if
    none).  The values are ordered as :func:`numpy.sort` orders them, NaN
    last: the NaNs are ordered as +inf (the values before them are those
    :func:`numpy.sort` puts first, in the same order), by the comparators
    ``pairs`` of a sorting network for n values, applied to :data:`_LANES`
    pixels of a row at once (loops the compiler vectorises).
    """
    n, rows, cols = stack.shape
    work = np.empty((n, _LANES), np.float32)
    finite = np.empty(_LANES, np.int64)
    total = np.empty(_LANES, np.float32)
    for y in range(rows):
        for first in range(0, cols, _LANES):
            m = min(_LANES, cols - first)
            for p in range(m):
                finite[p] = 0
                total[p] = 0
            for k in range(n):
                values = stack[k, y, first:first + m]
                lane = work[k]
                for p in range(m):
                    value = values[p]
                    lane[p] = np.inf if np.isnan(value) else value
                    finite[p] += np.isfinite(value)
                if has_var:
                    var = var_stack[k, y, first:first + m]
                    for p in range(m):
                        if np.isfinite(values[p]):
                            total[p] += var[p]
            apply_network(work, pairs, m)
            for p in range(m):
                count = finite[p]
                x = first + p
                counts[y, x] = count
                if count == 0:
                    median[y, x] = np.nan
                else:
                    median[y, x] = np.float32(0.5) * (work[(count - 1) // 2, p]
                                                      + work[count // 2, p])
                if has_var:
                    if count == 0:
                        variance[y, x] = np.inf
                    else:
                        scaled = np.float64(_HALF_PI * total[p])
                        variance[y, x] = np.float32(scaled / count / count)


@njit(types.void(_F32_2D, types.float32, _U16_2D, types.boolean, types.int64,
                 types.float32[:, ::1]), nogil=True, cache=True)
def usable_plane(data, offset, mask, has_mask, bits, plane):
    """``plane = data + offset`` (float32), NaN on the pixels with DQ ``bits`` (``has_mask``)."""
    rows, cols = data.shape
    for y in range(rows):
        for x in range(cols):
            if has_mask and (mask[y, x] & bits) != 0:
                plane[y, x] = np.nan
            else:
                plane[y, x] = data[y, x] + offset


# The loops are written out in each kernel: a call per pixel to a helper taking arrays
# (not inlined across cached functions) made them 50x slower.

@njit(types.float32[::1](_F32_2D, _F32_2D, types.float32, types.boolean, _U16_2D,
                         types.boolean, types.int64, _BOOL_2D, types.boolean, types.boolean,
                         types.int64), nogil=True, cache=True)
def select_values(data, median, offset, has_median, mask, has_mask, bits, sky, has_sky,
                  finite_only, most):
    """The values of the pixels without DQ ``bits`` (``has_mask``) on ``sky`` (``has_sky``),
    finite only if ``finite_only``, in flat order.

    Values are ``data + offset - median`` in float32 (``has_median``) or
    ``data``.  When there are more than ``most`` of them, every
    ``ceil(count / most)``-th (a regular subsample, as ``values[::step]``).
    """
    rows, cols = data.shape
    out = np.empty(0, np.float32)
    count = 0
    step = 0
    for gather in (False, True):
        if gather:
            step = math.ceil(count / most) if count > most else 1
            out = np.empty((count + step - 1) // step, np.float32)
        n = 0
        skip = 0
        for y in range(rows):
            for x in range(cols):
                if has_mask and (mask[y, x] & bits) != 0 or has_sky and not sky[y, x]:
                    continue
                value = (data[y, x] + offset) - median[y, x] if has_median else data[y, x]
                if finite_only and not np.isfinite(value):
                    continue
                if not gather:
                    count += 1
                elif skip == 0:
                    out[n] = value
                    n += 1
                    skip = step - 1
                else:
                    skip -= 1
    return out


_ABOVE_SIGNATURE = (_F32_2D, _F32_2D, types.float32, _F32_2D, types.boolean, types.float32,
                    _U16_2D, types.boolean, types.int64, _BOOL_2D, types.float32, types.float32)


@njit(nogil=True, cache=True, inline="always")
def _sigma_at(variance, has_var, sigma, y, x):
    """The noise of pixel ``(y, x)``: ``sqrt(max(VAR, 0))`` in float32 (NaN stays NaN, as
    ``numpy.maximum``), or ``sigma`` without VAR."""
    if not has_var:
        return sigma
    var = variance[y, x]
    if var < 0:
        var = np.float32(0.0)
    return np.sqrt(var)


@njit(types.int64[::1](*_ABOVE_SIGNATURE), nogil=True, cache=True)
def indices_above(data, median, offset, variance, has_var, sigma, mask, has_mask, bits, sky,
                  floor, least):
    """Flat indices of the sky pixels without DQ ``bits`` whose difference from the median
    ``data + offset - median`` exceeds ``floor + least * sd`` (float32; ``sd`` is
    ``sqrt(max(VAR, 0))``, or ``sigma`` without VAR).

    One pass: the indices go to a buffer the size of the image, of which only
    the pages written are touched, and are copied out.
    """
    rows, cols = data.shape
    out = np.empty(rows * cols, np.int64)
    n = 0
    for y in range(rows):
        for x in range(cols):
            if has_mask and (mask[y, x] & bits) != 0 or not sky[y, x]:
                continue
            sd = _sigma_at(variance, has_var, sigma, y, x)
            if (data[y, x] + offset) - median[y, x] > floor + least * sd:
                out[n] = y * cols + x
                n += 1
    return out[:n].copy()


@njit(types.boolean[::1](types.int64[::1], _F32_2D, _F32_2D, types.float32, _F32_2D, types.boolean,
                         types.float32, _U8_2D, _BOOL_2D, _U16_2D, types.boolean, types.int64,
                         types.float64, types.float64, types.float64), nogil=True, cache=True)
def above_at(index, data, median, offset, variance, has_var, sigma, count, sky, mask, has_mask,
             bits, background, k, k_pair):
    """Whether each pixel (flat ``index``) is on ``sky``, without DQ ``bits`` and its difference
    from the median exceeds ``background`` by ``k`` sigma (``k_pair`` for twice the difference
    where ``count`` is 2).

    The difference ``data + offset - median`` and its double are float32, sigma
    ``sqrt(max(VAR, 0))`` (float32, or ``sigma`` without VAR); the threshold
    ``background + k * sigma`` and the comparison are float64 (numpy's
    promotions of the float32 planes with Python floats).
    """
    cols = data.shape[1]
    out = np.empty(index.size, np.bool_)
    for n in range(index.size):
        y, x = index[n] // cols, index[n] % cols
        if not sky[y, x] or has_mask and (mask[y, x] & bits) != 0:
            out[n] = False
            continue
        pair = count[y, x] == 2
        diff = (data[y, x] + offset) - median[y, x]
        if pair:
            diff = np.float32(2.0) * diff
        sd = _sigma_at(variance, has_var, sigma, y, x)
        out[n] = np.float64(diff) > background + (k_pair if pair else k) * np.float64(sd)
    return out


@njit(types.float32[::1](_F32_2D, _U16_2D, types.boolean, _F32_2D, _U16_2D, types.boolean,
                         types.int64), nogil=True, cache=True)
def overlap_differences(ref, ref_mask, has_ref_mask, data, mask, has_mask, most):
    """``ref - data`` (float32) on the pixels finite and with DQ 0 in both, in flat order.

    When there are ``count`` of them, every ``max(1, count // most)``-th (as
    ``values[::step]``).  Two passes: the count, then the values kept.
    """
    rows, cols = data.shape
    out = np.empty(0, np.float32)
    count = 0
    step = 0
    for gather in (False, True):
        if gather:
            step = max(1, count // most)
            out = np.empty((count + step - 1) // step, np.float32)
        n = 0
        skip = 0
        for y in range(rows):
            for x in range(cols):
                a = ref[y, x]
                b = data[y, x]
                if (not np.isfinite(a) or not np.isfinite(b)
                        or has_ref_mask and ref_mask[y, x] != 0 or has_mask and mask[y, x] != 0):
                    continue
                if not gather:
                    count += 1
                elif skip == 0:
                    out[n] = a - b
                    n += 1
                    skip = step - 1
                else:
                    skip -= 1
    return out
