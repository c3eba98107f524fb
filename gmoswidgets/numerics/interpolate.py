"""Resampling of images, variance and DQ planes through affine pixel maps.

This is the numerical core shared by ``mosaicDetectors`` and
``resampleToCommonFrame``.  A map is an :class:`AffineMap` from *output*
pixel coordinates to *input* pixel coordinates, both 0-based ``(x, y)``
with pixel centres on integers (the numpy convention, x = column).

Interpolants (DRAGONS' names)
-----------------------------
``nearest``
    Value of the nearest input pixel.
``linear``
    Bilinear interpolation.
``poly3``, ``poly5``
    Separable Lagrange polynomial interpolation through the 4 (6) nearest
    samples along each axis, as IRAF's ``poly3``/``poly5``.  No smoothing:
    the result passes through the input samples.
``spline3``, ``spline5``
    Cubic / quintic B-spline interpolation (:func:`scipy.ndimage.affine_transform`).

Input pixels beyond the edges are taken as copies of the edge pixels;
output pixels whose centre falls outside the input (``x < -0.5`` or
``x > nx - 0.5``) are not "covered" and are left for the caller to flag.

The polynomial interpolants are evaluated with array slices rather than
per-pixel gathers wherever the integer part of the input offset is
constant over a block of output pixels, which it is almost everywhere for
the near-identity maps of GMOS mosaicking and dither alignment.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from scipy import ndimage

from .. import dq as dqbits

__all__ = ["AffineMap", "INTERPOLANTS", "resample", "resample_variance", "resample_dq",
           "covered", "fit_affine", "remap_wcs_header", "DQ_THRESHOLD", "output_bounds",
           "copy_wcs_keywords"]

#: Interpolant names accepted by :func:`resample`.
INTERPOLANTS = ("nearest", "linear", "poly3", "poly5", "spline3", "spline5")

_LAGRANGE_NODES = {"linear": np.arange(0, 2), "poly3": np.arange(-1, 3), "poly5": np.arange(-2, 4)}
_SPLINE_ORDER = {"spline3": 3, "spline5": 5}
#: Default contribution above which a resampled DQ bit is set (DRAGONS' dq_threshold).
DQ_THRESHOLD = 0.001
#: Map terms whose effect is below this many pixels are taken as exact (see fit_affine).
_SNAP_PIXELS = 1e-6
#: Output rows handled at once (bounds the temporary memory).
_CHUNK_ROWS = 64


@dataclass(frozen=True)
class AffineMap:
    """The map ``p_in = matrix @ p_out + offset`` between (x, y) pixel coordinates.

    Attributes
    ----------
    matrix : numpy.ndarray, shape (2, 2)
    offset : numpy.ndarray, shape (2,)
    """

    matrix: np.ndarray
    offset: np.ndarray

    @classmethod
    def identity(cls) -> "AffineMap":
        """The identity map."""
        return cls(np.eye(2), np.zeros(2))

    @classmethod
    def translation(cls, dx: float, dy: float) -> "AffineMap":
        """The map ``(x, y) -> (x + dx, y + dy)``."""
        return cls(np.eye(2), np.array([float(dx), float(dy)]))

    def __call__(self, x, y):
        """Apply the map to coordinates ``x, y`` (scalars or arrays); return ``(x', y')``."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        m, o = self.matrix, self.offset
        return m[0, 0] * x + m[0, 1] * y + o[0], m[1, 0] * x + m[1, 1] * y + o[1]

    def then(self, other: "AffineMap") -> "AffineMap":
        """The composition "first ``self``, then ``other``"."""
        return AffineMap(other.matrix @ self.matrix, other.matrix @ self.offset + other.offset)

    def inverse(self) -> "AffineMap":
        """The inverse map."""
        inv = np.linalg.inv(self.matrix)
        return AffineMap(inv, -inv @ self.offset)

    @property
    def jacobian(self) -> float:
        """Area of one output pixel in input pixels (``|det matrix|``)."""
        return float(abs(np.linalg.det(self.matrix)))


def fit_affine(func: Callable, shape: tuple[int, int],
               npoints: int = 7) -> tuple[AffineMap, float]:
    """Least-squares affine approximation of a pixel map over an output grid.

    Parameters
    ----------
    func : callable
        ``func(x, y) -> (x_in, y_in)`` for arrays of output coordinates.
    shape : tuple of int
        Numpy shape ``(ny, nx)`` of the output grid the map is used over.
    npoints : int
        Sample points along each axis.

    Returns
    -------
    AffineMap
        The fitted map.
    float
        Largest residual over the sample points, in input pixels.
    """
    ny, nx = shape
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, npoints), np.linspace(0, nx - 1, npoints),
                         indexing="ij")
    x, y = gx.ravel(), gy.ravel()
    xin, yin = func(x, y)
    design = np.column_stack([x, y, np.ones_like(x)])
    coef_x = np.linalg.lstsq(design, xin, rcond=None)[0]
    coef_y = np.linalg.lstsq(design, yin, rcond=None)[0]
    matrix = np.array([coef_x[:2], coef_y[:2]])
    offset = np.array([coef_x[2], coef_y[2]])
    # Snap terms whose effect over the grid is below _SNAP_PIXELS (rounding noise of
    # the WCS round trip), so that translations are recognised as such.
    extent = np.array([nx, ny], dtype=float)
    negligible = np.abs(matrix - np.eye(2)) * extent[None, :] < _SNAP_PIXELS
    snapped = np.where(negligible, np.eye(2), matrix)
    rounded = np.round(offset)
    offset = np.where(np.abs(offset - rounded) < _SNAP_PIXELS, rounded, offset)
    amap = AffineMap(snapped, offset)
    fx, fy = amap(x, y)
    return amap, float(np.max(np.hypot(fx - xin, fy - yin)))


def remap_wcs_header(header: fits.Header, amap: AffineMap) -> None:
    """Rewrite a FITS celestial WCS in place for a new pixel grid.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header holding ``CRPIXi`` and a ``CDi_j`` (or ``PCi_j``/``CDELTi``) matrix.
    amap : AffineMap
        New 0-based pixel (x, y) -> old 0-based pixel (x, y).

    Notes
    -----
    A pure translation changes only ``CRPIX1/2``, so the keywords are kept
    exactly as written; otherwise the linear part is folded into a CD matrix.
    """
    crpix = np.array([float(header["CRPIX1"]), float(header["CRPIX2"])])
    new_crpix = np.linalg.solve(amap.matrix, crpix - 1.0 - amap.offset) + 1.0
    header["CRPIX1"], header["CRPIX2"] = float(new_crpix[0]), float(new_crpix[1])
    if np.allclose(amap.matrix, np.eye(2), rtol=0, atol=1e-14):
        return
    from astropy.wcs import WCS
    old = WCS(header, naxis=2)
    cd = old.wcs.cd if old.wcs.has_cd() else old.wcs.get_pc() * old.wcs.cdelt[:, None]
    cd = cd @ amap.matrix
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        header.remove(key, ignore_missing=True)
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = float(cd[i, j])


def output_bounds(maps_and_shapes: Iterable[tuple[AffineMap, tuple[int, int]]]
                  ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Smallest integer grid holding the mapped pixel centres of several arrays.

    Parameters
    ----------
    maps_and_shapes : iterable of (AffineMap, shape)
        For each array, the map from its pixels to the common coordinates,
        and its numpy shape.

    Returns
    -------
    origin : tuple of int
        Common coordinates (x, y) of the grid's first pixel.
    shape : tuple of int
        Numpy shape of the grid.
    """
    xs, ys = [], []
    for amap, (ny, nx) in maps_and_shapes:
        x, y = amap(np.array([0, nx - 1, 0, nx - 1]), np.array([0, 0, ny - 1, ny - 1]))
        xs.extend(x)
        ys.extend(y)
    x0, y0 = math.ceil(min(xs) - _SNAP_PIXELS), math.ceil(min(ys) - _SNAP_PIXELS)
    x1 = math.floor(max(xs) + _SNAP_PIXELS) + 1
    y1 = math.floor(max(ys) + _SNAP_PIXELS) + 1
    return (x0, y0), (y1 - y0, x1 - x0)


#: Keywords of a celestial FITS WCS (``i``/``j`` are axis numbers).
_WCS_KEYS = ("WCSAXES", "CTYPE{i}", "CUNIT{i}", "CRPIX{i}", "CRVAL{i}", "CDELT{i}", "CD{i}_{j}",
             "PC{i}_{j}", "PV{i}_{j}", "LONPOLE", "LATPOLE", "RADESYS", "EQUINOX", "WCSNAME")


def _wcs_keys():
    keys = []
    for pattern in _WCS_KEYS:
        for i in (1, 2):
            for j in (0, 1, 2, 3, 4, 5):
                keys.append(pattern.format(i=i, j=j))
    return list(dict.fromkeys(keys))


def copy_wcs_keywords(source: fits.Header, target: fits.Header) -> None:
    """Replace the celestial WCS keywords of header ``target`` by those of ``source``."""
    keys = _wcs_keys()
    for key in keys:
        target.remove(key, ignore_missing=True, remove_all=True)
    for key in keys:
        if key in source:
            target[key] = (source[key], source.comments[key])


def _input_coords(amap: AffineMap, rows: np.ndarray, cols):
    """Input (x, y) coordinates of the output pixels ``rows`` x ``cols``.

    ``cols`` is an array of columns or a number of columns (from 0).  For a
    map without cross terms the arrays are 1 x ncols and rows x 1.
    """
    m, o = amap.matrix, amap.offset
    c = (np.arange(cols) if np.isscalar(cols) else np.asarray(cols)).astype(float)[None, :]
    r = rows.astype(float)[:, None]
    if m[0, 1] == 0 and m[1, 0] == 0:
        return m[0, 0] * c + o[0], m[1, 1] * r + o[1]
    return m[0, 0] * c + (m[0, 1] * r + o[0]), m[1, 0] * c + (m[1, 1] * r + o[1])


def _inside(x, y, in_shape):
    ny, nx = in_shape
    return (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)


def covered(amap: AffineMap, in_shape: tuple[int, int], out_shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the output pixels whose centre maps inside the input array."""
    out = np.empty(out_shape, dtype=bool)
    for r0 in range(0, out_shape[0], _CHUNK_ROWS):
        rows = np.arange(r0, min(r0 + _CHUNK_ROWS, out_shape[0]))
        x, y = _input_coords(amap, rows, out_shape[1])
        out[rows[0]:rows[-1] + 1] = _inside(x, y, in_shape)
    return out


def _lagrange_weights(frac: np.ndarray, nodes) -> list:
    """Lagrange basis weights at fractional positions ``frac`` (None for nearest).

    Weight ``k`` is the product of ``frac - m`` over the other nodes ``m``,
    scaled by the basis normalisation (first factor first, all float32).
    """
    if nodes is None:
        return [None]
    if len(nodes) == 2:
        return [1.0 - frac, frac]
    diffs = [frac if m == 0 else frac - np.float32(m) for m in nodes]
    weights = []
    for k, scale in enumerate(_lagrange_scales(tuple(int(m) for m in nodes))):
        others = [diff for m, diff in enumerate(diffs) if m != k]
        w = np.multiply(others[0], scale)
        for diff in others[1:]:
            w *= diff
        weights.append(w)
    return weights


@functools.lru_cache(maxsize=8)
def _lagrange_scales(nodes: tuple) -> tuple:
    """float32 ``1 / prod(node_k - m)`` of each Lagrange basis polynomial."""
    return tuple(np.float32(1.0 / np.prod([float(node - m) for m in nodes if m != node]))
                 for node in nodes)


#: Largest number of distinct integer offsets in a chunk handled with slices.
_MAX_PAIRS = 16
#: Margin (pixels) covering floating-point rounding of pixel coordinates.
_ROUNDING = 1e-7


def _offset_range(amap, rows, c0: int, c1: int, axis: int):
    """Range of floor(input - output) along ``axis`` (0: x, 1: y) over rows x [c0, c1)."""
    m, o = amap.matrix, amap.offset
    xs = np.array([c0, c1 - 1, c0, c1 - 1], float)
    ys = np.array([rows[0], rows[0], rows[-1], rows[-1]], float)
    values = (m[axis, 0] - (axis == 0)) * xs + (m[axis, 1] - (axis == 1)) * ys + o[axis]
    # Widened by far more than the rounding of the per-pixel coordinates, so that
    # every pixel's own floor() lies in the range.
    return int(np.floor(values.min() - _ROUNDING)), int(np.floor(values.max() + _ROUNDING))


def _covered_columns(amap, rows, ncols: int, in_shape) -> tuple[int, int]:
    """Columns ``[c0, c1)`` whose pixels map inside the input on every row of a chunk."""
    lo, hi = 0.0, float(ncols - 1)
    for axis, size in ((0, in_shape[1]), (1, in_shape[0])):
        a = amap.matrix[axis, 0]
        for r in (rows[0], rows[-1]):
            rest = amap.matrix[axis, 1] * r + amap.offset[axis]
            # -0.5 <= a * c + rest <= size - 0.5
            if a == 0:
                if not -0.5 <= rest <= size - 0.5:
                    return 0, 0
                continue
            bounds = sorted(((-0.5 - rest) / a, (size - 0.5 - rest) / a))
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    c0, c1 = math.ceil(lo + _ROUNDING), math.floor(hi - _ROUNDING) + 1
    return (c0, c1) if c1 > c0 else (0, 0)


def _part(array, local):
    """``array[local]`` for an array that may be broadcast (length 1) along an axis."""
    if array is None:
        return None
    return array[tuple(part if n > 1 else slice(None) for part, n in zip(local, array.shape))]


def _blocks(in_shape, amap, out_shape, nodes, halo):
    """Split the output into blocks sharing one way of reading the padded input.

    Yields
    ------
    region : tuple of slice
        Output rows and columns of the block.
    select : numpy.ndarray or None
        Pixels of the region to write (None: all of them).
    take : callable
        ``take(padded, i, j)`` -> the input samples of tap (i, j) for the region.
    wx, wy : list
        Per-tap weights over the region (None entries for nearest).
    """
    taps = np.array([0]) if nodes is None else np.asarray(nodes)
    for r0 in range(0, out_shape[0], _CHUNK_ROWS):
        rows = np.arange(r0, min(r0 + _CHUNK_ROWS, out_shape[0]))
        c0, c1 = _covered_columns(amap, rows, out_shape[1], in_shape)
        spans = [(0, c0), (c1, out_shape[1])] if c1 > c0 else [(0, out_shape[1])]
        if c1 > c0:
            yield from _covered_block(amap, rows, c0, c1, nodes, taps, halo, in_shape)
        for ca, cb in spans:
            if cb > ca:
                yield from _edge_blocks(amap, rows, ca, cb, nodes, taps, halo, in_shape)


def _rounded_map(amap, nodes) -> AffineMap:
    """The map whose floor() gives the first tap: shifted by 1/2 for nearest neighbour."""
    return AffineMap(amap.matrix, amap.offset + (0.5 if nodes is None else 0.0))


def _covered_block(amap, rows, c0, c1, nodes, taps, halo, in_shape):
    """Blocks of a chunk's fully covered columns [c0, c1)."""
    shifted = _rounded_map(amap, nodes)
    kx0, kx1 = _offset_range(shifted, rows, c0, c1, 0)
    ky0, ky1 = _offset_range(shifted, rows, c0, c1, 1)
    if kx0 != kx1 or ky0 != ky1:
        yield from _edge_blocks(amap, rows, c0, c1, nodes, taps, halo, in_shape)
        return
    # Fractional positions straight from the (affine) map.
    m, o = shifted.matrix, shifted.offset
    cols = np.arange(c0, c1)
    fx = ((m[0, 0] - 1) * cols + (o[0] - kx0)).astype(np.float32)[None, :]
    fy = ((m[1, 1] - 1) * rows + (o[1] - ky0)).astype(np.float32)[:, None]
    if m[0, 1] != 0:
        fx = fx + (m[0, 1] * rows).astype(np.float32)[:, None]
    if m[1, 0] != 0:
        fy = fy + (m[1, 0] * cols).astype(np.float32)[None, :]
    ys0, xs0 = int(rows[0]) + ky0 + halo, c0 + kx0 + halo

    def take(pad, i, j, h=len(rows), w=c1 - c0):
        return pad[ys0 + taps[j]:ys0 + taps[j] + h, xs0 + taps[i]:xs0 + taps[i] + w]
    yield ((slice(rows[0], rows[-1] + 1), slice(c0, c1)), None, take,
           _lagrange_weights(fx, nodes), _lagrange_weights(fy, nodes))


def _edge_blocks(amap, rows, ca, cb, nodes, taps, halo, in_shape):
    """Blocks of columns [ca, cb) of a chunk, with per-pixel coverage and offsets."""
    shifted = _rounded_map(amap, nodes)
    pshape = (in_shape[0] + 2 * halo, in_shape[1] + 2 * halo)
    cols = np.arange(ca, cb)
    x, y = _input_coords(amap, rows, cols)
    inside = _inside(x, y, in_shape)
    if not inside.any():
        return
    everywhere = bool(inside.all())
    shift = 0.5 if nodes is None else 0.0
    ix, iy = np.floor(x + shift), np.floor(y + shift)
    wx = _lagrange_weights((x - ix).astype(np.float32), nodes)
    wy = _lagrange_weights((y - iy).astype(np.float32), nodes)
    kx0, kx1 = _offset_range(shifted, rows, ca, cb, 0)
    ky0, ky1 = _offset_range(shifted, rows, ca, cb, 1)
    region_rows = slice(rows[0], rows[-1] + 1)
    if (kx1 - kx0 + 1) * (ky1 - ky0 + 1) > _MAX_PAIRS:
        ys = [np.clip(iy + t + halo, 0, pshape[0] - 1).astype(np.intp) for t in taps]
        xs = [np.clip(ix + t + halo, 0, pshape[1] - 1).astype(np.intp) for t in taps]
        yield ((region_rows, slice(ca, cb)), None if everywhere else inside,
               lambda pad, i, j: pad[ys[j], xs[i]], wx, wy)
        return
    kx = ix - cols
    ky = iy - rows[:, None]
    for dy in range(ky0, ky1 + 1):
        for dx in range(kx0, kx1 + 1):
            select = inside & (ky == dy) & (kx == dx)
            # Columns / rows (relative to the span) for which every tap lies in the padded array.
            l0 = max(0, -(ca + dx + taps[0] + halo))
            l1 = min(cb - ca, pshape[1] - (ca + dx + taps[-1] + halo))
            rr0 = max(int(rows[0]), -(dy + taps[0] + halo))
            rr1 = min(int(rows[-1]) + 1, pshape[0] - (dy + taps[-1] + halo))
            if l1 <= l0 or rr1 <= rr0:
                continue
            local = (slice(rr0 - rows[0], rr1 - rows[0]), slice(l0, l1))
            part = np.broadcast_to(select, (len(rows), cb - ca))[local]
            if not part.any():
                continue
            ys0, xs0 = rr0 + dy + halo, ca + l0 + dx + halo

            def take(pad, i, j, ys0=ys0, xs0=xs0, h=rr1 - rr0, w=l1 - l0):
                return pad[ys0 + taps[j]:ys0 + taps[j] + h, xs0 + taps[i]:xs0 + taps[i] + w]
            yield ((slice(rr0, rr1), slice(ca + l0, ca + l1)), part, take,
                   [_part(v, local) for v in wx], [_part(v, local) for v in wy])


def _pad(array, width: int, value=None) -> np.ndarray:
    """``array`` with a border of ``width`` pixels: copies of the edge, or ``value``.

    Same result as :func:`numpy.pad` (modes ``edge`` / ``constant``), much faster.
    """
    ny, nx = array.shape
    out = np.empty((ny + 2 * width, nx + 2 * width), dtype=array.dtype)
    out[width:width + ny, width:width + nx] = array
    if value is not None:
        out[:width] = out[-width:] = value
        out[:, :width] = out[:, -width:] = value
        return out
    out[:width, width:width + nx] = array[0]
    out[-width:, width:width + nx] = array[-1]
    out[:, :width] = out[:, width:width + 1]
    out[:, -width:] = out[:, -width - 1:-width]
    return out


def _write(target, values, select) -> None:
    if select is None:
        target[...] = values
    else:
        np.copyto(target, np.broadcast_to(values, target.shape), where=select)


def _resample_lagrange(planes, amap, outs, nodes, squared=False):
    """Separable Lagrange interpolation of several planes through one map.

    ``nodes`` None means nearest neighbour.  Only the covered pixels of the
    output arrays ``outs`` are written.  ``squared`` uses the squares of the
    weights (variance propagation).  The sums run in place, in scratch
    arrays reused from block to block (straight into the output where a
    block writes every pixel of its region).
    """
    halo = 1 if nodes is None else int(max(-nodes[0], nodes[-1])) + 1
    padded = [_pad(p, halo) for p in planes]
    out_shape = outs[0].shape
    ntaps = 1 if nodes is None else len(nodes)
    scratch = np.empty(3 * _CHUNK_ROWS * out_shape[1], dtype=np.float32)
    for region, select, take, wx, wy in _blocks(planes[0].shape, amap, out_shape, nodes, halo):
        if squared:
            wx = [None if w is None else w * w for w in wx]
            wy = [None if w is None else w * w for w in wy]
        for pad, out in zip(padded, outs):
            target = out[region]
            size = target.size
            line, term = (scratch[k * size:(k + 1) * size].reshape(target.shape) for k in (0, 1))
            acc = target if select is None else scratch[2 * size:3 * size].reshape(target.shape)
            for j in range(ntaps):
                dest = acc if j == 0 else line
                _tap_sum(dest, term, [take(pad, i, j) for i in range(ntaps)], wx)
                if wy[j] is not None:
                    dest *= wy[j]
                if j:
                    acc += line
            if select is not None:
                _write(target, acc, select)


def _tap_sum(line, term, samples, weights) -> None:
    """``line = sum(w * s)`` over the taps, in place (``term`` is scratch; None: weight 1)."""
    for i, (sample, weight) in enumerate(zip(samples, weights)):
        dest = line if i == 0 else term
        if weight is None:
            dest[...] = sample
        else:
            np.multiply(weight, sample, out=dest)
        if i:
            line += term


def _integer_shift(amap: AffineMap):
    """``(dx, dy)`` if the map is a translation by whole pixels, else None."""
    if not np.array_equal(amap.matrix, np.eye(2)):
        return None
    rounded = np.round(amap.offset)
    if np.any(np.abs(amap.offset - rounded) > 1e-9):
        return None
    return int(rounded[0]), int(rounded[1])


def _shifted_copy(data, shift, out) -> None:
    """``out[y, x] = data[y + dy, x + dx]`` where defined (the rest is left alone)."""
    dx, dy = shift
    y0, y1 = max(0, -dy), min(out.shape[0], data.shape[0] - dy)
    x0, x1 = max(0, -dx), min(out.shape[1], data.shape[1] - dx)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = data[y0 + dy:y1 + dy, x0 + dx:x1 + dx]


def _outputs(out, out_shape, count, dtype, fill):
    """The arrays to write into: ``out`` if given (checked), else new ones filled with ``fill``."""
    if out is None:
        shape = tuple(int(n) for n in out_shape)
        if fill == 0:
            return [np.zeros(shape, dtype=dtype) for _ in range(count)]
        return [np.full(shape, fill, dtype=dtype) for _ in range(count)]
    if len(out) != count or any(o.shape != tuple(out_shape) for o in out):
        raise ValueError(f"out must hold {count} array(s) of shape {tuple(out_shape)}")
    return list(out)


def resample(planes: Sequence[np.ndarray], amap: AffineMap, out_shape: tuple[int, int],
             interpolant: str = "poly3", out: Sequence[np.ndarray] | None = None) -> list:
    """Resample images onto an output grid through one pixel map.

    Parameters
    ----------
    planes : list of numpy.ndarray
        2-D input images of one shape (e.g. SCI and VAR), interpolated alike.
    amap : AffineMap
        Output (x, y) pixel -> input (x, y) pixel.
    out_shape : tuple of int
        Numpy shape of the output.
    interpolant : str
        One of :data:`INTERPOLANTS`.
    out : list of numpy.ndarray, optional
        float32 arrays (one per plane) to write into; only the pixels the
        input covers are written.  By default new arrays are returned.

    Returns
    -------
    list of numpy.ndarray
        float32 outputs; pixels not covered by the input are 0 (or left
        alone in ``out``).  Beyond the input edges the edge pixels are repeated.
    """
    if interpolant not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {interpolant!r}; choose one of "
                         + ", ".join(INTERPOLANTS))
    planes = [np.asarray(p, dtype=np.float32) for p in planes]
    outs = _outputs(out, out_shape, len(planes), np.float32, 0.0)
    shift = _integer_shift(amap)
    if shift is not None:
        for plane, target in zip(planes, outs):
            _shifted_copy(plane, shift, target)
    elif interpolant in _SPLINE_ORDER:
        # ndimage works in (row, column) order.
        inside = covered(amap, planes[0].shape, outs[0].shape)
        for plane, target in zip(planes, outs):
            values = ndimage.affine_transform(plane, amap.matrix[::-1, ::-1],
                                              offset=amap.offset[::-1], output_shape=target.shape,
                                              order=_SPLINE_ORDER[interpolant], mode="nearest",
                                              output=np.float32)
            np.copyto(target, values, where=inside)
    else:
        nodes = None if interpolant == "nearest" else _LAGRANGE_NODES[interpolant]
        _resample_lagrange(planes, amap, outs, nodes)
    return outs


def resample_variance(variance: np.ndarray, amap: AffineMap, out_shape: tuple[int, int],
                      interpolant: str = "poly3", out: np.ndarray | None = None) -> np.ndarray:
    """Resample a VAR plane as the data are resampled with ``interpolant``.

    An output pixel that is ``sum(w_i * x_i)`` of independent inputs has the
    variance ``sum(w_i**2 * var_i)``: the VAR plane goes through the squared
    weights of the data's interpolant.  (DRAGONS interpolates VAR linearly,
    ``sum(w_i * var_i)``, which overstates the noise of sub-pixel-shifted
    data by up to 2.4x for poly3 at half-pixel shifts in x and y.)  The
    covariance this leaves between neighbouring output pixels is not kept
    here; when the output is resampled again, the caller multiplies by
    :func:`~gmoswidgets.numerics.covariance.correlation_factor`.  The B-spline
    interpolants, whose weights reach far, use the sum of their squared
    weights at the fractional shift of the output centre (exact for
    translations).  The result is never negative.

    Parameters
    ----------
    variance : numpy.ndarray
        2-D input VAR.
    amap : AffineMap
        Output (x, y) pixel -> input (x, y) pixel.
    out_shape : tuple of int
    interpolant : str
        The interpolant used for the data (one of :data:`INTERPOLANTS`).
    out : numpy.ndarray, optional
        float32 array to write the covered pixels into.

    Returns
    -------
    numpy.ndarray
        float32 output VAR (0 where the input does not cover).
    """
    if interpolant not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {interpolant!r}; choose one of "
                         + ", ".join(INTERPOLANTS))
    variance = np.asarray(variance, dtype=np.float32)
    target = _outputs(None if out is None else [out], out_shape, 1, np.float32, 0.0)[0]
    shift = _integer_shift(amap)
    if shift is not None:
        _shifted_copy(variance, shift, target)
        return target
    if interpolant in _SPLINE_ORDER:
        # B-spline weights reach far; for the near-translations of GMOS maps the sum of
        # squared weights is that of the fractional shift at the output centre.
        x, y = amap(np.array([out_shape[1] // 2]), np.array([out_shape[0] // 2]))
        order = _SPLINE_ORDER[interpolant]
        power = _spline_power(order, float(x[0] % 1)) * _spline_power(order, float(y[0] % 1))
        _resample_lagrange([variance * np.float32(power)], amap, [target],
                           _LAGRANGE_NODES["linear"])
        return target
    nodes = None if interpolant == "nearest" else _LAGRANGE_NODES[interpolant]
    _resample_lagrange([variance], amap, [target], nodes, squared=True)
    return target


@functools.lru_cache(maxsize=256)
def _spline_power(order: int, frac: float) -> float:
    """Sum of the squared 1-D B-spline interpolation weights at a fractional shift."""
    frac = round(frac, 3)
    delta = np.zeros(64)
    delta[32] = 1.0
    response = ndimage.shift(delta, frac, order=order, mode="constant")
    return float(np.sum(response ** 2))


def resample_dq(mask: np.ndarray, amap: AffineMap, out_shape: tuple[int, int],
                threshold: float = DQ_THRESHOLD, no_data: int = dqbits.NO_DATA,
                out: np.ndarray | None = None, *, interpolant: str = "poly3") -> np.ndarray:
    """Resample a DQ bit mask through the interpolant of the data, bit plane by bit plane.

    Each bit plane (1 where the bit is set, else 0) is interpolated with
    ``interpolant``, the one used for the data, and the bit is set in the
    output where the absolute interpolated value exceeds ``threshold``:
    DRAGONS' rule (``gempy.library.transform``, ``dq_threshold``).  An
    output pixel is thus flagged whenever flagged inputs contribute more
    than ``threshold`` of its value, including through the negative lobes
    of ``poly3``/``poly5``.  Every output pixel not covered by the input is
    ``no_data``.  Unlike DRAGONS, whose samples beyond the input edges carry
    ``no_data``, those samples carry no bit here: the data are extended
    with copies of the edge pixels (:func:`resample`), and against the
    simulator's truth that keeps 1.6-1.7x more good pixels within one pixel
    of an input edge with fewer outliers among them (``benchmarks/README.md``,
    "DQ through resampling").

    Parameters
    ----------
    mask : numpy.ndarray
        uint16 input DQ plane.
    amap : AffineMap
        Output pixel -> input pixel.
    out_shape : tuple of int
    threshold : float
        Contribution above which a bit is passed on.
    no_data : int
        The bit used for pixels without input.
    out : numpy.ndarray, optional
        uint16 array to write the covered pixels into.
    interpolant : str
        The interpolant the data are resampled with (one of :data:`INTERPOLANTS`).

    Returns
    -------
    numpy.ndarray
        uint16 output mask.
    """
    if interpolant not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {interpolant!r}; choose one of "
                         + ", ".join(INTERPOLANTS))
    mask = np.asarray(mask, dtype=dqbits.DTYPE)
    target = _outputs(None if out is None else [out], out_shape, 1, dqbits.DTYPE, no_data)[0]
    shift = _integer_shift(amap)
    if shift is not None:
        _shifted_copy(mask, shift, target)
        return target
    if interpolant in _SPLINE_ORDER:
        _spline_dq(mask, amap, target, _SPLINE_ORDER[interpolant], threshold)
        return target
    nodes = None if interpolant == "nearest" else _LAGRANGE_NODES[interpolant]
    halo = 1 if nodes is None else int(max(-nodes[0], nodes[-1])) + 1
    padded = _pad(mask, halo, 0)
    ntaps = 1 if nodes is None else len(nodes)
    for region, select, take, wx, wy in _blocks(mask.shape, amap, target.shape, nodes, halo):
        samples = [take(padded, i, j) for j in range(ntaps) for i in range(ntaps)]
        if nodes is None:
            bits = samples[0]
        else:
            weights = [(wx[i], wy[j]) for j in range(ntaps) for i in range(ntaps)]
            bits = _threshold_bits(samples, weights, threshold)
        _write(target[region], bits.astype(dqbits.DTYPE, copy=False), select)
    return target


def _threshold_bits(samples: list, weights: list, threshold: float) -> np.ndarray:
    """Bits whose summed interpolation weight ``|sum w_i * bit_i|`` exceeds ``threshold``.

    ``samples`` are the DQ values of the taps over a block, ``weights`` the
    (x, y) weight pair of each tap.  A bit set in every tap has weight 1
    and one set in none 0; only pixels where a bit is set in some taps but
    not all are summed.
    """
    anyset = functools.reduce(np.bitwise_or, samples)
    allset = functools.reduce(np.bitwise_and, samples)
    bits = np.array(allset, dtype=dqbits.DTYPE)
    partial = anyset & ~allset
    where = np.nonzero(partial)
    if where[0].size == 0:
        return bits
    shape = partial.shape
    values = [s[where] for s in samples]
    taps = [np.broadcast_to(wx, shape)[where] * np.broadcast_to(wy, shape)[where]
            for wx, wy in weights]
    passed = np.zeros(where[0].size, dqbits.DTYPE)
    present = int(np.bitwise_or.reduce(partial[where]))
    for bit in (1 << k for k in range(16)):
        if not bit & present:
            continue
        total = sum(w * ((v & bit) != 0) for w, v in zip(taps, values))
        passed |= np.where(np.abs(total) > threshold, bit, 0).astype(dqbits.DTYPE)
    bits[where] |= passed
    return bits


def _spline_dq(mask, amap, target, order: int, threshold: float) -> None:
    """:func:`resample_dq` for the B-spline interpolants (through scipy.ndimage)."""
    inside = covered(amap, mask.shape, target.shape)
    bits = np.zeros(target.shape, dqbits.DTYPE)
    present = int(np.bitwise_or.reduce(mask, axis=None))
    for bit in (1 << k for k in range(16)):
        if not bit & present:
            continue
        plane = ((mask & bit) != 0).astype(np.float32)
        values = ndimage.affine_transform(plane, amap.matrix[::-1, ::-1], offset=amap.offset[::-1],
                                          output_shape=target.shape, order=order, output=np.float32,
                                          mode="nearest")
        bits |= np.where(np.abs(values) > threshold, bit, 0).astype(dqbits.DTYPE)
    np.copyto(target, bits, where=inside)
