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
    "GAIN_SETTING_THRESHOLD", "roi_extents",
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
        Unbinned width of the serial overscan (BIASSEC) of each amplifier.
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


#: Readout with ``AMPINTEG`` above this many ns is "slow" (DRAGONS' rule).
READ_SPEED_AMPINTEG_SLOW = 8000
#: A header ``GAIN`` below this is the "low" gain setting (DRAGONS' rule).
GAIN_SETTING_THRESHOLD = 3.0

#: Amplifier gain in e-/ADU, keyed by (read speed, gain setting, AMPNAME).
#: GMOS-N Hamamatsu, valid from 2017-02-24.
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
}

#: Amplifier read noise in electrons, same keys as :data:`AMP_GAIN`.
AMP_READ_NOISE: dict[tuple[str, str, str], float] = {
    ("slow", "low", "BI13-20-4k-1, 1"): 4.24, ("slow", "low", "BI13-20-4k-1, 2"): 3.94,
    ("slow", "low", "BI13-20-4k-1, 3"): 4.13, ("slow", "low", "BI13-20-4k-1, 4"): 4.26,
    ("slow", "low", "BI12-09-4k-2, 1"): 4.27, ("slow", "low", "BI12-09-4k-2, 2"): 4.58,
    ("slow", "low", "BI12-09-4k-2, 3"): 4.05, ("slow", "low", "BI12-09-4k-2, 4"): 4.42,
    ("slow", "low", "BI13-18-4k-2, 1"): 4.57, ("slow", "low", "BI13-18-4k-2, 2"): 3.96,
    ("slow", "low", "BI13-18-4k-2, 3"): 4.20, ("slow", "low", "BI13-18-4k-2, 4"): 4.27,
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



def roi_extents(det: DetectorType) -> dict:
    """Named readout regions of a detector as (DETRO1X, DETRO1XS, DETRO1Y, DETRO1YS).

    Full Frame covers every pixel; Central Spectrum is the full width over
    the central 1024 unbinned rows; Central Stamp is the central 300x300.
    """
    width = det.ccd_width * det.nccds
    height = det.ccd_height
    return {
        "Full Frame": (1, width, 1, height),
        "Central Spectrum": (1, width, height // 2 - 511, 1024),
        "Central Stamp": (width // 2 - 149, 300, height // 2 - 149, 300),
    }
