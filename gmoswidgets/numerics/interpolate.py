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

The nearest, linear and polynomial interpolants run in one compiled pass
over the output (:mod:`.kernels`, numba, imported on first use): per output
pixel the input position and the weights are computed once, and SCI, VAR
and DQ are accumulated from the same taps.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .. import dq as dqbits

__all__ = ["AffineMap", "INTERPOLANTS", "resample", "resample_variance", "resample_dq",
           "resample_planes", "resample_flags",
           "covered", "fit_affine", "remap_wcs_header", "DQ_THRESHOLD", "output_bounds",
           "copy_wcs_keywords", "integer_shift"]

#: Interpolant names accepted by :func:`resample`.
INTERPOLANTS = ("nearest", "linear", "poly3", "poly5", "spline3", "spline5")

#: Lagrange interpolants: tap offsets along each axis from the pixel at or below the input
#: position (nearest neighbour: one tap at the rounded position).
_LAGRANGE_NODES = {"nearest": (0,), "linear": (0, 1), "poly3": (-1, 0, 1, 2),
                   "poly5": (-2, -1, 0, 1, 2, 3)}
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


def _lagrange(amap: AffineMap, in_shape, out_shape, interpolant: str, *, data=None, out_data=None,
              variance=None, out_variance=None, mask=None, out_mask=None,
              threshold: float = DQ_THRESHOLD) -> None:
    """Resample SCI, VAR and DQ planes (any of them) with a Lagrange interpolant in one pass.

    Only the output pixels whose centre maps inside the input are written
    (see :func:`~gmoswidgets.numerics.kernels.lagrange_resample`).  The outputs
    may be windows (slices) of larger arrays.
    """
    from .kernels import lagrange_resample  # numba is loaded only by the stages that resample
    planes = (data is not None, variance is not None, mask is not None)
    inputs, outputs, origins = [], [], []
    for plane, target, dtype in ((data, out_data, np.float32), (variance, out_variance, np.float32),
                                 (mask, out_mask, dqbits.DTYPE)):
        if plane is None:   # not read: a placeholder of the type compiled for
            inputs.append(np.zeros((1, 1), dtype))
            outputs.append(np.zeros((1, 1), dtype))
            origins.extend((0, 0))
            continue
        inputs.append(np.ascontiguousarray(plane, dtype=dtype))
        base, origin = _window(target)
        outputs.append(base)
        origins.extend(origin)
    from ..executor import map_bands
    arguments = (tuple(int(n) for n in in_shape), tuple(int(n) for n in out_shape),
                 np.asarray(amap.matrix, np.float64), np.asarray(amap.offset, np.float64),
                 _LAGRANGE_NODES[interpolant], 0.5 if interpolant == "nearest" else 0.0,
                 float(threshold), planes, *inputs, *outputs, tuple(map(int, origins)))
    # bands of output rows on every core (the kernel releases the GIL; each row is
    # computed alone, so the bands give the one-call result bit for bit)
    map_bands(lambda first, stop: lagrange_resample(*arguments, (first, stop)), int(out_shape[0]))


def _window(array: np.ndarray) -> tuple:
    """``(base, (row, col))``: a 2-D array as a C-contiguous array and the place of its first
    pixel there (a slice ``base[row:, col:]`` of a larger array, or the array itself)."""
    if array.flags.c_contiguous:
        return array, (0, 0)
    base = array.base
    if (isinstance(base, np.ndarray) and base.ndim == 2 and base.flags.c_contiguous
            and base.dtype == array.dtype and array.strides == base.strides):
        start = (array.__array_interface__["data"][0]
                 - base.__array_interface__["data"][0]) // array.itemsize
        return base, divmod(start, base.shape[1])
    raise ValueError("an output must be C-contiguous or a 2-D slice of a C-contiguous array")


def integer_shift(amap: AffineMap) -> tuple[int, int] | None:
    """``(dx, dy)`` if the map is a translation by whole pixels (within 1e-9), else None.

    Every interpolant then copies the input pixels (shifted) to the output exactly.
    """
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
    shift = integer_shift(amap)
    if shift is not None:
        for plane, target in zip(planes, outs):
            _shifted_copy(plane, shift, target)
    elif interpolant in _SPLINE_ORDER:
        from scipy import ndimage  # ~0.2 s to import: only for the B-spline interpolants
        # ndimage works in (row, column) order.
        inside = covered(amap, planes[0].shape, outs[0].shape)
        for plane, target in zip(planes, outs):
            values = ndimage.affine_transform(plane, amap.matrix[::-1, ::-1],
                                              offset=amap.offset[::-1], output_shape=target.shape,
                                              order=_SPLINE_ORDER[interpolant], mode="nearest",
                                              output=np.float32)
            np.copyto(target, values, where=inside)
    else:
        for plane, target in zip(planes, outs):
            _lagrange(amap, plane.shape, target.shape, interpolant, data=plane, out_data=target)
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
    shift = integer_shift(amap)
    if shift is not None:
        _shifted_copy(variance, shift, target)
        return target
    if interpolant in _SPLINE_ORDER:
        # B-spline weights reach far; for the near-translations of GMOS maps the sum of
        # squared weights is that of the fractional shift at the output centre.
        x, y = amap(np.array([out_shape[1] // 2]), np.array([out_shape[0] // 2]))
        order = _SPLINE_ORDER[interpolant]
        power = _spline_power(order, float(x[0] % 1)) * _spline_power(order, float(y[0] % 1))
        _lagrange(amap, variance.shape, target.shape, "linear", data=variance * np.float32(power),
                  out_data=target)
        return target
    _lagrange(amap, variance.shape, target.shape, interpolant, variance=variance, out_variance=target)
    return target


def resample_flags(plane: np.ndarray, amap: AffineMap, out_shape: tuple[int, int]) -> np.ndarray:
    """Resample a 0/nonzero plane (e.g. OBJMASK) by nearest neighbour, into uint8 0/1.

    The result equals ``resample([plane], amap, out_shape, "nearest")[0] > 0.5``
    as uint8, for planes of non-negative integers, in one pass without a float
    copy of the plane.

    Parameters
    ----------
    plane : numpy.ndarray
        2-D input of a non-negative integer or boolean type.
    amap : AffineMap
        Output (x, y) pixel -> input (x, y) pixel.
    out_shape : tuple of int

    Returns
    -------
    numpy.ndarray
        uint8 output: 1 where the nearest input pixel is nonzero, 0 elsewhere
        and where the input does not cover.
    """
    plane = np.ascontiguousarray(plane)
    if plane.dtype == bool:
        plane = plane.view(np.uint8)
    out = np.zeros(tuple(int(n) for n in out_shape), np.uint8)
    shift = integer_shift(amap)
    if shift is not None:
        _shifted_copy(plane != 0, shift, out)
        return out
    from ..executor import map_bands
    from .kernels import nearest_flags  # numba is loaded only by the stages that resample
    matrix, offset = np.asarray(amap.matrix, np.float64), np.asarray(amap.offset, np.float64)
    map_bands(lambda first, stop: nearest_flags(plane, matrix, offset, out, (first, stop)),
              out.shape[0])
    return out


@functools.lru_cache(maxsize=256)
def _spline_power(order: int, frac: float) -> float:
    """Sum of the squared 1-D B-spline interpolation weights at a fractional shift."""
    from scipy import ndimage  # ~0.2 s to import: only for the B-spline interpolants
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
    shift = integer_shift(amap)
    if shift is not None:
        _shifted_copy(mask, shift, target)
        return target
    if interpolant in _SPLINE_ORDER:
        _spline_dq(mask, amap, target, _SPLINE_ORDER[interpolant], threshold)
        return target
    _lagrange(amap, mask.shape, target.shape, interpolant, mask=mask, out_mask=target,
              threshold=threshold)
    return target


def resample_planes(data: np.ndarray, variance: np.ndarray | None, mask: np.ndarray | None,
                    amap: AffineMap, out_shape: tuple[int, int], interpolant: str = "poly3", *,
                    threshold: float = DQ_THRESHOLD, no_data: int = dqbits.NO_DATA,
                    out: Sequence | None = None) -> tuple:
    """Resample the SCI, VAR and DQ planes of an image through one map.

    The result is that of :func:`resample`, :func:`resample_variance` and
    :func:`resample_dq` called one by one, but the Lagrange interpolants
    (``nearest`` to ``poly5``) do it in one pass: each output pixel's input
    position and weights are computed once for the three planes.

    Parameters
    ----------
    data : numpy.ndarray
        2-D SCI.
    variance, mask : numpy.ndarray or None
        VAR and uint16 DQ of the same shape (None: not resampled).
    amap : AffineMap
        Output (x, y) pixel -> input (x, y) pixel.
    out_shape : tuple of int
    interpolant : str
        One of :data:`INTERPOLANTS`.
    threshold : float
        Contribution above which a DQ bit is passed on.
    no_data : int
        The DQ bit of output pixels without input.
    out : sequence of three numpy.ndarray (or None), optional
        SCI, VAR, DQ arrays to write the covered pixels into (None entries for
        the planes not resampled).

    Returns
    -------
    tuple of numpy.ndarray
        ``(sci, var, dq)``, None for a plane not resampled.
    """
    if interpolant not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {interpolant!r}; choose one of "
                         + ", ".join(INTERPOLANTS))
    out = (None, None, None) if out is None else tuple(out)
    if interpolant in _SPLINE_ORDER or integer_shift(amap) is not None:
        sci = resample([data], amap, out_shape, interpolant,
                       out=None if out[0] is None else [out[0]])[0]
        var = (None if variance is None
               else resample_variance(variance, amap, out_shape, interpolant, out=out[1]))
        dq = (None if mask is None else
              resample_dq(mask, amap, out_shape, threshold, no_data, out[2],
                          interpolant=interpolant))
        return sci, var, dq
    data = np.asarray(data, dtype=np.float32)
    sci = _outputs(None if out[0] is None else [out[0]], out_shape, 1, np.float32, 0.0)[0]
    var = dq = None
    if variance is not None:
        variance = np.asarray(variance, dtype=np.float32)
        var = _outputs(None if out[1] is None else [out[1]], out_shape, 1, np.float32, 0.0)[0]
    if mask is not None:
        mask = np.asarray(mask, dtype=dqbits.DTYPE)
        dq = _outputs(None if out[2] is None else [out[2]], out_shape, 1, dqbits.DTYPE,
                      no_data)[0]
    _lagrange(amap, data.shape, sci.shape, interpolant, data=data, out_data=sci,
              variance=variance, out_variance=var, mask=mask, out_mask=dq, threshold=threshold)
    return sci, var, dq


def _spline_dq(mask, amap, target, order: int, threshold: float) -> None:
    """:func:`resample_dq` for the B-spline interpolants (through scipy.ndimage)."""
    from scipy import ndimage  # ~0.2 s to import: only for the B-spline interpolants
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
