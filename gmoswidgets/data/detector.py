"""Fixed detector and optics signatures: bias structure, flat response, fringes.

Every pattern here is fixed for a data set (same seed -> same pattern) and
is computed per amplifier window on the binned grid.  Patterns defined "per
detector pixel" (pixel-to-pixel QE, the bias column pattern) are drawn on
the amplifier's full-frame binned grid and cut to the readout window, so a
region-of-interest readout sees the same pixels as a full-frame one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .illumination import lit_full_frame, lit_pixels
from .instrument import Configuration
from .layout import AmpLayout, amp_layouts, ccd_to_mosaic, mosaic_reference

__all__ = ["DetectorModel", "VIGNETTING_RADIUS_ARCSEC", "CCD_QE", "PTP_RMS", "FRINGE_FRACTION",
           "BOTTOM_RAMP_ROWS"]

#: Radius (arcsec from the centre of CCD2) at which the smooth vignetting
#: inside the lit field reaches its full depth :data:`_VIGNETTING`.
VIGNETTING_RADIUS_ARCSEC = 168.0
#: Fractional vignetting at that radius and beyond (quadratic in radius).
_VIGNETTING = 0.08
#: Relative quantum efficiency of CCD1, CCD2, CCD3.
CCD_QE = (0.965, 1.0, 1.027)
#: rms of the pixel-to-pixel QE variations.
PTP_RMS = 0.01
#: Fringe amplitude as a fraction of the sky level, per filter.  Which detector/filter pairs
#: fringe is DRAGONS' table (``fringe`` section of the lookups JSON, via
#: :attr:`Configuration.fringe_filters`); the amplitudes are this simulator's choice: i-band
#: fringes on the thick EEV/e2vDD CCDs are ~1 % of the sky, z-band ones a few %.
FRINGE_FRACTION = {"i": 0.01, "z": 0.03}
#: Rows (unbinned) at the bottom of each amplifier with a decaying bias ramp.
BOTTOM_RAMP_ROWS = 48
_RAMP_ADU = 12.0
_DEAD_COLUMN_RESPONSE = 0.15


@dataclass
class BadColumn:
    """A bad detector column: dead (low response) or hot (extra bias level).

    Attributes
    ----------
    kind : str
        'dead' or 'hot'.
    amp : int
        Full-frame amplifier index, left to right (0..11 for Hamamatsu).
    column : int
        Unbinned column within the amplifier.
    y1, y2 : int
        Unbinned row range (half-open).
    value : float
        Response for dead columns, extra ADU for hot ones.
    """

    kind: str
    amp: int
    column: int
    y1: int
    y2: int
    value: float

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"kind": self.kind, "amp": self.amp, "column": self.column,
                "y1": self.y1, "y2": self.y2, "value": self.value}


class DetectorModel:
    """Seeded fixed patterns of the detector and the telescope optics.

    Parameters
    ----------
    seed : int
        Seed of the data set.
    config : Configuration
        The detector configuration.
    binning : int
        The binning of the data set (bad columns go on amplifiers that are
        mostly lit at this binning).
    """

    def __init__(self, seed: int, config: Configuration, binning: int):
        self.seed = int(seed)
        self.config = config
        rng = np.random.default_rng([self.seed, 101])
        illuminated_amps = tuple(layout.full_frame_key for layout in amp_layouts(config, binning)
                                 if lit_full_frame(config, layout).mean() > 0.5)
        height, width = config.ccd_height, config.amp_width
        self.bad_columns = []
        for kind, count in (("dead", 3), ("hot", 2)):
            for _ in range(count):
                y1 = int(rng.integers(0, 3000))
                self.bad_columns.append(BadColumn(
                    kind, int(rng.choice(sorted(illuminated_amps))), int(rng.integers(20, width - 20)),
                    y1, int(rng.integers(y1 + 600, height)),
                    _DEAD_COLUMN_RESPONSE if kind == "dead" else float(rng.uniform(40, 200))))
        self.bias_gradients = rng.uniform(-2.5, 2.5, size=(len(config.amps), 2))

    def _rng(self, *key):
        return np.random.default_rng([self.seed, *key])

    # -- bias ---------------------------------------------------------------
    def bias_structure(self, layout: AmpLayout) -> np.ndarray:
        """Fixed 2-D bias structure (ADU, zero mean-ish) on the data pixels.

        A gentle gradient, a column pattern (0.7 ADU rms) and hot columns.
        """
        amp = layout.full_frame_key
        ny_ff, nx_ff = layout.full_frame_shape()
        columns = self._rng(202, amp, layout.xbin).normal(0.0, 0.7, nx_ff).astype(np.float32)
        iy, ix = layout.full_frame_indices()
        x, y = layout.unbinned_centres()
        gx, gy = self.bias_gradients[amp]
        height, width = layout.ccd_height, layout.amp_width
        structure = (gy * (y[:, None] / height - 0.5) + gx * ((x[None, :] % width) / width - 0.5)
                     + columns[ix][None, :]).astype(np.float32)
        for bad in self.bad_columns:
            if bad.kind == "hot" and bad.amp == amp:
                self._apply_column(structure, layout, bad, lambda arr, v: arr + v)
        return structure

    def bottom_ramp(self, layout: AmpLayout) -> np.ndarray:
        """Per-row extra bias level (ADU) decaying over the bottom rows; in data and overscan."""
        _, y = layout.unbinned_centres()
        return (_RAMP_ADU * np.exp(-y / (BOTTOM_RAMP_ROWS / 4.0))).astype(np.float32)

    @staticmethod
    def _apply_column(image, layout, bad, op):
        x, y = layout.unbinned_centres()
        amp_x = x - layout.amp_in_ccd * layout.amp_width
        cols = np.nonzero(np.abs(amp_x - bad.column) < layout.xbin / 2.0)[0]
        rows = np.nonzero((y >= bad.y1) & (y < bad.y2))[0]
        if cols.size and rows.size:
            if bad.kind == "dead":  # a binned pixel averages one dead and xbin-1 good columns
                value = 1.0 - (1.0 - bad.value) / layout.xbin
            else:  # the extra charge adds up in the binned pixel
                value = bad.value
            block = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            block[...] = op(block, value)

    # -- illumination and flat response ---------------------------------------
    def mosaic_grid(self, layout: AmpLayout) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic coordinates (unbinned) of every data pixel, float64 2-D arrays."""
        x, y = layout.unbinned_centres()
        xx, yy = np.meshgrid(x, y)
        return ccd_to_mosaic(self.config, layout.ccd, xx, yy)

    def lit(self, layout: AmpLayout) -> np.ndarray:
        """Boolean map of the data pixels the sky reaches (DRAGONS' mask for the configuration)."""
        return lit_pixels(self.config, layout)

    def illumination(self, layout: AmpLayout) -> np.ndarray:
        """Illumination times vignetting: 1 at the field centre, 0 where the mask says unlit."""
        xm, ym = self.mosaic_grid(layout)
        centre = mosaic_reference(self.config)
        radius = np.hypot(xm - centre[0], ym - centre[1]) * self.config.pixel_scale
        vignetting = 1.0 - _VIGNETTING * np.minimum(radius / VIGNETTING_RADIUS_ARCSEC, 1.0) ** 2
        return (self.lit(layout) * vignetting).astype(np.float32)

    def response(self, layout: AmpLayout) -> np.ndarray:
        """True relative response of the data pixels (what a perfect flat shows).

        Illumination and vignetting x CCD quantum efficiency x pixel-to-pixel
        QE x dead columns.  Normalised so that the centre of CCD2 (full
        illumination, CCD QE 1, no pixel noise) is 1.
        """
        amp = layout.full_frame_key
        ptp = self._rng(303, amp, layout.xbin).normal(1.0, PTP_RMS, layout.full_frame_shape())
        iy, ix = layout.full_frame_indices()
        response = self.illumination(layout) * np.float32(CCD_QE[layout.ccd])
        response *= ptp[np.ix_(iy, ix)].astype(np.float32)
        for bad in self.bad_columns:
            if bad.kind == "dead" and bad.amp == amp:
                self._apply_column(response, layout, bad, lambda arr, v: arr * v)
        return response

    # -- fringes ----------------------------------------------------------------
    def fringe_pattern(self, layout: AmpLayout) -> np.ndarray:
        """Fixed fringe pattern (unit amplitude) in unbinned CCD coordinates.

        Interference fringes follow the contours of the CCD thickness: the
        pattern is ``sin(phase)``, where the phase is a smooth random field
        (a few low-frequency waves per CCD) whose gradient gives fringes
        ~100-300 unbinned pixels apart, curving across the CCD.
        """
        x, y = layout.unbinned_centres()
        xx, yy = np.meshgrid(x / 2048.0, y / 2048.0)  # the phase field is defined per 2048 pixels
        rng = self._rng(404, layout.ccd)
        phase = np.zeros_like(xx)
        for _ in range(6):
            kx, ky = rng.uniform(-1.6, 1.6, 2)
            amplitude = rng.uniform(6.0, 14.0)
            phase += amplitude * np.sin(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi))
        return np.sin(phase).astype(np.float32)
