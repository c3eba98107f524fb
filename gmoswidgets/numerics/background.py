"""SExtractor's sky background (``sep.Background``'s), computed in compiled kernels.

The model (Bertin & Arnouts 1996; SExtractor's BACK_TYPE AUTO): the image
is cut into meshes of ``mesh_size`` pixels; in each, the mode of the
unmasked pixels is estimated from a clipped histogram
(``2.5 median - 1.5 mean``, or the median where the distribution is
skewed), with its sigma; meshes with fewer than half their pixels unmasked
take the values of their nearest good meshes; the mesh grids are
median-filtered over ``filter_size`` meshes; the background (and rms) of a
pixel is the natural bicubic spline through the mesh centres.  The global
background and rms are the medians of the filtered grids.  The kernels
(:mod:`.background_kernels`) reproduce sep 1.4's arithmetic: the maps,
grids and global values equal ``sep.Background``'s to the bit
(``tests/test_background.py``).

Why not ``sep.Background``: it holds the GIL for its whole run, on one
core, and it was the largest single cost of source detection (seven
detections in a science reduction: five frames, the cosmic-ray median, the
stack).  Measured on a 1x1 GMOS mosaic (6279 x 4224 pixels, 32-pixel
meshes, 8-mesh filter) on the benchmarks' 2-core Xeon
(``benchmarks/bench_detect.py --one-core``, CPU time): ``sep.Background``
0.87-0.97 s and its ``back()`` map 0.12-0.18 s; :func:`sky_background`
0.22-0.25 s on one core (mesh statistics 0.17-0.19 s: the three passes
over a mesh read it from the L1 cache and the mode's clipping iterations
use cumulative sums; median filter 0.05 s; bad meshes 2 ms), the statistics
in bands of mesh rows on every core where the cores are free, and detection never
makes the map (:func:`~gmoswidgets.primitives.photometry_kernels.subtract_background`
evaluates it row by row while it subtracts).  At 2x2: 0.11 + 0.02-0.03 s
against 0.06 s.
"""
from __future__ import annotations

import numpy as np

from . import background_kernels as _k

__all__ = ["SkyBackground", "sky_background"]

#: Fewest mesh rows in a band of the mesh statistics.
_MIN_BAND_MESHES = 2
#: Empty stand-in for an absent mask.
_NO_MASK = np.zeros((0, 0), np.bool_)


class SkyBackground:
    """The background model of one image: filtered mesh grids and the spline through them.

    Made by :func:`sky_background`.

    Attributes
    ----------
    shape : tuple of int
        The image's shape.
    mesh_size : int
        Mesh width and height, in pixels.
    grid, sigma_grid : numpy.ndarray
        float32 ``(ny, nx)`` filtered background and rms of the meshes.
    globalback, globalrms : float
        Medians of the grids (a non-positive rms median is replaced by the
        median of the positive values, or 1).
    """

    def __init__(self, shape, mesh_size, model):
        self.shape = tuple(shape)
        self.mesh_size = int(mesh_size)
        (self.grid, self.sigma_grid, self._dgrid, self._dsigma, globalback, globalrms,
         *self._columns) = model
        self.globalback, self.globalrms = float(globalback), float(globalrms)

    def spline(self, *, rms: bool = False) -> tuple:
        """The arguments of the map kernels: the grid, its second derivatives along y,
        the mesh height and the column table (:func:`.background_kernels.column_table`)."""
        grid, derivatives = (self.sigma_grid, self._dsigma) if rms else (self.grid, self._dgrid)
        return (grid, derivatives, self.mesh_size, *self._columns)

    def back(self) -> np.ndarray:
        """The float32 background map (``sep.Background.back()``), made in bands of rows."""
        return self._map(self.spline())

    def rms(self) -> np.ndarray:
        """The float32 background rms map (``sep.Background.rms()``)."""
        return self._map(self.spline(rms=True))

    def back_at(self, rows, cols) -> np.ndarray:
        """The background at the pixels ``(rows[i], cols[i])`` (0-based integers), float32."""
        return _k.map_points(*self.spline(), np.asarray(rows, np.int64),
                             np.asarray(cols, np.int64))

    def _map(self, spline) -> np.ndarray:
        from ..executor import map_bands
        out = np.empty(self.shape, np.float32)
        map_bands(lambda first, stop: _k.map_rows(*spline, first, stop, out), self.shape[0])
        return out


def sky_background(image: np.ndarray, bad: np.ndarray | None = None, *, mesh_size: int,
                   filter_size: int) -> SkyBackground:
    """SExtractor's background model of an image, as ``sep.Background`` makes it.

    The mesh statistics run in bands of mesh rows on every core
    (:func:`~gmoswidgets.executor.map_bands`); the result does not depend
    on the bands.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 image (native byte order).
    bad : numpy.ndarray, optional
        Boolean mask of the pixels to ignore (sep's ``mask`` with ``maskthresh=0``).
    mesh_size : int
        Mesh width and height in pixels (sep's ``bw``, ``bh``).
    filter_size : int
        Median-filter width and height in meshes (sep's ``fw``, ``fh``).

    Returns
    -------
    SkyBackground
    """
    from ..executor import map_bands
    rows, cols = image.shape
    ny, nx = (rows - 1) // mesh_size + 1, (cols - 1) // mesh_size + 1
    grid = np.empty((ny, nx), np.float32)
    sigma = np.empty((ny, nx), np.float32)
    mask = _NO_MASK if bad is None else bad
    map_bands(lambda first, stop: _k.mesh_statistics(image, mask, bad is not None, mesh_size,
                                                     mesh_size, first, stop, grid, sigma),
              ny, min_rows=_MIN_BAND_MESHES)
    return SkyBackground(image.shape, mesh_size,
                         _k.smooth_grids(grid, sigma, filter_size // 2, mesh_size, cols))
