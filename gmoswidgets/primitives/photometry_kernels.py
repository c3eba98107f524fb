"""Compiled per-pixel kernels of :mod:`.photometry` (numba): the image and noise sep is given.

:func:`bad_pixels` and :func:`subtract_background` do in one pass each what
numpy did in several (with a full-size temporary per operation), in the
same float32 arithmetic, so the results are identical; the latter
evaluates the background map row by row as it subtracts it (the map is
never made) and writes into arrays the caller gives (which may be its
input: the first touch of a fresh large array costs time).  Both work on a
band of rows (:func:`~gmoswidgets.executor.map_bands`), release the GIL
and are cached on disk; planes are passed with read-only C-contiguous
signatures (one compiled version for read-only and writable planes; the
loops over contiguous rows are vectorised), an absent plane as a
``(0, 0)`` array with its flag false.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from ..numerics.background_kernels import SPLINE, background_row, row_nodes

__all__ = ["bad_pixels", "subtract_background"]

_F32_2D = types.Array(types.float32, 2, "C", readonly=True)
_U16_2D = types.Array(types.uint16, 2, "C", readonly=True)
_BOOL_2D = types.Array(types.boolean, 2, "C", readonly=True)


@njit(types.void(_F32_2D, _F32_2D, types.boolean, _U16_2D, types.boolean, types.int64,
                 types.int64, types.int64, types.boolean[:, ::1]), nogil=True, cache=True)
def bad_pixels(image, variance, has_var, dqmask, has_mask, flags, first, stop, bad):
    """Rows ``first .. stop`` of the pixels to ignore, into ``bad``: DQ ``flags`` set, a
    non-finite value, or a non-finite or non-positive variance."""
    cols = image.shape[1]
    for y in range(first, stop):
        for x in range(cols):
            flagged = has_mask and (dqmask[y, x] & flags) != 0
            if not flagged and has_var:
                var = variance[y, x]
                flagged = not np.isfinite(var) or var <= 0
            bad[y, x] = flagged or not np.isfinite(image[y, x])


@njit(types.void(_F32_2D, *SPLINE, _F32_2D, types.boolean, _BOOL_2D, types.float32,
                 types.int64, types.int64, types.float32[:, ::1], types.float32[:, ::1]),
      nogil=True, cache=True)
def subtract_background(image, grid, dgrid, mesh_size, lo, dx, cdx, ax, bx, variance, has_var,
                        bad, rms, first, stop, sub, err):
    """Rows ``first .. stop`` of the background-subtracted image (0 on bad pixels), into
    ``sub``, and of the per-pixel error, into ``err``: ``sqrt(VAR)`` (inf on bad pixels),
    or ``rms`` everywhere without VAR.

    The background is the spline through the mesh ``grid`` that ``grid`` to
    ``bx`` describe (:meth:`~gmoswidgets.numerics.background.SkyBackground.spline`).
    ``sub`` may be ``image`` itself (each pixel is read before it is written).
    """
    nx = grid.shape[1]
    node = np.empty(nx, np.float32)
    dnode = np.empty(nx, np.float32)
    scratch = np.empty(nx, np.float32)
    cols = image.shape[1]
    background = np.empty(cols, np.float32)
    for y in range(first, stop):
        row_nodes(grid, dgrid, mesh_size, y, node, dnode, scratch)
        background_row(node, dnode, lo, dx, cdx, ax, bx, background)
        for x in range(cols):
            sub[y, x] = 0.0 if bad[y, x] else image[y, x] - background[x]
        if has_var:
            for x in range(cols):
                err[y, x] = np.inf if bad[y, x] else np.sqrt(variance[y, x])
        else:
            err[y] = rms
