"""Compiled per-pixel kernels of :mod:`.photometry` (numba): the image and noise sep is given.

:func:`bad_pixels` and :func:`subtract_background` do in one pass each what
numpy did in several (with a full-size temporary per operation), in the
same float32 arithmetic, so the results are identical; the latter writes
into arrays the caller gives (which may be its input: the first touch of a
fresh large array costs time).  They release the GIL and are cached on
disk; arrays are passed with read-only ``'A'``
signatures (one compiled version for read-only and writable planes), an
absent plane as a ``(0, 0)`` array with its flag false.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

__all__ = ["bad_pixels", "subtract_background"]

_F32_2D = types.Array(types.float32, 2, "A", readonly=True)
_U16_2D = types.Array(types.uint16, 2, "A", readonly=True)
_BOOL_2D = types.Array(types.boolean, 2, "A", readonly=True)


@njit(types.boolean[:, ::1](_F32_2D, _F32_2D, types.boolean, _U16_2D, types.boolean,
                            types.int64), nogil=True, cache=True)
def bad_pixels(image, variance, has_var, dqmask, has_mask, flags):
    """Pixels to ignore: DQ ``flags`` set, a non-finite value, or a non-finite or
    non-positive variance."""
    rows, cols = image.shape
    bad = np.empty((rows, cols), np.bool_)
    for y in range(rows):
        for x in range(cols):
            flagged = has_mask and (dqmask[y, x] & flags) != 0
            if not flagged and has_var:
                var = variance[y, x]
                flagged = not np.isfinite(var) or var <= 0
            bad[y, x] = flagged or not np.isfinite(image[y, x])
    return bad


@njit(types.void(_F32_2D, _F32_2D, types.boolean, _F32_2D, types.boolean, _BOOL_2D, types.float32,
                 types.float32[:, ::1], types.float32[:, ::1]), nogil=True, cache=True)
def subtract_background(image, background, has_back, variance, has_var, bad, rms, sub, err):
    """Write the background-subtracted image (0 on bad pixels) into ``sub`` and the
    per-pixel error into ``err``: ``sqrt(VAR)`` (inf on bad pixels), or ``rms``
    everywhere without VAR.

    Without ``has_back`` the image is already background-subtracted (``sep``'s
    ``Background.subfrom``) and is copied.  ``sub`` may be ``image`` itself
    (each pixel is read before it is written).
    """
    rows, cols = image.shape
    for y in range(rows):
        for x in range(cols):
            if bad[y, x]:
                sub[y, x] = 0.0
            elif has_back:
                sub[y, x] = image[y, x] - background[y, x]
            else:
                sub[y, x] = image[y, x]
            if not has_var:
                err[y, x] = rms
            elif bad[y, x]:
                err[y, x] = np.inf
            else:
                err[y, x] = np.sqrt(variance[y, x])
