"""The tutorial's observing plan and the raw headers the Gemini archive writes.

The plan reproduces the DRAGONS GMOS imaging tutorial data set: ten
biases on two nights, five i-band twilight flats (40 s falling to 16 s) and
five 10 s dithered science frames on a star field.  Header keywords and
value formats follow the Gemini archive's raw GMOS files (DRAGONS' ``gmos``
astrodata descriptors read the same keywords).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from astropy.io import fits

from ..errors import ParameterError
from ..gmos import lookups
from .layout import DETECTOR, DETID, AmpLayout, amp_wcs_keywords

__all__ = ["FramePlan", "tutorial_plan", "primary_header", "extension_header", "FILTERS",
           "SCIENCE_PROGRAM", "BASE_POINTING", "DITHER_ARCSEC", "gain_and_noise", "offset_to_sky"]

#: FILTER2 value for each simulated filter (FILTER1 is always open).
FILTERS = {"i": "i_G0302", "z": "z_G0304"}
#: Science program of the tutorial data.
SCIENCE_PROGRAM = "GN-2017A-SV-151"
#: Base pointing of the star field (RA, Dec in degrees).
BASE_POINTING = (290.31250, 13.89611)
#: Science dither pattern, (p, q) telescope offsets in arcsec.
DITHER_ARCSEC = ((0.0, 0.0), (10.0, 10.0), (-10.0, 10.0), (-10.0, -10.0), (10.0, -10.0))
#: Twilight flat exposure times in seconds (the tutorial's 40 s falling to 16 s).
FLAT_EXPTIMES = (40.0, 32.0, 26.0, 20.0, 16.0)
#: Read-out time added to the exposure for UTEND and the next start, seconds.
_READOUT_S = {1: 90.0, 2: 45.0, 4: 25.0}
_AMPINTEG = 11880


@dataclass
class FramePlan:
    """One file of the data set: its name, kind and pointing.

    Attributes
    ----------
    name : str
        File name without ``.fits`` (e.g. ``'N20170614S0201'``).
    kind : str
        ``'bias'``, ``'flat'`` or ``'science'``.
    start : datetime.datetime
        UT start of the exposure.
    exptime : float
        Exposure time in seconds.
    program, obsid : str
        ``GEMPRGID`` and ``OBSID``; ``DATALAB`` adds the ``dataset`` counter.
    dataset : int
        The last field of the data label.
    offset : tuple of float
        (p, q) telescope offset in arcsec.
    pointing : tuple of float
        (RA, Dec) of the telescope in degrees (offset included).
    """

    name: str
    kind: str
    start: dt.datetime
    exptime: float
    program: str
    obsid: str
    dataset: int
    offset: tuple = (0.0, 0.0)
    pointing: tuple = BASE_POINTING


def offset_to_sky(p: float, q: float) -> tuple[float, float]:
    """Telescope (p, q) offset (arcsec) as (East, North) motion of the pointing, at PA = 0.

    The convention follows DRAGONS' GMOS descriptors: ``detector_x_offset``
    = POFFSET / pixel scale and ``detector_y_offset`` = QOFFSET / pixel
    scale (side port), and its offset alignment moves the sources of the
    offset frame by ``+detector_x/y_offset``.  With East left and North up,
    stars move by (+p, +q) on the detector when the pointing moves East by p
    and South by q.
    """
    return p, -q


def _series(prefix, first, count):
    return [f"{prefix}S{first + i:04d}" for i in range(count)]


def tutorial_plan(groups=("bias", "flat", "science"), binning: int = 2) -> list[FramePlan]:
    """The files of the tutorial data set, in name order.

    Parameters
    ----------
    groups : iterable of str
        Which of ``'bias'``, ``'flat'``, ``'science'`` to include.
    binning : int
        Sets the read-out time between consecutive exposures.

    Returns
    -------
    list of FramePlan
    """
    unknown = set(groups) - {"bias", "flat", "science"}
    if unknown:
        raise ParameterError(f"unknown group(s) {sorted(unknown)}; use 'bias', 'flat', 'science'")
    readout = dt.timedelta(seconds=_READOUT_S[binning])
    plan = []
    if "bias" in groups:
        for night, first, start in (("20170613", 180, dt.datetime(2017, 6, 13, 2, 11, 5)),
                                    ("20170615", 534, dt.datetime(2017, 6, 15, 20, 3, 41))):
            for i, name in enumerate(_series(f"N{night}", first, 5)):
                plan.append(FramePlan(name, "bias", start + i * readout, 0.0,
                                      f"GN-CAL{night}", f"GN-CAL{night}-{3 if first < 500 else 17}",
                                      i + 1))
    if "flat" in groups:
        start = dt.datetime(2017, 7, 2, 5, 21, 12)
        for i, (name, exptime) in enumerate(zip(_series("N20170702", 178, 5), FLAT_EXPTIMES)):
            plan.append(FramePlan(name, "flat", start, exptime, "GN-CAL20170702",
                                  "GN-CAL20170702-8", i + 1, offset=(0.0, 0.0)))
            start += dt.timedelta(seconds=exptime) + readout
    if "science" in groups:
        start = dt.datetime(2017, 6, 14, 8, 42, 30)
        for i, (name, offset) in enumerate(zip(_series("N20170614", 201, 5), DITHER_ARCSEC)):
            plan.append(FramePlan(name, "science", start, 10.0, SCIENCE_PROGRAM,
                                  f"{SCIENCE_PROGRAM}-82", i + 1, offset=offset))
            start += dt.timedelta(seconds=10.0) + readout + dt.timedelta(seconds=12)
    return sorted(plan, key=lambda p: p.name)


def _time(value: dt.datetime) -> str:
    return value.strftime("%H:%M:%S.%f")[:-3]


def primary_header(plan: FramePlan, filter_name: str, roi: tuple, elevation: float,
                   azimuth: float, airmass: float) -> fits.Header:
    """The PHU of a raw GMOS-N Hamamatsu imaging file.

    Parameters
    ----------
    plan : FramePlan
    filter_name : str
        ``'i'`` or ``'z'``.
    roi : tuple of int
        (DETRO1X, DETRO1XS, DETRO1Y, DETRO1YS) as written (sizes binned).
    elevation, azimuth, airmass : float
        Telescope position (ignored for biases, which are taken at zenith).

    Returns
    -------
    astropy.io.fits.Header
    """
    is_bias = plan.kind == "bias"
    end = plan.start + dt.timedelta(seconds=plan.exptime)
    obstype, obj, obsclass = {"bias": ("BIAS", "Bias", "dayCal"),
                              "flat": ("OBJECT", "Twilight", "dayCal"),
                              "science": ("OBJECT", "starfield", "science")}[plan.kind]
    p_off, q_off = plan.offset
    cards = [
        ("INSTRUME", "GMOS-N", "Instrument used to acquire data"),
        ("OBJECT", obj, "Object Name"),
        ("OBSTYPE", obstype, "Observation type"),
        ("OBSCLASS", obsclass, "Observe class"),
        ("GEMPRGID", plan.program, "Gemini programme ID"),
        ("OBSID", plan.obsid, "Observation ID / Data label"),
        ("DATALAB", f"{plan.obsid}-{plan.dataset:03d}", "DHS data label"),
        ("OBSERVAT", "Gemini-North", "Name of telescope (Gemini-North|Gemini-South)"),
        ("TELESCOP", "Gemini-North", "Gemini-North"),
        ("EQUINOX", 2000.0, "Equinox of coordinate system"),
        ("RADESYS", "FK5", "R.A./DEC. coordinate system reference"),
        ("FRAME", "AZEL_TOPO" if is_bias else "FK5", "Target coordinate system"),
        ("TRKFRAME", "FK5", "Tracking co-ordinate"),
    ]
    if not is_bias:
        cards += [("RATRACK", 0.0, "Differential tracking rate RA"),
                  ("DECTRACK", 0.0, "Differential tracking rate Dec")]
    cards += [
        ("RA", round(plan.pointing[0], 6), "Right Ascension"),
        ("DEC", round(plan.pointing[1], 6), "Declination"),
        ("ELEVATIO", 90.0 if is_bias else round(elevation, 4), "Current Elevation"),
        ("AZIMUTH", 0.0 if is_bias else round(azimuth, 4), "Current Azimuth"),
        ("AIRMASS", 1.0 if is_bias else round(airmass, 3), "Mean airmass for the observation"),
        ("PA", 0.0, "Sky Position Angle at start of exposure"),
        ("IAA", 359.94, "Instrument Alignment Angle"),
        ("INPORT", 5, "Number of ISS port where GMOS was located"),
        ("RAOFFSET", offset_to_sky(p_off, q_off)[0], "Telescope offset in RA in arcsec"),
        ("DECOFFSE", offset_to_sky(p_off, q_off)[1], "Telescope offset in DEC in arcsec"),
        ("POFFSET", p_off, "Telescope offset in p in arcsec"),
        ("QOFFSET", q_off, "Telescope offset in q in arcsec"),
        ("XOFFSET", p_off, "Telescope offset in x in arcsec"),
        ("YOFFSET", q_off, "Telescope offset in y in arcsec"),
        ("DATE-OBS", plan.start.date().isoformat(), "UT Date of observation (YYYY-MM-DD)"),
        ("TIME-OBS", _time(plan.start), "Time of observation"),
        ("UT", _time(plan.start), "UT at observation start"),
        ("UTSTART", _time(plan.start), "UT at observation start"),
        ("UTEND", _time(end), "UT at observation end"),
        ("EXPTIME", plan.exptime, "Exposure time in seconds"),
        ("OBSMODE", "IMAGE", "Observing mode (IMAGE|IFU|MOS|LONGSLIT)"),
        ("GRATING", "MIRROR", "Grating name"),
        ("MASKTYP", 0, "Mask/IFU type (0=none/-1=IFU/1=mask)"),
        ("MASKNAME", "None", "Mask name"),
        ("FILTER1", "open1-6", "Filter 1 name"),
        ("FILTER2", FILTERS[filter_name], "Filter 2 name"),
        ("DETTYPE", DETECTOR.dettype, "Detector array type"),
        ("DETECTOR", "GMOS-N + Hamamatsu", "Detector name"),
        ("DETID", DETID, "Chip I.D.s"),
        ("NAMPS", 4, "Number of amplifiers used per CCD"),
        ("NCCDS", DETECTOR.nccds, "Number of CCD chips"),
        ("AMPINTEG", _AMPINTEG, "Amplifier integration time (ns)"),
        ("DETNROI", 1, "Number of regions of interest"),
        ("DETRO1X", roi[0], "ROI 1 X start"),
        ("DETRO1XS", roi[1], "ROI 1 X size"),
        ("DETRO1Y", roi[2], "ROI 1 Y start"),
        ("DETRO1YS", roi[3], "ROI 1 Y size"),
        ("RAWIQ", "70-percentile", "Raw Image Quality"),
        ("RAWCC", "50-percentile", "Raw Cloud Cover"),
        ("RAWWV", "Any", "Raw Water Vapour/Transparency"),
        ("RAWBG", "80-percentile", "Raw Background"),
        ("RAWPIREQ", "UNKNOWN", "PI Requirements Met"),
        ("RAWGEMQA", "UNKNOWN", "Gemini Quality Assessment"),
    ]
    return fits.Header(cards)


def extension_header(layout: AmpLayout, plan: FramePlan, gain: float, read_noise: float,
                     pa: float = 0.0) -> fits.Header:
    """The header of one raw amplifier extension (sections, amplifier, WCS).

    Parameters
    ----------
    layout : AmpLayout
    plan : FramePlan
        Gives the pointing for the WCS.
    gain, read_noise : float
        Header ``GAIN`` (e-/ADU) and ``RDNOISE`` (e-).
    pa : float
        Position angle in degrees.

    Returns
    -------
    astropy.io.fits.Header
    """
    binning = f"{layout.xbin} {layout.ybin}"
    cards = [
        ("CCDNAME", layout.ccdname, "CCD chip name"),
        ("AMPNAME", layout.ampname, "Amplifier name"),
        ("GAIN", gain, "Amplifier gain (e-/ADU)"),
        ("RDNOISE", read_noise, "Readout noise (e-)"),
        ("CCDSIZE", f"[1:{DETECTOR.ccd_width},1:{DETECTOR.ccd_height}]", "CCD chip size"),
        ("CCDSUM", binning, "CCD pixel summing"),
        ("DATASEC", layout.datasec.to_string(), "Data section"),
        ("BIASSEC", layout.biassec.to_string(), "Bias section"),
        ("CCDSEC", layout.ccdsec.to_string(), "CCD section"),
        ("DETSEC", layout.detsec.to_string(), "Detector section"),
    ]
    cards += list(amp_wcs_keywords(layout, plan.pointing[0], plan.pointing[1], pa).items())
    cards += [("RADESYS", "FK5"), ("EQUINOX", 2000.0)]
    return fits.Header(cards)


def gain_and_noise(ampname: str) -> tuple[float, float, float]:
    """Gain (e-/ADU), read noise (e-) and bias level (ADU) of an amplifier (slow, low gain)."""
    key = ("slow", "low", ampname)
    return lookups.AMP_GAIN[key], lookups.AMP_READ_NOISE[key], lookups.AMP_BIAS[key]
