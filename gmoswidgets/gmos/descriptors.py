"""GMOS descriptors, with DRAGONS' names, computed from headers.

A descriptor is a named, documented function of a file's headers
(``exposure_time``, ``filter_name``, ``detector_x_bin`` ...).  All of them
work on a :class:`~gmoswidgets.frame.HeaderSet` (header-only reading) and
on a :class:`~gmoswidgets.frame.Frame`.  Per-extension descriptors
(``gain``, ``data_section`` ...) return one value per science extension.

Use :func:`descriptor_value` (or ``Frame.descriptor``) to evaluate one by
name, and :data:`DESCRIPTORS` for the list of names and docs.
"""
from __future__ import annotations

import datetime as _dt
import re

from ..errors import FileProblem
from ..sections import Section
from . import lookups
from .keywords import BUNIT_ELECTRON_ALIASES, GAINSET

__all__ = ["DESCRIPTORS", "descriptor_value", "descriptor_names", "Descriptor", "ccdsum_binning"]


class Descriptor:
    """A named descriptor: its function, one-line doc and whether it is per extension."""

    def __init__(self, func, per_extension: bool):
        self.func = func
        self.name = func.__name__
        self.doc = (func.__doc__ or "").strip().splitlines()[0]
        self.per_extension = per_extension

    def __call__(self, headers):
        return self.func(headers)


#: All descriptors by name.
DESCRIPTORS: dict[str, Descriptor] = {}


def _descriptor(per_extension=False):
    def register(func):
        DESCRIPTORS[func.__name__] = Descriptor(func, per_extension)
        return func
    return register


def descriptor_names() -> list:
    """Sorted names of every descriptor."""
    return sorted(DESCRIPTORS)


def descriptor_value(headers, name: str):
    """Evaluate the descriptor ``name`` on a HeaderSet or Frame.

    Raises
    ------
    KeyError
        If ``name`` is not a descriptor (the message lists the valid ones).
    FileProblem
        If a keyword the descriptor needs is missing from the file.
    """
    try:
        desc = DESCRIPTORS[name]
    except KeyError:
        raise KeyError(f"unknown descriptor {name!r}; valid descriptors are: "
                       + ", ".join(descriptor_names())) from None
    return desc(headers)


# -- helpers ------------------------------------------------------------------

def _need(headers, key, header=None):
    hdr = headers.phu if header is None else header
    if key not in hdr:
        where = "primary header" if header is None else "extension header"
        raise FileProblem(getattr(headers, "path", None) or getattr(headers, "filename", "?"),
                          f"missing keyword {key} in the {where}")
    return hdr[key]


def _str(value) -> str:
    return str(value).strip()


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def ccdsum_binning(header, where: str, *,
                   default: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(xbin, ybin)`` from an extension header's ``CCDSUM`` (e.g. ``'2 2'``).

    The one reader of the ``CCDSUM`` convention: two positive integers, x first.

    Parameters
    ----------
    header : astropy.io.fits.Header
        An extension header.
    where : str
        The file (name or path) the header belongs to, for error messages.
    default : tuple of int, optional
        Returned when there is no ``CCDSUM``; without it that is an error.

    Raises
    ------
    FileProblem
        If ``CCDSUM`` is malformed, or missing and there is no ``default``.
    """
    if "CCDSUM" not in header:
        if default is None:
            raise FileProblem(where, "missing keyword CCDSUM in the extension header")
        return default
    value = _str(header["CCDSUM"])
    parts = value.split()
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise FileProblem(where, f"bad CCDSUM value {value!r}: expected two positive integers "
                                 "(x and y binning), e.g. '2 2'")
    return int(parts[0]), int(parts[1])


def _ccdsum(headers):
    return ccdsum_binning(headers.ext_headers[0],
                          getattr(headers, "path", None) or getattr(headers, "filename", "?"))


def _dettype(headers):
    return lookups.detector_type(_str(headers.phu.get("INSTRUME", "")),
                                 _str(headers.phu.get("DETTYPE", "")))


def _in_electrons(headers) -> bool:
    unit = _str(headers.phu.get("BUNIT", headers.ext_headers[0].get("BUNIT", ""))).lower()
    return unit in BUNIT_ELECTRON_ALIASES


def _amp_key(headers, header):
    return (read_speed_setting(headers), gain_setting(headers), _str(header.get("AMPNAME", "")))


def _ext_section(headers, key):
    out = []
    for header in headers.ext_headers:
        value = header.get(key)
        out.append(None if value is None else Section.from_string(value))
    return out


# -- identity -----------------------------------------------------------------

@_descriptor()
def instrument(headers):
    """Instrument name, e.g. 'GMOS-N'."""
    return _str(_need(headers, "INSTRUME"))


@_descriptor()
def object(headers):  # noqa: A001 - DRAGONS' name
    """Target name from OBJECT, e.g. 'starfield'."""
    return _str(headers.phu.get("OBJECT", ""))


@_descriptor()
def observation_class(headers):
    """Observation class (OBSCLASS): 'science', 'dayCal', 'partnerCal', 'acq' ..."""
    return _str(_need(headers, "OBSCLASS"))


@_descriptor()
def observation_type(headers):
    """Observation type (OBSTYPE): 'OBJECT', 'BIAS', 'FLAT', 'DARK' ..."""
    return _str(_need(headers, "OBSTYPE"))


@_descriptor()
def program_id(headers):
    """Gemini program ID (GEMPRGID), e.g. 'GN-2017A-SV-151'."""
    return _str(headers.phu.get("GEMPRGID", ""))


@_descriptor()
def observation_id(headers):
    """Observation ID (OBSID), e.g. 'GN-2017A-SV-151-382'."""
    return _str(headers.phu.get("OBSID", ""))


@_descriptor()
def data_label(headers):
    """Data label (DATALAB), e.g. 'GN-2017A-SV-151-382-001'."""
    return _str(headers.phu.get("DATALAB", ""))


@_descriptor()
def exposure_time(headers):
    """Exposure time in seconds (EXPTIME)."""
    value = _float(_need(headers, "EXPTIME"))
    if value is None:
        raise FileProblem(getattr(headers, "path", "?"), "EXPTIME is not a number")
    return value


@_descriptor()
def filter_name(headers):
    """Filter name in its short form, e.g. 'i' for FILTER1='open1-6', FILTER2='i_G0302'."""
    names = []
    for key in ("FILTER1", "FILTER2", "FILTER3"):
        raw = _str(headers.phu.get(key, ""))
        if not raw or raw.lower().startswith("open"):
            continue
        if raw.lower() in ("dark", "blank"):
            return "blank"
        names.append(re.sub(r"_G\d{4}$", "", raw))
    return "&".join(names) if names else "open"


@_descriptor()
def ut_date(headers):
    """UT date of the observation (DATE-OBS) as a datetime.date."""
    value = _str(_need(headers, "DATE-OBS"))
    try:
        return _dt.date.fromisoformat(value[:10])
    except ValueError:
        raise FileProblem(getattr(headers, "path", "?"), f"bad DATE-OBS value {value!r}") from None


@_descriptor()
def ut_datetime(headers):
    """UT date and time of the start of the exposure (DATE-OBS + TIME-OBS/UTSTART/UT)."""
    date = ut_date(headers)
    for key in ("TIME-OBS", "UTSTART", "UT"):
        value = _str(headers.phu.get(key, ""))
        if value:
            try:
                time = _dt.time.fromisoformat(value)
            except ValueError:
                continue
            return _dt.datetime.combine(date, time)
    return _dt.datetime.combine(date, _dt.time(0, 0))


# -- detector -----------------------------------------------------------------

@_descriptor()
def detector_name(headers):
    """Detector array name: 'Hamamatsu-N', 'Hamamatsu-S', 'e2vDD' or 'EEV'."""
    det = _dettype(headers)
    if det is not None:
        return det.name
    return _str(headers.phu.get("DETECTOR", headers.phu.get("DETTYPE", "")))


@_descriptor(per_extension=True)
def array_name(headers):
    """Name of the amplifier of each extension (AMPNAME, as in DRAGONS), e.g. 'BI13-20-4k-1, 4'."""
    return [_str(h.get("AMPNAME", "")) for h in headers.ext_headers]


@_descriptor()
def pixel_scale(headers):
    """Binned pixel scale in arcsec (along y)."""
    det = _dettype(headers)
    if det is None:
        raise FileProblem(getattr(headers, "path", "?"),
                          f"unknown detector type DETTYPE = {headers.phu.get('DETTYPE')!r}")
    return det.pixel_scale * detector_y_bin(headers)


@_descriptor()
def detector_x_bin(headers):
    """Binning along x (columns), from CCDSUM."""
    return _ccdsum(headers)[0]


@_descriptor()
def detector_y_bin(headers):
    """Binning along y (rows), from CCDSUM."""
    return _ccdsum(headers)[1]


@_descriptor()
def read_speed_setting(headers):
    """Read speed, 'slow' or 'fast' (AMPINTEG above 8000 ns is slow; 2000 ns for EEV / e2vDD)."""
    value = _float(_need(headers, "AMPINTEG"))
    det = _dettype(headers)
    hamamatsu = det is None or det.name.startswith("Hamamatsu")
    limit = lookups.READ_SPEED_AMPINTEG_SLOW if hamamatsu else lookups.READ_SPEED_AMPINTEG_SLOW_EEV
    return "slow" if value is not None and value > limit else "fast"


@_descriptor()
def gain_setting(headers):
    """Gain setting, 'low' or 'high' (raw header GAIN below 3 is low)."""
    if GAINSET in headers.phu:
        return _str(headers.phu[GAINSET]).lower()
    value = _float(_need(headers, "GAIN", headers.ext_headers[0]))
    return "low" if value is not None and value < lookups.GAIN_SETTING_THRESHOLD else "high"


@_descriptor(per_extension=True)
def gain(headers):
    """Gain in e-/ADU per extension (lookup table for raw data; 1.0 once in electrons)."""
    if _in_electrons(headers):
        return [1.0 for _ in headers.ext_headers]
    if any("PREPAR" in key for key in headers.phu.keys()):
        return [float(_need(headers, "GAIN", h)) for h in headers.ext_headers]
    values = []
    for header in headers.ext_headers:
        value = lookups.AMP_GAIN.get(_amp_key(headers, header))
        values.append(float(value) if value is not None else float(_need(headers, "GAIN", header)))
    return values


@_descriptor(per_extension=True)
def read_noise(headers):
    """Read noise in electrons per extension (lookup table for raw data)."""
    if any("PREPAR" in key for key in headers.phu.keys()):
        return [float(_need(headers, "RDNOISE", h)) for h in headers.ext_headers]
    values = []
    for header in headers.ext_headers:
        value = lookups.AMP_READ_NOISE.get(_amp_key(headers, header))
        values.append(float(value) if value is not None else float(_need(headers, "RDNOISE", header)))
    return values


@_descriptor(per_extension=True)
def saturation_level(headers):
    """Saturation level per extension, in the data's current units (SATLEVEL once prepared)."""
    if all("SATLEVEL" in h for h in headers.ext_headers):
        return [float(h["SATLEVEL"]) for h in headers.ext_headers]
    det = _dettype(headers)
    level = float(det.saturation_adu) if det else 65535.0
    return [level for _ in headers.ext_headers]


@_descriptor(per_extension=True)
def non_linear_level(headers):
    """Level above which the response is non-linear, per extension (NONLINEA once prepared)."""
    if all("NONLINEA" in h for h in headers.ext_headers):
        return [float(h["NONLINEA"]) for h in headers.ext_headers]
    det = _dettype(headers)
    fraction = det.linear_fraction if det else 1.0
    return [fraction * level for level in saturation_level(headers)]


@_descriptor(per_extension=True)
def data_section(headers):
    """Section of each extension holding data (DATASEC), as a Section (0-based)."""
    return _ext_section(headers, "DATASEC")


@_descriptor(per_extension=True)
def overscan_section(headers):
    """Serial overscan section of each extension (BIASSEC), or None once trimmed."""
    return _ext_section(headers, "BIASSEC")


@_descriptor(per_extension=True)
def array_section(headers):
    """Section of the CCD each extension covers, in unbinned CCD pixels (CCDSEC)."""
    return _ext_section(headers, "CCDSEC")


@_descriptor(per_extension=True)
def detector_section(headers):
    """Section of the whole detector each extension covers, unbinned (DETSEC)."""
    return _ext_section(headers, "DETSEC")


@_descriptor()
def detector_roi_setting(headers):
    """Named readout region: 'Full Frame', 'CCD2', 'Central Spectrum', 'Central Stamp' or 'Custom'.

    From the first ROI (DETRO1X, DETRO1Y and the binned sizes DETRO1XS,
    DETRO1YS), as DRAGONS does; 'Undefined' without ROI keywords.
    """
    det = _dettype(headers)
    try:
        x1, xs, y1, ys = (int(headers.phu[k]) for k in ("DETRO1X", "DETRO1XS", "DETRO1Y", "DETRO1YS"))
    except (KeyError, TypeError, ValueError):
        return "Undefined"
    roi = (x1, xs * detector_x_bin(headers), y1, ys * detector_y_bin(headers))
    if det is not None:
        for name, extents in lookups.ROI_SETTINGS.get(det.ccd_height, {}).items():
            if roi in extents:
                return name
    return "Custom"


@_descriptor()
def amp_read_area(headers):
    """Amplifiers and the detector area each read, e.g. "'BI13-20-4k-1, 4':[1:512,1:4224],..."."""
    parts = []
    for header in headers.ext_headers:
        parts.append(f"'{_str(header.get('AMPNAME', ''))}':{_str(header.get('DETSEC', ''))}")
    return ",".join(parts)


# -- pointing -----------------------------------------------------------------

@_descriptor()
def telescope_x_offset(headers):
    """Telescope offset along the detector x axis in arcsec (XOFFSET)."""
    return float(headers.phu.get("XOFFSET", 0.0))


@_descriptor()
def telescope_y_offset(headers):
    """Telescope offset along the detector y axis in arcsec (YOFFSET)."""
    return float(headers.phu.get("YOFFSET", 0.0))


def _offset_pixels(headers, key, flipped_on):
    """PHU offset ``key`` (arcsec) in binned pixels, sign-flipped on the bottom port of ``flipped_on``."""
    value = _float(headers.phu.get(key))
    if value is None:
        return None
    offset = value / pixel_scale(headers)
    bottom_port = _float(headers.phu.get("INPORT")) == 1
    return -offset if bottom_port and instrument(headers) == flipped_on else offset


@_descriptor()
def detector_x_offset(headers):
    """Telescope offset along detector x in binned pixels (POFFSET; None if absent), as DRAGONS."""
    return _offset_pixels(headers, "POFFSET", "GMOS-N")


@_descriptor()
def detector_y_offset(headers):
    """Telescope offset along detector y in binned pixels (QOFFSET; None if absent), as DRAGONS."""
    return _offset_pixels(headers, "QOFFSET", "GMOS-S")


@_descriptor()
def ra(headers):
    """Right ascension of the telescope pointing in degrees (RA)."""
    return float(_need(headers, "RA"))


@_descriptor()
def dec(headers):
    """Declination of the telescope pointing in degrees (DEC)."""
    return float(_need(headers, "DEC"))


@_descriptor()
def position_angle(headers):
    """Instrument position angle on the sky in degrees (PA)."""
    return float(headers.phu.get("PA", 0.0))


@_descriptor()
def airmass(headers):
    """Airmass at the start of the exposure (AIRMASS)."""
    return _float(headers.phu.get("AIRMASS"))
