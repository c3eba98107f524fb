"""The tutorial's observing plan and the raw headers the Gemini archive writes.

The plan reproduces the DRAGONS GMOS imaging tutorial data set: ten
biases on two nights, five i-band twilight flats (40 s falling to 16 s) and
five 10 s dithered science frames on a star field.  Header keywords and
value formats follow the Gemini archive's raw GMOS files (DRAGONS' ``gmos``
astrodata descriptors read the same keywords); the site, detector and
amplifier keywords follow the configuration
(:mod:`gmoswidgets.data.instrument`).  Other configurations keep the
tutorial's plan, moved in time to the configuration's science night.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from astropy.io import fits

from ..errors import ParameterError
from .instrument import Configuration
from .layout import AmpLayout, amp_wcs_keywords

__all__ = ["FramePlan", "tutorial_plan", "primary_header", "extension_header", "FILTERS",
           "FILTER_IDS", "science_program", "BASE_POINTING", "DITHER_ARCSEC", "offset_to_sky",
           "TUTORIAL_SCIENCE_DATE"]

#: The simulated filters.
FILTERS = ("i", "z")
#: FILTER2 value of each simulated filter per site (FILTER1 is always open).
FILTER_IDS = {"GMOS-N": {"i": "i_G0302", "z": "z_G0304"}, "GMOS-S": {"i": "i_G0327", "z": "z_G0328"}}
#: Science night of the DRAGONS tutorial (the plan's reference date).
TUTORIAL_SCIENCE_DATE = dt.date(2017, 6, 14)
#: Base pointing of the star field (RA, Dec in degrees).
BASE_POINTING = (290.31250, 13.89611)
#: Science dither pattern, (p, q) telescope offsets in arcsec.
DITHER_ARCSEC = ((0.0, 0.0), (10.0, 10.0), (-10.0, 10.0), (-10.0, -10.0), (10.0, -10.0))
#: Twilight flat exposure times in seconds (the tutorial's 40 s falling to 16 s).
FLAT_EXPTIMES = (40.0, 32.0, 26.0, 20.0, 16.0)
#: Read-out time added to the exposure for UTEND and the next start, seconds.
_READOUT_S = {1: 90.0, 2: 45.0, 4: 25.0}


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


def science_program(config: Configuration) -> str:
    """``GEMPRGID`` of the science frames (``'GN-2017A-SV-151'`` for the tutorial)."""
    day = config.date
    semester = f"{day.year}A" if 2 <= day.month <= 7 else f"{day.year - (day.month == 1)}B"
    return f"G{config.prefix}-{semester}-SV-151"


def tutorial_plan(config: Configuration, groups=("bias", "flat", "science"),
                  binning: int = 2) -> list[FramePlan]:
    """The files of the tutorial data set, in name order.

    Parameters
    ----------
    config : Configuration
        Gives the site (file-name and program prefixes) and the science
        night; the tutorial's other nights keep their distance to it.
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
    shift = config.date - TUTORIAL_SCIENCE_DATE
    site = config.prefix

    def series(start: dt.datetime, first: int):
        return [f"{site}{start:%Y%m%d}S{first + i:04d}" for i in range(5)]

    plan = []
    if "bias" in groups:
        for first, start, obs in ((180, dt.datetime(2017, 6, 13, 2, 11, 5), 3),
                                  (534, dt.datetime(2017, 6, 15, 20, 3, 41), 17)):
            start += shift
            program = f"G{site}-CAL{start:%Y%m%d}"
            for i, name in enumerate(series(start, first)):
                plan.append(FramePlan(name, "bias", start + i * readout, 0.0, program,
                                      f"{program}-{obs}", i + 1))
    if "flat" in groups:
        start = dt.datetime(2017, 7, 2, 5, 21, 12) + shift
        program = f"G{site}-CAL{start:%Y%m%d}"
        for i, (name, exptime) in enumerate(zip(series(start, 178), FLAT_EXPTIMES)):
            plan.append(FramePlan(name, "flat", start, exptime, program, f"{program}-8", i + 1,
                                  offset=(0.0, 0.0)))
            start += dt.timedelta(seconds=exptime) + readout
    if "science" in groups:
        start = dt.datetime(2017, 6, 14, 8, 42, 30) + shift
        program = science_program(config)
        for i, (name, offset) in enumerate(zip(series(start, 201), DITHER_ARCSEC)):
            plan.append(FramePlan(name, "science", start, 10.0, program, f"{program}-82", i + 1,
                                  offset=offset))
            start += dt.timedelta(seconds=10.0) + readout + dt.timedelta(seconds=12)
    return sorted(plan, key=lambda p: p.name)


def _time(value: dt.datetime) -> str:
    return value.strftime("%H:%M:%S.%f")[:-3]


def primary_header(config: Configuration, plan: FramePlan, filter_name: str, roi: tuple,
                   elevation: float, azimuth: float, airmass: float) -> fits.Header:
    """The PHU of a raw GMOS imaging file.

    Parameters
    ----------
    config : Configuration
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
    telescope = f"Gemini-{config.site}"
    cards = [
        ("INSTRUME", config.instrument, "Instrument used to acquire data"),
        ("OBJECT", obj, "Object Name"),
        ("OBSTYPE", obstype, "Observation type"),
        ("OBSCLASS", obsclass, "Observe class"),
        ("GEMPRGID", plan.program, "Gemini programme ID"),
        ("OBSID", plan.obsid, "Observation ID / Data label"),
        ("DATALAB", f"{plan.obsid}-{plan.dataset:03d}", "DHS data label"),
        ("OBSERVAT", telescope, "Name of telescope (Gemini-North|Gemini-South)"),
        ("TELESCOP", telescope, "Gemini-North|Gemini-South"),
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
        ("FILTER2", FILTER_IDS[config.instrument][filter_name], "Filter 2 name"),
        ("DETTYPE", config.dettype, "Detector array type"),
        ("DETECTOR", config.detector_keyword, "Detector name"),
        ("DETID", config.detid, "Chip I.D.s"),
        ("NAMPS", config.amps_per_ccd, "Number of amplifiers used per CCD"),
        ("NCCDS", 3, "Number of CCD chips"),
        ("AMPINTEG", config.ampinteg, "Amplifier integration time (ns)"),
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


def extension_header(config: Configuration, layout: AmpLayout, plan: FramePlan, gain: float,
                     read_noise: float, pa: float = 0.0) -> fits.Header:
    """The header of one raw amplifier extension (sections, amplifier, WCS).

    Parameters
    ----------
    config : Configuration
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
        ("CCDSIZE", config.ccdsize, "CCD chip size"),
        ("CCDSUM", binning, "CCD pixel summing"),
        ("DATASEC", layout.datasec.to_string(), "Data section"),
        ("BIASSEC", layout.biassec.to_string(), "Bias section"),
        ("CCDSEC", layout.ccdsec.to_string(), "CCD section"),
        ("DETSEC", layout.detsec.to_string(), "Detector section"),
    ]
    cards += list(amp_wcs_keywords(config, layout, plan.pointing[0], plan.pointing[1], pa).items())
    cards += [("RADESYS", "FK5"), ("EQUINOX", 2000.0)]
    return fits.Header(cards)

