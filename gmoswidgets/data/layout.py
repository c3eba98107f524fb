"""Amplifier layout and WCS geometry of a simulated GMOS readout.

Conventions used throughout :mod:`gmoswidgets.data`:

* "unbinned CCD coordinates" are 0-based pixel centres on one CCD
  (0 .. 2047 along x, 0 .. 4223 (Hamamatsu) or 4607 (EEV, e2v) along y);
* "mosaic coordinates" are unbinned coordinates in the frame of the central
  CCD (CCD2), which is DRAGONS' mosaic reference: CCD1 and CCD3 are placed
  with the shifts and rotations of DRAGONS' geometry for the ``DETID``
  (:mod:`gmoswidgets.data.instrument`);
* "array coordinates" are 0-based (x = column, y = row) indices in the raw
  extension array, overscan included.

A binned pixel ``i`` (counted from the start of the amplifier window) covers
unbinned pixels ``x1 + b*i .. x1 + b*i + b - 1`` and so has its centre at
``x1 + b*i + (b - 1)/2``.

Overscan: every raw extension carries 32 *binned* overscan columns whatever
the binning, after the data or before it as the raw frames behind DRAGONS'
masks show (Hamamatsu: alternating, amplifiers 4 and 2 of each CCD after;
EEV/e2v: the ``left`` amplifiers after, the ``right`` ones before).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from .instrument import OVERSCAN_COLUMNS, Configuration

__all__ = ["Window", "AmpLayout", "amp_layouts", "ROI_NAMES", "mosaic_reference", "ccd_to_mosaic",
           "amp_affine", "amp_wcs_keywords", "roi_keywords"]

#: The readout regions the simulator can write (DRAGONS' names).
ROI_NAMES = ("Full Frame", "CCD2", "Central Spectrum", "Central Stamp")
_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


@dataclass(frozen=True)
class Window:
    """A rectangle in 0-based, half-open numpy convention (the simulator's own section type)."""

    x1: int
    x2: int
    y1: int
    y2: int

    @classmethod
    def from_string(cls, text: str) -> "Window":
        """Parse a FITS section ``'[x1:x2,y1:y2]'`` (1-based, inclusive)."""
        match = _SECTION.match(str(text).replace(" ", ""))
        if not match:
            raise ValueError(f"not a FITS section: {text!r}")
        x1, x2, y1, y2 = (int(v) for v in match.groups())
        return cls(x1 - 1, x2, y1 - 1, y2)

    def to_string(self) -> str:
        """The FITS form, 1-based and inclusive."""
        return f"[{self.x1 + 1}:{self.x2},{self.y1 + 1}:{self.y2}]"

    @property
    def slices(self) -> tuple:
        """numpy (rows, columns) slices."""
        return slice(self.y1, self.y2), slice(self.x1, self.x2)

    @property
    def shape(self) -> tuple:
        """numpy shape (ny, nx)."""
        return self.y2 - self.y1, self.x2 - self.x1

    def shift(self, dx: int = 0, dy: int = 0) -> "Window":
        """The window moved by (dx, dy)."""
        return Window(self.x1 + dx, self.x2 + dx, self.y1 + dy, self.y2 + dy)


@dataclass(frozen=True)
class AmpLayout:
    """One amplifier's window in a raw file.

    Attributes
    ----------
    index : int
        0-based extension index in the file (extension ``index + 1``).
    ccd : int
        0, 1 or 2 for CCD1, CCD2, CCD3.
    amp_in_ccd : int
        Position of the amplifier on its CCD, 0 (left) to amps per CCD - 1.
    full_frame_key : int
        Position of the amplifier among all amplifiers, left to right.
    ampname, ccdname : str
        ``AMPNAME`` and ``CCDNAME``.
    ccdsec, detsec : Window
        Unbinned CCD and detector sections read by this amplifier.
    datasec, biassec : Window
        Binned data and overscan sections in the extension array.
    shape : tuple of int
        Numpy shape of the extension array.
    xbin, ybin : int
        Binning.
    amp_width, ccd_height : int
        Unbinned size of a full-frame amplifier.
    """

    index: int
    ccd: int
    amp_in_ccd: int
    full_frame_key: int
    ampname: str
    ccdname: str
    ccdsec: Window
    detsec: Window
    datasec: Window
    biassec: Window
    shape: tuple
    xbin: int
    ybin: int
    amp_width: int
    ccd_height: int

    def unbinned_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Unbinned CCD coordinates of the centres of the data pixels (1-D x and y arrays)."""
        ny, nx = self.datasec.shape
        x = self.ccdsec.x1 + self.xbin * np.arange(nx) + (self.xbin - 1) / 2.0
        y = self.ccdsec.y1 + self.ybin * np.arange(ny) + (self.ybin - 1) / 2.0
        return x, y

    def full_frame_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (rows, columns) of the data pixels in this amplifier's full-frame binned grid.

        Used to cut fixed per-pixel patterns (pixel-to-pixel QE, bias
        structure, illumination), defined on the full-frame grid, to a
        readout window -- the offset DRAGONS derives from ``CCDSEC``.
        """
        x, y = self.unbinned_centres()
        amp_x0 = self.amp_in_ccd * self.amp_width
        return ((y // self.ybin).astype(int), ((x - amp_x0) // self.xbin).astype(int))

    def full_frame_shape(self) -> tuple[int, int]:
        """Binned shape of this amplifier's full-frame data area."""
        return self.ccd_height // self.ybin, self.amp_width // self.xbin


def amp_layouts(config: Configuration, binning: int, roi: str = "Full Frame") -> list[AmpLayout]:
    """The amplifier windows of a raw file, in extension order.

    Parameters
    ----------
    config : Configuration
    binning : int
        1, 2 or 4 (same along x and y).
    roi : str
        One of :data:`ROI_NAMES`.

    Returns
    -------
    list of AmpLayout
        The windows of the amplifiers that overlap the region, in the
        configuration's file order.
    """
    if binning not in (1, 2, 4):
        raise ParameterError(f"binning must be 1, 2 or 4, not {binning!r}")
    if roi not in ROI_NAMES:
        raise ParameterError(f"unknown ROI {roi!r}; choose one of {', '.join(ROI_NAMES)}")
    rx, rxs, ry, rys = config.roi_extent(roi)
    roi_x0, roi_x1, roi_y0 = rx - 1, rx - 1 + rxs, ry - 1
    ny = rys // binning
    width = config.amp_width
    layouts = []
    for amp in config.amps:
        amp_x0 = amp.ccd * config.ccd_width + amp.x0
        x0 = max(amp_x0, roi_x0)
        nx = (min(amp_x0 + width, roi_x1) - x0) // binning
        if nx <= 0:
            continue
        detsec = Window(x0, x0 + nx * binning, roi_y0, roi_y0 + ny * binning)
        ccdsec = detsec.shift(dx=-amp.ccd * config.ccd_width)
        if amp.overscan_right:
            datasec = Window(0, nx, 0, ny)
            biassec = Window(nx, nx + OVERSCAN_COLUMNS, 0, ny)
        else:
            biassec = Window(0, OVERSCAN_COLUMNS, 0, ny)
            datasec = Window(OVERSCAN_COLUMNS, OVERSCAN_COLUMNS + nx, 0, ny)
        amp_in_ccd = amp.x0 // width
        layouts.append(AmpLayout(
            index=len(layouts), ccd=amp.ccd, amp_in_ccd=amp_in_ccd,
            full_frame_key=amp.ccd * config.amps_per_ccd + amp_in_ccd,
            ampname=amp.ampname, ccdname=amp.ccdname, ccdsec=ccdsec, detsec=detsec, datasec=datasec,
            biassec=biassec, shape=(ny, nx + OVERSCAN_COLUMNS), xbin=binning, ybin=binning,
            amp_width=width, ccd_height=config.ccd_height))
    return layouts


def mosaic_reference(config: Configuration) -> tuple[float, float]:
    """Mosaic coordinates of the telescope pointing (centre of CCD2), unbinned."""
    return (config.ccd_width - 1) / 2.0, (config.ccd_height - 1) / 2.0


def ccd_to_mosaic(config: Configuration, ccd: int, x, y):
    """Map unbinned CCD coordinates to mosaic coordinates (DRAGONS' geometry).

    The CCD is rotated about its centre, then shifted (centre to centre)
    relative to CCD2.

    Returns
    -------
    xm, ym : numpy.ndarray
    """
    (sx, sy), rot = config.placements[ccd]
    cx, cy = mosaic_reference(config)
    theta = np.deg2rad(rot)
    dx, dy = np.asarray(x, float) - cx, np.asarray(y, float) - cy
    xm = np.cos(theta) * dx - np.sin(theta) * dy + cx + sx
    ym = np.sin(theta) * dx + np.cos(theta) * dy + cy + sy
    return xm, ym


def amp_affine(config: Configuration, layout: AmpLayout, pa: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Affine map from array coordinates to tangent-plane offsets in degrees.

    ``(xi, eta) = A @ (x, y) + b``, where ``xi`` points East and ``eta``
    North, relative to the telescope pointing.  At PA = 0 East is left
    (-x) and North up (+y).

    Returns
    -------
    A : numpy.ndarray, shape (2, 2)
    b : numpy.ndarray, shape (2,)
    """
    scale = config.pixel_scale / 3600.0
    (sx, sy), rot = config.placements[layout.ccd]
    theta = np.deg2rad(rot)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    binning = np.diag([layout.xbin, layout.ybin]).astype(float)
    # array -> unbinned CCD coordinates: u = binning @ p + u0
    u0 = np.array([layout.ccdsec.x1 - layout.xbin * layout.datasec.x1 + (layout.xbin - 1) / 2.0,
                   layout.ccdsec.y1 - layout.ybin * layout.datasec.y1 + (layout.ybin - 1) / 2.0])
    centre = np.array(mosaic_reference(config))
    # unbinned -> mosaic: m = R (u - c) + c + s
    m_lin = rotation @ binning
    m_off = rotation @ (u0 - centre) + centre + np.array([sx, sy])
    # mosaic -> sky: (xi, eta) = scale * P (m - m0), P flips x and applies the PA
    pa_rad = np.deg2rad(pa)
    sky = scale * np.array([[-np.cos(pa_rad), np.sin(pa_rad)], [np.sin(pa_rad), np.cos(pa_rad)]])
    return sky @ m_lin, sky @ (m_off - centre)


def amp_wcs_keywords(config: Configuration, layout: AmpLayout, ra: float, dec: float,
                     pa: float = 0.0) -> dict:
    """FITS TAN WCS keywords of one amplifier for a pointing (on the centre of CCD2).

    Returns
    -------
    dict
        ``CTYPE1/2``, ``CRPIX1/2`` (1-based), ``CRVAL1/2``, ``CD1_1`` ... ``CD2_2``.
    """
    a_mat, b_vec = amp_affine(config, layout, pa)
    crpix = -np.linalg.solve(a_mat, b_vec) + 1.0
    return {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "CRPIX1": float(crpix[0]), "CRPIX2": float(crpix[1]),
        "CRVAL1": float(ra), "CRVAL2": float(dec),
        "CD1_1": float(a_mat[0, 0]), "CD1_2": float(a_mat[0, 1]),
        "CD2_1": float(a_mat[1, 0]), "CD2_2": float(a_mat[1, 1]),
    }


def roi_keywords(config: Configuration, roi: str, binning: int) -> tuple[int, int, int, int]:
    """PHU (DETRO1X, DETRO1XS, DETRO1Y, DETRO1YS): start unbinned, sizes in binned pixels."""
    x1, xsize, y1, ysize = config.roi_extent(roi)
    return x1, xsize // binning, y1, ysize // binning
