"""Amplifier layout and WCS geometry of a simulated GMOS-N Hamamatsu readout.

Conventions used throughout :mod:`gmoswidgets.data`:

* "unbinned CCD coordinates" are 0-based pixel centres on one CCD
  (0 .. 2047 along x, 0 .. 4223 along y);
* "mosaic coordinates" are unbinned coordinates in the frame of the central
  CCD (CCD2), which is DRAGONS' mosaic reference: CCD1 and CCD3 are placed
  with the shifts and rotations of
  :data:`gmoswidgets.gmos.lookups.MOSAIC_GEOMETRY`;
* "array coordinates" are 0-based (x = column, y = row) indices in the raw
  extension array, overscan included.

A binned pixel ``i`` (counted from the start of the amplifier window) covers
unbinned pixels ``x1 + b*i .. x1 + b*i + b - 1`` and so has its centre at
``x1 + b*i + (b - 1)/2``.

Overscan: every raw GMOS-N Hamamatsu extension carries 32 *binned* overscan
columns whatever the binning (2112 x 288 at 2x2, 4224 x 544 at 1x1), to the
right of the data on odd extensions (1, 3, ...) and to the left on even ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..gmos import lookups
from ..sections import Section

__all__ = ["AmpLayout", "amp_layouts", "DETECTOR", "CCD_NAMES", "DETID", "OVERSCAN_COLUMNS",
           "MOSAIC_REFERENCE", "ccd_to_mosaic", "amp_affine", "amp_wcs_keywords", "ROI_NAMES",
           "ROI_EXTENTS", "roi_keywords"]

#: The simulated detector array.
DETECTOR = lookups.detector_type("GMOS-N", "S10892-N")
#: CCD names, left to right (CCD1, CCD2, CCD3).
CCD_NAMES = ("BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2")
#: PHU DETID: the key of the mosaic geometry.
DETID = ",".join(CCD_NAMES)
#: Binned overscan columns per extension.
OVERSCAN_COLUMNS = DETECTOR.overscan_width
#: Number of amplifiers per CCD.
AMPS_PER_CCD = DETECTOR.namps // DETECTOR.nccds
#: Mosaic coordinates of the telescope pointing (centre of CCD2), unbinned.
MOSAIC_REFERENCE = ((DETECTOR.ccd_width - 1) / 2.0, (DETECTOR.ccd_height - 1) / 2.0)
#: The named readout regions (DRAGONS' canonical variants), unbinned (x1, x size, y1, y size).
ROI_EXTENTS = {name: variants[0] for name, variants in lookups.ROI_SETTINGS[DETECTOR.ccd_height].items()}
#: The readout regions the simulator can write.
ROI_NAMES = tuple(ROI_EXTENTS)


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
        Position of the amplifier on its CCD, 0 (left) to 3 (right).
    ampname, ccdname : str
        ``AMPNAME`` (e.g. ``'BI13-20-4k-1, 4'``) and ``CCDNAME``.
    ccdsec, detsec : Section
        Unbinned CCD and detector sections read by this amplifier.
    datasec, biassec : Section
        Binned data and overscan sections in the extension array.
    shape : tuple of int
        Numpy shape of the extension array.
    xbin, ybin : int
        Binning.
    """

    index: int
    ccd: int
    amp_in_ccd: int
    ampname: str
    ccdname: str
    ccdsec: Section
    detsec: Section
    datasec: Section
    biassec: Section
    shape: tuple
    xbin: int
    ybin: int

    @property
    def full_frame_key(self) -> int:
        """Index of this amplifier among the 12 of the full frame (0..11)."""
        return self.ccd * AMPS_PER_CCD + self.amp_in_ccd

    def unbinned_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Unbinned CCD coordinates of the centres of the data pixels.

        Returns
        -------
        x, y : numpy.ndarray
            1-D float64 arrays of length ``datasec.shape[1]`` and ``datasec.shape[0]``.
        """
        ny, nx = self.datasec.shape
        x = self.ccdsec.x1 + self.xbin * np.arange(nx) + (self.xbin - 1) / 2.0
        y = self.ccdsec.y1 + self.ybin * np.arange(ny) + (self.ybin - 1) / 2.0
        return x, y

    def full_frame_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the data pixels in this amplifier's full-frame binned grid.

        Used to cut fixed per-pixel patterns (pixel-to-pixel QE, bias
        structure), defined on the full-frame grid, to a readout window.
        """
        x, y = self.unbinned_centres()
        amp_x0 = self.amp_in_ccd * DETECTOR.amp_width
        return ((y // self.ybin).astype(int), ((x - amp_x0) // self.xbin).astype(int))

    def full_frame_shape(self) -> tuple[int, int]:
        """Binned shape of this amplifier's full-frame data area."""
        return DETECTOR.ccd_height // self.ybin, DETECTOR.amp_width // self.xbin


def amp_layouts(binning: int, roi: str = "Full Frame") -> list[AmpLayout]:
    """The amplifier windows of a raw file, in extension order.

    Parameters
    ----------
    binning : int
        1, 2 or 4 (same along x and y).
    roi : str
        One of :data:`ROI_NAMES`: ``'Full Frame'``, ``'CCD2'``,
        ``'Central Spectrum'`` or ``'Central Stamp'``.

    Returns
    -------
    list of AmpLayout
        The windows of the amplifiers that overlap the region (12 for full
        frame and central spectrum).
    """
    if binning not in (1, 2, 4):
        raise ParameterError(f"binning must be 1, 2 or 4, not {binning!r}")
    if roi not in ROI_EXTENTS:
        raise ParameterError(f"unknown ROI {roi!r}; choose one of {', '.join(ROI_NAMES)}")
    rx, rxs, ry, rys = ROI_EXTENTS[roi]
    roi_x0, roi_x1, roi_y0 = rx - 1, rx - 1 + rxs, ry - 1
    ny = rys // binning
    layouts = []
    for ccd, ccdname in enumerate(CCD_NAMES):
        for k in range(AMPS_PER_CCD):
            amp_x0 = ccd * DETECTOR.ccd_width + k * DETECTOR.amp_width
            x0 = max(amp_x0, roi_x0)
            nx = (min(amp_x0 + DETECTOR.amp_width, roi_x1) - x0) // binning
            if nx <= 0:
                continue
            detsec = Section(x0, x0 + nx * binning, roi_y0, roi_y0 + ny * binning)
            ccdsec = detsec.shift(dx=-ccd * DETECTOR.ccd_width)
            if k % 2 == 0:  # odd extension in the full frame: overscan on the right
                datasec = Section(0, nx, 0, ny)
                biassec = Section(nx, nx + OVERSCAN_COLUMNS, 0, ny)
            else:
                biassec = Section(0, OVERSCAN_COLUMNS, 0, ny)
                datasec = Section(OVERSCAN_COLUMNS, OVERSCAN_COLUMNS + nx, 0, ny)
            layouts.append(AmpLayout(
                index=len(layouts), ccd=ccd, amp_in_ccd=k,
                ampname=f"{ccdname}, {AMPS_PER_CCD - k}", ccdname=ccdname,
                ccdsec=ccdsec, detsec=detsec, datasec=datasec, biassec=biassec,
                shape=(ny, nx + OVERSCAN_COLUMNS), xbin=binning, ybin=binning))
    return layouts


def _placement(ccd: int):
    geometry = lookups.MOSAIC_GEOMETRY[DETID]
    if ccd == 1:
        return (0.0, 0.0), 0.0
    placement = geometry.ccd1 if ccd == 0 else geometry.ccd3
    return placement.shift, placement.rotation


def ccd_to_mosaic(ccd: int, x, y):
    """Map unbinned CCD coordinates to mosaic coordinates (DRAGONS' geometry).

    The CCD is rotated about its centre, then shifted (centre to centre)
    relative to CCD2.

    Parameters
    ----------
    ccd : int
        0, 1 or 2.
    x, y : array_like
        Unbinned CCD coordinates.

    Returns
    -------
    xm, ym : numpy.ndarray
    """
    (sx, sy), rot = _placement(ccd)
    cx, cy = MOSAIC_REFERENCE
    theta = np.deg2rad(rot)
    dx, dy = np.asarray(x, float) - cx, np.asarray(y, float) - cy
    xm = np.cos(theta) * dx - np.sin(theta) * dy + cx + sx
    ym = np.sin(theta) * dx + np.cos(theta) * dy + cy + sy
    return xm, ym


def amp_affine(layout: AmpLayout, pa: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Affine map from array coordinates to tangent-plane offsets in degrees.

    ``(xi, eta) = A @ (x, y) + b``, where ``xi`` points East and ``eta``
    North, relative to the telescope pointing.  At PA = 0 East is left
    (-x) and North up (+y).

    Returns
    -------
    A : numpy.ndarray, shape (2, 2)
    b : numpy.ndarray, shape (2,)
    """
    scale = DETECTOR.pixel_scale / 3600.0
    (sx, sy), rot = _placement(layout.ccd)
    theta = np.deg2rad(rot)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    binning = np.diag([layout.xbin, layout.ybin]).astype(float)
    # array -> unbinned CCD coordinates: u = binning @ p + u0
    u0 = np.array([layout.ccdsec.x1 - layout.xbin * layout.datasec.x1 + (layout.xbin - 1) / 2.0,
                   layout.ccdsec.y1 - layout.ybin * layout.datasec.y1 + (layout.ybin - 1) / 2.0])
    centre = np.array(MOSAIC_REFERENCE)
    # unbinned -> mosaic: m = R (u - c) + c + s
    m_lin = rotation @ binning
    m_off = rotation @ (u0 - centre) + centre + np.array([sx, sy])
    # mosaic -> sky: (xi, eta) = scale * P (m - m0), P flips x and applies the PA
    pa_rad = np.deg2rad(pa)
    sky = scale * np.array([[-np.cos(pa_rad), np.sin(pa_rad)], [np.sin(pa_rad), np.cos(pa_rad)]])
    a_mat = sky @ m_lin
    b_vec = sky @ (m_off - centre)
    return a_mat, b_vec


def amp_wcs_keywords(layout: AmpLayout, ra: float, dec: float, pa: float = 0.0) -> dict:
    """FITS TAN WCS keywords of one amplifier for a pointing.

    Parameters
    ----------
    layout : AmpLayout
    ra, dec : float
        Telescope pointing (degrees), which falls on the centre of CCD2.
    pa : float
        Position angle in degrees.

    Returns
    -------
    dict
        ``CTYPE1/2``, ``CRPIX1/2`` (1-based), ``CRVAL1/2``, ``CD1_1`` ... ``CD2_2``.
    """
    a_mat, b_vec = amp_affine(layout, pa)
    crpix = -np.linalg.solve(a_mat, b_vec) + 1.0
    return {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "CRPIX1": float(crpix[0]), "CRPIX2": float(crpix[1]),
        "CRVAL1": float(ra), "CRVAL2": float(dec),
        "CD1_1": float(a_mat[0, 0]), "CD1_2": float(a_mat[0, 1]),
        "CD2_1": float(a_mat[1, 0]), "CD2_2": float(a_mat[1, 1]),
    }


def roi_keywords(roi: str, binning: int) -> tuple[int, int, int, int]:
    """PHU (DETRO1X, DETRO1XS, DETRO1Y, DETRO1YS): start unbinned, sizes in binned pixels."""
    x1, xsize, y1, ysize = ROI_EXTENTS[roi]
    return x1, xsize // binning, y1, ysize // binning
