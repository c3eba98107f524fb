"""Image previews for the widgets, computed in the kernel (no widget imports).

A frame is first *tiled* (:func:`tile_frame`): each extension's data section
is placed at its detector position (``DETSEC`` divided by the binning), so a
raw 12-amplifier frame, an overscan-trimmed frame, a mosaic and a stack all
become one 2-D picture in *display coordinates* (0-based pixel centres,
x = column, y = row, y up).  A :class:`TiledFrame` then gives everything an
image viewer needs, always as small results:

* :meth:`TiledFrame.render` - a downsampled, cut, stretched and colour-mapped
  PNG of a region, at most ``max_size`` pixels on its long side;
* :meth:`TiledFrame.dq_overlay` - an RGBA PNG of the DQ bits;
* :meth:`TiledFrame.readout` - value, variance, DQ bit names and RA/Dec at a
  display position;
* :meth:`TiledFrame.histogram`, :meth:`TiledFrame.sources`,
  :meth:`TiledFrame.footprints`, :meth:`TiledFrame.sky_image`.

Cuts use :mod:`astropy.visualization` intervals and stretches (which need no
matplotlib); the colour maps are a small built-in table.
"""
from __future__ import annotations

import functools
import io
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch, MinMaxInterval,
                                   PercentileInterval, SqrtStretch, ZScaleInterval)
from astropy.wcs import WCS, FITSFixedWarning
from PIL import Image

from .. import dq as dqbits
from ..errors import GmosError
from ..frame import Frame, read_frame, read_headers
from ..gmos.descriptors import ccdsum_binning
from ..gmos.keywords import BUNIT
from ..sections import Section

__all__ = ["CUTS", "STRETCHES", "COLORMAPS", "Preview", "Readout", "Piece", "TiledFrame",
           "tile_frame", "as_tiled", "sky_extent", "sky_field", "header_footprints", "footprints_of", "difference", "block_reduce", "cut_limits", "scale_to_unit",
           "colormap_lut", "png_bytes"]

#: Cut names accepted by :func:`cut_limits`.
CUTS = ("zscale", "minmax", "percentile")

#: Stretch name -> astropy stretch object (acting on values in [0, 1]).
STRETCHES = {
    "linear": LinearStretch(),
    "sqrt": SqrtStretch(),
    "log": LogStretch(),
    "asinh": AsinhStretch(),
}

#: Colour map name -> anchor colours (evenly spaced, interpolated to 255 levels).
COLORMAPS = {
    "gray": ("#000000", "#ffffff"),
    "viridis": ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"),
    "inferno": ("#000004", "#420a68", "#932667", "#dd513a", "#fca50a", "#fcffa4"),
    "heat": ("#000000", "#800000", "#ff4000", "#ffc000", "#ffffff"),
    "cool": ("#000020", "#0040a0", "#00c0ff", "#c0ffff"),
}

#: Colour of pixels with no data (chip gaps, NaN), RGB.
GAP_COLOR = (48, 48, 48)

#: Overlay colour (RGBA) of each DQ bit; a pixel takes the colour of its lowest set bit.
DQ_COLORS = {
    dqbits.BAD_PIXEL: (255, 0, 0, 170),
    dqbits.NON_LINEAR: (255, 165, 0, 140),
    dqbits.SATURATED: (255, 0, 255, 170),
    dqbits.COSMIC_RAY: (0, 255, 0, 170),
    dqbits.NO_DATA: (128, 128, 128, 170),
    dqbits.OVERLAP: (0, 255, 255, 110),
    dqbits.UNILLUMINATED: (40, 90, 255, 110),
}

_LEVELS = 255          # colour levels; palette index 255 is the gap colour
_HIST_SAMPLE = 500_000  # at most this many pixels go into a histogram


# -- numerics on plain arrays --------------------------------------------------

def block_reduce(array: np.ndarray, factor: int, method: str = "mean") -> np.ndarray:
    """Shrink a 2-D array by an integer factor.

    Parameters
    ----------
    array : numpy.ndarray
        2-D image.  Edge rows/columns that do not fill a whole block are
        dropped.
    factor : int
        Block size (1 returns the array unchanged).
    method : {'mean', 'or', 'stride'}
        ``'mean'``: average of the finite pixels of each block (NaN where a
        block has none); ``'or'``: bitwise OR (for DQ planes); ``'stride'``:
        every ``factor``-th pixel.

    Returns
    -------
    numpy.ndarray
    """
    if factor <= 1:
        return array
    if method == "stride":
        return array[::factor, ::factor]
    ny, nx = array.shape[0] // factor, array.shape[1] // factor
    if ny == 0 or nx == 0:
        return array[::factor, ::factor]
    blocks = array[:ny * factor, :nx * factor].reshape(ny, factor, nx, factor)
    if method == "or":
        return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)
    if method != "mean":
        raise ValueError(f"unknown block_reduce method {method!r}; use 'mean', 'or' or 'stride'")
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def cut_limits(values: np.ndarray, cut: str = "zscale", percentile: float = 99.5) -> tuple:
    """Display limits (low, high) of the finite values.

    Parameters
    ----------
    values : numpy.ndarray
        Pixels (any shape); NaN are ignored.
    cut : {'zscale', 'minmax', 'percentile'}
    percentile : float
        Percentage of pixels kept by the ``'percentile'`` cut.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``high > low``; ``(0, 1)`` if there is no finite pixel.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if cut == "zscale":
        interval = ZScaleInterval()
    elif cut == "minmax":
        interval = MinMaxInterval()
    elif cut == "percentile":
        interval = PercentileInterval(percentile)
    else:
        raise GmosError(f"unknown cut {cut!r}; choose one of {', '.join(CUTS)}")
    low, high = (float(v) for v in interval.get_limits(finite))
    if not high > low:
        high = low + 1.0
    return low, high


def scale_to_unit(values: np.ndarray, limits: tuple, stretch: str = "linear") -> np.ndarray:
    """Map values to [0, 1]: clip to ``limits``, then apply the stretch (NaN stays NaN)."""
    try:
        stretch_obj = STRETCHES[stretch]
    except KeyError:
        raise GmosError(f"unknown stretch {stretch!r}; choose one of {', '.join(STRETCHES)}") from None
    low, high = limits
    unit = (np.asarray(values, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    nan = ~np.isfinite(unit)
    unit = np.clip(np.where(nan, 0, unit), 0, 1)
    out = np.asarray(stretch_obj(unit, clip=True), dtype=np.float32)
    out[nan] = np.nan
    return out


def colormap_lut(name: str = "gray") -> np.ndarray:
    """A (256, 3) uint8 palette: 255 interpolated levels, then :data:`GAP_COLOR`."""
    try:
        anchors = COLORMAPS[name]
    except KeyError:
        raise GmosError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}") from None
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in anchors], dtype=float)
    where = np.linspace(0, 1, len(anchors))
    levels = np.linspace(0, 1, _LEVELS)
    lut = np.stack([np.interp(levels, where, rgb[:, k]) for k in range(3)], axis=1)
    return np.vstack([np.round(lut), GAP_COLOR]).astype(np.uint8)


def colorbar_css(cmap: str = "gray", stops: int = 12) -> str:
    """A CSS ``linear-gradient`` (left = low cut, right = high cut) of a colour map."""
    lut = colormap_lut(cmap)[:_LEVELS]
    picks = np.linspace(0, _LEVELS - 1, stops).round().astype(int)
    colours = ", ".join("#%02x%02x%02x" % tuple(int(c) for c in lut[i]) for i in picks)
    return f"linear-gradient(to right, {colours})"


def png_bytes(unit: np.ndarray, cmap: str = "gray") -> bytes:
    """Encode a [0, 1] image (row 0 = bottom) as a palette PNG (row 0 of the PNG = top)."""
    index = np.full(unit.shape, _LEVELS, dtype=np.uint8)
    finite = np.isfinite(unit)
    index[finite] = np.round(unit[finite] * (_LEVELS - 1)).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(index[::-1]), mode="P")
    img.putpalette(colormap_lut(cmap).ravel().tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _rgba_png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[::-1]), mode="RGBA").save(buf, format="PNG",
                                                                       compress_level=3)
    return buf.getvalue()


# -- tiled frames ----------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """Where one extension's data section sits in the tiled picture.

    Attributes
    ----------
    ext : int
        Index of the extension in the frame.
    tile : Section
        Region of the tiled picture (display pixels).
    data : Section
        The same pixels in the extension's own array.
    """

    ext: int
    tile: Section
    data: Section


@dataclass
class Preview:
    """A rendered view: PNG bytes and where they go in display coordinates.

    Attributes
    ----------
    png : bytes
        The PNG image.
    extent : tuple of float
        ``(x0, x1, y0, y1)``: display coordinates of the left, right, bottom
        and top edges of the image.
    shape : tuple of int
        ``(ny, nx)`` of the PNG.
    factor : int
        Downsampling factor (display pixels per PNG pixel).
    limits : tuple of float
        The cut ``(low, high)`` used.
    """

    png: bytes
    extent: tuple
    shape: tuple
    factor: int
    limits: tuple = (0.0, 1.0)


@dataclass
class Readout:
    """What is at one display position (see :meth:`TiledFrame.readout`)."""

    x: float
    y: float
    inside: bool
    ext: int | None = None
    value: float | None = None
    variance: float | None = None
    dq: int | None = None
    dq_bits: list = field(default_factory=list)
    ra: float | None = None
    dec: float | None = None

    def format(self, unit: str = "") -> str:
        """A one-line human readable form, e.g. for a readout label (``unit``: of the value)."""
        if not self.inside:
            return f"x={self.x:.1f} y={self.y:.1f}: no data"
        suffix = f" {unit}" if unit else ""
        parts = [f"x={self.x:.1f}", f"y={self.y:.1f}", f"ext={self.ext + 1}",
                 f"value={self.value:.6g}{suffix}"]
        if self.variance is not None:
            parts.append(f"VAR={self.variance:.6g}" + (f" ({unit})²" if unit else ""))
        if self.dq is not None:
            parts.append(f"DQ={self.dq}" + (f" ({', '.join(self.dq_bits)})" if self.dq_bits else ""))
        if self.ra is not None:
            coord = SkyCoord(self.ra, self.dec, unit="deg")
            parts.append("RA " + coord.ra.to_string(unit="hourangle", sep=":", precision=2, pad=True)
                         + " Dec " + coord.dec.to_string(sep=":", precision=1, pad=True,
                                                          alwayssign=True))
        return "  ".join(parts)


def _pieces(frame) -> list:
    """Place each extension's data section at its (binned) detector position."""
    places = []
    for index, ext in enumerate(frame.exts):
        ny, nx = ext.data.shape
        hdr = ext.header
        data_sec = Section.from_string(hdr["DATASEC"]) if "DATASEC" in hdr else Section(0, nx, 0, ny)
        data_sec = Section(data_sec.x1, min(data_sec.x2, nx), data_sec.y1, min(data_sec.y2, ny))
        if "DETSEC" in hdr and len(frame.exts) > 1:
            xbin, ybin = ccdsum_binning(hdr, frame.path or frame.filename, default=(1, 1))
            det = Section.from_string(hdr["DETSEC"]).binned(xbin, ybin)
            origin = (det.x1, det.y1)
        else:
            origin = (0, 0)
        places.append((index, data_sec, origin))
    x0 = min(o[0] for _, _, o in places)
    y0 = min(o[1] for _, _, o in places)
    pieces = []
    for index, data_sec, (ox, oy) in places:
        tile = Section(0, data_sec.shape[1], 0, data_sec.shape[0]).shift(ox - x0, oy - y0)
        pieces.append(Piece(index, tile, data_sec))
    return pieces


class TiledFrame:
    """A frame's extensions tiled at their detector positions, ready to display.

    Build it with :func:`tile_frame`.  Gaps between extensions are NaN in
    :attr:`data` and ``NO_DATA`` in :attr:`mask`.

    Attributes
    ----------
    frame : Frame
        The frame shown.
    data, variance, mask : numpy.ndarray
        Tiled SCI (float32), VAR (float32 or None) and DQ (uint16 or None).
    pieces : list of Piece
        Where each extension went.
    """

    def __init__(self, frame, pieces, data, variance, mask):
        self.frame = frame
        self.pieces = pieces
        self.data = data
        self.variance = variance
        self.mask = mask
        self._wcs = {}

    @property
    def shape(self) -> tuple:
        """``(ny, nx)`` of the tiled picture."""
        return self.data.shape

    # -- rendering ----------------------------------------------------------
    def _crop(self, region) -> tuple:
        """Integer pixel bounds (x1, x2, y1, y2), half-open, of a display region."""
        ny, nx = self.shape
        if region is None:
            return 0, nx, 0, ny
        x0, x1, y0, y1 = region
        xa, xb = sorted((x0, x1))
        ya, yb = sorted((y0, y1))
        ix1 = int(np.clip(math.floor(xa + 0.5), 0, nx - 1))
        ix2 = int(np.clip(math.ceil(xb + 0.5), ix1 + 1, nx))
        iy1 = int(np.clip(math.floor(ya + 0.5), 0, ny - 1))
        iy2 = int(np.clip(math.ceil(yb + 0.5), iy1 + 1, ny))
        return ix1, ix2, iy1, iy2

    def _view(self, region, max_size):
        ix1, ix2, iy1, iy2 = self._crop(region)
        factor = max(1, math.ceil(max(ix2 - ix1, iy2 - iy1) / max(1, int(max_size))))
        # whole blocks only, so the extent matches the pixels exactly
        ix2 = ix1 + max(1, (ix2 - ix1) // factor) * factor if ix2 - ix1 >= factor else ix2
        iy2 = iy1 + max(1, (iy2 - iy1) // factor) * factor if iy2 - iy1 >= factor else iy2
        extent = (ix1 - 0.5, ix2 - 0.5, iy1 - 0.5, iy2 - 0.5)
        return (slice(iy1, iy2), slice(ix1, ix2)), factor, extent

    def render(self, region=None, max_size: int = 1024, cut: str = "zscale",
               stretch: str = "linear", cmap: str = "gray", percentile: float = 99.5,
               limits: tuple | None = None) -> Preview:
        """Render a region as a downsampled, scaled PNG.

        Parameters
        ----------
        region : tuple of float, optional
            ``(x0, x1, y0, y1)`` in display coordinates; the whole picture if
            omitted.
        max_size : int
            Largest side of the PNG in pixels; the region is block-averaged
            by the smallest integer factor that fits.
        cut, stretch, cmap : str
            See :data:`CUTS`, :data:`STRETCHES`, :data:`COLORMAPS`.
        percentile : float
            Percentage kept by the ``'percentile'`` cut.
        limits : tuple of float, optional
            Explicit ``(low, high)``, overriding ``cut``.

        Returns
        -------
        Preview
        """
        slices, factor, extent = self._view(region, max_size)
        small = block_reduce(self.data[slices], factor)
        lims = tuple(limits) if limits is not None else cut_limits(
            self.good_pixels(region), cut, percentile)
        png = png_bytes(scale_to_unit(small, lims, stretch), cmap)
        return Preview(png, extent, small.shape, factor, lims)

    def good_pixels(self, region=None, most: int = 1_000_000) -> np.ndarray:
        """Finite pixels of a region with DQ == 0 (good and illuminated), for cuts.

        Without DQ, or when no pixel is good, every finite pixel counts.  At
        most about ``most`` pixels are returned (a regular subsample).
        """
        ix1, ix2, iy1, iy2 = self._crop(region)
        step = max(1, math.ceil(math.sqrt((ix2 - ix1) * (iy2 - iy1) / most)))
        slices = (slice(iy1, iy2, step), slice(ix1, ix2, step))
        data = self.data[slices]
        if self.mask is not None:
            good = data[(self.mask[slices] == 0) & np.isfinite(data)]
            if good.size:
                return good
        return data[np.isfinite(data)]

    def dq_overlay(self, region=None, max_size: int = 1024) -> Preview | None:
        """An RGBA PNG colouring flagged pixels (see :data:`DQ_COLORS`), or None without DQ.

        Pixels flagged only ``NO_DATA`` in the gaps between extensions are left clear.
        """
        if self.mask is None:
            return None
        slices, factor, extent = self._view(region, max_size)
        mask = self.mask[slices]
        if factor > 1:
            mask = block_reduce(mask, factor, method="or")
        rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
        for bit in sorted(DQ_COLORS, reverse=True):   # lowest bit painted last wins
            rgba[(mask & bit) != 0] = DQ_COLORS[bit]
        gap = ~np.isfinite(block_reduce(self.data[slices], factor)) if factor > 1 else \
            ~np.isfinite(self.data[slices])
        rgba[gap] = 0
        return Preview(_rgba_png(rgba), extent, mask.shape, factor)

    def histogram(self, region=None, limits: tuple | None = None, bins: int = 64) -> tuple:
        """Histogram of the good pixels of a region (see :meth:`good_pixels`).

        Parameters
        ----------
        region : tuple of float, optional
            ``(x0, x1, y0, y1)``; the whole picture if omitted.
        limits : tuple of float, optional
            Range of the bins; by default the zscale limits widened by half
            their width on each side.
        bins : int

        Returns
        -------
        counts, edges : numpy.ndarray
        """
        values = self.good_pixels(region, most=_HIST_SAMPLE)
        if limits is None:
            low, high = cut_limits(values, "zscale")
            pad = 0.5 * (high - low)
            limits = (low - pad, high + pad)
        return np.histogram(values, bins=bins, range=limits)

    # -- positions ------------------------------------------------------------
    def piece_at(self, x: float, y: float):
        """The :class:`Piece` under a display position and the extension (row, col), or None."""
        ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        for piece in self.pieces:
            t = piece.tile
            if t.x1 <= ix < t.x2 and t.y1 <= iy < t.y2:
                return piece, iy - t.y1 + piece.data.y1, ix - t.x1 + piece.data.x1
        return None

    def wcs(self, ext: int) -> WCS | None:
        """The celestial WCS of extension ``ext``, or None if its header has none."""
        if ext not in self._wcs:
            self._wcs[ext] = _celestial_wcs(self.frame.exts[ext].header)
        return self._wcs[ext]

    def sky(self, ext: int, col, row):
        """(RA, Dec) in degrees of 0-based pixel(s) of extension ``ext``, or None without WCS."""
        wcs = self.wcs(ext)
        if wcs is None:
            return None
        ra, dec = wcs.all_pix2world(np.asarray(col, float), np.asarray(row, float), 0)
        return ra, dec

    def readout(self, x: float, y: float) -> Readout:
        """Value, variance, DQ (value and bit names) and RA/Dec at a display position."""
        hit = self.piece_at(x, y)
        if hit is None:
            return Readout(x, y, False)
        piece, row, col = hit
        iy, ix = row - piece.data.y1 + piece.tile.y1, col - piece.data.x1 + piece.tile.x1
        out = Readout(x, y, True, piece.ext, float(self.data[iy, ix]))
        if self.variance is not None:
            out.variance = float(self.variance[iy, ix])
        if self.mask is not None:
            out.dq = int(self.mask[iy, ix])
            out.dq_bits = dqbits.describe(out.dq)
        sky = self.sky(piece.ext, col, row)
        if sky is not None:
            out.ra, out.dec = float(sky[0]), float(sky[1])
        return out

    def sources(self) -> tuple:
        """Display positions and sky positions of the OBJCAT sources of every extension.

        OBJCAT positions are DRAGONS' ``X_IMAGE``/``Y_IMAGE`` (1-based pixels
        of the extension) and ``X_WORLD``/``Y_WORLD`` (degrees).

        Returns
        -------
        x, y, ra, dec : numpy.ndarray
            Empty arrays when the frame has no OBJCAT.
        """
        xs, ys, ras, decs = [], [], [], []
        for piece in self.pieces:
            cat = self.frame.exts[piece.ext].objcat
            if cat is None or len(cat) == 0 or "X_IMAGE" not in cat.colnames:
                continue
            col = np.asarray(cat["X_IMAGE"], float) - 1
            row = np.asarray(cat["Y_IMAGE"], float) - 1
            xs.append(col - piece.data.x1 + piece.tile.x1)
            ys.append(row - piece.data.y1 + piece.tile.y1)
            if "X_WORLD" in cat.colnames:
                ras.append(np.asarray(cat["X_WORLD"], float))
                decs.append(np.asarray(cat["Y_WORLD"], float))
            else:
                sky = self.sky(piece.ext, col, row)
                nan = np.full(len(col), np.nan)
                ras.append(nan if sky is None else sky[0])
                decs.append(nan if sky is None else sky[1])
        if not xs:
            empty = np.zeros(0)
            return empty, empty, empty, empty
        return tuple(np.concatenate(v) for v in (xs, ys, ras, decs))

    def ccd_regions(self) -> list:
        """Extensions grouped by CCD (``CCDNAME``): ``(name, pieces, Section in display pixels)``."""
        groups = {}
        for piece in self.pieces:
            name = str(self.frame.exts[piece.ext].header.get("CCDNAME", f"ext{piece.ext + 1}"))
            groups.setdefault(name, []).append(piece)
        return [(name, pieces, Section(min(p.tile.x1 for p in pieces), max(p.tile.x2 for p in pieces),
                                       min(p.tile.y1 for p in pieces), max(p.tile.y2 for p in pieces)))
                for name, pieces in groups.items()]

    def footprints(self) -> list:
        """Sky corners of each CCD (extensions grouped by ``CCDNAME``), as (name, ra, dec).

        Each entry has four corners (degrees) in order around the CCD;
        extensions without a celestial WCS are skipped.
        """
        out = []
        for name, _, region in self.ccd_regions():
            x1, x2, y1, y2 = region.x1, region.x2, region.y1, region.y2
            corners = [(x1, y1), (x2 - 1, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)]
            ras, decs = [], []
            for cx, cy in corners:
                hit = self.piece_at(cx, cy)
                sky = None if hit is None else self.sky(hit[0].ext, hit[2], hit[1])
                if sky is None:
                    break
                ras.append(float(sky[0]))
                decs.append(float(sky[1]))
            else:
                out.append((name, ras, decs))
        return out

    def sky_image(self, max_size: int = 512) -> fits.HDUList | None:
        """The whole frame resampled onto one sky grid, as a small FITS image for a sky viewer.

        The grid is the WCS of the extension nearest the middle of the
        picture, scaled by the smallest integer factor that keeps the image
        within ``max_size`` pixels and extended to cover every CCD (so chip
        gaps and the CCDs' true placement are kept).  Each grid pixel takes
        the block-averaged value of the CCD pixel it falls on (nearest
        neighbour); pixels off every CCD are NaN.  Distortion terms are
        dropped: this is a preview.

        Returns
        -------
        astropy.io.fits.HDUList or None
            None if no extension has a celestial WCS.
        """
        regions = [(name, pieces, region) for name, pieces, region in self.ccd_regions()
                   if self.wcs(pieces[0].ext) is not None]
        if not regions:
            return None
        ny, nx = self.shape
        hit = self.piece_at((nx - 1) / 2, (ny - 1) / 2)
        ref = hit[0] if hit is not None and self.wcs(hit[0].ext) is not None else regions[0][1][0]

        def display_to_ext(piece):
            return np.array([piece.data.x1 - piece.tile.x1, piece.data.y1 - piece.tile.y1], float)

        # the footprint corners in the reference piece's display frame give the grid's extent
        ref_wcs = self.wcs(ref.ext)
        corners = []
        for _, ras, decs in self.footprints():
            cx, cy = ref_wcs.all_world2pix(np.array(ras), np.array(decs), 0)
            corners.append(np.stack([cx, cy], 1) - display_to_ext(ref))
        corners = np.concatenate(corners)
        (x0, y0), (x1, y1) = np.floor(corners.min(0)) - 1, np.ceil(corners.max(0)) + 1
        factor = max(1, math.ceil(max(x1 - x0, y1 - y0) / max(1, int(max_size))))
        gx = x0 + (factor - 1) / 2 + factor * np.arange(int((x1 - x0) // factor) + 1)
        gy = y0 + (factor - 1) / 2 + factor * np.arange(int((y1 - y0) // factor) + 1)
        grid_x, grid_y = np.meshgrid(gx, gy)
        ras, decs = ref_wcs.all_pix2world(grid_x + display_to_ext(ref)[0],
                                          grid_y + display_to_ext(ref)[1], 0)
        small = block_reduce(self.data, factor)
        out = np.full(grid_x.shape, np.nan, dtype=np.float32)
        for _, pieces, region in regions:
            first = pieces[0]
            col, row = self.wcs(first.ext).all_world2pix(ras, decs, 0)
            tx = np.floor(col - display_to_ext(first)[0] + 0.5).astype(int)
            ty = np.floor(row - display_to_ext(first)[1] + 0.5).astype(int)
            inside = ((tx >= region.x1) & (tx < region.x2) & (ty >= region.y1) & (ty < region.y2)
                      & (tx // factor < small.shape[1]) & (ty // factor < small.shape[0]))
            out[inside] = small[ty[inside] // factor, tx[inside] // factor]
        wcs = ref_wcs.deepcopy()
        wcs.sip = None
        origin = np.array([gx[0], gy[0]]) + display_to_ext(ref)
        wcs.wcs.crpix = (wcs.wcs.crpix - 1 - origin) / factor + 1
        if wcs.wcs.has_cd():
            wcs.wcs.cd = wcs.wcs.cd * factor
        else:
            wcs.wcs.cdelt = wcs.wcs.cdelt * factor
        header = wcs.to_header()
        header["OBJECT"] = self.frame.filename
        return fits.HDUList([fits.PrimaryHDU(out, header)])

    @property
    def unit(self) -> str:
        """The pixel unit (``BUNIT`` of the first extension or the PHU; raw GMOS data are ADU)."""
        header = self.frame.exts[0].header
        unit = header.get(BUNIT) or self.frame.phu.get(BUNIT)
        return str(unit).strip() if unit else "ADU"

    def compass(self, arcsec: float = 5.0):
        """Directions of North and East at the middle of the picture, in display coordinates.

        Returns
        -------
        tuple or None
            ``((nx, ny), (ex, ey))``, unit vectors (x to the right, y up);
            None without a celestial WCS.
        """
        ny, nx = self.shape
        hit = self.piece_at((nx - 1) / 2, (ny - 1) / 2) or self.piece_at(self.pieces[0].tile.x1,
                                                                         self.pieces[0].tile.y1)
        wcs = None if hit is None else self.wcs(hit[0].ext)
        if wcs is None:
            return None
        col, row = float(hit[2]), float(hit[1])
        ra, dec = (float(v) for v in wcs.all_pix2world(col, row, 0))
        step = arcsec / 3600.0
        out = []
        for dra, ddec in ((0.0, step), (step / max(math.cos(math.radians(dec)), 1e-6), 0.0)):
            px, py = wcs.all_world2pix(ra + dra, dec + ddec, 0)
            vec = np.array([float(px) - col, float(py) - row])
            norm = float(np.hypot(*vec))
            if not norm > 0:
                return None
            out.append(tuple(vec / norm))
        return tuple(out)

    def center(self):
        """(RA, Dec) in degrees of the middle of the picture, or None without WCS."""
        ny, nx = self.shape
        hit = self.piece_at((nx - 1) / 2, (ny - 1) / 2) or self.piece_at(self.pieces[0].tile.x1,
                                                                         self.pieces[0].tile.y1)
        sky = self.sky(hit[0].ext, hit[2], hit[1])
        return None if sky is None else (float(sky[0]), float(sky[1]))


def _celestial_wcs(header) -> WCS | None:
    """The celestial WCS of an extension header, or None if it has none (or a broken one)."""
    if "CTYPE1" not in header or "CTYPE2" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception:  # a broken WCS only loses the sky readout
            return None
    return wcs if wcs.has_celestial else None


def tile_frame(frame) -> TiledFrame:
    """Tile a frame's extensions at their detector positions.

    Raw and intermediate frames (one extension per amplifier or CCD) are
    placed by ``DETSEC`` (unbinned) divided by ``CCDSUM``, keeping only each
    extension's ``DATASEC``; a single-extension frame (mosaic, stack) is
    shown as it is.

    Parameters
    ----------
    frame : Frame

    Returns
    -------
    TiledFrame
    """
    pieces = _pieces(frame)
    ny = max(p.tile.y2 for p in pieces)
    nx = max(p.tile.x2 for p in pieces)
    exts = frame.exts
    has_var = all(e.variance is not None for e in exts)
    has_dq = all(e.mask is not None for e in exts)
    if len(pieces) == 1 and pieces[0].tile == pieces[0].data == Section(0, nx, 0, ny):
        ext = exts[0]
        return TiledFrame(frame, pieces, ext.data.astype(np.float32, copy=False),
                          ext.variance.astype(np.float32, copy=False) if has_var else None,
                          ext.mask if has_dq else None)
    data = np.full((ny, nx), np.nan, dtype=np.float32)
    variance = np.full((ny, nx), np.nan, dtype=np.float32) if has_var else None
    mask = np.full((ny, nx), dqbits.NO_DATA, dtype=dqbits.DTYPE) if has_dq else None
    for piece in pieces:
        ext = exts[piece.ext]
        dst, src = piece.tile.slices, piece.data.slices
        data[dst] = ext.data[src]
        if has_var:
            variance[dst] = ext.variance[src]
        if has_dq:
            mask[dst] = ext.mask[src]
    return TiledFrame(frame, pieces, data, variance, mask)


def as_tiled(item) -> TiledFrame:
    """A :class:`TiledFrame` from a Frame, a file path or a TiledFrame (returned as is).

    Raises
    ------
    GmosError
        For anything else; FileProblem for an unreadable file.
    """
    if isinstance(item, TiledFrame):
        return item
    if isinstance(item, Frame):
        return tile_frame(item)
    if isinstance(item, (str, os.PathLike)):
        return tile_frame(read_frame(item))
    raise GmosError(f"cannot show a {type(item).__name__}; give a Frame, a file path or a "
                    "TiledFrame")


def header_footprints(ext_headers, shapes) -> list:
    """Sky corners of each CCD from the extensions' headers alone (no pixels read).

    The same corners as :meth:`TiledFrame.footprints`: extensions are grouped
    by ``CCDNAME``; the left edge of a CCD comes from its extension with the
    smallest ``DETSEC`` x, the right edge from the one with the largest, each
    at the ends of its ``DATASEC``.

    Parameters
    ----------
    ext_headers : list of astropy.io.fits.Header
        One header per image extension (e.g. ``read_headers(path).ext_headers``).
    shapes : list of tuple
        The ``(ny, nx)`` of each extension.

    Returns
    -------
    list of tuple
        ``(ccd name, [4 RA], [4 Dec])`` in degrees; extensions without a
        celestial WCS are left out.
    """
    groups = {}
    for index, (header, shape) in enumerate(zip(ext_headers, shapes)):
        ny, nx = shape
        data = Section.from_string(header["DATASEC"]) if "DATASEC" in header else Section(0, nx, 0, ny)
        data = Section(data.x1, min(data.x2, nx), data.y1, min(data.y2, ny))
        order = Section.from_string(header["DETSEC"]).x1 if "DETSEC" in header else 0
        name = str(header.get("CCDNAME", f"ext{index + 1}"))
        groups.setdefault(name, []).append((order, header, data))
    out = []
    for name, members in groups.items():
        (_, left, ldata), (_, right, rdata) = min(members, key=lambda m: m[0]), \
            max(members, key=lambda m: m[0])
        corners = [(left, ldata.x1, ldata.y1), (right, rdata.x2 - 1, rdata.y1),
                   (right, rdata.x2 - 1, rdata.y2 - 1), (left, ldata.x1, ldata.y2 - 1)]
        ras, decs = [], []
        for header, col, row in corners:
            wcs = _celestial_wcs(header)
            if wcs is None:
                break
            ra, dec = wcs.all_pix2world(float(col), float(row), 0)
            ras.append(float(ra))
            decs.append(float(dec))
        else:
            out.append((name, ras, decs))
    return out


def footprints_of(item) -> list:
    """CCD footprints (see :func:`header_footprints`) of a file (headers only), Frame or TiledFrame.

    A file's are remembered while it is unchanged (a re-run shows the same inputs again).
    """
    if isinstance(item, TiledFrame):
        item = item.frame
    if isinstance(item, Frame):
        return header_footprints([e.header for e in item.exts], [e.data.shape for e in item.exts])
    path = os.path.abspath(item)
    stat = os.stat(path)
    return list(_file_footprints(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _file_footprints(path: str, _mtime_ns: int, _size: int) -> list:
    headers = read_headers(path)
    return header_footprints(headers.ext_headers, headers.shapes)


def sky_extent(footprints):
    """Centre and extent of every CCD footprint on the sky.

    Parameters
    ----------
    footprints : list of tuple
        ``(name, ras, decs)`` entries (:func:`header_footprints`,
        :meth:`TiledFrame.footprints`).

    Returns
    -------
    tuple of float or None
        ``(ra, dec, width, height)`` in degrees: the centre and twice the
        largest offset from it along RA and along Dec; None if there is no
        footprint.
    """
    ras, decs = [], []
    for _, ra, dec in footprints:
        ras.extend(ra)
        decs.extend(dec)
    if not ras:
        return None
    coords = SkyCoord(ras, decs, unit="deg")
    mean = SkyCoord(coords.cartesian.mean(), representation_type="cartesian").spherical
    centre = SkyCoord(mean.lon, mean.lat, frame="icrs")
    dx, dy = centre.spherical_offsets_to(coords)
    return (float(centre.ra.deg), float(centre.dec.deg), 2 * float(np.abs(dx.deg).max()),
            2 * float(np.abs(dy.deg).max()))


def sky_field(footprints, aspect: float = 2.5, margin: float = 1.15, min_fov: float = 1 / 60):
    """Centre and field of view that show every CCD footprint.

    Parameters
    ----------
    footprints : list of tuple
        ``(name, ras, decs)`` entries (see :func:`sky_extent`).
    aspect : float
        Width / height of the view, so that the field also fits vertically.
    margin : float
        Factor applied to the field.
    min_fov : float
        Smallest field of view returned, in degrees.

    Returns
    -------
    tuple of float or None
        ``(ra, dec, fov)`` in degrees (fov across the view's width); None if
        there is no footprint.
    """
    extent = sky_extent(footprints)
    if extent is None:
        return None
    ra, dec, width, height = extent
    return ra, dec, float(max(margin * max(width, height * aspect), min_fov))


def difference(after: TiledFrame, before: TiledFrame) -> TiledFrame:
    """``after - before`` as a tiled picture (variance added, DQ OR-ed).

    Raises
    ------
    GmosError
        If the two pictures do not have the same geometry (e.g. before and
        after ``mosaicDetectors``).
    """
    if after.shape != before.shape:
        raise GmosError(f"cannot show a difference: the images have different shapes "
                        f"{after.shape} and {before.shape}")
    data = after.data - before.data
    variance = (after.variance + before.variance
                if after.variance is not None and before.variance is not None else None)
    mask = after.mask | before.mask if after.mask is not None and before.mask is not None else None
    return TiledFrame(after.frame, after.pieces, data, variance, mask)
