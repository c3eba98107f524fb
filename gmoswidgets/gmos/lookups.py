"""GMOS lookup tables, kept as data.

Sources
-------
* Amplifier gains, read noise and bias levels: the Gemini GMOS amplifier
  tables as published in DRAGONS ``gemini_instruments/gmos/lookup.py``
  (``gmosampsGain``, ``gmosampsRdnoise``, ``gmosampsBias`` and their dated
  predecessors); GMOS-N Hamamatsu values from K. Chiboucas, 2017-05-05.
* Mosaic geometry: DRAGONS ``geminidr/gmos/lookups/geometry_conf.py``, as
  summarised in ``shared/reference/dragons-gmos-imaging.md`` section 1.2.
* Pixel scales and detector identities: the GMOS instrument web pages and
  DRAGONS ``gemini_instruments/gmos/lookup.py`` (``gmosPixelScales``).
* Fringe table: the DRAGONS GMOS imaging tutorial appendix "Fringe
  Correction Tables" (``shared/seed``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DetectorType", "DETECTOR_TYPES", "detector_type", "AMP_GAIN", "AMP_READ_NOISE",
    "AMP_BIAS", "MOSAIC_GEOMETRY", "FRINGE_FILTERS", "READ_SPEED_AMPINTEG_SLOW",
    "READ_SPEED_AMPINTEG_SLOW_EEV",
    "GAIN_SETTING_THRESHOLD", "roi_extents", "ROI_SETTINGS",
]


@dataclass(frozen=True)
class DetectorType:
    """One GMOS detector array: identity and the size of its pieces.

    Attributes
    ----------
    dettype : str
        The PHU ``DETTYPE`` value that identifies the array.
    name : str
        The descriptor ``detector_name(pretty=True)`` value.
    instrument : str
        ``GMOS-N`` or ``GMOS-S``.
    pixel_scale : float
        Unbinned pixel scale in arcsec.
    nccds, namps : int
        Number of CCDs and of amplifiers read in the usual full-frame mode.
    ccd_width, ccd_height : int
        Unbinned size of one CCD's data area (x, y).
    overscan_width : int
        Width of the serial overscan (BIASSEC) of each amplifier, in binned
        columns: raw Hamamatsu files keep 32 columns at every binning
        (2112 x 288 per amplifier at 2x2, 4224 x 544 at 1x1).
    saturation_adu : int
        Raw saturation level in ADU (the 16-bit ADC limit).
    linear_fraction : float
        Fraction of the saturation level above which the response is
        non-linear (the ``non_linear_level`` descriptor).
    nbiascontam : int
        Overscan columns next to the data contaminated by the data (DRAGONS:
        5 for e2vDD, 4 otherwise).
    """

    dettype: str
    name: str
    instrument: str
    pixel_scale: float
    nccds: int
    namps: int
    ccd_width: int
    ccd_height: int
    overscan_width: int
    saturation_adu: int
    linear_fraction: float
    nbiascontam: int

    @property
    def amp_width(self) -> int:
        """Unbinned width of one amplifier's data area."""
        return self.ccd_width * self.nccds // self.namps


DETECTOR_TYPES: dict[tuple[str, str], DetectorType] = {
    ("GMOS-N", "S10892-N"): DetectorType("S10892-N", "Hamamatsu-N", "GMOS-N", 0.0807,
                                         3, 12, 2048, 4224, 32, 65535, 0.91, 4),
    ("GMOS-S", "S10892"): DetectorType("S10892", "Hamamatsu-S", "GMOS-S", 0.0800,
                                       3, 12, 2048, 4224, 32, 65535, 0.91, 4),
    ("GMOS-N", "SDSU II e2v DD CCD42-90"): DetectorType("SDSU II e2v DD CCD42-90", "e2vDD", "GMOS-N",
                                                        0.0728, 3, 6, 2048, 4608, 32, 65535, 0.90, 5),
    ("GMOS-N", "SDSU II CCD"): DetectorType("SDSU II CCD", "EEV", "GMOS-N", 0.0727,
                                            3, 3, 2048, 4608, 32, 65535, 0.90, 4),
    ("GMOS-S", "SDSU II CCD"): DetectorType("SDSU II CCD", "EEV", "GMOS-S", 0.0730,
                                            3, 3, 2048, 4608, 32, 65535, 0.90, 4),
}


def detector_type(instrument: str, dettype: str) -> DetectorType | None:
    """Return the :class:`DetectorType` for an instrument and ``DETTYPE``, or None."""
    return DETECTOR_TYPES.get((str(instrument).strip(), str(dettype).strip()))


#: Readout with ``AMPINTEG`` above this many ns is "slow" (DRAGONS' rule):
#: Hamamatsu CCDs, and the EEV / e2vDD CCDs.
READ_SPEED_AMPINTEG_SLOW = 8000
READ_SPEED_AMPINTEG_SLOW_EEV = 2000
#: A header ``GAIN`` below this is the "low" gain setting (DRAGONS' rule).
GAIN_SETTING_THRESHOLD = 3.0

#: Amplifier gain in e-/ADU, keyed by (read speed, gain setting, AMPNAME).
#: GMOS-N Hamamatsu, valid from 2017-02-24.  Other detectors below, from
#: DRAGONS ``gemini_instruments/gmos/lookup.py`` (the table named per block);
#: DRAGONS' placeholder 1.000 for Hamamatsu slow/high is left out, so those
#: settings fall back to the header GAIN.
AMP_GAIN: dict[tuple[str, str, str], float] = {
    ("slow", "low", "BI13-20-4k-1, 1"): 1.568, ("slow", "low", "BI13-20-4k-1, 2"): 1.620,
    ("slow", "low", "BI13-20-4k-1, 3"): 1.618, ("slow", "low", "BI13-20-4k-1, 4"): 1.675,
    ("slow", "low", "BI12-09-4k-2, 1"): 1.664, ("slow", "low", "BI12-09-4k-2, 2"): 1.633,
    ("slow", "low", "BI12-09-4k-2, 3"): 1.650, ("slow", "low", "BI12-09-4k-2, 4"): 1.690,
    ("slow", "low", "BI13-18-4k-2, 1"): 1.654, ("slow", "low", "BI13-18-4k-2, 2"): 1.587,
    ("slow", "low", "BI13-18-4k-2, 3"): 1.630, ("slow", "low", "BI13-18-4k-2, 4"): 1.604,
    ("fast", "low", "BI13-20-4k-1, 1"): 1.91, ("fast", "low", "BI13-20-4k-1, 2"): 1.97,
    ("fast", "low", "BI13-20-4k-1, 3"): 1.95, ("fast", "low", "BI13-20-4k-1, 4"): 2.01,
    ("fast", "low", "BI12-09-4k-2, 1"): 2.01, ("fast", "low", "BI12-09-4k-2, 2"): 1.96,
    ("fast", "low", "BI12-09-4k-2, 3"): 1.97, ("fast", "low", "BI12-09-4k-2, 4"): 2.03,
    ("fast", "low", "BI13-18-4k-2, 1"): 1.95, ("fast", "low", "BI13-18-4k-2, 2"): 1.89,
    ("fast", "low", "BI13-18-4k-2, 3"): 1.95, ("fast", "low", "BI13-18-4k-2, 4"): 1.95,
    # GMOS-N Hamamatsu, fast read / high gain (same DRAGONS table as above).
    ("fast", "high", "BI13-20-4k-1, 1"): 5.04, ("fast", "high", "BI13-20-4k-1, 2"): 5.05,
    ("fast", "high", "BI13-20-4k-1, 3"): 5.18, ("fast", "high", "BI13-20-4k-1, 4"): 5.21,
    ("fast", "high", "BI12-09-4k-2, 1"): 5.29, ("fast", "high", "BI12-09-4k-2, 2"): 5.14,
    ("fast", "high", "BI12-09-4k-2, 3"): 5.13, ("fast", "high", "BI12-09-4k-2, 4"): 5.29,
    ("fast", "high", "BI13-18-4k-2, 1"): 5.09, ("fast", "high", "BI13-18-4k-2, 2"): 4.86,
    ("fast", "high", "BI13-18-4k-2, 3"): 5.1, ("fast", "high", "BI13-18-4k-2, 4"): 5.03,
    # GMOS-S Hamamatsu, CCDs installed 2023-12-14 (DRAGONS ``gmosampsGain``, G. Gimeno 2024-01-22).
    # BI12-34-4k-1 was also used 2015-2023 with slightly different gains; the current values are kept.
    ("slow", "low", "BI11-41-4k-2, 1"): 2.038, ("fast", "high", "BI11-41-4k-2, 1"): 5.758,
    ("fast", "low", "BI11-41-4k-2, 1"): 1.719, ("slow", "low", "BI11-41-4k-2, 2"): 2.016,
    ("fast", "high", "BI11-41-4k-2, 2"): 5.708, ("fast", "low", "BI11-41-4k-2, 2"): 1.711,
    ("slow", "low", "BI11-41-4k-2, 3"): 2.02, ("fast", "high", "BI11-41-4k-2, 3"): 5.719,
    ("fast", "low", "BI11-41-4k-2, 3"): 1.715, ("slow", "low", "BI11-41-4k-2, 4"): 1.943,
    ("fast", "high", "BI11-41-4k-2, 4"): 5.518, ("fast", "low", "BI11-41-4k-2, 4"): 1.652,
    ("slow", "low", "BI13-19-4k-3, 1"): 1.798, ("fast", "high", "BI13-19-4k-3, 1"): 5.091,
    ("fast", "low", "BI13-19-4k-3, 1"): 1.533, ("slow", "low", "BI13-19-4k-3, 2"): 1.745,
    ("fast", "high", "BI13-19-4k-3, 2"): 4.956, ("fast", "low", "BI13-19-4k-3, 2"): 1.498,
    ("slow", "low", "BI13-19-4k-3, 3"): 1.787, ("fast", "high", "BI13-19-4k-3, 3"): 5.082,
    ("fast", "low", "BI13-19-4k-3, 3"): 1.525, ("slow", "low", "BI13-19-4k-3, 4"): 1.787,
    ("fast", "high", "BI13-19-4k-3, 4"): 5.1, ("fast", "low", "BI13-19-4k-3, 4"): 1.531,
    ("slow", "low", "BI12-34-4k-1, 1"): 1.594, ("fast", "high", "BI12-34-4k-1, 1"): 4.581,
    ("fast", "low", "BI12-34-4k-1, 1"): 1.445, ("slow", "low", "BI12-34-4k-1, 2"): 1.699,
    ("fast", "high", "BI12-34-4k-1, 2"): 4.893, ("fast", "low", "BI12-34-4k-1, 2"): 1.545,
    ("slow", "low", "BI12-34-4k-1, 3"): 1.681, ("fast", "high", "BI12-34-4k-1, 3"): 4.825,
    ("fast", "low", "BI12-34-4k-1, 3"): 1.478, ("slow", "low", "BI12-34-4k-1, 4"): 1.77,
    ("fast", "high", "BI12-34-4k-1, 4"): 5.082, ("fast", "low", "BI12-34-4k-1, 4"): 1.549,
    # GMOS-S Hamamatsu, CCDs of 2015-08-26 .. 2023-12-14 (DRAGONS ``gmosampsGainBefore20231214``).
    ("slow", "low", "BI5-36-4k-2, 1"): 1.852, ("fast", "high", "BI5-36-4k-2, 1"): 5.24,
    ("fast", "low", "BI5-36-4k-2, 1"): 1.566, ("slow", "low", "BI5-36-4k-2, 2"): 1.878,
    ("fast", "high", "BI5-36-4k-2, 2"): 5.33, ("fast", "low", "BI5-36-4k-2, 2"): 1.592,
    ("slow", "low", "BI5-36-4k-2, 3"): 1.874, ("fast", "high", "BI5-36-4k-2, 3"): 5.3,
    ("fast", "low", "BI5-36-4k-2, 3"): 1.593, ("slow", "low", "BI5-36-4k-2, 4"): 1.834,
    ("fast", "high", "BI5-36-4k-2, 4"): 5.183, ("fast", "low", "BI5-36-4k-2, 4"): 1.556,
    ("slow", "low", "BI11-33-4k-1, 1"): 1.878, ("fast", "high", "BI11-33-4k-1, 1"): 5.334,
    ("fast", "low", "BI11-33-4k-1, 1"): 1.613, ("slow", "low", "BI11-33-4k-1, 2"): 1.84,
    ("fast", "high", "BI11-33-4k-1, 2"): 5.225, ("fast", "low", "BI11-33-4k-1, 2"): 1.582,
    ("slow", "low", "BI11-33-4k-1, 3"): 1.933, ("fast", "high", "BI11-33-4k-1, 3"): 5.459,
    ("fast", "low", "BI11-33-4k-1, 3"): 1.648, ("slow", "low", "BI11-33-4k-1, 4"): 1.908,
    ("fast", "high", "BI11-33-4k-1, 4"): 5.407, ("fast", "low", "BI11-33-4k-1, 4"): 1.634,
    # GMOS-N e2vDD, 6 amplifiers (DRAGONS ``gmosampsGainBefore20170224``).
    ("slow", "low", "e2v 10031-23-05, right"): 2.31, ("slow", "high", "e2v 10031-23-05, right"): 4.52,
    ("fast", "high", "e2v 10031-23-05, right"): 5.34, ("fast", "low", "e2v 10031-23-05, right"): 2.53,
    ("slow", "low", "e2v 10031-23-05, left"): 2.31, ("slow", "high", "e2v 10031-23-05, left"): 4.59,
    ("fast", "high", "e2v 10031-23-05, left"): 5.36, ("fast", "low", "e2v 10031-23-05, left"): 2.53,
    ("slow", "low", "e2v 10031-01-03, right"): 2.27, ("slow", "high", "e2v 10031-01-03, right"): 4.39,
    ("fast", "high", "e2v 10031-01-03, right"): 5.27, ("fast", "low", "e2v 10031-01-03, right"): 2.5,
    ("slow", "low", "e2v 10031-01-03, left"): 2.21, ("slow", "high", "e2v 10031-01-03, left"): 4.59,
    ("fast", "high", "e2v 10031-01-03, left"): 5.1, ("fast", "low", "e2v 10031-01-03, left"): 2.41,
    ("slow", "low", "e2v 10031-18-04, right"): 2.33, ("slow", "high", "e2v 10031-18-04, right"): 4.33,
    ("fast", "high", "e2v 10031-18-04, right"): 5.41, ("fast", "low", "e2v 10031-18-04, right"): 2.56,
    ("slow", "low", "e2v 10031-18-04, left"): 2.17, ("slow", "high", "e2v 10031-18-04, left"): 4.82,
    ("fast", "high", "e2v 10031-18-04, left"): 5.16, ("fast", "low", "e2v 10031-18-04, left"): 2.43,
    # GMOS-N and GMOS-S EEV, 3 amplifiers read (best) or 6 (DRAGONS ``gmosampsGainBefore20150826``).
    ("slow", "low", "EEV 9273-16-03, right"): 2.1, ("slow", "high", "EEV 9273-16-03, right"): 4.405,
    ("fast", "high", "EEV 9273-16-03, right"): 4.839, ("fast", "low", "EEV 9273-16-03, right"): 2.302,
    ("slow", "low", "EEV 9273-16-03, left"): 2.012, ("slow", "high", "EEV 9273-16-03, left"): 4.247,
    ("fast", "high", "EEV 9273-16-03, left"): 4.629, ("fast", "low", "EEV 9273-16-03, left"): 2.189,
    ("slow", "low", "EEV 9273-20-04, right"): 2.337, ("slow", "high", "EEV 9273-20-04, right"): 4.916,
    ("fast", "high", "EEV 9273-20-04, right"): 5.432, ("fast", "low", "EEV 9273-20-04, right"): 2.578,
    ("slow", "low", "EEV 9273-20-04, left"): 2.28, ("slow", "high", "EEV 9273-20-04, left"): 4.809,
    ("fast", "high", "EEV 9273-20-04, left"): 5.275, ("fast", "low", "EEV 9273-20-04, left"): 2.498,
    ("slow", "low", "EEV 9273-20-03, left"): 2.3, ("slow", "high", "EEV 9273-20-03, left"): 4.841,
    ("fast", "high", "EEV 9273-20-03, left"): 5.397, ("fast", "low", "EEV 9273-20-03, left"): 2.56,
    ("slow", "low", "EEV 9273-20-03, right"): 2.257, ("slow", "high", "EEV 9273-20-03, right"): 4.779,
    ("fast", "high", "EEV 9273-20-03, right"): 5.354, ("fast", "low", "EEV 9273-20-03, right"): 2.526,
    ("slow", "low", "EEV 8056-20-03, left"): 1.94, ("slow", "high", "EEV 8056-20-03, left"): 4.1,
    ("fast", "high", "EEV 8056-20-03, left"): 5.3, ("fast", "low", "EEV 8056-20-03, left"): 2.4,
    ("slow", "low", "EEV 8056-20-03, right"): 2.0, ("slow", "high", "EEV 8056-20-03, right"): 4.2,
    ("fast", "high", "EEV 8056-20-03, right"): 5.3, ("fast", "low", "EEV 8056-20-03, right"): 2.4,
    ("slow", "low", "EEV 8194-19-04, left"): 2.076, ("slow", "high", "EEV 8194-19-04, left"): 4.532,
    ("fast", "high", "EEV 8194-19-04, left"): 5.051, ("fast", "low", "EEV 8194-19-04, left"): 2.295,
    ("slow", "low", "EEV 8194-19-04, right"): 2.131, ("slow", "high", "EEV 8194-19-04, right"): 4.592,
    ("fast", "high", "EEV 8194-19-04, right"): 4.95, ("fast", "low", "EEV 8194-19-04, right"): 2.288,
    ("slow", "low", "EEV 8261-07-04, right"): 2.097, ("slow", "high", "EEV 8261-07-04, right"): 4.411,
    ("fast", "high", "EEV 8261-07-04, right"): 4.833, ("fast", "low", "EEV 8261-07-04, right"): 2.26,
    ("slow", "low", "EEV 8261-07-04, left"): 2.056, ("slow", "high", "EEV 8261-07-04, left"): 4.381,
    ("fast", "high", "EEV 8261-07-04, left"): 4.868, ("fast", "low", "EEV 8261-07-04, left"): 2.264,
    ("slow", "low", "EEV 2037-06-03, left"): 2.372, ("slow", "high", "EEV 2037-06-03, left"): 4.954,
    ("fast", "high", "EEV 2037-06-03, left"): 5.054, ("fast", "low", "EEV 2037-06-03, left"): 2.408,
    ("slow", "low", "EEV 2037-06-03, right"): 2.403, ("slow", "high", "EEV 2037-06-03, right"): 4.862,
    ("fast", "high", "EEV 2037-06-03, right"): 5.253, ("fast", "low", "EEV 2037-06-03, right"): 2.551,
}

#: Amplifier read noise in electrons, same keys as :data:`AMP_GAIN`.
AMP_READ_NOISE: dict[tuple[str, str, str], float] = {
    ("slow", "low", "BI13-20-4k-1, 1"): 3.99, ("slow", "low", "BI13-20-4k-1, 2"): 4.12,
    ("slow", "low", "BI13-20-4k-1, 3"): 4.12, ("slow", "low", "BI13-20-4k-1, 4"): 4.06,
    ("slow", "low", "BI12-09-4k-2, 1"): 4.20, ("slow", "low", "BI12-09-4k-2, 2"): 3.88,
    ("slow", "low", "BI12-09-4k-2, 3"): 3.98, ("slow", "low", "BI12-09-4k-2, 4"): 4.20,
    ("slow", "low", "BI13-18-4k-2, 1"): 4.55, ("slow", "low", "BI13-18-4k-2, 2"): 4.02,
    ("slow", "low", "BI13-18-4k-2, 3"): 4.35, ("slow", "low", "BI13-18-4k-2, 4"): 4.04,
}

#: Typical amplifier bias level in ADU, same keys as :data:`AMP_GAIN`.
AMP_BIAS: dict[tuple[str, str, str], float] = {
    ("slow", "low", "BI13-20-4k-1, 1"): 446., ("slow", "low", "BI13-20-4k-1, 2"): 448.,
    ("slow", "low", "BI13-20-4k-1, 3"): 456., ("slow", "low", "BI13-20-4k-1, 4"): 456.,
    ("slow", "low", "BI12-09-4k-2, 1"): 448., ("slow", "low", "BI12-09-4k-2, 2"): 451.,
    ("slow", "low", "BI12-09-4k-2, 3"): 452., ("slow", "low", "BI12-09-4k-2, 4"): 439.,
    ("slow", "low", "BI13-18-4k-2, 1"): 456., ("slow", "low", "BI13-18-4k-2, 2"): 456.,
    ("slow", "low", "BI13-18-4k-2, 3"): 456., ("slow", "low", "BI13-18-4k-2, 4"): 441.,
}


@dataclass(frozen=True)
class CCDPlacement:
    """Where one CCD sits in the mosaic, relative to the central CCD.

    Attributes
    ----------
    shift : tuple of float
        (x, y) centre-to-centre shift in unbinned pixels.
    rotation : float
        Rotation in degrees (counter-clockwise) about the CCD centre.
    """

    shift: tuple[float, float]
    rotation: float


@dataclass(frozen=True)
class MosaicGeometry:
    """Mosaic geometry of one detector set (key: the PHU ``DETID``)."""

    ccd1: CCDPlacement
    ccd3: CCDPlacement
    tile_gap: int


MOSAIC_GEOMETRY: dict[str, MosaicGeometry] = {
    # GMOS-N Hamamatsu
    "BI13-20-4k-1,BI12-09-4k-2,BI13-18-4k-2": MosaicGeometry(
        CCDPlacement((-2115.95, -0.21739), -0.004), CCDPlacement((2115.48, 0.1727), -0.00537), 67),
    # GMOS-S Hamamatsu, current
    "BI11-41-4k-2,BI13-19-4k-1,BI12-34-4k-1": MosaicGeometry(
        CCDPlacement((-2112.5, -1.1), 0.0), CCDPlacement((2110.8, 1.05), 0.0), 61),
    # GMOS-S Hamamatsu, older
    "BI5-36-4k-2,BI11-33-4k-1,BI12-34-4k-1": MosaicGeometry(
        CCDPlacement((-2110.2, 0.71), 0.0), CCDPlacement((2109.0, -0.73), 0.0), 61),
    # GMOS-N e2vDD
    "e2v 10031-23-05,10031-01-03,10031-18-04": MosaicGeometry(
        CCDPlacement((-2087.7, -0.749), -0.009), CCDPlacement((2087.8014, 2.05), -0.003), 37),
    # GMOS-N EEV
    "EEV9273-16-03EEV9273-20-04EEV9273-20-03": MosaicGeometry(
        CCDPlacement((-2087.50, -1.58), -0.004), CCDPlacement((2088.8723, -1.86), -0.046), 37),
}

#: Filters that need fringe correction, per detector name (seed appendix).
FRINGE_FILTERS: dict[str, frozenset[str]] = {
    "Hamamatsu-N": frozenset({"z", "Y"}),
    "Hamamatsu-S": frozenset({"z", "Y"}),
    "e2vDD": frozenset({"i", "CaT", "Z", "z", "Y"}),
    "EEV": frozenset({"i", "CaT", "Z", "z", "Y"}),
}



#: Named readout regions, from DRAGONS ``gmosRoiSettings``
#: (``gemini_instruments/gmos/lookup.py``), as 1-based (x1, x size, y1, y size)
#: in unbinned pixels; keyed by CCD family (Hamamatsu rows: 4224, EEV/e2vDD: 4608).
#: Some names have several variants (DRAGONS: "adjusted by 1 pixel circa
#: 2010"; the GMOS-N Hamamatsu stamp is 308 rows high); the first is canonical.
#: The header keywords DETRO1XS / DETRO1YS hold the sizes in *binned* pixels.
ROI_SETTINGS: dict[int, dict[str, list[tuple[int, int, int, int]]]] = {
    4224: {
        "Full Frame": [(1, 6144, 1, 4224)],
        "CCD2": [(2049, 2048, 1, 4224)],
        "Central Spectrum": [(1, 6144, 1625, 1024)],
        "Central Stamp": [(2923, 300, 1987, 300), (2923, 300, 1987, 308)],
    },
    4608: {
        "Full Frame": [(1, 6144, 1, 4608)],
        "CCD2": [(2049, 2048, 1, 4608)],
        "Central Spectrum": [(1, 6144, 1793, 1024), (1, 6144, 1792, 1024)],
        "Central Stamp": [(2923, 300, 2155, 300)],
    },
}


def roi_extents(det: DetectorType) -> dict:
    """Named readout regions of a detector as (DETRO1X, size x, DETRO1Y, size y), unbinned.

    Full Frame covers every pixel; Central Spectrum is the full width over
    the central 1024 unbinned rows; Central Stamp is the central 300x300.
    The canonical variant of each (see :data:`ROI_SETTINGS`); divide the
    sizes by the binning to get the header DETRO1XS / DETRO1YS.
    """
    settings = ROI_SETTINGS[det.ccd_height]
    return {name: settings[name][0] for name in ("Full Frame", "Central Spectrum", "Central Stamp")}


@dataclass(frozen=True)
class IlluminatedField:
    """The illuminated imaging field of a detector array.

    Attributes
    ----------
    centre : tuple of float
        (x, y) centre of the field in unbinned mosaic pixels, relative to the
        centre of CCD2 (the telescope pointing).
    radius : float
        Radius of the illuminated circle in unbinned pixels.
    """

    centre: tuple[float, float]
    radius: float


#: Illuminated imaging field per detector name, used by addDQ(add_illum_mask=True).
#: GMOS images a ~5.5' field (the Gemini GMOS imaging pages: 330" x 330";
#: the GMOS cookbook: the intersection of the 7' fold-mirror circle, the
#: 5.5' mask field and the detectors).  It is modelled as a circle 5.6'
#: across (radius 2.8' = 168") centred on CCD2's centre; DRAGONS' own masks
#: (``gmos/lookups/BPM/gmos-n_illum_HAM_*.fits``) are images, not published
#: numbers, so this is an approximation: the outer amplifiers of CCD1 and
#: CCD3 fall outside it.
ILLUMINATED_FIELD: dict[str, IlluminatedField] = {
    "Hamamatsu-N": IlluminatedField((0.0, 0.0), 168.0 / 0.0807),
    "Hamamatsu-S": IlluminatedField((0.0, 0.0), 168.0 / 0.0800),
}
